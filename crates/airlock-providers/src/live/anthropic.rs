//! Anthropic Messages API adapter (wire-formats.md §1).
//!
//! - GA `computer_toolset_20260801`: no beta header, no display size; members Airlock does not
//!   support (`zoom`, `hold_key`, `left_mouse_down`/`up`, `cursor_position`) are disabled in
//!   `configs` so the model never sees them. Each member `tool_use` is answered with a
//!   `tool_result` echoing `toolset_name: "computer"`; after a failure, later blocks get the
//!   exact [`NOT_EXECUTED`] text.
//! - Legacy `computer_20251124` / `computer_20250124` / `computer_20241022`: one tool named
//!   `computer` with the display size of the screenshot as sent, and its `anthropic-beta`
//!   header.
//! - The version is chosen by model name unless given explicitly ([`AnthropicTool::select`]).
//! - The screenshot goes into the last `tool_result` when the whole batch succeeded (the legacy
//!   tool's convention), otherwise after the results as a plain `image` block; text-only
//!   results answer the other calls.
//!
//! [`NOT_EXECUTED`]: crate::NOT_EXECUTED

use super::http::{join, secret_header, Http};
use super::prompt::{self, Finish};
use super::TurnError;
use super::{
    is_snapshot, json_body, rejected, screenshot, tag_raw, Outcome, PartKind, Pending, Pruner, Shot,
};
use crate::anthropic::{AnthropicParser, ParseError, TOOLSET_NAME};
use crate::image::ImageLimits;
use crate::key::ApiKey;
use crate::spec::ProviderOptions;
use crate::{Proposal, ProposeContext, ProviderError, StepFeedback};
use airlock_core::coords::Viewport;
use airlock_core::Action;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::{json, Value};
use url::Url;

/// The API version header value.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which computer tool to declare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AnthropicTool {
    /// GA `computer_toolset_20260801`.
    Toolset20260801,
    Computer20251124,
    Computer20250124,
    Computer20241022,
}

impl AnthropicTool {
    /// The tool `type`.
    pub fn type_name(self) -> &'static str {
        match self {
            AnthropicTool::Toolset20260801 => "computer_toolset_20260801",
            AnthropicTool::Computer20251124 => "computer_20251124",
            AnthropicTool::Computer20250124 => "computer_20250124",
            AnthropicTool::Computer20241022 => "computer_20241022",
        }
    }

    /// The `anthropic-beta` header, for legacy versions only.
    pub fn beta(self) -> Option<&'static str> {
        match self {
            AnthropicTool::Toolset20260801 => None,
            AnthropicTool::Computer20251124 => Some("computer-use-2025-11-24"),
            AnthropicTool::Computer20250124 => Some("computer-use-2025-01-24"),
            AnthropicTool::Computer20241022 => Some("computer-use-2024-10-22"),
        }
    }

    /// Image limits (wire-formats.md §1.5): toolset models take up to 2576 px and 4784 visual
    /// tokens (28 px tiles) and reject larger images; earlier models 1568 px and 1.15 MP.
    pub fn limits(self) -> ImageLimits {
        match self {
            AnthropicTool::Toolset20260801 => ImageLimits {
                max_long_edge: Some(2576),
                max_tiles: Some((28, 4784)),
                ..ImageLimits::default()
            },
            _ => ImageLimits {
                max_long_edge: Some(1568),
                max_pixels: Some(1_150_000),
                ..ImageLimits::default()
            },
        }
    }

    /// An explicit `--tool-version`, or the version the model is known to take: Claude 5 and
    /// later and Opus 4.8 get the toolset (5.5+ accept nothing else); Opus 4.5–4.7 and Sonnet
    /// 4.6 get `computer_20251124`; older models `computer_20250124`. Unknown names get the
    /// toolset.
    pub fn select(model: &str, explicit: Option<&str>) -> Result<Self, ProviderError> {
        if let Some(v) = explicit {
            return match v {
                "computer_toolset_20260801" => Ok(AnthropicTool::Toolset20260801),
                "computer_20251124" => Ok(AnthropicTool::Computer20251124),
                "computer_20250124" => Ok(AnthropicTool::Computer20250124),
                "computer_20241022" => Ok(AnthropicTool::Computer20241022),
                other => Err(ProviderError::Config(format!(
                    "unknown Anthropic tool version `{}`; use computer_toolset_20260801, \
                     computer_20251124, computer_20250124 or computer_20241022",
                    airlock_core::action::truncate(other, 60)
                ))),
            };
        }
        let m = model.to_ascii_lowercase();
        // `claude-3-7-sonnet-…`: the version comes first.
        if m.starts_with("claude-3") {
            return Ok(AnthropicTool::Computer20250124);
        }
        let families = ["opus", "sonnet", "haiku", "fable", "mythos"];
        let Some((family, rest)) = families.iter().find_map(|f| {
            let i = m.find(&format!("{f}-"))?;
            Some((*f, m.get(i + f.len() + 1..).unwrap_or("")))
        }) else {
            return Ok(AnthropicTool::Toolset20260801);
        };
        let mut nums = rest.split(['-', '.']);
        let major: u32 = nums.next().and_then(|n| n.parse().ok()).unwrap_or(0);
        // A minor version is one or two digits; an 8-digit date is not one.
        let minor: u32 = nums
            .next()
            .filter(|n| n.len() <= 2)
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        Ok(match (family, major, minor) {
            (_, 5.., _) => AnthropicTool::Toolset20260801,
            ("opus", 4, 8..) => AnthropicTool::Toolset20260801,
            ("opus", 4, 5..=7) | ("sonnet", 4, 6..) => AnthropicTool::Computer20251124,
            (_, 1..=4, _) => AnthropicTool::Computer20250124,
            _ => AnthropicTool::Toolset20260801,
        })
    }

    fn declaration(self, shot: &Shot) -> Value {
        match self {
            AnthropicTool::Toolset20260801 => json!({
                "type": self.type_name(),
                "configs": {
                    "zoom": {"enabled": false},
                    "hold_key": {"enabled": false},
                    "left_mouse_down": {"enabled": false},
                    "left_mouse_up": {"enabled": false},
                    "cursor_position": {"enabled": false}
                }
            }),
            _ => json!({
                "type": self.type_name(),
                "name": "computer",
                "display_width_px": shot.width,
                "display_height_px": shot.height,
            }),
        }
    }
}

