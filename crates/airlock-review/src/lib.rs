//! Human review for Airlock: the approval queue, stop requests and reviewer accounts.
//!
//! This crate owns the *mutable* side of review, kept in `HOME/review.db` next to the
//! append-only audit (`HOME/airlock.db`). A run (`airlock run --approvals web`), the web UI
//! (`airlock serve`) and the terminal (`airlock approvals …`) are separate processes; they meet
//! only in this database, so every operation here is one short SQLite transaction that is safe to
//! run from several processes at once (WAL journal, busy timeout).
//!
//! What it guarantees:
//!
//! * **Accountability.** Every approval, denial and stop names the principal and a reason. The
//!   engine copies the answer (with `by`) into the hash-chained audit.
//! * **No self-approval.** A request carries the identity of the agent that made it
//!   (`agent:<run id>`); no principal named `agent:…` can decide any request, which the schema
//!   enforces as well as the code.
//! * **Fail closed.** An expired request, a stopped run, or a queue that cannot be read all
//!   answer *denied*.
//! * **Only hashes at rest.** Passwords are stored as Argon2id PHC strings, API tokens as
//!   SHA-256 digests of 256-bit random values.
//!
//! It knows nothing of HTTP, sessions or pages (that is `airlock-server`) and nothing of what an
//! action does (that is the engine and the policy).

mod approver;
mod error;
mod principal;
mod secret;
mod store;

pub use approver::{
    AnyApprover, QueueControl, WebApprover, DEFAULT_APPROVAL_TTL, DEFAULT_POLL_INTERVAL,
};
pub use error::ReviewError;
pub use principal::{agent_identity, is_agent_name, validate_name};
pub use principal::{Principal, Role, TERMINAL_AS_ENV};
pub use secret::{constant_time_eq, random_token, MIN_PASSWORD_CHARS};
pub use store::{
    Decision, QueuedRequest, RequestDetails, RequestStatus, ReviewStore, ReviewerInfo, StopRequest,
    TokenInfo, DEFAULT_BUSY_TIMEOUT, REVIEW_DB,
};
