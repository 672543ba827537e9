//! The gate: one [`Decision`] per proposed action, naming the rules that produced it.
//!
//! The built-in classifier says what the action would do (effect, risk tier, where it lands, and
//! whether grounding refused the target); the Cedar policy set (Airlock's defaults plus the
//! operator's rules) decides. Deny wins over everything; an action no policy permits is
//! denied; an action no policy permits to run *unattended* waits for approval; medium risk runs
//! with a checkpoint; low risk runs.

use crate::cedar::{PolicyEngine, Question};
use crate::classify::{classify, Classification};
use crate::normalize;
use airlock_core::effect::{Effect, RiskTier};
use airlock_core::manifest::TaskManifest;
use airlock_core::{Action, Decision, ElementFacts, Verdict};
use serde_json::json;

/// What the gate knows about the moment of the action.
pub struct GateContext<'a> {
    pub manifest: &'a TaskManifest,
    pub policy: &'a PolicyEngine,
    /// The run's agent identity (the Cedar principal).
    pub principal: &'a str,
    /// URL of the page the action runs on.
    pub page_url: &'a str,
    /// The resolved target element, when the action has a target.
    pub element: Option<&'a ElementFacts>,
    /// The focused element (typing and keys go there).
    pub focused: Option<&'a ElementFacts>,
    /// Whether the run has seen instructions aimed at the agent.
    pub tainted: bool,
    pub step: u32,
    /// Effects already performed in this run.
    pub effects_done: &'a [Effect],
}

/// Decides one action.
pub fn decide(action: &Action, ctx: &GateContext<'_>) -> Decision {
    let c = classify(
        action,
        ctx.page_url,
        ctx.element,
        ctx.focused.or(ctx.element),
    );
    decide_classified(action, &c, ctx)
}

fn tier_str(t: RiskTier) -> &'static str {
    match t {
        RiskTier::Low => "low",
        RiskTier::Medium => "medium",
        RiskTier::High => "high",
    }
}

/// Turns a classification into a decision by asking the policy set.
pub fn decide_classified(action: &Action, c: &Classification, ctx: &GateContext<'_>) -> Decision {
    let m = ctx.manifest;
    // A navigation reads, unless the manifest says its path does something irreversible.
    let upgraded;
    let c = match &c.scope {
        Some(s) if c.is_navigation() && m.declares(Effect::Destructive, s) => {
            let mut d = c.clone();
            d.effect = Effect::Destructive;
            d.tier = RiskTier::High;
            d.findings.push((
                "builtin.risk.declared-destructive".into(),
                format!("the manifest declares {} destructive", s.scope()),
            ));
            upgraded = d;
            &upgraded
        }
        _ => c,
    };
    let el = ctx.element.or(ctx.focused);
    let (host, path, url) = match &c.scope {
        Some(s) => (s.host.to_string(), s.path.clone(), s.scope()),
        None => (String::new(), String::new(), String::new()),
    };
    let in_domains = c
        .scope
        .as_ref()
        .is_none_or(|s| m.domains().contains(&s.host));
    let declared = c.scope.as_ref().is_some_and(|s| m.declares(c.effect, s));
    let frame_host = el
        .and_then(|e| airlock_core::host::WebUrl::parse(&e.frame_url).ok())
        .map(|u| u.host.to_string())
        .unwrap_or_default();
    let resource = json!({
        "url": url,
        "host": host,
        "path": path,
        "role": el.map(|e| e.role.as_str()).unwrap_or(""),
        // As the host read it, so an operator's rule on names cannot be dodged with a
        // zero-width space or a lookalike letter either.
        "name": el.map(|e| normalize::for_classification(&e.name)).unwrap_or_default(),
        "tag": el.map(|e| e.tag.as_str()).unwrap_or(""),
        "field_kind": el.and_then(|e| e.input_type.as_deref()).unwrap_or(""),
        "form_method": el.and_then(|e| e.form.as_ref()).map(|f| f.method.as_str()).unwrap_or(""),
        "frame_host": frame_host,
    });
    let findings: Vec<&str> = c.findings.iter().map(|(r, _)| r.as_str()).collect();
    let context = json!({
        "primitive": action.kind(),
        "effect": c.effect.as_str(),
        "tier": tier_str(c.tier),
        "declared": declared,
        "in_domains": in_domains,
        "refusal": c.refusal.as_ref().map(|(_, why)| why.as_str()).unwrap_or(""),
        "findings": findings,
        "tainted": ctx.tainted,
        "step": i64::from(ctx.step),
        "effects_done": ctx.effects_done.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
    });
    let mut rules: Vec<String> = c.findings.iter().map(|(r, _)| r.clone()).collect();
    if let Some((rule, _)) = &c.refusal {
        rules.push(rule.clone());
    }
    let mut words: Vec<String> = c.findings.iter().map(|(_, w)| w.clone()).collect();
    if let Some((_, why)) = &c.refusal {
        words.push(why.clone());
    }
    let scope = c.scope.as_ref().map(|s| s.scope());
    let read_as = read_as(el, c.scope.as_ref());
    let decision = |verdict, tier, rules: Vec<String>, reason: String| Decision {
        verdict,
        effect: c.effect,
        tier,
        rules,
        reason,
        scope: scope.clone(),
        read_as: read_as.clone(),
    };

    let q = Question {
        principal: ctx.principal,
        action: action.kind(),
        resource: resource.clone(),
        context: context.clone(),
    };
    let run = match ctx.policy.ask(&q) {
        Ok(a) => a,
        Err(e) => {
            rules.push("airlock.policy-error".into());
            return decision(
                Verdict::Deny,
                RiskTier::High,
                rules,
                format!("policy evaluation failed: {e}"),
            );
        }
    };
    if !run.allowed {
        let why = if run.rules.is_empty() {
            rules.push("airlock.no-permit".into());
            "no policy permits this action".to_string()
        } else {
            let reasons = explain(ctx.policy, &run.rules, c, &host);
            rules.extend(run.rules);
            reasons
        };
        words.push(why);
        return decision(
            Verdict::Deny,
            c.tier.max(RiskTier::High),
            rules,
            words.join("; "),
        );
    }
    rules.extend(run.rules);
    let q = Question {
        action: "unattended",
        ..q
    };
    let unattended = match ctx.policy.ask(&q) {
        Ok(a) => a,
        Err(e) => {
            rules.push("airlock.policy-error".into());
            return decision(
                Verdict::Deny,
                RiskTier::High,
                rules,
                format!("policy evaluation failed: {e}"),
            );
        }
    };
    if !unattended.allowed {
        if unattended.rules.is_empty() {
            rules.push("airlock.needs-approval".into());
            words.push(format!("{} risk: a human decides", tier_str(c.tier)));
        } else {
            words.push(explain(ctx.policy, &unattended.rules, c, &host));
            rules.extend(unattended.rules);
        }
        return decision(Verdict::NeedsApproval, c.tier, rules, words.join("; "));
    }
    let verdict = match c.tier {
        RiskTier::Medium | RiskTier::High => Verdict::Checkpoint,
        RiskTier::Low => Verdict::Allow,
    };
    decision(verdict, c.tier, rules, words.join("; "))
}

