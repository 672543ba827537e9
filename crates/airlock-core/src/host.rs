//! Host and URL normalisation: the one way Airlock turns a string into something to match.
//!
//! Matching is exact on the normalised host, never by suffix or substring, so
//! `ci.example.evil.example` and `ci-example.evil` are simply other hosts. Normalisation lowers
//! case, drops a trailing dot and converts IDN to punycode (via the WHATWG URL parser) before
//! any comparison. IP literals are refused: a task names its hosts.

use serde::{Deserialize, Serialize};
use std::fmt;
use url::Url;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("`{0}` is not a valid URL")]
    Invalid(String),
    #[error("scheme `{0}` is not allowed (only http and https)")]
    Scheme(String),
    #[error("URL `{0}` has no host")]
    NoHost(String),
    #[error("IP literal `{0}` is not allowed; name the host")]
    IpLiteral(String),
    #[error("URL carries credentials (`user@host`); refused")]
    Userinfo,
    #[error("`{0}` is not a valid host name")]
    BadHost(String),
}

/// A normalised host name (lower case, no trailing dot, punycode).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct HostName(String);

impl HostName {
    /// Normalises a bare host name (no scheme, no port).
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.contains(['/', '@', ':', '?', '#', ' ', '*', '\\']) {
            return Err(UrlError::BadHost(raw.to_string()));
        }
        let url = Url::parse(&format!("http://{trimmed}/"))
            .map_err(|_| UrlError::BadHost(raw.to_string()))?;
        match url.host() {
            Some(url::Host::Domain(d)) => {
                let d = d.trim_end_matches('.');
                if d.is_empty() || looks_numeric(d) {
                    return Err(UrlError::IpLiteral(raw.to_string()));
                }
                Ok(HostName(d.to_string()))
            }
            Some(_) => Err(UrlError::IpLiteral(raw.to_string())),
            None => Err(UrlError::BadHost(raw.to_string())),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Hosts made only of digits and dots (or hex-looking labels) are IP literals in disguise.
fn looks_numeric(d: &str) -> bool {
    d.split('.').all(|label| {
        !label.is_empty()
            && (label.chars().all(|c| c.is_ascii_digit())
                || (label.starts_with("0x") && label[2..].chars().all(|c| c.is_ascii_hexdigit())))
    })
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An http(s) URL reduced to what policy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebUrl {
    pub scheme: String,
    pub host: HostName,
    pub port: u16,
    /// Path without query or fragment.
    pub path: String,
    pub url: Url,
}

impl WebUrl {
    pub fn parse(raw: &str) -> Result<Self, UrlError> {
        let url = Url::parse(raw.trim()).map_err(|_| UrlError::Invalid(raw.to_string()))?;
        Self::from_url(url)
    }

    /// Resolves `raw` relative to `base` first (for hrefs and form actions).
    pub fn parse_relative(base: &str, raw: &str) -> Result<Self, UrlError> {
        let base = Url::parse(base).map_err(|_| UrlError::Invalid(base.to_string()))?;
        let url = base
            .join(raw.trim())
            .map_err(|_| UrlError::Invalid(raw.to_string()))?;
        Self::from_url(url)
    }

    fn from_url(url: Url) -> Result<Self, UrlError> {
        let scheme = url.scheme().to_string();
        if scheme != "http" && scheme != "https" {
            return Err(UrlError::Scheme(scheme));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(UrlError::Userinfo);
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) => HostName::parse(d)?,
            Some(h) => return Err(UrlError::IpLiteral(h.to_string())),
            None => return Err(UrlError::NoHost(url.to_string())),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let path = url.path().to_string();
        Ok(WebUrl {
            scheme,
            host,
            port,
            path,
            url,
        })
    }

    /// `host/path`, the form scopes are written in.
    pub fn scope(&self) -> String {
        format!("{}{}", self.host, self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_normalise_case_dot_and_idn() {
        assert_eq!(
            HostName::parse("CI.Example.").unwrap().as_str(),
            "ci.example"
        );
        assert_eq!(
            HostName::parse("bücher.example").unwrap().as_str(),
            "xn--bcher-kva.example"
        );
    }

    #[test]
    fn ip_literals_are_refused_in_every_spelling() {
        for raw in [
            "127.0.0.1",
            "2130706433",
            "0x7f.0.0.1",
            "[::1]",
            "0177.0.0.1",
        ] {
            assert!(HostName::parse(raw).is_err(), "{raw} should be refused");
        }
        assert!(matches!(
            WebUrl::parse("http://127.0.0.1:8080/"),
            Err(UrlError::IpLiteral(_))
        ));
        assert!(WebUrl::parse("http://2130706433/").is_err());
    }

    #[test]
    fn schemes_and_userinfo_are_refused() {
        for raw in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "file:///etc/passwd",
            "blob:http://ci.example/x",
            "view-source:http://ci.example/",
            "chrome://settings",
        ] {
            assert!(WebUrl::parse(raw).is_err(), "{raw} should be refused");
        }
        assert_eq!(
            WebUrl::parse("http://ci.example@evil.example/"),
            Err(UrlError::Userinfo)
        );
    }

    #[test]
    fn lookalikes_are_other_hosts() {
        let u = WebUrl::parse("http://ci.example.evil.example/runs").unwrap();
        assert_ne!(u.host.as_str(), "ci.example");
        let r = WebUrl::parse_relative("http://ci.example/runs/", "../login?x=1").unwrap();
        assert_eq!(r.scope(), "ci.example/login");
    }
}
