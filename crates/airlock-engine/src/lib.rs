//! Airlock's run state machine.
//!
//! One run: admit the manifest, take a baseline of the records that must not change, start the
//! sandbox, then loop observe → propose → resolve → gate → *record* → (approve) → execute →
//! record, until the model claims done or a budget ends it; then verify on the host's own
//! evidence, tear the sandbox down, and seal the audit chain.
//!
//! The write-ahead rule is enforced by types: the sandbox is only driven through
//! [`Authorized`], which can only be built from a decision that the audit store has durably
//! recorded (and, for high risk, an approval it has recorded too).

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing by key yields Null for missing keys; it does not panic"
)]

pub mod account;
pub mod approval;
mod egress;
pub mod faults;
mod requests;
pub mod sor;
mod uploads;
mod verify;

use airlock_audit::{AuditError, AuditStore, BlobRef, EventRef};
use airlock_core::host::{HostName, WebUrl};
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, Decision, ElementFacts, Observation, TypedText, Verdict};
use airlock_policy::cedar::{PolicyEngine, PolicyError};
use airlock_policy::normalize::made_visible;
use airlock_policy::taint::{self, Finding};
use airlock_policy::{admit, decide, AdmissionError, GateContext};
use airlock_providers::{ProposeContext, Provider, ProviderError, StepFeedback};
use airlock_sandbox::{
    BrowserSandbox, EgressPolicy, EgressRecord, Isolation, Resolved, SandboxConfig, TeardownReport,
};
use airlock_secrets::{Broker, Redactor, SecretError};
use approval::{ApprovalOutcome, ApprovalRequest, Approver};
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

pub use verify::CriterionResult;

/// Errors that prevent a run from starting or from being recorded. Everything that happens
/// *during* a run is an [`Outcome`] instead.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Admission(#[from] AdmissionError),
    #[error("audit: {0}")]
    Audit(#[from] AuditError),
    #[error("policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("secrets: {0}")]
    Secret(#[from] SecretError),
    #[error("{0}")]
    Setup(String),
}

/// How a run ended. Each maps to a documented exit code in the CLI.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// The host verifier confirmed every acceptance criterion.
    Succeeded,
    /// The run ended (claim or transcript end) but the host verifier found failures.
    NotVerified { failures: Vec<String> },
    /// A human (or the approval mode) refused a step the task needed.
    ApprovalDenied {
        step: u32,
        by: String,
        reason: String,
    },
    /// A budget (steps, wall clock, denials) ran out.
    BudgetExhausted { what: String },
    /// The model or transcript produced something unusable.
    ProviderFailed { reason: String },
    /// The browser sandbox failed.
    SandboxFailed { reason: String },
    /// Someone pressed stop.
    Stopped { by: String, reason: String },
}

impl Outcome {
    pub fn summary(&self) -> String {
        match self {
            Outcome::Succeeded => "succeeded: verified by the host".into(),
            Outcome::NotVerified { failures } => {
                format!("not verified: {}", failures.join("; "))
            }
            Outcome::ApprovalDenied { step, by, reason } => {
                format!("stopped: approval denied at step {step} by {by} ({reason})")
            }
            Outcome::BudgetExhausted { what } => format!("stopped: budget exhausted ({what})"),
            Outcome::ProviderFailed { reason } => format!("stopped: model error: {reason}"),
            Outcome::SandboxFailed { reason } => format!("stopped: sandbox error: {reason}"),
            Outcome::Stopped { by, reason } => format!("stopped by {by}: {reason}"),
        }
    }
}

/// What a finished run reports back.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub run_id: String,
    pub outcome: Outcome,
    pub steps: u32,
    pub criteria: Vec<CriterionResult>,
    pub teardown: Option<TeardownReport>,
    /// Hash of the sealing event: anchor it elsewhere to detect truncation of the whole chain.
    pub audit_head: String,
}

/// A progress line for the terminal (the CLI prints these; tests may collect them).
pub trait Reporter: Send {
    fn line(&mut self, text: &str);
}

/// Discards progress.
pub struct Quiet;
impl Reporter for Quiet {
    fn line(&mut self, _: &str) {}
}

/// A way for someone outside the run (a reviewer's Stop button) to end it between actions.
pub trait RunControl: Send + Sync {
    /// Polled before each step and each action; `Some((by, reason))` stops the run.
    fn stop_requested(&self, run_id: &str) -> Option<(String, String)>;

    /// Whether a frozen run may be torn down before its freeze time is up.
    fn release_requested(&self, _run_id: &str) -> bool {
        false
    }
}

/// Everything a run needs besides the provider, the approver and the audit store.
pub struct RunSpec {
    pub manifest: TaskManifest,
    /// Where each mapped host lives (the bundled portal, or `[hosts]` addresses).
    pub host_map: BTreeMap<HostName, SocketAddr>,
    /// Header the verifier sends to systems of record (e.g. the bundled portal's token).
    pub sor_header: Option<(String, String)>,
    pub run_id: Option<String>,
    pub chromium: Option<PathBuf>,
    /// Name of the provider for the audit (`scripted:FILE`, `anthropic:MODEL`).
    pub model: String,
    /// Stop requests from outside the run, if anyone can make them.
    pub control: Option<Arc<dyn RunControl>>,
    /// Namespaces unless the operator explicitly asked for none (`--insecure-no-sandbox`).
    pub isolation: Isolation,
    /// Operator Cedar policy files (name, text), added to Airlock's defaults.
    pub policies: Vec<(String, String)>,
    /// Values for `env` secrets whose variable is unset (the bundled portal's test-only
    /// credentials). Real environment variables always win.
    pub secret_defaults: BTreeMap<String, String>,
    /// A person started this run and is there to look at it (a terminal, not CI): a stopped
    /// run is then frozen for [`airlock_core::manifest::INTERACTIVE_FREEZE_SECS`] unless the
    /// manifest says otherwise.
    pub interactive: bool,
}

impl RunSpec {
    /// A spec for `manifest` with the defaults of `airlock run`: `[hosts]` entries that are
    /// addresses mapped, namespaces on, no operator policies, a fresh run id.
    pub fn new(manifest: TaskManifest, model: impl Into<String>) -> Self {
        let host_map = static_host_map(&manifest);
        RunSpec {
            manifest,
            host_map,
            sor_header: None,
            run_id: None,
            chromium: None,
            model: model.into(),
            control: None,
            isolation: Isolation::Namespaces,
            policies: Vec::new(),
            secret_defaults: BTreeMap::new(),
            interactive: false,
        }
    }

    /// Points every host the manifest maps to `bundled-portal` at a portal the caller started
    /// on `addr`. `sor_header` is the portal's system-of-record token header, used by the
    /// verifier unless the manifest names its own; `test_secrets` are the portal's test-only
    /// credentials (e.g. `CI_READONLY_PASSWORD`), used only for unset variables.
    ///
    /// Every front end that runs tasks against the bundled portal (`airlock run`, `airlock mcp`,
    /// `airlock eval`) wires it the same way through here.
    pub fn with_bundled_portal(
        mut self,
        addr: SocketAddr,
        sor_header: (String, String),
        test_secrets: impl IntoIterator<Item = (String, String)>,
    ) -> Self {
        for (h, v) in &self.manifest.hosts {
            if v == airlock_core::manifest::BUNDLED_PORTAL {
                if let Ok(host) = HostName::parse(h) {
                    self.host_map.insert(host, addr);
                }
            }
        }
        if self.sor_header.is_none() {
            self.sor_header = Some(sor_header);
        }
        for (k, v) in test_secrets {
            self.secret_defaults.entry(k).or_insert(v);
        }
        self
    }
}

/// A token that an action may execute: only built from a recorded decision (and approval).
pub struct Authorized<'a> {
    action: &'a Action,
    decision_seq: u64,
    approval_seq: Option<u64>,
}

impl<'a> Authorized<'a> {
    /// For `Allow`/`Checkpoint` decisions that the audit has durably recorded.
    fn recorded(action: &'a Action, decision: &Decision, receipt: &EventRef) -> Option<Self> {
        decision.is_executable().then_some(Authorized {
            action,
            decision_seq: receipt.seq,
            approval_seq: None,
        })
    }

    /// For `NeedsApproval` decisions whose approval the audit has durably recorded.
    fn approved(
        action: &'a Action,
        decision: &Decision,
        receipt: &EventRef,
        approval: &EventRef,
    ) -> Option<Self> {
        (decision.verdict == Verdict::NeedsApproval && approval.seq > receipt.seq).then_some(
            Authorized {
                action,
                decision_seq: receipt.seq,
                approval_seq: Some(approval.seq),
            },
        )
    }
}

/// A fresh run id (`run-YYYYMMDD-HHMMSS-xxxx`), for front ends that must know a run's id before
/// it starts (`RunSpec::run_id`), e.g. to watch its stop requests while the engine waits on them.
pub fn new_run_id() -> String {
    run_id_now()
}