/// What the page says and what Airlock read, for the target's name and the effect's path,
/// when they differ in a way a reviewer could not see ([`normalize::contrast`]).
fn read_as(
    el: Option<&ElementFacts>,
    scope: Option<&airlock_core::host::WebUrl>,
) -> Option<String> {
    let parts: Vec<String> = [
        el.and_then(|e| normalize::contrast(&e.name)),
        scope.and_then(|s| normalize::contrast_path(&s.path)),
    ]
    .into_iter()
    .flatten()
    .collect();
    (!parts.is_empty()).then(|| parts.join("; "))
}

/// Plain words for the policies that decided, with the specifics a reviewer needs.
fn explain(policy: &PolicyEngine, ids: &[String], c: &Classification, host: &str) -> String {
    ids.iter()
        .map(|id| match id.as_str() {
            "airlock.forbid-outside-domains" => format!("{host} is not in the task's domains"),
            "airlock.forbid-undeclared-effects" => format!(
                "effect `{}` is not declared for {}",
                c.effect,
                c.scope.as_ref().map(|s| s.scope()).unwrap_or_default()
            ),
            other => policy
                .rules()
                .get(other)
                .map(|r| r.reason.clone())
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| format!("policy `{other}`")),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use crate::cedar::PolicyEngine;
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

    fn ctx<'a>(
        m: &'a TaskManifest,
        p: &'a PolicyEngine,
        page: &'a str,
        el: Option<&'a ElementFacts>,
        focused: Option<&'a ElementFacts>,
    ) -> GateContext<'a> {
        GateContext {
            manifest: m,
            policy: p,
            principal: "run-test",
            page_url: page,
            element: el,
            focused,
            tainted: false,
            step: 1,
            effects_done: &[],
        }
    }

    fn run(action: &Action, page: &str, el: Option<&ElementFacts>) -> Decision {
        let m = TaskManifest::from_toml(M).unwrap();
        let p = PolicyEngine::defaults().unwrap();
        decide(action, &ctx(&m, &p, page, el, None))
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
        assert!(
            d.rules
                .contains(&"airlock.forbid-outside-domains".to_string()),
            "{:?}",
            d.rules
        );
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
    fn a_navigation_is_a_read_whatever_words_its_path_holds() {
        for url in [
            "http://ci.example/docs/how-to-delete",
            "http://ci.example/runs?q=delete-me",
            "http://ci.example/runs/RUN-1/rerun",
        ] {
            let d = run(
                &Action::Navigate { url: url.into() },
                "http://ci.example/runs",
                None,
            );
            assert_eq!(
                (d.verdict, d.effect, d.tier),
                (Verdict::Allow, Effect::Read, RiskTier::Low),
                "{url}: {d:?}"
            );
        }
        // A link there, too.
        let link = ElementFacts {
            role: "link".into(),
            name: "How to".into(),
            href: Some("/docs/how-to-delete".into()),
            ..Default::default()
        };
        let d = run(&click(), "http://ci.example/docs", Some(&link));
        assert_eq!(
            (d.verdict, d.effect),
            (Verdict::Allow, Effect::Read),
            "{d:?}"
        );
    }

    #[test]
    fn a_navigation_to_a_path_the_manifest_declares_destructive_needs_approval() {
        let text = format!(
            "{M}[[effects]]\nhost = \"ci.example\"\npaths = [\"/runs/*/purge\"]\nallow = [\"destructive\"]\n"
        );
        let m = TaskManifest::from_toml(&text).unwrap();
        let p = PolicyEngine::defaults().unwrap();
        let nav = Action::Navigate {
            url: "http://ci.example/runs/RUN-1/purge".into(),
        };
        let d = decide(&nav, &ctx(&m, &p, "http://ci.example/runs", None, None));
        assert_eq!(
            (d.verdict, d.effect, d.tier),
            (Verdict::NeedsApproval, Effect::Destructive, RiskTier::High),
            "{d:?}"
        );
        assert!(
            d.rules
                .contains(&"builtin.risk.declared-destructive".to_string()),
            "{:?}",
            d.rules
        );
    }

    #[test]
    fn a_refused_navigation_names_the_rule_and_the_reason() {
        let d = run(
            &Action::Navigate {
                url: "http://incidents.example/incidents/INC-9911".into(),
            },
            "http://ci.example/runs",
            None,
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(
            d.rules
                .contains(&"airlock.forbid-undeclared-effects".to_string()),
            "{:?}",
            d.rules
        );
        assert!(
            d.reason
                .contains("effect `read` is not declared for incidents.example/incidents/INC-9911"),
            "{}",
            d.reason
        );
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
        assert!(
            d.rules
                .contains(&"airlock.permit-declared-effects".to_string()),
            "{:?}",
            d.rules
        );
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
        assert!(
            d.rules
                .contains(&"airlock.forbid-undeclared-effects".to_string()),
            "{:?}",
            d.rules
        );
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
    fn a_disguised_delete_is_denied_like_the_plain_one_and_says_what_was_read() {
        let page = "http://ci.example/projects/1";
        let control = |name: &str| ElementFacts {
            role: "button".into(),
            name: name.into(),
            tag: "button".into(),
            ..Default::default()
        };
        let plain = run(&click(), page, Some(&control("Delete project")));
        assert_eq!(plain.verdict, Verdict::Deny);
        assert_eq!(plain.read_as, None);
        for (how, name) in crate::normalize::tests::DISGUISED {
            let d = run(&click(), page, Some(&control(name)));
            assert_eq!(
                (d.verdict, d.effect, &d.rules),
                (plain.verdict, plain.effect, &plain.rules),
                "{how}"
            );
        }
        let d = run(&click(), page, Some(&control("Del\u{200b}ete project")));
        assert_eq!(
            d.read_as.as_deref(),
            Some("the page says 'Del⟨U+200B⟩ete project'; Airlock read it as 'Delete project'")
        );
        assert!(
            d.reason.contains("'Del⟨U+200B⟩ete project'"),
            "{}",
            d.reason
        );
        // The benign twin on the same page is still a draft that runs.
        let d = run(&click(), page, Some(&control("Save draft")));
        assert_eq!((d.verdict, d.effect), (Verdict::Checkpoint, Effect::Draft));
    }

    #[test]
    fn an_operator_rule_on_names_sees_the_name_as_read() {
        let m = TaskManifest::from_toml(M).unwrap();
        let p = PolicyEngine::with_operator(&[(
            "ops.cedar",
            r#"@id("ops.no-archive")
@reason("Nothing is archived by an agent.")
forbid (principal, action, resource) when { resource.name like "*Archive*" };"#,
        )])
        .unwrap();
        let el = ElementFacts {
            role: "button".into(),
            name: "Arch\u{200b}ive".into(),
            tag: "button".into(),
            ..Default::default()
        };
        let d = decide(
            &click(),
            &ctx(&m, &p, "http://ci.example/runs", Some(&el), None),
        );
        assert_eq!(d.verdict, Verdict::Deny);
        assert!(
            d.rules.contains(&"ops.no-archive".to_string()),
            "{:?}",
            d.rules
        );
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
        let p = PolicyEngine::defaults().unwrap();
        let mut c = ctx(
            &m,
            &p,
            "http://incidents.example/incidents/INC-2048",
            None,
            Some(&field),
        );
        let typing = Action::Type {
            target: None,
            text: airlock_core::TypedText::Literal("note".into()),
        };
        assert_eq!(decide(&typing, &c).verdict, Verdict::Checkpoint);
        // After the run has seen an injection, the same draft needs a human; scrolling does not.
        c.tainted = true;
        let d = decide(&typing, &c);
        assert_eq!(d.verdict, Verdict::NeedsApproval);
        assert!(
            d.rules
                .contains(&"airlock.tainted-needs-approval".to_string()),
            "{:?}",
            d.rules
        );
        let scroll = Action::Scroll {
            at: None,
            dx: 0.0,
            dy: 300.0,
        };
        assert_eq!(decide(&scroll, &c).verdict, Verdict::Allow);
    }
}
