//! The HTTP transport every live adapter shares: one `reqwest` client (rustls with the `ring`
//! provider, as `airlock-secrets` builds it), JSON POSTs with bounded retries.
//!
//! - Retried: 408, 409, 425, 429, every 5xx (Anthropic's 529 included), connection errors,
//!   timeouts and bodies that break off. Not retried: other 4xx (a bad key or request does not
//!   get better).
//! - Waits: `retry-after-ms` or `retry-after` (seconds) when the server sends one, else
//!   exponential backoff from `retry_base_delay` with jitter. A server that asks for a wait
//!   longer than `max_retry_delay` is not waited for: the error says so.
//! - Redirects are not followed (the key header would follow them), no proxy is used, and
//!   `http://` is accepted only for loopback hosts (or with no key at all).
//! - Error messages carry the status and the vendor's own error message, scrubbed of the key;
//!   never a header.

use crate::key::ApiKey;
use crate::ProviderError;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// Largest response body read.
const MAX_BODY: usize = 32 * 1024 * 1024;

/// Timeouts and retry bounds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryPolicy {
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Retries after the first attempt.
    pub max_retries: u32,
    pub retry_base_delay: Duration,
    /// The longest single wait; a longer `retry-after` ends the attempts.
    pub max_retry_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            request_timeout: Duration::from_secs(120),
            connect_timeout: Duration::from_secs(10),
            max_retries: 4,
            retry_base_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
        }
    }
}

/// A JSON client for one vendor endpoint family.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    policy: RetryPolicy,
    /// Only to scrub error texts; headers are built by the adapter.
    key: Option<ApiKey>,
}

/// Checks a base URL: `https` anywhere; `http` to loopback, or anywhere when no key travels.
pub(crate) fn check_base_url(raw: &str, var: &str, has_key: bool) -> Result<Url, ProviderError> {
    let url = Url::parse(raw.trim())
        .map_err(|_| ProviderError::Config(format!("`{var}` `{}` is not a URL", raw.trim())))?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ProviderError::Config(format!(
            "`{var}` must not carry credentials"
        )));
    }
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback && has_key {
                return Err(ProviderError::Config(format!(
                    "`{var}` `{url}` is plain http to a non-loopback host; the API key would \
                     travel in clear (use https)"
                )));
            }
        }
        other => {
            return Err(ProviderError::Config(format!(
                "`{var}` scheme `{other}` is not http(s)"
            )))
        }
    }
    Ok(url)
}

/// Appends `path` (no leading slash) to `base`, keeping the base's own path.
pub(crate) fn join(base: &Url, path: &str) -> Result<Url, ProviderError> {
    let mut s = base.as_str().trim_end_matches('/').to_string();
    s.push('/');
    s.push_str(path);
    Url::parse(&s)
        .map_err(|_| ProviderError::Config(format!("cannot build a request URL for `{path}`")))
}

fn tls_config() -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let verifier = rustls_platform_verifier::Verifier::new_with_extra_roots(Vec::new(), provider)
        .map_err(|e| format!("cannot load CA certificates: {e}"))?;
    Ok(builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth())
}

/// A sensitive header value from the key (never logged by reqwest/hyper).
pub(crate) fn secret_header(value: &str) -> Result<HeaderValue, ProviderError> {
    let mut v = HeaderValue::from_str(value)
        .map_err(|_| ProviderError::Config("the API key is not a valid header value".into()))?;
    v.set_sensitive(true);
    Ok(v)
}

impl Http {
    pub(crate) fn new(policy: RetryPolicy, key: Option<ApiKey>) -> Result<Self, ProviderError> {
        let tls = tls_config().map_err(ProviderError::Config)?;
        let client = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(policy.connect_timeout)
            .timeout(policy.request_timeout)
            .user_agent(concat!("airlock-providers/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ProviderError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            policy,
            key,
        })
    }

    fn scrub(&self, text: &str) -> String {
        match &self.key {
            Some(k) => k.scrub(text),
            None => text.to_string(),
        }
    }

