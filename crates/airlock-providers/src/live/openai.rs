//! OpenAI Responses API adapter (wire-formats.md §2).
//!
//! - GA `{"type":"computer"}` (batched `actions[]`, screenshots with `detail: "original"`) or
//!   the preview `computer_use_preview` tool (display size = the screenshot as sent,
//!   `truncation: "auto"`), chosen by model name or explicitly ([`OpenAiTool::select`]).
//! - Each `computer_call` is answered with a `computer_call_output` carrying the new screenshot
//!   as a data URL and echoing `call_id`. The API has no error field, so when something failed
//!   a user message lists what happened to each call.
//! - `pending_safety_checks` become [`crate::SafetySignal`]s; the same check objects are echoed
//!   in `acknowledged_safety_checks` only for ids the engine's feedback marks as approved.
//! - By default the whole (pruned) conversation is replayed each turn, output items verbatim;
//!   with [`crate::ProviderOptions::openai_previous_response_id`] turns are chained on the
//!   server instead (then old screenshots cannot be pruned).

use super::http::{join, secret_header, Http};
use super::prompt::{self, Finish};
use super::TurnError;
use super::{
    acknowledged, action_lines, is_snapshot, json_body, outcome_summary, rejected, screenshot,
    tag_raw, PartKind, Pending, Pruner, Shot,
};
use crate::anthropic::ParseError;
use crate::image::{solid_png, ImageLimits};
use crate::key::ApiKey;
use crate::openai::parse_output;
use crate::spec::ProviderOptions;
use crate::{Proposal, ProposeContext, ProviderError, StepFeedback};
use airlock_core::Action;
use base64::Engine as _;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};
use url::Url;

/// Which computer tool to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenAiTool {
    /// GA `{"type":"computer"}`.
    Computer,
    /// `computer_use_preview` (deprecated).
    Preview,
}

impl OpenAiTool {
    /// An explicit `--tool-version` (`computer`, `computer_use_preview`), else the preview tool
    /// for `computer-use-preview*` models and the GA tool for every other model.
    pub fn select(model: &str, explicit: Option<&str>) -> Result<Self, ProviderError> {
        match explicit {
            Some("computer") => Ok(OpenAiTool::Computer),
            Some("computer_use_preview") => Ok(OpenAiTool::Preview),
            Some(other) => Err(ProviderError::Config(format!(
                "unknown OpenAI tool version `{}`; use computer or computer_use_preview",
                airlock_core::action::truncate(other, 60)
            ))),
            None if model.starts_with("computer-use-preview") => Ok(OpenAiTool::Preview),
            None => Ok(OpenAiTool::Computer),
        }
    }

    fn declaration(self, shot: &Shot) -> Value {
        match self {
            OpenAiTool::Computer => json!({"type": "computer"}),
            OpenAiTool::Preview => json!({
                "type": "computer_use_preview",
                "display_width": shot.width,
                "display_height": shot.height,
                "environment": "browser",
            }),
        }
    }

    /// GA "original" detail keeps up to 10.24 MP.
    fn limits(self) -> ImageLimits {
        match self {
            OpenAiTool::Computer => ImageLimits {
                max_pixels: Some(10_240_000),
                ..ImageLimits::default()
            },
            OpenAiTool::Preview => ImageLimits::default(),
        }
    }
}

#[derive(Debug, Clone)]
struct Call {
    call_id: String,
    checks: Vec<Value>,
    /// What each of the call's actions was, for the results note.
    labels: Vec<String>,
}

/// The OpenAI Responses adapter.
#[derive(Debug)]
pub struct OpenAiProvider {
    model: String,
    key: ApiKey,
    url: Url,
    tool: OpenAiTool,
    opts: ProviderOptions,
    http: Http,
    /// The conversation so far (replay mode).
    items: Vec<Value>,
    previous_response_id: Option<String>,
    pending: Pending<Call>,
    retry_feedback: Option<Vec<StepFeedback>>,
    /// A 1x1 PNG data URL standing in for pruned or missing screenshots (the output item
    /// requires an image).
    placeholder: String,
}

impl OpenAiProvider {
    /// An adapter for `model` at `base` (the API root including `/v1`).
    pub fn new(
        model: &str,
        key: ApiKey,
        base: Url,
        tool: OpenAiTool,
        opts: ProviderOptions,
    ) -> Result<Self, ProviderError> {
        let png =
            solid_png(1, 1, [128, 128, 128]).map_err(|e| ProviderError::Config(e.to_string()))?;
        Ok(OpenAiProvider {
            model: model.to_string(),
            url: join(&base, "responses")?,
            http: Http::new(opts.retry, Some(key.clone()))?,
            key,
            tool,
            opts,
            items: Vec::new(),
            previous_response_id: None,
            pending: Pending::Start,
            retry_feedback: None,
            placeholder: format!(
                "data:image/png;base64,{}",
                base64::engine::general_purpose::STANDARD.encode(png)
            ),
        })
    }

    pub fn tool(&self) -> OpenAiTool {
        self.tool
    }

