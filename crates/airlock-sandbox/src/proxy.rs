//! The run's egress proxy: the only way out of the browser.
//!
//! Chromium is started with `--proxy-server` pointing here (loopback included), so every HTTP
//! request and every CONNECT tunnel (WebSockets, TLS) arrives as something we can check. The
//! proxy normalises the host (case, trailing dot, punycode) and matches it *exactly* against the
//! run's allowed hosts; IP literals are refused; allowed hosts go to their mapped address (curl
//! `--resolve` style) or, unmapped, to a public DNS answer (loopback, private and link-local
//! answers are refused to stop DNS rebinding). One metadata record per request goes to the
//! audit: host, method, path, and allowed or why not. Never bodies, never query strings.

#![allow(
    clippy::indexing_slicing,
    reason = "serde_json::Value indexing by key yields Null for missing keys; it does not panic"
)]

use airlock_core::host::HostName;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Which hosts the run may reach and where they live.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    pub allowed: BTreeSet<HostName>,
    /// Host → address overrides (the bundled portal, or a user's `"host" = "127.0.0.1:8080"`).
    pub mapped: BTreeMap<HostName, SocketAddr>,
}

/// One request's metadata, as recorded in the audit.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct EgressRecord {
    pub host: String,
    pub port: u16,
    pub method: String,
    pub path: String,
    pub allowed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A running proxy; stops when dropped.
