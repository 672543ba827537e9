//! The local sources: an environment variable or a file.
//!
//! A file is trusted only if it is a regular file owned by the user running Airlock and not
//! accessible to group or others (`mode & 0o077 == 0`), the rule `ssh` applies to private keys:
//! a secret anyone on the machine can read or replace is not a secret the run should act on.
//! The checks are made on the opened file descriptor, not on the path, so the file that is
//! checked is the file that is read. Values are moved straight into zeroising buffers.

use crate::error::SecretError;
use crate::value::SecretValue;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use tokio::io::AsyncReadExt;
use zeroize::Zeroizing;

/// A secret file larger than this is a mistake (a key bundle, a log), not a credential.
pub(crate) const MAX_FILE_LEN: u64 = 64 * 1024;

/// Reads environment variable `var` for secret `name`. An empty value is an error, not a
/// secret.
pub(crate) fn from_env(
    name: &str,
    var: &str,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Result<SecretValue, SecretError> {
    let raw = env(var).ok_or_else(|| SecretError::EnvMissing {
        name: name.to_string(),
        var: var.to_string(),
    })?;
    let origin = || format!("environment variable `{var}`");
    let value = SecretValue::from_utf8(raw.into_vec()).map_err(|_| SecretError::NotUtf8 {
        name: name.to_string(),
        origin: origin(),
    })?;
    if value.is_empty() {
        return Err(SecretError::Empty {
            name: name.to_string(),
            origin: origin(),
        });
    }
    Ok(value)
}

/// Reads the file at `path` for secret `name`, after checking type, ownership and mode on the
/// open descriptor. One trailing `\n` (or `\r\n`) is dropped, as `echo pw > file` adds it.
pub(crate) async fn from_file(name: &str, path: &str) -> Result<SecretValue, SecretError> {
    let read_err = |source: std::io::Error| SecretError::FileRead {
        name: name.to_string(),
        path: path.to_string(),
        source,
    };
    // O_NONBLOCK so a FIFO at the path cannot hang the run at open; O_NOCTTY so a terminal
    // device cannot become ours. Both are harmless for a regular file.
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let mut file = tokio::fs::OpenOptions::new()
        .read(true)
        .custom_flags(i32::try_from(flags.bits()).unwrap_or(0))
        .open(path)
        .await
        .map_err(read_err)?;
    let meta = file.metadata().await.map_err(read_err)?;
    if !meta.file_type().is_file() {
        return Err(SecretError::FileNotRegular {
            name: name.to_string(),
            path: path.to_string(),
        });
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(SecretError::FilePermissions {
            name: name.to_string(),
            path: path.to_string(),
            mode,
        });
    }
    let current = rustix::process::geteuid().as_raw();
    if meta.uid() != current {
        return Err(SecretError::FileOwner {
            name: name.to_string(),
            path: path.to_string(),
            owner: meta.uid(),
            current,
        });
    }
    if meta.len() > MAX_FILE_LEN {
        return Err(SecretError::FileTooLarge {
            name: name.to_string(),
            path: path.to_string(),
            limit: MAX_FILE_LEN,
        });
    }
    // Sized up front so the buffer is not reallocated (which would leave unzeroised copies).
    let capacity = usize::try_from(meta.len()).unwrap_or(0).saturating_add(1);
    let mut buf = Zeroizing::new(Vec::with_capacity(capacity));
    (&mut file)
        .take(MAX_FILE_LEN + 1)
        .read_to_end(&mut buf)
        .await
        .map_err(read_err)?;
    if u64::try_from(buf.len()).unwrap_or(u64::MAX) > MAX_FILE_LEN {
        return Err(SecretError::FileTooLarge {
            name: name.to_string(),
            path: path.to_string(),
            limit: MAX_FILE_LEN,
        });
    }
    let len = buf.len();
    if buf.ends_with(b"\r\n") {
        buf.truncate(len.saturating_sub(2));
    } else if buf.ends_with(b"\n") {
        buf.truncate(len.saturating_sub(1));
    }
    let origin = || format!("file `{path}`");
    let value =
        SecretValue::from_utf8(std::mem::take(&mut *buf)).map_err(|_| SecretError::NotUtf8 {
            name: name.to_string(),
            origin: origin(),
        })?;
    if value.is_empty() {
        return Err(SecretError::Empty {
            name: name.to_string(),
            origin: origin(),
        });
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn write(dir: &tempfile::TempDir, name: &str, content: &[u8], mode: u32) -> String {
        let p = dir.path().join(name);
        std::fs::write(&p, content).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p.to_string_lossy().into_owned()
    }

    #[test]
    fn env_values_are_read_and_empty_or_missing_ones_refused() {
        let env = |k: &str| match k {
            "SET" => Some(OsString::from("s3cret")),
            "EMPTY" => Some(OsString::new()),
            "BAD" => Some(OsString::from_vec(vec![0xff])),
            _ => None,
        };
        assert_eq!(from_env("a", "SET", &env).unwrap().expose_str(), "s3cret");
        assert_eq!(
            from_env("a", "UNSET", &env).unwrap_err().to_string(),
            "secret `a`: environment variable `UNSET` is not set"
        );
        assert!(matches!(
            from_env("a", "EMPTY", &env),
            Err(SecretError::Empty { .. })
        ));
        assert!(matches!(
            from_env("a", "BAD", &env),
            Err(SecretError::NotUtf8 { .. })
        ));
    }

    #[tokio::test]
    async fn a_private_file_is_read_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(&dir, "pw", b"file-secret\n", 0o600);
        assert_eq!(
            from_file("f", &p).await.unwrap().expose_str(),
            "file-secret"
        );
        let p = write(&dir, "pw2", b"two\nlines\r\n", 0o400);
        assert_eq!(from_file("f", &p).await.unwrap().expose_str(), "two\nlines");
    }

    #[tokio::test]
    async fn group_or_world_access_is_refused_with_the_mode() {
        let dir = tempfile::tempdir().unwrap();
        for mode in [0o644, 0o640, 0o604, 0o610, 0o601, 0o620] {
            let p = write(&dir, "pw", b"file-secret", mode);
            let err = from_file("f", &p).await.unwrap_err();
            let msg = err.to_string();
            assert!(matches!(err, SecretError::FilePermissions { .. }), "{msg}");
            assert!(msg.contains(&format!("mode {mode:04o}")), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
            assert!(!msg.contains("file-secret"), "{msg}");
        }
    }

    #[tokio::test]
    async fn missing_empty_huge_and_non_regular_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope").to_string_lossy().into_owned();
        let err = from_file("f", &missing).await.unwrap_err().to_string();
        assert!(err.starts_with("secret `f`: cannot read file `"), "{err}");
        let p = write(&dir, "empty", b"\n", 0o600);
        assert!(matches!(
            from_file("f", &p).await,
            Err(SecretError::Empty { .. })
        ));
        let big = vec![b'x'; usize::try_from(MAX_FILE_LEN).unwrap() + 1];
        let p = write(&dir, "big", &big, 0o600);
        assert!(matches!(
            from_file("f", &p).await,
            Err(SecretError::FileTooLarge { .. })
        ));
        let d = dir.path().join("sub");
        std::fs::create_dir(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(matches!(
            from_file("f", &d.to_string_lossy()).await,
            Err(SecretError::FileNotRegular { .. })
        ));
    }
}
