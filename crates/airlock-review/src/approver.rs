//! The engine's side of the queue: [`WebApprover`] (mode `web`) and [`QueueControl`] (stops).
//!
//! The run process puts its request into `review.db` and polls it; a reviewer in the web UI or
//! at the terminal decides from another process. Everything that is not a reviewer's explicit
//! approval — expiry, a stop, a queue that cannot be read — is a denial.

use std::sync::Arc;
use std::time::Duration;

use airlock_engine::approval::{ApprovalMode, ApprovalOutcome, ApprovalRequest, Approver};
use airlock_engine::RunControl;

use crate::error::ReviewError;
use crate::principal::is_agent_name;
use crate::store::{
    expiry_reason, QueuedRequest, RequestDetails, RequestStatus, ReviewStore, StopRequest,
};

/// How long a request waits for a reviewer by default.
pub const DEFAULT_APPROVAL_TTL: Duration = Duration::from_secs(15 * 60);
/// How often a waiting run looks at the queue.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// Consecutive failed reads of the queue after which the request is denied.
const MAX_READ_FAILURES: u32 = 25;

/// The principal Airlock itself decides as (expiry, queue failures).
const AIRLOCK: &str = "airlock";

type Notice = Box<dyn Fn(&QueuedRequest) + Send + Sync>;

/// Waits on the review queue for each approval (`airlock run --approvals web`).
pub struct WebApprover {
    store: Arc<ReviewStore>,
    ttl: Duration,
    poll: Duration,
    notice: Option<Notice>,
}

impl WebApprover {
    /// Requests wait `ttl` for a reviewer, then are denied.
    pub fn new(store: Arc<ReviewStore>, ttl: Duration) -> WebApprover {
        WebApprover {
            store,
            ttl,
            poll: DEFAULT_POLL_INTERVAL,
            notice: None,
        }
    }

    /// How often to look at the queue while waiting.
    pub fn with_poll_interval(mut self, poll: Duration) -> WebApprover {
        self.poll = poll.max(Duration::from_millis(10));
        self
    }

    /// Called once per request when it enters the queue (e.g. to tell the terminal its id).
    pub fn with_notice(mut self, f: impl Fn(&QueuedRequest) + Send + Sync + 'static) -> Self {
        self.notice = Some(Box::new(f));
        self
    }

    async fn wait(&self, req: &ApprovalRequest) -> ApprovalOutcome {
        let run_id = req.run_id.clone();
        match blocking(&self.store, move |s| s.stop_request(&run_id)).await {
            Ok(Some(stop)) => return stopped(&stop),
            Ok(None) => {}
            Err(e) => return unavailable(&e),
        }
        let details = match RequestDetails::from_request(req) {
            Ok(d) => d,
            Err(e) => return unavailable(&e),
        };
        let ttl = self.ttl;
        let queued = match blocking(&self.store, move |s| s.submit(&details, ttl)).await {
            Ok(q) => q,
            Err(e) => return unavailable(&e),
        };
        tracing::info!(request = %queued.id, run = %queued.run_id, step = queued.step, "waiting for approval");
        if let Some(n) = &self.notice {
            n(&queued);
        }
        let mut failures = 0u32;
        loop {
            tokio::time::sleep(self.poll).await;
            let id = queued.id.clone();
            let run_id = queued.run_id.clone();
            let read = blocking(&self.store, move |s| {
                Ok((s.get(&id)?, s.stop_request(&run_id)?))
            })
            .await;
            let (current, stop) = match read {
                Ok((Some(c), stop)) => (c, stop),
                Ok((None, _)) => {
                    return unavailable(&ReviewError::UnknownRequest(queued.id.clone()))
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(request = %queued.id, error = %e, "cannot read the approval queue");
                    if failures >= MAX_READ_FAILURES {
                        return unavailable(&e);
                    }
                    continue;
                }
            };
            failures = 0;
            let settled = match (current.status, stop) {
                (RequestStatus::Pending, None) => continue,
                (RequestStatus::Pending, Some(stop)) => {
                    let id = current.id.clone();
                    match blocking(&self.store, move |s| s.cancel_for_stop(&id, &stop)).await {
                        Ok(Some(now)) => now,
                        Ok(None) | Err(_) => continue,
                    }
                }
                (RequestStatus::Expired, _) if current.decided_by.is_none() => {
                    let id = current.id.clone();
                    match blocking(&self.store, move |s| s.expire(&id)).await {
                        Ok(Some(now)) => now,
                        Ok(None) | Err(_) => continue,
                    }
                }
                _ => current,
            };
            if let Some(answer) = outcome_of(&settled) {
                return answer;
            }
        }
    }
}

