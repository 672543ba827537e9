//! Model adapters: each turns a vendor's native computer-use tool call into Airlock's
//! provider-neutral [`Action`]s, and the host's feedback back into the vendor's reply format.
//!
//! This crate owns the wire formats (Anthropic Messages, OpenAI Responses, Gemini
//! generateContent, OpenAI-compatible chat completions for open models) and the scripted
//! transcripts that replay them. It knows nothing of sandboxes, browsers or policy: a
//! [`Proposal`] is only what the model *asked for*; the gate decides what happens to it. Model
//! output is untrusted input, so every parser here fails with an error, never a panic, and
//! converts coordinates only through [`CoordSpace::to_css`].
//!
//! Layout:
//! - pure parsers, no I/O: [`anthropic`], [`openai`], [`gemini`], [`compat`] (the open-model
//!   action grammar), with the shared [`mapping`] layer (keys, limits, scroll units) and
//!   [`image`] (screenshot scaling to each vendor's limits);
//! - live adapters over HTTP: [`live`] (one per vendor, behind [`Provider`]);
//! - [`scripted`] transcripts in all four formats, and [`record`] to write them from a live run;
//! - [`spec`]: `from_spec("anthropic:MODEL", …)` → [`AnyProvider`].
//!
//! [`CoordSpace::to_css`]: airlock_core::coords::CoordSpace::to_css

pub mod anthropic;
pub mod compat;
mod coords;
pub mod gemini;
pub mod image;
pub mod key;
pub mod live;
pub mod mapping;
pub mod openai;
pub mod record;
pub mod scripted;
pub mod spec;
pub mod text;
pub mod usage;

use airlock_core::coords::Viewport;
use airlock_core::{Action, Observation};
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::path::PathBuf;

pub use anthropic::AnthropicParser;
pub use key::ApiKey;
pub use live::{AnthropicProvider, CompatProvider, GeminiProvider, OpenAiProvider};
pub use record::{Recorder, Recording};
pub use scripted::ScriptedProvider;
pub use spec::{
    from_spec, from_spec_with_env, AnyProvider, CompatCoords, ProviderOptions, RunLimits,
};
pub use usage::{Price, PriceTable, Usage};

/// The exact text the engine (and the adapters) use for actions skipped after a failure in the
/// same batch; Anthropic's toolset requires it verbatim.
pub const NOT_EXECUTED: &str = "Not executed: an earlier computer action in this turn failed.";

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
    /// What happened to each action of the previous batch, in order (one entry per
    /// [`Proposal::actions`] element; missing trailing entries count as not executed). After a
    /// rejected proposal it holds one entry with the rejection.
    pub feedback: &'a [StepFeedback],
}

/// What the host tells the model about one action of the last batch (for example a denial
/// reason). Never contains secrets: the engine builds it from gate and executor outcomes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepFeedback {
    pub ok: bool,
    pub message: String,
    /// Ids of [`SafetySignal`]s of the previous proposal that a *human* approved. Only these
    /// are acknowledged to the vendor on the next request; the adapters never acknowledge a
    /// signal on their own.
    #[serde(default)]
    pub acknowledged_safety: Vec<String>,
}

impl StepFeedback {
    /// The action ran; `message` says what happened.
    pub fn ran(message: impl Into<String>) -> Self {
        StepFeedback {
            ok: true,
            message: message.into(),
            acknowledged_safety: Vec::new(),
        }
    }

    /// The action was refused or failed; `message` says why.
    pub fn failed(message: impl Into<String>) -> Self {
        StepFeedback {
            ok: false,
            message: message.into(),
            acknowledged_safety: Vec::new(),
        }
    }

    /// Adds the ids of safety signals a human approved before this action ran.
    pub fn with_acknowledged(mut self, ids: impl IntoIterator<Item = String>) -> Self {
        self.acknowledged_safety.extend(ids);
        self
    }
}

/// A vendor's own safety signal on a proposal (OpenAI `pending_safety_checks`, Gemini
/// `safety_decision: require_confirmation`). The engine must turn each into an approval request
/// that shows `message`, before running the action at `action_index`; only a human approval,
/// reported back through [`StepFeedback::acknowledged_safety`], makes the adapter acknowledge
/// it to the vendor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SafetySignal {
    /// Unique within the proposal; the vendor's id where it has one (OpenAI `cu_sc_…`).
    pub id: String,
    /// The vendor's code (`malicious_instructions`, `require_confirmation`, …).
    pub code: String,
    /// The vendor's explanation, to show to the human verbatim (untrusted model text).
    pub message: String,
    /// The first action of [`Proposal::actions`] the signal covers (the signal covers the whole
    /// vendor call that starts there); `None` covers the whole proposal.
    #[serde(default)]
    pub action_index: Option<usize>,
}

/// One model turn, parsed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Proposal {
    /// The native payload exactly as the model sent it, for the audit log. Live adapters tag it
    /// with `"provider"` (and `"frame"`, the screenshot size the coordinates refer to) so that
    /// the line replays as a scripted transcript line.
    pub raw: serde_json::Value,
    /// The actions to gate and run in order, stopping at the first failure. Never empty.
    pub actions: Vec<Action>,
    /// Where the proposal came from, for humans (`transcript line 4`, a response id).
    pub source: String,
    /// Vendor safety signals that need a human's approval first.
    #[serde(default)]
    pub safety: Vec<SafetySignal>,
    /// Tokens and cost of the request that produced this proposal (live adapters only).
    #[serde(default)]
    pub usage: Option<Usage>,
}

impl Proposal {
    /// A proposal without safety signals or usage.
    pub fn new(raw: serde_json::Value, actions: Vec<Action>, source: impl Into<String>) -> Self {
        Proposal {
            raw,
            actions,
            source: source.into(),
            safety: Vec::new(),
            usage: None,
        }
    }
}

/// Why a provider could not propose.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The model (or transcript) produced something that is not a valid action.
    ///
    /// `recoverable` is true when a live adapter can feed `reason` back to the model and let it
    /// try again (an unsupported action, a coordinate outside the screenshot, an unreadable
    /// reply). It is always false for scripted transcripts, which cannot react to feedback.
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
    /// The message never contains the API key.
    #[error("provider request failed{}: {message}", status_suffix(.status))]
    Http {
        status: Option<u16>,
        message: String,
    },
    /// The provider cannot be set up (unknown `--model` spec, missing key, bad base URL).
    #[error("provider configuration: {0}")]
    Config(String),
    /// The vendor refused to continue (a blocked prompt, a model refusal).
    #[error("the provider refused to continue: {0}")]
    Refused(String),
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
