//! Decision latency on a realistic rule set: Airlock's defaults plus an operator file of the
//! size a team writes (forbidden buttons by name, unattended paths, extra approvals), for the
//! decisions a run makes most: a link, a draft, a submit that needs approval, an off-task link,
//! and the request layer's verdict on a page's own POST.
//!
//! `cargo bench -p airlock-policy --bench decision` (criterion; no plots).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, ElementFacts, MouseButton, Point, Target, TypedText};
use airlock_policy::cedar::PolicyEngine;
use airlock_policy::{check_request, decide, GateContext, PageRequest};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;

const MANIFEST: &str = include_str!("../../../examples/ci-incident/task.toml");

/// An operator file: 24 rules of the kinds teams write.
fn operator_rules() -> String {
    let mut out = String::new();
    for (i, name) in [
        "Delete project",
        "Transfer ownership",
        "Rotate keys",
        "Remove member",
        "Disable 2FA",
        "Export all data",
        "Merge anyway",
        "Force push",
    ]
    .iter()
    .enumerate()
    {
        out += &format!(
            "@id(\"ops.forbid-button-{i}\")\n@reason(\"Nobody automates '{name}'.\")\nforbid (principal, action, resource) when {{ resource.name == \"{name}\" }};\n\n"
        );
    }
    for (i, path) in ["/drafts", "/comments", "/search", "/preview"]
        .iter()
        .enumerate()
    {
        out += &format!(
            "@id(\"ops.unattended-{i}\")\n@reason(\"Drafts under {path} need no human.\")\npermit (principal, action == Airlock::Action::\"unattended\", resource) when {{ resource.path like \"{path}*\" && context.effect == \"draft\" }};\n\n"
        );
    }
    for (i, host) in [
        "billing.example",
        "admin.example",
        "hr.example",
        "payroll.example",
    ]
    .iter()
    .enumerate()
    {
        out += &format!(
            "@id(\"ops.approval-{i}\")\n@reason(\"Everything on {host} needs a human.\")\nforbid (principal, action == Airlock::Action::\"unattended\", resource) when {{ resource.host == \"{host}\" }};\n\n"
        );
    }
    for i in 0..8 {
        out += &format!(
            "@id(\"ops.step-cap-{i}\")\n@reason(\"Long runs slow down.\")\nforbid (principal, action == Airlock::Action::\"unattended\", resource) when {{ context.step > {} && context.effect == \"submit\" }};\n\n",
            100 + i
        );
    }
    out
}

fn gate<'a>(
    manifest: &'a TaskManifest,
    policy: &'a PolicyEngine,
    page_url: &'a str,
    element: Option<&'a ElementFacts>,
    focused: Option<&'a ElementFacts>,
) -> GateContext<'a> {
    GateContext {
        manifest,
        policy,
        principal: "agent:bench",
        page_url,
        element,
        focused,
        tainted: false,
        step: 7,
        effects_done: &[],
    }
}

fn facts(v: serde_json::Value) -> ElementFacts {
    serde_json::from_value(v).unwrap()
}

fn bench(c: &mut Criterion) {
    let m = TaskManifest::from_toml(MANIFEST).unwrap();
    let ops = operator_rules();
    let policy = PolicyEngine::with_operator(&[("ops.cedar", &ops)]).unwrap();
    let page = "http://incidents.example/incidents/INC-2048";
    let click = Action::Click {
        target: Target::Point(Point { x: 10.0, y: 10.0 }),
        button: MouseButton::Left,
        count: 1,
        modifiers: Default::default(),
    };
    let link = facts(
        json!({"node_ref": "e1", "tag": "a", "role": "link", "name": "INC-2048",
        "href": "http://incidents.example/incidents/INC-2048", "frame_url": page}),
    );
    let off_task = facts(
        json!({"node_ref": "e2", "tag": "a", "role": "link", "name": "Docs",
        "href": "http://evil.example/collect", "frame_url": page}),
    );
    let submit = facts(
        json!({"node_ref": "e3", "tag": "button", "role": "button", "name": "Submit note",
        "is_submit": true, "frame_url": page,
        "form": {"action": "http://incidents.example/incidents/INC-2048/notes", "method": "POST",
                 "has_password": false, "fields": []}}),
    );
    let field = facts(
        json!({"node_ref": "e4", "tag": "textarea", "role": "textbox", "name": "Draft note",
        "editable": true, "multiline": true, "frame_url": page}),
    );
    let typing = Action::Type {
        target: None,
        text: TypedText::Literal("RUN-78432 failed in test_refund_rounding".into()),
    };
    let ctx = |el, focused| gate(&m, &policy, page, el, focused);

    let mut g = c.benchmark_group("decide");
    g.bench_function("link (allow)", |b| {
        b.iter(|| decide(black_box(&click), &ctx(Some(&link), None)))
    });
    g.bench_function("draft typing (checkpoint)", |b| {
        b.iter(|| decide(black_box(&typing), &ctx(None, Some(&field))))
    });
    g.bench_function("submit (needs approval)", |b| {
        b.iter(|| decide(black_box(&click), &ctx(Some(&submit), None)))
    });
    g.bench_function("off-task link (deny)", |b| {
        b.iter(|| decide(black_box(&click), &ctx(Some(&off_task), None)))
    });
    g.finish();

    c.bench_function("request layer: page POST (refused)", |b| {
        let r = PageRequest {
            method: "POST",
            url: "http://incidents.example/incidents/INC-9911/resolve",
            navigation: false,
            download: false,
        };
        b.iter(|| check_request(&m, black_box(&r), &[]))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
