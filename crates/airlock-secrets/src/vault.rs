//! Reading one field of a HashiCorp Vault KV v2 secret over Vault's HTTP API.
//!
//! This module owns the wire protocol and nothing else: `GET {VAULT_ADDR}/v1/{mount}/data/{path}`
//! with `X-Vault-Token` (and `X-Vault-Namespace` when `VAULT_NAMESPACE` is set), then
//! `data.data[field]` from the answer. It is deliberately narrow about what it will do with the
//! token:
//!
//! - plain `http://` only to a loopback address (a dev server); anywhere else the token would
//!   cross the network in clear, so it is refused;
//! - redirects are not followed (a redirect would carry `X-Vault-Token`, a header `reqwest` does
//!   not know to strip, to wherever the `Location` points);
//! - no proxy from the environment (the token would be handed to it);
//! - TLS is rustls with the `ring` provider and the platform's roots, plus `VAULT_CACERT` when
//!   set, as the Vault CLI does.
//!
//! The response body is held in a zeroised buffer and parsed without copying other fields;
//! error messages carry the secret's path and Vault's own error strings, never the token.

use crate::error::SecretError;
use crate::value::SecretValue;
use reqwest::header::{HeaderMap, HeaderValue};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::sync::Arc;
use std::time::Duration;
use url::Url;
use zeroize::Zeroizing;

/// The largest Vault response read; a KV secret is a few hundred bytes.
const MAX_BODY: usize = 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How much of Vault's error strings ends up in a message.
const MAX_ERRORS: usize = 5;
const MAX_ERROR_LEN: usize = 200;

/// A `MOUNT/PATH…` split into the mount and the path inside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct VaultPath {
    mount: String,
    segments: Vec<String>,
}

impl VaultPath {
    /// Parses `MOUNT/PATH…`: at least two non-empty segments, no `.`/`..`.
    pub(crate) fn parse(raw: &str) -> Result<Self, String> {
        let mut parts = raw.trim_matches('/').split('/');
        let mount = parts.next().unwrap_or_default().to_string();
        let segments: Vec<String> = parts.map(str::to_string).collect();
        if mount.is_empty() || segments.is_empty() {
            return Err(format!(
                "`vault_path` `{raw}` must be `MOUNT/PATH` (e.g. `secret/ci/readonly`)"
            ));
        }
        if std::iter::once(&mount)
            .chain(&segments)
            .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return Err(format!(
                "`vault_path` `{raw}` has an empty, `.` or `..` segment"
            ));
        }
        Ok(VaultPath { mount, segments })
    }
}

impl std::fmt::Display for VaultPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.mount, self.segments.join("/"))
    }
}

/// A configured client: address, token, namespace and an HTTP client built once per run.
pub(crate) struct VaultClient {
    addr: Url,
    token: Zeroizing<String>,
    namespace: Option<String>,
    http: reqwest::Client,
}

impl std::fmt::Debug for VaultClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultClient")
            .field("addr", &self.addr.as_str())
            .field("token", &"***")
            .field("namespace", &self.namespace)
            .finish()
    }
}

