//! The SQLite backend: `HOME/airlock.db` plus a [`BlobDir`] at `HOME/blobs`.
//!
//! Durability: WAL journal with `synchronous=FULL`, so a commit has fsynced the WAL before
//! `COMMIT` returns. Every write is one `BEGIN IMMEDIATE` transaction (taking the write lock up
//! front, so two writers never deadlock upgrading a read lock), retried on `SQLITE_BUSY` until
//! the busy timeout has passed. Several processes may append to different runs of one database.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::types::ValueRef;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, Transaction};
use rusqlite::{OpenFlags, TransactionBehavior};

use crate::blob::{BlobDir, BlobRef};
use crate::chain::{self, RawEvent, RunHead, KIND_RUN_STARTED, KIND_SEALED};
use crate::{
    now_ms, validate_kind, validate_run_id, validate_status, AuditError, AuditStore, Event,
    EventRef, Problem, RunSummary, VerifyReport, STATUS_CREATED, STATUS_SEALED,
};

/// File name of the database inside the home directory.
pub const DB_FILE: &str = "airlock.db";
/// Directory name of the blob store inside the home directory.
pub const BLOB_DIR: &str = "blobs";
/// How long a write waits for another connection's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// Fault-injection hook for crash tests, never for production: when this variable holds `N`,
/// the process kills itself with SIGKILL right after the `N`-th event of a run has been
/// committed. It lets a test stop the host at every event boundary deterministically, where a
/// kill from outside would race. See `docs/failure-modes.md`.
pub const FAULT_KILL_AFTER_EVENT_ENV: &str = "AIRLOCK_FAULT_ABORT_AFTER_EVENT";

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = r#"
CREATE TABLE runs (
    run_id     TEXT PRIMARY KEY NOT NULL,
    created_ms INTEGER NOT NULL,
    task       TEXT NOT NULL,
    status     TEXT NOT NULL,
    outcome    TEXT,
    head_seq   INTEGER NOT NULL CHECK (head_seq >= 0),
    head_hash  TEXT NOT NULL,
    sealed     INTEGER NOT NULL DEFAULT 0 CHECK (sealed IN (0, 1))
) STRICT;

CREATE INDEX runs_by_created ON runs (created_ms);

CREATE TABLE events (
    run_id    TEXT NOT NULL REFERENCES runs (run_id),
    seq       INTEGER NOT NULL CHECK (seq >= 1),
    ts_ms     INTEGER NOT NULL CHECK (ts_ms >= 0),
    kind      TEXT NOT NULL,
    payload   TEXT NOT NULL,
    blobs     TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash      TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
) STRICT;

CREATE TRIGGER events_no_update BEFORE UPDATE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER events_no_delete BEFORE DELETE ON events
BEGIN
    SELECT RAISE(ABORT, 'audit events are append-only');
END;

CREATE TRIGGER events_in_sequence BEFORE INSERT ON events
WHEN NOT EXISTS (
    SELECT 1 FROM runs
    WHERE run_id = NEW.run_id AND sealed = 0 AND head_seq + 1 = NEW.seq
)
BEGIN
    SELECT RAISE(ABORT, 'audit events must extend an unsealed run by one');
END;

CREATE TRIGGER runs_no_delete BEFORE DELETE ON runs
BEGIN
    SELECT RAISE(ABORT, 'audit runs cannot be deleted');
END;

CREATE TRIGGER runs_forward_only
BEFORE UPDATE OF run_id, created_ms, task, status, outcome, head_seq, head_hash, sealed ON runs
WHEN OLD.sealed = 1
  OR NEW.run_id IS NOT OLD.run_id
  OR NEW.created_ms IS NOT OLD.created_ms
  OR NEW.task IS NOT OLD.task
  OR NEW.head_seq < OLD.head_seq
BEGIN
    SELECT RAISE(ABORT, 'audit run records only move forward and sealed runs are final');
END;
"#;

/// An [`AuditStore`] in one SQLite file plus a blob directory. One connection, shared behind a
/// mutex; open one store per process (or several, as tests do to imitate processes).
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
    blobs: BlobDir,
    home: PathBuf,
    busy_timeout: Duration,
    /// [`FAULT_KILL_AFTER_EVENT_ENV`], read once at open.
    kill_after: Option<u64>,
}

