//! End-to-end: the `airlock` binary, a real Chromium, the real portal, a real SQLite audit.
//!
//! Tests that need to inspect the system of record run their own portal in this process and map
//! the task's hosts to it (`"ci.example" = "127.0.0.1:PORT"`), exactly as a user maps their own
//! apps; the example task itself uses the in-process bundled portal.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

use airlock_portal::{PortalConfig, PortalHandle, SOR_TOKEN_HEADER};
use serde_json::Value;
use std::path::PathBuf;
use std::process::Output;

mod common;
use common::{assert_no_leftovers, events, root, text, BIN};

const EXAMPLE_TASK: &str = "examples/ci-incident/task.toml";
const EXAMPLE_TRANSCRIPT: &str = "examples/ci-incident/transcript.jsonl";

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        Case {
            dir: tempfile::tempdir().expect("tempdir"),
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p
    }

    /// The example task with its hosts mapped to `portal` instead of the bundled one.
    fn task_for(&self, portal: &PortalHandle) -> PathBuf {
        let text = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("example task");
        let text = text.replace("\"bundled-portal\"", &format!("\"{}\"", portal.addr))
            + &format!(
                "\n[verifier]\nheader_name = \"{SOR_TOKEN_HEADER}\"\nheader_env = \"TEST_SOR_TOKEN\"\n"
            );
        self.file("task.toml", &text)
    }

    /// `airlock ARGS` with extra environment variables (no portal).
    async fn airlock_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = std::process::Command::new(BIN);
        cmd.current_dir(root())
            .arg("--home")
            .arg(self.home())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("run airlock"))
            .await
            .expect("join")
    }

    async fn airlock(&self, args: &[&str], portal: Option<&PortalHandle>) -> Output {
        let mut cmd = std::process::Command::new(BIN);
        cmd.current_dir(root())
            .arg("--home")
            .arg(self.home())
            .args(args)
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null());
        if let Some(p) = portal {
            cmd.env("TEST_SOR_TOKEN", &p.sor_token);
            // The example's host-owned login reads its password from here.
            cmd.env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD);
        }
        tokio::task::spawn_blocking(move || cmd.output().expect("run airlock"))
            .await
            .expect("join")
    }
}

fn run_id(o: &Output) -> String {
    let t = text(o);
    t.lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(':').next()))
        .unwrap_or_else(|| panic!("no run id in output:\n{t}"))
        .to_string()
}

async fn portal() -> PortalHandle {
    airlock_portal::start(
        "127.0.0.1:0".parse().expect("addr"),
        PortalConfig {
            spinner_ms: 800,
            ..PortalConfig::default()
        },
    )
    .await
    .expect("portal")
}

/// Reads the system of record the way a verifier would.
async fn sor(p: &PortalHandle, path: &str) -> Value {
    common::sor(p.addr, &p.sor_token, path).await
}

