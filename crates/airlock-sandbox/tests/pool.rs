//! The sandbox pool against a real Chromium: pre-started sandboxes are handed out once each,
//! never share a profile, and leave nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use airlock_core::host::HostName;
use airlock_core::Action;
use airlock_sandbox::pool::SandboxPool;
use airlock_sandbox::{BrowserSandbox, EgressPolicy, SandboxConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The page reports what an earlier visit left in this profile's storage, then leaves a mark.
const PAGE: &str = "<!doctype html><title>loading</title><script>\
document.title = localStorage.getItem('mark') || 'fresh'; localStorage.setItem('mark', 'used');\
</script><p>pool</p>";

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{PAGE}",
                    PAGE.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

async fn visit(sb: &mut BrowserSandbox) -> String {
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    sb.location().await.unwrap().1
}

#[tokio::test]
async fn pooled_sandboxes_are_used_once_and_never_share_a_profile() {
    let addr = serve().await;
    let mut egress = EgressPolicy::default();
    let h = HostName::parse("app.example").unwrap();
    egress.allowed.insert(h.clone());
    egress.mapped.insert(h, addr);
    let mut pool = SandboxPool::new(SandboxConfig::new(
        &format!("pool-{}", std::process::id()),
        egress,
    ));
    pool.fill(2).await.unwrap();
    assert_eq!(pool.ready(), 2);

    let (mut a, _ra) = pool.take().await.unwrap();
    assert_eq!(pool.ready(), 1);
    assert_eq!(visit(&mut a).await, "fresh");
    // Storage does persist within one sandbox, so "fresh" below means a different profile.
    assert_eq!(visit(&mut a).await, "used");
    let ta = a.teardown().await;
    assert!(ta.run_dir_removed && ta.processes_remaining.is_empty());

    let (mut b, _rb) = pool.take().await.unwrap();
    assert_eq!(pool.ready(), 0);
    assert_eq!(visit(&mut b).await, "fresh");
    let tb = b.teardown().await;
    assert_ne!(ta.run_dir, tb.run_dir);
    assert!(tb.run_dir_removed);

    // An empty pool still hands out a fresh sandbox, launched on demand.
    let (mut c, _rc) = pool.take().await.unwrap();
    assert_eq!(visit(&mut c).await, "fresh");
    let tc = c.teardown().await;
    assert!(tc.run_dir_removed);
    pool.fill(1).await.unwrap();
    pool.drain().await;
}
