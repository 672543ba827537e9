//! The task manifest: what an operator grants a run, in TOML.
//!
//! Parsing here is strict (unknown keys are errors, so a typo never silently widens or drops a
//! restriction). Whether a well-formed manifest asks for *more than its task needs* is decided
//! by admission in `airlock-policy`.

use crate::effect::Effect;
use crate::host::{HostName, UrlError, WebUrl};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest is not valid TOML: {0}")]
    Toml(String),
    /// Valid TOML with a key the manifest does not have (a typo must not silently drop or widen
    /// a restriction).
    #[error("unknown key `{key}` in {table} (line {line}, column {column}){}", expected_suffix(.expected))]
    UnknownKey {
        key: String,
        /// `[scope]`, `[[effects]]`, `[login].username_field`, or `the manifest's top level`.
        table: String,
        line: usize,
        column: usize,
        /// The keys that table has, as serde lists them (`` `domains` ``).
        expected: String,
    },
    #[error("{field}: {source}")]
    Url {
        field: String,
        #[source]
        source: UrlError,
    },
    #[error("{0}")]
    Invalid(String),
}

fn expected_suffix(expected: &str) -> String {
    if expected.is_empty() {
        String::new()
    } else {
        format!("; expected {expected}")
    }
}

impl ManifestError {
    /// A TOML error as the operator should read it: an unknown key named with its table and
    /// line, anything else as the TOML parser says it.
    fn from_toml(e: &toml::de::Error, text: &str) -> Self {
        let unknown = e
            .message()
            .strip_prefix("unknown field `")
            .and_then(|rest| {
                let (key, after) = rest.split_once('`')?;
                Some((key, after.trim_start_matches(',').trim()))
            });
        match (unknown, e.span()) {
            (Some((key, expected)), Some(span)) => {
                let (line, column, table) = locate_key(text, span.start);
                ManifestError::UnknownKey {
                    key: key.to_string(),
                    table,
                    line,
                    column,
                    expected: expected
                        .strip_prefix("expected ")
                        .unwrap_or(expected)
                        .to_string(),
                }
            }
            _ => ManifestError::Toml(e.to_string()),
        }
    }
}

/// Line and column (1-based) of byte `offset`, and the table the key there belongs to: the
/// nearest `[header]` above it, refined by the key of an inline table on the same line.
fn locate_key(text: &str, offset: usize) -> (usize, usize, String) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let line = before.matches('\n').count() + 1;
    let prefix = before.get(line_start..).unwrap_or("");
    let column = prefix.chars().count() + 1;
    let header_of = |l: &str| -> Option<String> {
        let t = l.trim();
        let inner = t
            .strip_prefix("[[")
            .and_then(|r| r.split_once("]]"))
            .map(|(h, _)| (h, true));
        let inner = inner.or_else(|| {
            t.strip_prefix('[')
                .and_then(|r| r.split_once(']'))
                .map(|(h, _)| (h, false))
        });
        inner.map(|(h, array)| {
            let h = h.trim();
            if array {
                format!("[[{h}]]")
            } else {
                format!("[{h}]")
            }
        })
    };
    let this_line = text
        .get(line_start..)
        .and_then(|r| r.lines().next())
        .unwrap_or("");
    if this_line.trim_start().starts_with('[') {
        // The unknown key is a table's name: it belongs to the table around it.
        let name = header_of(this_line).unwrap_or_default();
        let name = name.trim_matches(|c| c == '[' || c == ']');
        return (
            line,
            column,
            match name.rsplit_once('.') {
                Some((parent, _)) => format!("[{parent}]"),
                None => "the manifest's top level".to_string(),
            },
        );
    }
    let header = before
        .get(..line_start)
        .unwrap_or("")
        .lines()
        .rev()
        .find_map(header_of);
    // `username_field = { role = "textbox", nmae = "x" }`: the inline table's own key.
    let inline = prefix
        .split_once('{')
        .and_then(|(k, _)| k.split_once('='))
        .map(|(k, _)| k.trim().trim_matches('"').to_string())
        .or_else(|| {
            prefix
                .trim()
                .strip_suffix('.')
                .map(|k| k.trim().trim_matches('"').to_string())
        })
        .filter(|k| !k.is_empty());
    let table = match (header, inline) {
        (Some(h), Some(k)) => format!("{h}.{k}"),
        (Some(h), None) => h,
        (None, Some(k)) => format!("[{k}]"),
        (None, None) => "the manifest's top level".to_string(),
    };
    (line, column, table)
}

