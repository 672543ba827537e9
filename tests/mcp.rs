//! End-to-end: `airlock mcp` driven by the official MCP Python SDK (`tests/mcp/client.py`, in the
//! venv `scripts/setup.sh` makes under the target directory), with a real Chromium, the bundled
//! portal and a real SQLite audit. The test plays the human reviewer from another process, as
//! `tests/e2e.rs` does for `airlock run`.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{assert_no_leftovers, root, text, BIN};

const EXAMPLE_TASK: &str = "examples/ci-incident/task.toml";
/// The bundled portal's test-only password, which the host types at login: no tool result may
/// ever contain it.
const PORTAL_PASSWORD: &str = "correct-horse-battery";

/// The SDK venv's interpreter. Missing is a failure with the fix, never a silent skip.
fn python() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target"));
    let py = target.join("mcp-sdk-venv").join("bin").join("python");
    assert!(
        py.exists(),
        "the MCP Python SDK venv is missing ({}); run scripts/setup.sh, which installs \
         tests/mcp/requirements.txt into it",
        py.display()
    );
    py
}

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

    fn log(&self) -> PathBuf {
        self.dir.path().join("client.jsonl")
    }

    fn errlog(&self) -> PathBuf {
        self.dir.path().join("server-stderr.txt")
    }

    /// Starts the Python MCP client, which itself starts `airlock mcp` on stdio.
    fn client(&self, scenario: &str, approvals: &str) -> Child {
        self.client_with(scenario, approvals, &[])
    }

    fn client_with(&self, scenario: &str, approvals: &str, extra: &[&str]) -> Child {
        self.client_on(scenario, Path::new(EXAMPLE_TASK), approvals, extra)
    }

    fn client_on(&self, scenario: &str, task: &Path, approvals: &str, extra: &[&str]) -> Child {
        Command::new(python())
            .arg(root().join("tests/mcp/client.py"))
            .arg(scenario)
            .arg("--bin")
            .arg(BIN)
            .arg("--home")
            .arg(self.home())
            .arg("--task")
            .arg(task)
            .args(["--approvals", approvals])
            .arg("--cwd")
            .arg(root())
            .arg("--log")
            .arg(self.log())
            .arg("--errlog")
            .arg(self.errlog())
            .args(extra)
            .current_dir(root())
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the MCP client")
    }

    fn airlock(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .current_dir(root())
            .arg("--home")
            .arg(self.home())
            .args(args)
            .env("NO_COLOR", "1")
            // The test plays a named reviewer (`--as`) at a terminal, which the operator allows.
            .env("AIRLOCK_ALLOW_TERMINAL_AS", "1")
            .stdin(Stdio::null())
            .output()
            .expect("run airlock")
    }

    fn events(&self) -> Vec<Value> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("client log line"))
            .collect()
    }

    fn diagnostics(&self) -> String {
        format!(
            "client log:\n{}\nserver stderr:\n{}",
            std::fs::read_to_string(self.log()).unwrap_or_default(),
            std::fs::read_to_string(self.errlog()).unwrap_or_default()
        )
    }
}

/// Waits for a child with a deadline (a hung test is a failure, not a stuck CI job).
fn wait(mut child: Child, limit: Duration, case: &Case) -> Output {
    let until = Instant::now() + limit;
    loop {
        if child.try_wait().expect("try_wait").is_some() {
            return child.wait_with_output().expect("output");
        }
        if Instant::now() > until {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "timed out after {limit:?}: {}\n{}",
                text(&out),
                case.diagnostics()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn results<'a>(events: &'a [Value], tool: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == "result" && e["tool"] == tool)
        .collect()
}

/// Whether an `airlock` process serving this home is still alive.
fn server_alive(home: &Path) -> bool {
    let needle = home.to_string_lossy().to_string();
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .any(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|r| r.trim_start().starts_with('Z'));
            !zombie && cmd.starts_with(BIN) && cmd.contains(&needle) && cmd.contains(" mcp ")
        })
}

fn audit_events(case: &Case, run_id: &str) -> Vec<Value> {
    let out = case.airlock(&["audit", "show", run_id]);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect()
}

