//! Gemini computer-use function calls → [`Action`]s (wire-formats.md §3).
//!
//! Both predefined function sets are accepted whatever the model: the 2.5 set (`click_at`,
//! `type_text_at`, `scroll_document`, `key_combination`, …) and the 3.x set (`click`, `type`,
//! `hotkey`, `scroll`, …, each with an `intent`). Coordinates are on the 0–999 grid
//! ([`GRID`]); scroll magnitudes too. Where the docs and the reference implementation disagree
//! on argument names, both are accepted: `drag_and_drop` with `start_x/start_y/end_x/end_y` or
//! `x/y/destination_x/destination_y`; `scroll` with `magnitude_in_pixels` or `magnitude`.
//!
//! Mapping decisions:
//! - `type_text_at` is a click on the point, then (with `clear_before_typing`, default true)
//!   ctrl+a and Delete, then the text, then Enter only when `press_enter` is true. The docs say
//!   `press_enter` defaults to true, the reference agent false; Airlock takes false, because an
//!   unasked-for Enter submits forms.
//! - `scroll_document` up/down presses PageUp/PageDown (as the reference implementation does);
//!   left/right scrolls half the viewport width.
//! - `navigate` without a scheme gets `https://` (reference implementation); the gate checks
//!   the URL like any other.
//! - `search`, `key_down`/`key_up`, `mouse_down`/`mouse_up` and the mobile functions are
//!   refused as unsupported (recoverable).
//! - `safety_decision` in `args` is not an argument: it becomes a [`SafetySignal`] when its
//!   `decision` is `require_confirmation`; any other decision except an explicit allow is
//!   refused (the reference implementation raises on unknown decisions).
//!
//! Pure: no I/O.

use crate::anthropic::{json_kind, ParseError};
use crate::mapping::{
    key_from_combo, key_from_tokens, scroll_delta, shown, wait_ms, Args, MAX_BATCH_ACTIONS,
};
use crate::SafetySignal;
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, KeyCombo, Modifiers, MouseButton, Target, WaitCondition};
use serde_json::{Map, Value};

/// Gemini's normalised coordinate grid.
pub const GRID: CoordSpace = CoordSpace::Grid { max: 999 };
/// Default `scroll_at` magnitude (2.5 set), in grid units.
pub const DEFAULT_SCROLL_AT_MAGNITUDE: f64 = 800.0;
/// Default `scroll` magnitude (3.x set, per the docs), in grid units.
pub const DEFAULT_SCROLL_MAGNITUDE: f64 = 300.0;
/// The value that asks for a human's confirmation.
pub const REQUIRE_CONFIRMATION: &str = "require_confirmation";

/// A `safety_decision` the model attached to a call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SafetyDecision {
    pub decision: String,
    pub explanation: String,
}

/// One `functionCall`, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionCall {
    /// Echoed in the `functionResponse` when present (Gemini 3).
    pub id: Option<String>,
    pub name: String,
    pub actions: Vec<Action>,
    /// The model's stated reason (3.x `intent`).
    pub intent: Option<String>,
    pub safety: Option<SafetyDecision>,
}

/// A model `Content`, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedContent {
    /// Non-thought `text` parts, joined with newlines.
    pub text: String,
    pub calls: Vec<FunctionCall>,
}

impl ParsedContent {
    pub fn actions(&self) -> Vec<Action> {
        self.calls
            .iter()
            .flat_map(|c| c.actions.iter().cloned())
            .collect()
    }

    /// One signal per call that requires confirmation, pointing at its first action. The id
    /// is the call's `id` when it has one, else `call-N` (N = the call's index in this turn).
    pub fn safety(&self) -> Vec<SafetySignal> {
        let mut out = Vec::new();
        let mut index = 0;
        for (n, call) in self.calls.iter().enumerate() {
            if let Some(d) = &call.safety {
                out.push(SafetySignal {
                    id: safety_id(call, n),
                    code: d.decision.clone(),
                    message: d.explanation.clone(),
                    action_index: Some(index),
                });
            }
            index += call.actions.len();
        }
        out
    }
}

/// The safety signal id of call number `n`.
pub fn safety_id(call: &FunctionCall, n: usize) -> String {
    match &call.id {
        Some(id) => format!("{id}:safety"),
        None => format!("call-{n}:safety"),
    }
}