fn run_id_now() -> String {
    let ms = airlock_audit::now_ms();
    let secs = ms / 1000;
    let days = (secs / 86_400) as i64;
    let (y, mo, d) = civil_from_days(days);
    let tod = secs % 86_400;
    // A little entropy from the clock's sub-second part and the pid keeps ids unique per host.
    let salt = (ms % 1000) as u32 ^ (std::process::id().wrapping_mul(2_654_435_761));
    format!(
        "run-{y:04}{mo:02}{d:02}-{:02}{:02}{:02}-{:04x}",
        tod / 3600,
        (tod / 60) % 60,
        tod % 60,
        salt & 0xffff
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's method).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The action in words a reviewer understands, with the element as the host resolved it.
/// The action in plain words, saying where it is taken (`on` the page it acts on) and, when
/// that is somewhere else, where its effect lands: a form on `/incidents/INC-2048` posts to
/// `/incidents/INC-2048/notes`, a link on one page loads another.
fn describe(
    action: &Action,
    el: Option<&ElementFacts>,
    page: Option<&str>,
    scope: Option<&str>,
) -> String {
    let on = match (page, scope) {
        (Some(p), Some(s)) if p != s => format!(" on {p} (effect on {s})"),
        (Some(p), _) => format!(" on {p}"),
        (None, Some(s)) => format!(" (effect on {s})"),
        (None, None) => String::new(),
    };
    match (action, el) {
        (Action::Click { .. }, Some(el)) => {
            // Spelled out: a zero-width space or a bidi override in a name shows as
            // `⟨U+200B⟩`, not as nothing.
            let name = if el.name.is_empty() {
                el.tag.clone()
            } else {
                made_visible(&el.name)
            };
            format!("Click {} '{}'{on}", el.role, name)
        }
        (Action::Type { text, .. }, el) => {
            let what = match text {
                TypedText::Literal(t) if is_password_field(el) => {
                    format!("{} characters (password field)", t.chars().count())
                }
                TypedText::Literal(t) => format!("'{}'", airlock_core::action::truncate(t, 80)),
                TypedText::Secret(n) => format!("secret `{n}`"),
            };
            match el {
                Some(el) => format!(
                    "Type {what} into {} '{}'{on}",
                    el.role,
                    made_visible(&el.name)
                ),
                None => format!("Type {what}{on}"),
            }
        }
        _ => format!("{}{on}", capitalise(&action.to_string())),
    }
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn is_password_field(el: Option<&ElementFacts>) -> bool {
    el.and_then(|e| e.input_type.as_deref()) == Some("password")
}

/// The action as recorded: literal text typed into a password field is not written down.
fn action_for_audit(action: &Action, el: Option<&ElementFacts>) -> serde_json::Value {
    match action {
        Action::Type {
            target,
            text: TypedText::Literal(t),
        } if is_password_field(el) => json!({
            "kind": "type",
            "target": target,
            "text": {"redacted": format!("{} characters typed into a password field", t.chars().count())},
        }),
        other => serde_json::to_value(other).unwrap_or(json!(null)),
    }
}

/// Replaces every occurrence of each hidden string inside JSON strings.
fn redact_json(v: serde_json::Value, hidden: &[String]) -> serde_json::Value {
    use serde_json::Value as V;
    if hidden.is_empty() {
        return v;
    }
    match v {
        V::String(mut s) => {
            for h in hidden {
                s = s.replace(h.as_str(), "[redacted]");
            }
            V::String(s)
        }
        V::Array(a) => V::Array(a.into_iter().map(|x| redact_json(x, hidden)).collect()),
        V::Object(o) => V::Object(
            o.into_iter()
                .map(|(k, x)| (k, redact_json(x, hidden)))
                .collect(),
        ),
        other => other,
    }
}

fn facts_for_audit(el: Option<&ElementFacts>) -> serde_json::Value {
    el.map(|e| serde_json::to_value(e).unwrap_or(json!(null)))
        .unwrap_or(json!(null))
}

/// Runs one task to its end. Every path out of here tears the sandbox down and seals the run.
pub struct Engine<'a, P: Provider, A: Approver> {
    pub audit: Arc<dyn AuditStore>,
    pub provider: &'a mut P,
    pub approver: &'a mut A,
    pub reporter: &'a mut dyn Reporter,
}

struct Live {
    run_id: String,
    sandbox: Option<BrowserSandbox>,
    egress: Option<mpsc::UnboundedReceiver<EgressRecord>>,
    policy: Arc<PolicyEngine>,
    /// Instruction-like content seen so far (the run is tainted once this is non-empty).
    findings: Vec<Finding>,
    effects_done: Vec<airlock_core::Effect>,
    /// When recent actions ran, for the actions-per-minute budget.
    recent: std::collections::VecDeque<Instant>,
    broker: Broker,
    redactor: Redactor,
    /// Decides the page's own requests by declared effect; armed while a step executes.
    requests: Arc<requests::EffectGate>,
    /// Scopes of submit/destructive steps whose outcome is unknown (failed or unsettled):
    /// a repeat needs a human's confirmation whatever the policy says.
    unknown_outcomes: Vec<String>,
    /// Where systems of record live and the header they need, for checkpoint criteria.
    records: (BTreeMap<HostName, SocketAddr>, Option<(String, String)>),
    /// Browser faults, dialogs and re-logins seen so far (see [`faults`]).
    faults: faults::FaultState,
    /// The run's secrets as the sandbox's egress scan (`None` without secrets).
    secret_scan: Option<Arc<egress::SecretScan>>,
    /// A secret-egress attempt recorded since the engine last looked (see [`egress`]).
    leaked: Option<egress::Attempt>,
    /// `budgets.freeze_on_violation`: whether a severe violation stops the run.
    freeze_on_violation: bool,
}

impl<'a, P: Provider, A: Approver> Engine<'a, P, A> {
    /// Admits the manifest, runs the task, verifies, tears down and seals.
    pub async fn run(&mut self, spec: RunSpec) -> Result<RunReport, EngineError> {
        admit(&spec.manifest)?;
        let files: Vec<(&str, &str)> = spec
            .policies
            .iter()
            .map(|(n, t)| (n.as_str(), t.as_str()))
            .collect();
        let policy = Arc::new(PolicyEngine::with_operator(&files)?);
        // Secrets are resolved before anything starts, and live only as long as the run.
        let mut broker = Broker::from_manifest(&spec.manifest)?;
        let defaults = spec.secret_defaults.clone();
        broker
            .resolve_all_with_env(move |k| {
                std::env::var_os(k).or_else(|| defaults.get(k).map(std::ffi::OsString::from))
            })
            .await?;
        let redactor = Redactor::from_broker(&broker, &spec.manifest.redaction)?;
        let secret_scan =
            egress::SecretScan::new(airlock_secrets::EgressScanner::from_broker(&broker)?)
                .map(Arc::new);
        let run_id = spec.run_id.clone().unwrap_or_else(run_id_now);
        let m = &spec.manifest;
        self.audit.begin_run_with_status(
            &run_id,
            &json!({
                "task": m.task.name,
                "goal": m.task.goal,
                "model": spec.model,
                "approvals": self.approver.mode(),
                "manifest": serde_json::to_value(m).unwrap_or(json!(null)),
                "policy_rules": policy.rules().keys().collect::<Vec<_>>(),
                "operator_policies": spec.policies.iter().map(|(n, t)| json!({"name": n, "text": t})).collect::<Vec<_>>(),
                "airlock": env!("CARGO_PKG_VERSION"),
            }),
            // The owner (pid and its start time) lets a later invocation tell a live run from
            // an orphan whose host died; it is written with the run, so no crash falls between.
            &owner_status(),
        )?;
        self.reporter.line(&format!(
            "run {run_id}: task `{}` with {} (approvals: {})",
            m.task.name,
            spec.model,
            self.approver.mode()
        ));
        let mut live = Live {
            run_id: run_id.clone(),
            sandbox: None,
            egress: None,
            policy,
            findings: Vec::new(),
            effects_done: Vec::new(),
            recent: Default::default(),
            broker,
            redactor,
            requests: requests::EffectGate::new(spec.manifest.clone()),
            unknown_outcomes: Vec::new(),
            records: (spec.host_map.clone(), spec.sor_header.clone()),
            faults: Default::default(),
            secret_scan,
            leaked: None,
            freeze_on_violation: spec.manifest.budgets.freeze_on_violation,
        };
        let result = self.drive(&spec, &mut live).await;
        // Whatever happened, verification (if the browser got that far), teardown and seal
        // follow. A stopped run is verified too: its audit then shows what the stop left behind.
        let verified = match &result {
            Ok((_, _, baseline)) => self.verify(&mut live, &spec, baseline).await,
            Err(_) => Ok(vec![]),
        };
        let (end, steps, criteria) = match (result, verified) {
            (Ok((end, steps, _)), Ok(criteria)) => (end, steps, criteria),
            (Err(DriveError::Audit(e)), _) | (_, Err(DriveError::Audit(e))) => {
                // The audit could not record: stop acting at once, tear down, report.
                if let Some(sb) = live.sandbox.take() {
                    let _ = sb.teardown().await;
                }
                return Err(EngineError::Audit(e));
            }
        };
        let outcome = match end {
            End::Stopped(o) => o,
            End::Claimed => {
                let failures: Vec<String> = criteria
                    .iter()
                    .filter(|c| !c.passed)
                    .map(|c| c.detail.clone())
                    .collect();
                if criteria.is_empty() {
                    Outcome::NotVerified {
                        failures: vec!["no acceptance criterion could be checked".into()],
                    }
                } else if failures.is_empty() {
                    Outcome::Succeeded
                } else {
                    Outcome::NotVerified { failures }
                }
            }
        };
        // A stopped run is frozen first: final state captured, no more input, kept for
        // inspection until released or its freeze time is up.
        if matches!(outcome, Outcome::Stopped { .. }) && live.sandbox.is_some() {
            let _ = self.observe(&mut live, steps, "frozen").await;
            let ttl = Duration::from_secs(spec.manifest.budgets.freeze_secs.unwrap_or(
                if spec.interactive {
                    airlock_core::manifest::INTERACTIVE_FREEZE_SECS
                } else {
                    0
                },
            ));
            self.audit.append(
                &run_id,
                "frozen",
                &json!({"freeze_secs": ttl.as_secs()}),
                &[],
            )?;
            if !ttl.is_zero() {
                self.reporter.line(&format!(
                    "run frozen for inspection for up to {} s (release to tear down sooner)",
                    ttl.as_secs()
                ));
                let until = Instant::now() + ttl;
                while Instant::now() < until
                    && !spec
                        .control
                        .as_ref()
                        .is_some_and(|c| c.release_requested(&run_id))
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        let teardown = match live.sandbox.take() {
            Some(sb) => {
                let report = sb.teardown().await;
                self.drain_egress(&mut live)?;
                self.audit.append(
                    &run_id,
                    "teardown",
                    &serde_json::to_value(&report).unwrap_or(json!(null)),
                    &[],
                )?;
                self.reporter.line(&format!(
                    "teardown: {} processes killed, {} remaining, profile {}",
                    report.processes_killed.len(),
                    report.processes_remaining.len(),
                    if report.run_dir_removed {
                        "deleted"
                    } else {
                        "NOT deleted"
                    }
                ));
                Some(report)
            }
            None => None,
        };
        let sealed = self
            .audit
            .seal(&run_id, &json!({"result": &outcome, "steps": steps}))?;
        self.reporter
            .line(&format!("outcome: {}", outcome.summary()));
        Ok(RunReport {
            run_id,
            outcome,
            steps,
            criteria,
            teardown,
            audit_head: sealed.hash,
        })
    }

    /// Asks the approver, unless the answer is already `settled` (then it is recorded as
    /// given). The request (with `shown`, anything else the reviewer saw) and the answer are
    /// each committed to the audit, before the wait and before anything acts on the answer.
    /// Returns the answer and its event.
    async fn ask_human(
        &mut self,
        live: &Live,
        step: u32,
        index: usize,
        req: &ApprovalRequest,
        shown: Option<(&str, serde_json::Value)>,
        settled: Option<ApprovalOutcome>,
    ) -> Result<(ApprovalOutcome, EventRef), DriveError> {
        let mut asked = json!({"step": step, "index": index, "request": req});
        if let (Some((key, value)), Some(o)) = (shown, asked.as_object_mut()) {
            o.insert(key.to_string(), value);
        }
        self.record(live, "approval_requested", asked, &[])?;
        let answer = match settled {
            Some(a) => a,
            None => self.approver.decide(req).await,
        };
        let event = self.record(
            live,
            "approval",
            json!({"step": step, "index": index, "mode": self.approver.mode(), "answer": &answer}),
            &[],
        )?;
        Ok((answer, event))
    }

    fn record(
        &self,
        live: &Live,
        kind: &str,
        payload: serde_json::Value,
        blobs: &[BlobRef],
    ) -> Result<EventRef, DriveError> {
        Ok(self.append_redacted(live, kind, payload, blobs)?)
    }

    /// Every event passes the redactor: secret values (in any encoding) and the manifest's
    /// retention patterns never reach the audit. The event says that redaction happened.
    fn append_redacted(
        &self,
        live: &Live,
        kind: &str,
        payload: serde_json::Value,
        blobs: &[BlobRef],
    ) -> Result<EventRef, AuditError> {
        let (mut payload, n) = live.redactor.redact_json(payload);
        if n > 0 {
            if let Some(o) = payload.as_object_mut() {
                o.insert("redactions".into(), json!(n));
            }
        }
        self.audit.append(&live.run_id, kind, &payload, blobs)
    }

    fn drain_egress(&self, live: &mut Live) -> Result<(), AuditError> {
        let intercepts = live
            .sandbox
            .as_ref()
            .map(|sb| sb.drain_intercepts())
            .unwrap_or_default();
        for r in intercepts {
            self.append_redacted(
                live,
                "intercept",
                serde_json::to_value(&r).unwrap_or(json!(null)),
                &[],
            )?;
            if let Some(a) = egress::Attempt::from_intercept(&r) {
                self.secret_attempt(live, a)?;
            }
        }
        let mut records = Vec::new();
        if let Some(rx) = live.egress.as_mut() {
            while let Ok(r) = rx.try_recv() {
                records.push(r);
            }
        }
        for r in records {
            self.append_redacted(
                live,
                "egress",
                serde_json::to_value(&r).unwrap_or(json!(null)),
                &[],
            )?;
            if let Some(a) = egress::Attempt::from_egress(&r) {
                self.secret_attempt(live, a)?;
            }
        }
        Ok(())
    }

    /// Records a secret-egress attempt as a violation (names, never the value) and keeps the
    /// first one for [`Engine::leak_stop`].
    fn secret_attempt(&self, live: &mut Live, a: egress::Attempt) -> Result<(), AuditError> {
        self.append_redacted(live, "violation", a.event(live.freeze_on_violation), &[])?;
        if live.leaked.is_none() {
            live.leaked = Some(a);
        }
        Ok(())
    }

    /// The stop a secret-egress attempt calls for, once: the run is stopped and frozen unless
    /// the operator chose refusing only (`budgets.freeze_on_violation = false`).
    fn leak_stop(&mut self, live: &mut Live, step: u32) -> Option<Outcome> {
        let a = live.leaked.take()?;
        if !live.freeze_on_violation {
            return None;
        }
        self.reporter.line(&format!(
            "step {step}: severe violation (secret egress): {}: the run is stopped and frozen",
            a.summary()
        ));
        Some(Outcome::Stopped {
            by: "airlock".into(),
            reason: format!("severe violation at step {step}: {}", a.summary()),
        })
    }

    async fn observe(
        &mut self,
        live: &mut Live,
        step: u32,
        phase: &str,
    ) -> Result<Result<Observation, String>, DriveError> {
        // Looking is idempotent: one more try when the browser was busy (a navigation still
        // waiting for its response can hold the accessibility tree past the step timeout).
        let mut attempt = 0;
        let obs = loop {
            attempt += 1;
            let Some(sb) = live.sandbox.as_mut() else {
                return Ok(Err("no sandbox".into()));
            };
            match sb.observe().await {
                Ok(o) => break o,
                Err(e) => {
                    self.record(
                        live,
                        "observation_failed",
                        json!({"step": step, "error": e.to_string(), "attempt": attempt}),
                        &[],
                    )?;
                    // Chromium answers "Not attached to an active page" while a navigation
                    // swaps the page's renderer (an alert loop being left, a crashed renderer
                    // being replaced); a moment later the page is there again. That is worth
                    // a few more looks, backing off, before the sandbox is called failed.
                    let limit = if renderer_swapping(&e) {
                        OBSERVE_SWAP_ATTEMPTS
                    } else {
                        MAX_ATTEMPTS
                    };
                    if attempt >= limit {
                        return Ok(Err(e.to_string()));
                    }
                    tokio::time::sleep(Duration::from_millis(300 * u64::from(attempt))).await;
                }
            }
        };
        let Some(sb) = live.sandbox.as_mut() else {
            return Ok(Err("no sandbox".into()));
        };
        // Injection scan over everything on the page, hidden or not.
        let texts = sb.page_texts().await.unwrap_or_default();
        // Nothing that shows a secret leaves the sandbox: its pixels are masked and its text
        // redacted before the screenshot is stored or the observation reaches the model.
        let needles: Vec<String> = live
            .broker
            .values()
            .map(|v| v.expose_str().to_string())
            .filter(|v| v.chars().count() >= 4)
            .collect();
        let rects = sb.rects_showing(&needles).await.unwrap_or_default();
        drop(needles);
        let mut obs = obs;
        if !rects.is_empty() {
            let rs: Vec<airlock_secrets::Rect> = rects
                .iter()
                .map(|(x, y, w, h)| airlock_secrets::Rect::new(*x, *y, *w, *h))
                .collect();
            match airlock_secrets::mask_png(&obs.screenshot_png, &rs) {
                Ok(png) => obs.screenshot_png = png,
                // Fail closed: a screenshot that could not be masked is not kept.
                Err(_) => obs.screenshot_png = Vec::new(),
            }
        }
        // Text a person cannot see reaches the model marked as such, not as ordinary text.
        obs.snapshot = mark_unseen(&obs.snapshot, &texts);
        let (snapshot, n1) = live.redactor.redact_str(&obs.snapshot);
        let (title, n2) = live.redactor.redact_str(&obs.title);
        obs.snapshot = snapshot;
        obs.title = title;
        if rects.len() + n1 + n2 > 0 {
            self.record(
                live,
                "redaction",
                json!({"step": step, "masked_regions": rects.len(), "text_redactions": n1 + n2}),
                &[],
            )?;
        }
        let shot = self.audit.put_blob(&obs.screenshot_png)?;
        self.record(
            live,
            "observation",
            json!({
                "step": step,
                "phase": phase,
                "url": obs.url,
                "title": obs.title,
                "screenshot": shot.as_str(),
                "snapshot": obs.snapshot,
                "focused": obs.focused,
            }),
            std::slice::from_ref(&shot),
        )?;
        let fresh: Vec<Finding> = taint::scan(&texts)
            .into_iter()
            .filter(|f| !live.findings.contains(f))
            .collect();
        if !fresh.is_empty() {
            self.record(
                live,
                "injection_findings",
                json!({"step": step, "url": obs.url, "findings": &fresh}),
                &[],
            )?;
            self.reporter.line(&format!(
                "step {step}: page content addresses the agent ({}); the run is tainted: anything beyond reading now needs approval",
                fresh.iter().map(|f| f.location.as_str()).collect::<Vec<_>>().join(", ")
            ));
            live.findings.extend(fresh);
        }
        Ok(Ok(obs))
    }

    /// The start page did not load (no such host, a 5xx, refused by the request layer). A 5xx
    /// is loaded again like any read; if the page still is not there, the run ends with the
    /// reason instead of handing the model an error page.
    async fn start_page_failed(
        &mut self,
        live: &mut Live,
        why: String,
    ) -> Result<Option<Outcome>, DriveError> {
        let mut notes = Vec::new();
        if let Some(o) = self.after_step(live, 0, &mut notes).await? {
            return Ok(Some(o));
        }
        let status = match live.sandbox.as_mut() {
            Some(sb) => sb.document_status().await.map_or(0, |d| d.status),
            None => 0,
        };
        if (1..500).contains(&status) {
            return Ok(None);
        }
        self.reporter.line(&format!(
            "start page: cannot load {why}; the run ends before the model is asked"
        ));
        Ok(Some(Outcome::SandboxFailed {
            reason: format!("the start page could not be loaded: {why}"),
        }))
    }

    async fn drive(
        &mut self,
        spec: &RunSpec,
        live: &mut Live,
    ) -> Result<(End, u32, Baseline), DriveError> {
        let m = &spec.manifest;
        let started = Instant::now();
        let wall = Duration::from_secs(m.budgets.wall_clock_secs);
        let step_timeout = Duration::from_secs(m.budgets.step_timeout_secs);

        // Baseline of records that must not change, taken before the browser exists.
        let baseline =
            match verify::baseline(m, &spec.host_map, spec.sor_header.as_ref(), step_timeout).await
            {
                Ok(b) => b,
                Err(e) => {
                    self.record(
                        live,
                        "baseline_failed",
                        json!({"error": e.to_string()}),
                        &[],
                    )?;
                    return Ok((
                        End::Stopped(Outcome::SandboxFailed {
                            reason: e.to_string(),
                        }),
                        0,
                        vec![],
                    ));
                }
            };
        let mut blobs = Vec::new();
        let mut listed = Vec::new();
        for (url, value) in &baseline {
            let b = self.audit.put_blob(value.to_string().as_bytes())?;
            listed.push(json!({"url": url, "blob": b.as_str()}));
            blobs.push(b);
        }
        if !listed.is_empty() {
            self.record(live, "baseline", json!({"records": listed}), &blobs)?;
        }

        let egress = EgressPolicy {
            allowed: m.domains().into_iter().collect(),
            mapped: spec.host_map.clone(),
            scan: live
                .secret_scan
                .clone()
                .map(|s| s as Arc<dyn airlock_sandbox::EgressScan>),
        };
        let mut cfg = SandboxConfig::new(&live.run_id, egress);
        cfg.chromium = spec.chromium.clone();
        cfg.step_timeout = step_timeout;
        cfg.isolation = spec.isolation;
        cfg.request_gate = Some(live.requests.clone());
        cfg.files = m
            .files
            .iter()
            .map(|f| (f.id.clone(), PathBuf::from(&f.path)))
            .collect();
        // An operator rule that lets high-risk actions run without a human is never silent.
        for r in live.policy.unattended_high_risk().to_vec() {
            self.reporter.line(&format!(
                "WARNING: {r} lets high-risk actions run without a human: {}",
                r.reason
            ));
            self.record(
                live,
                "unattended_high_risk",
                json!({"rule": r.id, "source": r.source, "line": r.line, "reason": r.reason,
                       "statement": "the operator's policy lets high-risk actions run without approval"}),
                &[],
            )?;
        }
        if spec.isolation == Isolation::InsecureHost {
            self.reporter
                .line("WARNING: --insecure-no-sandbox: the browser runs without namespaces");
            self.record(
                live,
                "insecure_no_sandbox",
                json!({"statement": "the operator ran this task without namespaces (--insecure-no-sandbox)"}),
                &[],
            )?;
        }
        if let Some(l) = &m.browser.locale {
            cfg.locale = l.clone();
        }
        if let Some(tz) = &m.browser.timezone {
            cfg.timezone = tz.clone();
        }
        let (sb, rx) = match BrowserSandbox::launch(cfg.clone()).await {
            Ok(x) => x,
            Err(e) => {
                self.record(live, "sandbox_failed", json!({"error": e.to_string()}), &[])?;
                return Ok((
                    End::Stopped(Outcome::SandboxFailed {
                        reason: e.to_string(),
                    }),
                    0,
                    baseline,
                ));
            }
        };
        self.record(
            live,
            "sandbox_started",
            json!({
                "browser_pid": sb.browser_pid(),
                "viewport": {"width": cfg.viewport.width, "height": cfg.viewport.height, "dpr": 1},
                "locale": cfg.locale,
                "timezone": cfg.timezone,
                "transport": "cdp over --remote-debugging-pipe",
                "isolation": sb.isolation().0,
                "network_namespace": sb.isolation().1,
                "allowed_hosts": m.domains().iter().map(|h| h.to_string()).collect::<Vec<_>>(),
            }),
            &[],
        )?;
        let viewport = sb.viewport;
        live.sandbox = Some(sb);
        live.egress = Some(rx);

        // The host opens the start page itself; it is within the task's domains by admission.
        let start = Action::Navigate {
            url: m.task.start_url.clone(),
        };
        if let Some(sb) = live.sandbox.as_mut() {
            let note = sb.execute(&start, None).await;
            self.record(live, "host_navigate", json!({"url": m.task.start_url, "result": note.as_ref().map_err(|e| e.to_string()).ok(), "error": note.as_ref().err().map(|e| e.to_string())}), &[])?;
            if let Err(e) = note {
                if let Some(end) = self.start_page_failed(live, e.to_string()).await? {
                    return Ok((End::Stopped(end), 0, baseline));
                }
            }
        }
        self.drain_egress(live)?;
        let mut first_feedback = Vec::new();
        if let Some(login) = &m.login {
            match self.host_login(live, login, step_timeout).await? {
                Ok(()) => {
                    self.reporter
                        .line("login: host-owned login succeeded (session: authenticated)");
                    first_feedback.push(StepFeedback::ran("session: authenticated"));
                }
                Err(why) => {
                    self.reporter.line(&format!("login: failed: {why}"));
                    return Ok((
                        End::Stopped(Outcome::SandboxFailed {
                            reason: format!("host-owned login failed: {why}"),
                        }),
                        0,
                        baseline,
                    ));
                }
            }
            self.drain_egress(live)?;
        }
        // A page that sent the secret on right after the host typed it.
        if let Some(o) = self.leak_stop(live, 0) {
            return Ok((End::Stopped(o), 0, baseline));
        }

        let mut obs = match self.observe(live, 0, "initial").await? {
            Ok(o) => o,
            Err(e) => {
                return Ok((
                    End::Stopped(Outcome::SandboxFailed { reason: e }),
                    0,
                    baseline,
                ))
            }
        };
        // The model learns only that the host signed in, never how.
        let goal = if first_feedback.is_empty() {
            m.task.goal.clone()
        } else {
            format!("{}\n\nsession: authenticated (the host signed in for you; you will never be given credentials)", m.task.goal)
        };
        let mut feedback: Vec<StepFeedback> = first_feedback;
        let mut denials = 0u32;
        let mut invalid_in_a_row = 0u32;
        let (mut tokens, mut cost) = (0u64, 0f64);
        let mut step = 0u32;

        loop {
            if step >= m.budgets.max_steps {
                return Ok((
                    End::Stopped(Outcome::BudgetExhausted {
                        what: format!("{} steps", m.budgets.max_steps),
                    }),
                    step,
                    baseline,
                ));
            }
            if started.elapsed() >= wall {
                return Ok((
                    End::Stopped(Outcome::BudgetExhausted {
                        what: format!("{} s wall clock", m.budgets.wall_clock_secs),
                    }),
                    step,
                    baseline,
                ));
            }
            if let Some((by, reason)) = spec
                .control
                .as_ref()
                .and_then(|c| c.stop_requested(&live.run_id))
            {
                self.record(
                    live,
                    "stop",
                    json!({"step": step, "by": by, "reason": reason}),
                    &[],
                )?;
                return Ok((
                    End::Stopped(Outcome::Stopped { by, reason }),
                    step,
                    baseline,
                ));
            }
            step += 1;
            let ctx = ProposeContext {
                goal: &goal,
                step,
                observation: &obs,
                viewport,
                feedback: &feedback,
            };
            let proposal = match tokio::time::timeout(
                wall.saturating_sub(started.elapsed()),
                self.provider.propose(ctx),
            )
            .await
            {
                Err(_) => {
                    return Ok((
                        End::Stopped(Outcome::BudgetExhausted {
                            what: "wall clock (waiting for the model)".into(),
                        }),
                        step,
                        baseline,
                    ))
                }
                Ok(Err(e)) => {
                    self.record(live, "proposal_rejected", json!({"step": step, "error": e.to_string(), "recoverable": e.is_recoverable()}), &[])?;
                    self.reporter
                        .line(&format!("step {step}: model output rejected: {e}"));
                    if e.is_recoverable() {
                        invalid_in_a_row += 1;
                        if invalid_in_a_row >= m.budgets.max_invalid {
                            return Ok((
                                End::Stopped(Outcome::BudgetExhausted {
                                    what: format!("{invalid_in_a_row} invalid proposals in a row"),
                                }),
                                step,
                                baseline,
                            ));
                        }
                        feedback = vec![StepFeedback::failed(e.to_string())];
                        continue;
                    }
                    let reason = match e {
                        ProviderError::Exhausted => "the model stopped proposing".to_string(),
                        other => other.to_string(),
                    };
                    return Ok((
                        End::Stopped(Outcome::ProviderFailed { reason }),
                        step,
                        baseline,
                    ));
                }
                Ok(Ok(p)) => {
                    invalid_in_a_row = 0;
                    p
                }
            };
            // Token and cost budgets, from the usage the provider reports.
            if let Some(u) = &proposal.usage {
                tokens += u.input_tokens + u.output_tokens;
                cost += u.cost_usd.unwrap_or(0.0);
            }
            let over = match (m.budgets.max_tokens, m.budgets.max_cost_usd) {
                (Some(max), _) if tokens > max => {
                    Some(format!("{tokens} model tokens (max {max})"))
                }
                (_, Some(max)) if cost > max => Some(format!("${cost:.4} model cost (max ${max})")),
                _ => None,
            };
            if let Some(what) = over {
                self.record(live, "proposal", json!({"step": step, "source": proposal.source, "actions": proposal.actions, "usage": proposal.usage, "not_executed": "budget"}), &[])?;
                return Ok((
                    End::Stopped(Outcome::BudgetExhausted { what }),
                    step,
                    baseline,
                ));
            }
            // Text typed into a focused password field is not written down, not even in the raw
            // payload. (The secrets broker generalises this to every known secret value.)
            let hidden: Vec<String> = if is_password_field(obs.focused.as_ref()) {
                proposal
                    .actions
                    .iter()
                    .filter_map(|a| match a {
                        Action::Type {
                            target: None,
                            text: TypedText::Literal(t),
                        } if !t.is_empty() => Some(t.clone()),
                        _ => None,
                    })
                    .collect()
            } else {
                Vec::new()
            };
            self.record(
                live,
                "proposal",
                redact_json(
                    json!({"step": step, "source": proposal.source, "raw": proposal.raw, "actions": proposal.actions, "safety": proposal.safety, "usage": proposal.usage}),
                    &hidden,
                ),
                &[],
            )?;
            feedback = Vec::new();
            let mut claimed: Option<String> = None;
            let mut failed = false;
            for (i, action) in proposal.actions.iter().enumerate() {
                if failed {
                    feedback.push(StepFeedback::failed(airlock_providers::NOT_EXECUTED));
                    continue;
                }
                if let Action::Done { claim } = action {
                    self.record(live, "claim", json!({"step": step, "claim": claim}), &[])?;
                    self.reporter.line(&format!(
                        "step {step}: model claims done: {}",
                        airlock_core::action::truncate(claim, 100)
                    ));
                    claimed = Some(claim.clone());
                    break;
                }
                // Provider safety signals (OpenAI pending_safety_checks, Gemini
                // require_confirmation) become approval requests; only a human's approval is
                // ever acknowledged back to the vendor, never an automatic mode.
                let mut acked: Vec<String> = Vec::new();
                let mut declined: Option<String> = None;
                for sig in proposal
                    .safety
                    .iter()
                    .filter(|s| s.action_index.unwrap_or(0) == i)
                {
                    self.record(
                        live,
                        "provider_safety_signal",
                        json!({"step": step, "index": i, "signal": sig}),
                        &[],
                    )?;
                    if self.approver.mode() == "approve-all" {
                        declined =
                            Some("provider safety checks need a human, not approve-all".into());
                        break;
                    }
                    let req = ApprovalRequest {
                        run_id: live.run_id.clone(),
                        step,
                        task: m.task.goal.clone(),
                        summary: format!("{action} (flagged by the model provider)"),
                        effect: "provider_safety_check".into(),
                        tier: "high".into(),
                        reason: format!(
                            "{} safety check `{}`: {}",
                            self.provider.name(),
                            sig.code,
                            sig.message
                        ),
                        rules: vec![format!("provider:{}", sig.code)],
                        fields: vec![],
                        findings: vec![],
                        read_as: None,
                    };
                    let answer = self.approver.decide(&req).await;
                    self.record(live, "approval", json!({"step": step, "index": i, "mode": self.approver.mode(), "provider_signal": sig.id, "answer": &answer}), &[])?;
                    match answer {
                        ApprovalOutcome::Approved { .. } => acked.push(sig.id.clone()),
                        ApprovalOutcome::Denied { reason, .. } => {
                            declined = Some(reason);
                            break;
                        }
                        ApprovalOutcome::Stopped { by, reason } => {
                            return Ok((
                                End::Stopped(Outcome::Stopped { by, reason }),
                                step,
                                baseline,
                            ));
                        }
                    }
                }
                if let Some(r) = declined {
                    denials += 1;
                    failed = true;
                    feedback.push(StepFeedback::failed(format!(
                        "denied: a human declined the provider's safety check: {r}"
                    )));
                    if denials > m.budgets.max_denials {
                        return Ok((
                            End::Stopped(Outcome::BudgetExhausted {
                                what: format!("{} denied actions", denials),
                            }),
                            step,
                            baseline,
                        ));
                    }
                    continue;
                }
                match self.one_action(live, step, i, action, &obs, m).await? {
                    ActionEnd::Ran(msg) => feedback.push(
                        StepFeedback::ran(live.redactor.redact_str(&msg).0)
                            .with_acknowledged(acked.clone()),
                    ),
                    ActionEnd::Refused(msg) => {
                        denials += 1;
                        failed = true;
                        feedback.push(
                            StepFeedback::failed(live.redactor.redact_str(&msg).0)
                                .with_acknowledged(acked.clone()),
                        );
                        if denials > m.budgets.max_denials {
                            return Ok((
                                End::Stopped(Outcome::BudgetExhausted {
                                    what: format!("{} denied actions", denials),
                                }),
                                step,
                                baseline,
                            ));
                        }
                    }
                    ActionEnd::Failed(msg) => {
                        failed = true;
                        feedback.push(
                            StepFeedback::failed(live.redactor.redact_str(&msg).0)
                                .with_acknowledged(acked.clone()),
                        );
                    }
                    ActionEnd::Stop(outcome) => return Ok((End::Stopped(outcome), step, baseline)),
                }
            }
            self.drain_egress(live)?;
            if let Some(o) = self.leak_stop(live, step) {
                return Ok((End::Stopped(o), step, baseline));
            }
            if claimed.is_some() {
                return Ok((End::Claimed, step, baseline));
            }
            // Browser faults, dialog loops and 5xx reads (see `faults`).
            if let Some(o) = self.after_step(live, step, &mut feedback).await? {
                return Ok((End::Stopped(o), step, baseline));
            }
            let was_on = std::mem::take(&mut obs.url);
            obs = match self.observe(live, step, "after").await? {
                Ok(o) => o,
                Err(e) => {
                    let o = self.browser_fault(live, step)?;
                    return Ok((
                        End::Stopped(o.unwrap_or(Outcome::SandboxFailed { reason: e })),
                        step,
                        baseline,
                    ));
                }
            };
            // A session that expired mid-run: the host signs in again (see `faults`).
            if let Some(o) = self
                .after_observe(live, m, step, &was_on, &mut obs, &mut feedback)
                .await?
            {
                return Ok((End::Stopped(o), step, baseline));
            }
        }
    }

    /// The host's own deterministic login: fill the fields from the broker, submit, check the
    /// visible proof of success. The model never sees a credential; the audit records the steps
    /// with values redacted.
    async fn host_login(
        &mut self,
        live: &mut Live,
        login: &airlock_core::manifest::LoginSection,
        timeout: Duration,
    ) -> Result<Result<(), String>, DriveError> {
        // Write-ahead like every action: signing in posts a form, so its intent is durable
        // before the first keystroke (crash recovery reports a login without a result).
        self.record(live, "login_started", json!({"url": login.url}), &[])?;
        let result = self.login_steps(live, login, timeout).await;
        let (ok, why) = match &result {
            Ok(()) => (true, None),
            Err(w) => (false, Some(w.clone())),
        };
        self.record(
            live,
            "login",
            json!({"url": login.url, "ok": ok, "error": why}),
            &[],
        )?;
        Ok(result)
    }

    async fn login_steps(
        &mut self,
        live: &mut Live,
        login: &airlock_core::manifest::LoginSection,
        timeout: Duration,
    ) -> Result<(), String> {
        let target_of =
            |f: &airlock_core::manifest::FieldRef| -> Result<airlock_core::Target, String> {
                match (&f.role, &f.name, &f.css) {
                    (Some(role), Some(name), None) => Ok(airlock_core::Target::Role {
                        role: role.clone(),
                        name: name.clone(),
                    }),
                    (None, None, Some(css)) => Ok(airlock_core::Target::Css(css.clone())),
                    _ => Err("a login field needs either role and name, or css".into()),
                }
            };
        let Live {
            sandbox, broker, ..
        } = live;
        let sb = sandbox.as_mut().ok_or("no sandbox")?;
        sb.execute(
            &Action::Navigate {
                url: login.url.clone(),
            },
            None,
        )
        .await
        .map_err(|e| e.to_string())?;
        let click = |t: airlock_core::Target| Action::Click {
            target: t,
            button: airlock_core::MouseButton::Left,
            count: 1,
            modifiers: airlock_core::Modifiers::default(),
        };
        for (field, value) in [
            (&login.username_field, &login.username),
            (&login.password_field, &login.password),
        ] {
            let t = target_of(field)?;
            let r = sb.resolve(&t, &[]).await.map_err(|e| e.to_string())?;
            sb.execute(&click(t), Some(&r))
                .await
                .map_err(|e| e.to_string())?;
            let focused = sb
                .focused()
                .await
                .map_err(|e| e.to_string())?
                .ok_or("the login field did not take focus")?;
            let (page, _) = sb.location().await.map_err(|e| e.to_string())?;
            let mut text = if value.starts_with("broker://") {
                let name = airlock_secrets::parse_handle(value).map_err(|e| e.to_string())?;
                broker
                    .authorize_typing(name, &focused, &page, &page)
                    .map_err(|e| e.to_string())?
                    .expose_str()
                    .to_string()
            } else {
                value.clone()
            };
            let typed = sb
                .execute(
                    &Action::Type {
                        target: None,
                        text: TypedText::Literal(text.clone()),
                    },
                    None,
                )
                .await;
            zeroize::Zeroize::zeroize(&mut text);
            typed.map_err(|e| e.to_string())?;
        }
        let t = target_of(&login.submit)?;
        let r = sb.resolve(&t, &[]).await.map_err(|e| e.to_string())?;
        sb.execute(&click(t), Some(&r))
            .await
            .map_err(|e| e.to_string())?;
        if let Some(text) = &login.success_text {
            let cond = airlock_core::WaitCondition::TextPresent { text: text.clone() };
            if !sb
                .wait_for(&cond, timeout)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("'{text}' did not appear after signing in"));
            }
        }
        if let Some(pattern) = &login.success_url {
            let cond = airlock_core::WaitCondition::UrlMatches {
                pattern: pattern.clone(),
            };
            if !sb
                .wait_for(&cond, timeout)
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!(
                    "the URL did not reach `{pattern}` after signing in"
                ));
            }
        }
        Ok(())
    }

    async fn verify(
        &mut self,
        live: &mut Live,
        spec: &RunSpec,
        baseline: &[(String, serde_json::Value)],
    ) -> Result<Vec<CriterionResult>, DriveError> {
        let Some(sb) = live.sandbox.as_mut() else {
            return Ok(vec![]);
        };
        let timeout = Duration::from_secs(spec.manifest.budgets.step_timeout_secs);
        let results = verify::check_all(
            &spec.manifest,
            sb,
            &spec.host_map,
            spec.sor_header.as_ref(),
            baseline,
            timeout,
        )
        .await;
        let passed = results.iter().filter(|r| r.passed).count();
        self.record(
            live,
            "verification",
            json!({"passed": passed, "total": results.len(), "criteria": &results}),
            &[],
        )?;
        for r in &results {
            self.reporter.line(&format!(
                "verify: {} {}",
                if r.passed { "PASS" } else { "FAIL" },
                r.detail
            ));
        }
        Ok(results)
    }

    /// The host's check right after a step of medium risk or above, before the model is asked
    /// again: the manifest's `[[checkpoints]]` for this step if any, otherwise the default
    /// rule that the page visibly changed. Returns what failed, in words for the model.
    #[allow(clippy::too_many_arguments)]
    async fn checkpoint(
        &mut self,
        live: &mut Live,
        m: &TaskManifest,
        step: u32,
        index: usize,
        decision: &Decision,
        subject: Option<&ElementFacts>,
        before: Option<u64>,
    ) -> Result<Option<String>, DriveError> {
        let Some(sb) = live.sandbox.as_mut() else {
            return Ok(None);
        };
        let (url, title) = sb.location().await.unwrap_or_default();
        let name = subject.map(|e| e.name.as_str());
        let rules: Vec<(usize, &airlock_core::manifest::CheckpointRule)> = m
            .checkpoints
            .iter()
            .enumerate()
            .filter(|(_, r)| r.applies(decision.effect, name))
            .collect();
        let timeout = Duration::from_secs(m.budgets.step_timeout_secs);
        let (rule, passed, detail) = if rules.is_empty() {
            // Unknown on either side (the page was navigating) counts as changed. A page may
            // react a little after it settled (a timer, a late response): give it a moment.
            let until = Instant::now() + timeout.min(CHANGE_GRACE);
            let changed = loop {
                let after = sb.fingerprint().await.ok();
                if before.is_none() || after.is_none() || before != after {
                    break true;
                }
                if Instant::now() >= until {
                    break false;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            };
            (
                "default: the page visibly changed".to_string(),
                changed,
                if changed {
                    json!("the page changed")
                } else {
                    json!("nothing visible changed on the page")
                },
            )
        } else {
            let mut results = Vec::new();
            for (_, r) in &rules {
                results.extend(
                    verify::check(
                        &r.expect,
                        sb,
                        &live.records.0,
                        live.records.1.as_ref(),
                        &[],
                        timeout,
                    )
                    .await,
                );
            }
            let ids: Vec<String> = rules
                .iter()
                .map(|(i, _)| format!("checkpoints[{i}]"))
                .collect();
            (
                ids.join(", "),
                results.iter().all(|r| r.passed),
                serde_json::to_value(&results).unwrap_or(json!(null)),
            )
        };
        self.record(
            live,
            "checkpoint",
            json!({"step": step, "index": index, "url": url, "title": title, "rule": rule, "passed": passed, "detail": detail}),
            &[],
        )?;
        if passed {
            return Ok(None);
        }
        let why = match &detail {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Array(rs) => rs
                .iter()
                .filter(|r| r["passed"] == false)
                .filter_map(|r| r["detail"].as_str())
                .collect::<Vec<_>>()
                .join("; "),
            _ => String::new(),
        };
        Ok(Some(format!(
            "checkpoint failed ({rule}): {why}; the step did not have the expected effect"
        )))
    }

    /// Resolve, gate, record, approve, execute, record: one action.
    async fn one_action(
        &mut self,
        live: &mut Live,
        step: u32,
        index: usize,
        action: &Action,
        obs: &Observation,
        m: &TaskManifest,
    ) -> Result<ActionEnd, DriveError> {
        let Some(sb) = live.sandbox.as_mut() else {
            return Ok(ActionEnd::Stop(Outcome::SandboxFailed {
                reason: "sandbox gone".into(),
            }));
        };
        // Ground the target and read the page's state as the host sees it now.
        let (page_url, _) = sb.location().await.unwrap_or_default();
        let resolved: Option<Result<Resolved, String>> = match action.target() {
            Some(t) => Some(sb.resolve(t, &obs.refs).await.map_err(|e| e.to_string())),
            None => None,
        };
        let focused = match action {
            Action::Type { target: None, .. } | Action::Key { .. } => {
                sb.focused().await.ok().flatten()
            }
            _ => None,
        };
        let element = resolved
            .as_ref()
            .and_then(|r| r.as_ref().ok())
            .map(|r| r.facts.clone());
        // Secrets: a placeholder is typed only into a field of the secret's kind, on a host in
        // its scope, in the top frame or a same-origin frame; a literal that looks like a
        // password (or contains a secret) is refused. The value is fetched here and used only
        // at dispatch; it is never recorded.
        let mut secret_denial: Option<(String, String)> = None;
        let mut substitute: Option<zeroize::Zeroizing<String>> = None;
        if let Action::Type { text, .. } = action {
            let field = element.as_ref().or(focused.as_ref());
            match (text, field) {
                (TypedText::Secret(name), Some(f))
                    if f.form.as_ref().is_some_and(|form| {
                        let dest = airlock_core::host::WebUrl::parse(&form.action)
                            .ok()
                            .map(|u| u.host);
                        !dest.is_some_and(|h| {
                            live.broker.hosts(name).is_some_and(|hs| hs.contains(&h))
                        })
                    }) =>
                {
                    // The field's form would send the value elsewhere: never type it.
                    secret_denial = Some((
                        "secret.form_posts_out_of_scope".into(),
                        format!(
                            "secret `{name}` is not typed into a form that posts outside its hosts"
                        ),
                    ))
                }
                (TypedText::Secret(name), Some(f)) => {
                    match live.broker.authorize_typing(name, f, &page_url, &page_url) {
                        Ok(v) => {
                            substitute = Some(zeroize::Zeroizing::new(v.expose_str().to_string()))
                        }
                        Err(d) => secret_denial = Some((d.rule().to_string(), d.to_string())),
                    }
                }
                (TypedText::Secret(name), None) => {
                    secret_denial = Some((
                        "secret.no_field".into(),
                        format!("secret `{name}` can only be typed into a focused field"),
                    ))
                }
                (TypedText::Literal(t), Some(f)) => {
                    if let Err(d) = live.broker.check_literal(t, f) {
                        secret_denial = Some((d.rule().to_string(), d.to_string()));
                    }
                }
                (TypedText::Literal(_), None) => {}
            }
        }
        // Uploads: only a declared file, into its declared input, on its declared host.
        if secret_denial.is_none() {
            secret_denial = uploads::denial(action, m, &page_url, element.as_ref());
        }
        let decision = match &resolved {
            _ if secret_denial.is_some() => {
                let (rule, why) = secret_denial.clone().unwrap_or_default();
                Decision {
                    verdict: Verdict::Deny,
                    effect: airlock_core::Effect::Draft,
                    tier: airlock_core::RiskTier::High,
                    rules: vec![rule],
                    reason: why,
                    scope: airlock_core::host::WebUrl::parse(&page_url)
                        .ok()
                        .map(|u| u.scope()),
                    read_as: None,
                }
            }
            Some(Err(why)) => Decision {
                verdict: Verdict::Deny,
                effect: airlock_core::Effect::Read,
                tier: airlock_core::RiskTier::High,
                rules: vec!["builtin.grounding.fail-closed".into()],
                reason: format!("target not resolved: {why}"),
                scope: None,
                read_as: None,
            },
            _ => decide(
                action,
                &GateContext {
                    manifest: m,
                    policy: &live.policy,
                    principal: &format!("agent:{}", live.run_id),
                    page_url: &page_url,
                    element: element.as_ref(),
                    focused: focused.as_ref(),
                    tainted: !live.findings.is_empty(),
                    step,
                    effects_done: &live.effects_done,
                },
            ),
        };
        // A submit whose earlier attempt has an unknown outcome is not resent on the policy's
        // word alone: a human confirms it (it may have gone through already).
        let mut decision = decision;
        if decision.is_executable()
            && matches!(
                decision.effect,
                airlock_core::Effect::Submit | airlock_core::Effect::Destructive
            )
            && decision
                .scope
                .as_ref()
                .is_some_and(|s| live.unknown_outcomes.contains(s))
        {
            decision.verdict = Verdict::NeedsApproval;
            decision.rules.push("builtin.retry.outcome-unknown".into());
            decision.reason = format!(
                "{}; an earlier attempt to {} has an unknown outcome and may have taken effect",
                decision.reason,
                decision.scope.as_deref().unwrap_or_default()
            );
        }
        let subject = element.as_ref().or(focused.as_ref());
        let page = WebUrl::parse(&obs.url).ok().map(|u| u.scope());
        let summary = describe(action, subject, page.as_deref(), decision.scope.as_deref());
        // WRITE-AHEAD: the decision is durable before anything can execute.
        let receipt = self.record(
            live,
            "decision",
            json!({
                "step": step,
                "index": index,
                "action": action_for_audit(action, subject),
                "summary": summary,
                "page": page_url,
                "element": facts_for_audit(element.as_ref()),
                "focused": facts_for_audit(focused.as_ref()),
                "decision": decision,
            }),
            &[],
        )?;
        let verdict_words = format!(
            "{} ({} risk, {})",
            decision.verdict, decision.tier, decision.effect
        );
        // The console line says what the page says (in `summary`) and, when a name or path
        // hid something, what Airlock read.
        let line_summary = match &decision.read_as {
            Some(r) => format!("{summary} [{r}]"),
            None => summary.clone(),
        };
        let authorized = match decision.verdict {
            Verdict::Deny => {
                // The deciding rules, not the classifier's findings, so a refusal says which rule.
                let by: Vec<&str> = decision
                    .rules
                    .iter()
                    .map(String::as_str)
                    .filter(|r| !r.starts_with("builtin.risk."))
                    .collect();
                self.reporter.line(&format!(
                    "step {step}: {line_summary} → DENIED{}: {}",
                    if by.is_empty() {
                        String::new()
                    } else {
                        format!(" by {}", by.join(", "))
                    },
                    decision.reason
                ));
                if let Some(kind) = severe_violation(&decision) {
                    // The agent itself tried to reach outside the task or to place a secret
                    // where it does not belong: recorded as a violation either way; the run is
                    // stopped and frozen unless the operator chose refusing (`[mcp]
                    // on_violation`, `budgets.freeze_on_violation`).
                    let stops = m.budgets.freeze_on_violation;
                    self.record(
                        live,
                        "violation",
                        json!({"step": step, "index": index, "kind": kind, "rules": decision.rules, "reason": decision.reason, "stopped": stops}),
                        &[],
                    )?;
                }
                if let Some(kind) =
                    severe_violation(&decision).filter(|_| m.budgets.freeze_on_violation)
                {
                    self.reporter.line(&format!(
                        "step {step}: severe violation ({kind}): the run is stopped and frozen"
                    ));
                    return Ok(ActionEnd::Stop(Outcome::Stopped {
                        by: "airlock".into(),
                        reason: format!("severe violation at step {step}: {}", decision.reason),
                    }));
                }
                return Ok(ActionEnd::Refused(format!(
                    "Action denied by Airlock: {} [{}]",
                    decision.reason,
                    decision.rules.join(", ")
                )));
            }
            Verdict::NeedsApproval => {
                let fields = element
                    .as_ref()
                    .and_then(|e| e.form.as_ref())
                    .map(|f| f.fields.clone())
                    .unwrap_or_default();
                let req = ApprovalRequest {
                    run_id: live.run_id.clone(),
                    step,
                    task: m.task.goal.clone(),
                    summary: summary.clone(),
                    effect: decision.effect.to_string(),
                    tier: decision.tier.to_string(),
                    reason: decision.reason.clone(),
                    rules: decision.rules.clone(),
                    fields,
                    findings: finding_lines(&live.findings),
                    read_as: decision.read_as.clone(),
                };
                let (answer, approval) =
                    self.ask_human(live, step, index, &req, None, None).await?;
                match answer {
                    ApprovalOutcome::Denied { by, reason } => {
                        self.reporter.line(&format!(
                            "step {step}: {line_summary} → needs approval: DENIED by {by}"
                        ));
                        return Ok(ActionEnd::Stop(Outcome::ApprovalDenied {
                            step,
                            by,
                            reason,
                        }));
                    }
                    ApprovalOutcome::Stopped { by, reason } => {
                        self.reporter.line(&format!(
                            "step {step}: {line_summary} → needs approval: STOPPED by {by} while waiting"
                        ));
                        return Ok(ActionEnd::Stop(Outcome::Stopped { by, reason }));
                    }
                    ApprovalOutcome::Approved { by, .. } => {
                        self.reporter.line(&format!(
                            "step {step}: {line_summary} → needs approval: approved by {by}"
                        ));
                        Authorized::approved(action, &decision, &receipt, &approval)
                    }
                }
            }
            Verdict::Allow | Verdict::Checkpoint => {
                self.reporter
                    .line(&format!("step {step}: {line_summary} → {verdict_words}"));
                Authorized::recorded(action, &decision, &receipt)
            }
        };
        let Some(auth) = authorized else {
            return Ok(ActionEnd::Refused("internal: action not authorized".into()));
        };
        // Actions-per-minute budget, counted over executed actions.
        let now = Instant::now();
        while live
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > Duration::from_secs(60))
        {
            live.recent.pop_front();
        }
        if live.recent.len() >= m.budgets.max_actions_per_minute as usize {
            return Ok(ActionEnd::Stop(Outcome::BudgetExhausted {
                what: format!("{} actions per minute", m.budgets.max_actions_per_minute),
            }));
        }
        live.recent.push_back(now);
        let resolved_ok = resolved.and_then(|r| r.ok());
        // The request this step was authorised to send (a form's POST) may go out while it
        // executes; the same request from the page at any other time is refused.
        let _armed = live
            .requests
            .arm(action, decision.effect, decision.scope.as_deref());
        // Steps of medium risk and above are checked right after they ran: the state the
        // page was in before is the baseline of the default check.
        let checked = decision.tier >= airlock_core::RiskTier::Medium;
        let before = match live.sandbox.as_mut() {
            Some(sb) if checked => sb.fingerprint().await.ok(),
            _ => None,
        };
        let idempotent = is_idempotent(action, &decision);
        let (decision_seq, approval_seq) = (auth.decision_seq, auth.approval_seq);
        let mut result = execute(
            live,
            auth,
            resolved_ok.as_ref(),
            substitute.as_deref().map(String::as_str),
        )
        .await;
        // Only idempotent reads are retried, under the same recorded decision.
        let mut attempt = 1u32;
        while attempt < MAX_ATTEMPTS && idempotent && matches!(&result, Err(e) if is_transient(e)) {
            let why = result.as_ref().err().map(|e| e.to_string());
            attempt += 1;
            self.record(
                live,
                "retry",
                json!({"step": step, "index": index, "decision_seq": decision_seq, "attempt": attempt, "after": why}),
                &[],
            )?;
            let again = Authorized {
                action,
                decision_seq,
                approval_seq,
            };
            result = execute(live, again, resolved_ok.as_ref(), None).await;
        }
        // Requests the page sent in answer to this step and the gate held: a human decides.
        let held = self.review_held(live, m, step, index, &summary).await?;
        let (ok, note) = match &result {
            Ok(n) if !held.notes.is_empty() => {
                let said = held.notes.join("; ");
                let n = if n.contains(airlock_sandbox::HELD_NOTE) {
                    n.replace(airlock_sandbox::HELD_NOTE, &said)
                } else {
                    format!("{n}; {said}")
                };
                (held.stop.is_none(), n)
            }
            Ok(n) => (true, n.clone()),
            Err(e) => (false, e.to_string()),
        };
        // A state-changing step that failed or never settled may still have reached the
        // server: its outcome is unknown, and it is not sent again without a human.
        let unknown = matches!(
            decision.effect,
            airlock_core::Effect::Submit | airlock_core::Effect::Destructive
        ) && (!ok || airlock_sandbox::unsettled(&note));
        if unknown {
            if let Some(s) = &decision.scope {
                live.unknown_outcomes.push(s.clone());
            }
        }
        self.record(
            live,
            "action_result",
            json!({"step": step, "index": index, "decision_seq": receipt.seq, "ok": ok, "note": note, "attempts": attempt, "outcome_unknown": unknown}),
            &[],
        )?;
        if let Some(stop) = held.stop {
            return Ok(ActionEnd::Stop(stop));
        }
        let note = if unknown {
            format!("{note}. Its outcome is unknown: the request may have reached the server. Airlock does not send it again on its own; check the page before proposing it again (a repeat needs a human's confirmation).")
        } else {
            note
        };
        let (ok, note) = if checked && ok {
            match self
                .checkpoint(live, m, step, index, &decision, subject, before)
                .await?
            {
                Some(failure) => (false, format!("{note}; {failure}")),
                None => (true, note),
            }
        } else {
            (ok, note)
        };
        if ok {
            if !live.effects_done.contains(&decision.effect) {
                live.effects_done.push(decision.effect);
            }
            Ok(ActionEnd::Ran(note))
        } else {
            self.reporter
                .line(&format!("step {step}:   failed: {note}"));
            Ok(ActionEnd::Failed(note))
        }
    }
}

