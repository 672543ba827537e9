//! Gemini generateContent adapter (wire-formats.md §3).
//!
//! - Declares `computerUse` for the browser environment; the 2.5 set and the 3.x set are both
//!   parsed whatever the model (see [`crate::gemini`]). For the 2.5 models `search` is excluded
//!   (Airlock's browser has no search page).
//! - The model's `Content` is appended to the history verbatim (Gemini 3 thought signatures
//!   must come back unchanged).
//! - Each `functionCall` is answered with one `functionResponse` (`id` echoed when present,
//!   same `name`, `response.url` = the current page, `response.error` when it failed); the new
//!   screenshot travels inside the last `functionResponse.parts[]`.
//! - `safety_decision: require_confirmation` becomes a [`crate::SafetySignal`];
//!   `safety_acknowledgement: "true"` is added to that call's response only when the engine's
//!   feedback says a human approved it.
//! - Coordinates are on the 0–999 grid, so screenshots are never rescaled for the model's sake
//!   (only to fit [`crate::ProviderOptions::max_screenshot`]).

use super::http::{join, secret_header, Http};
use super::prompt::{self, Finish};
use super::TurnError;
use super::{
    acknowledged, is_snapshot, json_body, rejected, screenshot, tag_raw, Outcome, PartKind,
    Pending, Pruner, Shot,
};
use crate::anthropic::ParseError;
use crate::gemini::{parse_content, safety_id};
use crate::key::ApiKey;
use crate::spec::ProviderOptions;
use crate::{Proposal, ProposeContext, ProviderError, StepFeedback};
use airlock_core::Action;
use reqwest::header::{HeaderMap, HeaderName};
use serde_json::{json, Value};
use url::Url;

/// Models that speak the 2.5 function set (the reference implementation's list).
const LEGACY_MODELS: &[&str] = &[
    "gemini-2.5-computer-use-preview",
    "gemini-3-flash-preview",
    "gemini-3.1-pro-preview",
];

/// Finish reasons that mean the vendor stopped on its own policy.
const BLOCKED_FINISH: &[&str] = &[
    "SAFETY",
    "PROHIBITED_CONTENT",
    "BLOCKLIST",
    "SPII",
    "RECITATION",
    "IMAGE_SAFETY",
];

#[derive(Debug, Clone)]
struct Call {
    id: Option<String>,
    name: String,
    /// The safety signal id of this call, when it asked for confirmation.
    safety_id: Option<String>,
}

/// The Gemini generateContent adapter.
#[derive(Debug)]
pub struct GeminiProvider {
    model: String,
    key: ApiKey,
    url: Url,
    opts: ProviderOptions,
    http: Http,
    contents: Vec<Value>,
    pending: Pending<Call>,
    retry_feedback: Option<Vec<StepFeedback>>,
}

impl GeminiProvider {
    /// An adapter for `model` at `base` (the API root, e.g.
    /// `https://generativelanguage.googleapis.com`).
    pub fn new(
        model: &str,
        key: ApiKey,
        base: Url,
        opts: ProviderOptions,
    ) -> Result<Self, ProviderError> {
        if model.contains(['/', ':']) {
            return Err(ProviderError::Config(format!(
                "`{}` is not a Gemini model name",
                airlock_core::action::truncate(model, 80)
            )));
        }
        Ok(GeminiProvider {
            model: model.to_string(),
            url: join(&base, &format!("v1beta/models/{model}:generateContent"))?,
            http: Http::new(opts.retry, Some(key.clone()))?,
            key,
            opts,
            contents: Vec::new(),
            pending: Pending::Start,
            retry_feedback: None,
        })
    }

    fn legacy(&self) -> bool {
        LEGACY_MODELS.iter().any(|m| self.model.starts_with(m))
    }

    fn tool(&self) -> Value {
        let mut cu = json!({"environment": "ENVIRONMENT_BROWSER"});
        if self.legacy() {
            super::set(&mut cu, "excludedPredefinedFunctions", json!(["search"]));
        }
        json!({"computerUse": cu})
    }

