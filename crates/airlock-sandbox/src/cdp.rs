//! A minimal Chrome DevTools Protocol client over `--remote-debugging-pipe`.
//!
//! Chromium reads commands from fd 3 and writes replies and events to fd 4, each message a JSON
//! object terminated by a NUL byte. Using the pipe instead of a WebSocket port means there is no
//! debugging endpoint that a page, another run or another local user could connect to.
//!
//! We speak raw JSON rather than generated bindings: Airlock uses a few dozen methods, and a
//! generated CDP crate costs minutes of build time and a WebSocket transport we do not want.

use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::{broadcast, mpsc, oneshot, watch};

#[derive(Debug, Clone, thiserror::Error)]
pub enum CdpError {
    #[error("browser connection closed")]
    Closed,
    #[error("cdp `{method}` did not answer within {ms} ms")]
    Timeout { method: String, ms: u128 },
    #[error("cdp `{method}` failed: {message}")]
    Protocol { method: String, message: String },
}

/// An event from the browser.
#[derive(Debug, Clone)]
pub struct CdpEvent {
    pub method: String,
    pub params: Value,
    pub session_id: Option<String>,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Result<Value, String>>>>>;

/// A CDP connection. Cheap to clone; all clones share one pipe.
#[derive(Clone)]
pub struct Cdp {
    inner: Arc<Inner>,
}

struct Inner {
    out: mpsc::UnboundedSender<Vec<u8>>,
    pending: Pending,
    next_id: AtomicU64,
    events: broadcast::Sender<CdpEvent>,
    closed: Arc<AtomicBool>,
    /// Flips to `true` when the pipe closes, so watchers learn of a dead browser at once.
    closed_rx: watch::Receiver<bool>,
}

impl Cdp {
    /// Starts the reader and writer tasks over the given pipe ends.
    pub fn start<R, W>(reader: R, writer: W) -> Cdp
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pending: Pending = Arc::new(Mutex::new(HashMap::new()));
        let (events, _) = broadcast::channel(1024);
        let closed = Arc::new(AtomicBool::new(false));
        let (closed_tx, closed_rx) = watch::channel(false);

        let mut writer = writer;
        tokio::spawn(async move {
            while let Some(mut msg) = out_rx.recv().await {
                msg.push(0);
                if writer.write_all(&msg).await.is_err() || writer.flush().await.is_err() {
                    break;
                }
            }
        });

        let pending_r = pending.clone();
        let events_r = events.clone();
        let closed_r = closed.clone();
        tokio::spawn(async move {
            let mut reader = BufReader::with_capacity(1 << 20, reader);
            let mut buf = Vec::with_capacity(1 << 16);
            loop {
                buf.clear();
                match reader.read_until(0, &mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
                if buf.last() == Some(&0) {
                    buf.pop();
                }
                let Ok(msg) = serde_json::from_slice::<Value>(&buf) else {
                    tracing::warn!("unparseable cdp message ({} bytes)", buf.len());
                    continue;
                };
                if let Some(id) = msg.get("id").and_then(Value::as_u64) {
                    let waiter = pending_r.lock().ok().and_then(|mut p| p.remove(&id));
                    if let Some(tx) = waiter {
                        let result = match msg.get("error") {
                            Some(err) => Err(err
                                .get("message")
                                .and_then(Value::as_str)
                                .unwrap_or("unknown error")
                                .to_string()),
                            None => Ok(msg.get("result").cloned().unwrap_or(Value::Null)),
                        };
                        let _ = tx.send(result);
                    }
                } else if let Some(method) = msg.get("method").and_then(Value::as_str) {
                    let _ = events_r.send(CdpEvent {
                        method: method.to_string(),
                        params: msg.get("params").cloned().unwrap_or(Value::Null),
                        session_id: msg
                            .get("sessionId")
                            .and_then(Value::as_str)
                            .map(str::to_string),
                    });
                }
            }
            closed_r.store(true, Ordering::SeqCst);
            if let Ok(mut p) = pending_r.lock() {
                p.clear(); // dropping the senders wakes every waiter with Closed
            }
            closed_tx.send_replace(true);
        });

        Cdp {
            inner: Arc::new(Inner {
                out: out_tx,
                pending,
                next_id: AtomicU64::new(1),
                events,
                closed,
                closed_rx,
            }),
        }
    }

