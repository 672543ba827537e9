//! One run's browser: launch, observe, ground targets, execute typed actions, tear down.

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing by key yields Null for missing keys; it does not panic"
)]

use crate::cdp::{Cdp, CdpError, CdpEvent};
use crate::intercept::{HeldRequest, InterceptRecord};
use crate::js;
use crate::keys::{key_events, modifier_bits};
use crate::launch::{self, Isolation, LaunchSpec, TeardownReport};
use crate::proxy::{EgressPolicy, EgressProxy, EgressRecord};
use crate::snapshot::{self, AxNode};
use crate::{GroundingError, SandboxError};
use airlock_core::coords::Viewport;
use airlock_core::{
    Action, ElementFacts, MouseButton, Observation, Point, Target, TypedText, WaitCondition,
};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{broadcast, mpsc, watch};

/// How a run's browser is set up.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    pub run_id: String,
    /// Chromium binary; found with [`launch::find_chromium`] when `None`.
    pub chromium: Option<PathBuf>,
    pub viewport: Viewport,
    pub locale: String,
    pub timezone: String,
    /// Upper bound for any single browser operation and for settling after an action.
    pub step_timeout: Duration,
    pub egress: EgressPolicy,
    pub scratch_root: PathBuf,
    /// Namespaces (the default) or, only on the operator's explicit request, none.
    pub isolation: Isolation,
    /// Whether Chromium is pointed at the egress proxy. Only tests turn this off, to show that
    /// the network namespace blocks on its own.
    pub browser_uses_proxy: bool,
    /// Whether requests are also checked inside the browser (CDP `Fetch`). Only tests turn
    /// this off, to show the proxy and the namespace block on their own.
    pub intercept: bool,
    /// The host's verdict on each request beyond its host (declared effects, the step
    /// executing now); `None` checks hosts only.
    pub request_gate: Option<std::sync::Arc<dyn crate::intercept::RequestGate>>,
    /// The files the manifest declares (`[[files]]`: id, path on the host). Only these can
    /// ever reach a file input, and only through an `Upload` action the gate allowed.
    pub files: Vec<(String, PathBuf)>,
}

impl SandboxConfig {
    pub fn new(run_id: &str, egress: EgressPolicy) -> Self {
        SandboxConfig {
            run_id: run_id.to_string(),
            chromium: None,
            viewport: Viewport::default(),
            locale: "en-US".into(),
            timezone: "UTC".into(),
            step_timeout: Duration::from_secs(20),
            egress,
            scratch_root: std::env::temp_dir(),
            isolation: Isolation::Namespaces,
            browser_uses_proxy: true,
            intercept: true,
            request_gate: None,
            files: Vec::new(),
        }
    }
}

/// A target resolved to one element, with the point a click would land on.
///
/// Every target form ends here the same way: the element, its facts (including whether a
/// person can see it and whether a click at `point` reaches it), and the point. The gate decides
/// on these facts, and dispatch measures them again ([`BrowserSandbox::execute`]).
#[derive(Debug, Clone)]
pub struct Resolved {
    pub facts: ElementFacts,
    pub backend_id: i64,
    pub point: Point,
    /// Whether the target was a point (the click point is fixed) rather than an element (the
    /// click point is the centre of its box, scrolled into view).
    pub by_point: bool,
}

const UNSETTLED_CHANGING: &str = "page not settled after";
const UNSETTLED_LOADING: &str = "page still loading after";

/// The note of an action that made the page send a request the host holds for review.
pub const HELD_NOTE: &str = "the page sent a request that is held for review";

/// Whether an action's note says the page never settled within the step timeout (so what the
/// action led to, e.g. a form's response, is not known yet).
pub fn unsettled(note: &str) -> bool {
    note.contains(UNSETTLED_CHANGING) || note.contains(UNSETTLED_LOADING)
}

/// How the current main document arrived (see [`BrowserSandbox::document_status`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct DocumentStatus {
    pub status: u16,
    /// Whether the site redirected the browser to this document (same-origin redirects only).
    pub redirected: bool,
    pub url: String,
    pub transition: String,
}

impl DocumentStatus {
    /// Whether the document was the answer to a form submission (never repeated by the host).
    pub fn from_form(&self) -> bool {
        self.transition == "form_submit"
    }
}

/// How long an "Internal error" answer waits for the crash event that usually follows it.
const CRASH_GRACE: Duration = Duration::from_millis(500);

/// Quiet period after the last DOM mutation before the page counts as settled.
const QUIET_MS: f64 = 150.0;
/// After an input event, how long navigation-start events may take to show up.
const NAV_GRACE: Duration = Duration::from_millis(120);
/// How long the browser itself gets to answer a trivial probe, sent when a call is still
/// unanswered near the step timeout, before it is declared unresponsive (a slow page is not a
/// hung browser).
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// A live browser sandbox. Call [`BrowserSandbox::teardown`] to end it and get the evidence;
/// dropping it kills everything too, but without a report.
pub struct BrowserSandbox {
    cdp: Cdp,
    session: String,
    frame_id: String,
    world: Option<i64>,
    child: Option<tokio::process::Child>,
    pid: u32,
    run_id: String,
    run_dir: PathBuf,
    _proxy: EgressProxy,
    pub viewport: Viewport,
    step_timeout: Duration,
    mouse: Point,
    dialog_task: tokio::task::JoinHandle<()>,
    netns: Option<String>,
    isolation: Isolation,
    intercepts: crate::intercept::InterceptLog,
    /// Requests of the page paused until the host releases them.
    held: crate::intercept::HeldLog,
    intercept_task: tokio::task::JoinHandle<()>,
    /// The first browser fault observed (crash, exit, no answer); once set, every call fails
    /// at once with it instead of waiting for a timeout.
    fault: Arc<watch::Sender<Option<String>>>,
    /// JavaScript dialogs dismissed so far (a dialog loop shows up here).
    dialogs: Arc<AtomicU64>,
    /// Declared files (id, host path), see [`SandboxConfig::files`].
    files: Vec<(String, PathBuf)>,
}

/// How many matches of a role and name or a selector are inspected to find the one a person
/// can see.
const MAX_CANDIDATES: usize = 20;

/// What about an element changed between decision and dispatch that would change what acting
/// on it does, if anything.
fn changed(was: &ElementFacts, now: &ElementFacts) -> Option<String> {
    let form = |f: &ElementFacts| {
        f.form
            .as_ref()
            .map(|f| (f.action.clone(), f.method.clone()))
    };
    let diffs = [
        (was.tag != now.tag, "its tag"),
        (
            was.role != now.role || was.name != now.name,
            "its role or name",
        ),
        (was.input_type != now.input_type, "its type"),
        (
            was.href != now.href || was.link_target != now.link_target,
            "where it leads",
        ),
        (
            was.is_submit != now.is_submit || form(was) != form(now),
            "what it submits",
        ),
        (
            was.frame_url != now.frame_url || was.frame_src != now.frame_src,
            "its frame",
        ),
    ];
    let what: Vec<&str> = diffs.iter().filter(|(d, _)| *d).map(|(_, w)| *w).collect();
    (!what.is_empty()).then(|| what.join(", "))
}