impl VaultClient {
    /// Reads `VAULT_ADDR`, `VAULT_TOKEN`, `VAULT_NAMESPACE` and `VAULT_CACERT` through `env`.
    /// `name` is the secret being resolved, for the error message.
    pub(crate) fn from_env(
        name: &str,
        env: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Self, SecretError> {
        let config = |reason: String| SecretError::VaultConfig {
            name: name.to_string(),
            reason,
        };
        let var = |key: &str| -> Result<Option<String>, SecretError> {
            match env(key) {
                None => Ok(None),
                Some(v) => v
                    .into_string()
                    .map(Some)
                    .map_err(|_| config(format!("`{key}` is not valid UTF-8"))),
            }
        };
        let addr_raw = var("VAULT_ADDR")?
            .filter(|a| !a.trim().is_empty())
            .ok_or_else(|| config("`VAULT_ADDR` is not set".into()))?;
        let addr = Url::parse(addr_raw.trim())
            .map_err(|_| config(format!("`VAULT_ADDR` `{addr_raw}` is not a URL")))?;
        check_addr(&addr).map_err(config)?;
        let token = Zeroizing::new(
            var("VAULT_TOKEN")?
                .filter(|t| !t.trim().is_empty())
                .ok_or_else(|| config("`VAULT_TOKEN` is not set".into()))?,
        );
        let namespace = var("VAULT_NAMESPACE")?.filter(|n| !n.trim().is_empty());
        let cacert = var("VAULT_CACERT")?.filter(|c| !c.trim().is_empty());
        let tls = tls_config(addr.scheme() == "https", cacert.as_deref()).map_err(config)?;
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("airlock-secrets/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| config(format!("cannot build the HTTP client: {e}")))?;
        Ok(VaultClient {
            addr,
            token,
            namespace,
            http,
        })
    }

    /// The KV v2 read URL for `path`.
    fn data_url(&self, path: &VaultPath) -> Result<Url, String> {
        let mut url = self.addr.clone();
        {
            let mut segs = url
                .path_segments_mut()
                .map_err(|_| "`VAULT_ADDR` cannot carry a path".to_string())?;
            segs.pop_if_empty()
                .push("v1")
                .push(&path.mount)
                .push("data")
                .extend(&path.segments);
        }
        url.set_query(None);
        url.set_fragment(None);
        Ok(url)
    }

    /// Reads `data.data[field]` of the secret at `path`.
    pub(crate) async fn read_field(
        &self,
        name: &str,
        path: &VaultPath,
        field: &str,
    ) -> Result<SecretValue, SecretError> {
        let request_err = |reason: String| SecretError::VaultRequest {
            name: name.to_string(),
            path: path.to_string(),
            reason,
        };
        let url = self.data_url(path).map_err(request_err)?;
        let mut headers = HeaderMap::new();
        let mut token = HeaderValue::from_str(self.token.as_str())
            .map_err(|_| request_err("`VAULT_TOKEN` is not a valid header value".into()))?;
        token.set_sensitive(true);
        headers.insert("X-Vault-Token", token);
        if let Some(ns) = &self.namespace {
            let ns = HeaderValue::from_str(ns)
                .map_err(|_| request_err("`VAULT_NAMESPACE` is not a valid header value".into()))?;
            headers.insert("X-Vault-Namespace", ns);
        }
        let mut response = self
            .http
            .get(url)
            .headers(headers)
            .send()
            .await
            .map_err(|e| request_err(describe_reqwest_error(&e)))?;
        let status = response.status();

        let capacity = response
            .content_length()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(4096)
            .min(MAX_BODY);
        let mut body = Zeroizing::new(Vec::with_capacity(capacity));
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| request_err(describe_reqwest_error(&e)))?
        {
            if body.len().saturating_add(chunk.len()) > MAX_BODY {
                return Err(request_err(format!(
                    "the response is larger than {MAX_BODY} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }

        if status == reqwest::StatusCode::NOT_FOUND {
            return Err(SecretError::VaultNotFound {
                name: name.to_string(),
                path: path.to_string(),
            });
        }
        if !status.is_success() {
            return Err(SecretError::VaultStatus {
                name: name.to_string(),
                path: path.to_string(),
                status: status.as_u16(),
                errors: vault_errors(&body, self.token.as_str()),
            });
        }
        extract_field(&body, field).map_err(|e| match e {
            FieldError::Missing => SecretError::VaultFieldMissing {
                name: name.to_string(),
                path: path.to_string(),
                field: field.to_string(),
            },
            FieldError::NotString => SecretError::VaultFieldNotString {
                name: name.to_string(),
                path: path.to_string(),
                field: field.to_string(),
            },
            FieldError::Body(reason) => SecretError::VaultResponse {
                name: name.to_string(),
                path: path.to_string(),
                reason,
            },
        })
    }
}

/// `http` only to loopback; `https` anywhere; nothing else.
fn check_addr(addr: &Url) -> Result<(), String> {
    match addr.scheme() {
        "https" => {}
        "http" => {
            let loopback = match addr.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback {
                return Err(format!(
                    "`VAULT_ADDR` `{addr}` is plain http to a non-loopback host; the token would \
                     travel in clear (use https)"
                ));
            }
        }
        other => return Err(format!("`VAULT_ADDR` scheme `{other}` is not http(s)")),
    }
    if !addr.username().is_empty() || addr.password().is_some() {
        return Err("`VAULT_ADDR` must not carry credentials".into());
    }
    Ok(())
}

/// rustls with `ring`. For `https`, the platform's roots plus `VAULT_CACERT`; for loopback
/// `http` no TLS is ever negotiated (redirects are off), but reqwest still needs a config, so it
/// gets one that trusts nothing.
fn tls_config(https: bool, cacert: Option<&str>) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    if !https {
        return Ok(builder
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth());
    }
    let extra: Vec<CertificateDer<'static>> = match cacert {
        None => Vec::new(),
        Some(path) => CertificateDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|e| format!("cannot read `VAULT_CACERT` `{path}`: {e}"))?,
    };
    if cacert.is_some() && extra.is_empty() {
        return Err("`VAULT_CACERT` holds no PEM certificate".into());
    }
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(extra, provider)
        .map_err(|e| format!("cannot load CA certificates: {e}"))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// Transport errors, without the URL (it is in the message already) and without any header.
fn describe_reqwest_error(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the response body could not be read"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    data: Option<Inner<'a>>,
}

#[derive(Deserialize)]
struct Inner<'a> {
    /// Borrowed raw values: the other fields of the secret are never copied out of the
    /// (zeroised) body.
    #[serde(borrow)]
    data: Option<BTreeMap<String, &'a RawValue>>,
}

#[derive(Debug, PartialEq, Eq)]
enum FieldError {
    Missing,
    NotString,
    Body(String),
}

/// `data.data[field]` of a KV v2 read response, as text.
fn extract_field(body: &[u8], field: &str) -> Result<SecretValue, FieldError> {
    let envelope: Envelope<'_> = serde_json::from_slice(body).map_err(|e| {
        // serde_json's messages give a position, never the input itself.
        FieldError::Body(format!("not KV v2 JSON ({e})"))
    })?;
    let fields = envelope
        .data
        .ok_or_else(|| FieldError::Body("no `data` object".into()))?
        .data
        // `data.data` is null for a deleted or destroyed version.
        .ok_or(FieldError::Missing)?;
    let raw = fields.get(field).ok_or(FieldError::Missing)?;
    let text: String = serde_json::from_str(raw.get()).map_err(|_| FieldError::NotString)?;
    Ok(SecretValue::new(text))
}

/// Vault's `{"errors": [...]}`, bounded, with the token scrubbed in case a server echoes it.
fn vault_errors(body: &[u8], token: &str) -> Vec<String> {
    #[derive(Deserialize)]
    struct Errors {
        #[serde(default)]
        errors: Vec<String>,
    }
    let Ok(parsed) = serde_json::from_slice::<Errors>(body) else {
        return Vec::new();
    };
    parsed
        .errors
        .into_iter()
        .take(MAX_ERRORS)
        .map(|e| {
            let e = if token.is_empty() {
                e
            } else {
                e.replace(token, "***")
            };
            e.chars().take(MAX_ERROR_LEN).collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_split_into_mount_and_rest() {
        let p = VaultPath::parse("secret/ci/readonly").unwrap();
        assert_eq!(p.mount, "secret");
        assert_eq!(p.segments, vec!["ci", "readonly"]);
        assert_eq!(p.to_string(), "secret/ci/readonly");
        for bad in ["secret", "", "/", "secret//x", "secret/../x", "./x"] {
            assert!(VaultPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_must_not_send_the_token_in_clear() {
        let ok = |s: &str| check_addr(&Url::parse(s).unwrap());
        assert!(ok("https://vault.internal:8200").is_ok());
        assert!(ok("http://127.0.0.1:8200").is_ok());
        assert!(ok("http://[::1]:8200").is_ok());
        assert!(ok("http://localhost:8200").is_ok());
        assert!(ok("http://vault.internal:8200").is_err());
        assert!(ok("ftp://127.0.0.1").is_err());
        assert!(ok("https://user:pw@vault.internal").is_err());
    }

    #[test]
    fn kv2_bodies_yield_the_field_or_say_why_not() {
        let body = br#"{"request_id":"r","data":{"data":{"password":"p\u00e4ss\"w","n":1},"metadata":{"version":3}}}"#;
        assert_eq!(
            extract_field(body, "password").unwrap().expose_str(),
            "p\u{e4}ss\"w"
        );
        assert_eq!(
            extract_field(body, "nope").unwrap_err(),
            FieldError::Missing
        );
        assert_eq!(extract_field(body, "n").unwrap_err(), FieldError::NotString);
        let deleted = br#"{"data":{"data":null,"metadata":{"deletion_time":"x"}}}"#;
        assert_eq!(
            extract_field(deleted, "password").unwrap_err(),
            FieldError::Missing
        );
        assert!(matches!(
            extract_field(b"<html>", "password"),
            Err(FieldError::Body(_))
        ));
    }

    #[test]
    fn vault_error_strings_are_bounded_and_scrubbed() {
        let body = br#"{"errors":["permission denied for token s.abc","2","3","4","5","6"]}"#;
        let errs = vault_errors(body, "s.abc");
        assert_eq!(errs.len(), MAX_ERRORS);
        assert_eq!(errs[0], "permission denied for token ***");
        assert!(vault_errors(b"garbage", "t").is_empty());
    }

    #[test]
    fn http_clients_build_without_a_process_wide_crypto_provider() {
        let env = |k: &str| match k {
            "VAULT_ADDR" => Some(OsString::from("http://127.0.0.1:8200")),
            "VAULT_TOKEN" => Some(OsString::from("t")),
            _ => None,
        };
        let c = VaultClient::from_env("s", &env).unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("\"t\""), "{shown}");
        let url = c
            .data_url(&VaultPath::parse("secret/ci/read only").unwrap())
            .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:8200/v1/secret/data/ci/read%20only"
        );
    }

    #[test]
    fn a_missing_cacert_file_is_a_config_error() {
        let err = tls_config(true, Some("/nonexistent/ca.pem")).unwrap_err();
        assert!(err.contains("VAULT_CACERT"), "{err}");
    }
}
