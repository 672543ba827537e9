//! The engine's side of request-layer gating: the task's declared effects, plus the scope of
//! the agent's step executing right now, decide each request the page sends
//! ([`airlock_policy::check_request`] holds the rules).
//!
//! The sandbox calls [`EffectGate`] from its interception task for every request that passed
//! the host check; the engine *arms* it with the scope of an authorised `submit`/`destructive`
//! step for exactly as long as that step executes, so the form the agent was approved to send
//! goes through and the same request sent by a page script at any other time does not.

use airlock_core::effect::Effect;
use airlock_core::manifest::TaskManifest;
use airlock_policy::{check_request, PageRequest, RequestVerdict};
use airlock_sandbox::{RequestFacts, RequestGate};
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub(crate) struct EffectGate {
    manifest: TaskManifest,
    armed: Mutex<Vec<String>>,
}

impl EffectGate {
    pub(crate) fn new(manifest: TaskManifest) -> Arc<Self> {
        Arc::new(EffectGate {
            manifest,
            armed: Mutex::new(Vec::new()),
        })
    }

    /// Lets requests to `scope` with the authorised `effect` through while the returned guard
    /// lives (the action's execution). Effects below `submit` need no arming.
    pub(crate) fn arm(self: &Arc<Self>, effect: Effect, scope: Option<&str>) -> Armed {
        let scope = match (effect, scope) {
            (Effect::Submit | Effect::Destructive, Some(s)) => Some(s.to_string()),
            _ => None,
        };
        if let (Some(s), Ok(mut a)) = (&scope, self.armed.lock()) {
            a.push(s.clone());
        }
        Armed {
            gate: Arc::clone(self),
            scope,
        }
    }
}

/// Disarms its scope when dropped, however the action ended.
pub(crate) struct Armed {
    gate: Arc<EffectGate>,
    scope: Option<String>,
}

impl Drop for Armed {
    fn drop(&mut self) {
        if let (Some(s), Ok(mut a)) = (&self.scope, self.gate.armed.lock()) {
            if let Some(i) = a.iter().position(|x| x == s) {
                a.swap_remove(i);
            }
        }
    }
}

impl RequestGate for EffectGate {
    fn check(&self, r: &RequestFacts<'_>) -> Result<(), String> {
        // A poisoned lock means a panic elsewhere: nothing is armed then (fail closed).
        let armed = self.armed.lock().map(|a| a.clone()).unwrap_or_default();
        match check_request(
            &self.manifest,
            &PageRequest {
                method: r.method,
                url: r.url,
                navigation: r.navigation,
                download: r.resource_type == "Download",
            },
            &armed,
        ) {
            RequestVerdict::Refused { reason, .. } => Err(reason),
            RequestVerdict::Allowed(_) | RequestVerdict::Authorised(_) => Ok(()),
        }
    }
}
