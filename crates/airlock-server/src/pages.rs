//! The web UI's pages: runs, the live run view and its event stream, screenshots, the approval
//! queue, stop, replay, and reviewer management.
//!
//! Pages are rendered on the server from the audit store and the review queue; the only script
//! (`/assets/app.js`) follows the live stream, counts down expiries and notices queue changes.
//! It builds DOM nodes with `textContent`, so streamed page text is never parsed as HTML.

use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::fmt::Write as _;

use axum::extract::{Path, Query, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_TYPE, LOCATION};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Redirect, Response};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use airlock_audit::{BlobRef, Event, RunSummary};
use airlock_review::{Decision, Principal, QueuedRequest, Role, StopRequest};

use crate::auth::{pct, Authed, CanDecide, CanOperate, Mutation};
use crate::html::{
    badge, chips, esc, fmt_duration_ms, fmt_time, shot, truncate, Marker, ShotSource, CSS,
};
use crate::view::{self, item_of, marker_of, request_context, RunFacts, Shot};
use crate::{blocking, html, AppError, ServerState};

const SCRIPT: &str = include_str!("assets/app.js");

/// Viewport assumed when a run never started its browser.
const DEFAULT_VIEWPORT: (f64, f64) = (1280.0, 800.0);

fn now_ms() -> u64 {
    airlock_audit::now_ms()
}