/// The whole manifest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskManifest {
    pub task: TaskSection,
    pub scope: ScopeSection,
    /// Host mapping, like curl's `--resolve`: `"ci.example" = "bundled-portal"` or `"127.0.0.1:8080"`.
    #[serde(default)]
    pub hosts: BTreeMap<String, String>,
    #[serde(default)]
    pub effects: Vec<EffectRule>,
    #[serde(default)]
    pub budgets: Budgets,
    #[serde(default)]
    pub acceptance: Vec<Criterion>,
    /// What must hold right after particular steps, checked before the next proposal.
    #[serde(default)]
    pub checkpoints: Vec<CheckpointRule>,
    #[serde(default)]
    pub browser: BrowserSection,
    #[serde(default)]
    pub portal: PortalSection,
    #[serde(default)]
    pub verifier: VerifierSection,
    /// Secret handles (`broker://NAME`), resolved by the host's secrets broker.
    #[serde(default)]
    pub secrets: BTreeMap<String, SecretSpec>,
    /// A login the host performs itself before the model's first observation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<LoginSection>,
    /// Extra redaction for retention policy (values of secrets are always redacted).
    #[serde(default)]
    pub redaction: RedactionSection,
    /// Options for `airlock mcp` sessions of this task (`[mcp]`).
    #[serde(default)]
    pub mcp: McpSection,
    /// Files the host may put into a page's file input (`[[files]]`); the model names one by
    /// its id, never by a path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<DeclaredFile>,
}

/// `[mcp]`: how `airlock mcp` sessions of this task behave.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    /// What a severe violation (a host outside the task, a secret out of its scope) does in an
    /// MCP session: `refuse` (the default: the call is refused with the reason, the violation
    /// recorded, and the session goes on, since IDE agents explore) or `stop` (stopped and
    /// frozen, as `airlock run` does per `budgets.freeze_on_violation`).
    #[serde(default)]
    pub on_violation: OnViolation,
}

/// What a severe violation does to the run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnViolation {
    /// Refuse the action with the reason (recorded, counted as a denial) and go on.
    #[default]
    Refuse,
    /// Stop the run and freeze it.
    Stop,
}

/// `[[files]]`: one file the host may upload for the task, into one input on one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredFile {
    /// What the model calls it (`browser_file_upload {"file": ID}`).
    pub id: String,
    /// Where the host reads it (relative paths: from the working directory of `airlock`).
    pub path: String,
    /// The only host whose pages may receive it.
    pub host: String,
    /// The file input it goes into: a CSS selector, or a bare name (`input[type=file][name=…]`).
    pub input: String,
}

impl DeclaredFile {
    /// The declared input as a target the sandbox resolves to exactly one element.
    pub fn input_target(&self) -> crate::Target {
        let bare = !self.input.is_empty()
            && self
                .input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if bare {
            crate::Target::Css(format!("input[type=file][name=\"{}\"]", self.input))
        } else {
            crate::Target::Css(self.input.clone())
        }
    }
}

/// Where a secret comes from and where it may be used. Never holds the value itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretSpec {
    pub source: SecretSource,
    /// For `env`: the environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// For `file`: the file (must not be readable by group or others).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// For `vault`: the KV v2 path as `MOUNT/PATH` (e.g. `secret/ci/readonly`); address and
    /// token come from `VAULT_ADDR` and `VAULT_TOKEN`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_path: Option<String>,
    /// For `vault`: the key inside the secret's data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vault_field: Option<String>,
    /// Hosts the secret may be typed on (exact, normalised).
    pub hosts: Vec<String>,
    /// The kind of field it may be typed into.
    pub kind: SecretKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    Env,
    File,
    Vault,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretKind {
    Username,
    Password,
    Otp,
    ApiToken,
}

