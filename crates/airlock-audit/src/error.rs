//! The audit store's error type.
//!
//! Messages name runs, sequence numbers, blob hashes and file paths, never payload contents: an
//! error can end up in a log that is less protected than the audit store itself.

use std::path::Path;

/// Everything that can go wrong talking to an audit store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// A filesystem operation failed (creating the home, writing or reading a blob, ...).
    #[error("{context}: {source}")]
    Io {
        /// What the store was doing, including the path involved.
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The database reported an error other than being busy.
    #[error("audit database error: {0}")]
    Sqlite(String),
    /// Another connection held the database lock for longer than the busy timeout.
    #[error("audit database is locked by another process")]
    Busy,
    /// No run with this id exists (call `begin_run` first).
    #[error("unknown run `{0}`")]
    UnknownRun(String),
    /// `begin_run` was called with an id that is already taken.
    #[error("run `{0}` already exists")]
    RunExists(String),
    /// The run is sealed; nothing more can be appended and its status is final.
    #[error("run `{0}` is sealed; nothing more can be recorded")]
    Sealed(String),
    /// A blob is not in the store.
    #[error("blob {0} not found")]
    UnknownBlob(String),
    /// An argument was rejected before anything was written.
    #[error("invalid input: {0}")]
    InvalidInput(&'static str),
    /// Stored data is not what the store wrote (a blob whose content does not match its name, a
    /// row that does not decode). `verify` gives the full picture.
    #[error("audit store is corrupt: {0}")]
    Corrupt(String),
}

impl AuditError {
    pub(crate) fn io(what: &str, path: &Path, source: std::io::Error) -> Self {
        AuditError::Io {
            context: format!("{what} {}", path.display()),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_plain() {
        let e = AuditError::io(
            "creating audit home",
            Path::new("/x/y"),
            std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        );
        assert!(e.to_string().starts_with("creating audit home /x/y: "));
        assert_eq!(
            AuditError::Busy.to_string(),
            "audit database is locked by another process"
        );
        assert_eq!(
            AuditError::Sealed("r1".into()).to_string(),
            "run `r1` is sealed; nothing more can be recorded"
        );
    }
}
