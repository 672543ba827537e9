//! The gate's verdict on one proposed action, with the rules that produced it.

use crate::effect::{Effect, RiskTier};
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Execute.
    Allow,
    /// Execute, then re-observe and record a checkpoint before the next step.
    Checkpoint,
    /// Wait for a human (or the configured approval mode) before executing.
    NeedsApproval,
    /// Never execute; the reason goes back to the model.
    Deny,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Allow => "allow",
            Verdict::Checkpoint => "checkpoint",
            Verdict::NeedsApproval => "needs approval",
            Verdict::Deny => "deny",
        })
    }
}

/// A decision as recorded in the audit, before anything executes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub verdict: Verdict,
    pub effect: Effect,
    pub tier: RiskTier,
    /// Ids of the rules that decided, e.g. `builtin.effect.undeclared`.
    pub rules: Vec<String>,
    /// Plain words a reviewer (and the model, on denial) can understand.
    pub reason: String,
    /// Where the effect lands: `host/path` of the page or of the request a form would send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// When the target's name or the request's path holds characters a reviewer cannot see
    /// or would misread (zero-width, bidi, lookalikes of another script): what the page says,
    /// spelled out, and what Airlock read and classified. The page's text alone would hide why
    /// "Delete project" was treated as a delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read_as: Option<String>,
}

impl Decision {
    pub fn is_executable(&self) -> bool {
        matches!(self.verdict, Verdict::Allow | Verdict::Checkpoint)
    }
}
