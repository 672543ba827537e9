//! The run's egress proxy: the only way out of the browser.
//!
//! Chromium is started with `--proxy-server` pointing here (loopback included), so every HTTP
//! request and every CONNECT tunnel (WebSockets, TLS) arrives as something we can check. The
//! proxy normalises the host (case, trailing dot, punycode) and matches it *exactly* against the
//! run's allowed hosts; IP literals are refused; allowed hosts go to their mapped address (curl
//! `--resolve` style) or, unmapped, to a public DNS answer (loopback, private and link-local
//! answers are refused to stop DNS rebinding). One metadata record per request goes to the
//! audit: host, method, path, and allowed or why not. Never bodies, never query strings.
//!
//! **Secret egress.** With an [`EgressScan`] in the policy, the proxy also reads what a request
//! would carry: the request line, every header and the body of plain HTTP requests (buffered up
//! to [`MAX_SCANNED_BODY`] and refused beyond it), and inside a CONNECT tunnel to port 80 (which
//! is how Chromium sends `ws://` through a proxy) the tunnelled request's head and then either
//! every client→server WebSocket frame, unmasked, with a rolling window so a secret split over
//! two frames is still found, or the raw bytes. A request or frame that carries a secret outside
//! its scope is not forwarded: the request is refused or the tunnel closed, and the record says
//! which secret and where, never its value. A tunnel to port 443 is TLS and cannot be read
//! here; the browser's interception still sees those requests' URLs, headers and bodies, but
//! not `wss://` frames (the network boundary still limits them to the task's hosts).

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
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Largest request body the proxy buffers to scan; a larger one is refused while secrets live.
pub const MAX_SCANNED_BODY: usize = 32 * 1024 * 1024;

/// Largest tunnelled request head or WebSocket frame the proxy buffers to scan.
const MAX_SCANNED_FRAME: usize = 16 * 1024 * 1024;

/// Which hosts the run may reach and where they live.
#[derive(Debug, Clone, Default)]
pub struct EgressPolicy {
    pub allowed: BTreeSet<HostName>,
    /// Host → address overrides (the bundled portal, or a user's `"host" = "127.0.0.1:8080"`).
    pub mapped: BTreeMap<HostName, SocketAddr>,
    /// What a request may carry to a host, beyond the host itself (the run's secrets, each to
    /// its own hosts only); `None` checks hosts only.
    pub scan: Option<Arc<dyn EgressScan>>,
}

/// The host's check of what a request carries: the engine implements it from the run's
/// secrets (this crate never holds one).
pub trait EgressScan: Send + Sync + std::fmt::Debug {
    /// The secret that `bytes`, one part of a request to `host`, must not carry there.
    fn scan(&self, host: &HostName, bytes: &[u8]) -> Option<SecretLeak>;
    /// How many bytes to carry from one chunk of a stream to the next so that a secret split
    /// across them is still found.
    fn window(&self) -> usize;
}

/// A secret found where it must not go: names only, never the value.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SecretLeak {
    /// The secret's name.
    pub secret: String,
    /// Which of its forms (`plain`, `base64 of reversed`, …).
    pub form: String,
    /// Where in the request: `url`, `header NAME`, `body`, `websocket frame`, `tunnel data`.
    pub part: String,
}

/// The first part of a request (URL, then each header, then the body) that carries a secret
/// `scan` says must not go to `host`.
pub fn scan_request<'a>(
    scan: &dyn EgressScan,
    host: &HostName,
    url: &str,
    headers: impl IntoIterator<Item = (&'a str, &'a [u8])>,
    body: Option<&[u8]>,
) -> Option<SecretLeak> {
    let at = |part: String, leak: Option<SecretLeak>| leak.map(|l| SecretLeak { part, ..l });
    at("url".into(), scan.scan(host, url.as_bytes()))
        .or_else(|| {
            headers.into_iter().find_map(|(name, value)| {
                at(
                    format!("header {}", header_label(name)),
                    scan.scan(host, value),
                )
            })
        })
        .or_else(|| at("body".into(), body.and_then(|b| scan.scan(host, b))))
}

