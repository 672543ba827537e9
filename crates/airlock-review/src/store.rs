//! `HOME/review.db`: the approval queue, stop requests, reviewer accounts and API tokens.
//!
//! Each method is one short transaction, so a run process, the web server and a terminal can
//! all work on the same file at once. Writes use `BEGIN IMMEDIATE` (take the write lock up
//! front); a busy database waits up to the busy timeout.
//!
//! Decisions are final and requests are never deleted: triggers refuse any change to a decided
//! request and any `DELETE`, and a `CHECK` refuses a decision by the request's own agent or by
//! any `agent:…` name even if the code above were bypassed.

use rusqlite::TransactionBehavior;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension, Row, Transaction};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use airlock_engine::approval::ApprovalRequest;

use crate::error::ReviewError;
use crate::principal::{agent_identity, clip, validate_name, Principal, Role};
use crate::secret;

/// File name of the review database inside the home directory.
pub const REVIEW_DB: &str = "review.db";
/// How long an operation waits for another process's lock by default.
pub const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA_VERSION: i64 = 1;
/// Longest reason accepted, in characters.
const MAX_REASON_CHARS: usize = 2000;

const SCHEMA: &str = r#"
CREATE TABLE requests (
    id          TEXT PRIMARY KEY NOT NULL,
    run_id      TEXT NOT NULL,
    step        INTEGER NOT NULL CHECK (step >= 0),
    agent       TEXT NOT NULL,
    details     TEXT NOT NULL,
    created_ms  INTEGER NOT NULL,
    expires_ms  INTEGER NOT NULL,
    status      TEXT NOT NULL DEFAULT 'pending'
                CHECK (status IN ('pending', 'approved', 'denied', 'expired', 'cancelled')),
    decided_by  TEXT,
    decided_ms  INTEGER,
    reason      TEXT,
    CHECK ((status = 'pending') = (decided_by IS NULL)),
    CHECK (status NOT IN ('approved', 'denied')
           OR (decided_by <> agent AND lower(ltrim(decided_by)) NOT LIKE 'agent:%'))
) STRICT;

CREATE INDEX requests_by_status ON requests (status, created_ms);
CREATE INDEX requests_by_run ON requests (run_id, created_ms);

CREATE TRIGGER requests_decisions_are_final BEFORE UPDATE ON requests
WHEN OLD.status <> 'pending'
BEGIN
    SELECT RAISE(ABORT, 'a decided approval request cannot change');
END;

CREATE TRIGGER requests_are_kept BEFORE DELETE ON requests
BEGIN
    SELECT RAISE(ABORT, 'approval requests are never deleted');
END;

CREATE TABLE stops (
    run_id       TEXT PRIMARY KEY NOT NULL,
    requested_by TEXT NOT NULL,
    reason       TEXT NOT NULL,
    requested_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE releases (
    run_id       TEXT PRIMARY KEY NOT NULL,
    requested_by TEXT NOT NULL,
    reason       TEXT NOT NULL,
    requested_ms INTEGER NOT NULL
) STRICT;

CREATE TABLE reviewers (
    name          TEXT PRIMARY KEY NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('viewer', 'reviewer', 'operator')),
    password_hash TEXT NOT NULL,
    created_ms    INTEGER NOT NULL,
    updated_ms    INTEGER NOT NULL
) STRICT;

CREATE TABLE tokens (
    digest       TEXT PRIMARY KEY NOT NULL,
    id           TEXT NOT NULL UNIQUE,
    reviewer     TEXT NOT NULL REFERENCES reviewers (name) ON DELETE CASCADE,
    label        TEXT NOT NULL,
    created_ms   INTEGER NOT NULL,
    last_used_ms INTEGER
) STRICT;
"#;

/// The part of an [`ApprovalRequest`] the queue stores and shows (what the reviewer decides on).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestDetails {
    pub run_id: String,
    pub step: u32,
    pub task: String,
    pub summary: String,
    pub effect: String,
    pub tier: String,
    pub reason: String,
    pub rules: Vec<String>,
    pub fields: Vec<(String, String)>,
    /// Instruction-like page content the run has seen (why a tainted run asks).
    #[serde(default)]
    pub findings: Vec<String>,
    /// What the page says and what Airlock read, when they differ unseen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
}

impl RequestDetails {
    /// What the queue keeps of the engine's request. Goes through JSON so that fields the
    /// engine adds later (with defaults) do not break this crate.
    pub fn from_request(r: &ApprovalRequest) -> Result<RequestDetails, ReviewError> {
        serde_json::to_value(r)
            .and_then(serde_json::from_value)
            .map_err(|e| ReviewError::invalid(format!("approval request does not convert: {e}")))
    }
}

/// Where a request stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    Approved,
    Denied,
    /// Nobody decided in time; the run was told *denied*.
    Expired,
    /// The run was stopped while the request waited; the run was told *denied*.
    Cancelled,
}