impl SqliteStore {
    /// Opens (creating if needed) the store under `home`, with [`DEFAULT_BUSY_TIMEOUT`].
    pub fn open(home: impl AsRef<Path>) -> Result<SqliteStore, AuditError> {
        SqliteStore::open_with_busy_timeout(home, DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens (creating if needed) the store under `home`; writes wait up to `busy_timeout` for
    /// other connections' locks before failing with [`AuditError::Busy`].
    pub fn open_with_busy_timeout(
        home: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<SqliteStore, AuditError> {
        let home = home.as_ref().to_path_buf();
        std::fs::create_dir_all(&home)
            .map_err(|e| AuditError::io("creating audit home", &home, e))?;
        // SQLite reports a read-only home only as "unable to open database file": say why.
        rustix::fs::access(&home, rustix::fs::Access::WRITE_OK).map_err(|e| {
            AuditError::io(
                "audit home is not writable (nothing could be recorded):",
                &home,
                std::io::Error::from(e),
            )
        })?;
        let blobs = BlobDir::open(home.join(BLOB_DIR))?;
        let db_path = home.join(DB_FILE);
        let conn = Connection::open_with_flags(
            &db_path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| {
            AuditError::Sqlite(format!("cannot open {}: {}", db_path.display(), sql(e)))
        })?;
        let store = SqliteStore {
            conn: Mutex::new(conn),
            blobs,
            home,
            busy_timeout,
            kill_after: std::env::var(FAULT_KILL_AFTER_EVENT_ENV)
                .ok()
                .and_then(|v| v.trim().parse().ok()),
        };
        store.init()?;
        Ok(store)
    }

    /// The home directory.
    pub fn home(&self) -> &Path {
        &self.home
    }

    /// Path of the SQLite database file.
    pub fn db_path(&self) -> PathBuf {
        self.home.join(DB_FILE)
    }

    /// Path of a blob's file (whether or not it exists).
    pub fn blob_path(&self, blob: &BlobRef) -> PathBuf {
        self.blobs.path_of(blob)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at worst an open transaction, which the
        // `Transaction` guard rolled back while unwinding; the connection itself is fine.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn init(&self) -> Result<(), AuditError> {
        let start = Instant::now();
        {
            let conn = self.lock();
            conn.busy_timeout(self.busy_timeout).map_err(sql)?;
            let mode = retry(start, self.busy_timeout, || {
                conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))
                    .map_err(sql)
            })?;
            if !mode.eq_ignore_ascii_case("wal") {
                return Err(AuditError::Sqlite(format!(
                    "could not enable WAL journal mode (got `{mode}`)"
                )));
            }
            conn.pragma_update(None, "synchronous", "FULL")
                .map_err(sql)?;
            let sync: i64 = conn
                .pragma_query_value(None, "synchronous", |r| r.get(0))
                .map_err(sql)?;
            if sync < 2 {
                return Err(AuditError::Sqlite(
                    "could not set synchronous=FULL".to_owned(),
                ));
            }
            conn.pragma_update(None, "foreign_keys", "ON")
                .map_err(sql)?;
        }
        self.write(|tx| {
            let version: i64 = tx
                .pragma_query_value(None, "user_version", |r| r.get(0))
                .map_err(sql)?;
            match version {
                0 => {
                    tx.execute_batch(SCHEMA).map_err(sql)?;
                    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
                        .map_err(sql)?;
                    Ok(())
                }
                SCHEMA_VERSION => Ok(()),
                other => Err(AuditError::Corrupt(format!(
                    "audit database has schema version {other}; this build understands \
                     {SCHEMA_VERSION}"
                ))),
            }
        })
    }

    /// Runs `op` in a `BEGIN IMMEDIATE` transaction and commits, retrying the whole transaction
    /// while the database is busy, up to the busy timeout.
    fn write<T>(
        &self,
        mut op: impl FnMut(&Transaction<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        self.transaction(TransactionBehavior::Immediate, &mut op)
    }

    /// Runs `op` in a read transaction: one consistent snapshot for all its queries.
    fn read<T>(
        &self,
        mut op: impl FnMut(&Transaction<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        self.transaction(TransactionBehavior::Deferred, &mut op)
    }

    fn transaction<T>(
        &self,
        behavior: TransactionBehavior,
        op: &mut impl FnMut(&Transaction<'_>) -> Result<T, AuditError>,
    ) -> Result<T, AuditError> {
        let start = Instant::now();
        let mut conn = self.lock();
        retry(start, self.busy_timeout, || {
            let tx = conn.transaction_with_behavior(behavior).map_err(sql)?;
            let value = op(&tx)?;
            // On failure the dropped `Transaction` rolls back, so a retry starts clean.
            tx.commit().map_err(sql)?;
            Ok(value)
        })
    }

    fn append_text(
        &self,
        run_id: &str,
        kind: &str,
        payload: &str,
        blobs: &[BlobRef],
    ) -> Result<EventRef, AuditError> {
        for blob in blobs {
            if !self.blobs.exists(blob)? {
                return Err(AuditError::UnknownBlob(blob.to_string()));
            }
        }
        let blobs_text = chain::encode_blobs(blobs);
        self.write(|tx| append_in(tx, run_id, kind, payload, &blobs_text, None))
            .map(|r| self.durable(r))
    }

    /// Called with every committed event: honours the crash-test hook
    /// ([`FAULT_KILL_AFTER_EVENT_ENV`]). The kill is SIGKILL, exactly what `kill -9` does: no
    /// destructor, no teardown, no flush runs.
    fn durable(&self, r: EventRef) -> EventRef {
        if self.kill_after == Some(r.seq) {
            let me = rustix::process::getpid();
            let _ = rustix::process::kill_process(me, rustix::process::Signal::KILL);
            // SIGKILL cannot be caught; should delivery be delayed, never return meanwhile.
            loop {
                std::thread::sleep(Duration::from_secs(1));
            }
        }
        r
    }

    fn begin(
        &self,
        run_id: &str,
        task: &serde_json::Value,
        status: &str,
    ) -> Result<EventRef, AuditError> {
        validate_run_id(run_id)?;
        validate_status(status)?;
        let task_text = to_json(task)?;
        let blobs_text = chain::encode_blobs(&[]);
        let genesis = chain::genesis_hash(run_id);
        self.write(|tx| {
            if run_exists(tx, run_id)? {
                return Err(AuditError::RunExists(run_id.to_owned()));
            }
            tx.execute(
                "INSERT INTO runs (run_id, created_ms, task, status, outcome, head_seq,
                                   head_hash, sealed)
                 VALUES (?1, ?2, ?3, ?4, NULL, 0, ?5, 0)",
                params![run_id, to_i64(now_ms())?, task_text, status, genesis],
            )
            .map_err(sql)?;
            append_in(tx, run_id, KIND_RUN_STARTED, &task_text, &blobs_text, None)
        })
        .map(|r| self.durable(r))
    }
}

/// Calls `op` until it succeeds, fails with something other than [`AuditError::Busy`], or the
/// timeout (counted from `start`) has passed. SQLite's busy handler already waits inside most
/// calls; this covers the cases where SQLite reports busy without waiting.
fn retry<T>(
    start: Instant,
    timeout: Duration,
    mut op: impl FnMut() -> Result<T, AuditError>,
) -> Result<T, AuditError> {
    let mut pause = Duration::from_millis(2);
    loop {
        match op() {
            Err(AuditError::Busy) if start.elapsed() < timeout => {
                std::thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Maps a SQLite error to an [`AuditError`]. SQLite's messages name tables, columns and
/// constraints, never bound values, so no payload leaks through here.
fn sql(e: rusqlite::Error) -> AuditError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => AuditError::Busy,
        _ => match e {
            rusqlite::Error::InvalidColumnType(..)
            | rusqlite::Error::FromSqlConversionFailure(..)
            | rusqlite::Error::IntegralValueOutOfRange(..) => {
                AuditError::Corrupt(format!("stored row does not decode: {e}"))
            }
            other => AuditError::Sqlite(other.to_string()),
        },
    }
}

fn to_i64(n: u64) -> Result<i64, AuditError> {
    i64::try_from(n).map_err(|_| AuditError::Corrupt(format!("number {n} out of range")))
}

fn to_u64(n: i64) -> Result<u64, AuditError> {
    u64::try_from(n).map_err(|_| AuditError::Corrupt(format!("stored number {n} is negative")))
}

fn to_json(value: &serde_json::Value) -> Result<String, AuditError> {
    serde_json::to_string(value)
        .map_err(|_| AuditError::InvalidInput("payload could not be serialised as JSON"))
}

fn from_json(text: &str, what: &str) -> Result<serde_json::Value, AuditError> {
    serde_json::from_str(text).map_err(|_| AuditError::Corrupt(format!("{what} is not valid JSON")))
}

/// The run's (head_seq, head_hash, sealed), or `UnknownRun`.
fn head_of(tx: &Transaction<'_>, run_id: &str) -> Result<RunHead, AuditError> {
    find_head(tx, run_id)?.ok_or_else(|| AuditError::UnknownRun(run_id.to_owned()))
}

/// The run's (head_seq, head_hash, sealed), if the run exists.
fn find_head(tx: &Transaction<'_>, run_id: &str) -> Result<Option<RunHead>, AuditError> {
    let row = tx
        .query_row(
            "SELECT head_seq, head_hash, sealed FROM runs WHERE run_id = ?1",
            params![run_id],
            |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            },
        )
        .optional()
        .map_err(sql)?;
    row.map(|(seq, hash, sealed)| {
        Ok(RunHead {
            head_seq: to_u64(seq)?,
            head_hash: hash,
            sealed: sealed != 0,
        })
    })
    .transpose()
}

/// Appends one event inside `tx`: reads the head, inserts, moves the head (and seals if asked).
fn append_in(
    tx: &Transaction<'_>,
    run_id: &str,
    kind: &str,
    payload: &str,
    blobs: &str,
    seal: Option<&str>,
) -> Result<EventRef, AuditError> {
    let head = head_of(tx, run_id)?;
    if head.sealed {
        return Err(AuditError::Sealed(run_id.to_owned()));
    }
    let seq = head
        .head_seq
        .checked_add(1)
        .ok_or_else(|| AuditError::Corrupt("sequence number overflow".to_owned()))?;
    let ts_ms = now_ms();
    let hash = chain::event_hash(&chain::EventFields {
        run_id,
        seq,
        ts_ms,
        kind,
        payload,
        blobs,
        prev_hash: &head.head_hash,
    });
    tx.execute(
        "INSERT INTO events (run_id, seq, ts_ms, kind, payload, blobs, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run_id,
            to_i64(seq)?,
            to_i64(ts_ms)?,
            kind,
            payload,
            blobs,
            head.head_hash,
            hash
        ],
    )
    .map_err(sql)?;
    match seal {
        None => tx.execute(
            "UPDATE runs SET head_seq = ?2, head_hash = ?3 WHERE run_id = ?1",
            params![run_id, to_i64(seq)?, hash],
        ),
        Some(outcome) => tx.execute(
            "UPDATE runs SET head_seq = ?2, head_hash = ?3, sealed = 1, status = ?4,
                 outcome = ?5
             WHERE run_id = ?1",
            params![run_id, to_i64(seq)?, hash, STATUS_SEALED, outcome],
        ),
    }
    .map_err(sql)?;
    Ok(EventRef { seq, hash })
}

fn run_exists(tx: &Transaction<'_>, run_id: &str) -> Result<bool, AuditError> {
    tx.query_row(
        "SELECT 1 FROM runs WHERE run_id = ?1",
        params![run_id],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(sql)
}

/// Reads a column as a non-negative integer, without coercion.
fn raw_u64(row: &Row<'_>, idx: usize) -> Option<u64> {
    match row.get_ref(idx).ok()? {
        ValueRef::Integer(i) => u64::try_from(i).ok(),
        _ => None,
    }
}

/// Reads a column as UTF-8 text, without coercion.
fn raw_text(row: &Row<'_>, idx: usize) -> Option<String> {
    match row.get_ref(idx).ok()? {
        ValueRef::Text(t) => String::from_utf8(t.to_vec()).ok(),
        _ => None,
    }
}

/// A row read verbatim for verification, or the malformed-row problem it amounts to.
fn raw_event(row: &Row<'_>) -> Result<RawEvent, Problem> {
    let seq = raw_u64(row, 0);
    let ev = (|| {
        Some(RawEvent {
            seq: seq?,
            ts_ms: raw_u64(row, 1)?,
            kind: raw_text(row, 2)?,
            payload: raw_text(row, 3)?,
            blobs: raw_text(row, 4)?,
            prev_hash: raw_text(row, 5)?,
            hash: raw_text(row, 6)?,
        })
    })();
    ev.ok_or(Problem::MalformedRow { seq })
}

const EVENT_COLUMNS: &str = "seq, ts_ms, kind, payload, blobs, prev_hash, hash";

/// A `runs` row as stored.
struct RunRow {
    run_id: String,
    created_ms: i64,
    task: String,
    status: String,
    outcome: Option<String>,
    head_seq: i64,
    head_hash: String,
    sealed: i64,
}

impl RunRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RunRow> {
        Ok(RunRow {
            run_id: r.get(0)?,
            created_ms: r.get(1)?,
            task: r.get(2)?,
            status: r.get(3)?,
            outcome: r.get(4)?,
            head_seq: r.get(5)?,
            head_hash: r.get(6)?,
            sealed: r.get(7)?,
        })
    }

    fn into_summary(self) -> Result<RunSummary, AuditError> {
        let run_id = self.run_id;
        let task = from_json(&self.task, &format!("task of run `{run_id}`"))?;
        let outcome = self
            .outcome
            .map(|o| from_json(&o, &format!("outcome of run `{run_id}`")))
            .transpose()?;
        Ok(RunSummary {
            created_ms: to_u64(self.created_ms)?,
            task,
            status: self.status,
            outcome,
            head_seq: to_u64(self.head_seq)?,
            head_hash: self.head_hash,
            sealed: self.sealed != 0,
            run_id,
        })
    }
}

impl AuditStore for SqliteStore {
    fn begin_run(&self, run_id: &str, task: &serde_json::Value) -> Result<EventRef, AuditError> {
        self.begin(run_id, task, STATUS_CREATED)
    }

    fn begin_run_with_status(
        &self,
        run_id: &str,
        task: &serde_json::Value,
        status: &str,
    ) -> Result<EventRef, AuditError> {
        self.begin(run_id, task, status)
    }

    fn append(
        &self,
        run_id: &str,
        kind: &str,
        payload: &serde_json::Value,
        blobs: &[BlobRef],
    ) -> Result<EventRef, AuditError> {
        validate_kind(kind)?;
        let payload = to_json(payload)?;
        self.append_text(run_id, kind, &payload, blobs)
    }

    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, AuditError> {
        self.blobs.put(bytes)
    }

    fn get_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, AuditError> {
        self.blobs.get(blob)
    }

    fn set_status(&self, run_id: &str, status: &str) -> Result<(), AuditError> {
        validate_status(status)?;
        self.write(|tx| {
            if head_of(tx, run_id)?.sealed {
                return Err(AuditError::Sealed(run_id.to_owned()));
            }
            tx.execute(
                "UPDATE runs SET status = ?2 WHERE run_id = ?1",
                params![run_id, status],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    fn seal(&self, run_id: &str, outcome: &serde_json::Value) -> Result<EventRef, AuditError> {
        let outcome = to_json(outcome)?;
        let blobs_text = chain::encode_blobs(&[]);
        self.write(|tx| {
            append_in(
                tx,
                run_id,
                KIND_SEALED,
                &outcome,
                &blobs_text,
                Some(&outcome),
            )
        })
        .map(|r| self.durable(r))
    }

    fn events(&self, run_id: &str) -> Result<Vec<Event>, AuditError> {
        let rows = self.read(|tx| {
            if !run_exists(tx, run_id)? {
                return Err(AuditError::UnknownRun(run_id.to_owned()));
            }
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 ORDER BY seq"
                ))
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![run_id], |r| {
                    Ok((
                        r.get::<_, i64>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, String>(3)?,
                        r.get::<_, String>(4)?,
                        r.get::<_, String>(5)?,
                        r.get::<_, String>(6)?,
                    ))
                })
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(rows)
        })?;
        rows.into_iter()
            .map(|(seq, ts_ms, kind, payload, blobs, prev_hash, hash)| {
                let blobs = chain::decode_blobs(&blobs).ok_or_else(|| {
                    AuditError::Corrupt(format!("event {seq}: blob list is malformed"))
                })?;
                Ok(Event {
                    run_id: run_id.to_owned(),
                    seq: to_u64(seq)?,
                    ts_ms: to_u64(ts_ms)?,
                    kind,
                    payload: from_json(&payload, &format!("event {seq} payload"))?,
                    blobs,
                    prev_hash,
                    hash,
                })
            })
            .collect()
    }

    fn runs(&self) -> Result<Vec<RunSummary>, AuditError> {
        let rows = self.read(|tx| {
            let mut stmt = tx
                .prepare_cached(
                    "SELECT run_id, created_ms, task, status, outcome, head_seq, head_hash,
                            sealed
                     FROM runs ORDER BY created_ms DESC, rowid DESC",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], RunRow::read)
                .map_err(sql)?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(sql)?;
            Ok(rows)
        })?;
        rows.into_iter().map(RunRow::into_summary).collect()
    }

    fn latest_run(&self) -> Result<Option<String>, AuditError> {
        self.read(|tx| {
            tx.query_row(
                "SELECT run_id FROM runs ORDER BY created_ms DESC, rowid DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)
        })
    }

    fn verify(&self, run_id: &str) -> Result<VerifyReport, AuditError> {
        // Read the run record and its events in one snapshot, so a concurrent append cannot
        // look like a truncation; check blobs afterwards, without holding the connection.
        let (head, events, malformed) = self.read(|tx| {
            let head = find_head(tx, run_id)?;
            let mut stmt = tx
                .prepare_cached(&format!(
                    "SELECT {EVENT_COLUMNS} FROM events WHERE run_id = ?1 ORDER BY seq"
                ))
                .map_err(sql)?;
            let mut rows = stmt.query(params![run_id]).map_err(sql)?;
            let mut events = Vec::new();
            let mut malformed = Vec::new();
            while let Some(row) = rows.next().map_err(sql)? {
                match raw_event(row) {
                    Ok(ev) => events.push(ev),
                    Err(problem) => malformed.push(problem),
                }
            }
            Ok((head, events, malformed))
        })?;
        if head.is_none() && events.is_empty() && malformed.is_empty() {
            return Err(AuditError::UnknownRun(run_id.to_owned()));
        }
        let mut report =
            chain::verify_chain(run_id, head.as_ref(), &events, |b| self.blobs.check(b));
        report.events += malformed.len() as u64;
        report.problems.splice(0..0, malformed);
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;
    use serde_json::json;

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let tmp = tempfile::tempdir().unwrap();
        let s = SqliteStore::open(tmp.path().join("home")).unwrap();
        (tmp, s)
    }

    #[test]
    fn pragmas_and_schema() {
        let (_tmp, s) = store();
        let conn = s.lock();
        let mode: String = conn
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let sync: i64 = conn
            .pragma_query_value(None, "synchronous", |r| r.get(0))
            .unwrap();
        assert_eq!(sync, 2);
        let fk: i64 = conn
            .pragma_query_value(None, "foreign_keys", |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        let timeout: i64 = conn
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert!(timeout >= 5000);
        let version: i64 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    #[test]
    fn a_run_whose_host_never_sealed_it_verifies_as_unsealed_until_sealed() {
        let (_tmp, s) = store();
        s.begin_run("r1", &json!({"task": "t"})).unwrap();
        let last = s.append("r1", "proposal", &json!({}), &[]).unwrap();
        let v = s.verify("r1").unwrap();
        assert_eq!(v.state(), crate::ChainState::Unsealed);
        assert_eq!((v.events, v.head_seq), (2, 2));
        assert!(v.head_is(&last.hash));
        let seal = s.seal("r1", &json!({"outcome": "aborted"})).unwrap();
        let v = s.verify("r1").unwrap();
        assert_eq!(v.state(), crate::ChainState::Sealed);
        assert!(v.head_is(&seal.hash) && !v.head_is(&last.hash));
    }

    #[test]
    fn reopen_keeps_data() {
        let tmp = tempfile::tempdir().unwrap();
        {
            let s = SqliteStore::open(tmp.path()).unwrap();
            s.begin_run("r1", &json!({"goal": "x"})).unwrap();
        }
        let s = SqliteStore::open(tmp.path()).unwrap();
        let e = s.append("r1", "note", &json!(1), &[]).unwrap();
        assert_eq!(e.seq, 2);
        assert!(s.verify("r1").unwrap().ok());
    }

    #[test]
    fn lifecycle() {
        let (_tmp, s) = store();
        let task = json!({"goal": "book a table", "n": 2});
        let first = s.begin_run("r1", &task).unwrap();
        assert_eq!(first.seq, 1);
        assert!(matches!(
            s.begin_run("r1", &task),
            Err(AuditError::RunExists(_))
        ));
        s.set_status("r1", "running").unwrap();

        let shot = s.put_blob(b"png bytes").unwrap();
        let e2 = s
            .append(
                "r1",
                "proposal",
                &json!({"click": [1, 2]}),
                std::slice::from_ref(&shot),
            )
            .unwrap();
        assert_eq!(e2.seq, 2);
        let sealed = s.seal("r1", &json!({"result": "done"})).unwrap();
        assert_eq!(sealed.seq, 3);

        let events = s.events("r1").unwrap();
        assert_eq!(events.len(), 3);
        assert_eq!(events[0].kind, KIND_RUN_STARTED);
        assert_eq!(events[0].payload, task);
        assert_eq!(events[0].prev_hash, chain::genesis_hash("r1"));
        assert_eq!(events[1].blobs, vec![shot.clone()]);
        assert_eq!(events[1].prev_hash, events[0].hash);
        assert_eq!(events[2].kind, KIND_SEALED);
        assert_eq!(events[2].hash, sealed.hash);
        assert_eq!(s.get_blob(&shot).unwrap(), b"png bytes");

        let runs = s.runs().unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, STATUS_SEALED);
        assert_eq!(runs[0].outcome, Some(json!({"result": "done"})));
        assert_eq!(runs[0].task, task);
        assert!(runs[0].sealed);
        assert_eq!(runs[0].head_seq, 3);
        assert_eq!(runs[0].head_hash, sealed.hash);

        let report = s.verify("r1").unwrap();
        assert!(report.ok(), "{:?}", report.problems);
        assert_eq!(report.events, 3);
        assert!(report.sealed);
        assert_eq!(report.head_hash, sealed.hash);

        assert!(matches!(
            s.append("r1", "late", &json!(null), &[]),
            Err(AuditError::Sealed(_))
        ));
        assert!(matches!(
            s.seal("r1", &json!(null)),
            Err(AuditError::Sealed(_))
        ));
        assert!(matches!(
            s.set_status("r1", "running"),
            Err(AuditError::Sealed(_))
        ));
        assert!(s.verify("r1").unwrap().ok());
    }

    #[test]
    fn unknown_runs_and_blobs() {
        let (_tmp, s) = store();
        assert!(matches!(
            s.append("nope", "k", &json!(1), &[]),
            Err(AuditError::UnknownRun(_))
        ));
        assert!(matches!(
            s.seal("nope", &json!(1)),
            Err(AuditError::UnknownRun(_))
        ));
        assert!(matches!(s.events("nope"), Err(AuditError::UnknownRun(_))));
        assert!(matches!(s.verify("nope"), Err(AuditError::UnknownRun(_))));
        assert!(matches!(
            s.set_status("nope", "x"),
            Err(AuditError::UnknownRun(_))
        ));
        assert_eq!(s.latest_run().unwrap(), None);

        s.begin_run("r", &json!(null)).unwrap();
        let ghost = BlobRef::of(b"never stored");
        assert!(matches!(
            s.append("r", "k", &json!(1), std::slice::from_ref(&ghost)),
            Err(AuditError::UnknownBlob(_))
        ));
        assert!(matches!(
            s.get_blob(&ghost),
            Err(AuditError::UnknownBlob(_))
        ));
        // Nothing was written by the failed append.
        assert_eq!(s.events("r").unwrap().len(), 1);
    }

    #[test]
    fn reserved_kinds_and_bad_ids_rejected() {
        let (_tmp, s) = store();
        assert!(matches!(
            s.begin_run("../etc", &json!(1)),
            Err(AuditError::InvalidInput(_))
        ));
        s.begin_run("r", &json!(1)).unwrap();
        assert!(matches!(
            s.append("r", KIND_SEALED, &json!(1), &[]),
            Err(AuditError::InvalidInput(_))
        ));
        assert!(matches!(
            s.append("r", KIND_RUN_STARTED, &json!(1), &[]),
            Err(AuditError::InvalidInput(_))
        ));
        assert!(s.verify("r").unwrap().ok());
    }

    #[test]
    fn runs_newest_first() {
        let (_tmp, s) = store();
        for id in ["a", "b", "c"] {
            s.begin_run(id, &json!(id)).unwrap();
        }
        let ids: Vec<String> = s.runs().unwrap().into_iter().map(|r| r.run_id).collect();
        assert_eq!(ids, ["c", "b", "a"]);
        assert_eq!(s.latest_run().unwrap().as_deref(), Some("c"));
        let r = &s.runs().unwrap()[0];
        assert_eq!(r.status, STATUS_CREATED);
        assert_eq!(r.outcome, None);
        assert!(!r.sealed);
    }

    #[test]
    fn payload_text_is_stored_once_and_hashed_verbatim() {
        let (_tmp, s) = store();
        s.begin_run("r", &json!({"b": 1, "a": [1.5, "x"]})).unwrap();
        let conn = s.lock();
        let (payload, hash): (String, String) = conn
            .query_row(
                "SELECT payload, hash FROM events WHERE run_id = 'r' AND seq = 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        let task: String = conn
            .query_row("SELECT task FROM runs WHERE run_id = 'r'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(payload, task);
        let ts: i64 = conn
            .query_row("SELECT ts_ms FROM events WHERE run_id = 'r'", [], |r| {
                r.get(0)
            })
            .unwrap();
        let expected = chain::event_hash(&chain::EventFields {
            run_id: "r",
            seq: 1,
            ts_ms: ts as u64,
            kind: KIND_RUN_STARTED,
            payload: &payload,
            blobs: "[]",
            prev_hash: &chain::genesis_hash("r"),
        });
        assert_eq!(hash, expected);
    }

    #[test]
    fn triggers_guard_runs_and_events() {
        let (_tmp, s) = store();
        s.begin_run("r", &json!(1)).unwrap();
        s.append("r", "k", &json!(2), &[]).unwrap();
        let conn = s.lock();
        let msg = |r: rusqlite::Result<usize>| r.unwrap_err().to_string();
        assert!(msg(conn.execute("UPDATE events SET payload = '3'", [])).contains("append-only"));
        assert!(msg(conn.execute("DELETE FROM events", [])).contains("append-only"));
        assert!(msg(conn.execute("DELETE FROM runs", [])).contains("cannot be deleted"));
        assert!(msg(conn.execute("UPDATE runs SET head_seq = 1", [])).contains("forward"));
        assert!(msg(conn.execute(
            "INSERT INTO events VALUES ('r', 5, 0, 'k', '1', '[]', 'x', 'y')",
            []
        ))
        .contains("extend"));
        drop(conn);
        s.seal("r", &json!(null)).unwrap();
        let conn = s.lock();
        assert!(msg(conn.execute("UPDATE runs SET sealed = 0", [])).contains("final"));
        assert!(msg(conn.execute("UPDATE runs SET status = 'x'", [])).contains("final"));
        drop(conn);
        assert!(s.verify("r").unwrap().ok());
    }

    #[test]
    fn malformed_rows_are_reported_not_fatal() {
        let (tmp, s) = store();
        s.begin_run("r", &json!(1)).unwrap();
        s.append("r", "k", &json!(2), &[]).unwrap();
        drop(s);
        // An attacker rebuilds the table without STRICT and stores a blob in a text column.
        let conn = Connection::open(tmp.path().join("home").join(DB_FILE)).unwrap();
        conn.execute_batch(
            "DROP TRIGGER events_no_update;
             CREATE TABLE e2 AS SELECT * FROM events;
             DROP TRIGGER events_no_delete;
             DROP TRIGGER events_in_sequence;
             DROP TABLE events;
             ALTER TABLE e2 RENAME TO events;
             UPDATE events SET kind = x'00ff' WHERE seq = 2;",
        )
        .unwrap();
        drop(conn);
        let s = SqliteStore::open(tmp.path().join("home")).unwrap();
        let report = s.verify("r").unwrap();
        assert!(report
            .problems
            .contains(&Problem::MalformedRow { seq: Some(2) }));
        assert_eq!(report.events, 2);
        assert!(matches!(s.events("r"), Err(AuditError::Corrupt(_))));
    }

    #[test]
    fn newer_schema_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        drop(SqliteStore::open(tmp.path()).unwrap());
        let conn = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        conn.pragma_update(None, "user_version", 99).unwrap();
        drop(conn);
        let err = SqliteStore::open(tmp.path()).unwrap_err();
        assert!(err.to_string().contains("schema version 99"), "{err}");
    }

    #[test]
    fn busy_when_lock_is_held_too_long() {
        let tmp = tempfile::tempdir().unwrap();
        let s =
            SqliteStore::open_with_busy_timeout(tmp.path(), Duration::from_millis(200)).unwrap();
        s.begin_run("r", &json!(1)).unwrap();
        let other = Connection::open(tmp.path().join(DB_FILE)).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let start = Instant::now();
        let err = s.append("r", "k", &json!(1), &[]).unwrap_err();
        assert!(matches!(err, AuditError::Busy), "{err}");
        assert!(start.elapsed() >= Duration::from_millis(200));
        assert_eq!(
            err.to_string(),
            "audit database is locked by another process"
        );
        other.execute_batch("ROLLBACK").unwrap();
        // Reads are not blocked by a writer in WAL mode, and writes resume afterwards.
        assert_eq!(s.events("r").unwrap().len(), 1);
        s.append("r", "k", &json!(1), &[]).unwrap();
        assert!(s.verify("r").unwrap().ok());
    }

    #[test]
    fn a_run_can_be_created_with_its_owner_in_one_step() {
        let (_tmp, s) = store();
        s.begin_run_with_status("r", &json!({}), "running pid=1 start=2")
            .unwrap();
        let runs = s.runs().unwrap();
        assert_eq!(runs[0].status, "running pid=1 start=2");
        assert_eq!(runs[0].head_seq, 1);
        assert!(matches!(
            s.begin_run_with_status("r", &json!({}), "running"),
            Err(AuditError::RunExists(_))
        ));
        assert!(s.begin_run_with_status("q", &json!({}), "").is_err());
        assert!(s.verify("r").unwrap().ok());
    }

    #[test]
    fn store_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SqliteStore>();
        let _: &dyn AuditStore = &store().1;
    }
}
