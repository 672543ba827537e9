//! Effects (what an action does to the world) and risk tiers (how much a human should care).

use serde::{Deserialize, Serialize};
use std::fmt;

/// What an action would do, classified from the resolved element and the request it would send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Look, scroll, navigate within the task's pages.
    Read,
    /// Change client-side state only: type into a field, expand a panel.
    Draft,
    /// Send credentials to log in (a form with a password field).
    Authenticate,
    /// Send a form that changes server state.
    Submit,
    /// Anything irreversible: delete, rerun, deploy, approve, transfer, publish.
    Destructive,
    /// Save a file from the page.
    Download,
}

impl Effect {
    pub const ALL: [Effect; 6] = [
        Effect::Read,
        Effect::Draft,
        Effect::Authenticate,
        Effect::Submit,
        Effect::Destructive,
        Effect::Download,
    ];

    pub fn as_str(&self) -> &'static str {
        match self {
            Effect::Read => "read",
            Effect::Draft => "draft",
            Effect::Authenticate => "authenticate",
            Effect::Submit => "submit",
            Effect::Destructive => "destructive",
            Effect::Download => "download",
        }
    }
}

impl fmt::Display for Effect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How much scrutiny an action gets: low runs, medium is checkpointed, high waits for a human.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RiskTier {
    Low,
    Medium,
    High,
}

impl fmt::Display for RiskTier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RiskTier::Low => "low",
            RiskTier::Medium => "medium",
            RiskTier::High => "high",
        })
    }
}
