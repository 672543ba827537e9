//! The engine's side of request-layer gating: the task's declared effects, plus the scope of
//! the agent's step executing right now, decide each request the page sends
//! ([`airlock_policy::check_request`] holds the rules).
//!
//! The sandbox calls [`EffectGate`] from its interception task for every request that passed
//! the host check; the engine *arms* it with the scope of an authorised `submit`/`destructive`
//! step for exactly as long as that step executes, so the form the agent was approved to send
//! goes through and the same request sent by a page script at any other time does not.
//!
//! One case sits in between: while the agent's *input* (a click, a key, typing) is executing,
//! the page may answer it with a request of its own to a declared `submit`/`destructive` path
//! (a JavaScript "Save" button that calls `fetch`, a script that submits a form). The gate
//! could not authorise it (it decided on the element, not on a request it could not foresee),
//! so it is *held* in the browser and a human decides with the method, path and the field
//! values it would send in front of them ([`Engine::review_held`]). A request the page sends
//! while the agent is not giving input (on load, from a timer) is refused as before.

use super::approval::{ApprovalOutcome, ApprovalRequest, Approver};
use super::{finding_lines, DriveError, Engine, Live, Outcome};
use airlock_core::effect::Effect;
use airlock_core::host::WebUrl;
use airlock_core::manifest::TaskManifest;
use airlock_core::Action;
use airlock_policy::{check_request, request_effect, PageRequest, RequestVerdict};
use airlock_providers::Provider;
use airlock_sandbox::{GateAnswer, HeldRequest, RequestFacts, RequestGate};
use serde_json::json;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct EffectGate {
    manifest: TaskManifest,
    armed: Mutex<Vec<String>>,
    /// How many agent inputs are executing now (their requests are held, not refused).
    inputs: AtomicUsize,
    /// Requests held since the current input started: a page that answers one click with a
    /// stream of requests (or sends another after each one is released) gets
    /// [`MAX_HELD_PER_INPUT`] reviews, and the rest are refused without asking anyone.
    held: AtomicUsize,
}

/// Requests of the page held for a human in answer to one input of the agent, at most.
pub(crate) const MAX_HELD_PER_INPUT: usize = 3;

impl EffectGate {
    pub(crate) fn new(manifest: TaskManifest) -> Arc<Self> {
        Arc::new(EffectGate {
            manifest,
            armed: Mutex::new(Vec::new()),
            inputs: AtomicUsize::new(0),
            held: AtomicUsize::new(0),
        })
    }

    /// Lets requests to `scope` with the authorised `effect` through while the returned guard
    /// lives (the action's execution). Effects below `submit` need no arming. While `action` is
    /// input the page may answer (see [`is_input`]), requests that need authorisation are held
    /// for a human instead of refused.
    pub(crate) fn arm(
        self: &Arc<Self>,
        action: &Action,
        effect: Effect,
        scope: Option<&str>,
    ) -> Armed {
        let scope = match (effect, scope) {
            (Effect::Submit | Effect::Destructive, Some(s)) => Some(s.to_string()),
            _ => None,
        };
        if let (Some(s), Ok(mut a)) = (&scope, self.armed.lock()) {
            a.push(s.clone());
        }
        let input = is_input(action);
        if input {
            self.held.store(0, Ordering::SeqCst);
            self.inputs.fetch_add(1, Ordering::SeqCst);
        }
        Armed {
            gate: Arc::clone(self),
            scope,
            input,
        }
    }
}

/// Input a page may answer with a request of its own: pointer and keyboard. Loading a page,
/// scrolling, waiting and looking are not: what a page sends then, it sends on its own.
fn is_input(action: &Action) -> bool {
    matches!(
        action,
        Action::Click { .. } | Action::Drag { .. } | Action::Type { .. } | Action::Key { .. }
    )
}

