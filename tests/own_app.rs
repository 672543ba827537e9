//! `docs/your-app.md` works as written: its manifest and transcript, taken from the page
//! itself, drive the real binary against a small web app of this test's own on a free
//! 127.0.0.1 port, and the app really receives the form the transcript submits.
//!
//! The app (a login form, a profile page whose "Display name" form changes the page's text,
//! and a JSON API behind an API key) is written here with `std::net`, so nothing about it is
//! Airlock's. The page's blocks are found by their fence titles: `toml title="task.toml"`,
//! `jsonl title="steps.jsonl"` and `jsonl title="reference.jsonl"`. The only substitution is the
//! port: the page says `127.0.0.1:8080`, the test says where its app listens.
//!
//! To try the page by hand without an app of your own:
//! `AIRLOCK_EXAMPLE_APP=127.0.0.1:8080 cargo test --test own_app -- --ignored --nocapture serve_the_example_app`
//! serves the same app until interrupted (password `correct horse`, API key `k-123`).

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::panic,
    reason = "test helpers fail the test loudly on purpose"
)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;
use common::{assert_no_leftovers, root, text, BIN};

const DOC: &str = "docs/your-app.md";
/// The address the page's manifest maps `myapp.test` to.
const DOC_ADDR: &str = "127.0.0.1:8080";
const USERNAME: &str = "ada";

// ---------------------------------------------------------------------------------------------
// The app under test: what a user's own small web app looks like from outside.
// ---------------------------------------------------------------------------------------------

/// What the app saw, for the assertions.
#[derive(Debug, Default)]
struct Seen {
    /// Successful sign-ins.
    logins: usize,
    /// Every `POST /profile` with a valid session, as the `display_name` it carried.
    submits: Vec<String>,
    /// The saved display name.
    display_name: Option<String>,
    /// `GET /api/profile` calls that carried the right API key.
    api_reads: usize,
    /// `GET /api/profile` calls refused for a missing or wrong key.
    api_refused: usize,
    /// Hosts the app was asked for (`Host` header), to show the mapping kept the name.
    hosts: BTreeSet<String>,
}

struct App {
    addr: SocketAddr,
    password: String,
    api_key: String,
    seen: Arc<Mutex<Seen>>,
}

impl App {
    /// Serves the app on `listen` (`127.0.0.1:0` for a free port) on background threads.
    fn start(listen: &str, password: &str, api_key: &str) -> App {
        let listener = TcpListener::bind(listen).expect("bind the app");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Seen::default()));
        let conf = Arc::new((password.to_string(), api_key.to_string(), seen.clone()));
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let conf = conf.clone();
                std::thread::spawn(move || {
                    let (password, key, seen) = &*conf;
                    let _ = serve_one(stream, password, key, seen);
                });
            }
        });
        App {
            addr,
            password: password.to_string(),
            api_key: api_key.to_string(),
            seen,
        }
    }

    fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("lock")
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn signed_in(&self) -> bool {
        self.header("cookie").is_some_and(|c| {
            c.split(';')
                .any(|kv| kv.trim() == format!("session={SESSION}"))
        })
    }
}

const SESSION: &str = "s-0f1e2d3c";

fn read_request(stream: &mut TcpStream) -> Option<Request> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let path = target.split('?').next().unwrap_or("/").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = buf[head_end + 4..].to_vec();
    while body.len() < len {
        let n = stream.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request {
        method,
        path,
        headers,
        body: String::from_utf8_lossy(&body).to_string(),
    })
}

/// `application/x-www-form-urlencoded` field `name`, decoded.
fn form_field(body: &str, name: &str) -> Option<String> {
    body.split('&').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        (k == name).then(|| url_decode(v))
    })
}

fn url_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = bytes
                    .get(i + 1..i + 3)
                    .and_then(|h| std::str::from_utf8(h).ok())
                    .and_then(|h| u8::from_str_radix(h, 16).ok());
                match hex {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn html_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font:16px sans-serif;margin:2rem}} label,input,button{{display:block;margin:.4rem 0}}</style>\
         </head><body>{body}</body></html>"
    )
}

