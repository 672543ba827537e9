//! The replay: one self-contained HTML file that tells a finished run's story from its audit.
//!
//! Per step it shows the screenshot before (with a marker where each action landed), the
//! proposal (raw provider payload and parsed actions), the gate's decision and rule ids, the
//! approval, the result, checkpoints and the screenshot after; then the host's verification,
//! the teardown evidence and whether the audit chain verifies.
//!
//! The file is meant to be mailed around and opened anywhere, so it loads nothing: screenshots
//! are embedded once each as `data:` URIs (in SVG `<defs>`, referenced by `<use>`), styles are
//! inline, and there is no script at all — its Content-Security-Policy forbids one, so even a
//! page title that slipped past escaping could not run. All page- and model-derived text goes
//! through [`esc`].

use std::collections::BTreeMap;
use std::fmt::Write as _;

use base64::Engine as _;
use serde_json::Value;

use airlock_audit::{AuditError, AuditStore, BlobRef, Event, VerifyReport};

use crate::html::{badge, chips, esc, fmt_time, json_pre, png_size, shot, Marker, ShotSource, CSS};
use crate::view::{actions_words, marker_of, n, outcome_words, s, strings, u, RunFacts, Shot};

/// The policy the replay runs under when the web UI serves it, as a header.
pub const CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
                       frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// The same policy as a `<meta>` in the file opened from disk. `frame-ancestors` is left out:
/// browsers honour it only as a header and report it as an error in a `<meta>` (the file has
/// no server to send headers, so nothing is lost by leaving it out).
const META_CSP: &str = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; \
                        base-uri 'none'; form-action 'none'";

/// Why a replay could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("unknown run `{0}`")]
    UnknownRun(String),
    #[error("audit store: {0}")]
    Audit(#[from] AuditError),
}

#[derive(Default)]
struct ActionView<'a> {
    decision: Option<&'a Event>,
    /// Approval requests and their answers, in order: the gate's, then any request of the page
    /// the host held for a human during the action.
    requested: Vec<&'a Event>,
    approvals: Vec<&'a Event>,
    result: Option<&'a Event>,
    checkpoint: Option<&'a Event>,
}

#[derive(Default)]
struct StepView<'a> {
    before: Option<Shot>,
    proposal: Option<&'a Event>,
    rejected: Vec<&'a Event>,
    actions: BTreeMap<u64, ActionView<'a>>,
    after: Option<Shot>,
    failed_observation: Option<&'a Event>,
    claim: Option<&'a Event>,
    egress: Vec<&'a Event>,
    /// `injection_findings` seen in the observation after this step.
    findings: Vec<&'a Event>,
}

impl StepView<'_> {
    fn tone(&self) -> &'static str {
        let verdicts: Vec<&str> = self
            .actions
            .values()
            .filter_map(|a| a.decision.and_then(|d| s(&d.payload, "/decision/verdict")))
            .collect();
        let failed = self.actions.values().any(|a| {
            a.result
                .is_some_and(|r| r.payload.get("ok") != Some(&Value::Bool(true)))
        });
        let denied = self.actions.values().any(|a| {
            a.approvals
                .iter()
                .any(|e| s(&e.payload, "/answer/answer") == Some("denied"))
        });
        if verdicts.contains(&"deny") || failed || denied || !self.rejected.is_empty() {
            "bad"
        } else if verdicts.contains(&"needs_approval") {
            "wait"
        } else {
            "ok"
        }
    }
}

/// The run's events sorted into setup, steps and the end.
#[derive(Default)]
struct Story<'a> {
    setup: Vec<&'a Event>,
    initial: Option<Shot>,
    steps: BTreeMap<u64, StepView<'a>>,
    stop: Option<&'a Event>,
    frozen: Option<&'a Event>,
    verification: Option<&'a Event>,
    teardown: Option<&'a Event>,
    sealed: Option<&'a Event>,
}

const STEP_KINDS: &[&str] = &[
    "proposal",
    "proposal_rejected",
    "decision",
    "approval_requested",
    "approval",
    "action_result",
    "checkpoint",
    "claim",
];

