//! The action grammar for open models behind OpenAI-compatible chat completions (UI-TARS,
//! Qwen-VL behind vLLM, Ollama or llama.cpp's server), and its strict parser.
//!
//! These models have no native computer-use tool, so the host states a small grammar in the
//! system prompt ([`grammar`]) and parses the reply strictly ([`parse_reply`]):
//!
//! ```text
//! Thought: <free text, optional, may span lines>
//! Action: click(640, 400)
//! Action: type("ci-reader")
//! ```
//!
//! - The reply starts with `Thought:` or `Action:` (after an optional `<think>…</think>` block,
//!   which some servers leave in). Every line after the first `Action:` line is another
//!   `Action:` line or blank; nothing else is accepted.
//! - Arguments are numbers and JSON string literals (double quotes, JSON escapes), separated by
//!   commas; no named arguments, no nesting.
//! - Coordinates are pixels of the screenshot as sent (or a normalised grid, see
//!   [`crate::CompatCoords`]); they go through [`CoordSpace`] like every other adapter's.
//! - `done("summary")` ends the task (a claim the host verifies); it must be the last action.
//!
//! Pure: no I/O.

use crate::anthropic::ParseError;
use crate::coords::to_css_checked;
use crate::mapping::{key_from_combo, scroll_delta, shown, typed, wait_ms, MAX_BATCH_ACTIONS};
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{Action, Modifiers, MouseButton, Point, Target, WaitCondition};

/// CSS pixels per scroll unit (one "click" of `scroll`'s amount).
pub const SCROLL_UNIT_CSS_PX: f64 = 100.0;
/// Largest `scroll` amount.
pub const MAX_SCROLL_AMOUNT: f64 = 50.0;
/// Longest reply parsed, in bytes.
pub const MAX_REPLY_BYTES: usize = 64 * 1024;

/// The grammar as stated to the model, for a screenshot frame described by `frame` (for
/// example "pixels of the 1280x800 screenshot, x from 0 to 1279").
pub fn grammar(frame: &str) -> String {
    format!(
        "Reply in exactly this format and nothing else:\n\
         Thought: <one or more lines: what you see and what you will do next>\n\
         Action: <one action>\n\
         You may add more `Action:` lines (one action per line) to run several actions in \
         order; they stop at the first one that fails. No text may follow the actions.\n\n\
         Actions (x and y are {frame}; strings are in double quotes with JSON escapes):\n\
         click(x, y)                 left click\n\
         double_click(x, y)\n\
         right_click(x, y)\n\
         move(x, y)                  move the mouse without clicking\n\
         drag(x1, y1, x2, y2)        press at (x1, y1), release at (x2, y2)\n\
         type(\"text\")                type into the focused field; \\n presses Enter\n\
         key(\"ctrl+a\")               one key or combination: Enter, Tab, Escape, Backspace, \
         Delete, ArrowUp, PageDown, ctrl+c, shift+Tab, …\n\
         scroll(x, y, \"down\", 3)     direction up, down, left or right; amount 1 to {max} \
         (one unit is about {unit} pixels)\n\
         wait(2)                     wait up to this many seconds for the page to settle\n\
         navigate(\"https://…\")       open an address\n\
         back()\n\
         forward()\n\
         done(\"summary\")             the task is complete; say what you did\n",
        max = MAX_SCROLL_AMOUNT,
        unit = SCROLL_UNIT_CSS_PX,
    )
}

/// A parsed reply: the thought (may be empty) and the actions, in order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ParsedReply {
    pub thought: String,
    pub actions: Vec<Action>,
}

/// One argument.
#[derive(Debug, Clone, PartialEq)]
enum Arg {
    Num(f64),
    Str(String),
}

fn invalid(action: &str, reason: impl Into<String>) -> ParseError {
    ParseError::Invalid {
        action: shown(action),
        field: "arguments",
        reason: reason.into(),
    }
}