    /// Resolves once the pipe has closed (the browser exited or was killed).
    pub async fn wait_closed(&self) {
        let mut rx = self.inner.closed_rx.clone();
        // An error means the reader task is gone, which only happens once the pipe closed.
        let _ = rx.wait_for(|closed| *closed).await;
    }

    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }

    /// Subscribes to events. Subscribe *before* sending the command whose events you need.
    pub fn events(&self) -> broadcast::Receiver<CdpEvent> {
        self.inner.events.subscribe()
    }

    /// Sends a command (to the browser when `session` is `None`) and waits for its reply.
    pub async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        timeout: Duration,
    ) -> Result<Value, CdpError> {
        if self.is_closed() {
            return Err(CdpError::Closed);
        }
        let id = self.inner.next_id.fetch_add(1, Ordering::SeqCst);
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let (Some(s), Some(obj)) = (session, msg.as_object_mut()) {
            obj.insert("sessionId".into(), Value::String(s.to_string()));
        }
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .map_err(|_| CdpError::Closed)?
            .insert(id, tx);
        let bytes = serde_json::to_vec(&msg).map_err(|e| CdpError::Protocol {
            method: method.to_string(),
            message: e.to_string(),
        })?;
        self.inner.out.send(bytes).map_err(|_| CdpError::Closed)?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(v))) => Ok(v),
            Ok(Ok(Err(message))) => Err(CdpError::Protocol {
                method: method.to_string(),
                message,
            }),
            Ok(Err(_)) => Err(CdpError::Closed),
            Err(_) => {
                if let Ok(mut p) = self.inner.pending.lock() {
                    p.remove(&id);
                }
                Err(CdpError::Timeout {
                    method: method.to_string(),
                    ms: timeout.as_millis(),
                })
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replies_are_matched_by_id_and_events_broadcast() {
        let (ours, theirs) = tokio::io::duplex(1 << 16);
        let (r, w) = tokio::io::split(ours);
        let cdp = Cdp::start(r, w);
        let mut events = cdp.events();
        let (tr, mut tw) = tokio::io::split(theirs);
        // A fake browser: answer each command and emit one event.
        tokio::spawn(async move {
            let mut reader = BufReader::new(tr);
            let mut buf = Vec::new();
            while reader.read_until(0, &mut buf).await.unwrap() > 0 {
                buf.pop();
                let cmd: Value = serde_json::from_slice(&buf).unwrap();
                buf.clear();
                let id = cmd["id"].as_u64().unwrap();
                let ev = json!({"method":"Page.loadEventFired","params":{"t":1},"sessionId":"S"});
                let mut out = serde_json::to_vec(&ev).unwrap();
                out.push(0);
                let reply = if cmd["method"] == "Bad.method" {
                    json!({"id": id, "error": {"code": -32601, "message": "not found"}})
                } else {
                    json!({"id": id, "result": {"echo": cmd["method"]}})
                };
                out.extend(serde_json::to_vec(&reply).unwrap());
                out.push(0);
                tw.write_all(&out).await.unwrap();
            }
        });
        let t = Duration::from_secs(2);
        let v = cdp
            .call(Some("S"), "Page.enable", json!({}), t)
            .await
            .unwrap();
        assert_eq!(v["echo"], "Page.enable");
        let err = cdp
            .call(None, "Bad.method", json!({}), t)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not found"));
        let ev = events.recv().await.unwrap();
        assert_eq!(ev.method, "Page.loadEventFired");
        assert_eq!(ev.session_id.as_deref(), Some("S"));
    }

    #[tokio::test]
    async fn closed_pipe_fails_pending_calls_instead_of_hanging() {
        let (ours, theirs) = tokio::io::duplex(1024);
        let (r, w) = tokio::io::split(ours);
        let cdp = Cdp::start(r, w);
        drop(theirs);
        let err = cdp
            .call(
                None,
                "Browser.getVersion",
                json!({}),
                Duration::from_secs(5),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, CdpError::Closed | CdpError::Timeout { .. }));
        // Watchers learn of it too, without sending anything.
        tokio::time::timeout(Duration::from_secs(5), cdp.wait_closed())
            .await
            .unwrap();
        assert!(cdp.is_closed());
    }
}