impl RequestStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Pending => "pending",
            RequestStatus::Approved => "approved",
            RequestStatus::Denied => "denied",
            RequestStatus::Expired => "expired",
            RequestStatus::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Option<RequestStatus> {
        Some(match s {
            "pending" => RequestStatus::Pending,
            "approved" => RequestStatus::Approved,
            "denied" => RequestStatus::Denied,
            "expired" => RequestStatus::Expired,
            "cancelled" => RequestStatus::Cancelled,
            _ => return None,
        })
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One request in the queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuedRequest {
    pub id: String,
    pub run_id: String,
    pub step: u32,
    /// The identity of the agent that asked (`agent:<run id>`); it can never decide.
    pub agent: String,
    pub details: RequestDetails,
    pub created_ms: u64,
    pub expires_ms: u64,
    /// As stored, except that a pending request past its expiry reads as `Expired`.
    pub status: RequestStatus,
    pub decided_by: Option<String>,
    pub decided_ms: Option<u64>,
    /// The reviewer's reason (or why Airlock decided).
    pub decision_reason: Option<String>,
}

impl QueuedRequest {
    /// Whether a reviewer can still decide it.
    pub fn is_open(&self) -> bool {
        self.status == RequestStatus::Pending
    }

    /// Milliseconds left before it expires (0 once expired or decided).
    pub fn remaining_ms(&self, now_ms: u64) -> u64 {
        if self.is_open() {
            self.expires_ms.saturating_sub(now_ms)
        } else {
            0
        }
    }

    /// One line for the terminal.
    pub fn line(&self, now_ms: u64) -> String {
        let when = match self.status {
            RequestStatus::Pending => {
                format!("pending, {} s left", self.remaining_ms(now_ms) / 1000)
            }
            other => match &self.decided_by {
                Some(by) => format!("{other} by {by}"),
                None => other.to_string(),
            },
        };
        format!(
            "{}  {}  step {}  [{} / {} risk]  {}  ({when})",
            self.id,
            self.run_id,
            self.step,
            self.details.effect,
            self.details.tier,
            self.details.summary
        )
    }
}

/// Approve or deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    fn status(self) -> RequestStatus {
        match self {
            Decision::Approve => RequestStatus::Approved,
            Decision::Deny => RequestStatus::Denied,
        }
    }
}

/// Someone asked for a run to stop (or, in `releases`, for a frozen run to be torn down).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StopRequest {
    pub run_id: String,
    pub requested_by: String,
    pub reason: String,
    pub requested_ms: u64,
}

/// A reviewer account as listed (never with its hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReviewerInfo {
    pub name: String,
    pub role: Role,
    pub created_ms: u64,
    pub tokens: u64,
}

/// An API token as listed (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TokenInfo {
    /// A short public id to refer to the token (for revoking).
    pub id: String,
    pub reviewer: String,
    pub label: String,
    pub created_ms: u64,
    pub last_used_ms: Option<u64>,
}

/// The review database of one home directory. One connection behind a mutex; open one per
/// process (tests open two to act as two processes).
#[derive(Debug)]
pub struct ReviewStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl ReviewStore {
    /// Opens (creating if needed) `HOME/review.db` with [`DEFAULT_BUSY_TIMEOUT`].
    pub fn open(home: impl AsRef<Path>) -> Result<ReviewStore, ReviewError> {
        ReviewStore::open_with_busy_timeout(home, DEFAULT_BUSY_TIMEOUT)
    }

