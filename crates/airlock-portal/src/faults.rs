//! Fault modes: the portal as a flaky production site, for tests that need one.
//!
//! One middleware over the whole portal (every app, every host) can slow every response down,
//! answer some requests with a 500, never answer requests to some paths, serve pages in a shifted
//! layout variant, and end every CI session at a chosen point so the next page is the login page.
//! Everything is deterministic: counters and a seeded generator decide, never the clock or a
//! random source, so a test that asks for "the second request to `/runs/RUN-78432` fails" gets
//! exactly that on every run.
//!
//! The system-of-record API (`/_sor/…`) is never faulted and never counted: it is how tests and
//! the host's verifier learn the truth about the flaky site.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::PortalState;

/// How a request that "hangs" ends if the client never gives up: late, with a 504.
const HANG_FOR: Duration = Duration::from_secs(600);

/// Largest page the layout-variant rewrite buffers; bigger bodies pass through unchanged.
const MAX_REWRITE_BYTES: usize = 4 << 20;

/// Vertical offsets of the layout variants, in CSS pixels (variant 0 is the normal layout).
pub const LAYOUT_OFFSETS: [u32; 3] = [0, 48, 96];

/// Which faults the portal injects: exactly a task's `[portal.faults]` (one type, so the manifest
/// and the portal cannot drift apart). The default injects none.
pub type FaultConfig = airlock_core::manifest::PortalFaults;

/// The live fault state: the configuration and the counters that make it deterministic.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    config: Mutex<FaultConfig>,
    /// Requests seen (outside `/_sor`), numbered from 1.
    requests: AtomicU64,
    /// Requests that matched `error_paths`.
    error_candidates: AtomicU64,
    /// `expire_session_on` prefixes already used.
    expired_on: Mutex<Vec<String>>,
}

impl Faults {
    pub(crate) fn new(config: FaultConfig) -> Self {
        Faults {
            config: Mutex::new(config),
            ..Faults::default()
        }
    }

    pub(crate) fn config(&self) -> FaultConfig {
        self.config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the configuration and starts counting again.
    pub(crate) fn set(&self, config: FaultConfig) {
        *self
            .config
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = config;
        self.reset();
    }

    /// Starts counting again, as if no request had arrived.
    pub(crate) fn reset(&self) {
        self.requests.store(0, Ordering::SeqCst);
        self.error_candidates.store(0, Ordering::SeqCst);
        self.expired_on
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }

    /// What to do with request number `n` to `path`.
    fn plan(&self, n: u64, path: &str) -> Plan {
        let c = self.config();
        let matches = |prefixes: &[String]| prefixes.iter().any(|p| path.starts_with(p.as_str()));
        let expire = (c.expire_session_after != 0 && n == c.expire_session_after)
            || c.expire_session_on.iter().any(|p| {
                if !path.starts_with(p.as_str()) {
                    return false;
                }
                let mut used = self
                    .expired_on
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if used.contains(p) {
                    false
                } else {
                    used.push(p.clone());
                    true
                }
            });
        let error = (c.error_paths.is_empty() || matches(&c.error_paths))
            && (c.error_first > 0 || c.error_every > 0 || c.error_percent > 0)
            && {
                let m = self.error_candidates.fetch_add(1, Ordering::SeqCst) + 1;
                m <= c.error_first
                    || (c.error_every > 0 && m % c.error_every == 0)
                    || draw(c.seed, n, 1) % 100 < u64::from(c.error_percent)
            };
        let offset = if c.layout_variants {
            let i = usize::try_from(draw(c.seed, n, 2) % LAYOUT_OFFSETS.len() as u64).unwrap_or(0);
            LAYOUT_OFFSETS.get(i).copied().unwrap_or(0)
        } else {
            0
        };
        Plan {
            delay: Duration::from_millis(c.slow_ms),
            hang: matches(&c.hang_paths),
            expire,
            error,
            offset,
        }
    }
}

/// The decisions for one request.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    delay: Duration,
    hang: bool,
    expire: bool,
    error: bool,
    offset: u32,
}

