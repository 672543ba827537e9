//! The one mapping layer between vendor vocabularies and Airlock's actions.
//!
//! - Key names: xdotool (`Return`, `ctrl+s`, `Page_Down`), OpenAI's uppercase tokens
//!   (`["CTRL","L"]`, `ARROWLEFT`) and Gemini's free-form names (`Control+A`, `enter`,
//!   `Command`) all become one [`KeyCombo`]; an unknown name is an error, never dropped.
//! - Limits: waits, scroll distances, key repeats, batch sizes and typed text have caps; a
//!   value over a cap is refused with a message that names the cap, never clamped.
//! - Coordinates and scroll deltas go through [`crate::coords`], i.e. [`CoordSpace`].
//!
//! [`CoordSpace`]: airlock_core::coords::CoordSpace

use crate::anthropic::{json_kind, ParseError};
use crate::coords::{delta_to_css, to_css_checked};
use airlock_core::action::truncate;
use airlock_core::coords::{CoordSpace, Viewport};
use airlock_core::{KeyCombo, Modifiers, Point, TypedText};
use serde_json::{Map, Value};

pub use crate::anthropic::{MAX_KEY_REPEAT, MAX_WAIT_SECONDS};

/// Longest scroll one action may ask for, in CSS pixels per axis (as Anthropic's 100 wheel
/// clicks of 100 px).
pub const MAX_SCROLL_CSS_PX: f64 = 10_000.0;
/// Most actions one model turn may propose.
pub const MAX_BATCH_ACTIONS: usize = 64;
/// Most characters one `type` action may carry.
pub const MAX_TYPE_CHARS: usize = 20_000;
/// Most tokens in one key chord (`["CTRL","SHIFT","T"]`).
pub const MAX_CHORD_TOKENS: usize = 6;

/// Why a key name could not be mapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("no key given")]
    Empty,
    #[error("unknown key `{0}`")]
    Unknown(String),
    #[error("only modifier keys given; name the key to press with them")]
    OnlyModifiers,
    #[error(
        "`{0}` and `{1}` are both non-modifier keys; press one key (with modifiers) per action \
         and send a sequence as separate actions"
    )]
    TwoKeys(String, String),
    #[error("more than {MAX_CHORD_TOKENS} keys in one combination")]
    TooMany,
}

/// Names accepted in addition to what [`KeyCombo::parse`] knows (xdotool keysym names of
/// punctuation, a few common abbreviations).
const KEY_ALIASES: &[(&str, &str)] = &[
    ("plus", "+"),
    ("minus", "-"),
    ("comma", ","),
    ("period", "."),
    ("slash", "/"),
    ("backslash", "\\"),
    ("semicolon", ";"),
    ("apostrophe", "'"),
    ("quote", "'"),
    ("grave", "`"),
    ("bracketleft", "["),
    ("bracketright", "]"),
    ("equal", "="),
    ("spacebar", "space"),
    ("pgup", "pageup"),
    ("pgdn", "pagedown"),
    ("ins", "insert"),
    ("arrow_up", "up"),
    ("arrow_down", "down"),
    ("arrow_left", "left"),
    ("arrow_right", "right"),
];

/// Whether `token` names a modifier, and which.
fn modifier(token: &str) -> Option<Modifiers> {
    if token.trim().is_empty() || token.contains('+') {
        return None;
    }
    Modifiers::parse(token).ok().filter(|m| !m.is_empty())
}

/// The DOM key for one non-modifier token.
fn key_name(token: &str) -> Result<String, KeyError> {
    let t = token.trim();
    if t.is_empty() {
        return Err(KeyError::Empty);
    }
    let lower = t.to_ascii_lowercase();
    let name = KEY_ALIASES
        .iter()
        .find(|(alias, _)| *alias == lower)
        .map_or(t, |(_, to)| *to);
    if name.contains('+') && name != "+" {
        return Err(KeyError::Unknown(truncate(t, 40)));
    }
    KeyCombo::parse(name)
        .ok()
        .filter(|c| c.modifiers.is_empty())
        .map(|c| c.key)
        .ok_or_else(|| KeyError::Unknown(truncate(t, 40)))
}