/// Parses `name(args…)` from one line.
fn parse_call(line: &str) -> Result<(String, Vec<Arg>), ParseError> {
    let line = line.trim();
    let open = line.find('(').ok_or_else(|| {
        ParseError::Message(format!(
            "`{}` is not an action call like `click(640, 400)`",
            shown(line)
        ))
    })?;
    let name = line.get(..open).unwrap_or("").trim();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
        return Err(ParseError::Message(format!(
            "`{}` is not an action name",
            shown(name)
        )));
    }
    let rest = line.get(open + 1..).unwrap_or("");
    let mut args = Vec::new();
    let mut chars = rest.char_indices().peekable();
    let mut expect_arg = true;
    let mut closed_at = None;
    while let Some(&(i, c)) = chars.peek() {
        match c {
            ' ' | '\t' => {
                chars.next();
            }
            ')' => {
                if !expect_arg || args.is_empty() {
                    closed_at = Some(i);
                    chars.next();
                    break;
                }
                return Err(invalid(name, "an argument is missing after `,`"));
            }
            ',' if !expect_arg => {
                expect_arg = true;
                chars.next();
            }
            '"' if expect_arg => {
                // A JSON string literal: find its end, honouring escapes, then let serde decode.
                let start = i;
                chars.next();
                let mut end = None;
                let mut escaped = false;
                for (j, d) in chars.by_ref() {
                    if escaped {
                        escaped = false;
                    } else if d == '\\' {
                        escaped = true;
                    } else if d == '"' {
                        end = Some(j);
                        break;
                    }
                }
                let end = end.ok_or_else(|| invalid(name, "a string is not closed"))?;
                let literal = rest.get(start..=end).unwrap_or("");
                let s: String = serde_json::from_str(literal)
                    .map_err(|_| invalid(name, "a string has an invalid escape"))?;
                args.push(Arg::Str(s));
                expect_arg = false;
            }
            c if expect_arg && (c == '-' || c == '+' || c == '.' || c.is_ascii_digit()) => {
                let start = i;
                let mut end = i;
                while let Some(&(j, d)) = chars.peek() {
                    if d.is_ascii_digit() || matches!(d, '-' | '+' | '.' | 'e' | 'E') {
                        end = j + d.len_utf8();
                        chars.next();
                    } else {
                        break;
                    }
                }
                let text = rest.get(start..end).unwrap_or("");
                let n: f64 = text
                    .parse()
                    .ok()
                    .filter(|n: &f64| n.is_finite())
                    .ok_or_else(|| invalid(name, format!("`{}` is not a number", shown(text))))?;
                args.push(Arg::Num(n));
                expect_arg = false;
            }
            other => {
                return Err(invalid(
                    name,
                    format!("unexpected `{other}`; arguments are numbers and \"strings\""),
                ))
            }
        }
    }
    let closed_at = closed_at.ok_or_else(|| invalid(name, "the call is not closed with `)`"))?;
    if !rest.get(closed_at + 1..).unwrap_or("").trim().is_empty() {
        return Err(invalid(name, "text follows the closing `)`"));
    }
    Ok((name.to_string(), args))
}