impl<'a> Story<'a> {
    fn of(events: &'a [Event]) -> Story<'a> {
        let mut story = Story::default();
        let mut last_shot: Option<Shot> = None;
        let mut current: Option<u64> = None;
        for e in events {
            let step = u(&e.payload, "/step");
            let kind = e.kind.as_str();
            let is_step_observation =
                matches!(kind, "observation" | "observation_failed") && step.unwrap_or(0) > 0;
            if let (Some(step), true) = (step, STEP_KINDS.contains(&kind) || is_step_observation) {
                current = Some(step);
                let view = story.steps.entry(step).or_insert_with(|| StepView {
                    before: last_shot.clone(),
                    ..StepView::default()
                });
                let index = u(&e.payload, "/index").unwrap_or(0);
                match kind {
                    "proposal" => view.proposal = Some(e),
                    "proposal_rejected" => view.rejected.push(e),
                    "decision" => view.actions.entry(index).or_default().decision = Some(e),
                    "approval_requested" => {
                        view.actions.entry(index).or_default().requested.push(e)
                    }
                    "approval" => view.actions.entry(index).or_default().approvals.push(e),
                    "action_result" => view.actions.entry(index).or_default().result = Some(e),
                    "checkpoint" => view.actions.entry(index).or_default().checkpoint = Some(e),
                    "claim" => view.claim = Some(e),
                    "observation" => {
                        let shot = Shot::of(e);
                        view.after = shot.clone();
                        last_shot = shot;
                    }
                    _ => view.failed_observation = Some(e),
                }
                continue;
            }
            match kind {
                "observation" => {
                    let shot = Shot::of(e);
                    if story.initial.is_none() {
                        story.initial = shot.clone();
                    }
                    last_shot = shot;
                }
                "egress" => match current.and_then(|c| story.steps.get_mut(&c)) {
                    Some(view) => view.egress.push(e),
                    None => story.setup.push(e),
                },
                "stop" => story.stop = Some(e),
                "frozen" => story.frozen = Some(e),
                "injection_findings" => match step.and_then(|st| story.steps.get_mut(&st)) {
                    Some(view) => view.findings.push(e),
                    None => story.setup.push(e),
                },
                "verification" => story.verification = Some(e),
                "teardown" => story.teardown = Some(e),
                "sealed" => story.sealed = Some(e),
                _ => story.setup.push(e),
            }
        }
        story
    }

    fn shots(&self) -> impl Iterator<Item = &Shot> {
        self.initial.iter().chain(
            self.steps
                .values()
                .flat_map(|s| s.before.iter().chain(s.after.iter())),
        )
    }
}

/// Screenshots embedded once each, by blob hash.
struct Images {
    /// blob hash → defs id, for the blobs that could be read and are PNGs.
    ids: BTreeMap<String, String>,
    defs: String,
    /// blob hash → why it is not shown.
    missing: BTreeMap<String, String>,
}

impl Images {
    fn load<'s>(
        store: &dyn AuditStore,
        shots: impl Iterator<Item = &'s Shot>,
        (w, h): (f64, f64),
    ) -> Images {
        let mut images = Images {
            ids: BTreeMap::new(),
            defs: String::new(),
            missing: BTreeMap::new(),
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        for s in shots {
            if images.ids.contains_key(&s.blob) || images.missing.contains_key(&s.blob) {
                continue;
            }
            let bytes = BlobRef::parse(&s.blob).and_then(|b| store.get_blob(&b));
            match bytes {
                Ok(b) if png_size(&b).is_some() => {
                    let id = format!("shot-{}", s.blob.get(..16).unwrap_or(&s.blob));
                    let _ = write!(
                        images.defs,
                        r#"<image id="{id}" x="0" y="0" width="{w}" height="{h}" href="data:image/png;base64,{}"/>"#,
                        b64.encode(&b)
                    );
                    images.ids.insert(s.blob.clone(), id);
                }
                Ok(_) => {
                    images
                        .missing
                        .insert(s.blob.clone(), "not a PNG image".into());
                }
                Err(e) => {
                    images.missing.insert(s.blob.clone(), e.to_string());
                }
            }
        }
        images
    }

    fn figure(&self, shot_: &Shot, (w, h): (f64, f64), markers: &[Marker]) -> String {
        match self.ids.get(&shot_.blob) {
            Some(id) => shot(ShotSource::DefsId(id), w, h, markers, &shot_.caption()),
            None => format!(
                r#"<div class="banner bad">screenshot unavailable ({}): {}</div>"#,
                esc(self
                    .missing
                    .get(&shot_.blob)
                    .map_or("not loaded", String::as_str)),
                esc(&shot_.caption())
            ),
        }
    }
}

/// Renders the replay of `run_id` as one HTML document.
pub fn render_replay(store: &dyn AuditStore, run_id: &str) -> Result<String, ReplayError> {
    let summary = store
        .runs()?
        .into_iter()
        .find(|r| r.run_id == run_id)
        .ok_or_else(|| ReplayError::UnknownRun(run_id.to_string()))?;
    let events = store.events(run_id)?;
    let report = store.verify(run_id)?;
    let facts = RunFacts::from(&summary, &events);
    let story = Story::of(&events);

    // Element centres are in viewport CSS pixels, so the images are drawn at viewport size.
    let first_png = story.shots().next().and_then(|s| {
        let b = BlobRef::parse(&s.blob).ok()?;
        png_size(&store.get_blob(&b).ok()?)
    });
    let size = facts
        .viewport
        .or(first_png.map(|(w, h)| (f64::from(w), f64::from(h))))
        .unwrap_or((1280.0, 800.0));
    let images = Images::load(store, story.shots(), size);

    let mut body = String::new();
    body.push_str(&header(&facts, &report, &story));
    body.push_str(&setup_section(&story, &images, size));
    for (step, view) in &story.steps {
        body.push_str(&step_section(*step, view, &images, size));
    }
    body.push_str(&end_section(&story, &report));
    if let Some(manifest) = summary.task.get("manifest") {
        let _ = write!(
            body,
            r#"<div class="card"><details><summary>Task manifest</summary>{}</details></div>"#,
            json_pre(manifest)
        );
    }
    let _ = write!(
        body,
        r#"<p class="muted small">Generated by Airlock {} at {} from {} audit events. This file is self-contained: no scripts, nothing loaded from the network.</p>"#,
        env!("CARGO_PKG_VERSION"),
        esc(&fmt_time(airlock_audit::now_ms())),
        events.len()
    );
    Ok(format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" content="{csp}"><meta name="viewport" content="width=device-width"><meta name="referrer" content="no-referrer"><title>Replay {title} · Airlock</title><style>{CSS}</style></head><body><header class="top"><span class="brand">AIRLOCK</span><span>replay</span></header><svg width="0" height="0" style="position:absolute" aria-hidden="true"><defs>{defs}</defs></svg><main>{body}</main></body></html>"#,
        csp = esc(META_CSP),
        title = esc(run_id),
        defs = images.defs,
    ))
}