/// The only way the engine drives the sandbox.
async fn execute(
    live: &mut Live,
    auth: Authorized<'_>,
    resolved: Option<&Resolved>,
    secret: Option<&str>,
) -> Result<String, airlock_sandbox::SandboxError> {
    let Some(sb) = live.sandbox.as_mut() else {
        return Err(airlock_sandbox::SandboxError::Page("sandbox gone".into()));
    };
    tracing::debug!(decision = auth.decision_seq, approval = ?auth.approval_seq, "executing");
    match (auth.action, secret) {
        // The authorised placeholder becomes its value only here, at dispatch.
        (
            Action::Type {
                target,
                text: TypedText::Secret(_),
            },
            Some(value),
        ) => {
            let real = Action::Type {
                target: target.clone(),
                text: TypedText::Literal(value.to_string()),
            };
            let r = sb.execute(&real, resolved).await;
            if let Action::Type {
                text: TypedText::Literal(mut v),
                ..
            } = real
            {
                zeroize::Zeroize::zeroize(&mut v);
            }
            r
        }
        (action, _) => sb.execute(action, resolved).await,
    }
}

/// Secret denials that mean a credential would land outside its scope. A typo in a secret's
/// name or a placeholder aimed at no field is a mistake, told to the model, not a violation.
const SEVERE_SECRET_RULES: &[&str] = &[
    "secret.host_not_in_scope",
    "secret.form_posts_out_of_scope",
    "secret.cross_origin_frame",
    "secret.page_not_top_frame",
    "secret.literal_contains_secret",
];

