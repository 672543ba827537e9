//! `--model PROVIDER:ARG` → a provider, and the options every live adapter shares.
//!
//! | spec | provider | key | base URL (default) |
//! |---|---|---|---|
//! | `anthropic:MODEL` | [`AnthropicProvider`] | `ANTHROPIC_API_KEY` | `ANTHROPIC_BASE_URL` (`https://api.anthropic.com`; `/v1/messages` is appended) |
//! | `openai:MODEL` | [`OpenAiProvider`] | `OPENAI_API_KEY` | `OPENAI_BASE_URL` (`https://api.openai.com/v1`; `/responses` is appended) |
//! | `gemini:MODEL` | [`GeminiProvider`] | `GEMINI_API_KEY` | `GEMINI_BASE_URL` (`https://generativelanguage.googleapis.com`; `/v1beta/models/MODEL:generateContent` is appended) |
//! | `openai-compat:MODEL` | [`CompatProvider`] | `OPENAI_COMPAT_API_KEY` (optional) | `OPENAI_COMPAT_BASE_URL` (`http://127.0.0.1:8000/v1`, vLLM's default; `/chat/completions` is appended) |
//! | `scripted:FILE` | [`ScriptedProvider`] | — | — |
//!
//! The base URL conventions are the official SDKs' (the OpenAI SDK's base includes `/v1`, the
//! Anthropic SDK's does not). Plain `http://` is accepted only for loopback hosts, or for
//! `openai-compat` without a key.

use crate::image::ImageLimits;
use crate::key::ApiKey;
use crate::live::http::{check_base_url, RetryPolicy};
use crate::live::{
    AnthropicProvider, AnthropicTool, CompatProvider, GeminiProvider, OpenAiProvider, OpenAiTool,
};
use crate::usage::PriceTable;
use crate::{Proposal, ProposeContext, Provider, ProviderError, ScriptedProvider};
use std::time::Duration;

/// The run's budgets, stated to the model in the host's instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RunLimits {
    pub max_steps: Option<u32>,
    pub max_denials: Option<u32>,
    pub wall_clock_secs: Option<u64>,
}

/// The coordinate frame of the open-model grammar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CompatCoords {
    /// Pixels of the screenshot as sent (Qwen2.5-VL, UI-TARS-1.5).
    #[default]
    Pixels,
    /// A normalised grid from 0 to `max` on both axes (Qwen3-VL and UI-TARS 1.0 use 0–999/1000).
    Normalized { max: u32 },
}

/// Options shared by the live adapters. `Default` is what `airlock run` uses.
#[derive(Debug, Clone)]
pub struct ProviderOptions {
    /// Tool version (`--tool-version`). Anthropic: `computer_toolset_20260801` (GA),
    /// `computer_20251124`, `computer_20250124`, `computer_20241022`. OpenAI: `computer` (GA),
    /// `computer_use_preview`. `None` picks by model name.
    pub tool_version: Option<String>,
    /// Screenshots kept in the conversation; older ones are replaced by a short note.
    pub keep_screenshots: usize,
    /// `max_tokens` / `max_output_tokens` of each request.
    pub max_tokens: u32,
    pub retry: RetryPolicy,
    /// Prices for [`crate::Usage::cost_usd`]; empty by default.
    pub prices: PriceTable,
    /// Downscale screenshots to fit this box (`(width, height)`), in addition to the vendor's
    /// own limits.
    pub max_screenshot: Option<(u32, u32)>,
    /// Send the untrusted accessibility snapshot with each screenshot.
    pub include_snapshot: bool,
    /// Budgets to state in the instructions.
    pub limits: RunLimits,
    /// Operator text appended to the host's instructions.
    pub extra_instructions: Option<String>,
    /// OpenAI: chain turns with `previous_response_id` (server-side history; screenshot
    /// pruning then cannot apply) instead of replaying the pruned conversation.
    pub openai_previous_response_id: bool,
    /// OpenAI preview tool: send `current_url` with each screenshot (its placement is not in
    /// the SDK types; off by default).
    pub openai_current_url: bool,
    /// The open-model grammar's coordinate frame.
    pub compat_coords: CompatCoords,
}

impl Default for ProviderOptions {
    fn default() -> Self {
        ProviderOptions {
            tool_version: None,
            keep_screenshots: 3,
            max_tokens: 4096,
            retry: RetryPolicy::default(),
            prices: PriceTable::default(),
            max_screenshot: None,
            include_snapshot: true,
            limits: RunLimits::default(),
            extra_instructions: None,
            openai_previous_response_id: false,
            openai_current_url: false,
            compat_coords: CompatCoords::default(),
        }
    }
}

impl ProviderOptions {
    /// Sets the per-request timeout.
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.retry.request_timeout = timeout;
        self
    }

    pub(crate) fn image_box(&self) -> ImageLimits {
        ImageLimits::default().with_box(self.max_screenshot)
    }
}

/// Any provider `--model` can name.
#[derive(Debug)]
pub enum AnyProvider {
    Anthropic(AnthropicProvider),
    OpenAi(OpenAiProvider),
    Gemini(GeminiProvider),
    OpenAiCompat(CompatProvider),
    Scripted(ScriptedProvider),
}