/// Parses one predefined function call given its `name` and `args`.
pub fn parse_call(name: &str, args: &Value, vp: Viewport) -> Result<Vec<Action>, ParseError> {
    let empty = Map::new();
    let obj = match args {
        Value::Object(o) => o,
        Value::Null => &empty,
        other => {
            return Err(ParseError::NotAnObject {
                got: json_kind(other),
            })
        }
    };
    let a = Args::new(name, obj);
    let unsupported = |why: &'static str| {
        Err(ParseError::Unsupported {
            action: shown(name),
            why,
        })
    };
    let click = |button, count| -> Result<Vec<Action>, ParseError> {
        Ok(vec![Action::Click {
            target: Target::Point(a.point("x", "y", GRID, vp)?),
            button,
            count,
            modifiers: Modifiers::default(),
        }])
    };
    let key = |combo: KeyCombo| Action::Key { combo, repeat: 1 };
    let enter = || KeyCombo {
        key: "Enter".into(),
        modifiers: Modifiers::default(),
    };
    match name {
        // Both sets.
        "click_at" | "click" => click(MouseButton::Left, 1),
        "double_click" => click(MouseButton::Left, 2),
        "triple_click" => click(MouseButton::Left, 3),
        "middle_click" => click(MouseButton::Middle, 1),
        "right_click" => click(MouseButton::Right, 1),
        "hover_at" | "move" => Ok(vec![Action::MouseMove {
            to: a.point("x", "y", GRID, vp)?,
        }]),
        "open_web_browser" | "take_screenshot" => Ok(vec![Action::Screenshot]),
        "wait_5_seconds" => Ok(vec![Action::Wait {
            condition: WaitCondition::Settled,
            timeout_ms: 5_000,
        }]),
        "wait" => {
            let seconds = a.opt_number("seconds")?.unwrap_or(1.0);
            Ok(vec![Action::Wait {
                condition: WaitCondition::Settled,
                timeout_ms: wait_ms(seconds).map_err(|e| a.invalid("seconds", e))?,
            }])
        }
        "go_back" => Ok(vec![Action::Back]),
        "go_forward" => Ok(vec![Action::Forward]),
        "navigate" => {
            let url = a.string("url")?.trim();
            if url.is_empty() || url.len() > 2048 || url.chars().any(char::is_whitespace) {
                return Err(a.invalid("url", "not a usable address"));
            }
            let url = if url.contains("://") {
                url.to_string()
            } else {
                format!("https://{url}")
            };
            Ok(vec![Action::Navigate { url }])
        }
        "type_text_at" => {
            let at = a.point("x", "y", GRID, vp)?;
            let text = a.typed("text")?;
            let press_enter = a.opt_bool("press_enter")?.unwrap_or(false);
            let clear = a.opt_bool("clear_before_typing")?.unwrap_or(true);
            let mut out = if clear {
                vec![
                    Action::Click {
                        target: Target::Point(at),
                        button: MouseButton::Left,
                        count: 1,
                        modifiers: Modifiers::default(),
                    },
                    key(KeyCombo {
                        key: "a".into(),
                        modifiers: Modifiers {
                            ctrl: true,
                            ..Modifiers::default()
                        },
                    }),
                    key(KeyCombo {
                        key: "Delete".into(),
                        modifiers: Modifiers::default(),
                    }),
                    Action::Type { target: None, text },
                ]
            } else {
                vec![Action::Type {
                    target: Some(Target::Point(at)),
                    text,
                }]
            };
            if press_enter {
                out.push(key(enter()));
            }
            Ok(out)
        }
        "type" => {
            let text = a.typed("text")?;
            let mut out = vec![Action::Type { target: None, text }];
            if a.opt_bool("press_enter")?.unwrap_or(false) {
                out.push(key(enter()));
            }
            Ok(out)
        }
        "key_combination" | "press_key" | "hotkey" => {
            let field = if name == "press_key" { "key" } else { "keys" };
            let v = a.req(field)?;
            let combo = match v {
                Value::String(s) => key_from_combo(s),
                Value::Array(items) => {
                    let tokens: Option<Vec<&str>> = items.iter().map(Value::as_str).collect();
                    let tokens = tokens
                        .ok_or_else(|| a.wrong(field, "a key name or a list of key names", v))?;
                    key_from_tokens(&tokens)
                }
                other => return Err(a.wrong(field, "a key name or a list of key names", other)),
            }
            .map_err(|e| a.invalid(field, e.to_string()))?;
            Ok(vec![key(combo)])
        }
        "scroll_document" => {
            let dir = direction(&a)?;
            Ok(vec![match dir {
                Dir::Up | Dir::Down => key(KeyCombo {
                    key: if dir == Dir::Up { "PageUp" } else { "PageDown" }.into(),
                    modifiers: Modifiers::default(),
                }),
                Dir::Left | Dir::Right => {
                    let (dx, dy) = dir.delta(500.0);
                    let (dx, dy) =
                        scroll_delta(GRID, vp, dx, dy).map_err(|e| a.invalid("direction", e))?;
                    Action::Scroll { at: None, dx, dy }
                }
            }])
        }
        "scroll_at" | "scroll" => {
            let at = a.point("x", "y", GRID, vp)?;
            let dir = direction(&a)?;
            let m_px = a.opt_number("magnitude_in_pixels")?;
            let m = a.opt_number("magnitude")?;
            let (field, magnitude) = match (m_px, m) {
                (Some(x), Some(y)) if x != y => {
                    return Err(a.invalid(
                        "magnitude",
                        "conflicts with `magnitude_in_pixels`; give one",
                    ))
                }
                (Some(x), _) => ("magnitude_in_pixels", x),
                (None, Some(y)) => ("magnitude", y),
                (None, None) if name == "scroll_at" => ("magnitude", DEFAULT_SCROLL_AT_MAGNITUDE),
                (None, None) => ("magnitude_in_pixels", DEFAULT_SCROLL_MAGNITUDE),
            };
            if !(0.0..=999.0).contains(&magnitude) {
                return Err(a.invalid(field, format!("{magnitude} is outside the 0 to 999 grid")));
            }
            let (dx, dy) = dir.delta(magnitude);
            let (dx, dy) = scroll_delta(GRID, vp, dx, dy).map_err(|e| a.invalid(field, e))?;
            Ok(vec![Action::Scroll {
                at: Some(at),
                dx,
                dy,
            }])
        }
        "drag_and_drop" => {
            let docs = ["start_x", "start_y", "end_x", "end_y"]
                .iter()
                .any(|f| a.opt(f).is_some());
            let (from, to) = if docs {
                (
                    a.point("start_x", "start_y", GRID, vp)?,
                    a.point("end_x", "end_y", GRID, vp)?,
                )
            } else {
                (
                    a.point("x", "y", GRID, vp)?,
                    a.point("destination_x", "destination_y", GRID, vp)?,
                )
            };
            Ok(vec![Action::Drag { from, to }])
        }
        "search" => unsupported(
            "there is no search page in Airlock's browser; use `navigate` with an address of \
             the task's sites",
        ),
        "key_down" | "key_up" => unsupported("holding keys is not supported; use `hotkey`"),
        "mouse_down" | "mouse_up" => {
            unsupported("separate mouse button presses are not supported; use `drag_and_drop`")
        }
        "long_press" | "open_app" | "list_apps" => {
            unsupported("mobile actions are not available in a browser")
        }
        other => Err(ParseError::UnknownAction(shown(other))),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Dir {
    Up,
    Down,
    Left,
    Right,
}

impl Dir {
    fn delta(self, m: f64) -> (f64, f64) {
        match self {
            Dir::Up => (0.0, -m),
            Dir::Down => (0.0, m),
            Dir::Left => (-m, 0.0),
            Dir::Right => (m, 0.0),
        }
    }
}

fn direction(a: &Args<'_>) -> Result<Dir, ParseError> {
    match a.string("direction")?.to_ascii_lowercase().as_str() {
        "up" => Ok(Dir::Up),
        "down" => Ok(Dir::Down),
        "left" => Ok(Dir::Left),
        "right" => Ok(Dir::Right),
        other => Err(a.invalid(
            "direction",
            format!(
                "`{}` is not one of `up`, `down`, `left`, `right`",
                shown(other)
            ),
        )),
    }
}

/// Parses a `functionCall` object (`{"name":…,"args":{…},"id"?:…}`).
pub fn parse_function_call(fc: &Value, vp: Viewport) -> Result<FunctionCall, ParseError> {
    let obj = fc
        .as_object()
        .ok_or(ParseError::NotAnObject { got: json_kind(fc) })?;
    let name = match obj.get("name") {
        Some(Value::String(n)) if !n.is_empty() => n.as_str(),
        _ => {
            return Err(ParseError::Message(
                "a `functionCall` needs a non-empty string `name`".into(),
            ))
        }
    };
    let id = match obj.get("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(ParseError::Message(format!(
                "`id` of a `functionCall` must be a string, not {}",
                json_kind(other)
            )))
        }
    };
    let args = obj.get("args").unwrap_or(&Value::Null);
    let (intent, safety) = match args.as_object() {
        Some(o) => {
            let a = Args::new(name, o);
            let intent = a.opt_string("intent")?.map(str::to_string);
            let safety = match a.opt("safety_decision") {
                None => None,
                Some(v) => safety_decision(&a, v)?,
            };
            (intent, safety)
        }
        None => (None, None),
    };
    let actions = parse_call(name, args, vp)?;
    Ok(FunctionCall {
        id,
        name: name.to_string(),
        actions,
        intent,
        safety,
    })
}

