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

/// Where a rule of an operator file is, for messages that point at it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RuleAt {
    pub id: String,
    pub source: String,
    pub line: usize,
    pub column: usize,
    /// The rule's `@reason`, empty when it has none.
    pub reason: String,
}

impl std::fmt::Display for RuleAt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}:{}:{}: policy `{}`",
            self.source, self.line, self.column, self.id
        )
    }
}

/// The name the built-in defaults go by in messages and [`RuleInfo::source`].
pub const DEFAULTS_SOURCE: &str = "defaults.cedar";

/// The loaded, validated policy set.
pub struct PolicyEngine {
    schema: Schema,
    set: PolicySet,
    rules: BTreeMap<String, RuleInfo>,
    authorizer: Authorizer,
    unattended_high_risk: Vec<RuleAt>,
    repeated_defaults: Vec<RuleAt>,
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
        Self::with_sources(&[(DEFAULTS_SOURCE, DEFAULT_POLICIES)])
    }

    /// The defaults plus operator files (name, text).
    pub fn with_operator(files: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let mut all = vec![(DEFAULTS_SOURCE, DEFAULT_POLICIES)];
        all.extend_from_slice(files);
        Self::with_sources(&all)
    }

    fn with_sources(files: &[(&str, &str)]) -> Result<Self, PolicyError> {
        let (schema, _) =
            Schema::from_cedarschema_str(SCHEMA).map_err(|e| PolicyError::Schema(e.to_string()))?;
        let mut set = PolicySet::new();
        let mut rules: BTreeMap<String, RuleInfo> = BTreeMap::new();
        let mut places: BTreeMap<String, RuleAt> = BTreeMap::new();
        let mut problems = Vec::new();
        let mut unattended_high_risk = Vec::new();
        let mut repeated_defaults = Vec::new();
        for (name, text) in files {
            match parse_file(name, text) {
                Ok(policies) => {
                    for Parsed { policy, info, at } in policies {
                        let problem = |message: String| PolicyProblem {
                            source_name: name.to_string(),
                            line: at.line,
                            column: at.column,
                            message,
                        };
                        if let Some(first) = rules.get(&info.id) {
                            // A copy of a built-in rule (`airlock policy defaults > ops.cedar`)
                            // adds nothing: the defaults always apply.
                            if first.source == DEFAULTS_SOURCE && first.text == info.text {
                                repeated_defaults.push(at);
                                continue;
                            }
                            let also = places
                                .get(&info.id)
                                .map(|p| format!(" (also at {}:{}:{})", p.source, p.line, p.column))
                                .unwrap_or_default();
                            problems.push(problem(format!(
                                "policy id `{}` is used twice{also}",
                                info.id
                            )));
                            continue;
                        }
                        let removes_approval = *name != DEFAULTS_SOURCE
                            && policy
                                .to_json()
                                .is_ok_and(|est| permits_unattended_at_high_risk(&est));
                        if let Err(e) = set.add(policy) {
                            problems.push(problem(e.to_string()));
                            continue;
                        }
                        if removes_approval {
                            unattended_high_risk.push(at.clone());
                        }
                        places.insert(info.id.clone(), at);
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
                let src = rules.get(&id).map(|r| r.source.clone()).unwrap_or_default();
                let full = files
                    .iter()
                    .find(|(n, _)| *n == src)
                    .map(|(_, t)| *t)
                    .unwrap_or("");
                let mut p = problems_of(e, full, &src);
                if !has_label(e) {
                    // No position of its own: point at the rule.
                    if let Some(at) = places.get(&id) {
                        (p.line, p.column) = (at.line, at.column);
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
            unattended_high_risk,
            repeated_defaults,
        })
    }

    /// Every loaded rule, by id.
    pub fn rules(&self) -> &BTreeMap<String, RuleInfo> {
        &self.rules
    }

    /// Operator rules that may let a high-risk action (a submit, a destructive step) run
    /// without a human: they permit `unattended` and do not require `context.tier` to be
    /// other than `"high"`. `airlock policy check` warns about each; `airlock run` refuses
    /// them unless each carries an `@reason` and the operator acknowledged it.
    pub fn unattended_high_risk(&self) -> &[RuleAt] {
        &self.unattended_high_risk
    }

    /// Rules of operator files that repeat a built-in rule word for word (and so were skipped).
    pub fn repeated_defaults(&self) -> &[RuleAt] {
        &self.repeated_defaults
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

fn has_label(diag: &dyn miette::Diagnostic) -> bool {
    diag.labels().is_some_and(|mut l| l.next().is_some())
}

/// Byte offset where a policy's text starts in its file: the first occurrence not already
/// claimed by another policy (two policies may read the same).
fn locate(text: &str, shown: &str, taken: &mut Vec<usize>) -> usize {
    let needle = if text.contains(shown) {
        shown
    } else {
        shown.lines().next().unwrap_or("")
    };
    let Some(step) = needle.chars().next().map(char::len_utf8) else {
        return 0;
    };
    let mut from = 0;
    while let Some(i) = text.get(from..).and_then(|rest| rest.find(needle)) {
        let at = from + i;
        if !taken.contains(&at) {
            taken.push(at);
            return at;
        }
        from = at + step;
    }
    0
}

/// One policy of a file, with where it starts.
struct Parsed {
    policy: Policy,
    info: RuleInfo,
    at: RuleAt,
}

/// Parses one Cedar file, giving each policy its `@id` (required) as its id.
fn parse_file(name: &str, text: &str) -> Result<Vec<Parsed>, Vec<PolicyProblem>> {
    let set = PolicySet::from_str(text).map_err(|e| vec![problems_of(&e, text, name)])?;
    let mut out = Vec::new();
    let mut problems = Vec::new();
    let mut taken = Vec::new();
    for p in set.policies() {
        let shown = p.to_string();
        let (line, column) = line_col(text, locate(text, &shown, &mut taken));
        let Some(id) = p.annotation("id") else {
            problems.push(PolicyProblem {
                source_name: name.to_string(),
                line,
                column,
                message: "every policy needs an @id(\"...\") annotation (the audit names it)"
                    .into(),
            });
            continue;
        };
        let reason = p.annotation("reason").unwrap_or("").to_string();
        let info = RuleInfo {
            id: id.to_string(),
            effect: format!("{:?}", p.effect()).to_lowercase(),
            reason: reason.clone(),
            source: name.to_string(),
            text: shown,
        };
        let at = RuleAt {
            id: id.to_string(),
            source: name.to_string(),
            line,
            column,
            reason,
        };
        out.push(Parsed {
            policy: p.new_id(PolicyId::new(id)),
            info,
            at,
        });
    }
    // In file order, so that of two rules with one id the later one is reported.
    out.sort_by_key(|p| (p.at.line, p.at.column));
    for t in set.templates() {
        let (line, column) = line_col(text, locate(text, &t.to_string(), &mut taken));
        problems.push(PolicyProblem {
            source_name: name.to_string(),
            line,
            column,
            message: "policy templates are not supported".into(),
        });
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

/// The value at a JSON pointer, or null: Cedar's JSON form is read without indexing.
fn at<'v>(v: &'v Value, pointer: &str) -> &'v Value {
    v.pointer(pointer).unwrap_or(&Value::Null)
}

/// Whether a policy (as Cedar's JSON form) permits `unattended` for some high-risk action:
/// it is a permit, its action scope includes `unattended`, and none of its conditions requires
/// `context.tier` to be other than `"high"`. Conservative: a condition it cannot read (a
/// resource name, the step number) is taken to let high risk through.
fn permits_unattended_at_high_risk(est: &Value) -> bool {
    if at(est, "/effect") != "permit" {
        return false;
    }
    let unattended =
        |e: &Value| at(e, "/type") == "Airlock::Action" && at(e, "/id") == "unattended";
    let action = at(est, "/action");
    let applies = match at(action, "/op").as_str() {
        Some("==") => unattended(at(action, "/entity")),
        Some("in") => {
            unattended(at(action, "/entity"))
                || at(action, "/entities")
                    .as_array()
                    .is_some_and(|es| es.iter().any(unattended))
        }
        // `action` unconstrained, or a shape this check does not know: it may apply.
        _ => true,
    };
    let excluded = at(est, "/conditions")
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| match at(c, "/kind").as_str() {
            Some("when") => false_when_high(at(c, "/body")),
            Some("unless") => true_when_high(at(c, "/body")),
            _ => false,
        });
    applies && !excluded
}

/// `context.tier <op> "value"` (either way round): the value.
fn tier_compared<'v>(e: &'v Value, op: &str) -> Option<&'v str> {
    let is_tier = |v: &Value| at(v, "/./left/Var") == "context" && at(v, "/./attr") == "tier";
    let sides = e.get(op)?;
    let (l, r) = (at(sides, "/left"), at(sides, "/right"));
    if is_tier(l) {
        at(r, "/Value").as_str()
    } else if is_tier(r) {
        at(l, "/Value").as_str()
    } else {
        None
    }
}

/// `[..].contains(context.tier)`: whether the literal set holds `"high"`.
fn tier_set_has_high(e: &Value) -> Option<bool> {
    let c = e.get("contains")?;
    let is_tier = at(c, "/right/./left/Var") == "context" && at(c, "/right/./attr") == "tier";
    let set = at(c, "/left/Set").as_array()?;
    is_tier.then(|| set.iter().any(|v| at(v, "/Value") == "high"))
}

/// Whether expression `e` is false whenever `context.tier == "high"`.
fn false_when_high(e: &Value) -> bool {
    if let Some(v) = tier_compared(e, "==") {
        return v != "high";
    }
    if let Some(v) = tier_compared(e, "!=") {
        return v == "high";
    }
    if let Some(has) = tier_set_has_high(e) {
        return !has;
    }
    if let Some(x) = e.get("&&") {
        return false_when_high(at(x, "/left")) || false_when_high(at(x, "/right"));
    }
    if let Some(x) = e.get("||") {
        return false_when_high(at(x, "/left")) && false_when_high(at(x, "/right"));
    }
    if let Some(x) = e.get("!") {
        return true_when_high(at(x, "/arg"));
    }
    if let Some(x) = e.get("if-then-else") {
        return false_when_high(at(x, "/then")) && false_when_high(at(x, "/else"));
    }
    false
}

/// Whether expression `e` is true whenever `context.tier == "high"`.
fn true_when_high(e: &Value) -> bool {
    if let Some(v) = tier_compared(e, "==") {
        return v == "high";
    }
    if let Some(v) = tier_compared(e, "!=") {
        return v != "high";
    }
    if let Some(has) = tier_set_has_high(e) {
        return has;
    }
    if let Some(x) = e.get("&&") {
        return true_when_high(at(x, "/left")) && true_when_high(at(x, "/right"));
    }
    if let Some(x) = e.get("||") {
        return true_when_high(at(x, "/left")) || true_when_high(at(x, "/right"));
    }
    if let Some(x) = e.get("!") {
        return false_when_high(at(x, "/arg"));
    }
    if let Some(x) = e.get("if-then-else") {
        return true_when_high(at(x, "/then")) && true_when_high(at(x, "/else"));
    }
    false
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
    fn policy_problems_point_at_the_rule_not_the_first_line() {
        let file = "// ops rules\n\n@id(\"ops.a\")\n@reason(\"a\")\nforbid (principal, action, resource);\n\n  @id(\"ops.a\")\n  @reason(\"b\")\n  forbid (principal, action == Airlock::Action::\"click\", resource);\n";
        let err = PolicyEngine::with_operator(&[("ops.cedar", file)]).unwrap_err();
        let PolicyError::Invalid(ps) = err else {
            panic!("expected problems")
        };
        assert_eq!(ps.len(), 1, "{ps:?}");
        assert!(ps[0].message.contains("`ops.a` is used twice"), "{ps:?}");
        assert_eq!((ps[0].line, ps[0].column), (7, 3), "{ps:?}");
        assert!(ps[0].message.contains("also at ops.cedar:3:1"), "{ps:?}");
        // Colliding with a built-in id: the operator's rule is named, at its own line.
        let clash =
            "\n\n@id(\"airlock.permit-declared-effects\")\nforbid (principal, action, resource);\n";
        let err = PolicyEngine::with_operator(&[("ops.cedar", clash)]).unwrap_err();
        let shown = err.to_string();
        assert!(shown.starts_with("ops.cedar:3:1: policy id"), "{shown}");
        assert!(shown.contains("also at defaults.cedar:"), "{shown}");
        let unknown_attr = "// ops\n\n@id(\"x\")\npermit (principal, action, resource)\n  when { resource.colour == \"red\" };\n";
        let err = PolicyEngine::with_operator(&[("ops.cedar", unknown_attr)]).unwrap_err();
        let PolicyError::Invalid(ps) = err else {
            panic!("expected problems")
        };
        assert!(ps[0].line >= 3, "{ps:?}");
        let no_id = "\n\n\n    permit (principal, action, resource);";
        let err = PolicyEngine::with_operator(&[("n.cedar", no_id)]).unwrap_err();
        assert!(err.to_string().starts_with("n.cedar:4:5:"), "{err}");
    }

    #[test]
    fn the_printed_defaults_check_clean_as_an_operator_file() {
        let e = PolicyEngine::with_operator(&[("ops.cedar", DEFAULT_POLICIES)]).unwrap();
        assert_eq!(
            e.repeated_defaults().len(),
            PolicyEngine::defaults().unwrap().rules().len()
        );
        assert!(e.unattended_high_risk().is_empty());
        assert!(e.rules().values().all(|r| r.source == DEFAULTS_SOURCE));
    }

    fn flagged(rule: &str) -> Vec<String> {
        PolicyEngine::with_operator(&[("ops.cedar", rule)])
            .unwrap()
            .unattended_high_risk()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_permit_that_makes_high_risk_unattended_is_found() {
        let open = "\n@id(\"ops.no-humans\")\n@reason(\"CI bot\")\npermit (principal, action == Airlock::Action::\"unattended\", resource)\nwhen { context.effect == \"submit\" };\n";
        assert_eq!(flagged(open), vec!["ops.cedar:2:1: policy `ops.no-humans`"]);
        let all = "@id(\"ops.all\")\npermit (principal, action, resource);";
        assert_eq!(flagged(all).len(), 1);
        let listed = "@id(\"ops.l\")\npermit (principal, action in [Airlock::Action::\"click\", Airlock::Action::\"unattended\"], resource)\nwhen { resource.name like \"*Save*\" };";
        assert_eq!(flagged(listed).len(), 1);
        let high = "@id(\"ops.h\")\npermit (principal, action == Airlock::Action::\"unattended\", resource)\nwhen { context.tier == \"high\" };";
        assert_eq!(flagged(high).len(), 1);
        let either = "@id(\"ops.e\")\npermit (principal, action == Airlock::Action::\"unattended\", resource)\nwhen { context.tier == \"low\" || resource.host == \"ci.example\" };";
        assert_eq!(flagged(either).len(), 1);
        // The rule decides: with it, a declared high-risk submit runs unattended.
        let e = PolicyEngine::with_operator(&[("ops.cedar", open)]).unwrap();
        let q = Question {
            principal: "r",
            action: "unattended",
            resource: resource("incidents.example", "Submit note"),
            context: context("submit", "high", true, false),
        };
        assert!(e.ask(&q).unwrap().allowed);
        assert!(!PolicyEngine::defaults().unwrap().ask(&q).unwrap().allowed);
    }

    #[test]
    fn permits_that_keep_high_risk_for_a_human_are_not_flagged() {
        let cases = [
            "@id(\"a\") permit (principal, action == Airlock::Action::\"unattended\", resource) when { context.tier != \"high\" && resource.name like \"*x*\" };",
            "@id(\"b\") permit (principal, action == Airlock::Action::\"unattended\", resource) when { context.tier == \"medium\" };",
            "@id(\"c\") permit (principal, action == Airlock::Action::\"unattended\", resource) unless { context.tier == \"high\" || context.tainted };",
            "@id(\"d\") permit (principal, action == Airlock::Action::\"unattended\", resource) when { [\"low\", \"medium\"].contains(context.tier) };",
            "@id(\"e\") permit (principal, action == Airlock::Action::\"unattended\", resource) when { !(context.tier == \"high\") };",
            "@id(\"f\") permit (principal, action == Airlock::Action::\"click\", resource) when { context.declared };",
            "@id(\"g\") forbid (principal, action == Airlock::Action::\"unattended\", resource) when { context.effect == \"draft\" };",
        ];
        for rule in cases {
            assert!(flagged(rule).is_empty(), "{rule}");
        }
    }

    #[test]
    fn line_and_column_are_one_based() {
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("ab", 0), (1, 1));
    }
}
