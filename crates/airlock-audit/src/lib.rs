//! Airlock's audit store: hash-chained, append-only events and content-addressed blobs.
//!
//! The store knows nothing of what events mean: kinds are opaque strings and payloads opaque
//! JSON. What it guarantees is evidence:
//!
//! * **Write-ahead.** [`AuditStore::append`] returns only once the event is committed and
//!   fsynced, and returns an error if it could not be made durable, so the engine can record a
//!   proposal and its decision before the action runs.
//! * **Tamper evidence.** Each run is a hash chain (see [`chain`] for the exact encoding).
//!   [`AuditStore::verify`] recomputes it from the stored rows and blobs and says in plain words
//!   what was edited, deleted, reordered or truncated.
//!
//! [`SqliteStore`] keeps everything under one home directory: `HOME/airlock.db` and
//! `HOME/blobs/ab/cdef…`. The [`AuditStore`] trait is what the rest of Airlock should depend on.

pub mod blob;
pub mod chain;
mod error;
mod sqlite;

use serde::{Deserialize, Serialize};

pub use blob::BlobRef;
pub use chain::{ChainState, Problem, VerifyReport, KIND_RUN_STARTED, KIND_SEALED};
pub use error::AuditError;
pub use sqlite::{
    SqliteStore, BLOB_DIR, DB_FILE, DEFAULT_BUSY_TIMEOUT, FAULT_KILL_AFTER_EVENT_ENV,
};

/// Identifies an event that was durably recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventRef {
    pub seq: u64,
    pub hash: String,
}

/// One recorded event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub run_id: String,
    pub seq: u64,
    pub ts_ms: u64,
    pub kind: String,
    pub payload: serde_json::Value,
    pub blobs: Vec<BlobRef>,
    pub prev_hash: String,
    pub hash: String,
}

/// A run as listed by [`AuditStore::runs`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub run_id: String,
    pub created_ms: u64,
    pub task: serde_json::Value,
    /// Mutable status (not part of the chain), e.g. `"running"`; `"sealed"` once sealed.
    pub status: String,
    /// The outcome given to [`AuditStore::seal`], once sealed.
    pub outcome: Option<serde_json::Value>,
    pub head_seq: u64,
    pub head_hash: String,
    pub sealed: bool,
}

/// Status a run has after [`AuditStore::begin_run`], until someone sets another.
pub const STATUS_CREATED: &str = "created";
/// Status a run has after [`AuditStore::seal`]; it cannot be changed afterwards.
pub const STATUS_SEALED: &str = "sealed";

/// An append-only, tamper-evident record of runs.
///
/// Run ids are 1–128 characters from `A-Z a-z 0-9 . _ : -`. Kinds and statuses are 1–64
/// characters with no control characters; the kinds [`KIND_RUN_STARTED`] and [`KIND_SEALED`]
/// are written only by the store itself.
pub trait AuditStore: Send + Sync {
    /// Creates the run and its first event (kind [`KIND_RUN_STARTED`], payload `task`).
    fn begin_run(&self, run_id: &str, task: &serde_json::Value) -> Result<EventRef, AuditError>;

    /// [`AuditStore::begin_run`] with the run's status set in the same transaction, so a crash
    /// can never leave a run that exists without its owner (crash recovery finds runs by their
    /// `running pid=… start=…` status). Stores that cannot do it atomically fall back to two
    /// writes.
    fn begin_run_with_status(
        &self,
        run_id: &str,
        task: &serde_json::Value,
        status: &str,
    ) -> Result<EventRef, AuditError> {
        let r = self.begin_run(run_id, task)?;
        self.set_status(run_id, status)?;
        Ok(r)
    }

    /// Appends an event and returns once it is durable. `blobs` must already be stored (see
    /// [`AuditStore::put_blob`]).
    fn append(
        &self,
        run_id: &str,
        kind: &str,
        payload: &serde_json::Value,
        blobs: &[BlobRef],
    ) -> Result<EventRef, AuditError>;

    /// Stores bytes durably under their SHA-256; storing the same bytes twice is a no-op.
    fn put_blob(&self, bytes: &[u8]) -> Result<BlobRef, AuditError>;

    /// Reads a blob, checking its content against its name.
    fn get_blob(&self, blob: &BlobRef) -> Result<Vec<u8>, AuditError>;

    /// Sets the run's mutable status (not part of the chain). Fails once the run is sealed.
    fn set_status(&self, run_id: &str, status: &str) -> Result<(), AuditError>;

    /// Appends the final event (kind [`KIND_SEALED`], payload `outcome`) and marks the run
    /// sealed, all in one transaction. Nothing can be appended afterwards.
    fn seal(&self, run_id: &str, outcome: &serde_json::Value) -> Result<EventRef, AuditError>;

    /// A run's events in order.
    fn events(&self, run_id: &str) -> Result<Vec<Event>, AuditError>;

    /// All runs, newest first.
    fn runs(&self) -> Result<Vec<RunSummary>, AuditError>;

    /// The id of the newest run, if any.
    fn latest_run(&self) -> Result<Option<String>, AuditError>;

    /// Recomputes the run's chain from the raw stored rows and checks every referenced blob.
    fn verify(&self, run_id: &str) -> Result<VerifyReport, AuditError>;
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

pub(crate) fn validate_run_id(run_id: &str) -> Result<(), AuditError> {
    let ok = (1..=128).contains(&run_id.len())
        && run_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(AuditError::InvalidInput(
            "a run id must be 1 to 128 characters from A-Z a-z 0-9 . _ : -",
        ))
    }
}

fn is_label(s: &str) -> bool {
    (1..=64).contains(&s.len()) && !s.chars().any(char::is_control)
}

pub(crate) fn validate_kind(kind: &str) -> Result<(), AuditError> {
    if !is_label(kind) {
        return Err(AuditError::InvalidInput(
            "an event kind must be 1 to 64 characters with no control characters",
        ));
    }
    if kind == KIND_RUN_STARTED || kind == KIND_SEALED {
        return Err(AuditError::InvalidInput(
            "event kinds \"run_started\" and \"sealed\" are reserved for the audit store",
        ));
    }
    Ok(())
}

pub(crate) fn validate_status(status: &str) -> Result<(), AuditError> {
    if is_label(status) {
        Ok(())
    } else {
        Err(AuditError::InvalidInput(
            "a run status must be 1 to 64 characters with no control characters",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_ms_is_plausible() {
        // After 2020-01-01 and monotone enough for two calls in a row.
        let a = now_ms();
        assert!(a > 1_577_836_800_000);
        assert!(now_ms() >= a);
    }

    #[test]
    fn validation() {
        assert!(validate_run_id("2024-01-01T00:00:00Z_abc.1").is_ok());
        assert!(validate_run_id("").is_err());
        assert!(validate_run_id("a/b").is_err());
        assert!(validate_run_id("a b").is_err());
        assert!(validate_run_id(&"a".repeat(129)).is_err());
        assert!(validate_kind("proposal").is_ok());
        assert!(validate_kind("sealed").is_err());
        assert!(validate_kind("run_started").is_err());
        assert!(validate_kind("a\nb").is_err());
        assert!(validate_kind("").is_err());
        assert!(validate_status("running").is_ok());
        assert!(validate_status(&"x".repeat(65)).is_err());
    }
}
