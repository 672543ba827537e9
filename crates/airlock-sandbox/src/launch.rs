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

/// How the browser is isolated from the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Isolation {
    /// bubblewrap: own user, mount, PID, network, IPC, UTS and cgroup namespaces; the host's
    /// files are invisible except `/usr`, fonts and CA certificates (read-only) and the run
    /// directory; the network namespace has no route at all, only the egress proxy's listener
    /// that Airlock places inside it.
    Namespaces,
    /// No namespaces: Chromium runs as an unprivileged host user and reaches the proxy on the
    /// host's loopback. Only with the operator's explicit, audited `--insecure-no-sandbox`.
    InsecureHost,
}

/// Where the browser finds the proxy inside its network namespace (its own loopback).
pub const NETNS_PROXY_PORT: u16 = 3128;
/// Where the run directory appears inside the namespaces.
pub(crate) const INNER_RUN_DIR: &str = "/run/airlock";

/// What a launch needs to know.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    pub run_id: String,
    pub chromium: PathBuf,
    pub width: u32,
    pub height: u32,
    pub locale: String,
    pub timezone: String,
    /// The proxy address as the browser sees it.
    pub proxy: std::net::SocketAddr,
    /// Parent for the run directory (defaults to the system temp dir).
    pub scratch_root: PathBuf,
    pub isolation: Isolation,
    /// Whether Chromium is told to use the proxy. Always true in the product; tests turn it off
    /// to show the namespace blocks on its own.
    pub use_proxy: bool,
}

/// A started browser process and its run directory.
pub struct Launched {
    pub child: Child,
    pub stdin: ChildStdin,
    pub stdout: ChildStdout,
    /// The process we started (bwrap, or Chromium itself without namespaces).
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
    /// The run's network namespace (`net:[inode]`), if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network_namespace: Option<String>,
    /// Whether any process still holds that namespace after teardown.
    pub namespace_released: bool,
}

impl TeardownReport {
    pub fn clean(&self) -> bool {
        self.processes_remaining.is_empty() && self.run_dir_removed && self.namespace_released
    }
}

/// Managed policy for every run's Chromium: no background service traffic (component and
/// safe-browsing updates, network time, password-leak checks, metrics, suggestions,
/// translation, spell-check), no password manager or autofill, no DNS-over-HTTPS, no
/// prediction, and WebRTC only through the proxy.
const MANAGED_POLICY: &str = r#"{
  "ComponentUpdatesEnabled": false,
  "BrowserNetworkTimeQueriesEnabled": false,
  "PasswordLeakDetectionEnabled": false,
  "PasswordManagerEnabled": false,
  "SafeBrowsingProtectionLevel": 0,
  "MetricsReportingEnabled": false,
  "UrlKeyedAnonymizedDataCollectionEnabled": false,
  "SearchSuggestEnabled": false,
  "AlternateErrorPagesEnabled": false,
  "TranslateEnabled": false,
  "SpellcheckEnabled": false,
  "SpellCheckServiceEnabled": false,
  "AutofillAddressEnabled": false,
  "AutofillCreditCardEnabled": false,
  "NetworkPredictionOptions": 2,
  "DnsOverHttpsMode": "off",
  "BackgroundModeEnabled": false,
  "DefaultBrowserSettingEnabled": false,
  "WebRtcIPHandling": "disable_non_proxied_udp"
}
"#;

fn chromium_flags(spec: &LaunchSpec, run_dir: &Path) -> Vec<String> {
    let profile = run_dir.join("profile");
    let mut flags: Vec<String> = vec![
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
        "--disable-breakpad".into(),
        "--disable-crash-reporter".into(),
        "--disable-extensions".into(),
        "--disable-default-apps".into(),
        "--no-default-browser-check".into(),
        "--mute-audio".into(),
        "--password-store=basic".into(),
        "--deny-permission-prompts".into(),
        // Without namespaces there is no managed policy: these features cover what they can.
        "--disable-features=Translate,MediaRouter,OptimizationHints,AutofillServerCommunication,InterestFeedContentSuggestions,NetworkPrediction,NetworkTimeServiceQuerying,PasswordLeakDetection,SafeBrowsingEnhancedProtection".into(),
        "--disable-client-side-phishing-detection".into(),
        "--safebrowsing-disable-auto-update".into(),
        "--disable-domain-reliability".into(),
        "--dns-prefetch-disable".into(),
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".into(),
    ];
    if spec.use_proxy {
        // All traffic goes through the run's egress proxy, loopback included, and Chromium
        // never resolves a name itself: the proxy (an IP literal) does.
        flags.push(format!("--proxy-server=http://{}", spec.proxy));
        flags.push("--proxy-bypass-list=<-loopback>".into());
        flags.push("--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1".into());
    }
    flags.push("about:blank".into());
    flags
}

