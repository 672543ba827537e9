//! Text a model asks to type, and the `{{secret:NAME}}` placeholders in it.
//!
//! A model never sees a secret; it names one with a placeholder and the secrets broker types
//! it. The rule is strict: a placeholder must be the *whole* text. Mixing it with other text
//! (`user {{secret:pw}}`) is refused rather than typed literally or half-substituted, so the
//! broker always decides about one secret going into one field.

use airlock_core::TypedText;

const OPEN: &str = "{{secret:";
const CLOSE: &str = "}}";
/// Longest accepted secret name.
pub const MAX_SECRET_NAME: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlaceholderError {
    // The message never echoes the text: it may hold something sensitive.
    #[error(
        "a `{{{{secret:NAME}}}}` placeholder must be the whole text, alone; this text mixes one \
         with other characters or spells it wrongly"
    )]
    Mixed,
    #[error(
        "invalid secret name in `{{{{secret:NAME}}}}`: use 1 to 64 letters, digits, `_`, `-` or `.`"
    )]
    BadName,
}

/// Classifies text to type: exactly `{{secret:NAME}}` is a secret handle; text without any
/// placeholder is literal; anything that looks like a placeholder but is not exactly one
/// (`{{ secret:x}}`, `{{SECRET:x}}`, mixed with other text) is an error.
pub fn typed_text(text: &str) -> Result<TypedText, PlaceholderError> {
    if let Some(name) = text.strip_prefix(OPEN).and_then(|r| r.strip_suffix(CLOSE)) {
        return if is_secret_name(name) {
            Ok(TypedText::Secret(name.to_string()))
        } else if mentions_placeholder(name) {
            Err(PlaceholderError::Mixed)
        } else {
            Err(PlaceholderError::BadName)
        };
    }
    if mentions_placeholder(text) {
        return Err(PlaceholderError::Mixed);
    }
    Ok(TypedText::Literal(text.to_string()))
}

/// Whether `text` contains `{{`, optional whitespace, then `secret` in any case.
pub fn mentions_placeholder(text: &str) -> bool {
    text.match_indices("{{").any(|(i, open)| {
        text.get(i + open.len()..)
            .map(str::trim_start)
            .and_then(|rest| rest.get(..6))
            .is_some_and(|word| word.eq_ignore_ascii_case("secret"))
    })
}

pub(crate) fn is_secret_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SECRET_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_whole_placeholder_is_a_secret_handle() {
        assert_eq!(
            typed_text("{{secret:portal_password}}"),
            Ok(TypedText::Secret("portal_password".into()))
        );
    }

    #[test]
    fn plain_text_is_literal() {
        assert_eq!(
            typed_text("17*23\n"),
            Ok(TypedText::Literal("17*23\n".into()))
        );
        assert_eq!(
            typed_text("{{not a secret}}"),
            Ok(TypedText::Literal("{{not a secret}}".into()))
        );
    }

    #[test]
    fn mixed_or_misspelt_placeholders_are_refused() {
        for text in [
            "user {{secret:pw}}",
            "{{secret:pw}} ",
            "{{secret:a}}{{secret:b}}",
            "{{ secret:pw}}",
            "{{SECRET:pw}}",
            "{{secret:pw}",
            "x{{secret",
        ] {
            assert_eq!(typed_text(text), Err(PlaceholderError::Mixed), "{text}");
        }
        assert_eq!(typed_text("{{secret:}}"), Err(PlaceholderError::BadName));
        assert_eq!(typed_text("{{secret:a b}}"), Err(PlaceholderError::BadName));
    }

    #[test]
    fn errors_never_echo_the_text() {
        let err = typed_text("hunter2 {{secret:pw}}").unwrap_err().to_string();
        assert!(!err.contains("hunter2"));
        assert!(err.contains("{{secret:NAME}}"), "{err}");
    }
}
