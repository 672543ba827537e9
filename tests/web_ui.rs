//! The review desk in a real browser: `airlock serve` on a loopback port, reviewers made with
//! `airlock reviewers add`, runs of the example task waiting on the queue (`--approvals web`),
//! and a person's clicks played by Playwright driving Debian's Chromium (`tests/ui/*.mjs`).
//!
//! The HTTP tests in `crates/airlock-server/tests/http.rs` imitate a browser with headers; these
//! do not imitate anything. Each Node script asserts what the page shows and exits non-zero on
//! failure; this file starts the processes and checks what the run and its audit say after.
//! Screenshots of every step are kept under `target/ui-artifacts/<scenario>/`.
//!
//! Needs Node.js and `tests/ui/node_modules` (scripts/setup.sh installs both); without them the
//! tests fail with a message saying so rather than skip.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;

mod common;
use common::{events, root, BIN};

const EXAMPLE_TASK: &str = "examples/ci-incident/task.toml";
const EXAMPLE_TRANSCRIPT: &str = "examples/ci-incident/transcript.jsonl";
const PASSWORD: &str = "a long test password";
const REVIEWER: &str = "alice";
const OPERATOR: &str = "olga";
const VIEWER: &str = "vera";

/// One scenario at a time: each has a run's Chromium and the driver's Chromium, and the CI box
/// has two cores.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Generous bounds so a stuck process fails the test instead of hanging it; never asserted on.
const RUN_START_LIMIT: Duration = Duration::from_secs(180);
const RUN_END_LIMIT: Duration = Duration::from_secs(600);

/// `tests/ui`, checked to be ready to drive a browser.
fn ui_dir() -> PathBuf {
    let ui = root().join("tests/ui");
    let node = Command::new("node").arg("--version").output();
    assert!(
        node.as_ref().is_ok_and(|o| o.status.success()),
        "Node.js is not installed ({node:?}): the web UI tests drive Chromium with Playwright \
         from Node. Run scripts/setup.sh (it installs Debian's nodejs and npm, then runs \
         `npm ci` in tests/ui)."
    );
    assert!(
        ui.join("node_modules/playwright-core/package.json")
            .exists(),
        "{} has no node_modules/playwright-core: run scripts/setup.sh (or `npm ci` in tests/ui)",
        ui.display()
    );
    let chromium = std::env::var_os("UI_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        chromium.exists(),
        "no Chromium at {} for the driver browser: run scripts/setup.sh",
        chromium.display()
    );
    ui
}

/// Where the screenshots go: `<target>/ui-artifacts/`.
fn artifacts() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("ui-artifacts")
}

/// A fresh home with three reviewers and `airlock serve` answering on a free loopback port.
struct Desk {
    dir: tempfile::TempDir,
    serve: Child,
    url: String,
    _turn: std::sync::MutexGuard<'static, ()>,
}

