//! Replays a recorded transcript instead of asking a live model.
//!
//! A transcript is JSON Lines: one model turn per line; blank lines and lines starting with `#`
//! are skipped. Each line says which format it is in by its shape:
//!
//! | line | becomes |
//! |---|---|
//! | `{"action":"left_click","coordinate":[640,400]}` | Anthropic legacy `computer` input |
//! | `{"type":"tool_use","name":"computer","input":{…}}` | legacy `tool_use` block |
//! | `{"type":"tool_use","name":"left_click","toolset_name":"computer","input":{…}}` | GA toolset member |
//! | `{"role":"assistant","content":[…]}` / `{"type":"message","content":[…]}` | the batch of its `tool_use` blocks; with none, its text as a `done` claim |
//! | `{"type":"text","text":"…"}` | `done` with the text as claim |
//! | `{"airlock":{"kind":"click",…}}` or `{"airlock":[…]}` | Airlock-native action(s) |
//! | `{"provider":"anthropic",…}` | the rest of the line, as above |
//! | `{"provider":"openai","type":"computer_call",…}` | the call's `action`/`actions` |
//! | `{"provider":"openai","output":[…],…}` | a Responses API response: its calls, or its message text as a `done` claim |
//! | `{"provider":"openai","type":"message",…}` | its text as a `done` claim |
//! | `{"provider":"gemini","name":"click_at","args":{…}}` | one function call |
//! | `{"provider":"gemini","functionCall":{…}}` | one function-call part |
//! | `{"provider":"gemini","role":"model","parts":[…]}` / `{"provider":"gemini","candidates":[…]}` | the calls of the content (or its text as a claim) |
//! | `{"provider":"openai-compat","text":"Action: click(…)"}` | the reply, parsed by the open-model grammar |
//!
//! Coordinates are screenshot pixels of screenshots taken at viewport size, unless the line has
//! a `"frame"`: `{"width":W,"height":H}` (the screenshot the model saw was W×H, as live
//! adapters record) or `{"grid":MAX}` (a 0–MAX grid). Gemini lines always use the 0–999 grid.
//! Airlock-native points are already CSS pixels. OpenAI `pending_safety_checks` and Gemini
//! `safety_decision`s become [`Proposal::safety`] signals, as from the live adapters. When the transcript runs out, the provider proposes
//! `done` ("transcript ended") once, since a model that stops is claiming it is finished and the
//! host verifies that claim anyway; asked again after that, it returns
//! [`ProviderError::Exhausted`]. A malformed line is a non-recoverable
//! [`ProviderError::Malformed`] naming the line: a transcript cannot react to feedback.
//! [`ScriptedProvider::check`] replays the whole file dry first, so `airlock run` refuses a
//! transcript with such a line (or an unknown secret, or no turn at all) before any browser
//! starts.

use crate::anthropic::{json_kind, AnthropicParser};
use crate::coords::in_viewport;
use crate::text::{is_secret_name, mentions_placeholder};
use crate::{compat, gemini, openai};
use crate::{Proposal, ProposeContext, Provider, ProviderError, SafetySignal};
use airlock_core::action::truncate;
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, Target, TypedText};
use serde_json::Map;
use serde_json::{json, Value};
use std::path::Path;

/// Most actions one Airlock-native line may hold.
pub const MAX_NATIVE_BATCH: usize = 32;
/// Longest `wait` a native action may ask for, in milliseconds (as for Anthropic's `wait`).
pub const MAX_NATIVE_WAIT_MS: u64 = 300_000;

/// A [`Provider`] that replays a JSONL transcript.
#[derive(Debug, Clone)]
pub struct ScriptedProvider {
    lines: Vec<String>,
    /// Index of the next line to read.
    next: usize,
    parser: AnthropicParser,
    ended: bool,
}

impl ScriptedProvider {
    /// Reads the whole transcript at `path`. Lines are parsed one by one as they are proposed,
    /// so a malformed line surfaces when the run reaches it.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, ProviderError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| ProviderError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self::from_transcript(&text))
    }

    /// A provider over transcript text already in memory.
    pub fn from_transcript(text: &str) -> Self {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let vp = Viewport::default();
        ScriptedProvider {
            lines: text.lines().map(str::to_string).collect(),
            next: 0,
            parser: AnthropicParser::new(screenshot_space(vp), vp),
            ended: false,
        }
    }

    /// The synchronous core of [`Provider::propose`]: the next line, parsed for viewport `vp`.
    pub fn next_proposal(&mut self, vp: Viewport) -> Result<Proposal, ProviderError> {
        self.parser.set_frame(screenshot_space(vp), vp);
        while let Some(line) = self.lines.get(self.next) {
            self.next += 1;
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let at = format!("transcript line {}", self.next);
            let malformed = |reason: String| ProviderError::Malformed {
                at: at.clone(),
                reason,
                recoverable: false,
            };
            let raw: Value =
                serde_json::from_str(trimmed).map_err(|e| malformed(json_error(&e)))?;
            let (actions, safety) = parse_line(&raw, &mut self.parser, vp).map_err(malformed)?;
            let mut proposal = Proposal::new(raw, actions, at);
            proposal.safety = safety;
            return Ok(proposal);
        }
        if self.ended {
            return Err(ProviderError::Exhausted);
        }
        self.ended = true;
        Ok(Proposal::new(
            json!({ "end_of_transcript": true }),
            vec![Action::Done {
                claim: "transcript ended".to_string(),
            }],
            "end of transcript",
        ))
    }
}

