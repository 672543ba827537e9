//! Airlock's secrets broker: the model never knows a credential.
//!
//! This crate owns everything between a handle in the manifest and the characters typed into a
//! form field, and everything that keeps those characters out of what is recorded or shown:
//!
//! - [`handle`]: `broker://NAME` handles and `{{secret:NAME}}` placeholders;
//! - [`Broker`]: checks the manifest's `[secrets]`, resolves each value at run start from its
//!   source (environment variable, permission-checked file, HashiCorp Vault KV v2), keeps it in
//!   memory as a zeroising [`SecretValue`], and decides whether a value may be typed into the
//!   focused field ([`Broker::authorize_typing`]: host scope, frame origin, field kind);
//! - [`Redactor`]: removes every secret value, in its URL-encoded, base64, hex, JSON- and
//!   HTML-escaped forms, plus optional patterns, from text and JSON;
//! - [`EgressScanner`]: whether a request to a host carries a secret not scoped to that host,
//!   in any of the redactor's forms (the sandbox refuses it);
//! - [`mask_png`]: blacks out screenshot regions that show a secret.
//!
//! It knows nothing of models, browsers or the audit log: the engine asks, this crate answers.
//! Errors name secrets, variables, paths and hosts; they never contain a value.

pub mod broker;
pub mod egress;
pub mod error;
pub mod handle;
pub mod mask;
pub mod redact;
pub mod scope;
mod source;
pub mod value;
mod vault;

pub use broker::Broker;
pub use egress::{EgressHit, EgressScanner};
pub use error::{SecretDenied, SecretError};
pub use handle::{parse_handle, parse_placeholder, placeholder_for, Placeholder};
pub use mask::{mask_png, MaskError, Rect};
pub use redact::{Pattern, Redactor, SecretForm, SECRET_MARKER};
pub use scope::{is_password_input, looks_like_password};
pub use value::SecretValue;
