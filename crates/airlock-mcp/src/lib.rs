//! `airlock mcp`: the Model Context Protocol as a control surface, a gated browser for any MCP
//! client.
//!
//! This crate owns the MCP side only: the tool list and its argument parsing ([`tools`]), the
//! bridge that turns tool calls into the engine's proposals ([`bridge`]), the per-session
//! server ([`server`]) and the transports (stdio here, streamable HTTP in [`http`]). It does
//! not run actions, decide on them or record them: one MCP session is one ordinary
//! `airlock_engine` run, with the same admission, gate, approvals, sandbox, audit and host
//! verification as `airlock run`. A denial is a tool result with `isError` and the reason, not
//! a protocol error; page content reaches the client only inside the engine's untrusted-content
//! marking, redacted, and screenshots only masked.

pub mod bridge;
pub mod http;
pub mod server;
pub mod tools;

pub use http::BearerToken;
pub use server::{AirlockMcp, Launcher, RunEnd, RunHandle, Session};

use airlock_engine::approval::Approver;
use std::future::Future;
use std::net::SocketAddr;

/// Why the MCP server could not serve.
#[derive(Debug, thiserror::Error)]
pub enum McpError {
    #[error("`{0}` is not a loopback address; airlock mcp only listens on loopback")]
    NotLoopback(SocketAddr),
    #[error("cannot listen on `{0}`: {1}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error("the bearer token must be at least {0} characters")]
    WeakToken(usize),
    #[error("cannot generate a bearer token: {0}")]
    Token(String),
    #[error("the HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves one session on stdin/stdout, until the client disconnects (end of input) or
/// `shutdown` resolves; then ends the run if the client did not claim done, and returns how it
/// ended once it is verified, torn down and sealed.
pub async fn serve_stdio<A: Approver + Send + 'static>(
    launcher: &Launcher<A>,
    shutdown: impl Future<Output = ()> + Send,
) -> RunEnd {
    let Session { handler, run } = launcher.start();
    let mut shutdown = std::pin::pin!(shutdown);
    tokio::select! {
        served = rmcp::serve_server(handler, rmcp::transport::stdio()) => match served {
            Ok(service) => {
                let cancel = service.cancellation_token();
                tokio::select! {
                    _ = service.waiting() => {}
                    _ = &mut shutdown => cancel.cancel(),
                }
            }
            Err(e) => tracing::warn!("mcp: the client did not complete the handshake: {e}"),
        },
        _ = &mut shutdown => {}
    }
    run.finish().await
}
