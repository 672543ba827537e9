//! Airlock's execution boundary.
//!
//! This crate owns the disposable browser a run acts in and everything between it and the
//! world: Chromium started fresh per run (its own profile, an unprivileged user when Airlock is
//! root, the renderer sandbox on), driven over CDP on a pipe; the egress proxy that is its only
//! way out; observation capture; grounding of targets to exactly one element; and teardown that
//! leaves nothing behind and says so.
//!
//! It knows nothing of models or policy: it executes the actions it is handed. The engine only
//! hands it actions the gate allowed and the audit recorded.

pub mod browser;
pub mod cdp;
pub mod intercept;
mod js;
pub mod keys;
pub mod launch;
pub mod pool;
pub mod proxy;
pub mod snapshot;

pub use browser::{unsettled, BrowserSandbox, DocumentStatus, Resolved, SandboxConfig, HELD_NOTE};
pub use intercept::{GateAnswer, HeldRequest, InterceptRecord, RequestFacts, RequestGate};
pub use launch::{Isolation, TeardownReport};
pub use proxy::{EgressPolicy, EgressRecord, EgressScan, SecretLeak};

use airlock_core::Point;

/// Why a target could not be resolved to exactly one element. Every variant fails closed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum GroundingError {
    #[error("no element matches {0}")]
    NoMatch(String),
    #[error("{count} elements match {target}; refusing to guess")]
    Ambiguous { target: String, count: usize },
    #[error("ref `{0}` is not in the latest observation")]
    UnknownRef(String),
    #[error("selector `{0}` is not valid CSS")]
    BadSelector(String),
    #[error("nothing to act on at {0}")]
    NothingAtPoint(Point),
    #[error("point {0} is outside the viewport")]
    OutsideViewport(Point),
    #[error("{0} is not visible in the viewport")]
    NotVisible(String),
    #[error("{target} is covered by {by}; a click would not reach it")]
    Obscured { target: String, by: String },
    #[error("the element is gone from the page")]
    Gone,
    #[error("action needs a resolved target")]
    Unresolved,
}

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("cannot start the browser sandbox: {0}")]
    Launch(String),
    #[error(transparent)]
    Cdp(#[from] cdp::CdpError),
    #[error(transparent)]
    Grounding(#[from] GroundingError),
    #[error("target moved before dispatch: {0}")]
    Drift(String),
    #[error("navigation failed: {0}")]
    Navigation(String),
    #[error("page error: {0}")]
    Page(String),
    #[error("unsupported: {0}")]
    Unsupported(String),
    /// The browser crashed, died or stopped answering; the sandbox is unusable from here on and
    /// every later call fails at once with the same description of what was observed.
    #[error("browser fault: {0}")]
    Fault(String),
}
