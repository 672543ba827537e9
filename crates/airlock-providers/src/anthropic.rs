//! Anthropic's computer-use tool calls → [`Action`]s.
//!
//! Two wire shapes carry the same actions (see `shared/design/wire-formats.md` §1):
//! - the legacy single tool (`computer_2024…`/`computer_2025…`): one `tool_use` named `computer`
//!   whose `input` holds `action` plus its parameters ([`parse_computer_input`]);
//! - the GA toolset `computer_toolset_20260801`: one `tool_use` per action, `name` = the action,
//!   `toolset_name: "computer"`, `input` without `action` ([`parse_toolset_member`]).
//!
//! This module is pure: no I/O, no HTTP. The live adapter and the scripted provider share it.
//!
//! Mapping decisions:
//! - Coordinates are screenshot pixels, converted only through [`CoordSpace::to_css`]. A point
//!   outside the screenshot is refused rather than clamped onto the border.
//! - A click or drag without a coordinate acts at the cursor. [`AnthropicParser`] remembers
//!   where the model last put the cursor (a `mouse_move`, or any click, drag or scroll with a
//!   coordinate) and turns such a click into a click at that explicit point, so the gate always
//!   hit-tests a concrete location. With no known cursor (or through the stateless free
//!   functions) it is a recoverable error asking for `mouse_move` first.
//! - `wait` waits its `duration`, as Anthropic documents it ([`WaitCondition::Elapsed`]),
//!   bounded by the run's step timeout; the browser is watched meanwhile, so a fault ends it.
//! - `scroll_amount` is in wheel clicks of [`WHEEL_CLICK_CSS_PX`] CSS pixels each.
//! - `key` text is xdotool syntax: whitespace separates successive presses (`ctrl+a Delete` is
//!   two actions); `repeat` (1–100) is honoured in both formats.
//! - `zoom`, `hold_key`, `left_mouse_down`, `left_mouse_up` and `cursor_position` are refused
//!   as unsupported (recoverable). Zoom is refused rather than answered with a full screenshot
//!   the model would mistake for the zoomed region.
//! - Held modifiers on `scroll` and `left_click_drag` are refused: [`Action::Scroll`] and
//!   [`Action::Drag`] cannot carry them, and dropping them would change what the action does.
//! - Unknown extra fields are tolerated (the API adds fields over time), but a known parameter
//!   on an action it does not belong to (a `coordinate` on `type`) is an error, as is any known
//!   field with the wrong type. `null` counts as absent for optional fields.

use crate::coords::{in_viewport, to_css_checked, CoordError};
use crate::text::typed_text;
use airlock_core::action::truncate;
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, KeyCombo, Modifiers, MouseButton, Point, Target, WaitCondition};
use serde_json::{Map, Value};

/// The legacy tool's `name`.
pub const LEGACY_TOOL_NAME: &str = "computer";
/// The GA toolset's `toolset_name` on member `tool_use` blocks.
pub const TOOLSET_NAME: &str = "computer";
/// CSS pixels scrolled per wheel click of `scroll_amount`.
pub const WHEEL_CLICK_CSS_PX: f64 = 100.0;
/// Longest `wait` the docs allow, in seconds.
pub const MAX_WAIT_SECONDS: f64 = 300.0;
/// Largest `repeat` on `key`.
pub const MAX_KEY_REPEAT: u32 = 100;
/// Most key presses one `key` text may spell out (whitespace-separated).
pub const MAX_KEY_SEQUENCE: usize = 32;
/// Largest `scroll_amount` accepted (100 wheel clicks is already 10 000 CSS pixels).
pub const MAX_SCROLL_AMOUNT: u32 = 100;

/// Every parameter name the computer tool defines. One of these on an action that does not
/// take it is an error; any other extra field is ignored.
const KNOWN_FIELDS: &[&str] = &[
    "coordinate",
    "start_coordinate",
    "text",
    "key",
    "scroll_direction",
    "scroll_amount",
    "duration",
    "region",
    "repeat",
];

/// Why a computer-use call could not become actions.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ParseError {
    #[error("the tool input must be a JSON object, not {got}")]
    NotAnObject { got: &'static str },
    #[error("the `computer` tool input has no `action`")]
    MissingAction,
    #[error("unknown action `{0}`")]
    UnknownAction(String),
    #[error("{}", unknown_tool(.name, .toolset.as_deref()))]
    UnknownTool {
        name: String,
        toolset: Option<String>,
    },
    #[error("unsupported action `{action}`: {why}")]
    Unsupported { action: String, why: &'static str },
    #[error("`{action}` needs `{field}`")]
    MissingField { action: String, field: &'static str },
    #[error("`{field}` of `{action}` must be {expected}, not {got}")]
    WrongType {
        action: String,
        field: &'static str,
        expected: &'static str,
        got: &'static str,
    },
    #[error("`{field}` does not apply to `{action}`")]
    NotApplicable { action: String, field: String },
    #[error("`{field}` of `{action}`: {reason}")]
    Invalid {
        action: String,
        field: &'static str,
        reason: String,
    },
    #[error(
        "`{action}` without `coordinate` needs a known cursor position: send `mouse_move` first \
         or give a `coordinate`"
    )]
    NoCursor { action: String },
    #[error("{0}")]
    Message(String),
    #[error("content block {index}: {source}")]
    InBlock {
        index: usize,
        #[source]
        source: Box<ParseError>,
    },
    /// An error inside the `index`th element of a list (`output item 2`, `action 0`).
    #[error("{what} {index}: {source}")]
    At {
        what: &'static str,
        index: usize,
        #[source]
        source: Box<ParseError>,
    },
}

impl ParseError {
    /// Wraps `self` as the error of element `index` of a list of `what`.
    pub fn at(self, what: &'static str, index: usize) -> Self {
        ParseError::At {
            what,
            index,
            source: Box::new(self),
        }
    }
}

