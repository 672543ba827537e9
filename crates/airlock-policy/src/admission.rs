//! Admission: the manifest is checked before anything starts.
//!
//! A task names its hosts exactly, declares the effects it needs where it needs them, carries
//! budgets within hard caps, and says how the host will know it succeeded. Anything broader is
//! refused with a reason an operator can act on.

use airlock_core::effect::Effect;
use airlock_core::host::{HostName, WebUrl};
use airlock_core::manifest::{Criterion, TaskManifest};
use std::collections::BTreeSet;

/// Hard caps: no single task gets more than this, whatever its manifest says.
pub const MAX_STEPS_CAP: u32 = 500;
pub const WALL_CLOCK_CAP_SECS: u64 = 3600;
pub const STEP_TIMEOUT_CAP_SECS: u64 = 120;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("admission refused: {}", .reasons.join("; "))]
pub struct AdmissionError {
    pub reasons: Vec<String>,
}

/// Checks that the manifest asks for no more than its task needs. Returns every reason at once
/// so an operator fixes the manifest in one go.
pub fn admit(m: &TaskManifest) -> Result<(), AdmissionError> {
    let mut why = Vec::new();

    if m.browser.profile.is_some() {
        why.push("browser.profile: a run always gets a fresh profile; reusing one would carry cookies and state between runs".to_string());
    }

    let mut domains = BTreeSet::new();
    if m.scope.domains.is_empty() {
        why.push("scope.domains is empty: name the hosts the task needs".into());
    }
    for d in &m.scope.domains {
        match HostName::parse(d) {
            Ok(h) => {
                if !domains.insert(h.clone()) {
                    why.push(format!("scope.domains: `{h}` is listed twice"));
                }
            }
            Err(e) => why.push(format!("scope.domains: {e}")),
        }
    }

    match WebUrl::parse(&m.task.start_url) {
        Ok(u) if !domains.contains(&u.host) => why.push(format!(
            "task.start_url: `{}` is not in scope.domains",
            u.host
        )),
        Ok(_) => {}
        Err(e) => why.push(format!("task.start_url: {e}")),
    }

    // Every domain must be used by some effect; every effect must name a domain.
    let mut used = BTreeSet::new();
    for (i, r) in m.effects.iter().enumerate() {
        let Ok(h) = HostName::parse(&r.host) else {
            why.push(format!("effects[{i}].host `{}` is not a host name", r.host));
            continue;
        };
        if !domains.contains(&h) {
            why.push(format!("effects[{i}]: `{h}` is not in scope.domains"));
        }
        used.insert(h.clone());
        let broad = r.paths.iter().any(|p| p == "*" || p == "/*" || p == "/");
        for e in &r.allow {
            match e {
                Effect::Submit | Effect::Destructive if broad => why.push(format!(
                    "effects[{i}]: `{e}` on every path of `{h}` is broader than a task needs; name the paths"
                )),
                Effect::Destructive => why.push(format!(
                    "effects[{i}]: `destructive` effects are not admitted for unattended tasks; `{h}` {:?}",
                    r.paths
                )),
                _ => {}
            }
        }
    }
    for d in &domains {
        if !used.contains(d) {
            why.push(format!(
                "scope.domains: `{d}` has no declared effect; remove it or declare what the task does there"
            ));
        }
    }

    for host in m.hosts.keys() {
        match HostName::parse(host) {
            Ok(h) if !domains.contains(&h) => {
                why.push(format!("hosts: `{h}` is mapped but not in scope.domains"))
            }
            _ => {}
        }
    }

    let b = &m.budgets;
    if b.max_steps == 0 || b.max_steps > MAX_STEPS_CAP {
        why.push(format!(
            "budgets.max_steps must be between 1 and {MAX_STEPS_CAP} (got {})",
            b.max_steps
        ));
    }
    if b.wall_clock_secs == 0 || b.wall_clock_secs > WALL_CLOCK_CAP_SECS {
        why.push(format!(
            "budgets.wall_clock_secs must be between 1 and {WALL_CLOCK_CAP_SECS} (got {})",
            b.wall_clock_secs
        ));
    }
    if b.step_timeout_secs == 0
        || b.step_timeout_secs > STEP_TIMEOUT_CAP_SECS
        || b.step_timeout_secs > b.wall_clock_secs
    {
        why.push(format!(
            "budgets.step_timeout_secs must be between 1 and {} and within the wall-clock budget (got {})",
            STEP_TIMEOUT_CAP_SECS, b.step_timeout_secs
        ));
    }

    if m.acceptance.is_empty() {
        why.push("acceptance: a task needs at least one criterion the host can check; the model saying \"done\" is not one".into());
    }
    for (i, c) in m.acceptance.iter().enumerate() {
        let urls: Vec<&String> = match c {
            Criterion::RecordField { url, .. } => vec![url],
            Criterion::RecordsUnchanged { urls } => urls.iter().collect(),
            _ => vec![],
        };
        for u in urls {
            if let Ok(w) = WebUrl::parse(u) {
                if !m
                    .hosts
                    .keys()
                    .any(|h| HostName::parse(h).is_ok_and(|h| h == w.host))
                {
                    why.push(format!(
                        "acceptance[{i}]: system-of-record host `{}` must be mapped in [hosts]",
                        w.host
                    ));
                }
            }
        }
    }

    if why.is_empty() {
        Ok(())
    } else {
        Err(AdmissionError { reasons: why })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    const OK: &str = r#"
[task]
name = "t"
goal = "g"
start_url = "http://ci.example/login"
[scope]
domains = ["ci.example", "incidents.example"]
[hosts]
"ci.example" = "bundled-portal"
"incidents.example" = "bundled-portal"
[[effects]]
host = "ci.example"
allow = ["read", "draft"]
[[effects]]
host = "incidents.example"
paths = ["/incidents/INC-2048", "/incidents/INC-2048/notes"]
allow = ["read", "draft", "submit"]
[[acceptance]]
kind = "records_unchanged"
urls = ["http://incidents.example/_sor/incidents/INC-9911"]
"#;

    fn with(extra: &str, from: &str, to: &str) -> TaskManifest {
        TaskManifest::from_toml(&format!("{}{extra}", OK.replace(from, to))).unwrap()
    }

    #[test]
    fn a_scoped_manifest_is_admitted() {
        admit(&TaskManifest::from_toml(OK).unwrap()).unwrap();
    }

    #[test]
    fn unused_domains_are_refused() {
        let m = with(
            "",
            r#""incidents.example"]"#,
            r#""incidents.example", "mail.example"]"#,
        );
        let e = admit(&m).unwrap_err().to_string();
        assert!(e.contains("`mail.example` has no declared effect"), "{e}");
    }

    #[test]
    fn submit_everywhere_and_destructive_are_refused() {
        let m = with(
            "",
            r#"paths = ["/incidents/INC-2048", "/incidents/INC-2048/notes"]"#,
            r#"paths = ["/*"]"#,
        );
        let e = admit(&m).unwrap_err().to_string();
        assert!(e.contains("`submit` on every path"), "{e}");
        let m = with(
            "",
            r#"allow = ["read", "draft"]"#,
            r#"paths = ["/runs/RUN-78432/delete"]
allow = ["read", "destructive"]"#,
        );
        assert!(admit(&m).unwrap_err().to_string().contains("destructive"));
    }

    #[test]
    fn reused_profiles_oversized_budgets_and_missing_criteria_are_refused() {
        let m = with(
            "\n[browser]\nprofile = \"/home/me/.config/chromium\"\n",
            "",
            "",
        );
        assert!(admit(&m).unwrap_err().to_string().contains("fresh profile"));
        let m = with("\n[budgets]\nmax_steps = 100000\n", "", "");
        assert!(admit(&m).unwrap_err().to_string().contains("max_steps"));
        let cut = OK.split("[[acceptance]]").next().unwrap().to_string();
        let e = admit(&TaskManifest::from_toml(&cut).unwrap())
            .unwrap_err()
            .to_string();
        assert!(e.contains("at least one criterion"), "{e}");
    }

    #[test]
    fn start_url_outside_scope_is_refused() {
        let m = with("", "http://ci.example/login", "http://mail.example/");
        assert!(admit(&m)
            .unwrap_err()
            .to_string()
            .contains("task.start_url"));
    }
}
