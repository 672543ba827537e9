//! Failure made boring: the host killed at every event boundary, browser faults, portal fault
//! modes, storage faults and concurrency, each with real parts (the `airlock` binary, Chromium,
//! the portal, SQLite, tmpfs and bind mounts).
//!
//! The portal runs in this test process and outlives every `airlock` process it kills, so the
//! system of record can be compared with what the audit says happened.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

use airlock_portal::{FaultConfig, PortalConfig, PortalHandle, SOR_TOKEN_HEADER};
use serde_json::Value;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;
use common::{events, root, text, BIN};

const EXAMPLE_TASK: &str = "examples/ci-incident/task.toml";
const EXAMPLE_TRANSCRIPT: &str = "examples/ci-incident/transcript.jsonl";

async fn portal(faults: FaultConfig) -> PortalHandle {
    airlock_portal::start(
        "127.0.0.1:0".parse().expect("addr"),
        PortalConfig {
            spinner_ms: 300,
            faults,
            ..PortalConfig::default()
        },
    )
    .await
    .expect("portal")
}

/// The example task with its hosts mapped to `portal`, and `extra` TOML replacing sections.
fn task_text(portal: &PortalHandle, edit: impl Fn(String) -> String) -> String {
    let text = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("example task");
    edit(text.replace("\"bundled-portal\"", &format!("\"{}\"", portal.addr)))
        + &format!(
            "\n[verifier]\nheader_name = \"{SOR_TOKEN_HEADER}\"\nheader_env = \"TEST_SOR_TOKEN\"\n"
        )
}

/// One scratch directory: a home, task files, transcripts.
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

    fn command(
        &self,
        home: &Path,
        args: &[&str],
        portal: Option<&PortalHandle>,
    ) -> std::process::Command {
        let mut cmd = std::process::Command::new(BIN);
        cmd.current_dir(root())
            .arg("--home")
            .arg(home)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove(airlock_audit::FAULT_KILL_AFTER_EVENT_ENV)
            .stdin(std::process::Stdio::null());
        if let Some(p) = portal {
            cmd.env("TEST_SOR_TOKEN", &p.sor_token);
            cmd.env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD);
        }
        cmd
    }

    async fn airlock(&self, args: &[&str], portal: Option<&PortalHandle>) -> Output {
        let cmd = self.command(&self.home(), args, portal);
        output(cmd).await
    }
}

async fn output(mut cmd: std::process::Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run airlock"))
        .await
        .expect("join")
}

/// Reads the system of record the way a verifier would.
async fn sor(p: &PortalHandle, path: &str) -> Value {
    common::sor(p.addr, &p.sor_token, path).await
}