const LOGIN_FORM: &str = "<h1>Sign in to My App</h1>\
    <form method=\"post\" action=\"/login\">\
    <label for=\"u\">Username</label><input id=\"u\" name=\"username\" autocomplete=\"username\">\
    <label for=\"p\">Password</label><input id=\"p\" name=\"password\" type=\"password\">\
    <button type=\"submit\">Sign in</button></form>";

/// (status line, extra headers, content type, body)
type Reply = (&'static str, Vec<String>, &'static str, String);

fn route(req: &Request, password: &str, api_key: &str, seen: &Mutex<Seen>) -> Reply {
    let see_other = |to: &str, extra: Vec<String>| -> Reply {
        let mut h = vec![format!("Location: {to}")];
        h.extend(extra);
        ("303 See Other", h, "text/plain", String::new())
    };
    let html = |body: String| -> Reply { ("200 OK", vec![], "text/html; charset=utf-8", body) };
    match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/login") => html(page("Sign in", LOGIN_FORM)),
        ("POST", "/login") => {
            let user = form_field(&req.body, "username").unwrap_or_default();
            let pw = form_field(&req.body, "password").unwrap_or_default();
            if user == USERNAME && pw == password {
                seen.lock().expect("lock").logins += 1;
                see_other(
                    "/",
                    vec![format!("Set-Cookie: session={SESSION}; Path=/; HttpOnly")],
                )
            } else {
                html(page(
                    "Sign in",
                    &format!("<p role=\"alert\">Wrong username or password</p>{LOGIN_FORM}"),
                ))
            }
        }
        (_, "/" | "/profile") if !req.signed_in() => see_other("/login", vec![]),
        ("GET", "/") => html(page(
            "My App",
            &format!(
                "<h1>My App</h1><p>Signed in as {USERNAME}</p>\
                 <nav><a href=\"/profile\">Profile</a></nav>"
            ),
        )),
        ("GET", "/profile") => {
            let status = match &seen.lock().expect("lock").display_name {
                Some(n) => format!("Saved: {}", html_escape(n)),
                None => "Display name: (not set)".to_string(),
            };
            html(page(
                "Profile",
                &format!(
                    "<h1>Profile</h1><p id=\"status\">{status}</p>\
                     <form method=\"post\" action=\"/profile\">\
                     <label for=\"dn\">Display name</label><input id=\"dn\" name=\"display_name\">\
                     <button type=\"submit\">Save</button></form>\
                     <p><a href=\"/\">Home</a></p>"
                ),
            ))
        }
        ("POST", "/profile") => {
            let name = form_field(&req.body, "display_name").unwrap_or_default();
            let mut s = seen.lock().expect("lock");
            s.submits.push(name.clone());
            s.display_name = Some(name);
            see_other("/profile", vec![])
        }
        ("GET", "/api/profile") => {
            let mut s = seen.lock().expect("lock");
            if req.header("x-api-key") != Some(api_key) {
                s.api_refused += 1;
                return (
                    "401 Unauthorized",
                    vec![],
                    "application/json",
                    "{\"error\":\"missing or wrong X-Api-Key\"}".to_string(),
                );
            }
            s.api_reads += 1;
            let body = serde_json::json!({
                "username": USERNAME,
                "display_name": s.display_name,
            });
            ("200 OK", vec![], "application/json", body.to_string())
        }
        _ => (
            "404 Not Found",
            vec![],
            "text/plain",
            "not found\n".to_string(),
        ),
    }
}

fn serve_one(
    mut stream: TcpStream,
    password: &str,
    api_key: &str,
    seen: &Mutex<Seen>,
) -> std::io::Result<()> {
    let Some(req) = read_request(&mut stream) else {
        return Ok(());
    };
    if let Some(h) = req.header("host") {
        seen.lock().expect("lock").hosts.insert(h.to_string());
    }
    let (status, headers, ctype, body) = route(&req, password, api_key, seen);
    let mut head = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n",
        body.len()
    );
    for h in headers {
        head.push_str(&h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())?;
    stream.flush()?;
    stream.shutdown(std::net::Shutdown::Both)
}

