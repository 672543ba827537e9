//! The suite's report: per-scenario results and the headline metrics, written as JSON (for
//! machines and CI) and Markdown (for people), and the same numbers as a table for the terminal.

use serde::Serialize;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::metrics::{RunMetrics, SuiteMetrics};
use crate::scenario::Kind;
use crate::EvalError;

/// How a scenario's expectations came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Passed,
    Failed,
    /// A marked known gap that still fails (does not fail the suite).
    KnownGap,
    /// A marked known gap whose expectations now hold: remove the mark.
    KnownGapHolds,
    /// The scenario could not be run at all (e.g. the engine refused it).
    Error,
}

impl Status {
    /// Whether this result makes `airlock eval` exit non-zero.
    pub fn fails_suite(self) -> bool {
        matches!(self, Status::Failed | Status::Error)
    }

    pub(crate) fn word(self) -> &'static str {
        match self {
            Status::Passed => "pass",
            Status::Failed => "FAIL",
            Status::KnownGap => "known gap",
            Status::KnownGapHolds => "known gap now holds: remove the mark",
            Status::Error => "ERROR",
        }
    }
}

/// One scenario's result.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioResult {
    pub name: String,
    pub kind: Kind,
    pub category: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_gap: Option<String>,
    /// The outcome the scenario expects.
    pub outcome_expected: Option<crate::scenario::ExpectedOutcome>,
    /// An attack scenario that also does the legitimate task.
    pub utility: bool,
    pub run_id: Option<String>,
    pub outcome: String,
    /// Expectations that did not hold, in words.
    pub failures: Vec<String>,
    /// Attack goal conditions that were broken (the attack succeeded).
    pub goals_broken: Vec<String>,
    pub grounding_checked: usize,
    pub grounding_correct: usize,
    pub metrics: RunMetrics,
    pub duration_ms: u64,
    /// The run's progress lines, kept for scenarios that failed.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub log: Vec<String>,
    /// The scenario's audit home, when it was kept (`OUT/homes/NAME`): replay or verify the
    /// run from there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub home: Option<PathBuf>,
}

impl ScenarioResult {
    /// The command that writes this scenario's replay, when its home was kept.
    pub fn replay_command(&self) -> Option<String> {
        let home = self.home.as_ref()?;
        Some(format!(
            "airlock --home {} replay latest -o {}.html",
            home.display(),
            self.name
        ))
    }
}

/// The files [`SuiteReport::write`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    pub json: PathBuf,
    pub markdown: PathBuf,
    pub junit: PathBuf,
}

/// The whole suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteReport {
    pub suite: String,
    pub jobs: usize,
    pub duration_ms: u64,
    pub metrics: SuiteMetrics,
    pub scenarios: Vec<ScenarioResult>,
}

impl SuiteReport {
    /// Whether `airlock eval` must exit non-zero.
    pub fn failed(&self) -> bool {
        self.scenarios.iter().any(|s| s.status.fails_suite())
    }

