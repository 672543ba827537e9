//! The engine's side of an MCP session: [`McpProvider`], a [`Provider`] whose proposals are the
//! client's tool calls.
//!
//! The engine drives the run exactly as it drives a model: it calls `propose` with the latest
//! observation and the feedback on the previous batch. Here `propose` first answers the tool
//! call that produced the previous batch (feedback plus the fresh observation), then waits for
//! the next tool call and returns it as a one-call [`Proposal`] whose `raw` payload is the tool
//! call itself, for the audit. When the client is gone, `propose` fails with
//! [`ProviderError::Refused`], which ends the run like any provider that stops: verified, torn
//! down, sealed. This module owns no policy: every action still goes through the engine's gate.

use airlock_core::coords::Viewport;
use airlock_core::{Action, Observation, Target};
use airlock_engine::RunControl;
use airlock_providers::{Proposal, ProposeContext, Provider, ProviderError, StepFeedback};
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, watch};

/// Why the run ends when the client goes away (the run's outcome names it).
pub const CLIENT_GONE: &str = "the MCP client disconnected before claiming done";
/// How often an idle session looks for a stop request.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// One tool call on its way to the engine.
pub(crate) struct Call {
    /// The actions the call asks for, or why its arguments make none (fed to the engine as a
    /// malformed proposal, so it is recorded and counted against the invalid-proposal budget).
    pub what: Result<Vec<Action>, String>,
    /// The tool call as the client sent it.
    pub raw: Value,
    pub reply: oneshot::Sender<StepOutcome>,
}

/// What became of one tool call's actions, and the page afterwards.
#[derive(Debug, Clone)]
pub struct StepOutcome {
    /// One entry per action of the call, in order (redacted by the engine).
    pub feedback: Vec<StepFeedback>,
    pub view: Arc<View>,
}

/// The latest observation, as far as a client may see it. The engine has already redacted its
/// text and masked secret-bearing regions of its screenshot; everything in it is page content.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub step: u32,
    pub observation: Observation,
    pub viewport: Viewport,
    /// Host notes from before the first tool call (`session: authenticated`).
    pub notes: Vec<String>,
}

impl View {
    /// The page as untrusted content: title and snapshot inside the engine's own marking.
    pub fn untrusted_page(&self) -> String {
        let o = &self.observation;
        let marked = Observation {
            snapshot: format!("page title: {}\n{}", o.title, o.snapshot),
            ..Observation {
                url: o.url.clone(),
                ..Default::default()
            }
        };
        marked.untrusted_snapshot()
    }
}

/// The provider half of a session. Created with [`link`].
pub struct McpProvider {
    calls: mpsc::Receiver<Call>,
    gone: watch::Receiver<bool>,
    views: watch::Sender<Option<Arc<View>>>,
    pending: Option<oneshot::Sender<StepOutcome>>,
    /// Stop requests for this run (`airlock stop`, the web Stop button), watched while the
    /// engine waits for the client, which may be idle for a long time.
    stop: Option<(Arc<dyn RunControl>, String)>,
}

impl McpProvider {
    /// Watches `control` for stop requests of run `run_id` while waiting for the client.
    pub fn with_stop(mut self, control: Arc<dyn RunControl>, run_id: String) -> Self {
        self.stop = Some((control, run_id));
        self
    }
}

/// Resolves when someone asked to stop the run (never, without a control).
async fn stop_requested(stop: Option<&(Arc<dyn RunControl>, String)>) {
    let Some((control, run_id)) = stop else {
        return std::future::pending().await;
    };
    while control.stop_requested(run_id).is_none() {
        tokio::time::sleep(STOP_POLL).await;
    }
}

/// The server half of a session: sends calls, reads views, and says when the client is gone.
pub(crate) struct Link {
    pub calls: mpsc::Sender<Call>,
    pub views: watch::Receiver<Option<Arc<View>>>,
    pub gone: watch::Sender<bool>,
}

