//! Helpers the end-to-end tests share: the binary, the repository root, the audit as JSON, the
//! system of record read the way a verifier reads it, and the teardown check every run must
//! pass. Each test file uses only some of them.

#![allow(dead_code, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Output;

pub const BIN: &str = env!("CARGO_BIN_EXE_airlock");

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A command's stdout and stderr, for assertion messages.
pub fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// A run's audit events, as `airlock audit show` prints them.
pub fn events(home: &Path, run_id: &str) -> Vec<Value> {
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

/// Reads the portal's system of record the way a verifier would: its own connection, the
/// verifier's token, JSON back.
pub async fn sor(addr: std::net::SocketAddr, token: &str, path: &str) -> Value {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: incidents.example\r\n{}: {token}\r\nConnection: close\r\n\r\n",
        airlock_portal::SOR_TOKEN_HEADER
    );
    s.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.expect("read");
    let resp = String::from_utf8_lossy(&buf).to_string();
    let body = resp.split("\r\n\r\n").nth(1).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|_| panic!("not json: {resp}"))
}

/// Every run must leave no browser process (zombies aside) and no profile directory behind.
pub fn assert_no_leftovers(run_id: &str) {
    let marker = format!("AIRLOCK_RUN={run_id}");
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
        let zombie = stat
            .rsplit(')')
            .next()
            .is_some_and(|r| r.trim_start().starts_with('Z'));
        assert!(
            zombie || !env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()),
            "process {:?} of run {run_id} survived teardown",
            entry.file_name()
        );
    }
    let dir = std::env::temp_dir().join(format!("airlock-run-{run_id}"));
    assert!(
        !dir.exists(),
        "profile directory {} survived",
        dir.display()
    );
}
