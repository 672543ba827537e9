//! Policy as data: Airlock's rules are Cedar policies, validated against a schema Airlock ships.
//!
//! Two questions are asked for every action, both of the same policy set:
//! 1. `Airlock::Action::"<primitive>"` — may this run at all? (forbid wins; no permit = deny)
//! 2. `Airlock::Action::"unattended"` — may it run without a human? (no permit = approval)
//!
//! The defaults ([`DEFAULT_POLICIES`]) are themselves such a set; operators add their own files.
//! Every policy carries `@id` and `@reason` annotations: the ids are what the audit names for
//! each decision, the reasons what a reviewer reads.

use cedar_policy::{
    Authorizer, Context, Decision, Entities, EntityUid, Policy, PolicyId, PolicySet, Request,
    Schema, ValidationMode, Validator,
};
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::str::FromStr;

/// The schema operators' policies are validated against.
pub const SCHEMA: &str = include_str!("../policy/schema.cedarschema");
/// Airlock's own defaults, as a readable Cedar file.
pub const DEFAULT_POLICIES: &str = include_str!("../policy/defaults.cedar");

/// A policy problem an operator can fix: where, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{source_name}:{line}:{column}: {message}")]
pub struct PolicyProblem {
    pub source_name: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum PolicyError {
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<PolicyProblem>),
    #[error("the shipped policy schema is invalid: {0}")]
    Schema(String),
    #[error("policy request rejected by the schema: {0}")]
    Request(String),
}

/// One policy as the audit and `airlock policy explain` show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RuleInfo {
    pub id: String,
    pub effect: String,
    pub reason: String,
    pub source: String,
    pub text: String,
}

/// The loaded, validated policy set.
pub struct PolicyEngine {
    schema: Schema,
    set: PolicySet,
    rules: BTreeMap<String, RuleInfo>,
    authorizer: Authorizer,
}

