//! Starting and destroying one run's Chromium.
//!
//! Each run gets its own directory (profile, home, downloads) created fresh and owned by the
//! user Chromium runs as. When Airlock runs as root, Chromium is started as an unprivileged user
//! so that its own renderer sandbox stays on: we never pass `--no-sandbox`. The browser is the
//! leader of its own process group, and teardown kills that group and every descendant it can
//! find, then deletes the run directory and reports what it did, so the audit can prove it.

use crate::SandboxError;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// The unprivileged user Chromium runs as when Airlock itself runs as root (`nobody`).
pub const DEFAULT_RUN_UID: u32 = 65534;

/// Finds the Chromium binary: `AIRLOCK_CHROMIUM`, Debian's real binary, then `chromium` on PATH.
pub fn find_chromium() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AIRLOCK_CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    // Debian's /usr/bin/chromium is a shell wrapper; the real binary avoids its extra process.
    for p in [
        "/usr/lib/chromium/chromium",
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
    ] {
        if Path::new(p).exists() {
            return Some(PathBuf::from(p));
        }
    }
    None
}

/// What a launch needs to know.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub run_id: String,
    pub chromium: PathBuf,
    pub width: u32,
    pub height: u32,
    pub locale: String,
    pub timezone: String,
    /// `127.0.0.1:port` of the run's egress proxy.
    pub proxy: std::net::SocketAddr,
    /// Parent for the run directory (defaults to the system temp dir).
    pub scratch_root: PathBuf,
}

/// A started browser process and its run directory.
pub struct Launched {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    pub pid: u32,
    pub run_dir: PathBuf,
    pub uid: u32,
}

/// Evidence of a teardown, recorded in the audit.
#[derive(Debug, Clone, Serialize)]
pub struct TeardownReport {
    pub browser_pid: u32,
    /// Every process of the run that was found and killed.
    pub processes_killed: Vec<u32>,
    /// Processes of the run still alive after teardown (must be empty).
    pub processes_remaining: Vec<u32>,
    pub run_dir: String,
    pub run_dir_removed: bool,
}

impl TeardownReport {
    pub fn clean(&self) -> bool {
        self.processes_remaining.is_empty() && self.run_dir_removed
    }
}

fn chromium_flags(spec: &LaunchSpec, run_dir: &Path) -> Vec<String> {
    let profile = run_dir.join("profile");
    vec![
        "--headless".into(),
        "--disable-gpu".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        "--disable-sync".into(),
        "--disable-quic".into(),
        "--remote-debugging-pipe".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--window-size={},{}", spec.width, spec.height),
        "--force-device-scale-factor=1".into(),
        format!("--lang={}", spec.locale),
        // All traffic goes through the run's egress proxy, loopback included.
        format!("--proxy-server=http://{}", spec.proxy),
        "--proxy-bypass-list=<-loopback>".into(),
        // Chromium never resolves a name itself: the proxy (an IP literal) does.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".into(),
        "--disable-breakpad".into(),
        "--disable-crash-reporter".into(),
        "--disable-extensions".into(),
        "--disable-default-apps".into(),
        "--no-default-browser-check".into(),
        "--mute-audio".into(),
        "--password-store=basic".into(),
        "--deny-permission-prompts".into(),
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions".into(),
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
        "about:blank".into(),
    ]
}

/// Creates the run directory and starts Chromium in it.
pub fn launch(spec: &LaunchSpec) -> Result<Launched, SandboxError> {
    let euid = rustix::process::geteuid().as_raw();
    let uid = if euid == 0 { DEFAULT_RUN_UID } else { euid };
    let gid = if euid == 0 {
        DEFAULT_RUN_UID
    } else {
        rustix::process::getegid().as_raw()
    };

    let run_dir = spec
        .scratch_root
        .join(format!("airlock-run-{}", spec.run_id));
    if run_dir.exists() {
        // A run id is unique; an existing directory is someone else's or a leftover: refuse.
        return Err(SandboxError::Launch(format!(
            "run directory `{}` already exists; refusing to reuse a profile",
            run_dir.display()
        )));
    }
    for sub in ["", "profile", "home", "downloads", "tmp"] {
        let d = run_dir.join(sub);
        std::fs::create_dir_all(&d)
            .map_err(|e| SandboxError::Launch(format!("cannot create `{}`: {e}", d.display())))?;
        set_private(&d, uid, gid)?;
    }

    let flags = chromium_flags(spec, &run_dir);
    // The shell only moves our two pipe ends to the fds Chromium expects (3: commands in,
    // 4: replies out) and then `exec`s, so the browser keeps its pid.
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#)
        .arg(&spec.chromium)
        .args(&flags)
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("HOME", run_dir.join("home"))
        .env("TMPDIR", run_dir.join("tmp"))
        .env("TZ", &spec.timezone)
        .env("LANG", format!("{}.UTF-8", spec.locale.replace('-', "_")))
        .env("AIRLOCK_RUN", &spec.run_id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .process_group(0)
        .kill_on_drop(true);
    if euid == 0 {
        cmd.uid(uid).gid(gid);
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| SandboxError::Launch(format!("cannot start chromium: {e}")))?;
    let pid = child
        .id()
        .ok_or_else(|| SandboxError::Launch("chromium exited immediately".into()))?;
    let stdin = child
        .stdin
        .take()
        .ok_or_else(|| SandboxError::Launch("no pipe to chromium".into()))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| SandboxError::Launch("no pipe from chromium".into()))?;
    Ok(Launched {
        child,
        stdin,
        stdout,
        pid,
        run_dir,
        uid,
    })
}