    fn user_turn(&self, ctx: &ProposeContext<'_>, feedback: &[StepFeedback], shot: &Shot) -> Value {
        let note = prompt::turn_note(ctx, &self.opts, shot.width, shot.height, shot.b64.is_some());
        let image = shot
            .b64
            .as_ref()
            .map(|b| json!({"inlineData": {"mimeType": "image/png", "data": b}}));
        let snapshot = prompt::snapshot(ctx, &self.opts);
        let (calls, outcomes) = self.pending.resolve(feedback);
        let mut parts = Vec::new();
        if calls.is_empty() {
            let opening = match self.pending {
                Pending::Start => "Here is the current screen. Begin the task.",
                _ => "Here is the current screen. Continue the task.",
            };
            parts.push(json!({"text": format!("{opening} {note}")}));
            parts.extend(image);
        } else {
            let approved = acknowledged(feedback);
            let last = calls.len() - 1;
            for (i, (call, outcome)) in calls.iter().zip(&outcomes).enumerate() {
                let mut response = json!({"url": ctx.observation.url});
                if !outcome.is_ok() {
                    super::set(&mut response, "error", json!(outcome.text()));
                }
                if call
                    .safety_id
                    .as_ref()
                    .is_some_and(|id| approved.contains(id))
                {
                    super::set(&mut response, "safety_acknowledgement", json!("true"));
                }
                let mut fr = json!({"name": call.name, "response": response});
                if let Some(id) = &call.id {
                    super::set(&mut fr, "id", json!(id));
                }
                if i == last {
                    if let Some(img) = &image {
                        super::set(&mut fr, "parts", json!([img]));
                    }
                }
                parts.push(json!({"functionResponse": fr}));
            }
            let mut text = note;
            if outcomes.iter().any(|o| matches!(o, Outcome::Failed(_))) {
                text.push_str(" Some actions failed; see the errors above.");
            }
            parts.push(json!({"text": text}));
        }
        if let Some(s) = snapshot {
            parts.push(json!({"text": s}));
        }
        json!({"role": "user", "parts": parts})
    }

    async fn turn(
        &mut self,
        ctx: &ProposeContext<'_>,
        feedback: &[StepFeedback],
    ) -> Result<Proposal, TurnError> {
        use TurnError::{Committed, Uncommitted};
        let shot = screenshot(ctx, &self.opts.image_box()).map_err(Uncommitted)?;
        let mut contents = self.contents.clone();
        contents.push(self.user_turn(ctx, feedback, &shot));
        prune(&mut contents, self.opts.keep_screenshots);
        let body = json!({
            "contents": contents,
            "systemInstruction": {"parts": [{"text": prompt::system(ctx.goal, &self.opts, Finish::TextOnly)}]},
            "tools": [self.tool()],
        });
        let mut headers = HeaderMap::new();
        headers.insert(
            HeaderName::from_static("x-goog-api-key"),
            secret_header(self.key.expose()).map_err(Uncommitted)?,
        );
        let bytes = self
            .http
            .post_json(&self.url, &headers, &body)
            .await
            .map_err(Uncommitted)?;
        let mut at = "gemini response".to_string();
        let resp = json_body(&bytes).map_err(|r| Uncommitted(rejected(at.clone(), r)))?;
        if let Some(id) = resp.get("responseId").and_then(Value::as_str) {
            at = format!("gemini response {}", crate::mapping::shown(id));
        }
        if let Some(reason) = resp
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str)
        {
            return Err(Uncommitted(ProviderError::Refused(format!(
                "{at}: the prompt was blocked (`{}`)",
                crate::mapping::shown(reason)
            ))));
        }
        let finish = resp
            .pointer("/candidates/0/finishReason")
            .and_then(Value::as_str)
            .unwrap_or("");
        let content = match resp.pointer("/candidates/0/content") {
            Some(c @ Value::Object(_))
                if c.get("parts")
                    .and_then(Value::as_array)
                    .is_some_and(|p| !p.is_empty()) =>
            {
                c.clone()
            }
            _ if BLOCKED_FINISH.contains(&finish) => {
                return Err(Uncommitted(ProviderError::Refused(format!(
                    "{at}: the model stopped (`{finish}`)"
                ))))
            }
            _ => {
                return Err(Uncommitted(rejected(
                    at,
                    format!(
                        "the reply has no content (finish reason `{}`)",
                        crate::mapping::shown(if finish.is_empty() { "none" } else { finish })
                    ),
                )))
            }
        };
        let parts = content
            .get("parts")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let mut calls = Vec::new();
        let mut part_to_call = Vec::new();
        for (i, part) in parts.iter().enumerate() {
            let Some(fc) = part.get("functionCall") else {
                continue;
            };
            let Some(name) = fc.get("name").and_then(Value::as_str) else {
                return Err(Uncommitted(rejected(
                    at,
                    "a `functionCall` has no `name`".into(),
                )));
            };
            part_to_call.push((i, calls.len()));
            calls.push(Call {
                id: fc.get("id").and_then(Value::as_str).map(str::to_string),
                name: name.to_string(),
                safety_id: None,
            });
        }
        let has_text = parts.iter().any(|p| {
            p.get("thought") != Some(&Value::Bool(true))
                && p.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.trim().is_empty())
        });
        if calls.is_empty() && !has_text {
            return Err(Uncommitted(rejected(
                at,
                "the reply has neither an action nor text".into(),
            )));
        }
        let usage = resp.get("usageMetadata").map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.opts.prices.usage(
                &self.model,
                n("promptTokenCount"),
                n("candidatesTokenCount") + n("thoughtsTokenCount"),
            )
        });

        // Commit: the model content goes back verbatim.
        self.contents = contents;
        self.contents.push(content.clone());
        let raw = tag_raw(&resp, "gemini", None);
        match parse_content(&content, shot.viewport) {
            Ok(parsed) if parsed.calls.is_empty() => {
                self.pending = Pending::Text;
                Ok(Proposal {
                    raw,
                    actions: vec![Action::Done { claim: parsed.text }],
                    source: at,
                    safety: Vec::new(),
                    usage,
                })
            }
            Ok(parsed) => {
                for (n, (call, fc)) in calls.iter_mut().zip(&parsed.calls).enumerate() {
                    if fc.safety.is_some() {
                        call.safety_id = Some(safety_id(fc, n));
                    }
                }
                let counts = parsed.calls.iter().map(|c| c.actions.len()).collect();
                let safety = parsed.safety();
                self.pending = Pending::Ran { calls, counts };
                Ok(Proposal {
                    raw,
                    actions: parsed.actions(),
                    source: at,
                    safety,
                    usage,
                })
            }
            Err(e) => {
                let (bad, reason) = match &e {
                    ParseError::At { index, source, .. } => (
                        part_to_call
                            .iter()
                            .find(|(p, _)| p == index)
                            .map(|(_, c)| *c),
                        source.to_string(),
                    ),
                    other => (None, other.to_string()),
                };
                self.pending = Pending::Rejected { calls, bad, reason };
                Err(Committed(rejected(at, e.to_string())))
            }
        }
    }
}

