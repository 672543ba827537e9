//! The closed set of UI actions a model may propose.
//!
//! Every provider adapter parses its vendor's native tool call into an [`Action`]; nothing else
//! reaches the gate. There is deliberately no "run script" primitive: that would be shell access
//! to the page, and no policy could reason about it.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A point in CSS pixels of the page viewport (origin top-left).
///
/// Provider coordinate spaces (scaled screenshots, Gemini's 0–999 grid) are converted to this in
/// [`crate::coords`] and nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub x: f64,
    pub y: f64,
}

impl fmt::Display for Point {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "({:.0}, {:.0})", self.x, self.y)
    }
}

/// What an action is aimed at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Target {
    /// An element ref (`e123`) from the most recent observation's accessibility snapshot.
    Ref(String),
    /// An accessible role and name; must match exactly one element or the action fails closed.
    Role { role: String, name: String },
    /// A CSS selector; must match exactly one element or the action fails closed.
    Css(String),
    /// A viewport point; the element under it is resolved by hit-testing before the gate decides.
    Point(Point),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Ref(r) => write!(f, "ref {r}"),
            Target::Role { role, name } => write!(f, "{role} '{name}'"),
            Target::Css(sel) => write!(f, "selector `{sel}`"),
            Target::Point(p) => write!(f, "point {p}"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MouseButton {
    #[default]
    Left,
    Right,
    Middle,
}

/// Modifier keys held during a click, key press or scroll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Modifiers {
    #[serde(default, skip_serializing_if = "is_false")]
    pub alt: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub ctrl: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub meta: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub shift: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Modifiers {
    pub fn is_empty(&self) -> bool {
        !(self.alt || self.ctrl || self.meta || self.shift)
    }

    /// Parses a `+`-joined modifier list such as `ctrl+shift` (Anthropic's click `text` field).
    pub fn parse(list: &str) -> Result<Self, KeyParseError> {
        let mut m = Modifiers::default();
        for part in list.split('+').map(str::trim).filter(|p| !p.is_empty()) {
            if !m.set(part) {
                return Err(KeyParseError::UnknownModifier(part.to_string()));
            }
        }
        Ok(m)
    }

    fn set(&mut self, name: &str) -> bool {
        match name.to_ascii_lowercase().as_str() {
            "ctrl" | "control" | "control_l" | "control_r" => self.ctrl = true,
            "shift" | "shift_l" | "shift_r" => self.shift = true,
            "alt" | "alt_l" | "alt_r" | "option" => self.alt = true,
            "super" | "meta" | "cmd" | "command" | "win" | "super_l" | "super_r" => {
                self.meta = true
            }
            _ => return false,
        }
        true
    }
}

impl fmt::Display for Modifiers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        if self.ctrl {
            parts.push("ctrl");
        }
        if self.alt {
            parts.push("alt");
        }
        if self.shift {
            parts.push("shift");
        }
        if self.meta {
            parts.push("meta");
        }
        f.write_str(&parts.join("+"))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    #[error("empty key combination")]
    Empty,
    #[error("unknown modifier `{0}`")]
    UnknownModifier(String),
    #[error("unknown key `{0}`")]
    UnknownKey(String),
}

/// A key press with modifiers, keyed by the DOM `key` value (`Enter`, `Tab`, `a`, `PageDown`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyCombo {
    pub key: String,
    #[serde(default, skip_serializing_if = "Modifiers::is_empty")]
    pub modifiers: Modifiers,
}