/// A deterministic draw for request `n` (splitmix64 of the seed, the request and a stream id).
fn draw(seed: u64, n: u64, stream: u64) -> u64 {
    let mut z = seed
        .wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15))
        .wrapping_add(stream.wrapping_mul(0xD1B5_4A32_D192_ED03));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The middleware: applies the configured faults to every request outside `/_sor`.
pub(crate) async fn inject(State(state): State<PortalState>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if path == "/_sor" || path.starts_with("/_sor/") {
        return next.run(req).await;
    }
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(crate::normalize_host)
        .unwrap_or_default();
    let faults = state.faults();
    let n = faults.requests.fetch_add(1, Ordering::SeqCst) + 1;
    let plan = faults.plan(n, &path);
    if plan.expire {
        state.with(|inner| inner.sessions.clear());
    }
    if !plan.delay.is_zero() {
        tokio::time::sleep(plan.delay).await;
    }
    if plan.hang {
        state.log_request(&host, req.method().as_str(), &path);
        tokio::time::sleep(HANG_FOR).await;
        return StatusCode::GATEWAY_TIMEOUT.into_response();
    }
    if plan.error {
        state.log_request(&host, req.method().as_str(), &path);
        return server_error();
    }
    let resp = next.run(req).await;
    if plan.offset == 0 {
        return resp;
    }
    shift_layout(resp, plan.offset).await
}

fn server_error() -> Response {
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [(CONTENT_TYPE, "text/html; charset=utf-8")],
        "<!doctype html><html><head><title>500 · Internal Server Error</title></head>\
         <body><h1>500 · Internal Server Error</h1>\
         <p>The server hit a temporary problem. Try again.</p></body></html>",
    )
        .into_response()
}