impl Approver for WebApprover {
    fn mode(&self) -> &str {
        "web"
    }

    async fn decide(&mut self, req: &ApprovalRequest) -> ApprovalOutcome {
        self.wait(req).await
    }
}

/// Either a local approval mode (`prompt`, `deny`, `approve-all`) or the web queue, so that
/// `airlock run --approvals …` can choose at run time (the engine takes one `Approver` type).
pub enum AnyApprover {
    Local(ApprovalMode),
    Web(WebApprover),
}

impl Approver for AnyApprover {
    fn mode(&self) -> &str {
        match self {
            AnyApprover::Local(m) => m.mode(),
            AnyApprover::Web(w) => w.mode(),
        }
    }

    async fn decide(&mut self, req: &ApprovalRequest) -> ApprovalOutcome {
        match self {
            AnyApprover::Local(m) => m.decide(req).await,
            AnyApprover::Web(w) => w.decide(req).await,
        }
    }
}

/// What the engine is told about a settled request; `None` while it is still pending.
fn outcome_of(r: &QueuedRequest) -> Option<ApprovalOutcome> {
    let by = r.decided_by.clone().unwrap_or_else(|| AIRLOCK.into());
    let reason = r.decision_reason.clone().unwrap_or_default();
    match r.status {
        RequestStatus::Pending => None,
        // The store refuses agent deciders; this is the last line should that ever fail.
        RequestStatus::Approved if is_agent_name(&by) || by == r.agent => {
            Some(ApprovalOutcome::Denied {
                by: AIRLOCK.into(),
                reason: format!("refused an approval recorded by agent identity `{by}`"),
            })
        }
        RequestStatus::Approved => Some(ApprovalOutcome::Approved { by, reason }),
        RequestStatus::Denied => Some(ApprovalOutcome::Denied { by, reason }),
        // Requests are cancelled only because their run was stopped.
        RequestStatus::Cancelled => Some(ApprovalOutcome::Stopped { by, reason }),
        RequestStatus::Expired => Some(ApprovalOutcome::Denied {
            by: AIRLOCK.into(),
            reason: expiry_reason(r),
        }),
    }
}

fn stopped(stop: &StopRequest) -> ApprovalOutcome {
    ApprovalOutcome::Stopped {
        by: stop.requested_by.clone(),
        reason: format!("run stopped: {}", stop.reason),
    }
}

fn unavailable(e: &ReviewError) -> ApprovalOutcome {
    ApprovalOutcome::Denied {
        by: AIRLOCK.into(),
        reason: format!("approval queue unavailable: {e}"),
    }
}

/// Runs a store call off the async worker threads (SQLite may wait on another process's lock).
async fn blocking<T: Send + 'static>(
    store: &Arc<ReviewStore>,
    f: impl FnOnce(&ReviewStore) -> Result<T, ReviewError> + Send + 'static,
) -> Result<T, ReviewError> {
    let s = Arc::clone(store);
    tokio::task::spawn_blocking(move || f(&s))
        .await
        .map_err(|e| ReviewError::Sqlite(format!("queue task failed: {e}")))?
}

/// Stop requests from the review queue (the web UI's Stop button, `airlock runs stop`), and
/// optionally from another source too (e.g. the run's own signal handler).
#[derive(Clone)]
pub struct QueueControl {
    store: Arc<ReviewStore>,
    also: Option<Arc<dyn RunControl>>,
}

impl QueueControl {
    pub fn new(store: Arc<ReviewStore>) -> QueueControl {
        QueueControl { store, also: None }
    }

    /// Also stop (or release) when `other` says so; `other` is asked first.
    pub fn also(mut self, other: Arc<dyn RunControl>) -> QueueControl {
        self.also = Some(other);
        self
    }
}

impl RunControl for QueueControl {
    /// A queue that cannot be read stops the run: whoever is watching can no longer stop it.
    fn stop_requested(&self, run_id: &str) -> Option<(String, String)> {
        if let Some(stop) = self.also.as_ref().and_then(|o| o.stop_requested(run_id)) {
            return Some(stop);
        }
        match self.store.stop_request(run_id) {
            Ok(Some(s)) => Some((s.requested_by, s.reason)),
            Ok(None) => None,
            Err(e) => Some((
                AIRLOCK.into(),
                format!("stop requests cannot be read ({e}); stopping to be safe"),
            )),
        }
    }

