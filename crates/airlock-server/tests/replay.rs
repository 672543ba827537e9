//! The replay file: self-contained, complete, and safe to open whatever the pages contained.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

mod common;

use airlock_audit::AuditStore;
use airlock_server::{render_replay, ReplayError};
use base64::Engine as _;

use common::{finish, home, png, record_until_approval, NOTE, RUN};

const EVIL_TITLE: &str =
    r#"</title><script>alert("pwned")</script><img src="https://evil.example/x.png">"#;

/// Every `src="…"` and `href="…"` value in the document.
fn references(html: &str) -> Vec<String> {
    let mut out = Vec::new();
    for attr in ["src=\"", "href=\""] {
        for (i, _) in html.match_indices(attr) {
            let rest = &html[i + attr.len()..];
            out.push(rest.split('"').next().unwrap().to_string());
        }
    }
    out
}

#[test]
fn the_replay_is_self_contained_and_embeds_its_screenshots() {
    let h = home();
    let rec = record_until_approval(&h.audit, RUN, "INC-2048 · Acme Incidents");
    finish(&h.audit, RUN, "alice", "INC-2048 · Acme Incidents");
    let html = render_replay(h.audit.as_ref(), RUN).unwrap();

    let refs = references(&html);
    assert!(!refs.is_empty());
    for r in &refs {
        assert!(
            r.starts_with("data:image/png;base64,") || r.starts_with('#'),
            "external reference `{}`",
            &r[..r.len().min(80)]
        );
    }
    assert!(
        !html.to_ascii_lowercase().contains("<script"),
        "no script at all"
    );
    assert!(!html.contains("<link"), "no external stylesheet");
    let b64 = base64::engine::general_purpose::STANDARD;
    for tag in [1, 2] {
        assert!(
            html.contains(&b64.encode(png(tag))),
            "screenshot {tag} embedded"
        );
    }
    assert_eq!(
        html.matches("data:image/png;base64,").count(),
        2,
        "each image embedded once"
    );
    assert!(html.contains(&format!("shot-{}", &rec.before.as_str()[..16])));
    assert!(html.contains("default-src &#39;none&#39;") || html.contains("default-src 'none'"));
}

#[test]
fn the_replay_tells_each_step_and_the_end_of_the_run() {
    let h = home();
    record_until_approval(&h.audit, RUN, "INC-2048");
    finish(&h.audit, RUN, "alice", "INC-2048");
    let html = render_replay(h.audit.as_ref(), RUN).unwrap();

    // Step 1: before with a click marker at the element centre, proposal raw and parsed,
    // decision with rule ids, approval with who, the result, the after screenshot.
    assert!(html.contains(r#"id="step-1""#) && html.contains(r#"id="step-2""#));
    assert!(html.contains(r#"class="marker" data-x="857.5" data-y="497""#));
    assert!(html.contains("left_click"), "raw provider payload");
    assert!(html.contains("click (857, 497)"), "parsed action");
    assert!(html.contains("builtin.tier.high-needs-approval"));
    assert!(html.contains("needs approval"));
    assert!(html.contains("Approved</b> by <b>alice</b>"));
    assert!(html.contains(NOTE), "the field values that were sent");
    assert!(html.contains("clicked button &#39;Submit note&#39;"));
    assert!(html.contains("evil.example"), "blocked egress");
    assert!(html.contains("claims the task is done"));
    // The end: verification, teardown evidence, seal, and the chain check.
    assert!(html.contains("1 of 1 criteria passed"));
    assert!(html.contains("text &#39;Note added&#39; is on the final page"));
    assert!(html.contains("Profile directory") && html.contains("deleted"));
    assert!(html.contains("succeeded: verified by the host"));
    assert!(html.contains("Audit chain verified"));
    let head = h.audit.verify(RUN).unwrap().head_hash;
    assert!(html.contains(&head));
}

#[test]
fn page_text_is_escaped_everywhere_it_appears() {
    let h = home();
    record_until_approval(&h.audit, RUN, EVIL_TITLE);
    finish(&h.audit, RUN, "alice", EVIL_TITLE);
    let html = render_replay(h.audit.as_ref(), RUN).unwrap();
    assert!(!html.contains("<script"), "planted script must not survive");
    assert!(
        !html.contains("https://evil.example/x.png\""),
        "planted image must not load"
    );
    assert!(html.contains("&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt;"));
    assert_eq!(html.matches("<title>").count(), 1);
    for r in references(&html) {
        assert!(!r.contains("evil.example"), "{r}");
    }
}

#[test]
fn a_tampered_run_says_so_and_still_renders() {
    let h = home();
    let rec = record_until_approval(&h.audit, RUN, "INC-2048");
    finish(&h.audit, RUN, "alice", "INC-2048");
    std::fs::remove_file(h.audit.blob_path(&rec.before)).unwrap();
    let html = render_replay(h.audit.as_ref(), RUN).unwrap();
    assert!(html.contains("Audit chain BROKEN"));
    assert!(html.contains(&format!("blob {} missing", rec.before.short())));
    assert!(html.contains("screenshot unavailable"));
    assert!(!html.contains("Audit chain verified"));
}

#[test]
fn an_unknown_run_is_an_error() {
    let h = home();
    assert!(matches!(
        render_replay(h.audit.as_ref(), "run-nope"),
        Err(ReplayError::UnknownRun(_))
    ));
}
