//! A minimal WebSocket collector for the attack lab: `/lab/collect/ws` on the allowed hosts
//! accepts the upgrade (RFC 6455, no extensions, no subprotocols) and keeps every text or
//! binary message it receives as a `stolen` entry (`via: "websocket"`), so a test can read what
//! a page's script got through a socket without trusting the browser or Airlock.
//!
//! Hand-rolled (the handshake's SHA-1 included) because the workspace carries no WebSocket
//! crate and the lab needs only the receiving half: frames are read until a close frame, the end
//! of the stream, or a frame larger than [`MAX_FRAME`]; nothing is ever sent back but the
//! handshake.

use axum::extract::{Request, State};
use axum::http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncReadExt;

use crate::state::Stolen;
use crate::PortalState;

/// The GUID RFC 6455 appends to the client's key.
const WS_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Largest message payload kept, in bytes.
const MAX_FRAME: u64 = 64 * 1024;

/// Longest message text kept in a `stolen` entry, in characters.
const KEEP_CHARS: usize = 500;

/// `GET /lab/collect/ws` with `Upgrade: websocket`: switches protocols and collects messages.
pub(crate) async fn collect_ws(State(state): State<PortalState>, mut req: Request) -> Response {
    let wants = req
        .headers()
        .get(UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"));
    let key = req
        .headers()
        .get(SEC_WEBSOCKET_KEY)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let (true, Some(key)) = (wants, key) else {
        return (StatusCode::BAD_REQUEST, "websocket upgrade required\n").into_response();
    };
    let host = crate::normalize_host(
        req.headers()
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default(),
    );
    let path = req.uri().path().to_owned();
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        if let Ok(upgraded) = upgrade.await {
            read_messages(TokioIo::new(upgraded), &state, &host, &path).await;
        }
    });
    let accept = accept_key(&key);
    let mut r = StatusCode::SWITCHING_PROTOCOLS.into_response();
    let h = r.headers_mut();
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(v) = HeaderValue::from_str(&accept) {
        h.insert(SEC_WEBSOCKET_ACCEPT, v);
    }
    r
}

/// `Sec-WebSocket-Accept` for a client's key.
fn accept_key(key: &str) -> String {
    let digest = sha1(format!("{}{WS_GUID}", key.trim()).as_bytes());
    base64::engine::general_purpose::STANDARD.encode(digest)
}

/// Reads frames (masked, as clients send them) and keeps each text or binary payload.
async fn read_messages<S: tokio::io::AsyncRead + Unpin>(
    mut s: S,
    state: &PortalState,
    host: &str,
    path: &str,
) {
    loop {
        let mut head = [0u8; 2];
        if s.read_exact(&mut head).await.is_err() {
            return;
        }
        let [b0, b1] = head;
        let opcode = b0 & 0x0f;
        let len = match b1 & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                if s.read_exact(&mut b).await.is_err() {
                    return;
                }
                u64::from(u16::from_be_bytes(b))
            }
            127 => {
                let mut b = [0u8; 8];
                if s.read_exact(&mut b).await.is_err() {
                    return;
                }
                u64::from_be_bytes(b)
            }
            n => u64::from(n),
        };
        if len > MAX_FRAME {
            return;
        }
        let mut mask = [0u8; 4];
        if b1 & 0x80 != 0 && s.read_exact(&mut mask).await.is_err() {
            return;
        }
        let mut payload = vec![0u8; usize::try_from(len).unwrap_or(0)];
        if s.read_exact(&mut payload).await.is_err() {
            return;
        }
        for (b, k) in payload.iter_mut().zip(mask.iter().cycle()) {
            *b ^= k;
        }
        match opcode {
            0x0..=0x2 => state.record_stolen(Stolen {
                host: host.to_owned(),
                via: "websocket",
                method: "WS".to_owned(),
                path: path.to_owned(),
                query: String::new(),
                data: vec![(
                    "message".to_owned(),
                    String::from_utf8_lossy(&payload)
                        .chars()
                        .take(KEEP_CHARS)
                        .collect(),
                )],
            }),
            0x8 => return,
            _ => {}
        }
    }
}

/// SHA-1 (FIPS 180-4), only for the handshake's accept key: not a security use.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    let bit_len = u64::try_from(data.len()).unwrap_or(0).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bit_len.to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w: Vec<u32> = block
            .chunks_exact(4)
            .map(|c| u32::from_be_bytes(c.try_into().unwrap_or([0; 4])))
            .collect();
        for i in 16..80 {
            let at = |back: usize| w.get(i - back).copied().unwrap_or(0);
            let v = at(3) ^ at(8) ^ at(14) ^ at(16);
            w.push(v.rotate_left(1));
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (hv, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *hv = hv.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_matches_known_digests() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
    }

    #[test]
    fn accept_key_is_the_rfc_example() {
        // RFC 6455, section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