/// One `tool_use` block of the last reply.
#[derive(Debug, Clone)]
struct Call {
    id: String,
    toolset: bool,
}

/// The Anthropic Messages adapter.
#[derive(Debug)]
pub struct AnthropicProvider {
    model: String,
    key: ApiKey,
    url: Url,
    tool: AnthropicTool,
    opts: ProviderOptions,
    http: Http,
    parser: AnthropicParser,
    messages: Vec<Value>,
    pending: Pending<Call>,
    /// The feedback to answer with again after a reply that could not be read.
    retry_feedback: Option<Vec<StepFeedback>>,
}

impl AnthropicProvider {
    /// An adapter for `model` at `base` (the API root, e.g. `https://api.anthropic.com`).
    pub fn new(
        model: &str,
        key: ApiKey,
        base: Url,
        tool: AnthropicTool,
        opts: ProviderOptions,
    ) -> Result<Self, ProviderError> {
        let vp = Viewport::default();
        Ok(AnthropicProvider {
            model: model.to_string(),
            url: join(&base, "v1/messages")?,
            http: Http::new(opts.retry, Some(key.clone()))?,
            key,
            tool,
            opts,
            parser: AnthropicParser::new(
                airlock_core::coords::CoordSpace::Screenshot {
                    width: vp.width,
                    height: vp.height,
                },
                vp,
            ),
            messages: Vec::new(),
            pending: Pending::Start,
            retry_feedback: None,
        })
    }

    /// The tool version in use.
    pub fn tool(&self) -> AnthropicTool {
        self.tool
    }

    fn headers(&self) -> Result<HeaderMap, ProviderError> {
        let mut h = HeaderMap::new();
        h.insert(
            HeaderName::from_static("x-api-key"),
            secret_header(self.key.expose())?,
        );
        h.insert(
            HeaderName::from_static("anthropic-version"),
            HeaderValue::from_static(ANTHROPIC_VERSION),
        );
        if let Some(beta) = self.tool.beta() {
            h.insert(
                HeaderName::from_static("anthropic-beta"),
                HeaderValue::from_static(beta),
            );
        }
        Ok(h)
    }