/// Named keys we accept, as (accepted spellings, DOM key). Printable single characters are
/// accepted as themselves. xdotool spellings come first because Anthropic's tool uses them.
const NAMED_KEYS: &[(&[&str], &str)] = &[
    (&["return", "enter", "kp_enter"], "Enter"),
    (&["tab"], "Tab"),
    (&["escape", "esc"], "Escape"),
    (&["backspace"], "Backspace"),
    (&["delete", "del"], "Delete"),
    (&["space"], " "),
    (&["up", "arrowup"], "ArrowUp"),
    (&["down", "arrowdown"], "ArrowDown"),
    (&["left", "arrowleft"], "ArrowLeft"),
    (&["right", "arrowright"], "ArrowRight"),
    (&["page_up", "pageup", "prior"], "PageUp"),
    (&["page_down", "pagedown", "next"], "PageDown"),
    (&["home"], "Home"),
    (&["end"], "End"),
    (&["insert"], "Insert"),
    (&["f1"], "F1"),
    (&["f2"], "F2"),
    (&["f3"], "F3"),
    (&["f4"], "F4"),
    (&["f5"], "F5"),
    (&["f6"], "F6"),
    (&["f7"], "F7"),
    (&["f8"], "F8"),
    (&["f9"], "F9"),
    (&["f10"], "F10"),
    (&["f11"], "F11"),
    (&["f12"], "F12"),
];

impl KeyCombo {
    /// Parses an xdotool-style combination (`Return`, `ctrl+a`, `shift+Tab`, `Page_Down`).
    pub fn parse(spec: &str) -> Result<Self, KeyParseError> {
        let spec = spec.trim();
        if spec.is_empty() {
            return Err(KeyParseError::Empty);
        }
        // A lone "+" is the plus key, not a separator.
        let parts: Vec<&str> = if spec == "+" {
            vec!["+"]
        } else {
            spec.split('+').collect()
        };
        let (last, mods) = parts.split_last().ok_or(KeyParseError::Empty)?;
        let mut modifiers = Modifiers::default();
        for m in mods {
            if !modifiers.set(m.trim()) {
                return Err(KeyParseError::UnknownModifier(m.trim().to_string()));
            }
        }
        let key = Self::canonical_key(last.trim())?;
        Ok(KeyCombo { key, modifiers })
    }

    fn canonical_key(name: &str) -> Result<String, KeyParseError> {
        let mut chars = name.chars();
        if let (Some(c), None) = (chars.next(), chars.next()) {
            if !c.is_control() {
                return Ok(c.to_string());
            }
        }
        let lower = name.to_ascii_lowercase();
        NAMED_KEYS
            .iter()
            .find(|(names, _)| names.contains(&lower.as_str()))
            .map(|(_, dom)| (*dom).to_string())
            .ok_or_else(|| KeyParseError::UnknownKey(name.to_string()))
    }

    pub fn is_enter(&self) -> bool {
        self.key == "Enter" && self.modifiers.is_empty()
    }
}

impl fmt::Display for KeyCombo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.modifiers.is_empty() {
            write!(f, "{}", self.key)
        } else {
            write!(f, "{}+{}", self.modifiers, self.key)
        }
    }
}

/// Text to type: either literal characters or a secret handle the host substitutes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypedText {
    Literal(String),
    /// A `{{secret:NAME}}` placeholder; resolved by the secrets broker, never by the model.
    Secret(String),
}

/// A condition the host waits for. There is no blind network-idle wait: every wait names what
/// the page must show, and [`WaitCondition::Settled`] means "no busy indicator and a quiet DOM".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "until")]
pub enum WaitCondition {
    /// Document loaded, no `aria-busy="true"` element, and no DOM mutation for a short quiet period.
    Settled,
    /// The whole timeout passes (a vendor's "wait N seconds", e.g. Anthropic's `wait`). The
    /// page is still watched: a browser fault ends the wait early as a failure.
    Elapsed,
    TextPresent {
        text: String,
    },
    ElementPresent {
        role: String,
        name: String,
    },
    UrlMatches {
        pattern: String,
    },
}

impl fmt::Display for WaitCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitCondition::Settled => f.write_str("page settled"),
            WaitCondition::Elapsed => f.write_str("time elapsed"),
            WaitCondition::TextPresent { text } => write!(f, "text '{text}' present"),
            WaitCondition::ElementPresent { role, name } => write!(f, "{role} '{name}' present"),
            WaitCondition::UrlMatches { pattern } => write!(f, "URL matches `{pattern}`"),
        }
    }
}

