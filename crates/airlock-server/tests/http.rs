//! The web UI and API through the router, without a socket: authentication, roles, CSRF and
//! origin checks, the approval flow to a waiting run, stop, the live stream, screenshots and
//! the replay route.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use airlock_audit::AuditStore;
use airlock_engine::approval::{ApprovalOutcome, ApprovalRequest, Approver};
use airlock_engine::RunControl;
use airlock_review::{QueueControl, RequestStatus, WebApprover};
use airlock_server::{router, ServerConfig, ServerState};
use axum::body::Body;
use axum::http::header::{
    ACCEPT, CONTENT_TYPE, COOKIE, HOST, LOCATION, ORIGIN, REFERER, SET_COOKIE,
};
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use common::{
    approval_request, finish, home, record_until_approval, Home, NOTE, PASSWORD, RUN, SUMMARY,
};

const HOST_NAME: &str = "airlock.test";
const SELF_ORIGIN: &str = "http://airlock.test";

fn app(h: &Home) -> Router {
    let audit: Arc<dyn AuditStore> = h.audit.clone();
    router(ServerState::new(
        audit,
        Arc::clone(&h.review),
        ServerConfig {
            allowed_hosts: vec![HOST_NAME.into()],
            poll_interval: Duration::from_millis(30),
            ..ServerConfig::default()
        },
    ))
}

fn get(uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method("GET")
        .uri(uri)
        .header(HOST, HOST_NAME)
        .header(ACCEPT, "text/html")
}

