//! Bad input fails early and names the fault: the `airlock` binary given a faulty transcript,
//! manifest, policy or start page. Transcript, manifest and policy faults are found before any
//! browser starts; a start page that cannot be loaded ends the run with the reason.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{events, root, text, BIN};

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

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    }

    /// The example task, edited.
    fn task(&self, edit: impl Fn(String) -> String) -> String {
        let text = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("example task");
        self.file("task.toml", &edit(text))
    }

    fn airlock(&self, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .current_dir(root())
            .arg("--home")
            .arg(self.home())
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CI_READONLY_PASSWORD")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run airlock")
    }

    /// `airlock run TASK --model scripted:TRANSCRIPT --approvals deny EXTRA…`.
    fn run(&self, task: &str, transcript: &str, extra: &[&str]) -> Output {
        let model = format!("scripted:{transcript}");
        let mut args = vec!["run", task, "--model", &model, "--approvals", "deny"];
        args.extend_from_slice(extra);
        self.airlock(&args)
    }
}

/// Nothing ran: no run id printed, no sandbox, no audit database.
fn assert_nothing_started(home: &Path, out: &Output) {
    let t = text(out);
    assert!(
        !t.lines().any(|l| l.starts_with("run run-")),
        "a run started:\n{t}"
    );
    assert!(!t.contains("sandbox"), "{t}");
    assert!(!t.contains("teardown"), "{t}");
    assert!(
        !home.join("airlock.db").exists(),
        "the audit was opened, so a run could have started:\n{t}"
    );
}

fn run_id(o: &Output) -> String {
    let t = text(o);
    t.lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(':').next()))
        .unwrap_or_else(|| panic!("no run id in output:\n{t}"))
        .to_string()
}

fn of_kind<'a>(evs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["kind"] == kind).collect()
}

#[test]
fn run_without_a_model_is_a_usage_error_with_help() {
    let c = Case::new();
    let out = c.airlock(&["run", EXAMPLE_TASK]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let t = text(&out);
    assert!(t.contains("--model"), "{t}");
    assert!(t.contains("Usage:"), "{t}");
    assert_nothing_started(&c.home(), &out);
}

#[test]
fn a_faulty_transcript_is_refused_before_any_browser_starts_naming_the_line() {
    let example = std::fs::read_to_string(root().join(EXAMPLE_TRANSCRIPT)).expect("transcript");
    let lines = example.lines().count();
    let truncated = example
        .get(..example.trim_end().len() - 20)
        .expect("cut")
        .to_string();
    let cases: Vec<(&str, String, String)> = vec![
        (
            "malformed",
            "{\"action\":\"screenshot\"}\n{\"action\": \"left_click\",\n".into(),
            "transcript line 2: invalid JSON".into(),
        ),
        (
            "unknown action",
            "# recorded\n{\"action\":\"screenshot\"}\n{\"action\":\"teleport\",\"coordinate\":[1,2]}\n"
                .into(),
            "transcript line 3: unknown action `teleport`".into(),
        ),
        (
            "off screen",
            "{\"action\":\"left_click\",\"coordinate\":[1500,300]}\n".into(),
            "outside the 1280x800 screenshot".into(),
        ),
        (
            "unknown secret",
            "{\"action\":\"screenshot\"}\n{\"action\":\"type\",\"text\":\"{{secret:admin_pw}}\"}\n"
                .into(),
            "transcript line 2: unknown secret `admin_pw`: the task declares `ci-readonly`".into(),
        ),
        ("empty", String::new(), "holds no turn".into()),
        (
            "truncated",
            truncated,
            format!("transcript line {lines}: invalid JSON"),
        ),
    ];
    for (what, transcript, want) in cases {
        let c = Case::new();
        let file = c.file("t.jsonl", &transcript);
        let out = c.run(EXAMPLE_TASK, &file, &[]);
        let t = text(&out);
        assert_eq!(out.status.code(), Some(6), "{what}:\n{t}");
        assert!(t.contains(&want), "{what}: want `{want}` in:\n{t}");
        assert!(t.contains("nothing was started"), "{what}:\n{t}");
        assert_nothing_started(&c.home(), &out);
    }
}

#[test]
fn an_unknown_secret_in_the_login_names_it_before_any_browser_starts() {
    let c = Case::new();
    let task = c.task(|t| t.replace("broker://ci-readonly", "broker://ci-admin"));
    let out = c.run(&task, EXAMPLE_TRANSCRIPT, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("unknown secret `ci-admin`"), "{t}");
    assert!(!t.contains("sandbox"), "{t}");
    assert!(!t.lines().any(|l| l.starts_with("run run-")), "{t}");
}

#[test]
fn an_unknown_manifest_key_is_named_with_its_table_and_line() {
    let c = Case::new();
    let task = c.task(|t| t.replace("[scope]\n", "[scope]\ncolour = \"red\"\n"));
    let line = std::fs::read_to_string(&task)
        .unwrap()
        .lines()
        .position(|l| l.starts_with("colour"))
        .unwrap()
        + 1;
    let out = c.run(&task, EXAMPLE_TRANSCRIPT, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "unknown key `colour` in [scope] (line {line}, column 1); expected `domains`"
        )),
        "{t}"
    );
    assert!(!t.contains("not valid TOML"), "{t}");
    assert_nothing_started(&c.home(), &out);
}

