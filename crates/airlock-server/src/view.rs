//! Reading a run's audit events for people: run facts, one-line timeline items, the context of
//! an approval request (which screenshot, which point), and click markers.
//!
//! The audit store treats payloads as opaque JSON; this module is where the web UI and the
//! replay agree on what the engine's event kinds mean. Every field is optional here: an event
//! from an older or newer engine renders with less detail, never with an error.

use airlock_audit::{Event, RunSummary};
use serde::Serialize;
use serde_json::Value;

use crate::html::{truncate, Marker};

/// A string at a JSON pointer.
pub fn s<'a>(v: &'a Value, ptr: &str) -> Option<&'a str> {
    v.pointer(ptr).and_then(Value::as_str)
}

/// A number at a JSON pointer.
pub fn n(v: &Value, ptr: &str) -> Option<f64> {
    v.pointer(ptr).and_then(Value::as_f64)
}

/// A non-negative integer at a JSON pointer.
pub fn u(v: &Value, ptr: &str) -> Option<u64> {
    v.pointer(ptr).and_then(Value::as_u64)
}

/// Strings of an array at a JSON pointer.
pub fn strings(v: &Value, ptr: &str) -> Vec<String> {
    v.pointer(ptr)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// What the run is, from its summary and first events.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RunFacts {
    pub run_id: String,
    pub task: String,
    pub goal: String,
    pub model: String,
    pub approvals: String,
    pub max_steps: Option<u64>,
    /// Viewport in CSS pixels: the coordinate space of element centres.
    pub viewport: Option<(f64, f64)>,
    pub status: String,
    pub sealed: bool,
    pub created_ms: u64,
    /// `succeeded`, `not_verified`, … once sealed.
    pub outcome: Option<String>,
    /// The outcome in words, once sealed.
    pub outcome_text: Option<String>,
    pub steps: Option<u64>,
}

impl RunFacts {
    pub fn from(summary: &RunSummary, events: &[Event]) -> RunFacts {
        let t = &summary.task;
        let viewport = events
            .iter()
            .find(|e| e.kind == "sandbox_started")
            .and_then(|e| {
                Some((
                    n(&e.payload, "/viewport/width")?,
                    n(&e.payload, "/viewport/height")?,
                ))
            });
        let outcome = summary
            .outcome
            .as_ref()
            .and_then(|o| s(o, "/result/outcome"))
            .map(str::to_string);
        RunFacts {
            run_id: summary.run_id.clone(),
            task: s(t, "/task").unwrap_or("").to_string(),
            goal: s(t, "/goal").unwrap_or("").to_string(),
            model: s(t, "/model").unwrap_or("").to_string(),
            approvals: s(t, "/approvals").unwrap_or("").to_string(),
            max_steps: u(t, "/manifest/budgets/max_steps"),
            viewport,
            status: summary.status.clone(),
            sealed: summary.sealed,
            created_ms: summary.created_ms,
            outcome_text: summary.outcome.as_ref().map(outcome_words),
            outcome,
            steps: summary.outcome.as_ref().and_then(|o| u(o, "/steps")),
        }
    }

    /// Tone of the run's state for badges.
    pub fn tone(&self) -> &'static str {
        match (self.sealed, self.outcome.as_deref()) {
            (true, Some("succeeded")) => "ok",
            (true, _) => "bad",
            (false, _) => "info",
        }
    }
}

/// The seal's outcome in words (mirrors the engine's `Outcome::summary`).
pub fn outcome_words(o: &Value) -> String {
    let r = o.get("result").unwrap_or(o);
    match s(r, "/outcome") {
        Some("succeeded") => "succeeded: verified by the host".into(),
        Some("not_verified") => format!("not verified: {}", strings(r, "/failures").join("; ")),
        Some("approval_denied") => format!(
            "approval denied at step {} by {} ({})",
            u(r, "/step").unwrap_or(0),
            s(r, "/by").unwrap_or("?"),
            s(r, "/reason").unwrap_or("")
        ),
        Some("budget_exhausted") => format!("budget exhausted ({})", s(r, "/what").unwrap_or("")),
        Some("provider_failed") => format!("model error: {}", s(r, "/reason").unwrap_or("")),
        Some("sandbox_failed") => format!("sandbox error: {}", s(r, "/reason").unwrap_or("")),
        Some("stopped") => format!(
            "stopped by {}: {}",
            s(r, "/by").unwrap_or("?"),
            s(r, "/reason").unwrap_or("")
        ),
        Some(other) => other.replace('_', " "),
        None => "sealed".into(),
    }
}

