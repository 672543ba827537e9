//! Secret names and the two ways they are written.
//!
//! The manifest refers to a secret by handle, `broker://NAME`; a model that must fill a
//! credential proposes typing the placeholder `{{secret:NAME}}`. Both are parsed here, strictly:
//! a placeholder must be the *whole* text typed (so a model cannot smuggle a secret into the
//! middle of other text), and names are a small ASCII alphabet so a lookalike name is simply
//! not a name.

use crate::error::SecretError;

/// The scheme prefix of a manifest handle.
pub const HANDLE_PREFIX: &str = "broker://";

const PLACEHOLDER_OPEN: &str = "{{secret:";
const PLACEHOLDER_CLOSE: &str = "}}";
const MAX_NAME_LEN: usize = 64;

/// Whether `name` is a valid secret name: 1–64 of `A-Z a-z 0-9 _ - .`, starting alphanumeric.
pub fn is_valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    name.len() <= MAX_NAME_LEN
        && first.is_ascii_alphanumeric()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Parses `broker://NAME` into `NAME`.
pub fn parse_handle(handle: &str) -> Result<&str, SecretError> {
    let name = handle
        .strip_prefix(HANDLE_PREFIX)
        .ok_or_else(|| SecretError::NotAHandle {
            handle: handle.to_string(),
        })?;
    if !is_valid_name(name) {
        return Err(SecretError::BadName {
            name: name.to_string(),
        });
    }
    Ok(name)
}

/// Whether `text` is written as a handle (`broker://…`), valid or not. A login's username may be
/// a plain value; anything that starts like a handle must be one.
pub fn looks_like_handle(text: &str) -> bool {
    text.starts_with(HANDLE_PREFIX)
}

/// What a model's typed text says about secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placeholder<'a> {
    /// The whole text is `{{secret:NAME}}`.
    Whole(&'a str),
    /// The text contains `{{secret:` but is not exactly one placeholder: refused, never partly
    /// substituted.
    Embedded,
    /// Plain text.
    None,
}

/// Classifies typed text. Surrounding whitespace is not tolerated: `" {{secret:x}}"` would type
/// a space the model did not mean, so it is [`Placeholder::Embedded`].
pub fn parse_placeholder(text: &str) -> Placeholder<'_> {
    let whole = text
        .strip_prefix(PLACEHOLDER_OPEN)
        .and_then(|rest| rest.strip_suffix(PLACEHOLDER_CLOSE))
        .filter(|name| is_valid_name(name));
    match whole {
        Some(name) => Placeholder::Whole(name),
        None if text.contains(PLACEHOLDER_OPEN) => Placeholder::Embedded,
        None => Placeholder::None,
    }
}

/// The placeholder text for `name`, as a model would write it.
pub fn placeholder_for(name: &str) -> String {
    format!("{PLACEHOLDER_OPEN}{name}{PLACEHOLDER_CLOSE}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_parse_to_names() {
        assert_eq!(parse_handle("broker://ci-readonly").unwrap(), "ci-readonly");
        assert!(matches!(
            parse_handle("ci-readonly"),
            Err(SecretError::NotAHandle { .. })
        ));
        assert!(matches!(
            parse_handle("broker://"),
            Err(SecretError::BadName { .. })
        ));
        assert!(matches!(
            parse_handle("broker://a/b"),
            Err(SecretError::BadName { .. })
        ));
        assert!(!is_valid_name(&"a".repeat(65)));
        assert!(!is_valid_name("-x"));
        assert!(!is_valid_name("ci\u{0430}")); // Cyrillic a: a lookalike is not a name
    }

    #[test]
    fn placeholders_must_be_the_whole_text() {
        assert_eq!(
            parse_placeholder("{{secret:ci-password}}"),
            Placeholder::Whole("ci-password")
        );
        assert_eq!(
            parse_placeholder(&placeholder_for("x")),
            Placeholder::Whole("x")
        );
        for embedded in [
            "user {{secret:ci-password}}",
            "{{secret:ci-password}} ",
            "{{secret:}}",
            "{{secret:a b}}",
            "{{secret:x}}{{secret:y}}",
        ] {
            assert_eq!(
                parse_placeholder(embedded),
                Placeholder::Embedded,
                "{embedded}"
            );
        }
        assert_eq!(parse_placeholder("hello"), Placeholder::None);
        assert_eq!(parse_placeholder("{{ secret:x }}"), Placeholder::None);
    }
}