/// Maps one call to actions.
fn to_actions(
    name: &str,
    args: &[Arg],
    space: CoordSpace,
    vp: Viewport,
) -> Result<Vec<Action>, ParseError> {
    let sig = |want: &str| invalid(name, format!("expected `{name}({want})`"));
    let point = |x: f64, y: f64| -> Result<Point, ParseError> {
        to_css_checked(space, vp, x, y).map_err(|e| invalid(name, e.to_string()))
    };
    let click = |button, count, x: f64, y: f64| -> Result<Vec<Action>, ParseError> {
        Ok(vec![Action::Click {
            target: Target::Point(point(x, y)?),
            button,
            count,
            modifiers: Modifiers::default(),
        }])
    };
    use Arg::{Num, Str};
    match (name, args) {
        ("click", [Num(x), Num(y)]) => click(MouseButton::Left, 1, *x, *y),
        ("double_click", [Num(x), Num(y)]) => click(MouseButton::Left, 2, *x, *y),
        ("right_click", [Num(x), Num(y)]) => click(MouseButton::Right, 1, *x, *y),
        ("move", [Num(x), Num(y)]) => Ok(vec![Action::MouseMove { to: point(*x, *y)? }]),
        ("drag", [Num(x1), Num(y1), Num(x2), Num(y2)]) => Ok(vec![Action::Drag {
            from: point(*x1, *y1)?,
            to: point(*x2, *y2)?,
        }]),
        ("type", [Str(t)]) => Ok(vec![Action::Type {
            target: None,
            text: typed(t).map_err(|e| invalid(name, e))?,
        }]),
        ("key", [Str(k)]) => Ok(vec![Action::Key {
            combo: key_from_combo(k).map_err(|e| invalid(name, e.to_string()))?,
            repeat: 1,
        }]),
        ("scroll", [Num(x), Num(y), Str(dir), Num(amount)]) => {
            let at = point(*x, *y)?;
            if !(amount.fract() == 0.0 && (1.0..=MAX_SCROLL_AMOUNT).contains(amount)) {
                return Err(invalid(
                    name,
                    format!("amount {amount} is not a whole number from 1 to {MAX_SCROLL_AMOUNT}"),
                ));
            }
            let px = amount * SCROLL_UNIT_CSS_PX;
            let (dx, dy) = match dir.as_str() {
                "up" => (0.0, -px),
                "down" => (0.0, px),
                "left" => (-px, 0.0),
                "right" => (px, 0.0),
                other => {
                    return Err(invalid(
                        name,
                        format!("`{}` is not one of up, down, left, right", shown(other)),
                    ))
                }
            };
            // Amounts are already CSS pixels: no screenshot scaling.
            let (dx, dy) = scroll_delta(
                CoordSpace::Screenshot {
                    width: vp.width,
                    height: vp.height,
                },
                vp,
                dx,
                dy,
            )
            .map_err(|e| invalid(name, e))?;
            Ok(vec![Action::Scroll {
                at: Some(at),
                dx,
                dy,
            }])
        }
        ("wait", [Num(s)]) => Ok(vec![Action::Wait {
            condition: WaitCondition::Settled,
            timeout_ms: wait_ms(*s).map_err(|e| invalid(name, e))?,
        }]),
        ("navigate", [Str(url)]) => {
            let url = url.trim();
            if url.is_empty() || url.len() > 2048 || url.chars().any(char::is_whitespace) {
                return Err(invalid(name, "not a usable address"));
            }
            Ok(vec![Action::Navigate {
                url: url.to_string(),
            }])
        }
        ("back", []) => Ok(vec![Action::Back]),
        ("forward", []) => Ok(vec![Action::Forward]),
        ("done", [Str(claim)]) => Ok(vec![Action::Done {
            claim: claim.clone(),
        }]),
        ("click" | "double_click" | "right_click" | "move", _) => Err(sig("x, y")),
        ("drag", _) => Err(sig("x1, y1, x2, y2")),
        ("type", _) => Err(sig("\"text\"")),
        ("key", _) => Err(sig("\"key\"")),
        ("scroll", _) => Err(sig("x, y, \"direction\", amount")),
        ("wait", _) => Err(sig("seconds")),
        ("navigate", _) => Err(sig("\"url\"")),
        ("done", _) => Err(sig("\"summary\"")),
        ("back" | "forward", _) => Err(sig("")),
        (other, _) => Err(ParseError::UnknownAction(shown(other))),
    }
}