fn unknown_tool(name: &str, toolset: Option<&str>) -> String {
    match toolset {
        Some(t) => format!("tool `{name}` of toolset `{t}` is not an Airlock computer-use tool"),
        None => format!("tool `{name}` is not an Airlock computer-use tool"),
    }
}

impl ParseError {
    /// True when the call was well-formed but Airlock declines it (unsupported action, a value
    /// out of range, no known cursor): a live adapter answers with an `is_error` tool result
    /// carrying this message and lets the model try again. False when the payload does not
    /// follow the vendor's format (wrong types, missing fields, unknown action).
    pub fn is_recoverable(&self) -> bool {
        match self {
            ParseError::UnknownTool { .. }
            | ParseError::Unsupported { .. }
            | ParseError::Invalid { .. }
            | ParseError::NoCursor { .. } => true,
            ParseError::InBlock { source, .. } | ParseError::At { source, .. } => {
                source.is_recoverable()
            }
            ParseError::NotAnObject { .. }
            | ParseError::MissingAction
            | ParseError::UnknownAction(_)
            | ParseError::MissingField { .. }
            | ParseError::WrongType { .. }
            | ParseError::NotApplicable { .. }
            | ParseError::Message(_) => false,
        }
    }
}

/// Parses a legacy `computer` tool `input` (`{"action":"left_click","coordinate":[x,y]}`).
///
/// Stateless: a click without `coordinate` is an error. Use [`AnthropicParser`] to track the
/// cursor across calls.
pub fn parse_computer_input(
    input: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<Vec<Action>, ParseError> {
    AnthropicParser::new(space, vp).computer_input(input)
}

/// Parses one GA toolset member call: `name` is the action, `input` its parameters.
///
/// Stateless, like [`parse_computer_input`].
pub fn parse_toolset_member(
    name: &str,
    input: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<Vec<Action>, ParseError> {
    AnthropicParser::new(space, vp).toolset_member(name, input)
}

/// One computer `tool_use` block of a message, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolCall {
    /// The block's `id` (`toolu_…`), which the `tool_result` must echo.
    pub id: Option<String>,
    /// `computer` for the legacy tool, the action for toolset members.
    pub name: String,
    /// `Some("computer")` for toolset members; results must echo it.
    pub toolset_name: Option<String>,
    pub actions: Vec<Action>,
}

/// An assistant message, parsed: its text and its computer calls, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedMessage {
    /// The `text` blocks joined with newlines.
    pub text: String,
    pub calls: Vec<ToolCall>,
}

impl ParsedMessage {
    /// All actions of all calls, in order: the batch to run.
    pub fn actions(&self) -> Vec<Action> {
        self.calls
            .iter()
            .flat_map(|c| c.actions.iter().cloned())
            .collect()
    }
}

/// Parses Anthropic computer calls into actions, remembering the cursor between calls.
#[derive(Debug, Clone)]
pub struct AnthropicParser {
    space: CoordSpace,
    vp: Viewport,
    /// Where the model last put the mouse, in CSS pixels; `None` when unknown.
    cursor: Option<Point>,
}

impl AnthropicParser {
    /// A parser for coordinates in `space`, mapped into viewport `vp`.
    pub fn new(space: CoordSpace, vp: Viewport) -> Self {
        AnthropicParser {
            space,
            vp,
            cursor: None,
        }
    }

    /// Changes the coordinate frame (the cursor is kept: it is in CSS pixels).
    pub fn set_frame(&mut self, space: CoordSpace, vp: Viewport) {
        self.space = space;
        self.vp = vp;
    }

    /// The cursor position the model last set, in CSS pixels.
    pub fn cursor(&self) -> Option<Point> {
        self.cursor
    }

    pub fn set_cursor(&mut self, cursor: Option<Point>) {
        self.cursor = cursor;
    }

    /// Updates the remembered cursor after `action` (also for actions parsed elsewhere, such
    /// as Airlock-native transcript lines).
    pub fn track(&mut self, action: &Action) {
        match action {
            Action::MouseMove { to } | Action::Drag { to, .. } => self.cursor = Some(*to),
            Action::Click {
                target: Target::Point(p),
                ..
            }
            | Action::Scroll { at: Some(p), .. } => self.cursor = Some(*p),
            // The executor moves the mouse to wherever the element turns out to be.
            Action::Click { .. }
            | Action::Type {
                target: Some(_), ..
            } => self.cursor = None,
            _ => {}
        }
    }

    /// Parses a legacy `computer` tool `input`.
    pub fn computer_input(&mut self, input: &Value) -> Result<Vec<Action>, ParseError> {
        let obj = as_object(input)?;
        let action = match obj.get("action") {
            None | Some(Value::Null) => return Err(ParseError::MissingAction),
            Some(Value::String(a)) => a.as_str(),
            Some(other) => {
                return Err(ParseError::WrongType {
                    action: LEGACY_TOOL_NAME.to_string(),
                    field: "action",
                    expected: "a string",
                    got: json_kind(other),
                })
            }
        };
        self.member(action, obj)
    }

    /// Parses one GA toolset member call. An `action` field in `input`, if any, must repeat
    /// `name`.
    pub fn toolset_member(&mut self, name: &str, input: &Value) -> Result<Vec<Action>, ParseError> {
        let obj = as_object(input)?;
        match obj.get("action") {
            None | Some(Value::Null) => {}
            Some(Value::String(a)) if a == name => {}
            Some(_) => {
                return Err(ParseError::NotApplicable {
                    action: shown(name),
                    field: "action".to_string(),
                })
            }
        }
        self.member(name, obj)
    }

