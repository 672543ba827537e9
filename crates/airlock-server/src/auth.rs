//! Who is asking, and may they: sessions, bearer tokens, roles, CSRF and origin checks.
//!
//! Handlers never look at cookies or headers themselves. They take [`Authed<R>`] (a reader with
//! at least role `R`) or, for anything that changes state, [`Mutation<R, T>`], which also
//! checks that the request comes from this site (`Origin`/`Sec-Fetch-Site`) and, for cookie
//! sessions, carries the session's synchronizer CSRF token. A handler written with either
//! cannot run unauthenticated, and a state-changing handler cannot skip the CSRF check.
//!
//! Sessions live in this process's memory (a restart logs everyone out), keyed by the SHA-256 of
//! the cookie value. The role is re-read from `review.db` on every request, so demoting or
//! removing a reviewer takes effect at once. Bearer tokens (`Authorization: Bearer alk_…`) are
//! for scripts: a browser never sends them on its own, so they need no CSRF token.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::header::{
    ACCEPT, AUTHORIZATION, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, SET_COOKIE,
    WWW_AUTHENTICATE,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use airlock_review::{constant_time_eq, random_token, Principal, ReviewError, Role};

use crate::html::{esc, CSS};
use crate::{blocking, ServerState};

/// Cookie holding the session id.
pub const SESSION_COOKIE: &str = "airlock_session";
/// Cookie holding the login form's CSRF token (before there is a session).
pub const LOGIN_COOKIE: &str = "airlock_login";
/// Form field (or `x-csrf-token` header) carrying the CSRF token.
pub const CSRF_FIELD: &str = "csrf";
/// Largest form or JSON body accepted.
pub const MAX_FORM_BYTES: usize = 64 * 1024;

/// A minimum role, as a type, so the requirement is visible in a handler's signature.
pub trait Need: Send + Sync + 'static {
    const MIN: Role;
}

/// Any authenticated reviewer (viewer and up).
pub struct AnyRole;
impl Need for AnyRole {
    const MIN: Role = Role::Viewer;
}

/// Reviewers and operators: may approve and deny.
pub struct CanDecide;
impl Need for CanDecide {
    const MIN: Role = Role::Reviewer;
}

/// Operators: may stop runs and manage reviewers.
pub struct CanOperate;
impl Need for CanOperate {
    const MIN: Role = Role::Operator;
}

/// How the request authenticated.
#[derive(Debug, Clone)]
pub enum Via {
    /// A browser session: `key` identifies it, `csrf` must accompany every change.
    Session { key: String, csrf: String },
    /// `Authorization: Bearer …`.
    Token,
}

/// An authenticated principal with at least role `R`.
pub struct Authed<R: Need = AnyRole> {
    pub who: Principal,
    pub via: Via,
    _need: PhantomData<R>,
}

impl<R: Need> Authed<R> {
    /// The CSRF token to put in forms (empty for token clients, which do not need one).
    pub fn csrf(&self) -> &str {
        match &self.via {
            Via::Session { csrf, .. } => csrf,
            Via::Token => "",
        }
    }
}

/// Why a request was turned away before reaching its handler.
#[derive(Debug)]
pub enum Rejection {
    /// Not logged in, from a browser: go to the login page.
    Login { next: String },
    /// Not authenticated (API, SSE, or a non-GET request).
    Unauthorized,
    /// A form posted from a browser tab whose session has ended (signed out in another tab,
    /// expired, or the server restarted).
    SignedOut,
    /// Authenticated, but the role is too low.
    Forbidden { who: String, role: Role, need: Role },
    /// The request came from another site.
    CrossOrigin,
    /// The CSRF token is missing or wrong.
    Csrf,
    /// The body could not be read or parsed.
    BadRequest(String),
    /// The review database failed.
    Unavailable,
}