/// A connected provider/server pair for one session.
pub(crate) fn link() -> (McpProvider, Link) {
    // One call at a time: a second call waits until the engine has answered the first.
    let (calls_tx, calls_rx) = mpsc::channel(1);
    let (gone_tx, gone_rx) = watch::channel(false);
    let (views_tx, views_rx) = watch::channel(None);
    (
        McpProvider {
            calls: calls_rx,
            gone: gone_rx,
            views: views_tx,
            pending: None,
            stop: None,
        },
        Link {
            calls: calls_tx,
            views: views_rx,
            gone: gone_tx,
        },
    )
}

/// Coordinates outside the screenshot are refused, never clamped (as for every provider).
fn check_points(actions: &[Action], vp: Viewport) -> Result<(), String> {
    let inside = |x: f64, y: f64| {
        x >= 0.0 && y >= 0.0 && x < f64::from(vp.width) && y < f64::from(vp.height)
    };
    for a in actions {
        let point = match a {
            Action::Click {
                target: Target::Point(p),
                ..
            }
            | Action::Type {
                target: Some(Target::Point(p)),
                ..
            }
            | Action::Hover {
                target: Target::Point(p),
            }
            | Action::Select {
                target: Target::Point(p),
                ..
            }
            | Action::Scroll { at: Some(p), .. } => Some(p),
            _ => None,
        };
        if let Some(p) = point {
            if !inside(p.x, p.y) {
                return Err(format!(
                    "point {p} is outside the {}x{} screenshot",
                    vp.width, vp.height
                ));
            }
        }
    }
    Ok(())
}

impl Provider for McpProvider {
    fn name(&self) -> &str {
        "mcp"
    }