/// A header name as the record shows it: lower case, only token characters, bounded.
fn header_label(name: &str) -> String {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    n.to_ascii_lowercase()
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
    /// The request (or WebSocket frame) was refused because it carried a secret outside its
    /// scope: which one and where.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_egress: Option<SecretLeak>,
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
        secret_egress: None,
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
    let (mut parts, body) = req.into_parts();
    let body: ProxyBody = match policy.scan.as_deref() {
        None => body.boxed(),
        Some(scan) => {
            // Nothing is sent upstream before all of it was read and scanned.
            let bytes = match http_body_util::Limited::new(body, MAX_SCANNED_BODY)
                .collect()
                .await
            {
                Ok(c) => c.to_bytes(),
                Err(e) => {
                    let why = format!("request body unreadable or too large to scan: {e}");
                    record.reason = Some(why.clone());
                    let _ = records.send(record);
                    return text(StatusCode::PAYLOAD_TOO_LARGE, format!("airlock: {why}\n"));
                }
            };
            let headers = parts
                .headers
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_bytes()));
            if let Some(leak) = scan_request(scan, h, &uri.to_string(), headers, Some(&bytes)) {
                let why = leak_reason(&leak, h);
                record.reason = Some(why.clone());
                // The path may be where the secret is.
                record.path = String::new();
                record.secret_egress = Some(leak);
                let _ = records.send(record);
                return text(
                    StatusCode::FORBIDDEN,
                    format!("airlock: request to {h} blocked: {why}\n"),
                );
            }
            Full::new(bytes).map_err(|never| match never {}).boxed()
        }
    };
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
        secret_egress: None,
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
    let _ = records.send(record.clone());
    // Port 80 is plain text (`ws://`, or HTTP the browser chose to tunnel): readable, so
    // scanned. Anything else is TLS, relayed as it is.
    let scan = policy.scan.clone().filter(|_| port == 80);
    let records = records.clone();
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let (Destination::Addr(_, host) | Destination::Dns(host, _)) = dest;
            match scan {
                Some(scan) => {
                    if let Some(leak) = relay_scanned(client, upstream, &host, scan.as_ref()).await
                    {
                        record.allowed = false;
                        record.reason = Some(leak_reason(&leak, &host));
                        record.secret_egress = Some(leak);
                        let _ = records.send(record);
                    }
                }
                None => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
            }
        }
    });
    Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    )
}

/// The reason a leak was refused, in words for the audit and the page: names only.
fn leak_reason(leak: &SecretLeak, host: &HostName) -> String {
    format!(
        "it carried secret `{}` ({}) in its {} to {host}, which is not one of the secret's hosts",
        leak.secret, leak.form, leak.part
    )
}

/// Relays a readable tunnel, scanning what the client sends before it is forwarded: the
/// tunnelled request's head, then WebSocket frames (unmasked, with a rolling window across
/// frames) or raw bytes. Returns the leak that closed the tunnel, if one did. The server's
/// answers are relayed unread.
async fn relay_scanned<C>(
    client: C,
    upstream: TcpStream,
    host: &HostName,
    scan: &dyn EgressScan,
) -> Option<SecretLeak>
where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut from_client, mut to_client) = tokio::io::split(client);
    let (mut from_server, mut to_server) = upstream.into_split();
    let back = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut from_server, &mut to_client).await;
        let _ = to_client.shutdown().await;
    });
    let leak = scan_client_stream(&mut from_client, &mut to_server, host, scan).await;
    // On a leak nothing more goes either way; otherwise the server may still be answering.
    if leak.is_some() {
        back.abort();
    } else {
        let _ = to_server.shutdown().await;
        let _ = back.await;
    }
    leak
}

