//! The review store's error type.
//!
//! Messages are shown to reviewers and written to logs: they name requests, runs and reviewers,
//! never passwords or tokens.

/// Everything that can go wrong with the approval queue, stop requests or reviewer accounts.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReviewError {
    /// The home directory could not be created.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
    /// The database reported an error other than being busy.
    #[error("review database error: {0}")]
    Sqlite(String),
    /// Another process held the database lock for longer than the busy timeout.
    #[error("review database is locked by another process")]
    Busy,
    /// Stored data is not what this crate wrote.
    #[error("review database is corrupt: {0}")]
    Corrupt(String),
    /// An argument was refused before anything was written.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// No approval request with this id.
    #[error("unknown approval request `{0}`")]
    UnknownRequest(String),
    /// The request belongs to a different run than the one the decision names.
    #[error("approval request `{id}` belongs to run `{actual}`, not `{claimed}`")]
    WrongRun {
        id: String,
        claimed: String,
        actual: String,
    },
    /// Someone already decided, it expired, or the run was stopped.
    #[error("approval request `{id}` is already {status}")]
    AlreadyDecided { id: String, status: String },
    /// The request's time ran out before this decision arrived.
    #[error("approval request `{0}` has expired")]
    Expired(String),
    /// The run's own agent tried to decide its own request.
    #[error("`{0}` is the agent that made this request and cannot decide it")]
    SelfApproval(String),
    /// An agent identity tried to decide someone's request.
    #[error("`{0}` is an agent identity; agents cannot decide approval requests")]
    AgentCannotDecide(String),
    /// The principal's role does not allow this.
    #[error("`{who}` has role {role}, which cannot {what}")]
    Forbidden {
        who: String,
        role: String,
        what: &'static str,
    },
    /// Wrong name or password, or an unknown or revoked token. Deliberately says no more.
    #[error("invalid credentials")]
    BadCredentials,
    /// A reviewer with this name already exists.
    #[error("reviewer `{0}` already exists")]
    ReviewerExists(String),
    /// No reviewer with this name.
    #[error("unknown reviewer `{0}`")]
    UnknownReviewer(String),
    /// Refused: it would leave nobody able to manage reviewers.
    #[error("`{0}` is the last operator; add another operator first")]
    LastOperator(String),
    /// Password hashing failed (never includes the password).
    #[error("password hashing failed: {0}")]
    Hash(String),
    /// The operating system's random number generator failed.
    #[error("no secure random numbers available: {0}")]
    Random(String),
}

impl ReviewError {
    pub(crate) fn invalid(msg: impl Into<String>) -> Self {
        ReviewError::InvalidInput(msg.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_lowercase_and_name_things_in_backticks() {
        let all = [
            ReviewError::UnknownRequest("apr-1".into()),
            ReviewError::SelfApproval("agent:run-1".into()),
            ReviewError::AgentCannotDecide("agent:run-2".into()),
            ReviewError::BadCredentials,
            ReviewError::Expired("apr-1".into()),
            ReviewError::WrongRun {
                id: "apr-1".into(),
                claimed: "run-b".into(),
                actual: "run-a".into(),
            },
        ];
        for e in all {
            let m = e.to_string();
            let first = m.chars().next().unwrap();
            assert!(!first.is_uppercase(), "{m}");
        }
        assert!(ReviewError::SelfApproval("agent:r".into())
            .to_string()
            .contains("`agent:r`"));
    }
}