fn t(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl BrowserSandbox {
    /// Starts the egress proxy and a fresh Chromium, attaches to its page and fixes the viewport,
    /// locale and timezone. Egress records arrive on the returned receiver.
    pub async fn launch(
        cfg: SandboxConfig,
    ) -> Result<(BrowserSandbox, mpsc::UnboundedReceiver<EgressRecord>), SandboxError> {
        let (rec_tx, rec_rx) = mpsc::unbounded_channel();
        let chromium = cfg
            .chromium
            .clone()
            .or_else(launch::find_chromium)
            .ok_or_else(|| {
                SandboxError::Launch(
                    "chromium not found: install Debian's `chromium` package or set AIRLOCK_CHROMIUM"
                        .into(),
                )
            })?;
        let mut spec = LaunchSpec {
            run_id: cfg.run_id.clone(),
            chromium,
            width: cfg.viewport.width,
            height: cfg.viewport.height,
            locale: cfg.locale.clone(),
            timezone: cfg.timezone.clone(),
            proxy: std::net::SocketAddr::from((
                std::net::Ipv4Addr::LOCALHOST,
                launch::NETNS_PROXY_PORT,
            )),
            scratch_root: cfg.scratch_root.clone(),
            isolation: cfg.isolation,
            use_proxy: cfg.browser_uses_proxy,
        };
        let (launched, proxy, netns) = match cfg.isolation {
            Isolation::InsecureHost => {
                let proxy = EgressProxy::start(cfg.egress.clone(), rec_tx)
                    .await
                    .map_err(|e| SandboxError::Launch(format!("cannot start egress proxy: {e}")))?;
                spec.proxy = proxy.addr;
                (launch::launch(&spec)?, proxy, None)
            }
            Isolation::Namespaces => {
                // Nothing has happened in the run yet, so a start that failed between bwrap and
                // the proxy is tried once more from scratch (fresh directory, fresh namespaces)
                // before the run is refused. CI saw such a failure once (EADDRNOTAVAIL binding
                // inside the new namespace); 260 starts under load here did not reproduce it.
                let mut attempt = 0;
                loop {
                    attempt += 1;
                    match Self::start_in_namespaces(&spec, &cfg, rec_tx.clone()).await {
                        Ok((launched, proxy, ns)) => break (launched, proxy, Some(ns)),
                        Err((e, true)) if attempt < 2 => {
                            tracing::warn!(run = %cfg.run_id, error = %e, "sandbox start failed; starting a fresh one");
                        }
                        Err((e, _)) => return Err(e),
                    }
                }
            }
        };
        let cdp = Cdp::start(launched.stdout, launched.stdin);
        let mut sb = BrowserSandbox {
            cdp: cdp.clone(),
            session: String::new(),
            frame_id: String::new(),
            world: None,
            child: Some(launched.child),
            pid: launched.pid,
            run_id: cfg.run_id.clone(),
            run_dir: launched.run_dir,
            _proxy: proxy,
            viewport: cfg.viewport,
            step_timeout: cfg.step_timeout,
            mouse: Point { x: 0.0, y: 0.0 },
            dialog_task: tokio::spawn(async {}),
            netns,
            isolation: cfg.isolation,
            intercepts: Default::default(),
            held: Default::default(),
            intercept_task: tokio::spawn(async {}),
            fault: Arc::new(watch::channel(None).0),
            dialogs: Arc::new(AtomicU64::new(0)),
            files: cfg.files.clone(),
        };
        // From here on, a failure must still tear down what started: `Drop` does that.
        sb.attach(&cfg).await?;
        Ok((sb, rec_rx))
    }

    async fn attach(&mut self, cfg: &SandboxConfig) -> Result<(), SandboxError> {
        self.cdp
            .call(None, "Browser.getVersion", json!({}), t(20_000))
            .await
            .map_err(|e| {
                SandboxError::Launch(format!(
                    "chromium did not answer on its pipe: {e} ({})",
                    launch::launch_log_tail(&self.run_dir)
                ))
            })?;
        let targets = self.browser("Target.getTargets", json!({})).await?;
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .map(str::to_string);
        let target_id = match page {
            Some(id) => id,
            None => self
                .browser("Target.createTarget", json!({"url": "about:blank"}))
                .await?["targetId"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        };
        let att = self
            .browser(
                "Target.attachToTarget",
                json!({"targetId": target_id, "flatten": true}),
            )
            .await?;
        self.session = att["sessionId"]
            .as_str()
            .ok_or_else(|| SandboxError::Launch("no cdp session for the page".into()))?
            .to_string();
        // Interception is installed before the page can do anything else: every request of
        // the page, its frames and workers, and every popup, is checked in the browser too.
        let interceptor = crate::intercept::Interceptor {
            cdp: self.cdp.clone(),
            policy: cfg.egress.clone(),
            main_session: self.session.clone(),
            main_target: target_id.clone(),
            log: self.intercepts.clone(),
            downloads: self.run_dir.join("downloads"),
            gate: cfg.request_gate.clone(),
            popups: Default::default(),
            held: self.held.clone(),
        };
        if cfg.intercept {
            self.intercept_task = tokio::spawn(interceptor.run(self.cdp.events()));
            self.page("Fetch.enable", json!({"patterns": [{"urlPattern": "*"}]}))
                .await?;
            self.page(
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
            )
            .await?;
            self.browser(
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
            )
            .await?;
        }
        // Downloads land only in the run's directory, are hashed, and die with it.
        let download_path = match cfg.isolation {
            Isolation::Namespaces => "/run/airlock/downloads".to_string(),
            Isolation::InsecureHost => self.run_dir.join("downloads").display().to_string(),
        };
        self.browser(
            "Browser.setDownloadBehavior",
            json!({"behavior": "allowAndName", "downloadPath": download_path, "eventsEnabled": true}),
        )
        .await?;
        // Clipboard, location, camera, microphone, notifications: refused for every origin.
        for name in [
            "clipboard-read",
            "clipboard-write",
            "geolocation",
            "notifications",
            "camera",
            "microphone",
        ] {
            let _ = self
                .browser(
                    "Browser.setPermission",
                    json!({"permission": {"name": name}, "setting": "denied"}),
                )
                .await;
        }
        for m in ["Page.enable", "DOM.enable", "Accessibility.enable"] {
            self.page(m, json!({})).await?;
        }
        // A file chooser never opens: the page only gets a file the host puts into an input
        // (a declared one, through an allowed `Upload`), never one a dialog would let it pick.
        self.page(
            "Page.setInterceptFileChooserDialog",
            json!({"enabled": true}),
        )
        .await?;
        let vp = cfg.viewport;
        self.page(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": vp.width, "height": vp.height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await?;
        self.page(
            "Emulation.setTimezoneOverride",
            json!({"timezoneId": cfg.timezone}),
        )
        .await?;
        self.page("Emulation.setLocaleOverride", json!({"locale": cfg.locale}))
            .await?;
        let tree = self.page("Page.getFrameTree", json!({})).await?;
        self.frame_id = tree["frameTree"]["frame"]["id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        // JavaScript dialogs (alert loops, beforeunload traps) are dismissed, never shown. The
        // same watcher notices a crashed renderer and a closed pipe the moment they happen.
        self.page("Inspector.enable", json!({})).await?;
        let cdp = self.cdp.clone();
        let session = self.session.clone();
        let mut events = self.cdp.events();
        let fault = self.fault.clone();
        let dialogs = self.dialogs.clone();
        self.dialog_task = tokio::spawn(async move {
            loop {
                let ev = tokio::select! {
                    ev = events.recv() => ev,
                    () = cdp.wait_closed() => {
                        raise(&fault, "the browser's pipe closed: the browser process exited or was killed".into());
                        return;
                    }
                };
                let ev = match ev {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                match ev.method.as_str() {
                    "Page.javascriptDialogOpening" => {
                        dialogs.fetch_add(1, Ordering::SeqCst);
                        // A beforeunload trap is answered "leave"; every other dialog is dismissed.
                        let leave = ev.params["type"] == "beforeunload";
                        let _ = cdp
                            .call(
                                Some(&session),
                                "Page.handleJavaScriptDialog",
                                json!({"accept": leave}),
                                t(2000),
                            )
                            .await;
                    }
                    "Inspector.targetCrashed" if ev.session_id.as_deref() == Some(&session) => {
                        raise(
                            &fault,
                            "the page's renderer crashed (Inspector.targetCrashed)".into(),
                        );
                    }
                    "Target.targetCrashed" if ev.params["targetId"] == target_id.as_str() => {
                        raise(
                            &fault,
                            format!(
                                "the page's renderer crashed (Target.targetCrashed, status `{}`, code {})",
                                ev.params["status"].as_str().unwrap_or("?"),
                                ev.params["errorCode"].as_i64().unwrap_or(0)
                            ),
                        );
                    }
                    "Inspector.detached" if ev.session_id.as_deref() == Some(&session) => {
                        raise(
                            &fault,
                            format!(
                                "the browser detached from the page ({})",
                                ev.params["reason"].as_str().unwrap_or("no reason given")
                            ),
                        );
                    }
                    _ => {}
                }
            }
        });
        Ok(())
    }

    /// Starts bwrap and Chromium, then binds the egress proxy's listener inside the run's
    /// network namespace: the browser's only way out, with no route to anything else. On any
    /// failure after bwrap started, what was started is torn down before the error returns,
    /// marked `true` (worth one fresh try); failures before that are marked `false`.
    async fn start_in_namespaces(
        spec: &LaunchSpec,
        cfg: &SandboxConfig,
        rec_tx: mpsc::UnboundedSender<EgressRecord>,
    ) -> Result<(launch::Launched, EgressProxy, String), (SandboxError, bool)> {
        let launched = launch::launch(spec).map_err(|e| (e, false))?;
        let found = launch::wait_for_netns(launched.pid, &cfg.run_id, t(10_000)).await;
        let placed = match found {
            Some((pid, ns)) => launch::bind_in_netns(pid, launch::NETNS_PROXY_PORT)
                .and_then(|l| {
                    tokio::net::TcpListener::from_std(l)
                        .map_err(|e| SandboxError::Launch(format!("listener: {e}")))
                })
                .and_then(|l| {
                    EgressProxy::serve(l, cfg.egress.clone(), rec_tx)
                        .map_err(|e| SandboxError::Launch(format!("egress proxy: {e}")))
                })
                .map(|p| (p, ns)),
            None => Err(SandboxError::Launch(format!(
                "the browser's namespaces did not come up ({})",
                launch::launch_log_tail(&launched.run_dir)
            ))),
        };
        match placed {
            Ok((proxy, ns)) => Ok((launched, proxy, ns)),
            Err(e) => {
                let _ = launch::teardown(
                    launched.child,
                    launched.pid,
                    &cfg.run_id,
                    &launched.run_dir,
                    None,
                )
                .await;
                Err((e, true))
            }
        }
    }

    /// The browser fault observed so far, if any.
    pub fn fault(&self) -> Option<String> {
        self.fault.borrow().clone()
    }

    /// How many JavaScript dialogs the host has dismissed so far.
    pub fn dialogs_dismissed(&self) -> u64 {
        self.dialogs.load(Ordering::SeqCst)
    }

    /// Sends one CDP call, failing at once on a known fault and as soon as one happens while
    /// waiting. A call still unanswered shortly before the step timeout is accompanied by a
    /// probe of the browser itself: no answer there means the browser is hung (or stopped), a
    /// fault detected within the step timeout; an answer means a slow page, and the call keeps
    /// its full timeout.
    async fn guarded(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
    ) -> Result<Value, SandboxError> {
        if let Some(f) = self.fault() {
            return Err(SandboxError::Fault(f));
        }
        let mut faults = self.fault.subscribe();
        // `wait_for` hands out a borrow of the value; drop it at once so the future stays Send.
        let fault_seen = async move {
            if faults.wait_for(Option::is_some).await.is_err() {
                // The sandbox owns the sender; without it no fault can arrive.
                std::future::pending::<()>().await;
            }
        };
        tokio::pin!(fault_seen);
        let call = self.cdp.call(session, method, params, self.step_timeout);
        tokio::pin!(call);
        let probe_at = tokio::time::sleep(
            self.step_timeout
                .saturating_sub(PROBE_TIMEOUT)
                .max(self.step_timeout / 2),
        );
        tokio::pin!(probe_at);
        let mut probed = false;
        let result = loop {
            tokio::select! {
                r = &mut call => break r,
                () = &mut fault_seen => {
                    return Err(SandboxError::Fault(self.fault().unwrap_or_default()));
                }
                () = &mut probe_at, if !probed => {
                    probed = true;
                    let probe = self
                        .cdp
                        .call(None, "Browser.getVersion", json!({}), PROBE_TIMEOUT)
                        .await;
                    if probe.is_err() && !self.cdp.is_closed() {
                        raise(
                            &self.fault,
                            format!(
                                "the browser stopped answering: cdp `{method}` got no answer, nor a {} ms probe, within the {} ms step timeout",
                                PROBE_TIMEOUT.as_millis(),
                                self.step_timeout.as_millis()
                            ),
                        );
                        return Err(SandboxError::Fault(self.fault().unwrap_or_default()));
                    }
                }
            }
        };
        match result {
            Err(CdpError::Closed) => {
                raise(
                    &self.fault,
                    "the browser's pipe closed: the browser process exited or was killed".into(),
                );
                Err(SandboxError::Fault(self.fault().unwrap_or_default()))
            }
            Err(CdpError::Protocol { message, .. })
                if message.contains("Internal error") || message.contains("Target closed") =>
            {
                // A renderer that just died answers like this before its crash event arrives:
                // give the event a moment, so the failure is reported as what it is.
                let mut faults = self.fault.subscribe();
                let arrived = tokio::time::timeout(CRASH_GRACE, async move {
                    faults.wait_for(Option::is_some).await.is_ok()
                })
                .await
                .unwrap_or(false);
                match self.fault() {
                    Some(f) if arrived => Err(SandboxError::Fault(f)),
                    _ => Err(SandboxError::Cdp(CdpError::Protocol {
                        method: method.to_string(),
                        message,
                    })),
                }
            }
            other => Ok(other?),
        }
    }

    async fn browser(&self, method: &str, params: Value) -> Result<Value, SandboxError> {
        self.guarded(None, method, params).await
    }

    async fn page(&self, method: &str, params: Value) -> Result<Value, SandboxError> {
        self.guarded(Some(&self.session), method, params).await
    }

    /// Evaluates an expression in Airlock's isolated world, recreating it after navigations.
    async fn eval_isolated(&mut self, expr: &str) -> Result<Value, SandboxError> {
        for _ in 0..2 {
            let ctx = self.world().await?;
            match self
                .page(
                    "Runtime.evaluate",
                    json!({"expression": expr, "contextId": ctx, "returnByValue": true}),
                )
                .await
            {
                Ok(v) => {
                    if v.get("exceptionDetails").is_some() {
                        return Err(SandboxError::Page("script error in isolated world".into()));
                    }
                    return Ok(v["result"]["value"].clone());
                }
                Err(SandboxError::Cdp(CdpError::Protocol { .. })) => self.world = None,
                Err(e) => return Err(e),
            }
        }
        Err(SandboxError::Page("page context unavailable".into()))
    }

    async fn world(&mut self) -> Result<i64, SandboxError> {
        if let Some(w) = self.world {
            return Ok(w);
        }
        let v = self
            .page(
                "Page.createIsolatedWorld",
                json!({"frameId": self.frame_id, "worldName": "airlock", "grantUniveralAccess": false}),
            )
            .await?;
        let id = v["executionContextId"]
            .as_i64()
            .ok_or_else(|| SandboxError::Page("no isolated world".into()))?;
        self.world = Some(id);
        Ok(id)
    }

    /// Current URL and title from the navigation history (no page script involved).
    pub async fn location(&self) -> Result<(String, String), SandboxError> {
        let h = self.page("Page.getNavigationHistory", json!({})).await?;
        let idx = h["currentIndex"].as_u64().unwrap_or(0) as usize;
        let entry = h["entries"].get(idx).cloned().unwrap_or(Value::Null);
        Ok((
            entry["url"].as_str().unwrap_or_default().to_string(),
            entry["title"].as_str().unwrap_or_default().to_string(),
        ))
    }

    async fn ax_nodes(&self) -> Result<Vec<AxNode>, SandboxError> {
        let v = self.page("Accessibility.getFullAXTree", json!({})).await?;
        Ok(snapshot::parse_ax_nodes(&v))
    }

    /// Screenshot, accessibility snapshot, URL, title and focus.
    pub async fn observe(&mut self) -> Result<Observation, SandboxError> {
        let shot = self
            .page(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": false}),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(shot["data"].as_str().unwrap_or_default())
            .map_err(|_| SandboxError::Page("screenshot was not base64".into()))?;
        let nodes = self.ax_nodes().await?;
        let snap = snapshot::render(&nodes);
        let (url, title) = self.location().await?;
        let focused = self.focused().await.ok().flatten();
        Ok(Observation {
            url,
            title,
            screenshot_png: png,
            snapshot: snap.text,
            focused,
            refs: snap.refs,
        })
    }

    /// Facts about the element that has keyboard focus, if any.
    pub async fn focused(&mut self) -> Result<Option<ElementFacts>, SandboxError> {
        let f = self.call_on_document(js::FOCUSED, json!([]), false).await?;
        let Some(obj) = f["objectId"].as_str() else {
            return Ok(None);
        };
        let Some(backend) = self.backend_of(obj).await else {
            return Ok(None);
        };
        // The same checks as a target gets: typing goes to this field too.
        let r = self.inspect(backend, None, false).await;
        let _ = self
            .page(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "airlock"}),
            )
            .await;
        Ok(Some(r?.facts))
    }

    /// Calls `function` with `this` = the page's document in Airlock's isolated world (recreated
    /// once if a navigation destroyed it) and returns CDP's `result` object: the value when
    /// `by_value`, else a remote object in the `airlock` group.
    async fn call_on_document(
        &mut self,
        function: &str,
        args: Value,
        by_value: bool,
    ) -> Result<Value, SandboxError> {
        for _ in 0..2 {
            let ctx = self.world().await?;
            let Ok(doc) = self
                .page(
                    "Runtime.evaluate",
                    json!({"expression": "document", "contextId": ctx, "objectGroup": "airlock"}),
                )
                .await
            else {
                self.world = None;
                continue;
            };
            let Some(doc_obj) = doc["result"]["objectId"].as_str() else {
                return Err(SandboxError::Page("the page has no document".into()));
            };
            let r = self
                .page(
                    "Runtime.callFunctionOn",
                    json!({"functionDeclaration": function, "objectId": doc_obj, "objectGroup": "airlock",
                           "arguments": args, "returnByValue": by_value}),
                )
                .await?;
            return Ok(r["result"].clone());
        }
        Err(SandboxError::Page("page context unavailable".into()))
    }

    /// Resolves a target to exactly one element, or fails closed with the reason.
    pub async fn resolve(
        &mut self,
        target: &Target,
        known_refs: &[String],
    ) -> Result<Resolved, SandboxError> {
        let r = self.resolve_inner(target, known_refs).await;
        let _ = self
            .page(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "airlock"}),
            )
            .await;
        r
    }

    async fn resolve_inner(
        &mut self,
        target: &Target,
        known_refs: &[String],
    ) -> Result<Resolved, SandboxError> {
        match target {
            Target::Point(p) => {
                if p.x < 0.0
                    || p.y < 0.0
                    || p.x >= f64::from(self.viewport.width)
                    || p.y >= f64::from(self.viewport.height)
                {
                    return Err(GroundingError::OutsideViewport(*p).into());
                }
                let obj = self
                    .hit_object(*p)
                    .await?
                    .ok_or(GroundingError::NothingAtPoint(*p))?;
                let backend = self.backend_of(&obj).await.ok_or(GroundingError::Gone)?;
                self.inspect(backend, Some(*p), true).await
            }
            Target::Ref(r) => {
                if !known_refs.iter().any(|k| k == r) {
                    return Err(GroundingError::UnknownRef(r.clone()).into());
                }
                let backend = r
                    .strip_prefix('e')
                    .and_then(|n| n.parse::<i64>().ok())
                    .ok_or_else(|| GroundingError::UnknownRef(r.clone()))?;
                self.inspect(backend, None, true).await
            }
            Target::Role { role, name } => {
                let nodes = self.ax_nodes().await?;
                let found: Vec<i64> = snapshot::find_by_role(&nodes, role, name)
                    .iter()
                    .filter_map(|n| n.backend_id)
                    .collect();
                self.one_of(found, target).await
            }
            Target::Css(sel) => {
                let found = self.select_all(sel, target).await?;
                self.one_of(found, target).await
            }
        }
    }

    /// The backend ids of the elements `sel` matches in the top document.
    async fn select_all(&mut self, sel: &str, target: &Target) -> Result<Vec<i64>, SandboxError> {
        let expr = format!(
            "(() => {{ try {{ return Array.from(document.querySelectorAll({})).slice(0, {MAX_CANDIDATES}); }} catch (e) {{ return -1; }} }})()",
            serde_json::to_string(sel).unwrap_or_default()
        );
        let ctx = self.world().await?;
        let v = self
            .page(
                "Runtime.evaluate",
                json!({"expression": expr, "contextId": ctx, "objectGroup": "airlock"}),
            )
            .await?;
        let res = &v["result"];
        let Some(list) = res["objectId"].as_str() else {
            return match res["value"].as_i64() {
                Some(-1) => Err(GroundingError::BadSelector(sel.to_string()).into()),
                _ => Err(GroundingError::NoMatch(target.to_string()).into()),
            };
        };
        let props = self
            .page(
                "Runtime.getProperties",
                json!({"objectId": list, "ownProperties": true}),
            )
            .await?;
        let mut found = Vec::new();
        for p in props["result"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let index = p["name"]
                .as_str()
                .is_some_and(|n| n.parse::<usize>().is_ok());
            if let (true, Some(obj)) = (index, p["value"]["objectId"].as_str()) {
                if let Some(b) = self.backend_of(obj).await {
                    found.push(b);
                }
            }
        }
        Ok(found)
    }

    /// The one element among the matches of a role and name or a selector. Several matches
    /// resolve only when exactly one of them is an element a person can see and reach (what a
    /// person reading the page would take the name to mean); otherwise the step fails closed.
    /// A single match is inspected and returned as it is, hidden or not, so the gate refuses
    /// it with the reason.
    async fn one_of(&mut self, found: Vec<i64>, target: &Target) -> Result<Resolved, SandboxError> {
        match found.as_slice() {
            [] => Err(GroundingError::NoMatch(target.to_string()).into()),
            [one] => self.inspect(*one, None, true).await,
            many => {
                let mut seen = Vec::new();
                for b in many.iter().take(MAX_CANDIDATES) {
                    if let Ok(r) = self.inspect(*b, None, true).await {
                        if r.facts.unseen().is_none() {
                            seen.push(*b);
                        }
                    }
                }
                match seen.as_slice() {
                    // Inspected again: looking at the others may have scrolled the page.
                    [one] => self.inspect(*one, None, true).await,
                    _ => Err(GroundingError::Ambiguous {
                        target: target.to_string(),
                        count: many.len(),
                    }
                    .into()),
                }
            }
        }
    }

    /// The one resolution path every target form takes once it has an element: its actionable
    /// element, facts and click point, then the same checks for all forms. `at` is the point a
    /// point target named; any other form scrolls the element into view and uses the centre of
    /// its box. The checks (recorded in the facts, for the gate): whether a person can see it
    /// ([`js::VISIBILITY`]), whether a click at the point reaches it (the hit test there is the
    /// element or inside it; otherwise it is covered, or clipped away), and whether a
    /// see-through layer sits over it. Dispatch runs this again ([`Self::recheck`]). `scroll`
    /// is off only for the focused element, measured while observing: scrolling then would
    /// move the page under the screenshot the model is about to read.
    async fn inspect(
        &mut self,
        backend: i64,
        at: Option<Point>,
        scroll: bool,
    ) -> Result<Resolved, SandboxError> {
        if at.is_none() && scroll {
            let _ = self
                .page(
                    "DOM.scrollIntoViewIfNeeded",
                    json!({"backendNodeId": backend}),
                )
                .await;
        }
        let (mut facts, actionable) = self.describe(backend).await?;
        let obj = self.object_for(actionable).await?;
        let v = self
            .page(
                "Runtime.callFunctionOn",
                json!({"functionDeclaration": js::VISIBILITY, "objectId": obj, "returnByValue": true, "objectGroup": "airlock"}),
            )
            .await?;
        let seen = &v["result"]["value"];
        facts.hidden = seen["hidden"].as_str().map(str::to_string);
        let clipped = seen["clipped"].as_bool().unwrap_or(false);
        let point = match (at, facts.center) {
            (Some(p), _) | (None, Some(p)) => p,
            (None, None) => {
                // No box: nothing to click; the facts say why.
                facts
                    .hidden
                    .get_or_insert_with(|| "it has no box (zero size)".into());
                Point { x: -1.0, y: -1.0 }
            }
        };
        let in_viewport = point.x >= 0.0
            && point.y >= 0.0
            && point.x < f64::from(self.viewport.width)
            && point.y < f64::from(self.viewport.height);
        if facts.hidden.is_none() && !in_viewport {
            facts.hidden = Some(format!("outside the viewport (its click point is {point})"));
        }
        // Hit test and cover check wherever there is a point to click, hidden or not: an
        // invisible layer over a control is reported as the layer it is.
        if in_viewport {
            let hit = self.hit_object(point).await?;
            let hit_actionable = match &hit {
                Some(obj) => self.backend_of(obj).await,
                None => None,
            };
            if hit_actionable != Some(actionable) && facts.hidden.is_none() {
                if clipped {
                    facts.hidden = Some("clipped away (clip-path)".into());
                } else {
                    let by = match &hit {
                        Some(obj) => self
                            .describe_object(obj)
                            .await
                            .map(|(f, _)| format!("{} '{}'", f.role, f.name))
                            .unwrap_or_else(|_| "another element".into()),
                        None => "nothing".into(),
                    };
                    facts.covered_by = Some(by);
                }
            }
            if facts.covered_by.is_none() {
                facts.covers = self.transparent_cover(point).await;
            }
        }
        facts.invisible = facts.invisible || facts.hidden.is_some();
        Ok(Resolved {
            facts,
            backend_id: actionable,
            point,
            by_point: at.is_some(),
        })
    }

    /// If the topmost element at `p` is a see-through layer over an interactive element,
    /// describes the covered element.
    async fn transparent_cover(&mut self, p: Point) -> Option<String> {
        let r = self
            .call_on_document(
                js::TRANSPARENT_COVER,
                json!([{"value": p.x}, {"value": p.y}]),
                true,
            )
            .await
            .ok()?;
        r["value"].as_str().map(str::to_string)
    }

    /// The actionable element a click at `p` would reach (as a remote object in Airlock's
    /// isolated world), descending into same-origin frames; `None` if nothing is there.
    async fn hit_object(&mut self, p: Point) -> Result<Option<String>, SandboxError> {
        let r = self
            .call_on_document(js::HIT, json!([{"value": p.x}, {"value": p.y}]), false)
            .await?;
        Ok(r["objectId"].as_str().map(str::to_string))
    }

    async fn backend_of(&self, obj: &str) -> Option<i64> {
        self.page("DOM.describeNode", json!({"objectId": obj}))
            .await
            .ok()?["node"]["backendNodeId"]
            .as_i64()
    }

    async fn object_for(&mut self, backend: i64) -> Result<String, SandboxError> {
        let ctx = self.world().await?;
        let r = self
            .page(
                "DOM.resolveNode",
                json!({"backendNodeId": backend, "executionContextId": ctx, "objectGroup": "airlock"}),
            )
            .await;
        let r = match r {
            Ok(r) => r,
            Err(_) => {
                // The world may belong to a previous document; retry once with a fresh one.
                self.world = None;
                let ctx = self.world().await?;
                self.page(
                    "DOM.resolveNode",
                    json!({"backendNodeId": backend, "executionContextId": ctx, "objectGroup": "airlock"}),
                )
                .await
                .map_err(|_| GroundingError::Gone)?
            }
        };
        r["object"]["objectId"]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| GroundingError::Gone.into())
    }

    /// Describes the actionable element for a node: (facts, actionable backend id).
    async fn describe(&mut self, backend: i64) -> Result<(ElementFacts, i64), SandboxError> {
        let obj = self.object_for(backend).await?;
        let a = self
            .page(
                "Runtime.callFunctionOn",
                json!({"functionDeclaration": js::ACTIONABLE, "objectId": obj, "objectGroup": "airlock"}),
            )
            .await?;
        let actionable_obj = a["result"]["objectId"]
            .as_str()
            .map(str::to_string)
            .unwrap_or(obj);
        self.describe_object(&actionable_obj).await
    }

    /// Describes an (already actionable) element given as a remote object.
    async fn describe_object(&mut self, obj: &str) -> Result<(ElementFacts, i64), SandboxError> {
        let actionable = self.backend_of(obj).await.ok_or(GroundingError::Gone)?;
        let d = self
            .page(
                "Runtime.callFunctionOn",
                json!({"functionDeclaration": js::DESCRIBE, "objectId": obj, "returnByValue": true, "objectGroup": "airlock"}),
            )
            .await?;
        let mut facts: ElementFacts = serde_json::from_value(d["result"]["value"].clone())
            .map_err(|e| SandboxError::Page(format!("element description unreadable: {e}")))?;
        let ax = self
            .page(
                "Accessibility.getPartialAXTree",
                json!({"backendNodeId": actionable, "fetchRelatives": false}),
            )
            .await;
        let nodes = ax
            .map(|ax| snapshot::parse_ax_nodes(&ax))
            .unwrap_or_default();
        if let Some(n) = nodes
            .iter()
            .find(|n| n.backend_id == Some(actionable))
            .or(nodes.first())
        {
            facts.role = n.role.clone();
            facts.name = n.name.clone();
        }
        facts.node_ref = format!("e{actionable}");
        Ok((facts, actionable))
    }

    /// Executes one action that the gate allowed. Returns a short note for the step record.
    ///
    /// For clicks the element under the point is checked again immediately before dispatch:
    /// if it is no longer the element the decision was about, nothing is clicked.
    pub async fn execute(
        &mut self,
        action: &Action,
        resolved: Option<&Resolved>,
    ) -> Result<String, SandboxError> {
        let seen = self.intercepts.lock().map(|l| l.len()).unwrap_or(0);
        let result = self.execute_inner(action, resolved).await;
        // Tell the model what the browser refused while the action ran.
        let news: Vec<String> = self
            .intercepts
            .lock()
            .map(|l| l.iter().skip(seen).map(|r| r.message()).collect())
            .unwrap_or_default();
        match result {
            Ok(note) if news.is_empty() => Ok(note),
            Ok(note) => Ok(format!("{note}; {}", news.join("; "))),
            Err(SandboxError::Navigation(n)) if !news.is_empty() => Err(SandboxError::Navigation(
                format!("{n} ({})", news.join("; ")),
            )),
            Err(e) => Err(e),
        }
    }

    /// The requests of the page held for the host, taken out: each must be given to
    /// [`BrowserSandbox::release`].
    pub fn take_held(&self) -> Vec<HeldRequest> {
        self.held
            .lock()
            .map(|mut h| std::mem::take(&mut *h))
            .unwrap_or_default()
    }

    /// Sends a held request as the page made it (`allow`), or fails it as blocked, recording
    /// `why`; then waits for the page to settle as after an action. Returns the settle note.
    pub async fn release(
        &mut self,
        req: &HeldRequest,
        allow: bool,
        why: &str,
    ) -> Result<Option<String>, SandboxError> {
        let events = self.cdp.events();
        let started = Instant::now();
        if allow {
            self.cdp
                .call(
                    req.session.as_deref(),
                    "Fetch.continueRequest",
                    json!({"requestId": req.id}),
                    t(5000),
                )
                .await?;
        } else {
            crate::intercept::fail_paused(&self.cdp, req.session.as_deref(), &req.id).await?;
            if let Ok(mut l) = self.intercepts.lock() {
                l.push(InterceptRecord::blocked(
                    &req.url,
                    req.resource_type.clone(),
                    req.navigation,
                    why.to_string(),
                ));
            }
        }
        self.settle(events, started).await
    }

    /// Everything the interception layer did since the last call (for the audit).
    pub fn drain_intercepts(&self) -> Vec<InterceptRecord> {
        self.intercepts
            .lock()
            .map(|mut l| l.drain(..).collect())
            .unwrap_or_default()
    }

    async fn execute_inner(
        &mut self,
        action: &Action,
        resolved: Option<&Resolved>,
    ) -> Result<String, SandboxError> {
        let events = self.cdp.events();
        let started = Instant::now();
        let note = match action {
            Action::Navigate { url } => {
                let r = match self.page("Page.navigate", json!({"url": url})).await {
                    Err(SandboxError::Cdp(CdpError::Timeout { ms, .. })) => {
                        self.stop_loading().await;
                        return Err(SandboxError::Navigation(format!(
                            "{url}: no answer within {ms} ms; the host stopped the load"
                        )));
                    }
                    other => other?,
                };
                if let Some(err) = r["errorText"].as_str().filter(|e| !e.is_empty()) {
                    return Err(SandboxError::Navigation(format!("{url}: {err}")));
                }
                format!("navigated to {url}")
            }
            Action::Click {
                button,
                count,
                modifiers,
                ..
            } => {
                let res = resolved.ok_or(GroundingError::Unresolved)?;
                self.recheck(res).await?;
                self.click(res, *button, *count, modifier_bits(modifiers))
                    .await?;
                format!(
                    "clicked {} '{}' at {}",
                    res.facts.role, res.facts.name, res.point
                )
            }
            Action::Type { text, .. } => {
                // Typing into a list box chooses the option a person would pick by that text.
                if let Some(chosen) = self.choose_option(resolved, text).await? {
                    chosen
                } else {
                    if let Some(res) = resolved {
                        self.recheck(res).await?;
                        self.click(res, MouseButton::Left, 1, 0).await?;
                    }
                    let TypedText::Literal(text) = text else {
                        return Err(SandboxError::Unsupported(
                            "secret placeholders are substituted by the secrets broker".into(),
                        ));
                    };
                    let mut first = true;
                    for line in text.split('\n') {
                        if !first {
                            self.key(
                                &airlock_core::KeyCombo::parse("Return")
                                    .map_err(|e| SandboxError::Page(e.to_string()))?,
                            )
                            .await?;
                        }
                        first = false;
                        if !line.is_empty() {
                            self.page("Input.insertText", json!({"text": line})).await?;
                        }
                    }
                    format!("typed {} characters", text.chars().count())
                }
            }
            Action::Key { combo, repeat } => {
                for _ in 0..(*repeat).clamp(1, 100) {
                    self.key(combo).await?;
                }
                format!("pressed {combo}")
            }
            Action::Scroll { at, dx, dy } => {
                let p = at.unwrap_or(Point {
                    x: f64::from(self.viewport.width) / 2.0,
                    y: f64::from(self.viewport.height) / 2.0,
                });
                self.page(
                    "Input.dispatchMouseEvent",
                    json!({"type": "mouseWheel", "x": p.x, "y": p.y, "deltaX": dx, "deltaY": dy}),
                )
                .await?;
                format!("scrolled by ({dx:.0}, {dy:.0})")
            }
            Action::MouseMove { to } => {
                self.mouse_event("mouseMoved", *to, "none", 0, 0).await?;
                format!("moved mouse to {to}")
            }
            Action::Drag { from, to } => {
                self.mouse_event("mouseMoved", *from, "none", 0, 0).await?;
                self.mouse_event("mousePressed", *from, "left", 1, 0)
                    .await?;
                self.mouse_event("mouseMoved", *to, "left", 0, 0).await?;
                self.mouse_event("mouseReleased", *to, "left", 1, 0).await?;
                format!("dragged from {from} to {to}")
            }
            Action::Hover { .. } => {
                let res = resolved.ok_or(GroundingError::Unresolved)?;
                self.recheck(res).await?;
                self.mouse_event("mouseMoved", res.point, "none", 0, 0)
                    .await?;
                format!(
                    "moved the mouse onto {} '{}' at {}",
                    res.facts.role, res.facts.name, res.point
                )
            }
            Action::Select { value, .. } => {
                let res = resolved.ok_or(GroundingError::Unresolved)?;
                if res.facts.tag != "select" {
                    return Err(SandboxError::Unsupported(format!(
                        "{} '{}' is not a list box (select); type into it instead",
                        res.facts.role, res.facts.name
                    )));
                }
                let text = TypedText::Literal(value.clone());
                self.choose_option(Some(res), &text)
                    .await?
                    .ok_or_else(|| SandboxError::Page("the list box is disabled".into()))?
            }
            Action::Upload { file, .. } => {
                let res = resolved.ok_or(GroundingError::Unresolved)?;
                self.upload(res, file).await?
            }
            Action::Wait {
                condition,
                timeout_ms,
            } => {
                let limit = Duration::from_millis(*timeout_ms).min(self.step_timeout);
                // A wait whose condition never held did not do what it was for: a failure,
                // with the condition named, not a success.
                return if self.wait_for(condition, limit).await? {
                    Ok(format!(
                        "{condition} after {} ms",
                        started.elapsed().as_millis()
                    ))
                } else {
                    Err(SandboxError::Page(format!(
                        "condition never held: {condition} within {} ms",
                        limit.as_millis()
                    )))
                };
            }
            Action::Screenshot | Action::Done { .. } => return Ok("ok".into()),
            Action::Back | Action::Forward => {
                let h = self.page("Page.getNavigationHistory", json!({})).await?;
                let idx = h["currentIndex"].as_i64().unwrap_or(0);
                let want = if matches!(action, Action::Back) {
                    idx - 1
                } else {
                    idx + 1
                };
                let entry = usize::try_from(want).ok().and_then(|i| h["entries"].get(i));
                let Some(id) = entry.and_then(|e| e["id"].as_i64()) else {
                    return Ok("no history entry".into());
                };
                self.page("Page.navigateToHistoryEntry", json!({"entryId": id}))
                    .await?;
                action.to_string()
            }
        };
        let settle_note = self.settle(events, started).await?;
        if let Action::Navigate { url } = action {
            // A server error is a failed load, not a page to read: the engine reloads it,
            // bounded (`airlock-engine`'s `faults::retry_server_error`).
            let status = self
                .eval_isolated(js::DOCUMENT_STATUS)
                .await
                .ok()
                .and_then(|v| v["status"].as_u64())
                .unwrap_or(0);
            if status >= 500 {
                return Err(SandboxError::Navigation(format!("{url}: HTTP {status}")));
            }
        }
        Ok(match settle_note {
            Some(n) => format!("{note}; {n}"),
            None => note,
        })
    }

    /// When the target (or, without one, the focused element) is a `<select>`, chooses the
    /// option whose visible text or value is `text` (exactly, else ignoring case and spacing)
    /// and fires `input` and `change` as a person's choice does. `None` when it is no select;
    /// an error when no option matches (nothing changes then).
    async fn choose_option(
        &mut self,
        resolved: Option<&Resolved>,
        text: &TypedText,
    ) -> Result<Option<String>, SandboxError> {
        let obj = match resolved {
            Some(res) if res.facts.tag == "select" => {
                self.recheck(res).await?;
                self.object_for(res.backend_id).await?
            }
            Some(_) => return Ok(None),
            None => {
                let f = self.call_on_document(js::FOCUSED, json!([]), false).await?;
                match f["objectId"].as_str() {
                    Some(o) => o.to_string(),
                    None => return Ok(None),
                }
            }
        };
        let TypedText::Literal(want) = text else {
            // A secret is never an option to choose; the broker refuses it before this.
            return Ok(None);
        };
        let r = self
            .page(
                "Runtime.callFunctionOn",
                json!({"functionDeclaration": js::CHOOSE_OPTION, "objectId": obj,
                       "arguments": [{"value": want}], "returnByValue": true, "objectGroup": "airlock"}),
            )
            .await;
        let _ = self
            .page(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "airlock"}),
            )
            .await;
        let v = r?["result"]["value"].clone();
        if v.is_null() {
            return Ok(None);
        }
        match v["chosen"].as_str() {
            Some(label) => Ok(Some(format!(
                "chose option '{}' in list box '{}'",
                label,
                v["name"].as_str().unwrap_or_default()
            ))),
            None => Err(SandboxError::Page(format!(
                "no option of list box '{}' is `{}` (options: {})",
                v["name"].as_str().unwrap_or_default(),
                airlock_core::action::truncate(want, 80),
                v["options"].as_str().unwrap_or_default()
            ))),
        }
    }

    /// Puts declared file `id` into the resolved file input: copied into the run's own
    /// directory (the only place the browser can read), then set with `DOM.setFileInputFiles`,
    /// which fires `input` and `change` as a person's choice does.
    async fn upload(&mut self, res: &Resolved, id: &str) -> Result<String, SandboxError> {
        let Some((_, src)) = self.files.iter().find(|(f, _)| f == id).cloned() else {
            return Err(SandboxError::Unsupported(format!(
                "file `{id}` is not declared in the task"
            )));
        };
        if res.facts.tag != "input" || res.facts.input_type.as_deref() != Some("file") {
            return Err(SandboxError::Unsupported(format!(
                "{} '{}' is not a file input",
                res.facts.role, res.facts.name
            )));
        }
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_else(|| "upload".into());
        let dir = self.run_dir.join("uploads").join(id);
        let copy = (|| -> std::io::Result<u64> {
            use std::os::unix::fs::PermissionsExt;
            std::fs::create_dir_all(&dir)?;
            for d in [self.run_dir.join("uploads"), dir.clone()] {
                std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755))?;
            }
            let n = std::fs::copy(&src, dir.join(&name))?;
            std::fs::set_permissions(dir.join(&name), std::fs::Permissions::from_mode(0o644))?;
            Ok(n)
        })();
        let bytes = copy
            .map_err(|e| SandboxError::Page(format!("declared file `{id}` cannot be read: {e}")))?;
        let seen_by_browser = match self.isolation {
            Isolation::Namespaces => PathBuf::from(launch::INNER_RUN_DIR)
                .join("uploads")
                .join(id)
                .join(&name),
            Isolation::InsecureHost => dir.join(&name),
        };
        self.recheck(res).await?;
        self.page(
            "DOM.setFileInputFiles",
            json!({"files": [seen_by_browser.display().to_string()], "backendNodeId": res.backend_id}),
        )
        .await?;
        Ok(format!(
            "put declared file `{id}` ({name}, {bytes} bytes) into {} '{}'",
            res.facts.role, res.facts.name
        ))
    }

    /// The decision's element measured again immediately before dispatch, through the same
    /// path as at decision time ([`Self::inspect`]): refused if it is gone, now hidden or
    /// covered, moved away from the decided click point, or changed into something else (what
    /// it is, what it is called, where it leads or posts).
    async fn recheck(&mut self, res: &Resolved) -> Result<(), SandboxError> {
        let at = res.by_point.then_some(res.point);
        let now = self.inspect(res.backend_id, at, true).await;
        let _ = self
            .page(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "airlock"}),
            )
            .await;
        let was = format!("{} '{}'", res.facts.role, res.facts.name);
        let now = now.map_err(|_| SandboxError::Drift(format!("{was} is gone from the page")))?;
        if now.backend_id != res.backend_id {
            return Err(SandboxError::Drift(format!(
                "the element at {} is no longer {was}",
                res.point
            )));
        }
        if let Some(why) = now.facts.unseen() {
            if res.by_point && now.facts.covered_by.is_some() {
                return Err(SandboxError::Drift(format!(
                    "the element at {} is no longer {was}",
                    res.point
                )));
            }
            return Err(SandboxError::Drift(format!("since the decision, {why}")));
        }
        let moved =
            (now.point.x - res.point.x).abs() > 2.0 || (now.point.y - res.point.y).abs() > 2.0;
        if moved {
            return Err(SandboxError::Drift(format!(
                "{was} moved from {} to {}",
                res.point, now.point
            )));
        }
        if let Some(what) = changed(&res.facts, &now.facts) {
            return Err(SandboxError::Drift(format!("{was} changed: {what}")));
        }
        Ok(())
    }

    async fn mouse_event(
        &mut self,
        kind: &str,
        p: Point,
        button: &str,
        clicks: u8,
        mods: i64,
    ) -> Result<(), SandboxError> {
        self.page(
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": p.x, "y": p.y, "button": button, "clickCount": clicks, "modifiers": mods}),
        )
        .await?;
        self.mouse = p;
        Ok(())
    }

    /// Moves to the resolved point, checks once more that the element under it is still the
    /// one the decision was about (a page can swap it on `mousemove`, as the pointer arrives),
    /// then presses.
    async fn click(
        &mut self,
        res: &Resolved,
        button: MouseButton,
        count: u8,
        mods: i64,
    ) -> Result<(), SandboxError> {
        let p = res.point;
        let b = match button {
            MouseButton::Left => "left",
            MouseButton::Right => "right",
            MouseButton::Middle => "middle",
        };
        self.mouse_event("mouseMoved", p, "none", 0, mods).await?;
        self.recheck(res).await?;
        for n in 1..=count.clamp(1, 3) {
            self.mouse_event("mousePressed", p, b, n, mods).await?;
            self.mouse_event("mouseReleased", p, b, n, mods).await?;
        }
        Ok(())
    }

    async fn key(&mut self, combo: &airlock_core::KeyCombo) -> Result<(), SandboxError> {
        let (down, up) = key_events(combo);
        self.page("Input.dispatchKeyEvent", down).await?;
        self.page("Input.dispatchKeyEvent", up).await?;
        Ok(())
    }

    /// Waits until the page settles after an action: no main-frame navigation in flight, the
    /// document complete, no `aria-busy` element, and a quiet DOM. Bounded by the step timeout;
    /// a page that never settles is reported, not waited on forever.
    async fn settle(
        &mut self,
        mut events: broadcast::Receiver<CdpEvent>,
        started: Instant,
    ) -> Result<Option<String>, SandboxError> {
        let deadline = started + self.step_timeout;
        let mut loading = false;
        loop {
            loop {
                match events.try_recv() {
                    Ok(ev) => {
                        if ev.session_id.as_deref() != Some(self.session.as_str()) {
                            continue;
                        }
                        let main = ev.params["frameId"].as_str() == Some(self.frame_id.as_str())
                            || ev.params["frame"]["id"].as_str() == Some(self.frame_id.as_str());
                        match ev.method.as_str() {
                            "Page.frameRequestedNavigation" | "Page.frameStartedLoading"
                                if main =>
                            {
                                loading = true
                            }
                            "Page.frameStoppedLoading" if main => loading = false,
                            "Page.frameNavigated" if main => self.world = None,
                            _ => {}
                        }
                    }
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            if !loading && started.elapsed() >= NAV_GRACE {
                if let Ok(state) = self.eval_isolated(js::SETTLE_STATE).await {
                    let ready = state["ready"] == "complete";
                    let busy = state["busy"].as_bool().unwrap_or(true);
                    let quiet = state["quiet"].as_f64().unwrap_or(0.0);
                    if ready && !busy && quiet >= QUIET_MS {
                        return Ok(None);
                    }
                    if Instant::now() >= deadline {
                        return Ok(Some(format!(
                            "{UNSETTLED_CHANGING} {} ms ({})",
                            self.step_timeout.as_millis(),
                            if busy {
                                "busy indicator still shown"
                            } else {
                                "still changing"
                            }
                        )));
                    }
                }
            }
            if let Some(f) = self.fault() {
                return Err(SandboxError::Fault(f));
            }
            // A held request would keep the page waiting: the host decides on it first.
            if self.held.lock().is_ok_and(|h| !h.is_empty()) {
                return Ok(Some(HELD_NOTE.to_string()));
            }
            if Instant::now() >= deadline {
                // A load that never ends would hold every later call on this page (the
                // accessibility tree waits for it): stop it, so the page is observable again.
                let stopped = self.stop_loading().await;
                return Ok(Some(format!(
                    "{UNSETTLED_LOADING} {} ms{}",
                    self.step_timeout.as_millis(),
                    if stopped {
                        "; the host stopped the load"
                    } else {
                        ""
                    }
                )));
            }
            tokio::time::sleep(t(40)).await;
        }
    }

    /// Stops a pending main-frame load (a request that never answers); whether it worked.
    async fn stop_loading(&mut self) -> bool {
        let ok = self.page("Page.stopLoading", json!({})).await.is_ok();
        self.world = None;
        ok
    }

    /// Polls a condition until it holds or `limit` passes. Never a blind sleep.
    pub async fn wait_for(
        &mut self,
        cond: &WaitCondition,
        limit: Duration,
    ) -> Result<bool, SandboxError> {
        let started = Instant::now();
        if matches!(cond, WaitCondition::Settled) {
            let events = self.cdp.events();
            let saved = self.step_timeout;
            self.step_timeout = limit;
            let r = self.settle(events, started).await;
            self.step_timeout = saved;
            return Ok(r?.is_none());
        }
        loop {
            // A condition that can no longer be checked is a fault, not "not yet".
            if let Some(f) = self.fault() {
                return Err(SandboxError::Fault(f));
            }
            let ok = match cond {
                WaitCondition::Settled => true,
                WaitCondition::Elapsed => started.elapsed() >= limit,
                WaitCondition::TextPresent { text } => {
                    let expr = js::TEXT_PRESENT
                        .replace("%TEXT%", &serde_json::to_string(text).unwrap_or_default());
                    self.eval_isolated(&expr).await.ok() == Some(Value::Bool(true))
                }
                WaitCondition::ElementPresent { role, name } => {
                    !snapshot::find_by_role(&self.ax_nodes().await?, role, name).is_empty()
                }
                WaitCondition::UrlMatches { pattern } => {
                    airlock_core::glob::matches(pattern, &self.location().await?.0)
                }
            };
            if ok {
                return Ok(true);
            }
            if started.elapsed() >= limit {
                return Ok(false);
            }
            tokio::time::sleep(t(100)).await;
        }
    }

    /// Viewport rectangles (x, y, width, height) of fields and text showing any of `needles`.
    pub async fn rects_showing(
        &mut self,
        needles: &[String],
    ) -> Result<Vec<(f64, f64, f64, f64)>, SandboxError> {
        if needles.is_empty() {
            return Ok(Vec::new());
        }
        let r = self
            .call_on_document(js::RECTS_SHOWING, json!([{"value": needles}]), true)
            .await?;
        let _ = self
            .page(
                "Runtime.releaseObjectGroup",
                json!({"objectGroup": "airlock"}),
            )
            .await;
        Ok(r["value"]
            .as_array()
            .map(|rs| {
                rs.iter()
                    .filter_map(|r| {
                        Some((
                            r["x"].as_f64()?,
                            r["y"].as_f64()?,
                            r["width"].as_f64()?,
                            r["height"].as_f64()?,
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default())
    }

    /// How the current main document arrived: its HTTP status (0 when unknown, e.g. `about:`
    /// pages), whether a redirect led there, its URL, and how it was reached (CDP's transition type: `link`, `typed`,
    /// `form_submit`, `reload`, ...). Crash handling uses it to tell a failed read (safe to load
    /// again) from a failed form submission (never repeated).
    pub async fn document_status(&mut self) -> Result<DocumentStatus, SandboxError> {
        let v = self.eval_isolated(js::DOCUMENT_STATUS).await?;
        let h = self.page("Page.getNavigationHistory", json!({})).await?;
        let idx = h["currentIndex"].as_u64().unwrap_or(0) as usize;
        let entry = h["entries"].get(idx).cloned().unwrap_or(Value::Null);
        Ok(DocumentStatus {
            status: v["status"]
                .as_u64()
                .and_then(|s| u16::try_from(s).ok())
                .unwrap_or(0),
            redirected: v["redirects"].as_u64().unwrap_or(0) > 0,
            url: entry["url"].as_str().unwrap_or_default().to_string(),
            transition: entry["transitionType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        })
    }

    /// Every piece of page text with where it lives (for the injection scanner).
    pub async fn page_texts(
        &mut self,
    ) -> Result<Vec<airlock_core::observation::PageText>, SandboxError> {
        let v = self.eval_isolated(js::PAGE_TEXTS).await?;
        Ok(serde_json::from_value(v).unwrap_or_default())
    }

    /// Whether visible text is present now (for the verifier).
    pub async fn text_present(&mut self, text: &str) -> Result<bool, SandboxError> {
        self.wait_for(
            &WaitCondition::TextPresent {
                text: text.to_string(),
            },
            Duration::ZERO,
        )
        .await
    }

    /// A digest of the page's visible state (address, title, text, field values,
    /// expanded/checked states), for the host's checkpoint after a step: equal digests before
    /// and after mean the step changed nothing a person could see.
    pub async fn fingerprint(&mut self) -> Result<u64, SandboxError> {
        self.eval_isolated(js::PAGE_FINGERPRINT)
            .await?
            .as_u64()
            .ok_or_else(|| SandboxError::Page("page fingerprint unavailable".into()))
    }

    /// Number of elements with this role and name now (for the verifier).
    pub async fn count_role(&self, role: &str, name: &str) -> Result<usize, SandboxError> {
        Ok(snapshot::find_by_role(&self.ax_nodes().await?, role, name).len())
    }

    /// The raw CDP connection and page session, for benchmarks that measure the floor (the
    /// same CDP calls without Airlock). The engine never uses this.
    #[doc(hidden)]
    pub fn raw_cdp_for_benchmarks(&self) -> (Cdp, String) {
        (self.cdp.clone(), self.session.clone())
    }

    /// The launcher's process id (bwrap, or Chromium without namespaces).
    pub fn browser_pid(&self) -> u32 {
        self.pid
    }

    /// How this browser is isolated, and its network namespace if it has one.
    pub fn isolation(&self) -> (Isolation, Option<&str>) {
        (self.isolation, self.netns.as_deref())
    }

    /// Ends the run's browser: closes it, kills every process of the run, deletes the run
    /// directory, and reports what it found.
    pub async fn teardown(mut self) -> TeardownReport {
        // The fault watcher goes first: the page detaching ("Render process gone") because we
        // close the browser is the end of the run, not a fault to warn about.
        self.dialog_task.abort();
        // A faulted browser is not asked politely: it may never answer.
        if self.fault().is_none() {
            let _ = self
                .cdp
                .call(None, "Browser.close", json!({}), t(1500))
                .await;
        }
        self.intercept_task.abort();
        let child = self.child.take();
        match child {
            Some(child) => {
                launch::teardown(
                    child,
                    self.pid,
                    &self.run_id,
                    &self.run_dir,
                    self.netns.as_deref(),
                )
                .await
            }
            None => TeardownReport {
                browser_pid: self.pid,
                processes_killed: vec![],
                processes_remaining: vec![],
                run_dir: self.run_dir.display().to_string(),
                run_dir_removed: !self.run_dir.exists(),
                network_namespace: self.netns.clone(),
                namespace_released: true,
            },
        }
    }
}

/// Records the first fault; later ones are consequences of it.
fn raise(fault: &watch::Sender<Option<String>>, what: String) {
    fault.send_if_modified(|f| {
        if f.is_none() {
            tracing::warn!(fault = %what, "browser fault");
            *f = Some(what);
            true
        } else {
            false
        }
    });
}

impl Drop for BrowserSandbox {
    fn drop(&mut self) {
        self.dialog_task.abort();
        if self.child.is_some() {
            // Not torn down properly (an error path): kill synchronously, best effort.
            for pid in launch::run_processes(self.pid, &self.run_id) {
                if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
                    let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
                }
            }
            let _ = std::fs::remove_dir_all(&self.run_dir);
        }
    }
}
