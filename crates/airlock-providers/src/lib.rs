//! Model adapters: each turns a vendor's native computer-use tool call into Airlock's
//! provider-neutral [`Action`]s.
//!
//! This crate owns the wire formats (Anthropic's `computer` tool and toolset, later OpenAI and
//! Gemini) and the scripted transcripts that replay them. It knows nothing of sandboxes,
//! browsers or policy: a [`Proposal`] is only what the model *asked for*; the gate decides what
//! happens to it. Model output is untrusted input, so every parser here fails with an error,
//! never a panic, and converts coordinates only through [`CoordSpace::to_css`].
//!
//! [`CoordSpace::to_css`]: airlock_core::coords::CoordSpace::to_css

pub mod anthropic;
mod coords;
pub mod scripted;
pub mod text;

use airlock_core::coords::Viewport;
use airlock_core::{Action, Observation};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;

pub use anthropic::AnthropicParser;
pub use scripted::ScriptedProvider;

/// Everything a provider may use to propose the next batch of actions.
#[derive(Debug, Clone, Copy)]
pub struct ProposeContext<'a> {
    /// The operator's task goal, as written in the manifest.
    pub goal: &'a str,
    /// 1-based step number of the run.
    pub step: u32,
    /// What the host saw most recently. Page content in it is untrusted.
    pub observation: &'a Observation,
    /// The viewport in CSS pixels; screenshots are captured at this size.
    pub viewport: Viewport,
    /// What happened to each action of the previous batch, in order.
    pub feedback: &'a [StepFeedback],
}

/// What the host tells the model about one action of the last batch (for example a denial
/// reason). Never contains secrets: the engine builds it from gate and executor outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFeedback {
    pub ok: bool,
    pub message: String,
}

/// One model turn, parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The native payload exactly as the model sent it, for the audit log.
    pub raw: serde_json::Value,
    /// The actions to gate and run in order, stopping at the first failure. Never empty.
    pub actions: Vec<Action>,
    /// Where the proposal came from, for humans (`transcript line 4`, a response id).
    pub source: String,
}

/// Why a provider could not propose.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The model (or transcript) produced something that is not a valid action.
    ///
    /// `recoverable` is true when the payload was a well-formed call that Airlock declines
    /// (an unsupported action, a coordinate outside the screenshot): a live adapter can feed
    /// `reason` back to the model and let it try again. It is false when the payload does not
    /// follow the vendor's format at all, and always false for scripted transcripts, which
    /// cannot react to feedback.
    #[error("{at}: {reason}")]
    Malformed {
        at: String,
        reason: String,
        recoverable: bool,
    },
    /// The provider has nothing more to propose (a scripted transcript asked again after it
    /// already ended with its final `done` claim).
    #[error("the provider has nothing more to propose")]
    Exhausted,
    #[error("cannot read `{}`: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A request to the vendor's API failed (`status` is `None` when there was no response).
    #[error("provider request failed{}: {message}", status_suffix(.status))]
    Http {
        status: Option<u16>,
        message: String,
    },
}

fn status_suffix(status: &Option<u16>) -> String {
    status
        .map(|s| format!(" with status {s}"))
        .unwrap_or_default()
}

impl ProviderError {
    /// Whether the engine may feed the error back to the model and ask again.
    pub fn is_recoverable(&self) -> bool {
        matches!(
            self,
            ProviderError::Malformed {
                recoverable: true,
                ..
            }
        )
    }
}

/// A source of proposals: a live model behind an API, or a scripted transcript.
///
/// The engine is generic over `P: Provider` and calls [`Provider::propose`] once per step, with
/// the feedback of the previous batch. The returned future is `Send` so a run can live on a
/// multi-threaded runtime.
pub trait Provider: Send {
    /// A short name for logs and audit rows (`scripted`, `anthropic`).
    fn name(&self) -> &str;

    /// Proposes the next batch of actions.
    fn propose(
        &mut self,
        ctx: ProposeContext<'_>,
    ) -> impl Future<Output = Result<Proposal, ProviderError>> + Send;
}
