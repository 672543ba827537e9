//! Retries and checkpoints: only idempotent reads are retried; a state-changing step whose
//! outcome is unknown is never sent again on the policy's word alone; and a step of medium risk
//! or above is checked for its expected state change before the model is asked again.
//!
//! The site here is a tiny HTTP server of the test's own on 127.0.0.1 (mapped to `shop.example`
//! in the manifest), so it can hold a form's response longer than the step timeout and count
//! exactly how many times the form reached it.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

mod common;
use common::BIN;

const PAGE: &str = r#"<!doctype html><html><head><title>Order</title>
<style>body{margin:0;font:16px sans-serif} button{position:absolute;left:100px;top:100px;width:200px;height:40px}</style>
</head><body><form method="post" action="/orders/42/confirm"><input type="hidden" name="qty" value="1">
<button type="submit">Confirm order</button></form></body></html>"#;

/// A button that does nothing at all.
const NOOP: &str = r#"<!doctype html><html><head><title>Totals</title>
<style>body{margin:0;font:16px sans-serif} button{position:absolute;left:100px;top:100px;width:200px;height:40px}</style>
</head><body><p>Total: 12.00</p><button type="button">Refresh totals</button></body></html>"#;

/// Serves the order page; holds every POST for `hold` before answering, and counts them.
struct SlowSite {
    addr: SocketAddr,
    posts: Arc<AtomicUsize>,
    /// GETs of `/orders/flaky`, whose first answer is a 503.
    flaky: Arc<AtomicUsize>,
    /// GETs of `/orders/down`, which always answers 503.
    down: Arc<AtomicUsize>,
}

impl SlowSite {
    fn start(hold: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let posts = Arc::new(AtomicUsize::new(0));
        let flaky = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicUsize::new(0));
        let (p, g, d) = (posts.clone(), flaky.clone(), down.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let (p, g, d) = (p.clone(), g.clone(), d.clone());
                std::thread::spawn(move || serve(conn, hold, &p, &g, &d));
            }
        });
        SlowSite {
            addr,
            posts,
            flaky,
            down,
        }
    }
}

fn serve(
    conn: TcpStream,
    hold: Duration,
    posts: &AtomicUsize,
    flaky: &AtomicUsize,
    down: &AtomicUsize,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut words = line.split_whitespace();
        let method = words.next().unwrap_or_default().to_string();
        let path = words.next().unwrap_or_default().to_string();
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h).unwrap_or(0) == 0 {
                return;
            }
            if h == "\r\n" {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        let _ = reader.read_exact(&mut body);
        let mut status = "200 OK";
        let page = if method == "POST" {
            posts.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(hold);
            "<!doctype html><title>Done</title><p>Order confirmed</p>"
        } else if path == "/orders/noop" {
            NOOP
        } else if path == "/orders/down" {
            down.fetch_add(1, Ordering::SeqCst);
            status = "503 Service Unavailable";
            "<!doctype html><title>Busy</title><p>Try again</p>"
        } else if path == "/orders/flaky" {
            if flaky.fetch_add(1, Ordering::SeqCst) == 0 {
                status = "503 Service Unavailable";
                "<!doctype html><title>Busy</title><p>Try again</p>"
            } else {
                "<!doctype html><title>Order 42</title><p>Order 42: one item</p>"
            }
        } else {
            PAGE
        };
        let mut w = conn.try_clone().unwrap();
        let _ = write!(
            w,
            "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncache-control: no-store\r\ncontent-length: {}\r\n\r\n{page}",
            page.len()
        );
    }
}

fn manifest(addr: SocketAddr) -> String {
    format!(
        r#"
[task]
name = "confirm-order"
goal = "Confirm order 42 once."
start_url = "http://shop.example/orders/42"

[scope]
domains = ["shop.example"]

[hosts]
"shop.example" = "{addr}"

[[effects]]
host = "shop.example"
paths = ["/orders/42"]
allow = ["read"]

[[effects]]
host = "shop.example"
paths = ["/orders/42/confirm"]
allow = ["submit"]

[budgets]
max_steps = 6
wall_clock_secs = 60
step_timeout_secs = 2

[[acceptance]]
kind = "text_present"
text = "Order confirmed"
"#
    )
}

/// The operator lets confirmations go out without a human: so only the host's own rule can
/// stop a blind resend. Such a rule needs its `@reason` and `--allow-unattended-high-risk`.
const UNATTENDED_SUBMITS: &str = r#"
@id("ops.confirm-unattended")
@reason("Order confirmations may go out without a human.")
permit (principal, action == Airlock::Action::"unattended", resource)
when { context.effect == "submit" };
"#;

