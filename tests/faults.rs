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

const BIN: &str = env!("CARGO_BIN_EXE_airlock");
const EXAMPLE_TASK: &str = "examples/ci-incident/task.toml";
const EXAMPLE_TRANSCRIPT: &str = "examples/ci-incident/transcript.jsonl";

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

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
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: incidents.example\r\n{SOR_TOKEN_HEADER}: {}\r\nConnection: close\r\n\r\n",
        p.sor_token
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let resp = String::from_utf8_lossy(&buf).to_string();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not json: {resp}"))
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

/// Processes of the run (by its environment marker) that are alive, and whether its profile
/// directory is still there.
fn leftovers(run_id: &str) -> (Vec<String>, bool) {
    let marker = format!("AIRLOCK_RUN={run_id}");
    let mut alive = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        if !zombie && env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()) {
            alive.push(entry.file_name().to_string_lossy().to_string());
        }
    }
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

fn events(home: &Path, run_id: &str) -> Vec<Value> {
    let out = std::process::Command::new(BIN)
        .arg("--home")
        .arg(home)
        .args(["audit", "show", run_id])
        .output()
        .expect("audit show");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("event json"))
        .collect()
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
