//! [`SecretValue`]: the one type that holds a credential's bytes.
//!
//! It owns the value for the length of a run and nothing else: the bytes are zeroised when it
//! is dropped, it has no `Display`, its `Debug` prints `SecretValue(***)`, it is not `Clone`
//! (every copy is one more place to forget), and it does not implement `Serialize`, so a value
//! cannot end up in an audit event or a model request by deriving a trait on a container.
//! Reading the value needs an explicit, greppable call ([`SecretValue::expose_str`]).

use std::fmt;
use zeroize::Zeroizing;

/// A resolved credential. Always valid UTF-8: it is meant to be typed into a form field.
pub struct SecretValue {
    value: Zeroizing<String>,
}

impl SecretValue {
    /// Takes ownership of `value`; its buffer is zeroised when the `SecretValue` drops.
    pub fn new(value: String) -> Self {
        SecretValue {
            value: Zeroizing::new(value),
        }
    }

    /// Takes ownership of `bytes` if they are UTF-8. On failure the bytes are zeroised before
    /// returning, so the error carries nothing of the value.
    pub fn from_utf8(bytes: Vec<u8>) -> Result<Self, NotUtf8> {
        match String::from_utf8(bytes) {
            Ok(s) => Ok(Self::new(s)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(NotUtf8)
            }
        }
    }

    /// The value as text. Call this only to type it into a field or to build a redaction set.
    pub fn expose_str(&self) -> &str {
        self.value.as_str()
    }

    /// The value's bytes (UTF-8).
    pub fn expose_bytes(&self) -> &[u8] {
        self.value.as_bytes()
    }

    /// Length in characters, which is what decides whether substring redaction is safe.
    pub fn char_len(&self) -> usize {
        self.value.chars().count()
    }

    pub fn is_empty(&self) -> bool {
        self.value.is_empty()
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// The bytes given to [`SecretValue::from_utf8`] were not UTF-8 (they have been zeroised).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("value is not valid UTF-8 text")]
pub struct NotUtf8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_the_value() {
        let v = SecretValue::new("hunter2-canary".into());
        let shown = format!("{v:?} {v:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert_eq!(format!("{v:?}"), "SecretValue(***)");
    }

    #[test]
    fn non_utf8_bytes_are_refused() {
        assert_eq!(
            SecretValue::from_utf8(vec![0xff, 0xfe]).unwrap_err(),
            NotUtf8
        );
        let v = SecretValue::from_utf8(b"pa ss".to_vec()).unwrap();
        assert_eq!(v.expose_str(), "pa ss");
        assert_eq!(v.char_len(), 5);
    }
}
