//! Behavioural tests: what an attacker with the files can do, and what `verify` then says.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use std::path::Path;
use std::sync::Arc;
use std::thread;

use airlock_audit::chain::{self, EventFields};
use airlock_audit::{AuditError, AuditStore, BlobRef, Problem, SqliteStore, VerifyReport};
use serde_json::json;

const RUN: &str = "run-1";

/// A store with one run of `n` events (run_started + n-1 steps), the second one with a blob.
fn recorded(n: u64) -> (tempfile::TempDir, SqliteStore, BlobRef) {
    let tmp = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(tmp.path()).unwrap();
    store.begin_run(RUN, &json!({"goal": "buy milk"})).unwrap();
    let shot = store.put_blob(b"\x89PNG screenshot").unwrap();
    for i in 2..=n {
        let blobs = if i == 2 { vec![shot.clone()] } else { vec![] };
        store
            .append(RUN, "step", &json!({"i": i, "secret": "hunter2"}), &blobs)
            .unwrap();
    }
    (tmp, store, shot)
}

/// Opens the database as an attacker would: raw SQLite, append-only triggers dropped.
fn attacker(home: &Path) -> rusqlite::Connection {
    let conn = rusqlite::Connection::open(home.join("airlock.db")).unwrap();
    conn.execute_batch(
        "DROP TRIGGER events_no_update;
         DROP TRIGGER events_no_delete;
         DROP TRIGGER events_in_sequence;
         DROP TRIGGER runs_no_delete;
         DROP TRIGGER runs_forward_only;",
    )
    .unwrap();
    conn
}

fn verify(store: &SqliteStore) -> VerifyReport {
    store.verify(RUN).unwrap()
}

fn messages(report: &VerifyReport) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

fn assert_says(report: &VerifyReport, needle: &str) {
    let msgs = messages(report);
    assert!(
        msgs.iter().any(|m| m.contains(needle)),
        "expected a problem containing {needle:?}, got {msgs:#?}"
    );
}

#[test]
fn untouched_run_verifies() {
    let (_tmp, store, _) = recorded(5);
    store.seal(RUN, &json!({"status": "done"})).unwrap();
    let report = verify(&store);
    assert!(report.ok(), "{:#?}", report.problems);
    assert_eq!(report.events, 6);
    assert_eq!(report.head_seq, 6);
    assert!(report.sealed);
}

#[test]
fn edited_payload_is_named_by_seq() {
    let (tmp, store, _) = recorded(5);
    attacker(tmp.path())
        .execute(
            "UPDATE events SET payload = '{\"i\":3,\"secret\":\"changed\"}' WHERE seq = 3",
            [],
        )
        .unwrap();
    let report = verify(&store);
    assert_eq!(report.problems, vec![Problem::HashMismatch { seq: 3 }]);
    assert_eq!(
        messages(&report),
        ["event 3: hash mismatch (content was edited)"]
    );
    // Problems describe, they do not quote: no payload text leaks into the report.
    assert!(!format!("{report:?}").contains("changed"));
}

