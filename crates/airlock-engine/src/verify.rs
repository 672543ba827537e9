//! The host verifier: acceptance criteria checked on the host's own evidence.
//!
//! The model saying "done" is a claim. Success means the final page shows what it should *and*
//! the system of record (read by the host over its own connection, never through the browser)
//! holds the expected values *and* the records that must not change did not.

use crate::sor;
use airlock_core::host::{HostName, WebUrl};
use airlock_core::manifest::{Criterion, TaskManifest};
use airlock_sandbox::BrowserSandbox;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CriterionResult {
    pub criterion: String,
    pub passed: bool,
    pub detail: String,
}

fn addr_for(
    url: &WebUrl,
    map: &BTreeMap<HostName, SocketAddr>,
) -> Result<SocketAddr, sor::SorError> {
    map.get(&url.host)
        .copied()
        .ok_or_else(|| sor::SorError::Unmapped(url.host.to_string()))
}

async fn fetch(
    raw: &str,
    map: &BTreeMap<HostName, SocketAddr>,
    header: Option<&(String, String)>,
    timeout: Duration,
) -> Result<serde_json::Value, sor::SorError> {
    let url = WebUrl::parse(raw).map_err(|_| sor::SorError::Unmapped(raw.to_string()))?;
    let addr = addr_for(&url, map)?;
    sor::get_json(addr, &url, header, timeout).await
}

/// Reads every `records_unchanged` URL before the run starts.
pub async fn baseline(
    m: &TaskManifest,
    map: &BTreeMap<HostName, SocketAddr>,
    header: Option<&(String, String)>,
    timeout: Duration,
) -> Result<Vec<(String, serde_json::Value)>, sor::SorError> {
    let mut out = Vec::new();
    for c in &m.acceptance {
        if let Criterion::RecordsUnchanged { urls } = c {
            for u in urls {
                out.push((u.clone(), fetch(u, map, header, timeout).await?));
            }
        }
    }
    Ok(out)
}

/// Checks every criterion; never stops at the first failure, so the report is complete.
pub async fn check_all(
    m: &TaskManifest,
    sb: &mut BrowserSandbox,
    map: &BTreeMap<HostName, SocketAddr>,
    header: Option<&(String, String)>,
    baseline: &[(String, serde_json::Value)],
    timeout: Duration,
) -> Vec<CriterionResult> {
    check(&m.acceptance, sb, map, header, baseline, timeout).await
}

/// Checks `criteria` against the page as it is now and the systems of record (acceptance at
/// the end, checkpoints after a step).
pub async fn check(
    criteria: &[Criterion],
    sb: &mut BrowserSandbox,
    map: &BTreeMap<HostName, SocketAddr>,
    header: Option<&(String, String)>,
    baseline: &[(String, serde_json::Value)],
    timeout: Duration,
) -> Vec<CriterionResult> {
    let mut out = Vec::new();
    for c in criteria {
        let r = match c {
            Criterion::UrlMatches { pattern } => {
                let url = sb.location().await.map(|l| l.0).unwrap_or_default();
                let passed = airlock_core::glob::matches(pattern, &url);
                CriterionResult {
                    criterion: format!("url matches `{pattern}`"),
                    passed,
                    detail: if passed {
                        format!("URL {url} matches `{pattern}`")
                    } else {
                        format!("URL {url} does not match `{pattern}`")
                    },
                }
            }
            Criterion::ElementPresent { role, name } => {
                let n = sb.count_role(role, name).await.unwrap_or(0);
                CriterionResult {
                    criterion: format!("{role} '{name}' present"),
                    passed: n > 0,
                    detail: format!("{n} × {role} '{name}' on the page"),
                }
            }
            Criterion::TextPresent { text } => {
                let passed = sb.text_present(text).await.unwrap_or(false);
                CriterionResult {
                    criterion: format!("text '{text}' present"),
                    passed,
                    detail: if passed {
                        format!("text '{text}' is on the page")
                    } else {
                        format!("text '{text}' is not on the page")
                    },
                }
            }
            Criterion::RecordField {
                url,
                pointer,
                equals,
                contains,
            } => {
                let label = format!("{url}#{pointer}");
                match fetch(url, map, header, timeout).await {
                    Err(e) => CriterionResult {
                        criterion: label,
                        passed: false,
                        detail: e.to_string(),
                    },
                    Ok(v) => {
                        let field = v.pointer(pointer);
                        let (passed, detail) = match (field, equals, contains) {
                            (None, _, _) => (false, format!("{label}: field missing")),
                            (Some(f), Some(want), _) => {
                                (f == want, format!("{label} is {f}, expected {want}"))
                            }
                            (Some(f), None, Some(needle)) => {
                                let hay = match f {
                                    serde_json::Value::String(s) => s.clone(),
                                    other => other.to_string(),
                                };
                                (
                                    hay.contains(needle.as_str()),
                                    format!(
                                        "{label} {} '{needle}'",
                                        if hay.contains(needle.as_str()) {
                                            "contains"
                                        } else {
                                            "does not contain"
                                        }
                                    ),
                                )
                            }
                            (Some(_), None, None) => {
                                (false, format!("{label}: nothing to compare"))
                            }
                        };
                        CriterionResult {
                            criterion: label,
                            passed,
                            detail,
                        }
                    }
                }
            }
            Criterion::RecordsUnchanged { urls } => {
                let mut changed = Vec::new();
                for u in urls {
                    let before = baseline.iter().find(|(b, _)| b == u).map(|(_, v)| v);
                    match (before, fetch(u, map, header, timeout).await) {
                        (Some(b), Ok(now)) if *b == now => {}
                        (Some(_), Ok(_)) => changed.push(format!("{u} changed")),
                        (None, _) => changed.push(format!("{u} had no baseline")),
                        (_, Err(e)) => changed.push(e.to_string()),
                    }
                }
                CriterionResult {
                    criterion: format!("records unchanged: {}", urls.join(", ")),
                    passed: changed.is_empty(),
                    detail: if changed.is_empty() {
                        format!("{} record(s) unchanged", urls.len())
                    } else {
                        changed.join("; ")
                    },
                }
            }
        };
        out.push(r);
    }
    out
}