/// Finds bubblewrap.
pub fn find_bwrap() -> Option<PathBuf> {
    ["/usr/bin/bwrap", "/bin/bwrap", "/usr/local/bin/bwrap"]
        .iter()
        .map(PathBuf::from)
        .find(|p| p.exists())
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
    // Chromium's own background traffic is switched off by managed policy, which the run's
    // mount namespace shows at /etc/chromium/policies/managed (nothing on the host is touched).
    // The flags alone leave component updates, network time and password-leak checks running;
    // they would otherwise show up as blocked requests the agent never made.
    let policies = run_dir.join("policies");
    std::fs::create_dir_all(&policies)
        .and_then(|()| std::fs::write(policies.join("airlock.json"), MANAGED_POLICY))
        .map_err(|e| SandboxError::Launch(format!("cannot write the browser policy: {e}")))?;
    let log = std::fs::File::create(run_dir.join("launch.log"))
        .map_err(|e| SandboxError::Launch(format!("cannot create the launch log: {e}")))?;

    // The shell only moves our two pipe ends to the fds Chromium expects (3: commands in,
    // 4: replies out) and then `exec`s, so the browser keeps its pid.
    const MOVE_FDS: &str = r#"exec "$0" "$@" 3<&0 4>&1 0</dev/null 1>&2"#;
    let mut cmd = match spec.isolation {
        Isolation::InsecureHost => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c")
                .arg(MOVE_FDS)
                .arg(&spec.chromium)
                .args(chromium_flags(spec, &run_dir))
                .env_clear()
                .env("HOME", run_dir.join("home"))
                .env("TMPDIR", run_dir.join("tmp"));
            c
        }
        Isolation::Namespaces => {
            let bwrap = find_bwrap().ok_or_else(|| {
                SandboxError::Launch(
                    "namespaces unavailable: bubblewrap (`bwrap`) is not installed; install Debian's `bubblewrap` package, or pass --insecure-no-sandbox to run without namespaces".into(),
                )
            })?;
            let inner = Path::new(INNER_RUN_DIR);
            let mut c = Command::new(bwrap);
            c.args(["--unshare-all", "--die-with-parent", "--new-session"])
                .args(["--ro-bind", "/usr", "/usr"])
                .args(["--symlink", "usr/lib", "/lib"])
                .args(["--symlink", "usr/lib64", "/lib64"])
                .args(["--symlink", "usr/bin", "/bin"])
                .args(["--symlink", "usr/sbin", "/sbin"])
                .args(["--ro-bind-try", "/etc/fonts", "/etc/fonts"])
                .args(["--ro-bind-try", "/etc/ssl/certs", "/etc/ssl/certs"])
                .arg("--ro-bind")
                .arg(&policies)
                .arg("/etc/chromium/policies/managed")
                .args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"])
                .arg("--bind")
                .arg(&run_dir)
                .arg(inner)
                .args(["--chdir", INNER_RUN_DIR])
                .arg("--")
                .arg("/bin/sh")
                .arg("-c")
                .arg(MOVE_FDS)
                .arg(&spec.chromium)
                .args(chromium_flags(spec, inner))
                .env_clear()
                .env("HOME", inner.join("home"))
                .env("TMPDIR", "/tmp");
            c
        }
    };
    cmd.env("PATH", "/usr/bin:/bin")
        .env("TZ", &spec.timezone)
        .env("LANG", format!("{}.UTF-8", spec.locale.replace('-', "_")))
        .env("AIRLOCK_RUN", &spec.run_id)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(log)
        .process_group(0)
        .kill_on_drop(true);
    if euid == 0 {
        // bwrap itself runs unprivileged, so its user namespace maps our run user to itself.
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

/// The last lines of the launch log (bwrap's and Chromium's stderr), for error messages.
pub fn launch_log_tail(run_dir: &Path) -> String {
    let text = std::fs::read_to_string(run_dir.join("launch.log")).unwrap_or_default();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.contains("dbus") && !l.trim().is_empty())
        .collect();
    lines
        .get(lines.len().saturating_sub(3)..)
        .unwrap_or_default()
        .join(" | ")
}

/// The network namespace link (`net:[inode]`) of a process.
fn netns_of(pid: u32) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/ns/net"))
        .ok()
        .map(|p| p.display().to_string())
}