fn events(home: &Path) -> Vec<Value> {
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(["audit", "show", "latest"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_submit_that_timed_out_is_not_resent_without_a_human() {
    let site = SlowSite::start(Duration::from_secs(3));
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let task = write(dir.path(), "task.toml", &manifest(site.addr));
    let policy = write(dir.path(), "ops.cedar", UNATTENDED_SUBMITS);
    // The obedient model clicks "Confirm order", sees no answer in time, goes back to the
    // order and clicks again.
    let click = r#"{"action": "left_click", "coordinate": [200, 120]}"#;
    let again = r#"{"airlock": {"kind": "navigate", "url": "http://shop.example/orders/42"}}"#;
    let transcript = write(
        dir.path(),
        "t.jsonl",
        &format!("{click}\n{again}\n{click}\n{{\"type\": \"text\", \"text\": \"confirmed\"}}\n"),
    );
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .arg("run")
        .arg(&task)
        .arg("--model")
        .arg(format!("scripted:{}", transcript.display()))
        .arg("--policy")
        .arg(&policy)
        .arg("--allow-unattended-high-risk")
        .args(["--approvals", "deny"])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The repeat asked a human (here: nobody approves), so the run ends denied.
    assert_eq!(out.status.code(), Some(4), "{text}");
    // Let the held response finish, then count: the order reached the site exactly once.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(site.posts.load(Ordering::SeqCst), 1, "{text}");

    let ev = events(&home);
    let results: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "action_result").collect();
    assert_eq!(
        results[0]["payload"]["outcome_unknown"], true,
        "{results:?}"
    );
    assert_eq!(results[0]["payload"]["attempts"], 1);
    let decisions: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "decision").collect();
    assert_eq!(decisions[0]["payload"]["decision"]["verdict"], "checkpoint");
    let second = &decisions[2]["payload"]["decision"];
    assert_eq!(second["verdict"], "needs_approval", "{second}");
    assert!(second["rules"]
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r == "builtin.retry.outcome-unknown"));
    assert!(ev.iter().all(|e| e["kind"] != "retry"));
}

/// Runs a scripted navigation to `path` on the test site followed by a screenshot; returns the
/// run's home.
fn navigate_then_look(site: &SlowSite, dir: &Path, path: &str) -> (PathBuf, String) {
    let home = dir.join("home");
    let task = write(
        dir,
        "task.toml",
        &manifest(site.addr)
            .replace(
                "start_url = \"http://shop.example/orders/42\"",
                "start_url = \"http://shop.example/orders/start\"",
            )
            .replace(
                "paths = [\"/orders/42\"]",
                "paths = [\"/orders/42\", \"/orders/start\", \"/orders/flaky\", \"/orders/down\"]",
            ),
    );
    let transcript = write(
        dir,
        "t.jsonl",
        &format!("{{\"provider\": \"gemini\", \"name\": \"navigate\", \"args\": {{\"url\": \"http://shop.example{path}\"}}}}\n{{\"action\": \"screenshot\"}}\n"),
    );
    let (_, text) = run_with(&task, &transcript, &["--approvals", "deny"]);
    (home, text)
}

#[test]
fn a_page_that_answered_503_once_is_loaded_again_once() {
    // The page answers 503 the first time it is asked for, then 200. Loading a page is
    // idempotent, so the host loads it again, with the reload on record before it runs.
    let site = SlowSite::start(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let (home, text) = navigate_then_look(&site, dir.path(), "/orders/flaky");
    assert_eq!(site.flaky.load(Ordering::SeqCst), 2, "{text}");
    let ev = events(&home);
    let retries: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "retry").collect();
    assert_eq!(retries.len(), 1, "{text}");
    assert_eq!(retries[0]["payload"]["status"], 503);
    assert_eq!(
        retries[0]["payload"]["url"],
        "http://shop.example/orders/flaky"
    );
    let result = ev.iter().find(|e| e["kind"] == "retry_result").unwrap();
    assert!(result["seq"].as_u64() > retries[0]["seq"].as_u64());
    assert_eq!(result["payload"]["ok"], true, "{result}");
    // The model then looked at the page that loaded.
    let after = ev
        .iter()
        .rev()
        .find(|e| e["kind"] == "observation")
        .unwrap();
    assert!(after.to_string().contains("Order 42"), "{after}");
}