/// Keeps the newest `keep` screenshots: older `functionResponse.parts` are dropped, older
/// `inlineData` parts and page snapshots become short notes.
fn prune(contents: &mut [Value], keep: usize) {
    let mut pruner = Pruner::new(keep);
    for content in contents.iter_mut().rev() {
        if content.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let Some(parts) = content.get_mut("parts").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut().rev() {
            if let Some(fr) = part
                .get_mut("functionResponse")
                .and_then(Value::as_object_mut)
            {
                if fr.contains_key("parts") && pruner.visit(PartKind::Screenshot).is_some() {
                    fr.remove("parts");
                }
                continue;
            }
            let kind = if part.get("inlineData").is_some() {
                PartKind::Screenshot
            } else if is_snapshot(part.get("text")) {
                PartKind::Snapshot
            } else {
                PartKind::Other
            };
            if let Some(note) = pruner.visit(kind) {
                *part = json!({"text": note});
            }
        }
    }
}

super::live_provider!(GeminiProvider, "gemini");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::PRUNED_SCREENSHOT;

    #[test]
    fn pruning_drops_old_function_response_images() {
        let img = json!({"inlineData": {"mimeType": "image/png", "data": "x"}});
        let mut contents = vec![
            json!({"role": "user", "parts": [{"text": "go"}, img.clone()]}),
            json!({"role": "model", "parts": []}),
            json!({"role": "user", "parts": [{"functionResponse": {"name": "click", "response": {}, "parts": [img.clone()]}}]}),
        ];
        prune(&mut contents, 1);
        assert_eq!(contents[0]["parts"][1]["text"], PRUNED_SCREENSHOT);
        assert!(contents[2]["parts"][0]["functionResponse"]["parts"].is_array());
        prune(&mut contents, 0);
        assert!(contents[2]["parts"][0]["functionResponse"]
            .get("parts")
            .is_none());
    }
}
