//! Scenario files: what one scenario runs and what it expects, loaded and validated before any
//! browser starts.
//!
//! A suite is a folder; every sub-folder holding a `scenario.toml` is one scenario (sorted by
//! name, so runs are reproducible). The scenario names a task manifest (shared within a suite to
//! stay DRY), a transcript (a file, or inline `script` lines), the approval mode, the expected
//! outcome and decisions, the attack's goal conditions checked on the portal's system of record,
//! and optional ground truth for grounding accuracy. See `docs/eval.md` for the format.

use airlock_core::manifest::TaskManifest;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::EvalError;

/// Name of the file that makes a folder a scenario.
pub const SCENARIO_FILE: &str = "scenario.toml";

/// Benign work or an attack: the two halves of the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Benign,
    Attack,
}

/// Who answers approval requests. A careless approve-all reviewer is the default: the claim under
/// test is architectural, not "a human caught it".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Approvals {
    #[default]
    ApproveAll,
    Deny,
}

/// How a run must end (the engine's `Outcome` tags).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExpectedOutcome {
    Succeeded,
    NotVerified,
    ApprovalDenied,
    BudgetExhausted,
    ProviderFailed,
    SandboxFailed,
    Stopped,
}

impl ExpectedOutcome {
    /// The tag the engine's `Outcome` serialises to.
    pub fn tag(self) -> &'static str {
        match self {
            ExpectedOutcome::Succeeded => "succeeded",
            ExpectedOutcome::NotVerified => "not_verified",
            ExpectedOutcome::ApprovalDenied => "approval_denied",
            ExpectedOutcome::BudgetExhausted => "budget_exhausted",
            ExpectedOutcome::ProviderFailed => "provider_failed",
            ExpectedOutcome::SandboxFailed => "sandbox_failed",
            ExpectedOutcome::Stopped => "stopped",
        }
    }
}

/// A decision the run must contain: at `step` (any step when absent), naming a rule whose id
/// starts with `reason` (the reason class, e.g. `airlock.forbid-outside-domains`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionExpect {
    pub step: Option<u32>,
    pub reason: Option<String>,
}

/// What the host must have done.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Expect {
    pub outcome: Option<ExpectedOutcome>,
    /// Any one of these outcomes (for an attack whose run may end in more than one honest way);
    /// instead of `outcome`.
    #[serde(default)]
    pub outcome_any: Vec<ExpectedOutcome>,
    /// Steps that must be denied.
    #[serde(default)]
    pub denied: Vec<DecisionExpect>,
    /// Steps that must ask for approval.
    #[serde(default)]
    pub approval: Vec<DecisionExpect>,
    /// Requests the browser must have refused (URL substrings of `intercept` events).
    #[serde(default)]
    pub blocked: Vec<String>,
    /// Hosts the egress proxy must have refused.
    #[serde(default)]
    pub refused_at_proxy: Vec<String>,
    /// Whether the run must (or must not) have been tainted by instruction-like content.
    pub tainted: Option<bool>,
    /// Whether at least one model output must have been rejected as unusable.
    pub proposal_rejected: Option<bool>,
    /// Whether the popup closer must have closed at least one tab.
    pub popup_closed: Option<bool>,
    /// Whether at least one download must have been quarantined and hashed.
    pub download_quarantined: Option<bool>,
    /// Whether every action that ran must have succeeded (`action_result` ok).
    pub actions_ok: Option<bool>,
    /// The URL the last observation must start with (where the agent ended up).
    pub final_url: Option<String>,
}

/// An attack's goal, stated as the condition that must still hold afterwards ("no request
/// reached evil.example"). If any fails, the attack succeeded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Goal {
    /// No request for `host` reached the portal (its request log records every Host).
    NoRequestToHost { host: String },
    /// Every request in the portal's log was for one of `hosts`.
    OnlyHosts { hosts: Vec<String> },
    /// No request with `method` (any when absent) for a path starting with `path` arrived.
    NoRequest {
        method: Option<String>,
        path: String,
    },
    /// The system-of-record `record` (e.g. `/_sor/incidents/INC-9911`) is exactly as before.
    RecordUnchanged { record: String },
    /// The attacker's site received nothing (`/_sor/stolen` is empty).
    NothingStolen,
    /// The UDP canary (`{udp}` in the script or start URL) received no datagram.
    NoUdp,
    /// The bundled portal's test password appears in no audit event.
    SecretNotInAudit,
    /// No download completed into the run's quarantine.
    NoDownload,
}

/// What the element a step acted on must be (grounding ground truth).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundTruth {
    pub step: u32,
    /// The accessible name the host must have resolved.
    pub name: Option<String>,
    /// A substring of the resolved link's href or form's action.
    pub target_contains: Option<String>,
}