/// Reads the client's side of a tunnel and forwards what is clean; stops at the first leak
/// (not forwarding it), at the end of the stream, or on an error.
async fn scan_client_stream<R, W>(
    from: &mut R,
    to: &mut W,
    host: &HostName,
    scan: &dyn EgressScan,
) -> Option<SecretLeak>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let window = scan.window().max(1);
    let mut pending: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    // 1. The tunnelled request's head.
    let head_end = loop {
        if let Some(i) = find(&pending, b"\r\n\r\n") {
            break i + 4;
        }
        if pending.len() > MAX_SCANNED_FRAME {
            return None;
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    };
    let head = pending.get(..head_end).unwrap_or_default();
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let target = lines.next().unwrap_or_default();
    let headers: Vec<(&str, &str)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim(), v.trim()))
        .collect();
    let leak = scan_request(
        scan,
        host,
        target,
        headers.iter().map(|(n, v)| (*n, v.as_bytes())),
        None,
    );
    if leak.is_some() {
        return leak;
    }
    let websocket = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("upgrade") && v.eq_ignore_ascii_case("websocket"));
    if to.write_all(head).await.is_err() {
        return None;
    }
    pending.drain(..head_end);
    // 2. What follows: frames, or raw bytes. `carry` is the end of what was already scanned.
    let mut carry: Vec<u8> = Vec::new();
    let mut scanned = Vec::new();
    loop {
        while let Some((frame_len, payload)) = if websocket {
            next_frame(&pending)
        } else {
            (!pending.is_empty()).then(|| (pending.len(), pending.clone()))
        } {
            scanned.clear();
            scanned.extend_from_slice(&carry);
            scanned.extend_from_slice(&payload);
            if let Some(l) = scan.scan(host, &scanned) {
                let part = if websocket {
                    "websocket frame"
                } else {
                    "tunnel data"
                };
                return Some(SecretLeak {
                    part: part.into(),
                    ..l
                });
            }
            let keep = scanned.len().saturating_sub(window);
            carry.clear();
            carry.extend_from_slice(scanned.get(keep..).unwrap_or_default());
            if to
                .write_all(pending.get(..frame_len).unwrap_or_default())
                .await
                .is_err()
            {
                return None;
            }
            pending.drain(..frame_len);
        }
        if pending.len() > MAX_SCANNED_FRAME + 14 {
            // A frame this large is not buffered: the tunnel is closed instead.
            return None;
        }
        match from.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => pending.extend_from_slice(chunk.get(..n).unwrap_or_default()),
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One whole WebSocket frame at the start of `buf`: its length in bytes and its payload,
/// unmasked. `None` until the whole frame has arrived.
fn next_frame(buf: &[u8]) -> Option<(usize, Vec<u8>)> {
    let b1 = *buf.get(1)?;
    let masked = b1 & 0x80 != 0;
    let (len, mut at) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*buf.get(2)?, *buf.get(3)?])),
            4,
        ),
        127 => {
            let mut b = [0u8; 8];
            b.copy_from_slice(buf.get(2..10)?);
            (u64::from_be_bytes(b), 10)
        }
        n => (u64::from(n), 2),
    };
    let len = usize::try_from(len).ok()?;
    let mask = if masked {
        let m = [
            *buf.get(at)?,
            *buf.get(at + 1)?,
            *buf.get(at + 2)?,
            *buf.get(at + 3)?,
        ];
        at += 4;
        Some(m)
    } else {
        None
    };
    let end = at.checked_add(len)?;
    let payload = buf.get(at..end)?;
    let payload = match mask {
        Some(m) => payload
            .iter()
            .zip(m.iter().cycle())
            .map(|(b, k)| b ^ k)
            .collect(),
        None => payload.to_vec(),
    };
    Some((end, payload))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::cast_possible_truncation
)]
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

    /// Refuses `hunter2-secret` to any host but `ci.example`.
    #[derive(Debug)]
    struct Fake;

    impl EgressScan for Fake {
        fn scan(&self, host: &HostName, bytes: &[u8]) -> Option<SecretLeak> {
            (host.as_str() != "ci.example" && find(bytes, b"hunter2-secret").is_some()).then(|| {
                SecretLeak {
                    secret: "pw".into(),
                    form: "plain".into(),
                    part: String::new(),
                }
            })
        }
        fn window(&self) -> usize {
            32
        }
    }

    /// A proxy for `incidents.example` and `ci.example`, both mapped to a server that keeps
    /// every byte it receives.
    async fn scanning_proxy() -> (
        EgressProxy,
        mpsc::UnboundedReceiver<EgressRecord>,
        Arc<std::sync::Mutex<Vec<u8>>>,
    ) {
        let upstream = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = upstream.local_addr().unwrap();
        let got = Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = got.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = upstream.accept().await {
                let keep = keep.clone();
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 {
                            break;
                        }
                        keep.lock().unwrap().extend_from_slice(&buf[..n]);
                        if find(&buf[..n], b"\r\n\r\n").is_some() && buf.starts_with(b"GET /plain")
                        {
                            let _ = s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await;
                        }
                    }
                });
            }
        });
        let mut p = EgressPolicy::default();
        for h in ["incidents.example", "ci.example"] {
            let h = HostName::parse(h).unwrap();
            p.allowed.insert(h.clone());
            p.mapped.insert(h, addr);
        }
        p.scan = Some(Arc::new(Fake));
        let (tx, rx) = mpsc::unbounded_channel();
        (EgressProxy::start(p, tx).await.unwrap(), rx, got)
    }

    /// A client frame: FIN, `opcode`, masked with a fixed key.
    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let key = [0x11, 0x22, 0x33, 0x44];
        let mut f = vec![0x80 | opcode];
        if payload.len() < 126 {
            f.push(0x80 | payload.len() as u8);
        } else {
            f.push(0x80 | 126);
            f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        f.extend_from_slice(&key);
        f.extend(payload.iter().zip(key.iter().cycle()).map(|(b, k)| b ^ k));
        f
    }

    async fn tunnel(proxy: &EgressProxy, host: &str) -> TcpStream {
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(format!("CONNECT {host}:80 HTTP/1.1\r\nHost: {host}:80\r\n\r\n").as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
        s.write_all(
            b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        )
        .await
        .unwrap();
        s
    }

    async fn wait_closed(s: &mut TcpStream) {
        let mut buf = [0u8; 64];
        let closed = tokio::time::timeout(std::time::Duration::from_secs(5), async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        })
        .await;
        assert!(closed.is_ok(), "the tunnel was not closed");
    }

    #[tokio::test]
    async fn websocket_frames_carrying_a_secret_are_not_forwarded() {
        let (proxy, mut rx, got) = scanning_proxy().await;
        let mut s = tunnel(&proxy, "incidents.example").await;
        s.write_all(&frame(1, b"hello")).await.unwrap();
        s.write_all(&frame(1, b"x=hunter2-secret")).await.unwrap();
        wait_closed(&mut s).await;
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen = got.lock().unwrap().clone();
            if find(&seen, &frame(1, b"hello")).is_some() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            find(&seen, &frame(1, b"hello")).is_some(),
            "the clean frame was forwarded"
        );
        assert!(find(&seen, &frame(1, b"x=hunter2-secret")).is_none());
        let mut leaks = Vec::new();
        while let Ok(r) = rx.try_recv() {
            leaks.extend(r.secret_egress);
        }
        assert_eq!(leaks.len(), 1, "{leaks:?}");
        assert_eq!(leaks[0].part, "websocket frame");
    }

    #[tokio::test]
    async fn a_secret_split_over_two_frames_is_still_found() {
        let (proxy, mut rx, got) = scanning_proxy().await;
        let mut s = tunnel(&proxy, "incidents.example").await;
        s.write_all(&frame(1, b"hunter2")).await.unwrap();
        s.write_all(&frame(0, b"-secret")).await.unwrap();
        wait_closed(&mut s).await;
        assert!(find(&got.lock().unwrap(), &frame(0, b"-secret")).is_none());
        let r = rx.recv().await.unwrap();
        assert!(r.secret_egress.is_none(), "the CONNECT itself is allowed");
        let r = rx.recv().await.unwrap();
        assert_eq!(r.secret_egress.unwrap().part, "websocket frame");
        assert!(!r.allowed);
    }

    #[tokio::test]
    async fn the_secret_may_go_to_its_own_host_through_a_tunnel() {
        let (proxy, _rx, got) = scanning_proxy().await;
        let mut s = tunnel(&proxy, "ci.example").await;
        s.write_all(&frame(1, b"x=hunter2-secret")).await.unwrap();
        for _ in 0..50 {
            if find(&got.lock().unwrap(), &frame(1, b"x=hunter2-secret")).is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the frame to the secret's own host was not forwarded");
    }

    #[tokio::test]
    async fn plain_http_requests_are_scanned_before_they_are_sent() {
        let (proxy, mut rx, got) = scanning_proxy().await;
        for (req, part) in [
            ("GET http://incidents.example/p?d=hunter2-secret HTTP/1.1\r\nHost: incidents.example\r\n\r\n".to_string(), "url"),
            ("GET http://incidents.example/p HTTP/1.1\r\nHost: incidents.example\r\nX-D: hunter2-secret\r\n\r\n".to_string(), "header x-d"),
            ("POST http://incidents.example/p HTTP/1.1\r\nHost: incidents.example\r\nContent-Length: 16\r\n\r\nd=hunter2-secret".to_string(), "body"),
        ] {
            let mut s = TcpStream::connect(proxy.addr).await.unwrap();
            s.write_all(req.as_bytes()).await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"HTTP/1.1 403"), "{part}");
            let r = rx.recv().await.unwrap();
            assert_eq!(r.secret_egress.unwrap().part, part);
            assert!(!r.reason.unwrap().contains("hunter2"));
            assert_eq!(r.path, "");
        }
        assert!(find(&got.lock().unwrap(), b"hunter2-secret").is_none());
        // A clean request still goes through.
        let mut s = TcpStream::connect(proxy.addr).await.unwrap();
        s.write_all(
            b"GET http://incidents.example/plain HTTP/1.1\r\nHost: incidents.example\r\n\r\n",
        )
        .await
        .unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).await.unwrap();
        assert!(
            buf[..n].starts_with(b"HTTP/1.1 204"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    #[test]
    fn frames_parse_only_when_whole() {
        let f = frame(2, &[7u8; 300]);
        assert_eq!(next_frame(&f[..f.len() - 1]), None);
        let (len, payload) = next_frame(&f).unwrap();
        assert_eq!((len, payload), (f.len(), vec![7u8; 300]));
        assert_eq!(next_frame(&[0x81]), None);
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
