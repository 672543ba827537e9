//! OpenAI-compatible chat completions adapter for self-hosted open models (UI-TARS, Qwen-VL
//! behind vLLM, Ollama or llama.cpp's server).
//!
//! The model gets the host's instructions plus the action grammar of [`crate::compat`] as the
//! system message, and each screenshot as an `image_url` data URL part. Its reply is parsed
//! strictly; a reply that breaks the grammar joins the conversation and the next turn says what
//! was wrong. Each action is its own "call": the next turn lists what happened to every one.

use super::http::{join, secret_header, Http};
use super::prompt::{self, Finish};
use super::TurnError;
use super::{
    action_lines, is_snapshot, json_body, rejected, screenshot, PartKind, Pending, Pruner, Shot,
};
use crate::compat::{grammar, parse_reply};
use crate::key::ApiKey;
use crate::spec::{CompatCoords, ProviderOptions};
use crate::{Proposal, ProposeContext, ProviderError, StepFeedback};
use airlock_core::coords::CoordSpace;
use reqwest::header::{HeaderMap, AUTHORIZATION};
use serde_json::{json, Value};
use url::Url;

/// The chat-completions adapter.
#[derive(Debug)]
pub struct CompatProvider {
    model: String,
    key: Option<ApiKey>,
    url: Url,
    opts: ProviderOptions,
    http: Http,
    /// The conversation after the system message.
    messages: Vec<Value>,
    /// One entry per action of the last reply (its `Display`).
    pending: Pending<String>,
    retry_feedback: Option<Vec<StepFeedback>>,
}

impl CompatProvider {
    /// An adapter for `model` at `base` (the server's OpenAI root, e.g.
    /// `http://127.0.0.1:8000/v1`); `key` is optional (vLLM's `--api-key`).
    pub fn new(
        model: &str,
        key: Option<ApiKey>,
        base: Url,
        opts: ProviderOptions,
    ) -> Result<Self, ProviderError> {
        Ok(CompatProvider {
            model: model.to_string(),
            url: join(&base, "chat/completions")?,
            http: Http::new(opts.retry, key.clone())?,
            key,
            opts,
            messages: Vec::new(),
            pending: Pending::Start,
            retry_feedback: None,
        })
    }

    fn space(&self, shot: &Shot) -> CoordSpace {
        match self.opts.compat_coords {
            CompatCoords::Pixels => shot.space(),
            CompatCoords::Normalized { max } => CoordSpace::Grid { max },
        }
    }

    fn frame_text(&self, shot: &Shot) -> String {
        match self.opts.compat_coords {
            CompatCoords::Pixels => format!(
                "pixels of the {w}x{h} screenshot (x from 0 to {}, y from 0 to {}, origin top-left)",
                shot.width.saturating_sub(1),
                shot.height.saturating_sub(1),
                w = shot.width,
                h = shot.height
            ),
            CompatCoords::Normalized { max } => format!(
                "on a 0 to {max} grid over the screenshot, whatever its size (0,0 is the top-left \
                 corner, {max},{max} the bottom-right)"
            ),
        }
    }

    fn frame_json(&self, shot: &Shot) -> Value {
        match self.opts.compat_coords {
            CompatCoords::Pixels => shot.frame_json(),
            CompatCoords::Normalized { max } => json!({"grid": max}),
        }
    }

    fn user_turn(&self, ctx: &ProposeContext<'_>, feedback: &[StepFeedback], shot: &Shot) -> Value {
        let note = prompt::turn_note(ctx, &self.opts, shot.width, shot.height, shot.b64.is_some());
        let head = match &self.pending {
            Pending::Start => format!("Here is the current screen. Begin the task. {note}"),
            Pending::Text => format!("Here is the current screen. Continue the task. {note}"),
            Pending::Rejected { reason, .. } => format!(
                "Your last reply could not be used: {reason}. Nothing ran. Reply again in the \
                 required format. {note}"
            ),
            Pending::Ran { calls, .. } => format!(
                "Results of your last actions:\n{}\n\n{note}",
                action_lines(calls, feedback).join("\n")
            ),
        };
        let mut content = vec![json!({"type": "text", "text": head})];
        if let Some(url) = shot.data_url() {
            content.push(json!({"type": "image_url", "image_url": {"url": url}}));
        }
        if let Some(s) = prompt::snapshot(ctx, &self.opts) {
            content.push(json!({"type": "text", "text": s}));
        }
        json!({"role": "user", "content": content})
    }