/// What [`ScriptedProvider::check`] found in a transcript that replays cleanly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptSummary {
    /// Lines holding a model turn (neither blank nor a comment).
    pub turns: usize,
    /// Actions across those turns.
    pub actions: usize,
    /// Whether some turn claims `done`; otherwise the run ends when the transcript runs out.
    pub claims_done: bool,
}

impl ScriptedProvider {
    /// Parses the whole transcript for viewport `vp` the way a run would replay it, so that a
    /// fault is found before any browser starts: a malformed line, an unknown action, a point
    /// outside the screenshot, a `{{secret:NAME}}` the task does not declare (`secrets` are the
    /// names it does), or no turn at all. The error names the line. `self` is not advanced.
    pub fn check(
        &self,
        vp: Viewport,
        secrets: &[&str],
    ) -> Result<TranscriptSummary, ProviderError> {
        let mut dry = ScriptedProvider {
            lines: self.lines.clone(),
            next: 0,
            parser: AnthropicParser::new(screenshot_space(vp), vp),
            ended: false,
        };
        let mut summary = TranscriptSummary {
            turns: 0,
            actions: 0,
            claims_done: false,
        };
        loop {
            let proposal = dry.next_proposal(vp)?;
            if dry.ended {
                break;
            }
            summary.turns += 1;
            summary.actions += proposal.actions.len();
            for action in &proposal.actions {
                match action {
                    Action::Type {
                        text: TypedText::Secret(name),
                        ..
                    } if !secrets.contains(&name.as_str()) => {
                        return Err(ProviderError::Malformed {
                            at: proposal.source.clone(),
                            reason: unknown_secret(name, secrets),
                            recoverable: false,
                        })
                    }
                    Action::Done { .. } => summary.claims_done = true,
                    _ => {}
                }
            }
        }
        if summary.turns == 0 {
            return Err(ProviderError::Malformed {
                at: "transcript".to_string(),
                reason: "it holds no turn (the file is empty, or only blank lines and comments), \
                         so the model would propose nothing"
                    .to_string(),
                recoverable: false,
            });
        }
        Ok(summary)
    }
}

/// "unknown secret `NAME`", with the names the task does declare.
fn unknown_secret(name: &str, declared: &[&str]) -> String {
    let name = truncate(name, 64);
    if declared.is_empty() {
        format!("unknown secret `{name}`: the task declares no secrets")
    } else {
        let names: Vec<String> = declared.iter().map(|d| format!("`{d}`")).collect();
        format!(
            "unknown secret `{name}`: the task declares {}",
            names.join(", ")
        )
    }
}

impl Provider for ScriptedProvider {
    fn name(&self) -> &str {
        "scripted"
    }

    async fn propose(&mut self, ctx: ProposeContext<'_>) -> Result<Proposal, ProviderError> {
        self.next_proposal(ctx.viewport)
    }
}

/// Transcript coordinates are pixels of screenshots captured at viewport size.
fn screenshot_space(vp: Viewport) -> CoordSpace {
    CoordSpace::Screenshot {
        width: vp.width,
        height: vp.height,
    }
}

/// A serde_json error without its "at line 1 column N" suffix, which would contradict the
/// transcript line number.
fn json_error(e: &serde_json::Error) -> String {
    let msg = e.to_string();
    let msg = msg
        .rsplit_once(" at line ")
        .map_or(msg.as_str(), |(m, _)| m);
    format!("invalid JSON at column {}: {msg}", e.column())
}