fn set_private(dir: &Path, uid: u32, gid: u32) -> Result<(), SandboxError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| SandboxError::Launch(format!("cannot chmod `{}`: {e}", dir.display())))?;
    std::os::unix::fs::chown(dir, Some(uid), Some(gid))
        .map_err(|e| SandboxError::Launch(format!("cannot chown `{}`: {e}", dir.display())))
}

/// Reads `/proc` and returns (pid, parent pid, process group) for every process.
fn process_table() -> Vec<(u32, u32, i64)> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name: state ppid pgrp ...
        let Some(rest) = stat.rfind(')').and_then(|i| stat.get(i + 2..)) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("");
        let ppid = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let pgrp = f.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        if state != "Z" && state != "X" {
            out.push((pid, ppid, pgrp));
        }
    }
    out
}

/// Whether a live (non-zombie) process carries this run's marker in its environment.
fn has_run_marker(pid: u32, run_id: &str) -> bool {
    let marker = format!("AIRLOCK_RUN={run_id}");
    std::fs::read(format!("/proc/{pid}/environ"))
        .map(|env| env.split(|b| *b == 0).any(|kv| kv == marker.as_bytes()))
        .unwrap_or(false)
}

/// Every live process that belongs to the run: the browser's process group, its descendants,
/// and anything carrying the run's environment marker.
pub fn run_processes(browser_pid: u32, run_id: &str) -> BTreeSet<u32> {
    let table = process_table();
    let mut found: BTreeSet<u32> = table
        .iter()
        .filter(|(pid, _, pgrp)| {
            *pid == browser_pid || *pgrp == i64::from(browser_pid) || has_run_marker(*pid, run_id)
        })
        .map(|(pid, _, _)| *pid)
        .collect();
    // Descendants, to a fixed point (sandboxed children may sit in their own groups).
    loop {
        let before = found.len();
        for (pid, ppid, _) in &table {
            if found.contains(ppid) {
                found.insert(*pid);
            }
        }
        if found.len() == before {
            break;
        }
    }
    found
}

fn kill(pid: u32) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
    }
}

/// Kills every process of the run, reaps the browser, removes the run directory.
pub async fn teardown(
    mut child: Child,
    browser_pid: u32,
    run_id: &str,
    run_dir: &Path,
) -> TeardownReport {
    let mut killed = BTreeSet::new();
    // Kill until nothing of the run is left (new children can appear while we kill).
    for _ in 0..50 {
        let procs = run_processes(browser_pid, run_id);
        if procs.is_empty() {
            break;
        }
        if let Some(g) = rustix::process::Pid::from_raw(browser_pid as i32) {
            let _ = rustix::process::kill_process_group(g, rustix::process::Signal::KILL);
        }
        for pid in &procs {
            kill(*pid);
            killed.insert(*pid);
        }
        let _ = tokio::time::timeout(Duration::from_millis(100), child.wait()).await;
    }
    let _ = tokio::time::timeout(Duration::from_secs(2), child.wait()).await;
    let remaining: Vec<u32> = run_processes(browser_pid, run_id).into_iter().collect();

    let mut removed = false;
    for _ in 0..20 {
        let _ = std::fs::remove_dir_all(run_dir);
        if !run_dir.exists() {
            removed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    TeardownReport {
        browser_pid,
        processes_killed: killed.into_iter().collect(),
        processes_remaining: remaining,
        run_dir: run_dir.display().to_string(),
        run_dir_removed: removed,
    }
}