/// Whether a denial is of the severe kind that stops and freezes the run at once: the agent
/// proposed reaching a host outside the task, or typing a secret out of its scope. Other
/// denials (an undeclared effect on an allowed host, an untrusted target) are told to the
/// model and count against `max_denials`. Requests a *page* makes on its own are refused by
/// interception and the proxy, recorded, and never stop the run: the page is not the agent.
fn severe_violation(d: &Decision) -> Option<&'static str> {
    if d.rules
        .iter()
        .any(|r| r == "airlock.forbid-outside-domains")
    {
        Some("egress outside the task's domains")
    } else if d
        .rules
        .iter()
        .any(|r| SEVERE_SECRET_RULES.contains(&r.as_str()))
    {
        Some("secret out of scope")
    } else {
        None
    }
}

/// Marks each snapshot line that shows text the page hides from people (zero-size, transparent,
/// same colour as its background, off-screen): the model reads it as `[hidden from view]`
/// content, never as what the page says to a person.
fn mark_unseen(snapshot: &str, texts: &[airlock_core::observation::PageText]) -> String {
    const MARK: &str = "  [hidden from view: a person does not see this]";
    let unseen: Vec<String> = texts
        .iter()
        .filter(|t| {
            let loc = t.location.rsplit(':').next().unwrap_or_default();
            loc == "hidden" || loc == "offscreen"
        })
        .map(|t| t.text.chars().take(60).collect::<String>())
        .map(|t| t.trim().to_string())
        .filter(|t| t.chars().count() >= 8)
        .take(500)
        .collect();
    if unseen.is_empty() {
        return snapshot.to_string();
    }
    let mut out = String::with_capacity(snapshot.len());
    for line in snapshot.lines() {
        out.push_str(line);
        if unseen.iter().any(|u| line.contains(u.as_str())) {
            out.push_str(MARK);
        }
        out.push('\n');
    }
    out
}

