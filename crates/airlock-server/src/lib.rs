//! Airlock's HTTP front for people: the web UI and JSON API of `airlock serve`.
//!
//! Reviewers sign in, watch runs live (server-sent events fed by polling the audit store),
//! approve or deny the requests runs are waiting on, stop runs, manage accounts, and read a
//! finished run's replay. It owns HTTP concerns only — sessions, CSRF, roles, rendering. The
//! queue itself lives in `airlock-review` (shared with the run processes through
//! `HOME/review.db`) and the evidence in `airlock-audit`; this crate never writes audit events
//! and knows nothing of browsers or CDP.
//!
//! [`router`] builds the whole application from a [`ServerState`] so tests drive it without a
//! socket; [`serve`] binds it (to loopback unless told otherwise) and runs until Ctrl-C.
//! [`replay::render_replay`] writes the one-file HTML replay for `airlock replay` too.

mod api;
mod auth;
pub mod html;
mod pages;
pub mod replay;
mod view;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use airlock_audit::{AuditError, AuditStore, SqliteStore};
use airlock_review::{ReviewError, ReviewStore};

pub use auth::{AnyRole, Authed, CanDecide, CanOperate, Mutation, Need, Via, CSRF_FIELD};
pub use replay::{render_replay, ReplayError};

/// The address `airlock serve` listens on by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";

/// How the application behaves (independent of how it is bound).
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// `Host` header values the server answers to (DNS-rebinding defence); empty accepts any.
    pub allowed_hosts: Vec<String>,
    /// Mark cookies `Secure` (when served behind TLS).
    pub secure_cookies: bool,
    /// How long a browser session lasts.
    pub session_ttl: Duration,
    /// How often the live view polls the audit store for new events.
    pub poll_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            allowed_hosts: Vec::new(),
            secure_cookies: false,
            session_ttl: Duration::from_secs(8 * 3600),
            poll_interval: Duration::from_millis(300),
        }
    }
}

/// Options of [`serve`] (the `airlock serve` flags).
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Allow a non-loopback listen address. Without it, [`serve`] refuses to expose the UI.
    pub allow_remote: bool,
    /// Extra `Host` names to answer to (e.g. the name a reverse proxy forwards).
    pub extra_hosts: Vec<String>,
    pub secure_cookies: bool,
    pub session_ttl: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        let c = ServerConfig::default();
        ServeOptions {
            allow_remote: false,
            extra_hosts: Vec::new(),
            secure_cookies: c.secure_cookies,
            session_ttl: c.session_ttl,
        }
    }
}

/// Why the server could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("refusing to listen on non-loopback address `{0}` without an explicit opt-in (--allow-remote); reviewers' sessions would be exposed to the network")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on `{addr}`: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("audit store: {0}")]
    Audit(#[from] AuditError),
    #[error("review store: {0}")]
    Review(#[from] ReviewError),
    #[error("server failed: {0}")]
    Io(#[from] std::io::Error),
}

struct Inner {
    audit: Arc<dyn AuditStore>,
    review: Arc<ReviewStore>,
    sessions: auth::Sessions,
    config: ServerConfig,
    shutting_down: AtomicBool,
}

/// Everything the handlers share. Cheap to clone.
#[derive(Clone)]
pub struct ServerState(Arc<Inner>);

impl ServerState {
    pub fn new(
        audit: Arc<dyn AuditStore>,
        review: Arc<ReviewStore>,
        config: ServerConfig,
    ) -> ServerState {
        ServerState(Arc::new(Inner {
            audit,
            review,
            sessions: auth::Sessions::new(config.session_ttl),
            config,
            shutting_down: AtomicBool::new(false),
        }))
    }

    pub(crate) fn audit(&self) -> Arc<dyn AuditStore> {
        Arc::clone(&self.0.audit)
    }

    pub(crate) fn review(&self) -> Arc<ReviewStore> {
        Arc::clone(&self.0.review)
    }

    pub(crate) fn sessions(&self) -> &auth::Sessions {
        &self.0.sessions
    }

    pub(crate) fn config(&self) -> &ServerConfig {
        &self.0.config
    }

    /// Ends live streams so a graceful shutdown does not wait on them forever.
    pub fn begin_shutdown(&self) {
        self.0.shutting_down.store(true, Ordering::SeqCst);
    }

    pub(crate) fn shutting_down(&self) -> bool {
        self.0.shutting_down.load(Ordering::SeqCst)
    }
}

/// The whole application. Every route except the login page and the static script needs an
/// authenticated reviewer; every `POST` is also checked for origin and CSRF (see `auth`).
pub fn router(state: ServerState) -> Router {
    Router::new()
        .route("/", get(pages::home))
        .route("/login", get(auth::login_page).post(auth::login_submit))
        .route("/logout", post(auth::logout))
        .route("/assets/app.js", get(pages::script))
        .route("/runs", get(pages::runs))
        .route("/runs/{run}", get(pages::run_page))
        .route("/runs/{run}/stream", get(pages::stream))
        .route("/runs/{run}/shots/{blob}", get(pages::screenshot))
        .route("/runs/{run}/stop", post(pages::stop))
        .route("/runs/{run}/release", post(pages::release))
        .route("/runs/{run}/replay", get(pages::replay))
        .route("/approvals", get(pages::approvals))
        .route("/approvals/{id}", post(pages::decide))
        .route(
            "/reviewers",
            get(pages::reviewers).post(pages::reviewers_change),
        )
        .route("/api/runs", get(api::runs))
        .route("/api/approvals", get(api::approvals))
        .route("/api/approvals/{id}", post(api::decide))
        .route("/api/runs/{run}/stop", post(api::stop))
        .route("/api/runs/{run}/release", post(api::release))
        .fallback(|| async { AppError::page(StatusCode::NOT_FOUND, "no such page") })
        .layer(DefaultBodyLimit::max(auth::MAX_FORM_BYTES))
        .layer(axum::middleware::from_fn(auth::security_headers))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::check_host,
        ))
        .with_state(state)
}

