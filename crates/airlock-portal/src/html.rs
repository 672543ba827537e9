//! Shared HTML plumbing: escaping, the page chrome (top bar, navigation, inline CSS) and
//! response helpers.
//!
//! The stylesheet pins fonts, widths and control heights so that every page renders the same way
//! in a 1280x800 viewport; agents click by coordinates, so layout drift is a bug here.

use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

/// Escapes text for use in HTML element content and double- or single-quoted attributes.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// Which application a page belongs to; decides branding and the colour of the top bar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum App {
    Ci,
    Incidents,
    /// No application (unknown host and similar).
    Bare,
}

/// What surrounds a page's main content.
pub(crate) struct Chrome<'a> {
    pub app: App,
    /// Text of the `<title>`, before the application name.
    pub title: &'a str,
    /// Label of the current top-navigation entry, if any.
    pub current: Option<&'a str>,
    /// Whether to render the top navigation and user area (false on the login page).
    pub signed_in: bool,
}

const CSS: &str = r#"
*{box-sizing:border-box}
html{overflow-y:scroll;background:#f3f4f6}
body{margin:0;font-family:"Liberation Sans",Arial,sans-serif;font-size:16px;line-height:24px;color:#1f2328;background:#f3f4f6}
a{color:#0b5cad}
a:focus-visible,button:focus-visible,input:focus-visible,textarea:focus-visible{outline:3px solid #f59e0b;outline-offset:1px}
.topbar{height:56px;background:#1c2b45;color:#fff;border-bottom:3px solid #2f6fd0}
.topbar.incidents{background:#3a1c32;border-bottom-color:#c2410c}
.topbar .inner{width:1000px;height:56px;margin:0 auto;display:flex;align-items:center;gap:28px}
.brand{display:flex;align-items:center;gap:10px;color:#fff;text-decoration:none;font-weight:bold;font-size:18px;white-space:nowrap}
.logo{display:inline-block;width:28px;height:28px;line-height:28px;text-align:center;border-radius:6px;background:#2f6fd0;color:#fff;font-size:15px}
.incidents .logo{background:#c2410c}
.topnav ul{list-style:none;margin:0;padding:0;display:flex;gap:4px}
.topnav a{display:block;height:56px;line-height:56px;padding:0 12px;color:#cdd6e4;text-decoration:none}
.topnav a[aria-current=page]{color:#fff;box-shadow:inset 0 -3px 0 #93c5fd}
.incidents .topnav a[aria-current=page]{box-shadow:inset 0 -3px 0 #fdba74}
.user{margin-left:auto;display:flex;align-items:center;gap:12px;font-size:14px;color:#cdd6e4;white-space:nowrap}
.user form{margin:0}
.user button{height:32px;min-width:96px;font-size:14px;background:transparent;border:1px solid #8191ab;color:#fff}
main{width:1000px;margin:0 auto;padding:24px 0 48px}
h1{font-size:26px;line-height:36px;margin:0 0 16px;font-weight:bold}
h2{font-size:20px;line-height:28px;margin:24px 0 12px}
h3{font-size:16px;line-height:24px;margin:0 0 8px}
p{margin:0 0 12px}
.crumbs{height:24px;margin-bottom:8px;font-size:14px;color:#57606a}
.crumbs a{text-decoration:none}
.muted{color:#57606a}
.card{background:#fff;border:1px solid #d0d7de;border-radius:6px;padding:20px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d0d7de}
th,td{height:48px;padding:0 14px;text-align:left;border-bottom:1px solid #e5e7eb;white-space:nowrap}
th{background:#f6f8fa;font-size:14px;color:#57606a;font-weight:bold}
td.wrap{white-space:normal}
button{height:40px;min-width:160px;padding:0 18px;font:inherit;font-weight:bold;border-radius:6px;border:1px solid #1f6feb;background:#1f6feb;color:#fff;cursor:pointer}
button.secondary{background:#fff;color:#1f2328;border-color:#afb8c1;font-weight:normal}
button.danger{background:#cf222e;border-color:#cf222e}
button.warn{background:#bf5a00;border-color:#bf5a00}
label{display:block;font-weight:bold;margin-bottom:6px}
input[type=text],input[type=password]{height:40px;width:100%;padding:0 10px;font:inherit;border:1px solid #afb8c1;border-radius:6px;background:#fff}
textarea{display:block;width:100%;height:120px;padding:8px 10px;font:inherit;border:1px solid #afb8c1;border-radius:6px;resize:none}
.badge{display:inline-block;height:24px;line-height:22px;padding:0 10px;border-radius:12px;font-size:14px;font-weight:bold;border:1px solid}
.badge.passed{color:#116329;background:#dafbe1;border-color:#4ac26b}
.badge.failed{color:#a40e26;background:#ffebe9;border-color:#ff8182}
.badge.skipped{color:#57606a;background:#f6f8fa;border-color:#d0d7de}
.badge.open{color:#953800;background:#fff1e5;border-color:#fb8f44}
.badge.resolved{color:#116329;background:#dafbe1;border-color:#4ac26b}
.badge.sev1{color:#fff;background:#a40e26;border-color:#a40e26}
.badge.sev2{color:#fff;background:#bc4c00;border-color:#bc4c00}
.alert{height:44px;line-height:42px;padding:0 14px;border-radius:6px;margin:0 0 16px;border:1px solid}
.alert.error{color:#82071e;background:#ffebe9;border-color:#ff8182}
.alert.ok{color:#116329;background:#dafbe1;border-color:#4ac26b}
.alert.info{color:#0a3069;background:#ddf4ff;border-color:#54aeff}
"#;

/// A complete HTML document around `body`.
pub(crate) fn page(chrome: &Chrome<'_>, body: &str) -> String {
    let (app_name, bar_class, home, nav_items, user): (&str, &str, &str, &[(&str, &str)], &str) =
        match chrome.app {
            App::Ci => (
                "Acme CI",
                "topbar ci",
                "/runs",
                &[("Runs", "/runs")],
                crate::TEST_USERNAME,
            ),
            App::Incidents => (
                "Acme Incidents",
                "topbar incidents",
                "/incidents",
                &[("Incidents", "/incidents")],
                "agent",
            ),
            App::Bare => ("Acme Intranet", "topbar", "/", &[], ""),
        };
    let logo = match chrome.app {
        App::Ci => "CI",
        App::Incidents => "!",
        App::Bare => "A",
    };
    let mut bar_right = String::new();
    if chrome.signed_in && chrome.app != App::Bare {
        let items: String = nav_items
            .iter()
            .map(|(label, href)| {
                let current = if chrome.current == Some(*label) {
                    r#" aria-current="page""#
                } else {
                    ""
                };
                format!(r#"<li><a href="{href}"{current}>{label}</a></li>"#)
            })
            .collect();
        bar_right.push_str(&format!(
            r#"<nav class="topnav" aria-label="Primary"><ul>{items}</ul></nav>"#
        ));
        let sign_out = if chrome.app == App::Ci {
            r#"<form method="post" action="/logout"><button type="submit">Sign out</button></form>"#
        } else {
            r#"<span>via SSO</span>"#
        };
        bar_right.push_str(&format!(
            r#"<div class="user"><span>Signed in as <strong>{}</strong></span>{sign_out}</div>"#,
            escape(user)
        ));
    }
    format!(
        r#"<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} · {app_name}</title>
<link rel="icon" href="data:,">
<style>{CSS}</style>
</head>
<body>
<header class="{bar_class}"><div class="inner"><a class="brand" href="{home}"><span class="logo" aria-hidden="true">{logo}</span>{app_name}</a>{bar_right}</div></header>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(chrome.title),
    )
}

/// An HTML response that is never cached (pages reflect live state).
pub(crate) fn html_response(status: StatusCode, document: String) -> Response {
    (
        status,
        [
            (
                CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            ),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        document,
    )
        .into_response()
}

/// 404 page for a host the portal does not serve.
pub(crate) fn unknown_host(host: &str) -> Response {
    let shown = if host.is_empty() {
        "(none)".to_owned()
    } else {
        escape(host)
    };
    let body = format!(
        r#"<h1>404 · Unknown host</h1>
<div class="card"><p>unknown host: <strong>{shown}</strong></p>
<p class="muted">This intranet server does not host a site under that name.</p></div>"#
    );
    let chrome = Chrome {
        app: App::Bare,
        title: "unknown host",
        current: None,
        signed_in: false,
    };
    html_response(StatusCode::NOT_FOUND, page(&chrome, &body))
}

/// 400 page for requests whose request line and `Host` header disagree.
pub(crate) fn bad_request_host() -> Response {
    let chrome = Chrome {
        app: App::Bare,
        title: "Bad request",
        current: None,
        signed_in: false,
    };
    let body = r#"<h1>400 · Bad request</h1>
<div class="card"><p>The request target and the Host header name different hosts.</p></div>"#;
    html_response(StatusCode::BAD_REQUEST, page(&chrome, body))
}

/// A 404 page inside an application's chrome.
pub(crate) fn not_found(app: App, signed_in: bool, what: &str) -> Response {
    let chrome = Chrome {
        app,
        title: "Not found",
        current: None,
        signed_in,
    };
    let body = format!(
        r#"<h1>404 · Not found</h1>
<div class="card"><p>{}</p></div>"#,
        escape(what)
    );
    html_response(StatusCode::NOT_FOUND, page(&chrome, &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_quotes() {
        assert_eq!(
            escape(r#"<a href="x" onclick='y'>&</a>"#),
            "&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;"
        );
        assert_eq!(escape("plain · text…"), "plain · text…");
    }

    #[test]
    fn page_has_fixed_font_and_width() {
        let doc = page(
            &Chrome {
                app: App::Ci,
                title: "T<",
                current: Some("Runs"),
                signed_in: true,
            },
            "<p>x</p>",
        );
        assert!(doc.contains(r#"font-family:"Liberation Sans",Arial,sans-serif;font-size:16px"#));
        assert!(doc.contains("width:1000px"));
        assert!(doc.contains("<title>T&lt; · Acme CI</title>"));
        assert!(doc.contains(r#"<a href="/runs" aria-current="page">Runs</a>"#));
    }
}
