//! The crate's two error types.
//!
//! [`SecretError`] is a failure to set up or resolve secrets (shown to the operator at
//! admission); [`SecretDenied`] is a refusal to type one (recorded in the audit, and its reason
//! may be fed back to the model). Neither ever carries a secret value: messages name the
//! secret, the variable, the path or the host, in backticks, and stop there.

use airlock_core::manifest::SecretKind;

/// Why secrets could not be set up or resolved.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    #[error("unknown secret `{name}`")]
    UnknownSecret { name: String },
    #[error("`{handle}` is not a secret handle (expected `broker://NAME`)")]
    NotAHandle { handle: String },
    #[error("`{name}` is not a valid secret name (1-64 of `A-Z a-z 0-9 _ - .`)")]
    BadName { name: String },
    #[error("secret `{name}`: {reason}")]
    InvalidSpec { name: String, reason: String },
    #[error("secret `{name}`: environment variable `{var}` is not set")]
    EnvMissing { name: String, var: String },
    #[error("secret `{name}`: cannot read file `{path}`: {source}")]
    FileRead {
        name: String,
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("secret `{name}`: file `{path}` is not a regular file")]
    FileNotRegular { name: String, path: String },
    #[error(
        "secret `{name}`: file `{path}` is accessible by group or others (mode {mode:04o}); \
         refusing to use it (run `chmod 600 {path}`)"
    )]
    FilePermissions {
        name: String,
        path: String,
        mode: u32,
    },
    #[error(
        "secret `{name}`: file `{path}` is owned by uid {owner}, not by the user running airlock \
         (uid {current}); refusing to use it"
    )]
    FileOwner {
        name: String,
        path: String,
        owner: u32,
        current: u32,
    },
    #[error("secret `{name}`: file `{path}` is larger than {limit} bytes; it is not a secret")]
    FileTooLarge {
        name: String,
        path: String,
        limit: u64,
    },
    #[error("secret `{name}`: the value from {origin} is empty")]
    Empty { name: String, origin: String },
    #[error("secret `{name}`: the value from {origin} is not valid UTF-8 text")]
    NotUtf8 { name: String, origin: String },
    #[error("secret `{name}`: vault is not configured: {reason}")]
    VaultConfig { name: String, reason: String },
    #[error("secret `{name}`: vault request for `{path}` failed: {reason}")]
    VaultRequest {
        name: String,
        path: String,
        reason: String,
    },
    #[error("secret `{name}`: vault refused `{path}` with HTTP {status}{}", vault_errors(.errors))]
    VaultStatus {
        name: String,
        path: String,
        status: u16,
        errors: Vec<String>,
    },
    #[error(
        "secret `{name}`: vault has no secret at `{path}` (HTTP 404; is the mount a KV v2 engine?)"
    )]
    VaultNotFound { name: String, path: String },
    #[error("secret `{name}`: vault secret `{path}` has no field `{field}`")]
    VaultFieldMissing {
        name: String,
        path: String,
        field: String,
    },
    #[error("secret `{name}`: vault secret `{path}` field `{field}` is not a string")]
    VaultFieldNotString {
        name: String,
        path: String,
        field: String,
    },
    #[error("secret `{name}`: vault answered `{path}` with an unexpected body: {reason}")]
    VaultResponse {
        name: String,
        path: String,
        reason: String,
    },
    #[error("secret `{name}` has not been resolved yet")]
    NotResolved { name: String },
    #[error(
        "unknown redaction pattern `{pattern}` (known: email, password_param, bearer, api_key)"
    )]
    UnknownPattern { pattern: String },
    #[error("redaction pattern `{pattern}` failed to build: {reason}")]
    PatternBuild { pattern: String, reason: String },
    #[error("login: {reason}")]
    Login { reason: String },
}

fn vault_errors(errors: &[String]) -> String {
    if errors.is_empty() {
        String::new()
    } else {
        format!(": {}", errors.join("; "))
    }
}