// ---------------------------------------------------------------------------------------------
// The page's blocks.
// ---------------------------------------------------------------------------------------------

/// The body of the fenced block whose info string is exactly `info`; there must be one.
fn block(doc: &str, info: &str) -> String {
    let mut found = Vec::new();
    let mut lines = doc.lines();
    while let Some(line) = lines.next() {
        if line.trim_start().strip_prefix("```") == Some(info) {
            let body: Vec<&str> = lines.by_ref().take_while(|l| l.trim() != "```").collect();
            found.push(body.join("\n") + "\n");
        }
    }
    assert_eq!(
        found.len(),
        1,
        "{DOC} must have exactly one block fenced ```{info}"
    );
    found.remove(0)
}

fn doc() -> String {
    std::fs::read_to_string(root().join(DOC)).expect("read docs/your-app.md")
}

/// The page's manifest, pointed at `addr` instead of the page's `127.0.0.1:8080`.
fn manifest_for(addr: SocketAddr) -> String {
    let toml = block(&doc(), "toml title=\"task.toml\"");
    assert_eq!(
        toml.matches(DOC_ADDR).count(),
        1,
        "the page's manifest maps one host to {DOC_ADDR}:\n{toml}"
    );
    toml.replace(DOC_ADDR, &addr.to_string())
}

struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    /// A directory with the page's `task.toml` (for `app`) and `steps.jsonl`, as a user would
    /// save them.
    fn new(app: &App) -> Case {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("task.toml"), manifest_for(app.addr)).expect("write");
        std::fs::write(
            dir.path().join("steps.jsonl"),
            block(&doc(), "jsonl title=\"steps.jsonl\""),
        )
        .expect("write");
        Case { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `airlock ARGS` in the case's directory, with the app's secrets in the environment as the
    /// page says to export them.
    fn airlock(&self, app: &App, args: &[&str]) -> Output {
        std::process::Command::new(BIN)
            .current_dir(self.path())
            .args(args)
            .env_remove("AIRLOCK_HOME")
            .env("NO_COLOR", "1")
            .env("MYAPP_PASSWORD", &app.password)
            .env("MYAPP_API_KEY", &app.api_key)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run airlock")
    }

    fn home(&self) -> PathBuf {
        self.path().join(".airlock")
    }
}

fn run_id(o: &Output) -> String {
    let t = text(o);
    t.lines()
        .find_map(|l| l.strip_prefix("run ").and_then(|r| r.split(':').next()))
        .unwrap_or_else(|| panic!("no run id in output:\n{t}"))
        .to_string()
}

const RUN: [&str; 6] = [
    "run",
    "task.toml",
    "--model",
    "scripted:steps.jsonl",
    "--approvals",
    "approve-all",
];