    /// Opens (creating if needed) `HOME/review.db`; a busy database is waited on for up to
    /// `busy_timeout`.
    pub fn open_with_busy_timeout(
        home: impl AsRef<Path>,
        busy_timeout: Duration,
    ) -> Result<ReviewStore, ReviewError> {
        let home = home.as_ref();
        std::fs::create_dir_all(home).map_err(|source| ReviewError::Io {
            context: format!("creating home {}", home.display()),
            source,
        })?;
        let path = home.join(REVIEW_DB);
        let conn = Connection::open_with_flags(
            &path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        restrict_permissions(&path)?;
        conn.busy_timeout(busy_timeout).map_err(sql)?;
        let mode: String = conn
            .pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))
            .map_err(sql)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(ReviewError::Sqlite(format!(
                "could not enable WAL journal mode (got `{mode}`)"
            )));
        }
        conn.pragma_update(None, "synchronous", "FULL")
            .map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(sql)?;
        let store = ReviewStore {
            conn: Mutex::new(conn),
            path,
        };
        store.write(|tx| {
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
                other => Err(ReviewError::Corrupt(format!(
                    "review database has schema version {other}; this build understands \
                     {SCHEMA_VERSION}"
                ))),
            }
        })?;
        Ok(store)
    }

    /// Path of the database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock leaves at worst a transaction that its guard rolled
        // back while unwinding; the connection itself is usable.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn write<T>(
        &self,
        op: impl FnOnce(&Transaction<'_>) -> Result<T, ReviewError>,
    ) -> Result<T, ReviewError> {
        self.transaction(TransactionBehavior::Immediate, op)
    }

    fn read<T>(
        &self,
        op: impl FnOnce(&Transaction<'_>) -> Result<T, ReviewError>,
    ) -> Result<T, ReviewError> {
        self.transaction(TransactionBehavior::Deferred, op)
    }

    fn transaction<T>(
        &self,
        behavior: TransactionBehavior,
        op: impl FnOnce(&Transaction<'_>) -> Result<T, ReviewError>,
    ) -> Result<T, ReviewError> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(behavior).map_err(sql)?;
        // On error the dropped transaction rolls back.
        let value = op(&tx)?;
        tx.commit().map_err(sql)?;
        Ok(value)
    }

    // ---- the approval queue -------------------------------------------------------------

    /// Puts a request in the queue for `ttl`, under the run's agent identity.
    pub fn submit(
        &self,
        req: &RequestDetails,
        ttl: Duration,
    ) -> Result<QueuedRequest, ReviewError> {
        if req.run_id.is_empty() || req.run_id.len() > 128 {
            return Err(ReviewError::invalid("a run id must be 1 to 128 characters"));
        }
        let id = format!("apr-{}", secret::random_token(8)?);
        let created = now_ms();
        let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        let expires = created.saturating_add(ttl_ms);
        let details = serde_json::to_string(req)
            .map_err(|e| ReviewError::invalid(format!("request does not serialise: {e}")))?;
        let agent = agent_identity(&req.run_id);
        self.write(|tx| {
            tx.execute(
                "INSERT INTO requests (id, run_id, step, agent, details, created_ms, expires_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    id,
                    req.run_id,
                    req.step,
                    agent,
                    details,
                    to_i64(created)?,
                    to_i64(expires)?
                ],
            )
            .map_err(sql)?;
            Ok(())
        })?;
        self.get(&id)?
            .ok_or_else(|| ReviewError::Corrupt(format!("request `{id}` vanished after insert")))
    }

    /// One request by id.
    pub fn get(&self, id: &str) -> Result<Option<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.read(|tx| get_in(tx, id, now))
    }

    /// Requests a reviewer can still decide, oldest first.
    pub fn pending(&self) -> Result<Vec<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.query(
            "WHERE status = 'pending' AND expires_ms > ?1 ORDER BY created_ms, id",
            params![to_i64(now)?],
            now,
        )
    }

    /// The most recent requests in any state, newest first.
    pub fn recent(&self, limit: u32) -> Result<Vec<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.query(
            "ORDER BY created_ms DESC, id LIMIT ?1",
            params![i64::from(limit)],
            now,
        )
    }

    /// All requests of one run, oldest first.
    pub fn for_run(&self, run_id: &str) -> Result<Vec<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.query(
            "WHERE run_id = ?1 ORDER BY created_ms, id",
            params![run_id],
            now,
        )
    }

    fn query(
        &self,
        tail: &str,
        args: impl rusqlite::Params,
        now: u64,
    ) -> Result<Vec<QueuedRequest>, ReviewError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(&format!("SELECT {REQUEST_COLUMNS} FROM requests {tail}"))
                .map_err(sql)?;
            let rows = stmt.query_map(args, RequestRow::read).map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                out.push(row.map_err(sql)?.into_request(now)?);
            }
            Ok(out)
        })
    }

    /// Approves or denies a pending request.
    ///
    /// `expected_run` binds the decision to the run the reviewer was looking at: a decision that
    /// names another run is refused. Agents can decide nothing (their own request least of all),
    /// viewers can decide nothing, and a denial needs a reason.
    pub fn decide(
        &self,
        id: &str,
        expected_run: Option<&str>,
        by: &Principal,
        decision: Decision,
        reason: &str,
    ) -> Result<QueuedRequest, ReviewError> {
        if by.is_agent() {
            let own = self.get(id)?.is_some_and(|r| r.agent == by.name());
            return Err(if own {
                ReviewError::SelfApproval(by.name().to_string())
            } else {
                ReviewError::AgentCannotDecide(by.name().to_string())
            });
        }
        if !by.role().can_decide() {
            return Err(ReviewError::Forbidden {
                who: by.name().to_string(),
                role: by.role().to_string(),
                what: "approve or deny requests",
            });
        }
        let reason = clean_reason(reason)?;
        let reason = match (decision, reason.is_empty()) {
            (Decision::Deny, true) => {
                return Err(ReviewError::invalid("a denial needs a reason"));
            }
            (Decision::Approve, true) => "approved without a comment".to_string(),
            (_, false) => reason,
        };
        let now = now_ms();
        enum Step {
            Done,
            Expired,
        }
        let step = self.write(|tx| {
            let Some(current) = get_in(tx, id, now)? else {
                return Err(ReviewError::UnknownRequest(clip(id)));
            };
            if let Some(claimed) = expected_run {
                if claimed != current.run_id {
                    return Err(ReviewError::WrongRun {
                        id: current.id,
                        claimed: clip(claimed),
                        actual: current.run_id,
                    });
                }
            }
            if current.agent == by.name() {
                return Err(ReviewError::SelfApproval(by.name().to_string()));
            }
            match current.status {
                RequestStatus::Pending => {}
                RequestStatus::Expired => {
                    mark_expired(tx, &current, now)?;
                    return Ok(Step::Expired);
                }
                other => {
                    return Err(ReviewError::AlreadyDecided {
                        id: current.id,
                        status: other.to_string(),
                    })
                }
            }
            let changed = tx
                .execute(
                    "UPDATE requests SET status = ?2, decided_by = ?3, decided_ms = ?4, reason = ?5
                     WHERE id = ?1 AND status = 'pending'",
                    params![
                        id,
                        decision.status().as_str(),
                        by.name(),
                        to_i64(now)?,
                        reason
                    ],
                )
                .map_err(sql)?;
            if changed != 1 {
                return Err(ReviewError::AlreadyDecided {
                    id: id.to_string(),
                    status: "decided".into(),
                });
            }
            Ok(Step::Done)
        })?;
        match step {
            Step::Expired => Err(ReviewError::Expired(clip(id))),
            Step::Done => self
                .get(id)?
                .ok_or_else(|| ReviewError::UnknownRequest(clip(id))),
        }
    }

    /// Marks a pending request as expired (if it still is pending and past its time) and
    /// returns it as it now stands.
    pub(crate) fn expire(&self, id: &str) -> Result<Option<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.write(|tx| {
            if let Some(r) = get_in(tx, id, now)? {
                if r.status == RequestStatus::Expired && r.decided_by.is_none() {
                    mark_expired(tx, &r, now)?;
                }
            }
            Ok(())
        })?;
        self.get(id)
    }

    /// Cancels a pending request because its run was stopped; returns it as it now stands.
    pub(crate) fn cancel_for_stop(
        &self,
        id: &str,
        stop: &StopRequest,
    ) -> Result<Option<QueuedRequest>, ReviewError> {
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "UPDATE requests SET status = 'cancelled', decided_by = ?2, decided_ms = ?3,
                     reason = ?4
                 WHERE id = ?1 AND status = 'pending'",
                params![
                    id,
                    stop.requested_by,
                    to_i64(now)?,
                    format!("run stopped: {}", stop.reason)
                ],
            )
            .map_err(sql)?;
            Ok(())
        })?;
        self.get(id)
    }

    /// Cancels every pending request of a run whose host died (crash recovery): nobody is
    /// waiting for the answer any more, and approving it later must not look like it let
    /// anything run. Returns the ids cancelled.
    pub fn cancel_orphaned(&self, run_id: &str) -> Result<Vec<String>, ReviewError> {
        let pending: Vec<String> = self
            .for_run(run_id)?
            .into_iter()
            .filter(QueuedRequest::is_open)
            .map(|r| r.id)
            .collect();
        if pending.is_empty() {
            return Ok(pending);
        }
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "UPDATE requests SET status = 'cancelled', decided_by = 'airlock:recovery',
                     decided_ms = ?2, reason = 'the run was aborted: its host crashed'
                 WHERE run_id = ?1 AND status = 'pending'",
                params![run_id, to_i64(now)?],
            )
            .map_err(sql)?;
            Ok(())
        })?;
        Ok(pending)
    }

    // ---- stop requests -------------------------------------------------------------------

    /// Asks for a run to stop and cancels its pending requests. The first stop wins; asking
    /// again returns the stop already on record.
    pub fn request_stop(
        &self,
        run_id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<StopRequest, ReviewError> {
        if by.is_agent() || !by.role().can_operate() {
            return Err(ReviewError::Forbidden {
                who: by.name().to_string(),
                role: by.role().to_string(),
                what: "stop runs",
            });
        }
        if run_id.is_empty() || run_id.len() > 128 {
            return Err(ReviewError::invalid("a run id must be 1 to 128 characters"));
        }
        let reason = clean_reason(reason)?;
        if reason.is_empty() {
            return Err(ReviewError::invalid("a stop needs a reason"));
        }
        let now = now_ms();
        self.write(|tx| {
            tx.execute(
                "INSERT OR IGNORE INTO stops (run_id, requested_by, reason, requested_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![run_id, by.name(), reason, to_i64(now)?],
            )
            .map_err(sql)?;
            let stop = stop_in(tx, "stops", run_id)?
                .ok_or_else(|| ReviewError::Corrupt("stop vanished after insert".into()))?;
            tx.execute(
                "UPDATE requests SET status = 'cancelled', decided_by = ?2, decided_ms = ?3,
                     reason = ?4
                 WHERE run_id = ?1 AND status = 'pending'",
                params![
                    run_id,
                    stop.requested_by,
                    to_i64(now)?,
                    format!("run stopped: {}", stop.reason)
                ],
            )
            .map_err(sql)?;
            Ok(stop)
        })
    }

    /// The stop on record for a run, if any.
    pub fn stop_request(&self, run_id: &str) -> Result<Option<StopRequest>, ReviewError> {
        self.read(|tx| stop_in(tx, "stops", run_id))
    }

    /// Lets a stopped, frozen run be torn down before its freeze time is up. Only after a stop;
    /// the first release wins.
    pub fn request_release(
        &self,
        run_id: &str,
        by: &Principal,
        reason: &str,
    ) -> Result<StopRequest, ReviewError> {
        if by.is_agent() || !by.role().can_operate() {
            return Err(ReviewError::Forbidden {
                who: by.name().to_string(),
                role: by.role().to_string(),
                what: "release frozen runs",
            });
        }
        let reason = clean_reason(reason)?;
        let reason = if reason.is_empty() {
            "inspection finished".to_string()
        } else {
            reason
        };
        let now = now_ms();
        self.write(|tx| {
            if stop_in(tx, "stops", run_id)?.is_none() {
                return Err(ReviewError::invalid(format!(
                    "run `{}` was not stopped, so there is nothing to release",
                    clip(run_id)
                )));
            }
            tx.execute(
                "INSERT OR IGNORE INTO releases (run_id, requested_by, reason, requested_ms)
                 VALUES (?1, ?2, ?3, ?4)",
                params![run_id, by.name(), reason, to_i64(now)?],
            )
            .map_err(sql)?;
            stop_in(tx, "releases", run_id)?
                .ok_or_else(|| ReviewError::Corrupt("release vanished after insert".into()))
        })
    }

    /// The release on record for a run, if any.
    pub fn release_request(&self, run_id: &str) -> Result<Option<StopRequest>, ReviewError> {
        self.read(|tx| stop_in(tx, "releases", run_id))
    }

    // ---- reviewer accounts ---------------------------------------------------------------

    /// Adds a reviewer with an Argon2id hash of `password`.
    pub fn add_reviewer(&self, name: &str, role: Role, password: &str) -> Result<(), ReviewError> {
        validate_name(name)?;
        secret::check_password_policy(password)?;
        let hash = secret::hash_password(password)?;
        let now = to_i64(now_ms())?;
        self.write(|tx| {
            let inserted = tx
                .execute(
                    "INSERT OR IGNORE INTO reviewers (name, role, password_hash, created_ms,
                         updated_ms)
                     VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![name, role.as_str(), hash, now],
                )
                .map_err(sql)?;
            if inserted == 0 {
                return Err(ReviewError::ReviewerExists(name.to_string()));
            }
            Ok(())
        })
    }

    /// Replaces a reviewer's password.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), ReviewError> {
        secret::check_password_policy(password)?;
        let hash = secret::hash_password(password)?;
        let now = to_i64(now_ms())?;
        self.write(|tx| {
            let n = tx
                .execute(
                    "UPDATE reviewers SET password_hash = ?2, updated_ms = ?3 WHERE name = ?1",
                    params![name, hash, now],
                )
                .map_err(sql)?;
            if n == 0 {
                return Err(ReviewError::UnknownReviewer(clip(name)));
            }
            Ok(())
        })
    }

    /// Changes a reviewer's role; refuses to demote the last operator.
    pub fn set_role(&self, name: &str, role: Role) -> Result<(), ReviewError> {
        let now = to_i64(now_ms())?;
        self.write(|tx| {
            let current =
                role_in(tx, name)?.ok_or_else(|| ReviewError::UnknownReviewer(clip(name)))?;
            if current == Role::Operator && role != Role::Operator && operators_in(tx)? <= 1 {
                return Err(ReviewError::LastOperator(name.to_string()));
            }
            tx.execute(
                "UPDATE reviewers SET role = ?2, updated_ms = ?3 WHERE name = ?1",
                params![name, role.as_str(), now],
            )
            .map_err(sql)?;
            Ok(())
        })
    }

    /// Removes a reviewer and their tokens; refuses to remove the last operator.
    pub fn remove_reviewer(&self, name: &str) -> Result<(), ReviewError> {
        self.write(|tx| {
            let current =
                role_in(tx, name)?.ok_or_else(|| ReviewError::UnknownReviewer(clip(name)))?;
            if current == Role::Operator && operators_in(tx)? <= 1 {
                return Err(ReviewError::LastOperator(name.to_string()));
            }
            tx.execute("DELETE FROM reviewers WHERE name = ?1", params![name])
                .map_err(sql)?;
            Ok(())
        })
    }

    /// All reviewers, by name.
    pub fn reviewers(&self) -> Result<Vec<ReviewerInfo>, ReviewError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT r.name, r.role, r.created_ms,
                            (SELECT count(*) FROM tokens t WHERE t.reviewer = r.name)
                     FROM reviewers r ORDER BY r.name",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, i64>(2)?,
                        r.get::<_, i64>(3)?,
                    ))
                })
                .map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                let (name, role, created, tokens) = row.map_err(sql)?;
                out.push(ReviewerInfo {
                    name,
                    role: parse_role(&role)?,
                    created_ms: to_u64(created)?,
                    tokens: to_u64(tokens)?,
                });
            }
            Ok(out)
        })
    }

    /// The reviewer as they stand now (role changes and removals take effect at once).
    pub fn principal(&self, name: &str) -> Result<Option<Principal>, ReviewError> {
        self.read(|tx| {
            Ok(role_in(tx, name)?.map(|role| Principal::reviewer(name.to_string(), role)))
        })
    }

    /// Checks a name and password. Unknown names cost as much time as wrong passwords, and
    /// both give the same error.
    pub fn authenticate_password(
        &self,
        name: &str,
        password: &str,
    ) -> Result<Principal, ReviewError> {
        let stored = self.read(|tx| {
            tx.query_row(
                "SELECT password_hash, role FROM reviewers WHERE name = ?1",
                params![name],
                |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
            )
            .optional()
            .map_err(sql)
        })?;
        // The slow hash runs without holding the connection.
        match stored {
            Some((hash, role)) if secret::verify_password(password, &hash) => {
                Ok(Principal::reviewer(name.to_string(), parse_role(&role)?))
            }
            Some(_) => Err(ReviewError::BadCredentials),
            None => {
                secret::burn_verification(password);
                Err(ReviewError::BadCredentials)
            }
        }
    }

    // ---- API tokens ----------------------------------------------------------------------

    /// Issues a bearer token for a reviewer. The token is returned once; only its SHA-256 is
    /// kept.
    pub fn issue_token(
        &self,
        reviewer: &str,
        label: &str,
    ) -> Result<(TokenInfo, String), ReviewError> {
        let label = label.trim();
        if label.chars().count() > 100 || label.chars().any(char::is_control) {
            return Err(ReviewError::invalid(
                "a token label must be at most 100 characters with no control characters",
            ));
        }
        let token = secret::new_api_token()?;
        let digest = secret::token_digest(&token);
        let id = format!("tok-{}", secret::random_token(6)?);
        let now = now_ms();
        self.write(|tx| {
            if role_in(tx, reviewer)?.is_none() {
                return Err(ReviewError::UnknownReviewer(clip(reviewer)));
            }
            tx.execute(
                "INSERT INTO tokens (digest, id, reviewer, label, created_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
                params![digest, id, reviewer, label, to_i64(now)?],
            )
            .map_err(sql)?;
            Ok(())
        })?;
        Ok((
            TokenInfo {
                id,
                reviewer: reviewer.to_string(),
                label: label.to_string(),
                created_ms: now,
                last_used_ms: None,
            },
            token,
        ))
    }

    /// The reviewer a bearer token belongs to, as they stand now.
    pub fn authenticate_token(&self, token: &str) -> Result<Principal, ReviewError> {
        if !token.starts_with(secret::TOKEN_PREFIX) || token.len() > 200 {
            return Err(ReviewError::BadCredentials);
        }
        let digest = secret::token_digest(token);
        let now = to_i64(now_ms())?;
        self.write(|tx| {
            let found = tx
                .query_row(
                    "SELECT r.name, r.role FROM tokens t JOIN reviewers r ON r.name = t.reviewer
                     WHERE t.digest = ?1",
                    params![digest],
                    |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)),
                )
                .optional()
                .map_err(sql)?;
            let Some((name, role)) = found else {
                return Err(ReviewError::BadCredentials);
            };
            tx.execute(
                "UPDATE tokens SET last_used_ms = ?2 WHERE digest = ?1",
                params![digest, now],
            )
            .map_err(sql)?;
            Ok(Principal::reviewer(name, parse_role(&role)?))
        })
    }

    /// Tokens, optionally of one reviewer.
    pub fn tokens(&self, reviewer: Option<&str>) -> Result<Vec<TokenInfo>, ReviewError> {
        self.read(|tx| {
            let mut stmt = tx
                .prepare(
                    "SELECT id, reviewer, label, created_ms, last_used_ms FROM tokens
                     WHERE ?1 IS NULL OR reviewer = ?1 ORDER BY created_ms",
                )
                .map_err(sql)?;
            let rows = stmt
                .query_map(params![reviewer], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<i64>>(4)?,
                    ))
                })
                .map_err(sql)?;
            let mut out = Vec::new();
            for row in rows {
                let (id, reviewer, label, created, used) = row.map_err(sql)?;
                out.push(TokenInfo {
                    id,
                    reviewer,
                    label,
                    created_ms: to_u64(created)?,
                    last_used_ms: used.map(to_u64).transpose()?,
                });
            }
            Ok(out)
        })
    }

    /// Revokes a token by its public id; returns whether it existed.
    pub fn revoke_token(&self, id: &str) -> Result<bool, ReviewError> {
        self.write(|tx| {
            Ok(tx
                .execute("DELETE FROM tokens WHERE id = ?1", params![id])
                .map_err(sql)?
                == 1)
        })
    }
}

