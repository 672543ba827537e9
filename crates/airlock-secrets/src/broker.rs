//! The [`Broker`]: the run's secrets, from manifest handles to zeroised values, and the one place
//! that decides whether a value may be typed.
//!
//! Life cycle: [`Broker::new`] checks the manifest's `[secrets]` (and its login's handles)
//! without any I/O, so admission can refuse a bad manifest before a browser starts;
//! [`Broker::resolve_all`] then reads every value at run start and fails on the first secret it
//! cannot read, naming it; the values live in the broker, in memory only, until it is dropped
//! at the end of the run. The broker never hands a value to anything but a caller that asked to
//! type it into an authorised field, the login step, or the [`crate::Redactor`].

use crate::error::{SecretDenied, SecretError};
use crate::handle::{
    is_valid_name, looks_like_handle, parse_handle, parse_placeholder, Placeholder,
};
use crate::scope::{check_field, check_location, is_password_input};
use crate::source;
use crate::value::SecretValue;
use crate::vault::{VaultClient, VaultPath};
use airlock_core::host::{HostName, WebUrl};
use airlock_core::manifest::{LoginSection, SecretKind, SecretSource, SecretSpec, TaskManifest};
use airlock_core::ElementFacts;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;

/// Where one secret's value comes from, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    Env { var: String },
    File { path: String },
    Vault { path: VaultPath, field: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Env { var } => write!(f, "env `{var}`"),
            Source::File { path } => write!(f, "file `{path}`"),
            Source::Vault { path, field } => write!(f, "vault `{path}#{field}`"),
        }
    }
}

struct Entry {
    source: Source,
    hosts: Vec<HostName>,
    kind: SecretKind,
    value: Option<SecretValue>,
}

/// One secret for the egress scan: its name, its hosts and its value.
pub(crate) type ScopedValue<'a> = (&'a str, &'a [HostName], &'a SecretValue);

/// The run's secrets. `Debug` lists names, sources, kinds and hosts; never values.
pub struct Broker {
    entries: BTreeMap<String, Entry>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Broker ")?;
        let mut list = f.debug_list();
        for (name, e) in &self.entries {
            list.entry(&format_args!(
                "{name}: {} {} on [{}]{}",
                e.source,
                kind_name(e.kind),
                e.hosts
                    .iter()
                    .map(HostName::as_str)
                    .collect::<Vec<_>>()
                    .join(", "),
                if e.value.is_some() { " (resolved)" } else { "" }
            ));
        }
        list.finish()
    }
}

/// The manifest spelling of a source.
fn source_name(source: SecretSource) -> &'static str {
    match source {
        SecretSource::Env => "env",
        SecretSource::File => "file",
        SecretSource::Vault => "vault",
    }
}

/// The manifest spelling of a kind.
fn kind_name(kind: SecretKind) -> &'static str {
    match kind {
        SecretKind::Username => "username",
        SecretKind::Password => "password",
        SecretKind::Otp => "otp",
        SecretKind::ApiToken => "api_token",
    }
}

fn invalid(name: &str, reason: impl Into<String>) -> SecretError {
    SecretError::InvalidSpec {
        name: name.to_string(),
        reason: reason.into(),
    }
}

