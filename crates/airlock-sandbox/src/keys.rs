//! DOM key names to CDP `Input.dispatchKeyEvent` parameters.

use airlock_core::{KeyCombo, Modifiers};
use serde_json::{json, Value};

/// CDP modifier bit mask.
pub fn modifier_bits(m: &Modifiers) -> i64 {
    (if m.alt { 1 } else { 0 })
        | (if m.ctrl { 2 } else { 0 })
        | (if m.meta { 4 } else { 0 })
        | (if m.shift { 8 } else { 0 })
}

/// (DOM key, code, Windows virtual key code, text it types).
fn named(key: &str) -> Option<(&'static str, i64, Option<&'static str>)> {
    Some(match key {
        "Enter" => ("Enter", 13, Some("\r")),
        "Tab" => ("Tab", 9, None),
        "Escape" => ("Escape", 27, None),
        "Backspace" => ("Backspace", 8, None),
        "Delete" => ("Delete", 46, None),
        " " => ("Space", 32, Some(" ")),
        "ArrowUp" => ("ArrowUp", 38, None),
        "ArrowDown" => ("ArrowDown", 40, None),
        "ArrowLeft" => ("ArrowLeft", 37, None),
        "ArrowRight" => ("ArrowRight", 39, None),
        "PageUp" => ("PageUp", 33, None),
        "PageDown" => ("PageDown", 34, None),
        "Home" => ("Home", 36, None),
        "End" => ("End", 35, None),
        "Insert" => ("Insert", 45, None),
        "F1" => ("F1", 112, None),
        "F2" => ("F2", 113, None),
        "F3" => ("F3", 114, None),
        "F4" => ("F4", 115, None),
        "F5" => ("F5", 116, None),
        "F6" => ("F6", 117, None),
        "F7" => ("F7", 118, None),
        "F8" => ("F8", 119, None),
        "F9" => ("F9", 120, None),
        "F10" => ("F10", 121, None),
        "F11" => ("F11", 122, None),
        "F12" => ("F12", 123, None),
        _ => return None,
    })
}

/// The keyDown and keyUp events for one press of `combo`.
pub fn key_events(combo: &KeyCombo) -> (Value, Value) {
    let mods = modifier_bits(&combo.modifiers);
    let plain = !(combo.modifiers.ctrl || combo.modifiers.alt || combo.modifiers.meta);
    let (code, vk, text): (String, i64, Option<String>) = match named(&combo.key) {
        Some((code, vk, text)) => (code.to_string(), vk, text.map(str::to_string)),
        None => {
            let c = combo.key.chars().next().unwrap_or(' ');
            let upper = c.to_ascii_uppercase();
            let (code, vk) = if c.is_ascii_alphabetic() {
                (format!("Key{upper}"), i64::from(upper as u8))
            } else if c.is_ascii_digit() {
                (format!("Digit{c}"), i64::from(c as u8))
            } else {
                (String::new(), 0)
            };
            let shown = if combo.modifiers.shift {
                combo.key.to_uppercase()
            } else {
                combo.key.clone()
            };
            (code, vk, Some(shown))
        }
    };
    let commands: Vec<&str> = if combo.modifiers.ctrl && !combo.modifiers.alt {
        match combo.key.to_ascii_lowercase().as_str() {
            "a" => vec!["selectAll"],
            "c" => vec!["copy"],
            "x" => vec!["cut"],
            "v" => vec!["paste"],
            "z" => vec!["undo"],
            _ => vec![],
        }
    } else {
        vec![]
    };
    let mut down = json!({
        "type": if text.is_some() && plain { "keyDown" } else { "rawKeyDown" },
        "key": combo.key,
        "code": code,
        "windowsVirtualKeyCode": vk,
        "nativeVirtualKeyCode": vk,
        "modifiers": mods,
    });
    if let (Some(t), true, Some(obj)) = (&text, plain, down.as_object_mut()) {
        obj.insert("text".into(), json!(t));
        obj.insert("unmodifiedText".into(), json!(t));
    }
    if let (false, Some(obj)) = (commands.is_empty(), down.as_object_mut()) {
        obj.insert("commands".into(), json!(commands));
    }
    let up = json!({
        "type": "keyUp",
        "key": combo.key,
        "code": code,
        "windowsVirtualKeyCode": vk,
        "nativeVirtualKeyCode": vk,
        "modifiers": mods,
    });
    (down, up)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn enter_types_carriage_return() {
        let (down, up) = key_events(&KeyCombo::parse("Return").unwrap());
        assert_eq!(down["type"], "keyDown");
        assert_eq!(down["text"], "\r");
        assert_eq!(down["windowsVirtualKeyCode"], 13);
        assert_eq!(up["type"], "keyUp");
    }

    #[test]
    fn ctrl_a_is_a_select_all_command_without_text() {
        let (down, _) = key_events(&KeyCombo::parse("ctrl+a").unwrap());
        assert_eq!(down["type"], "rawKeyDown");
        assert!(down.get("text").is_none());
        assert_eq!(down["commands"][0], "selectAll");
        assert_eq!(down["modifiers"], 2);
    }
}