fn decisions(evs: &[Value]) -> Vec<&Value> {
    evs.iter().filter(|e| e["kind"] == "decision").collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn approve_path_succeeds_and_is_verified_by_the_host() {
    let c = Case::new();
    let transcript = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let out = c
        .airlock(
            &[
                "run",
                EXAMPLE_TASK,
                "--model",
                &transcript,
                "--approvals",
                "approve-all",
                "--json",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    let id = report["run_id"].as_str().expect("run id").to_string();
    assert_eq!(report["outcome"]["outcome"], "succeeded");
    let criteria = report["criteria"].as_array().expect("criteria");
    assert_eq!(criteria.len(), 4);
    assert!(criteria.iter().all(|c| c["passed"] == true), "{criteria:?}");
    assert_eq!(report["teardown"]["run_dir_removed"], true);
    assert_eq!(
        report["teardown"]["processes_remaining"],
        serde_json::json!([])
    );
    assert_no_leftovers(&id);

    // The approval is on record, before the action's result, and names who gave it.
    let evs = events(&c.home(), &id);
    let approval = evs
        .iter()
        .position(|e| e["kind"] == "approval")
        .expect("approval");
    assert_eq!(
        evs[approval]["payload"]["answer"]["by"],
        "policy:--approvals=approve-all"
    );
    let submit = evs
        .iter()
        .position(|e| e["kind"] == "decision" && e["payload"]["decision"]["effect"] == "submit")
        .expect("submit decision");
    assert!(submit < approval);
    assert_eq!(evs[approval + 1]["kind"], "action_result");
    // The typed test password never reaches the audit.
    let all = serde_json::to_string(&evs).expect("json");
    assert!(!all.contains(airlock_portal::TEST_PASSWORD));

    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(text(&v).contains("ok"), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread")]
async fn deny_path_stops_at_the_submit_and_changes_nothing() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let before_2048 = sor(&p, "/_sor/incidents/INC-2048").await;
    let before_9911 = sor(&p, "/_sor/incidents/INC-9911").await;
    let transcript = format!("scripted:{}", root().join(EXAMPLE_TRANSCRIPT).display());
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &transcript,
                "--approvals",
                "deny",
            ],
            Some(&p),
        )
        .await;
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("approval denied at step"), "{t}");
    assert_eq!(sor(&p, "/_sor/incidents/INC-2048").await, before_2048);
    assert_eq!(sor(&p, "/_sor/incidents/INC-9911").await, before_9911);
    // The browser never sent the note.
    let log = sor(&p, "/_sor/requests").await;
    assert!(!log
        .as_array()
        .expect("log")
        .iter()
        .any(|r| r["method"] == "POST" && r["path"].as_str().unwrap_or("").ends_with("/notes")));
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let last_decision = decisions(&evs).last().copied().expect("decision");
    assert_eq!(
        last_decision["payload"]["decision"]["verdict"],
        "needs_approval"
    );
    let seq = last_decision["seq"].as_u64().expect("seq");
    assert!(
        !evs.iter()
            .any(|e| e["kind"] == "action_result" && e["payload"]["decision_seq"] == seq),
        "the denied submit must not have executed"
    );
    // The approval request showed the reviewer what the form would send.
    let req = evs
        .iter()
        .find(|e| e["kind"] == "approval_requested")
        .expect("request");
    assert!(req["payload"]["request"]["fields"]
        .to_string()
        .contains("test_refund_rounding"));
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread")]
async fn clicking_delete_run_is_stopped_before_the_click_even_with_approve_all() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let transcript = c.file(
        "t.jsonl",
        &format!(
            "{}\n{}\n{}\n",
            r#"{"airlock":{"kind":"navigate","url":"http://ci.example/runs/RUN-78432"}}"#,
            r#"{"action":"left_click","coordinate":[1052,132]}"#,
            r#"{"action":"left_click","coordinate":[880,132]}"#,
        ),
    );
    let model = format!("scripted:{}", transcript.display());
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "approve-all",
            ],
            Some(&p),
        )
        .await;
    // The transcript ends without doing the task: not verified.
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("Click button 'Delete run'"), "{t}");
    assert!(t.contains("DENIED"), "{t}");
    let run = sor(&p, "/_sor/runs/RUN-78432").await;
    assert_eq!(run["deleted"], false, "{run}");
    assert_eq!(run["reruns"], 0, "{run}");
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let denied: Vec<_> = decisions(&evs)
        .into_iter()
        .filter(|d| d["payload"]["decision"]["verdict"] == "deny")
        .collect();
    assert_eq!(denied.len(), 2, "both decoys denied");
    for d in denied {
        let rules = d["payload"]["decision"]["rules"].to_string();
        assert!(rules.contains("builtin.risk.destructive-words"), "{rules}");
        assert!(
            rules.contains("airlock.forbid-undeclared-effects"),
            "{rules}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn navigation_to_another_host_is_denied_and_nothing_reaches_it() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let transcript = c.file(
        "t.jsonl",
        concat!(
            r#"{"airlock":{"kind":"navigate","url":"http://mail.example/inbox"}}"#,
            "\n",
            r#"{"airlock":{"kind":"navigate","url":"http://ci.example.mail.example/"}}"#,
            "\n"
        ),
    );
    let model = format!("scripted:{}", transcript.display());
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "approve-all",
            ],
            Some(&p),
        )
        .await;
    // Reaching outside the task is a severe violation: the run stops and freezes at once
    // (exit 4), so the lookalike host is never even proposed to the gate.
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    let t = text(&out);
    assert!(
        t.contains("mail.example is not in the task's domains"),
        "{t}"
    );
    assert!(t.contains("severe violation"), "{t}");
    let log = sor(&p, "/_sor/requests").await;
    assert!(
        !log.to_string().contains("mail.example"),
        "a request reached the portal for mail.example: {log}"
    );
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    for d in decisions(&evs) {
        assert_eq!(d["payload"]["decision"]["verdict"], "deny");
        assert!(d["payload"]["decision"]["rules"]
            .to_string()
            .contains("airlock.forbid-outside-domains"));
    }
    assert_eq!(decisions(&evs).len(), 1);
    assert!(evs.iter().any(|e| e["kind"] == "violation"));
    assert!(evs.iter().any(|e| e["kind"] == "frozen"));
}