#[test]
fn edit_with_recomputed_hash_breaks_the_next_link() {
    let (tmp, store, _) = recorded(5);
    let conn = attacker(tmp.path());
    let (ts, prev, blobs): (i64, String, String) = conn
        .query_row(
            "SELECT ts_ms, prev_hash, blobs FROM events WHERE run_id = ?1 AND seq = 3",
            [RUN],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    let forged = "{\"i\":3,\"secret\":\"forged\"}";
    let hash = chain::event_hash(&EventFields {
        run_id: RUN,
        seq: 3,
        ts_ms: ts as u64,
        kind: "step",
        payload: forged,
        blobs: &blobs,
        prev_hash: &prev,
    });
    conn.execute(
        "UPDATE events SET payload = ?1, hash = ?2 WHERE seq = 3",
        [forged, &hash],
    )
    .unwrap();
    let report = verify(&store);
    assert_eq!(report.problems, vec![Problem::BrokenLink { seq: 4 }]);
    assert_says(&report, "event 4: does not link to event 3");
}

#[test]
fn deleted_middle_event_is_missing() {
    let (tmp, store, _) = recorded(6);
    attacker(tmp.path())
        .execute("DELETE FROM events WHERE seq IN (3, 4)", [])
        .unwrap();
    let report = verify(&store);
    assert!(!report.ok());
    assert_eq!(
        report.problems,
        vec![Problem::Missing { first: 3, last: 4 }]
    );
    assert_eq!(messages(&report), ["events 3..4 missing"]);
}

#[test]
fn swapped_events_are_detected() {
    let (tmp, store, _) = recorded(5);
    attacker(tmp.path())
        .execute_batch(
            "UPDATE events SET seq = 1000 WHERE seq = 2;
             UPDATE events SET seq = 2 WHERE seq = 3;
             UPDATE events SET seq = 3 WHERE seq = 1000;",
        )
        .unwrap();
    let report = verify(&store);
    assert!(report.problems.contains(&Problem::HashMismatch { seq: 2 }));
    assert!(report.problems.contains(&Problem::HashMismatch { seq: 3 }));
    assert!(report.problems.contains(&Problem::BrokenLink { seq: 2 }));
}

#[test]
fn truncated_tail_is_detected() {
    let (tmp, store, _) = recorded(6);
    attacker(tmp.path())
        .execute("DELETE FROM events WHERE seq > 4", [])
        .unwrap();
    let report = verify(&store);
    assert_eq!(
        messages(&report),
        ["chain head is 4 but run records head 6 (events truncated)"]
    );
}

#[test]
fn truncated_sealed_run_is_detected_even_with_the_head_moved() {
    let (tmp, store, _) = recorded(4);
    store.seal(RUN, &json!({"status": "done"})).unwrap();
    let conn = attacker(tmp.path());
    conn.execute("DELETE FROM events WHERE seq = 5", [])
        .unwrap();
    let report = verify(&store);
    assert!(report.problems.contains(&Problem::HeadMismatch {
        chain_seq: 4,
        recorded_seq: 5
    }));
    assert_says(&report, "not the seal");

    // Hide the truncation by moving the run's head back; the seal is still missing.
    let hash: String = conn
        .query_row("SELECT hash FROM events WHERE seq = 4", [], |r| r.get(0))
        .unwrap();
    conn.execute("UPDATE runs SET head_seq = 4, head_hash = ?1", [&hash])
        .unwrap();
    let report = verify(&store);
    assert_eq!(report.problems, vec![Problem::SealMissing { last_seq: 4 }]);
    assert_says(
        &report,
        "run is marked sealed but its last event (4) is not the seal",
    );
}

#[test]
fn forged_event_appended_behind_the_stores_back_is_detected() {
    let (tmp, store, _) = recorded(3);
    let conn = attacker(tmp.path());
    let prev: String = conn
        .query_row("SELECT hash FROM events WHERE seq = 3", [], |r| r.get(0))
        .unwrap();
    let hash = chain::event_hash(&EventFields {
        run_id: RUN,
        seq: 4,
        ts_ms: 1,
        kind: "step",
        payload: "{}",
        blobs: "[]",
        prev_hash: &prev,
    });
    conn.execute(
        "INSERT INTO events VALUES (?1, 4, 1, 'step', '{}', '[]', ?2, ?3)",
        [RUN, &prev, &hash],
    )
    .unwrap();
    let report = verify(&store);
    assert_eq!(
        messages(&report),
        ["chain head is 4 but run records head 3 (events added outside the audit store)"]
    );
}

#[test]
fn deleted_run_record_is_detected() {
    let (tmp, store, _) = recorded(3);
    let conn = attacker(tmp.path());
    conn.pragma_update(None, "foreign_keys", "OFF").unwrap();
    conn.execute("DELETE FROM runs WHERE run_id = ?1", [RUN])
        .unwrap();
    let report = verify(&store);
    assert_eq!(report.problems, vec![Problem::RunRecordMissing]);
    assert!(matches!(
        store.verify("never-existed"),
        Err(AuditError::UnknownRun(_))
    ));
}

#[test]
fn modified_or_deleted_blob_is_detected() {
    let (_tmp, store, shot) = recorded(3);
    let path = store.blob_path(&shot);
    std::fs::write(&path, b"doctored").unwrap();
    let report = verify(&store);
    assert_eq!(
        report.problems,
        vec![Problem::BlobAltered {
            seq: 2,
            blob: shot.clone()
        }]
    );
    assert_says(
        &report,
        &format!("blob {}… was modified", &shot.as_str()[..12]),
    );
    assert!(matches!(store.get_blob(&shot), Err(AuditError::Corrupt(_))));

    std::fs::remove_file(&path).unwrap();
    let report = verify(&store);
    assert_eq!(
        messages(&report),
        [format!("event 2: blob {} missing", shot.short())]
    );
}

#[test]
fn triggers_block_update_and_delete_through_a_normal_connection() {
    let (tmp, store, _) = recorded(3);
    let conn = rusqlite::Connection::open(tmp.path().join("airlock.db")).unwrap();
    for sql in [
        "UPDATE events SET payload = '{}' WHERE seq = 2",
        "DELETE FROM events WHERE seq = 3",
        "DELETE FROM events",
    ] {
        let err = conn.execute(sql, []).unwrap_err().to_string();
        assert!(err.contains("audit events are append-only"), "{sql}: {err}");
    }
    assert!(verify(&store).ok());
}

#[test]
fn appending_to_a_sealed_run_fails() {
    let (_tmp, store, _) = recorded(2);
    store.seal(RUN, &json!({"status": "failed"})).unwrap();
    let err = store.append(RUN, "step", &json!({}), &[]).unwrap_err();
    assert!(
        matches!(err, AuditError::Sealed(ref r) if r == RUN),
        "{err}"
    );
    assert!(verify(&store).ok());
}

fn append_many(store: &dyn AuditStore, run: &str, n: u64) {
    for i in 0..n {
        let blob = store.put_blob(format!("{run}-{i}").as_bytes()).unwrap();
        store
            .append(run, "step", &json!({ "i": i }), &[blob])
            .unwrap();
    }
}

#[test]
fn two_threads_append_to_two_runs() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Arc::new(SqliteStore::open(tmp.path()).unwrap());
    let handles: Vec<_> = ["a", "b"]
        .into_iter()
        .map(|run| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                store.begin_run(run, &json!(run)).unwrap();
                append_many(store.as_ref(), run, 50);
                store.seal(run, &json!("ok")).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    for run in ["a", "b"] {
        let report = store.verify(run).unwrap();
        assert!(report.ok(), "{run}: {:#?}", report.problems);
        assert_eq!(report.events, 52);
    }
}

#[test]
fn two_stores_on_one_database_append_concurrently() {
    let tmp = tempfile::tempdir().unwrap();
    // Two stores = two connections, as two processes would have.
    let first = SqliteStore::open(tmp.path()).unwrap();
    let second = SqliteStore::open(tmp.path()).unwrap();
    first
        .begin_run("shared", &json!("both write here"))
        .unwrap();
    thread::scope(|s| {
        for (store, run) in [(&first, "p1"), (&second, "p2")] {
            s.spawn(move || {
                store.begin_run(run, &json!(run)).unwrap();
                for i in 0..40 {
                    store.append(run, "step", &json!({ "i": i }), &[]).unwrap();
                    store
                        .append("shared", "step", &json!({ "from": run, "i": i }), &[])
                        .unwrap();
                }
            });
        }
    });
    for store in [&first, &second] {
        for run in ["p1", "p2", "shared"] {
            let report = store.verify(run).unwrap();
            assert!(report.ok(), "{run}: {:#?}", report.problems);
        }
    }
    assert_eq!(first.verify("shared").unwrap().events, 81);
    assert_eq!(second.events("p1").unwrap().len(), 41);
}

#[test]
fn many_stores_can_open_a_fresh_home_at_once() {
    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("fresh");
    thread::scope(|s| {
        for i in 0..6 {
            let home = &home;
            s.spawn(move || {
                let store = SqliteStore::open(home).unwrap();
                let run = format!("r{i}");
                store.begin_run(&run, &json!(i)).unwrap();
                store.seal(&run, &json!("ok")).unwrap();
            });
        }
    });
    let store = SqliteStore::open(&home).unwrap();
    let runs = store.runs().unwrap();
    assert_eq!(runs.len(), 6);
    for run in runs {
        assert!(store.verify(&run.run_id).unwrap().ok());
    }
}

#[test]
fn unusable_home_is_an_error_not_a_panic() {
    let tmp = tempfile::tempdir().unwrap();

    // A file where the home directory should be.
    let file = tmp.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let err = SqliteStore::open(&file).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
    assert!(SqliteStore::open(file.join("below")).is_err());

    // A directory where the database file should be.
    let home = tmp.path().join("dbdir");
    std::fs::create_dir_all(home.join("airlock.db")).unwrap();
    assert!(SqliteStore::open(&home).is_err());

    // A file where the blob directory should be.
    let home = tmp.path().join("blobfile");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(home.join("blobs"), b"x").unwrap();
    assert!(SqliteStore::open(&home).is_err());
}

#[cfg(unix)]
#[test]
fn read_only_home_is_an_error_not_a_panic() {
    use std::os::unix::fs::PermissionsExt;

    let tmp = tempfile::tempdir().unwrap();
    let home = tmp.path().join("ro");
    std::fs::create_dir(&home).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root ignores directory permissions, so only assert when they actually bite.
    let enforced = std::fs::write(home.join("probe"), b"x").is_err();
    let result = SqliteStore::open(&home);
    if enforced {
        assert!(result.is_err());
    }
    // Blob writes into a read-only blob directory of an open store fail cleanly too.
    let home = tmp.path().join("rw");
    let store = SqliteStore::open(&home).unwrap();
    std::fs::set_permissions(home.join("blobs"), std::fs::Permissions::from_mode(0o555)).unwrap();
    let put = store.put_blob(b"new");
    if enforced {
        assert!(matches!(put, Err(AuditError::Io { .. })));
    }
    std::fs::set_permissions(home.join("blobs"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = tmp.path().join("ro");
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o755)).unwrap();
}
