//! How a run meets a failing world: a browser that crashes, dies or stops answering, a dialog
//! loop, a site that answers 500, a session that expires mid-run. Each case has one fixed,
//! documented answer (`docs/failure-modes.md`), is recorded with what was observed, and is
//! bounded: the host never waits longer than the step timeout for one call and never retries
//! anything but a read.
//!
//! The loop in `lib.rs` calls in here at two points: after a step's actions ([`Engine::after_step`])
//! and after the observation that follows ([`Engine::after_observe`]).

use super::approval::Approver;
use super::{DriveError, Engine, Live, Outcome};
use airlock_core::host::WebUrl;
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, Observation};
use airlock_providers::{Provider, StepFeedback};
use serde_json::json;
use std::time::Duration;

/// A page that answered 5xx to a GET is loaded again at most this many times per step.
pub const MAX_READ_RETRIES: u32 = 2;
/// A run signs in again after its session expired at most this many times.
pub const MAX_RELOGINS: u32 = 2;
/// This many dialogs dismissed in one step is recorded as a dialog loop.
pub const DIALOG_LOOP: u64 = 10;

/// What the run has already noticed, so each fault is recorded once and each bound counted.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    fault_recorded: bool,
    dialogs_seen: u64,
    relogins: u32,
    /// The failing document the host already answered (retried or reported): the same page
    /// still showing in later steps is not retried again.
    answered_error: Option<String>,
}

/// Adds the host's note to what the model hears about its last action (feedback stays one
/// entry per proposed action, which the provider adapters rely on).
fn tell_model(feedback: &mut Vec<StepFeedback>, note: &str) {
    match feedback.last_mut() {
        Some(f) => {
            f.message = format!("{}; {note}", f.message);
        }
        None => feedback.push(StepFeedback::ran(note)),
    }
}

/// Scheme, host (normalised), port and path of a URL: a login page is recognised whatever its
/// query says.
fn page_of(url: &str) -> Option<(String, String, u16, String)> {
    let u = WebUrl::parse(url).ok()?;
    Some((u.scheme, u.host.to_string(), u.port, u.path))
}

fn same_page(a: &str, b: &str) -> bool {
    matches!((page_of(a), page_of(b)), (Some(x), Some(y)) if x == y)
}