fn encode(pairs: &[(&str, &str)]) -> String {
    let enc = |s: &str| -> String {
        s.bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    char::from(b).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

fn post_form(uri: &str) -> axum::http::request::Builder {
    Request::builder()
        .method("POST")
        .uri(uri)
        .header(HOST, HOST_NAME)
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
}

/// A form post as Chromium sends it from one of this site's pages (which are served with
/// `Referrer-Policy: same-origin`): the real origin, the page as referer, `Sec-Fetch-*`.
fn chromium_form(uri: &str, from_page: &str) -> axum::http::request::Builder {
    post_form(uri)
        .header(ORIGIN, SELF_ORIGIN)
        .header(REFERER, format!("{SELF_ORIGIN}{from_page}"))
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-user", "?1")
        .header("sec-fetch-dest", "document")
}

async fn send(app: &Router, req: Request<Body>) -> Response<Body> {
    app.clone().oneshot(req).await.unwrap()
}

async fn text(res: Response<Body>) -> String {
    String::from_utf8(res.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn set_cookie(res: &Response<Body>, name: &str) -> Option<String> {
    res.headers()
        .get_all(SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|c| {
            let (kv, _) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=')?;
            (k == name && !v.is_empty()).then(|| v.to_string())
        })
}

/// The value of the first hidden input named `name`.
fn hidden(body: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = body
        .find(&marker)
        .unwrap_or_else(|| panic!("no {name} field"))
        + marker.len();
    body[start..].split('"').next().unwrap().to_string()
}

/// A signed-in browser: its session cookie and the CSRF token its pages carry.
struct Browser {
    cookie: String,
    csrf: String,
}

async fn login(app: &Router, name: &str) -> Browser {
    let page = send(app, get("/login?next=/runs").body(Body::empty()).unwrap()).await;
    assert_eq!(page.status(), StatusCode::OK);
    let login_cookie = set_cookie(&page, "airlock_login").expect("login cookie");
    let token = hidden(&text(page).await, "csrf");
    let form = encode(&[
        ("name", name),
        ("password", PASSWORD),
        ("csrf", &token),
        ("next", "/runs"),
    ]);
    let res = send(
        app,
        chromium_form("/login", "/login?next=/runs")
            .header(COOKIE, format!("airlock_login={login_cookie}"))
            .body(Body::from(form))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER, "login as {name}");
    assert_eq!(res.headers()[LOCATION], "/runs");
    let raw = res
        .headers()
        .get_all(SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|c| c.starts_with("airlock_session="))
        .unwrap();
    assert!(
        raw.contains("HttpOnly") && raw.contains("SameSite=Strict"),
        "{raw}"
    );
    let cookie = set_cookie(&res, "airlock_session").unwrap();
    let page = send(
        app,
        get("/runs")
            .header(COOKIE, format!("airlock_session={cookie}"))
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let csrf = hidden(&text(page).await, "csrf");
    Browser { cookie, csrf }
}

impl Browser {
    fn get(&self, uri: &str) -> Request<Body> {
        get(uri)
            .header(COOKIE, format!("airlock_session={}", self.cookie))
            .body(Body::empty())
            .unwrap()
    }

    fn post(&self, uri: &str, pairs: &[(&str, &str)]) -> Request<Body> {
        chromium_form(uri, "/approvals")
            .header(COOKIE, format!("airlock_session={}", self.cookie))
            .body(Body::from(encode(pairs)))
            .unwrap()
    }
}

fn request() -> ApprovalRequest {
    serde_json::from_value(approval_request(RUN)).unwrap()
}

/// A run waiting on the queue, as `airlock run --approvals web` would be.
fn waiting_run(h: &Home, ttl: Duration) -> tokio::task::JoinHandle<ApprovalOutcome> {
    let mut approver =
        WebApprover::new(Arc::clone(&h.review), ttl).with_poll_interval(Duration::from_millis(20));
    tokio::spawn(async move { approver.decide(&request()).await })
}

async fn pending_id(h: &Home) -> String {
    for _ in 0..200 {
        if let Some(r) = h.review.pending().unwrap().into_iter().next() {
            return r.id;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("no request reached the queue");
}

#[tokio::test]
async fn unauthenticated_requests_are_sent_to_login_or_refused() {
    let h = home();
    let app = app(&h);
    let res = send(&app, get("/approvals").body(Body::empty()).unwrap()).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], "/login?next=/approvals");
    for uri in ["/api/approvals", "/runs/x/stream"] {
        let res = send(
            &app,
            Request::get(uri)
                .header(HOST, HOST_NAME)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{uri}");
    }
    let res = send(
        &app,
        post_form("/approvals/apr-1")
            .body(Body::from("decision=approve&run_id=x"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    // The same post from a browser tab whose session ended gets a page that says so.
    let res = send(
        &app,
        chromium_form("/approvals/apr-1", "/approvals")
            .header(ACCEPT, "text/html,application/xhtml+xml")
            .header(COOKIE, "airlock_session=ended")
            .body(Body::from("decision=approve&run_id=x"))
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let page = text(res).await;
    assert!(page.contains("you are not signed in"), "{page}");
    assert!(page.contains("nothing was changed"), "{page}");
    // A forged session cookie is no session.
    let res = send(
        &app,
        get("/runs")
            .header(COOKIE, "airlock_session=0000")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn login_needs_the_right_password_and_its_own_csrf_token() {
    let h = home();
    let app = app(&h);
    let page = send(&app, get("/login").body(Body::empty()).unwrap()).await;
    let cookie = set_cookie(&page, "airlock_login").unwrap();
    let token = hidden(&text(page).await, "csrf");
    let attempt = |password: &str, csrf: &str| {
        post_form("/login")
            .header(COOKIE, format!("airlock_login={cookie}"))
            .body(Body::from(encode(&[
                ("name", "alice"),
                ("password", password),
                ("csrf", csrf),
            ])))
            .unwrap()
    };
    let wrong = send(&app, attempt("not the password", &token)).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(set_cookie(&wrong, "airlock_session").is_none());
    assert!(text(wrong).await.contains("invalid name or password"));
    let forged = send(&app, attempt(PASSWORD, "forged")).await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN, "login CSRF");
    let ok = send(&app, attempt(PASSWORD, &token)).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
    assert_eq!(ok.headers()[LOCATION], "/", "no next: home");
}

#[tokio::test]
async fn a_reviewer_sees_the_request_approves_it_and_the_run_continues() {
    let h = home();
    let rec = record_until_approval(&h.audit, RUN, "INC-2048 · Acme Incidents");
    let app = app(&h);
    let run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;

    let alice = login(&app, "alice").await;
    let page = text(send(&app, alice.get("/approvals")).await).await;
    // What the reviewer needs at a glance.
    assert!(page.contains(&format!(r#"id="{id}""#)));
    assert!(
        page.contains("Click button &#39;Submit note&#39; on incidents.example"),
        "summary"
    );
    assert!(page.contains(NOTE), "field values");
    assert!(page.contains("builtin.risk.submit"), "rule ids");
    assert!(page.contains("step 1 of at most 30"));
    assert!(
        page.contains(&format!("/runs/{RUN}/shots/{}", rec.before.as_str())),
        "screenshot"
    );
    assert!(
        page.contains(r#"class="marker" data-x="857.5" data-y="497""#),
        "target marked"
    );
    assert!(page.contains(r#"value="approve""#) && page.contains(r#"value="deny""#));

    let res = send(
        &app,
        alice.post(
            &format!("/approvals/{id}"),
            &[
                ("csrf", &alice.csrf),
                ("run_id", RUN),
                ("decision", "approve"),
                ("reason", "the note is right"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(res.headers()[LOCATION], format!("/approvals?done={id}"));
    let outcome = tokio::time::timeout(Duration::from_secs(10), run)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        outcome,
        ApprovalOutcome::Approved {
            by: "alice".into(),
            reason: "the note is right".into()
        }
    );
    let after = text(send(&app, alice.get(&format!("/approvals?done={id}"))).await).await;
    assert!(after.contains("Nothing is waiting for approval"));
    assert!(after.contains("Approved"));
}

#[tokio::test]
async fn the_card_shows_what_the_page_says_and_what_airlock_read() {
    let h = home();
    record_until_approval(&h.audit, RUN, "INC-2048 · Acme Incidents");
    let app = app(&h);
    let mut req = approval_request(RUN);
    req["read_as"] =
        "the page says 'Del⟨U+200B⟩ete project'; Airlock read it as 'Delete project'".into();
    let req: ApprovalRequest = serde_json::from_value(req).unwrap();
    let mut approver = WebApprover::new(Arc::clone(&h.review), Duration::from_secs(30))
        .with_poll_interval(Duration::from_millis(20));
    let run = tokio::spawn(async move { approver.decide(&req).await });
    pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let page = text(send(&app, alice.get("/approvals")).await).await;
    assert!(
        page.contains("<dt>Read as</dt><dd class=\"read-as\">the page says &#39;Del⟨U+200B⟩ete project&#39;; Airlock read it as &#39;Delete project&#39;</dd>"),
        "{page}"
    );
    run.abort();
}

#[tokio::test]
async fn a_post_without_a_valid_csrf_token_is_refused() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let uri = format!("/approvals/{id}");
    let missing = send(
        &app,
        alice.post(&uri, &[("run_id", RUN), ("decision", "approve")]),
    )
    .await;
    assert_eq!(missing.status(), StatusCode::FORBIDDEN);
    let forged = send(
        &app,
        alice.post(
            &uri,
            &[
                ("csrf", "0123abcd"),
                ("run_id", RUN),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert!(text(forged).await.contains("CSRF"));
    // Another reviewer's token does not fit this session.
    let olga = login(&app, "olga").await;
    let swapped = send(
        &app,
        alice.post(
            &uri,
            &[
                ("csrf", &olga.csrf),
                ("run_id", RUN),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(swapped.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        h.review.get(&id).unwrap().unwrap().status,
        RequestStatus::Pending
    );
}

#[tokio::test]
async fn a_cross_origin_post_is_refused_even_with_the_token() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let body = encode(&[
        ("csrf", &alice.csrf),
        ("run_id", RUN),
        ("decision", "approve"),
    ]);
    let from = |origin: Option<&str>, site: Option<&str>| {
        let mut b = post_form(&format!("/approvals/{id}"))
            .header(COOKIE, format!("airlock_session={}", alice.cookie));
        if let Some(o) = origin {
            b = b.header(ORIGIN, o);
        }
        if let Some(s) = site {
            b = b.header("sec-fetch-site", s);
        }
        b.body(Body::from(body.clone())).unwrap()
    };
    for (origin, site) in [
        (Some("http://evil.example"), None),
        (Some("null"), None),
        (None, Some("cross-site")),
        (Some(SELF_ORIGIN), Some("same-site")),
        // What Chromium sends for a form on another site or in a sandboxed frame.
        (Some("null"), Some("cross-site")),
        (Some("null"), Some("none")),
        (Some("http://evil.example"), Some("same-origin")),
    ] {
        let res = send(&app, from(origin, site)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{origin:?} {site:?}");
    }
    assert!(h.review.get(&id).unwrap().unwrap().is_open());
    let ok = send(&app, from(Some(SELF_ORIGIN), Some("same-origin"))).await;
    assert_eq!(ok.status(), StatusCode::SEE_OTHER);
}

/// A page served with `Referrer-Policy: no-referrer` (an older build of this UI, a proxy that
/// rewrites headers) makes Chromium send `Origin: null` on its own forms; `Sec-Fetch-Site`
/// still vouches for them.
#[tokio::test]
async fn a_same_origin_form_with_origin_null_is_accepted() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let req = post_form(&format!("/approvals/{id}"))
        .header(ORIGIN, "null")
        .header("sec-fetch-site", "same-origin")
        .header("sec-fetch-mode", "navigate")
        .header("sec-fetch-user", "?1")
        .header("sec-fetch-dest", "document")
        .header(COOKIE, format!("airlock_session={}", alice.cookie))
        .body(Body::from(encode(&[
            ("csrf", &alice.csrf),
            ("run_id", RUN),
            ("decision", "approve"),
        ])))
        .unwrap();
    let res = send(&app, req).await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        h.review.get(&id).unwrap().unwrap().status,
        RequestStatus::Approved
    );
}

#[tokio::test]
async fn pages_send_their_origin_only_to_this_site() {
    let h = home();
    let app = app(&h);
    let alice = login(&app, "alice").await;
    let login_page = send(&app, get("/login").body(Body::empty()).unwrap()).await;
    let runs = send(&app, alice.get("/runs")).await;
    for res in [login_page, runs] {
        assert_eq!(res.headers()["referrer-policy"], "same-origin");
    }
}

#[tokio::test]
async fn a_viewer_sees_the_queue_but_cannot_approve() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let vera = login(&app, "vera").await;
    let page = text(send(&app, vera.get("/approvals")).await).await;
    assert!(page.contains(SUMMARY.split('\'').next().unwrap()));
    assert!(
        !page.contains(r#"value="approve""#),
        "no decision form for viewers"
    );
    assert!(page.contains("viewer role"));
    let res = send(
        &app,
        vera.post(
            &format!("/approvals/{id}"),
            &[
                ("csrf", &vera.csrf),
                ("run_id", RUN),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert!(h.review.get(&id).unwrap().unwrap().is_open());
    // Nor stop runs, nor manage reviewers.
    let stop = send(
        &app,
        vera.post(
            &format!("/runs/{RUN}/stop"),
            &[("csrf", &vera.csrf), ("reason", "x")],
        ),
    )
    .await;
    assert_eq!(stop.status(), StatusCode::FORBIDDEN);
    let people = send(&app, vera.get("/reviewers")).await;
    assert_eq!(people.status(), StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn an_approval_naming_another_run_is_refused() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let res = send(
        &app,
        alice.post(
            &format!("/approvals/{id}"),
            &[
                ("csrf", &alice.csrf),
                ("run_id", "run-other"),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert!(text(res).await.contains("belongs to run"));
    assert!(h.review.get(&id).unwrap().unwrap().is_open());
}

#[tokio::test]
async fn a_denial_needs_a_reason_and_reaches_the_run() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let uri = format!("/approvals/{id}");
    let bare = send(
        &app,
        alice.post(
            &uri,
            &[("csrf", &alice.csrf), ("run_id", RUN), ("decision", "deny")],
        ),
    )
    .await;
    assert_eq!(bare.status(), StatusCode::BAD_REQUEST);
    let res = send(
        &app,
        alice.post(
            &uri,
            &[
                ("csrf", &alice.csrf),
                ("run_id", RUN),
                ("decision", "deny"),
                ("reason", "wrong incident"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        run.await.unwrap(),
        ApprovalOutcome::Denied {
            by: "alice".into(),
            reason: "wrong incident".into()
        }
    );
}

#[tokio::test]
async fn scripts_use_bearer_tokens_and_forged_tokens_get_nothing() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let (_, token) = h.review.issue_token("alice", "ci").unwrap();
    let api = |t: &str, uri: &str, body: Option<&str>| {
        let b = Request::builder()
            .uri(uri)
            .header(HOST, HOST_NAME)
            .header("authorization", format!("Bearer {t}"));
        match body {
            Some(json) => b
                .method("POST")
                .header(CONTENT_TYPE, "application/json")
                .body(Body::from(json.to_string()))
                .unwrap(),
            None => b.method("GET").body(Body::empty()).unwrap(),
        }
    };
    let forged = send(&app, api("alk_0000", "/api/approvals", None)).await;
    assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);
    let list = text(send(&app, api(&token, "/api/approvals", None)).await).await;
    let list: serde_json::Value = serde_json::from_str(&list).unwrap();
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["agent"], format!("agent:{RUN}"));
    let body = format!(r#"{{"decision": "approve", "reason": "via api", "run_id": "{RUN}"}}"#);
    let res = send(
        &app,
        api(&token, &format!("/api/approvals/{id}"), Some(&body)),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let done: serde_json::Value = serde_json::from_str(&text(res).await).unwrap();
    assert_eq!(done["status"], "approved");
    assert_eq!(done["decided_by"], "alice");
    assert!(matches!(run.await.unwrap(), ApprovalOutcome::Approved { by, .. } if by == "alice"));
    let again = send(
        &app,
        api(&token, &format!("/api/approvals/{id}"), Some(&body)),
    )
    .await;
    assert_eq!(again.status(), StatusCode::CONFLICT);
    assert!(text(again).await.contains(r#""error""#));
}

#[tokio::test]
async fn an_operator_stops_a_run_and_the_run_learns_who_and_why() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let run = waiting_run(&h, Duration::from_secs(30));
    pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let page = text(send(&app, alice.get(&format!("/runs/{RUN}"))).await).await;
    assert!(!page.contains("Stop run"), "reviewers get no stop button");
    let refused = send(
        &app,
        alice.post(
            &format!("/runs/{RUN}/stop"),
            &[("csrf", &alice.csrf), ("reason", "x")],
        ),
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let olga = login(&app, "olga").await;
    let page = text(send(&app, olga.get(&format!("/runs/{RUN}"))).await).await;
    assert!(page.contains("Stop run"));
    assert!(page.contains("Waiting for approval"));
    let res = send(
        &app,
        olga.post(
            &format!("/runs/{RUN}/stop"),
            &[("csrf", &olga.csrf), ("reason", "wrong incident")],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        QueueControl::new(Arc::clone(&h.review)).stop_requested(RUN),
        Some(("olga".into(), "wrong incident".into()))
    );
    // The waiting step ends as a stop by the operator, not as a denial.
    assert_eq!(
        run.await.unwrap(),
        ApprovalOutcome::Stopped {
            by: "olga".into(),
            reason: "run stopped: wrong incident".into()
        }
    );
    let page = text(send(&app, olga.get(&format!("/runs/{RUN}"))).await).await;
    assert!(page.contains("Stop requested"));
}

/// Reads the body of an endless response until `needle` appears.
async fn read_until(res: Response<Body>, needle: &str) -> String {
    let mut body = res.into_body();
    let mut seen = String::new();
    let read = async {
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.push_str(&String::from_utf8_lossy(&data));
                if seen.contains(needle) {
                    break;
                }
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), read)
        .await
        .expect("stream stalled");
    seen
}

#[tokio::test]
async fn the_live_stream_sends_new_events_and_ends_with_the_seal() {
    let h = home();
    let rec = record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let alice = login(&app, "alice").await;
    let head = h.audit.events(RUN).unwrap().len();

    // From the start: the history so far, screenshot and marker included.
    let res = send(&app, alice.get(&format!("/runs/{RUN}/stream?after=0"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[CONTENT_TYPE], "text/event-stream");
    let seen = read_until(res, "waiting for approval").await;
    assert!(seen.contains("event: item"));
    assert!(seen.contains("event: shot") && seen.contains(rec.before.as_str()));
    assert!(seen.contains("event: marker") && seen.contains("857.5"));

    // Resuming after the last event: only what happens next, as it happens.
    let res = send(&app, alice.get(&format!("/runs/{RUN}/stream?after={head}"))).await;
    let audit = Arc::clone(&h.audit);
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        finish(&audit, RUN, "alice", "t");
    });
    let seen = read_until(res, "event: end").await;
    writer.await.unwrap();
    assert!(
        !seen.contains("waiting for approval"),
        "already-sent events are not repeated"
    );
    assert!(seen.contains("approved by alice"));
    assert!(seen.contains("sealed: succeeded"));

    // A finished run's stream ends by itself.
    let res = send(&app, alice.get(&format!("/runs/{RUN}/stream?after=0"))).await;
    let all = tokio::time::timeout(Duration::from_secs(10), text(res))
        .await
        .unwrap();
    assert!(all.trim_end().ends_with('}'), "ends after the end event");
    assert_eq!(all.matches("event: end").count(), 1);
}

#[tokio::test]
async fn screenshots_are_served_only_for_the_runs_own_observations() {
    let h = home();
    let rec = record_until_approval(&h.audit, RUN, "t");
    let unrelated = h.audit.put_blob(b"{\"secret\": 1}").unwrap();
    let app = app(&h);
    let alice = login(&app, "alice").await;
    let ok = send(
        &app,
        alice.get(&format!("/runs/{RUN}/shots/{}", rec.before.as_str())),
    )
    .await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()[CONTENT_TYPE], "image/png");
    assert_eq!(ok.headers()["x-content-type-options"], "nosniff");
    for blob in [unrelated.as_str(), rec.after.as_str(), "../../airlock.db"] {
        let res = send(&app, alice.get(&format!("/runs/{RUN}/shots/{blob}"))).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{blob}");
    }
}

#[tokio::test]
async fn pages_escape_what_the_page_and_model_wrote() {
    let h = home();
    let evil = r#"<script>alert("title")</script>"#;
    record_until_approval(&h.audit, RUN, evil);
    let app = app(&h);
    let alice = login(&app, "alice").await;
    for uri in [
        format!("/runs/{RUN}"),
        "/approvals".to_string(),
        "/runs".to_string(),
    ] {
        let res = send(&app, alice.get(&uri)).await;
        let csp = res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_string();
        let script_src = csp
            .split(';')
            .map(str::trim)
            .find(|d| d.starts_with("script-src"));
        assert_eq!(
            script_src,
            Some("script-src 'self'"),
            "no inline script may run"
        );
        let page = text(res).await;
        assert!(!page.contains(evil), "{uri} must escape page text");
        let scripts = page.matches("<script").count();
        assert_eq!(scripts, 1, "{uri}: only the UI's own script");
    }
}

#[tokio::test]
async fn the_replay_is_offered_once_the_run_is_sealed() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let vera = login(&app, "vera").await;
    let early = send(&app, vera.get(&format!("/runs/{RUN}/replay"))).await;
    assert_eq!(early.status(), StatusCode::CONFLICT);
    finish(&h.audit, RUN, "alice", "t");
    let res = send(&app, vera.get(&format!("/runs/{RUN}/replay"))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(csp.contains("default-src 'none'") && !csp.contains("script-src"));
    let page = text(res).await;
    assert!(page.contains("Audit chain verified"));
    assert!(page.contains("data:image/png;base64,"));
    let download = send(&app, vera.get(&format!("/runs/{RUN}/replay?download=true"))).await;
    assert!(download.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(&format!("airlock-replay-{RUN}.html")));
}

#[tokio::test]
async fn requests_for_other_host_names_are_refused() {
    let h = home();
    let app = app(&h);
    let res = send(
        &app,
        Request::get("/login")
            .header(HOST, "rebound.evil.example:7878")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(res.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test]
async fn removing_a_reviewer_ends_their_session_and_roles_apply_at_once() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let _run = waiting_run(&h, Duration::from_secs(30));
    let id = pending_id(&h).await;
    let alice = login(&app, "alice").await;
    let olga = login(&app, "olga").await;
    let res = send(
        &app,
        olga.post(
            "/reviewers",
            &[
                ("csrf", &olga.csrf),
                ("action", "role"),
                ("name", "alice"),
                ("role", "viewer"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let demoted = send(
        &app,
        alice.post(
            &format!("/approvals/{id}"),
            &[
                ("csrf", &alice.csrf),
                ("run_id", RUN),
                ("decision", "approve"),
            ],
        ),
    )
    .await;
    assert_eq!(demoted.status(), StatusCode::FORBIDDEN);
    let res = send(
        &app,
        olga.post(
            "/reviewers",
            &[
                ("csrf", &olga.csrf),
                ("action", "remove"),
                ("name", "alice"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let gone = send(&app, alice.get("/runs")).await;
    assert_eq!(
        gone.status(),
        StatusCode::SEE_OTHER,
        "back to the login page"
    );
}

#[tokio::test]
async fn operators_add_reviewers_and_issue_tokens_shown_once() {
    let h = home();
    let app = app(&h);
    let olga = login(&app, "olga").await;
    let res = send(
        &app,
        olga.post(
            "/reviewers",
            &[
                ("csrf", &olga.csrf),
                ("action", "add"),
                ("name", "bob"),
                ("role", "reviewer"),
                ("password", "a long enough password"),
            ],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(h
        .review
        .authenticate_password("bob", "a long enough password")
        .is_ok());
    let page = text(
        send(
            &app,
            olga.post(
                "/reviewers",
                &[
                    ("csrf", &olga.csrf),
                    ("action", "token"),
                    ("name", "bob"),
                    ("label", "ci"),
                ],
            ),
        )
        .await,
    )
    .await;
    let token = page
        .split("<pre>")
        .nth(1)
        .unwrap()
        .split("</pre>")
        .next()
        .unwrap();
    assert_eq!(h.review.authenticate_token(token).unwrap().name(), "bob");
    let listing = text(send(&app, olga.get("/reviewers")).await).await;
    assert!(!listing.contains(token), "a token is shown once");
}

#[tokio::test]
async fn an_operator_releases_a_frozen_run_after_a_stop() {
    let h = home();
    record_until_approval(&h.audit, RUN, "t");
    let app = app(&h);
    let olga = login(&app, "olga").await;
    let control = QueueControl::new(Arc::clone(&h.review));
    let early = send(
        &app,
        olga.post(&format!("/runs/{RUN}/release"), &[("csrf", &olga.csrf)]),
    )
    .await;
    assert_eq!(
        early.status(),
        StatusCode::BAD_REQUEST,
        "nothing to release before a stop"
    );
    let res = send(
        &app,
        olga.post(
            &format!("/runs/{RUN}/stop"),
            &[("csrf", &olga.csrf), ("reason", "inspect it")],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    h.audit
        .append(
            RUN,
            "stop",
            &serde_json::json!({"step": 1, "by": "olga", "reason": "inspect it"}),
            &[],
        )
        .unwrap();
    h.audit
        .append(RUN, "frozen", &serde_json::json!({"freeze_secs": 600}), &[])
        .unwrap();
    let page = text(send(&app, olga.get(&format!("/runs/{RUN}"))).await).await;
    assert!(page.contains("Frozen for inspection"));
    assert!(page.contains("Release and tear down"));
    assert!(!control.release_requested(RUN));
    let res = send(
        &app,
        olga.post(
            &format!("/runs/{RUN}/release"),
            &[("csrf", &olga.csrf), ("reason", "seen enough")],
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    assert!(control.release_requested(RUN));
    let page = text(send(&app, olga.get(&format!("/runs/{RUN}"))).await).await;
    assert!(page.contains("Release requested by olga"));
}