// ---------------------------------------------------------------------------------------------
// The tests.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_pages_manifest_and_transcript_drive_a_real_app_to_a_verified_submit() {
    let app = App::start("127.0.0.1:0", "correct horse", "k-123");
    let case = Case::new(&app);
    let out = case.airlock(&app, &RUN);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(0), "{shown}");
    {
        let seen = app.seen();
        assert_eq!(seen.logins, 1, "the host signed in once: {seen:?}\n{shown}");
        assert_eq!(
            seen.submits,
            vec!["Ada Lovelace".to_string()],
            "the app received exactly one submit, with the typed name\n{shown}"
        );
        assert!(
            seen.api_reads >= 1 && seen.api_refused == 0,
            "the verifier read the API with the key: {seen:?}"
        );
        assert_eq!(
            seen.hosts,
            BTreeSet::from(["myapp.test".to_string()]),
            "every request named the mapped host, never the address"
        );
    }
    // What the page says the run prints.
    assert!(
        shown.contains("needs approval: approved by policy:--approvals=approve-all"),
        "{shown}"
    );
    assert!(shown.contains("verify: PASS"), "{shown}");
    assert!(
        shown.contains("outcome: succeeded: verified by the host"),
        "{shown}"
    );
    // The secrets never reach the audit.
    let id = run_id(&out);
    assert_no_leftovers(&id);
    let audit = common::events(&case.home(), &id);
    let all = serde_json::to_string(&audit).expect("json");
    assert!(!all.contains(&app.password) && !all.contains(&app.api_key));

    // The page's follow-up commands, in the same directory.
    let v = case.airlock(&app, &["audit", "verify", &id]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let v = case.airlock(&app, &["audit", "verify", "latest"]);
    assert_eq!(v.status.code(), Some(0), "{}", text(&v));
    let r = case.airlock(&app, &["replay", &id, "-o", "report.html"]);
    assert_eq!(r.status.code(), Some(0), "{}", text(&r));
    let html = std::fs::read_to_string(case.path().join("report.html")).expect("report");
    assert!(html.contains(&id) && !html.contains(&app.password));
}

#[test]
fn with_approvals_denied_the_app_never_receives_the_submit_and_the_exit_code_is_4() {
    let app = App::start("127.0.0.1:0", "correct horse", "k-123");
    let case = Case::new(&app);
    let mut args = RUN;
    args[5] = "deny";
    let out = case.airlock(&app, &args);
    let shown = text(&out);
    assert_eq!(out.status.code(), Some(4), "{shown}");
    let seen = app.seen();
    assert_eq!(seen.logins, 1, "{shown}");
    assert!(seen.submits.is_empty(), "{seen:?}\n{shown}");
    assert_no_leftovers(&run_id(&out));
}

#[test]
fn the_manifest_is_refused_without_its_host_mapping() {
    // Why the page maps the name: without `[hosts]`, admission refuses the system-of-record
    // criterion before any browser starts (exit 2), so a user never gets a run that silently
    // tries public DNS for an internal app.
    let app = App::start("127.0.0.1:0", "correct horse", "k-123");
    let case = Case::new(&app);
    let toml = std::fs::read_to_string(case.path().join("task.toml")).expect("read");
    let unmapped: String = toml
        .lines()
        .filter(|l| !l.contains(&app.addr.to_string()))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(case.path().join("task.toml"), unmapped).expect("write");
    let out = case.airlock(&app, &RUN);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        text(&out).contains("must be mapped in [hosts]"),
        "{}",
        text(&out)
    );
    assert_eq!(app.seen().logins, 0);
}