/// Parses a reply strictly; see the module docs for the grammar.
pub fn parse_reply(
    reply: &str,
    space: CoordSpace,
    vp: Viewport,
) -> Result<ParsedReply, ParseError> {
    if reply.len() > MAX_REPLY_BYTES {
        return Err(ParseError::Message(format!(
            "the reply is longer than {MAX_REPLY_BYTES} bytes"
        )));
    }
    let mut text = reply.trim_start_matches('\u{feff}').trim();
    if let Some(rest) = text.strip_prefix("<think>") {
        let end = rest
            .find("</think>")
            .ok_or_else(|| ParseError::Message("a `<think>` block is not closed".into()))?;
        text = rest.get(end + "</think>".len()..).unwrap_or("").trim();
    }
    if !(text.starts_with("Thought:") || text.starts_with("Action:")) {
        return Err(ParseError::Message(
            "the reply must start with `Thought:` or `Action:`".into(),
        ));
    }
    let mut thought = Vec::new();
    let mut actions = Vec::new();
    let mut in_actions = false;
    for (n, line) in text.lines().enumerate() {
        let at = |e: ParseError| e.at("reply line", n + 1);
        if let Some(call) = line.trim_start().strip_prefix("Action:") {
            in_actions = true;
            if actions.iter().any(|a| matches!(a, Action::Done { .. })) {
                return Err(at(ParseError::Message(
                    "`done` must be the last action".into(),
                )));
            }
            let (name, args) = parse_call(call).map_err(at)?;
            actions.extend(to_actions(&name, &args, space, vp).map_err(at)?);
            if actions.len() > MAX_BATCH_ACTIONS {
                return Err(ParseError::Message(format!(
                    "more than {MAX_BATCH_ACTIONS} actions in one reply"
                )));
            }
        } else if in_actions {
            if !line.trim().is_empty() {
                return Err(at(ParseError::Message(
                    "only `Action:` lines may follow the first action".into(),
                )));
            }
        } else {
            let line = if n == 0 {
                line.strip_prefix("Thought:").unwrap_or(line)
            } else {
                line
            };
            thought.push(line.trim());
        }
    }
    if actions.is_empty() {
        return Err(ParseError::Message(
            "the reply has no `Action:` line; end the task with `Action: done(\"…\")`".into(),
        ));
    }
    Ok(ParsedReply {
        thought: thought.join("\n").trim().to_string(),
        actions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use airlock_core::{KeyCombo, TypedText};

    const VP: Viewport = Viewport {
        width: 1280,
        height: 800,
    };
    const SAME: CoordSpace = CoordSpace::Screenshot {
        width: 1280,
        height: 800,
    };

    fn parse(s: &str) -> Result<ParsedReply, ParseError> {
        parse_reply(s, SAME, VP)
    }

    #[test]
    fn a_thought_and_several_actions() {
        let r = parse(
            "Thought: The login form is open.\nI will sign in.\nAction: click(632, 287)\n\
             Action: type(\"ci-reader\\n\")\nAction: key(\"ctrl+a\")\n\n",
        )
        .unwrap();
        assert_eq!(r.thought, "The login form is open.\nI will sign in.");
        assert_eq!(r.actions.len(), 3);
        assert_eq!(
            r.actions[1],
            Action::Type {
                target: None,
                text: TypedText::Literal("ci-reader\n".into())
            }
        );
        assert_eq!(
            r.actions[2],
            Action::Key {
                combo: KeyCombo::parse("ctrl+a").unwrap(),
                repeat: 1
            }
        );
    }

    #[test]
    fn every_action_of_the_grammar_parses() {
        let r = parse(concat!(
            "Action: double_click(1, 2)\n",
            "Action: right_click(1, 2)\n",
            "Action: move(3.5, 4)\n",
            "Action: drag(1, 1, 100, 100)\n",
            "Action: scroll(640, 400, \"down\", 3)\n",
            "Action: wait(1.5)\n",
            "Action: navigate(\"http://ci.example/runs\")\n",
            "Action: back()\n",
            "Action: forward( )\n",
            "Action: done(\"Added the note.\")",
        ))
        .unwrap();
        assert_eq!(r.actions.len(), 10);
        assert_eq!(
            r.actions[4],
            Action::Scroll {
                at: Some(Point { x: 640.0, y: 400.0 }),
                dx: 0.0,
                dy: 300.0
            }
        );
        assert_eq!(
            r.actions[9],
            Action::Done {
                claim: "Added the note.".into()
            }
        );
    }

    #[test]
    fn think_blocks_are_skipped() {
        let r = parse("<think>hmm</think>\nAction: click(1, 1)").unwrap();
        assert_eq!(r.actions.len(), 1);
    }

    #[test]
    fn strictness() {
        for (reply, needle) in [
            ("I will click.\nAction: click(1, 1)", "must start with"),
            ("Thought: hi", "no `Action:` line"),
            ("Action: click(1, 1)\nDone.", "only `Action:` lines"),
            ("Action: click(1)", "expected `click(x, y)`"),
            ("Action: click(1, 1", "not closed"),
            ("Action: click(1, 1) now", "text follows"),
            ("Action: click(x=1, y=1)", "unexpected `x`"),
            ("Action: type('hi')", "unexpected `'`"),
            ("Action: type(\"hi)", "string is not closed"),
            ("Action: type(\"\\q\")", "invalid escape"),
            ("Action: teleport(1, 2)", "unknown action `teleport`"),
            ("Action: click(1, 2,)", "missing after"),
            (
                "Action: done(\"x\")\nAction: click(1, 1)",
                "must be the last",
            ),
            ("Action: click(5000, 1)", "outside the 1280x800 screenshot"),
            (
                "Action: scroll(1, 1, \"down\", 500)",
                "not a whole number from 1 to 50",
            ),
            ("Action: wait(1e9)", "outside 0 to 300"),
            ("Action: key(\"hyper+x\")", "unknown"),
            ("Action: click(1e400, 1)", "is not a number"),
            ("Action: CLICK(1, 1)", "not an action name"),
        ] {
            let e = parse(reply).unwrap_err().to_string();
            assert!(e.contains(needle), "{reply:?}: {e}");
        }
    }

    #[test]
    fn a_grid_frame_maps_through_coordspace() {
        let r = parse_reply("Action: click(500, 500)", CoordSpace::Grid { max: 999 }, VP).unwrap();
        assert_eq!(
            r.actions[0],
            Action::Click {
                target: Target::Point(Point { x: 640.0, y: 400.0 }),
                button: MouseButton::Left,
                count: 1,
                modifiers: Modifiers::default()
            }
        );
        assert!(grammar("pixels").contains("done(\"summary\")"));
    }
}
