//! In-browser interception: every request, navigation, frame, worker and popup is checked
//! against the run's host policy inside Chromium, so the model gets a clear reason ("navigation
//! to mail.example blocked: not in task domains") instead of a broken page.
//!
//! This is a second, independent boundary: the egress proxy and the network namespace block
//! the same traffic even if this layer is switched off. It uses CDP `Fetch` on every target,
//! with auto-attach paused at start (`waitForDebuggerOnStart`) so a popup, an out-of-process
//! iframe or a worker cannot send a request before interception is installed on it.
//!
//! Every paused request to an allowed host is also checked for what it carries (the policy's
//! [`crate::proxy::EgressScan`]: URL, headers and body, before the task's effect gate): one that
//! would take a secret to a host outside the secret's scope is failed and recorded as
//! [`InterceptRecord::SecretEgress`], naming the secret and the part, never its value. A
//! request to a host outside the task is refused for its host first, whatever it carries.

use crate::cdp::{Cdp, CdpEvent};
use crate::proxy::{scan_request, EgressPolicy, SecretLeak};
use airlock_core::host::WebUrl;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Something the interception layer did, for the audit and for the model's feedback.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum InterceptRecord {
    /// A request (or top-level navigation) was refused in the browser.
    Blocked {
        url: String,
        resource_type: String,
        navigation: bool,
        reason: String,
    },
    /// A popup (window.open, target=_blank) was closed; the main tab stays where it is.
    PopupClosed { url: String },
    /// A download finished into the run's directory.
    Download {
        url: String,
        filename: String,
        sha256: String,
        bytes: u64,
    },
    /// A download was cancelled or failed.
    DownloadFailed { url: String, state: String },
    /// A download the task does not allow was cancelled (and anything written deleted).
    DownloadRefused { url: String, reason: String },
    /// A request that would have carried a secret to a host outside the secret's scope was
    /// failed. No URL: it may be where the secret is.
    SecretEgress {
        host: String,
        resource_type: String,
        #[serde(flatten)]
        leak: SecretLeak,
    },
}

impl InterceptRecord {
    /// A refused request, its URL cut to a length the audit keeps.
    pub(crate) fn blocked(
        url: &str,
        resource_type: String,
        navigation: bool,
        reason: String,
    ) -> Self {
        InterceptRecord::Blocked {
            url: airlock_core::action::truncate(url, 300),
            resource_type,
            navigation,
            reason,
        }
    }

    /// The sentence the model is told.
    pub fn message(&self) -> String {
        match self {
            InterceptRecord::Blocked {
                url,
                navigation: true,
                reason,
                ..
            } => format!("navigation to {} blocked: {reason}", display_host(url)),
            InterceptRecord::Blocked {
                url,
                resource_type,
                reason,
                ..
            } => format!(
                "{} request to {} blocked: {reason}",
                resource_type.to_lowercase(),
                display_host(url)
            ),
            InterceptRecord::PopupClosed { url } if url.is_empty() || url == "about:blank" => {
                "a popup window was closed (popups are not followed)".to_string()
            }
            InterceptRecord::PopupClosed { url } => {
                format!(
                    "a popup to {} was closed (popups are not followed)",
                    display_host(url)
                )
            }
            InterceptRecord::Download {
                filename, sha256, ..
            } => format!("downloaded `{filename}` (sha256 {sha256}) into the run's quarantine"),
            InterceptRecord::DownloadFailed { url, state } => {
                format!("download from {} {state}", display_host(url))
            }
            InterceptRecord::DownloadRefused { reason, .. } => {
                format!("download refused: {reason}")
            }
            InterceptRecord::SecretEgress {
                host,
                resource_type,
                leak,
            } => format!(
                "{} request to {host} blocked: it carried secret `{}` ({}) in its {}, and the \
                 secret may not go to {host}",
                resource_type.to_lowercase(),
                leak.secret,
                leak.form,
                leak.part
            ),
        }
    }
}