#[test]
fn a_page_that_keeps_answering_503_is_loaded_three_times_in_all() {
    // One mechanism reloads a failing read, whoever loaded it: the agent's navigation is
    // loaded once, then again at most twice, then the model is told the host stopped.
    let site = SlowSite::start(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let (home, text) = navigate_then_look(&site, dir.path(), "/orders/down");
    assert_eq!(site.down.load(Ordering::SeqCst), 3, "{text}");
    let ev = events(&home);
    assert_eq!(ev.iter().filter(|e| e["kind"] == "retry").count(), 2);
    let gave_up: Vec<&Value> = ev.iter().filter(|e| e["kind"] == "server_error").collect();
    assert_eq!(gave_up.len(), 1, "{text}");
    assert_eq!(gave_up[0]["payload"]["retried"], 2);
}

fn run_with(task: &Path, transcript: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let home = task.parent().unwrap().join("home");
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(&home)
        .arg("run")
        .arg(task)
        .arg("--model")
        .arg(format!("scripted:{}", transcript.display()))
        .args(extra)
        .output()
        .unwrap();
    (
        out.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn checkpoints(home: &Path) -> Vec<Value> {
    events(home)
        .into_iter()
        .filter(|e| e["kind"] == "checkpoint")
        .collect()
}

#[test]
fn a_step_that_changes_nothing_fails_the_default_checkpoint() {
    let site = SlowSite::start(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let task = write(
        dir.path(),
        "task.toml",
        &manifest(site.addr)
            .replace("/orders/42\"\n", "/orders/noop\"\n")
            .replace(
                "paths = [\"/orders/42\"]\nallow = [\"read\"]",
                "paths = [\"/orders/noop\"]\nallow = [\"read\", \"draft\"]",
            ),
    );
    // Clicking "Refresh totals" (a medium-risk control) changes nothing on the page; the model
    // is told so before its next step, and the rest of its batch does not run.
    let click = r#"{"action": "left_click", "coordinate": [200, 120]}"#;
    let transcript = write(dir.path(), "t.jsonl", &format!("{click}\n"));
    let (_, text) = run_with(&task, &transcript, &["--approvals", "deny"]);
    let cps = checkpoints(&dir.path().join("home"));
    assert_eq!(cps.len(), 1, "{text}");
    assert_eq!(cps[0]["payload"]["passed"], false, "{}", cps[0]);
    assert_eq!(
        cps[0]["payload"]["rule"],
        "default: the page visibly changed"
    );
    assert!(text.contains("checkpoint failed"), "{text}");
}

#[test]
fn a_manifest_checkpoint_checks_the_expected_state_after_its_step() {
    let site = SlowSite::start(Duration::from_millis(10));
    let dir = tempfile::tempdir().unwrap();
    let rules = "\n[[checkpoints]]\ntarget = \"Confirm*\"\nexpect = [{ kind = \"text_present\", text = \"Order confirmed\" }, { kind = \"url_matches\", pattern = \"http://shop.example/orders/42/confirm\" }]\n\n[[checkpoints]]\neffect = \"submit\"\nexpect = [{ kind = \"text_present\", text = \"Receipt number\" }]\n";
    let task = write(dir.path(), "task.toml", &(manifest(site.addr) + rules));
    let policy = write(dir.path(), "ops.cedar", UNATTENDED_SUBMITS);
    let click = r#"{"action": "left_click", "coordinate": [200, 120]}"#;
    let transcript = write(dir.path(), "t.jsonl", &format!("{click}\n"));
    let (_, text) = run_with(
        &task,
        &transcript,
        &[
            "--approvals",
            "deny",
            "--policy",
            policy.to_str().unwrap(),
            "--allow-unattended-high-risk",
        ],
    );
    let cps = checkpoints(&dir.path().join("home"));
    assert_eq!(cps.len(), 1, "{text}");
    let cp = &cps[0]["payload"];
    // Both rules apply to "Confirm order" (a submit); the first holds, the second does not.
    assert_eq!(cp["rule"], "checkpoints[0], checkpoints[1]");
    let detail = cp["detail"].as_array().unwrap();
    let passed: Vec<bool> = detail
        .iter()
        .map(|r| r["passed"].as_bool().unwrap())
        .collect();
    assert_eq!(passed, [true, true, false], "{cp}");
    assert_eq!(cp["passed"], false);
    assert!(text.contains("Receipt number"), "{text}");
}