/// Parses one transcript line into its batch of actions (and any vendor safety signals), or a
/// reason it is malformed.
fn parse_line(
    line: &Value,
    parser: &mut AnthropicParser,
    vp: Viewport,
) -> Result<(Vec<Action>, Vec<SafetySignal>), String> {
    let obj = line
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, not {}", json_kind(line)))?;
    if let Some(native) = obj.get("airlock") {
        return Ok((native_actions(native, parser, vp)?, Vec::new()));
    }
    let mut rest = obj.clone();
    let provider = rest.remove("provider");
    let space = match rest.remove("frame") {
        None | Some(Value::Null) => screenshot_space(vp),
        Some(f) => frame_space(&f)?,
    };
    let rest = Value::Object(rest);
    let (actions, safety) = match provider {
        None => {
            parser.set_frame(space, vp);
            (anthropic_line(&rest, parser)?, Vec::new())
        }
        Some(Value::String(p)) => match p.as_str() {
            "anthropic" => {
                parser.set_frame(space, vp);
                (anthropic_line(&rest, parser)?, Vec::new())
            }
            "openai" => openai_line(&rest, space, vp)?,
            "gemini" => gemini_line(&rest, vp)?,
            "openai-compat" => (compat_line(&rest, space, vp)?, Vec::new()),
            other => return Err(format!("unknown provider `{}`", truncate(other, 64))),
        },
        Some(other) => {
            return Err(format!(
                "`provider` must be a string, not {}",
                json_kind(&other)
            ))
        }
    };
    if actions.is_empty() {
        return Err("the line holds no action".to_string());
    }
    for a in &actions {
        parser.track(a);
    }
    Ok((actions, safety))
}

/// A line's `frame`: `{"width":W,"height":H}` or `{"grid":MAX}`.
fn frame_space(frame: &Value) -> Result<CoordSpace, String> {
    let dim = |k: &str| {
        frame
            .get(k)
            .and_then(Value::as_u64)
            .and_then(|n| u32::try_from(n).ok())
            .filter(|n| (1..=16_384).contains(n))
    };
    if let Some(max) = dim("grid") {
        return Ok(CoordSpace::Grid { max });
    }
    match (dim("width"), dim("height")) {
        (Some(width), Some(height)) => Ok(CoordSpace::Screenshot { width, height }),
        _ => Err(
            "`frame` must be {\"width\": W, \"height\": H} or {\"grid\": MAX} with values from 1 to 16384"
                .to_string(),
        ),
    }
}

/// A claim from text, or an error when there is none.
fn claim(text: String, what: &str) -> Result<Vec<Action>, String> {
    if text.trim().is_empty() {
        Err(format!("the {what} has neither actions nor text"))
    } else {
        Ok(vec![Action::Done { claim: text }])
    }
}