const REQUEST_COLUMNS: &str =
    "id, run_id, step, agent, details, created_ms, expires_ms, status, decided_by, decided_ms, \
     reason";

struct RequestRow {
    id: String,
    run_id: String,
    step: i64,
    agent: String,
    details: String,
    created_ms: i64,
    expires_ms: i64,
    status: String,
    decided_by: Option<String>,
    decided_ms: Option<i64>,
    reason: Option<String>,
}

impl RequestRow {
    fn read(r: &Row<'_>) -> rusqlite::Result<RequestRow> {
        Ok(RequestRow {
            id: r.get(0)?,
            run_id: r.get(1)?,
            step: r.get(2)?,
            agent: r.get(3)?,
            details: r.get(4)?,
            created_ms: r.get(5)?,
            expires_ms: r.get(6)?,
            status: r.get(7)?,
            decided_by: r.get(8)?,
            decided_ms: r.get(9)?,
            reason: r.get(10)?,
        })
    }

    fn into_request(self, now: u64) -> Result<QueuedRequest, ReviewError> {
        let details: RequestDetails = serde_json::from_str(&self.details).map_err(|_| {
            ReviewError::Corrupt(format!("request `{}` has unreadable details", self.id))
        })?;
        let stored = RequestStatus::parse(&self.status).ok_or_else(|| {
            ReviewError::Corrupt(format!("request `{}` has an unknown status", self.id))
        })?;
        let expires_ms = to_u64(self.expires_ms)?;
        let status = if stored == RequestStatus::Pending && expires_ms <= now {
            RequestStatus::Expired
        } else {
            stored
        };
        Ok(QueuedRequest {
            step: u32::try_from(self.step)
                .map_err(|_| ReviewError::Corrupt(format!("request `{}` step", self.id)))?,
            id: self.id,
            run_id: self.run_id,
            agent: self.agent,
            details,
            created_ms: to_u64(self.created_ms)?,
            expires_ms,
            status,
            decided_by: self.decided_by,
            decided_ms: self.decided_ms.map(to_u64).transpose()?,
            decision_reason: self.reason,
        })
    }
}