/// An element of a login form, by accessible role and name or by CSS selector.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css: Option<String>,
}

/// A deterministic login run by the host; the model only learns whether it worked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginSection {
    pub url: String,
    pub username_field: FieldRef,
    pub password_field: FieldRef,
    pub submit: FieldRef,
    /// `broker://NAME` of the username (or a plain, non-secret username).
    pub username: String,
    /// `broker://NAME` of the password.
    pub password: String,
    /// Text visible after a successful login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_text: Option<String>,
    /// URL glob reached after a successful login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub success_url: Option<String>,
}

/// Pattern redaction for retention (emails, `password=`, bearer tokens, API-key shapes).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedactionSection {
    /// Built-in pattern names to apply: `email`, `password_param`, `bearer`, `api_key`.
    #[serde(default)]
    pub patterns: Vec<String>,
}

/// How the host verifier reaches systems of record.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifierSection {
    /// A header sent with every system-of-record request (e.g. an API token header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_name: Option<String>,
    /// The environment variable holding that header's value. The value itself never appears
    /// in the manifest or the audit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header_env: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSection {
    pub name: String,
    /// What the model is asked to achieve, in plain words.
    pub goal: String,
    pub start_url: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScopeSection {
    /// Hosts the run may reach, exactly (no wildcards, no IP literals).
    pub domains: Vec<String>,
}

/// Effects allowed on a host's paths.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EffectRule {
    pub host: String,
    /// Path globs (`*` wildcard), e.g. `/incidents/INC-2048/*`.
    #[serde(default = "all_paths")]
    pub paths: Vec<String>,
    pub allow: Vec<Effect>,
}

fn all_paths() -> Vec<String> {
    vec!["/*".to_string()]
}

/// The freeze time of a stopped run started by a person at a terminal, when the manifest
/// does not set `budgets.freeze_secs`: five minutes to look at the live browser in
/// `airlock serve` before it is torn down (release it to end sooner).
pub const INTERACTIVE_FREEZE_SECS: u64 = 300;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Budgets {
    #[serde(default = "default_max_steps")]
    pub max_steps: u32,
    #[serde(default = "default_wall_clock")]
    pub wall_clock_secs: u64,
    #[serde(default = "default_step_timeout")]
    pub step_timeout_secs: u64,
    /// Policy denials tolerated before the run is stopped.
    #[serde(default = "default_max_denials")]
    pub max_denials: u32,
    /// Invalid model proposals in a row before the run is stopped.
    #[serde(default = "default_max_invalid")]
    pub max_invalid: u32,
    /// Executed actions allowed in any 60-second window.
    #[serde(default = "default_max_actions_per_minute")]
    pub max_actions_per_minute: u32,
    /// How long a stopped run's browser is kept frozen for inspection before teardown. Unset:
    /// [`INTERACTIVE_FREEZE_SECS`] when a person started the run at a terminal, 0 in CI and
    /// other unattended runs (nobody is there to look).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub freeze_secs: Option<u64>,
    /// Stop and freeze the run the first time the agent proposes a severe violation (reaching
    /// a host outside the task, placing a secret out of its scope). On by default; a red-team
    /// harness that probes many attacks in one run turns it off and relies on the denials.
    #[serde(default = "default_true")]
    pub freeze_on_violation: bool,
    /// Model tokens (input + output) the run may use, when the provider reports usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// Model cost in USD the run may use, when the provider reports a priced usage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

fn default_true() -> bool {
    true
}
fn default_max_invalid() -> u32 {
    3
}
fn default_max_actions_per_minute() -> u32 {
    60
}

fn default_max_steps() -> u32 {
    50
}
fn default_wall_clock() -> u64 {
    600
}
fn default_step_timeout() -> u64 {
    20
}
fn default_max_denials() -> u32 {
    5
}

impl Default for Budgets {
    fn default() -> Self {
        Budgets {
            max_steps: default_max_steps(),
            wall_clock_secs: default_wall_clock(),
            step_timeout_secs: default_step_timeout(),
            max_denials: default_max_denials(),
            max_invalid: default_max_invalid(),
            max_actions_per_minute: default_max_actions_per_minute(),
            freeze_secs: None,
            freeze_on_violation: true,
            max_tokens: None,
            max_cost_usd: None,
        }
    }
}

/// An expected state change after a step: when a step that ran matches `target` (a `*` glob
/// on the accessible name of the element it acted on) and/or `effect`, every `expect`
/// criterion must hold before the model is asked for the next step. Steps of medium risk and
/// above that no rule matches get the default check: the page must have visibly changed.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<crate::effect::Effect>,
    pub expect: Vec<Criterion>,
}