/// Waits until a process of the run lives in a network namespace other than ours, and
/// returns (its pid, the namespace link).
pub async fn wait_for_netns(
    launcher_pid: u32,
    run_id: &str,
    limit: Duration,
) -> Option<(u32, String)> {
    let ours = netns_of(std::process::id())?;
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        for pid in run_processes(launcher_pid, run_id) {
            if let Some(ns) = netns_of(pid) {
                if ns != ours {
                    return Some((pid, ns));
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// Binds a TCP listener on `127.0.0.1:port` *inside* another process's network namespace.
///
/// A socket belongs to the namespace it was created in, so a short-lived thread enters the
/// namespace, binds, and ends; the listener then serves from our runtime while the browser can
/// reach nothing else. Entering a namespace needs CAP_SYS_ADMIN over it (Airlock as root).
pub fn bind_in_netns(pid: u32, port: u16) -> Result<std::net::TcpListener, SandboxError> {
    let path = format!("/proc/{pid}/ns/net");
    std::thread::spawn(move || -> Result<std::net::TcpListener, String> {
        let ns = std::fs::File::open(&path).map_err(|e| format!("cannot open `{path}`: {e}"))?;
        rustix::thread::move_into_link_name_space(
            std::os::fd::AsFd::as_fd(&ns),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .map_err(|e| format!("cannot enter the run's network namespace (needs root): {e}"))?;
        let l = std::net::TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, port))
            .map_err(|e| format!("cannot listen inside the namespace: {e}"))?;
        l.set_nonblocking(true)
            .map_err(|e| format!("cannot configure the listener: {e}"))?;
        Ok(l)
    })
    .join()
    .map_err(|_| SandboxError::Launch("namespace thread panicked".into()))?
    .map_err(SandboxError::Launch)
}

/// Whether any process still holds the namespace.
pub fn namespace_in_use(ns: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.flatten().any(|e| {
        std::fs::read_link(e.path().join("ns/net"))
            .map(|l| l.display().to_string() == ns)
            .unwrap_or(false)
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
/// and anything carrying the run's environment marker. `browser_pid` 0 means "unknown" (crash
/// recovery): only the marker and descendants count.
pub fn run_processes(browser_pid: u32, run_id: &str) -> BTreeSet<u32> {
    let table = process_table();
    let mut found: BTreeSet<u32> = table
        .iter()
        .filter(|(pid, _, pgrp)| {
            (browser_pid != 0 && (*pid == browser_pid || *pgrp == i64::from(browser_pid)))
                || has_run_marker(*pid, run_id)
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

/// Killed processes take a moment to leave: waits (bounded) until none of the run's processes
/// and nothing in its network namespace is left, killing stragglers, and notes what it killed.
async fn kill_stragglers(
    browser_pid: u32,
    run_id: &str,
    netns: Option<&str>,
    killed: &mut BTreeSet<u32>,
) {
    for _ in 0..60 {
        let left = run_processes(browser_pid, run_id);
        let ns_busy = netns.is_some_and(namespace_in_use);
        if left.is_empty() && !ns_busy {
            break;
        }
        for pid in &left {
            kill(*pid);
            killed.insert(*pid);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Deletes a run directory, retrying briefly while dying processes still hold files in it.
async fn remove_run_dir(dir: &Path) -> bool {
    for _ in 0..20 {
        let _ = std::fs::remove_dir_all(dir);
        if !dir.exists() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// Kills every process of the run, reaps the browser, removes the run directory.
pub async fn teardown(
    mut child: Child,
    browser_pid: u32,
    run_id: &str,
    run_dir: &Path,
    netns: Option<&str>,
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
    kill_stragglers(browser_pid, run_id, netns, &mut killed).await;
    let remaining: Vec<u32> = run_processes(browser_pid, run_id).into_iter().collect();
    let removed = remove_run_dir(run_dir).await;
    TeardownReport {
        browser_pid,
        processes_killed: killed.into_iter().collect(),
        processes_remaining: remaining,
        run_dir: run_dir.display().to_string(),
        run_dir_removed: removed,
        network_namespace: netns.map(str::to_string),
        namespace_released: netns.is_none_or(|ns| !namespace_in_use(ns)),
    }
}

/// The directory a run's browser lived in (for crash recovery).
pub fn run_dir_for(scratch_root: &Path, run_id: &str) -> PathBuf {
    scratch_root.join(format!("airlock-run-{run_id}"))
}

/// Cleans up after a run whose host died: kills whatever of its sandbox survived (found by the
/// run's environment marker and descent) and deletes its directory. Returns the evidence.
pub async fn reap_orphan(run_id: &str, scratch_root: &Path) -> TeardownReport {
    let mut killed = BTreeSet::new();
    kill_stragglers(0, run_id, None, &mut killed).await;
    let dir = run_dir_for(scratch_root, run_id);
    let removed = remove_run_dir(&dir).await;
    TeardownReport {
        browser_pid: 0,
        processes_killed: killed.into_iter().collect(),
        processes_remaining: run_processes(0, run_id).into_iter().collect(),
        run_dir: dir.display().to_string(),
        run_dir_removed: removed,
        network_namespace: None,
        namespace_released: true,
    }
}
