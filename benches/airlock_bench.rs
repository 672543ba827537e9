//! Airlock's benchmarks: each figure is printed as a ratio against a baseline measured in the
//! same process, on the same machine, in the same run. No timed assertions anywhere.
//!
//! `cargo bench --bench airlock_bench` (needs Chromium and bubblewrap, like the tests).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "a benchmark fails loudly"
)]

use airlock_audit::{AuditStore, SqliteStore};
use airlock_core::host::HostName;
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, Modifiers, MouseButton, Point, Target};
use airlock_policy::cedar::PolicyEngine;
use airlock_policy::{decide, GateContext};
use airlock_sandbox::pool::SandboxPool;
use airlock_sandbox::{BrowserSandbox, EgressPolicy, Isolation, SandboxConfig};
use serde_json::json;
use std::io::Write;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PAGE: &str = r#"<!doctype html><title>0</title><body style="font-family:sans-serif">
<h1>Bench</h1><p>A page with a button that changes the DOM when clicked.</p>
<button id=b style="position:absolute;left:100px;top:200px;width:200px;height:40px"
 onclick="document.title = String(Number(document.title) + 1); const p = document.createElement('p'); p.textContent = 'clicked ' + document.title; document.body.appendChild(p);">Count</button>
<table>"#;

async fn serve() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut body = PAGE.to_string();
    for i in 0..60 {
        body.push_str(&format!(
            "<tr><td>row {i}</td><td><a href='/r/{i}'>open {i}</a></td></tr>"
        ));
    }
    body.push_str("</table>");
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn stats(mut v: Vec<Duration>) -> (f64, f64, f64) {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let p = |q: f64| ms(v[((v.len() as f64 - 1.0) * q).round() as usize]);
    let mean = v.iter().map(|d| ms(*d)).sum::<f64>() / v.len() as f64;
    (mean, p(0.5), p(0.95))
}

fn line(name: &str, ours: (f64, f64, f64), base: (f64, f64, f64), unit: &str) {
    println!(
        "{name:<44} airlock p50 {:>9.3}{unit} p95 {:>9.3}{unit} | baseline p50 {:>9.3}{unit} p95 {:>9.3}{unit} | ratio (p50) {:>6.2}x",
        ours.1, ours.2, base.1, base.2, ours.1 / base.1.max(1e-9)
    );
}

fn manifest() -> TaskManifest {
    TaskManifest::from_toml(
        r#"
[task]
name = "bench"
goal = "click"
start_url = "http://app.example/"
[scope]
domains = ["app.example"]
[[effects]]
host = "app.example"
allow = ["read", "draft"]
[[acceptance]]
kind = "text_present"
text = "x"
"#,
    )
    .unwrap()
}

fn egress(addr: std::net::SocketAddr) -> EgressPolicy {
    let mut p = EgressPolicy::default();
    let h = HostName::parse("app.example").unwrap();
    p.allowed.insert(h.clone());
    p.mapped.insert(h, addr);
    p
}

