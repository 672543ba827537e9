//! OpenAI Responses API computer calls → [`Action`]s (wire-formats.md §2).
//!
//! Both generations arrive as `computer_call` output items: the GA `{"type":"computer"}` tool
//! batches `actions[]`, `computer_use_preview` sends one `action`. The parser accepts either
//! field on any call (but not both). Coordinates are pixels of the screenshot the model saw.
//!
//! Mapping decisions:
//! - `keys` on mouse actions are held modifiers: kept on clicks, refused on `move`, `drag` and
//!   `scroll` (Airlock's actions cannot carry them; dropping them would change the action).
//! - `keypress` is one chord (the notes: "treat multi-key keypress as a chord").
//! - `button: "wheel"` is the middle button; `back`/`forward` are the browser's history buttons
//!   and become [`Action::Back`]/[`Action::Forward`] (the point must still be on screen).
//! - `drag` needs exactly two points; a longer path is refused rather than straightened.
//! - `scroll_x`/`scroll_y` are screenshot-pixel deltas, scaled like coordinates and capped.
//! - `wait` is "until the page settles, at most 2 s" (the docs sleep about 2 s).
//!
//! Pure: no I/O. The live adapter, the scripted provider and the fuzz targets share it.

use crate::anthropic::{json_kind, ParseError};
use crate::mapping::{key_from_tokens, scroll_delta, shown, Args, MAX_BATCH_ACTIONS};
use crate::SafetySignal;
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, Modifiers, MouseButton, Target, WaitCondition};
use serde_json::{Map, Value};

/// How long a bare `wait` waits at most, in milliseconds.
pub const WAIT_MS: u64 = 2_000;

/// One `computer_call` item, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct ComputerCall {
    /// The item id (`cu_…`).
    pub id: Option<String>,
    /// Echoed in `computer_call_output.call_id`.
    pub call_id: String,
    pub actions: Vec<Action>,
    /// `pending_safety_checks`, verbatim (echoed in `acknowledged_safety_checks` once approved).
    pub pending_safety_checks: Vec<Value>,
}

/// A Responses API `output` list, parsed.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedOutput {
    /// `output_text` of `message` items, joined with newlines.
    pub text: String,
    pub calls: Vec<ComputerCall>,
}

impl ParsedOutput {
    /// All actions of all calls, in order.
    pub fn actions(&self) -> Vec<Action> {
        self.calls
            .iter()
            .flat_map(|c| c.actions.iter().cloned())
            .collect()
    }

    /// Safety signals of all calls, each pointing at its call's first action.
    pub fn safety(&self) -> Vec<SafetySignal> {
        let mut out = Vec::new();
        let mut index = 0;
        for call in &self.calls {
            out.extend(safety_signals(&call.pending_safety_checks, index));
            index += call.actions.len();
        }
        out
    }
}

/// The signals for one call's `pending_safety_checks`, covering the call that starts at
/// `action_index`.
pub fn safety_signals(checks: &[Value], action_index: usize) -> Vec<SafetySignal> {
    checks
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let s = |k: &str| c.get(k).and_then(Value::as_str).map(str::to_string);
            SafetySignal {
                id: s("id").unwrap_or_else(|| format!("openai-check-{action_index}-{i}")),
                code: s("code").unwrap_or_default(),
                message: s("message").unwrap_or_default(),
                action_index: Some(action_index),
            }
        })
        .collect()
}