fn openai_line(
    line: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<(Vec<Action>, Vec<SafetySignal>), String> {
    let obj = line.as_object().cloned().unwrap_or_default();
    if obj.contains_key("output") {
        let parsed = openai::parse_response(line, space, vp).map_err(|e| e.to_string())?;
        if parsed.calls.is_empty() {
            return Ok((claim(parsed.text, "response")?, Vec::new()));
        }
        return Ok((parsed.actions(), parsed.safety()));
    }
    match obj.get("type").and_then(Value::as_str) {
        Some("computer_call") => {
            let call = openai::parse_computer_call(line, space, vp).map_err(|e| e.to_string())?;
            let safety = openai::safety_signals(&call.pending_safety_checks, 0);
            Ok((call.actions, safety))
        }
        Some("message") => Ok((
            claim(openai::message_text(&obj).join("\n"), "message")?,
            Vec::new(),
        )),
        _ => Err(
            "unrecognised OpenAI line: expected a `computer_call` item, a `message` item or a \
             response with `output`"
                .to_string(),
        ),
    }
}

fn gemini_line(line: &Value, vp: Viewport) -> Result<(Vec<Action>, Vec<SafetySignal>), String> {
    let obj: Map<String, Value> = line.as_object().cloned().unwrap_or_default();
    let content = if obj.contains_key("candidates") {
        gemini::parse_response(line, vp)
    } else if obj.contains_key("parts") {
        gemini::parse_content(line, vp)
    } else if obj.contains_key("functionCall") || obj.contains_key("function_call") {
        gemini::parse_parts(std::slice::from_ref(line), vp)
    } else if obj.contains_key("name") {
        gemini::parse_function_call(line, vp).map(|call| gemini::ParsedContent {
            text: String::new(),
            calls: vec![call],
        })
    } else if let Some(Value::String(text)) = obj.get("text") {
        return Ok((claim(text.clone(), "line")?, Vec::new()));
    } else {
        return Err(
            "unrecognised Gemini line: expected a function call (`name`, `args`), a \
             `functionCall` part, a content with `parts` or a response with `candidates`"
                .to_string(),
        );
    }
    .map_err(|e| e.to_string())?;
    if content.calls.is_empty() {
        return Ok((claim(content.text, "content")?, Vec::new()));
    }
    Ok((content.actions(), content.safety()))
}

fn compat_line(line: &Value, space: CoordSpace, vp: Viewport) -> Result<Vec<Action>, String> {
    match line.get("text") {
        Some(Value::String(text)) => compat::parse_reply(text, space, vp)
            .map(|r| r.actions)
            .map_err(|e| e.to_string()),
        _ => Err("an `openai-compat` line needs a string `text`".to_string()),
    }
}

fn anthropic_line(line: &Value, parser: &mut AnthropicParser) -> Result<Vec<Action>, String> {
    let obj = line
        .as_object()
        .ok_or_else(|| format!("expected a JSON object, not {}", json_kind(line)))?;
    if obj.contains_key("action") {
        return parser.computer_input(line).map_err(|e| e.to_string());
    }
    let kind = obj.get("type").and_then(Value::as_str);
    match kind {
        Some("tool_use") => parser
            .tool_use(line)
            .map(|call| call.actions)
            .map_err(|e| e.to_string()),
        Some("text") => match obj.get("text") {
            Some(Value::String(claim)) => Ok(vec![Action::Done {
                claim: claim.clone(),
            }]),
            _ => Err("a `text` line needs a string `text`".to_string()),
        },
        Some("message") => message_line(line, parser),
        None if obj.contains_key("role") => message_line(line, parser),
        Some(other) => Err(format!("unrecognised line type `{}`", truncate(other, 64))),
        None => Err(
            "unrecognised line: expected an Anthropic `computer` input (with `action`), a \
             `tool_use` block, an assistant message, a `text` block or `{\"airlock\": …}`"
                .to_string(),
        ),
    }
}

/// An assistant message: the batch of its computer calls, or with none its text as a claim.
fn message_line(line: &Value, parser: &mut AnthropicParser) -> Result<Vec<Action>, String> {
    let msg = parser.message(line).map_err(|e| e.to_string())?;
    if !msg.calls.is_empty() {
        Ok(msg.actions())
    } else if !msg.text.trim().is_empty() {
        Ok(vec![Action::Done { claim: msg.text }])
    } else {
        Err("the message has neither `tool_use` blocks nor text".to_string())
    }
}

/// `{"airlock": action}` or `{"airlock": [action, …]}`, validated beyond deserialisation.
fn native_actions(
    v: &Value,
    parser: &mut AnthropicParser,
    vp: Viewport,
) -> Result<Vec<Action>, String> {
    let items: Vec<&Value> = match v {
        Value::Array(items) => items.iter().collect(),
        single => vec![single],
    };
    if items.is_empty() {
        return Err("`airlock` holds an empty batch".to_string());
    }
    if items.len() > MAX_NATIVE_BATCH {
        return Err(format!(
            "`airlock` holds more than {MAX_NATIVE_BATCH} actions"
        ));
    }
    let mut actions = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let action: Action = serde_json::from_value(item.clone())
            .map_err(|e| format!("invalid Airlock action {}: {e}", i + 1))?;
        check_native(&action, vp).map_err(|e| format!("Airlock action {}: {e}", i + 1))?;
        actions.push(action);
    }
    for a in &actions {
        parser.track(a);
    }
    Ok(actions)
}