    /// POSTs `body` as JSON to `url` with `headers`, retrying as the module docs say. Returns
    /// the body of the first successful (2xx) response.
    pub(crate) async fn post_json(
        &self,
        url: &Url,
        headers: &HeaderMap,
        body: &Value,
    ) -> Result<Vec<u8>, ProviderError> {
        let bytes = serde_json::to_vec(body).map_err(|e| ProviderError::Http {
            status: None,
            message: format!("cannot encode the request: {e}"),
        })?;
        let mut attempt: u32 = 0;
        loop {
            let outcome = self.once(url, headers, &bytes).await;
            let (err, retry_after) = match outcome {
                Ok(body) => return Ok(body),
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Retry { error, retry_after }) => (error, retry_after),
            };
            if attempt >= self.policy.max_retries {
                return Err(with_note(
                    err,
                    &format!("gave up after {} attempts", attempt + 1),
                ));
            }
            let wait = match retry_after {
                Some(wait) if wait > self.policy.max_retry_delay => {
                    return Err(with_note(
                        err,
                        &format!(
                        "the server asks to retry after {} s, longer than the {} s Airlock waits",
                        wait.as_secs_f64().ceil(),
                        self.policy.max_retry_delay.as_secs_f64()
                    ),
                    ))
                }
                Some(wait) => wait,
                None => backoff(self.policy, attempt),
            };
            tracing::debug!(
                attempt,
                wait_ms = wait.as_millis() as u64,
                "retrying provider request"
            );
            tokio::time::sleep(wait).await;
            attempt += 1;
        }
    }

    async fn once(&self, url: &Url, headers: &HeaderMap, body: &[u8]) -> Result<Vec<u8>, Attempt> {
        let mut all = headers.clone();
        all.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let mut response = match self
            .client
            .post(url.clone())
            .headers(all)
            .body(body.to_vec())
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                let error = ProviderError::Http {
                    status: None,
                    message: self.scrub(&describe(&e)),
                };
                return Err(if e.is_builder() {
                    Attempt::Final(error)
                } else {
                    Attempt::Retry {
                        error,
                        retry_after: None,
                    }
                });
            }
        };
        let status = response.status().as_u16();
        let retry_after = retry_after(response.headers());
        let mut buf = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if buf.len().saturating_add(chunk.len()) > MAX_BODY {
                        return Err(Attempt::Final(ProviderError::Http {
                            status: Some(status),
                            message: format!("the response is larger than {MAX_BODY} bytes"),
                        }));
                    }
                    buf.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Attempt::Retry {
                        error: ProviderError::Http {
                            status: Some(status),
                            message: self.scrub(&describe(&e)),
                        },
                        retry_after,
                    })
                }
            }
        }
        if (200..300).contains(&status) {
            return Ok(buf);
        }
        let error = ProviderError::Http {
            status: Some(status),
            message: airlock_core::action::truncate(&self.scrub(&vendor_message(&buf)), 300),
        };
        if matches!(status, 408 | 409 | 425 | 429) || status >= 500 {
            Err(Attempt::Retry { error, retry_after })
        } else {
            Err(Attempt::Final(error))
        }
    }
}

enum Attempt {
    Retry {
        error: ProviderError,
        retry_after: Option<Duration>,
    },
    Final(ProviderError),
}

fn with_note(err: ProviderError, note: &str) -> ProviderError {
    match err {
        ProviderError::Http { status, message } => ProviderError::Http {
            status,
            message: format!("{message} ({note})"),
        },
        other => other,
    }
}

/// `base * 2^attempt`, at most `max_retry_delay`, times a jitter factor in [0.5, 1).
fn backoff(policy: RetryPolicy, attempt: u32) -> Duration {
    let exp = policy
        .retry_base_delay
        .saturating_mul(1u32 << attempt.min(16))
        .min(policy.max_retry_delay);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let jitter = 0.5 + f64::from(nanos % 1000) / 2000.0;
    exp.mul_f64(jitter)
}