    /// Parses a `tool_use` block, dispatching on the pair (`toolset_name`, `name`).
    pub fn tool_use(&mut self, block: &Value) -> Result<ToolCall, ParseError> {
        let obj = as_object(block)?;
        match obj.get("type") {
            Some(Value::String(t)) if t == "tool_use" => {}
            _ => {
                return Err(ParseError::Message(
                    "expected a block with `\"type\": \"tool_use\"`".to_string(),
                ))
            }
        }
        let name = block_str(obj, "name")?.ok_or_else(|| {
            ParseError::Message("a `tool_use` block needs a string `name`".to_string())
        })?;
        let toolset = block_str(obj, "toolset_name")?;
        let id = block_str(obj, "id")?;
        let input = obj.get("input").ok_or_else(|| {
            ParseError::Message(format!(
                "the `tool_use` block `{}` has no `input`",
                shown(name)
            ))
        })?;
        let actions = match toolset {
            Some(TOOLSET_NAME) => self.toolset_member(name, input)?,
            None if name == LEGACY_TOOL_NAME => self.computer_input(input)?,
            _ => {
                return Err(ParseError::UnknownTool {
                    name: shown(name),
                    toolset: toolset.map(shown),
                })
            }
        };
        Ok(ToolCall {
            id: id.map(str::to_string),
            name: name.to_string(),
            toolset_name: toolset.map(str::to_string),
            actions,
        })
    }

    /// Parses an assistant message (`{"role":"assistant","content":[…]}`) or a Messages API
    /// response (`{"type":"message","content":[…]}`). Text blocks are collected, computer
    /// `tool_use` blocks parsed in order, other block types (thinking, …) ignored. All or
    /// nothing: on error the cursor is left as it was.
    pub fn message(&mut self, msg: &Value) -> Result<ParsedMessage, ParseError> {
        let obj = as_object(msg)?;
        match obj.get("role") {
            None | Some(Value::Null) => {}
            Some(Value::String(r)) if r == "assistant" => {}
            Some(Value::String(r)) => {
                return Err(ParseError::Message(format!(
                    "only assistant messages carry actions, not `{}` messages",
                    shown(r)
                )))
            }
            Some(other) => {
                return Err(ParseError::Message(format!(
                    "`role` must be a string, not {}",
                    json_kind(other)
                )))
            }
        }
        let blocks = match obj.get("content") {
            Some(Value::String(text)) => {
                return Ok(ParsedMessage {
                    text: text.clone(),
                    calls: Vec::new(),
                })
            }
            Some(Value::Array(blocks)) => blocks,
            Some(other) => {
                return Err(ParseError::Message(format!(
                    "`content` must be an array of blocks or a string, not {}",
                    json_kind(other)
                )))
            }
            None => return Err(ParseError::Message("the message has no `content`".into())),
        };
        let saved = self.cursor;
        let parsed = self.blocks(blocks);
        if parsed.is_err() {
            self.cursor = saved;
        }
        parsed
    }

    fn blocks(&mut self, blocks: &[Value]) -> Result<ParsedMessage, ParseError> {
        let mut texts = Vec::new();
        let mut calls = Vec::new();
        for (index, block) in blocks.iter().enumerate() {
            let in_block = |source: ParseError| ParseError::InBlock {
                index,
                source: Box::new(source),
            };
            let obj = as_object(block).map_err(in_block)?;
            match obj.get("type") {
                Some(Value::String(t)) if t == "text" => match obj.get("text") {
                    Some(Value::String(text)) => texts.push(text.as_str()),
                    _ => {
                        return Err(in_block(ParseError::Message(
                            "a `text` block needs a string `text`".into(),
                        )))
                    }
                },
                Some(Value::String(t)) if t == "tool_use" => {
                    calls.push(self.tool_use(block).map_err(in_block)?);
                }
                Some(Value::String(_)) => {}
                _ => {
                    return Err(in_block(ParseError::Message(
                        "a content block needs a string `type`".into(),
                    )))
                }
            }
        }
        Ok(ParsedMessage {
            text: texts.join("\n"),
            calls,
        })
    }

