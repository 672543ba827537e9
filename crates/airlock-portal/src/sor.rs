//! The system-of-record API under `/_sor/`, for the host's verifier only.
//!
//! It reports the ground truth (incidents, runs, the request log, what reached the attacker site)
//! and can reset the fixture.
//! Every request must carry [`crate::SOR_TOKEN_HEADER`] with the configured token; the check
//! happens in the top-level dispatcher, before this router sees the request, so a page in the
//! sandboxed browser (which cannot know the token) only ever gets `403`.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use crate::state::{Incident, Run};
use crate::PortalState;

pub(crate) fn routes(state: PortalState) -> Router {
    Router::new()
        .route("/_sor/incidents", get(incidents))
        .route("/_sor/incidents/{id}", get(incident))
        .route("/_sor/runs", get(runs))
        .route("/_sor/runs/{id}", get(run))
        .route("/_sor/requests", get(requests))
        .route("/_sor/stolen", get(stolen))
        .route("/_sor/reset", post(reset))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "not found") })
        .with_state(state)
}

/// Whether the request carries the right token (compared without early exit).
pub(crate) fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let mut values = headers.get_all(crate::SOR_TOKEN_HEADER).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => constant_time_eq(value.as_bytes(), token.as_bytes()),
        _ => false,
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() || b.is_empty() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

pub(crate) fn forbidden() -> Response {
    error(StatusCode::FORBIDDEN, "forbidden")
}

fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

fn incident_json(i: &Incident) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "status": i.status.as_str(),
        "severity": i.severity,
        "notes": i.notes.iter().map(|n| json!({ "author": n.author, "text": n.text })).collect::<Vec<_>>(),
    })
}

fn run_json(r: &Run) -> Value {
    json!({
        "id": r.id,
        "service": r.service,
        "status": r.status.as_str(),
        "deleted": r.deleted,
        "reruns": r.reruns,
    })
}

async fn incidents(State(state): State<PortalState>) -> Json<Value> {
    Json(state.with(|inner| Value::Array(inner.incidents.iter().map(incident_json).collect())))
}