/// One combination from separate tokens, modifiers in any position (OpenAI `keypress.keys`,
/// Gemini `hotkey.keys`). A letter pressed with ctrl, alt or meta is lower-cased: `CTRL`+`A` is
/// the shortcut ctrl+a, not ctrl+shift+a.
pub fn key_from_tokens<S: AsRef<str>>(tokens: &[S]) -> Result<KeyCombo, KeyError> {
    if tokens.len() > MAX_CHORD_TOKENS {
        return Err(KeyError::TooMany);
    }
    let mut modifiers = Modifiers::default();
    let mut key: Option<(String, &str)> = None;
    for token in tokens {
        let token = token.as_ref();
        if let Some(m) = modifier(token) {
            modifiers.alt |= m.alt;
            modifiers.ctrl |= m.ctrl;
            modifiers.meta |= m.meta;
            modifiers.shift |= m.shift;
            continue;
        }
        let name = key_name(token)?;
        if let Some((_, first)) = &key {
            return Err(KeyError::TwoKeys(truncate(first, 40), truncate(token, 40)));
        }
        key = Some((name, token));
    }
    let Some((mut key, _)) = key else {
        return if tokens.is_empty() {
            Err(KeyError::Empty)
        } else {
            Err(KeyError::OnlyModifiers)
        };
    };
    if (modifiers.ctrl || modifiers.alt || modifiers.meta)
        && key.len() == 1
        && key.chars().all(|c| c.is_ascii_uppercase())
    {
        key = key.to_ascii_lowercase();
    }
    Ok(KeyCombo { key, modifiers })
}

/// One `+`-joined combination (`Control+A`, `enter`, `ctrl+shift+t`, `Control++`).
pub fn key_from_combo(spec: &str) -> Result<KeyCombo, KeyError> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err(KeyError::Empty);
    }
    if spec == "+" {
        return key_from_tokens(&["+"]);
    }
    // A trailing "++" is the plus key after modifiers.
    let (head, plus) = match spec.strip_suffix("++") {
        Some(head) => (head, true),
        None => (spec, false),
    };
    let mut tokens: Vec<&str> = head.split('+').map(str::trim).collect();
    if plus {
        tokens.push("+");
    }
    if tokens.iter().any(|t| t.is_empty()) {
        return Err(KeyError::Unknown(truncate(spec, 40)));
    }
    key_from_tokens(&tokens)
}

/// A wait of `seconds`, refused outside 0 to [`MAX_WAIT_SECONDS`].
pub fn wait_ms(seconds: f64) -> Result<u64, String> {
    if !seconds.is_finite() || !(0.0..=MAX_WAIT_SECONDS).contains(&seconds) {
        return Err(format!(
            "{seconds} seconds is outside 0 to {MAX_WAIT_SECONDS}"
        ));
    }
    Ok((seconds * 1000.0).round() as u64)
}

/// A scroll delta in the provider's space, converted to CSS pixels and checked against
/// [`MAX_SCROLL_CSS_PX`] on each axis.
pub fn scroll_delta(
    space: CoordSpace,
    vp: Viewport,
    dx: f64,
    dy: f64,
) -> Result<(f64, f64), String> {
    if !(dx.is_finite() && dy.is_finite()) {
        return Err("the scroll distance must be a finite number".to_string());
    }
    let (cx, cy) = delta_to_css(space, vp, dx, dy);
    if cx.abs() > MAX_SCROLL_CSS_PX || cy.abs() > MAX_SCROLL_CSS_PX {
        return Err(format!(
            "({dx}, {dy}) scrolls more than the {MAX_SCROLL_CSS_PX} CSS pixels allowed per action"
        ));
    }
    Ok((cx, cy))
}

/// Text to type, checked for length and `{{secret:…}}` placeholders.
pub fn typed(text: &str) -> Result<TypedText, String> {
    if text.is_empty() {
        return Err("there is nothing to type".to_string());
    }
    if text.chars().count() > MAX_TYPE_CHARS {
        return Err(format!(
            "more than {MAX_TYPE_CHARS} characters in one action"
        ));
    }
    crate::text::typed_text(text).map_err(|e| e.to_string())
}

/// A model-supplied name, shortened so a hostile payload cannot flood an error message.
pub(crate) fn shown(name: &str) -> String {
    truncate(name, 64)
}

/// The arguments of one vendor action, with typed accessors that produce precise errors.
pub(crate) struct Args<'a> {
    pub action: &'a str,
    pub obj: &'a Map<String, Value>,
}