    /// Parses one action given its name and parameter object (legacy or toolset).
    fn member(
        &mut self,
        action: &str,
        obj: &Map<String, Value>,
    ) -> Result<Vec<Action>, ParseError> {
        let unsupported = |why| {
            Err(ParseError::Unsupported {
                action: action.to_string(),
                why,
            })
        };
        let fields: &[&str] = match action {
            "screenshot" => &[],
            "left_click" | "right_click" | "middle_click" | "double_click" | "triple_click" => {
                &["coordinate", "text", "key"]
            }
            "mouse_move" => &["coordinate"],
            "left_click_drag" => &["start_coordinate", "coordinate", "text"],
            "type" => &["text"],
            "key" => &["text", "repeat"],
            "scroll" => &["scroll_direction", "scroll_amount", "coordinate", "text"],
            "wait" => &["duration"],
            "zoom" => return unsupported("zoom is not supported yet; take a `screenshot` instead"),
            "hold_key" => {
                return unsupported("holding a key for a duration is not supported; use `key`")
            }
            "left_mouse_down" | "left_mouse_up" => {
                return unsupported(
                    "separate mouse button presses are not supported; use `left_click_drag`",
                )
            }
            "cursor_position" => {
                return unsupported("Airlock does not report the cursor; take a `screenshot`")
            }
            _ => return Err(ParseError::UnknownAction(shown(action))),
        };
        if let Some(extra) = obj
            .keys()
            .find(|k| KNOWN_FIELDS.contains(&k.as_str()) && !fields.contains(&k.as_str()))
        {
            return Err(ParseError::NotApplicable {
                action: action.to_string(),
                field: extra.clone(),
            });
        }
        let f = Fields { action, obj };
        let actions = match action {
            "screenshot" => vec![Action::Screenshot],
            "left_click" | "right_click" | "middle_click" | "double_click" | "triple_click" => {
                let (button, count) = match action {
                    "right_click" => (MouseButton::Right, 1),
                    "middle_click" => (MouseButton::Middle, 1),
                    "double_click" => (MouseButton::Left, 2),
                    "triple_click" => (MouseButton::Left, 3),
                    _ => (MouseButton::Left, 1),
                };
                let at = match f.opt("coordinate") {
                    Some(v) => self.point(&f, "coordinate", v)?,
                    None => self.cursor_or_err(action)?,
                };
                vec![Action::Click {
                    target: Target::Point(at),
                    button,
                    count,
                    modifiers: f.click_modifiers()?,
                }]
            }
            "mouse_move" => vec![Action::MouseMove {
                to: self.point(&f, "coordinate", f.req("coordinate")?)?,
            }],
            "left_click_drag" => {
                let to = self.point(&f, "coordinate", f.req("coordinate")?)?;
                let from = match f.opt("start_coordinate") {
                    Some(v) => self.point(&f, "start_coordinate", v)?,
                    None => self.cursor_or_err(action)?,
                };
                f.no_modifiers("text", "held modifiers are not supported while dragging")?;
                vec![Action::Drag { from, to }]
            }
            "type" => {
                let text = f.string(f.req("text")?, "text")?;
                if text.is_empty() {
                    return Err(f.invalid("text", "there is nothing to type"));
                }
                let text = typed_text(text).map_err(|e| f.invalid("text", e.to_string()))?;
                vec![Action::Type { target: None, text }]
            }
            "key" => f.keys()?,
            "scroll" => {
                let direction = f.string(f.req("scroll_direction")?, "scroll_direction")?;
                let amount = f.integer(f.req("scroll_amount")?, "scroll_amount")?;
                if amount > u64::from(MAX_SCROLL_AMOUNT) {
                    return Err(f.invalid(
                        "scroll_amount",
                        format!(
                            "{amount} wheel clicks is more than the {MAX_SCROLL_AMOUNT} allowed"
                        ),
                    ));
                }
                let px = amount as f64 * WHEEL_CLICK_CSS_PX;
                let (dx, dy) = match direction {
                    "up" => (0.0, -px),
                    "down" => (0.0, px),
                    "left" => (-px, 0.0),
                    "right" => (px, 0.0),
                    other => {
                        return Err(f.invalid(
                            "scroll_direction",
                            format!(
                                "`{}` is not one of `up`, `down`, `left`, `right`",
                                shown(other)
                            ),
                        ))
                    }
                };
                let at = match f.opt("coordinate") {
                    Some(v) => Some(self.point(&f, "coordinate", v)?),
                    None => None,
                };
                f.no_modifiers("text", "held modifiers are not supported while scrolling")?;
                vec![Action::Scroll { at, dx, dy }]
            }
            "wait" => {
                let seconds = f.number(f.req("duration")?, "duration")?;
                if !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
                    return Err(f.invalid(
                        "duration",
                        format!("{seconds} seconds is outside 0 to {MAX_WAIT_SECONDS}"),
                    ));
                }
                vec![Action::Wait {
                    condition: WaitCondition::Elapsed,
                    timeout_ms: (seconds * 1000.0).round() as u64,
                }]
            }
            _ => return Err(ParseError::UnknownAction(shown(action))),
        };
        for a in &actions {
            self.track(a);
        }
        Ok(actions)
    }

    fn point(&self, f: &Fields<'_>, field: &'static str, v: &Value) -> Result<Point, ParseError> {
        let wrong = || f.wrong(field, "[x, y] (two numbers)", v);
        let (x, y) = match v.as_array().map(Vec::as_slice) {
            Some([x, y]) => (x.as_f64().ok_or_else(wrong)?, y.as_f64().ok_or_else(wrong)?),
            _ => return Err(wrong()),
        };
        to_css_checked(self.space, self.vp, x, y)
            .map_err(|e: CoordError| f.invalid(field, e.to_string()))
    }

    /// The remembered cursor, if it still lies inside the current viewport (the frame may
    /// have changed since it was set).
    fn cursor_or_err(&self, action: &str) -> Result<Point, ParseError> {
        self.cursor
            .filter(|p| in_viewport(*p, self.vp))
            .ok_or_else(|| ParseError::NoCursor {
                action: action.to_string(),
            })
    }
}

/// The parameters of one action, with typed accessors that produce precise errors.
struct Fields<'a> {
    action: &'a str,
    obj: &'a Map<String, Value>,
}