/// Disarms its scope when dropped, however the action ended.
pub(crate) struct Armed {
    gate: Arc<EffectGate>,
    scope: Option<String>,
    input: bool,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut a)) = (&self.scope, self.gate.armed.lock()) {
            if let Some(i) = a.iter().position(|x| x == s) {
                a.swap_remove(i);
            }
        }
        if self.input {
            self.gate.inputs.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl RequestGate for EffectGate {
    fn check(&self, r: &RequestFacts<'_>) -> GateAnswer {
        // A poisoned lock means a panic elsewhere: nothing is armed then (fail closed).
        let armed = self.armed.lock().map(|a| a.clone()).unwrap_or_default();
        let download = r.resource_type == "Download";
        match check_request(
            &self.manifest,
            &PageRequest {
                method: r.method,
                url: r.url,
                navigation: r.navigation,
                download,
            },
            &armed,
        ) {
            RequestVerdict::Unauthorised { reason, .. }
                if !download && self.inputs.load(Ordering::SeqCst) > 0 =>
            {
                if self.held.fetch_add(1, Ordering::SeqCst) < MAX_HELD_PER_INPUT {
                    GateAnswer::Hold(reason)
                } else {
                    GateAnswer::Refuse(format!(
                        "{reason}; the page already sent {MAX_HELD_PER_INPUT} such requests in \
                         answer to this step, and no more are held for review"
                    ))
                }
            }
            RequestVerdict::Unauthorised { reason, .. }
            | RequestVerdict::Refused { reason, .. } => GateAnswer::Refuse(reason),
            RequestVerdict::Allowed(_) | RequestVerdict::Authorised(_) => GateAnswer::Continue,
        }
    }
}

/// What a reviewer is shown of a held request's body: form fields, a JSON object's members,
/// or the body itself, each value cut to a readable length. (Secret values are redacted from
/// the audit like everything else.)
pub(crate) fn body_fields(body: Option<&str>, content_type: Option<&str>) -> Vec<(String, String)> {
    let Some(body) = body.filter(|b| !b.is_empty()) else {
        return Vec::new();
    };
    let cut = |v: &str| airlock_core::action::truncate(v, 300);
    let kind = content_type.unwrap_or_default().to_ascii_lowercase();
    if kind.starts_with("application/x-www-form-urlencoded") {
        return url::form_urlencoded::parse(body.as_bytes())
            .map(|(k, v)| (k.into_owned(), cut(&v)))
            .collect();
    }
    if kind.starts_with("application/json") || kind.is_empty() || kind.starts_with("text/plain") {
        if let Ok(serde_json::Value::Object(o)) = serde_json::from_str(body) {
            return o
                .iter()
                .map(|(k, v)| {
                    let v = v.as_str().map_or_else(|| v.to_string(), str::to_string);
                    (k.clone(), cut(&v))
                })
                .collect();
        }
    }
    vec![("body".into(), cut(body))]
}

/// How the held requests of one step ended.
#[derive(Default)]
pub(crate) struct HeldReview {
    /// What the model is told, one sentence per request.
    pub notes: Vec<String>,
    /// A reviewer refused one: the run ends, as with any refused approval.
    pub stop: Option<Outcome>,
}

impl<P: Provider, A: Approver> Engine<'_, P, A> {
    /// Requests the page sent in answer to the agent's input that the gate held: each goes to
    /// the approver with the method, path and field values it would send (recorded before the
    /// answer is acted on), then is sent as it is or failed. Once one is refused, any others
    /// are failed without asking.
    pub(crate) async fn review_held(
        &mut self,
        live: &mut Live,
        m: &TaskManifest,
        step: u32,
        index: usize,
        summary: &str,
    ) -> Result<HeldReview, DriveError> {
        let mut review = HeldReview::default();
        loop {
            let held: Vec<HeldRequest> = match live.sandbox.as_ref() {
                Some(sb) => sb.take_held(),
                None => Vec::new(),
            };
            if held.is_empty() {
                return Ok(review);
            }
            for h in held {
                let (effect, scope) = match WebUrl::parse(&h.url) {
                    Ok(u) => (request_effect(m, &h.method, &u, h.navigation), u.scope()),
                    Err(_) => (Effect::Submit, airlock_core::action::truncate(&h.url, 120)),
                };
                let scope = live.redactor.redact_str(&scope).0;
                let req = ApprovalRequest {
                    run_id: live.run_id.clone(),
                    step,
                    task: m.task.goal.clone(),
                    summary: format!(
                        "The page sent {} {scope} in answer to the agent's step ({summary})",
                        h.method
                    ),
                    effect: effect.to_string(),
                    tier: airlock_core::RiskTier::High.to_string(),
                    reason: format!(
                        "{}; Airlock holds the request in the browser until a person decides",
                        h.reason
                    ),
                    rules: vec!["builtin.request.held".into()],
                    // The reviewer's card is stored in the review queue too: secret values
                    // the page would send are redacted there like everywhere else.
                    fields: body_fields(h.body.as_deref(), h.content_type.as_deref())
                        .into_iter()
                        .map(|(k, v)| (k, live.redactor.redact_str(&v).0))
                        .collect(),
                    findings: finding_lines(&live.findings),
                    read_as: None,
                };
                // Once a person said no in this step, the others are refused without asking.
                let settled = review.stop.as_ref().map(|_| ApprovalOutcome::Denied {
                    by: "airlock".into(),
                    reason: "another held request of this step was refused".into(),
                });
                let held = json!({"method": h.method, "url": h.url, "resource_type": h.resource_type, "navigation": h.navigation, "content_type": h.content_type});
                let (answer, _) = self
                    .ask_human(live, step, index, &req, Some(("held", held)), settled)
                    .await?;
                let (allow, why) = match &answer {
                    ApprovalOutcome::Approved { by, .. } => (true, format!("approved by {by}")),
                    ApprovalOutcome::Denied { by, reason } => (
                        false,
                        format!("held for review and refused by {by}: {reason}"),
                    ),
                    ApprovalOutcome::Stopped { by, reason } => (
                        false,
                        format!("held for review; the run was stopped by {by}: {reason}"),
                    ),
                };
                let settled = match live.sandbox.as_mut() {
                    Some(sb) => sb.release(&h, allow, &why).await.map_err(|e| e.to_string()),
                    None => Err("the sandbox is gone".into()),
                };
                self.record(
                    live,
                    "request_released",
                    json!({"step": step, "index": index, "method": h.method, "url": h.url, "sent": allow, "why": why, "settled": settled}),
                    &[],
                )?;
                self.drain_egress(live)?;
                self.reporter.line(&format!(
                    "step {step}: the page sent {} {scope} → held for approval: {}",
                    h.method,
                    if allow { "sent" } else { "refused" },
                ));
                match answer {
                    ApprovalOutcome::Approved { by, .. } => {
                        if !live.effects_done.contains(&effect) {
                            live.effects_done.push(effect);
                        }
                        review.notes.push(format!(
                            "the page sent {} {scope}; Airlock held it, {by} approved it and it was sent",
                            h.method
                        ));
                    }
                    ApprovalOutcome::Denied { by, reason } => {
                        review.notes.push(format!(
                            "the page tried to send {} {scope}; Airlock held it and {by} refused it",
                            h.method
                        ));
                        if review.stop.is_none() {
                            review.stop = Some(Outcome::ApprovalDenied { step, by, reason });
                        }
                    }
                    ApprovalOutcome::Stopped { by, reason } => {
                        review.notes.push(format!(
                            "the page tried to send {} {scope}; Airlock held it and the run was stopped by {by}",
                            h.method
                        ));
                        if review.stop.is_none() {
                            review.stop = Some(Outcome::Stopped { by, reason });
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate() -> Arc<EffectGate> {
        EffectGate::new(
            TaskManifest::from_toml(
                r#"
[task]
name = "t"
goal = "g"
start_url = "http://incidents.example/"
[scope]
domains = ["incidents.example"]
[[effects]]
host = "incidents.example"
paths = ["/*"]
allow = ["read", "draft"]
[[effects]]
host = "incidents.example"
paths = ["/incidents/INC-2048/notes"]
allow = ["submit"]
"#,
            )
            .unwrap(),
        )
    }

    fn post(url: &str) -> RequestFacts<'_> {
        RequestFacts {
            method: "POST",
            url,
            resource_type: "Fetch",
            navigation: false,
        }
    }

    const NOTES: &str = "http://incidents.example/incidents/INC-2048/notes";

    #[test]
    fn a_declared_submit_is_held_only_while_the_agent_gives_input() {
        let g = gate();
        // The page on its own (no step executing, or a page load): refused.
        assert!(matches!(g.check(&post(NOTES)), GateAnswer::Refuse(_)));
        {
            let _nav = g.arm(
                &Action::Navigate {
                    url: "http://incidents.example/".into(),
                },
                Effect::Read,
                None,
            );
            assert!(matches!(g.check(&post(NOTES)), GateAnswer::Refuse(_)));
        }
        {
            let _click = g.arm(
                &Action::Click {
                    target: airlock_core::Target::Ref("e1".into()),
                    button: Default::default(),
                    count: 1,
                    modifiers: Default::default(),
                },
                Effect::Read,
                None,
            );
            assert!(matches!(g.check(&post(NOTES)), GateAnswer::Hold(_)));
            // Undeclared paths and downloads are refused even then: nobody is asked.
            assert!(matches!(
                g.check(&post("http://incidents.example/incidents/INC-9911/resolve")),
                GateAnswer::Refuse(_)
            ));
            let download = RequestFacts {
                resource_type: "Download",
                ..post(NOTES)
            };
            assert!(matches!(g.check(&download), GateAnswer::Refuse(_)));
        }
        // The guard is gone: refused again.
        assert!(matches!(g.check(&post(NOTES)), GateAnswer::Refuse(_)));
    }

    #[test]
    fn one_input_gets_a_bounded_number_of_held_requests() {
        let g = gate();
        let click = Action::Click {
            target: airlock_core::Target::Ref("e1".into()),
            button: Default::default(),
            count: 1,
            modifiers: Default::default(),
        };
        {
            let _click = g.arm(&click, Effect::Read, None);
            for _ in 0..MAX_HELD_PER_INPUT {
                assert!(matches!(g.check(&post(NOTES)), GateAnswer::Hold(_)));
            }
            let GateAnswer::Refuse(why) = g.check(&post(NOTES)) else {
                panic!("a fourth request was held")
            };
            assert!(why.contains("no more are held"), "{why}");
        }
        // The next input starts a fresh count.
        let _again = g.arm(&click, Effect::Read, None);
        assert!(matches!(g.check(&post(NOTES)), GateAnswer::Hold(_)));
    }

    #[test]
    fn a_held_body_is_shown_as_fields() {
        let form = body_fields(
            Some("note=Tests+failed%3A+rounding&x=1"),
            Some("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        assert_eq!(
            form,
            vec![
                ("note".to_string(), "Tests failed: rounding".to_string()),
                ("x".to_string(), "1".to_string())
            ]
        );
        let json = body_fields(Some(r#"{"note":"hi","n":2}"#), Some("application/json"));
        assert!(json.contains(&("note".to_string(), "hi".to_string())));
        assert!(json.contains(&("n".to_string(), "2".to_string())));
        assert_eq!(
            body_fields(Some("raw bytes"), Some("application/octet-stream")),
            vec![("body".to_string(), "raw bytes".to_string())]
        );
        assert!(body_fields(None, None).is_empty());
    }
}