fn display_host(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match u.host_str() {
            Some(h) => h.to_string(),
            None => format!("{}:", u.scheme()),
        },
        Err(_) => airlock_core::action::truncate(url, 60),
    }
}

/// Decides one URL: `Ok(())` to let it through, `Err(reason)` to refuse it.
pub fn check_url(policy: &EgressPolicy, raw: &str) -> Result<(), String> {
    match WebUrl::parse(raw) {
        Ok(u) if policy.allowed.contains(&u.host) => Ok(()),
        Ok(u) => Err(format!("{} is not in the task's domains", u.host)),
        Err(e) => Err(e.to_string()),
    }
}

/// What interception asks the host about a request that passed the host check.
#[derive(Debug, Clone, Copy)]
pub struct RequestFacts<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// CDP resource type (`Document`, `Fetch`, `XHR`, `Image`, …), or `Download`.
    pub resource_type: &'a str,
    /// A top-level navigation of the main tab.
    pub navigation: bool,
}

/// The host's answer about one request of the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateAnswer {
    Continue,
    /// Fail it; the reason is what the model and the audit are given.
    Refuse(String),
    /// Keep it paused until the host decides (a human reviews it): see [`HeldRequest`].
    Hold(String),
}

/// The host's verdict on a page's own requests, beyond their host: the engine implements it
/// from the task's declared effects and the step executing now (this crate knows no policy).
pub trait RequestGate: Send + Sync + std::fmt::Debug {
    fn check(&self, request: &RequestFacts<'_>) -> GateAnswer;
}

/// A request the page sent while the agent's step ran, paused in the browser until the host
/// releases it: allowed (sent as it is) or failed. Nothing of it has left the browser.
#[derive(Debug, Clone)]
pub struct HeldRequest {
    pub(crate) session: Option<String>,
    pub(crate) id: String,
    pub method: String,
    pub url: String,
    pub resource_type: String,
    pub navigation: bool,
    /// The body as the page would send it, when Chromium included it (form fields, JSON).
    pub body: Option<String>,
    pub content_type: Option<String>,
    /// Why the host did not let it through on its own.
    pub reason: String,
}

/// Requests held for the host; the sandbox takes them out to release them.
pub type HeldLog = Arc<Mutex<Vec<HeldRequest>>>;

/// Fails a request paused by `Fetch` as blocked by the client: the page sees a network error.
pub(crate) async fn fail_paused(
    cdp: &Cdp,
    session: Option<&str>,
    id: &str,
) -> Result<Value, crate::cdp::CdpError> {
    cdp.call(
        session,
        "Fetch.failRequest",
        json!({"requestId": id, "errorReason": "BlockedByClient"}),
        t(5000),
    )
    .await
}

/// Shared log of what interception did; the engine drains it after each action.
pub type InterceptLog = Arc<Mutex<Vec<InterceptRecord>>>;

pub(crate) struct Interceptor {
    pub cdp: Cdp,
    pub policy: EgressPolicy,
    pub main_session: String,
    pub main_target: String,
    pub log: InterceptLog,
    /// The run's download directory on the host.
    pub downloads: PathBuf,
    /// The host's verdict on requests beyond their host (declared effects).
    pub gate: Option<Arc<dyn RequestGate>>,
    /// CDP sessions of popups being closed: every request they make is failed.
    pub popups: Arc<Mutex<Vec<String>>>,
    /// Requests paused until the host decides.
    pub held: HeldLog,
}

fn t(ms: u64) -> Duration {
    Duration::from_millis(ms)
}

impl Interceptor {
    fn push(&self, r: InterceptRecord) {
        if let Ok(mut l) = self.log.lock() {
            l.push(r);
        }
    }

