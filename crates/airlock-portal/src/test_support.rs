//! Helpers shared by the unit tests: an in-process portal driven through `oneshot`.
#![allow(clippy::unwrap_used, clippy::indexing_slicing)]

use axum::body::Body;
use axum::http::header::LOCATION;
use axum::http::{HeaderMap, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::{router, PortalConfig, PortalState};

pub(crate) const TEST_SOR_TOKEN: &str = "test-sor-token";

pub(crate) struct TestPortal {
    pub state: PortalState,
    pub app: Router,
}

pub(crate) struct TestResponse {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl TestResponse {
    pub fn location(&self) -> Option<&str> {
        self.headers.get(LOCATION).and_then(|v| v.to_str().ok())
    }
}

pub(crate) fn portal() -> TestPortal {
    let state = PortalState::new(PortalConfig {
        spinner_ms: 10,
        sor_token: TEST_SOR_TOKEN.to_owned(),
        ..PortalConfig::default()
    });
    TestPortal {
        app: router(state.clone()),
        state,
    }
}

pub(crate) fn http_get(host: &str, path: &str) -> Request<Body> {
    Request::builder()
        .uri(path)
        .header("host", host)
        .body(Body::empty())
        .unwrap()
}

pub(crate) fn post_form(host: &str, path: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method("POST")
        .uri(path)
        .header("host", host)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from(body.to_owned()))
        .unwrap()
}

pub(crate) fn with_cookie(mut req: Request<Body>, cookie: &str) -> Request<Body> {
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    req
}

impl TestPortal {
    pub async fn send(&self, req: Request<Body>) -> TestResponse {
        let response = self.app.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        TestResponse {
            status,
            headers,
            // Lossy: a few lab and attacker responses are binary (an image).
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    /// Signs in with the test credentials and returns the `name=value` cookie pair.
    pub async fn login(&self) -> String {
        let r = self
            .send(post_form(
                crate::CI_HOST,
                "/login",
                &format!(
                    "username={}&password={}",
                    crate::TEST_USERNAME,
                    crate::TEST_PASSWORD
                ),
            ))
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        let set = r.headers.get("set-cookie").unwrap().to_str().unwrap();
        set.split(';').next().unwrap().to_owned()
    }

    /// GETs a system-of-record path with the right token and parses the JSON.
    pub async fn sor_get(&self, path: &str) -> serde_json::Value {
        let req = Request::builder()
            .uri(path)
            .header("host", crate::INCIDENTS_HOST)
            .header(crate::SOR_TOKEN_HEADER, TEST_SOR_TOKEN)
            .body(Body::empty())
            .unwrap();
        let r = self.send(req).await;
        assert_eq!(r.status, StatusCode::OK, "{path}: {}", r.body);
        serde_json::from_str(&r.body).unwrap()
    }
}