impl CheckpointRule {
    /// Whether this rule is about a step with this effect on an element with this name.
    pub fn applies(&self, effect: crate::effect::Effect, target_name: Option<&str>) -> bool {
        self.effect.is_none_or(|e| e == effect)
            && self
                .target
                .as_deref()
                .is_none_or(|g| target_name.is_some_and(|n| crate::glob::matches(g, n)))
            && (self.effect.is_some() || self.target.is_some())
    }
}

/// One acceptance criterion, checked by the host after the model claims done.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Criterion {
    /// The final page URL matches a `*` glob.
    UrlMatches { pattern: String },
    /// An element with this accessible role and name is on the final page.
    ElementPresent { role: String, name: String },
    /// This text is visible on the final page.
    TextPresent { text: String },
    /// A JSON field (RFC 6901 pointer) of a system-of-record URL equals or contains a value.
    RecordField {
        url: String,
        pointer: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        equals: Option<serde_json::Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        contains: Option<String>,
    },
    /// These system-of-record URLs return the same JSON at the end as before the run started.
    RecordsUnchanged { urls: Vec<String> },
}

/// Browser settings. A run always gets a fresh profile; asking for a reused one is refused.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrowserSection {
    /// Present only so admission can refuse it with a reason instead of a parse error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}

/// Options for the bundled portal when hosts map to `bundled-portal`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortalSection {
    /// How long the search page shows its spinner, in milliseconds.
    #[serde(default = "default_spinner_ms")]
    pub spinner_ms: u64,
    /// Fault modes of the bundled portal, so a task can ask for a flaky site (`[portal.faults]`).
    /// They only change how the bundled portal answers, never what the host allows.
    #[serde(default, skip_serializing_if = "PortalFaults::is_none")]
    pub faults: PortalFaults,
}

/// `[portal.faults]`: the bundled portal's fault modes (see `docs/failure-modes.md`). All are off
/// by default; the seeded ones repeat exactly for the same seed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PortalFaults {
    /// Seed for the drawn faults (`error_percent`, `layout_variants`).
    pub seed: u64,
    /// Delay of every response, in milliseconds.
    pub slow_ms: u64,
    /// The first N requests matching `error_paths` answer 500.
    pub error_first: u64,
    /// Every Nth request matching `error_paths` answers 500.
    pub error_every: u64,
    /// Probability (percent) that a request matching `error_paths` answers 500.
    pub error_percent: u8,
    /// Path prefixes the 500s apply to; empty: all.
    pub error_paths: Vec<String>,
    /// Path prefixes whose requests are never answered.
    pub hang_paths: Vec<String>,
    /// Pages are served in a shifted layout variant drawn per request.
    pub layout_variants: bool,
    /// Sessions end when the Nth request arrives.
    pub expire_session_after: u64,
    /// Sessions end at the first request to one of these path prefixes.
    pub expire_session_on: Vec<String>,
}

impl PortalFaults {
    /// No fault configured.
    pub fn is_none(&self) -> bool {
        *self == PortalFaults::default()
    }
}

fn default_spinner_ms() -> u64 {
    1500
}

impl Default for PortalSection {
    fn default() -> Self {
        PortalSection {
            spinner_ms: default_spinner_ms(),
            faults: PortalFaults::default(),
        }
    }
}

/// The host-mapping value that means "the portal Airlock starts in-process".
pub const BUNDLED_PORTAL: &str = "bundled-portal";