#[test]
fn the_printed_defaults_pass_policy_check() {
    let c = Case::new();
    let defaults = c.airlock(&["policy", "defaults"]);
    assert_eq!(defaults.status.code(), Some(0));
    let file = c.file("defaults.cedar", &String::from_utf8_lossy(&defaults.stdout));
    let out = c.airlock(&["policy", "check", &file]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(t.contains("repeat Airlock's built-in defaults"), "{t}");
    assert!(!t.contains("used twice"), "{t}");
    assert!(!t.contains("warning"), "{t}");
}

#[test]
fn a_policy_error_points_at_the_offending_rule() {
    let c = Case::new();
    let file = c.file(
        "ops.cedar",
        "// ops rules\n\n@id(\"ops.fine\")\n@reason(\"fine\")\nforbid (principal, action == Airlock::Action::\"click\", resource) when { resource.name like \"*Rerun*\" };\n\n  @id(\"airlock.permit-declared-effects\")\n  @reason(\"mine\")\n  forbid (principal, action, resource);\n",
    );
    let out = c.airlock(&["policy", "check", &file]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(
        t.contains(&format!(
            "{file}:7:3: policy id `airlock.permit-declared-effects` is used twice (also at defaults.cedar:"
        )),
        "{t}"
    );
    assert!(!t.contains(":1:1:"), "{t}");
}

const UNATTENDED_SUBMIT: &str = "// The CI bot files incident notes on its own.\n@id(\"ops.bot-files-notes\")\n@reason(\"INC notes are reviewed after the fact by the on-call\")\npermit (principal, action == Airlock::Action::\"unattended\", resource)\nwhen { context.effect == \"submit\" && resource.host == \"incidents.example\" };\n";

#[test]
fn policy_check_warns_when_a_rule_makes_high_risk_unattended() {
    let c = Case::new();
    let file = c.file("ops.cedar", UNATTENDED_SUBMIT);
    let out = c.airlock(&["policy", "check", &file]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "warning: {file}:2:1: policy `ops.bot-files-notes` lets high-risk actions"
        )),
        "{t}"
    );
    assert!(err.contains("--allow-unattended-high-risk"), "{t}");
    // A permit that keeps high risk for a human is not warned about.
    let fine = c.file(
        "fine.cedar",
        "@id(\"ops.fine\")\n@reason(\"drafts\")\npermit (principal, action == Airlock::Action::\"unattended\", resource)\nwhen { context.tier != \"high\" };\n",
    );
    let out = c.airlock(&["policy", "check", &fine]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("warning"), "{}", text(&out));
}