/// The checks the Anthropic parser applies, for actions that skipped it.
fn check_native(action: &Action, vp: Viewport) -> Result<(), String> {
    let point_ok = |p: &airlock_core::Point| {
        if in_viewport(*p, vp) {
            Ok(())
        } else {
            Err(format!(
                "point {p} is outside the {}x{} viewport",
                vp.width, vp.height
            ))
        }
    };
    match action {
        Action::Click { target, count, .. } => {
            if !(1..=3).contains(count) {
                return Err(format!("click count {count} is outside 1 to 3"));
            }
            if let Target::Point(p) = target {
                point_ok(p)?;
            }
        }
        Action::Type { target, text } => {
            if let Some(Target::Point(p)) = target {
                point_ok(p)?;
            }
            match text {
                TypedText::Literal(t) if mentions_placeholder(t) => {
                    return Err(
                        "a literal must not contain a `{{secret:…}}` placeholder; use \
                         `{\"secret\": \"NAME\"}` for a secret"
                            .to_string(),
                    )
                }
                TypedText::Secret(name) if !is_secret_name(name) => {
                    return Err("invalid secret name".to_string())
                }
                _ => {}
            }
        }
        Action::Key { repeat, .. } => {
            if !(1..=crate::anthropic::MAX_KEY_REPEAT).contains(repeat) {
                return Err(format!(
                    "key repeat {repeat} is outside 1 to {}",
                    crate::anthropic::MAX_KEY_REPEAT
                ));
            }
        }
        Action::Scroll { at, .. } => {
            if let Some(p) = at {
                point_ok(p)?;
            }
        }
        Action::MouseMove { to } => point_ok(to)?,
        Action::Drag { from, to } => {
            point_ok(from)?;
            point_ok(to)?;
        }
        Action::Hover { target }
        | Action::Select { target, .. }
        | Action::Upload { target, .. } => {
            if let Target::Point(p) = target {
                point_ok(p)?;
            }
        }
        Action::Wait { timeout_ms, .. } => {
            if *timeout_ms > MAX_NATIVE_WAIT_MS {
                return Err(format!(
                    "wait timeout {timeout_ms} ms is more than {MAX_NATIVE_WAIT_MS}"
                ));
            }
        }
        Action::Navigate { .. }
        | Action::Screenshot
        | Action::Back
        | Action::Forward
        | Action::Done { .. } => {}
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::StepFeedback;
    use airlock_core::{KeyCombo, Modifiers, MouseButton, Observation, Point};
    use std::io::Write;

    const VP: Viewport = Viewport {
        width: 1280,
        height: 800,
    };

    fn transcript(text: &str) -> (tempfile::NamedTempFile, ScriptedProvider) {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        file.write_all(text.as_bytes()).unwrap();
        file.flush().unwrap();
        let provider = ScriptedProvider::open(file.path()).unwrap();
        (file, provider)
    }

    fn left_click(x: f64, y: f64) -> Action {
        Action::Click {
            target: Target::Point(Point { x, y }),
            button: MouseButton::Left,
            count: 1,
            modifiers: Modifiers::default(),
        }
    }

    fn malformed(err: ProviderError) -> (String, String, bool) {
        match err {
            ProviderError::Malformed {
                at,
                reason,
                recoverable,
            } => (at, reason, recoverable),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn replays_each_line_shape_in_order_skipping_comments_and_blanks() {
        let (_f, mut p) = transcript(concat!(
            "# a recorded run\n",
            "\n",
            r#"{"action":"left_click","coordinate":[640,400]}"#,
            "\n   \n",
            r#"{"type":"tool_use","id":"toolu_1","name":"computer","input":{"action":"type","text":"hello"}}"#,
            "\n",
            "  # indented comment\r\n",
            r#"{"type":"tool_use","name":"key","toolset_name":"computer","input":{"text":"Return"}}"#,
            "\n",
            r#"{"airlock":{"kind":"click","target":{"role":{"role":"button","name":"Submit note"}}}}"#,
            "\n",
            r#"{"provider":"anthropic","action":"screenshot"}"#,
            "\n",
            r#"{"type":"text","text":"The note is saved."}"#,
            "\n",
        ));
        let a = p.next_proposal(VP).unwrap();
        assert_eq!(a.source, "transcript line 3");
        assert_eq!(a.actions, vec![left_click(640.0, 400.0)]);
        assert_eq!(
            a.raw,
            serde_json::json!({"action": "left_click", "coordinate": [640, 400]})
        );

        let b = p.next_proposal(VP).unwrap();
        assert_eq!(b.source, "transcript line 5");
        assert_eq!(
            b.actions,
            vec![Action::Type {
                target: None,
                text: TypedText::Literal("hello".into())
            }]
        );
        assert_eq!(b.raw["id"], "toolu_1");

        let c = p.next_proposal(VP).unwrap();
        assert_eq!(c.source, "transcript line 7");
        assert_eq!(
            c.actions,
            vec![Action::Key {
                combo: KeyCombo::parse("Return").unwrap(),
                repeat: 1
            }]
        );

        let d = p.next_proposal(VP).unwrap();
        assert_eq!(
            d.actions,
            vec![Action::Click {
                target: Target::Role {
                    role: "button".into(),
                    name: "Submit note".into()
                },
                button: MouseButton::Left,
                count: 1,
                modifiers: Modifiers::default(),
            }]
        );

        let e = p.next_proposal(VP).unwrap();
        assert_eq!(e.actions, vec![Action::Screenshot]);
        assert_eq!(e.raw["provider"], "anthropic");

        let f = p.next_proposal(VP).unwrap();
        assert_eq!(
            f.actions,
            vec![Action::Done {
                claim: "The note is saved.".into()
            }]
        );
    }

    #[test]
    fn the_end_of_the_transcript_is_a_done_claim_then_exhaustion() {
        let (_f, mut p) = transcript("{\"action\":\"screenshot\"}\n# trailing comment\n");
        p.next_proposal(VP).unwrap();
        let end = p.next_proposal(VP).unwrap();
        assert_eq!(
            end.actions,
            vec![Action::Done {
                claim: "transcript ended".into()
            }]
        );
        assert_eq!(end.raw, serde_json::json!({"end_of_transcript": true}));
        assert!(matches!(p.next_proposal(VP), Err(ProviderError::Exhausted)));
    }

    #[test]
    fn an_empty_transcript_ends_at_once() {
        let (_f, mut p) = transcript("");
        assert!(matches!(
            p.next_proposal(VP).unwrap().actions.as_slice(),
            [Action::Done { .. }]
        ));
    }

    #[test]
    fn a_message_line_is_a_batch_and_a_text_only_message_is_a_claim() {
        let (_f, mut p) = transcript(concat!(
            r#"{"role":"assistant","content":[{"type":"text","text":"Saving."},"#,
            r#"{"type":"tool_use","id":"t1","name":"left_click","toolset_name":"computer","input":{"coordinate":[10,20]}},"#,
            r#"{"type":"tool_use","id":"t2","name":"key","toolset_name":"computer","input":{"text":"ctrl+s"}}]}"#,
            "\n",
            r#"{"type":"message","role":"assistant","content":[{"type":"text","text":"Done: the report is filed."}]}"#,
            "\n",
            r#"{"type":"message","content":[]}"#,
            "\n",
        ));
        let batch = p.next_proposal(VP).unwrap();
        assert_eq!(batch.actions.len(), 2);
        assert_eq!(batch.actions[0], left_click(10.0, 20.0));
        let claim = p.next_proposal(VP).unwrap();
        assert_eq!(
            claim.actions,
            vec![Action::Done {
                claim: "Done: the report is filed.".into()
            }]
        );
        let (at, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(at, "transcript line 3");
        assert_eq!(reason, "the message has neither `tool_use` blocks nor text");
    }

    #[test]
    fn a_malformed_line_names_its_line_and_the_problem() {
        let (_f, mut p) = transcript(concat!(
            "# header\n",
            "{\"action\":\"screenshot\"}\n",
            "\n",
            "{\"action\":\"teleport\",\"coordinate\":[1,2]}\n",
            "{\"action\": \"left_click\", \n",
            "[1,2]\n",
            "{\"hello\":1}\n",
            "{\"action\":\"left_click\",\"coordinate\":\"640,400\"}\n",
        ));
        p.next_proposal(VP).unwrap();
        let err = p.next_proposal(VP).unwrap_err();
        assert_eq!(
            err.to_string(),
            "transcript line 4: unknown action `teleport`"
        );
        assert!(!err.is_recoverable());
        let (at, reason, recoverable) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(at, "transcript line 5");
        assert!(reason.starts_with("invalid JSON at column"), "{reason}");
        assert!(!reason.contains("line 1"), "{reason}");
        assert!(!recoverable);
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(reason, "expected a JSON object, not an array");
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.starts_with("unrecognised line"), "{reason}");
        let (at, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(at, "transcript line 8");
        assert_eq!(
            reason,
            "`coordinate` of `left_click` must be [x, y] (two numbers), not a string"
        );
    }

    #[test]
    fn even_recoverable_parse_errors_are_final_in_a_transcript() {
        let (_f, mut p) = transcript("{\"action\":\"zoom\",\"region\":[0,0,10,10]}\n");
        let (_, reason, recoverable) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.starts_with("unsupported action `zoom`"), "{reason}");
        assert!(!recoverable);
    }

    #[test]
    fn unknown_providers_and_bad_frames_are_errors() {
        let (_f, mut p) = transcript(concat!(
            "{\"provider\":\"mistral\"}\n",
            "{\"provider\":\"openai\",\"frame\":{\"width\":0,\"height\":1},\"type\":\"computer_call\"}\n",
            "{\"provider\":\"openai\",\"hello\":1}\n",
        ));
        let err = p.next_proposal(VP).unwrap_err();
        assert!(
            err.to_string().ends_with("unknown provider `mistral`"),
            "{err}"
        );
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.starts_with("`frame` must be"), "{reason}");
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.starts_with("unrecognised OpenAI line"), "{reason}");
    }

    #[test]
    fn openai_gemini_and_open_model_lines_replay_with_safety_signals() {
        let (_f, mut p) = transcript(concat!(
            r#"{"provider":"openai","type":"computer_call","call_id":"c1","action":{"type":"click","button":"left","x":156,"y":50},"pending_safety_checks":[{"id":"cu_sc_1","code":"malicious_instructions","message":"Careful."}]}"#,
            "\n",
            r#"{"provider":"openai","frame":{"width":640,"height":400},"output":[{"type":"computer_call","call_id":"c2","actions":[{"type":"click","button":"left","x":320,"y":200},{"type":"keypress","keys":["CTRL","L"]}],"pending_safety_checks":[]}]}"#,
            "\n",
            r#"{"provider":"gemini","name":"click_at","args":{"x":500,"y":500,"safety_decision":{"decision":"require_confirmation","explanation":"Cookie banner."}}}"#,
            "\n",
            r#"{"provider":"gemini","functionCall":{"name":"type","args":{"text":"hi","press_enter":true}}}"#,
            "\n",
            r#"{"provider":"gemini","role":"model","parts":[{"text":"All done."}]}"#,
            "\n",
            r#"{"provider":"openai-compat","text":"Thought: go\nAction: click(10, 20)\nAction: done(\"ok\")"}"#,
            "\n",
            r#"{"provider":"openai-compat","text":"I will click."}"#,
            "\n",
            r#"{"provider":"openai","type":"message","content":[{"type":"output_text","text":"Finished."}]}"#,
            "\n",
        ));
        let a = p.next_proposal(VP).unwrap();
        assert_eq!(a.actions, vec![left_click(156.0, 50.0)]);
        assert_eq!(a.safety.len(), 1);
        assert_eq!(a.safety[0].id, "cu_sc_1");
        assert_eq!(a.safety[0].action_index, Some(0));
        let b = p.next_proposal(VP).unwrap();
        assert_eq!(
            b.actions[0],
            left_click(640.0, 400.0),
            "the frame scales coordinates"
        );
        assert_eq!(b.actions.len(), 2);
        let c = p.next_proposal(VP).unwrap();
        assert_eq!(c.actions, vec![left_click(640.0, 400.0)]);
        assert_eq!(c.safety[0].code, "require_confirmation");
        assert_eq!(c.safety[0].message, "Cookie banner.");
        let d = p.next_proposal(VP).unwrap();
        assert_eq!(d.actions.len(), 2);
        let e = p.next_proposal(VP).unwrap();
        assert_eq!(
            e.actions,
            vec![Action::Done {
                claim: "All done.".into()
            }]
        );
        let f = p.next_proposal(VP).unwrap();
        assert_eq!(f.actions.len(), 2);
        let (at, reason, recoverable) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(at, "transcript line 7");
        assert!(reason.contains("must start with"), "{reason}");
        assert!(!recoverable);
        let h = p.next_proposal(VP).unwrap();
        assert_eq!(
            h.actions,
            vec![Action::Done {
                claim: "Finished.".into()
            }]
        );
    }

    #[test]
    fn airlock_native_lines_are_validated() {
        let (_f, mut p) = transcript(concat!(
            r#"{"airlock":[{"kind":"click","target":{"ref":"e12"}},{"kind":"type","text":{"secret":"pw"}}]}"#,
            "\n",
            r#"{"airlock":{"kind":"teleport"}}"#,
            "\n",
            r#"{"airlock":{"kind":"mouse_move","to":{"x":5000,"y":1}}}"#,
            "\n",
            r#"{"airlock":{"kind":"type","text":{"literal":"{{secret:pw}}"}}}"#,
            "\n",
            r#"{"airlock":{"kind":"key","combo":{"key":"a"},"repeat":0}}"#,
            "\n",
            r#"{"airlock":[]}"#,
            "\n",
        ));
        let ok = p.next_proposal(VP).unwrap();
        assert_eq!(ok.actions.len(), 2);
        assert_eq!(
            ok.actions[1],
            Action::Type {
                target: None,
                text: TypedText::Secret("pw".into())
            }
        );
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(
            reason.starts_with("invalid Airlock action 1: unknown variant `teleport`"),
            "{reason}"
        );
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.contains("outside the 1280x800 viewport"), "{reason}");
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.contains("placeholder"), "{reason}");
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert!(reason.contains("outside 1 to 100"), "{reason}");
        let (_, reason, _) = malformed(p.next_proposal(VP).unwrap_err());
        assert_eq!(reason, "`airlock` holds an empty batch");
    }

    #[test]
    fn the_cursor_carries_across_lines() {
        let (_f, mut p) = transcript(concat!(
            "{\"action\":\"mouse_move\",\"coordinate\":[100,200]}\n",
            "{\"action\":\"double_click\"}\n",
        ));
        p.next_proposal(VP).unwrap();
        let click = p.next_proposal(VP).unwrap();
        assert_eq!(
            click.actions,
            vec![Action::Click {
                target: Target::Point(Point { x: 100.0, y: 200.0 }),
                button: MouseButton::Left,
                count: 2,
                modifiers: Modifiers::default(),
            }]
        );
    }

    #[test]
    fn transcript_coordinates_follow_the_run_viewport() {
        let small = Viewport {
            width: 800,
            height: 600,
        };
        let (_f, mut p) = transcript(concat!(
            "{\"action\":\"left_click\",\"coordinate\":[799,599]}\n",
            "{\"action\":\"left_click\",\"coordinate\":[900,10]}\n",
        ));
        assert_eq!(
            p.next_proposal(small).unwrap().actions,
            vec![left_click(799.0, 599.0)]
        );
        let (_, reason, _) = malformed(p.next_proposal(small).unwrap_err());
        assert!(
            reason.contains("outside the 800x600 screenshot"),
            "{reason}"
        );
    }

    #[test]
    fn check_replays_the_whole_file_dry_and_leaves_the_provider_at_the_start() {
        let (_f, mut p) = transcript(concat!(
            "# login is the host's\n",
            "{\"action\":\"left_click\",\"coordinate\":[10,20]}\n",
            "{\"action\":\"type\",\"text\":\"{{secret:pw}}\"}\n",
            "{\"type\":\"text\",\"text\":\"Done.\"}\n",
        ));
        let summary = p.check(VP, &["pw"]).unwrap();
        assert_eq!(
            summary,
            TranscriptSummary {
                turns: 3,
                actions: 3,
                claims_done: true
            }
        );
        assert_eq!(p.next_proposal(VP).unwrap().source, "transcript line 2");
    }

    #[test]
    fn check_names_the_first_faulty_line_before_anything_runs() {
        let cases = [
            (
                "{\"action\":\"screenshot\"}\n{\"action\":\"teleport\"}\n",
                "transcript line 2: unknown action `teleport`",
            ),
            (
                "{\"action\":\"screenshot\"}\n\n{\"action\":\"left_click\",\"coordinate\":[5000,10]}\n",
                "transcript line 3: ",
            ),
            (
                "{\"action\":\"screenshot\"}\n{\"action\":\"left_cl",
                "transcript line 2: invalid JSON",
            ),
        ];
        for (text, want) in cases {
            let (_f, p) = transcript(text);
            let err = p.check(VP, &[]).unwrap_err();
            assert!(err.to_string().starts_with(want), "{err}");
            assert!(!err.is_recoverable());
        }
        let (_f, p) = transcript("{\"action\":\"left_click\",\"coordinate\":[5000,10]}\n");
        let err = p.check(VP, &[]).unwrap_err().to_string();
        assert!(err.contains("outside the 1280x800 screenshot"), "{err}");
    }

    #[test]
    fn check_refuses_a_secret_the_task_does_not_declare() {
        let (_f, p) = transcript(concat!(
            "{\"action\":\"screenshot\"}\n",
            "{\"action\":\"type\",\"text\":\"{{secret:admin_pw}}\"}\n",
        ));
        assert_eq!(
            p.check(VP, &["ci-readonly"]).unwrap_err().to_string(),
            "transcript line 2: unknown secret `admin_pw`: the task declares `ci-readonly`"
        );
        assert_eq!(
            p.check(VP, &[]).unwrap_err().to_string(),
            "transcript line 2: unknown secret `admin_pw`: the task declares no secrets"
        );
        let (_f, p) = transcript("{\"airlock\":{\"kind\":\"type\",\"text\":{\"secret\":\"x\"}}}\n");
        assert!(p
            .check(VP, &[])
            .unwrap_err()
            .to_string()
            .contains("unknown secret `x`"));
    }

    #[test]
    fn check_refuses_a_transcript_without_a_turn() {
        for text in ["", "\n\n", "# only a comment\n  \n", "\u{feff}"] {
            let (_f, p) = transcript(text);
            let err = p.check(VP, &[]).unwrap_err();
            assert!(
                err.to_string().starts_with("transcript: it holds no turn"),
                "{err}"
            );
        }
    }

    #[test]
    fn check_follows_the_run_viewport() {
        let small = Viewport {
            width: 800,
            height: 600,
        };
        let (_f, p) = transcript("{\"action\":\"left_click\",\"coordinate\":[900,10]}\n");
        assert!(p.check(VP, &[]).is_ok());
        let err = p.check(small, &[]).unwrap_err().to_string();
        assert!(err.contains("outside the 800x600 screenshot"), "{err}");
    }

    #[test]
    fn a_missing_file_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nope.jsonl");
        let err = ScriptedProvider::open(&path).unwrap_err();
        assert!(matches!(err, ProviderError::Io { .. }));
        assert!(err.to_string().contains("nope.jsonl"), "{err}");
    }

    #[tokio::test]
    async fn propose_goes_through_the_provider_trait() {
        async fn step<P: Provider>(
            p: &mut P,
            obs: &Observation,
        ) -> Result<Proposal, ProviderError> {
            let feedback = [StepFeedback::failed("denied: off-task")];
            p.propose(ProposeContext {
                goal: "file the report",
                step: 2,
                observation: obs,
                viewport: VP,
                feedback: &feedback,
            })
            .await
        }
        let (_f, mut p) = transcript("{\"action\":\"screenshot\"}\n");
        assert_eq!(p.name(), "scripted");
        let obs = Observation::default();
        let first = step(&mut p, &obs).await.unwrap();
        assert_eq!(first.actions, vec![Action::Screenshot]);
        // The future is Send, so a run can be spawned onto a multi-threaded runtime.
        let handle = tokio::spawn(async move {
            let obs = Observation::default();
            step(&mut p, &obs).await
        });
        let end = handle.await.unwrap().unwrap();
        assert_eq!(end.source, "end of transcript");
    }
}