impl<P: Provider, A: Approver> Engine<'_, P, A> {
    /// After a step's actions ran: a browser fault ends the run (recorded once, with what was
    /// observed); dialogs dismissed are recorded; a page that answered 5xx to a GET is loaded
    /// again, bounded. Returns the outcome when the run must end.
    pub(crate) async fn after_step(
        &mut self,
        live: &mut Live,
        step: u32,
        feedback: &mut Vec<StepFeedback>,
    ) -> Result<Option<Outcome>, DriveError> {
        if let Some(o) = self.browser_fault(live, step)? {
            return Ok(Some(o));
        }
        self.note_dialogs(live, step)?;
        if let Some(note) = self.retry_server_error(live, step).await? {
            tell_model(feedback, &note);
        }
        self.browser_fault(live, step)
    }

    /// The browser fault seen so far, recorded as a `browser_fault` event the first time, as
    /// the outcome that ends the run.
    pub(crate) fn browser_fault(
        &mut self,
        live: &mut Live,
        step: u32,
    ) -> Result<Option<Outcome>, DriveError> {
        let Some(observed) = live.sandbox.as_ref().and_then(|sb| sb.fault()) else {
            return Ok(None);
        };
        if !live.faults.fault_recorded {
            live.faults.fault_recorded = true;
            self.record(
                live,
                "browser_fault",
                json!({"step": step, "observed": observed, "action": "run ended; the sandbox is torn down"}),
                &[],
            )?;
            self.reporter
                .line(&format!("step {step}: browser fault: {observed}"));
        }
        Ok(Some(Outcome::SandboxFailed {
            reason: format!("browser fault: {observed}"),
        }))
    }

    fn note_dialogs(&self, live: &mut Live, step: u32) -> Result<(), DriveError> {
        let Some(total) = live.sandbox.as_ref().map(|sb| sb.dialogs_dismissed()) else {
            return Ok(());
        };
        let new = total.saturating_sub(live.faults.dialogs_seen);
        live.faults.dialogs_seen = total;
        if new > 0 {
            self.record(
                live,
                "dialogs_dismissed",
                json!({"step": step, "count": new, "dialog_loop": new >= DIALOG_LOOP}),
                &[],
            )?;
        }
        Ok(())
    }

    /// A main document that answered 5xx is loaded again by GET, at most [`MAX_READ_RETRIES`]
    /// times, each attempt recorded before it runs. A document that answered a form submission
    /// is never repeated: the model is told to check whether it took effect.
    async fn retry_server_error(
        &mut self,
        live: &mut Live,
        step: u32,
    ) -> Result<Option<String>, DriveError> {
        let mut first: Option<u16> = None;
        for attempt in 1..=MAX_READ_RETRIES + 1 {
            let Some(sb) = live.sandbox.as_mut() else {
                return Ok(None);
            };
            let Ok(doc) = sb.document_status().await else {
                return Ok(None);
            };
            if doc.status < 500 {
                live.faults.answered_error = None;
                return Ok(first.map(|s| {
                    format!(
                        "the page answered {s}; the host loaded it again ({} attempt(s)) and it loaded",
                        attempt - 1
                    )
                }));
            }
            if first.is_none() && live.faults.answered_error.as_deref() == Some(doc.url.as_str()) {
                return Ok(None);
            }
            first.get_or_insert(doc.status);
            live.faults.answered_error = Some(doc.url.clone());
            if doc.from_form() {
                self.record(
                    live,
                    "server_error",
                    json!({"step": step, "url": doc.url, "status": doc.status, "retried": false, "why": "the page answered a form submission, which is never repeated"}),
                    &[],
                )?;
                return Ok(Some(format!(
                    "the site answered {} to a form submission; the host does not repeat submissions: check whether it took effect",
                    doc.status
                )));
            }
            if attempt > MAX_READ_RETRIES {
                self.record(
                    live,
                    "server_error",
                    json!({"step": step, "url": doc.url, "status": doc.status, "retried": MAX_READ_RETRIES, "why": "still failing; the host stopped retrying"}),
                    &[],
                )?;
                return Ok(Some(format!(
                    "the page answered {} again after {MAX_READ_RETRIES} reloads; the host stopped retrying",
                    doc.status
                )));
            }
            // Write-ahead, like every action: the retry is on record before it runs.
            self.record(
                live,
                "retry",
                json!({"step": step, "url": doc.url, "status": doc.status, "attempt": attempt, "effect": "read", "why": "a page loaded by GET answered a server error; reads are idempotent"}),
                &[],
            )?;
            let result = match live.sandbox.as_mut() {
                Some(sb) => sb
                    .execute(
                        &Action::Navigate {
                            url: doc.url.clone(),
                        },
                        None,
                    )
                    .await
                    .map_err(|e| e.to_string()),
                None => Err("sandbox gone".into()),
            };
            self.record(
                live,
                "retry_result",
                json!({"step": step, "attempt": attempt, "ok": result.is_ok(), "note": result.as_ref().map_or_else(|e| e.clone(), |n| n.clone())}),
                &[],
            )?;
            self.drain_egress(live)?;
        }
        Ok(None)
    }

    /// After an observation: when the site redirected the browser to the task's login page, the
    /// session expired. The host signs in again itself (bounded by [`MAX_RELOGINS`]), returns to
    /// the page the model was on, observes again, and tells the model its last action may not
    /// have taken effect. Returns the outcome when the run must end.
    pub(crate) async fn after_observe(
        &mut self,
        live: &mut Live,
        m: &TaskManifest,
        step: u32,
        was_on: &str,
        obs: &mut Observation,
        feedback: &mut Vec<StepFeedback>,
    ) -> Result<Option<Outcome>, DriveError> {
        let Some(login) = &m.login else {
            return Ok(None);
        };
        if !same_page(&obs.url, &login.url) || same_page(was_on, &login.url) {
            return Ok(None);
        }
        // Only the site's own redirect to the login page means the session ended; a model that
        // opened the login page itself is left there.
        let redirected = match live.sandbox.as_mut() {
            Some(sb) => sb.document_status().await.is_ok_and(|d| d.redirected),
            None => false,
        };
        if !redirected {
            return Ok(None);
        }
        live.faults.relogins += 1;
        self.record(
            live,
            "session_expired",
            json!({"step": step, "url": obs.url, "was_on": was_on, "relogin": live.faults.relogins, "max": MAX_RELOGINS}),
            &[],
        )?;
        if live.faults.relogins > MAX_RELOGINS {
            return Ok(Some(Outcome::BudgetExhausted {
                what: format!("the session expired {} times", live.faults.relogins),
            }));
        }
        self.reporter.line(&format!(
            "step {step}: the session expired; the host signs in again"
        ));
        let timeout = Duration::from_secs(m.budgets.step_timeout_secs);
        if let Err(why) = self.host_login(live, login, timeout).await? {
            return Ok(Some(Outcome::SandboxFailed {
                reason: format!("host-owned login failed after the session expired: {why}"),
            }));
        }
        let back = page_of(was_on).is_some() && !same_page(was_on, &login.url);
        if back {
            self.record(
                live,
                "return_after_login",
                json!({"step": step, "url": was_on}),
                &[],
            )?;
            if let Some(sb) = live.sandbox.as_mut() {
                let r = sb
                    .execute(
                        &Action::Navigate {
                            url: was_on.to_string(),
                        },
                        None,
                    )
                    .await;
                if let Err(e) = r {
                    tracing::warn!("return after login: {e}");
                }
            }
        }
        self.drain_egress(live)?;
        *obs = match self.observe(live, step, "after_relogin").await? {
            Ok(o) => o,
            Err(e) => {
                return Ok(Some(
                    self.browser_fault(live, step)?
                        .unwrap_or(Outcome::SandboxFailed { reason: e }),
                ))
            }
        };
        let place = if back {
            format!(" and returned to {was_on}")
        } else {
            String::new()
        };
        tell_model(
            feedback,
            &format!("session: expired during this step; the host signed in again{place}. Your last action may not have taken effect: check the page before going on"),
        );
        Ok(None)
    }
}