impl Fields<'_> {
    /// An optional field; `null` counts as absent.
    fn opt(&self, field: &str) -> Option<&Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    fn req(&self, field: &'static str) -> Result<&Value, ParseError> {
        self.opt(field).ok_or_else(|| ParseError::MissingField {
            action: self.action.to_string(),
            field,
        })
    }

    fn wrong(&self, field: &'static str, expected: &'static str, got: &Value) -> ParseError {
        ParseError::WrongType {
            action: self.action.to_string(),
            field,
            expected,
            got: json_kind(got),
        }
    }

    fn invalid(&self, field: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            action: self.action.to_string(),
            field,
            reason: reason.into(),
        }
    }

    fn string<'v>(&self, v: &'v Value, field: &'static str) -> Result<&'v str, ParseError> {
        v.as_str().ok_or_else(|| self.wrong(field, "a string", v))
    }

    fn number(&self, v: &Value, field: &'static str) -> Result<f64, ParseError> {
        v.as_f64().ok_or_else(|| self.wrong(field, "a number", v))
    }

    /// A non-negative whole number (`3` or `3.0`).
    fn integer(&self, v: &Value, field: &'static str) -> Result<u64, ParseError> {
        if let Some(n) = v.as_u64() {
            return Ok(n);
        }
        match v.as_f64() {
            Some(n) if n.fract() == 0.0 && n >= 0.0 && n <= f64::from(u32::MAX) => Ok(n as u64),
            Some(n) => Err(self.invalid(field, format!("{n} is not a non-negative whole number"))),
            None => Err(self.wrong(field, "a whole number", v)),
        }
    }

    /// Click modifiers from `text` (canonical) or its alias `key`.
    fn click_modifiers(&self) -> Result<Modifiers, ParseError> {
        let text = self
            .opt("text")
            .map(|v| self.string(v, "text"))
            .transpose()?;
        let key = self.opt("key").map(|v| self.string(v, "key")).transpose()?;
        let (field, list) = match (text, key) {
            (Some(t), Some(k)) if t != k => {
                return Err(self.invalid(
                    "key",
                    "conflicts with `text`; give the modifiers once, in `text`",
                ))
            }
            (Some(t), _) => ("text", t),
            (None, Some(k)) => ("key", k),
            (None, None) => return Ok(Modifiers::default()),
        };
        Modifiers::parse(list).map_err(|e| self.invalid(field, e.to_string()))
    }

    /// Refuses non-empty held modifiers on actions that cannot carry them.
    fn no_modifiers(&self, field: &'static str, why: &str) -> Result<(), ParseError> {
        let Some(v) = self.opt(field) else {
            return Ok(());
        };
        let mods = Modifiers::parse(self.string(v, field)?)
            .map_err(|e| self.invalid(field, e.to_string()))?;
        if mods.is_empty() {
            Ok(())
        } else {
            Err(self.invalid(field, why))
        }
    }

    fn keys(&self) -> Result<Vec<Action>, ParseError> {
        let text = self.string(self.req("text")?, "text")?;
        let repeat = match self.opt("repeat") {
            None => 1,
            Some(v) => self.integer(v, "repeat")?,
        };
        let repeat = u32::try_from(repeat)
            .ok()
            .filter(|r| (1..=MAX_KEY_REPEAT).contains(r))
            .ok_or_else(|| {
                self.invalid(
                    "repeat",
                    format!("{repeat} is outside 1 to {MAX_KEY_REPEAT}"),
                )
            })?;
        let presses: Vec<&str> = text.split_whitespace().collect();
        if presses.is_empty() {
            return Err(self.invalid("text", "no key given"));
        }
        if presses.len() > MAX_KEY_SEQUENCE {
            return Err(self.invalid(
                "text",
                format!("more than {MAX_KEY_SEQUENCE} key presses in one call"),
            ));
        }
        if presses.len() > 1 && repeat > 1 {
            return Err(self.invalid(
                "repeat",
                "cannot repeat a sequence of several keys; send one key with `repeat`",
            ));
        }
        presses
            .into_iter()
            .map(|spec| {
                KeyCombo::parse(spec)
                    .map(|combo| Action::Key { combo, repeat })
                    .map_err(|e| self.invalid("text", e.to_string()))
            })
            .collect()
    }
}

fn as_object(v: &Value) -> Result<&Map<String, Value>, ParseError> {
    v.as_object()
        .ok_or_else(|| ParseError::NotAnObject { got: json_kind(v) })
}

/// A string field of a block; absent or `null` is `None`, another type an error.
fn block_str<'v>(obj: &'v Map<String, Value>, field: &str) -> Result<Option<&'v str>, ParseError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(ParseError::Message(format!(
            "`{field}` of a `tool_use` block must be a string, not {}",
            json_kind(other)
        ))),
    }
}

/// A model-supplied name, shortened so a hostile payload cannot flood an error message.
fn shown(name: &str) -> String {
    truncate(name, 64)
}