fn assert_audit_verifies(case: &Case, run_id: &str) {
    let v = case.airlock(&["audit", "verify", run_id]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    assert!(
        text(&v).contains("ok (") && text(&v).contains(", sealed,"),
        "{}",
        text(&v)
    );
}

#[test]
fn an_mcp_client_runs_the_example_through_gated_tool_calls_and_a_reviewer_approves_the_submit() {
    let case = Case::new();
    let client = case.client("full", "web");

    // Act as the reviewer: wait for the submit's request in the shared queue.
    let until = Instant::now() + Duration::from_secs(180);
    let id = loop {
        let out = case.airlock(&["approvals", "list"]);
        if let Some(id) = text(&out)
            .split_whitespace()
            .find(|w| w.starts_with("apr-"))
            .map(|w| {
                w.trim_matches(|c: char| !c.is_alphanumeric() && c != '-')
                    .to_string()
            })
        {
            break id;
        }
        assert!(
            Instant::now() < until,
            "no approval request appeared\n{}",
            case.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    // The tool call blocks while the request waits, reporting progress so that clients with a
    // timeout keep waiting: the client has sent the submit click and has no result for it.
    let until = Instant::now() + Duration::from_secs(30);
    while !case.events().iter().any(|e| e["event"] == "progress") {
        assert!(
            Instant::now() < until,
            "no progress while waiting\n{}",
            case.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let evs = case.events();
    let call = evs
        .iter()
        .rposition(|e| e["event"] == "call")
        .expect("calls");
    assert_eq!(evs[call]["tool"], "browser_click", "{}", case.diagnostics());
    assert_eq!(evs[call]["args"]["element"], "Submit note");
    assert!(
        evs[call..].iter().all(|e| e["event"] != "result"),
        "the submit returned before anyone approved it\n{}",
        case.diagnostics()
    );
    let approve = case.airlock(&[
        "approvals",
        "approve",
        &id,
        "--as",
        "mcp-reviewer",
        "--reason",
        "the note names the failing test",
    ]);
    assert_eq!(approve.status.code(), Some(0), "{}", text(&approve));

    let out = wait(client, Duration::from_secs(180), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();

    // The tools clients know, with the task's scope in their descriptions.
    let tools = evs.iter().find(|e| e["event"] == "tools").expect("tools");
    let names: Vec<&str> = tools["names"]
        .as_array()
        .expect("names")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for t in [
        "browser_navigate",
        "browser_navigate_back",
        "browser_snapshot",
        "browser_take_screenshot",
        "browser_click",
        "browser_type",
        "browser_press_key",
        "browser_scroll",
        "browser_wait_for",
        "done",
    ] {
        assert!(names.contains(&t), "{t} missing from {names:?}");
    }
    assert!(tools["descriptions"]["browser_navigate"]
        .as_str()
        .expect("description")
        .contains("ci.example, incidents.example"));

    // The off-task navigation is a tool error with the gate's reason; the session went on.
    let nav = results(&evs, "browser_navigate");
    assert_eq!(nav.len(), 1);
    assert_eq!(nav[0]["isError"], true);
    let why = nav[0]["text"].as_str().expect("text");
    assert!(
        why.contains("denied")
            && why.contains("not declared for incidents.example/incidents/INC-9911"),
        "{why}"
    );

    // Page content only inside the untrusted marking; the first snapshot says the host signed in.
    let snaps = results(&evs, "browser_snapshot");
    let first = snaps[0]["text"].as_str().expect("text");
    assert_eq!(snaps[0]["isError"], false);
    assert!(first.contains("session: authenticated"), "{first}");
    assert!(first.contains("<untrusted-page-content url=\"http://ci.example/"));
    assert!(first.trim_end().ends_with("</untrusted-page-content>"));

    // The submit returned only after the approval, and ran.
    let clicks = results(&evs, "browser_click");
    let submit = clicks
        .iter()
        .find(|r| r["args"]["element"] == "Submit note")
        .expect("submit result");
    assert_eq!(submit["isError"], false, "{submit}");
    assert!(submit["text"]
        .as_str()
        .expect("text")
        .contains("clicked button 'Submit note'"));
    let shot = &results(&evs, "browser_take_screenshot")[0];
    assert_eq!(shot["images"], 1);
    assert!(shot["image_bytes"].as_u64().expect("bytes") > 1000);

    // `done` returns the host verifier's verdict; the run is then over.
    let done = &results(&evs, "done")[0];
    assert_eq!(done["isError"], false, "{done}");
    assert_eq!(done["structured"]["outcome"], "succeeded");
    assert!(done["text"]
        .as_str()
        .expect("text")
        .contains("verify: PASS records unchanged"));
    let after = snaps.last().expect("snapshot after done");
    assert_eq!(after["isError"], true);
    assert!(after["text"].as_str().expect("text").contains("has ended"));

    // No tool result ever carried the password the host typed.
    for e in evs.iter().filter(|e| e["event"] == "result") {
        assert!(!e.to_string().contains(PORTAL_PASSWORD), "{e}");
    }

    // The same audit as `airlock run`: verified chain, the reviewer on record, the tool calls
    // as raw proposals, the browser gone.
    let run_id = done["structured"]["run_id"].as_str().expect("run id");
    assert_audit_verifies(&case, run_id);
    assert_no_leftovers(run_id);
    let audit = audit_events(&case, run_id);
    let approval = audit
        .iter()
        .find(|e| e["kind"] == "approval")
        .expect("approval event");
    assert!(
        approval["payload"]["answer"]["by"]
            .to_string()
            .contains("mcp-reviewer"),
        "{approval}"
    );
    assert!(audit.iter().any(|e| e["kind"] == "proposal"
        && e["payload"]["raw"]["provider"] == "mcp"
        && e["payload"]["raw"]["tool"] == "browser_navigate"));
    assert!(!audit
        .iter()
        .any(|e| e.to_string().contains(PORTAL_PASSWORD)));
}

#[test]
fn a_denied_approval_is_a_tool_error_with_the_reason_and_ends_the_run() {
    let case = Case::new();
    let client = case.client("full", "deny");
    let out = wait(client, Duration::from_secs(180), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();
    let submit = results(&evs, "browser_click")
        .into_iter()
        .find(|r| r["args"]["element"] == "Submit note")
        .expect("submit result");
    assert_eq!(submit["isError"], true, "{submit}");
    let why = submit["text"].as_str().expect("text");
    assert!(
        why.contains("approval denied") && why.contains("approvals are set to deny"),
        "{why}"
    );
    assert_eq!(submit["structured"]["outcome"], "approval_denied");
    // Later calls, `done` included, say the run has ended; nothing more runs.
    let done = &results(&evs, "done")[0];
    assert_eq!(done["isError"], true);
    assert!(done["text"].as_str().expect("text").contains("has ended"));
    let run_id = submit["structured"]["run_id"].as_str().expect("run id");
    assert_audit_verifies(&case, run_id);
    assert_no_leftovers(run_id);
    let audit = audit_events(&case, run_id);
    assert!(
        !audit.iter().any(|e| e["kind"] == "claim"),
        "done after the end is not a claim"
    );
}

#[test]
fn a_client_that_disconnects_mid_run_leaves_no_browser_and_a_sealed_complete_audit() {
    let case = Case::new();
    let client = case.client("disconnect", "deny");
    let out = wait(client, Duration::from_secs(120), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    assert_eq!(
        case.events().last().map(|e| e["event"].clone()),
        Some(Value::from("dying"))
    );

    // The orphaned server notices, ends the run, tears it down, seals it and exits.
    let until = Instant::now() + Duration::from_secs(60);
    while server_alive(&case.home()) {
        assert!(
            Instant::now() < until,
            "airlock mcp outlived its client\n{}",
            case.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = case.airlock(&["audit", "list"]);
    let run_id = text(&list)
        .split_whitespace()
        .find(|w| w.starts_with("run-"))
        .expect("a run")
        .to_string();
    assert_audit_verifies(&case, &run_id);
    assert_no_leftovers(&run_id);

    // Nothing lost: both actions the client made are recorded with their results, then the
    // reason, the teardown and the seal.
    let audit = audit_events(&case, &run_id);
    let kinds: Vec<&str> = audit.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "action_result").count(),
        2,
        "{kinds:?}"
    );
    let rejected = audit
        .iter()
        .find(|e| e["kind"] == "proposal_rejected")
        .expect("the end of proposals is recorded");
    assert!(rejected["payload"]["error"]
        .as_str()
        .expect("error")
        .contains("disconnected"));
    let teardown = audit
        .iter()
        .find(|e| e["kind"] == "teardown")
        .expect("teardown event");
    assert_eq!(
        teardown["payload"]["processes_remaining"],
        serde_json::json!([])
    );
    assert_eq!(teardown["payload"]["run_dir_removed"], true);
    assert_eq!(kinds.last(), Some(&"sealed"), "{kinds:?}");
    assert_eq!(
        audit.last().expect("seal")["payload"]["result"]["outcome"],
        "provider_failed"
    );
}

#[test]
fn an_operator_stops_an_idle_session_and_its_next_call_says_the_run_ended() {
    let case = Case::new();
    let resume = case.dir.path().join("resume");
    let client = case.client_with(
        "idle",
        "deny",
        &["--resume", resume.to_str().expect("utf8")],
    );
    let until = Instant::now() + Duration::from_secs(120);
    while !case.events().iter().any(|e| e["event"] == "idle") {
        assert!(
            Instant::now() < until,
            "the client never went idle\n{}",
            case.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let list = case.airlock(&["audit", "list"]);
    let run_id = text(&list)
        .split_whitespace()
        .find(|w| w.starts_with("run-"))
        .expect("a run")
        .to_string();
    let stop = case.airlock(&[
        "stop",
        &run_id,
        "--reason",
        "enough for today",
        "--as",
        "op",
    ]);
    assert_eq!(stop.status.code(), Some(0), "{}", text(&stop));
    // The engine sees the stop although no tool call comes: the run is torn down and sealed.
    let sealed = loop {
        let l = case.airlock(&["audit", "list"]);
        if text(&l).contains("sealed") {
            break text(&l);
        }
        assert!(
            Instant::now() < until,
            "the stopped run was not sealed\n{}",
            case.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(sealed.contains("stopped"), "{sealed}");
    assert_no_leftovers(&run_id);
    assert_audit_verifies(&case, &run_id);
    std::fs::write(&resume, "").expect("resume");
    let out = wait(client, Duration::from_secs(60), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();
    let after = &results(&evs, "browser_click")[0];
    assert_eq!(after["isError"], true);
    let t = after["text"].as_str().expect("text");
    assert!(
        t.contains("has ended") && t.contains("enough for today"),
        "{t}"
    );
    assert_eq!(after["structured"]["outcome"], "stopped");
}

#[test]
fn streamable_http_needs_the_bearer_token_and_stays_on_loopback() {
    let case = Case::new();
    // Non-loopback addresses are refused before anything starts.
    let remote = case.airlock(&["mcp", "--task", EXAMPLE_TASK, "--http", "0.0.0.0:0"]);
    assert_eq!(remote.status.code(), Some(2), "{}", text(&remote));
    assert!(text(&remote).contains("loopback"));
    // On stdio the terminal carries the protocol: `prompt` is refused.
    let prompt = case.airlock(&["mcp", "--task", EXAMPLE_TASK, "--approvals", "prompt"]);
    assert_eq!(prompt.status.code(), Some(2), "{}", text(&prompt));

    let token = "test-token-0123456789abcdef";
    let mut server = Command::new(BIN)
        .current_dir(root())
        .arg("--home")
        .arg(case.home())
        .args(["mcp", "--task", EXAMPLE_TASK, "--approvals", "deny"])
        .args(["--http", "127.0.0.1:0", "--max-sessions", "1"])
        .env("NO_COLOR", "1")
        .env("AIRLOCK_MCP_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn airlock mcp --http");
    let stderr = server.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    let url = loop {
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| panic!("no listen line: {seen:?}"));
        if let Some(u) = line.split_whitespace().find(|w| w.starts_with("http://")) {
            break u.to_string();
        }
        seen.push(line);
    };
    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_string();
    let post = |auth: Option<&str>| -> String {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(&addr).expect("connect");
        let body = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"0"}}}"#;
        let auth = auth
            .map(|a| format!("Authorization: {a}\r\n"))
            .unwrap_or_default();
        let req = format!(
            "POST /mcp HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\n{auth}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).expect("write");
        // A granted session answers on an event stream; the status line is all we need.
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let mut buf = Vec::new();
        let _ = s.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    };
    assert!(post(None).contains(" 401 "), "no token");
    assert!(
        post(Some("Bearer not-the-token-at-all-000")).contains(" 401 "),
        "wrong token"
    );

    // The official SDK's streamable HTTP client, with the token, gets the tools and a page.
    let client = Command::new(python())
        .arg(root().join("tests/mcp/client.py"))
        .args(["http", "--url", &url, "--token", token])
        .arg("--log")
        .arg(case.log())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn the MCP client");
    let out = wait(client, Duration::from_secs(120), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();
    let tools = evs.iter().find(|e| e["event"] == "tools").expect("tools");
    assert_eq!(tools["names"].as_array().map(Vec::len), Some(15));
    let snap = &results(&evs, "browser_snapshot")[0];
    assert_eq!(snap["isError"], false, "{snap}");
    assert!(snap["text"]
        .as_str()
        .expect("text")
        .contains("<untrusted-page-content"));

    // One session at a time (--max-sessions 1): once the SDK client's run has ended, a new
    // session is granted, and a second one while it runs is refused.
    let bearer = format!("Bearer {token}");
    let until = Instant::now() + Duration::from_secs(60);
    loop {
        let status = post(Some(&bearer));
        if status.contains(" 200 ") {
            break;
        }
        assert!(Instant::now() < until, "no new session: {status}");
        std::thread::sleep(Duration::from_millis(300));
    }
    let refused = post(Some(&bearer));
    assert!(refused.contains(" 500 "), "{refused}");

    // SIGTERM: every session's run is ended, torn down and sealed before the server exits.
    let _ = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status();
    let until = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < until, "the HTTP server did not stop");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(status.code(), Some(0));
    let list = case.airlock(&["audit", "list"]);
    let runs: Vec<String> = text(&list)
        .split_whitespace()
        .filter(|w| w.starts_with("run-"))
        .map(str::to_string)
        .collect();
    assert!(!runs.is_empty(), "{}", text(&list));
    for r in &runs {
        assert_audit_verifies(&case, r);
        assert_no_leftovers(r);
    }
}

/// A task on the lab's forms page, with one declared file; `extra` is appended (e.g. `[mcp]`).
fn forms_task(case: &Case, extra: &str) -> PathBuf {
    let report = case.dir.path().join("report.txt");
    std::fs::write(
        &report,
        "Refund rounding traceback, attached by the host.\n",
    )
    .expect("file");
    let task = format!(
        r#"[task]
name = "mcp-forms"
goal = "Set the incident's priority and attach the report."
start_url = "http://incidents.example/lab/forms"

[scope]
domains = ["incidents.example"]

[hosts]
"incidents.example" = "bundled-portal"

[[effects]]
host = "incidents.example"
paths = ["/lab/*"]
allow = ["read", "draft"]

[[files]]
id = "report"
path = "{}"
host = "incidents.example"
input = "attachment"

[budgets]
max_steps = 40
wall_clock_secs = 240
step_timeout_secs = 10
max_denials = 10

[[acceptance]]
kind = "text_present"
text = "Priority set to"
{extra}"#,
        report.display()
    );
    let path = case.dir.path().join("forms-task.toml");
    std::fs::write(&path, task).expect("task");
    path
}

fn the<'a>(evs: &'a [Value], tool: &str, n: usize) -> &'a Value {
    results(evs, tool)
        .get(n)
        .copied()
        .unwrap_or_else(|| panic!("no result {n} of {tool}"))
}

fn said(v: &Value) -> &str {
    v["text"].as_str().expect("text")
}

#[test]
fn ide_agent_tools_choose_options_hover_upload_declared_files_and_an_off_scope_call_is_refused() {
    let case = Case::new();
    let task = forms_task(&case, "");
    let client = case.client_on("forms", &task, "deny", &[]);
    let out = wait(client, Duration::from_secs(240), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();
    let d = case.diagnostics();
    let names = evs.iter().find(|e| e["event"] == "tools").expect("tools")["names"].to_string();
    for t in [
        "browser_select_option",
        "browser_hover",
        "browser_file_upload",
        "browser_tabs",
        "browser_handle_dialog",
    ] {
        assert!(names.contains(t), "{t} missing: {names}");
    }

    // The snapshot leaves default states out.
    let snap = said(the(&evs, "browser_snapshot", 0));
    assert!(snap.contains("combobox \"Priority\""), "{snap}");
    for default in ["invalid=false", "required=false", "disabled=false"] {
        assert!(!snap.contains(default), "{default} in {snap}");
    }

    // select_option and typing into the list box choose an option, as the page's script sees.
    let chose = the(&evs, "browser_select_option", 0);
    assert_eq!(chose["isError"], false, "{chose}\n{d}");
    assert!(said(chose).contains("Priority set to High (p1)"), "{chose}");
    let typed = the(&evs, "browser_type", 0);
    assert_eq!(typed["isError"], false, "{typed}\n{d}");
    assert!(said(typed).contains("chose option 'Low'"), "{typed}");
    assert!(said(typed).contains("Priority set to Low (p3)"), "{typed}");
    let missing = the(&evs, "browser_select_option", 1);
    assert_eq!(missing["isError"], true, "{missing}");
    assert!(said(missing).contains("no option"), "{missing}");

    // hover moves the mouse onto the element.
    let hover = the(&evs, "browser_hover", 0);
    assert_eq!(hover["isError"], false, "{hover}\n{d}");
    assert!(
        said(hover).contains("Menu open: Export, Archive"),
        "{hover}"
    );

    // Only the declared file, chosen by the host, reaches the input.
    let up = the(&evs, "browser_file_upload", 0);
    assert_eq!(up["isError"], false, "{up}\n{d}");
    assert!(
        said(up).contains("Attached report.txt (49 bytes): Refund rounding traceback"),
        "{up}"
    );
    let undeclared = the(&evs, "browser_file_upload", 1);
    assert_eq!(undeclared["isError"], true, "{undeclared}");
    assert!(
        said(undeclared).contains("file `passwd` is not declared"),
        "{undeclared}"
    );
    let by_path = the(&evs, "browser_file_upload", 2);
    assert_eq!(by_path["isError"], true, "{by_path}");
    assert!(
        said(by_path).contains("`paths` are never accepted"),
        "{by_path}"
    );

    // A wait whose condition never holds is an error that names it.
    let waited = the(&evs, "browser_wait_for", 0);
    assert_eq!(waited["isError"], true, "{waited}");
    assert!(
        said(waited).contains("condition never held: text 'This text never appears' present"),
        "{waited}"
    );

    // Off scope: refused with the reason; the session goes on (the default for MCP).
    let nav = the(&evs, "browser_navigate", 0);
    assert_eq!(nav["isError"], true, "{nav}");
    assert!(said(nav).contains("denied"), "{nav}");
    assert!(nav["structured"].is_null(), "the run did not end: {nav}");

    // One tab; no dialog is ever left open to accept.
    let tabs = the(&evs, "browser_tabs", 0);
    assert_eq!(tabs["isError"], false, "{tabs}");
    assert!(said(tabs).contains("1 tab"), "{tabs}");
    assert_eq!(the(&evs, "browser_tabs", 1)["isError"], true);
    let dialog = the(&evs, "browser_handle_dialog", 0);
    assert_eq!(dialog["isError"], true, "{dialog}");
    assert!(said(dialog).contains("never accepts"), "{dialog}");

    let after = the(&evs, "browser_snapshot", 2);
    assert_eq!(after["isError"], false, "{after}");
    let done = the(&evs, "done", 0);
    assert_eq!(done["structured"]["outcome"], "succeeded", "{done}\n{d}");

    // All of it gated and recorded: the violation too, without stopping the run.
    let run_id = done["structured"]["run_id"].as_str().expect("run id");
    assert_audit_verifies(&case, run_id);
    assert_no_leftovers(run_id);
    let audit = audit_events(&case, run_id);
    let violation = audit
        .iter()
        .find(|e| e["kind"] == "violation")
        .expect("violation recorded");
    assert_eq!(violation["payload"]["stopped"], false, "{violation}");
    let kinds: Vec<String> = audit
        .iter()
        .filter(|e| e["kind"] == "decision")
        .filter_map(|e| e["payload"]["action"]["kind"].as_str().map(str::to_string))
        .collect();
    for k in ["select", "type", "hover", "upload", "wait", "navigate"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} decision: {kinds:?}");
    }
    let denied_upload = audit
        .iter()
        .find(|e| {
            e["kind"] == "decision"
                && e["payload"]["action"]["file"] == "passwd"
                && e["payload"]["decision"]["verdict"] == "deny"
        })
        .expect("the undeclared upload was decided and denied");
    assert!(denied_upload.to_string().contains("upload.undeclared_file"));
}

#[test]
fn a_task_can_choose_that_an_mcp_session_stops_on_a_violation() {
    let case = Case::new();
    let task = forms_task(&case, "\n[mcp]\non_violation = \"stop\"\n");
    let client = case.client_on("offscope", &task, "deny", &[]);
    let out = wait(client, Duration::from_secs(180), &case);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out),
        case.diagnostics()
    );
    let evs = case.events();
    let nav = the(&evs, "browser_navigate", 0);
    assert_eq!(nav["isError"], true, "{nav}");
    assert_eq!(nav["structured"]["outcome"], "stopped", "{nav}");
    assert!(said(nav).contains("severe violation"), "{nav}");
    let after = the(&evs, "browser_snapshot", 1);
    assert_eq!(after["isError"], true);
    assert!(said(after).contains("has ended"), "{after}");
    let run_id = nav["structured"]["run_id"].as_str().expect("run id");
    assert_audit_verifies(&case, run_id);
    let audit = audit_events(&case, run_id);
    assert!(audit
        .iter()
        .any(|e| e["kind"] == "violation" && e["payload"]["stopped"] == true));
}