impl Desk {
    fn open() -> Desk {
        let turn = ONE_AT_A_TIME
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        ui_dir();
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        for (name, role) in [
            (REVIEWER, "reviewer"),
            (OPERATOR, "operator"),
            (VIEWER, "viewer"),
        ] {
            let out = Command::new(BIN)
                .arg("--home")
                .arg(&home)
                .args(["reviewers", "add", name, "--role", role])
                .env("AIRLOCK_REVIEWER_PASSWORD", PASSWORD)
                .stdin(Stdio::null())
                .output()
                .expect("airlock reviewers add");
            assert!(out.status.success(), "{}", common::text(&out));
        }
        let log = std::fs::File::create(dir.path().join("serve.log")).expect("log");
        let mut serve = Command::new(BIN)
            .arg("--home")
            .arg(&home)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("airlock serve");
        let mut first = String::new();
        BufReader::new(serve.stdout.take().expect("stdout"))
            .read_line(&mut first)
            .expect("read serve's first line");
        let url = first
            .trim()
            .strip_prefix("airlock: review UI on ")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.path().join("serve.log"));
                panic!("airlock serve did not say where it listens: {first:?} {log:?}")
            })
            .to_string();
        Desk {
            dir,
            serve,
            url,
            _turn: turn,
        }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    /// The example task with room for a reviewer who takes their time, plus `extra_budgets`.
    fn task(&self, extra_budgets: &str) -> PathBuf {
        let text = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("example task");
        let text = text
            .replace("wall_clock_secs = 300", "wall_clock_secs = 1800")
            .replace("[budgets]\n", &format!("[budgets]\n{extra_budgets}"));
        assert!(
            text.contains("wall_clock_secs = 1800"),
            "the example's budgets moved"
        );
        let path = self.dir.path().join("task.toml");
        std::fs::write(&path, text).expect("write task");
        path
    }

    /// `airlock run TASK --approvals web` in the background, once it has said its run id.
    fn start_run(&self, task: &Path) -> Run {
        let out = self.dir.path().join("run.out");
        let child = Command::new(BIN)
            .current_dir(root())
            .arg("--home")
            .arg(self.home())
            .arg("run")
            .arg(task)
            .args(["--model", &format!("scripted:{EXAMPLE_TRANSCRIPT}")])
            .args(["--approvals", "web"])
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out).expect("out"))
            .stderr(std::fs::File::create(out.with_extension("err")).expect("err"))
            .spawn()
            .expect("airlock run");
        let mut run = Run {
            child,
            out,
            id: String::new(),
        };
        let started = Instant::now();
        loop {
            let said = run.output();
            if let Some(id) = said
                .lines()
                .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(':').next()))
            {
                run.id = id.to_string();
                return run;
            }
            if let Ok(Some(status)) = run.child.try_wait() {
                panic!("the run ended ({status}) before saying its id:\n{said}");
            }
            assert!(
                started.elapsed() < RUN_START_LIMIT,
                "no run id yet:\n{said}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs `tests/ui/SCRIPT` with the desk's URL and accounts; panics with its output if it
    /// fails. The scripts' variables are named `UI_*`: a process whose environment holds
    /// `AIRLOCK_RUN=<id>` is that run's, and its teardown kills it.
    fn browser(&self, script: &str, env: &[(&str, &str)]) {
        let dir = artifacts();
        println!(
            "screenshots: {}",
            dir.join(script.trim_end_matches(".mjs")).display()
        );
        let _ = std::fs::remove_dir_all(dir.join(script.trim_end_matches(".mjs")));
        let out = Command::new("node")
            .arg(ui_dir().join(script))
            .current_dir(ui_dir())
            .env("UI_URL", &self.url)
            .env("UI_PASSWORD", PASSWORD)
            .env("UI_REVIEWER", REVIEWER)
            .env("UI_OPERATOR", OPERATOR)
            .env("UI_VIEWER", VIEWER)
            .env("UI_ARTIFACTS", &dir)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .expect("node");
        let said = common::text(&out);
        println!("{said}");
        assert!(
            out.status.success(),
            "tests/ui/{script} failed ({}):\n{said}\nserve log:\n{}",
            out.status,
            std::fs::read_to_string(self.dir.path().join("serve.log")).unwrap_or_default()
        );
    }
}

impl Drop for Desk {
    fn drop(&mut self) {
        let _ = self.serve.kill();
        let _ = self.serve.wait();
    }
}

/// A background `airlock run`.
struct Run {
    child: Child,
    out: PathBuf,
    id: String,
}

impl Run {
    /// What it printed so far (stdout, then stderr).
    fn output(&self) -> String {
        let read = |p: &Path| std::fs::read_to_string(p).unwrap_or_default();
        format!(
            "{}{}",
            read(&self.out),
            read(&self.out.with_extension("err"))
        )
    }