impl std::fmt::Debug for PolicyEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyEngine")
            .field("rules", &self.rules.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

fn problems_of(diag: &dyn miette::Diagnostic, text: &str, source_name: &str) -> PolicyProblem {
    let offset = diag
        .labels()
        .and_then(|mut l| l.next())
        .map(|l| l.offset())
        .unwrap_or(0);
    let (line, column) = line_col(text, offset);
    let mut message = diag.to_string();
    if let Some(help) = diag.help() {
        message.push_str(&format!(" ({help})"));
    }
    PolicyProblem {
        source_name: source_name.to_string(),
        line,
        column,
        message,
    }
}

impl PolicyEngine {
    /// The defaults alone.
    pub fn defaults() -> Result<Self, PolicyError> {
        Self::with_sources(&[("defaults.cedar", DEFAULT_POLICIES)])
    }

    /// The defaults plus operator files (name, text).
    pub fn with_operator(files: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let mut all = vec![("defaults.cedar", DEFAULT_POLICIES)];
        all.extend_from_slice(files);
        Self::with_sources(&all)
    }

    fn with_sources(files: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let (schema, _) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut set = PolicySet::new();
        let mut rules = BTreeMap::new();
        let mut problems = Vec::new();
        for (name, text) in files {
            match parse_file(name, text) {
                Ok(policies) => {
                    for (p, info) in policies {
                        if rules.contains_key(&info.id) {
                            problems.push(PolicyProblem {
                                source_name: name.to_string(),
                                line: 1,
                                column: 1,
                                message: format!("policy id `{}` is used twice", info.id),
                            });
                            continue;
                        }
                        if let Err(e) = set.add(p) {
                            problems.push(PolicyProblem {
                                source_name: name.to_string(),
                                line: 1,
                                column: 1,
                                message: e.to_string(),
                            });
                            continue;
                        }
                        rules.insert(info.id.clone(), info);
                    }
                }
                Err(mut ps) => problems.append(&mut ps),
            }
        }
        if problems.is_empty() {
            let validator = Validator::new(schema.clone());
            let result = validator.validate(&set, ValidationMode::Strict);
            for e in result.validation_errors() {
                let id = e.policy_id().to_string();
                let (src, text) = rules
                    .get(&id)
                    .map(|r| (r.source.clone(), r.text.clone()))
                    .unwrap_or_default();
                let full = files
                    .iter()
                    .find(|(n, _)| *n == src)
                    .map(|(_, t)| *t)
                    .unwrap_or("");
                let mut p = problems_of(e, full, &src);
                if p.line == 1 && p.column == 1 {
                    // Locate the policy in its file at least.
                    if let Some(pos) = full.find(text.lines().next().unwrap_or("\u{0}")) {
                        (p.line, p.column) = line_col(full, pos);
                    }
                }
                p.message = format!("policy `{id}`: {}", p.message);
                problems.push(p);
            }
        }
        if !problems.is_empty() {
            return Err(PolicyError::Invalid(problems));
        }
        Ok(PolicyEngine {
            schema,
            set,
            rules,
            authorizer: Authorizer::new(),
        })
    }

    /// Every loaded rule, by id.
    pub fn rules(&self) -> &BTreeMap<String, RuleInfo> {
        &self.rules
    }

    /// Asks one question of the policy set.
    pub fn ask(&self, q: &Question<'_>) -> Result<Answer, PolicyError> {
        let principal = uid("Agent", q.principal)?;
        let action = uid("Action", q.action)?;
        let resource = uid("Target", "target")?;
        let entities = Entities::from_json_value(
            json!([{
                "uid": {"type": "Airlock::Target", "id": "target"},
                "attrs": q.resource,
                "parents": []
            }]),
            Some(&self.schema),
        )
        .map_err(|e| PolicyError::Request(e.to_string()))?;
        let context = Context::from_json_value(q.context.clone(), Some((&self.schema, &action)))
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let request = Request::new(principal, action, resource, context, Some(&self.schema))
            .map_err(|e| PolicyError::Request(e.to_string()))?;
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        let errors: Vec<String> = response
            .diagnostics()
            .errors()
            .map(|e| e.to_string())
            .collect();
        Ok(Answer {
            allowed: response.decision() == Decision::Allow,
            rules: response
                .diagnostics()
                .reason()
                .map(PolicyId::to_string)
                .collect(),
            errors,
        })
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, PolicyError> {
    let escaped = serde_json::to_string(id).map_err(|e| PolicyError::Request(e.to_string()))?;
    EntityUid::from_str(&format!("Airlock::{kind}::{escaped}"))
        .map_err(|e| PolicyError::Request(e.to_string()))
}

/// Parses one Cedar file, giving each policy its `@id` (required) as its id.
fn parse_file(name: &str, text: &str) -> Result<Vec<(Policy, RuleInfo)>, Vec<PolicyProblem>> {
    let set = PolicySet::from_str(text).map_err(|e| vec![problems_of(&e, text, name)])?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for p in set.policies() {
        let shown = p.to_string();
        let Some(id) = p.annotation("id") else {
            let pos = text
                .find(shown.lines().next().unwrap_or("\u{0}"))
                .unwrap_or(0);
            let (line, column) = line_col(text, pos);
            problems.push(PolicyProblem {
                source_name: name.to_string(),
                line,
                column,
                message: "every policy needs an @id(\"...\") annotation (the audit names it)"
                    .into(),
            });
            continue;
        };
        let info = RuleInfo {
            id: id.to_string(),
            effect: format!("{:?}", p.effect()).to_lowercase(),
            reason: p.annotation("reason").unwrap_or("").to_string(),
            source: name.to_string(),
            text: shown,
        };
        out.push((p.new_id(PolicyId::new(id)), info));
    }
    if set.templates().next().is_some() {
        problems.push(PolicyProblem {
            source_name: name.to_string(),
            line: 1,
            column: 1,
            message: "policy templates are not supported".into(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// One question: principal, action (a primitive or `unattended`), resource attributes, context.
pub struct Question<'a> {
    pub principal: &'a str,
    pub action: &'a str,
    pub resource: Value,
    pub context: Value,
}

/// The answer, with the ids of the policies that determined it.
#[derive(Debug, Clone, PartialEq)]
pub struct Answer {
    pub allowed: bool,
    pub rules: Vec<String>,
    pub errors: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(host: &str, name: &str) -> Value {
        json!({"url": format!("{host}/x"), "host": host, "path": "/x", "role": "button", "name": name,
               "tag": "button", "field_kind": "", "form_method": "", "frame_host": host})
    }

    fn context(effect: &str, tier: &str, declared: bool, tainted: bool) -> Value {
        json!({"primitive": "click", "effect": effect, "tier": tier, "declared": declared,
               "in_domains": true, "refusal": "", "findings": [], "tainted": tainted,
               "step": 3, "effects_done": []})
    }

    #[test]
    fn defaults_validate_against_the_schema() {
        let e = PolicyEngine::defaults().unwrap();
        assert!(e.rules().contains_key("airlock.forbid-undeclared-effects"));
        assert!(
            e.rules().values().all(|r| !r.reason.is_empty()),
            "every default has a reason"
        );
    }

    #[test]
    fn undeclared_is_denied_by_a_named_forbid_and_declared_is_permitted() {
        let e = PolicyEngine::defaults().unwrap();
        let q = Question {
            principal: "run-1",
            action: "click",
            resource: resource("ci.example", "Go"),
            context: context("draft", "medium", false, false),
        };
        let a = e.ask(&q).unwrap();
        assert!(!a.allowed);
        assert_eq!(a.rules, vec!["airlock.forbid-undeclared-effects"]);
        let q = Question {
            context: context("draft", "medium", true, false),
            ..q
        };
        let a = e.ask(&q).unwrap();
        assert!(a.allowed);
        assert_eq!(a.rules, vec!["airlock.permit-declared-effects"]);
    }

    #[test]
    fn taint_needs_approval_for_drafts_but_not_for_reading() {
        let e = PolicyEngine::defaults().unwrap();
        let draft = Question {
            principal: "r",
            action: "unattended",
            resource: resource("ci.example", "x"),
            context: context("draft", "medium", true, true),
        };
        let a = e.ask(&draft).unwrap();
        assert!(!a.allowed);
        assert_eq!(a.rules, vec!["airlock.tainted-needs-approval"]);
        let read = Question {
            context: context("read", "low", true, true),
            ..draft
        };
        assert!(e.ask(&read).unwrap().allowed);
    }

    #[test]
    fn an_operator_rule_can_forbid_a_button_by_name() {
        let rule = r#"
@id("ops.never-rerun")
@reason("Deploys are rerun by people, not agents.")
forbid (principal, action == Airlock::Action::"click", resource)
when { resource.name like "*Rerun*" };
"#;
        let e = PolicyEngine::with_operator(&[("ops.cedar", rule)]).unwrap();
        let q = Question {
            principal: "r",
            action: "click",
            resource: resource("ci.example", "Rerun deploy"),
            context: context("draft", "medium", true, false),
        };
        let a = e.ask(&q).unwrap();
        assert!(!a.allowed, "deny wins over the default permit");
        assert_eq!(a.rules, vec!["ops.never-rerun"]);
    }

    #[test]
    fn bad_policies_report_file_line_and_reason() {
        let missing_attr = "\n\n@id(\"x\")\npermit (principal, action, resource) when { resource.colour == \"red\" };\n";
        let err = PolicyEngine::with_operator(&[("ops.cedar", missing_attr)]).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("ops.cedar:"), "{shown}");
        assert!(shown.contains("colour"), "{shown}");
        let syntax = "@id(\"y\")\npermit (principal, action, resource) when { context.tier == };\n";
        let err = PolicyEngine::with_operator(&[("bad.cedar", syntax)]).unwrap_err();
        let PolicyError::Invalid(ps) = err else {
            panic!("expected problems")
        };
        assert_eq!(ps[0].source_name, "bad.cedar");
        assert_eq!(ps[0].line, 2, "{:?}", ps[0]);
        let no_id = "permit (principal, action, resource);";
        assert!(PolicyEngine::with_operator(&[("n.cedar", no_id)])
            .unwrap_err()
            .to_string()
            .contains("@id"));
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