impl IntoResponse for Rejection {
    fn into_response(self) -> Response {
        match self {
            Rejection::Login { next } => (
                StatusCode::SEE_OTHER,
                [(LOCATION, format!("/login?next={}", pct(&next)))],
            )
                .into_response(),
            Rejection::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                [(WWW_AUTHENTICATE, r#"Bearer realm="airlock""#)],
                "authentication required: log in at /login or send `Authorization: Bearer <token>`",
            )
                .into_response(),
            Rejection::SignedOut => plain_error(
                StatusCode::UNAUTHORIZED,
                "you are not signed in (you signed out in another tab, or your session ended): \
                 nothing was changed. Sign in again and retry.",
            ),
            Rejection::Forbidden { who, role, need } => plain_error(
                StatusCode::FORBIDDEN,
                &format!("`{who}` has role {role}; this needs role {need} or higher"),
            ),
            Rejection::CrossOrigin => plain_error(
                StatusCode::FORBIDDEN,
                "cross-origin request refused: state changes must come from this site",
            ),
            Rejection::Csrf => plain_error(
                StatusCode::FORBIDDEN,
                "this page is out of date (you signed in again in another tab, or it was open \
                 too long): its CSRF token is no longer valid and nothing was changed. Reload \
                 the page and try again.",
            ),
            Rejection::BadRequest(m) => plain_error(StatusCode::BAD_REQUEST, &m),
            Rejection::Unavailable => plain_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the review database is unavailable",
            ),
        }
    }
}

/// A small self-contained error page (no layout: the user may not be known).
pub fn plain_error(status: StatusCode, message: &str) -> Response {
    let body = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{code} · Airlock</title><style>{CSS}</style></head><body><main><div class="card"><h1>{code}</h1><p>{msg}</p><p><a href="/">Back to Airlock</a></p></div></main></body></html>"#,
        code = status.as_u16(),
        msg = esc(message)
    );
    (status, Html(body)).into_response()
}

impl<R: Need> FromRequestParts<ServerState> for Authed<R> {
    type Rejection = Rejection;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &ServerState,
    ) -> Result<Self, Self::Rejection> {
        let (who, via) = authenticate(parts, state).await?;
        if who.is_agent() || who.role() < R::MIN {
            return Err(Rejection::Forbidden {
                who: who.name().to_string(),
                role: who.role(),
                need: R::MIN,
            });
        }
        Ok(Authed {
            who,
            via,
            _need: PhantomData,
        })
    }
}

async fn authenticate(parts: &Parts, state: &ServerState) -> Result<(Principal, Via), Rejection> {
    if let Some(token) = bearer(&parts.headers) {
        let review = state.review();
        let found = blocking(move || review.authenticate_token(&token))
            .await
            .map_err(|_| Rejection::Unavailable)?;
        return match found {
            Ok(p) => Ok((p, Via::Token)),
            Err(ReviewError::BadCredentials) => Err(Rejection::Unauthorized),
            Err(_) => Err(Rejection::Unavailable),
        };
    }
    let Some((key, name, csrf)) =
        cookie(&parts.headers, SESSION_COOKIE).and_then(|v| state.sessions().get(&v))
    else {
        return Err(unauthenticated(parts));
    };
    let review = state.review();
    let current = blocking(move || review.principal(&name))
        .await
        .map_err(|_| Rejection::Unavailable)?
        .map_err(|_| Rejection::Unavailable)?;
    match current {
        Some(p) => Ok((p, Via::Session { key, csrf })),
        None => {
            // The reviewer was removed: the session dies with them.
            state.sessions().remove_key(&key);
            Err(unauthenticated(parts))
        }
    }
}