/// One `scenario.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    pub kind: Kind,
    #[serde(default)]
    pub category: String,
    #[serde(default)]
    pub description: String,
    /// Task manifest, relative to the scenario folder.
    pub task: PathBuf,
    /// Transcript file, relative to the scenario folder.
    pub transcript: Option<PathBuf>,
    /// Inline transcript lines (instead of `transcript`).
    pub script: Option<Vec<String>>,
    /// A live provider (`anthropic:MODEL`, …) instead of a transcript.
    pub model: Option<String>,
    /// Overrides the manifest's start URL (`{portal}` and `{udp}` are substituted).
    pub start_url: Option<String>,
    /// Overrides the manifest's `budgets.step_timeout_secs`.
    pub step_timeout_secs: Option<u64>,
    /// Overrides the manifest's `portal.spinner_ms`.
    pub spinner_ms: Option<u64>,
    #[serde(default)]
    pub approvals: Approvals,
    /// Run without namespaces (the operator's audited `--insecure-no-sandbox`).
    #[serde(default)]
    pub insecure_no_sandbox: bool,
    /// An attack Airlock does not stop yet, with the reason. Reported on its own; never fails
    /// the suite, and says so when it starts holding.
    pub known_gap: Option<String>,
    /// An attack scenario whose obedient agent also does the legitimate task: counts towards
    /// utility under attack.
    #[serde(default)]
    pub utility: bool,
    #[serde(default)]
    pub expect: Expect,
    #[serde(default)]
    pub goal: Vec<Goal>,
    #[serde(default)]
    pub ground_truth: Vec<GroundTruth>,
}

/// Where the model's proposals come from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// Transcript lines, placeholders not yet substituted.
    Script(Vec<String>),
    /// A provider spec for `airlock_providers::from_spec`.
    Live(String),
}

/// A loaded, validated scenario.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub dir: PathBuf,
    pub file: ScenarioFile,
    pub manifest: TaskManifest,
    pub source: Source,
}

impl Scenario {
    /// Reads and validates `dir/scenario.toml`, its manifest and its transcript.
    pub fn load(dir: &Path) -> Result<Scenario, EvalError> {
        let path = dir.join(SCENARIO_FILE);
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = read(&path)?;
        let file: ScenarioFile = toml::from_str(&text).map_err(|e| EvalError::Invalid {
            path: path.clone(),
            why: e.to_string(),
        })?;
        let invalid = |why: String| EvalError::Invalid {
            path: path.clone(),
            why,
        };
        let task_path = dir.join(&file.task);
        let mut manifest =
            TaskManifest::from_toml(&read(&task_path)?).map_err(|e| EvalError::Invalid {
                path: task_path.clone(),
                why: e.to_string(),
            })?;
        if let Some(secs) = file.step_timeout_secs {
            manifest.budgets.step_timeout_secs = secs;
        }
        if let Some(ms) = file.spinner_ms {
            manifest.portal.spinner_ms = ms;
        }
        if !manifest.uses_bundled_portal() {
            return Err(invalid(format!(
                "task `{}` maps no host to `bundled-portal`; scenarios run against a fresh \
                 bundled portal so that their goals can be checked on its system of record",
                file.task.display()
            )));
        }
        let source = match (&file.transcript, &file.script, &file.model) {
            (Some(t), None, None) => {
                Source::Script(read(&dir.join(t))?.lines().map(str::to_string).collect())
            }
            (None, Some(lines), None) => Source::Script(lines.clone()),
            (None, None, Some(m)) => Source::Live(m.clone()),
            (None, None, None) => {
                return Err(invalid(
                    "no `transcript`, `script` or `model`: nothing would propose actions".into(),
                ))
            }
            _ => {
                return Err(invalid(
                    "give exactly one of `transcript`, `script` and `model`".into(),
                ))
            }
        };
        if file.kind == Kind::Attack && file.goal.is_empty() {
            return Err(invalid(
                "an attack scenario needs at least one `[[goal]]`: without it the attack's \
                 success cannot be measured"
                    .into(),
            ));
        }
        if file.kind == Kind::Benign && file.known_gap.is_some() {
            return Err(invalid("`known_gap` is for attack scenarios only".into()));
        }
        if file.utility && file.kind != Kind::Attack {
            return Err(invalid(
                "`utility` marks attack scenarios that also do the task".into(),
            ));
        }
        if file.expect.outcome.is_none() == file.expect.outcome_any.is_empty() {
            return Err(invalid(
                "give exactly one of `[expect] outcome` and `[expect] outcome_any`".into(),
            ));
        }
        let uses_udp = file.goal.contains(&Goal::NoUdp);
        let mentions_udp = file
            .start_url
            .as_deref()
            .is_some_and(|u| u.contains("{udp}"))
            || matches!(&source, Source::Script(l) if l.iter().any(|x| x.contains("{udp}")));
        if uses_udp != mentions_udp {
            return Err(invalid(
                "the `no_udp` goal and a `{udp}` placeholder go together".into(),
            ));
        }
        Ok(Scenario {
            name,
            dir: dir.to_path_buf(),
            file,
            manifest,
            source,
        })
    }
}

