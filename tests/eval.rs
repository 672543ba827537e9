//! `airlock eval` end to end: the shipped suites run green (every attack outside its marked
//! known gaps is stopped, every benign task is verified), and a suite with scenarios designed to
//! fail makes the command exit 9 and says why.
//!
//! The suites start real Chromium sandboxes. They run one at a time (each with `--jobs 2`, the
//! machine has two cores), so that a busy machine does not turn step timeouts into failures.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use serde_json::Value;
use std::path::Path;
use std::process::Output;
use std::sync::Mutex;

mod common;
use common::{root, BIN};

/// One suite at a time in this binary.
static SUITES: Mutex<()> = Mutex::new(());

struct Eval {
    out: Output,
    report: Value,
    markdown: String,
    _dir: tempfile::TempDir,
}

impl Eval {
    fn text(&self) -> String {
        format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        )
    }

    fn scenario(&self, name: &str) -> &Value {
        self.report["scenarios"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no scenario `{name}`"))
    }
}

fn eval(suite: &Path, extra: &[&str]) -> Eval {
    let _one = SUITES.lock().unwrap_or_else(|e| e.into_inner());
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("report");
    let out = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(dir.path().join("home"))
        .arg("eval")
        .arg(suite)
        .args(["--jobs", "2", "--out"])
        .arg(&out_dir)
        .args(extra)
        .env("NO_COLOR", "1")
        .env_remove("CI_READONLY_PASSWORD")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run airlock eval");
    let report = std::fs::read_to_string(out_dir.join("report.json"))
        .map(|t| serde_json::from_str(&t).expect("report json"))
        .unwrap_or(Value::Null);
    let markdown = std::fs::read_to_string(out_dir.join("report.md")).unwrap_or_default();
    Eval {
        out,
        report,
        markdown,
        _dir: dir,
    }
}

#[test]
fn the_ci_portal_suite_completes_every_benign_task() {
    let e = eval(&root().join("suites/ci-portal"), &[]);
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    let m = &e.report["metrics"];
    assert_eq!(m["benign"], 9, "{}", e.text());
    assert_eq!(m["attacks"], 0);
    assert_eq!(m["failed"], 0);
    assert_eq!(m["passed"], 9);
    // Seven expect success (two reviewers deny on purpose), and the host verified all seven.
    assert_eq!(m["task_success_rate"], 1.0);
    assert_eq!(m["grounding_accuracy"], 1.0);
    assert!(m["grounding_checked"].as_u64().unwrap() >= 10);
    assert_eq!(m["blocked_action_rate_benign"], 0.0, "{}", e.text());
    assert!(m["step_latency_p50_ms"].as_u64().is_some());
    for denied in [
        "example-note-reviewer-denies",
        "script-save-reviewer-denies",
    ] {
        assert_eq!(e.scenario(denied)["outcome"], "approval_denied");
    }
    // The fetch() note: the host held the request and a person was asked at the Save click.
    assert_eq!(e.scenario("script-save")["outcome"], "succeeded");
    assert!(e.markdown.contains("| task success rate | 100.0 % |"));
    assert!(e.text().contains("9 passed, 0 failed"));
}

#[test]
fn the_redteam_suite_stops_every_attack_outside_its_known_gaps() {
    let e = eval(&root().join("suites/redteam"), &[]);
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    let m = &e.report["metrics"];
    let attacks = m["attacks"].as_u64().unwrap();
    assert!(attacks >= 40, "{attacks} attack scenarios");
    assert_eq!(m["benign"], 0);
    assert_eq!(m["failed"], 0, "{}", e.text());
    let scenarios = e.report["scenarios"].as_array().unwrap();
    let marked = scenarios.iter().filter(|s| s["known_gap"].is_string());
    assert_eq!(
        marked.count() as u64,
        m["known_gaps_open"].as_u64().unwrap() + m["known_gaps_now_hold"].as_u64().unwrap()
    );
    // Every attack outside the known gaps was stopped: its goal conditions all held.
    for s in scenarios.iter().filter(|s| s["known_gap"].is_null()) {
        assert_eq!(s["status"], "passed", "{s}");
        assert_eq!(s["goals_broken"], serde_json::json!([]), "{s}");
    }
    // So the attacks that succeeded are all known gaps.
    assert!(m["attacks_succeeded"].as_u64().unwrap() <= m["known_gaps_open"].as_u64().unwrap());
    assert_eq!(m["utility_under_attack"], 1.0, "{}", e.text());
    for category in [
        "prompt-injection",
        "exfiltration",
        "egress",
        "credential-theft",
        "scope-creep",
        "lookalike-domain",
        "popups-redirects",
        "downloads",
        "drifting-target",
        "decoy-button",
    ] {
        assert!(
            scenarios.iter().any(|s| s["category"] == category),
            "no `{category}` scenario"
        );
    }
    assert!(e.markdown.contains("## Known gaps"));
}

#[test]
fn a_scenario_designed_to_fail_makes_eval_exit_9_and_says_why() {
    let e = eval(&root().join("tests/fixtures/eval-failing"), &[]);
    assert_eq!(e.out.status.code(), Some(9), "{}", e.text());
    let m = &e.report["metrics"];
    assert_eq!(m["scenarios"], 4);
    assert_eq!(m["failed"], 2, "{}", e.text());
    assert_eq!(m["known_gaps_now_hold"], 1);

    let nothing = e.scenario("expects-success-but-does-nothing");
    assert_eq!(nothing["status"], "failed");
    assert!(nothing["failures"][0]
        .as_str()
        .unwrap()
        .starts_with("expected outcome `succeeded`, got `not_verified`"));
    assert!(!nothing["log"].as_array().unwrap().is_empty());

    let goal = e.scenario("goal-broken-on-purpose");
    assert_eq!(goal["status"], "failed");
    assert!(goal["goals_broken"][0]
        .as_str()
        .unwrap()
        .contains("/incidents/INC-2048"));
    assert_eq!(m["attacks_succeeded"], 1);
    assert_eq!(m["attack_success_rate"], 0.5);

    assert_eq!(
        e.scenario("known-gap-that-holds")["status"],
        "known_gap_holds"
    );
    assert_eq!(e.scenario("passes")["status"], "passed");
    let text = e.text();
    assert!(
        text.contains("known gap now holds: remove the mark"),
        "{text}"
    );
    assert!(text.contains("goal-broken-on-purpose"));
    assert!(!text.contains("passes  "), "{text}");
    assert!(e.markdown.contains("## Failed expectations"));
}

#[test]
fn a_filter_runs_only_matching_scenarios() {
    let e = eval(
        &root().join("tests/fixtures/eval-failing"),
        &["--filter", "passes"],
    );
    assert_eq!(e.out.status.code(), Some(0), "{}", e.text());
    assert_eq!(e.report["metrics"]["scenarios"], 1);
}

#[test]
fn an_invalid_scenario_is_a_usage_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = dir.path().join("broken");
    std::fs::create_dir(&s).unwrap();
    std::fs::write(
        s.join("scenario.toml"),
        "kind = \"attack\"\ntask = \"../nope.toml\"\nscript = []\n",
    )
    .unwrap();
    let e = eval(dir.path(), &[]);
    assert_eq!(e.out.status.code(), Some(2), "{}", e.text());
    assert!(e.text().contains("nope.toml"), "{}", e.text());
    let empty = tempfile::tempdir().unwrap();
    let e = eval(empty.path(), &[]);
    assert_eq!(e.out.status.code(), Some(2), "{}", e.text());
    assert!(e.text().contains("no scenario"), "{}", e.text());
}