/// How long the default checkpoint waits for a visible change after a step settled.
const CHANGE_GRACE: Duration = Duration::from_secs(2);

/// Attempts an idempotent read gets before its failure is reported (the first run included).
const MAX_ATTEMPTS: u32 = 2;

/// Whether running `action` again has the same effect as running it once: loading a page,
/// waiting, looking. Scrolls, clicks and keys are not (twice is not once), and nothing with an
/// effect above `read` is.
fn is_idempotent(action: &Action, d: &Decision) -> bool {
    d.effect == airlock_core::Effect::Read
        && matches!(
            action,
            Action::Navigate { .. } | Action::Wait { .. } | Action::Screenshot
        )
}

/// Failures worth one more try: the browser did not answer in time, or the load failed on the
/// way. Grounding failures and drift are not retried: the model must look again.
/// A refusal (interception blocked the load) is never transient: trying again would only ask
/// again. A server that answered 5xx is not retried here: `faults::retry_server_error` is the
/// one place that reloads such a page (at most twice), whoever loaded it.
/// Looks at a page whose renderer is being swapped: 0.3 + 0.6 + … + 1.8 s, about 6 s in all.
const OBSERVE_SWAP_ATTEMPTS: u32 = 7;

/// Whether CDP said the page's renderer is not there right now (it is being replaced).
fn renderer_swapping(e: &airlock_sandbox::SandboxError) -> bool {
    let text = e.to_string();
    [
        "Not attached to an active page",
        "No target with given id",
        "Target closed",
    ]
    .iter()
    .any(|m| text.contains(m))
}