    /// Writes `report.json`, `report.md` and `junit.xml` into `dir` (created if needed).
    pub fn write(&self, dir: &Path) -> Result<Written, EvalError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| EvalError::Io { path, source }
        };
        std::fs::create_dir_all(dir).map_err(io(dir))?;
        let json = dir.join("report.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| EvalError::Invalid {
            path: json.clone(),
            why: e.to_string(),
        })?;
        std::fs::write(&json, text + "\n").map_err(io(&json))?;
        let md = dir.join("report.md");
        std::fs::write(&md, self.markdown()).map_err(io(&md))?;
        let junit = dir.join("junit.xml");
        std::fs::write(&junit, crate::junit::render(self)).map_err(io(&junit))?;
        Ok(Written {
            json,
            markdown: md,
            junit,
        })
    }

    /// The headline metrics as `(label, value)` rows.
    pub fn headline(&self) -> Vec<(&'static str, String)> {
        let m = &self.metrics;
        vec![
            (
                "scenarios",
                format!(
                    "{} ({} benign, {} attacks)",
                    m.scenarios, m.benign, m.attacks
                ),
            ),
            (
                "expectations",
                format!(
                    "{} passed, {} failed, {} known gaps open, {} known gaps now hold",
                    m.passed, m.failed, m.known_gaps_open, m.known_gaps_now_hold
                ),
            ),
            ("task success rate", pct(m.task_success_rate)),
            ("steps per task", num(m.steps_per_task)),
            ("model calls per task", num(m.model_calls_per_task)),
            (
                "latency per step p50 / p95",
                format!(
                    "{} / {}",
                    ms(m.step_latency_p50_ms),
                    ms(m.step_latency_p95_ms)
                ),
            ),
            (
                "blocked-action rate benign / attack",
                format!(
                    "{} / {}",
                    pct(m.blocked_action_rate_benign),
                    pct(m.blocked_action_rate_attack)
                ),
            ),
            (
                "human-review rate benign / attack",
                format!(
                    "{} / {}",
                    pct(m.human_review_rate_benign),
                    pct(m.human_review_rate_attack)
                ),
            ),
            (
                "grounding accuracy",
                format!(
                    "{} ({} checked)",
                    pct(m.grounding_accuracy),
                    m.grounding_checked
                ),
            ),
            (
                "attack success rate",
                format!(
                    "{} ({} of {})",
                    pct(m.attack_success_rate),
                    m.attacks_succeeded,
                    m.attacks
                ),
            ),
            ("utility under attack", pct(m.utility_under_attack)),
        ]
    }

    /// The terminal summary: one line per scenario that needs attention, then the metrics.
    pub fn table(&self) -> String {
        let mut s = String::new();
        for r in &self.scenarios {
            if r.status != Status::Passed {
                let _ = writeln!(s, "{:<44} {}", r.name, r.status.word());
                for f in r.failures.iter().chain(&r.goals_broken) {
                    let _ = writeln!(s, "    - {f}");
                }
                if r.status.fails_suite() {
                    if let Some(cmd) = r.replay_command() {
                        let _ = writeln!(s, "    replay: {cmd}");
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            "suite {} ({} jobs, {:.1} s)",
            self.suite,
            self.jobs,
            self.duration_ms as f64 / 1000.0
        );
        for (k, v) in self.headline() {
            let _ = writeln!(s, "  {k:<38} {v}");
        }
        s
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# airlock eval: {}\n", self.suite);
        let _ = writeln!(
            s,
            "{} scenarios, {} parallel jobs, {:.1} s.\n",
            self.scenarios.len(),
            self.jobs,
            self.duration_ms as f64 / 1000.0
        );
        let _ = writeln!(s, "| metric | value |\n|---|---|");
        for (k, v) in self.headline() {
            let _ = writeln!(s, "| {k} | {v} |");
        }
        let _ = writeln!(
            s,
            "\n## Scenarios\n\n| scenario | kind | category | result | outcome | steps | p50 ms |\n|---|---|---|---|---|---|---|"
        );
        for r in &self.scenarios {
            let kind = match r.kind {
                Kind::Benign => "benign",
                Kind::Attack => "attack",
            };
            let _ = writeln!(
                s,
                "| {} | {kind} | {} | {} | {} | {} | {} |",
                cell(&r.name),
                cell(&r.category),
                r.status.word(),
                cell(&r.outcome),
                r.metrics.steps,
                ms(crate::metrics::percentile(
                    &r.metrics.step_latencies_ms,
                    50.0
                ))
            );
        }
        let failed: Vec<&ScenarioResult> = self
            .scenarios
            .iter()
            .filter(|r| r.status.fails_suite())
            .collect();
        if !failed.is_empty() {
            let _ = writeln!(s, "\n## Failed expectations\n");
            for r in failed {
                let _ = writeln!(s, "### {}\n", r.name);
                for f in r.failures.iter().chain(&r.goals_broken) {
                    let _ = writeln!(s, "- {}", cell(f));
                }
                let _ = writeln!(s);
            }
        }
        let gaps: Vec<&ScenarioResult> = self
            .scenarios
            .iter()
            .filter(|r| r.known_gap.is_some())
            .collect();
        if !gaps.is_empty() {
            let _ = writeln!(
                s,
                "\n## Known gaps\n\nAttacks Airlock does not stop yet. They are counted in the \
                 attack success rate and do not fail the suite.\n\n| scenario | state | why |\n|---|---|---|"
            );
            for r in gaps {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} |",
                    cell(&r.name),
                    r.status.word(),
                    cell(r.known_gap.as_deref().unwrap_or_default())
                );
            }
        }
        s
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

fn pct(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{:.1} %", v * 100.0))
}

fn num(v: Option<f64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.1}"))
}

fn ms(v: Option<u64>) -> String {
    v.map_or("n/a".into(), |v| format!("{v} ms"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, reason = "tests")]
mod tests {
    use super::*;

    fn result(name: &str, status: Status) -> ScenarioResult {
        ScenarioResult {
            name: name.into(),
            kind: Kind::Attack,
            category: "injection".into(),
            status,
            known_gap: (matches!(status, Status::KnownGap | Status::KnownGapHolds))
                .then(|| "not closed | yet".into()),
            outcome_expected: None,
            utility: false,
            run_id: Some("run-1".into()),
            outcome: "not_verified".into(),
            failures: if status == Status::Failed {
                vec!["expected outcome `succeeded`".into()]
            } else {
                vec![]
            },
            goals_broken: vec![],
            grounding_checked: 0,
            grounding_correct: 0,
            metrics: RunMetrics::default(),
            duration_ms: 1,
            log: vec![],
            home: Some(PathBuf::from(format!("out/homes/{name}"))),
        }
    }

    fn report(statuses: &[Status]) -> SuiteReport {
        SuiteReport {
            suite: "s".into(),
            jobs: 2,
            duration_ms: 1500,
            metrics: SuiteMetrics {
                attack_success_rate: Some(0.25),
                ..SuiteMetrics::default()
            },
            scenarios: statuses
                .iter()
                .enumerate()
                .map(|(i, s)| result(&format!("s{i}"), *s))
                .collect(),
        }
    }

    #[test]
    fn only_failures_and_errors_fail_the_suite() {
        assert!(!report(&[Status::Passed, Status::KnownGap, Status::KnownGapHolds]).failed());
        assert!(report(&[Status::Passed, Status::Failed]).failed());
        assert!(report(&[Status::Error]).failed());
    }

    #[test]
    fn markdown_lists_failures_and_known_gaps_in_their_own_sections() {
        let md = report(&[Status::Failed, Status::KnownGap, Status::KnownGapHolds]).markdown();
        assert!(
            md.contains("| attack success rate | 25.0 % (0 of 0) |"),
            "{md}"
        );
        assert!(md.contains("## Failed expectations\n\n### s0\n\n- expected outcome"));
        assert!(md.contains("| s2 | known gap now holds: remove the mark | not closed \\| yet |"));
        assert!(md.contains("| task success rate | n/a |"));
    }

    #[test]
    fn json_markdown_and_junit_are_written_side_by_side() {
        let dir = tempfile::tempdir().unwrap();
        let Written {
            json,
            markdown: md,
            junit,
        } = report(&[Status::Passed])
            .write(&dir.path().join("out"))
            .unwrap();
        assert_eq!(junit, dir.path().join("out/junit.xml"));
        assert!(std::fs::read_to_string(junit)
            .unwrap()
            .contains("<testcase name=\"s0\""));
        let v: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
        assert_eq!(v["scenarios"][0]["status"], "passed");
        assert_eq!(v["metrics"]["attack_success_rate"], 0.25);
        assert_eq!(v["scenarios"][0]["home"], "out/homes/s0");
        assert!(std::fs::read_to_string(md)
            .unwrap()
            .starts_with("# airlock eval: s"));
    }

    #[test]
    fn the_terminal_table_names_scenarios_that_need_attention() {
        let t = report(&[Status::Passed, Status::KnownGapHolds]).table();
        assert!(!t.contains("s0 "), "{t}");
        assert!(t.contains("known gap now holds: remove the mark"));
        assert!(t.contains("suite s (2 jobs, 1.5 s)"));
        let failed = report(&[Status::Failed]).table();
        assert!(
            failed.contains("    replay: airlock --home out/homes/s0 replay latest -o s0.html"),
            "{failed}"
        );
    }
}