pub struct EgressProxy {
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl EgressProxy {
    /// Binds on 127.0.0.1 (a free port) and serves until dropped. Records go to `records`.
    pub async fn start(
        policy: EgressPolicy,
        records: mpsc::UnboundedSender<EgressRecord>,
    ) -> std::io::Result<EgressProxy> {
        let listener = TcpListener::bind((std::net::Ipv4Addr::LOCALHOST, 0)).await?;
        Self::serve(listener, policy, records)
    }

    /// Serves on an existing listener (for example one bound inside the run's network
    /// namespace, which is then the browser's only way out).
    pub fn serve(
        listener: TcpListener,
        policy: EgressPolicy,
        records: mpsc::UnboundedSender<EgressRecord>,
    ) -> std::io::Result<EgressProxy> {
        let addr = listener.local_addr()?;
        let shared = Arc::new((policy, records));
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let shared = shared.clone();
                        async move { Ok::<_, hyper::Error>(handle(req, &shared.0, &shared.1).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .preserve_header_case(true)
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Ok(EgressProxy { addr, task })
    }
}

fn text(status: StatusCode, body: String) -> Response<ProxyBody> {
    let mut r = Response::new(
        Full::new(Bytes::from(body))
            .map_err(|never| match never {})
            .boxed(),
    );
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Decides whether `host:port` may be reached and where to connect.
pub fn route(policy: &EgressPolicy, raw_host: &str, port: u16) -> Result<Destination, String> {
    let host = HostName::parse(raw_host).map_err(|e| e.to_string())?;
    if !policy.allowed.contains(&host) {
        return Err(format!("{host} is not in the task's domains"));
    }
    if let Some(addr) = policy.mapped.get(&host) {
        // A mapped host is reached on its mapped address whatever port the page named, but only
        // on the ports a browser would use for it.
        if port != 80 && port != 443 {
            return Err(format!("port {port} on {host} is not allowed"));
        }
        return Ok(Destination::Addr(*addr, host));
    }
    if port != 80 && port != 443 {
        return Err(format!("port {port} on {host} is not allowed"));
    }
    Ok(Destination::Dns(host, port))
}

#[derive(Debug, Clone, PartialEq)]
pub enum Destination {
    Addr(SocketAddr, HostName),
    Dns(HostName, u16),
}

fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00
                || (v6.segments()[0] & 0xffc0) == 0xfe80
                || v6
                    .to_ipv4_mapped()
                    .is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

async fn connect(dest: &Destination) -> Result<TcpStream, String> {
    match dest {
        Destination::Addr(addr, _) => TcpStream::connect(addr)
            .await
            .map_err(|e| format!("upstream unreachable: {e}")),
        Destination::Dns(host, port) => {
            let addrs = tokio::net::lookup_host((host.as_str(), *port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?;
            for a in addrs {
                if is_internal(a.ip()) {
                    return Err(format!(
                        "{host} resolves to an internal address; map it explicitly in [hosts]"
                    ));
                }
                if let Ok(s) = TcpStream::connect(a).await {
                    return Ok(s);
                }
            }
            Err(format!("cannot connect to {host}"))
        }
    }
}

async fn handle(
    req: Request<Incoming>,
    policy: &EgressPolicy,
    records: &mpsc::UnboundedSender<EgressRecord>,
) -> Response<ProxyBody> {
    let method = req.method().clone();
    if method == Method::CONNECT {
        return handle_connect(req, policy, records).await;
    }
    let uri = req.uri().clone();
    let (Some(host), Some(scheme)) = (uri.host(), uri.scheme_str()) else {
        return text(
            StatusCode::BAD_REQUEST,
            "airlock proxy: absolute URL required\n".into(),
        );
    };
    let port = uri
        .port_u16()
        .unwrap_or(if scheme == "https" { 443 } else { 80 });
    let path = uri.path().to_string();
    let mut record = EgressRecord {
        host: host.to_ascii_lowercase(),
        port,
        method: method.to_string(),
        path: path.clone(),
        allowed: false,
        reason: None,
    };
    let dest = match (scheme, route(policy, host, port)) {
        ("http", Ok(d)) => d,
        (_, Err(why)) => {
            record.reason = Some(why.clone());
            let _ = records.send(record);
            return text(
                StatusCode::FORBIDDEN,
                format!("airlock: request to {host} blocked: {why}\n"),
            );
        }
        (other, Ok(_)) => {
            let why = format!("scheme {other} must use CONNECT");
            record.reason = Some(why.clone());
            let _ = records.send(record);
            return text(StatusCode::BAD_REQUEST, format!("airlock: {why}\n"));
        }
    };
    let (Destination::Addr(_, h) | Destination::Dns(h, _)) = &dest;
    record.host = h.to_string();
    let stream = match connect(&dest).await {
        Ok(s) => s,
        Err(why) => {
            record.reason = Some(why.clone());
            let _ = records.send(record);
            return text(StatusCode::BAD_GATEWAY, format!("airlock: {why}\n"));
        }
    };
    record.allowed = true;
    let _ = records.send(record);

    let (mut parts, body) = req.into_parts();
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "/".into());
    parts.uri = match pq.parse() {
        Ok(u) => u,
        Err(_) => return text(StatusCode::BAD_REQUEST, "airlock: bad path\n".into()),
    };
    for h in [
        "proxy-connection",
        "proxy-authorization",
        "connection",
        "keep-alive",
        "te",
        "trailer",
        "upgrade",
    ] {
        parts.headers.remove(h);
    }
    let upstream_req = Request::from_parts(parts, body);
    let (mut sender, conn) = match hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    {
        Ok(x) => x,
        Err(e) => return text(StatusCode::BAD_GATEWAY, format!("airlock: upstream: {e}\n")),
    };
    tokio::spawn(async move {
        let _ = conn.await;
    });
    match sender.send_request(upstream_req).await {
        Ok(resp) => resp.map(|b| b.boxed()),
        Err(e) => text(StatusCode::BAD_GATEWAY, format!("airlock: upstream: {e}\n")),
    }
}

async fn handle_connect(
    req: Request<Incoming>,
    policy: &EgressPolicy,
    records: &mpsc::UnboundedSender<EgressRecord>,
) -> Response<ProxyBody> {
    let authority = req.uri().authority().cloned();
    let Some(auth) = authority else {
        return text(
            StatusCode::BAD_REQUEST,
            "airlock: CONNECT needs host:port\n".into(),
        );
    };
    let port = auth.port_u16().unwrap_or(443);
    let mut record = EgressRecord {
        host: auth.host().to_ascii_lowercase(),
        port,
        method: "CONNECT".into(),
        path: String::new(),
        allowed: false,
        reason: None,
    };
    let dest = match route(policy, auth.host(), port) {
        Ok(d) => d,
        Err(why) => {
            record.reason = Some(why.clone());
            let _ = records.send(record);
            return text(
                StatusCode::FORBIDDEN,
                format!("airlock: tunnel to {} blocked: {why}\n", auth.host()),
            );
        }
    };
    let mut upstream = match connect(&dest).await {
        Ok(s) => s,
        Err(why) => {
            record.reason = Some(why.clone());
            let _ = records.send(record);
            return text(StatusCode::BAD_GATEWAY, format!("airlock: {why}\n"));
        }
    };
    record.allowed = true;
    let _ = records.send(record);
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        }
    });
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    fn policy() -> EgressPolicy {
        let mut p = EgressPolicy::default();
        let h = HostName::parse("ci.example").unwrap();
        p.allowed.insert(h.clone());
        p.mapped.insert(h, "127.0.0.1:9".parse().unwrap());
        p
    }

    #[test]
    fn only_exact_normalised_hosts_route() {
        let p = policy();
        assert!(route(&p, "CI.EXAMPLE.", 80).is_ok());
        for bad in [
            "ci.example.evil.example",
            "ci-example.evil",
            "evil.example",
            "127.0.0.1",
            "2130706433",
            "[::1]",
        ] {
            assert!(route(&p, bad, 80).is_err(), "{bad} must not route");
        }
        assert!(route(&p, "ci.example", 22).is_err());
    }

    #[test]
    fn internal_dns_answers_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.1.1",
            "::1",
            "fd00::1",
            "100.64.0.1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_internal("93.184.216.34".parse().unwrap()));
    }
}
