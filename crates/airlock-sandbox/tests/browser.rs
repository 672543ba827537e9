//! The sandbox against a real Chromium and purpose-built pages served on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]

use airlock_core::host::HostName;
use airlock_core::{Action, Modifiers, MouseButton, Point, Target, TypedText};
use airlock_sandbox::{BrowserSandbox, EgressPolicy, SandboxConfig, SandboxError};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A tiny HTTP/1.1 server: path → HTML. Enough to host fixture pages without a framework.
async fn serve(pages: HashMap<&'static str, &'static str>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let pages = Arc::new(pages);
    tokio::spawn(async move {
        loop {
            let (mut s, _) = listener.accept().await.unwrap();
            let pages = pages.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let path = path.split('?').next().unwrap_or("/").to_string();
                let (status, body) = match pages.get(path.as_str()) {
                    Some(b) => ("200 OK", b.to_string()),
                    None => ("404 Not Found", "<h1>not found</h1>".to_string()),
                };
                let resp = format!(
                    "HTTP/1.1 {status}\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn policy(addr: SocketAddr) -> EgressPolicy {
    let mut p = EgressPolicy::default();
    let h = HostName::parse("app.example").unwrap();
    p.allowed.insert(h.clone());
    p.mapped.insert(h, addr);
    p
}

async fn open(pages: HashMap<&'static str, &'static str>, name: &str) -> BrowserSandbox {
    let addr = serve(pages).await;
    let id = format!("{name}-{}", std::process::id());
    let (sb, _rx) = BrowserSandbox::launch(SandboxConfig::new(&id, policy(addr)))
        .await
        .expect("launch");
    sb
}

fn click(target: Target) -> Action {
    Action::Click {
        target,
        button: MouseButton::Left,
        count: 1,
        modifiers: Modifiers::default(),
    }
}

const FORM: &str = r#"<!doctype html><title>Form</title>
<form method=post action="/save"><label for=n>Note</label><input id=n name=note value="hi">
<input name=action value="clobber"><button type=submit style="position:absolute;left:100px;top:200px;width:200px;height:40px">Save</button></form>
<button style="position:absolute;left:100px;top:300px">Twin</button><button style="position:absolute;left:400px;top:300px">Twin</button>
<button id=cover style="position:absolute;left:100px;top:400px;width:200px;height:40px">Hidden target</button>
<div style="position:absolute;left:90px;top:390px;width:300px;height:80px;background:red">overlay</div>"#;

#[tokio::test]
async fn observes_resolves_and_tears_down_cleanly() {
    let mut sb = open(HashMap::from([("/", FORM)]), "observe").await;
    let pid = sb.browser_pid();
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    assert_eq!(obs.url, "http://app.example/");
    assert_eq!(obs.title, "Form");
    assert!(obs.screenshot_png.starts_with(b"\x89PNG"));
    assert!(obs.snapshot.contains("button \"Save\""), "{}", obs.snapshot);

    // A point resolves to the element under it, with the form it would submit.
    let r = sb
        .resolve(&Target::Point(Point { x: 150.0, y: 220.0 }), &obs.refs)
        .await
        .unwrap();
    assert_eq!(r.facts.role, "button");
    assert_eq!(r.facts.name, "Save");
    assert!(r.facts.is_submit);
    let form = r.facts.form.clone().unwrap();
    // `<input name=action>` cannot clobber where the form really posts.
    assert_eq!(form.action, "http://app.example/save");
    assert_eq!(form.method, "POST");
    assert!(form.fields.contains(&("note".into(), "hi".into())));

    // Role+name matching several elements fails closed.
    let twin = Target::Role {
        role: "button".into(),
        name: "Twin".into(),
    };
    let err = sb.resolve(&twin, &obs.refs).await.unwrap_err();
    assert!(err.to_string().contains("2 elements match"), "{err}");
    // Zero matches fails closed too.
    let none = Target::Role {
        role: "button".into(),
        name: "Launch".into(),
    };
    let err = sb.resolve(&none, &obs.refs).await.unwrap_err();
    assert!(err.to_string().contains("no element matches"), "{err}");
    // An element under an overlay resolves, with the cover in its facts for the gate.
    let hidden = Target::Role {
        role: "button".into(),
        name: "Hidden target".into(),
    };
    let r = sb.resolve(&hidden, &obs.refs).await.unwrap();
    let why = r.facts.unseen().expect("covered");
    assert!(why.contains("covered by"), "{why}");
    // A ref that was never observed is refused.
    let err = sb
        .resolve(&Target::Ref("e999999".into()), &obs.refs)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("not in the latest observation"),
        "{err}"
    );

    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
    assert!(report.processes_killed.contains(&pid));
    assert!(airlock_sandbox::launch::run_processes(
        pid,
        &format!("observe-{}", std::process::id())
    )
    .is_empty());
}

const DRIFT: &str = r#"<!doctype html><title>Drift</title>
<button id=a style="position:absolute;left:100px;top:100px;width:200px;height:40px" onclick="document.title='clicked A'">Safe</button>
<script>setTimeout(() => { const b = document.createElement('button'); b.textContent = 'Delete everything';
b.style = 'position:absolute;left:100px;top:100px;width:200px;height:40px'; b.onclick = () => document.title = 'DELETED';
document.body.appendChild(b); }, 1500);</script>"#;

#[tokio::test]
async fn a_target_that_moves_before_dispatch_is_not_clicked() {
    let mut sb = open(HashMap::from([("/", DRIFT)]), "drift").await;
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    let act = click(Target::Point(Point { x: 150.0, y: 120.0 }));
    let r = sb.resolve(act.target().unwrap(), &obs.refs).await.unwrap();
    assert_eq!(r.facts.name, "Safe");
    // The page swaps the button after the decision.
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let err = sb.execute(&act, Some(&r)).await.unwrap_err();
    assert!(matches!(err, SandboxError::Drift(_)), "{err}");
    let (_, title) = sb.location().await.unwrap();
    assert_eq!(title, "Drift", "nothing may have been clicked");
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

/// A real field and decoys hidden in every way the lab knows, each with its own name, plus a
/// panel that covers the real field once `#cover` is clicked... by the page itself, on a timer.
const DECOYS: &str = r#"<!doctype html><title>Decoys</title><body style="margin:0;overflow:hidden">
<input type=password id=real aria-label="Real" style="position:absolute;left:100px;top:20px;width:300px;height:30px">
<input type=password id=opacity aria-label="Opacity" style="position:absolute;left:100px;top:80px;width:300px;height:30px;opacity:0">
<input type=password id=tiny aria-label="Tiny" style="position:absolute;left:100px;top:140px;width:1px;height:1px;padding:0;border:0">
<input type=password id=offscreen aria-label="Offscreen" style="position:absolute;left:-9999px;top:200px;width:300px;height:30px">
<input type=password id=clip aria-label="Clip" style="position:absolute;left:100px;top:260px;width:300px;height:30px;clip-path:inset(100%)">
<input type=password id=covered aria-label="Covered" style="position:absolute;left:100px;top:320px;width:300px;height:30px">
<div style="position:absolute;left:90px;top:310px;width:320px;height:50px;background:#fff;z-index:5">Promo</div>
<input type=password id=hidden aria-label="Hidden" style="position:absolute;left:100px;top:380px;width:300px;height:30px;visibility:hidden">
<div style="position:absolute;left:100px;top:440px;width:0;height:0;overflow:hidden"><input type=password id=zero aria-label="Zero" style="width:300px;height:30px"></div>
<input type=password id=twin aria-label="Real" style="position:absolute;left:100px;top:500px;width:300px;height:30px;opacity:0">
<script>setTimeout(() => { const d = document.createElement('div'); d.textContent = 'Late promo';
d.style = 'position:absolute;left:90px;top:10px;width:320px;height:50px;background:#fff;z-index:5';
document.body.appendChild(d); }, 1500);</script></body>"#;

#[tokio::test]
async fn decoys_are_unseen_whatever_form_names_them_and_a_late_cover_stops_dispatch() {
    let mut sb = open(HashMap::from([("/", DECOYS)]), "decoys").await;
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    for (id, name) in [
        ("opacity", "Opacity"),
        ("tiny", "Tiny"),
        ("offscreen", "Offscreen"),
        ("clip", "Clip"),
        ("covered", "Covered"),
        ("hidden", "Hidden"),
        ("zero", "Zero"),
    ] {
        let by_css = sb
            .resolve(&Target::Css(format!("#{id}")), &obs.refs)
            .await
            .unwrap();
        let why = by_css.facts.unseen();
        assert!(why.is_some(), "#{id} passed as visible: {:?}", by_css.facts);
        let role = Target::Role {
            role: "textbox".into(),
            name: name.into(),
        };
        // `visibility: hidden` keeps it out of the accessibility tree: no match at all.
        match sb.resolve(&role, &obs.refs).await {
            Ok(r) => assert_eq!(r.facts.unseen(), why, "#{id} by role"),
            Err(e) => assert_eq!(id, "hidden", "{e}"),
        }
        if let Some(r) = obs.refs.iter().find(|r| by_css.facts.node_ref == **r) {
            let by_ref = sb
                .resolve(&Target::Ref(r.clone()), &obs.refs)
                .await
                .unwrap();
            assert_eq!(by_ref.facts.unseen(), why, "#{id} by ref");
        }
    }
    // The opacity decoy by point: the same facts.
    let by_point = sb
        .resolve(&Target::Point(Point { x: 250.0, y: 95.0 }), &obs.refs)
        .await
        .unwrap();
    assert!(by_point
        .facts
        .unseen()
        .is_some_and(|w| w.contains("fully transparent")));
    // "Real" names the real field and an invisible twin: the one a person sees is meant.
    let real = Target::Role {
        role: "textbox".into(),
        name: "Real".into(),
    };
    let r = sb.resolve(&real, &obs.refs).await.unwrap();
    assert_eq!(r.facts.unseen(), None, "{:?}", r.facts);
    let typing = Action::Type {
        target: Some(real),
        text: TypedText::Literal("x".into()),
    };
    // The page covers the real field after the decision: dispatch refuses.
    tokio::time::sleep(std::time::Duration::from_millis(1800)).await;
    let err = sb.execute(&typing, Some(&r)).await.unwrap_err();
    assert!(matches!(err, SandboxError::Drift(_)), "{err}");
    assert!(err.to_string().contains("covered by"), "{err}");
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

const TYPING: &str = r#"<!doctype html><title>T</title><textarea id=t aria-label="Body" style="position:absolute;left:10px;top:10px;width:400px;height:100px"></textarea>"#;

#[tokio::test]
async fn typing_goes_into_the_focused_field() {
    let mut sb = open(HashMap::from([("/", TYPING)]), "typing").await;
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    let act = click(Target::Role {
        role: "textbox".into(),
        name: "Body".into(),
    });
    let r = sb.resolve(act.target().unwrap(), &obs.refs).await.unwrap();
    sb.execute(&act, Some(&r)).await.unwrap();
    let focused = sb.focused().await.unwrap().unwrap();
    assert!(focused.editable && focused.multiline);
    sb.execute(
        &Action::Type {
            target: None,
            text: TypedText::Literal("hello\nworld".into()),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    assert!(obs.snapshot.contains("hello"), "{}", obs.snapshot);
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

#[tokio::test]
async fn with_interception_off_the_proxy_alone_refuses_and_records_other_hosts() {
    let addr = serve(HashMap::from([(
        "/",
        "<title>ok</title><img src='http://evil.example/pixel.png'>",
    )]))
    .await;
    let id = format!("egress-{}", std::process::id());
    // Interception off: the proxy alone must stop and record it.
    let mut cfg = SandboxConfig::new(&id, policy(addr));
    cfg.intercept = false;
    let (mut sb, mut rx) = BrowserSandbox::launch(cfg).await.unwrap();
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let _ = sb
        .execute(
            &Action::Navigate {
                url: "http://127.0.0.1:9/".into(),
            },
            None,
        )
        .await;
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
    let mut records = Vec::new();
    while let Ok(r) = rx.try_recv() {
        records.push(r);
    }
    assert!(records.iter().any(|r| r.host == "app.example" && r.allowed));
    let evil = records
        .iter()
        .find(|r| r.host == "evil.example")
        .expect("evil request recorded");
    assert!(!evil.allowed);
    assert!(records.iter().all(|r| r.host != "127.0.0.1" || !r.allowed));
}

async fn launch_with(
    pages: HashMap<&'static str, &'static str>,
    name: &str,
    isolation: airlock_sandbox::Isolation,
    use_proxy: bool,
    intercept: bool,
) -> (
    BrowserSandbox,
    SocketAddr,
    tokio::sync::mpsc::UnboundedReceiver<airlock_sandbox::EgressRecord>,
) {
    let addr = serve(pages).await;
    let id = format!("{name}-{}", std::process::id());
    let mut cfg = SandboxConfig::new(&id, policy(addr));
    cfg.isolation = isolation;
    cfg.browser_uses_proxy = use_proxy;
    cfg.intercept = use_proxy && intercept;
    let (sb, rx) = BrowserSandbox::launch(cfg).await.expect("launch");
    (sb, addr, rx)
}

#[tokio::test]
async fn the_browser_runs_in_its_own_namespaces_by_default() {
    let mut sb = open(HashMap::from([("/", "<title>x</title>")]), "ns-default").await;
    let (iso, ns) = sb.isolation();
    assert_eq!(iso, airlock_sandbox::Isolation::Namespaces);
    let ns = ns.expect("a network namespace").to_string();
    let ours = std::fs::read_link("/proc/self/ns/net")
        .unwrap()
        .display()
        .to_string();
    assert_ne!(ns, ours);
    // The browser process cannot see the host's files: /etc/passwd is not mounted.
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
    assert_eq!(report.network_namespace.as_deref(), Some(ns.as_str()));
    assert!(report.namespace_released);
}

/// With the proxy switched off, the namespace alone stops a connection to a port on the host's
/// loopback; the same page without namespaces reaches it (so the test can tell the difference).
#[tokio::test]
async fn with_the_proxy_off_the_namespace_alone_blocks_the_host_loopback() {
    let pages = HashMap::from([("/", "<title>host service</title>")]);
    let (mut sb, addr, _) = launch_with(
        pages.clone(),
        "ns-noproxy",
        airlock_sandbox::Isolation::Namespaces,
        false,
        false,
    )
    .await;
    let url = format!("http://127.0.0.1:{}/", addr.port());
    let err = sb
        .execute(&Action::Navigate { url: url.clone() }, None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ERR_CONNECTION_REFUSED"), "{err}");
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");

    let (mut sb, addr, _) = launch_with(
        pages,
        "host-noproxy",
        airlock_sandbox::Isolation::InsecureHost,
        false,
        false,
    )
    .await;
    let url = format!("http://127.0.0.1:{}/", addr.port());
    sb.execute(&Action::Navigate { url }, None)
        .await
        .expect("control: reachable without namespaces");
    let (_, title) = sb.location().await.unwrap();
    assert_eq!(title, "host service");
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

const RAW_SOCKETS: &str = r#"<!doctype html><title>probe</title><script>
window.results = [];
const port = location.search.slice(1);
fetch('http://127.0.0.1:' + port + '/').then(() => results.push('fetch ok'), () => results.push('fetch blocked'));
try { const ws = new WebSocket('ws://127.0.0.1:' + port + '/'); ws.onopen = () => results.push('ws ok'); ws.onerror = () => results.push('ws blocked'); } catch (e) { results.push('ws blocked'); }
fetch('http://evil.example/x').then(() => results.push('evil ok'), () => results.push('evil blocked'));
setTimeout(() => { document.title = 'done ' + results.sort().join(','); }, 800);
</script>"#;

#[tokio::test]
async fn page_scripts_cannot_reach_the_host_loopback_or_other_hosts() {
    let (mut sb, addr, mut rx) = launch_with(
        HashMap::from([("/", RAW_SOCKETS)]),
        "probe",
        airlock_sandbox::Isolation::Namespaces,
        true,
        false,
    )
    .await;
    let url = format!("http://app.example/?{}", addr.port());
    sb.execute(&Action::Navigate { url }, None).await.unwrap();
    let done = sb
        .wait_for(
            &airlock_core::WaitCondition::UrlMatches {
                pattern: "*".into(),
            },
            std::time::Duration::from_millis(10),
        )
        .await
        .unwrap();
    assert!(done);
    let mut title = String::new();
    for _ in 0..50 {
        title = sb.location().await.unwrap().1;
        if title.starts_with("done") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // fetch() to a blocked origin rejects; the WebSocket fails. Nothing got through.
    assert!(!title.contains(" ok"), "{title}");
    assert!(
        title.contains("fetch blocked") && title.contains("evil blocked"),
        "{title}"
    );
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
    let mut records = Vec::new();
    while let Ok(r) = rx.try_recv() {
        records.push(r);
    }
    assert!(
        records
            .iter()
            .filter(|r| r.allowed)
            .all(|r| r.host == "app.example"),
        "{records:?}"
    );
    assert!(
        records.iter().any(|r| r.host == "127.0.0.1" && !r.allowed),
        "{records:?}"
    );
    assert!(
        records
            .iter()
            .any(|r| r.host == "evil.example" && !r.allowed),
        "{records:?}"
    );
    // The only request that reached the fixture server is the page itself (the server would
    // have answered the fetch and the WebSocket upgrade otherwise); the proxy refused the rest.
}

const REDIRECTS: &[(&str, &str)] = &[
    (
        "/",
        r#"<!doctype html><title>start</title><img src="http://evil.example/beacon.gif">
<a id=pop href="http://evil.example/popup" target=_blank style="position:absolute;left:10px;top:10px;width:200px;height:40px;display:block">Open docs</a>
<script>window.open('http://evil.example/storm');</script>"#,
    ),
    (
        "/meta",
        r#"<!doctype html><title>meta</title><meta http-equiv=refresh content="0;url=http://evil.example/landing">"#,
    ),
    (
        "/script",
        r#"<!doctype html><title>script</title><script>location = 'http://mail.example/inbox';</script>"#,
    ),
];

#[tokio::test]
async fn interception_blocks_subresources_popups_and_redirects_with_a_reason() {
    let pages: HashMap<&'static str, &'static str> = REDIRECTS.iter().copied().collect();
    let (mut sb, _addr, mut rx) = launch_with(
        pages,
        "intercept",
        airlock_sandbox::Isolation::Namespaces,
        true,
        true,
    )
    .await;
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    // A target=_blank link: the popup is closed before it loads anything.
    let link = Target::Role {
        role: "link".into(),
        name: "Open docs".into(),
    };
    let r = sb.resolve(&link, &obs.refs).await.unwrap();
    let note = sb.execute(&click(link.clone()), Some(&r)).await.unwrap();
    assert!(note.contains("popup"), "{note}");
    // Meta refresh and script navigation off the task's hosts are refused in the browser.
    let note = sb
        .execute(
            &Action::Navigate {
                url: "http://app.example/meta".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert!(
        note.contains("navigation to evil.example blocked"),
        "{note}"
    );
    let note = sb
        .execute(
            &Action::Navigate {
                url: "http://app.example/script".into(),
            },
            None,
        )
        .await
        .unwrap();
    assert!(
        note.contains(
            "navigation to mail.example blocked: mail.example is not in the task's domains"
        ),
        "{note}"
    );
    let records = sb.drain_intercepts();
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
    assert!(records.iter().any(|r| matches!(r, airlock_sandbox::InterceptRecord::Blocked { url, navigation: false, .. } if url.contains("beacon.gif"))), "{records:?}");
    let popups = records
        .iter()
        .filter(|r| matches!(r, airlock_sandbox::InterceptRecord::PopupClosed { .. }))
        .count();
    // (The window.open without a user gesture is already stopped by Chromium's popup blocker.)
    assert!(
        popups >= 1,
        "the target=_blank popup was closed: {records:?}"
    );
    // Nothing for evil.example or mail.example even reached the proxy.
    while let Ok(r) = rx.try_recv() {
        assert!(
            r.host != "evil.example" && r.host != "mail.example",
            "{r:?} reached the proxy"
        );
    }
}

const OVERLAYS: &str = r#"<!doctype html><title>overlays</title>
<button style="position:absolute;left:100px;top:100px;width:200px;height:40px">Submit</button>
<div onclick="document.title='hijacked'" style="position:absolute;left:90px;top:90px;width:240px;height:60px;opacity:0;background:red">x</div>
<button style="position:absolute;left:100px;top:300px;width:200px;height:40px">Pay</button>
<div onclick="document.title='hijacked'" style="position:absolute;left:90px;top:290px;width:240px;height:60px"></div>
<iframe src="http://other.example/frame" style="position:absolute;left:500px;top:100px;width:300px;height:200px;border:0"></iframe>"#;

#[tokio::test]
async fn points_over_overlays_and_foreign_frames_are_described_for_the_gate() {
    let mut sb = open(HashMap::from([("/", OVERLAYS)]), "overlays").await;
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .unwrap();
    let obs = sb.observe().await.unwrap();
    let at = |x, y| Target::Point(Point { x, y });
    // opacity:0 layer over "Submit": the element under the point is invisible.
    let r = sb.resolve(&at(200.0, 120.0), &obs.refs).await.unwrap();
    assert!(
        r.facts.invisible || r.facts.covers.is_some(),
        "{:?}",
        r.facts
    );
    // A transparent, empty layer over "Pay": the covered button is named.
    let r = sb.resolve(&at(200.0, 320.0), &obs.refs).await.unwrap();
    assert_eq!(
        r.facts.covers.as_deref(),
        Some("button 'Pay'"),
        "{:?}",
        r.facts
    );
    // Inside a frame from another host: the frame element, with its source.
    let r = sb.resolve(&at(650.0, 200.0), &obs.refs).await.unwrap();
    assert_eq!(
        r.facts.frame_src.as_deref(),
        Some("http://other.example/frame"),
        "{:?}",
        r.facts
    );
    let twin = sb
        .resolve(
            &Target::Role {
                role: "button".into(),
                name: "Submit".into(),
            },
            &obs.refs,
        )
        .await;
    // By role, the button under the overlay resolves with the cover in its facts: the gate
    // refuses it as it refuses the point.
    let twin = twin.unwrap();
    assert!(twin.facts.covered_by.is_some(), "{:?}", twin.facts);
    assert!(twin.facts.unseen().is_some());
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

const STATEFUL: &str = r#"<!doctype html><title>...</title><script>
const me = location.search.slice(1);
const seen = 'cookie=[' + document.cookie + '] storage=[' + (localStorage.getItem('who') || '') + ']';
document.cookie = 'who=' + me + '; max-age=3600';
localStorage.setItem('who', me);
document.title = seen;
</script>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_runs_share_no_cookies_storage_processes_or_namespaces() {
    let addr = serve(HashMap::from([("/", STATEFUL)])).await;
    let mut boxes = Vec::new();
    for i in 0..3 {
        let id = format!("parallel{i}-{}", std::process::id());
        boxes.push(tokio::spawn(async move {
            let (sb, _rx) = BrowserSandbox::launch(SandboxConfig::new(&id, policy(addr)))
                .await
                .expect("launch");
            sb
        }));
    }
    let mut sbs = Vec::new();
    for b in boxes {
        sbs.push(b.await.unwrap());
    }
    // Every run stores its name, then reloads: it must see only its own.
    for (i, sb) in sbs.iter_mut().enumerate() {
        let url = format!("http://app.example/?run{i}");
        sb.execute(&Action::Navigate { url: url.clone() }, None)
            .await
            .unwrap();
        let (_, title) = sb.location().await.unwrap();
        assert_eq!(
            title, "cookie=[] storage=[]",
            "run {i} saw another run's state"
        );
        sb.execute(&Action::Navigate { url }, None).await.unwrap();
        let (_, title) = sb.location().await.unwrap();
        assert_eq!(title, format!("cookie=[who=run{i}] storage=[run{i}]"));
    }
    let namespaces: std::collections::BTreeSet<String> = sbs
        .iter()
        .filter_map(|s| s.isolation().1.map(str::to_string))
        .collect();
    assert_eq!(
        namespaces.len(),
        3,
        "each run has its own network namespace"
    );
    let mut all_pids = std::collections::BTreeSet::new();
    for (i, sb) in sbs.iter().enumerate() {
        let pids = airlock_sandbox::launch::run_processes(
            sb.browser_pid(),
            &format!("parallel{i}-{}", std::process::id()),
        );
        assert!(!pids.is_empty());
        for p in pids {
            assert!(all_pids.insert(p), "process {p} belongs to two runs");
        }
    }
    for sb in sbs {
        let report = sb.teardown().await;
        assert!(report.clean(), "{report:?}");
    }
}

/// The run's live processes whose command line contains `needle`.
fn processes_with(sb: &BrowserSandbox, run_id: &str, needle: &str) -> Vec<u32> {
    airlock_sandbox::launch::run_processes(sb.browser_pid(), run_id)
        .into_iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(needle))
                .unwrap_or(false)
        })
        .collect()
}

async fn open_with_timeout(name: &str, secs: u64) -> (BrowserSandbox, String) {
    let addr = serve(HashMap::from([("/", FORM)])).await;
    let id = format!("{name}-{}", std::process::id());
    let mut cfg = SandboxConfig::new(&id, policy(addr));
    cfg.step_timeout = std::time::Duration::from_secs(secs);
    let (mut sb, _rx) = BrowserSandbox::launch(cfg).await.expect("launch");
    sb.execute(
        &Action::Navigate {
            url: "http://app.example/".into(),
        },
        None,
    )
    .await
    .expect("navigate");
    (sb, id)
}

#[tokio::test]
async fn a_killed_renderer_is_a_fault_and_every_later_call_says_so() {
    let (mut sb, id) = open_with_timeout("renderer-crash", 20).await;
    assert!(sb.fault().is_none());
    let renderers = processes_with(&sb, &id, "--type=renderer");
    assert!(!renderers.is_empty());
    for pid in renderers {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::KILL,
        );
    }
    let err = sb.observe().await.unwrap_err();
    assert!(matches!(err, SandboxError::Fault(_)), "{err}");
    assert!(err.to_string().contains("renderer crashed"), "{err}");
    let again = sb.location().await.unwrap_err();
    assert_eq!(again.to_string(), err.to_string());
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

#[tokio::test]
async fn a_browser_that_stops_answering_is_a_fault_not_a_hang() {
    let (mut sb, id) = open_with_timeout("browser-stopped", 3).await;
    for pid in airlock_sandbox::launch::run_processes(sb.browser_pid(), &id) {
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_raw(pid as i32).unwrap(),
            rustix::process::Signal::STOP,
        );
    }
    let err = sb.observe().await.unwrap_err();
    assert!(matches!(err, SandboxError::Fault(_)), "{err}");
    assert!(err.to_string().contains("stopped answering"), "{err}");
    // Teardown does not wait for a polite close and kills the stopped processes.
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}

const LATE_TITLE: &str = r#"<!doctype html><title>early</title><script>
setTimeout(() => { document.title = 'late'; }, 600);
</script>"#;

/// A vendor's "wait N seconds" (Anthropic's `wait`) waits that long: a quiet page that changes
/// later has changed when the wait returns. "Settled" would have returned at once.
#[tokio::test]
async fn an_elapsed_wait_waits_its_whole_duration() {
    let (mut sb, addr, _rx) = launch_with(
        HashMap::from([("/", LATE_TITLE)]),
        "elapsed",
        airlock_sandbox::Isolation::InsecureHost,
        false,
        false,
    )
    .await;
    let url = format!("http://127.0.0.1:{}/", addr.port());
    sb.execute(&Action::Navigate { url }, None).await.unwrap();
    assert_eq!(sb.location().await.unwrap().1, "early");
    let waited = sb
        .execute(
            &Action::Wait {
                condition: airlock_core::WaitCondition::Elapsed,
                timeout_ms: 1500,
            },
            None,
        )
        .await
        .unwrap();
    assert!(waited.contains("time elapsed"), "{waited}");
    assert_eq!(sb.location().await.unwrap().1, "late");
    let report = sb.teardown().await;
    assert!(report.clean(), "{report:?}");
}
