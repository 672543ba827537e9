//! Who is acting: reviewers with a role, the trusted terminal, and agents (who may decide nothing).
//!
//! Names live in three namespaces that cannot collide: reviewer accounts are plain names with no
//! `:` (`alice`), the terminal is `terminal:<os account>`, and a run's agent is `agent:<run id>`.

use airlock_engine::account::OsAccount;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::ReviewError;

/// What a principal may do. Ordered: each role can do everything the roles below it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Sees runs, the queue and replays.
    Viewer,
    /// Also approves and denies requests.
    Reviewer,
    /// Also stops runs and manages reviewers.
    Operator,
}

impl Role {
    pub const ALL: [Role; 3] = [Role::Viewer, Role::Reviewer, Role::Operator];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
        }
    }

    /// Whether approving or denying requests is allowed.
    pub fn can_decide(self) -> bool {
        self >= Role::Reviewer
    }

    /// Whether stopping runs and managing reviewers is allowed.
    pub fn can_operate(self) -> bool {
        self >= Role::Operator
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = ReviewError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "viewer" => Ok(Role::Viewer),
            "reviewer" => Ok(Role::Reviewer),
            "operator" => Ok(Role::Operator),
            other => Err(ReviewError::invalid(format!(
                "role `{}` is not one of viewer, reviewer, operator",
                clip(other)
            ))),
        }
    }
}

/// Prefix of every agent identity.
pub const AGENT_PREFIX: &str = "agent:";
/// Prefix of the principals the terminal acts as.
pub const TERMINAL_PREFIX: &str = "terminal:";
/// Set to `1` by the operator (a service wrapper, a CI job) to let the terminal record its
/// decisions under another name with `--as NAME`. Without it `--as` is refused.
pub const TERMINAL_AS_ENV: &str = "AIRLOCK_ALLOW_TERMINAL_AS";

/// Someone (or something) acting on the queue, with the role they act in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    name: String,
    role: Role,
}

impl Principal {
    /// A reviewer account as authenticated by [`crate::ReviewStore`]; the name must be valid.
    pub(crate) fn reviewer(name: String, role: Role) -> Principal {
        Principal { name, role }
    }

    /// The person at the terminal of this machine, trusted as an operator (they can read the
    /// home directory anyway), recorded as their OS account: `terminal:NAME@HOST (uid N)`.
    pub fn terminal(account: &OsAccount) -> Principal {
        Principal {
            name: format!("{TERMINAL_PREFIX}{}", account.principal_name()),
            role: Role::Operator,
        }
    }

    /// The terminal acting under another name (`--as NAME`), which the operator must allow
    /// (see [`TERMINAL_AS_ENV`]). The OS account is kept in the name, so the record still says
    /// who typed the command: `terminal:NAME@HOST (uid N) as alice`.
    pub fn terminal_as(account: &OsAccount, name: &str) -> Result<Principal, ReviewError> {
        validate_name(name)?;
        Ok(Principal {
            name: format!("{TERMINAL_PREFIX}{} as {name}", account.principal_name()),
            role: Role::Operator,
        })
    }

    /// The identity a run's agent acts under. It has the viewer role and, whatever its role,
    /// can never decide a request.
    pub fn agent(run_id: &str) -> Principal {
        Principal {
            name: agent_identity(run_id),
            role: Role::Viewer,
        }
    }

    /// A principal with an arbitrary name and role. For tests and for callers that have their
    /// own authentication; agent names are still refused by every decision.
    pub fn custom(name: &str, role: Role) -> Result<Principal, ReviewError> {
        if name.is_empty() || name.len() > 200 || name.chars().any(char::is_control) {
            return Err(ReviewError::invalid(
                "a principal name must be 1 to 200 characters with no control characters",
            ));
        }
        Ok(Principal {
            name: name.to_string(),
            role,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// Whether this is an agent identity (`agent:…`).
    pub fn is_agent(&self) -> bool {
        is_agent_name(&self.name)
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name, self.role)
    }
}

/// `agent:<run id>`.
pub fn agent_identity(run_id: &str) -> String {
    format!("{AGENT_PREFIX}{run_id}")
}

/// Whether a name is in the agent namespace, ignoring case and surrounding space so that
/// look-alikes such as ` Agent:x` are caught too.
pub fn is_agent_name(name: &str) -> bool {
    name.trim_start()
        .get(..AGENT_PREFIX.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(AGENT_PREFIX))
}

/// Reviewer account names: 1–64 characters from `A-Z a-z 0-9 . _ @ -`, starting with a letter
/// or digit. No `:`, so an account can never be mistaken for `agent:…` or `terminal:…`.
pub fn validate_name(name: &str) -> Result<(), ReviewError> {
    let ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'@' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(ReviewError::invalid(format!(
            "reviewer name `{}` must be 1 to 64 characters from A-Z a-z 0-9 . _ @ - and start \
             with a letter or digit",
            clip(name)
        )))
    }
}

/// The first 40 characters, for quoting user input in messages.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(40).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 40 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered_by_power() {
        assert!(!Role::Viewer.can_decide());
        assert!(Role::Reviewer.can_decide());
        assert!(!Role::Reviewer.can_operate());
        assert!(Role::Operator.can_decide() && Role::Operator.can_operate());
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
        assert!("admin".parse::<Role>().is_err());
    }

    #[test]
    fn reviewer_names_cannot_enter_other_namespaces() {
        assert!(validate_name("alice").is_ok());
        assert!(validate_name("ops.lead@acme").is_ok());
        assert!(validate_name("agent:run-1").is_err());
        assert!(validate_name("terminal:root").is_err());
        assert!(validate_name("").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a b").is_err());
        assert!(validate_name(&"a".repeat(65)).is_err());
    }

    #[test]
    fn agent_names_are_recognised_in_any_case() {
        assert!(Principal::agent("run-1").is_agent());
        assert_eq!(Principal::agent("run-1").name(), "agent:run-1");
        assert!(is_agent_name("AGENT:run-1"));
        assert!(is_agent_name("  agent:x"));
        assert!(!is_agent_name("agentsmith"));
        assert!(!Principal::terminal(&account()).is_agent());
    }

    fn account() -> OsAccount {
        OsAccount {
            uid: 1000,
            name: "alice".into(),
            host: "desk".into(),
        }
    }

    #[test]
    fn terminal_is_an_operator_recorded_as_its_os_account() {
        let p = Principal::terminal(&account());
        assert_eq!(p.name(), "terminal:alice@desk (uid 1000)");
        assert_eq!(p.role(), Role::Operator);
        let other = Principal::terminal_as(&account(), "bob").unwrap();
        assert_eq!(other.name(), "terminal:alice@desk (uid 1000) as bob");
        assert!(Principal::terminal_as(&account(), "agent:run").is_err());
        assert!(Principal::terminal(&OsAccount::current())
            .name()
            .starts_with("terminal:"));
    }
}
