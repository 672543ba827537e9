//! The host's own HTTP client for systems of record (the verifier's independent evidence).
//!
//! It talks only to hosts the manifest maps explicitly, never through the browser, so nothing
//! the page does can influence what the verifier reads.

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SorError {
    #[error("system of record `{0}` is not mapped in [hosts]")]
    Unmapped(String),
    #[error("system of record `{url}` unreachable: {why}")]
    Unreachable { url: String, why: String },
    #[error("system of record `{url}` answered {status}")]
    Status { url: String, status: u16 },
    #[error("system of record `{url}` did not return JSON")]
    NotJson { url: String },
}

/// GETs JSON from `url` at `addr`, sending `Host` and the given extra header.
pub async fn get_json(
    addr: SocketAddr,
    url: &airlock_core::host::WebUrl,
    header: Option<&(String, String)>,
    timeout: Duration,
) -> Result<serde_json::Value, SorError> {
    let shown = url.url.to_string();
    let fut = async {
        let stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let path = match url.url.query() {
            Some(q) => format!("{}?{q}", url.path),
            None => url.path.clone(),
        };
        let mut req = hyper::Request::get(path)
            .header(hyper::header::HOST, url.host.as_str())
            .header(hyper::header::ACCEPT, "application/json");
        if let Some((k, v)) = header {
            req = req.header(k.as_str(), v.as_str());
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok::<_, String>((status, body))
    };
    let (status, body) = tokio::time::timeout(timeout, fut)
        .await
        .map_err(|_| SorError::Unreachable {
            url: shown.clone(),
            why: "timed out".into(),
        })?
        .map_err(|why| SorError::Unreachable {
            url: shown.clone(),
            why,
        })?;
    if status != 200 {
        return Err(SorError::Status { url: shown, status });
    }
    serde_json::from_slice(&body).map_err(|_| SorError::NotJson { url: shown })
}