impl Provider for AnyProvider {
    fn name(&self) -> &str {
        match self {
            AnyProvider::Anthropic(p) => p.name(),
            AnyProvider::OpenAi(p) => p.name(),
            AnyProvider::Gemini(p) => p.name(),
            AnyProvider::OpenAiCompat(p) => p.name(),
            AnyProvider::Scripted(p) => p.name(),
        }
    }

    async fn propose(&mut self, ctx: ProposeContext<'_>) -> Result<Proposal, ProviderError> {
        match self {
            AnyProvider::Anthropic(p) => p.propose(ctx).await,
            AnyProvider::OpenAi(p) => p.propose(ctx).await,
            AnyProvider::Gemini(p) => p.propose(ctx).await,
            AnyProvider::OpenAiCompat(p) => p.propose(ctx).await,
            AnyProvider::Scripted(p) => p.propose(ctx).await,
        }
    }
}

/// Builds a provider from `--model` text, reading keys and base URLs from the environment.
pub fn from_spec(spec: &str, opts: ProviderOptions) -> Result<AnyProvider, ProviderError> {
    from_spec_with_env(spec, opts, &|k| std::env::var(k).ok())
}

/// [`from_spec`] with an explicit environment (tests).
pub fn from_spec_with_env(
    spec: &str,
    opts: ProviderOptions,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<AnyProvider, ProviderError> {
    let (kind, arg) = spec.split_once(':').ok_or_else(|| {
        ProviderError::Config(format!(
            "`{spec}` is not PROVIDER:ARG; use anthropic:MODEL, openai:MODEL, gemini:MODEL, \
             openai-compat:MODEL or scripted:FILE.jsonl"
        ))
    })?;
    let arg = arg.trim();
    if arg.is_empty() {
        return Err(ProviderError::Config(format!(
            "`{spec}` names no model or file"
        )));
    }
    let var = |k: &str| env(k).filter(|v| !v.trim().is_empty());
    let key = |name: &str| -> Result<ApiKey, ProviderError> {
        let v = var(name).ok_or_else(|| ProviderError::Config(format!("`{name}` is not set")))?;
        ApiKey::new(v).map_err(|e| ProviderError::Config(format!("`{name}`: {e}")))
    };
    let base = |name: &str, default: &str, has_key: bool| {
        let raw = var(name).unwrap_or_else(|| default.to_string());
        check_base_url(&raw, name, has_key)
    };
    let not_for = |p: &str| -> Result<(), ProviderError> {
        match &opts.tool_version {
            Some(v) => Err(ProviderError::Config(format!(
                "tool version `{v}` does not apply to `{p}`"
            ))),
            None => Ok(()),
        }
    };
    match kind {
        "anthropic" => {
            check_model(arg)?;
            let tool = AnthropicTool::select(arg, opts.tool_version.as_deref())?;
            let base = base("ANTHROPIC_BASE_URL", "https://api.anthropic.com", true)?;
            Ok(AnyProvider::Anthropic(AnthropicProvider::new(
                arg,
                key("ANTHROPIC_API_KEY")?,
                base,
                tool,
                opts,
            )?))
        }
        "openai" => {
            check_model(arg)?;
            let tool = OpenAiTool::select(arg, opts.tool_version.as_deref())?;
            let base = base("OPENAI_BASE_URL", "https://api.openai.com/v1", true)?;
            Ok(AnyProvider::OpenAi(OpenAiProvider::new(
                arg,
                key("OPENAI_API_KEY")?,
                base,
                tool,
                opts,
            )?))
        }
        "gemini" => {
            not_for("gemini")?;
            let model = arg.strip_prefix("models/").unwrap_or(arg);
            check_model(model)?;
            let base = base(
                "GEMINI_BASE_URL",
                "https://generativelanguage.googleapis.com",
                true,
            )?;
            Ok(AnyProvider::Gemini(GeminiProvider::new(
                model,
                key("GEMINI_API_KEY")?,
                base,
                opts,
            )?))
        }
        "openai-compat" => {
            not_for("openai-compat")?;
            check_model(arg)?;
            let key =
                match var("OPENAI_COMPAT_API_KEY") {
                    Some(v) => Some(ApiKey::new(v).map_err(|e| {
                        ProviderError::Config(format!("`OPENAI_COMPAT_API_KEY`: {e}"))
                    })?),
                    None => None,
                };
            let base = base(
                "OPENAI_COMPAT_BASE_URL",
                "http://127.0.0.1:8000/v1",
                key.is_some(),
            )?;
            Ok(AnyProvider::OpenAiCompat(CompatProvider::new(
                arg, key, base, opts,
            )?))
        }
        "scripted" => {
            not_for("scripted")?;
            Ok(AnyProvider::Scripted(ScriptedProvider::open(arg)?))
        }
        other => Err(ProviderError::Config(format!(
            "unknown provider `{other}`; use anthropic, openai, gemini, openai-compat or scripted"
        ))),
    }
}

/// Model names go into URLs and headers: letters, digits and `.`, `_`, `-`, `:`, `@`, `/`
/// (Ollama tags, Hugging Face repos), 1 to 200 characters, no `..`.
fn check_model(model: &str) -> Result<(), ProviderError> {
    let ok = !model.is_empty()
        && model.len() <= 200
        && !model.contains("..")
        && !model.starts_with('/')
        && model
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | ':' | '@' | '/'));
    if ok {
        Ok(())
    } else {
        Err(ProviderError::Config(format!(
            "`{}` is not a model name",
            airlock_core::action::truncate(model, 80)
        )))
    }
}