/// `retry-after-ms` (OpenAI, Anthropic) or `retry-after` in seconds. HTTP dates are not
/// parsed (the backoff applies).
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let num = |name: &HeaderName| -> Option<f64> {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite() && *v >= 0.0)
    };
    if let Some(ms) = num(&HeaderName::from_static("retry-after-ms")) {
        return Some(Duration::from_secs_f64(ms.min(1e9) / 1000.0));
    }
    num(&RETRY_AFTER).map(|s| Duration::from_secs_f64(s.min(1e9)))
}

/// The vendor's error message from an error body (`{"error":{"message":…}}` in all three
/// APIs), shortened; or the start of a non-JSON body.
fn vendor_message(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let msg = parsed.as_ref().and_then(|v| {
        let err = v.get("error")?;
        match err {
            Value::String(s) => Some(s.clone()),
            Value::Object(_) => {
                let m = err.get("message").and_then(Value::as_str).unwrap_or("");
                let t = err
                    .get("type")
                    .or_else(|| err.get("status"))
                    .and_then(Value::as_str);
                Some(match t {
                    Some(t) => format!("{t}: {m}"),
                    None => m.to_string(),
                })
            }
            _ => None,
        }
    });
    msg.unwrap_or_else(|| {
        if text.trim().is_empty() {
            "empty response body".to_string()
        } else {
            let start: String = text.trim().chars().take(2000).collect();
            format!("unexpected response body: {start}")
        }
    })
}

/// Transport errors without the URL and without any header.
fn describe(e: &reqwest::Error) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls_are_checked() {
        assert!(check_base_url("https://api.anthropic.com", "X", true).is_ok());
        assert!(check_base_url("http://127.0.0.1:9/v1", "X", true).is_ok());
        assert!(check_base_url("http://localhost:8000/v1", "X", true).is_ok());
        let e = check_base_url("http://10.0.0.5:8000/v1", "X", true).unwrap_err();
        assert!(e.to_string().contains("in clear"), "{e}");
        assert!(check_base_url("http://10.0.0.5:8000/v1", "X", false).is_ok());
        assert!(check_base_url("https://u:p@h/", "X", true).is_err());
        assert!(check_base_url("ftp://h/", "X", true).is_err());
        assert!(check_base_url("not a url", "X", true).is_err());
    }

    #[test]
    fn join_keeps_the_base_path() {
        let b = Url::parse("http://h:1/v1/").unwrap();
        assert_eq!(
            join(&b, "responses").unwrap().as_str(),
            "http://h:1/v1/responses"
        );
        let b = Url::parse("https://api.anthropic.com").unwrap();
        assert_eq!(
            join(&b, "v1/messages").unwrap().as_str(),
            "https://api.anthropic.com/v1/messages"
        );
    }

    #[test]
    fn retry_after_headers() {
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h), None);
        h.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
        h.insert("retry-after-ms", HeaderValue::from_static("250"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(250)));
        h.insert("retry-after-ms", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(2)));
    }

    #[test]
    fn vendor_messages_are_extracted_and_shortened() {
        assert_eq!(
            vendor_message(
                br#"{"type":"error","error":{"type":"invalid_request_error","message":"bad"}}"#
            ),
            "invalid_request_error: bad"
        );
        assert_eq!(
            vendor_message(br#"{"error":{"code":400,"message":"m","status":"INVALID_ARGUMENT"}}"#),
            "INVALID_ARGUMENT: m"
        );
        assert!(vendor_message(&[b'x'; 100_000]).chars().count() <= 2100);
        assert_eq!(vendor_message(b""), "empty response body");
    }

    #[test]
    fn backoff_grows_and_is_bounded() {
        let p = RetryPolicy {
            retry_base_delay: Duration::from_millis(100),
            max_retry_delay: Duration::from_secs(1),
            ..RetryPolicy::default()
        };
        assert!(backoff(p, 0) <= Duration::from_millis(100));
        assert!(backoff(p, 0) >= Duration::from_millis(50));
        assert!(backoff(p, 10) <= Duration::from_secs(1));
    }
}
