//! Live adapters: one per vendor API, each behind [`crate::Provider`].
//!
//! Every adapter keeps the conversation itself and, per `propose`:
//! 1. answers the previous turn's calls from the engine's feedback (one result per vendor
//!    call, in the vendor's error form; later calls of a failed batch get [`NOT_EXECUTED`]),
//!    acknowledging a vendor safety signal only when the feedback says a human approved it;
//! 2. attaches the new screenshot (scaled to the vendor's limits; the reply's coordinates are
//!    parsed in exactly that frame) and the page snapshot wrapped as untrusted content;
//! 3. prunes screenshots older than the last [`ProviderOptions::keep_screenshots`];
//! 4. sends the request (bounded retries, see [`http`]) and parses the reply into a
//!    [`Proposal`] with usage and cost.
//!
//! A reply that cannot be read at all (truncated JSON, no content) is not added to the
//! conversation: the adapter returns a recoverable error, and the next `propose` sends the same
//! turn again with the fresh screenshot. A reply whose calls Airlock refuses (unknown action,
//! coordinates off screen) is added, and the next turn answers each call with the reason.
//!
//! [`NOT_EXECUTED`]: crate::NOT_EXECUTED
//! [`ProviderOptions::keep_screenshots`]: crate::ProviderOptions::keep_screenshots
//! [`Proposal`]: crate::Proposal

mod anthropic;
mod compat;
mod gemini;
pub mod http;
mod openai;
mod prompt;

pub use anthropic::{AnthropicProvider, AnthropicTool};
pub use compat::CompatProvider;
pub use gemini::GeminiProvider;
pub use openai::{OpenAiProvider, OpenAiTool};

use crate::image::{fit_png, ImageLimits};
use crate::Proposal;
use crate::{ProposeContext, ProviderError, StepFeedback, NOT_EXECUTED};
use airlock_core::coords::{CoordSpace, Viewport};
use base64::Engine as _;
use serde_json::{json, Value};
use std::collections::BTreeSet;

/// Text for calls before an invalid one in a rejected turn.
pub(crate) const NOT_EXECUTED_REJECTED: &str =
    "Not executed: another computer action in this turn was invalid, so none of this turn's actions ran.";
/// What a pruned screenshot becomes.
pub(crate) const PRUNED_SCREENSHOT: &str = "[older screenshot removed to save context]";
/// What a pruned page snapshot becomes.
pub(crate) const PRUNED_SNAPSHOT: &str = "[older page snapshot removed to save context]";

/// What a content part is, as far as pruning old context goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PartKind {
    Screenshot,
    Snapshot,
    Other,
}

/// Whether a text is a page snapshot (page text is always sent fenced as untrusted).
pub(crate) fn is_snapshot(text: Option<&Value>) -> bool {
    text.and_then(Value::as_str)
        .is_some_and(|t| t.starts_with("<untrusted-page-content"))
}

/// Counts screenshots and page snapshots from the newest back, so only the newest `keep` of
/// each stay in a conversation. Every adapter walks its own wire format and says what each
/// part is; the counting and the placeholders are the same for all.
pub(crate) struct Pruner {
    keep: usize,
    screenshots: usize,
    snapshots: usize,
}

impl Pruner {
    pub(crate) fn new(keep: usize) -> Self {
        Pruner {
            keep,
            screenshots: 0,
            snapshots: 0,
        }
    }

    /// Counts one part (call newest first). Returns the placeholder text to put in its place
    /// when `keep` newer parts of its kind were already seen.
    pub(crate) fn visit(&mut self, kind: PartKind) -> Option<&'static str> {
        let (seen, placeholder) = match kind {
            PartKind::Screenshot => (&mut self.screenshots, PRUNED_SCREENSHOT),
            PartKind::Snapshot => (&mut self.snapshots, PRUNED_SNAPSHOT),
            PartKind::Other => return None,
        };
        *seen += 1;
        (*seen > self.keep).then_some(placeholder)
    }
}