/// Host-owned actions (sign-in, reloads after a 5xx) whose start is on record but whose result
/// is not: crash recovery reports them as "outcome unknown" next to the model's actions.
pub(crate) fn host_actions_unknown(events: &[airlock_audit::Event]) -> Vec<String> {
    let mut out = Vec::new();
    let mut open_login: Option<&airlock_audit::Event> = None;
    let mut open_retry: Option<&airlock_audit::Event> = None;
    for e in events {
        match e.kind.as_str() {
            "login_started" => open_login = Some(e),
            "login" => open_login = None,
            "retry" => open_retry = Some(e),
            "retry_result" => open_retry = None,
            _ => {}
        }
    }
    if let Some(e) = open_login {
        out.push(format!(
            "host-owned login at {} (outcome unknown; not retried)",
            e.payload["url"].as_str().unwrap_or("?")
        ));
    }
    if let Some(e) = open_retry {
        out.push(format!(
            "step {}: host reload of {} after a server error (outcome unknown; a read)",
            e.payload["step"],
            e.payload["url"].as_str().unwrap_or("?")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_login_page_is_recognised_whatever_its_query() {
        assert!(same_page(
            "http://ci.example/login?next=/runs",
            "http://ci.example/login"
        ));
        assert!(same_page(
            "HTTP://CI.example/login#x",
            "http://ci.example/login"
        ));
        assert!(!same_page(
            "http://ci.example/runs",
            "http://ci.example/login"
        ));
        assert!(!same_page(
            "http://evil.example/login",
            "http://ci.example/login"
        ));
        assert!(!same_page("not a url", "http://ci.example/login"));
    }

    fn ev(seq: u64, kind: &str, payload: serde_json::Value) -> airlock_audit::Event {
        airlock_audit::Event {
            run_id: "r".into(),
            seq,
            ts_ms: 0,
            kind: kind.into(),
            payload,
            blobs: vec![],
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn a_login_or_reload_without_its_result_is_outcome_unknown() {
        let url = json!({"url": "http://ci.example/login", "step": 3});
        let done = [
            ev(1, "login_started", url.clone()),
            ev(2, "login", url.clone()),
            ev(3, "retry", url.clone()),
            ev(4, "retry_result", url.clone()),
        ];
        assert!(host_actions_unknown(&done).is_empty());
        let open = [
            ev(1, "login_started", url.clone()),
            ev(2, "retry", url.clone()),
        ];
        let u = host_actions_unknown(&open);
        assert_eq!(u.len(), 2, "{u:?}");
        assert!(u[0].contains("host-owned login"));
        assert!(u[1].contains("step 3"));
    }

    #[test]
    fn host_notes_join_the_last_feedback_entry() {
        let mut f = vec![StepFeedback::ran("clicked"), StepFeedback::ran("typed")];
        tell_model(&mut f, "note");
        assert_eq!(f.len(), 2);
        assert_eq!(f[1].message, "typed; note");
        let mut empty = Vec::new();
        tell_model(&mut empty, "note");
        assert_eq!(empty.len(), 1);
    }
}