fn is_transient(e: &airlock_sandbox::SandboxError) -> bool {
    use airlock_sandbox::SandboxError as E;
    match e {
        E::Cdp(_) => true,
        E::Navigation(why) => [
            "ERR_CONNECTION_",
            "ERR_TIMED_OUT",
            "ERR_EMPTY_RESPONSE",
            "ERR_NETWORK_CHANGED",
        ]
        .iter()
        .any(|t| why.contains(t)),
        _ => false,
    }
}

/// Injection findings as a reviewer reads them: pattern, where, excerpt.
fn finding_lines(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} ({}): {}", f.pattern, f.location, f.excerpt))
        .collect()
}

type Baseline = Vec<(String, serde_json::Value)>;

/// How the loop ended: the model claimed done (verify decides), or something stopped it.
enum End {
    Claimed,
    Stopped(Outcome),
}

enum ActionEnd {
    Ran(String),
    Refused(String),
    Failed(String),
    Stop(Outcome),
}

enum DriveError {
    Audit(AuditError),
}

impl From<AuditError> for DriveError {
    fn from(e: AuditError) -> Self {
        DriveError::Audit(e)
    }
}

/// `running pid=N start=T`: who owns a running run.
fn owner_status() -> String {
    let pid = std::process::id();
    format!(
        "running pid={pid} start={}",
        process_start(pid).unwrap_or(0)
    )
}