/// The [`Provider`] and [`Turns`] impls every live adapter shares: `propose` resends a turn
/// that failed before the conversation changed (see [`propose_resending`]), and a turn is the
/// adapter's own `turn` method.
macro_rules! live_provider {
    ($ty:ty, $name:literal) => {
        impl $crate::Provider for $ty {
            fn name(&self) -> &str {
                $name
            }

            async fn propose(
                &mut self,
                ctx: $crate::ProposeContext<'_>,
            ) -> Result<$crate::Proposal, $crate::ProviderError> {
                super::propose_resending(self, ctx).await
            }
        }

        impl super::Turns for $ty {
            fn retry_slot(&mut self) -> &mut Option<Vec<$crate::StepFeedback>> {
                &mut self.retry_feedback
            }

            fn turn_once<'a>(
                &'a mut self,
                ctx: &'a $crate::ProposeContext<'_>,
                feedback: &'a [$crate::StepFeedback],
            ) -> impl std::future::Future<Output = Result<$crate::Proposal, super::TurnError>>
                   + Send
                   + 'a {
                self.turn(ctx, feedback)
            }
        }
    };
}
pub(crate) use live_provider;

/// The screenshot of one request and the frame its reply's coordinates refer to.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Shot {
    /// Base64 PNG; `None` when the observation had no screenshot.
    pub b64: Option<String>,
    pub width: u32,
    pub height: u32,
    pub viewport: Viewport,
}

impl Shot {
    pub fn space(&self) -> CoordSpace {
        CoordSpace::Screenshot {
            width: self.width,
            height: self.height,
        }
    }

    pub fn frame_json(&self) -> Value {
        json!({"width": self.width, "height": self.height})
    }

    pub fn data_url(&self) -> Option<String> {
        self.b64
            .as_ref()
            .map(|b| format!("data:image/png;base64,{b}"))
    }
}

/// Scales the observation's screenshot into `limits` and encodes it.
pub(crate) fn screenshot(
    ctx: &ProposeContext<'_>,
    limits: &ImageLimits,
) -> Result<Shot, ProviderError> {
    let vp = ctx.viewport;
    let png = &ctx.observation.screenshot_png;
    if png.is_empty() {
        return Ok(Shot {
            b64: None,
            width: vp.width,
            height: vp.height,
            viewport: vp,
        });
    }
    let scaled = fit_png(png, limits).map_err(|e| ProviderError::Malformed {
        at: "host screenshot".into(),
        reason: e.to_string(),
        recoverable: false,
    })?;
    Ok(Shot {
        b64: Some(base64::engine::general_purpose::STANDARD.encode(&scaled.png)),
        width: scaled.width,
        height: scaled.height,
        viewport: vp,
    })
}

/// How one vendor call of the previous turn ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok(String),
    Failed(String),
    NotExecuted(String),
}

impl Outcome {
    pub fn is_ok(&self) -> bool {
        matches!(self, Outcome::Ok(_))
    }

    pub fn text(&self) -> &str {
        match self {
            Outcome::Ok(t) | Outcome::Failed(t) | Outcome::NotExecuted(t) => t,
        }
    }
}

/// Per-call outcomes from per-action feedback; `counts[i]` is the number of actions call `i`
/// became. Missing feedback counts as not executed.
pub(crate) fn outcomes(counts: &[usize], feedback: &[StepFeedback]) -> Vec<Outcome> {
    let mut out = Vec::with_capacity(counts.len());
    let mut next = 0usize;
    for &n in counts {
        let mut oks = Vec::new();
        let mut result = None;
        for i in next..next + n {
            match feedback.get(i) {
                Some(f) if f.ok => oks.push(f.message.clone()),
                Some(f) if f.message == NOT_EXECUTED && oks.is_empty() => {
                    result = Some(Outcome::NotExecuted(NOT_EXECUTED.to_string()));
                    break;
                }
                Some(f) => {
                    result = Some(Outcome::Failed(f.message.clone()));
                    break;
                }
                None if oks.is_empty() => {
                    result = Some(Outcome::NotExecuted(NOT_EXECUTED.to_string()));
                    break;
                }
                None => {
                    result = Some(Outcome::Failed(format!(
                        "{}; the rest of this action did not run",
                        oks.join("; ")
                    )));
                    break;
                }
            }
        }
        next += n;
        out.push(result.unwrap_or_else(|| {
            let text = oks.join("; ");
            Outcome::Ok(if text.is_empty() {
                "OK".to_string()
            } else {
                text
            })
        }));
    }
    out
}

