//! The [`EgressScanner`]: whether what a request carries to a host includes a secret that is not
//! scoped to that host, in any form the [`Redactor`] knows (the value, reversed, case-folded,
//! each also as base64, base64url and hex, all matched through percent-, JSON- and HTML-escaping).
//!
//! Checking a secret only where it is *typed* leaves the page that received it free to send it
//! anywhere the network lets it: a password typed into its own host's real login field can be
//! read back by that page's script and put in an image URL to a second in-scope host. So every
//! request the sandbox sees is scanned too. A secret going to a host in its own `hosts` (the
//! login form posting to its own host) is fine; to any other host, it is a finding.
//!
//! Findings name the secret and the form; they never hold a character of the value. Secrets
//! shorter than [`crate::redact::MIN_REDACT_CHARS`] are not looked for (as substrings they would
//! be found in every request). No I/O here: the sandbox calls [`EgressScanner::scan`] on the
//! bytes it holds.

use crate::error::SecretError;
use crate::redact::{Redactor, SecretForm};
use crate::Broker;
use airlock_core::host::HostName;
use airlock_core::manifest::RedactionSection;
use std::fmt;

/// A secret found in what a request would carry to a host outside the secret's scope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EgressHit {
    /// The secret's name in the manifest (never its value).
    pub secret: String,
    /// Which form of it was found.
    pub form: SecretForm,
}

/// Every live secret's forms with the hosts each may go to. `Debug` shows names and scopes only.
pub struct EgressScanner {
    matcher: Redactor,
    /// Per secret, in the order the matcher was built: its name and its hosts.
    scopes: Vec<(String, Vec<HostName>)>,
}