impl<'a> Args<'a> {
    pub fn new(action: &'a str, obj: &'a Map<String, Value>) -> Self {
        Args { action, obj }
    }

    /// An optional field; `null` counts as absent.
    pub fn opt(&self, field: &str) -> Option<&'a Value> {
        self.obj.get(field).filter(|v| !v.is_null())
    }

    pub fn req(&self, field: &'static str) -> Result<&'a Value, ParseError> {
        self.opt(field).ok_or_else(|| ParseError::MissingField {
            action: shown(self.action),
            field,
        })
    }

    pub fn wrong(&self, field: &'static str, expected: &'static str, got: &Value) -> ParseError {
        ParseError::WrongType {
            action: shown(self.action),
            field,
            expected,
            got: json_kind(got),
        }
    }

    pub fn invalid(&self, field: &'static str, reason: impl Into<String>) -> ParseError {
        ParseError::Invalid {
            action: shown(self.action),
            field,
            reason: reason.into(),
        }
    }

    pub fn string(&self, field: &'static str) -> Result<&'a str, ParseError> {
        let v = self.req(field)?;
        v.as_str().ok_or_else(|| self.wrong(field, "a string", v))
    }

    pub fn opt_string(&self, field: &'static str) -> Result<Option<&'a str>, ParseError> {
        match self.opt(field) {
            None => Ok(None),
            Some(v) => v
                .as_str()
                .map(Some)
                .ok_or_else(|| self.wrong(field, "a string", v)),
        }
    }

    pub fn number(&self, field: &'static str) -> Result<f64, ParseError> {
        let v = self.req(field)?;
        v.as_f64().ok_or_else(|| self.wrong(field, "a number", v))
    }

    pub fn opt_number(&self, field: &'static str) -> Result<Option<f64>, ParseError> {
        match self.opt(field) {
            None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.wrong(field, "a number", v)),
        }
    }

    /// A boolean; also accepts the strings `"true"`/`"false"` (Gemini samples send both).
    pub fn opt_bool(&self, field: &'static str) -> Result<Option<bool>, ParseError> {
        match self.opt(field) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => Ok(Some(true)),
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => Ok(Some(false)),
            Some(v) => Err(self.wrong(field, "a boolean", v)),
        }
    }

    /// A list of strings (key tokens).
    pub fn strings(&self, field: &'static str) -> Result<Vec<&'a str>, ParseError> {
        let v = self.req(field)?;
        let items = v
            .as_array()
            .ok_or_else(|| self.wrong(field, "a list of strings", v))?;
        items
            .iter()
            .map(|i| {
                i.as_str()
                    .ok_or_else(|| self.wrong(field, "a list of strings", v))
            })
            .collect()
    }

    /// The point (`x_field`, `y_field`) in `space`, checked to lie inside it, in CSS pixels.
    pub fn point(
        &self,
        x_field: &'static str,
        y_field: &'static str,
        space: CoordSpace,
        vp: Viewport,
    ) -> Result<Point, ParseError> {
        let x = self.number(x_field)?;
        let y = self.number(y_field)?;
        to_css_checked(space, vp, x, y).map_err(|e| self.invalid(x_field, e.to_string()))
    }

    /// Text to type from `field`.
    pub fn typed(&self, field: &'static str) -> Result<TypedText, ParseError> {
        typed(self.string(field)?).map_err(|e| self.invalid(field, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn combo(key: &str, f: impl FnOnce(&mut Modifiers)) -> KeyCombo {
        let mut modifiers = Modifiers::default();
        f(&mut modifiers);
        KeyCombo {
            key: key.into(),
            modifiers,
        }
    }

    #[test]
    fn openai_uppercase_tokens_map_to_dom_keys() {
        assert_eq!(key_from_tokens(&["ENTER"]).unwrap(), combo("Enter", |_| {}));
        assert_eq!(
            key_from_tokens(&["RETURN"]).unwrap(),
            combo("Enter", |_| {})
        );
        assert_eq!(key_from_tokens(&["ESC"]).unwrap(), combo("Escape", |_| {}));
        assert_eq!(
            key_from_tokens(&["ARROWLEFT"]).unwrap(),
            combo("ArrowLeft", |_| {})
        );
        assert_eq!(
            key_from_tokens(&["PAGEDOWN"]).unwrap(),
            combo("PageDown", |_| {})
        );
        assert_eq!(key_from_tokens(&["DEL"]).unwrap(), combo("Delete", |_| {}));
        assert_eq!(key_from_tokens(&["SPACE"]).unwrap(), combo(" ", |_| {}));
        assert_eq!(
            key_from_tokens(&["CTRL", "L"]).unwrap(),
            combo("l", |m| m.ctrl = true)
        );
        assert_eq!(
            key_from_tokens(&["CMD", "SHIFT", "T"]).unwrap(),
            combo("t", |m| {
                m.meta = true;
                m.shift = true
            })
        );
        assert_eq!(
            key_from_tokens(&["OPTION", "TAB"]).unwrap(),
            combo("Tab", |m| m.alt = true)
        );
        // Shift alone keeps the case: SHIFT+A is a capital A.
        assert_eq!(
            key_from_tokens(&["SHIFT", "A"]).unwrap(),
            combo("A", |m| m.shift = true)
        );
    }

    #[test]
    fn gemini_free_form_names_map_to_dom_keys() {
        assert_eq!(
            key_from_combo("Control+A").unwrap(),
            combo("a", |m| m.ctrl = true)
        );
        assert_eq!(key_from_combo("enter").unwrap(), combo("Enter", |_| {}));
        assert_eq!(
            key_from_combo("Command+Shift+z").unwrap(),
            combo("z", |m| {
                m.meta = true;
                m.shift = true
            })
        );
        assert_eq!(
            key_from_tokens(&["Meta", "ArrowUp"]).unwrap(),
            combo("ArrowUp", |m| m.meta = true)
        );
        assert_eq!(
            key_from_combo("Control++").unwrap(),
            combo("+", |m| m.ctrl = true)
        );
        assert_eq!(key_from_combo("+").unwrap(), combo("+", |_| {}));
    }

    #[test]
    fn xdotool_punctuation_names_are_accepted() {
        assert_eq!(
            key_from_combo("ctrl+minus").unwrap(),
            combo("-", |m| m.ctrl = true)
        );
        assert_eq!(key_from_combo("KP_Enter").unwrap(), combo("Enter", |_| {}));
        assert_eq!(key_from_combo("Page_Up").unwrap(), combo("PageUp", |_| {}));
    }

    #[test]
    fn unknown_ambiguous_or_empty_keys_are_errors() {
        assert_eq!(
            key_from_tokens(&["LAUNCH_ROCKETS"]),
            Err(KeyError::Unknown("LAUNCH_ROCKETS".into()))
        );
        assert_eq!(key_from_tokens::<&str>(&[]), Err(KeyError::Empty));
        assert_eq!(
            key_from_tokens(&["CTRL", "SHIFT"]),
            Err(KeyError::OnlyModifiers)
        );
        assert!(matches!(
            key_from_tokens(&["ENTER", "TAB"]),
            Err(KeyError::TwoKeys(..))
        ));
        assert!(key_from_combo("ctrl+").is_err());
        assert!(key_from_combo("hyper+x").is_err());
        assert_eq!(key_from_tokens(&["a"; 7]), Err(KeyError::TooMany));
    }

    #[test]
    fn limits_are_refused_not_clamped() {
        assert_eq!(wait_ms(2.5), Ok(2500));
        assert!(wait_ms(301.0).unwrap_err().contains("outside 0 to 300"));
        assert!(wait_ms(-1.0).is_err());
        assert!(wait_ms(f64::NAN).is_err());
        let vp = Viewport::default();
        let grid = CoordSpace::Grid { max: 999 };
        assert_eq!(scroll_delta(grid, vp, 0.0, 500.0), Ok((0.0, 400.0)));
        let shot = CoordSpace::Screenshot {
            width: 640,
            height: 400,
        };
        assert_eq!(scroll_delta(shot, vp, 10.0, -300.0), Ok((20.0, -600.0)));
        assert!(scroll_delta(shot, vp, 0.0, 6000.0).is_err());
        assert!(typed("").is_err());
        assert!(typed(&"x".repeat(MAX_TYPE_CHARS + 1)).is_err());
        assert!(typed("a {{secret:pw}}").is_err());
    }
}