    /// The user turn answering the pending calls, with the new screenshot.
    fn user_turn(&self, ctx: &ProposeContext<'_>, feedback: &[StepFeedback], shot: &Shot) -> Value {
        let note = prompt::turn_note(ctx, &self.opts, shot.width, shot.height, shot.b64.is_some());
        let mut screen: Vec<Value> = vec![json!({"type": "text", "text": note})];
        if let Some(b64) = &shot.b64 {
            screen.push(json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": b64}}));
        }
        if let Some(s) = prompt::snapshot(ctx, &self.opts) {
            screen.push(json!({"type": "text", "text": s}));
        }
        let (calls, outcomes) = self.pending.resolve(feedback);
        if calls.is_empty() {
            let opening = match self.pending {
                Pending::Start => "Here is the current screen. Begin the task.",
                _ => "Here is the current screen. Continue the task.",
            };
            let mut content = vec![json!({"type": "text", "text": opening})];
            content.extend(screen);
            return json!({"role": "user", "content": content});
        }
        let all_ok = outcomes.iter().all(Outcome::is_ok);
        let last = calls.len() - 1;
        let mut content = Vec::new();
        for (i, (call, outcome)) in calls.iter().zip(&outcomes).enumerate() {
            let mut result = json!({"type": "tool_result", "tool_use_id": call.id});
            if call.toolset {
                super::set(&mut result, "toolset_name", json!(TOOLSET_NAME));
            }
            if outcome.is_ok() {
                let mut blocks = vec![json!({"type": "text", "text": outcome.text()})];
                if all_ok && i == last {
                    blocks.extend(screen.iter().cloned());
                }
                super::set(&mut result, "content", Value::Array(blocks));
            } else {
                super::set(&mut result, "is_error", json!(true));
                super::set(&mut result, "content", json!(outcome.text()));
            }
            content.push(result);
        }
        if !all_ok {
            content.extend(screen);
        }
        json!({"role": "user", "content": content})
    }

    async fn turn(
        &mut self,
        ctx: &ProposeContext<'_>,
        feedback: &[StepFeedback],
    ) -> Result<Proposal, TurnError> {
        use TurnError::{Committed, Uncommitted};
        let limits = self.tool.limits().with_box(self.opts.max_screenshot);
        let shot = screenshot(ctx, &limits).map_err(Uncommitted)?;
        let mut messages = self.messages.clone();
        messages.push(self.user_turn(ctx, feedback, &shot));
        prune(&mut messages, self.opts.keep_screenshots);
        let body = json!({
            "model": self.model,
            "max_tokens": self.opts.max_tokens,
            "system": prompt::system(ctx.goal, &self.opts, Finish::TextOnly),
            "tools": [self.tool.declaration(&shot)],
            "messages": messages,
        });
        let headers = self.headers().map_err(Uncommitted)?;
        let bytes = self
            .http
            .post_json(&self.url, &headers, &body)
            .await
            .map_err(Uncommitted)?;
        let at = "anthropic response".to_string();
        let resp = json_body(&bytes).map_err(|r| Uncommitted(rejected(at.clone(), r)))?;
        let content = match resp.get("content") {
            Some(Value::Array(c)) => c.clone(),
            _ => {
                return Err(Uncommitted(rejected(
                    at,
                    "the response has no `content` list".into(),
                )))
            }
        };
        let at = match resp.get("id").and_then(Value::as_str) {
            Some(id) => format!("anthropic response {}", crate::mapping::shown(id)),
            None => at,
        };
        if resp.get("stop_reason").and_then(Value::as_str) == Some("refusal") {
            return Err(Uncommitted(ProviderError::Refused(format!(
                "{at}: the model declined to continue"
            ))));
        }
        // Every tool_use needs an id to be answered; without one the turn cannot continue.
        let mut calls = Vec::new();
        let mut block_to_call = Vec::new();
        for (i, block) in content.iter().enumerate() {
            if block.get("type").and_then(Value::as_str) == Some("tool_use") {
                let Some(id) = block.get("id").and_then(Value::as_str) else {
                    return Err(Uncommitted(rejected(
                        at,
                        "a `tool_use` block has no `id`".into(),
                    )));
                };
                block_to_call.push((i, calls.len()));
                calls.push(Call {
                    id: id.to_string(),
                    toolset: block.get("toolset_name").and_then(Value::as_str)
                        == Some(TOOLSET_NAME),
                });
            }
        }
        let has_text = content.iter().any(|b| {
            b.get("type").and_then(Value::as_str) == Some("text")
                && b.get("text")
                    .and_then(Value::as_str)
                    .is_some_and(|t| !t.trim().is_empty())
        });
        if calls.is_empty() && !has_text {
            return Err(Uncommitted(rejected(
                at,
                "the reply has neither an action nor text".into(),
            )));
        }
        let usage = resp.get("usage").map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.opts.prices.usage(
                &self.model,
                n("input_tokens") + n("cache_creation_input_tokens") + n("cache_read_input_tokens"),
                n("output_tokens"),
            )
        });

