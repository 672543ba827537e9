//! Many runs at once: threads sharing one store (many runs in one process) and several stores
//! on one database (several processes on one home) keep separate, valid chains. SQLite in WAL
//! mode serialises the writers; `BEGIN IMMEDIATE` plus the busy timeout make them wait for each
//! other instead of failing.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use airlock_audit::{AuditStore, SqliteStore};
use serde_json::json;
use std::sync::Arc;

const THREADS_PER_STORE: usize = 6;
const STORES: usize = 3;
const RUNS_PER_THREAD: usize = 3;
const EVENTS_PER_RUN: u64 = 30;

#[test]
fn many_runs_in_one_process_and_several_stores_on_one_home_keep_valid_chains() {
    let tmp = tempfile::tempdir().unwrap();
    let stores: Vec<Arc<SqliteStore>> = (0..STORES)
        .map(|_| Arc::new(SqliteStore::open(tmp.path()).unwrap()))
        .collect();
    let mut handles = Vec::new();
    for (s, store) in stores.iter().enumerate() {
        for t in 0..THREADS_PER_STORE {
            let store = Arc::clone(store);
            handles.push(std::thread::spawn(move || {
                let runs: Vec<String> = (0..RUNS_PER_THREAD)
                    .map(|r| format!("run-{s}-{t}-{r}"))
                    .collect();
                for run in &runs {
                    store
                        .begin_run_with_status(run, &json!({"s": s}), "running")
                        .unwrap();
                }
                // Interleave the thread's own runs, while every other thread does the same.
                for i in 0..EVENTS_PER_RUN {
                    for run in &runs {
                        let blob = store.put_blob(format!("{run}/{i}").as_bytes()).unwrap();
                        let r = store
                            .append(run, "step", &json!({"i": i, "run": run}), &[blob])
                            .unwrap();
                        assert_eq!(r.seq, i + 2);
                    }
                }
                for run in &runs {
                    store.seal(run, &json!({"outcome": "done"})).unwrap();
                }
                runs
            }));
        }
    }
    let mut all = Vec::new();
    for h in handles {
        all.extend(h.join().unwrap());
    }
    assert_eq!(all.len(), STORES * THREADS_PER_STORE * RUNS_PER_THREAD);
    // A fresh store (another process, later) sees every chain whole and separate.
    let reader = SqliteStore::open(tmp.path()).unwrap();
    assert_eq!(reader.runs().unwrap().len(), all.len());
    for run in &all {
        let report = reader.verify(run).unwrap();
        assert!(report.ok(), "{run}: {report:?}");
        let evs = reader.events(run).unwrap();
        assert_eq!(evs.len() as u64, EVENTS_PER_RUN + 2);
        assert!(evs
            .iter()
            .filter(|e| e.kind == "step")
            .all(|e| e.payload["run"] == run.as_str()));
    }
}