    /// Handles events until the browser connection closes.
    pub async fn run(self, mut events: tokio::sync::broadcast::Receiver<CdpEvent>) {
        let mut downloads: Vec<(String, String, String)> = Vec::new(); // guid, url, filename
        let mut refused: Vec<String> = Vec::new(); // guids of refused downloads
        loop {
            let ev = match events.recv().await {
                Ok(ev) => ev,
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!("interception lagged by {n} events");
                    continue;
                }
                Err(_) => break,
            };
            match ev.method.as_str() {
                "Fetch.requestPaused" => self.on_request(&ev).await,
                "Target.attachedToTarget" => self.on_attached(&ev).await,
                "Browser.downloadWillBegin" => {
                    let p = &ev.params;
                    let guid = p.get("guid").and_then(Value::as_str).unwrap_or_default();
                    let url = p.get("url").and_then(Value::as_str).unwrap_or_default();
                    let name = p
                        .get("suggestedFilename")
                        .and_then(Value::as_str)
                        .unwrap_or_default();
                    let verdict = self.gate.as_ref().map_or(GateAnswer::Continue, |g| {
                        g.check(&RequestFacts {
                            method: "GET",
                            url,
                            resource_type: "Download",
                            navigation: false,
                        })
                    });
                    // A download is never held: it is allowed or not.
                    if let GateAnswer::Refuse(reason) | GateAnswer::Hold(reason) = verdict {
                        let _ = self
                            .cdp
                            .call(
                                None,
                                "Browser.cancelDownload",
                                json!({"guid": guid}),
                                t(3000),
                            )
                            .await;
                        // A small file may land before the cancel does: never keep it.
                        let _ = std::fs::remove_file(self.downloads.join(guid));
                        refused.push(guid.to_string());
                        self.push(InterceptRecord::DownloadRefused {
                            url: airlock_core::action::truncate(url, 300),
                            reason,
                        });
                        continue;
                    }
                    downloads.push((guid.to_string(), url.to_string(), name.to_string()));
                }
                "Browser.downloadProgress" => {
                    let p = &ev.params;
                    let guid = p.get("guid").and_then(Value::as_str).unwrap_or_default();
                    let state = p.get("state").and_then(Value::as_str).unwrap_or_default();
                    if refused.iter().any(|g| g == guid) {
                        // Whatever state it ended in, nothing of it stays.
                        if state != "inProgress" {
                            let _ = std::fs::remove_file(self.downloads.join(guid));
                        }
                        continue;
                    }
                    if state == "inProgress" {
                        continue;
                    }
                    let Some(pos) = downloads.iter().position(|d| d.0 == guid) else {
                        continue;
                    };
                    let (guid, url, filename) = downloads.swap_remove(pos);
                    if state == "completed" {
                        let path = self.downloads.join(&guid);
                        match std::fs::read(&path) {
                            Ok(bytes) => {
                                use sha2::Digest;
                                let sha = hex::encode(sha2::Sha256::digest(&bytes));
                                self.push(InterceptRecord::Download {
                                    url,
                                    filename,
                                    sha256: sha,
                                    bytes: bytes.len() as u64,
                                });
                            }
                            Err(e) => self.push(InterceptRecord::DownloadFailed {
                                url,
                                state: format!("completed but unreadable: {e}"),
                            }),
                        }
                    } else {
                        self.push(InterceptRecord::DownloadFailed {
                            url,
                            state: state.to_string(),
                        });
                    }
                }
                _ => {}
            }
        }
    }

    /// Fails a paused request as blocked by the client (the page sees a network error).
    async fn fail(&self, session: Option<&str>, id: &str) {
        let _ = fail_paused(&self.cdp, session, id).await;
    }