/// A server bound to its address, not yet serving.
pub struct Bound {
    pub addr: SocketAddr,
    listener: tokio::net::TcpListener,
    state: ServerState,
}

/// Opens the stores under `home` and binds `listen`. Refuses a non-loopback address unless
/// `opts.allow_remote`; on loopback, answers only to loopback host names (and `extra_hosts`).
pub async fn bind(
    home: &Path,
    listen: SocketAddr,
    opts: ServeOptions,
) -> Result<Bound, ServerError> {
    if !listen.ip().is_loopback() && !opts.allow_remote {
        return Err(ServerError::NotLoopback(listen));
    }
    let audit: Arc<dyn AuditStore> = Arc::new(SqliteStore::open(home)?);
    let review = Arc::new(ReviewStore::open(home)?);
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr()?;
    let mut allowed_hosts = Vec::new();
    if addr.ip().is_loopback() {
        let port = addr.port();
        allowed_hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ];
        allowed_hosts.extend(opts.extra_hosts.iter().cloned());
    } else if !opts.extra_hosts.is_empty() {
        allowed_hosts.extend(opts.extra_hosts.iter().cloned());
        allowed_hosts.push(addr.to_string());
    }
    if review.reviewers()?.is_empty() {
        tracing::warn!(
            "no reviewer accounts yet: add one with `airlock reviewers add NAME --role operator`"
        );
    }
    let state = ServerState::new(
        audit,
        review,
        ServerConfig {
            allowed_hosts,
            secure_cookies: opts.secure_cookies,
            session_ttl: opts.session_ttl,
            ..ServerConfig::default()
        },
    );
    Ok(Bound {
        addr,
        listener,
        state,
    })
}

impl Bound {
    /// Serves until `shutdown` resolves, then ends live streams and drains connections.
    pub async fn run(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        let state = self.state.clone();
        axum::serve(self.listener, router(self.state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                state.begin_shutdown();
            })
            .await?;
        Ok(())
    }
}

/// `airlock serve`: binds, prints where, serves until Ctrl-C.
pub async fn serve(home: &Path, listen: SocketAddr, opts: ServeOptions) -> Result<(), ServerError> {
    let bound = bind(home, listen, opts).await?;
    println!("airlock: review UI on http://{}", bound.addr);
    bound
        .run(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

/// Runs blocking store work off the async workers (SQLite may wait for another process).
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, AppError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|_| AppError::internal("a background task failed"))
}

/// An error a handler returns: a status, a message safe to show, and whether to answer in JSON.
#[derive(Debug)]
pub(crate) struct AppError {
    status: StatusCode,
    message: String,
    json: bool,
}

impl AppError {
    pub(crate) fn page(status: StatusCode, message: impl Into<String>) -> AppError {
        AppError {
            status,
            message: message.into(),
            json: false,
        }
    }

    pub(crate) fn internal(message: &str) -> AppError {
        AppError::page(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    pub(crate) fn json(mut self) -> AppError {
        self.json = true;
        self
    }
}

impl From<ReviewError> for AppError {
    fn from(e: ReviewError) -> Self {
        use ReviewError as E;
        let status = match &e {
            E::BadCredentials => StatusCode::UNAUTHORIZED,
            E::Forbidden { .. } | E::SelfApproval(_) | E::AgentCannotDecide(_) => {
                StatusCode::FORBIDDEN
            }
            E::UnknownRequest(_) | E::UnknownReviewer(_) => StatusCode::NOT_FOUND,
            E::WrongRun { .. }
            | E::AlreadyDecided { .. }
            | E::Expired(_)
            | E::ReviewerExists(_)
            | E::LastOperator(_) => StatusCode::CONFLICT,
            E::InvalidInput(_) => StatusCode::BAD_REQUEST,
            _ => {
                tracing::error!(error = %e, "review store failed");
                return AppError::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the review database is unavailable",
                );
            }
        };
        AppError::page(status, e.to_string())
    }
}

impl From<AuditError> for AppError {
    fn from(e: AuditError) -> Self {
        match e {
            AuditError::UnknownRun(id) => {
                AppError::page(StatusCode::NOT_FOUND, format!("unknown run `{id}`"))
            }
            other => {
                tracing::error!(error = %other, "audit store failed");
                AppError::page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "the audit store is unavailable",
                )
            }
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        if self.json {
            (
                self.status,
                axum::Json(serde_json::json!({"error": self.message})),
            )
                .into_response()
        } else {
            auth::plain_error(self.status, &self.message)
        }
    }
}

/// An HTML response.
pub(crate) fn html(body: String) -> Response {
    Html(body).into_response()
}