/// `Some` when the decision needs a human; `None` for an explicit allow.
fn safety_decision(a: &Args<'_>, v: &Value) -> Result<Option<SafetyDecision>, ParseError> {
    let o = v
        .as_object()
        .ok_or_else(|| a.wrong("safety_decision", "an object", v))?;
    let sd = Args::new(a.action, o);
    let decision = sd.string("decision")?;
    let explanation = sd.opt_string("explanation")?.unwrap_or("").to_string();
    match decision {
        REQUIRE_CONFIRMATION => Ok(Some(SafetyDecision {
            decision: decision.to_string(),
            explanation,
        })),
        "allowed" | "allow" | "regular" => Ok(None),
        other => Err(ParseError::Invalid {
            action: shown(a.action),
            field: "safety_decision",
            reason: format!(
                "the model's safety decision `{}` does not allow this action{}",
                shown(other),
                if explanation.is_empty() {
                    String::new()
                } else {
                    format!(": {}", airlock_core::action::truncate(&explanation, 200))
                }
            ),
        }),
    }
}

/// Parses a model `Content` (`{"role":"model","parts":[…]}`): `functionCall` parts become
/// actions, non-thought text is collected, other parts (thought signatures, …) are ignored.
pub fn parse_content(content: &Value, vp: Viewport) -> Result<ParsedContent, ParseError> {
    let obj = content.as_object().ok_or(ParseError::NotAnObject {
        got: json_kind(content),
    })?;
    match obj.get("role").and_then(Value::as_str) {
        None | Some("model") => {}
        Some(other) => {
            return Err(ParseError::Message(format!(
                "only model content carries actions, not `{}`",
                shown(other)
            )))
        }
    }
    let parts = match obj.get("parts") {
        Some(Value::Array(p)) => p.as_slice(),
        None | Some(Value::Null) => &[],
        Some(other) => {
            return Err(ParseError::Message(format!(
                "`parts` must be a list, not {}",
                json_kind(other)
            )))
        }
    };
    parse_parts(parts, vp)
}