/// An `observation` event, as the UI needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Shot {
    pub seq: u64,
    pub step: u64,
    pub blob: String,
    pub url: String,
    pub title: String,
    pub snapshot: String,
}

impl Shot {
    pub fn of(e: &Event) -> Option<Shot> {
        if e.kind != "observation" {
            return None;
        }
        let blob = s(&e.payload, "/screenshot")
            .map(str::to_string)
            .or_else(|| e.blobs.first().map(|b| b.as_str().to_string()))?;
        Some(Shot {
            seq: e.seq,
            step: u(&e.payload, "/step").unwrap_or(0),
            blob,
            url: s(&e.payload, "/url").unwrap_or("").to_string(),
            title: s(&e.payload, "/title").unwrap_or("").to_string(),
            snapshot: s(&e.payload, "/snapshot").unwrap_or("").to_string(),
        })
    }

    pub fn caption(&self) -> String {
        if self.title.is_empty() {
            self.url.clone()
        } else {
            format!("{} — {}", self.url, self.title)
        }
    }
}

/// Where a decision's action lands on the screenshot taken before it: the resolved element's
/// centre, else the proposed point, else the focused element (for typing and keys).
pub fn marker_of(decision: &Value, label: Option<String>) -> Option<Marker> {
    let at = |p: &str| {
        Some((
            n(decision, &format!("{p}/x"))?,
            n(decision, &format!("{p}/y"))?,
        ))
    };
    let (x, y) = at("/element/center")
        .or_else(|| at("/action/target/point"))
        .or_else(|| at("/action/at"))
        .or_else(|| at("/focused/center"))?;
    Some(Marker { x, y, label })
}

/// Everything the queue shows about a request besides the request itself.
#[derive(Debug, Clone, Default)]
pub struct RequestContext {
    /// The latest observation before the request.
    pub shot: Option<Shot>,
    pub marker: Option<Marker>,
    /// The page the decision was made on.
    pub page: Option<String>,
}

/// Finds the observation and target point for the request of `step` (the latest one, if a
/// step asked more than once).
pub fn request_context(events: &[Event], step: u64) -> RequestContext {
    let at_step = |e: &&Event| u(&e.payload, "/step") == Some(step);
    let anchor = events
        .iter()
        .rev()
        .find(|e| e.kind == "approval_requested" && at_step(e))
        .or_else(|| {
            events.iter().rev().find(|e| {
                e.kind == "decision"
                    && at_step(e)
                    && s(&e.payload, "/decision/verdict") == Some("needs_approval")
            })
        });
    let Some(anchor) = anchor else {
        return RequestContext::default();
    };
    let before = events.iter().filter(|e| e.seq <= anchor.seq);
    let decision = before.clone().rfind(|e| e.kind == "decision" && at_step(e));
    let shot = before.filter_map(Shot::of).next_back();
    RequestContext {
        shot,
        marker: decision.and_then(|d| marker_of(&d.payload, None)),
        page: decision.and_then(|d| s(&d.payload, "/page").map(str::to_string)),
    }
}

/// One line of a run's timeline.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Item {
    pub seq: u64,
    pub step: Option<u64>,
    pub kind: String,
    /// `ok`, `bad`, `warn`, `wait`, `info` or `mut`.
    pub tone: &'static str,
    pub text: String,
    pub ts_ms: u64,
}

