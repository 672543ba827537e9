//! Secret egress: the run's secrets as the sandbox's check of what each request carries, and
//! what the engine does when a page tried to send one out of its scope.
//!
//! The broker decides where a secret may be *typed*; once typed, the page holds it, and its
//! script can send it anywhere the network lets it (another host of the task, in an image URL,
//! reversed, base64-encoded). So the sandbox's interception and its proxy scan every request
//! with [`SecretScan`], and a hit there is not a page's quirk to refuse and move past: the
//! secret's own host is compromised or hostile. The request is refused where it was seen, the
//! attempt is recorded as a `violation` naming the secret, the host and the part (never the
//! value), and the run is stopped and frozen (unless the operator chose refusing only,
//! `budgets.freeze_on_violation = false`).

use airlock_core::host::HostName;
use airlock_sandbox::{EgressRecord, EgressScan, InterceptRecord, SecretLeak};
use airlock_secrets::EgressScanner;
use serde_json::json;

/// The run's secrets, each allowed only to its own hosts, as the sandbox asks about them.
#[derive(Debug)]
pub(crate) struct SecretScan(EgressScanner);

impl SecretScan {
    /// `None` when the run has no secrets: then there is nothing to scan for.
    pub(crate) fn new(scanner: EgressScanner) -> Option<Self> {
        (!scanner.is_empty()).then_some(SecretScan(scanner))
    }
}

impl EgressScan for SecretScan {
    fn scan(&self, host: &HostName, bytes: &[u8]) -> Option<SecretLeak> {
        self.0.scan(host, bytes).map(|hit| SecretLeak {
            secret: hit.secret,
            form: hit.form.to_string(),
            part: String::new(),
        })
    }

    fn window(&self) -> usize {
        self.0.window()
    }
}

/// A secret-egress attempt the sandbox refused, for the audit's `violation` event.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Attempt {
    /// `interception` (in the browser) or `proxy`.
    pub by: &'static str,
    pub host: String,
    pub leak: SecretLeak,
}

impl Attempt {
    pub(crate) fn from_intercept(r: &InterceptRecord) -> Option<Self> {
        match r {
            InterceptRecord::SecretEgress { host, leak, .. } => Some(Attempt {
                by: "interception",
                host: host.clone(),
                leak: leak.clone(),
            }),
            _ => None,
        }
    }

    pub(crate) fn from_egress(r: &EgressRecord) -> Option<Self> {
        r.secret_egress.as_ref().map(|leak| Attempt {
            by: "proxy",
            host: r.host.clone(),
            leak: leak.clone(),
        })
    }

    /// One line for the operator and the stop reason.
    pub(crate) fn summary(&self) -> String {
        format!(
            "the page tried to send secret `{}` to {} ({}, in its {}); refused by the {}",
            self.leak.secret, self.host, self.leak.form, self.leak.part, self.by
        )
    }

    /// The `violation` event's payload: names, never the value.
    pub(crate) fn event(&self, stopped: bool) -> serde_json::Value {
        json!({
            "kind": "secret egress",
            "secret": self.leak.secret,
            "host": self.host,
            "part": self.leak.part,
            "form": self.leak.form,
            "refused_by": self.by,
            "stopped": stopped,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn attempts_come_from_both_layers_and_name_no_value() {
        let leak = SecretLeak {
            secret: "ci-readonly".into(),
            form: "base64 of reversed".into(),
            part: "websocket frame".into(),
        };
        let r = EgressRecord {
            host: "incidents.example".into(),
            port: 80,
            method: "CONNECT".into(),
            path: String::new(),
            allowed: false,
            reason: None,
            secret_egress: Some(leak.clone()),
        };
        let a = Attempt::from_egress(&r).unwrap();
        assert_eq!(a.by, "proxy");
        assert!(a.summary().contains("`ci-readonly` to incidents.example"));
        let i = InterceptRecord::SecretEgress {
            host: "incidents.example".into(),
            resource_type: "Image".into(),
            leak,
        };
        let b = Attempt::from_intercept(&i).unwrap();
        assert_eq!(b.event(true)["refused_by"], "interception");
        assert_eq!(b.event(true)["stopped"], true);
        let blocked = InterceptRecord::PopupClosed { url: "x".into() };
        assert_eq!(Attempt::from_intercept(&blocked), None);
    }
}