fn read(path: &Path) -> Result<String, EvalError> {
    std::fs::read_to_string(path).map_err(|source| EvalError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Loads every scenario of the suite at `dir` whose name contains `filter` (all when empty).
pub fn load_suite(dir: &Path, filter: &str) -> Result<Vec<Scenario>, EvalError> {
    let entries = std::fs::read_dir(dir).map_err(|source| EvalError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut dirs: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(SCENARIO_FILE).is_file())
        .collect();
    dirs.sort();
    let scenarios = dirs
        .iter()
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().contains(filter))
        })
        .map(|d| Scenario::load(d))
        .collect::<Result<Vec<_>, _>>()?;
    if scenarios.is_empty() {
        return Err(EvalError::Empty {
            dir: dir.to_path_buf(),
            filter: filter.to_string(),
        });
    }
    Ok(scenarios)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]
mod tests {
    use super::*;

    const TASK: &str = r#"
[task]
name = "t"
goal = "g"
start_url = "http://incidents.example/incidents"
[scope]
domains = ["incidents.example"]
[hosts]
"incidents.example" = "bundled-portal"
[[effects]]
host = "incidents.example"
paths = ["/incidents"]
allow = ["read"]
[[acceptance]]
kind = "text_present"
text = "x"
"#;

    fn scenario(dir: &Path, name: &str, text: &str) -> PathBuf {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(SCENARIO_FILE), text).unwrap();
        d
    }

    fn suite() -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("task.toml"), TASK).unwrap();
        t
    }

    #[test]
    fn loads_an_inline_script_and_applies_overrides() {
        let t = suite();
        let d = scenario(
            t.path(),
            "a",
            "kind = \"benign\"\ntask = \"../task.toml\"\nscript = ['{\"action\":\"screenshot\"}']\nstep_timeout_secs = 3\n[expect]\noutcome = \"not_verified\"\n",
        );
        let s = Scenario::load(&d).unwrap();
        assert_eq!(s.name, "a");
        assert_eq!(s.manifest.budgets.step_timeout_secs, 3);
        assert_eq!(
            s.source,
            Source::Script(vec!["{\"action\":\"screenshot\"}".into()])
        );
        assert_eq!(s.file.approvals, Approvals::ApproveAll);
    }

    #[test]
    fn an_attack_without_a_goal_is_refused_with_the_file_named() {
        let t = suite();
        let d = scenario(
            t.path(),
            "a",
            "kind = \"attack\"\ntask = \"../task.toml\"\nscript = []\n[expect]\noutcome = \"not_verified\"\n",
        );
        let e = Scenario::load(&d).unwrap_err().to_string();
        assert!(e.contains("at least one `[[goal]]`"), "{e}");
        assert!(e.contains("scenario.toml"), "{e}");
    }

    #[test]
    fn unknown_fields_and_missing_sources_are_refused() {
        let t = suite();
        let d = scenario(
            t.path(),
            "typo",
            "kind = \"benign\"\ntask = \"../task.toml\"\nscript = []\nexpcet = 1\n",
        );
        assert!(Scenario::load(&d)
            .unwrap_err()
            .to_string()
            .contains("expcet"));
        let d = scenario(
            t.path(),
            "none",
            "kind = \"benign\"\ntask = \"../task.toml\"\n[expect]\noutcome = \"succeeded\"\n",
        );
        assert!(Scenario::load(&d)
            .unwrap_err()
            .to_string()
            .contains("nothing would propose"));
        let d = scenario(
            t.path(),
            "noexpect",
            "kind = \"benign\"\ntask = \"../task.toml\"\nscript = []\n",
        );
        assert!(Scenario::load(&d)
            .unwrap_err()
            .to_string()
            .contains("outcome"));
    }

    #[test]
    fn the_udp_goal_needs_its_placeholder() {
        let t = suite();
        let d = scenario(
            t.path(),
            "u",
            "kind = \"attack\"\ntask = \"../task.toml\"\nscript = []\n[expect]\noutcome = \"not_verified\"\n[[goal]]\nkind = \"no_udp\"\n",
        );
        assert!(Scenario::load(&d)
            .unwrap_err()
            .to_string()
            .contains("{udp}"));
    }

    #[test]
    fn a_suite_is_sorted_filtered_and_never_empty() {
        let t = suite();
        for n in ["b-two", "a-one", "c-three"] {
            scenario(
                t.path(),
                n,
                "kind = \"benign\"\ntask = \"../task.toml\"\nscript = []\n[expect]\noutcome = \"not_verified\"\n",
            );
        }
        let all: Vec<String> = load_suite(t.path(), "")
            .unwrap()
            .into_iter()
            .map(|s| s.name)
            .collect();
        assert_eq!(all, ["a-one", "b-two", "c-three"]);
        assert_eq!(load_suite(t.path(), "two").unwrap().len(), 1);
        assert!(matches!(
            load_suite(t.path(), "zzz"),
            Err(EvalError::Empty { .. })
        ));
    }
}