    fn ga(&self) -> bool {
        self.tool == OpenAiTool::Computer
    }

    fn screenshot_output(&self, shot: &Shot) -> Value {
        let mut out = json!({
            "type": "computer_screenshot",
            "image_url": shot.data_url().unwrap_or_else(|| self.placeholder.clone()),
        });
        if self.ga() {
            super::set(&mut out, "detail", json!("original"));
        }
        out
    }

    /// The input items answering the pending calls, with the new screenshot.
    fn new_items(
        &self,
        ctx: &ProposeContext<'_>,
        feedback: &[StepFeedback],
        shot: &Shot,
    ) -> Vec<Value> {
        let note = prompt::turn_note(ctx, &self.opts, shot.width, shot.height, shot.b64.is_some());
        let snapshot = prompt::snapshot(ctx, &self.opts);
        let (calls, outcomes) = self.pending.resolve(feedback);
        if calls.is_empty() {
            let opening = match self.pending {
                Pending::Start => "Here is the current screen. Begin the task.",
                _ => "Here is the current screen. Continue the task.",
            };
            let mut content =
                vec![json!({"type": "input_text", "text": format!("{opening} {note}")})];
            if let Some(url) = shot.data_url() {
                let mut image = json!({"type": "input_image", "image_url": url});
                super::set(
                    &mut image,
                    "detail",
                    json!(if self.ga() { "original" } else { "auto" }),
                );
                content.push(image);
            }
            if let Some(s) = snapshot {
                content.push(json!({"type": "input_text", "text": s}));
            }
            return vec![json!({"role": "user", "content": content})];
        }
        let approved = acknowledged(feedback);
        let mut items = Vec::new();
        for call in calls {
            let mut item = json!({
                "type": "computer_call_output",
                "call_id": call.call_id,
                "output": self.screenshot_output(shot),
            });
            let acked: Vec<Value> = call
                .checks
                .iter()
                .filter(|c| {
                    c.get("id")
                        .and_then(Value::as_str)
                        .is_some_and(|id| approved.contains(id))
                })
                .cloned()
                .collect();
            if !acked.is_empty() {
                super::set(&mut item, "acknowledged_safety_checks", Value::Array(acked));
            }
            if !self.ga() && self.opts.openai_current_url && !ctx.observation.url.is_empty() {
                super::set(&mut item, "current_url", json!(ctx.observation.url));
            }
            items.push(item);
        }
        let summary = match &self.pending {
            Pending::Ran { .. } if outcomes.iter().any(|o| !o.is_ok()) => {
                let labels: Vec<String> = calls
                    .iter()
                    .flat_map(|c| c.labels.iter().cloned())
                    .collect();
                Some(format!(
                    "Airlock's results for your last actions:\n{}",
                    action_lines(&labels, feedback).join("\n")
                ))
            }
            _ => outcome_summary(&outcomes),
        };
        let mut text = match summary {
            Some(summary) => format!("{summary}\n\n{note}"),
            None => note,
        };
        if let Pending::Rejected { .. } = self.pending {
            text.push_str("\nNone of the actions of your last turn ran.");
        }
        let mut content = vec![json!({"type": "input_text", "text": text})];
        if let Some(s) = snapshot {
            content.push(json!({"type": "input_text", "text": s}));
        }
        items.push(json!({"role": "user", "content": content}));
        items
    }