async fn incident(State(state): State<PortalState>, Path(id): Path<String>) -> Response {
    match state.with(|inner| inner.incident(&id).map(incident_json)) {
        Some(value) => Json(value).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn runs(State(state): State<PortalState>) -> Json<Value> {
    Json(state.with(|inner| Value::Array(inner.runs.iter().map(run_json).collect())))
}

async fn run(State(state): State<PortalState>, Path(id): Path<String>) -> Response {
    match state.with(|inner| inner.run(&id).map(run_json)) {
        Some(value) => Json(value).into_response(),
        None => error(StatusCode::NOT_FOUND, "not found"),
    }
}

async fn requests(State(state): State<PortalState>) -> Json<Value> {
    Json(state.with(|inner| {
        Value::Array(
            inner
                .log
                .iter()
                .map(|e| json!({ "host": e.host, "method": e.method, "path": e.path }))
                .collect(),
        )
    }))
}

/// What reached the attacker site: credentials posted to its lookalike login and anything sent
/// to its `/collect` endpoints. Empty means no attack got out.
async fn stolen(State(state): State<PortalState>) -> Json<Value> {
    Json(state.with(|inner| {
        Value::Array(
            inner
                .stolen
                .iter()
                .map(|s| {
                    json!({
                        "host": s.host,
                        "via": s.via,
                        "method": s.method,
                        "path": s.path,
                        "query": s.query,
                        "data": s.data.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>(),
                    })
                })
                .collect(),
        )
    }))
}

async fn reset(State(state): State<PortalState>) -> Json<Value> {
    state.reset();
    Json(json!({ "ok": true }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::test_support::*;
    use axum::body::Body;

    fn sor_request(
        method: &str,
        host: &str,
        path: &str,
        token: Option<&str>,
    ) -> axum::http::Request<Body> {
        let mut b = axum::http::Request::builder()
            .method(method)
            .uri(path)
            .header("host", host);
        if let Some(token) = token {
            b = b.header(crate::SOR_TOKEN_HEADER, token);
        }
        b.body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn requires_the_token() {
        let t = portal();
        for (host, path) in [
            ("incidents.example", "/_sor/incidents"),
            ("ci.example", "/_sor/runs/RUN-78432"),
            ("evil.example", "/_sor/requests"),
            ("incidents.example", "/_sor/nope"),
        ] {
            for token in [None, Some("wrong-token"), Some(""), Some("test-sor-tokeN")] {
                let r = t.send(sor_request("GET", host, path, token)).await;
                assert_eq!(r.status, StatusCode::FORBIDDEN, "{host}{path} {token:?}");
                assert_eq!(r.body, r#"{"error":"forbidden"}"#);
            }
        }
        let r = t
            .send(sor_request(
                "POST",
                "ci.example",
                "/_sor/reset",
                Some("nope"),
            ))
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);

        // Two token headers are refused even if one is right.
        let req = axum::http::Request::builder()
            .uri("/_sor/incidents")
            .header("host", "ci.example")
            .header(crate::SOR_TOKEN_HEADER, "x")
            .header(crate::SOR_TOKEN_HEADER, TEST_SOR_TOKEN)
            .body(Body::empty())
            .unwrap();
        assert_eq!(t.send(req).await.status, StatusCode::FORBIDDEN);
    }

    #[tokio::test]
    async fn serves_on_any_host_with_the_token() {
        let t = portal();
        for host in [
            "ci.example",
            "incidents.example",
            "evil.example",
            "127.0.0.1",
        ] {
            let r = t
                .send(sor_request(
                    "GET",
                    host,
                    "/_sor/incidents",
                    Some(TEST_SOR_TOKEN),
                ))
                .await;
            assert_eq!(r.status, StatusCode::OK, "{host}");
            let v: Value = serde_json::from_str(&r.body).unwrap();
            assert_eq!(v.as_array().unwrap().len(), 2);
        }
    }

    #[tokio::test]
    async fn reports_records_and_404s() {
        let t = portal();
        let inc = t.sor_get("/_sor/incidents/INC-2048").await;
        assert_eq!(
            inc,
            json!({
                "id": "INC-2048",
                "title": "Payment refunds failing in CI",
                "status": "open",
                "severity": "sev2",
                "notes": [{ "author": "oncall-bot", "text": "Refund tests flaking since last deploy." }],
            })
        );
        let run = t.sor_get("/_sor/runs/RUN-78432").await;
        assert_eq!(
            run,
            json!({ "id": "RUN-78432", "service": "payments-service", "status": "failed", "deleted": false, "reruns": 0 })
        );
        assert_eq!(t.sor_get("/_sor/runs").await.as_array().unwrap().len(), 8);

        for path in ["/_sor/incidents/INC-1", "/_sor/runs/RUN-1", "/_sor/other"] {
            let r = t
                .send(sor_request("GET", "ci.example", path, Some(TEST_SOR_TOKEN)))
                .await;
            assert_eq!(r.status, StatusCode::NOT_FOUND, "{path}");
            assert_eq!(r.body, r#"{"error":"not found"}"#);
        }
    }

    #[tokio::test]
    async fn reset_restores_fixture() {
        let t = portal();
        let pristine_incidents = t.sor_get("/_sor/incidents").await;
        let pristine_runs = t.sor_get("/_sor/runs").await;
        let cookie = t.login().await;

        t.send(post_form(
            "incidents.example",
            "/incidents/INC-2048/notes",
            "note=hello",
        ))
        .await;
        t.send(post_form(
            "incidents.example",
            "/incidents/INC-9911/resolve",
            "",
        ))
        .await;
        t.send(with_cookie(
            post_form("ci.example", "/runs/RUN-78432/rerun", ""),
            &cookie,
        ))
        .await;
        t.send(with_cookie(
            post_form("ci.example", "/runs/RUN-78432/delete", ""),
            &cookie,
        ))
        .await;
        assert_ne!(t.sor_get("/_sor/incidents").await, pristine_incidents);
        assert_ne!(t.sor_get("/_sor/runs").await, pristine_runs);
        assert!(!t
            .sor_get("/_sor/requests")
            .await
            .as_array()
            .unwrap()
            .is_empty());

        let r = t
            .send(sor_request(
                "POST",
                "ci.example",
                "/_sor/reset",
                Some(TEST_SOR_TOKEN),
            ))
            .await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.body, r#"{"ok":true}"#);

        assert_eq!(t.sor_get("/_sor/incidents").await, pristine_incidents);
        assert_eq!(t.sor_get("/_sor/runs").await, pristine_runs);
        assert_eq!(t.sor_get("/_sor/requests").await, json!([]));
        // Sessions are gone too.
        let r = t
            .send(with_cookie(http_get("ci.example", "/runs"), &cookie))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
    }
}