fn get_in(tx: &Transaction<'_>, id: &str, now: u64) -> Result<Option<QueuedRequest>, ReviewError> {
    tx.query_row(
        &format!("SELECT {REQUEST_COLUMNS} FROM requests WHERE id = ?1"),
        params![id],
        RequestRow::read,
    )
    .optional()
    .map_err(sql)?
    .map(|row| row.into_request(now))
    .transpose()
}

/// The reason Airlock gives when nobody decided in time.
pub(crate) fn expiry_reason(r: &QueuedRequest) -> String {
    let secs = r.expires_ms.saturating_sub(r.created_ms) / 1000;
    format!("approval request expired after {secs} s")
}

fn mark_expired(tx: &Transaction<'_>, r: &QueuedRequest, now: u64) -> Result<(), ReviewError> {
    tx.execute(
        "UPDATE requests SET status = 'expired', decided_by = 'airlock', decided_ms = ?2,
             reason = ?3
         WHERE id = ?1 AND status = 'pending'",
        params![r.id, to_i64(now)?, expiry_reason(r)],
    )
    .map_err(sql)?;
    Ok(())
}

/// A row of `stops` or `releases` (same shape).
fn stop_in(
    tx: &Transaction<'_>,
    table: &'static str,
    run_id: &str,
) -> Result<Option<StopRequest>, ReviewError> {
    tx.query_row(
        &format!(
            "SELECT run_id, requested_by, reason, requested_ms FROM {table} WHERE run_id = ?1"
        ),
        params![run_id],
        |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
            ))
        },
    )
    .optional()
    .map_err(sql)?
    .map(|(run_id, requested_by, reason, ms)| {
        Ok(StopRequest {
            run_id,
            requested_by,
            reason,
            requested_ms: to_u64(ms)?,
        })
    })
    .transpose()
}

