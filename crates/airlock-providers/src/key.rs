//! API keys, wrapped so they cannot leak by accident.
//!
//! An [`ApiKey`] has no `Display` and no `Serialize`; its `Debug` prints `ApiKey(<redacted>)`;
//! its memory is zeroed on drop. The only way to the value is [`ApiKey::expose`], used where the
//! request header is built (and marked sensitive there). Error texts that may echo a key (a
//! vendor's "invalid key sk-…" message) go through [`ApiKey::scrub`].

use std::fmt;
use zeroize::Zeroizing;

/// A vendor API key.
#[derive(Clone)]
pub struct ApiKey(Zeroizing<String>);

impl ApiKey {
    /// Wraps `value`, trimmed. Refuses an empty key or one that cannot be an HTTP header value;
    /// the error never contains the value.
    pub fn new(value: impl Into<String>) -> Result<Self, &'static str> {
        let value = Zeroizing::new(value.into());
        let trimmed = value.trim();
        if trimmed.is_empty() {
            return Err("the key is empty");
        }
        if !trimmed.bytes().all(|b| (0x21..0x7f).contains(&b)) {
            return Err("the key contains characters that cannot be sent in an HTTP header");
        }
        Ok(ApiKey(Zeroizing::new(trimmed.to_string())))
    }

    /// The key itself, for the request header only.
    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    /// `text` with every occurrence of the key (and of its first 12 characters, which vendors
    /// echo in "incorrect key" messages) replaced by `[redacted]`.
    pub fn scrub(&self, text: &str) -> String {
        let key = self.0.as_str();
        let mut out = text.replace(key, "[redacted]");
        let prefix: String = key.chars().take(12).collect();
        if prefix.chars().count() >= 8 {
            out = out.replace(&prefix, "[redacted]");
        }
        out
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::new("sk-ant-abcdef0123456789").unwrap();
        assert_eq!(format!("{k:?}"), "ApiKey(<redacted>)");
        assert_eq!(format!("{:#?}", Some(k.clone())).matches("sk-").count(), 0);
        assert_eq!(k.expose(), "sk-ant-abcdef0123456789");
    }

    #[test]
    fn empty_or_unprintable_keys_are_refused_without_echo() {
        assert!(ApiKey::new("  ").is_err());
        let e = ApiKey::new("sk-abc\ndef").unwrap_err();
        assert!(!e.contains("sk-abc"));
        assert_eq!(ApiKey::new(" sk-x ").unwrap().expose(), "sk-x");
    }

    #[test]
    fn scrub_removes_the_key_and_its_prefix() {
        let k = ApiKey::new("sk-proj-0123456789abcdef").unwrap();
        let s = k.scrub(
            "Incorrect API key provided: sk-proj-0123****cdef. and sk-proj-0123456789abcdef",
        );
        assert!(!s.contains("sk-proj-0123"), "{s}");
        assert!(s.contains("[redacted]"));
    }
}