    async fn turn(
        &mut self,
        ctx: &ProposeContext<'_>,
        feedback: &[StepFeedback],
    ) -> Result<Proposal, TurnError> {
        use TurnError::{Committed, Uncommitted};
        let shot = screenshot(ctx, &self.opts.image_box()).map_err(Uncommitted)?;
        let mut messages = self.messages.clone();
        messages.push(self.user_turn(ctx, feedback, &shot));
        prune(&mut messages, self.opts.keep_screenshots);
        let system = format!(
            "{}\n{}",
            prompt::system(ctx.goal, &self.opts, Finish::DoneAction),
            grammar(&self.frame_text(&shot))
        );
        let mut all = vec![json!({"role": "system", "content": system})];
        all.extend(messages.iter().cloned());
        let body = json!({
            "model": self.model,
            "messages": all,
            "max_tokens": self.opts.max_tokens,
            "temperature": 0.0,
        });
        let mut headers = HeaderMap::new();
        if let Some(key) = &self.key {
            headers.insert(
                AUTHORIZATION,
                secret_header(&format!("Bearer {}", key.expose())).map_err(Uncommitted)?,
            );
        }
        let bytes = self
            .http
            .post_json(&self.url, &headers, &body)
            .await
            .map_err(Uncommitted)?;
        let mut at = "openai-compat completion".to_string();
        let resp = json_body(&bytes).map_err(|r| Uncommitted(rejected(at.clone(), r)))?;
        if let Some(id) = resp.get("id").and_then(Value::as_str) {
            at = format!("openai-compat completion {}", crate::mapping::shown(id));
        }
        let text = match resp.pointer("/choices/0/message/content") {
            Some(Value::String(s)) => s.clone(),
            // Some servers return content parts.
            Some(Value::Array(parts)) => parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect::<Vec<_>>()
                .join(""),
            _ => String::new(),
        };
        if text.trim().is_empty() {
            return Err(Uncommitted(rejected(at, "the reply has no text".into())));
        }
        let usage = resp.get("usage").map(|u| {
            let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
            self.opts
                .prices
                .usage(&self.model, n("prompt_tokens"), n("completion_tokens"))
        });

        self.messages = messages;
        self.messages
            .push(json!({"role": "assistant", "content": text}));
        let mut raw =
            json!({"provider": "openai-compat", "frame": self.frame_json(&shot), "text": text});
        for k in ["id", "model"] {
            if let Some(v) = resp.get(k) {
                super::set(&mut raw, k, v.clone());
            }
        }
        match parse_reply(&text, self.space(&shot), shot.viewport) {
            Ok(parsed) => {
                let calls: Vec<String> = parsed.actions.iter().map(|a| a.to_string()).collect();
                let counts = vec![1; calls.len()];
                self.pending = Pending::Ran { calls, counts };
                Ok(Proposal {
                    raw,
                    actions: parsed.actions,
                    source: at,
                    safety: Vec::new(),
                    usage,
                })
            }
            Err(e) => {
                self.pending = Pending::Rejected {
                    calls: Vec::new(),
                    bad: None,
                    reason: e.to_string(),
                };
                Err(Committed(rejected(at, e.to_string())))
            }
        }
    }
}

/// Keeps the newest `keep` screenshots and page snapshots.
fn prune(messages: &mut [Value], keep: usize) {
    let mut pruner = Pruner::new(keep);
    for msg in messages.iter_mut().rev() {
        let Some(parts) = msg.get_mut("content").and_then(Value::as_array_mut) else {
            continue;
        };
        for part in parts.iter_mut().rev() {
            let kind = match part.get("type").and_then(Value::as_str) {
                Some("image_url") => PartKind::Screenshot,
                Some("text") if is_snapshot(part.get("text")) => PartKind::Snapshot,
                _ => PartKind::Other,
            };
            if let Some(note) = pruner.visit(kind) {
                *part = json!({"type": "text", "text": note});
            }
        }
    }
}

super::live_provider!(CompatProvider, "openai-compat");
