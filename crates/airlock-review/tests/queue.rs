//! The approval queue between processes: the run waits on one handle of `review.db`, reviewers
//! decide through another, as `airlock run --approvals web` and `airlock serve` would.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use airlock_engine::approval::{ApprovalOutcome, ApprovalRequest, Approver};
use airlock_engine::RunControl;
use airlock_review::{
    Decision, Principal, QueueControl, RequestStatus, ReviewError, ReviewStore, Role, WebApprover,
};

fn request(run: &str, step: u32) -> ApprovalRequest {
    serde_json::from_value(serde_json::json!({
        "run_id": run,
        "step": step,
        "task": "Add a note to INC-2048 naming the failing test",
        "summary": "Click button 'Submit note' on incidents.example/incidents/INC-2048/notes",
        "effect": "submit",
        "tier": "high",
        "reason": "submits a form: POST incidents.example/incidents/INC-2048/notes",
        "rules": ["builtin.risk.submit", "builtin.tier.high-needs-approval"],
        "fields": [["note", "test_refund_rounding fails"]],
    }))
    .expect("an approval request")
}

/// Two handles on one home directory, as two processes would have.
fn two_processes() -> (tempfile::TempDir, Arc<ReviewStore>, Arc<ReviewStore>) {
    let dir = tempfile::tempdir().unwrap();
    let run_side = Arc::new(ReviewStore::open(dir.path()).unwrap());
    let reviewer_side = Arc::new(ReviewStore::open(dir.path()).unwrap());
    (dir, run_side, reviewer_side)
}

/// Waits until the reviewer's handle sees a pending request of `run`.
async fn pending_of(store: &ReviewStore, run: &str) -> airlock_review::QueuedRequest {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(r) = store
            .pending()
            .unwrap()
            .into_iter()
            .find(|r| r.run_id == run)
        {
            return r;
        }
        assert!(Instant::now() < deadline, "request never reached the queue");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn fast(store: &Arc<ReviewStore>, ttl: Duration) -> WebApprover {
    WebApprover::new(Arc::clone(store), ttl).with_poll_interval(Duration::from_millis(20))
}

#[tokio::test]
async fn an_approval_flows_from_the_reviewer_to_the_waiting_run() {
    let (_home, run_side, reviewer_side) = two_processes();
    reviewer_side
        .add_reviewer("alice", Role::Reviewer, "correct horse battery")
        .unwrap();
    let mut approver = fast(&run_side, Duration::from_secs(30));
    assert_eq!(approver.mode(), "web");
    let waiting = tokio::spawn(async move { approver.decide(&request("run-a", 16)).await });

    let queued = pending_of(&reviewer_side, "run-a").await;
    assert_eq!(queued.step, 16);
    assert_eq!(queued.agent, "agent:run-a");
    assert_eq!(queued.details.fields[0].0, "note");
    assert!(!waiting.is_finished(), "the run must wait for a decision");

    let alice = reviewer_side
        .authenticate_password("alice", "correct horse battery")
        .unwrap();
    reviewer_side
        .decide(
            &queued.id,
            Some("run-a"),
            &alice,
            Decision::Approve,
            "note is accurate",
        )
        .unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(10), waiting)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Approved {
            by: "alice".into(),
            reason: "note is accurate".into()
        }
    );
}

#[tokio::test]
async fn a_denial_reaches_the_run_with_who_and_why() {
    let (_home, run_side, reviewer_side) = two_processes();
    let mut approver = fast(&run_side, Duration::from_secs(30));
    let waiting = tokio::spawn(async move { approver.decide(&request("run-b", 3)).await });
    let queued = pending_of(&reviewer_side, "run-b").await;
    let terminal = Principal::terminal(&airlock_engine::account::OsAccount::current());
    reviewer_side
        .decide(
            &queued.id,
            None,
            &terminal,
            Decision::Deny,
            "wrong incident",
        )
        .unwrap();
    let outcome = waiting.await.unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Denied {
            by: terminal.name().to_string(),
            reason: "wrong incident".into()
        }
    );
}

#[tokio::test]
async fn an_unanswered_request_expires_to_a_denial() {
    let (_home, run_side, reviewer_side) = two_processes();
    let mut approver = fast(&run_side, Duration::from_millis(300));
    let started = Instant::now();
    let outcome = approver.decide(&request("run-c", 1)).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    match outcome {
        ApprovalOutcome::Denied { by, reason } => {
            assert_eq!(by, "airlock");
            assert!(
                reason.starts_with("approval request expired after"),
                "{reason}"
            );
        }
        other => panic!("expected a denial, got {other:?}"),
    }
    let stored = reviewer_side.for_run("run-c").unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].status, RequestStatus::Expired);
    // A late approval cannot revive it.
    let alice = Principal::custom("alice", Role::Reviewer).unwrap();
    assert!(reviewer_side
        .decide(&stored[0].id, None, &alice, Decision::Approve, "late")
        .is_err());
}

#[tokio::test]
async fn the_runs_own_agent_cannot_approve_its_request() {
    let (_home, run_side, reviewer_side) = two_processes();
    let mut approver = fast(&run_side, Duration::from_millis(800));
    let waiting = tokio::spawn(async move { approver.decide(&request("run-d", 2)).await });
    let queued = pending_of(&reviewer_side, "run-d").await;

    let own = Principal::agent("run-d");
    let e = reviewer_side.decide(&queued.id, Some("run-d"), &own, Decision::Approve, "lgtm");
    assert!(matches!(e, Err(ReviewError::SelfApproval(_))), "{e:?}");
    let other_agent = Principal::custom("agent:run-x", Role::Operator).unwrap();
    let e = reviewer_side.decide(&queued.id, None, &other_agent, Decision::Approve, "lgtm");
    assert!(matches!(e, Err(ReviewError::AgentCannotDecide(_))), "{e:?}");

    // Nobody else decided, so the request runs out and the run is told no.
    let outcome = waiting.await.unwrap();
    assert!(matches!(outcome, ApprovalOutcome::Denied { ref by, .. } if by == "airlock"));
}

#[tokio::test]
async fn a_stop_while_waiting_is_recorded_as_a_stop_not_a_denial() {
    let (_home, run_side, reviewer_side) = two_processes();
    let control = QueueControl::new(Arc::clone(&run_side));
    assert_eq!(control.stop_requested("run-e"), None);
    let mut approver = fast(&run_side, Duration::from_secs(30));
    let waiting = tokio::spawn(async move { approver.decide(&request("run-e", 5)).await });
    let queued = pending_of(&reviewer_side, "run-e").await;

    let olga = Principal::custom("olga", Role::Operator).unwrap();
    reviewer_side
        .request_stop("run-e", &olga, "the agent is on the wrong incident")
        .unwrap();
    let outcome = waiting.await.unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Stopped {
            by: "olga".into(),
            reason: "run stopped: the agent is on the wrong incident".into()
        }
    );
    assert_eq!(
        reviewer_side.get(&queued.id).unwrap().unwrap().status,
        RequestStatus::Cancelled
    );
    assert_eq!(
        control.stop_requested("run-e"),
        Some(("olga".into(), "the agent is on the wrong incident".into()))
    );
}