impl fmt::Debug for EgressScanner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EgressScanner")
            .field(
                "secrets",
                &self
                    .scopes
                    .iter()
                    .map(|(n, h)| {
                        format!(
                            "{n} on [{}]",
                            h.iter()
                                .map(HostName::as_str)
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    })
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl EgressScanner {
    /// Builds the scanner from a resolved broker: every secret with its scope.
    pub fn from_broker(broker: &Broker) -> Result<Self, SecretError> {
        let mut values = Vec::new();
        let mut scopes = Vec::new();
        for (name, hosts, value) in broker.scoped_values()? {
            values.push(value);
            scopes.push((name.to_string(), hosts.to_vec()));
        }
        let matcher = Redactor::new(values, &RedactionSection::default())?;
        Ok(EgressScanner { matcher, scopes })
    }

    /// Whether there is anything to look for.
    pub fn is_empty(&self) -> bool {
        self.scopes.is_empty()
    }

    /// The first secret `bytes` (one part of a request to `host`) carries that is not scoped to
    /// `host`.
    pub fn scan(&self, host: &HostName, bytes: &[u8]) -> Option<EgressHit> {
        if self.scopes.is_empty() || bytes.is_empty() {
            return None;
        }
        self.matcher
            .secrets_in(bytes)
            .into_iter()
            .find_map(|(owner, form)| {
                let (name, hosts) = self.scopes.get(owner)?;
                (!hosts.contains(host)).then(|| EgressHit {
                    secret: name.clone(),
                    form,
                })
            })
    }

    /// How many bytes of a stream to carry from one chunk to the next so that a secret split
    /// across two chunks (two WebSocket frames) is still found.
    pub fn window(&self) -> usize {
        self.matcher.window()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod tests {
    use super::*;
    use airlock_core::manifest::{SecretKind, SecretSource, SecretSpec};
    use base64::Engine as _;
    use std::collections::BTreeMap;
    use std::ffi::OsString;

    const PW: &str = "correct-horse-battery";

    async fn scanner() -> EgressScanner {
        let mut specs = BTreeMap::new();
        for (name, var, host) in [
            ("ci-readonly", "PW", "ci.example"),
            ("tracker-token", "TOKEN", "incidents.example"),
        ] {
            specs.insert(
                name.to_string(),
                SecretSpec {
                    source: SecretSource::Env,
                    env: Some(var.into()),
                    path: None,
                    vault_path: None,
                    vault_field: None,
                    hosts: vec![host.into()],
                    kind: SecretKind::Password,
                },
            );
        }
        let mut broker = Broker::new(&specs).unwrap();
        broker
            .resolve_all_with_env(|k| match k {
                "PW" => Some(OsString::from(PW)),
                "TOKEN" => Some(OsString::from("tok-9f8e7d6c5b")),
                _ => None,
            })
            .await
            .unwrap();
        EgressScanner::from_broker(&broker).unwrap()
    }

    fn host(h: &str) -> HostName {
        HostName::parse(h).unwrap()
    }

    #[tokio::test]
    async fn a_secret_may_go_to_its_own_host_only() {
        let s = scanner().await;
        let login = format!("username=ci-reader&password={PW}");
        assert_eq!(s.scan(&host("ci.example"), login.as_bytes()), None);
        let hit = s
            .scan(&host("incidents.example"), login.as_bytes())
            .unwrap();
        assert_eq!(hit.secret, "ci-readonly");
        assert_eq!(hit.form.to_string(), "plain");
        // The other secret is scoped the other way round.
        assert!(s
            .scan(&host("ci.example"), b"x=tok-9f8e7d6c5b")
            .is_some_and(|h| h.secret == "tracker-token"));
        assert_eq!(s.scan(&host("incidents.example"), b"tok-9f8e7d6c5b"), None);
    }

    #[tokio::test]
    async fn every_common_encoding_and_transform_is_found() {
        let s = scanner().await;
        let reversed: String = PW.chars().rev().collect();
        let b64 = |t: &str| base64::engine::general_purpose::STANDARD.encode(t);
        let b64url = |t: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(t);
        let hex = |t: &str| t.bytes().map(|b| format!("{b:02x}")).collect::<String>();
        let inc = host("incidents.example");
        for (sent, form) in [
            (format!("/pixel.gif?d={PW}"), "plain"),
            (format!("/p?d={}", b64(PW)), "base64"),
            (format!("/p?d={}", b64url(&format!("x{PW}"))), "base64"),
            (format!("/p?d={}", hex(PW)), "hex"),
            (format!("/p?d={}", hex(PW).to_uppercase()), "hex"),
            (format!("/p?d={reversed}"), "reversed"),
            (format!("/p?d={}", b64(&reversed)), "base64 of reversed"),
            (format!("/p?d={}", hex(&reversed)), "hex of reversed"),
            (format!("/p?d={}", PW.to_uppercase()), "upper-case"),
            (
                "/p?d=correct%2Dhorse%2Dbattery".to_string(),
                "plain", // percent-encoded: matched through the escape
            ),
            (format!("{{\"d\":\"{PW}\"}}"), "plain"),
        ] {
            let hit = s
                .scan(&inc, sent.as_bytes())
                .unwrap_or_else(|| panic!("{sent} not found"));
            assert_eq!(hit.secret, "ci-readonly", "{sent}");
            assert!(
                hit.form
                    .to_string()
                    .contains(form.split(' ').next().unwrap_or("")),
                "{sent}: {}",
                hit.form
            );
        }
        assert_eq!(s.scan(&inc, b"/incidents/INC-2048?note=hello"), None);
    }

    #[tokio::test]
    async fn findings_and_debug_never_show_the_value() {
        let s = scanner().await;
        let hit = s.scan(&host("incidents.example"), PW.as_bytes()).unwrap();
        assert!(!format!("{hit:?} {}", hit.form).contains(PW));
        let dbg = format!("{s:?}");
        assert!(dbg.contains("ci-readonly on [ci.example]"), "{dbg}");
        assert!(!dbg.contains(PW));
        assert!(s.window() >= PW.len());
    }
}