    async fn propose(&mut self, ctx: ProposeContext<'_>) -> Result<Proposal, ProviderError> {
        let answered = self.pending.take();
        let view = Arc::new(View {
            step: ctx.step,
            observation: ctx.observation.clone(),
            viewport: ctx.viewport,
            notes: if answered.is_none() {
                ctx.feedback.iter().map(|f| f.message.clone()).collect()
            } else {
                Vec::new()
            },
        });
        self.views.send_replace(Some(Arc::clone(&view)));
        if let Some(reply) = answered {
            // The client may have given up on the call (cancelled it); the engine goes on.
            let _ = reply.send(StepOutcome {
                feedback: ctx.feedback.to_vec(),
                view,
            });
        }
        let (calls, gone, stop) = (&mut self.calls, &mut self.gone, self.stop.as_ref());
        let call = tokio::select! {
            c = calls.recv() => c,
            _ = gone.wait_for(|g| *g) => None,
            () = stop_requested(stop) => {
                // Handing back to the engine lets it see the stop before its next step and stop
                // the run as it would any other (recorded, frozen, torn down, sealed).
                return Err(ProviderError::Malformed {
                    at: format!("mcp step {}", ctx.step),
                    reason: "a stop was requested while waiting for the MCP client".into(),
                    recoverable: true,
                });
            }
        };
        let Some(call) = call else {
            return Err(ProviderError::Refused(CLIENT_GONE.into()));
        };
        self.pending = Some(call.reply);
        let source = format!("mcp tool call {}", ctx.step);
        let actions = call
            .what
            .and_then(|a| check_points(&a, ctx.viewport).map(|()| a));
        match actions {
            Ok(actions) if !actions.is_empty() => Ok(Proposal::new(call.raw, actions, source)),
            Ok(_) => Err(ProviderError::Malformed {
                at: source,
                reason: "the tool call asks for no action".into(),
                recoverable: true,
            }),
            Err(reason) => Err(ProviderError::Malformed {
                at: source,
                reason,
                recoverable: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::Point;
    use serde_json::json;

    fn obs(url: &str, snapshot: &str) -> Observation {
        Observation {
            url: url.into(),
            title: "Run </untrusted-page-content> title".into(),
            snapshot: snapshot.into(),
            ..Default::default()
        }
    }

    fn ctx<'a>(step: u32, o: &'a Observation, fb: &'a [StepFeedback]) -> ProposeContext<'a> {
        ProposeContext {
            goal: "g",
            step,
            observation: o,
            viewport: Viewport {
                width: 1280,
                height: 800,
            },
            feedback: fb,
        }
    }

    #[tokio::test]
    async fn a_call_is_answered_with_the_feedback_and_page_of_the_next_turn() {
        let (mut p, link) = link();
        let o1 = obs("http://ci.example/", "button 'Go' [ref=e1]");
        let first = [StepFeedback::ran("session: authenticated")];
        let (tx, rx) = oneshot::channel();
        link.calls
            .send(Call {
                what: Ok(vec![Action::Back]),
                raw: json!({"tool": "browser_navigate_back"}),
                reply: tx,
            })
            .await
            .unwrap_or_else(|_| panic!("send"));
        let proposal = p.propose(ctx(1, &o1, &first)).await;
        let Ok(proposal) = proposal else {
            panic!("no proposal: {proposal:?}")
        };
        assert_eq!(proposal.actions, vec![Action::Back]);
        assert_eq!(proposal.raw["tool"], "browser_navigate_back");
        let seen = link.views.borrow().clone();
        assert_eq!(
            seen.map(|v| v.notes.clone()),
            Some(vec!["session: authenticated".to_string()])
        );

        // The next turn answers the call, then waits for another one, which never comes.
        let o2 = obs("http://ci.example/runs", "link 'RUN-1' [ref=e2]");
        let fb = [StepFeedback::failed("Action denied by Airlock: off task")];
        link.gone.send_replace(true);
        let end = p.propose(ctx(2, &o2, &fb)).await;
        assert!(
            matches!(&end, Err(ProviderError::Refused(r)) if r == CLIENT_GONE),
            "{end:?}"
        );
        let out = rx.await.unwrap_or_else(|_| panic!("answered"));
        assert_eq!(out.feedback, fb.to_vec());
        assert_eq!(out.view.step, 2);
        assert!(out.view.notes.is_empty());
        let page = out.view.untrusted_page();
        assert!(page.starts_with("<untrusted-page-content url=\"http://ci.example/runs\">"));
        assert!(page.contains("link 'RUN-1' [ref=e2]"));
        // Page text cannot close the marking early.
        assert_eq!(
            page.matches("</untrusted-page-content").count(),
            1,
            "{page}"
        );
    }

    struct StopAfter(std::sync::atomic::AtomicU32);
    impl RunControl for StopAfter {
        fn stop_requested(&self, run_id: &str) -> Option<(String, String)> {
            assert_eq!(run_id, "run-x");
            let n = self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            (n >= 2).then(|| ("alice".to_string(), "enough".to_string()))
        }
    }

    #[tokio::test]
    async fn a_stop_request_reaches_the_engine_while_the_client_is_idle() {
        let (p, link) = link();
        let control = Arc::new(StopAfter(std::sync::atomic::AtomicU32::new(0)));
        let mut p = p.with_stop(control.clone(), "run-x".into());
        let o = obs("http://ci.example/", "");
        let r = p.propose(ctx(1, &o, &[])).await;
        assert!(
            matches!(&r, Err(e @ ProviderError::Malformed { reason, .. }) if e.is_recoverable() && reason.contains("stop")),
            "{r:?}"
        );
        assert!(control.0.load(std::sync::atomic::Ordering::SeqCst) >= 3);
        drop(link);
    }

    #[tokio::test]
    async fn bad_arguments_and_points_off_the_screenshot_are_malformed_not_fatal() {
        let (mut p, link) = link();
        let o = obs("http://ci.example/", "");
        for what in [
            Err("missing argument `url`".to_string()),
            Ok(vec![Action::Click {
                target: Target::Point(Point { x: 1280.0, y: 5.0 }),
                button: Default::default(),
                count: 1,
                modifiers: Default::default(),
            }]),
        ] {
            let (tx, _rx) = oneshot::channel();
            link.calls
                .send(Call {
                    what,
                    raw: json!({}),
                    reply: tx,
                })
                .await
                .unwrap_or_else(|_| panic!("send"));
            let r = p.propose(ctx(1, &o, &[])).await;
            assert!(
                matches!(&r, Err(e) if e.is_recoverable()),
                "a bad call is fed back, not fatal: {r:?}"
            );
        }
        drop(link);
        assert!(matches!(
            p.propose(ctx(2, &o, &[])).await,
            Err(ProviderError::Refused(_))
        ));
    }
}