/// Parses a list of parts.
pub fn parse_parts(parts: &[Value], vp: Viewport) -> Result<ParsedContent, ParseError> {
    let mut parsed = ParsedContent::default();
    let mut texts = Vec::new();
    let mut total = 0;
    for (index, part) in parts.iter().enumerate() {
        let at = |e: ParseError| e.at("part", index);
        let obj = part
            .as_object()
            .ok_or(ParseError::NotAnObject {
                got: json_kind(part),
            })
            .map_err(at)?;
        let fc = obj.get("functionCall").or_else(|| obj.get("function_call"));
        if let Some(fc) = fc {
            let call = parse_function_call(fc, vp).map_err(at)?;
            total += call.actions.len();
            parsed.calls.push(call);
            continue;
        }
        let thought = matches!(obj.get("thought"), Some(Value::Bool(true)));
        if let (Some(Value::String(t)), false) = (obj.get("text"), thought) {
            texts.push(t.clone());
        }
    }
    if total > MAX_BATCH_ACTIONS {
        return Err(ParseError::Unsupported {
            action: "functionCall".into(),
            why: "more than 64 actions in one turn; send fewer per turn",
        });
    }
    parsed.text = texts.join("\n");
    Ok(parsed)
}

/// The first candidate's content of a generateContent response, or why there is none.
pub fn response_content(resp: &Value) -> Result<&Value, ParseError> {
    let obj = resp.as_object().ok_or(ParseError::NotAnObject {
        got: json_kind(resp),
    })?;
    let candidate = match obj.get("candidates") {
        Some(Value::Array(c)) => c.first(),
        None | Some(Value::Null) => None,
        Some(other) => {
            return Err(ParseError::Message(format!(
                "`candidates` must be a list, not {}",
                json_kind(other)
            )))
        }
    };
    let Some(candidate) = candidate else {
        let reason = resp
            .pointer("/promptFeedback/blockReason")
            .and_then(Value::as_str);
        return Err(ParseError::Message(match reason {
            Some(r) => format!("the prompt was blocked (`{}`)", shown(r)),
            None => "the response has no candidates".into(),
        }));
    };
    match candidate.get("content") {
        Some(c @ Value::Object(_)) => Ok(c),
        _ => {
            let reason = candidate
                .get("finishReason")
                .and_then(Value::as_str)
                .unwrap_or("none");
            Err(ParseError::Message(format!(
                "the candidate has no content (finish reason `{}`)",
                shown(reason)
            )))
        }
    }
}