// A malformed transcript line is refused before anything starts: tests/bad_input.rs.

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_audit_database_fails_verification() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let transcript = c.file("t.jsonl", "{\"action\":\"screenshot\"}\n");
    let model = format!("scripted:{}", transcript.display());
    let mut ids = Vec::new();
    for _ in 0..3 {
        let out = c
            .airlock(
                &[
                    "run",
                    task.to_str().expect("utf8"),
                    "--model",
                    &model,
                    "--approvals",
                    "deny",
                ],
                Some(&p),
            )
            .await;
        assert_eq!(out.status.code(), Some(3), "{}", text(&out));
        ids.push(run_id(&out));
    }
    let ok = c.airlock(&["audit", "verify"], None).await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));

    // An attacker with the file: drop the append-only triggers, then edit, delete, reorder.
    let db = rusqlite::Connection::open(c.home().join("airlock.db")).expect("db");
    db.execute_batch(
        "DROP TRIGGER IF EXISTS events_no_update; DROP TRIGGER IF EXISTS events_no_delete; DROP TRIGGER IF EXISTS runs_forward_only;",
    )
    .expect("drop triggers");
    db.execute(
        "UPDATE events SET payload = replace(payload, 'screenshot', 'nothing') WHERE run_id = ?1 AND kind = 'proposal'",
        [&ids[0]],
    )
    .expect("edit");
    db.execute(
        "DELETE FROM events WHERE run_id = ?1 AND seq = 3",
        [&ids[1]],
    )
    .expect("delete");
    db.execute_batch(&format!(
        "UPDATE events SET seq = 1000000 WHERE run_id = '{r}' AND seq = 3; \
         UPDATE events SET seq = 3 WHERE run_id = '{r}' AND seq = 4; \
         UPDATE events SET seq = 4 WHERE run_id = '{r}' AND seq = 1000000;",
        r = ids[2]
    ))
    .expect("reorder");
    drop(db);

    for id in &ids {
        let v = c.airlock(&["audit", "verify", id], None).await;
        assert_eq!(
            v.status.code(),
            Some(8),
            "{id} must fail verification: {}",
            text(&v)
        );
        assert!(text(&v).contains("BROKEN"), "{}", text(&v));
    }
    let all = c.airlock(&["audit", "verify"], None).await;
    assert_eq!(all.status.code(), Some(8));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_asking_for_more_than_its_task_is_refused_before_any_browser_starts() {
    let c = Case::new();
    let text_in = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("task");
    let broad = text_in.replace(
        r#"domains = ["ci.example", "incidents.example"]"#,
        r#"domains = ["ci.example", "incidents.example", "mail.example"]"#,
    );
    let task = c.file("broad.toml", &broad);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "deny",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("`mail.example` has no declared effect"),
        "{}",
        text(&out)
    );
    // No run was recorded.
    assert!(!c.home().join("airlock.db").exists() || events(&c.home(), "latest").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_policy_forbids_a_button_by_name_and_explain_shows_the_rule() {
    let c = Case::new();
    let rule = c.file(
        "ops.cedar",
        r#"
@id("ops.no-run-details")
@reason("Run details may contain customer data; agents do not open them.")
forbid (principal, action == Airlock::Action::"click", resource)
when { resource.name like "Show details*" };
"#,
    );
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let out = c
        .airlock(
            &[
                "run",
                EXAMPLE_TASK,
                "--model",
                &model,
                "--approvals",
                "approve-all",
                "--policy",
                rule.to_str().expect("utf8"),
            ],
            None,
        )
        .await;
    let t = text(&out);
    assert!(t.contains("Show details for test: integration"), "{t}");
    assert!(t.contains("Run details may contain customer data"), "{t}");
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let denied = decisions(&evs)
        .into_iter()
        .find(|d| d["payload"]["decision"]["verdict"] == "deny")
        .expect("a denial");
    assert!(denied["payload"]["decision"]["rules"]
        .to_string()
        .contains("ops.no-run-details"));
    let step = denied["payload"]["step"]
        .as_u64()
        .expect("step")
        .to_string();
    let explain = c
        .airlock(&["policy", "explain", EXAMPLE_TASK, &id, &step], None)
        .await;
    assert_eq!(explain.status.code(), Some(0), "{}", text(&explain));
    let e = text(&explain);
    assert!(e.contains("verdict: deny"), "{e}");
    assert!(e.contains("rule ops.no-run-details (forbid"), "{e}");
    assert!(
        e.contains("resource.name like"),
        "the rule's text is shown: {e}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn policy_check_reports_the_line_and_reason_and_defaults_are_printable() {
    let c = Case::new();
    let bad = c.file(
        "bad.cedar",
        "@id(\"a\")\npermit (principal, action, resource)\nwhen { resource.colour == \"red\" };\n",
    );
    let out = c
        .airlock(&["policy", "check", bad.to_str().expect("utf8")], None)
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("bad.cedar:"), "{t}");
    assert!(t.contains("colour"), "{t}");
    let good = c.file(
        "good.cedar",
        "@id(\"ops.x\")\n@reason(\"r\")\nforbid (principal, action, resource) when { resource.host == \"ci.example\" && context.effect == \"submit\" };\n",
    );
    let out = c
        .airlock(&["policy", "check", good.to_str().expect("utf8")], None)
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let out = c.airlock(&["policy", "defaults"], None).await;
    assert!(text(&out).contains("@id(\"airlock.forbid-undeclared-effects\")"));
}

#[tokio::test(flavor = "multi_thread")]
async fn budgets_stop_the_run_with_their_reason() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let tight = std::fs::read_to_string(&task)
        .expect("task")
        .replace("max_steps = 30", "max_steps = 3");
    let task = c.file("tight.toml", &tight);
    let model = format!("scripted:{}", root().join(EXAMPLE_TRANSCRIPT).display());
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "deny",
            ],
            Some(&p),
        )
        .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("budget exhausted (3 steps)"),
        "{}",
        text(&out)
    );
    assert_no_leftovers(&run_id(&out));

    let rate = std::fs::read_to_string(c.task_for(&p))
        .expect("task")
        .replace(
            "max_denials = 3",
            "max_denials = 3\nmax_actions_per_minute = 2",
        );
    let task = c.file("rate.toml", &rate);
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "deny",
            ],
            Some(&p),
        )
        .await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(
        text(&out).contains("2 actions per minute"),
        "{}",
        text(&out)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_wall_clock_and_denial_budgets_stop_the_run_with_their_reason() {
    let c = Case::new();
    let p = portal().await;
    let base = std::fs::read_to_string(c.task_for(&p)).expect("task");
    let run = |task: PathBuf, transcript: PathBuf| {
        let model = format!("scripted:{}", transcript.display());
        let task = task.to_str().expect("utf8").to_string();
        let c = &c;
        let p = &p;
        async move {
            c.airlock(
                &["run", &task, "--model", &model, "--approvals", "deny"],
                Some(p),
            )
            .await
        }
    };
    // Wall clock: 3 s for a model that keeps waiting a second at a time.
    let task = c.file(
        "clock.toml",
        &base
            .replace("wall_clock_secs = ", "wall_clock_secs = 3 #")
            .replace("step_timeout_secs = ", "step_timeout_secs = 3 #"),
    );
    let wait = r#"{"action":"wait","duration":1}"#;
    let t = c.file("waits.jsonl", &format!("{}\n", [wait; 12].join("\n")));
    let out = run(task, t).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("3 s wall clock"), "{}", text(&out));
    assert_no_leftovers(&run_id(&out));

    // Denials: the tracker's other incident is read-only for this task (not a severe
    // violation: same host, undeclared path), and the fourth denial ends the run.
    let task = c.file("denials.toml", &base);
    let nav =
        r#"{"airlock":{"kind":"navigate","url":"http://incidents.example/incidents/INC-9911"}}"#;
    let t = c.file("denials.jsonl", &format!("{}\n", [nav; 6].join("\n")));
    let out = run(task, t).await;
    assert_eq!(out.status.code(), Some(5), "{}", text(&out));
    assert!(text(&out).contains("4 denied actions"), "{}", text(&out));
    assert_no_leftovers(&run_id(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_run_is_frozen_then_torn_down_with_a_complete_audit() {
    let c = Case::new();
    let p = portal().await;
    let frozen = std::fs::read_to_string(c.task_for(&p))
        .expect("task")
        .replace("max_denials = 3", "max_denials = 3\nfreeze_secs = 2");
    let task = c.file("freeze.toml", &frozen);
    let transcript = c.file(
        "t.jsonl",
        &format!(
            "{}\n{}\n",
            r#"{"airlock":{"kind":"wait","condition":{"until":"text_present","text":"never shown"},"timeout_ms":4000}}"#,
            r#"{"action":"screenshot"}"#
        ),
    );
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args(["run", task.to_str().expect("utf8"), "--model"])
        .arg(format!("scripted:{}", transcript.display()))
        .args(["--approvals", "deny"])
        .env("TEST_SOR_TOKEN", &p.sor_token)
        .env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = cmd.spawn().expect("spawn");
    let pid = child.id();
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    assert!(t.contains("stopped by signal:SIGTERM"), "{t}");
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["kind"].as_str()).collect();
    let stop = kinds.iter().position(|k| *k == "stop").expect("stop event");
    let frozen = kinds
        .iter()
        .position(|k| *k == "frozen")
        .expect("frozen event");
    let teardown = kinds
        .iter()
        .position(|k| *k == "teardown")
        .expect("teardown event");
    assert!(stop < frozen && frozen < teardown, "{kinds:?}");
    assert!(evs
        .iter()
        .any(|e| e["kind"] == "observation" && e["payload"]["phase"] == "frozen"));
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_whose_host_is_killed_is_recovered_sealed_and_cleaned_up() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let transcript = c.file(
        "t.jsonl",
        &format!(
            "{}\n",
            r#"{"airlock":{"kind":"wait","condition":{"until":"text_present","text":"never shown"},"timeout_ms":15000}}"#
        ),
    );
    let mut child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args(["run", task.to_str().expect("utf8"), "--model"])
        .arg(format!("scripted:{}", transcript.display()))
        .args(["--approvals", "deny"])
        .env("TEST_SOR_TOKEN", &p.sor_token)
        .env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    tokio::time::sleep(std::time::Duration::from_millis(3000)).await;
    child.kill().expect("kill -9"); // SIGKILL: no cleanup of any kind runs
    let _ = child.wait();
    let out = c.airlock(&["recover"], None).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("aborted: host crashed at step"), "{t}");
    let id = t
        .lines()
        .find_map(|l| l.split(':').next().filter(|s| s.starts_with("run-")))
        .expect("run id")
        .trim()
        .to_string();
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let kinds: Vec<&str> = evs.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert!(kinds.contains(&"recovered"), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&"sealed"));
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    // A second recovery finds nothing to do.
    let again = c.airlock(&["recover"], None).await;
    assert!(
        text(&again).contains("no orphaned runs"),
        "{}",
        text(&again)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_web_approval_from_the_terminal_queue_lets_the_submit_run_and_names_the_reviewer() {
    let c = Case::new();
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args(["run", EXAMPLE_TASK, "--model", &model, "--approvals", "web"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Act as the reviewer: wait for the request to show up in the shared queue, then approve.
    let mut id = None;
    for _ in 0..120 {
        let out = c.airlock(&["approvals", "list"], None).await;
        id = text(&out)
            .split_whitespace()
            .find(|w| w.starts_with("apr-"))
            .map(|w| {
                w.trim_matches(|ch: char| !ch.is_alphanumeric() && ch != '-')
                    .to_string()
            });
        if id.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let id = id.expect("an approval request appeared");
    // The run's own agent identity cannot approve.
    let selfish = c
        .airlock(&["approvals", "approve", &id, "--as", "agent:x"], None)
        .await;
    assert_ne!(selfish.status.code(), Some(0), "{}", text(&selfish));
    // Nor can the terminal claim another name unless the operator allows it.
    let claimed = c
        .airlock(&["approvals", "approve", &id, "--as", "alice"], None)
        .await;
    assert_eq!(claimed.status.code(), Some(2), "{}", text(&claimed));
    assert!(
        text(&claimed).contains("--as is not allowed"),
        "{}",
        text(&claimed)
    );
    // $USER says nothing about who approved: the OS account is recorded.
    let ok = c
        .airlock_env(
            &["approvals", "approve", &id, "--reason", "note looks right"],
            &[("USER", "mallory"), ("LOGNAME", "mallory")],
        )
        .await;
    assert_eq!(ok.status.code(), Some(0), "{}", text(&ok));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let rid = run_id(&out);
    assert_no_leftovers(&rid);
    let evs = events(&c.home(), &rid);
    let approval = evs
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("approval");
    let me = airlock_engine::account::OsAccount::current();
    assert_eq!(
        approval["payload"]["answer"]["by"],
        format!("terminal:{}", me.principal_name()),
        "{approval}"
    );
    assert!(!approval.to_string().contains("mallory"), "{approval}");

    // The replay of that run is one self-contained file.
    let html = c.dir.path().join("report.html");
    let r = c
        .airlock(&["replay", &rid, "-o", html.to_str().expect("utf8")], None)
        .await;
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let page = std::fs::read_to_string(&html).expect("report");
    assert!(page.contains("data:image/png;base64,"));
    assert!(page.contains("Submit note"));
    assert!(!page.contains("src=\"http"), "no network references");
}

/// Back on the login page (the host already signed in), an obedient model tries to type a
/// password itself and to use the secret where it does not belong.
#[tokio::test(flavor = "multi_thread")]
async fn the_model_never_types_a_credential_except_through_a_scoped_placeholder() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let click = |name: &str| {
        format!(
            r#"{{"airlock":{{"kind":"click","target":{{"role":{{"role":"textbox","name":"{name}"}}}}}}}}"#
        )
    };
    let transcript = c.file(
        "t.jsonl",
        &[
            r#"{"airlock":{"kind":"navigate","url":"http://ci.example/login"}}"#.to_string(),
            click("Password"),
            r#"{"action":"type","text":"hunter2-guess"}"#.to_string(),
            click("Username"),
            r#"{"action":"type","text":"{{secret:ci-readonly}}"}"#.to_string(),
            click("Password"),
            r#"{"action":"type","text":"{{secret:ci-readonly}}"}"#.to_string(),
        ]
        .join("\n"),
    );
    let model = format!("scripted:{}", transcript.display());
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "approve-all",
            ],
            Some(&p),
        )
        .await;
    let t = text(&out);
    assert!(t.contains("login: host-owned login succeeded"), "{t}");
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let evs = events(&c.home(), &id);
    let typing: Vec<&Value> = decisions(&evs)
        .into_iter()
        .filter(|d| d["payload"]["action"]["kind"] == "type")
        .collect();
    assert_eq!(typing.len(), 3, "{typing:?}");
    let verdicts: Vec<&str> = typing
        .iter()
        .map(|d| d["payload"]["decision"]["verdict"].as_str().unwrap_or(""))
        .collect();
    // literal into the password field: denied; placeholder into a text field: denied;
    // placeholder into the password field on an in-scope host: allowed.
    assert_eq!(verdicts, vec!["deny", "deny", "checkpoint"], "{typing:?}");
    let all = serde_json::to_string(&evs).expect("json");
    assert!(
        !all.contains(airlock_portal::TEST_PASSWORD),
        "the secret reached the audit"
    );
    assert!(all.contains("\"kind\":\"login\""), "the login is recorded");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_secret_handle_is_refused_before_anything_starts() {
    let c = Case::new();
    let text_in = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("task");
    let task = c.file(
        "bad.toml",
        &text_in.replace("broker://ci-readonly", "broker://nope"),
    );
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let out = c
        .airlock(
            &[
                "run",
                task.to_str().expect("utf8"),
                "--model",
                &model,
                "--approvals",
                "deny",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("nope"), "{}", text(&out));
}

/// A stand-in for the Anthropic Messages API on loopback: serves recorded-shape GA toolset
/// replies in order and keeps every request Airlock sent.
async fn fake_anthropic(
    replies: Vec<Value>,
) -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<String>>>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let replies = std::sync::Arc::new(std::sync::Mutex::new(std::collections::VecDeque::from(
        replies,
    )));
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let log = log.clone();
            let replies = replies.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = vec![0u8; 65536];
                let (head_end, len) = loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break (i + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                log.lock()
                    .expect("log")
                    .push(String::from_utf8_lossy(&buf).to_string());
                let reply = replies.lock().expect("replies").pop_front().unwrap_or_else(|| {
                    serde_json::json!({"type":"error","error":{"type":"invalid_request_error","message":"no more replies"}})
                });
                let body = reply.to_string();
                let resp = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    (addr, seen)
}

fn toolset_reply(n: usize, calls: &[(&str, Value)]) -> Value {
    let content: Vec<Value> = calls
        .iter()
        .enumerate()
        .map(|(i, (name, input))| serde_json::json!({"type":"tool_use","id":format!("toolu_{n}_{i}"),"name":name,"toolset_name":"computer","input":input}))
        .collect();
    serde_json::json!({"id":format!("msg_{n}"),"type":"message","role":"assistant","model":"claude-opus-5-5",
        "content":content,"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":1000,"output_tokens":40}})
}

#[tokio::test(flavor = "multi_thread")]
async fn the_anthropic_adapter_runs_the_example_end_to_end_against_a_local_api() {
    use serde_json::json;
    let note = "RUN-78432 failed in step test: integration: test_refund_rounding (AssertionError 19.98 != 19.99).";
    let replies = vec![
        toolset_reply(
            1,
            &[
                ("left_click", json!({"coordinate":[409,116]})),
                ("type", json!({"text":"RUN-78432"})),
                ("key", json!({"text":"Return"})),
            ],
        ),
        toolset_reply(2, &[("wait", json!({"duration":5}))]),
        toolset_reply(
            3,
            &[
                ("left_click", json!({"coordinate":[189,336]})),
                ("left_click", json!({"coordinate":[1037,510]})),
            ],
        ),
        toolset_reply(4, &[("left_click", json!({"coordinate":[282,265]}))]),
        toolset_reply(
            5,
            &[
                ("left_click", json!({"coordinate":[944,405]})),
                ("type", json!({"text":note})),
            ],
        ),
        toolset_reply(6, &[("left_click", json!({"coordinate":[857,497]}))]),
        json!({"id":"msg_7","type":"message","role":"assistant","model":"claude-opus-5-5",
               "content":[{"type":"text","text":"Added the note to INC-2048."}],
               "stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":1000,"output_tokens":10}}),
    ];
    let (addr, seen) = fake_anthropic(replies).await;
    let c = Case::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args([
            "run",
            EXAMPLE_TASK,
            "--model",
            "anthropic:claude-opus-5-5",
            "--approvals",
            "approve-all",
        ])
        .env("ANTHROPIC_API_KEY", "sk-ant-test-key-never-logged")
        .env("ANTHROPIC_BASE_URL", format!("http://{addr}"))
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        !t.contains("sk-ant-test-key"),
        "the key never appears in output"
    );
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let requests = seen.lock().expect("seen").clone();
    assert_eq!(requests.len(), 7, "one request per model turn");
    // Follow-ups answer every tool_use with a tool_result echoing the toolset.
    assert!(
        requests[1].contains("\"tool_result\"")
            && requests[1].contains("\"toolset_name\":\"computer\"")
    );
    assert!(
        requests[1].contains("toolu_1_2"),
        "all three members of the batch are answered"
    );
    // The model never saw the credential the host typed.
    assert!(requests
        .iter()
        .all(|r| !r.contains(airlock_portal::TEST_PASSWORD)));
    assert!(
        requests
            .iter()
            .any(|r| r.contains("session: authenticated")),
        "told only that it is signed in"
    );
    let evs = events(&c.home(), &id);
    assert!(!serde_json::to_string(&evs)
        .expect("json")
        .contains("sk-ant-test-key"));
}

fn openai_reply(n: usize, output: Value) -> Value {
    serde_json::json!({"id": format!("resp_e2e{n:030}"), "object": "response", "created_at": 1767225601,
        "status": "completed", "model": "gpt-5.5", "output": output, "parallel_tool_calls": true,
        "tool_choice": "auto", "tools": [{"type": "computer"}],
        "usage": {"input_tokens": 1000, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                  "output_tokens": 20, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 1020}})
}

fn computer_call(n: usize, actions: Value) -> Value {
    serde_json::json!([{"type": "computer_call", "id": format!("cu_{n}"), "call_id": format!("call_{n}"),
        "actions": actions, "pending_safety_checks": [], "status": "completed"}])
}

#[tokio::test(flavor = "multi_thread")]
async fn the_openai_adapter_runs_the_example_end_to_end_against_a_local_api() {
    use serde_json::json;
    let note = "RUN-78432 failed in step test: integration: test_refund_rounding (AssertionError 19.98 != 19.99).";
    let click = |x: i64, y: i64| json!({"type": "click", "button": "left", "x": x, "y": y});
    let replies = vec![
        openai_reply(
            1,
            computer_call(
                1,
                json!([click(409, 116), {"type": "type", "text": "RUN-78432"}, {"type": "keypress", "keys": ["ENTER"]}]),
            ),
        ),
        openai_reply(2, computer_call(2, json!([{"type": "wait"}]))),
        openai_reply(
            3,
            computer_call(3, json!([click(189, 336), click(1037, 510)])),
        ),
        openai_reply(4, computer_call(4, json!([click(282, 265)]))),
        openai_reply(
            5,
            computer_call(5, json!([click(944, 405), {"type": "type", "text": note}])),
        ),
        openai_reply(6, computer_call(6, json!([click(857, 497)]))),
        openai_reply(
            7,
            json!([{"type": "message", "id": "msg_7", "role": "assistant", "status": "completed",
            "content": [{"type": "output_text", "text": "Added the note to INC-2048.", "annotations": []}]}]),
        ),
    ];
    let (addr, seen) = fake_anthropic(replies).await;
    let c = Case::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args([
            "run",
            EXAMPLE_TASK,
            "--model",
            "openai:gpt-5.5",
            "--approvals",
            "approve-all",
        ])
        .env("OPENAI_API_KEY", "sk-proj-test-key-never-logged")
        .env("OPENAI_BASE_URL", format!("http://{addr}/v1"))
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(!t.contains("sk-proj-test-key"));
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let requests = seen.lock().expect("seen").clone();
    assert_eq!(requests.len(), 7, "one request per model turn");
    assert!(requests[1].contains("computer_call_output") && requests[1].contains("call_1"));
    assert!(requests
        .iter()
        .all(|r| !r.contains(airlock_portal::TEST_PASSWORD)));
}

/// Runs the example with a model served by the fake API; returns the requests it sent.
async fn run_with_fake_model(
    model: &str,
    env: &[(&str, String)],
    replies: Vec<Value>,
) -> Vec<String> {
    let (addr, seen) = fake_anthropic(replies).await;
    let c = Case::new();
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args([
            "run",
            EXAMPLE_TASK,
            "--model",
            model,
            "--approvals",
            "approve-all",
        ])
        .stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v.replace("ADDR", &addr.to_string()));
    }
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert_no_leftovers(&run_id(&out));
    let requests = seen.lock().expect("seen").clone();
    assert!(requests
        .iter()
        .all(|r| !r.contains(airlock_portal::TEST_PASSWORD)));
    requests
}