fn role_in(tx: &Transaction<'_>, name: &str) -> Result<Option<Role>, ReviewError> {
    tx.query_row(
        "SELECT role FROM reviewers WHERE name = ?1",
        params![name],
        |r| r.get::<_, String>(0),
    )
    .optional()
    .map_err(sql)?
    .map(|r| parse_role(&r))
    .transpose()
}

fn operators_in(tx: &Transaction<'_>) -> Result<i64, ReviewError> {
    tx.query_row(
        "SELECT count(*) FROM reviewers WHERE role = 'operator'",
        [],
        |r| r.get(0),
    )
    .map_err(sql)
}

fn parse_role(s: &str) -> Result<Role, ReviewError> {
    s.parse()
        .map_err(|_| ReviewError::Corrupt("a reviewer has an unknown role".into()))
}

/// Trims, refuses control characters other than newlines and tabs, bounds the length.
fn clean_reason(reason: &str) -> Result<String, ReviewError> {
    let reason = reason.trim();
    if reason.chars().count() > MAX_REASON_CHARS {
        return Err(ReviewError::invalid(format!(
            "a reason must be at most {MAX_REASON_CHARS} characters"
        )));
    }
    if reason
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(ReviewError::invalid(
            "a reason must not contain control characters",
        ));
    }
    Ok(reason.replace("\r\n", "\n"))
}

#[cfg(unix)]
fn restrict_permissions(path: &Path) -> Result<(), ReviewError> {
    use std::os::unix::fs::PermissionsExt;
    // It holds password hashes: readable by its owner only (SQLite gives the -wal and -shm
    // files the same mode).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(|source| {
        ReviewError::Io {
            context: format!("restricting permissions of {}", path.display()),
            source,
        }
    })
}

#[cfg(not(unix))]
fn restrict_permissions(_: &Path) -> Result<(), ReviewError> {
    Ok(())
}

/// Maps a SQLite error; SQLite's messages name tables and constraints, never bound values.
fn sql(e: rusqlite::Error) -> ReviewError {
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => ReviewError::Busy,
        _ => ReviewError::Sqlite(e.to_string()),
    }
}