fn header(facts: &RunFacts, report: &VerifyReport, story: &Story<'_>) -> String {
    let chain = if report.ok() {
        format!(
            r#"<div class="banner ok"><b>Audit chain verified</b>: {} events, {}, head <span class="mono">{}</span>.</div>"#,
            report.events,
            if report.sealed {
                "sealed"
            } else {
                "NOT sealed"
            },
            esc(&report.head_hash)
        )
    } else {
        let problems: String = report
            .problems
            .iter()
            .map(|p| format!("<li>{}</li>", esc(&p.to_string())))
            .collect();
        format!(
            r#"<div class="banner bad"><b>Audit chain BROKEN</b> — this record was altered after the fact:<ul>{problems}</ul></div>"#
        )
    };
    let mut index = String::new();
    for (step, view) in &story.steps {
        let what: Vec<String> = view
            .actions
            .values()
            .filter_map(|a| a.decision)
            .map(|d| {
                format!(
                    "{} → {}",
                    s(&d.payload, "/summary").unwrap_or(""),
                    s(&d.payload, "/decision/verdict")
                        .unwrap_or("")
                        .replace('_', " ")
                )
            })
            .collect();
        let what = if let Some(c) = view.claim {
            format!("claims done: {}", s(&c.payload, "/claim").unwrap_or(""))
        } else if what.is_empty() {
            view.rejected
                .first()
                .map(|r| {
                    format!(
                        "model output rejected: {}",
                        s(&r.payload, "/error").unwrap_or("")
                    )
                })
                .unwrap_or_default()
        } else {
            what.join("; ")
        };
        let _ = write!(
            index,
            r##"<li class="t-{tone}"><span class="st"><a href="#step-{step}">#{step}</a></span><span class="tx">{what}</span></li>"##,
            tone = view.tone(),
            what = esc(&what)
        );
    }
    format!(
        r#"<h1>Replay of <span class="mono">{run}</span></h1>{chain}<div class="card"><dl class="kv"><dt>Task</dt><dd><b>{task}</b> — {goal}</dd><dt>Outcome</dt><dd>{outcome}</dd><dt>Model</dt><dd>{model}</dd><dt>Approvals</dt><dd>{approvals}</dd><dt>Started</dt><dd>{started}</dd><dt>Steps</dt><dd>{steps}</dd></dl></div><div class="card"><h2>Steps</h2><ol class="timeline">{index}</ol></div>"#,
        run = esc(&facts.run_id),
        task = esc(&facts.task),
        goal = esc(&facts.goal),
        outcome = badge(
            facts.tone(),
            facts.outcome_text.as_deref().unwrap_or("not sealed")
        ),
        model = esc(&facts.model),
        approvals = esc(&facts.approvals),
        started = esc(&fmt_time(facts.created_ms)),
        steps = story.steps.len(),
    )
}