    async fn on_request(&self, ev: &CdpEvent) {
        let p = &ev.params;
        let Some(id) = p.get("requestId").and_then(Value::as_str) else {
            return;
        };
        let url = p
            .get("request")
            .and_then(|r| r.get("url"))
            .and_then(Value::as_str)
            .unwrap_or_default();
        let rtype = p
            .get("resourceType")
            .and_then(Value::as_str)
            .unwrap_or("Other")
            .to_string();
        let session = ev.session_id.as_deref();
        let from_popup = session.is_some_and(|s| {
            self.popups
                .lock()
                .map(|p| p.iter().any(|x| x == s))
                .unwrap_or(true)
        });
        if from_popup {
            // Popups are never followed: nothing they ask for leaves the browser.
            self.fail(session, id).await;
            return;
        }
        let method = p
            .get("request")
            .and_then(|r| r.get("method"))
            .and_then(Value::as_str)
            .unwrap_or("GET");
        // The main frame's id is its target's id.
        let frame = p.get("frameId").and_then(Value::as_str).unwrap_or_default();
        let navigation = rtype == "Document" && frame == self.main_target;
        let allowed = check_url(&self.policy, url);
        // A request to an allowed host is checked for what it carries before anything else
        // (a request to any other host is refused for its host, whatever it carries).
        if let (Ok(()), Some((host, leak))) = (&allowed, self.secret_in(p.get("request"), url)) {
            self.fail(session, id).await;
            self.push(InterceptRecord::SecretEgress {
                host,
                resource_type: rtype,
                leak,
            });
            return;
        }
        let verdict = match allowed {
            Err(reason) => GateAnswer::Refuse(reason),
            Ok(()) => self.gate.as_ref().map_or(GateAnswer::Continue, |g| {
                g.check(&RequestFacts {
                    method,
                    url,
                    resource_type: &rtype,
                    navigation,
                })
            }),
        };
        match verdict {
            GateAnswer::Hold(reason) => {
                let request = p.get("request");
                let header = |name: &str| {
                    request
                        .and_then(|r| r.get("headers"))
                        .and_then(Value::as_object)
                        .and_then(|h| {
                            h.iter()
                                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                                .and_then(|(_, v)| v.as_str())
                        })
                        .map(str::to_string)
                };
                let body = request
                    .and_then(|r| r.get("postData"))
                    .and_then(Value::as_str)
                    .map(str::to_string);
                if let Ok(mut held) = self.held.lock() {
                    held.push(HeldRequest {
                        session: session.map(str::to_string),
                        id: id.to_string(),
                        method: method.to_string(),
                        url: url.to_string(),
                        resource_type: rtype,
                        navigation,
                        body,
                        content_type: header("content-type"),
                        reason,
                    });
                    return;
                }
                // A poisoned lock: nobody could release it, so refuse it now.
                self.fail(session, id).await;
            }
            GateAnswer::Continue => {
                let _ = self
                    .cdp
                    .call(
                        session,
                        "Fetch.continueRequest",
                        json!({"requestId": id}),
                        t(5000),
                    )
                    .await;
            }
            GateAnswer::Refuse(reason) => {
                self.fail(session, id).await;
                self.push(InterceptRecord::blocked(url, rtype, navigation, reason));
            }
        }
    }