/// The floor: the same click, wait-for-change and screenshot as raw CDP calls.
async fn raw_step(cdp: &airlock_sandbox::cdp::Cdp, session: &str, n: u32) {
    let t = Duration::from_secs(10);
    for (kind, clicks) in [("mouseMoved", 0), ("mousePressed", 1), ("mouseReleased", 1)] {
        cdp.call(
            Some(session),
            "Input.dispatchMouseEvent",
            json!({"type": kind, "x": 200, "y": 220, "button": if clicks == 0 { "none" } else { "left" }, "clickCount": clicks}),
            t,
        )
        .await
        .unwrap();
    }
    loop {
        let v = cdp
            .call(
                Some(session),
                "Runtime.evaluate",
                json!({"expression": "document.title", "returnByValue": true}),
                t,
            )
            .await
            .unwrap();
        if v["result"]["value"].as_str() == Some(n.to_string().as_str()) {
            break;
        }
    }
    cdp.call(
        Some(session),
        "Page.captureScreenshot",
        json!({"format": "png"}),
        t,
    )
    .await
    .unwrap();
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let addr = serve().await;
    let iterations = std::env::var("AIRLOCK_BENCH_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20u32);
    println!(
        "airlock benchmarks ({iterations} iterations each; {} cores)",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(0)
    );

    // 1. Session start: isolated sandbox ready for its first action vs plain Chromium (the
    //    baseline); the pool below is compared with the isolated cold start.
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for i in 0..5 {
        let t0 = Instant::now();
        let (mut sb, _rx) = BrowserSandbox::launch(SandboxConfig::new(
            &format!("bench-start-{i}-{}", std::process::id()),
            egress(addr),
        ))
        .await
        .unwrap();
        sb.execute(
            &Action::Navigate {
                url: "http://app.example/".into(),
            },
            None,
        )
        .await
        .unwrap();
        ours.push(t0.elapsed());
        sb.teardown().await;
        let t0 = Instant::now();
        let mut cfg = SandboxConfig::new(
            &format!("bench-plain-{i}-{}", std::process::id()),
            egress(addr),
        );
        cfg.isolation = Isolation::InsecureHost;
        cfg.browser_uses_proxy = false;
        cfg.intercept = false;
        let (sb, _rx) = BrowserSandbox::launch(cfg).await.unwrap();
        let (cdp, session) = sb.raw_cdp_for_benchmarks();
        cdp.call(
            Some(&session),
            "Page.navigate",
            json!({"url": format!("http://127.0.0.1:{}/", addr.port())}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
        base.push(t0.elapsed());
        sb.teardown().await;
    }
    let cold = stats(ours.clone());
    line("session start to first page (ms)", cold, stats(base), "ms");

    // 1b. The same from a pool of pre-started, never-used sandboxes (filled off the clock; each
    // taken once and torn down after its run), against the cold isolated start above.
    let mut pool = SandboxPool::new(SandboxConfig::new(
        &format!("bench-pool-{}", std::process::id()),
        egress(addr),
    ));
    let mut pooled = Vec::new();
    for _ in 0..5 {
        pool.fill(1).await.unwrap();
        let t0 = Instant::now();
        let (mut sb, _rx) = pool.take().await.unwrap();
        sb.execute(
            &Action::Navigate {
                url: "http://app.example/".into(),
            },
            None,
        )
        .await
        .unwrap();
        pooled.push(t0.elapsed());
        sb.teardown().await;
    }
    pool.drain().await;
    line(
        "session start from a pre-started pool (ms)",
        stats(pooled),
        cold,
        "ms",
    );

    // 2. Host overhead per step: the full gated step vs the same CDP calls made directly.
    let home = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(home.path()).unwrap();
    store.begin_run("bench-run", &json!({})).unwrap();
    let policy = PolicyEngine::defaults().unwrap();
    let m = manifest();
    let (mut sb, _rx) = BrowserSandbox::launch(SandboxConfig::new(
        &format!("bench-step-{}", std::process::id()),
        egress(addr),
    ))
    .await
    .unwrap();
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let click = Action::Click {
        target: Target::Point(Point { x: 200.0, y: 220.0 }),
        button: MouseButton::Left,
        count: 1,
        modifiers: Modifiers::default(),
    };
    let mut ours = Vec::new();
    let mut obs = sb.observe().await.unwrap();
    for _ in 0..iterations {
        let t0 = Instant::now();
        let r = sb
            .resolve(click.target().unwrap(), &obs.refs)
            .await
            .unwrap();
        let (page, _) = sb.location().await.unwrap();
        let d = decide(
            &click,
            &GateContext {
                manifest: &m,
                policy: &policy,
                principal: "agent:bench",
                page_url: &page,
                element: Some(&r.facts),
                focused: None,
                tainted: false,
                step: 1,
                effects_done: &[],
            },
        );
        store
            .append(
                "bench-run",
                "decision",
                &json!({"decision": d, "element": r.facts}),
                &[],
            )
            .unwrap();
        sb.execute(&click, Some(&r)).await.unwrap();
        obs = sb.observe().await.unwrap();
        let shot = store.put_blob(&obs.screenshot_png).unwrap();
        store
            .append(
                "bench-run",
                "observation",
                &json!({"snapshot": obs.snapshot}),
                &[shot],
            )
            .unwrap();
        ours.push(t0.elapsed());
    }
    let raw_tree = sb.raw_cdp_for_benchmarks();
    let ax = raw_tree
        .0
        .call(
            Some(&raw_tree.1),
            "Accessibility.getFullAXTree",
            json!({}),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let raw_chars = ax.to_string().len();
    let snap_chars = obs.snapshot.len();
    sb.teardown().await;

    let mut cfg = SandboxConfig::new(&format!("bench-floor-{}", std::process::id()), egress(addr));
    cfg.isolation = Isolation::InsecureHost;
    cfg.browser_uses_proxy = false;
    cfg.intercept = false;
    let (sb, _rx) = BrowserSandbox::launch(cfg).await.unwrap();
    let (cdp, session) = sb.raw_cdp_for_benchmarks();
    cdp.call(
        Some(&session),
        "Page.navigate",
        json!({"url": format!("http://127.0.0.1:{}/", addr.port())}),
        Duration::from_secs(10),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut base = Vec::new();
    for n in 1..=iterations {
        let t0 = Instant::now();
        raw_step(&cdp, &session, n).await;
        base.push(t0.elapsed());
    }
    sb.teardown().await;
    line(
        "gated step vs raw CDP click+wait+PNG (ms)",
        stats(ours),
        stats(base),
        "ms",
    );

    // 3. Policy decision latency: Cedar-backed gate vs the classifier alone.
    let el = airlock_core::ElementFacts {
        role: "button".into(),
        name: "Count".into(),
        tag: "button".into(),
        frame_url: "http://app.example/".into(),
        ..Default::default()
    };
    let mut ours = Vec::new();
    let mut base = Vec::new();
    for _ in 0..2000 {
        let t0 = Instant::now();
        let _ = decide(
            &click,
            &GateContext {
                manifest: &m,
                policy: &policy,
                principal: "agent:bench",
                page_url: "http://app.example/",
                element: Some(&el),
                focused: None,
                tainted: false,
                step: 1,
                effects_done: &[],
            },
        );
        ours.push(t0.elapsed());
        let t0 = Instant::now();
        let _ = airlock_policy::classify(&click, "http://app.example/", Some(&el), None);
        base.push(t0.elapsed());
    }
    let (o, b) = (stats(ours.clone()), stats(base));
    line("policy decision, Cedar gate vs classifier (ms)", o, b, "ms");
    ours.sort();
    println!(
        "{:<44} p99 {:.3} ms",
        "  policy decision p99",
        ours[(ours.len() * 99) / 100].as_secs_f64() * 1000.0
    );

    // 4. Audit append with durability vs an fsynced append to a plain file (the floor).
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.path().join("floor.log"))
        .unwrap();
    let payload = json!({"decision": {"verdict": "allow", "rules": ["airlock.permit-declared-effects"]}, "summary": "Click button 'Count'"});
    for _ in 0..200 {
        let t0 = Instant::now();
        store
            .append("bench-run", "decision", &payload, &[])
            .unwrap();
        ours.push(t0.elapsed());
        let t0 = Instant::now();
        f.write_all(payload.to_string().as_bytes()).unwrap();
        f.sync_data().unwrap();
        base.push(t0.elapsed());
    }
    let (o, b) = (stats(ours), stats(base));
    line(
        "audit append (durable) vs fsync'd file append (ms)",
        o,
        b,
        "ms",
    );
    println!(
        "{:<44} {:.0} events/s",
        "  audit append throughput",
        1000.0 / o.0
    );

    // 5. Observation size.
    println!(
        "{:<44} snapshot {snap_chars} chars vs raw AX tree {raw_chars} chars | ratio {:.3}",
        "observation size",
        snap_chars as f64 / raw_chars.max(1) as f64
    );

    // 6. Concurrency: N whole runs (fresh portal, audit home, sandbox each) at once vs one.
    concurrency().await;
}

/// Proportional set size (MiB) of every process of the eval runs in flight: the processes
/// whose environment carries `AIRLOCK_RUN=eval-…` (every sandbox process does). PSS splits
/// pages Chromium processes share, so the sum is what the runs really cost, and other work on
/// a shared machine does not count.
fn runs_pss_mib() -> (f64, usize) {
    let mut kib = 0.0;
    let mut runs = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let env = std::fs::read(entry.path().join("environ")).unwrap_or_default();
        let Some(run) = env
            .split(|b| *b == 0)
            .find(|kv| kv.starts_with(b"AIRLOCK_RUN=eval-"))
        else {
            continue;
        };
        runs.insert(run.to_vec());
        let rollup = std::fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
        kib += rollup
            .lines()
            .find(|l| l.starts_with("Pss:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0);
    }
    (kib / 1024.0, runs.len())
}

/// Runs `n` copies of `scenario` at once; returns the wall time, the peak PSS of all runs and
/// the median PSS per live run over the samples (MiB).
async fn batch(scenario: &airlock_eval::Scenario, n: usize) -> (Duration, f64, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut peak = 0.0f64;
            let mut per_run = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let (total, runs) = runs_pss_mib();
                peak = peak.max(total);
                if runs > 0 {
                    per_run.push(total / runs as f64);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            per_run.sort_by(f64::total_cmp);
            (peak, per_run.get(per_run.len() / 2).copied().unwrap_or(0.0))
        })
    };
    let opts = airlock_eval::EvalOptions {
        jobs: n,
        chromium: None,
        progress: airlock_eval::ProgressStyle::Quiet,
        color: false,
        homes: None,
    };
    let t0 = Instant::now();
    let report = airlock_eval::run_suite("bench", vec![scenario.clone(); n], &opts).await;
    let wall = t0.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (peak, per_run) = sampler.await.unwrap_or((0.0, 0.0));
    assert!(!report.failed(), "{}", report.table());
    (wall, peak, per_run)
}

async fn concurrency() {
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("suites/ci-portal/modal-notice");
    let scenario = airlock_eval::Scenario::load(&dir).unwrap();
    let (one, _, one_mib) = batch(&scenario, 1).await;
    let base = 1.0 / one.as_secs_f64();
    println!(
        "{:<44} 1 run: {:.2} s, {:.1} runs/min, {:.0} MiB PSS per live run",
        "concurrency (ci-portal/modal-notice, whole runs)",
        one.as_secs_f64(),
        base * 60.0,
        one_mib
    );
    for n in [2usize, 4, 8] {
        let (wall, peak, mib) = batch(&scenario, n).await;
        let throughput = n as f64 / wall.as_secs_f64();
        println!(
            "{:<44} {n} runs: {:.2} s, {:.1} runs/min, {:.0} MiB PSS per live run, peak {:.0} MiB | throughput ratio vs 1 run {:.2}x",
            "",
            wall.as_secs_f64(),
            throughput * 60.0,
            mib,
            peak,
            throughput / base
        );
    }
}