fn setup_section(story: &Story<'_>, images: &Images, size: (f64, f64)) -> String {
    let mut items = String::new();
    for e in &story.setup {
        if let Some(it) = crate::view::item_of(e) {
            let _ = write!(
                items,
                r#"<li class="t-{}"><span class="st"></span><span class="tx">{}</span></li>"#,
                it.tone,
                esc(&it.text)
            );
        }
    }
    let shot = story
        .initial
        .as_ref()
        .map(|s| images.figure(s, size, &[]))
        .unwrap_or_default();
    format!(
        r#"<section class="card" id="setup"><h2>Setup</h2><div class="grid"><div>{shot}</div><div><ol class="timeline">{items}</ol></div></div></section>"#
    )
}

fn step_section(step: u64, view: &StepView<'_>, images: &Images, size: (f64, f64)) -> String {
    let many = view.actions.len() > 1;
    let markers: Vec<Marker> = view
        .actions
        .iter()
        .filter_map(|(i, a)| {
            let label = many.then(|| (i + 1).to_string());
            a.decision.and_then(|d| marker_of(&d.payload, label))
        })
        .collect();
    let before = view
        .before
        .as_ref()
        .map(|s| images.figure(s, size, &markers))
        .unwrap_or_else(|| r#"<p class="muted">No observation before this step.</p>"#.into());
    let after = match (&view.after, view.failed_observation) {
        (Some(s), _) => images.figure(s, size, &[]),
        (None, Some(f)) => format!(
            r#"<div class="banner bad">observation failed: {}</div>"#,
            esc(s(&f.payload, "/error").unwrap_or(""))
        ),
        (None, None) => r#"<p class="muted">No observation after this step.</p>"#.into(),
    };

    let mut out = format!(
        r#"<section class="card step b-{tone}" id="step-{step}"><h2>Step {step}</h2><div class="two"><div><h3>Before</h3>{before}</div><div><h3>After</h3>{after}</div></div>"#,
        tone = view.tone(),
    );
    if let Some(p) = view.proposal {
        let _ = write!(
            out,
            r#"<h3>Proposal</h3><p>{words} <span class="muted small">({source})</span></p><details><summary>Raw provider payload</summary>{raw}</details><details><summary>Parsed actions</summary>{parsed}</details>"#,
            words = esc(&actions_words(&p.payload)),
            source = esc(s(&p.payload, "/source").unwrap_or("")),
            raw = json_pre(p.payload.get("raw").unwrap_or(&Value::Null)),
            parsed = json_pre(p.payload.get("actions").unwrap_or(&Value::Null)),
        );
    }
    for r in &view.rejected {
        let _ = write!(
            out,
            r#"<div class="banner bad">Model output rejected: {}</div>"#,
            esc(s(&r.payload, "/error").unwrap_or(""))
        );
    }
    for (i, a) in &view.actions {
        out.push_str(&action_block(*i, a, many));
    }
    if let Some(c) = view.claim {
        let _ = write!(
            out,
            r#"<div class="banner info"><b>The model claims the task is done:</b> {} <span class="muted small">(a claim, checked by the host below)</span></div>"#,
            esc(s(&c.payload, "/claim").unwrap_or(""))
        );
    }
    for f in &view.findings {
        let _ = write!(
            out,
            r#"<div class="banner bad"><b>Page content addresses the agent</b> on {}: {} — from here on the run is tainted and anything beyond reading needs approval.</div>"#,
            esc(s(&f.payload, "/url").unwrap_or("")),
            esc(&crate::view::findings_words(&f.payload))
        );
    }
    let blocked: Vec<&&Event> = view
        .egress
        .iter()
        .filter(|e| e.payload.get("allowed") != Some(&Value::Bool(true)))
        .collect();
    if !view.egress.is_empty() {
        let rows: String = view
            .egress
            .iter()
            .map(|e| {
                let p = &e.payload;
                let allowed = p.get("allowed") == Some(&Value::Bool(true));
                format!(
                    "<tr><td>{}</td><td class=\"mono\">{} {}{}</td><td>{}</td></tr>",
                    badge(
                        if allowed { "ok" } else { "bad" },
                        if allowed { "allowed" } else { "blocked" }
                    ),
                    esc(s(p, "/method").unwrap_or("")),
                    esc(s(p, "/host").unwrap_or("")),
                    esc(s(p, "/path").unwrap_or("")),
                    esc(s(p, "/reason").unwrap_or(""))
                )
            })
            .collect();
        let _ = write!(
            out,
            r#"<details><summary>Network: {} request(s), {} blocked</summary><table>{rows}</table></details>"#,
            view.egress.len(),
            blocked.len()
        );
    }
    if let Some(after) = &view.after {
        if !after.snapshot.is_empty() {
            let _ = write!(
                out,
                r#"<details><summary>Accessibility snapshot after this step (page content, untrusted)</summary><pre>{}</pre></details>"#,
                esc(&after.snapshot)
            );
        }
    }
    out.push_str("</section>");
    out
}

/// The reviewer's answer: who, what, why, when.
fn approval_banner(out: &mut String, ap: &Event) {
    let p = &ap.payload;
    let approved = s(p, "/answer/answer") == Some("approved");
    let _ = write!(
        out,
        r#"<div class="banner {}"><b>{}</b> by <b>{}</b>: {} <span class="muted small">(mode {}, at {})</span></div>"#,
        if approved { "ok" } else { "bad" },
        if approved { "Approved" } else { "Denied" },
        esc(s(p, "/answer/by").unwrap_or("")),
        esc(s(p, "/answer/reason").unwrap_or("")),
        esc(s(p, "/mode").unwrap_or("")),
        esc(&fmt_time(ap.ts_ms))
    );
}

fn action_block(index: u64, a: &ActionView<'_>, many: bool) -> String {
    let mut out = String::from(r#"<div class="card" style="margin:10px 0 0">"#);
    if many {
        let _ = write!(
            out,
            r#"<div class="muted small">Action {}</div>"#,
            index + 1
        );
    }
    if let Some(d) = a.decision {
        let p = &d.payload;
        let verdict = s(p, "/decision/verdict").unwrap_or("");
        let tone = match verdict {
            "allow" => "ok",
            "checkpoint" => "info",
            "needs_approval" => "wait",
            _ => "bad",
        };
        let at = match (n(p, "/element/center/x"), n(p, "/element/center/y")) {
            (Some(x), Some(y)) => format!(" · marker at ({x:.0}, {y:.0})"),
            _ => String::new(),
        };
        let _ = write!(
            out,
            r#"<div class="summary">{summary}</div><dl class="kv"><dt>Decision</dt><dd>{verdict} {effect} {tier}</dd><dt>Reason</dt><dd>{reason}</dd><dt>Rules</dt><dd>{rules}</dd><dt>Page</dt><dd class="mono small">{page}{at}</dd></dl><details><summary>Action and element as recorded</summary>{action}{element}</details>"#,
            summary = esc(s(p, "/summary").unwrap_or("")),
            verdict = badge(tone, &verdict.replace('_', " ")),
            effect = badge("info", s(p, "/decision/effect").unwrap_or("")),
            tier = badge(
                "mut",
                &format!("{} risk", s(p, "/decision/tier").unwrap_or(""))
            ),
            reason = esc(s(p, "/decision/reason").unwrap_or("")),
            rules = chips(&strings(p, "/decision/rules")),
            page = esc(s(p, "/page").unwrap_or("")),
            action = json_pre(p.get("action").unwrap_or(&Value::Null)),
            element = json_pre(p.get("element").unwrap_or(&Value::Null)),
        );
    }
    for (i, r) in a.requested.iter().enumerate() {
        let fields = r
            .payload
            .pointer("/request/fields")
            .and_then(Value::as_array)
            .map(|fs| {
                fs.iter()
                    .filter_map(|f| {
                        let pair = f.as_array()?;
                        Some(format!(
                            "<tr><td>{}</td><td>{}</td></tr>",
                            esc(pair.first()?.as_str()?),
                            esc(pair.get(1)?.as_str()?)
                        ))
                    })
                    .collect::<String>()
            })
            .unwrap_or_default();
        // A request of the page held during the action says what it was; the gate's own
        // request is about the action shown above.
        let held = r.payload.get("held").is_some();
        let _ = write!(
            out,
            r#"<h3>Approval requested</h3>{}<p>{}</p>"#,
            if held {
                format!(
                    "<p><b>{}</b></p>",
                    esc(s(&r.payload, "/request/summary").unwrap_or(""))
                )
            } else {
                String::new()
            },
            esc(s(&r.payload, "/request/reason").unwrap_or(""))
        );
        if !fields.is_empty() {
            let _ = write!(
                out,
                r#"<table class="fields"><thead><tr><th>Field</th><th>Value sent</th></tr></thead><tbody>{fields}</tbody></table>"#
            );
        }
        if let Some(ap) = a.approvals.get(i) {
            approval_banner(&mut out, ap);
        }
    }
    // Answers without a recorded request (none are written that way; kept for old chains).
    for ap in a.approvals.iter().skip(a.requested.len()) {
        approval_banner(&mut out, ap);
    }
    if let Some(r) = a.result {
        let ok = r.payload.get("ok") == Some(&Value::Bool(true));
        let _ = write!(
            out,
            r#"<p>{} {}</p>"#,
            badge(
                if ok { "ok" } else { "bad" },
                if ok { "executed" } else { "failed" }
            ),
            esc(s(&r.payload, "/note").unwrap_or(""))
        );
    }
    if let Some(c) = a.checkpoint {
        let _ = write!(
            out,
            r#"<p>{} {} — {}</p>"#,
            badge("info", "checkpoint"),
            esc(s(&c.payload, "/url").unwrap_or("")),
            esc(s(&c.payload, "/title").unwrap_or(""))
        );
    }
    out.push_str("</div>");
    out
}

fn end_section(story: &Story<'_>, report: &VerifyReport) -> String {
    let mut out = String::from(r#"<section class="card" id="end"><h2>End of run</h2>"#);
    if let Some(stop) = story.stop {
        let _ = write!(
            out,
            r#"<div class="banner bad"><b>Stopped</b> by <b>{}</b>: {}</div>"#,
            esc(s(&stop.payload, "/by").unwrap_or("")),
            esc(s(&stop.payload, "/reason").unwrap_or(""))
        );
    }
    if let Some(f) = story.frozen {
        let _ = write!(
            out,
            r#"<p>{} kept for inspection for up to {} s before teardown.</p>"#,
            badge("info", "frozen"),
            u(&f.payload, "/freeze_secs").unwrap_or(0)
        );
    }
    out.push_str("<h3>Host verification</h3>");
    match story.verification {
        Some(v) => {
            let rows: String = v
                .payload
                .pointer("/criteria")
                .and_then(Value::as_array)
                .map(|cs| {
                    cs.iter()
                        .map(|c| {
                            let passed = c.get("passed") == Some(&Value::Bool(true));
                            format!(
                                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                                badge(
                                    if passed { "ok" } else { "bad" },
                                    if passed { "pass" } else { "fail" }
                                ),
                                esc(s(c, "/criterion").unwrap_or("")),
                                esc(s(c, "/detail").unwrap_or(""))
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            let _ = write!(
                out,
                r#"<p>{} of {} criteria passed.</p><table><thead><tr><th></th><th>Criterion</th><th>Evidence</th></tr></thead><tbody>{rows}</tbody></table>"#,
                u(&v.payload, "/passed").unwrap_or(0),
                u(&v.payload, "/total").unwrap_or(0)
            );
        }
        None => out.push_str(r#"<p class="muted">The run did not reach verification.</p>"#),
    }
    out.push_str("<h3>Teardown</h3>");
    match story.teardown {
        Some(t) => {
            let p = &t.payload;
            let list = |k: &str| {
                p.pointer(k)
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .map(|x| x.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    })
                    .unwrap_or_default()
            };
            let removed = p.get("run_dir_removed") == Some(&Value::Bool(true));
            let _ = write!(
                out,
                r#"<dl class="kv"><dt>Processes killed</dt><dd class="mono">{}</dd><dt>Processes remaining</dt><dd class="mono">{}</dd><dt>Profile directory</dt><dd>{} <span class="mono small">{}</span></dd></dl>"#,
                esc(&list("/processes_killed")),
                esc(&match list("/processes_remaining") {
                    r if r.is_empty() => "none".to_string(),
                    r => r,
                }),
                badge(
                    if removed { "ok" } else { "bad" },
                    if removed { "deleted" } else { "NOT deleted" }
                ),
                esc(s(p, "/run_dir").unwrap_or(""))
            );
        }
        None => out.push_str(r#"<p class="muted">No teardown recorded.</p>"#),
    }
    out.push_str("<h3>Seal</h3>");
    match story.sealed {
        Some(e) => {
            let _ = write!(
                out,
                r#"<p>{} <span class="muted small">at {} · event {} · hash <span class="mono">{}</span></span></p>"#,
                badge(
                    if s(&e.payload, "/result/outcome") == Some("succeeded") {
                        "ok"
                    } else {
                        "bad"
                    },
                    &outcome_words(&e.payload)
                ),
                esc(&fmt_time(e.ts_ms)),
                e.seq,
                esc(&e.hash)
            );
        }
        None => out.push_str(r#"<p class="muted">The run is not sealed (still running, or it ended without sealing).</p>"#),
    }
    let _ = write!(
        out,
        r#"<p class="small muted">Chain check: {} events, head <span class="mono">{}</span>, {}.</p></section>"#,
        report.events,
        esc(&report.head_hash),
        if report.ok() {
            "no problems"
        } else {
            "PROBLEMS FOUND (see top)"
        }
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(seq: u64, kind: &str, payload: Value) -> Event {
        Event {
            run_id: "r".into(),
            seq,
            ts_ms: 0,
            kind: kind.into(),
            payload,
            blobs: vec![],
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    #[test]
    fn events_are_grouped_into_steps_with_before_and_after() {
        let h = |c: char| c.to_string().repeat(64);
        let events = vec![
            ev(1, "run_started", json!({})),
            ev(2, "observation", json!({"step": 0, "screenshot": h('a')})),
            ev(3, "proposal", json!({"step": 1})),
            ev(
                4,
                "decision",
                json!({"step": 1, "index": 0, "decision": {"verdict": "needs_approval"}}),
            ),
            ev(
                5,
                "approval",
                json!({"step": 1, "index": 0, "answer": {"answer": "approved"}}),
            ),
            ev(
                6,
                "action_result",
                json!({"step": 1, "index": 0, "ok": true}),
            ),
            ev(7, "egress", json!({"allowed": false})),
            ev(8, "observation", json!({"step": 1, "screenshot": h('b')})),
            ev(9, "proposal", json!({"step": 2})),
            ev(10, "claim", json!({"step": 2, "claim": "done"})),
            ev(11, "verification", json!({})),
            ev(12, "sealed", json!({})),
        ];
        let story = Story::of(&events);
        assert_eq!(story.steps.len(), 2);
        let one = &story.steps[&1];
        assert_eq!(one.before.as_ref().unwrap().blob, h('a'));
        assert_eq!(one.after.as_ref().unwrap().blob, h('b'));
        assert_eq!(one.egress.len(), 1);
        assert_eq!(one.tone(), "wait");
        let two = &story.steps[&2];
        assert_eq!(two.before.as_ref().unwrap().blob, h('b'));
        assert!(two.claim.is_some() && two.after.is_none());
        assert!(story.verification.is_some() && story.sealed.is_some());
        assert_eq!(story.shots().count(), 4);
    }
}