/// One proposed UI action, provider-neutral.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Action {
    Navigate {
        url: String,
    },
    Click {
        target: Target,
        #[serde(default)]
        button: MouseButton,
        #[serde(default = "one")]
        count: u8,
        #[serde(default, skip_serializing_if = "Modifiers::is_empty")]
        modifiers: Modifiers,
    },
    Type {
        /// Where to type; `None` types into the focused element.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        target: Option<Target>,
        text: TypedText,
    },
    Key {
        combo: KeyCombo,
        #[serde(default = "one_u32")]
        repeat: u32,
    },
    Scroll {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<Point>,
        dx: f64,
        dy: f64,
    },
    MouseMove {
        to: Point,
    },
    Drag {
        from: Point,
        to: Point,
    },
    /// Moves the mouse onto an element (resolved like a click target), pressing nothing.
    Hover {
        target: Target,
    },
    /// Chooses the option of a list box (`<select>`) whose visible text or value is `value`.
    Select {
        target: Target,
        value: String,
    },
    /// Puts a file the manifest declares (`[[files]]`, named by its id) into a file input. The
    /// host chooses the file; the model never gives a path.
    Upload {
        target: Target,
        file: String,
    },
    Wait {
        condition: WaitCondition,
        timeout_ms: u64,
    },
    Screenshot,
    Back,
    Forward,
    /// The model's claim that the task is finished. A claim, not a result: the host verifies.
    Done {
        claim: String,
    },
}

fn one() -> u8 {
    1
}
fn one_u32() -> u32 {
    1
}

impl Action {
    /// A short machine-friendly name for logs and audit rows.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Navigate { .. } => "navigate",
            Action::Click { .. } => "click",
            Action::Type { .. } => "type",
            Action::Key { .. } => "key",
            Action::Scroll { .. } => "scroll",
            Action::MouseMove { .. } => "mouse_move",
            Action::Drag { .. } => "drag",
            Action::Hover { .. } => "hover",
            Action::Select { .. } => "select",
            Action::Upload { .. } => "upload",
            Action::Wait { .. } => "wait",
            Action::Screenshot => "screenshot",
            Action::Back => "back",
            Action::Forward => "forward",
            Action::Done { .. } => "done",
        }
    }

    /// The target to resolve before the gate decides, if the action has one.
    pub fn target(&self) -> Option<&Target> {
        match self {
            Action::Click { target, .. } => Some(target),
            Action::Type { target, .. } => target.as_ref(),
            Action::Hover { target }
            | Action::Select { target, .. }
            | Action::Upload { target, .. } => Some(target),
            _ => None,
        }
    }

    /// Whether running the action twice is the same as running it once. Only these may be
    /// retried after an unknown outcome.
    pub fn is_idempotent(&self) -> bool {
        matches!(
            self,
            Action::Navigate { .. }
                | Action::Scroll { .. }
                | Action::MouseMove { .. }
                | Action::Wait { .. }
                | Action::Screenshot
                | Action::Done { .. }
        )
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Navigate { url } => write!(f, "navigate to {url}"),
            Action::Click {
                target,
                button,
                count,
                modifiers,
            } => {
                let what = match (button, count) {
                    (MouseButton::Left, 1) => "click".to_string(),
                    (MouseButton::Left, 2) => "double-click".to_string(),
                    (MouseButton::Left, 3) => "triple-click".to_string(),
                    (MouseButton::Right, _) => "right-click".to_string(),
                    (MouseButton::Middle, _) => "middle-click".to_string(),
                    (_, n) => format!("click x{n}"),
                };
                if modifiers.is_empty() {
                    write!(f, "{what} {target}")
                } else {
                    write!(f, "{modifiers}+{what} {target}")
                }
            }
            Action::Type { target, text } => {
                let shown = match text {
                    TypedText::Literal(t) => format!("'{}'", truncate(t, 60)),
                    TypedText::Secret(name) => format!("secret `{name}`"),
                };
                match target {
                    Some(t) => write!(f, "type {shown} into {t}"),
                    None => write!(f, "type {shown}"),
                }
            }
            Action::Key { combo, repeat } if *repeat > 1 => write!(f, "press {combo} x{repeat}"),
            Action::Key { combo, .. } => write!(f, "press {combo}"),
            Action::Scroll { at, dx, dy } => {
                let dir = if dy.abs() >= dx.abs() {
                    if *dy >= 0.0 {
                        "down"
                    } else {
                        "up"
                    }
                } else if *dx >= 0.0 {
                    "right"
                } else {
                    "left"
                };
                let amount = dx.abs().max(dy.abs());
                match at {
                    Some(p) => write!(f, "scroll {dir} {amount:.0}px at {p}"),
                    None => write!(f, "scroll {dir} {amount:.0}px"),
                }
            }
            Action::MouseMove { to } => write!(f, "move mouse to {to}"),
            Action::Drag { from, to } => write!(f, "drag from {from} to {to}"),
            Action::Hover { target } => write!(f, "hover over {target}"),
            Action::Select { target, value } => {
                write!(f, "choose option '{}' in {target}", truncate(value, 60))
            }
            Action::Upload { target, file } => {
                write!(f, "upload declared file `{file}` into {target}")
            }
            Action::Wait {
                condition: WaitCondition::Elapsed,
                timeout_ms,
            } => write!(f, "wait {timeout_ms} ms"),
            Action::Wait {
                condition,
                timeout_ms,
            } => write!(f, "wait up to {timeout_ms} ms for {condition}"),
            Action::Screenshot => f.write_str("take a screenshot"),
            Action::Back => f.write_str("go back"),
            Action::Forward => f.write_str("go forward"),
            Action::Done { claim } => write!(f, "claim done: {}", truncate(claim, 80)),
        }
    }
}