impl TaskManifest {
    /// Parses and structurally validates a manifest. Scope judgements are admission's job.
    pub fn from_toml(text: &str) -> Result<Self, ManifestError> {
        let m: TaskManifest =
            toml::from_str(text).map_err(|e| ManifestError::from_toml(&e, text))?;
        m.check_structure()?;
        Ok(m)
    }

    fn check_structure(&self) -> Result<(), ManifestError> {
        if self.task.name.trim().is_empty() {
            return Err(ManifestError::Invalid("task.name is empty".into()));
        }
        if self.task.goal.trim().is_empty() {
            return Err(ManifestError::Invalid("task.goal is empty".into()));
        }
        WebUrl::parse(&self.task.start_url).map_err(|source| ManifestError::Url {
            field: "task.start_url".into(),
            source,
        })?;
        for (i, d) in self.scope.domains.iter().enumerate() {
            HostName::parse(d).map_err(|source| ManifestError::Url {
                field: format!("scope.domains[{i}]"),
                source,
            })?;
        }
        for (i, r) in self.effects.iter().enumerate() {
            HostName::parse(&r.host).map_err(|source| ManifestError::Url {
                field: format!("effects[{i}].host"),
                source,
            })?;
            if r.allow.is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "effects[{i}].allow is empty"
                )));
            }
            for p in &r.paths {
                if !p.starts_with('/') && p != "*" {
                    return Err(ManifestError::Invalid(format!(
                        "effects[{i}].paths: `{p}` must start with `/`"
                    )));
                }
            }
        }
        for (host, target) in &self.hosts {
            HostName::parse(host).map_err(|source| ManifestError::Url {
                field: format!("hosts.`{host}`"),
                source,
            })?;
            if target != BUNDLED_PORTAL && target.parse::<std::net::SocketAddr>().is_err() {
                return Err(ManifestError::Invalid(format!(
                    "hosts.`{host}`: `{target}` must be `{BUNDLED_PORTAL}` or an address like `127.0.0.1:8080`"
                )));
            }
        }
        for (i, f) in self.files.iter().enumerate() {
            HostName::parse(&f.host).map_err(|source| ManifestError::Url {
                field: format!("files[{i}].host"),
                source,
            })?;
            if f.id.trim().is_empty() || f.path.trim().is_empty() || f.input.trim().is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "files[{i}]: `id`, `path` and `input` must not be empty"
                )));
            }
            if self.files.iter().take(i).any(|g| g.id == f.id) {
                return Err(ManifestError::Invalid(format!(
                    "files[{i}]: id `{}` is declared twice",
                    f.id
                )));
            }
        }
        if self.verifier.header_name.is_some() != self.verifier.header_env.is_some() {
            return Err(ManifestError::Invalid(
                "verifier: give both `header_name` and `header_env`, or neither".into(),
            ));
        }
        for (i, c) in self.acceptance.iter().enumerate() {
            match c {
                Criterion::RecordField {
                    url,
                    pointer,
                    equals,
                    contains,
                } => {
                    WebUrl::parse(url).map_err(|source| ManifestError::Url {
                        field: format!("acceptance[{i}].url"),
                        source,
                    })?;
                    if !pointer.is_empty() && !pointer.starts_with('/') {
                        return Err(ManifestError::Invalid(format!(
                            "acceptance[{i}].pointer: `{pointer}` is not a JSON pointer (it must start with `/`)"
                        )));
                    }
                    if equals.is_none() == contains.is_none() {
                        return Err(ManifestError::Invalid(format!(
                            "acceptance[{i}]: give exactly one of `equals` or `contains`"
                        )));
                    }
                }
                Criterion::RecordsUnchanged { urls } => {
                    if urls.is_empty() {
                        return Err(ManifestError::Invalid(format!(
                            "acceptance[{i}].urls is empty"
                        )));
                    }
                    for u in urls {
                        WebUrl::parse(u).map_err(|source| ManifestError::Url {
                            field: format!("acceptance[{i}].urls"),
                            source,
                        })?;
                    }
                }
                _ => {}
            }
        }
        for (i, c) in self.checkpoints.iter().enumerate() {
            if c.target.is_none() && c.effect.is_none() {
                return Err(ManifestError::Invalid(format!(
                    "checkpoints[{i}]: say which steps it is about (`target`, `effect`, or both)"
                )));
            }
            if c.expect.is_empty() {
                return Err(ManifestError::Invalid(format!(
                    "checkpoints[{i}].expect is empty"
                )));
            }
            for e in &c.expect {
                match e {
                    Criterion::RecordsUnchanged { .. } => {
                        return Err(ManifestError::Invalid(format!(
                            "checkpoints[{i}].expect: `records_unchanged` compares with the start of the run; use it in [[acceptance]]"
                        )))
                    }
                    Criterion::RecordField { url, .. } => {
                        WebUrl::parse(url).map_err(|source| ManifestError::Url {
                            field: format!("checkpoints[{i}].expect.url"),
                            source,
                        })?;
                    }
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// Whether any host is served by the bundled portal.
    pub fn uses_bundled_portal(&self) -> bool {
        self.hosts.values().any(|v| v == BUNDLED_PORTAL)
    }

    /// Normalised allowed domains.
    pub fn domains(&self) -> Vec<HostName> {
        self.scope
            .domains
            .iter()
            .filter_map(|d| HostName::parse(d).ok())
            .collect()
    }

    /// Whether `effect` is declared for `url`'s host and path.
    pub fn declares(&self, effect: Effect, url: &WebUrl) -> bool {
        self.effects.iter().any(|r| {
            HostName::parse(&r.host).is_ok_and(|h| h == url.host)
                && r.allow.contains(&effect)
                && r.paths.iter().any(|p| crate::glob::matches(p, &url.path))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[task]
name = "t"
goal = "read the run"
start_url = "http://ci.example/"
[scope]
domains = ["ci.example"]
[[effects]]
host = "ci.example"
allow = ["read"]
[[acceptance]]
kind = "text_present"
text = "RUN-78432"
"#;

    #[test]
    fn minimal_manifest_parses_with_defaults() {
        let m = TaskManifest::from_toml(MINIMAL).unwrap();
        assert_eq!(m.budgets.max_steps, 50);
        assert_eq!(m.effects[0].paths, vec!["/*"]);
        let u = WebUrl::parse("http://CI.example./runs").unwrap();
        assert!(m.declares(Effect::Read, &u));
        assert!(!m.declares(Effect::Submit, &u));
    }

    #[test]
    fn portal_faults_parse_and_default_to_none() {
        let m = TaskManifest::from_toml(MINIMAL).unwrap();
        assert!(m.portal.faults.is_none());
        let with = format!(
            "{MINIMAL}\n[portal]\nspinner_ms = 10\n[portal.faults]\nseed = 7\nerror_first = 1\nerror_paths = [\"/runs/\"]\nlayout_variants = true\n"
        );
        let m = TaskManifest::from_toml(&with).unwrap();
        assert_eq!(m.portal.spinner_ms, 10);
        assert_eq!(m.portal.faults.seed, 7);
        assert_eq!(m.portal.faults.error_first, 1);
        assert_eq!(m.portal.faults.error_paths, vec!["/runs/"]);
        assert!(m.portal.faults.layout_variants && !m.portal.faults.is_none());
        let bad = with.replace("seed = 7", "chaos = true");
        let err = TaskManifest::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("chaos"), "{err}");
    }

    #[test]
    fn unknown_keys_are_errors_not_ignored() {
        let bad = MINIMAL.replace("[scope]", "[scope]\nallow_everything = true");
        let err = TaskManifest::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("allow_everything"), "{err}");
    }

    #[test]
    fn an_unknown_key_is_named_with_its_table_and_line() {
        let shown = |text: &str| TaskManifest::from_toml(text).unwrap_err().to_string();
        let bad = MINIMAL.replace("[scope]", "[scope]\nallow_everything = true");
        assert_eq!(
            shown(&bad),
            "unknown key `allow_everything` in [scope] (line 7, column 1); expected `domains`"
        );
        let bad = MINIMAL.replace("allow = [\"read\"]", "allow = [\"read\"]\npath = [\"/x\"]");
        let err = shown(&bad);
        assert!(
            err.starts_with("unknown key `path` in [[effects]] (line 11, column 1); expected"),
            "{err}"
        );
        let bad = format!("{MINIMAL}[budgets]\nmax_step = 3\n");
        let err = shown(&bad);
        assert!(
            err.starts_with("unknown key `max_step` in [budgets] (line 15,"),
            "{err}"
        );
        let bad = format!("{MINIMAL}[sandbox]\nnet = true\n");
        let err = shown(&bad);
        assert!(
            err.starts_with(
                "unknown key `sandbox` in the manifest's top level (line 14, column 2)"
            ),
            "{err}"
        );
        let bad = format!("{MINIMAL}[portal.chaos]\nx = 1\n");
        assert!(
            shown(&bad).starts_with("unknown key `chaos` in [portal]"),
            "{}",
            shown(&bad)
        );
        let login = "[login]\nurl = \"http://ci.example/login\"\nusername_field = { role = \"textbox\", nmae = \"Username\" }\n";
        let err = shown(&format!("{MINIMAL}{login}"));
        assert!(
            err.starts_with("unknown key `nmae` in [login].username_field (line 16,"),
            "{err}"
        );
        // A file that is not TOML at all still says so.
        assert!(shown("[task\n").starts_with("manifest is not valid TOML"));
    }

    #[test]
    fn every_manifest_in_the_repository_parses() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut stack = vec![
            root.join("examples"),
            root.join("suites"),
            root.join("tests"),
        ];
        let mut seen = 0;
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let text = std::fs::read_to_string(&path).unwrap();
                // Task manifests are the TOML files with a `[task]` table.
                if !text.lines().any(|l| l.trim() == "[task]") {
                    continue;
                }
                if let Err(e) = TaskManifest::from_toml(&text) {
                    panic!("{}: {e}", path.display());
                }
                seen += 1;
            }
        }
        assert!(seen > 3, "found only {seen} manifests");
    }

    #[test]
    fn bad_urls_and_pointers_are_reported_with_their_field() {
        let bad = MINIMAL.replace("http://ci.example/", "javascript:alert(1)");
        let err = TaskManifest::from_toml(&bad).unwrap_err().to_string();
        assert!(err.starts_with("task.start_url"), "{err}");
        let bad = format!(
            "{MINIMAL}\n[[acceptance]]\nkind = \"record_field\"\nurl = \"http://ci.example/x\"\npointer = \"notes\"\nequals = 1\n"
        );
        let err = TaskManifest::from_toml(&bad).unwrap_err().to_string();
        assert!(err.contains("JSON pointer"), "{err}");
    }

    #[test]
    fn checkpoints_say_which_steps_and_what_to_expect() {
        let ok = format!(
            "{MINIMAL}\n[[checkpoints]]\ntarget = \"Show details*\"\nexpect = [{{ kind = \"text_present\", text = \"Traceback\" }}]\n"
        );
        let m = TaskManifest::from_toml(&ok).unwrap();
        let rule = &m.checkpoints[0];
        assert!(rule.applies(crate::effect::Effect::Draft, Some("Show details (test)")));
        assert!(!rule.applies(crate::effect::Effect::Draft, Some("Hide details")));
        assert!(!rule.applies(crate::effect::Effect::Draft, None));
        let vague = format!(
            "{MINIMAL}\n[[checkpoints]]\nexpect = [{{ kind = \"text_present\", text = \"x\" }}]\n"
        );
        assert!(TaskManifest::from_toml(&vague)
            .unwrap_err()
            .to_string()
            .contains("checkpoints[0]"));
        let unchanged = format!(
            "{MINIMAL}\n[[checkpoints]]\neffect = \"submit\"\nexpect = [{{ kind = \"records_unchanged\", urls = [\"http://ci.example/x\"] }}]\n"
        );
        assert!(TaskManifest::from_toml(&unchanged)
            .unwrap_err()
            .to_string()
            .contains("records_unchanged"));
    }
}