fn to_i64(n: u64) -> Result<i64, ReviewError> {
    i64::try_from(n).map_err(|_| ReviewError::Corrupt(format!("number {n} out of range")))
}

fn to_u64(n: i64) -> Result<u64, ReviewError> {
    u64::try_from(n).map_err(|_| ReviewError::Corrupt(format!("stored number {n} is negative")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn details(run: &str, step: u32) -> RequestDetails {
        RequestDetails {
            run_id: run.into(),
            step,
            task: "add a note".into(),
            summary: "Click button 'Submit note' on incidents.example/incidents/INC-2048".into(),
            effect: "submit".into(),
            tier: "high".into(),
            reason: "submits a form".into(),
            rules: vec!["builtin.risk.submit".into()],
            fields: vec![("note".into(), "hello".into())],
            findings: vec![],
            read_as: None,
        }
    }

    fn store() -> (tempfile::TempDir, ReviewStore) {
        let dir = tempfile::tempdir().unwrap();
        let s = ReviewStore::open(dir.path()).unwrap();
        (dir, s)
    }

    fn alice() -> Principal {
        Principal::custom("alice", Role::Reviewer).unwrap()
    }

    #[test]
    fn submitted_requests_are_pending_under_the_agent_identity() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 3), Duration::from_secs(60))
            .unwrap();
        assert_eq!(r.status, RequestStatus::Pending);
        assert_eq!(r.agent, "agent:run-1");
        assert_eq!(r.details, details("run-1", 3));
        assert!(r.remaining_ms(now_ms()) > 50_000);
        assert_eq!(s.pending().unwrap(), vec![r.clone()]);
        assert_eq!(s.for_run("run-1").unwrap().len(), 1);
        assert!(s.for_run("run-2").unwrap().is_empty());
    }

    #[test]
    fn a_decision_is_final_and_names_the_reviewer() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        let done = s
            .decide(
                &r.id,
                Some("run-1"),
                &alice(),
                Decision::Approve,
                " looks right ",
            )
            .unwrap();
        assert_eq!(done.status, RequestStatus::Approved);
        assert_eq!(done.decided_by.as_deref(), Some("alice"));
        assert_eq!(done.decision_reason.as_deref(), Some("looks right"));
        let again = s.decide(&r.id, None, &alice(), Decision::Deny, "changed my mind");
        assert!(
            matches!(again, Err(ReviewError::AlreadyDecided { .. })),
            "{again:?}"
        );
        assert!(s.pending().unwrap().is_empty());
    }

    #[test]
    fn the_schema_refuses_edits_of_decided_requests_and_agent_deciders() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        let conn = s.lock();
        let by_agent = conn.execute(
            "UPDATE requests SET status = 'approved', decided_by = 'Agent:run-9' WHERE id = ?1",
            params![r.id],
        );
        assert!(by_agent.is_err(), "an agent decider must violate the CHECK");
        conn.execute(
            "UPDATE requests SET status = 'denied', decided_by = 'bob' WHERE id = ?1",
            params![r.id],
        )
        .unwrap();
        let rewrite = conn.execute(
            "UPDATE requests SET status = 'approved' WHERE id = ?1",
            params![r.id],
        );
        assert!(rewrite.is_err(), "decisions are final");
        assert!(conn.execute("DELETE FROM requests", []).is_err());
    }

    #[test]
    fn denials_need_a_reason_and_approvals_get_a_default() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        assert!(s
            .decide(&r.id, None, &alice(), Decision::Deny, "  ")
            .is_err());
        assert!(s
            .decide(&r.id, None, &alice(), Decision::Deny, "a\u{7}b")
            .is_err());
        let ok = s
            .decide(&r.id, None, &alice(), Decision::Approve, "")
            .unwrap();
        assert_eq!(
            ok.decision_reason.as_deref(),
            Some("approved without a comment")
        );
    }

    #[test]
    fn viewers_and_agents_cannot_decide() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        let viewer = Principal::custom("vera", Role::Viewer).unwrap();
        assert!(matches!(
            s.decide(&r.id, None, &viewer, Decision::Approve, "ok"),
            Err(ReviewError::Forbidden { .. })
        ));
        assert!(matches!(
            s.decide(
                &r.id,
                None,
                &Principal::agent("run-1"),
                Decision::Approve,
                "ok"
            ),
            Err(ReviewError::SelfApproval(_))
        ));
        // An agent with an operator role is still an agent.
        let other = Principal::custom("agent:run-2", Role::Operator).unwrap();
        assert!(matches!(
            s.decide(&r.id, None, &other, Decision::Approve, "ok"),
            Err(ReviewError::AgentCannotDecide(_))
        ));
        assert_eq!(
            s.get(&r.id).unwrap().unwrap().status,
            RequestStatus::Pending
        );
    }

    #[test]
    fn a_decision_naming_another_run_is_refused() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-a", 1), Duration::from_secs(60))
            .unwrap();
        let e = s.decide(&r.id, Some("run-b"), &alice(), Decision::Approve, "ok");
        assert!(matches!(e, Err(ReviewError::WrongRun { .. })), "{e:?}");
        assert!(s.get(&r.id).unwrap().unwrap().is_open());
    }

    #[test]
    fn expired_requests_cannot_be_decided() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_millis(0))
            .unwrap();
        assert_eq!(r.status, RequestStatus::Expired);
        assert!(s.pending().unwrap().is_empty());
        let e = s.decide(&r.id, None, &alice(), Decision::Approve, "late");
        assert!(matches!(e, Err(ReviewError::Expired(_))), "{e:?}");
        let stored = s.get(&r.id).unwrap().unwrap();
        assert_eq!(stored.decided_by.as_deref(), Some("airlock"));
        assert!(stored
            .decision_reason
            .unwrap()
            .contains("expired after 0 s"));
    }

    #[test]
    fn stops_are_for_operators_and_cancel_pending_requests() {
        let (_d, s) = store();
        let r = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        assert!(s.request_stop("run-1", &alice(), "no").is_err());
        let op = Principal::custom("olga", Role::Operator).unwrap();
        assert!(s.request_stop("run-1", &op, " ").is_err());
        let stop = s.request_stop("run-1", &op, "wrong incident").unwrap();
        assert_eq!(stop.requested_by, "olga");
        let second = s
            .request_stop(
                "run-1",
                &Principal::terminal(&airlock_engine::account::OsAccount::current()),
                "again",
            )
            .unwrap();
        assert_eq!(second, stop, "the first stop wins");
        let cancelled = s.get(&r.id).unwrap().unwrap();
        assert_eq!(cancelled.status, RequestStatus::Cancelled);
        assert_eq!(cancelled.decided_by.as_deref(), Some("olga"));
        assert!(s.stop_request("run-2").unwrap().is_none());
    }

    #[test]
    fn a_crashed_runs_pending_requests_are_cancelled_and_cannot_be_approved() {
        let (_d, s) = store();
        let open = s
            .submit(&details("run-1", 1), Duration::from_secs(60))
            .unwrap();
        let other = s
            .submit(&details("run-2", 1), Duration::from_secs(60))
            .unwrap();
        assert_eq!(s.cancel_orphaned("run-1").unwrap(), vec![open.id.clone()]);
        assert!(s.cancel_orphaned("run-1").unwrap().is_empty());
        let stored = s.get(&open.id).unwrap().unwrap();
        assert_eq!(stored.status, RequestStatus::Cancelled);
        assert_eq!(stored.decided_by.as_deref(), Some("airlock:recovery"));
        let e = s.decide(&open.id, None, &alice(), Decision::Approve, "late");
        assert!(
            matches!(e, Err(ReviewError::AlreadyDecided { .. })),
            "{e:?}"
        );
        assert!(s.get(&other.id).unwrap().unwrap().is_open());
    }

    #[test]
    fn only_a_stopped_run_can_be_released_and_only_by_an_operator() {
        let (_d, s) = store();
        let op = Principal::custom("olga", Role::Operator).unwrap();
        assert!(
            s.request_release("run-1", &op, "done").is_err(),
            "not stopped"
        );
        s.request_stop("run-1", &op, "wrong incident").unwrap();
        assert!(s.request_release("run-1", &alice(), "done").is_err());
        let r = s.request_release("run-1", &op, "").unwrap();
        assert_eq!(r.requested_by, "olga");
        assert_eq!(r.reason, "inspection finished");
        assert_eq!(s.release_request("run-1").unwrap(), Some(r));
        assert!(s.release_request("run-2").unwrap().is_none());
    }

    #[test]
    fn reviewers_authenticate_with_passwords_and_tokens() {
        let (_d, s) = store();
        s.add_reviewer("alice", Role::Reviewer, "correct horse battery")
            .unwrap();
        assert!(matches!(
            s.add_reviewer("alice", Role::Viewer, "another long password"),
            Err(ReviewError::ReviewerExists(_))
        ));
        assert!(s.add_reviewer("bob", Role::Viewer, "short").is_err());
        assert!(s
            .add_reviewer("agent:x", Role::Viewer, "long enough password")
            .is_err());
        let p = s
            .authenticate_password("alice", "correct horse battery")
            .unwrap();
        assert_eq!((p.name(), p.role()), ("alice", Role::Reviewer));
        assert!(matches!(
            s.authenticate_password("alice", "wrong horse battery"),
            Err(ReviewError::BadCredentials)
        ));
        assert!(matches!(
            s.authenticate_password("nobody", "correct horse battery"),
            Err(ReviewError::BadCredentials)
        ));
        let (info, token) = s.issue_token("alice", "ci bot").unwrap();
        assert_eq!(s.authenticate_token(&token).unwrap().name(), "alice");
        assert!(s.authenticate_token("alk_forged").is_err());
        // Nothing secret is stored in the clear.
        let conn = s.lock();
        let stored: String = conn
            .query_row("SELECT group_concat(digest) FROM tokens", [], |r| r.get(0))
            .unwrap();
        let pw: String = conn
            .query_row("SELECT password_hash FROM reviewers", [], |r| r.get(0))
            .unwrap();
        drop(conn);
        assert!(!stored.contains(&token));
        assert!(!pw.contains("correct horse"));
        assert_eq!(s.tokens(Some("alice")).unwrap()[0].id, info.id);
        assert!(s.revoke_token(&info.id).unwrap());
        assert!(s.authenticate_token(&token).is_err());
    }

    #[test]
    fn role_changes_apply_at_once_and_the_last_operator_stays() {
        let (_d, s) = store();
        s.add_reviewer("olga", Role::Operator, "operator password")
            .unwrap();
        s.add_reviewer("alice", Role::Reviewer, "reviewer password")
            .unwrap();
        assert!(matches!(
            s.set_role("olga", Role::Viewer),
            Err(ReviewError::LastOperator(_))
        ));
        assert!(matches!(
            s.remove_reviewer("olga"),
            Err(ReviewError::LastOperator(_))
        ));
        s.set_role("alice", Role::Viewer).unwrap();
        assert_eq!(s.principal("alice").unwrap().unwrap().role(), Role::Viewer);
        let (_, token) = s.issue_token("alice", "").unwrap();
        s.remove_reviewer("alice").unwrap();
        assert!(s.principal("alice").unwrap().is_none());
        assert!(
            s.authenticate_token(&token).is_err(),
            "tokens go with their reviewer"
        );
        assert_eq!(s.reviewers().unwrap().len(), 1);
    }

    #[cfg(unix)]
    #[test]
    fn the_database_is_private_to_its_owner() {
        use std::os::unix::fs::PermissionsExt;
        let (_d, s) = store();
        let mode = std::fs::metadata(s.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0);
    }
}