/// The frame around every signed-in page.
fn layout<R: crate::Need>(
    title: &str,
    a: &Authed<R>,
    active: &str,
    pending: usize,
    body: &str,
    head: &str,
) -> String {
    let who = &a.who;
    let nav = |href: &str, key: &str, label: String| {
        let style = if key == active {
            r#" style="text-decoration:underline""#
        } else {
            ""
        };
        format!(r#"<a href="{href}"{style}>{label}</a>"#)
    };
    let queue_label = if pending > 0 {
        format!("Approvals <span class=\"badge\" style=\"color:#fff\">{pending}</span>")
    } else {
        "Approvals".into()
    };
    let mut links = vec![
        nav("/runs", "runs", "Runs".into()),
        nav("/approvals", "approvals", queue_label),
    ];
    if who.role().can_operate() {
        links.push(nav("/reviewers", "reviewers", "Reviewers".into()));
    }
    let logout = match &a.via {
        crate::Via::Session { csrf, .. } => format!(
            r#"<form method="post" action="/logout"><input type="hidden" name="csrf" value="{}"><button type="submit">Sign out</button></form>"#,
            esc(csrf)
        ),
        crate::Via::Token => String::new(),
    };
    format!(
        r#"<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width"><title>{title} · Airlock</title><style>{CSS}</style>{head}</head><body><header class="top"><a class="brand" href="/">AIRLOCK</a>{links}<span class="who">{name} · {role}</span>{logout}</header><main>{body}</main><script src="/assets/app.js"></script></body></html>"#,
        title = esc(title),
        links = links.join(""),
        name = esc(who.name()),
        role = esc(who.role().as_str()),
    )
}

pub async fn home() -> Redirect {
    Redirect::to("/runs")
}

pub async fn script() -> Response {
    ([(CONTENT_TYPE, "text/javascript; charset=utf-8")], SCRIPT).into_response()
}

async fn pending_requests(state: &ServerState) -> Result<Vec<QueuedRequest>, AppError> {
    let review = state.review();
    Ok(blocking(move || review.pending()).await??)
}

/// The run's summary and events; 404 for an unknown run.
async fn load_run(state: &ServerState, run: &str) -> Result<(RunSummary, Vec<Event>), AppError> {
    let audit = state.audit();
    let run = run.to_string();
    blocking(move || -> Result<_, AppError> {
        let summary = audit
            .runs()?
            .into_iter()
            .find(|r| r.run_id == run)
            .ok_or_else(|| AppError::page(StatusCode::NOT_FOUND, format!("unknown run `{run}`")))?;
        let events = audit.events(&run)?;
        Ok((summary, events))
    })
    .await?
}

// ---- runs --------------------------------------------------------------------------------

pub async fn runs(State(state): State<ServerState>, a: Authed) -> Result<Response, AppError> {
    let audit = state.audit();
    let list = blocking(move || audit.runs()).await??;
    let pending = pending_requests(&state).await?;
    let mut waiting: BTreeMap<&str, usize> = BTreeMap::new();
    for p in &pending {
        *waiting.entry(p.run_id.as_str()).or_default() += 1;
    }
    let mut rows = String::new();
    for r in &list {
        let facts = RunFacts::from(r, &[]);
        let status = if r.sealed {
            badge(
                facts.tone(),
                &truncate(facts.outcome_text.as_deref().unwrap_or("sealed"), 60),
            )
        } else if let Some(n) = waiting.get(r.run_id.as_str()) {
            badge("wait", &format!("waiting for approval ({n})"))
        } else {
            badge("info", &r.status)
        };
        let _ = write!(
            rows,
            r#"<tr><td class="nowrap"><a class="mono" href="/runs/{id_url}">{id}</a></td><td><b>{task}</b><div class="muted small">{goal}</div></td><td>{status}</td><td>{steps}</td><td class="small">{created}</td><td>{replay}</td></tr>"#,
            id_url = pct(&r.run_id),
            id = esc(&r.run_id),
            task = esc(&facts.task),
            goal = esc(&truncate(&facts.goal, 140)),
            steps = facts
                .steps
                .map(|s| s.to_string())
                .unwrap_or_else(|| "…".into()),
            created = esc(&fmt_time(r.created_ms)),
            replay = if r.sealed {
                format!(r#"<a href="/runs/{}/replay">replay</a>"#, pct(&r.run_id))
            } else {
                String::new()
            },
        );
    }
    if list.is_empty() {
        rows = r#"<tr><td colspan="6" class="muted">No runs yet. Start one with <code>airlock run TASK.toml --approvals web</code>.</td></tr>"#.into();
    }
    let body = format!(
        r#"<h1>Runs</h1><div class="card"><table><thead><tr><th>Run</th><th>Task</th><th>Status</th><th>Steps</th><th>Started</th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"#
    );
    Ok(html(layout(
        "Runs",
        &a,
        "runs",
        pending.len(),
        &body,
        r#"<meta http-equiv="refresh" content="10">"#,
    )))
}

// ---- one run, live -------------------------------------------------------------------------

pub async fn run_page(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    a: Authed,
) -> Result<Response, AppError> {
    let (summary, events) = load_run(&state, &run).await?;
    let facts = RunFacts::from(&summary, &events);
    let review = state.review();
    let run_id = run.clone();
    let (requests, stop, release) = blocking(move || -> Result<_, AppError> {
        Ok((
            review.for_run(&run_id)?,
            review.stop_request(&run_id)?,
            review.release_request(&run_id)?,
        ))
    })
    .await??;
    let frozen = events.iter().any(|e| e.kind == "frozen");
    let pending_all = pending_requests(&state).await?;

    let mut banners = String::new();
    for r in requests.iter().filter(|r| r.is_open()) {
        let _ = write!(
            banners,
            r#"<div class="banner wait"><b>Waiting for approval</b> at step {}: {} — <a href="/approvals#{}">review it</a></div>"#,
            r.step,
            esc(&r.details.summary),
            esc(&r.id)
        );
    }
    if let Some(s) = &stop {
        let _ = write!(
            banners,
            r#"<div class="banner bad"><b>Stop requested</b> by {} at {}: {}</div>"#,
            esc(&s.requested_by),
            esc(&fmt_time(s.requested_ms)),
            esc(&s.reason)
        );
    }
    if frozen && !facts.sealed {
        let _ = write!(
            banners,
            r#"<div class="banner info"><b>Frozen for inspection:</b> the browser is kept as it was stopped, with no further input, until it is released or its freeze time ends.{}</div>"#,
            match &release {
                Some(r) => format!(" Release requested by {}.", esc(&r.requested_by)),
                None => String::new(),
            }
        );
    }
    if facts.sealed {
        let _ = write!(
            banners,
            r#"<div class="banner {}"><b>Finished:</b> {} — <a href="/runs/{}/replay">open the replay</a></div>"#,
            if facts.tone() == "ok" { "ok" } else { "bad" },
            esc(facts.outcome_text.as_deref().unwrap_or("sealed")),
            pct(&run)
        );
    }

    let (w, h) = facts.viewport.unwrap_or(DEFAULT_VIEWPORT);
    let latest = events.iter().filter_map(Shot::of).next_back();
    let figure = match &latest {
        Some(s) => {
            // Mark what is about to happen: decisions made since this screenshot.
            let markers: Vec<Marker> = events
                .iter()
                .filter(|e| e.seq > s.seq && e.kind == "decision")
                .filter_map(|e| marker_of(&e.payload, None))
                .collect();
            shot(
                ShotSource::Url(&shot_url(&run, &s.blob)),
                w,
                h,
                &markers,
                &s.caption(),
            )
        }
        None => shot(ShotSource::Url(""), w, h, &[], "no screenshot yet"),
    };

    let mut items = String::new();
    for it in events.iter().filter_map(item_of) {
        items.push_str(&timeline_li(&it));
    }
    let last_seq = events.last().map_or(0, |e| e.seq);
    let stream_attr = if facts.sealed {
        String::new()
    } else {
        format!(
            r#" data-stream="/runs/{}/stream?after={last_seq}""#,
            pct(&run)
        )
    };
    let stop_form = if !facts.sealed && stop.is_none() && a.who.role().can_operate() {
        format!(
            r#"<form class="stop row" method="post" action="/runs/{}/stop" data-confirm="Stop this run? The agent gets no further input."><input type="hidden" name="csrf" value="{}"><input type="text" name="reason" placeholder="Why stop? (recorded in the audit)" required maxlength="2000" style="flex:1"><button class="btn stop" type="submit">Stop run</button></form>"#,
            pct(&run),
            esc(a.csrf())
        )
    } else if frozen && !facts.sealed && release.is_none() && a.who.role().can_operate() {
        format!(
            r#"<form class="stop row" method="post" action="/runs/{}/release"><input type="hidden" name="csrf" value="{}"><input type="text" name="reason" placeholder="Note (optional): what you inspected" maxlength="2000" style="flex:1"><button class="btn" type="submit">Release and tear down</button></form>"#,
            pct(&run),
            esc(a.csrf())
        )
    } else {
        String::new()
    };
    let current_step = events
        .iter()
        .filter_map(|e| view::u(&e.payload, "/step"))
        .max()
        .unwrap_or(0);
    // The script keeps `live-step` current as events arrive.
    let steps = match (facts.steps, facts.max_steps) {
        (Some(s), _) => format!("{s} steps"),
        (None, Some(max)) => {
            format!(r#"step <span id="live-step">{current_step}</span> of at most {max}"#)
        }
        (None, None) => format!(r#"step <span id="live-step">{current_step}</span>"#),
    };
    if !facts.sealed && !requests.iter().any(|r| r.is_open()) {
        banners.push_str(r#"<div class="banner wait" id="live-wait" hidden><b>Waiting for approval</b> — <a href="/approvals">review it in the queue</a></div>"#);
    }
    let body = format!(
        r#"<h1>Run <span class="mono">{run_id}</span></h1>{banners}<div class="card"><dl class="kv"><dt>Task</dt><dd><b>{task}</b> — {goal}</dd><dt>Model</dt><dd>{model}</dd><dt>Approvals</dt><dd>{approvals}</dd><dt>Started</dt><dd>{created}</dd><dt>Progress</dt><dd>{steps} · {status}</dd></dl>{stop_form}</div><div class="grid"><div class="card"><h2>Current screen</h2><div id="live-shot">{figure}</div></div><div class="card"><h2>Timeline</h2><ol class="timeline" id="timeline"{stream_attr}>{items}</ol></div></div>"#,
        run_id = esc(&run),
        task = esc(&facts.task),
        goal = esc(&facts.goal),
        model = esc(&facts.model),
        approvals = esc(&facts.approvals),
        created = esc(&fmt_time(facts.created_ms)),
        status = badge(
            facts.tone(),
            if facts.sealed {
                "finished"
            } else {
                &facts.status
            }
        ),
    );
    Ok(html(layout(&run, &a, "runs", pending_all.len(), &body, "")))
}

fn shot_url(run: &str, blob: &str) -> String {
    format!("/runs/{}/shots/{}", pct(run), pct(blob))
}

fn timeline_li(it: &view::Item) -> String {
    format!(
        r#"<li class="t-{tone}" data-seq="{seq}"><span class="st">{step}</span><span class="tx">{text}</span></li>"#,
        tone = it.tone,
        seq = it.seq,
        step = it.step.map(|s| format!("#{s}")).unwrap_or_default(),
        text = esc(&it.text)
    )
}

#[derive(Deserialize)]
pub struct StreamQuery {
    after: Option<u64>,
}

struct StreamState {
    state: ServerState,
    run: String,
    after: u64,
    queue: VecDeque<SseEvent>,
    done: bool,
    first: bool,
}

/// Server-sent events for one run: `item` (a timeline line), `shot` (a new screenshot),
/// `marker` (where the next action lands), and `end` once the run is sealed. Resumes after
/// `Last-Event-ID` (the audit sequence number) or `?after=`.
pub async fn stream(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    Query(q): Query<StreamQuery>,
    headers: HeaderMap,
    _a: Authed,
) -> Result<Sse<impl Stream<Item = Result<SseEvent, Infallible>>>, AppError> {
    load_run(&state, &run).await?;
    let after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
        .or(q.after)
        .unwrap_or(0);
    let init = StreamState {
        state,
        run,
        after,
        queue: VecDeque::new(),
        done: false,
        first: true,
    };
    let events = futures_util::stream::unfold(init, |mut st| async move {
        loop {
            if let Some(ev) = st.queue.pop_front() {
                return Some((Ok(ev), st));
            }
            if st.done || st.state.shutting_down() {
                return None;
            }
            if !st.first {
                tokio::time::sleep(st.state.config().poll_interval).await;
            }
            st.first = false;
            let audit = st.state.audit();
            let (run, after) = (st.run.clone(), st.after);
            let fresh = blocking(move || -> Result<Vec<Event>, airlock_audit::AuditError> {
                let head = audit
                    .runs()?
                    .into_iter()
                    .find(|r| r.run_id == run)
                    .map_or(0, |r| r.head_seq);
                if head <= after {
                    return Ok(Vec::new());
                }
                Ok(audit
                    .events(&run)?
                    .into_iter()
                    .filter(|e| e.seq > after)
                    .collect())
            })
            .await;
            let fresh = match fresh {
                Ok(Ok(f)) => f,
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "live stream cannot read the audit store");
                    continue;
                }
                Err(_) => continue,
            };
            for e in fresh {
                st.after = e.seq;
                push_stream_events(&mut st, &e);
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::default()))
}

fn push_stream_events(st: &mut StreamState, e: &Event) {
    let id = e.seq.to_string();
    let mut push = |name: &str, data: serde_json::Value| {
        if let Ok(ev) = SseEvent::default()
            .event(name)
            .id(id.clone())
            .json_data(data)
        {
            st.queue.push_back(ev);
        }
    };
    if let Some(it) = item_of(e) {
        push("item", json!(it));
    }
    if let Some(s) = Shot::of(e) {
        push(
            "shot",
            json!({"src": shot_url(&st.run, &s.blob), "caption": s.caption(), "step": s.step}),
        );
    }
    if e.kind == "decision" {
        if let Some(m) = marker_of(&e.payload, None) {
            push("marker", json!({"x": m.x, "y": m.y}));
        }
    }
    if e.kind == airlock_audit::KIND_SEALED {
        push("end", json!({"outcome": view::outcome_words(&e.payload)}));
        st.done = true;
    }
}

/// A screenshot of the run, only if one of the run's observations references it.
pub async fn screenshot(
    State(state): State<ServerState>,
    Path((run, blob)): Path<(String, String)>,
    _a: Authed,
) -> Result<Response, AppError> {
    let blob = BlobRef::parse(&blob)
        .map_err(|_| AppError::page(StatusCode::NOT_FOUND, "no such screenshot"))?;
    let audit = state.audit();
    let bytes = blocking(move || -> Result<Option<Vec<u8>>, AppError> {
        let events = audit.events(&run)?;
        let referenced = events
            .iter()
            .filter_map(Shot::of)
            .any(|s| s.blob == blob.as_str());
        if !referenced {
            return Ok(None);
        }
        Ok(Some(audit.get_blob(&blob)?))
    })
    .await??;
    match bytes {
        Some(b) if html::png_size(&b).is_some() => Ok((
            [
                (CONTENT_TYPE, HeaderValue::from_static("image/png")),
                (
                    CACHE_CONTROL,
                    HeaderValue::from_static("private, max-age=86400, immutable"),
                ),
            ],
            b,
        )
            .into_response()),
        _ => Err(AppError::page(StatusCode::NOT_FOUND, "no such screenshot")),
    }
}

#[derive(Deserialize)]
pub struct StopForm {
    #[serde(default)]
    reason: String,
}

/// What an operator asks of a live run.
#[derive(Clone, Copy)]
enum OperatorAsk {
    /// Stop and freeze it.
    Stop,
    /// Let a frozen run be torn down now.
    Release,
}

/// Shared by the forms and the API: records an operator's request on a run that is not
/// finished (the run's own process acts on it).
async fn ask_run(
    state: &ServerState,
    run: &str,
    who: Principal,
    reason: String,
    ask: OperatorAsk,
) -> Result<StopRequest, AppError> {
    let (summary, _) = load_run(state, run).await?;
    if summary.sealed {
        return Err(AppError::page(
            StatusCode::CONFLICT,
            format!("run `{run}` has already finished"),
        ));
    }
    let review = state.review();
    let run = run.to_string();
    let req = blocking(move || match ask {
        OperatorAsk::Stop => review.request_stop(&run, &who, &reason),
        OperatorAsk::Release => review.request_release(&run, &who, &reason),
    })
    .await??;
    let what = match ask {
        OperatorAsk::Stop => "stop requested",
        OperatorAsk::Release => "release requested",
    };
    tracing::info!(run = %req.run_id, by = %req.requested_by, "{what}");
    Ok(req)
}

/// Stop a run that is not finished.
pub(crate) async fn stop_run(
    state: &ServerState,
    run: &str,
    who: Principal,
    reason: String,
) -> Result<StopRequest, AppError> {
    ask_run(state, run, who, reason, OperatorAsk::Stop).await
}

/// Let a frozen run be torn down now.
pub(crate) async fn release_run(
    state: &ServerState,
    run: &str,
    who: Principal,
    reason: String,
) -> Result<StopRequest, AppError> {
    ask_run(state, run, who, reason, OperatorAsk::Release).await
}

/// The form's answer: back to the run's page.
fn to_run_page(run: &str) -> Response {
    (
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("/runs/{}", pct(run)))],
    )
        .into_response()
}

pub async fn stop(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    m: Mutation<CanOperate, StopForm>,
) -> Result<Response, AppError> {
    stop_run(&state, &run, m.who, m.input.reason).await?;
    Ok(to_run_page(&run))
}

pub async fn release(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    m: Mutation<CanOperate, StopForm>,
) -> Result<Response, AppError> {
    release_run(&state, &run, m.who, m.input.reason).await?;
    Ok(to_run_page(&run))
}

#[derive(Deserialize)]
pub struct ReplayQuery {
    #[serde(default)]
    download: bool,
}

/// The replay of a finished run, with a policy that allows no script at all.
pub async fn replay(
    State(state): State<ServerState>,
    Path(run): Path<String>,
    Query(q): Query<ReplayQuery>,
    _a: Authed,
) -> Result<Response, AppError> {
    let (summary, _) = load_run(&state, &run).await?;
    if !summary.sealed {
        return Err(AppError::page(
            StatusCode::CONFLICT,
            format!(
                "run `{run}` is still in progress; its replay is available once it is sealed (watch it live at /runs/{run})"
            ),
        ));
    }
    let audit = state.audit();
    let run_id = run.clone();
    let page = blocking(move || crate::replay::render_replay(audit.as_ref(), &run_id))
        .await?
        .map_err(|e| AppError::internal(&e.to_string()))?;
    let mut res = html(page);
    let h = res.headers_mut();
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(crate::replay::CSP),
    );
    if q.download {
        let name: String = run
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .collect();
        if let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"airlock-replay-{name}.html\""
        )) {
            h.insert(CONTENT_DISPOSITION, v);
        }
    }
    Ok(res)
}