#[test]
fn run_refuses_an_unattended_high_risk_rule_without_reason_and_acknowledgement() {
    let c = Case::new();
    let with_reason = c.file("ops.cedar", UNATTENDED_SUBMIT);
    let out = c.run(
        EXAMPLE_TASK,
        EXAMPLE_TRANSCRIPT,
        &["--policy", &with_reason],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("policy `ops.bot-files-notes`"), "{t}");
    assert!(t.contains("pass --allow-unattended-high-risk"), "{t}");
    assert_nothing_started(&c.home(), &out);

    let no_reason = c.file(
        "bare.cedar",
        &UNATTENDED_SUBMIT.replace(
            "@reason(\"INC notes are reviewed after the fact by the on-call\")\n",
            "",
        ),
    );
    let out = c.run(
        EXAMPLE_TASK,
        EXAMPLE_TRANSCRIPT,
        &["--policy", &no_reason, "--allow-unattended-high-risk"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(2), "{t}");
    assert!(t.contains("gives no reason"), "{t}");
    assert!(t.contains("@reason"), "{t}");
    assert_nothing_started(&c.home(), &out);
}

#[test]
fn an_acknowledged_unattended_high_risk_rule_runs_and_the_audit_records_it() {
    let c = Case::new();
    let policy = c.file("ops.cedar", UNATTENDED_SUBMIT);
    // `--approvals deny`, yet the submit runs: the operator's rule took the human out.
    let out = c.run(
        EXAMPLE_TASK,
        EXAMPLE_TRANSCRIPT,
        &["--policy", &policy, "--allow-unattended-high-risk"],
    );
    let t = text(&out);
    assert_eq!(out.status.code(), Some(0), "{t}");
    assert!(
        t.contains("WARNING: ") && t.contains("lets high-risk actions run without a human"),
        "{t}"
    );
    let evs = events(&c.home(), &run_id(&out));
    let noted = of_kind(&evs, "unattended_high_risk");
    assert_eq!(noted.len(), 1, "{evs:?}");
    assert_eq!(noted[0]["payload"]["rule"], "ops.bot-files-notes");
    assert_eq!(
        noted[0]["payload"]["reason"],
        "INC notes are reviewed after the fact by the on-call"
    );
    let started = of_kind(&evs, "sandbox_started");
    assert!(
        noted[0]["seq"].as_u64() < started[0]["seq"].as_u64(),
        "recorded before the browser started"
    );
}

#[test]
fn a_start_page_that_answers_5xx_ends_the_run_with_the_reason() {
    let c = Case::new();
    let task = c.task(|t| t + "\n[portal.faults]\nerror_every = 1\nerror_paths = [\"/login\"]\n");
    let out = c.run(&task, EXAMPLE_TRANSCRIPT, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(7), "{t}");
    assert!(t.contains("start page: cannot load"), "{t}");
    assert!(t.contains("HTTP 500"), "{t}");
    assert!(!t.contains("step 1:"), "the model was asked:\n{t}");
    let evs = events(&c.home(), &run_id(&out));
    assert!(of_kind(&evs, "proposal").is_empty());
    assert!(of_kind(&evs, "decision").is_empty());
}

#[test]
fn a_start_page_whose_host_does_not_resolve_ends_the_run_with_the_reason() {
    let c = Case::new();
    let task = c.task(|t| {
        t.replace(
            "start_url = \"http://ci.example/login\"",
            "start_url = \"http://nowhere.invalid/\"",
        )
        .replace(
            "domains = [\"ci.example\", \"incidents.example\"]",
            "domains = [\"ci.example\", \"incidents.example\", \"nowhere.invalid\"]",
        ) + "\n[[effects]]\nhost = \"nowhere.invalid\"\nallow = [\"read\"]\n"
    });
    let out = c.run(&task, EXAMPLE_TRANSCRIPT, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(7), "{t}");
    assert!(t.contains("start page: cannot load"), "{t}");
    assert!(t.contains("nowhere.invalid"), "{t}");
    assert!(!t.contains("step 1:"), "the model was asked:\n{t}");
}

#[test]
fn a_start_page_with_delete_in_its_path_is_a_read_and_a_refusal_names_its_rule() {
    let c = Case::new();
    let task = c.task(|t| {
        t.replace(
            "start_url = \"http://ci.example/login\"",
            "start_url = \"http://ci.example/docs/how-to-delete?q=delete-me\"",
        )
    });
    let transcript = c.file(
        "t.jsonl",
        "{\"airlock\":{\"kind\":\"navigate\",\"url\":\"http://incidents.example/incidents/INC-9911\"}}\n{\"type\":\"text\",\"text\":\"Done.\"}\n",
    );
    let out = c.run(&task, &transcript, &[]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(3), "{t}");
    assert!(!t.contains("start page:"), "{t}");
    let evs = events(&c.home(), &run_id(&out));
    let nav = of_kind(&evs, "host_navigate");
    assert_eq!(nav[0]["payload"]["error"], Value::Null, "{:?}", nav[0]);
    assert!(
        t.contains("DENIED by airlock.forbid-undeclared-effects: "),
        "{t}"
    );
    assert!(
        t.contains("effect `read` is not declared for incidents.example/incidents/INC-9911"),
        "{t}"
    );
}