/// A process's start time (clock ticks since boot), to tell a live owner from a reused pid.
fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.get(stat.rfind(')')? + 2..)?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process recorded in a `running pid=N start=T` status is still alive.
fn owner_alive(status: &str) -> bool {
    let field = |k: &str| {
        status
            .split_whitespace()
            .find_map(|w| w.strip_prefix(k))
            .and_then(|v| v.parse::<u64>().ok())
    };
    match (field("pid="), field("start=")) {
        (Some(pid), Some(start)) => u32::try_from(pid).ok().and_then(process_start) == Some(start),
        _ => false,
    }
}

/// What crash recovery did for one orphaned run.
#[derive(Debug, Clone, Serialize)]
pub struct Recovery {
    pub run_id: String,
    pub last_step: u64,
    /// Decisions recorded as executable or approved whose result was never recorded.
    pub outcome_unknown: Vec<String>,
    pub teardown: TeardownReport,
}

/// Finds runs whose owning `airlock` process died, tears down what survived of their sandbox,
/// appends a recovery event and seals them as aborted. Runs owned by a live process are left
/// alone. Nothing is retried: an action whose outcome was never recorded is reported as
/// "outcome unknown".
pub async fn recover_orphans(
    audit: &dyn AuditStore,
    scratch_root: &std::path::Path,
) -> Result<Vec<Recovery>, AuditError> {
    let mut out = Vec::new();
    for run in audit.runs()? {
        if run.sealed || !run.status.starts_with("running") || owner_alive(&run.status) {
            continue;
        }
        let events = audit.events(&run.run_id)?;
        let last_step = events
            .iter()
            .filter_map(|e| e.payload.get("step").and_then(serde_json::Value::as_u64))
            .max()
            .unwrap_or(0);
        let executed: std::collections::BTreeSet<u64> = events
            .iter()
            .filter(|e| e.kind == "action_result")
            .filter_map(|e| {
                e.payload
                    .get("decision_seq")
                    .and_then(serde_json::Value::as_u64)
            })
            .collect();
        let outcome_unknown: Vec<String> = events
            .iter()
            .filter(|e| e.kind == "decision")
            .filter(|e| {
                let v = e.payload["decision"]["verdict"].as_str().unwrap_or("");
                let approved = events.iter().any(|a| {
                    a.kind == "approval"
                        && a.seq > e.seq
                        && a.payload["step"] == e.payload["step"]
                        && a.payload["index"] == e.payload["index"]
                        && a.payload["answer"]["answer"] == "approved"
                });
                (v == "allow" || v == "checkpoint" || approved) && !executed.contains(&e.seq)
            })
            .map(|e| {
                format!(
                    "step {}: {} (outcome unknown; not retried)",
                    e.payload["step"],
                    e.payload["summary"].as_str().unwrap_or("?")
                )
            })
            .collect();
        let mut outcome_unknown = outcome_unknown;
        outcome_unknown.extend(faults::host_actions_unknown(&events));
        let teardown = airlock_sandbox::launch::reap_orphan(&run.run_id, scratch_root).await;
        audit.append(
            &run.run_id,
            "recovered",
            &json!({
                "reason": "the airlock process that owned this run died",
                "owner": run.status,
                "last_step": last_step,
                "outcome_unknown": outcome_unknown,
                "teardown": teardown,
            }),
            &[],
        )?;
        audit.seal(
            &run.run_id,
            &json!({"result": {"outcome": "aborted", "reason": format!("host crashed at step {last_step}")}, "steps": last_step}),
        )?;
        out.push(Recovery {
            run_id: run.run_id,
            last_step,
            outcome_unknown,
            teardown,
        });
    }
    Ok(out)
}