// ---- approval queue ------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct QueueQuery {
    done: Option<String>,
}

pub async fn approvals(
    State(state): State<ServerState>,
    Query(q): Query<QueueQuery>,
    a: Authed,
) -> Result<Response, AppError> {
    let review = state.review();
    let (pending, recent) =
        blocking(move || -> Result<_, AppError> { Ok((review.pending()?, review.recent(30)?)) })
            .await??;
    // Each run's events, loaded once for all of its requests.
    let mut runs: BTreeMap<String, Option<(RunFacts, Vec<Event>)>> = BTreeMap::new();
    for r in &pending {
        if !runs.contains_key(&r.run_id) {
            let loaded = load_run(&state, &r.run_id)
                .await
                .ok()
                .map(|(s, ev)| (RunFacts::from(&s, &ev), ev));
            runs.insert(r.run_id.clone(), loaded);
        }
    }
    let now = now_ms();
    let mut body = String::from("<h1>Approval queue</h1>");
    if let Some(done) = q.done.as_deref() {
        if let Some(r) = recent.iter().find(|r| r.id == done) {
            let _ = write!(
                body,
                r#"<div class="banner {}">{} <b>{}</b> for run {} step {} — {}.</div>"#,
                if r.status == airlock_review::RequestStatus::Approved {
                    "ok"
                } else {
                    "bad"
                },
                esc(&capitalise(r.status.as_str())),
                esc(&r.details.summary),
                esc(&r.run_id),
                r.step,
                esc(&format!(
                    "by {}",
                    r.decided_by.as_deref().unwrap_or("airlock")
                ))
            );
        }
    }
    let mut ids: Vec<&str> = pending.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    let _ = write!(
        body,
        r#"<div id="queue" data-ids="{}"></div><div class="banner info" id="queue-changed" hidden>The queue has changed. <a href="/approvals">Reload</a></div>"#,
        esc(&ids.join(","))
    );
    if pending.is_empty() {
        body.push_str(r#"<div class="card muted">Nothing is waiting for approval.</div>"#);
    }
    for r in &pending {
        let run = runs.get(&r.run_id).and_then(Option::as_ref);
        body.push_str(&request_card(r, run, &a, now));
    }
    body.push_str(&recent_table(&recent));
    Ok(html(layout(
        "Approvals",
        &a,
        "approvals",
        pending.len(),
        &body,
        "",
    )))
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

fn request_card<R: crate::Need>(
    r: &QueuedRequest,
    run: Option<&(RunFacts, Vec<Event>)>,
    a: &Authed<R>,
    now: u64,
) -> String {
    let d = &r.details;
    let (facts, ctx) = match run {
        Some((f, events)) => (Some(f), request_context(events, u64::from(r.step))),
        None => (None, Default::default()),
    };
    let (w, h) = facts.and_then(|f| f.viewport).unwrap_or(DEFAULT_VIEWPORT);
    let figure = match &ctx.shot {
        Some(s) => shot(
            ShotSource::Url(&shot_url(&r.run_id, &s.blob)),
            w,
            h,
            ctx.marker.as_slice(),
            &s.caption(),
        ),
        None => r#"<div class="muted">No screenshot recorded before this request.</div>"#.into(),
    };
    let step_of = match facts.and_then(|f| f.max_steps) {
        Some(max) => format!("step {} of at most {max}", r.step),
        None => format!("step {}", r.step),
    };
    let fields = if d.fields.is_empty() {
        r#"<p class="muted">No form fields.</p>"#.to_string()
    } else {
        let rows: String = d
            .fields
            .iter()
            .map(|(k, v)| format!("<tr><td>{}</td><td>{}</td></tr>", esc(k), esc(v)))
            .collect();
        format!(
            r#"<table class="fields"><thead><tr><th>Field</th><th>Value that will be sent</th></tr></thead><tbody>{rows}</tbody></table>"#
        )
    };
    let form = if a.who.role().can_decide() {
        format!(
            r#"<form class="decide" method="post" action="/approvals/{id_url}"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="run_id" value="{run}"><label class="small muted">Reason (recorded in the audit; required to deny)<textarea name="reason" maxlength="2000" placeholder="e.g. the note names the failing test"></textarea></label><div class="row"><button class="btn approve" type="submit" name="decision" value="approve">Approve</button><button class="btn deny" type="submit" name="decision" value="deny">Deny</button><span class="muted small">as {who}</span></div></form>"#,
            id_url = pct(&r.id),
            csrf = esc(a.csrf()),
            run = esc(&r.run_id),
            who = esc(a.who.name()),
        )
    } else {
        r#"<p class="banner info">You have the viewer role: a reviewer or operator must decide.</p>"#
            .into()
    };
    let findings = if d.findings.is_empty() {
        String::new()
    } else {
        let items: String = d
            .findings
            .iter()
            .map(|f| format!("<li>{}</li>", esc(f)))
            .collect();
        format!(
            r#"<div class="banner bad"><b>Tainted run:</b> pages this run read contain text addressed to the agent. Check that this action serves the task, not the page.<ul class="small">{items}</ul></div>"#
        )
    };
    let tier_tone = match d.tier.as_str() {
        "high" => "bad",
        "medium" => "warn",
        _ => "info",
    };
    format!(
        r#"<section class="card step b-wait" id="{id}"><div class="row" style="margin:0 0 10px">{waiting} <b>Run <a class="mono" href="/runs/{run_url}">{run}</a></b> · {step_of} · <span class="muted small">requested {created}</span> · <span class="small" data-left-ms="{left}">expires in {left_words}</span> <span class="muted small mono">{id}</span></div><div class="grid"><div>{figure}</div><div><div class="muted small">The agent wants to</div><div class="summary">{summary}</div><dl class="kv"><dt>Effect</dt><dd>{effect} {tier}</dd><dt>Why approval</dt><dd>{reason}</dd>{read_as}<dt>Rules</dt><dd>{rules}</dd><dt>Page</dt><dd class="mono small">{page}</dd><dt>Task</dt><dd>{task}</dd></dl>{findings}<h3>What will be sent</h3>{fields}{form}</div></div></section>"#,
        id = esc(&r.id),
        waiting = badge("wait", "waiting"),
        run_url = pct(&r.run_id),
        run = esc(&r.run_id),
        created = esc(&fmt_time(r.created_ms)),
        left = r.remaining_ms(now),
        left_words = esc(&fmt_duration_ms(r.remaining_ms(now))),
        summary = esc(&d.summary),
        effect = badge("info", &d.effect),
        tier = badge(tier_tone, &format!("{} risk", d.tier)),
        reason = esc(&d.reason),
        // What the page says and what Airlock read, when a name or path hid something.
        read_as = d
            .read_as
            .as_deref()
            .map(|r| format!(r#"<dt>Read as</dt><dd class="read-as">{}</dd>"#, esc(r)))
            .unwrap_or_default(),
        rules = chips(&d.rules),
        page = esc(ctx.page.as_deref().unwrap_or("")),
        task = esc(&d.task),
    )
}

fn recent_table(recent: &[QueuedRequest]) -> String {
    let decided: Vec<&QueuedRequest> = recent.iter().filter(|r| !r.is_open()).collect();
    if decided.is_empty() {
        return String::new();
    }
    let mut rows = String::new();
    for r in decided {
        let tone = match r.status {
            airlock_review::RequestStatus::Approved => "ok",
            _ => "bad",
        };
        let _ = write!(
            rows,
            r#"<tr><td>{status}</td><td><a class="mono" href="/runs/{run_url}">{run}</a> #{step}</td><td>{summary}</td><td>{by}</td><td>{reason}</td><td class="small">{when}</td></tr>"#,
            status = badge(tone, r.status.as_str()),
            run_url = pct(&r.run_id),
            run = esc(&r.run_id),
            step = r.step,
            summary = esc(&truncate(&r.details.summary, 90)),
            by = esc(r.decided_by.as_deref().unwrap_or("")),
            reason = esc(r.decision_reason.as_deref().unwrap_or("")),
            when = esc(&r.decided_ms.map(fmt_time).unwrap_or_default()),
        );
    }
    format!(
        r#"<h2>Recently decided</h2><div class="card"><table><thead><tr><th>Result</th><th>Run</th><th>Action</th><th>By</th><th>Reason</th><th>When</th></tr></thead><tbody>{rows}</tbody></table></div>"#
    )
}

#[derive(Deserialize)]
pub struct DecideForm {
    pub decision: Decision,
    #[serde(default)]
    pub reason: String,
    /// The run the reviewer was looking at; a request of another run is refused.
    pub run_id: String,
}

/// Shared by the form and the API.
pub(crate) async fn decide_request(
    state: &ServerState,
    id: String,
    who: Principal,
    input: DecideForm,
) -> Result<QueuedRequest, AppError> {
    let review = state.review();
    let done = blocking(move || {
        review.decide(
            &id,
            Some(&input.run_id),
            &who,
            input.decision,
            &input.reason,
        )
    })
    .await??;
    tracing::info!(request = %done.id, run = %done.run_id, status = %done.status, by = ?done.decided_by, "approval decided");
    Ok(done)
}

pub async fn decide(
    State(state): State<ServerState>,
    Path(id): Path<String>,
    m: Mutation<CanDecide, DecideForm>,
) -> Result<Response, AppError> {
    let done = decide_request(&state, id, m.who, m.input).await?;
    Ok((
        StatusCode::SEE_OTHER,
        [(LOCATION, format!("/approvals?done={}", pct(&done.id)))],
    )
        .into_response())
}

// ---- reviewers -------------------------------------------------------------------------------

#[derive(Deserialize)]
pub struct ReviewersQuery {
    done: Option<String>,
}

pub async fn reviewers(
    State(state): State<ServerState>,
    Query(q): Query<ReviewersQuery>,
    a: Authed<CanOperate>,
) -> Result<Response, AppError> {
    let body = reviewers_body(&state, &a, q.done.as_deref(), None).await?;
    let pending = pending_requests(&state).await?;
    Ok(html(layout(
        "Reviewers",
        &a,
        "reviewers",
        pending.len(),
        &body,
        "",
    )))
}

async fn reviewers_body(
    state: &ServerState,
    a: &Authed<CanOperate>,
    done: Option<&str>,
    new_token: Option<(&str, &str)>,
) -> Result<String, AppError> {
    let review = state.review();
    let (list, tokens) = blocking(move || -> Result<_, AppError> {
        Ok((review.reviewers()?, review.tokens(None)?))
    })
    .await??;
    let csrf = esc(a.csrf());
    let mut body = String::from("<h1>Reviewers</h1>");
    let msg = match done {
        Some("added") => Some("Reviewer added."),
        Some("role") => Some("Role changed."),
        Some("removed") => Some("Reviewer removed."),
        Some("revoked") => Some("Token revoked."),
        Some("password") => Some("Password changed."),
        _ => None,
    };
    if let Some(m) = msg {
        let _ = write!(body, r#"<div class="banner ok">{m}</div>"#);
    }
    if let Some((who, token)) = new_token {
        let _ = write!(
            body,
            r#"<div class="banner wait">New API token for <b>{}</b> — copy it now, it is not shown again:<pre>{}</pre>Use it as <code>Authorization: Bearer …</code>.</div>"#,
            esc(who),
            esc(token)
        );
    }
    let role_options = |current: Role| -> String {
        Role::ALL
            .iter()
            .map(|r| {
                format!(
                    r#"<option value="{0}"{1}>{0}</option>"#,
                    r.as_str(),
                    if *r == current { " selected" } else { "" }
                )
            })
            .collect()
    };
    let mut rows = String::new();
    for r in &list {
        let _ = write!(
            rows,
            r#"<tr><td><b>{name}</b></td><td><form method="post" action="/reviewers" class="row" style="margin:0"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="role"><input type="hidden" name="name" value="{name}"><select name="role">{opts}</select><button class="btn" type="submit">Change role</button></form></td><td class="small">{created}</td><td>{tokens}</td><td><form method="post" action="/reviewers" class="row" style="margin:0"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="token"><input type="hidden" name="name" value="{name}"><input type="text" name="label" placeholder="token label" maxlength="100"><button class="btn" type="submit">Issue token</button></form></td><td><form method="post" action="/reviewers" data-confirm="Remove this reviewer and their tokens?" style="margin:0"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="remove"><input type="hidden" name="name" value="{name}"><button class="btn deny" type="submit">Remove</button></form></td></tr>"#,
            name = esc(&r.name),
            opts = role_options(r.role),
            created = esc(&fmt_time(r.created_ms)),
            tokens = r.tokens,
        );
    }
    let _ = write!(
        body,
        r#"<div class="card"><table><thead><tr><th>Name</th><th>Role</th><th>Added</th><th>Tokens</th><th></th><th></th></tr></thead><tbody>{rows}</tbody></table></div>"#
    );
    let _ = write!(
        body,
        r#"<h2>Add a reviewer</h2><div class="card"><form method="post" action="/reviewers" class="inline"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="add"><div class="two"><label>Name<input type="text" name="name" required maxlength="64" pattern="[A-Za-z0-9][A-Za-z0-9._@\-]*"></label><label>Role<select name="role">{opts}</select></label></div><label>Password (at least {min} characters)<input type="password" name="password" required minlength="{min}" autocomplete="new-password"></label><div class="row"><button class="btn approve" type="submit">Add reviewer</button></div></form><p class="muted small">Viewers see runs and the queue; reviewers also approve and deny; operators also stop runs and manage reviewers.</p></div>"#,
        opts = role_options(Role::Reviewer),
        min = airlock_review::MIN_PASSWORD_CHARS,
    );
    if !tokens.is_empty() {
        let mut trs = String::new();
        for t in &tokens {
            let _ = write!(
                trs,
                r#"<tr><td class="mono">{id}</td><td>{who}</td><td>{label}</td><td class="small">{created}</td><td class="small">{used}</td><td><form method="post" action="/reviewers" style="margin:0"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="action" value="revoke"><input type="hidden" name="token_id" value="{id}"><button class="btn deny" type="submit">Revoke</button></form></td></tr>"#,
                id = esc(&t.id),
                who = esc(&t.reviewer),
                label = esc(&t.label),
                created = esc(&fmt_time(t.created_ms)),
                used = esc(&t
                    .last_used_ms
                    .map(fmt_time)
                    .unwrap_or_else(|| "never".into())),
            );
        }
        let _ = write!(
            body,
            r#"<h2>API tokens</h2><div class="card"><table><thead><tr><th>Id</th><th>Reviewer</th><th>Label</th><th>Issued</th><th>Last used</th><th></th></tr></thead><tbody>{trs}</tbody></table></div>"#
        );
    }
    Ok(body)
}

#[derive(Deserialize)]
pub struct ReviewersChange {
    action: String,
    name: Option<String>,
    role: Option<String>,
    password: Option<String>,
    label: Option<String>,
    token_id: Option<String>,
}

pub async fn reviewers_change(
    State(state): State<ServerState>,
    m: Mutation<CanOperate, ReviewersChange>,
) -> Result<Response, AppError> {
    let (a, c) = m.split();
    let review = state.review();
    let name = c.name.clone().unwrap_or_default();
    let redirect = |done: &str| {
        Ok((
            StatusCode::SEE_OTHER,
            [(LOCATION, format!("/reviewers?done={done}"))],
        )
            .into_response())
    };
    match c.action.as_str() {
        "add" => {
            let role: Role = c.role.as_deref().unwrap_or("").parse()?;
            let password = c.password.unwrap_or_default();
            blocking(move || review.add_reviewer(&name, role, &password)).await??;
            tracing::info!(by = %a.who.name(), reviewer = %c.name.unwrap_or_default(), %role, "reviewer added");
            redirect("added")
        }
        "role" => {
            let role: Role = c.role.as_deref().unwrap_or("").parse()?;
            blocking(move || review.set_role(&name, role)).await??;
            redirect("role")
        }
        "remove" => {
            blocking(move || review.remove_reviewer(&name)).await??;
            redirect("removed")
        }
        "revoke" => {
            let id = c.token_id.unwrap_or_default();
            blocking(move || review.revoke_token(&id)).await??;
            redirect("revoked")
        }
        "token" => {
            let label = c.label.unwrap_or_default();
            let who = name.clone();
            let (_, token) = blocking(move || review.issue_token(&who, &label)).await??;
            let body = reviewers_body(&state, &a, None, Some((&name, &token))).await?;
            let pending = pending_requests(&state).await?;
            Ok(html(layout(
                "Reviewers",
                &a,
                "reviewers",
                pending.len(),
                &body,
                "",
            )))
        }
        other => Err(AppError::page(
            StatusCode::BAD_REQUEST,
            format!("unknown action `{}`", truncate(other, 40)),
        )),
    }
}