    /// The secret a paused request (`request`, the CDP `Request` object) would carry out of
    /// its scope, with the request's host: URL, headers, then the body (`postData`, or the
    /// base64 `postDataEntries` Chromium gives for binary and multi-part bodies).
    fn secret_in(&self, request: Option<&Value>, url: &str) -> Option<(String, SecretLeak)> {
        let scan = self.policy.scan.as_deref()?;
        let host = WebUrl::parse(url).ok()?.host;
        let headers: Vec<(&str, &[u8])> = request
            .and_then(|r| r.get("headers"))
            .and_then(Value::as_object)
            .map(|h| {
                h.iter()
                    .filter_map(|(k, v)| Some((k.as_str(), v.as_str()?.as_bytes())))
                    .collect()
            })
            .unwrap_or_default();
        let mut body: Vec<u8> = request
            .and_then(|r| r.get("postData"))
            .and_then(Value::as_str)
            .map(|b| b.as_bytes().to_vec())
            .unwrap_or_default();
        if body.is_empty() {
            for entry in request
                .and_then(|r| r.get("postDataEntries"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(bytes) = entry
                    .get("bytes")
                    .and_then(Value::as_str)
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                {
                    body.extend_from_slice(&bytes);
                }
            }
        }
        let body = (!body.is_empty()).then_some(body.as_slice());
        scan_request(scan, &host, url, headers, body).map(|l| (host.to_string(), l))
    }

    async fn on_attached(&self, ev: &CdpEvent) {
        let p = &ev.params;
        let Some(session) = p.get("sessionId").and_then(Value::as_str) else {
            return;
        };
        let info = p.get("targetInfo").cloned().unwrap_or(Value::Null);
        let kind = info.get("type").and_then(Value::as_str).unwrap_or_default();
        let target = info
            .get("targetId")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let url = info.get("url").and_then(Value::as_str).unwrap_or_default();
        let s = Some(session);
        if target == self.main_target && session != self.main_session {
            // Browser-level auto-attach also reaches the main page: one session is enough.
            let _ = self
                .cdp
                .call(
                    None,
                    "Target.detachFromTarget",
                    json!({"sessionId": session}),
                    t(3000),
                )
                .await;
            return;
        }
        if kind == "page" && target != self.main_target {
            // A popup: never followed. Closed before it runs anything.
            self.push(InterceptRecord::PopupClosed {
                url: url.to_string(),
            });
            // A popup opened by a same-site page can share the opener's renderer, which then
            // waits with it while the popup is paused for the debugger: the opener's click would
            // not come back. So the popup is let go with every request it makes failed, and
            // closed in the background (a storm must not queue behind one another).
            if let Ok(mut p) = self.popups.lock() {
                p.push(session.to_string());
            }
            let cdp = self.cdp.clone();
            let target = target.to_string();
            let session = session.to_string();
            tokio::spawn(async move {
                let s = Some(session.as_str());
                let _ = cdp
                    .call(
                        s,
                        "Fetch.enable",
                        json!({"patterns": [{"urlPattern": "*"}]}),
                        t(3000),
                    )
                    .await;
                let _ = cdp
                    .call(s, "Runtime.runIfWaitingForDebugger", json!({}), t(3000))
                    .await;
                let _ = cdp
                    .call(
                        None,
                        "Target.closeTarget",
                        json!({"targetId": target}),
                        t(3000),
                    )
                    .await;
            });
            return;
        }
        // Interception first, then children, then let it run.
        let _ = self
            .cdp
            .call(
                s,
                "Fetch.enable",
                json!({"patterns": [{"urlPattern": "*"}]}),
                t(3000),
            )
            .await;
        let _ = self
            .cdp
            .call(
                s,
                "Target.setAutoAttach",
                json!({"autoAttach": true, "waitForDebuggerOnStart": true, "flatten": true}),
                t(3000),
            )
            .await;
        let _ = self
            .cdp
            .call(s, "Runtime.runIfWaitingForDebugger", json!({}), t(3000))
            .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::host::HostName;

    #[test]
    fn urls_are_checked_with_the_same_host_policy() {
        let mut p = EgressPolicy::default();
        p.allowed.insert(HostName::parse("ci.example").unwrap());
        assert!(check_url(&p, "http://CI.example./x").is_ok());
        assert!(check_url(&p, "http://mail.example/")
            .unwrap_err()
            .contains("mail.example"));
        assert!(check_url(&p, "http://ci.example.evil.example/").is_err());
        assert!(check_url(&p, "file:///etc/passwd").is_err());
        assert!(check_url(&p, "http://127.0.0.1:9/").is_err());
    }

    #[test]
    fn messages_name_the_host_and_reason() {
        let r = InterceptRecord::Blocked {
            url: "http://mail.example/inbox".into(),
            resource_type: "Document".into(),
            navigation: true,
            reason: "mail.example is not in the task's domains".into(),
        };
        assert_eq!(
            r.message(),
            "navigation to mail.example blocked: mail.example is not in the task's domains"
        );
    }
}