/// The timeline line for an event; `None` for events too noisy to show (allowed egress).
pub fn item_of(e: &Event) -> Option<Item> {
    let p = &e.payload;
    let st = |k: &str| s(p, k).unwrap_or("");
    let (tone, text) = match e.kind.as_str() {
        "run_started" => (
            "info",
            format!(
                "run started: task `{}` with {} (approvals: {})",
                st("/task"),
                st("/model"),
                st("/approvals")
            ),
        ),
        "baseline" => (
            "mut",
            format!(
                "baseline of {} record(s) that must not change",
                p.pointer("/records")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len)
            ),
        ),
        "baseline_failed" => ("bad", format!("baseline failed: {}", st("/error"))),
        "sandbox_started" => (
            "mut",
            format!(
                "browser started ({}×{}), allowed hosts: {}",
                u(p, "/viewport/width").unwrap_or(0),
                u(p, "/viewport/height").unwrap_or(0),
                strings(p, "/allowed_hosts").join(", ")
            ),
        ),
        "sandbox_failed" => ("bad", format!("sandbox failed: {}", st("/error"))),
        "host_navigate" => ("mut", format!("host opened {}", st("/url"))),
        "egress" if p.get("allowed") == Some(&Value::Bool(true)) => return None,
        "egress" => (
            "warn",
            format!(
                "blocked {} {}{}: {}",
                st("/method"),
                st("/host"),
                st("/path"),
                st("/reason")
            ),
        ),
        "observation" => (
            "mut",
            format!("observed {} — {}", st("/url"), truncate(st("/title"), 80)),
        ),
        "observation_failed" => ("bad", format!("observation failed: {}", st("/error"))),
        "proposal" => ("info", format!("model proposed: {}", actions_words(p))),
        "proposal_rejected" => ("warn", format!("model output rejected: {}", st("/error"))),
        "decision" => {
            let verdict = st("/decision/verdict");
            let tone = match verdict {
                "allow" => "ok",
                "checkpoint" => "info",
                "needs_approval" => "wait",
                _ => "bad",
            };
            (
                tone,
                format!(
                    "{} → {} ({} risk, {}) [{}]",
                    st("/summary"),
                    verdict.replace('_', " "),
                    st("/decision/tier"),
                    st("/decision/effect"),
                    strings(p, "/decision/rules").join(", ")
                ),
            )
        }
        "approval_requested" => (
            "wait",
            format!("waiting for approval: {}", st("/request/summary")),
        ),
        "approval" => match st("/answer/answer") {
            "approved" => (
                "ok",
                format!("approved by {}: {}", st("/answer/by"), st("/answer/reason")),
            ),
            _ => (
                "bad",
                format!("denied by {}: {}", st("/answer/by"), st("/answer/reason")),
            ),
        },
        "action_result" if p.get("ok") == Some(&Value::Bool(true)) => {
            ("ok", format!("done: {}", st("/note")))
        }
        "action_result" => ("bad", format!("failed: {}", st("/note"))),
        "checkpoint" => (
            "info",
            format!(
                "checkpoint: {} — {}",
                st("/url"),
                truncate(st("/title"), 80)
            ),
        ),
        "stop" => (
            "bad",
            format!("stopped by {}: {}", st("/by"), st("/reason")),
        ),
        "frozen" => (
            "info",
            format!(
                "frozen for inspection (up to {} s, or until released)",
                u(p, "/freeze_secs").unwrap_or(0)
            ),
        ),
        "injection_findings" => (
            "warn",
            format!(
                "page content addresses the agent on {}: {} — the run is tainted",
                st("/url"),
                findings_words(p)
            ),
        ),
        "claim" => (
            "info",
            format!("model claims done: {}", truncate(st("/claim"), 200)),
        ),
        "verification" => {
            let (passed, total) = (u(p, "/passed").unwrap_or(0), u(p, "/total").unwrap_or(0));
            (
                if total > 0 && passed == total {
                    "ok"
                } else {
                    "bad"
                },
                format!("host verification: {passed} of {total} criteria passed"),
            )
        }
        "teardown" => (
            if p.get("run_dir_removed") == Some(&Value::Bool(true)) {
                "ok"
            } else {
                "bad"
            },
            format!(
                "teardown: {} process(es) killed, {} remaining, profile {}",
                p.pointer("/processes_killed")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len),
                p.pointer("/processes_remaining")
                    .and_then(Value::as_array)
                    .map_or(0, Vec::len),
                if p.get("run_dir_removed") == Some(&Value::Bool(true)) {
                    "deleted"
                } else {
                    "NOT deleted"
                }
            ),
        ),
        "sealed" => (
            if s(p, "/result/outcome") == Some("succeeded") {
                "ok"
            } else {
                "bad"
            },
            format!("sealed: {}", outcome_words(p)),
        ),
        other => ("mut", other.replace('_', " ")),
    };
    Some(Item {
        seq: e.seq,
        step: u(p, "/step"),
        kind: e.kind.clone(),
        tone,
        text,
        ts_ms: e.ts_ms,
    })
}

