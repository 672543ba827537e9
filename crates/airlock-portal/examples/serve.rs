//! Serves the portal on a fixed address until Ctrl-C, for poking at it with a browser.
//!
//! `cargo run -p airlock-portal --example serve -- 127.0.0.1:8099 [spinner_ms]`
//!
//! Point a browser at it as an HTTP proxy (`--proxy-server=http://127.0.0.1:8099`) and open
//! `http://ci.example/login` or `http://incidents.example/`.

use airlock_portal::{start, PortalConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let listen = args.next().unwrap_or_else(|| "127.0.0.1:8099".to_owned());
    let spinner_ms = match args.next() {
        Some(ms) => ms.parse()?,
        None => PortalConfig::default().spinner_ms,
    };
    let handle = start(
        listen.parse()?,
        PortalConfig {
            spinner_ms,
            ..PortalConfig::default()
        },
    )
    .await?;
    println!("portal listening on {}", handle.addr);
    println!("sor token: {}", handle.sor_token);
    tokio::signal::ctrl_c().await?;
    handle.shutdown();
    Ok(())
}
