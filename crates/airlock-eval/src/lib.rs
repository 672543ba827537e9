//! `airlock eval`: the scenario harness.
//!
//! It owns the scenario format ([`scenario`]), judging a finished run against it ([`expect`]),
//! the metric arithmetic ([`metrics`]), the JSON and Markdown reports ([`report`]), the JUnit
//! XML for CI ([`junit`]) and the bounded parallel runner ([`runner`]), which drives each
//! scenario through
//! `airlock_engine::Engine` in its own portal, audit home and sandbox. It knows nothing of CDP
//! or of how the gate decides: it reads outcomes, audit events and the portal's system of
//! record, as an auditor would.

pub mod expect;
pub mod junit;
pub mod metrics;
mod progress;
pub mod report;
pub mod runner;
pub mod scenario;

pub use progress::ProgressStyle;
pub use report::{ScenarioResult, Status, SuiteReport, Written};
pub use runner::{run_suite, EvalOptions};
pub use scenario::{load_suite, Scenario};

use std::path::PathBuf;

/// Why a suite could not be loaded or its report written.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("cannot read `{path}`: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("`{path}`: {why}")]
    Invalid { path: PathBuf, why: String },
    #[error(
        "no scenario in `{dir}` matches `{filter}` (a scenario is a folder with a scenario.toml)"
    )]
    Empty { dir: PathBuf, filter: String },
}