/// Outcomes for a turn Airlock refused whole: call `bad` gets `reason`, the others say they did
/// not run. With `bad` unknown every call gets `reason`.
pub(crate) fn rejected_outcomes(n: usize, bad: Option<usize>, reason: &str) -> Vec<Outcome> {
    (0..n)
        .map(|i| match bad {
            Some(b) if i < b => Outcome::NotExecuted(NOT_EXECUTED_REJECTED.to_string()),
            Some(b) if i > b => Outcome::NotExecuted(NOT_EXECUTED.to_string()),
            _ => Outcome::Failed(reason.to_string()),
        })
        .collect()
}

/// Safety signal ids a human approved, from all feedback entries.
pub(crate) fn acknowledged(feedback: &[StepFeedback]) -> BTreeSet<String> {
    feedback
        .iter()
        .flat_map(|f| f.acknowledged_safety.iter().cloned())
        .collect()
}

/// What the next request answers.
#[derive(Debug, Clone)]
pub(crate) enum Pending<C> {
    /// Nothing yet: the next request opens the conversation.
    Start,
    /// The calls of the last proposal, answered from the engine's feedback.
    Ran { calls: Vec<C>, counts: Vec<usize> },
    /// The last reply was refused whole; every call is answered with an error.
    Rejected {
        calls: Vec<C>,
        bad: Option<usize>,
        reason: String,
    },
    /// The last reply had text only (a `done` claim the engine did not end on): continue.
    Text,
}

impl<C> Pending<C> {
    /// The call list and their outcomes for this turn.
    pub fn resolve<'a>(&'a self, feedback: &[StepFeedback]) -> (&'a [C], Vec<Outcome>) {
        match self {
            Pending::Start | Pending::Text => (&[], Vec::new()),
            Pending::Ran { calls, counts } => (calls, outcomes(counts, feedback)),
            Pending::Rejected { calls, bad, reason } => {
                (calls, rejected_outcomes(calls.len(), *bad, reason))
            }
        }
    }
}

/// A short summary of outcomes for vendors without a per-call error field.
pub(crate) fn outcome_summary(outcomes: &[Outcome]) -> Option<String> {
    if outcomes.iter().all(Outcome::is_ok) {
        return None;
    }
    let lines: Vec<String> = outcomes
        .iter()
        .enumerate()
        .map(|(i, o)| match o {
            Outcome::Ok(t) => format!("{}. done: {t}", i + 1),
            Outcome::Failed(t) => format!("{}. FAILED: {t}", i + 1),
            Outcome::NotExecuted(t) => format!("{}. {t}", i + 1),
        })
        .collect();
    Some(format!(
        "Airlock's results for your last actions:\n{}",
        lines.join("\n")
    ))
}

/// One line per action of the last batch (`labels[i]` describes action `i`), from the
/// engine's per-action feedback; actions without feedback did not run.
pub(crate) fn action_lines(labels: &[String], feedback: &[StepFeedback]) -> Vec<String> {
    labels
        .iter()
        .enumerate()
        .map(|(i, what)| match feedback.get(i) {
            Some(f) if f.ok => format!("{}. {what}: done ({})", i + 1, f.message),
            Some(f) if f.message == NOT_EXECUTED => format!("{}. {what}: {NOT_EXECUTED}", i + 1),
            Some(f) => format!("{}. {what}: FAILED: {}", i + 1, f.message),
            None => format!("{}. {what}: {NOT_EXECUTED}", i + 1),
        })
        .collect()
}

/// The recoverable error for a reply Airlock could not read or refused.
pub(crate) fn rejected(at: String, reason: String) -> ProviderError {
    ProviderError::Malformed {
        at,
        reason,
        recoverable: true,
    }
}

/// Sets `key` on a JSON object (a no-op on anything else; used on objects built just before).
pub(crate) fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(o) = v.as_object_mut() {
        o.insert(key.to_string(), value);
    }
}

/// Parses a response body as JSON, or explains why it is not.
pub(crate) fn json_body(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| {
        let msg = e.to_string();
        let msg = msg
            .rsplit_once(" at line ")
            .map_or(msg.as_str(), |(m, _)| m);
        format!(
            "the response is not valid JSON ({msg}, at byte {})",
            e.column()
        )
    })
}

/// `raw` as a JSON object tagged for the transcript: `provider` and, for pixel frames, `frame`.
pub(crate) fn tag_raw(raw: &Value, provider: &str, frame: Option<Value>) -> Value {
    let mut obj = match raw {
        Value::Object(o) => o.clone(),
        other => {
            let mut m = serde_json::Map::new();
            m.insert("value".into(), other.clone());
            m
        }
    };
    obj.insert("provider".into(), Value::String(provider.into()));
    if let Some(f) = frame {
        obj.insert("frame".into(), f);
    }
    Value::Object(obj)
}