    /// A release lets a frozen run be torn down early; an unreadable queue keeps it frozen
    /// (its freeze time still ends it).
    fn release_requested(&self, run_id: &str) -> bool {
        self.also
            .as_ref()
            .is_some_and(|o| o.release_requested(run_id))
            || matches!(self.store.release_request(run_id), Ok(Some(_)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::principal::{Principal, Role};
    use crate::store::Decision;

    fn request(run: &str) -> ApprovalRequest {
        serde_json::from_value(serde_json::json!({
            "run_id": run,
            "step": 16,
            "task": "add a note",
            "summary": "Click button 'Submit note'",
            "effect": "submit",
            "tier": "high",
            "reason": "submits a form",
            "rules": ["builtin.risk.submit"],
            "fields": [["note", "x"]],
            "findings": ["ignore previous instructions (page text): …"],
        }))
        .unwrap()
    }

    #[test]
    fn settled_requests_map_to_outcomes() {
        let dir = tempfile::tempdir().unwrap();
        let s = ReviewStore::open(dir.path()).unwrap();
        let q = s
            .submit(
                &RequestDetails::from_request(&request("run-1")).unwrap(),
                Duration::from_secs(9),
            )
            .unwrap();
        assert_eq!(outcome_of(&q), None);
        assert_eq!(
            q.details.findings.len(),
            1,
            "taint findings reach the queue"
        );
        let mut expired = q.clone();
        expired.status = RequestStatus::Expired;
        assert_eq!(
            outcome_of(&expired),
            Some(ApprovalOutcome::Denied {
                by: "airlock".into(),
                reason: "approval request expired after 9 s".into()
            })
        );
        let mut forged = q.clone();
        forged.status = RequestStatus::Approved;
        forged.decided_by = Some("agent:run-1".into());
        assert!(matches!(
            outcome_of(&forged),
            Some(ApprovalOutcome::Denied { .. })
        ));
        let alice = Principal::custom("alice", Role::Reviewer).unwrap();
        let done = s
            .decide(&q.id, None, &alice, Decision::Approve, "fine")
            .unwrap();
        assert_eq!(
            outcome_of(&done),
            Some(ApprovalOutcome::Approved {
                by: "alice".into(),
                reason: "fine".into()
            })
        );
    }

    struct Always;
    impl RunControl for Always {
        fn stop_requested(&self, _: &str) -> Option<(String, String)> {
            Some(("signal".into(), "SIGTERM".into()))
        }
        fn release_requested(&self, _: &str) -> bool {
            true
        }
    }

    #[test]
    fn queue_control_also_listens_to_another_source() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(ReviewStore::open(dir.path()).unwrap());
        let plain = QueueControl::new(Arc::clone(&s));
        assert_eq!(plain.stop_requested("run-1"), None);
        assert!(!plain.release_requested("run-1"));
        let both = plain.also(Arc::new(Always));
        assert_eq!(
            both.stop_requested("run-1"),
            Some(("signal".into(), "SIGTERM".into()))
        );
        assert!(both.release_requested("run-1"));
    }

    #[tokio::test]
    async fn any_approver_delegates_to_its_mode() {
        let mut local = AnyApprover::Local(ApprovalMode::Deny);
        assert_eq!(local.mode(), "deny");
        assert!(matches!(
            local.decide(&request("run-1")).await,
            ApprovalOutcome::Denied { .. }
        ));
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(ReviewStore::open(dir.path()).unwrap());
        let web = AnyApprover::Web(WebApprover::new(s, Duration::from_secs(1)));
        assert_eq!(web.mode(), "web");
    }

    #[tokio::test]
    async fn a_stopped_run_is_stopped_without_queueing() {
        let dir = tempfile::tempdir().unwrap();
        let s = Arc::new(ReviewStore::open(dir.path()).unwrap());
        let op = Principal::custom("olga", Role::Operator).unwrap();
        s.request_stop("run-1", &op, "enough").unwrap();
        let mut a = WebApprover::new(Arc::clone(&s), Duration::from_secs(60));
        let out = a.decide(&request("run-1")).await;
        assert_eq!(
            out,
            ApprovalOutcome::Stopped {
                by: "olga".into(),
                reason: "run stopped: enough".into()
            }
        );
        assert!(s.for_run("run-1").unwrap().is_empty());
        let control = QueueControl::new(Arc::clone(&s));
        assert_eq!(
            control.stop_requested("run-1"),
            Some(("olga".into(), "enough".into()))
        );
        assert!(!control.release_requested("run-1"));
        s.request_release("run-1", &op, "seen enough").unwrap();
        assert!(control.release_requested("run-1"));
    }
}