/// Shortens `s` to at most `max` characters for display, marking the cut.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
        out.push('…');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xdotool_keys_map_to_dom_keys() {
        assert_eq!(KeyCombo::parse("Return").unwrap().key, "Enter");
        assert_eq!(KeyCombo::parse("Page_Down").unwrap().key, "PageDown");
        let c = KeyCombo::parse("ctrl+shift+a").unwrap();
        assert!(c.modifiers.ctrl && c.modifiers.shift && !c.modifiers.alt);
        assert_eq!(c.key, "a");
        assert_eq!(KeyCombo::parse("+").unwrap().key, "+");
        assert_eq!(c.to_string(), "ctrl+shift+a");
    }

    #[test]
    fn unknown_keys_and_modifiers_are_errors() {
        assert_eq!(
            KeyCombo::parse("hyper+x"),
            Err(KeyParseError::UnknownModifier("hyper".into()))
        );
        assert_eq!(
            KeyCombo::parse("Launch_Rockets"),
            Err(KeyParseError::UnknownKey("Launch_Rockets".into()))
        );
        assert_eq!(KeyCombo::parse("  "), Err(KeyParseError::Empty));
    }

    #[test]
    fn actions_round_trip_through_json() {
        let a = Action::Click {
            target: Target::Role {
                role: "button".into(),
                name: "Submit note".into(),
            },
            button: MouseButton::Left,
            count: 1,
            modifiers: Modifiers::default(),
        };
        let json = serde_json::to_string(&a).unwrap();
        let back: Action = serde_json::from_str(&json).unwrap();
        assert_eq!(a, back);
        assert_eq!(a.to_string(), "click button 'Submit note'");
    }

    #[test]
    fn a_timed_wait_reads_as_a_pause_and_a_conditional_one_names_its_condition() {
        let pause = Action::Wait {
            condition: WaitCondition::Elapsed,
            timeout_ms: 5_000,
        };
        assert_eq!(pause.to_string(), "wait 5000 ms");
        let text = Action::Wait {
            condition: WaitCondition::TextPresent {
                text: "Done".into(),
            },
            timeout_ms: 2_000,
        };
        assert_eq!(
            text.to_string(),
            "wait up to 2000 ms for text 'Done' present"
        );
    }

    #[test]
    fn only_side_effect_free_actions_are_idempotent() {
        assert!(Action::Screenshot.is_idempotent());
        assert!(!Action::Click {
            target: Target::Ref("e1".into()),
            button: MouseButton::Left,
            count: 1,
            modifiers: Modifiers::default()
        }
        .is_idempotent());
    }
}