fn check_spec(name: &str, spec: &SecretSpec) -> Result<Entry, SecretError> {
    if !is_valid_name(name) {
        return Err(SecretError::BadName {
            name: name.to_string(),
        });
    }
    let nonempty = |v: &Option<String>, key: &str| -> Result<String, SecretError> {
        v.as_deref()
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                invalid(
                    name,
                    format!("source `{}` needs `{key}`", source_name(spec.source)),
                )
            })
    };
    // Keys of other sources are errors, as unknown manifest keys are: a `path` next to
    // `source = "env"` is a typo that would otherwise be silently ignored.
    let stray = |present: &[(&str, bool)]| -> Result<(), SecretError> {
        match present.iter().find(|(_, p)| *p) {
            Some((key, _)) => Err(invalid(
                name,
                format!(
                    "`{key}` does not apply to source `{}`",
                    source_name(spec.source)
                ),
            )),
            None => Ok(()),
        }
    };
    let source = match spec.source {
        SecretSource::Env => {
            stray(&[
                ("path", spec.path.is_some()),
                ("vault_path", spec.vault_path.is_some()),
                ("vault_field", spec.vault_field.is_some()),
            ])?;
            Source::Env {
                var: nonempty(&spec.env, "env")?,
            }
        }
        SecretSource::File => {
            stray(&[
                ("env", spec.env.is_some()),
                ("vault_path", spec.vault_path.is_some()),
                ("vault_field", spec.vault_field.is_some()),
            ])?;
            Source::File {
                path: nonempty(&spec.path, "path")?,
            }
        }
        SecretSource::Vault => {
            stray(&[("env", spec.env.is_some()), ("path", spec.path.is_some())])?;
            let raw = nonempty(&spec.vault_path, "vault_path")?;
            Source::Vault {
                path: VaultPath::parse(&raw).map_err(|r| invalid(name, r))?,
                field: nonempty(&spec.vault_field, "vault_field")?,
            }
        }
    };
    if spec.hosts.is_empty() {
        return Err(invalid(
            name,
            "`hosts` is empty: a secret must name the hosts it may be typed on",
        ));
    }
    let hosts = spec
        .hosts
        .iter()
        .map(|h| HostName::parse(h).map_err(|e| invalid(name, format!("`hosts`: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Entry {
        source,
        hosts,
        kind: spec.kind,
        value: None,
    })
}

impl Broker {
    /// Checks every `[secrets]` entry: a valid name, the keys its source needs (and no others),
    /// a `MOUNT/PATH` vault path, and a non-empty list of valid host names. No I/O.
    pub fn new(specs: &BTreeMap<String, SecretSpec>) -> Result<Self, SecretError> {
        let entries = specs
            .iter()
            .map(|(name, spec)| Ok((name.clone(), check_spec(name, spec)?)))
            .collect::<Result<BTreeMap<_, _>, SecretError>>()?;
        Ok(Broker { entries })
    }

    /// [`Broker::new`] plus [`Broker::check_login`] for the manifest's login, if any.
    pub fn from_manifest(manifest: &TaskManifest) -> Result<Self, SecretError> {
        let broker = Self::new(&manifest.secrets)?;
        if let Some(login) = &manifest.login {
            broker.check_login(login)?;
        }
        Ok(broker)
    }

    /// Resolves every secret from the process environment, files and Vault.
    pub async fn resolve_all(&mut self) -> Result<(), SecretError> {
        self.resolve_all_with_env(|k| std::env::var_os(k)).await
    }

    /// [`Broker::resolve_all`] with environment variables (secret variables and `VAULT_*`) read
    /// through `env`, so tests and embedders need not mutate the process environment.
    ///
    /// All or nothing: on error no value is kept.
    pub async fn resolve_all_with_env<F>(&mut self, env: F) -> Result<(), SecretError>
    where
        F: Fn(&str) -> Option<OsString> + Sync,
    {
        let mut resolved: Vec<(String, SecretValue)> = Vec::with_capacity(self.entries.len());
        let mut vault: Option<VaultClient> = None;
        for (name, entry) in &self.entries {
            let value = match &entry.source {
                Source::Env { var } => source::from_env(name, var, &env)?,
                Source::File { path } => source::from_file(name, path).await?,
                Source::Vault { path, field } => {
                    let client = match vault.take() {
                        Some(c) => c,
                        None => VaultClient::from_env(name, &env)?,
                    };
                    let value = client.read_field(name, path, field).await;
                    vault = Some(client);
                    value?
                }
            };
            resolved.push((name.clone(), value));
        }
        for (name, value) in resolved {
            if let Some(entry) = self.entries.get_mut(&name) {
                entry.value = Some(value);
            }
        }
        Ok(())
    }

    /// Secret names, in order.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.keys().map(String::as_str)
    }

    /// The kind of field secret `name` is for.
    pub fn kind(&self, name: &str) -> Option<SecretKind> {
        self.entries.get(name).map(|e| e.kind)
    }

    /// The normalised hosts secret `name` may be typed on.
    pub fn hosts(&self, name: &str) -> Option<&[HostName]> {
        self.entries.get(name).map(|e| e.hosts.as_slice())
    }

    /// Whether every secret has a value.
    pub fn is_resolved(&self) -> bool {
        self.entries.values().all(|e| e.value.is_some())
    }

    /// `broker://NAME` → `NAME`, if the broker knows it.
    pub fn check_handle<'h>(&self, handle: &'h str) -> Result<&'h str, SecretError> {
        let name = parse_handle(handle)?;
        if self.entries.contains_key(name) {
            Ok(name)
        } else {
            Err(SecretError::UnknownSecret {
                name: name.to_string(),
            })
        }
    }

    /// The value behind `broker://NAME`, for the host-owned login. Scope is not checked here:
    /// the login step should still call [`Broker::authorize_typing`] with the focused field it
    /// actually found.
    pub fn value_for_handle(&self, handle: &str) -> Result<&SecretValue, SecretError> {
        let name = self.check_handle(handle)?;
        self.entries
            .get(name)
            .and_then(|e| e.value.as_ref())
            .ok_or_else(|| SecretError::NotResolved {
                name: name.to_string(),
            })
    }

    /// Checks a login against the secrets, before anything runs: the password is a handle to a
    /// `password` secret, the username a plain value or a handle to a `username` secret, and
    /// the login URL's host is in each secret's `hosts`.
    pub fn check_login(&self, login: &LoginSection) -> Result<(), SecretError> {
        let url = WebUrl::parse(&login.url).map_err(|e| SecretError::Login {
            reason: format!("`url`: {e}"),
        })?;
        let check = |field: &str, handle: &str, kind: SecretKind| -> Result<(), SecretError> {
            let name = self.check_handle(handle)?;
            let entry = self
                .entries
                .get(name)
                .ok_or_else(|| SecretError::UnknownSecret {
                    name: name.to_string(),
                })?;
            if entry.kind != kind {
                return Err(SecretError::Login {
                    reason: format!(
                        "`{field}` is secret `{name}` of kind `{}`, expected `{}`",
                        kind_name(entry.kind),
                        kind_name(kind)
                    ),
                });
            }
            if !entry.hosts.contains(&url.host) {
                return Err(SecretError::Login {
                    reason: format!(
                        "secret `{name}` is not scoped to the login host `{}`",
                        url.host
                    ),
                });
            }
            Ok(())
        };
        check("password", &login.password, SecretKind::Password)?;
        if looks_like_handle(&login.username) {
            check("username", &login.username, SecretKind::Username)?;
        }
        Ok(())
    }

    /// Whether secret `name` may be typed now into `focused`, on `page_url`, whose top frame is
    /// at `top_frame_url`. On success, the value to type.
    ///
    /// Checks, in order: the secret exists and is resolved; the page is the top frame's document
    /// and its host is in the secret's `hosts`; the field's frame is same-origin with the top
    /// frame; the field is enabled, editable and of the secret's kind.
    pub fn authorize_typing(
        &self,
        name: &str,
        focused: &ElementFacts,
        page_url: &str,
        top_frame_url: &str,
    ) -> Result<&SecretValue, SecretDenied> {
        let entry = self
            .entries
            .get(name)
            .ok_or_else(|| SecretDenied::UnknownSecret {
                name: name.to_string(),
            })?;
        let value = entry
            .value
            .as_ref()
            .ok_or_else(|| SecretDenied::NotResolved {
                name: name.to_string(),
            })?;
        check_location(name, &entry.hosts, focused, page_url, top_frame_url)?;
        check_field(name, entry.kind, focused)?;
        Ok(value)
    }

    /// Whether the model may type `text` literally into `focused`. Denied: a malformed
    /// placeholder, any literal into a password field, and text containing a secret's value
    /// (a model that somehow learned one must still go through a placeholder).
    ///
    /// Call this only for literal text: a well-formed placeholder goes to
    /// [`Broker::authorize_typing`] (see [`crate::parse_placeholder`]).
    pub fn check_literal(&self, text: &str, focused: &ElementFacts) -> Result<(), SecretDenied> {
        if parse_placeholder(text) == Placeholder::Embedded {
            return Err(SecretDenied::EmbeddedPlaceholder);
        }
        // Any non-empty literal counts here, even one shaped like a whole placeholder: this is
        // the literal path, and a placeholder typed as text into a password field is a bug.
        if !text.is_empty() && is_password_input(focused) {
            return Err(SecretDenied::LiteralIntoPasswordField);
        }
        let contains = self.values().any(|v| {
            let v = v.expose_str();
            // Short values only on exact equality: as substrings they are everywhere.
            if v.chars().count() < crate::redact::MIN_REDACT_CHARS {
                text == v
            } else {
                text.contains(v)
            }
        });
        if contains {
            return Err(SecretDenied::LiteralContainsSecret);
        }
        Ok(())
    }

    /// The resolved values, for the redaction set and screenshot masking. Never log them.
    pub fn values(&self) -> impl Iterator<Item = &SecretValue> {
        self.entries.values().filter_map(|e| e.value.as_ref())
    }

    /// Every secret with its hosts and value, for the egress scan; fails naming the first
    /// secret without a value.
    pub(crate) fn scoped_values(&self) -> Result<Vec<ScopedValue<'_>>, SecretError> {
        self.entries
            .iter()
            .map(|(name, e)| match &e.value {
                Some(v) => Ok((name.as_str(), e.hosts.as_slice(), v)),
                None => Err(SecretError::NotResolved { name: name.clone() }),
            })
            .collect()
    }

    /// The first secret without a value, if any.
    pub(crate) fn first_unresolved(&self) -> Option<&str> {
        self.entries
            .iter()
            .find(|(_, e)| e.value.is_none())
            .map(|(n, _)| n.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(source: SecretSource, kind: SecretKind) -> SecretSpec {
        SecretSpec {
            source,
            env: None,
            path: None,
            vault_path: None,
            vault_field: None,
            hosts: vec!["CI.example.".into()],
            kind,
        }
    }

    fn env_spec(var: &str, kind: SecretKind) -> SecretSpec {
        SecretSpec {
            env: Some(var.into()),
            ..spec(SecretSource::Env, kind)
        }
    }

    fn specs(items: &[(&str, SecretSpec)]) -> BTreeMap<String, SecretSpec> {
        items
            .iter()
            .map(|(n, s)| (n.to_string(), s.clone()))
            .collect()
    }

    fn env(k: &str) -> Option<OsString> {
        match k {
            "CI_USER" => Some("ci-bot".into()),
            "CI_PASSWORD" => Some("hunter2-canary".into()),
            _ => None,
        }
    }

    fn login() -> LoginSection {
        let field = airlock_core::manifest::FieldRef {
            role: None,
            name: None,
            css: Some("#x".into()),
        };
        LoginSection {
            url: "http://ci.example/login".into(),
            username_field: field.clone(),
            password_field: field.clone(),
            submit: field,
            username: "broker://ci-user".into(),
            password: "broker://ci-password".into(),
            success_text: None,
            success_url: None,
        }
    }

    async fn resolved() -> Broker {
        let mut b = Broker::new(&specs(&[
            ("ci-user", env_spec("CI_USER", SecretKind::Username)),
            ("ci-password", env_spec("CI_PASSWORD", SecretKind::Password)),
        ]))
        .unwrap();
        b.resolve_all_with_env(env).await.unwrap();
        b
    }

    #[test]
    fn resolution_can_run_on_a_spawned_task() {
        fn assert_send<T: Send>(_: &T) {}
        let mut b = Broker::new(&BTreeMap::new()).unwrap();
        assert_send(&b.resolve_all());
    }

    #[test]
    fn specs_need_their_source_keys_and_only_those() {
        let err = |s: SecretSpec| Broker::new(&specs(&[("s", s)])).unwrap_err().to_string();
        assert_eq!(
            err(spec(SecretSource::Env, SecretKind::Password)),
            "secret `s`: source `env` needs `env`"
        );
        assert_eq!(
            err(SecretSpec {
                path: Some("/x".into()),
                ..env_spec("V", SecretKind::Password)
            }),
            "secret `s`: `path` does not apply to source `env`"
        );
        assert!(err(SecretSpec {
            vault_path: Some("secret".into()),
            vault_field: Some("f".into()),
            ..spec(SecretSource::Vault, SecretKind::Password)
        })
        .contains("MOUNT/PATH"));
        assert!(err(SecretSpec {
            hosts: vec![],
            ..env_spec("V", SecretKind::Password)
        })
        .contains("`hosts` is empty"));
        assert!(err(SecretSpec {
            hosts: vec!["127.0.0.1".into()],
            ..env_spec("V", SecretKind::Password)
        })
        .contains("IP literal"));
        let bad_name = Broker::new(&specs(&[("a b", env_spec("V", SecretKind::Password))]));
        assert!(matches!(bad_name, Err(SecretError::BadName { .. })));
    }

    #[tokio::test]
    async fn handles_resolve_and_unknown_ones_are_named() {
        let b = resolved().await;
        assert!(b.is_resolved());
        assert_eq!(
            b.value_for_handle("broker://ci-password")
                .unwrap()
                .expose_str(),
            "hunter2-canary"
        );
        assert_eq!(
            b.value_for_handle("broker://nope").unwrap_err().to_string(),
            "unknown secret `nope`"
        );
        assert_eq!(b.hosts("ci-user").unwrap()[0].as_str(), "ci.example");
        assert_eq!(b.kind("ci-user"), Some(SecretKind::Username));
    }

    #[tokio::test]
    async fn resolution_is_all_or_nothing() {
        let mut b = Broker::new(&specs(&[
            ("a", env_spec("CI_PASSWORD", SecretKind::Password)),
            ("b", env_spec("MISSING", SecretKind::Password)),
        ]))
        .unwrap();
        let err = b.resolve_all_with_env(env).await.unwrap_err().to_string();
        assert_eq!(err, "secret `b`: environment variable `MISSING` is not set");
        assert!(!b.is_resolved());
        assert!(matches!(
            b.value_for_handle("broker://a"),
            Err(SecretError::NotResolved { .. })
        ));
    }

    #[tokio::test]
    async fn debug_lists_scopes_but_never_values() {
        let b = resolved().await;
        let shown = format!("{b:?} {b:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("ci-bot"), "{shown}");
        assert!(
            shown.contains("ci-password: env `CI_PASSWORD` password on [ci.example] (resolved)"),
            "{shown}"
        );
    }

    #[tokio::test]
    async fn logins_must_use_scoped_secrets_of_the_right_kind() {
        let b = resolved().await;
        b.check_login(&login()).unwrap();
        let plain_user = LoginSection {
            username: "ci-bot".into(),
            ..login()
        };
        b.check_login(&plain_user).unwrap();
        let swapped = LoginSection {
            username: "broker://ci-password".into(),
            password: "broker://ci-user".into(),
            ..login()
        };
        let err = b.check_login(&swapped).unwrap_err().to_string();
        assert!(err.contains("expected `password`"), "{err}");
        let elsewhere = LoginSection {
            url: "http://ci.example.evil.example/login".into(),
            ..login()
        };
        let err = b.check_login(&elsewhere).unwrap_err().to_string();
        assert!(
            err.contains("not scoped to the login host `ci.example.evil.example`"),
            "{err}"
        );
        let unknown = LoginSection {
            password: "broker://nope".into(),
            ..login()
        };
        assert_eq!(
            b.check_login(&unknown).unwrap_err().to_string(),
            "unknown secret `nope`"
        );
    }

    #[tokio::test]
    async fn literals_are_checked_for_password_fields_and_known_values() {
        let b = resolved().await;
        let field = |t: &str| ElementFacts {
            tag: "input".into(),
            input_type: Some(t.into()),
            editable: true,
            frame_url: "http://ci.example/".into(),
            ..ElementFacts::default()
        };
        b.check_literal("INC-2048 note", &field("text")).unwrap();
        assert_eq!(
            b.check_literal("anything", &field("password")),
            Err(SecretDenied::LiteralIntoPasswordField)
        );
        let leaked = b
            .check_literal("my pw is hunter2-canary", &field("text"))
            .unwrap_err();
        assert_eq!(leaked, SecretDenied::LiteralContainsSecret);
        assert!(!leaked.to_string().contains("ci-password"));
        assert_eq!(
            b.check_literal("a {{secret:ci-password}}", &field("text")),
            Err(SecretDenied::EmbeddedPlaceholder)
        );
    }
}