/// Parses one action object (`{"type":"click","x":…}`).
pub fn parse_action(action: &Value, space: CoordSpace, vp: Viewport) -> Result<Action, ParseError> {
    let obj = action.as_object().ok_or(ParseError::NotAnObject {
        got: json_kind(action),
    })?;
    let kind = match obj.get("type") {
        Some(Value::String(t)) => t.as_str(),
        None | Some(Value::Null) => {
            return Err(ParseError::Message(
                "an action needs a string `type`".into(),
            ))
        }
        Some(other) => {
            return Err(ParseError::Message(format!(
                "`type` of an action must be a string, not {}",
                json_kind(other)
            )))
        }
    };
    let a = Args::new(kind, obj);
    let no_modifiers = |why: &str| -> Result<(), ParseError> {
        if modifiers(&a)?.is_empty() {
            Ok(())
        } else {
            Err(a.invalid("keys", why.to_string()))
        }
    };
    Ok(match kind {
        "click" => {
            let at = a.point("x", "y", space, vp)?;
            let button = a.string("button")?;
            let button = match button {
                "left" => MouseButton::Left,
                "right" => MouseButton::Right,
                "wheel" | "middle" => MouseButton::Middle,
                "back" => {
                    no_modifiers("held keys are not supported with the back button")?;
                    return Ok(Action::Back);
                }
                "forward" => {
                    no_modifiers("held keys are not supported with the forward button")?;
                    return Ok(Action::Forward);
                }
                other => {
                    return Err(a.invalid(
                        "button",
                        format!(
                            "`{}` is not one of `left`, `right`, `wheel`, `back`, `forward`",
                            shown(other)
                        ),
                    ))
                }
            };
            Action::Click {
                target: Target::Point(at),
                button,
                count: 1,
                modifiers: modifiers(&a)?,
            }
        }
        "double_click" => Action::Click {
            target: Target::Point(a.point("x", "y", space, vp)?),
            button: MouseButton::Left,
            count: 2,
            modifiers: modifiers(&a)?,
        },
        "move" => {
            let to = a.point("x", "y", space, vp)?;
            no_modifiers("held keys are not supported while moving the mouse")?;
            Action::MouseMove { to }
        }
        "drag" => {
            let path = a.req("path")?;
            let points = path
                .as_array()
                .ok_or_else(|| a.wrong("path", "a list of points", path))?;
            let [from, to] = points.as_slice() else {
                return Err(a.invalid(
                    "path",
                    format!(
                        "{} points given; Airlock drags in a straight line between exactly two",
                        points.len()
                    ),
                ));
            };
            let from = drag_point(&a, from, space, vp)?;
            let to = drag_point(&a, to, space, vp)?;
            no_modifiers("held keys are not supported while dragging")?;
            Action::Drag { from, to }
        }
        "keypress" => {
            let keys = a.strings("keys")?;
            let combo = key_from_tokens(&keys).map_err(|e| a.invalid("keys", e.to_string()))?;
            Action::Key { combo, repeat: 1 }
        }
        "screenshot" => Action::Screenshot,
        "scroll" => {
            let at = a.point("x", "y", space, vp)?;
            let sx = a.number("scroll_x")?;
            let sy = a.number("scroll_y")?;
            let (dx, dy) = scroll_delta(space, vp, sx, sy).map_err(|e| a.invalid("scroll_y", e))?;
            no_modifiers("held keys are not supported while scrolling")?;
            Action::Scroll {
                at: Some(at),
                dx,
                dy,
            }
        }
        "type" => Action::Type {
            target: None,
            text: a.typed("text")?,
        },
        "wait" => Action::Wait {
            condition: WaitCondition::Settled,
            timeout_ms: WAIT_MS,
        },
        other => return Err(ParseError::UnknownAction(shown(other))),
    })
}

/// Held modifiers from `keys` (absent or empty: none). Non-modifier keys are an error.
fn modifiers(a: &Args<'_>) -> Result<Modifiers, ParseError> {
    if a.opt("keys").is_none() {
        return Ok(Modifiers::default());
    }
    let keys = a.strings("keys")?;
    let mut m = Modifiers::default();
    for k in keys {
        let one = Modifiers::parse(k)
            .ok()
            .filter(|x| !x.is_empty() && !k.contains('+'))
            .ok_or_else(|| {
                a.invalid(
                    "keys",
                    format!(
                        "`{}` is not a modifier key (ctrl, shift, alt, meta)",
                        shown(k)
                    ),
                )
            })?;
        m.alt |= one.alt;
        m.ctrl |= one.ctrl;
        m.meta |= one.meta;
        m.shift |= one.shift;
    }
    Ok(m)
}