fn unauthenticated(parts: &Parts) -> Rejection {
    let wants_html = parts
        .headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let page = wants_html && !parts.uri.path().starts_with("/api/");
    if page && parts.method == Method::GET {
        let next = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        Rejection::Login { next }
    } else if page {
        Rejection::SignedOut
    } else {
        Rejection::Unauthorized
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = v.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// The value of a cookie in the request.
pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

/// Refuses requests another site made the browser send.
///
/// `Sec-Fetch-Site` is authoritative when present: browsers set it themselves and no page can
/// forge or remove it, so only `same-origin` (or `none`: the user typed the address) passes.
/// It is not always there (Chromium sends it only to HTTPS and loopback origins), so `Origin`
/// is checked as well and must be this server's own origin. `Origin: null` is what Chromium
/// sends for a same-origin form when the page's referrer policy is `no-referrer`, but also for
/// forms in sandboxed frames and on other sites: it passes only alongside
/// `Sec-Fetch-Site: same-origin`, never on its own. Clients that send neither header are not
/// browsers and are held to the CSRF token or a bearer token instead.
pub fn same_origin(headers: &HeaderMap) -> Result<(), Rejection> {
    let site = match headers.get("sec-fetch-site") {
        None => None,
        Some(v) => match v.to_str() {
            Ok(s @ ("same-origin" | "none")) => Some(s),
            _ => return Err(Rejection::CrossOrigin),
        },
    };
    let Some(origin) = headers.get(ORIGIN) else {
        return Ok(());
    };
    let origin = origin.to_str().map_err(|_| Rejection::CrossOrigin)?;
    if origin == "null" {
        return match site {
            Some("same-origin") => Ok(()),
            _ => Err(Rejection::CrossOrigin),
        };
    }
    let host = headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .ok_or(Rejection::CrossOrigin)?;
    let own = [format!("http://{host}"), format!("https://{host}")];
    if own.iter().any(|o| o.eq_ignore_ascii_case(origin)) {
        Ok(())
    } else {
        Err(Rejection::CrossOrigin)
    }
}

/// An authenticated, same-origin, CSRF-checked request that changes state, with its input
/// parsed from a form (`application/x-www-form-urlencoded`) or JSON body.
pub struct Mutation<R: Need, T> {
    pub who: Principal,
    pub via: Via,
    pub input: T,
    _need: PhantomData<R>,
}

impl<R: Need, T> Mutation<R, T> {
    /// The authenticated principal (for rendering a page in response) and the input.
    pub fn split(self) -> (Authed<R>, T) {
        (
            Authed {
                who: self.who,
                via: self.via,
                _need: PhantomData,
            },
            self.input,
        )
    }
}

#[derive(Deserialize)]
struct CsrfField {
    csrf: Option<String>,
}

impl<R: Need, T: DeserializeOwned + Send> FromRequest<ServerState> for Mutation<R, T> {
    type Rejection = Rejection;

    async fn from_request(req: Request, state: &ServerState) -> Result<Self, Self::Rejection> {
        let (mut parts, body) = req.into_parts();
        same_origin(&parts.headers)?;
        let authed = Authed::<R>::from_request_parts(&mut parts, state).await?;
        let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
            .await
            .map_err(|_| Rejection::BadRequest("the request body is too large".into()))?;
        let ctype = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let (input, field): (T, Option<String>) = if ctype.starts_with("application/json") {
            let input = serde_json::from_slice(&bytes)
                .map_err(|e| Rejection::BadRequest(format!("invalid JSON body: {e}")))?;
            let field = serde_json::from_slice::<CsrfField>(&bytes)
                .ok()
                .and_then(|c| c.csrf);
            (input, field)
        } else if ctype.starts_with("application/x-www-form-urlencoded") {
            let input = parse_form::<T>(&bytes).await?;
            let field = parse_form::<CsrfField>(&bytes)
                .await
                .ok()
                .and_then(|c| c.csrf);
            (input, field)
        } else {
            return Err(Rejection::BadRequest(
                "send a form (application/x-www-form-urlencoded) or JSON (application/json)".into(),
            ));
        };
        if let Via::Session { csrf, .. } = &authed.via {
            let given = parts
                .headers
                .get("x-csrf-token")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
                .or(field)
                .unwrap_or_default();
            if !constant_time_eq(given.as_bytes(), csrf.as_bytes()) {
                return Err(Rejection::Csrf);
            }
        }
        Ok(Mutation {
            who: authed.who,
            via: authed.via,
            input,
            _need: PhantomData,
        })
    }
}

async fn parse_form<T: DeserializeOwned>(bytes: &axum::body::Bytes) -> Result<T, Rejection> {
    let req = Request::builder()
        .method(Method::POST)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(bytes.clone()))
        .map_err(|_| Rejection::BadRequest("unreadable form".into()))?;
    Form::<T>::from_request(req, &())
        .await
        .map(|Form(t)| t)
        .map_err(|e| Rejection::BadRequest(format!("invalid form: {}", e.body_text())))
}

// ---- sessions ----------------------------------------------------------------------------

struct Session {
    reviewer: String,
    csrf: String,
    expires: Instant,
}

/// Browser sessions of this server process.
pub struct Sessions {
    map: Mutex<HashMap<String, Session>>,
    ttl: Duration,
}

fn key_of(cookie_value: &str) -> String {
    hex::encode(Sha256::digest(cookie_value.as_bytes()))
}

impl Sessions {
    pub fn new(ttl: Duration) -> Sessions {
        Sessions {
            map: Mutex::new(HashMap::new()),
            ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Starts a session; returns the cookie value (only its hash is kept).
    pub fn create(&self, reviewer: &str) -> Result<String, ReviewError> {
        let id = random_token(32)?;
        let csrf = random_token(32)?;
        let now = Instant::now();
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        map.retain(|_, s| s.expires > now);
        map.insert(
            key_of(&id),
            Session {
                reviewer: reviewer.to_string(),
                csrf,
                expires: now + self.ttl,
            },
        );
        Ok(id)
    }

    /// (key, reviewer, csrf) of a live session.
    fn get(&self, cookie_value: &str) -> Option<(String, String, String)> {
        let key = key_of(cookie_value);
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        match map.get(&key) {
            Some(s) if s.expires > Instant::now() => {
                Some((key, s.reviewer.clone(), s.csrf.clone()))
            }
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn remove_key(&self, key: &str) {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(key);
    }
}

/// `Set-Cookie` for a session (or, with an empty value and `max_age` 0, its removal).
pub fn session_cookie(value: &str, max_age: Duration, secure: bool) -> String {
    format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{}",
        max_age.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

fn login_cookie(value: &str, max_age: u64, secure: bool) -> String {
    format!(
        "{LOGIN_COOKIE}={value}; Path=/login; HttpOnly; SameSite=Strict; Max-Age={max_age}{}",
        if secure { "; Secure" } else { "" }
    )
}

// ---- host check (DNS rebinding) ----------------------------------------------------------

/// Refuses requests whose `Host` is not one this server answers to. A page on another site
/// that rebinds its name to 127.0.0.1 would otherwise be "same-origin" with this server.
pub async fn check_host(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let allowed = &state.config().allowed_hosts;
    if !allowed.is_empty() {
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or("");
        if !allowed.iter().any(|a| a.eq_ignore_ascii_case(host)) {
            return plain_error(
                StatusCode::MISDIRECTED_REQUEST,
                "this server does not answer to that host name",
            );
        }
    }
    next.run(req).await
}

/// Headers every response gets unless it set its own.
pub async fn security_headers(req: Request, next: Next) -> Response {
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    let defaults = [
        (
            "content-security-policy",
            "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'; \
             script-src 'self'; connect-src 'self'; form-action 'self'; \
             frame-ancestors 'none'; base-uri 'none'",
        ),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        // Not `no-referrer`: under it Chromium sends `Origin: null` on this site's own form
        // posts, which the origin check cannot tell from a sandboxed or foreign form. With
        // `same-origin`, this site's requests carry their real origin and other sites still
        // learn nothing (not even that the link came from here).
        ("referrer-policy", "same-origin"),
        ("cross-origin-opener-policy", "same-origin"),
        ("cross-origin-resource-policy", "same-origin"),
        ("cache-control", "no-store"),
    ];
    for (name, value) in defaults {
        if !h.contains_key(name) {
            h.insert(name, HeaderValue::from_static(value));
        }
    }
    res
}

// ---- login and logout --------------------------------------------------------------------

#[derive(Deserialize)]
pub struct LoginQuery {
    next: Option<String>,
}

#[derive(Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    csrf: String,
    next: Option<String>,
}

/// Only local paths: `/runs`, never `//evil.example` or `https://…`.
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && !n.chars().any(char::is_control) =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

pub async fn login_page(State(state): State<ServerState>, Query(q): Query<LoginQuery>) -> Response {
    render_login(&state, q.next.as_deref(), None, StatusCode::OK)
}

fn render_login(
    state: &ServerState,
    next: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let Ok(token) = random_token(32) else {
        return Rejection::Unavailable.into_response();
    };
    let next = safe_next(next);
    let error = error
        .map(|e| format!(r#"<div class="banner bad">{}</div>"#, esc(e)))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>Sign in · Airlock</title><style>{CSS}</style></head><body><header class="top"><span class="brand">AIRLOCK</span><span>review</span></header><main style="max-width:420px"><div class="card"><h1>Sign in</h1>{error}<form method="post" action="/login" class="inline"><input type="hidden" name="csrf" value="{token}"><input type="hidden" name="next" value="{next}"><p><label>Name<br><input type="text" name="name" autocomplete="username" required autofocus></label></p><p><label>Password<br><input type="password" name="password" autocomplete="current-password" required></label></p><div class="row"><button class="btn approve" type="submit">Sign in</button></div></form><p class="muted small">Accounts are managed with <code>airlock reviewers add NAME --role ROLE</code>.</p></div></main></body></html>"#,
        token = esc(&token),
        next = esc(&next),
    );
    let mut res = (status, Html(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&login_cookie(&token, 600, state.config().secure_cookies))
    {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

pub async fn login_submit(State(state): State<ServerState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if let Err(r) = same_origin(&parts.headers) {
        return r.into_response();
    }
    let Ok(bytes) = axum::body::to_bytes(body, MAX_FORM_BYTES).await else {
        return Rejection::BadRequest("the request body is too large".into()).into_response();
    };
    let form = match parse_form::<LoginForm>(&bytes).await {
        Ok(f) => f,
        Err(r) => return r.into_response(),
    };
    // Login CSRF: the form's token must match the cookie the login page set (double submit).
    let expected = cookie(&parts.headers, LOGIN_COOKIE).unwrap_or_default();
    if expected.is_empty() || !constant_time_eq(expected.as_bytes(), form.csrf.as_bytes()) {
        return Rejection::Csrf.into_response();
    }
    let review = state.review();
    let name = form.name.trim().to_string();
    let password = form.password;
    let checked = blocking(move || review.authenticate_password(&name, &password)).await;
    let who = match checked {
        Ok(Ok(p)) => p,
        Ok(Err(ReviewError::BadCredentials)) => {
            tracing::info!(name = %form.name.trim(), "failed login");
            return render_login(
                &state,
                form.next.as_deref(),
                Some("invalid name or password"),
                StatusCode::UNAUTHORIZED,
            );
        }
        _ => return Rejection::Unavailable.into_response(),
    };
    let Ok(session) = state.sessions().create(who.name()) else {
        return Rejection::Unavailable.into_response();
    };
    tracing::info!(reviewer = %who.name(), role = %who.role(), "login");
    let secure = state.config().secure_cookies;
    let mut res = (
        StatusCode::SEE_OTHER,
        [(LOCATION, safe_next(form.next.as_deref()))],
    )
        .into_response();
    for c in [
        session_cookie(&session, state.sessions().ttl(), secure),
        login_cookie("", 0, secure),
    ] {
        if let Ok(v) = HeaderValue::from_str(&c) {
            res.headers_mut().append(SET_COOKIE, v);
        }
    }
    res
}

#[derive(Deserialize)]
pub struct Empty {}

pub async fn logout(State(state): State<ServerState>, m: Mutation<AnyRole, Empty>) -> Response {
    if let Via::Session { key, .. } = &m.via {
        state.sessions().remove_key(key);
    }
    let mut res = (StatusCode::SEE_OTHER, [(LOCATION, "/login")]).into_response();
    if let Ok(v) = HeaderValue::from_str(&session_cookie(
        "",
        Duration::ZERO,
        state.config().secure_cookies,
    )) {
        res.headers_mut().append(SET_COOKIE, v);
    }
    res
}

/// Percent-encodes everything but unreserved characters and `/`.
pub fn pct(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    // The header sets below are what Chromium 156 sent to a local echo server (Playwright,
    // headless, `/usr/bin/chromium`), trimmed to the headers `same_origin` reads plus the
    // `Sec-Fetch-*` siblings that came with them. `Host` is the server's; the attacker's page
    // was served from `localhost:7878`, another site than `127.0.0.1:7878`.

    const HOST_7878: (&str, &str) = ("host", "127.0.0.1:7878");

    fn chromium(origin: &str, site: &str, dest: &str) -> HeaderMap {
        headers(&[
            HOST_7878,
            ("origin", origin),
            ("sec-fetch-site", site),
            ("sec-fetch-mode", "navigate"),
            ("sec-fetch-user", "?1"),
            ("sec-fetch-dest", dest),
        ])
    }

    #[test]
    fn a_form_on_this_site_passes_under_the_served_referrer_policy() {
        // `Referrer-Policy: same-origin`: the real origin, and a referer.
        let mut h = chromium("http://127.0.0.1:7878", "same-origin", "document");
        h.append(
            "referer",
            HeaderValue::from_static("http://127.0.0.1:7878/approvals"),
        );
        assert!(same_origin(&h).is_ok());
    }

    #[test]
    fn a_form_on_this_site_passes_even_under_no_referrer() {
        // Under `no-referrer` Chromium says `Origin: null` for its own site's form; the
        // unforgeable `Sec-Fetch-Site` vouches for it.
        assert!(same_origin(&chromium("null", "same-origin", "document")).is_ok());
    }

    #[test]
    fn a_script_fetch_from_this_site_passes() {
        let h = headers(&[
            HOST_7878,
            ("origin", "http://127.0.0.1:7878"),
            ("sec-fetch-site", "same-origin"),
            ("sec-fetch-mode", "cors"),
            ("sec-fetch-dest", "empty"),
        ]);
        assert!(same_origin(&h).is_ok());
    }

    #[test]
    fn a_form_on_another_site_is_refused() {
        // What Chromium sent from `http://localhost:7878/evil`, under either referrer policy.
        assert!(same_origin(&chromium("null", "cross-site", "document")).is_err());
        // A form in a sandboxed frame on this very host.
        assert!(same_origin(&chromium("null", "cross-site", "iframe")).is_err());
        // Another site that still names itself.
        assert!(same_origin(&chromium("http://evil.example", "cross-site", "document")).is_err());
        // A sibling subdomain is still not this origin.
        assert!(same_origin(&chromium("http://127.0.0.1:7878", "same-site", "document")).is_err());
    }

    #[test]
    fn sec_fetch_site_and_origin_must_agree() {
        assert!(
            same_origin(&chromium("http://evil.example", "same-origin", "document")).is_err(),
            "a foreign Origin is refused whatever Sec-Fetch-Site says"
        );
        assert!(
            same_origin(&chromium("null", "none", "document")).is_err(),
            "null passes only with same-origin"
        );
        assert!(same_origin(&chromium("http://127.0.0.1:7878", "none", "document")).is_ok());
        assert!(same_origin(&headers(&[HOST_7878, ("sec-fetch-site", "bogus")])).is_err());
    }

    #[test]
    fn without_sec_fetch_site_origin_must_be_this_server() {
        // Chromium sends no `Sec-Fetch-*` to a plain-HTTP origin that is not loopback (a
        // reverse proxy without TLS); other browsers may be older.
        let ok = headers(&[
            ("host", "review.internal:8080"),
            ("origin", "http://review.internal:8080"),
        ]);
        assert!(same_origin(&ok).is_ok());
        let ok = headers(&[HOST_7878, ("origin", "HTTP://127.0.0.1:7878")]);
        assert!(
            same_origin(&ok).is_ok(),
            "origins compare case-insensitively"
        );
        let evil = headers(&[HOST_7878, ("origin", "http://evil.example")]);
        assert!(same_origin(&evil).is_err());
        let null = headers(&[HOST_7878, ("origin", "null")]);
        assert!(same_origin(&null).is_err(), "null without Sec-Fetch-Site");
        let no_host = headers(&[("origin", "http://127.0.0.1:7878")]);
        assert!(same_origin(&no_host).is_err());
        assert!(
            same_origin(&headers(&[HOST_7878])).is_ok(),
            "a non-browser client: held to the CSRF or bearer token instead"
        );
    }

    #[test]
    fn cookies_and_bearer_tokens_are_read() {
        let h = headers(&[("cookie", "a=1; airlock_session=abc; b=2")]);
        assert_eq!(cookie(&h, SESSION_COOKIE).as_deref(), Some("abc"));
        assert_eq!(cookie(&h, "c"), None);
        let h = headers(&[("authorization", "Bearer alk_123 ")]);
        assert_eq!(bearer(&h).as_deref(), Some("alk_123"));
        assert_eq!(bearer(&headers(&[("authorization", "Basic x")])), None);
    }

    #[test]
    fn sessions_expire_and_are_keyed_by_hash() {
        let s = Sessions::new(Duration::from_secs(60));
        let id = s.create("alice").unwrap();
        let (key, who, csrf) = s.get(&id).unwrap();
        assert_eq!(who, "alice");
        assert_ne!(key, id);
        assert_eq!(csrf.len(), 64);
        s.remove_key(&key);
        assert!(s.get(&id).is_none());
        let short = Sessions::new(Duration::ZERO);
        let id = short.create("bob").unwrap();
        assert!(short.get(&id).is_none());
    }

    #[test]
    fn login_redirects_stay_on_this_site() {
        assert_eq!(safe_next(Some("/approvals")), "/approvals");
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil")), "/");
        assert_eq!(safe_next(None), "/");
        assert_eq!(pct("/runs?x=1&y"), "/runs%3Fx%3D1%26y");
    }

    #[test]
    fn session_cookies_are_http_only_and_same_site_strict() {
        let c = session_cookie("v", Duration::from_secs(5), false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict"));
        assert!(!c.contains("Secure"));
        assert!(session_cookie("v", Duration::ZERO, true).ends_with("; Secure"));
    }
}