/// `pattern (location): excerpt; …` for an `injection_findings` payload.
pub fn findings_words(p: &Value) -> String {
    p.pointer("/findings")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .map(|f| match f.as_str() {
                    Some(text) => truncate(text, 160),
                    None => format!(
                        "{} ({}): {}",
                        s(f, "/pattern").unwrap_or("?"),
                        s(f, "/location").unwrap_or("?"),
                        truncate(s(f, "/excerpt").unwrap_or(""), 120)
                    ),
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

/// `click (632, 287), type 'ci-reader'` for a proposal's parsed actions.
pub fn actions_words(p: &Value) -> String {
    let Some(actions) = p.pointer("/actions").and_then(Value::as_array) else {
        return "nothing".into();
    };
    if actions.is_empty() {
        return "nothing".into();
    }
    actions
        .iter()
        .map(|a| {
            let kind = s(a, "/kind").unwrap_or("?");
            match kind {
                "click" => match (n(a, "/target/point/x"), n(a, "/target/point/y")) {
                    (Some(x), Some(y)) => format!("click ({x}, {y})"),
                    _ => "click".into(),
                },
                "type" => match s(a, "/text/literal") {
                    Some(t) => format!("type '{}'", truncate(t, 40)),
                    None => "type (secret)".into(),
                },
                "navigate" => format!("navigate {}", s(a, "/url").unwrap_or("")),
                "key" => format!("key {}", s(a, "/combo").unwrap_or("")),
                "done" => "done".into(),
                other => other.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
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

    fn shot_payload(step: u64, hash: &str) -> Value {
        json!({"step": step, "url": format!("http://x/{step}"), "title": "t", "screenshot": hash})
    }

    #[test]
    fn request_context_uses_the_last_observation_and_the_decision_centre() {
        let h1 = "1".repeat(64);
        let h2 = "2".repeat(64);
        let events = vec![
            ev(1, "observation", shot_payload(0, &h1)),
            ev(
                2,
                "decision",
                json!({"step": 1, "element": {"center": {"x": 10.0, "y": 20.0}}}),
            ),
            ev(3, "observation", shot_payload(1, &h2)),
            ev(
                4,
                "decision",
                json!({"step": 2, "page": "http://x/p", "element": {"center": {"x": 857.5, "y": 497.0}}, "decision": {"verdict": "needs_approval"}}),
            ),
            ev(5, "approval_requested", json!({"step": 2, "request": {}})),
            ev(6, "observation", shot_payload(2, &"3".repeat(64))),
        ];
        let c = request_context(&events, 2);
        assert_eq!(c.shot.unwrap().blob, h2);
        let m = c.marker.unwrap();
        assert_eq!((m.x, m.y), (857.5, 497.0));
        assert_eq!(c.page.as_deref(), Some("http://x/p"));
        assert!(request_context(&events, 9).shot.is_none());
    }

    #[test]
    fn markers_fall_back_to_the_proposed_point_then_the_focus() {
        let d = json!({"action": {"target": {"point": {"x": 1.0, "y": 2.0}}}, "element": null});
        assert_eq!(marker_of(&d, None).map(|m| (m.x, m.y)), Some((1.0, 2.0)));
        let d = json!({"action": {"kind": "type"}, "focused": {"center": {"x": 5.0, "y": 6.0}}});
        assert_eq!(marker_of(&d, None).map(|m| (m.x, m.y)), Some((5.0, 6.0)));
        assert!(marker_of(&json!({"action": {"kind": "key"}}), None).is_none());
    }

    #[test]
    fn timeline_items_say_what_happened() {
        let d = ev(
            7,
            "decision",
            json!({"step": 16, "summary": "Click button 'Submit note'", "decision": {"verdict": "needs_approval", "tier": "high", "effect": "submit", "rules": ["builtin.risk.submit"]}}),
        );
        let i = item_of(&d).unwrap();
        assert_eq!(i.tone, "wait");
        assert_eq!(i.step, Some(16));
        assert!(i.text.contains("Submit note") && i.text.contains("needs approval"));
        assert!(item_of(&ev(8, "egress", json!({"allowed": true}))).is_none());
        let a = item_of(&ev(
            9,
            "approval",
            json!({"answer": {"answer": "denied", "by": "bob", "reason": "no"}}),
        ))
        .unwrap();
        assert_eq!((a.tone, a.text.as_str()), ("bad", "denied by bob: no"));
        let unknown = item_of(&ev(10, "future_kind", json!(null))).unwrap();
        assert_eq!(unknown.text, "future kind");
    }

    #[test]
    fn outcomes_read_as_words() {
        assert_eq!(
            outcome_words(&json!({"result": {"outcome": "stopped", "by": "olga", "reason": "x"}})),
            "stopped by olga: x"
        );
        assert!(
            outcome_words(&json!({"result": {"outcome": "succeeded"}})).starts_with("succeeded")
        );
    }
}