#[test]
fn every_reference_line_is_accepted_by_the_transcript_parser() {
    use airlock_core::{Action, Target, TypedText, WaitCondition};
    let doc = doc();
    let reference = block(&doc, "jsonl title=\"reference.jsonl\"");
    let manifest =
        airlock_core::TaskManifest::from_toml(&manifest_for(DOC_ADDR.parse().expect("addr")))
            .expect("the page's manifest parses");
    let secrets: Vec<&str> = manifest.secrets.keys().map(String::as_str).collect();
    let vp = airlock_core::coords::Viewport::default();
    let p = airlock_providers::ScriptedProvider::from_transcript(&reference);
    let summary = p
        .check(vp, &secrets)
        .unwrap_or_else(|e| panic!("{DOC}: reference.jsonl: {e}"));
    // Together the lines show every kind of action, target, wait condition and typed text.
    let mut p = airlock_providers::ScriptedProvider::from_transcript(&reference);
    let (mut kinds, mut targets, mut waits, mut texts) = (
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
        BTreeSet::new(),
    );
    for _ in 0..summary.turns {
        let proposal = p.next_proposal(vp).expect("replays as checked");
        for a in &proposal.actions {
            kinds.insert(a.kind());
            if let Some(t) = a.target() {
                targets.insert(match t {
                    Target::Ref(_) => "ref",
                    Target::Role { .. } => "role",
                    Target::Css(_) => "css",
                    Target::Point(_) => "point",
                });
            }
            if let Action::Wait { condition, .. } = a {
                waits.insert(match condition {
                    WaitCondition::Settled => "settled",
                    WaitCondition::Elapsed => "elapsed",
                    WaitCondition::TextPresent { .. } => "text_present",
                    WaitCondition::ElementPresent { .. } => "element_present",
                    WaitCondition::UrlMatches { .. } => "url_matches",
                });
            }
            if let Action::Type { text, .. } = a {
                texts.insert(match text {
                    TypedText::Literal(_) => "literal",
                    TypedText::Secret(_) => "secret",
                });
            }
        }
    }
    let all_kinds = [
        "navigate",
        "click",
        "type",
        "key",
        "scroll",
        "mouse_move",
        "drag",
        "hover",
        "select",
        "upload",
        "wait",
        "screenshot",
        "back",
        "forward",
        "done",
    ];
    assert_eq!(kinds, BTreeSet::from(all_kinds), "action kinds shown");
    assert_eq!(
        targets,
        BTreeSet::from(["ref", "role", "css", "point"]),
        "target forms shown"
    );
    assert_eq!(
        waits,
        BTreeSet::from([
            "settled",
            "elapsed",
            "text_present",
            "element_present",
            "url_matches"
        ]),
        "wait conditions shown"
    );
    assert_eq!(texts, BTreeSet::from(["literal", "secret"]));
    // The runnable transcript and the vendor-format lines replay cleanly too.
    for name in ["steps.jsonl", "vendor.jsonl"] {
        let lines = block(&doc, &format!("jsonl title=\"{name}\""));
        let s = airlock_providers::ScriptedProvider::from_transcript(&lines)
            .check(vp, &secrets)
            .unwrap_or_else(|e| panic!("{DOC}: {name}: {e}"));
        assert!(s.claims_done, "{name} ends with a done claim");
    }
}

#[test]
fn the_pages_exit_codes_match_the_readme_and_the_binary() {
    // Every code of README's table appears in the page's table with the same number, and the
    // binary's `--help` lists the same codes.
    let codes = |md: &str, after: &str| -> BTreeSet<u8> {
        let start = md.find(after).unwrap_or_else(|| panic!("no `{after}`"));
        md[start..]
            .lines()
            .skip_while(|l| !l.starts_with('|'))
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.trim_start_matches('|').split('|').next())
            .filter_map(|c| c.trim().trim_matches('`').parse().ok())
            .collect()
    };
    let readme = std::fs::read_to_string(root().join("README.md")).expect("readme");
    let ours = codes(&doc(), "## 6. Exit codes");
    assert_eq!(codes(&readme, "Exit codes of `airlock run`"), ours);
    let help = std::process::Command::new(BIN)
        .arg("--help")
        .output()
        .expect("help");
    let help = String::from_utf8_lossy(&help.stdout).replace('\n', " ");
    for c in &ours {
        assert!(
            help.contains(&format!(" {c} ")),
            "`airlock --help` lacks {c}"
        );
    }
}

/// Serves the test's app on `AIRLOCK_EXAMPLE_APP` (e.g. `127.0.0.1:8080`) until interrupted,
/// for trying `docs/your-app.md` by hand.
#[test]
#[ignore = "serves forever; run by hand"]
fn serve_the_example_app() {
    let listen = std::env::var("AIRLOCK_EXAMPLE_APP").unwrap_or_else(|_| DOC_ADDR.to_string());
    let app = App::start(&listen, "correct horse", "k-123");
    eprintln!(
        "example app on http://{} (user {USERNAME}, MYAPP_PASSWORD='correct horse', MYAPP_API_KEY=k-123)",
        app.addr
    );
    loop {
        std::thread::sleep(Duration::from_secs(5));
        let s = app.seen();
        eprintln!(
            "logins {} submits {:?} api reads {} refused {}",
            s.logins, s.submits, s.api_reads, s.api_refused
        );
    }
}