    /// Its exit code and output, once it ends.
    fn finish(&mut self) -> (Option<i32>, String) {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return (status.code(), self.output());
            }
            assert!(
                started.elapsed() < RUN_END_LIMIT,
                "run {} did not end:\n{}",
                self.id,
                self.output()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn the<'a>(evs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["kind"] == kind).collect()
}

fn sealed_result(evs: &[Value]) -> &Value {
    &the(evs, "sealed").last().expect("sealed")["payload"]["result"]
}

fn airlock(home: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("airlock")
}

#[test]
fn a_reviewer_signs_in_watches_the_run_and_approves_it_and_the_replay_opens_from_disk() {
    let desk = Desk::open();
    let mut run = desk.start_run(&desk.task(""));
    let reason = "the note names the failing test and only INC-2048";
    desk.browser("review.mjs", &[("UI_RUN", &run.id), ("UI_REASON", reason)]);
    let (code, said) = run.finish();
    assert_eq!(code, Some(0), "approved and verified:\n{said}");
    assert!(said.contains("succeeded"), "{said}");

    let evs = events(&desk.home(), &run.id);
    let approvals = the(&evs, "approval");
    assert_eq!(
        approvals.len(),
        1,
        "one decision, by the reviewer: {approvals:?}"
    );
    let answer = &approvals[0]["payload"]["answer"];
    assert_eq!(answer["answer"], "approved", "{answer}");
    assert!(
        answer["by"].as_str().unwrap_or("").contains(REVIEWER),
        "{answer}"
    );
    assert_eq!(answer["reason"], reason, "{answer}");
    assert_eq!(sealed_result(&evs)["outcome"], "succeeded");
    let verify = airlock(&desk.home(), &["audit", "verify", &run.id]);
    assert!(verify.status.success(), "{}", common::text(&verify));

    let replay = artifacts().join("replay.html");
    std::fs::create_dir_all(artifacts()).expect("artifacts");
    let out = airlock(
        &desk.home(),
        &["replay", &run.id, "-o", replay.to_str().expect("utf8")],
    );
    assert!(out.status.success(), "{}", common::text(&out));
    desk.browser(
        "replay.mjs",
        &[
            ("UI_RUN", &run.id),
            ("UI_REPLAY", replay.to_str().expect("utf8")),
        ],
    );
}

#[test]
fn a_reviewer_denies_in_the_browser_and_the_run_exits_4() {
    let desk = Desk::open();
    let mut run = desk.start_run(&desk.task(""));
    let reason = "wrong incident: this note belongs on another ticket";
    desk.browser("deny.mjs", &[("UI_RUN", &run.id), ("UI_REASON", reason)]);
    let (code, said) = run.finish();
    assert_eq!(code, Some(4), "denied:\n{said}");
    let evs = events(&desk.home(), &run.id);
    let approvals = the(&evs, "approval");
    assert_eq!(approvals.len(), 1, "{approvals:?}");
    let answer = &approvals[0]["payload"]["answer"];
    assert_eq!(answer["answer"], "denied", "{answer}");
    assert!(
        answer["by"].as_str().unwrap_or("").contains(REVIEWER),
        "{answer}"
    );
    assert_eq!(answer["reason"], reason, "{answer}");
    assert_eq!(sealed_result(&evs)["outcome"], "approval_denied");
    // Nothing reached the tracker: no action ran after the denial.
    let after = evs
        .iter()
        .position(|e| e["kind"] == "approval")
        .expect("approval");
    assert!(
        !evs[after..].iter().any(|e| e["kind"] == "action_result"),
        "the denied submit did not run"
    );
}

#[test]
fn an_operator_stops_a_waiting_run_from_the_browser_and_releases_it() {
    let desk = Desk::open();
    // Frozen after the stop until the operator releases it (or ten minutes pass).
    let mut run = desk.start_run(&desk.task("freeze_secs = 600\n"));
    let reason = "the task names the wrong incident";
    desk.browser("stop.mjs", &[("UI_RUN", &run.id), ("UI_REASON", reason)]);
    let (code, said) = run.finish();
    assert_eq!(code, Some(4), "stopped:\n{said}");
    let evs = events(&desk.home(), &run.id);
    let result = sealed_result(&evs);
    assert_eq!(result["outcome"], "stopped", "{result}");
    assert!(
        result["by"].as_str().unwrap_or("").contains(OPERATOR),
        "{result}"
    );
    assert!(
        result["reason"].as_str().unwrap_or("").contains(reason),
        "{result}"
    );
    assert_eq!(the(&evs, "frozen").len(), 1, "frozen before teardown");
    assert!(!the(&evs, "teardown").is_empty());
    common::assert_no_leftovers(&run.id);
}