/// Resolves `[hosts]` entries that are addresses; `bundled-portal` entries are filled in by the
/// caller that started the portal.
pub fn static_host_map(m: &TaskManifest) -> BTreeMap<HostName, SocketAddr> {
    m.hosts
        .iter()
        .filter_map(|(h, v)| Some((HostName::parse(h).ok()?, v.parse().ok()?)))
        .collect()
}

/// Parses a URL for display helpers outside this crate.
pub fn scope_of(url: &str) -> Option<String> {
    WebUrl::parse(url).ok().map(|u| u.scope())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_are_right() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_780), (2026, 11, 23));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }

    #[test]
    fn password_typing_is_not_written_to_the_audit() {
        let el = ElementFacts {
            input_type: Some("password".into()),
            ..Default::default()
        };
        let a = Action::Type {
            target: None,
            text: TypedText::Literal("hunter2".into()),
        };
        let v = action_for_audit(&a, Some(&el));
        assert!(!v.to_string().contains("hunter2"));
        assert!(!describe(&a, Some(&el), None, None).contains("hunter2"));
    }

    #[test]
    fn a_step_says_where_it_is_taken_and_where_its_effect_lands() {
        let el = ElementFacts {
            role: "button".into(),
            name: "Submit note".into(),
            ..Default::default()
        };
        let click = Action::Click {
            target: airlock_core::Target::Point(airlock_core::Point { x: 1.0, y: 2.0 }),
            button: airlock_core::MouseButton::Left,
            count: 1,
            modifiers: Default::default(),
        };
        let page = "incidents.example/incidents/INC-2048";
        let notes = "incidents.example/incidents/INC-2048/notes";
        assert_eq!(
            describe(&click, Some(&el), Some(page), Some(notes)),
            "Click button 'Submit note' on incidents.example/incidents/INC-2048 \
             (effect on incidents.example/incidents/INC-2048/notes)"
        );
        // Where the effect is the page itself, it is said once.
        assert_eq!(
            describe(&click, Some(&el), Some(page), Some(page)),
            "Click button 'Submit note' on incidents.example/incidents/INC-2048"
        );
    }

    #[test]
    fn redaction_reaches_nested_strings() {
        let v = json!({"raw": {"input": {"text": "pw123"}}, "list": ["a pw123 b"]});
        let r = redact_json(v, &["pw123".to_string()]);
        assert!(!r.to_string().contains("pw123"));
        assert_eq!(r["list"][0], "a [redacted] b");
    }

    #[test]
    fn authorization_needs_a_recorded_executable_decision() {
        let a = Action::Screenshot;
        let mut d = Decision {
            verdict: Verdict::Deny,
            effect: airlock_core::Effect::Read,
            tier: airlock_core::RiskTier::Low,
            rules: vec![],
            reason: String::new(),
            scope: None,
            read_as: None,
        };
        let r = EventRef {
            seq: 5,
            hash: "h".into(),
        };
        assert!(Authorized::recorded(&a, &d, &r).is_none());
        d.verdict = Verdict::NeedsApproval;
        assert!(Authorized::recorded(&a, &d, &r).is_none());
        let earlier = EventRef {
            seq: 4,
            hash: "x".into(),
        };
        assert!(Authorized::approved(&a, &d, &r, &earlier).is_none());
        let later = EventRef {
            seq: 6,
            hash: "y".into(),
        };
        assert!(Authorized::approved(&a, &d, &r, &later).is_some());
        d.verdict = Verdict::Allow;
        assert!(Authorized::recorded(&a, &d, &r).is_some());
    }
}
