//! The gate: one [`Decision`] per proposed action, naming the rules that produced it.
//!
//! Deny wins over everything; an effect the manifest does not declare for that host and path is
//! denied; high risk needs approval; medium risk runs with a checkpoint; low risk runs.

use crate::classify::{classify, Classification};
use airlock_core::effect::RiskTier;
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, Decision, ElementFacts, Verdict};

/// What the gate knows about the moment of the action.
pub struct GateContext<'a> {
    pub manifest: &'a TaskManifest,
    /// URL of the page the action runs on.
    pub page_url: &'a str,
    /// The resolved target element, when the action has a target.
    pub element: Option<&'a ElementFacts>,
    /// The focused element (typing and keys go there).
    pub focused: Option<&'a ElementFacts>,
}

/// Decides one action.
pub fn decide(action: &Action, ctx: &GateContext<'_>) -> Decision {
    let c = classify(action, ctx.page_url, ctx.element, ctx.focused);
    decide_classified(&c, ctx.manifest)
}

fn deny(c: &Classification, rule: &str, reason: String) -> Decision {
    let mut rules: Vec<String> = c.findings.iter().map(|(r, _)| r.clone()).collect();
    rules.push(rule.to_string());
    Decision {
        verdict: Verdict::Deny,
        effect: c.effect,
        tier: c.tier.max(RiskTier::High),
        rules,
        reason,
        scope: c.scope.as_ref().map(|s| s.scope()),
    }
}

/// Turns a classification into a decision against the manifest.
pub fn decide_classified(c: &Classification, m: &TaskManifest) -> Decision {
    if let Some((rule, why)) = &c.refusal {
        return deny(c, rule, why.clone());
    }
    let findings = c
        .findings
        .iter()
        .map(|(_, w)| w.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    if let Some(scope) = &c.scope {
        if !m.domains().contains(&scope.host) {
            return deny(
                c,
                "builtin.nav.outside-domains",
                format!("{findings}: {} is not in the task's domains", scope.host),
            );
        }
        if !m.declares(c.effect, scope) {
            return deny(
                c,
                "builtin.effect.undeclared",
                format!(
                    "{findings}: effect `{}` is not declared for {}",
                    c.effect,
                    scope.scope()
                ),
            );
        }
    }
    let mut rules: Vec<String> = c.findings.iter().map(|(r, _)| r.clone()).collect();
    let verdict = match c.tier {
        RiskTier::High => {
            rules.push("builtin.tier.high-needs-approval".into());
            Verdict::NeedsApproval
        }
        RiskTier::Medium => {
            rules.push("builtin.tier.medium-checkpoint".into());
            Verdict::Checkpoint
        }
        RiskTier::Low => {
            rules.push("builtin.tier.low-allow".into());
            Verdict::Allow
        }
    };
    Decision {
        verdict,
        effect: c.effect,
        tier: c.tier,
        rules,
        reason: findings,
        scope: c.scope.as_ref().map(|s| s.scope()),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use airlock_core::{FormFacts, Modifiers, MouseButton, Point, Target};

    const M: &str = r#"
[task]
name = "t"
goal = "g"
start_url = "http://ci.example/login"
[scope]
domains = ["ci.example", "incidents.example"]
[[effects]]
host = "ci.example"
allow = ["read", "draft"]
[[effects]]
host = "incidents.example"
paths = ["/incidents/INC-2048", "/incidents/INC-2048/notes"]
allow = ["read", "draft", "submit"]
[[acceptance]]
kind = "text_present"
text = "x"
"#;

    fn click() -> Action {
        Action::Click {
            target: Target::Point(Point { x: 1.0, y: 1.0 }),
            button: MouseButton::Left,
            count: 1,
            modifiers: Modifiers::default(),
        }
    }

    fn submit_button(name: &str, action: &str) -> ElementFacts {
        ElementFacts {
            role: "button".into(),
            name: name.into(),
            is_submit: true,
            form: Some(FormFacts {
                action: action.into(),
                method: "POST".into(),
                has_password: false,
                fields: vec![],
            }),
            ..Default::default()
        }
    }

    fn run(action: &Action, page: &str, el: Option<&ElementFacts>) -> Decision {
        let m = TaskManifest::from_toml(M).unwrap();
        decide(
            action,
            &GateContext {
                manifest: &m,
                page_url: page,
                element: el,
                focused: None,
            },
        )
    }

    #[test]
    fn navigation_outside_the_domains_is_denied() {
        let d = run(
            &Action::Navigate {
                url: "http://mail.example/inbox".into(),
            },
            "http://ci.example/runs",
            None,
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(d.rules.contains(&"builtin.nav.outside-domains".to_string()));
        assert!(
            d.reason
                .contains("mail.example is not in the task's domains"),
            "{}",
            d.reason
        );
        let d = run(
            &Action::Navigate {
                url: "http://CI.example./runs".into(),
            },
            "about:blank",
            None,
        );
        assert_eq!(d.verdict, Verdict::Allow);
    }

    #[test]
    fn declared_submit_needs_approval_and_undeclared_is_denied() {
        let page = "http://incidents.example/incidents/INC-2048";
        let d = run(
            &click(),
            page,
            Some(&submit_button(
                "Submit note",
                "http://incidents.example/incidents/INC-2048/notes",
            )),
        );
        assert_eq!(d.verdict, Verdict::NeedsApproval);
        assert!(d.rules.contains(&"builtin.risk.submit".to_string()));
        let other = "http://incidents.example/incidents/INC-9911";
        let d = run(
            &click(),
            other,
            Some(&submit_button(
                "Submit note",
                "http://incidents.example/incidents/INC-9911/notes",
            )),
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(d.rules.contains(&"builtin.effect.undeclared".to_string()));
    }

    #[test]
    fn decoys_are_denied_even_with_approval_available() {
        let page = "http://ci.example/runs/RUN-78432";
        for (name, path) in [("Delete run", "delete"), ("Rerun deploy", "rerun")] {
            let el = submit_button(name, &format!("http://ci.example/runs/RUN-78432/{path}"));
            let d = run(&click(), page, Some(&el));
            assert_eq!(d.verdict, Verdict::Deny, "{name}");
            assert!(d
                .rules
                .contains(&"builtin.risk.destructive-words".to_string()));
        }
    }

    #[test]
    fn typing_is_a_checkpointed_draft() {
        let field = ElementFacts {
            role: "textbox".into(),
            name: "Draft note".into(),
            editable: true,
            multiline: true,
            ..Default::default()
        };
        let m = TaskManifest::from_toml(M).unwrap();
        let ctx = GateContext {
            manifest: &m,
            page_url: "http://incidents.example/incidents/INC-2048",
            element: None,
            focused: Some(&field),
        };
        let d = decide(
            &Action::Type {
                target: None,
                text: airlock_core::TypedText::Literal("note".into()),
            },
            &ctx,
        );
        assert_eq!(d.verdict, Verdict::Checkpoint);
    }
}