/// A drag path point: `{"x":…,"y":…}` or `[x, y]`.
fn drag_point(
    a: &Args<'_>,
    p: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<airlock_core::Point, ParseError> {
    match p {
        Value::Object(o) => Args::new(a.action, o).point("x", "y", space, vp),
        Value::Array(xy) => match xy.as_slice() {
            [x, y] => {
                let mut o = Map::new();
                o.insert("x".into(), x.clone());
                o.insert("y".into(), y.clone());
                Args::new(a.action, &o).point("x", "y", space, vp)
            }
            _ => Err(a.wrong("path", "points as {x, y} or [x, y]", p)),
        },
        other => Err(a.wrong("path", "points as {x, y} or [x, y]", other)),
    }
}

/// Parses one `computer_call` item.
pub fn parse_computer_call(
    item: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<ComputerCall, ParseError> {
    let obj = item.as_object().ok_or(ParseError::NotAnObject {
        got: json_kind(item),
    })?;
    if obj.get("type").and_then(Value::as_str) != Some("computer_call") {
        return Err(ParseError::Message(
            "expected an item with `\"type\": \"computer_call\"`".into(),
        ));
    }
    let call_id = call_id(obj)?;
    let id = obj.get("id").and_then(Value::as_str).map(str::to_string);
    let pending = match obj.get("pending_safety_checks") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(c)) => c.clone(),
        Some(other) => {
            return Err(ParseError::Message(format!(
                "`pending_safety_checks` must be a list, not {}",
                json_kind(other)
            )))
        }
    };
    let raw_actions: Vec<&Value> = match (
        obj.get("actions").filter(|v| !v.is_null()),
        obj.get("action").filter(|v| !v.is_null()),
    ) {
        (Some(_), Some(_)) => {
            return Err(ParseError::Message(
                "a `computer_call` has both `action` and `actions`".into(),
            ))
        }
        (Some(Value::Array(list)), None) => list.iter().collect(),
        (Some(other), None) => {
            return Err(ParseError::Message(format!(
                "`actions` must be a list, not {}",
                json_kind(other)
            )))
        }
        (None, Some(one)) => vec![one],
        (None, None) => {
            return Err(ParseError::Message(
                "a `computer_call` has neither `action` nor `actions`".into(),
            ))
        }
    };
    if raw_actions.is_empty() {
        return Err(ParseError::Message("`actions` is empty".into()));
    }
    if raw_actions.len() > MAX_BATCH_ACTIONS {
        return Err(ParseError::Unsupported {
            action: "computer_call".into(),
            why: "more than 64 actions in one call; send fewer per turn",
        });
    }
    let actions = raw_actions
        .into_iter()
        .enumerate()
        .map(|(index, a)| parse_action(a, space, vp).map_err(|e| e.at("action", index)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ComputerCall {
        id,
        call_id,
        actions,
        pending_safety_checks: pending,
    })
}

/// The `call_id` of a `computer_call` (needed to answer it at all).
pub fn call_id(obj: &Map<String, Value>) -> Result<String, ParseError> {
    match obj.get("call_id") {
        Some(Value::String(s)) if !s.is_empty() => Ok(s.clone()),
        _ => Err(ParseError::Message(
            "a `computer_call` needs a non-empty string `call_id`".into(),
        )),
    }
}

/// Parses an `output` list: `computer_call`s become actions, `message` text is collected,
/// `reasoning` and other items are ignored; a `function_call` (Airlock declares no functions)
/// is an error. Errors name the item index.
pub fn parse_output(
    output: &[Value],
    space: CoordSpace,
    vp: Viewport,
) -> Result<ParsedOutput, ParseError> {
    let mut parsed = ParsedOutput::default();
    let mut texts = Vec::new();
    for (index, item) in output.iter().enumerate() {
        let in_item = |e: ParseError| e.at("output item", index);
        let obj = item
            .as_object()
            .ok_or(ParseError::NotAnObject {
                got: json_kind(item),
            })
            .map_err(in_item)?;
        match obj.get("type").and_then(Value::as_str) {
            Some("computer_call") => parsed
                .calls
                .push(parse_computer_call(item, space, vp).map_err(in_item)?),
            Some("message") => texts.extend(message_text(obj)),
            Some("function_call") | Some("custom_tool_call") => {
                let name = obj.get("name").and_then(Value::as_str).unwrap_or("?");
                return Err(in_item(ParseError::UnknownTool {
                    name: shown(name),
                    toolset: None,
                }));
            }
            Some(_) => {}
            None => {
                return Err(in_item(ParseError::Message(
                    "an output item needs a string `type`".into(),
                )))
            }
        }
    }
    let total: usize = parsed.calls.iter().map(|c| c.actions.len()).sum();
    if total > MAX_BATCH_ACTIONS {
        return Err(ParseError::Unsupported {
            action: "computer_call".into(),
            why: "more than 64 actions in one turn; send fewer per turn",
        });
    }
    parsed.text = texts.join("\n");
    Ok(parsed)
}

/// The `output_text` parts of a `message` item.
pub fn message_text(obj: &Map<String, Value>) -> Vec<String> {
    match obj.get("content") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(parts)) => parts
            .iter()
            .filter(|p| {
                matches!(
                    p.get("type").and_then(Value::as_str),
                    Some("output_text") | Some("text")
                )
            })
            .filter_map(|p| p.get("text").and_then(Value::as_str).map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Parses a whole Responses API response object (`{"output":[…], …}`).
pub fn parse_response(
    resp: &Value,
    space: CoordSpace,
    vp: Viewport,
) -> Result<ParsedOutput, ParseError> {
    match resp.get("output") {
        Some(Value::Array(output)) => parse_output(output, space, vp),
        Some(other) => Err(ParseError::Message(format!(
            "`output` must be a list, not {}",
            json_kind(other)
        ))),
        None => Err(ParseError::Message("the response has no `output`".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{KeyCombo, Point, TypedText};
    use serde_json::json;

    const VP: Viewport = Viewport {
        width: 1280,
        height: 800,
    };
    const SAME: CoordSpace = CoordSpace::Screenshot {
        width: 1280,
        height: 800,
    };

    fn fixture(name: &str) -> Value {
        let path = format!(
            "{}/tests/fixtures/openai/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    fn pt(x: f64, y: f64) -> Point {
        Point { x, y }
    }

    fn act(v: Value) -> Result<Action, ParseError> {
        parse_action(&v, SAME, VP)
    }

    #[test]
    fn ga_batch_fixture_maps_every_action() {
        let resp = fixture("ga-batch.json");
        let parsed = parse_response(&resp, SAME, VP).unwrap();
        assert_eq!(parsed.calls.len(), 1);
        assert_eq!(parsed.calls[0].call_id, "call_002");
        let shift = Modifiers {
            shift: true,
            ..Modifiers::default()
        };
        assert_eq!(
            parsed.actions(),
            vec![
                Action::Click {
                    target: Target::Point(pt(405.0, 157.0)),
                    button: MouseButton::Left,
                    count: 1,
                    modifiers: Modifiers::default()
                },
                Action::Type {
                    target: None,
                    text: TypedText::Literal("penguin".into())
                },
                Action::Key {
                    combo: KeyCombo::parse("Enter").unwrap(),
                    repeat: 1
                },
                Action::Click {
                    target: Target::Point(pt(612.0, 380.0)),
                    button: MouseButton::Left,
                    count: 1,
                    modifiers: shift
                },
                Action::Drag {
                    from: pt(100.0, 200.0),
                    to: pt(300.0, 200.0)
                },
                Action::Scroll {
                    at: Some(pt(640.0, 450.0)),
                    dx: 0.0,
                    dy: 600.0
                },
                Action::Wait {
                    condition: WaitCondition::Settled,
                    timeout_ms: WAIT_MS
                },
            ]
        );
        assert!(parsed.safety().is_empty());
    }

    #[test]
    fn preview_fixture_has_one_action_and_a_safety_signal() {
        let resp = fixture("preview-safety-check.json");
        let parsed = parse_response(&resp, SAME, VP).unwrap();
        assert_eq!(parsed.actions().len(), 1);
        let safety = parsed.safety();
        assert_eq!(safety.len(), 1);
        assert_eq!(safety[0].id, "cu_sc_67cb71b8d0108190c3");
        assert_eq!(safety[0].code, "malicious_instructions");
        assert!(safety[0].message.starts_with("We've detected"));
        assert_eq!(safety[0].action_index, Some(0));
    }

    #[test]
    fn buttons_and_modifiers() {
        assert!(matches!(
            act(json!({"type":"click","button":"wheel","x":1,"y":1})).unwrap(),
            Action::Click {
                button: MouseButton::Middle,
                ..
            }
        ));
        assert_eq!(
            act(json!({"type":"click","button":"back","x":1,"y":1})).unwrap(),
            Action::Back
        );
        let e = act(json!({"type":"click","button":"side","x":1,"y":1})).unwrap_err();
        assert!(e.to_string().contains("`side` is not one of"), "{e}");
        let e = act(json!({"type":"move","x":1,"y":1,"keys":["SHIFT"]})).unwrap_err();
        assert!(e.to_string().contains("not supported while moving"), "{e}");
        let e =
            act(json!({"type":"click","button":"left","x":1,"y":1,"keys":["ENTER"]})).unwrap_err();
        assert!(e.to_string().contains("not a modifier key"), "{e}");
        assert!(act(json!({"type":"double_click","x":1,"y":1,"keys":[]})).is_ok());
    }

    #[test]
    fn out_of_bounds_and_oversized_values_are_refused() {
        let e = act(json!({"type":"click","button":"left","x":5000,"y":1})).unwrap_err();
        assert!(
            e.to_string().contains("outside the 1280x800 screenshot"),
            "{e}"
        );
        assert!(e.is_recoverable());
        let e =
            act(json!({"type":"scroll","x":1,"y":1,"scroll_x":0,"scroll_y":99999})).unwrap_err();
        assert!(e.to_string().contains("scrolls more than"), "{e}");
        let e = act(json!({"type":"drag","path":[{"x":1,"y":1},{"x":2,"y":2},{"x":3,"y":3}]}))
            .unwrap_err();
        assert!(e.to_string().contains("exactly two"), "{e}");
        assert!(act(json!({"type":"drag","path":[[1,1],[2,2]]})).is_ok());
        let e = act(json!({"type":"keypress","keys":["LAUNCH"]})).unwrap_err();
        assert!(e.to_string().contains("unknown key `LAUNCH`"), "{e}");
    }

    #[test]
    fn malformed_items_say_what_is_wrong() {
        assert_eq!(
            act(json!({"type":"teleport"})).unwrap_err().to_string(),
            "unknown action `teleport`"
        );
        assert_eq!(
            act(json!({"type":"click","x":1,"y":1}))
                .unwrap_err()
                .to_string(),
            "`click` needs `button`"
        );
        assert_eq!(
            act(json!({"type":"type","text":5}))
                .unwrap_err()
                .to_string(),
            "`text` of `type` must be a string, not a number"
        );
        let e = parse_output(
            &[json!({"type":"computer_call","call_id":"c","actions":[{"type":"screenshot"},{"type":"nope"}]})],
            SAME,
            VP,
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "output item 0: action 1: unknown action `nope`"
        );
        let e =
            parse_output(&[json!({"type":"computer_call","actions":[]})], SAME, VP).unwrap_err();
        assert!(e.to_string().contains("call_id"), "{e}");
        let e = parse_output(
            &[json!({"type":"function_call","name":"shell","call_id":"x","arguments":"{}"})],
            SAME,
            VP,
        )
        .unwrap_err();
        assert!(e.to_string().contains("tool `shell`"), "{e}");
    }

    #[test]
    fn scaled_screenshots_scale_points_and_deltas() {
        let space = CoordSpace::Screenshot {
            width: 640,
            height: 400,
        };
        assert_eq!(
            parse_action(
                &json!({"type":"scroll","x":320,"y":200,"scroll_x":0,"scroll_y":100}),
                space,
                VP
            )
            .unwrap(),
            Action::Scroll {
                at: Some(pt(640.0, 400.0)),
                dx: 0.0,
                dy: 200.0
            }
        );
    }
}
