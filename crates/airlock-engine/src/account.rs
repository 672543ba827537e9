//! Who is at the terminal, as the system knows them.
//!
//! A decision made at the terminal (an approval prompt, `airlock approvals approve`,
//! `airlock stop`) is recorded under the OS account that made it: the real uid of this
//! process, its name from the password database and the host name. `$USER` is not used: it is
//! whatever the caller's environment says, so anyone could claim to be anyone.

use rustix::process::getuid;
use std::fmt;

/// The account this process runs as, on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OsAccount {
    pub uid: u32,
    /// The name `/etc/passwd` gives the uid, or `uid<N>` when it has none.
    pub name: String,
    /// The kernel's host name, or `localhost` when it cannot be read.
    pub host: String,
}

impl OsAccount {
    /// The account of the current process (its real uid).
    pub fn current() -> OsAccount {
        let uid = getuid().as_raw();
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|h| h.trim().to_string())
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        OsAccount {
            uid,
            name: name_for(&passwd, uid).unwrap_or_else(|| format!("uid{uid}")),
            host,
        }
    }

    /// `NAME@HOST (uid N)`, the form recorded after `terminal:`.
    pub fn principal_name(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for OsAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{} (uid {})", self.name, self.host, self.uid)
    }
}

/// The first `/etc/passwd` entry for `uid`, when its name is printable and has no `:`.
fn name_for(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        let _password = fields.next()?;
        let entry_uid: u32 = fields.next()?.parse().ok()?;
        (entry_uid == uid
            && !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
        .then(|| name.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_name_comes_from_the_password_database_not_the_environment() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # comment\n\
                      broken line\n\
                      alice:x:1000:1000::/home/alice:/bin/sh\n";
        assert_eq!(name_for(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(name_for(passwd, 0).as_deref(), Some("root"));
        assert_eq!(name_for(passwd, 4242), None);
        // A name with spaces or other characters that could pass for more is not used.
        assert_eq!(name_for("a b:x:8:8::/:/bin/sh\n", 8), None);
        assert_eq!(name_for("x)@y:x:9:9::/:/bin/sh\n", 9), None);
    }

    #[test]
    fn the_current_account_ignores_user() {
        let me = OsAccount::current();
        assert_eq!(me.uid, getuid().as_raw());
        // Whatever $USER says, the recorded name is the system's for this uid.
        let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
        let expected = name_for(&passwd, me.uid).unwrap_or_else(|| format!("uid{}", me.uid));
        assert_eq!(me.name, expected);
        assert!(me.to_string().contains(&format!("(uid {})", me.uid)));
        assert!(!me.host.is_empty());
    }
}