/// Moves an HTML page's whole content down by `offset` pixels (a transform on `body` also moves
/// its absolutely positioned descendants), the way a banner or a redesign moves targets.
async fn shift_layout(resp: Response, offset: u32) -> Response {
    let is_html = resp
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !is_html {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_REWRITE_BYTES).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let html = String::from_utf8_lossy(&bytes);
    let style = format!("<style>body{{transform:translateY({offset}px)}}</style>");
    let shifted = match html.find("</head>") {
        Some(i) => format!(
            "{}{style}{}",
            html.get(..i).unwrap_or(""),
            html.get(i..).unwrap_or("")
        ),
        None => format!("{style}{html}"),
    };
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(shifted))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn plans(c: FaultConfig, paths: &[&str]) -> Vec<Plan> {
        let f = Faults::new(c);
        paths
            .iter()
            .enumerate()
            .map(|(i, p)| f.plan(i as u64 + 1, p))
            .collect()
    }

    #[test]
    fn no_faults_by_default() {
        let ps = plans(FaultConfig::default(), &["/a", "/b", "/c"]);
        assert!(ps.iter().all(|p| *p
            == Plan {
                delay: Duration::ZERO,
                hang: false,
                expire: false,
                error: false,
                offset: 0
            }));
        assert!(FaultConfig::default().is_none());
    }

    #[test]
    fn error_first_and_every_count_matching_requests_only() {
        let c = FaultConfig {
            error_first: 1,
            error_every: 3,
            error_paths: vec!["/runs/".into()],
            ..FaultConfig::default()
        };
        let ps = plans(
            c,
            &[
                "/login", "/runs/1", "/runs/2", "/other", "/runs/3", "/runs/4",
            ],
        );
        let errors: Vec<bool> = ps.iter().map(|p| p.error).collect();
        // Matching requests are #1 (first), #2, #3 (every 3rd), #4.
        assert_eq!(errors, [false, true, false, false, true, false]);
    }

    #[test]
    fn seeded_draws_repeat_exactly_and_differ_by_seed() {
        let c = |seed| FaultConfig {
            seed,
            error_percent: 50,
            layout_variants: true,
            ..FaultConfig::default()
        };
        let paths = ["/x"; 64];
        let a: Vec<(bool, u32)> = plans(c(7), &paths)
            .iter()
            .map(|p| (p.error, p.offset))
            .collect();
        let b: Vec<(bool, u32)> = plans(c(7), &paths)
            .iter()
            .map(|p| (p.error, p.offset))
            .collect();
        let d: Vec<(bool, u32)> = plans(c(8), &paths)
            .iter()
            .map(|p| (p.error, p.offset))
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, d);
        let errors = a.iter().filter(|(e, _)| *e).count();
        assert!((16..=48).contains(&errors), "{errors} of 64 at 50%");
        for off in LAYOUT_OFFSETS {
            assert!(
                a.iter().any(|(_, o)| *o == off),
                "variant {off} never drawn"
            );
        }
    }

    #[test]
    fn sessions_expire_once_at_the_chosen_point() {
        let c = FaultConfig {
            expire_session_after: 2,
            expire_session_on: vec!["/runs/RUN-78432".into()],
            ..FaultConfig::default()
        };
        let ps = plans(c, &["/a", "/b", "/runs/RUN-78432", "/runs/RUN-78432"]);
        let expired: Vec<bool> = ps.iter().map(|p| p.expire).collect();
        assert_eq!(expired, [false, true, true, false]);
    }

    #[test]
    fn hang_and_slow_apply_by_prefix_and_to_all() {
        let c = FaultConfig {
            slow_ms: 25,
            hang_paths: vec!["/runs/RUN-".into()],
            ..FaultConfig::default()
        };
        let ps = plans(c, &["/runs", "/runs/RUN-1"]);
        assert!(!ps[0].hang && ps[1].hang);
        assert!(ps.iter().all(|p| p.delay == Duration::from_millis(25)));
    }

    #[tokio::test]
    async fn the_middleware_answers_500_then_serves_and_shifts_pages() {
        use crate::test_support::*;
        let t = portal();
        t.state.set_faults(FaultConfig {
            error_first: 1,
            error_paths: vec!["/incidents".into()],
            layout_variants: true,
            seed: 3,
            ..FaultConfig::default()
        });
        let r = t.send(http_get("incidents.example", "/incidents")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(r.body.contains("500"));
        let mut shifted = 0;
        for _ in 0..8 {
            let r = t.send(http_get("incidents.example", "/incidents")).await;
            assert_eq!(r.status, StatusCode::OK);
            assert!(r.body.contains("Payment refunds failing in CI"));
            if r.body.contains("translateY(") {
                shifted += 1;
            }
        }
        assert!(shifted > 0, "no layout variant in 8 pages");
        // The system of record is never faulted.
        t.state.set_faults(FaultConfig {
            error_every: 1,
            ..FaultConfig::default()
        });
        assert_eq!(
            t.sor_get("/_sor/incidents").await.as_array().unwrap().len(),
            2
        );
        let r = t.send(http_get("incidents.example", "/incidents")).await;
        assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    }

    #[tokio::test]
    async fn an_expired_session_sends_the_next_page_to_the_login() {
        use crate::test_support::*;
        let t = portal();
        let cookie = t.login().await;
        t.state.set_faults(FaultConfig {
            expire_session_on: vec!["/runs/RUN-78432".into()],
            ..FaultConfig::default()
        });
        let r = t
            .send(with_cookie(http_get("ci.example", "/runs"), &cookie))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        let r = t
            .send(with_cookie(
                http_get("ci.example", "/runs/RUN-78432"),
                &cookie,
            ))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        // Signing in again works, and the point does not fire twice.
        let cookie = t.login().await;
        let r = t
            .send(with_cookie(
                http_get("ci.example", "/runs/RUN-78432"),
                &cookie,
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK);
    }
}
