//! End-to-end tests of the secrets broker, one binary (build time), a module per area.

#![allow(
    clippy::expect_used,
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "test helpers fail the test loudly on purpose"
)]

mod garbage;
mod masking;
mod redaction;
mod scoping;
mod sources;
mod vault;

use airlock_core::manifest::{SecretKind, SecretSource, SecretSpec};
use std::collections::BTreeMap;
use std::ffi::OsString;

/// The canary every test tries to leak.
pub const CANARY: &str = "Canary-7f3a+9/x y";

pub fn env_spec(var: &str, kind: SecretKind, hosts: &[&str]) -> SecretSpec {
    SecretSpec {
        source: SecretSource::Env,
        env: Some(var.into()),
        path: None,
        vault_path: None,
        vault_field: None,
        hosts: hosts.iter().map(|h| h.to_string()).collect(),
        kind,
    }
}

pub fn specs(items: Vec<(&str, SecretSpec)>) -> BTreeMap<String, SecretSpec> {
    items.into_iter().map(|(n, s)| (n.to_string(), s)).collect()
}

/// An environment with only these variables.
pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> + Sync {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    move |k: &str| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| OsString::from(v))
    }
}