/// (method, host, path) of every request that reached the portal's apps.
async fn portal_requests(p: &PortalHandle) -> Vec<(String, String, String)> {
    sor(p, "/_sor/requests")
        .await
        .as_array()
        .expect("request log")
        .iter()
        .map(|e| {
            (
                e["method"].as_str().unwrap_or("").to_string(),
                e["host"].as_str().unwrap_or("").to_string(),
                e["path"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

async fn notes_on(p: &PortalHandle, incident: &str) -> usize {
    sor(p, &format!("/_sor/incidents/{incident}")).await["notes"]
        .as_array()
        .map_or(0, Vec::len)
}

/// Processes of the run (its environment marker and their descendants) that are alive, and
/// whether its profile directory is still there.
fn leftovers(run_id: &str) -> (Vec<String>, bool) {
    let alive = run_pids(run_id, |_| true)
        .into_iter()
        .map(|p| p.to_string())
        .collect();
    let dir = std::env::temp_dir().join(format!("airlock-run-{run_id}"));
    (alive, dir.exists())
}

fn assert_no_leftovers(run_id: &str) {
    let (alive, dir) = leftovers(run_id);
    assert!(
        alive.is_empty(),
        "processes of {run_id} survived: {alive:?}"
    );
    assert!(!dir, "profile directory of {run_id} survived");
}

/// Run ids in a home, newest first.
fn run_ids(home: &Path) -> Vec<String> {
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(["audit", "list"])
        .output()
        .expect("audit list");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// The write-ahead rule, checked on a finished chain: every executed action has its proposal
/// and its decision (and, when it needed one, an approval) recorded before its result. Returns
/// the violations.
fn write_ahead_violations(evs: &[Value]) -> Vec<String> {
    let mut bad = Vec::new();
    let seq_of = |e: &Value| e["seq"].as_u64().unwrap_or(0);
    for r in evs.iter().filter(|e| e["kind"] == "action_result") {
        let rseq = seq_of(r);
        let dseq = r["payload"]["decision_seq"].as_u64().unwrap_or(u64::MAX);
        let Some(d) = evs
            .iter()
            .find(|e| seq_of(e) == dseq && e["kind"] == "decision")
        else {
            bad.push(format!("result {rseq}: no decision at {dseq}"));
            continue;
        };
        if dseq >= rseq {
            bad.push(format!("result {rseq}: decision {dseq} not before it"));
        }
        let step = &d["payload"]["step"];
        if !evs
            .iter()
            .any(|e| e["kind"] == "proposal" && &e["payload"]["step"] == step && seq_of(e) < dseq)
        {
            bad.push(format!("result {rseq}: no proposal before decision {dseq}"));
        }
        match d["payload"]["decision"]["verdict"].as_str() {
            Some("allow" | "checkpoint") => {}
            Some("needs_approval") => {
                let approved = evs.iter().any(|a| {
                    a["kind"] == "approval"
                        && seq_of(a) > dseq
                        && seq_of(a) < rseq
                        && a["payload"]["answer"]["answer"] == "approved"
                });
                if !approved {
                    bad.push(format!(
                        "result {rseq}: executed without a recorded approval"
                    ));
                }
            }
            other => bad.push(format!("result {rseq}: executed a `{other:?}` decision")),
        }
    }
    bad
}

/// The submit of the example (the one irreversible action): its decision, whether its result
/// was recorded, and whether recovery called its outcome unknown.
struct SubmitRecord {
    decided_and_approved: bool,
    executed_ok: bool,
    outcome_unknown: bool,
}

fn submit_record(evs: &[Value]) -> SubmitRecord {
    let seq_of = |e: &Value| e["seq"].as_u64().unwrap_or(0);
    let decision = evs.iter().find(|e| {
        e["kind"] == "decision"
            && e["payload"]["summary"]
                .as_str()
                .is_some_and(|s| s.contains("Submit note"))
    });
    let Some(d) = decision else {
        return SubmitRecord {
            decided_and_approved: false,
            executed_ok: false,
            outcome_unknown: false,
        };
    };
    let dseq = seq_of(d);
    let approved = evs.iter().any(|a| {
        a["kind"] == "approval"
            && seq_of(a) > dseq
            && a["payload"]["answer"]["answer"] == "approved"
    });
    let executed_ok = evs.iter().any(|r| {
        r["kind"] == "action_result"
            && r["payload"]["decision_seq"].as_u64() == Some(dseq)
            && r["payload"]["ok"] == true
    });
    let outcome_unknown = evs.iter().any(|r| {
        r["kind"] == "recovered"
            && r["payload"]["outcome_unknown"].as_array().is_some_and(|u| {
                u.iter()
                    .any(|x| x.as_str().unwrap_or("").contains("Submit note"))
            })
    });
    SubmitRecord {
        decided_and_approved: approved,
        executed_ok,
        outcome_unknown,
    }
}

/// Kills the host right after every event of the ci-incident run (the run's own audit store
/// sends itself SIGKILL once event N is durable), recovers with `airlock recover`, and checks
/// that the chain verifies, nothing of the sandbox survives, every executed action was decided
/// (and approved) before it ran, and the portal's system of record agrees with the audit.
#[tokio::test(flavor = "multi_thread")]
async fn killing_the_host_at_every_event_boundary_loses_no_action() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = c.file("task.toml", &task_text(&p, |t| t));
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let run_args = [
        "run",
        task.to_str().expect("utf8"),
        "--model",
        &model,
        "--approvals",
        "approve-all",
    ];
    let notes_before = notes_on(&p, "INC-2048").await;

    // A clean run first: how many events the example writes.
    let clean = c.airlock(&run_args, Some(&p)).await;
    assert_eq!(clean.status.code(), Some(0), "{}", text(&clean));
    let id = run_ids(&c.home()).first().cloned().expect("run id");
    let total = events(&c.home(), &id).len() as u64;
    assert!(total > 40, "the example writes {total} events");

    // Every boundary, or every `AIRLOCK_TEST_KILL_STRIDE`-th one on a slow machine.
    let stride: u64 = std::env::var("AIRLOCK_TEST_KILL_STRIDE")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let (mut tried, mut lost, mut unknown, mut notes_made) = (0u64, 0u64, 0u64, 0u64);
    let mut n = 1;
    while n < total {
        p.state().reset();
        let home = c.dir.path().join(format!("kill-{n}"));
        let mut cmd = c.command(&home, &run_args, Some(&p));
        cmd.env(airlock_audit::FAULT_KILL_AFTER_EVENT_ENV, n.to_string());
        let out = output(cmd).await;
        assert_eq!(
            out.status.signal(),
            Some(9),
            "kill point {n}: the host was not killed: {}",
            text(&out)
        );
        tried += 1;
        let ids = run_ids(&home);
        assert_eq!(ids.len(), 1, "kill point {n}: {ids:?}");
        let id = ids[0].clone();

        let rec = output(c.command(&home, &["recover"], None)).await;
        assert_eq!(rec.status.code(), Some(0), "kill point {n}: {}", text(&rec));
        assert!(
            text(&rec).contains(&format!("{id}: aborted: host crashed at step")),
            "kill point {n}: {}",
            text(&rec)
        );
        let v = output(c.command(&home, &["audit", "verify", &id], None)).await;
        assert_eq!(v.status.code(), Some(0), "kill point {n}: {}", text(&v));
        assert_no_leftovers(&id);

        let evs = events(&home, &id);
        let kinds: Vec<&str> = evs.iter().filter_map(|e| e["kind"].as_str()).collect();
        assert_eq!(kinds.len() as u64, n + 2, "kill point {n}: {kinds:?}");
        assert_eq!(
            &kinds[kinds.len() - 2..],
            ["recovered", "sealed"],
            "kill point {n}"
        );
        let violations = write_ahead_violations(&evs);
        lost += violations.len() as u64;
        assert!(violations.is_empty(), "kill point {n}: {violations:?}");

        // The system of record agrees with the audit.
        let submit = submit_record(&evs);
        let notes = notes_on(&p, "INC-2048").await;
        let noted = notes > notes_before;
        if noted {
            notes_made += 1;
            if !(submit.decided_and_approved && (submit.executed_ok || submit.outcome_unknown)) {
                lost += 1;
            }
        }
        if submit.executed_ok && !noted {
            lost += 1;
        }
        assert!(
            !noted
                || (submit.decided_and_approved && (submit.executed_ok || submit.outcome_unknown)),
            "kill point {n}: a note exists that the audit does not account for"
        );
        assert!(
            !submit.executed_ok || noted,
            "kill point {n}: the audit says the submit ran but there is no note"
        );
        if submit.outcome_unknown {
            unknown += 1;
        }
        assert_eq!(notes_on(&p, "INC-9911").await, 1, "kill point {n}");
        // Every form post that reached the portal was recorded before it was sent.
        for (method, host, path) in portal_requests(&p).await {
            if method != "POST" {
                continue;
            }
            let accounted = match path.as_str() {
                "/login" => kinds.contains(&"login_started"),
                "/incidents/INC-2048/notes" => submit.decided_and_approved,
                _ => false,
            };
            if !accounted {
                lost += 1;
            }
            assert!(
                accounted,
                "kill point {n}: {method} {host}{path} is not in the audit"
            );
        }
        n += stride;
    }
    println!(
        "kill points tried: {tried} of {} event boundaries; actions lost: {lost}; submits with outcome unknown: {unknown}; notes written: {notes_made}",
        total - 1
    );
    assert_eq!(lost, 0);
    assert!(tried >= (total - 1) / stride);
}

// ---------------------------------------------------------------------------------------------
// Helpers for runs with their own transcript and task.

/// A task for `portal` with the example's login, scope and effects, `budgets` replacing the
/// example's, and `portal_faults` as its `[portal.faults]` table (only read by the bundled portal;
/// here the test's portal carries the faults).
fn short_task(c: &Case, p: &PortalHandle, step_timeout: u64) -> PathBuf {
    let text = task_text(p, |t| {
        t.replace(
            "step_timeout_secs = 20",
            &format!("step_timeout_secs = {step_timeout}"),
        )
    });
    c.file("task.toml", &text)
}

fn transcript(c: &Case, name: &str, lines: &[String]) -> String {
    let p = c.file(name, &(lines.join("\n") + "\n"));
    format!("scripted:{}", p.display())
}

fn click(x: u32, y: u32) -> String {
    serde_json::json!({"action": "left_click", "coordinate": [x, y]}).to_string()
}

fn navigate(url: &str) -> String {
    serde_json::json!({"airlock": {"kind": "navigate", "url": url}}).to_string()
}

fn wait_for_text(text: &str, timeout_ms: u64) -> String {
    serde_json::json!({"airlock": {"kind": "wait", "condition": {"until": "text_present", "text": text}, "timeout_ms": timeout_ms}})
        .to_string()
}

fn claim(text: &str) -> String {
    serde_json::json!({"type": "text", "text": text}).to_string()
}

/// The example transcript's lines.
fn example_lines() -> Vec<String> {
    std::fs::read_to_string(root().join(EXAMPLE_TRANSCRIPT))
        .expect("transcript")
        .lines()
        .map(str::to_string)
        .collect()
}

fn of_kind<'a>(evs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["kind"] == kind).collect()
}

/// Polls the home until the newest run has an event of `kind` (the run is then at that point),
/// giving up after `limit` (a guard against a hung test, not a measurement).
async fn wait_for_event(home: &Path, kind: &str, limit: std::time::Duration) -> Option<String> {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if let Some(id) = run_ids(home).first() {
            if events(home, id).iter().any(|e| e["kind"] == kind) {
                return Some(id.clone());
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    None
}

/// Pids of the run's live processes (those with its environment marker and their descendants:
/// Chromium's zygote starts renderers with a clean environment) whose command line satisfies
/// `pick`.
fn run_pids(run_id: &str, pick: impl Fn(&str) -> bool) -> Vec<i32> {
    let marker = format!("AIRLOCK_RUN={run_id}");
    let mut table = Vec::new();
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let mut fields = stat.rsplit(')').next().unwrap_or("").split_whitespace();
        // A zombie is dead already: only its parent's wait is missing.
        if matches!(fields.next(), Some("Z" | "X") | None) {
            continue;
        }
        let ppid: i32 = fields.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let env = std::fs::read(e.path().join("environ")).unwrap_or_default();
        let marked = env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes());
        let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        table.push((pid, ppid, marked, cmd));
    }
    let mut found: Vec<i32> = table.iter().filter(|t| t.2).map(|t| t.0).collect();
    loop {
        let before = found.len();
        for (pid, ppid, _, _) in &table {
            if found.contains(ppid) && !found.contains(pid) {
                found.push(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    table
        .iter()
        .filter(|t| found.contains(&t.0) && pick(&t.3))
        .map(|t| t.0)
        .collect()
}

fn signal(pid: i32, sig: &str) {
    use rustix::process::{kill_process, Pid, Signal};
    let sig = match sig {
        "KILL" => Signal::KILL,
        "STOP" => Signal::STOP,
        other => panic!("unexpected signal {other}"),
    };
    if let Some(pid) = Pid::from_raw(pid) {
        let _ = kill_process(pid, sig);
    }
}

/// Waits for a child with a generous guard: a host that hangs fails the test instead of
/// hanging it.
async fn finish(child: std::process::Child, guard: std::time::Duration) -> Output {
    let pid = child.id();
    let waiter = tokio::task::spawn_blocking(move || child.wait_with_output().expect("wait"));
    match tokio::time::timeout(guard, waiter).await {
        Ok(out) => out.expect("join"),
        Err(_) => {
            signal(pid as i32, "KILL");
            panic!("airlock (pid {pid}) hung: still running after {guard:?}");
        }
    }
}

fn spawn(
    c: &Case,
    task: &Path,
    model: &str,
    approvals: &str,
    p: &PortalHandle,
) -> std::process::Child {
    c.command(
        &c.home(),
        &[
            "run",
            task.to_str().expect("utf8"),
            "--model",
            model,
            "--approvals",
            approvals,
        ],
        Some(p),
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .expect("spawn airlock")
}

const GUARD: std::time::Duration = std::time::Duration::from_secs(120);

/// A run that ended on a browser fault: exit 7, the fault on record with what was observed, the
/// chain intact, nothing left behind.
async fn assert_browser_fault(c: &Case, out: &Output, observed: &str) -> Vec<Value> {
    assert_eq!(out.status.code(), Some(7), "{}", text(out));
    let id = run_ids(&c.home()).first().cloned().expect("run");
    let evs = events(&c.home(), &id);
    let faults = of_kind(&evs, "browser_fault");
    assert_eq!(faults.len(), 1, "{}", text(out));
    let seen = faults[0]["payload"]["observed"].as_str().unwrap_or("");
    assert!(seen.contains(observed), "observed: {seen}");
    assert!(text(out).contains("browser fault"), "{}", text(out));
    assert_eq!(evs.last().unwrap()["kind"], "sealed");
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_no_leftovers(&id);
    evs
}

// ---------------------------------------------------------------------------------------------
// Browser faults

#[tokio::test(flavor = "multi_thread")]
async fn a_crashed_renderer_ends_the_run_with_the_crash_on_record() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = short_task(&c, &p, 20);
    let model = transcript(
        &c,
        "t.jsonl",
        &[wait_for_text("never shown", 15_000), click(10, 10)],
    );
    let child = spawn(&c, &task, &model, "deny", &p);
    let id = wait_for_event(&c.home(), "decision", GUARD)
        .await
        .expect("step 1 decided");
    let renderers = run_pids(&id, |cmd| cmd.contains("--type=renderer"));
    assert!(!renderers.is_empty(), "no renderer found");
    for pid in renderers {
        signal(pid, "KILL");
    }
    let out = finish(child, GUARD).await;
    let evs = assert_browser_fault(&c, &out, "renderer crashed").await;
    // The wait that was running failed; the next action never ran.
    let results = of_kind(&evs, "action_result");
    assert_eq!(results.len(), 1, "{results:?}");
    assert_eq!(results[0]["payload"]["ok"], false);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_browser_ends_the_run_at_once() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = short_task(&c, &p, 20);
    let model = transcript(
        &c,
        "t.jsonl",
        &[wait_for_text("never shown", 15_000), click(10, 10)],
    );
    let child = spawn(&c, &task, &model, "deny", &p);
    let id = wait_for_event(&c.home(), "decision", GUARD)
        .await
        .expect("step 1 decided");
    let browser = run_pids(&id, |cmd| {
        cmd.contains("chromium") && !cmd.contains("--type=")
    });
    assert!(!browser.is_empty(), "no browser process found");
    for pid in browser {
        signal(pid, "KILL");
    }
    let out = finish(child, GUARD).await;
    assert_browser_fault(&c, &out, "pipe closed").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_browser_that_stops_answering_is_declared_hung_and_torn_down() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    // A short step timeout: every CDP call is bounded by it.
    let task = short_task(&c, &p, 4);
    let model = transcript(
        &c,
        "t.jsonl",
        &[wait_for_text("never shown", 15_000), click(10, 10)],
    );
    let child = spawn(&c, &task, &model, "deny", &p);
    let id = wait_for_event(&c.home(), "decision", GUARD)
        .await
        .expect("step 1 decided");
    // SIGSTOP: the pipe stays open, nothing answers on it.
    for pid in run_pids(&id, |cmd| cmd.contains("chromium")) {
        signal(pid, "STOP");
    }
    let out = finish(child, GUARD).await;
    assert_browser_fault(&c, &out, "stopped answering").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dialog_loop_is_dismissed_recorded_and_left_behind() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = short_task(&c, &p, 10);
    let model = transcript(
        &c,
        "t.jsonl",
        &[
            navigate("http://ci.example/lab/alerts"),
            wait_for_text("never shown", 2_000),
            navigate("http://incidents.example/incidents/INC-2048"),
            claim("done"),
        ],
    );
    let out = finish(spawn(&c, &task, &model, "deny", &p), GUARD).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let id = run_ids(&c.home()).first().cloned().expect("run");
    let evs = events(&c.home(), &id);
    let dialogs = of_kind(&evs, "dialogs_dismissed");
    assert!(
        dialogs.iter().any(|d| d["payload"]["dialog_loop"] == true),
        "{dialogs:?}"
    );
    // The loop did not hold the agent: the wait for text that never appears is reported as
    // failed (not as success), and the navigations on either side of it ran.
    let results = of_kind(&evs, "action_result");
    let (waits, others): (Vec<&Value>, Vec<&Value>) = results.iter().copied().partition(|r| {
        r["payload"]["note"]
            .as_str()
            .is_some_and(|n| n.contains("condition never held"))
    });
    assert_eq!(waits.len(), 1, "{results:?}");
    assert_eq!(waits[0]["payload"]["ok"], false, "{results:?}");
    assert!(
        others.iter().all(|r| r["payload"]["ok"] == true),
        "{results:?}"
    );
    let last_obs = of_kind(&evs, "observation").last().copied().unwrap();
    assert_eq!(
        last_obs["payload"]["url"],
        "http://incidents.example/incidents/INC-2048"
    );
    assert_no_leftovers(&id);
}

// ---------------------------------------------------------------------------------------------
// A flaky site: the portal's fault modes, and the host's one answer to each

async fn run_example_against(
    faults: FaultConfig,
    lines: &[String],
) -> (Case, PortalHandle, Output, Vec<Value>) {
    let p = portal(faults).await;
    let c = Case::new();
    let task = short_task(&c, &p, 8);
    let model = transcript(&c, "t.jsonl", lines);
    let out = finish(spawn(&c, &task, &model, "approve-all", &p), GUARD).await;
    let id = run_ids(&c.home()).first().cloned().expect("run");
    let evs = events(&c.home(), &id);
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_no_leftovers(&id);
    (c, p, out, evs)
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_responses_are_waited_out_and_the_example_still_succeeds() {
    let faults = FaultConfig {
        slow_ms: 250,
        ..FaultConfig::default()
    };
    let (_c, p, out, _) = run_example_against(faults, &example_lines()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(notes_on(&p, "INC-2048").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_on_a_read_is_loaded_again_and_the_run_goes_on() {
    let faults = FaultConfig {
        error_first: 1,
        error_paths: vec!["/runs/RUN-78432".into()],
        ..FaultConfig::default()
    };
    let (_c, p, out, evs) = run_example_against(faults, &example_lines()).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let retries = of_kind(&evs, "retry");
    assert_eq!(retries.len(), 1, "{retries:?}");
    assert_eq!(retries[0]["payload"]["status"], 500);
    assert_eq!(
        retries[0]["payload"]["url"],
        "http://ci.example/runs/RUN-78432"
    );
    let seq = retries[0]["seq"].as_u64().unwrap();
    // Write-ahead: the reload is on record before its result.
    let result = of_kind(&evs, "retry_result")[0];
    assert!(result["seq"].as_u64().unwrap() > seq);
    assert_eq!(result["payload"]["ok"], true);
    assert_eq!(notes_on(&p, "INC-2048").await, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_that_persists_is_retried_twice_then_reported_and_nothing_else_changes() {
    let faults = FaultConfig {
        error_every: 1,
        error_paths: vec!["/runs/RUN-78432".into()],
        ..FaultConfig::default()
    };
    let (_c, p, out, evs) = run_example_against(faults, &example_lines()).await;
    assert_ne!(out.status.code(), Some(0), "{}", text(&out));
    assert_eq!(of_kind(&evs, "retry").len(), 2);
    let gave_up = of_kind(&evs, "server_error");
    assert_eq!(gave_up.len(), 1, "{gave_up:?}");
    assert_eq!(gave_up[0]["payload"]["retried"], 2);
    // The run page was requested three times by the browser (one load, two reloads), no more.
    let loads = portal_requests(&p)
        .await
        .into_iter()
        .filter(|(m, _, path)| m == "GET" && path == "/runs/RUN-78432")
        .count();
    assert_eq!(loads, 3);
    assert_eq!(sor(&p, "/_sor/runs/RUN-78432").await["deleted"], false);
    assert_eq!(notes_on(&p, "INC-9911").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_500_on_a_submit_is_never_repeated() {
    let faults = FaultConfig {
        error_first: 1,
        error_paths: vec!["/incidents/INC-2048/notes".into()],
        ..FaultConfig::default()
    };
    let (_c, p, out, evs) = run_example_against(faults, &example_lines()).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let posts = portal_requests(&p)
        .await
        .into_iter()
        .filter(|(m, _, path)| m == "POST" && path == "/incidents/INC-2048/notes")
        .count();
    assert_eq!(posts, 1, "a submission was repeated");
    assert!(of_kind(&evs, "retry").is_empty());
    let report = of_kind(&evs, "server_error");
    assert_eq!(report.len(), 1, "{report:?}");
    assert_eq!(report[0]["payload"]["retried"], false);
    assert_eq!(notes_on(&p, "INC-2048").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_that_never_answers_ends_the_step_not_the_host() {
    let faults = FaultConfig {
        hang_paths: vec!["/runs/RUN-78432".into()],
        ..FaultConfig::default()
    };
    let lines: Vec<String> = example_lines()
        .into_iter()
        .take(6)
        .chain([claim("stuck")])
        .collect();
    let (_c, p, out, evs) = run_example_against(faults, &lines).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out));
    let stuck = of_kind(&evs, "action_result").into_iter().find(|r| {
        r["payload"]["note"]
            .as_str()
            .unwrap_or("")
            .contains("still loading")
    });
    assert!(stuck.is_some(), "{}", text(&out));
    // The run still observed, claimed, verified and tore down after the hang.
    for kind in ["claim", "verification", "teardown"] {
        assert_eq!(of_kind(&evs, kind).len(), 1, "{kind}");
    }
    assert_eq!(notes_on(&p, "INC-2048").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn layout_variants_are_repeatable_per_seed_and_never_cause_an_undecided_effect() {
    let faults = FaultConfig {
        layout_variants: true,
        seed: 7,
        ..FaultConfig::default()
    };
    let summaries = |evs: &[Value]| -> Vec<String> {
        of_kind(evs, "decision")
            .iter()
            .map(|d| {
                format!(
                    "{} {}",
                    d["payload"]["summary"], d["payload"]["decision"]["verdict"]
                )
            })
            .collect()
    };
    let (_c1, p1, _o1, e1) = run_example_against(faults.clone(), &example_lines()).await;
    let (_c2, p2, _o2, e2) = run_example_against(faults, &example_lines()).await;
    // Same seed, same pages, same grounding, same decisions.
    assert_eq!(summaries(&e1), summaries(&e2));
    for (p, evs) in [(&p1, &e1), (&p2, &e2)] {
        assert_eq!(notes_on(p, "INC-9911").await, 1);
        assert_eq!(sor(p, "/_sor/runs/RUN-78432").await["deleted"], false);
        assert!(write_ahead_violations(evs).is_empty());
        // A note exists only if the audit shows its submit decided, approved and executed.
        if notes_on(p, "INC-2048").await > 1 {
            let s = submit_record(evs);
            assert!(s.decided_and_approved && s.executed_ok);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_session_is_renewed_by_the_host_and_the_model_is_told() {
    let faults = FaultConfig {
        expire_session_on: vec!["/runs/RUN-78432".into()],
        ..FaultConfig::default()
    };
    // An adaptive model repeats the click that the expiry swallowed (the host tells it so).
    let mut lines = example_lines();
    let open_run = lines[5].clone();
    lines.insert(6, open_run);
    let (_c, p, out, evs) = run_example_against(faults, &lines).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let expired = of_kind(&evs, "session_expired");
    assert_eq!(expired.len(), 1, "{}", text(&out));
    assert_eq!(expired[0]["payload"]["url"], "http://ci.example/login");
    // Two host-owned logins, each recorded before it ran; the model never typed a password.
    assert_eq!(of_kind(&evs, "login_started").len(), 2);
    let logins = of_kind(&evs, "login");
    assert_eq!(logins.len(), 2);
    assert!(logins.iter().all(|l| l["payload"]["ok"] == true));
    assert_eq!(of_kind(&evs, "return_after_login").len(), 1);
    assert_eq!(notes_on(&p, "INC-2048").await, 2);
}

// ---------------------------------------------------------------------------------------------
// Storage faults: the run refuses to act when its record cannot be written, and says why

/// A home with an initialised audit store (as a previous run would leave it).
fn prepared_home(c: &Case) -> PathBuf {
    let home = c.home();
    airlock_audit::SqliteStore::open(&home).expect("store");
    home
}

/// Holds the audit database's write lock from another connection (another process would look
/// the same to SQLite) until the returned sender is dropped or sent to.
fn hold_write_lock(db: PathBuf) -> (std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>) {
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        let conn = rusqlite::Connection::open(db).expect("open db");
        conn.execute_batch("BEGIN EXCLUSIVE").expect("lock");
        ready_tx.send(()).expect("ready");
        let _ = rx.recv();
        conn.execute_batch("ROLLBACK").expect("unlock");
    });
    ready_rx.recv().expect("lock taken");
    (tx, t)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_locked_audit_database_refuses_the_run_before_anything_reaches_the_site() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let home = prepared_home(&c);
    let task = short_task(&c, &p, 8);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let (unlock, t) = hold_write_lock(home.join(airlock_audit::DB_FILE));
    let out = finish(spawn(&c, &task, &model, "approve-all", &p), GUARD).await;
    drop(unlock);
    t.join().expect("lock thread");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("audit database is locked by another process"),
        "{}",
        text(&out)
    );
    assert!(portal_requests(&p).await.is_empty(), "the site was reached");
    assert!(run_ids(&home).is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_audit_lock_taken_mid_run_stops_it_before_the_next_action() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let home = prepared_home(&c);
    let task = short_task(&c, &p, 8);
    let model = transcript(
        &c,
        "t.jsonl",
        &[
            wait_for_text("never shown", 3_000),
            navigate("http://incidents.example/incidents/INC-2048"),
            claim("done"),
        ],
    );
    let child = spawn(&c, &task, &model, "deny", &p);
    let id = wait_for_event(&home, "decision", GUARD)
        .await
        .expect("step 1 decided");
    // The wait is running; its result will find the database locked for longer than the
    // store's busy timeout (10 s).
    let (unlock, t) = hold_write_lock(home.join(airlock_audit::DB_FILE));
    let out = finish(child, GUARD).await;
    drop(unlock);
    t.join().expect("lock thread");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("locked by another process"),
        "{}",
        text(&out)
    );
    // Nothing ran after the record failed: the next step's page was never requested.
    assert!(
        !portal_requests(&p)
            .await
            .iter()
            .any(|(_, _, path)| path == "/incidents/INC-2048"),
        "an action ran after its record failed"
    );
    assert_no_leftovers(&id);
    // The next invocation seals it; the wait whose result was never written is "outcome unknown".
    let rec = c.airlock(&["recover"], None).await;
    assert_eq!(rec.status.code(), Some(0), "{}", text(&rec));
    assert!(text(&rec).contains("outcome unknown"), "{}", text(&rec));
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
}

/// Runs `script` with `sh` in a private mount namespace (as root), with `BIN`, `HOME_DIR`, `TASK`
/// and `MODEL` set; returns its output.
async fn in_mount_namespace(
    c: &Case,
    p: &PortalHandle,
    task: &Path,
    model: &str,
    script: &str,
) -> Output {
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "sh", "-c", script])
        .current_dir(root())
        .env("BIN", BIN)
        .env("HOME_DIR", c.home())
        .env("TASK", task)
        .env("MODEL", model)
        .env("NO_COLOR", "1")
        .env("TEST_SOR_TOKEN", &p.sor_token)
        .env("CI_READONLY_PASSWORD", airlock_portal::TEST_PASSWORD)
        .env_remove(airlock_audit::FAULT_KILL_AFTER_EVENT_ENV)
        .stdin(std::process::Stdio::null());
    output(cmd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_while_writing_a_screenshot_stops_the_run_before_any_model_action() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    prepared_home(&c);
    let task = short_task(&c, &p, 8);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    // The blob store on a 24 KiB tmpfs: the baseline records fit, a screenshot does not. Every
    // check runs inside the namespace, where the blobs still exist.
    let script = r#"
mount -t tmpfs -o size=24k tmpfs "$HOME_DIR/blobs" || exit 99
"$BIN" --home "$HOME_DIR" run "$TASK" --model "$MODEL" --approvals approve-all
echo "run-exit=$?"
"$BIN" --home "$HOME_DIR" recover
echo "recover-exit=$?"
"$BIN" --home "$HOME_DIR" audit verify
echo "verify-exit=$?"
echo "decisions=$("$BIN" --home "$HOME_DIR" audit show latest | grep -c '"kind":"decision"')"
"#;
    let out = in_mount_namespace(&c, &p, &task, &model, script).await;
    let t = text(&out);
    assert!(t.contains("run-exit=1"), "{t}");
    assert!(t.contains("No space left on device"), "{t}");
    assert!(t.contains("recover-exit=0"), "{t}");
    assert!(t.contains("verify-exit=0"), "{t}");
    assert!(t.contains("decisions=0"), "{t}");
    // The host's own sign-in ran; no action of the model reached the site.
    let requests = portal_requests(&p).await;
    assert!(
        requests.iter().all(|(m, _, path)| path == "/login"
            || (m == "GET" && (path == "/runs" || path == "/favicon.ico"))),
        "{requests:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_read_only_home_refuses_the_run_and_says_why() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    prepared_home(&c);
    let task = short_task(&c, &p, 8);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let script = r#"
mount --bind "$HOME_DIR" "$HOME_DIR" && mount -o remount,bind,ro "$HOME_DIR" || exit 99
"$BIN" --home "$HOME_DIR" run "$TASK" --model "$MODEL" --approvals approve-all
echo "run-exit=$?"
"#;
    let out = in_mount_namespace(&c, &p, &task, &model, script).await;
    let t = text(&out);
    assert!(t.contains("run-exit=1"), "{t}");
    assert!(t.contains("audit home is not writable"), "{t}");
    assert!(t.to_lowercase().contains("read-only file system"), "{t}");
    assert!(portal_requests(&p).await.is_empty(), "the site was reached");
}

// ---------------------------------------------------------------------------------------------
// Concurrency: several `airlock` processes on one home at once

#[tokio::test(flavor = "multi_thread")]
async fn three_processes_on_one_home_keep_separate_valid_chains() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = short_task(&c, &p, 20);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let children: Vec<_> = (0..3)
        .map(|_| spawn(&c, &task, &model, "approve-all", &p))
        .collect();
    let mut outs = Vec::new();
    for child in children {
        outs.push(finish(child, GUARD * 2).await);
    }
    for o in &outs {
        assert_eq!(o.status.code(), Some(0), "{}", text(o));
    }
    let ids = run_ids(&c.home());
    assert_eq!(ids.len(), 3, "{ids:?}");
    for id in &ids {
        let evs = events(&c.home(), id);
        assert!(evs.iter().all(|e| e["run_id"] == id.as_str()));
        assert_eq!(evs.last().unwrap()["kind"], "sealed");
        assert!(write_ahead_violations(&evs).is_empty());
        assert_no_leftovers(id);
    }
    let v = c.airlock(&["audit", "verify"], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert_eq!(notes_on(&p, "INC-2048").await, 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_during_an_approval_wait_is_recovered_and_its_request_cancelled() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let task = short_task(&c, &p, 20);
    let model = format!("scripted:{EXAMPLE_TRANSCRIPT}");
    let mut child = spawn(&c, &task, &model, "web", &p);
    let id = wait_for_event(&c.home(), "approval_requested", GUARD)
        .await
        .expect("waiting for approval");
    child.kill().expect("kill -9");
    let _ = child.wait();
    let rec = c.airlock(&["recover"], None).await;
    assert_eq!(rec.status.code(), Some(0), "{}", text(&rec));
    let t = text(&rec);
    assert!(
        t.contains(&format!("{id}: aborted: host crashed at step 11")),
        "{t}"
    );
    let request = t
        .lines()
        .find_map(|l| l.trim().strip_prefix("approval request "))
        .and_then(|l| l.split_whitespace().next())
        .expect("a cancelled request")
        .to_string();
    // Approving it now cannot make anything run: it is closed.
    let late = c.airlock(&["approvals", "approve", &request], None).await;
    assert_ne!(late.status.code(), Some(0), "{}", text(&late));
    assert_no_leftovers(&id);
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let evs = events(&c.home(), &id);
    assert!(write_ahead_violations(&evs).is_empty());
    // The submit never ran: nothing to call "outcome unknown", and no note.
    let recovered = of_kind(&evs, "recovered");
    assert_eq!(
        recovered[0]["payload"]["outcome_unknown"],
        serde_json::json!([])
    );
    assert_eq!(notes_on(&p, "INC-2048").await, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_killed_while_a_stopped_run_is_frozen_is_recovered_and_cleaned_up() {
    let p = portal(FaultConfig::default()).await;
    let c = Case::new();
    let text_ = task_text(&p, |t| {
        t.replace("max_denials = 3", "max_denials = 3\nfreeze_secs = 60")
    });
    let task = c.file("task.toml", &text_);
    let model = transcript(
        &c,
        "t.jsonl",
        &[wait_for_text("never shown", 15_000), click(10, 10)],
    );
    let mut child = spawn(&c, &task, &model, "deny", &p);
    let id = wait_for_event(&c.home(), "decision", GUARD)
        .await
        .expect("step 1 decided");
    let stop = c
        .airlock(&["stop", &id, "--reason", "fault test"], None)
        .await;
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    wait_for_event(&c.home(), "frozen", GUARD)
        .await
        .expect("frozen");
    // The browser is still alive (frozen for inspection) when the host dies.
    assert!(!leftovers(&id).0.is_empty());
    child.kill().expect("kill -9");
    let _ = child.wait();
    let rec = c.airlock(&["recover"], None).await;
    assert_eq!(rec.status.code(), Some(0), "{}", text(&rec));
    assert!(
        text(&rec).contains(&format!("{id}: aborted: host crashed")),
        "{}",
        text(&rec)
    );
    assert_no_leftovers(&id);
    let v = c.airlock(&["audit", "verify", &id], None).await;
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let kinds: Vec<String> = events(&c.home(), &id)
        .iter()
        .filter_map(|e| e["kind"].as_str().map(str::to_string))
        .collect();
    assert!(
        kinds.ends_with(&["frozen".into(), "recovered".into(), "sealed".into()]),
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_asks_the_bundled_portal_for_faults_and_the_host_answers_them() {
    let c = Case::new();
    let text_in = std::fs::read_to_string(root().join(EXAMPLE_TASK)).expect("task");
    let task = c.file(
        "task.toml",
        &text_in.replace(
            "[portal]\nspinner_ms = 1500",
            "[portal]\nspinner_ms = 300\n[portal.faults]\nerror_first = 1\nerror_paths = [\"/runs/RUN-78432\"]",
        ),
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
                "approve-all",
            ],
            None,
        )
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let id = run_ids(&c.home()).first().cloned().expect("run");
    let evs = events(&c.home(), &id);
    assert_eq!(of_kind(&evs, "retry").len(), 1);
    // The faults are part of the recorded manifest.
    assert_eq!(
        evs[0]["payload"]["manifest"]["portal"]["faults"]["error_first"],
        1
    );
}