/// How a turn failed: whether anything was added to the conversation.
pub(crate) enum TurnError {
    /// Nothing was added to the conversation; the next turn resends it.
    Uncommitted(ProviderError),
    Committed(ProviderError),
}

/// One turn of a live adapter, as [`propose_resending`] drives it.
pub(crate) trait Turns: Send {
    /// Where the feedback of a turn that must be resent is kept.
    fn retry_slot(&mut self) -> &mut Option<Vec<StepFeedback>>;

    fn turn_once<'a>(
        &'a mut self,
        ctx: &'a ProposeContext<'_>,
        feedback: &'a [StepFeedback],
    ) -> impl std::future::Future<Output = Result<Proposal, TurnError>> + Send + 'a;
}

/// Every adapter's `propose`: a turn that failed before anything was added to the conversation
/// keeps its feedback, so the next `propose` answers the same calls again.
pub(crate) async fn propose_resending<T: Turns>(
    t: &mut T,
    ctx: ProposeContext<'_>,
) -> Result<Proposal, ProviderError> {
    let feedback = t
        .retry_slot()
        .take()
        .unwrap_or_else(|| ctx.feedback.to_vec());
    match t.turn_once(&ctx, &feedback).await {
        Ok(p) => Ok(p),
        Err(TurnError::Committed(e)) => Err(e),
        Err(TurnError::Uncommitted(e)) => {
            *t.retry_slot() = Some(feedback);
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pruner_keeps_the_newest_of_each_kind_apart() {
        let mut p = Pruner::new(1);
        // Newest first: a snapshot, a screenshot, then older ones of each, then other text.
        assert_eq!(p.visit(PartKind::Snapshot), None);
        assert_eq!(p.visit(PartKind::Screenshot), None);
        assert_eq!(p.visit(PartKind::Other), None);
        assert_eq!(p.visit(PartKind::Screenshot), Some(PRUNED_SCREENSHOT));
        assert_eq!(p.visit(PartKind::Snapshot), Some(PRUNED_SNAPSHOT));
        assert_eq!(p.visit(PartKind::Snapshot), Some(PRUNED_SNAPSHOT));
        assert!(is_snapshot(Some(&json!(
            "<untrusted-page-content source=\"x\">…"
        ))));
        assert!(!is_snapshot(Some(&json!("a note"))));
        assert!(!is_snapshot(None));
    }

    #[test]
    fn outcomes_follow_action_counts() {
        let fb = vec![
            StepFeedback::ran("clicked"),
            StepFeedback::ran("pressed ctrl+a"),
            StepFeedback::failed("denied: typing into a password field"),
            StepFeedback::failed(NOT_EXECUTED),
        ];
        let o = outcomes(&[1, 2, 1, 1], &fb);
        assert_eq!(o[0], Outcome::Ok("clicked".into()));
        assert_eq!(
            o[1],
            Outcome::Failed("denied: typing into a password field".into())
        );
        assert_eq!(o[2], Outcome::NotExecuted(NOT_EXECUTED.into()));
        // Feedback ran out: not executed.
        assert_eq!(o[3], Outcome::NotExecuted(NOT_EXECUTED.into()));
        assert!(outcome_summary(&o).unwrap().contains("FAILED: denied"));
        assert!(outcome_summary(&o[..1]).is_none());
    }

    #[test]
    fn rejected_turns_answer_every_call() {
        let o = rejected_outcomes(3, Some(1), "unknown action `teleport`");
        assert_eq!(o[0], Outcome::NotExecuted(NOT_EXECUTED_REJECTED.into()));
        assert_eq!(o[1], Outcome::Failed("unknown action `teleport`".into()));
        assert_eq!(o[2], Outcome::NotExecuted(NOT_EXECUTED.into()));
    }

    #[test]
    fn only_feedback_acknowledgements_count() {
        let fb = vec![
            StepFeedback::ran("x").with_acknowledged(["cu_sc_1".to_string()]),
            StepFeedback::ran("y"),
        ];
        assert_eq!(
            acknowledged(&fb).into_iter().collect::<Vec<_>>(),
            vec!["cu_sc_1".to_string()]
        );
    }
}
