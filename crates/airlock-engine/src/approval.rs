//! Who says yes to a high-risk step.
//!
//! The engine asks an [`Approver`] for every `NeedsApproval` decision and records the answer,
//! with who gave it, before anything executes. Later a web queue implements the same trait.

use serde::Serialize;
use std::future::Future;
use std::io::{BufRead, IsTerminal, Write};

/// Everything a reviewer needs to decide in a minute.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct ApprovalRequest {
    pub run_id: String,
    pub step: u32,
    pub task: String,
    /// The action in plain words: "Click button 'Submit note' on incidents.example/…".
    pub summary: String,
    pub effect: String,
    pub tier: String,
    pub reason: String,
    pub rules: Vec<String>,
    /// Field values a form submission would send.
    pub fields: Vec<(String, String)>,
    /// Instructions aimed at the agent that the run has seen (why a tainted run asks).
    #[serde(default)]
    pub findings: Vec<String>,
    /// What the page says and what Airlock read, when a name or path held characters the
    /// reviewer cannot see or would misread ([`airlock_core::Decision::read_as`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum ApprovalOutcome {
    Approved {
        by: String,
        reason: String,
    },
    Denied {
        by: String,
        reason: String,
    },
    /// Nobody decided: the run was stopped (Stop button, `airlock stop`, a signal) while the
    /// request waited. Recorded as a stop by `by`, not as a denial.
    Stopped {
        by: String,
        reason: String,
    },
}

pub trait Approver: Send {
    /// A short name for the audit (`prompt`, `deny`, `approve-all`).
    fn mode(&self) -> &str;
    fn decide(&mut self, req: &ApprovalRequest) -> impl Future<Output = ApprovalOutcome> + Send;
}

/// The approval modes `airlock run --approvals` offers.
pub enum ApprovalMode {
    /// Ask on the terminal; deny when there is no terminal to ask.
    Prompt,
    Deny,
    /// Approve everything, recorded as such.
    ApproveAll,
}

impl Approver for ApprovalMode {
    fn mode(&self) -> &str {
        match self {
            ApprovalMode::Prompt => "prompt",
            ApprovalMode::Deny => "deny",
            ApprovalMode::ApproveAll => "approve-all",
        }
    }

    async fn decide(&mut self, req: &ApprovalRequest) -> ApprovalOutcome {
        match self {
            ApprovalMode::Deny => ApprovalOutcome::Denied {
                by: "policy:--approvals=deny".into(),
                reason: "approvals are set to deny".into(),
            },
            ApprovalMode::ApproveAll => ApprovalOutcome::Approved {
                by: "policy:--approvals=approve-all".into(),
                reason: "approvals are set to approve-all".into(),
            },
            ApprovalMode::Prompt => {
                let req = req.clone();
                tokio::task::spawn_blocking(move || prompt(&req))
                    .await
                    .unwrap_or(ApprovalOutcome::Denied {
                        by: "airlock".into(),
                        reason: "the approval prompt failed".into(),
                    })
            }
        }
    }
}

/// The OS account at the terminal (`terminal:NAME@HOST (uid N)`), never `$USER`.
fn whoami() -> String {
    format!(
        "terminal:{}",
        crate::account::OsAccount::current().principal_name()
    )
}

fn prompt(req: &ApprovalRequest) -> ApprovalOutcome {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return ApprovalOutcome::Denied {
            by: "airlock".into(),
            reason:
                "approval needed but stdin is not a terminal (use --approvals approve-all or deny)"
                    .into(),
        };
    }
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "\n── approval needed ─ run {} step {} ──",
        req.run_id, req.step
    );
    let _ = writeln!(err, "task:    {}", req.task);
    let _ = writeln!(err, "action:  {}", req.summary);
    let _ = writeln!(err, "effect:  {} (risk {})", req.effect, req.tier);
    let _ = writeln!(err, "why:     {}", req.reason);
    if let Some(r) = &req.read_as {
        let _ = writeln!(err, "read:    {r}");
    }
    let _ = writeln!(err, "rules:   {}", req.rules.join(", "));
    for (k, v) in &req.fields {
        let _ = writeln!(err, "field:   {k} = {v}");
    }
    for f in &req.findings {
        let _ = writeln!(err, "TAINT:   {f}");
    }
    let _ = write!(err, "approve? [y/N] ");
    let _ = err.flush();
    let mut line = String::new();
    let _ = stdin.lock().read_line(&mut line);
    if matches!(line.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        ApprovalOutcome::Approved {
            by: whoami(),
            reason: "approved at the terminal".into(),
        }
    } else {
        ApprovalOutcome::Denied {
            by: whoami(),
            reason: "denied at the terminal".into(),
        }
    }
}