/// The JSON type of `v`, for error messages.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use airlock_core::TypedText;
    use serde_json::json;

    const VP: Viewport = Viewport {
        width: 1280,
        height: 800,
    };
    const SAME: CoordSpace = CoordSpace::Screenshot {
        width: 1280,
        height: 800,
    };
    /// A screenshot scaled down to 1024x640 before the model saw it.
    const SCALED: CoordSpace = CoordSpace::Screenshot {
        width: 1024,
        height: 640,
    };

    fn one(input: Value) -> Action {
        let mut actions = parse_computer_input(&input, SAME, VP).unwrap();
        assert_eq!(actions.len(), 1, "{input}");
        actions.remove(0)
    }

    fn err(input: Value) -> ParseError {
        parse_computer_input(&input, SAME, VP).unwrap_err()
    }

    fn pt(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    fn click(at: Point, button: MouseButton, count: u8, modifiers: Modifiers) -> Action {
        Action::Click {
            target: Target::Point(at),
            button,
            count,
            modifiers,
        }
    }

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/anthropic/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn screenshot_maps_to_screenshot() {
        assert_eq!(one(json!({"action": "screenshot"})), Action::Screenshot);
    }

    #[test]
    fn each_click_kind_maps_to_button_and_count() {
        let cases = [
            ("left_click", MouseButton::Left, 1),
            ("right_click", MouseButton::Right, 1),
            ("middle_click", MouseButton::Middle, 1),
            ("double_click", MouseButton::Left, 2),
            ("triple_click", MouseButton::Left, 3),
        ];
        for (action, button, count) in cases {
            assert_eq!(
                one(json!({"action": action, "coordinate": [500, 300]})),
                click(pt(500.0, 300.0), button, count, Modifiers::default()),
                "{action}"
            );
        }
    }

    #[test]
    fn click_coordinates_are_scaled_from_screenshot_pixels() {
        let actions = parse_computer_input(
            &json!({"action": "left_click", "coordinate": [512, 320]}),
            SCALED,
            VP,
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![click(
                pt(640.0, 400.0),
                MouseButton::Left,
                1,
                Modifiers::default()
            )]
        );
    }

    #[test]
    fn click_modifiers_come_from_text_or_its_alias_key() {
        let shift = Modifiers {
            shift: true,
            ..Modifiers::default()
        };
        assert_eq!(
            one(json!({"action": "left_click", "coordinate": [500, 300], "text": "shift"})),
            click(pt(500.0, 300.0), MouseButton::Left, 1, shift)
        );
        let ctrl_shift = Modifiers {
            ctrl: true,
            shift: true,
            ..Modifiers::default()
        };
        assert_eq!(
            one(json!({"action": "double_click", "coordinate": [1, 2], "key": "ctrl+shift"})),
            click(pt(1.0, 2.0), MouseButton::Left, 2, ctrl_shift)
        );
        // Both given and equal is fine; different is ambiguous.
        assert!(parse_computer_input(
            &json!({"action": "left_click", "coordinate": [1, 2], "text": "alt", "key": "alt"}),
            SAME,
            VP
        )
        .is_ok());
        let e = err(
            json!({"action": "left_click", "coordinate": [1, 2], "text": "alt", "key": "ctrl"}),
        );
        assert!(e.to_string().contains("conflicts with `text`"), "{e}");
        let e = err(json!({"action": "left_click", "coordinate": [1, 2], "text": "hyper"}));
        assert_eq!(
            e.to_string(),
            "`text` of `left_click`: unknown modifier `hyper`"
        );
        assert!(e.is_recoverable());
    }

    #[test]
    fn toolset_member_parses_the_same_input_without_action() {
        let shift = Modifiers {
            shift: true,
            ..Modifiers::default()
        };
        let actions = parse_toolset_member(
            "right_click",
            &json!({"coordinate": [10, 20], "text": "shift"}),
            SAME,
            VP,
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![click(pt(10.0, 20.0), MouseButton::Right, 1, shift)]
        );
        // A redundant matching `action` is tolerated, a contradicting one is not.
        assert!(
            parse_toolset_member("screenshot", &json!({"action": "screenshot"}), SAME, VP).is_ok()
        );
        let e = parse_toolset_member("screenshot", &json!({"action": "left_click"}), SAME, VP)
            .unwrap_err();
        assert_eq!(e.to_string(), "`action` does not apply to `screenshot`");
        let e = parse_toolset_member("teleport", &json!({}), SAME, VP).unwrap_err();
        assert_eq!(e.to_string(), "unknown action `teleport`");
    }

    #[test]
    fn click_without_coordinate_uses_the_tracked_cursor() {
        let mut p = AnthropicParser::new(SAME, VP);
        let e = p
            .computer_input(&json!({"action": "left_click"}))
            .unwrap_err();
        assert!(matches!(e, ParseError::NoCursor { .. }));
        assert!(e.is_recoverable());
        assert!(e.to_string().contains("send `mouse_move` first"), "{e}");

        assert_eq!(
            p.computer_input(&json!({"action": "mouse_move", "coordinate": [300, 200]}))
                .unwrap(),
            vec![Action::MouseMove {
                to: pt(300.0, 200.0)
            }]
        );
        assert_eq!(
            p.toolset_member("left_click", &json!({})).unwrap(),
            vec![click(
                pt(300.0, 200.0),
                MouseButton::Left,
                1,
                Modifiers::default()
            )]
        );
        // A click somewhere else moves the cursor there.
        p.computer_input(&json!({"action": "left_click", "coordinate": [10, 10]}))
            .unwrap();
        assert_eq!(p.cursor(), Some(pt(10.0, 10.0)));
        // A click on an element (not a point) makes the cursor unknown again.
        p.track(&Action::Click {
            target: Target::Ref("e1".into()),
            button: MouseButton::Left,
            count: 1,
            modifiers: Modifiers::default(),
        });
        assert_eq!(p.cursor(), None);
    }

    #[test]
    fn a_cursor_outside_a_shrunken_viewport_is_forgotten() {
        let mut p = AnthropicParser::new(SAME, VP);
        p.computer_input(&json!({"action": "mouse_move", "coordinate": [1200, 700]}))
            .unwrap();
        let small = Viewport {
            width: 800,
            height: 600,
        };
        p.set_frame(
            CoordSpace::Screenshot {
                width: 800,
                height: 600,
            },
            small,
        );
        assert!(matches!(
            p.computer_input(&json!({"action": "left_click"})),
            Err(ParseError::NoCursor { .. })
        ));
    }

    #[test]
    fn mouse_move_requires_a_coordinate() {
        assert_eq!(
            err(json!({"action": "mouse_move"})).to_string(),
            "`mouse_move` needs `coordinate`"
        );
    }

    #[test]
    fn drag_with_start_coordinate_or_from_the_cursor() {
        assert_eq!(
            one(
                json!({"action": "left_click_drag", "start_coordinate": [200, 300], "coordinate": [600, 300]})
            ),
            Action::Drag {
                from: pt(200.0, 300.0),
                to: pt(600.0, 300.0)
            }
        );
        let mut p = AnthropicParser::new(SCALED, VP);
        assert!(matches!(
            p.computer_input(&json!({"action": "left_click_drag", "coordinate": [100, 100]})),
            Err(ParseError::NoCursor { .. })
        ));
        p.computer_input(&json!({"action": "mouse_move", "coordinate": [512, 320]}))
            .unwrap();
        assert_eq!(
            p.computer_input(&json!({"action": "left_click_drag", "coordinate": [0, 0]}))
                .unwrap(),
            vec![Action::Drag {
                from: pt(640.0, 400.0),
                to: pt(0.0, 0.0)
            }]
        );
        assert_eq!(p.cursor(), Some(pt(0.0, 0.0)));
        assert_eq!(
            err(json!({"action": "left_click_drag", "start_coordinate": [1, 1]})).to_string(),
            "`left_click_drag` needs `coordinate`"
        );
        let e = err(
            json!({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [5, 5], "text": "shift"}),
        );
        assert!(
            e.to_string().contains("not supported while dragging"),
            "{e}"
        );
        // An empty modifier list is no modifier at all.
        assert!(parse_computer_input(
            &json!({"action": "left_click_drag", "start_coordinate": [1, 1], "coordinate": [5, 5], "text": ""}),
            SAME,
            VP
        )
        .is_ok());
    }

    #[test]
    fn type_is_literal_text_into_the_focused_element() {
        assert_eq!(
            one(json!({"action": "type", "text": "17*23\n"})),
            Action::Type {
                target: None,
                text: TypedText::Literal("17*23\n".into())
            }
        );
        assert_eq!(
            err(json!({"action": "type"})).to_string(),
            "`type` needs `text`"
        );
        assert!(err(json!({"action": "type", "text": ""})).is_recoverable());
    }

    #[test]
    fn type_of_a_whole_placeholder_is_a_secret() {
        assert_eq!(
            one(json!({"action": "type", "text": "{{secret:portal_password}}"})),
            Action::Type {
                target: None,
                text: TypedText::Secret("portal_password".into())
            }
        );
        let e = err(json!({"action": "type", "text": "admin {{secret:portal_password}}"}));
        assert!(
            matches!(e, ParseError::Invalid { field: "text", .. }),
            "{e}"
        );
        assert!(!e.to_string().contains("admin"), "{e}");
    }

    #[test]
    fn key_is_parsed_as_an_xdotool_combo_with_repeat() {
        let combo = |s| KeyCombo::parse(s).unwrap();
        assert_eq!(
            one(json!({"action": "key", "text": "ctrl+s"})),
            Action::Key {
                combo: combo("ctrl+s"),
                repeat: 1
            }
        );
        assert_eq!(
            parse_toolset_member("key", &json!({"text": "Page_Down", "repeat": 5}), SAME, VP)
                .unwrap(),
            vec![Action::Key {
                combo: KeyCombo {
                    key: "PageDown".into(),
                    modifiers: Modifiers::default()
                },
                repeat: 5
            }]
        );
        assert_eq!(
            parse_computer_input(&json!({"action": "key", "text": "ctrl+a Delete"}), SAME, VP)
                .unwrap(),
            vec![
                Action::Key {
                    combo: combo("ctrl+a"),
                    repeat: 1
                },
                Action::Key {
                    combo: combo("Delete"),
                    repeat: 1
                }
            ]
        );
        for bad in [0, 101] {
            let e = err(json!({"action": "key", "text": "Tab", "repeat": bad}));
            assert!(e.to_string().contains("outside 1 to 100"), "{e}");
        }
        let e = err(json!({"action": "key", "text": "Tab", "repeat": "3"}));
        assert_eq!(
            e.to_string(),
            "`repeat` of `key` must be a whole number, not a string"
        );
        let e = err(json!({"action": "key", "text": "Launch_Rockets"}));
        assert_eq!(
            e.to_string(),
            "`text` of `key`: unknown key `Launch_Rockets`"
        );
        assert!(err(json!({"action": "key", "text": "a b", "repeat": 2})).is_recoverable());
        assert!(matches!(
            err(json!({"action": "key", "key": "Return"})),
            ParseError::NotApplicable { .. }
        ));
    }

    #[test]
    fn scroll_directions_map_to_signed_css_deltas() {
        let cases = [
            ("down", 0.0, 300.0),
            ("up", 0.0, -300.0),
            ("right", 300.0, 0.0),
            ("left", -300.0, 0.0),
        ];
        for (dir, dx, dy) in cases {
            assert_eq!(
                one(
                    json!({"action": "scroll", "coordinate": [500, 400], "scroll_direction": dir, "scroll_amount": 3})
                ),
                Action::Scroll {
                    at: Some(pt(500.0, 400.0)),
                    dx,
                    dy
                },
                "{dir}"
            );
        }
    }

    #[test]
    fn scroll_amount_is_wheel_clicks_and_coordinate_is_optional() {
        // Wheel clicks are not coordinates: no screenshot scaling applies.
        let actions = parse_toolset_member(
            "scroll",
            &json!({"scroll_direction": "down", "scroll_amount": 1}),
            SCALED,
            VP,
        )
        .unwrap();
        assert_eq!(
            actions,
            vec![Action::Scroll {
                at: None,
                dx: 0.0,
                dy: WHEEL_CLICK_CSS_PX
            }]
        );
        assert!(parse_computer_input(
            &json!({"action": "scroll", "scroll_direction": "up", "scroll_amount": 5.0}),
            SAME,
            VP
        )
        .is_ok());
        let e =
            err(json!({"action": "scroll", "scroll_direction": "sideways", "scroll_amount": 1}));
        assert!(e.to_string().contains("`sideways` is not one of"), "{e}");
        assert!(
            err(json!({"action": "scroll", "scroll_direction": "up", "scroll_amount": 2.5}))
                .is_recoverable()
        );
        assert!(
            err(json!({"action": "scroll", "scroll_direction": "up", "scroll_amount": -1}))
                .is_recoverable()
        );
        assert!(
            err(json!({"action": "scroll", "scroll_direction": "up", "scroll_amount": 101}))
                .is_recoverable()
        );
        assert_eq!(
            err(json!({"action": "scroll", "scroll_direction": "up"})).to_string(),
            "`scroll` needs `scroll_amount`"
        );
        let e = err(
            json!({"action": "scroll", "scroll_direction": "up", "scroll_amount": 1, "text": "ctrl"}),
        );
        assert!(
            e.to_string().contains("not supported while scrolling"),
            "{e}"
        );
    }

    #[test]
    fn wait_waits_its_duration_as_the_vendor_documents() {
        assert_eq!(
            one(json!({"action": "wait", "duration": 2})),
            Action::Wait {
                condition: WaitCondition::Elapsed,
                timeout_ms: 2000
            }
        );
        assert_eq!(
            one(json!({"action": "wait", "duration": 1.5})),
            Action::Wait {
                condition: WaitCondition::Elapsed,
                timeout_ms: 1500
            }
        );
        assert!(err(json!({"action": "wait", "duration": 301})).is_recoverable());
        assert!(err(json!({"action": "wait", "duration": -1})).is_recoverable());
        assert_eq!(
            err(json!({"action": "wait", "duration": "2"})).to_string(),
            "`duration` of `wait` must be a number, not a string"
        );
    }

    #[test]
    fn unsupported_actions_are_recoverable_errors_naming_them() {
        for input in [
            json!({"action": "hold_key", "text": "shift", "duration": 1}),
            json!({"action": "left_mouse_down"}),
            json!({"action": "left_mouse_up"}),
            json!({"action": "cursor_position"}),
            json!({"action": "zoom", "region": [100, 200, 400, 350]}),
        ] {
            let e = err(input.clone());
            let name = input["action"].as_str().unwrap();
            assert!(
                e.to_string()
                    .starts_with(&format!("unsupported action `{name}`")),
                "{e}"
            );
            assert!(e.is_recoverable());
        }
    }

    #[test]
    fn unknown_actions_and_bad_shapes_are_not_recoverable() {
        let e = err(json!({"action": "teleport", "coordinate": [1, 2]}));
        assert_eq!(e.to_string(), "unknown action `teleport`");
        assert!(!e.is_recoverable());
        assert_eq!(err(json!({})), ParseError::MissingAction);
        assert_eq!(
            err(json!({"action": 3})).to_string(),
            "`action` of `computer` must be a string, not a number"
        );
        assert_eq!(
            err(json!([1, 2])).to_string(),
            "the tool input must be a JSON object, not an array"
        );
    }

    #[test]
    fn coordinates_must_be_two_non_negative_numbers_inside_the_screenshot() {
        for bad in [
            json!([1]),
            json!([1, 2, 3]),
            json!(["1", 2]),
            json!({"x": 1, "y": 2}),
            json!("1,2"),
        ] {
            let e = err(json!({"action": "left_click", "coordinate": bad}));
            assert!(matches!(e, ParseError::WrongType { .. }), "{e}");
            assert!(!e.is_recoverable());
        }
        let e = err(json!({"action": "left_click", "coordinate": [-1, 2]}));
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = err(json!({"action": "mouse_move", "coordinate": [1281, 2]}));
        assert_eq!(
            e.to_string(),
            "`coordinate` of `mouse_move`: (1281, 2) is outside the 1280x800 screenshot"
        );
        assert!(e.is_recoverable());
        // Fractional coordinates are fine.
        assert_eq!(
            one(json!({"action": "mouse_move", "coordinate": [10.5, 20.25]})),
            Action::MouseMove {
                to: pt(10.5, 20.25)
            }
        );
    }

    #[test]
    fn unknown_extra_fields_are_tolerated_but_misplaced_parameters_are_not() {
        assert_eq!(
            one(json!({"action": "screenshot", "reason": "look", "caller": {"type": "direct"}})),
            Action::Screenshot
        );
        let e = err(json!({"action": "type", "text": "hi", "coordinate": [1, 2]}));
        assert_eq!(e.to_string(), "`coordinate` does not apply to `type`");
        // Explicit nulls on optional fields count as absent.
        assert_eq!(
            one(json!({"action": "left_click", "coordinate": [1, 2], "text": null})),
            click(pt(1.0, 2.0), MouseButton::Left, 1, Modifiers::default())
        );
    }

    #[test]
    fn legacy_fixture_response_is_a_screenshot() {
        let msg = fixture("1-7f-legacy-response.json");
        let parsed = AnthropicParser::new(SAME, VP).message(&msg).unwrap();
        assert_eq!(parsed.text, "Let me take a screenshot to see the desktop.");
        assert_eq!(parsed.calls.len(), 1);
        let call = &parsed.calls[0];
        assert_eq!(call.id.as_deref(), Some("toolu_01A09q90qw90lq917835lq9"));
        assert_eq!(call.name, "computer");
        assert_eq!(call.toolset_name, None);
        assert_eq!(parsed.actions(), vec![Action::Screenshot]);
    }

    #[test]
    fn ga_fixture_response_is_a_batch_of_three() {
        let msg = fixture("1-7b-ga-toolset-response-a-batch-of-3-actions.json");
        let parsed = AnthropicParser::new(SAME, VP).message(&msg).unwrap();
        assert_eq!(
            parsed.actions(),
            vec![
                click(pt(640.0, 742.0), MouseButton::Left, 1, Modifiers::default()),
                Action::Type {
                    target: None,
                    text: TypedText::Literal("17*23\n".into())
                },
                Action::Screenshot,
            ]
        );
        let names: Vec<_> = parsed.calls.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["left_click", "type", "screenshot"]);
        assert!(parsed
            .calls
            .iter()
            .all(|c| c.toolset_name.as_deref() == Some("computer")));
    }

    #[test]
    fn tool_use_dispatches_on_toolset_and_name() {
        let mut p = AnthropicParser::new(SAME, VP);
        // A custom tool that shares a member's name is not the computer toolset.
        let e = p
            .tool_use(
                &json!({"type": "tool_use", "name": "left_click", "input": {"coordinate": [1, 2]}}),
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "tool `left_click` is not an Airlock computer-use tool"
        );
        let e = p
            .tool_use(&json!({"type": "tool_use", "name": "navigate", "toolset_name": "browser", "input": {}}))
            .unwrap_err();
        assert!(e.to_string().contains("of toolset `browser`"), "{e}");
        let e = p
            .tool_use(&json!({"type": "tool_use", "name": "computer", "toolset_name": "computer", "input": {}}))
            .unwrap_err();
        assert_eq!(e, ParseError::UnknownAction("computer".into()));
    }

    #[test]
    fn a_bad_block_names_its_index_and_leaves_the_cursor_alone() {
        let mut p = AnthropicParser::new(SAME, VP);
        let msg = json!({"role": "assistant", "content": [
            {"type": "tool_use", "name": "mouse_move", "toolset_name": "computer", "input": {"coordinate": [5, 5]}},
            {"type": "thinking", "thinking": "…"},
            {"type": "tool_use", "name": "teleport", "toolset_name": "computer", "input": {}}
        ]});
        let e = p.message(&msg).unwrap_err();
        assert_eq!(e.to_string(), "content block 2: unknown action `teleport`");
        assert_eq!(p.cursor(), None);
        let e = p
            .message(&json!({"role": "user", "content": "hi"}))
            .unwrap_err();
        assert!(e.to_string().contains("only assistant messages"), "{e}");
    }
}