        // The reply is readable: it joins the conversation whatever its calls say.
        self.messages = messages;
        self.messages
            .push(json!({"role": "assistant", "content": content}));
        self.parser.set_frame(shot.space(), shot.viewport);
        match self
            .parser
            .message(&json!({"role": "assistant", "content": content}))
        {
            Ok(parsed) if parsed.calls.is_empty() => {
                self.pending = Pending::Text;
                Ok(Proposal {
                    raw: tag_raw(&resp, "anthropic", Some(shot.frame_json())),
                    actions: vec![Action::Done { claim: parsed.text }],
                    source: at,
                    safety: Vec::new(),
                    usage,
                })
            }
            Ok(parsed) => {
                let counts = parsed.calls.iter().map(|c| c.actions.len()).collect();
                self.pending = Pending::Ran { calls, counts };
                Ok(Proposal {
                    raw: tag_raw(&resp, "anthropic", Some(shot.frame_json())),
                    actions: parsed.actions(),
                    source: at,
                    safety: Vec::new(),
                    usage,
                })
            }
            Err(e) => {
                let (bad, reason) = match &e {
                    ParseError::InBlock { index, source } => (
                        block_to_call
                            .iter()
                            .find(|(b, _)| b == index)
                            .map(|(_, c)| *c),
                        source.to_string(),
                    ),
                    other => (None, other.to_string()),
                };
                self.pending = Pending::Rejected {
                    calls,
                    bad,
                    reason: reason.clone(),
                };
                Err(Committed(rejected(at, e.to_string())))
            }
        }
    }
}

/// Replaces all but the newest `keep` screenshots (and page snapshots) with short notes, in
/// user content and inside `tool_result` content.
fn prune(messages: &mut [Value], keep: usize) {
    let mut pruner = Pruner::new(keep);
    for msg in messages.iter_mut().rev() {
        if msg.get("role").and_then(Value::as_str) != Some("user") {
            continue;
        }
        let Some(blocks) = msg.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for block in blocks.iter_mut().rev() {
            if let Some(inner) = block.get_mut("content").and_then(Value::as_array_mut) {
                for b in inner.iter_mut().rev() {
                    prune_block(b, &mut pruner);
                }
            } else {
                prune_block(block, &mut pruner);
            }
        }
    }
}

fn prune_block(block: &mut Value, pruner: &mut Pruner) {
    let kind = match block.get("type").and_then(Value::as_str) {
        Some("image") => PartKind::Screenshot,
        Some("text") if is_snapshot(block.get("text")) => PartKind::Snapshot,
        _ => PartKind::Other,
    };
    if let Some(note) = pruner.visit(kind) {
        *block = json!({"type": "text", "text": note});
    }
}

super::live_provider!(AnthropicProvider, "anthropic");

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::PRUNED_SCREENSHOT;

    #[test]
    fn tool_version_by_model_name() {
        use AnthropicTool::*;
        for (model, want) in [
            ("claude-opus-5-5", Toolset20260801),
            ("claude-sonnet-5", Toolset20260801),
            ("claude-haiku-5-5", Toolset20260801),
            ("claude-fable-5-1", Toolset20260801),
            ("claude-opus-4-8", Toolset20260801),
            ("claude-opus-4-7", Computer20251124),
            ("claude-opus-4-6", Computer20251124),
            ("claude-sonnet-4-6", Computer20251124),
            ("claude-opus-4-5-20251101", Computer20251124),
            ("claude-sonnet-4-5-20250929", Computer20250124),
            ("claude-haiku-4-5", Computer20250124),
            ("claude-sonnet-4-20250514", Computer20250124),
            ("claude-opus-4-1", Computer20250124),
            ("claude-3-7-sonnet-20250219", Computer20250124),
            ("some-proxy-model", Toolset20260801),
        ] {
            assert_eq!(AnthropicTool::select(model, None).unwrap(), want, "{model}");
        }
        assert_eq!(
            AnthropicTool::select("claude-opus-5-5", Some("computer_20251124")).unwrap(),
            Computer20251124
        );
        assert!(AnthropicTool::select("x", Some("computer_2099")).is_err());
        assert_eq!(Toolset20260801.beta(), None);
        assert_eq!(Computer20251124.beta(), Some("computer-use-2025-11-24"));
    }

    #[test]
    fn pruning_keeps_the_newest_images() {
        let img = json!({"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "x"}});
        let mut msgs = vec![
            json!({"role": "user", "content": [img.clone(), {"type": "text", "text": "<untrusted-page-content url=\"\">a</untrusted-page-content>"}]}),
            json!({"role": "assistant", "content": []}),
            json!({"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [img.clone()]}]}),
            json!({"role": "user", "content": [img.clone()]}),
        ];
        prune(&mut msgs, 2);
        assert_eq!(msgs[0]["content"][0]["text"], PRUNED_SCREENSHOT);
        assert_eq!(msgs[2]["content"][0]["content"][0]["type"], "image");
        assert_eq!(msgs[3]["content"][0]["type"], "image");
        // One snapshot, kept.
        assert!(msgs[0]["content"][1]["text"]
            .as_str()
            .unwrap()
            .starts_with("<untrusted"));
    }
}