    async fn turn(
        &mut self,
        ctx: &ProposeContext<'_>,
        feedback: &[StepFeedback],
    ) -> Result<Proposal, TurnError> {
        use TurnError::{Committed, Uncommitted};
        let limits = self.tool.limits().with_box(self.opts.max_screenshot);
        let shot = screenshot(ctx, &limits).map_err(Uncommitted)?;
        let new_items = self.new_items(ctx, feedback, &shot);
        let chain = self.opts.openai_previous_response_id;
        let mut items = if chain {
            Vec::new()
        } else {
            self.items.clone()
        };
        items.extend(new_items.iter().cloned());
        if !chain {
            prune(&mut items, self.opts.keep_screenshots, &self.placeholder);
        }
        let mut body = json!({
            "model": self.model,
            "instructions": prompt::system(ctx.goal, &self.opts, Finish::TextOnly),
            "tools": [self.tool.declaration(&shot)],
            "input": items,
        });
        if chain {
            if let Some(prev) = &self.previous_response_id {
                super::set(&mut body, "previous_response_id", json!(prev));
            }
        }
        if !self.ga() {
            super::set(&mut body, "truncation", json!("auto"));
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            AUTHORIZATION,
            secret_header(&format!("Bearer {}", self.key.expose())).map_err(Uncommitted)?,
        );
        let bytes = self
            .http
            .post_json(&self.url, &headers, &body)
            .await
            .map_err(Uncommitted)?;
        let mut at = "openai response".to_string();
        let resp = json_body(&bytes).map_err(|r| Uncommitted(rejected(at.clone(), r)))?;
        if let Some(id) = resp.get("id").and_then(Value::as_str) {
            at = format!("openai response {}", crate::mapping::shown(id));
        }
        if let Some(err) = resp.get("error").filter(|e| !e.is_null()) {
            let msg = err
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("unknown error");
            return Err(Uncommitted(rejected(
                at,
                format!(
                    "the response failed: {}",
                    airlock_core::action::truncate(msg, 300)
                ),
            )));
        }
        let output = match resp.get("output") {
            Some(Value::Array(o)) => o.clone(),
            _ => {
                return Err(Uncommitted(rejected(
                    at,
                    "the response has no `output` list".into(),
                )))
            }
        };
        let mut calls = Vec::new();
        let mut item_to_call = Vec::new();
        for (i, item) in output.iter().enumerate() {
            if item.get("type").and_then(Value::as_str) == Some("computer_call") {
                let call_id = item
                    .as_object()
                    .ok_or(ParseError::Message("not an object".into()))
                    .and_then(crate::openai::call_id)
                    .map_err(|e| Uncommitted(rejected(at.clone(), e.to_string())))?;
                let checks = item
                    .get("pending_safety_checks")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                item_to_call.push((i, calls.len()));
                calls.push(Call {
                    call_id,
                    checks,
                    labels: Vec::new(),
                });
            }
        }
        let has_text = output.iter().any(|i| {
            i.get("type").and_then(Value::as_str) == Some("message")
                && i.as_object().is_some_and(|o| {
                    crate::openai::message_text(o)
                        .iter()
                        .any(|t| !t.trim().is_empty())
                })
        });
        if calls.is_empty() && !has_text {
            return Err(Uncommitted(rejected(
                at,
                "the reply has neither an action nor text".into(),
            )));
        }
        let usage = resp.get("usage").map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.opts
                .prices
                .usage(&self.model, n("input_tokens"), n("output_tokens"))
        });

        // Commit: the reply joins the conversation.
        if chain {
            self.items.clear();
        } else {
            self.items = items;
            self.items.extend(output.iter().cloned());
        }
        self.previous_response_id = resp.get("id").and_then(Value::as_str).map(str::to_string);
        let raw = tag_raw(&resp, "openai", Some(shot.frame_json()));
        match parse_output(&output, shot.space(), shot.viewport) {
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
                for (call, p) in calls.iter_mut().zip(&parsed.calls) {
                    call.labels = p.actions.iter().map(|a| a.to_string()).collect();
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
                        item_to_call
                            .iter()
                            .find(|(i, _)| i == index)
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

/// Keeps the newest `keep` screenshots: older `computer_call_output` images become the
/// placeholder, older `input_image`s and page snapshots short notes.
fn prune(items: &mut [Value], keep: usize, placeholder: &str) {
    let mut pruner = Pruner::new(keep);
    for item in items.iter_mut().rev() {
        if item.get("type").and_then(Value::as_str) == Some("computer_call_output") {
            if let Some(url) = item.pointer_mut("/output/image_url") {
                if pruner.visit(PartKind::Screenshot).is_some() {
                    *url = json!(placeholder);
                }
            }
            continue;
        }
        if item.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let Some(parts) = item.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut().rev() {
            let kind = match part.get("type").and_then(Value::as_str) {
                Some("input_image") => PartKind::Screenshot,
                Some("input_text") if is_snapshot(part.get("text")) => PartKind::Snapshot,
                _ => PartKind::Other,
            };
            if let Some(note) = pruner.visit(kind) {
                *part = json!({"type": "input_text", "text": note});
            }
        }
    }
}

super::live_provider!(OpenAiProvider, "openai");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::PRUNED_SCREENSHOT;

    #[test]
    fn tool_by_model_name() {
        assert_eq!(
            OpenAiTool::select("gpt-5.5", None).unwrap(),
            OpenAiTool::Computer
        );
        assert_eq!(
            OpenAiTool::select("computer-use-preview-2025-03-11", None).unwrap(),
            OpenAiTool::Preview
        );
        assert_eq!(
            OpenAiTool::select("gpt-5.5", Some("computer_use_preview")).unwrap(),
            OpenAiTool::Preview
        );
        assert!(OpenAiTool::select("gpt-5.5", Some("computer-preview")).is_err());
    }

    #[test]
    fn pruning_replaces_old_screenshots() {
        let mut items = vec![
            json!({"role": "user", "content": [{"type": "input_image", "image_url": "data:a"}]}),
            json!({"type": "computer_call_output", "call_id": "c1", "output": {"type": "computer_screenshot", "image_url": "data:b"}}),
            json!({"type": "computer_call_output", "call_id": "c2", "output": {"type": "computer_screenshot", "image_url": "data:c"}}),
        ];
        prune(&mut items, 1, "data:placeholder");
        assert_eq!(items[0]["content"][0]["text"], PRUNED_SCREENSHOT);
        assert_eq!(items[1]["output"]["image_url"], "data:placeholder");
        assert_eq!(items[2]["output"]["image_url"], "data:c");
    }
}