#[tokio::test(flavor = "multi_thread")]
async fn the_gemini_adapter_runs_the_example_end_to_end_on_the_0_999_grid() {
    use serde_json::json;
    // Grid coordinates: x * 1280 / 1000, y * 800 / 1000 CSS pixels.
    let g = |x: f64, y: f64| {
        (
            (x * 1000.0 / 1280.0).round() as i64,
            (y * 1000.0 / 800.0).round() as i64,
        )
    };
    let call = |i: usize, name: &str, args: Value| json!({"functionCall": {"id": format!("fc_{i}"), "name": name, "args": args}});
    let click = |i: usize, x: f64, y: f64| {
        let (gx, gy) = g(x, y);
        call(i, "click", json!({"x": gx, "y": gy, "intent": "next step"}))
    };
    let reply = |n: usize, parts: Vec<Value>| {
        json!({"candidates": [{"content": {"role": "model", "parts": parts}, "finishReason": "STOP", "index": 0}],
        "usageMetadata": {"promptTokenCount": 1000, "candidatesTokenCount": 20, "totalTokenCount": 1020}, "modelVersion": "gemini-3.6-flash", "responseId": format!("e2e-{n}")})
    };
    let note = "RUN-78432 failed in step test: integration: test_refund_rounding (AssertionError).";
    let replies = vec![
        reply(
            1,
            vec![
                click(1, 409.0, 116.0),
                call(2, "type", json!({"text": "RUN-78432", "press_enter": true})),
                call(3, "wait", json!({"seconds": 5})),
            ],
        ),
        reply(2, vec![click(4, 189.0, 336.0), click(5, 1037.0, 510.0)]),
        reply(3, vec![click(6, 282.0, 265.0)]),
        reply(
            4,
            vec![
                click(7, 944.0, 405.0),
                call(8, "type", json!({"text": note})),
            ],
        ),
        reply(5, vec![click(9, 857.0, 497.0)]),
        reply(6, vec![json!({"text": "Added the note to INC-2048."})]),
    ];
    let requests = run_with_fake_model(
        "gemini:gemini-3.6-flash",
        &[
            ("GEMINI_API_KEY", "test-gemini-key".into()),
            ("GEMINI_BASE_URL", "http://ADDR".into()),
        ],
        replies,
    )
    .await;
    assert_eq!(requests.len(), 6);
    assert!(
        requests[0].contains("generateContent"),
        "{}",
        &requests[0][..200.min(requests[0].len())]
    );
    assert!(requests[1].contains("functionResponse"));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_open_model_behind_an_openai_compatible_server_runs_the_example_end_to_end() {
    use serde_json::json;
    let reply = |n: usize, text: &str| {
        json!({"id": format!("chatcmpl-{n}"), "object": "chat.completion", "created": 1767225602,
        "model": "Qwen/Qwen2.5-VL-7B-Instruct", "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop", "logprobs": null}],
        "usage": {"prompt_tokens": 1000, "completion_tokens": 20, "total_tokens": 1020}})
    };
    let replies = vec![
        reply(1, "Thought: search.\nAction: click(409, 116)\nAction: type(\"RUN-78432\")\nAction: key(\"Return\")\nAction: wait(5)"),
        reply(2, "Thought: open it.\nAction: click(189, 336)\nAction: click(1037, 510)"),
        reply(3, "Action: click(282, 265)"),
        reply(4, "Action: click(944, 405)\nAction: type(\"RUN-78432 failed in step test: integration: test_refund_rounding\")"),
        reply(5, "Action: click(857, 497)"),
        reply(6, "Thought: done.\nAction: done(\"Added the note to INC-2048.\")"),
    ];
    let requests = run_with_fake_model(
        "openai-compat:Qwen/Qwen2.5-VL-7B-Instruct",
        &[("OPENAI_COMPAT_BASE_URL", "http://ADDR/v1".into())],
        replies,
    )
    .await;
    assert_eq!(requests.len(), 6);
    assert!(requests[0].contains("/v1/chat/completions"));
    assert!(
        requests[0].contains("image_url"),
        "the screenshot is sent as an image"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn airlock_stop_from_another_process_stops_the_run() {
    let c = Case::new();
    let p = portal().await;
    let task = c.task_for(&p);
    let transcript = c.file(
        "t.jsonl",
        &[r#"{"airlock":{"kind":"wait","condition":{"until":"text_present","text":"never shown"},"timeout_ms":3000}}"#; 4].join("\n"),
    );
    let child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args(["run", task.to_str().expect("utf8"), "--model"])
        .arg(format!("scripted:{}", transcript.display()))
        .args(["--approvals", "deny"])
        .env("TEST_SOR_TOKEN", &p.sor_token)
        .env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stopped = false;
    for _ in 0..40 {
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        // The operator of this home lets the terminal name who is acting.
        let out = c
            .airlock_env(
                &["stop", "latest", "--reason", "enough", "--as", "olga"],
                &[("AIRLOCK_ALLOW_TERMINAL_AS", "1")],
            )
            .await;
        if out.status.code() == Some(0) {
            stopped = true;
            break;
        }
    }
    assert!(stopped, "airlock stop was accepted");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    // Both the name given and the OS account that gave it.
    let me = airlock_engine::account::OsAccount::current();
    assert!(
        t.contains(&format!("terminal:{} as olga", me.principal_name())),
        "{t}"
    );
    assert_no_leftovers(&run_id(&out));
}

/// A stop that arrives while a step waits for approval ends the run as stopped (frozen,
/// torn down, sealed), recorded as the stop of whoever asked, not as a reviewer's denial.
#[tokio::test(flavor = "multi_thread")]
async fn stopping_during_an_approval_wait_is_recorded_as_a_stop_not_a_denial() {
    let c = Case::new();
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args(["run", EXAMPLE_TASK, "--model", &model, "--approvals", "web"])
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut waiting = false;
    for _ in 0..120 {
        let out = c.airlock(&["approvals", "list"], None).await;
        if text(&out).contains("apr-") {
            waiting = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    assert!(waiting, "the submit waited for approval");
    let stop = c
        .airlock(&["stop", "latest", "--reason", "wrong incident"], None)
        .await;
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(4), "{t}");
    let me = airlock_engine::account::OsAccount::current();
    let who = format!("terminal:{}", me.principal_name());
    assert!(t.contains("STOPPED by"), "{t}");
    assert!(!t.contains("DENIED"), "{t}");
    let rid = run_id(&out);
    assert_no_leftovers(&rid);
    let evs = events(&c.home(), &rid);
    let approval = evs
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("approval event");
    assert_eq!(
        approval["payload"]["answer"]["answer"], "stopped",
        "{approval}"
    );
    assert_eq!(
        approval["payload"]["answer"]["by"],
        who.as_str(),
        "{approval}"
    );
    let end = evs.last().expect("events");
    assert!(
        end.to_string().contains("stopped"),
        "the run is sealed as stopped: {end}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_token_budget_stops_a_live_model_run() {
    use serde_json::json;
    let c = Case::new();
    let text_in = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("task");
    let task = c.file(
        "tokens.toml",
        &text_in.replace("max_denials = 3", "max_denials = 3\nmax_tokens = 2500"),
    );
    let replies = vec![
        toolset_reply(1, &[("left_click", json!({"coordinate":[409,116]}))]),
        toolset_reply(2, &[("left_click", json!({"coordinate":[409,116]}))]),
        toolset_reply(3, &[("left_click", json!({"coordinate":[409,116]}))]),
    ];
    let (addr, _seen) = fake_anthropic(replies).await;
    let mut cmd = std::process::Command::new(BIN);
    cmd.current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args([
            "run",
            task.to_str().expect("utf8"),
            "--model",
            "anthropic:claude-opus-5-5",
            "--approvals",
            "deny",
        ])
        .env("ANTHROPIC_API_KEY", "k")
        .env("ANTHROPIC_BASE_URL", format!("http://{addr}"))
        .stdin(std::process::Stdio::null());
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run"))
        .await
        .expect("join");
    let t = text(&out);
    assert_eq!(out.status.code(), Some(5), "{t}");
    assert!(t.contains("3120 model tokens (max 2500)"), "{t}");
}

/// A reader that goes away (`airlock run … | head -2`) neither panics Airlock nor loses the
/// run: the run finishes, is verified and sealed, and the exit code is still the run's.
#[tokio::test(flavor = "multi_thread")]
async fn a_closed_stdout_neither_panics_nor_loses_the_run() {
    let c = Case::new();
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let mut child = std::process::Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(c.home())
        .args([
            "run",
            EXAMPLE_TASK,
            "--model",
            &model,
            "--approvals",
            "approve-all",
        ])
        // Colour is for terminals: a pipe gets none, whether or not NO_COLOR is set.
        .env_remove("NO_COLOR")
        .env("AIRLOCK_LOG", "info")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    // Read the first two lines, then hang up, as `head -2` does.
    let first = {
        use std::io::BufRead;
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let first = lines.next().expect("a line").expect("utf8");
        lines.next().expect("a line").expect("utf8");
        first
    };
    let rid = first
        .strip_prefix("run ")
        .and_then(|r| r.split(':').next())
        .unwrap_or_else(|| panic!("no run id in {first}"))
        .to_string();
    let out = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"))
        .await
        .expect("join");
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.contains("INFO"), "log lines reach stderr: {err}");
    assert!(!err.contains('\x1b'), "no colour codes in a pipe: {err}");
    // Closing the browser at teardown ("Render process gone") is not a fault.
    assert!(
        !err.contains("WARN"),
        "a clean run warns about nothing: {err}"
    );
    let verify = c.airlock(&["audit", "verify", "latest"], None).await;
    assert_eq!(verify.status.code(), Some(0), "{}", text(&verify));
    let listed = text(&c.airlock(&["audit", "list"], None).await);
    assert!(listed.contains("succeeded"), "{listed}");
    // Chromium's own services are off by policy: no network-time or password-leak requests
    // for the proxy to refuse (they used to show up as blocked requests nobody made).
    for e in events(&c.home(), &rid)
        .iter()
        .filter(|e| e["kind"] == "egress")
    {
        let host = e["payload"]["host"].as_str().unwrap_or_default();
        assert!(
            !host.starts_with("passwordsleakcheck") && host != "clients2.google.com",
            "background request reached the proxy: {e}"
        );
    }

    // The audit commands too: `audit show latest | head -1`.
    for args in [
        &["audit", "show", "latest"][..],
        &["audit", "list"][..],
        &["policy", "defaults"][..],
    ] {
        let mut child = std::process::Command::new(BIN)
            .current_dir(root())
            .arg("--home")
            .arg(c.home())
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        drop(child.stdout.take());
        let out = child.wait_with_output().expect("wait");
        let err = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(!err.contains("panicked"), "{args:?}: {err}");
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
}