/// Parses a whole generateContent response.
pub fn parse_response(resp: &Value, vp: Viewport) -> Result<ParsedContent, ParseError> {
    parse_content(response_content(resp)?, vp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{Point, TypedText};
    use serde_json::json;

    const VP: Viewport = Viewport {
        width: 1280,
        height: 800,
    };

    fn shared(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/gemini/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn call(name: &str, args: Value) -> Result<Vec<Action>, ParseError> {
        parse_call(name, &args, VP)
    }

    fn pt(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    fn ctrl(k: &str) -> KeyCombo {
        KeyCombo {
            key: k.into(),
            modifiers: Modifiers {
                ctrl: true,
                ..Modifiers::default()
            },
        }
    }

    #[test]
    fn legacy_fixture_two_calls_second_needs_confirmation() {
        let parsed = parse_response(&shared("legacy-2-5-response.json"), VP).unwrap();
        assert_eq!(parsed.calls.len(), 2);
        // type_text_at: click, clear, type; press_enter true in the fixture.
        let actions = parsed.actions();
        assert_eq!(
            actions[0],
            Action::Click {
                target: Target::Point(pt(474.88, 376.0)),
                button: MouseButton::Left,
                count: 1,
                modifiers: Modifiers::default()
            }
        );
        assert_eq!(
            actions[1],
            Action::Key {
                combo: ctrl("a"),
                repeat: 1
            }
        );
        assert_eq!(
            actions[3],
            Action::Type {
                target: None,
                text: TypedText::Literal("highly rated smart fridges".into())
            }
        );
        assert!(matches!(&actions[4], Action::Key { combo, .. } if combo.key == "Enter"));
        let safety = parsed.safety();
        assert_eq!(safety.len(), 1);
        assert_eq!(safety[0].code, "require_confirmation");
        assert_eq!(safety[0].action_index, Some(5));
        assert!(safety[0].message.contains("cookie consent"));
        assert_eq!(safety[0].id, "call-1:safety");
    }

    #[test]
    fn gemini_3_fixture_maps_hotkey_and_scroll_with_ids() {
        let parsed = parse_response(&shared("gemini-3-response.json"), VP).unwrap();
        assert_eq!(parsed.text, "");
        let ids: Vec<_> = parsed.calls.iter().map(|c| c.id.clone().unwrap()).collect();
        assert_eq!(ids, ["fc_01", "fc_02", "fc_03"]);
        assert_eq!(
            parsed.calls[0].intent.as_deref(),
            Some("Open the 'logs' folder on the desktop.")
        );
        assert_eq!(
            parsed.actions(),
            vec![
                Action::Click {
                    target: Target::Point(pt(143.36, 166.4)),
                    button: MouseButton::Left,
                    count: 2,
                    modifiers: Modifiers::default()
                },
                Action::Key {
                    combo: ctrl("a"),
                    repeat: 1
                },
                Action::Scroll {
                    at: Some(pt(640.0, 480.0)),
                    dx: 0.0,
                    dy: 240.0
                },
            ]
        );
    }

    #[test]
    fn argument_name_variants_are_all_accepted() {
        let a = call(
            "drag_and_drop",
            json!({"x": 0, "y": 0, "destination_x": 500, "destination_y": 500}),
        )
        .unwrap();
        let b = call(
            "drag_and_drop",
            json!({"start_x": 0, "start_y": 0, "end_x": 500, "end_y": 500}),
        )
        .unwrap();
        assert_eq!(a, b);
        let a = call(
            "scroll",
            json!({"x": 1, "y": 1, "direction": "down", "magnitude": 500}),
        )
        .unwrap();
        let b = call(
            "scroll",
            json!({"x": 1, "y": 1, "direction": "down", "magnitude_in_pixels": 500}),
        )
        .unwrap();
        assert_eq!(a, b);
        let e = call(
            "scroll",
            json!({"x": 1, "y": 1, "direction": "down", "magnitude": 5, "magnitude_in_pixels": 6}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("conflicts"), "{e}");
        assert_eq!(
            call("key_combination", json!({"keys": "Control+A"})).unwrap(),
            call("hotkey", json!({"keys": ["Control", "A"]})).unwrap()
        );
        assert_eq!(
            call("press_key", json!({"key": "enter"})).unwrap(),
            vec![Action::Key {
                combo: KeyCombo::parse("Return").unwrap(),
                repeat: 1
            }]
        );
    }

    #[test]
    fn grid_bounds_and_magnitudes_are_checked() {
        let e = call("click_at", json!({"x": 1000, "y": 5})).unwrap_err();
        assert!(e.to_string().contains("outside the 999x999 grid"), "{e}");
        assert!(e.is_recoverable());
        let e = call(
            "scroll_at",
            json!({"x": 1, "y": 1, "direction": "up", "magnitude": 5000}),
        )
        .unwrap_err();
        assert!(e.to_string().contains("outside the 0 to 999 grid"), "{e}");
        let e = call("wait", json!({"seconds": 1000})).unwrap_err();
        assert!(e.to_string().contains("outside 0 to 300"), "{e}");
        assert_eq!(
            call("scroll_document", json!({"direction": "down"})).unwrap(),
            vec![Action::Key {
                combo: KeyCombo::parse("Page_Down").unwrap(),
                repeat: 1
            }]
        );
        assert_eq!(
            call("scroll_document", json!({"direction": "left"})).unwrap(),
            vec![Action::Scroll {
                at: None,
                dx: -640.0,
                dy: 0.0
            }]
        );
    }

    #[test]
    fn type_variants() {
        assert_eq!(
            call(
                "type_text_at",
                json!({"x": 500, "y": 500, "text": "hi", "clear_before_typing": false})
            )
            .unwrap(),
            vec![Action::Type {
                target: Some(Target::Point(pt(640.0, 400.0))),
                text: TypedText::Literal("hi".into())
            }]
        );
        assert_eq!(
            call("type", json!({"text": "x", "press_enter": true}))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            call("navigate", json!({"url": "ci.example/runs"})).unwrap(),
            vec![Action::Navigate {
                url: "https://ci.example/runs".into()
            }]
        );
    }

    #[test]
    fn unsupported_and_unknown_functions() {
        for (name, args) in [
            ("search", json!({})),
            ("key_down", json!({"key": "Shift"})),
            ("mouse_down", json!({"x": 1, "y": 1})),
            ("open_app", json!({"app_name": "Mail"})),
        ] {
            let e = call(name, args).unwrap_err();
            assert!(matches!(e, ParseError::Unsupported { .. }), "{e}");
        }
        assert_eq!(
            call("teleport", json!({})).unwrap_err().to_string(),
            "unknown action `teleport`"
        );
        assert_eq!(
            call("click", json!({"x": 1})).unwrap_err().to_string(),
            "`click` needs `y`"
        );
    }

    #[test]
    fn safety_decisions() {
        let fc = json!({"name": "click", "args": {"x": 1, "y": 1, "safety_decision": {"decision": "blocked", "explanation": "no"}}});
        let e = parse_function_call(&fc, VP).unwrap_err();
        assert!(e.to_string().contains("`blocked` does not allow"), "{e}");
        let fc = json!({"name": "click", "args": {"x": 1, "y": 1, "safety_decision": {"decision": "allowed"}}});
        assert!(parse_function_call(&fc, VP).unwrap().safety.is_none());
        let fc = json!({"name": "click", "args": {"x": 1, "y": 1, "safety_decision": "require_confirmation"}});
        assert!(parse_function_call(&fc, VP).is_err());
    }

    #[test]
    fn blocked_prompts_and_empty_candidates_are_explained() {
        let e =
            parse_response(&json!({"promptFeedback": {"blockReason": "SAFETY"}}), VP).unwrap_err();
        assert_eq!(e.to_string(), "the prompt was blocked (`SAFETY`)");
        let e = parse_response(
            &json!({"candidates": [{"finishReason": "MALFORMED_FUNCTION_CALL"}]}),
            VP,
        )
        .unwrap_err();
        assert!(e.to_string().contains("MALFORMED_FUNCTION_CALL"), "{e}");
    }
}
