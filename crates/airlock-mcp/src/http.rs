//! Streamable HTTP on loopback: the MCP endpoint behind a bearer token.
//!
//! The token check is a layer around the whole router, so no MCP request reaches a handler (or
//! starts a run) without it. The listener refuses non-loopback addresses; rmcp's own `Host`
//! check (loopback names only) keeps DNS-rebinding pages out.

use crate::server::Launcher;
use crate::McpError;
use airlock_engine::approval::Approver;
use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::Router;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

/// The path of the MCP endpoint.
pub const PATH: &str = "/mcp";
/// Shortest bearer token accepted from the environment.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A bearer token clients must send (`Authorization: Bearer …`).
#[derive(Clone)]
pub struct BearerToken(Arc<str>);

impl BearerToken {
    /// A token given by the operator; too short a token is refused.
    pub fn given(token: &str) -> Result<BearerToken, McpError> {
        if token.chars().count() < MIN_TOKEN_CHARS {
            return Err(McpError::WeakToken(MIN_TOKEN_CHARS));
        }
        Ok(BearerToken(token.into()))
    }

    /// A fresh random token (32 bytes, hex).
    pub fn generate() -> Result<BearerToken, McpError> {
        airlock_review::random_token(32)
            .map(|t| BearerToken(t.into()))
            .map_err(|e| McpError::Token(e.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn accepts(&self, header_value: Option<&str>) -> bool {
        header_value
            .and_then(|v| v.strip_prefix("Bearer "))
            .is_some_and(|t| {
                airlock_review::constant_time_eq(t.trim().as_bytes(), self.0.as_bytes())
            })
    }
}

async fn require_bearer(State(token): State<BearerToken>, req: Request, next: Next) -> Response {
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if token.accepts(given) {
        next.run(req).await
    } else {
        (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required\n",
        )
            .into_response()
    }
}

/// Wraps `router` so that every request needs `token`.
pub fn with_bearer(router: Router, token: BearerToken) -> Router {
    router.layer(middleware::from_fn_with_state(token, require_bearer))
}

/// Serves MCP over streamable HTTP on `addr` (loopback only) until `shutdown` resolves; each
/// MCP session gets its own run, at most `max_sessions` at a time. On shutdown every session's run is ended, torn down and
/// sealed before this returns. `on_listen` is told the bound address (for port 0).
pub async fn serve<A: Approver + Send + 'static>(
    launcher: Arc<Launcher<A>>,
    addr: SocketAddr,
    token: BearerToken,
    max_sessions: usize,
    on_listen: impl FnOnce(SocketAddr),
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), McpError> {
    if !addr.ip().is_loopback() {
        return Err(McpError::NotLoopback(addr));
    }
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| McpError::Bind(addr, e))?;
    let local = listener.local_addr().map_err(|e| McpError::Bind(addr, e))?;
    let config = StreamableHttpServerConfig::default();
    let cancel = config.cancellation_token.clone();
    let l = Arc::clone(&launcher);
    let service = StreamableHttpService::new(
        move || {
            l.start_detached(max_sessions).ok_or_else(|| {
                std::io::Error::other(format!("at most {max_sessions} sessions at a time"))
            })
        },
        Arc::new(LocalSessionManager::default()),
        config,
    );
    let app = with_bearer(Router::new().route_service(PATH, service), token);
    on_listen(local);
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            shutdown.await;
            cancel.cancel();
        })
        .await;
    // Whatever ended the server, no session's browser outlives it.
    launcher.finish_detached().await;
    served.map_err(McpError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    async fn status(app: Router, auth: Option<&str>) -> StatusCode {
        let mut req = axum::http::Request::builder().uri("/mcp");
        if let Some(a) = auth {
            req = req.header(header::AUTHORIZATION, a);
        }
        match app
            .oneshot(req.body(Body::empty()).unwrap_or_default())
            .await
        {
            Ok(r) => r.status(),
            Err(e) => match e {},
        }
    }

    #[tokio::test]
    async fn requests_without_the_right_bearer_token_get_401() {
        let Ok(token) = BearerToken::given("0123456789abcdef-token") else {
            panic!("token")
        };
        let app = with_bearer(Router::new().route("/mcp", get(|| async { "ok" })), token);
        assert_eq!(status(app.clone(), None).await, StatusCode::UNAUTHORIZED);
        assert_eq!(
            status(app.clone(), Some("Bearer wrong-token-of-some-length")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(app.clone(), Some("Basic 0123456789abcdef-token")).await,
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            status(app, Some("Bearer 0123456789abcdef-token")).await,
            StatusCode::OK
        );
    }

    #[test]
    fn short_tokens_are_refused_and_generated_ones_are_long() {
        assert!(matches!(
            BearerToken::given("short"),
            Err(McpError::WeakToken(_))
        ));
        let Ok(t) = BearerToken::generate() else {
            panic!("random")
        };
        assert_eq!(t.as_str().len(), 64);
    }
}