/// Why the broker refused to type a secret (or refused a literal). Every variant reads as a
/// reason a reviewer understands; none carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretDenied {
    #[error("unknown secret `{name}`")]
    UnknownSecret { name: String },
    #[error("secret `{name}` has not been resolved")]
    NotResolved { name: String },
    #[error("a placeholder must be the whole text typed, exactly `{{{{secret:NAME}}}}`")]
    EmbeddedPlaceholder,
    #[error(
        "secret `{name}` may only be typed into an enabled, editable field; the focus is {field}"
    )]
    NotEditable { name: String, field: String },
    #[error("secret `{name}` is {} and may only be typed into {}; the focus is {field}", kind_noun(*.kind), allowed_fields(*.kind))]
    WrongFieldKind {
        name: String,
        kind: SecretKind,
        field: String,
    },
    #[error("secret `{name}` may not be typed on `{host}`; it is scoped to {}", backticked(.allowed))]
    HostNotInScope {
        name: String,
        host: String,
        allowed: Vec<String>,
    },
    #[error(
        "secret `{name}` may not be typed: the {what} URL is not an http(s) URL with a host name"
    )]
    BadUrl { name: String, what: &'static str },
    #[error("secret `{name}` may not be typed: the page URL (origin `{page}`) is not the top frame's (origin `{top}`)")]
    PageNotTopFrame {
        name: String,
        page: String,
        top: String,
    },
    #[error("secret `{name}` may not be typed into a frame from `{frame}`: only the top frame (`{top}`) or a same-origin frame may receive it")]
    CrossOriginFrame {
        name: String,
        frame: String,
        top: String,
    },
    /// The field is one a person cannot see or would not reach (a decoy), however the target
    /// was named.
    #[error("secret `{name}` is not typed into a field a person cannot see or reach: {why}")]
    FieldNotVisible { name: String, why: String },
    #[error("typing literal text into a password field is denied; use a `{{{{secret:NAME}}}}` placeholder the host fills")]
    LiteralIntoPasswordField,
    /// Deliberately does not name the secret: naming it would confirm a guess to the model.
    #[error("the text contains a credential's value; credentials are typed only through a `{{{{secret:NAME}}}}` placeholder")]
    LiteralContainsSecret,
}

impl SecretDenied {
    /// A stable rule identifier for the audit (`secret.wrong_field_kind`, …).
    pub fn rule(&self) -> &'static str {
        match self {
            SecretDenied::UnknownSecret { .. } => "secret.unknown",
            SecretDenied::NotResolved { .. } => "secret.not_resolved",
            SecretDenied::EmbeddedPlaceholder => "secret.embedded_placeholder",
            SecretDenied::NotEditable { .. } => "secret.not_editable",
            SecretDenied::WrongFieldKind { .. } => "secret.wrong_field_kind",
            SecretDenied::HostNotInScope { .. } => "secret.host_not_in_scope",
            SecretDenied::BadUrl { .. } => "secret.bad_url",
            SecretDenied::PageNotTopFrame { .. } => "secret.page_not_top_frame",
            SecretDenied::CrossOriginFrame { .. } => "secret.cross_origin_frame",
            SecretDenied::FieldNotVisible { .. } => "secret.field_not_visible",
            SecretDenied::LiteralIntoPasswordField => "secret.literal_into_password_field",
            SecretDenied::LiteralContainsSecret => "secret.literal_contains_secret",
        }
    }
}

fn kind_noun(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Username => "a username",
        SecretKind::Password => "a password",
        SecretKind::Otp => "a one-time code",
        SecretKind::ApiToken => "an API token",
    }
}

fn allowed_fields(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Username => "a text or email input",
        SecretKind::Password => "a password input",
        SecretKind::Otp => "a text, number or tel input",
        SecretKind::ApiToken => "a text or password input",
    }
}

fn backticked(items: &[String]) -> String {
    if items.is_empty() {
        return "no host".to_string();
    }
    items
        .iter()
        .map(|h| format!("`{h}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
