//! A run recorded through the `AuditStore` API, as the engine would record it, plus reviewers
//! and HTTP helpers. No browser is started.

#![allow(
    dead_code,
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "each test binary uses a different part of the fixture; helpers fail loudly"
)]

use std::sync::Arc;

use airlock_audit::{AuditStore, BlobRef, SqliteStore};
use airlock_review::{ReviewStore, Role};
use serde_json::{json, Value};

pub const RUN: &str = "run-20261123-201145-6588";
pub const SUMMARY: &str =
    "Click button 'Submit note' on incidents.example/incidents/INC-2048/notes";
pub const NOTE: &str = "RUN-78432 failed in test_refund_rounding";
pub const PASSWORD: &str = "correct horse battery staple";

/// A 1×1 PNG; `tag` is appended after IEND so each tag is a distinct blob.
pub fn png(tag: u8) -> Vec<u8> {
    let mut b: Vec<u8> = vec![
        0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A, 0x00, 0x00, 0x00, 0x0D, 0x49, 0x48, 0x44,
        0x52, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1F,
        0x15, 0xC4, 0x89, 0x00, 0x00, 0x00, 0x0A, 0x49, 0x44, 0x41, 0x54, 0x78, 0x9C, 0x63, 0x00,
        0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0D, 0x0A, 0x2D, 0xB4, 0x00, 0x00, 0x00, 0x00, 0x49,
        0x45, 0x4E, 0x44, 0xAE, 0x42, 0x60, 0x82,
    ];
    b.push(tag);
    b
}

pub struct Home {
    pub dir: tempfile::TempDir,
    pub audit: Arc<SqliteStore>,
    pub review: Arc<ReviewStore>,
}

/// A home with three reviewers: `vera` (viewer), `alice` (reviewer), `olga` (operator).
pub fn home() -> Home {
    let dir = tempfile::tempdir().unwrap();
    let audit = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let review = Arc::new(ReviewStore::open(dir.path()).unwrap());
    for (name, role) in [
        ("vera", Role::Viewer),
        ("alice", Role::Reviewer),
        ("olga", Role::Operator),
    ] {
        review.add_reviewer(name, role, PASSWORD).unwrap();
    }
    Home { dir, audit, review }
}

pub struct Recorded {
    pub before: BlobRef,
    pub after: BlobRef,
}

fn observation(
    audit: &SqliteStore,
    run: &str,
    step: u64,
    title: &str,
    snapshot: &str,
    shot: &BlobRef,
) {
    audit
        .append(
            run,
            "observation",
            &json!({
                "step": step,
                "phase": if step == 0 { "initial" } else { "after" },
                "url": "http://incidents.example/incidents/INC-2048",
                "title": title,
                "screenshot": shot.as_str(),
                "snapshot": snapshot,
                "focused": null,
            }),
            std::slice::from_ref(shot),
        )
        .unwrap();
}

/// Records a run up to its approval request at step 1, the way the engine does: the page the
/// agent saw has `title` (which may be hostile) as its title and in its snapshot.
pub fn record_until_approval(audit: &SqliteStore, run: &str, title: &str) -> Recorded {
    audit
        .begin_run(
            run,
            &json!({
                "task": "ci-incident",
                "goal": "Add a note to INC-2048 that names the failing test, and submit it.",
                "model": "scripted:examples/ci-incident/transcript.jsonl",
                "approvals": "web",
                "manifest": {"budgets": {"max_steps": 30}},
            }),
        )
        .unwrap();
    audit.set_status(run, "running").unwrap();
    audit
        .append(
            run,
            "sandbox_started",
            &json!({"viewport": {"width": 1280, "height": 800, "dpr": 1}, "allowed_hosts": ["incidents.example"]}),
            &[],
        )
        .unwrap();
    let before = audit.put_blob(&png(1)).unwrap();
    let snapshot = format!("- heading \"{title}\" [level=1]\n- button \"Submit note\" [ref=e93]");
    observation(audit, run, 0, title, &snapshot, &before);
    audit
        .append(
            run,
            "proposal",
            &json!({
                "step": 1,
                "source": "transcript line 16",
                "raw": {"action": "left_click", "coordinate": [857, 497]},
                "actions": [{"kind": "click", "button": "left", "count": 1, "target": {"point": {"x": 857.0, "y": 497.0}}}],
            }),
            &[],
        )
        .unwrap();
    let request = approval_request(run);
    audit
        .append(
            run,
            "decision",
            &json!({
                "step": 1,
                "index": 0,
                "summary": SUMMARY,
                "page": "http://incidents.example/incidents/INC-2048",
                "action": {"kind": "click", "target": {"point": {"x": 857.0, "y": 497.0}}},
                "element": {"center": {"x": 857.5, "y": 497.0}, "role": "button", "name": "Submit note", "tag": "button"},
                "decision": {"verdict": "needs_approval", "effect": "submit", "tier": "high",
                             "rules": ["builtin.risk.submit", "builtin.tier.high-needs-approval"],
                             "reason": "submits a form: POST incidents.example/incidents/INC-2048/notes"},
            }),
            &[],
        )
        .unwrap();
    audit
        .append(
            run,
            "approval_requested",
            &json!({"step": 1, "index": 0, "request": request}),
            &[],
        )
        .unwrap();
    Recorded {
        before,
        after: BlobRef::of(&png(2)),
    }
}

/// The engine's approval request for step 1 of `run`.
pub fn approval_request(run: &str) -> Value {
    json!({
        "run_id": run,
        "step": 1,
        "task": "Add a note to INC-2048 that names the failing test, and submit it.",
        "summary": SUMMARY,
        "effect": "submit",
        "tier": "high",
        "reason": "submits a form: POST incidents.example/incidents/INC-2048/notes",
        "rules": ["builtin.risk.submit", "builtin.tier.high-needs-approval"],
        "fields": [["note", NOTE]],
    })
}

/// Records the rest of the run after an approval by `by`, and seals it.
pub fn finish(audit: &SqliteStore, run: &str, by: &str, title: &str) {
    let a = |kind: &str, payload: Value| {
        audit.append(run, kind, &payload, &[]).unwrap();
    };
    a(
        "approval",
        json!({"step": 1, "index": 0, "mode": "web", "answer": {"answer": "approved", "by": by, "reason": "note is accurate"}}),
    );
    a(
        "action_result",
        json!({"step": 1, "index": 0, "decision_seq": 5, "ok": true, "note": "clicked button 'Submit note' at (857, 497)"}),
    );
    a(
        "egress",
        json!({"allowed": false, "host": "evil.example", "method": "GET", "path": "/x", "port": 80, "reason": "evil.example is not in the task's domains"}),
    );
    let after = audit.put_blob(&png(2)).unwrap();
    observation(audit, run, 1, title, "- text \"Note added\"", &after);
    a(
        "proposal",
        json!({"step": 2, "source": "transcript line 17", "raw": {"type": "text", "text": "done"}, "actions": [{"kind": "done", "claim": "I added the note."}]}),
    );
    a("claim", json!({"step": 2, "claim": "I added the note."}));
    a(
        "verification",
        json!({"passed": 1, "total": 1, "criteria": [{"criterion": "text 'Note added' present", "detail": "text 'Note added' is on the final page", "passed": true}]}),
    );
    a(
        "teardown",
        json!({"browser_pid": 7, "processes_killed": [7, 8], "processes_remaining": [], "run_dir": "/tmp/airlock-run-x", "run_dir_removed": true}),
    );
    audit
        .seal(
            run,
            &json!({"result": {"outcome": "succeeded"}, "steps": 2}),
        )
        .unwrap();
}
