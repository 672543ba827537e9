//! Content-addressed blobs: the bytes of screenshots, page snapshots and the like, named by their
//! SHA-256 and stored on the filesystem as `blobs/ab/cdef…` (first two hex characters as a
//! subdirectory, the other 62 as the file name).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::chain::BlobCheck;
use crate::error::AuditError;

/// The name of a blob: the lowercase hex SHA-256 of its content.
///
/// The only ways to get one are [`BlobRef::of`] (hash some bytes) and [`BlobRef::parse`] (which
/// accepts exactly 64 lowercase hex characters), so a `BlobRef` can always be turned into a path
/// under the blob directory without any risk of `..`, separators or other injection.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BlobRef(String);

impl BlobRef {
    /// The reference for `bytes` (does not store anything).
    pub fn of(bytes: &[u8]) -> BlobRef {
        BlobRef(hex::encode(Sha256::digest(bytes)))
    }

    /// Accepts exactly 64 lowercase hex characters.
    pub fn parse(s: &str) -> Result<BlobRef, AuditError> {
        BlobRef::try_from(s.to_owned())
    }

    /// The full hex hash.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The first 12 hex characters followed by `…`, for messages.
    pub fn short(&self) -> String {
        format!("{}…", self.0.get(..12).unwrap_or(&self.0))
    }

    /// (subdirectory, file name) for the on-disk layout.
    fn split(&self) -> (&str, &str) {
        // Always 64 ASCII characters, so splitting at 2 is on a char boundary.
        self.0.split_at(2)
    }
}

impl fmt::Display for BlobRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for BlobRef {
    type Err = AuditError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BlobRef::parse(s)
    }
}

impl TryFrom<String> for BlobRef {
    type Error = AuditError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if is_sha256_hex(&s) {
            Ok(BlobRef(s))
        } else {
            Err(AuditError::InvalidInput(
                "a blob reference must be 64 lowercase hex characters",
            ))
        }
    }
}

impl From<BlobRef> for String {
    fn from(b: BlobRef) -> String {
        b.0
    }
}

impl AsRef<str> for BlobRef {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// True for exactly 64 lowercase hex characters.
pub(crate) fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A directory of content-addressed blobs. Backend-independent of the event store; a later S3
/// implementation replaces this, not the chain logic.
#[derive(Debug, Clone)]
pub(crate) struct BlobDir {
    root: PathBuf,
}

/// Makes temp-file names unique within the process (the pid makes them unique across processes).
static TMP_COUNTER: AtomicU64 = AtomicU64::new(0);

impl BlobDir {
    /// Uses (and creates if needed) `root`.
    pub(crate) fn open(root: PathBuf) -> Result<BlobDir, AuditError> {
        fs::create_dir_all(&root)
            .map_err(|e| AuditError::io("creating blob directory", &root, e))?;
        Ok(BlobDir { root })
    }

    pub(crate) fn path_of(&self, blob: &BlobRef) -> PathBuf {
        let (dir, file) = blob.split();
        self.root.join(dir).join(file)
    }

    /// Stores `bytes` durably and returns their reference. An existing blob is not rewritten.
    ///
    /// The content goes to a temp file in the final directory, is fsynced, then renamed into
    /// place, and the directory is fsynced, so a crash leaves either no blob or the whole blob.
    pub(crate) fn put(&self, bytes: &[u8]) -> Result<BlobRef, AuditError> {
        let blob = BlobRef::of(bytes);
        let (sub, file) = blob.split();
        let dir = self.root.join(sub);
        let path = dir.join(file);
        match fs::symlink_metadata(&path) {
            Ok(_) => return Ok(blob),
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(AuditError::io("checking blob", &path, e)),
        }

        let new_dir = match fs::create_dir(&dir) {
            Ok(()) => true,
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) => return Err(AuditError::io("creating blob directory", &dir, e)),
        };
        if new_dir {
            sync_dir(&self.root)?;
        }

        let tmp = dir.join(format!(
            ".tmp-{}-{}-{file}",
            std::process::id(),
            TMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = write_synced(&tmp, bytes).and_then(|()| {
            fs::rename(&tmp, &path).map_err(|e| AuditError::io("renaming blob into", &path, e))
        });
        if let Err(e) = written {
            // Best effort: the temp file is garbage either way, and the original error matters.
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
        sync_dir(&dir)?;
        Ok(blob)
    }

    /// Reads a blob and checks its content against its name.
    pub(crate) fn get(&self, blob: &BlobRef) -> Result<Vec<u8>, AuditError> {
        let path = self.path_of(blob);
        let bytes = match fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(AuditError::UnknownBlob(blob.to_string()))
            }
            Err(e) => return Err(AuditError::io("reading blob", &path, e)),
        };
        if BlobRef::of(&bytes) != *blob {
            return Err(AuditError::Corrupt(format!(
                "blob {blob} content does not match its hash"
            )));
        }
        Ok(bytes)
    }

    /// True if a blob file exists (does not check its content).
    pub(crate) fn exists(&self, blob: &BlobRef) -> Result<bool, AuditError> {
        let path = self.path_of(blob);
        match fs::metadata(&path) {
            Ok(m) => Ok(m.is_file()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(AuditError::io("checking blob", &path, e)),
        }
    }

    /// Hashes a blob's content in chunks (blobs can be large) and compares it with its name.
    pub(crate) fn check(&self, blob: &BlobRef) -> BlobCheck {
        let path = self.path_of(blob);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == ErrorKind::NotFound => return BlobCheck::Missing,
            Err(e) => return BlobCheck::Unreadable(e.kind().to_string()),
        };
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => hasher.update(buf.get(..n).unwrap_or_default()),
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => return BlobCheck::Unreadable(e.kind().to_string()),
            }
        }
        if hex::encode(hasher.finalize()) == blob.as_str() {
            BlobCheck::Intact
        } else {
            BlobCheck::Altered
        }
    }
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), AuditError> {
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| AuditError::io("creating blob temp file", path, e))?;
    f.write_all(bytes)
        .map_err(|e| AuditError::io("writing blob temp file", path, e))?;
    f.sync_all()
        .map_err(|e| AuditError::io("syncing blob temp file", path, e))
}

/// Makes a directory's entries (a rename, a new subdirectory) durable.
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| AuditError::io("syncing directory", dir, e))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::indexing_slicing)]
    use super::*;

    #[test]
    fn blob_ref_accepts_only_sha256_hex() {
        let good = "a".repeat(64);
        assert!(BlobRef::parse(&good).is_ok());
        assert!(BlobRef::parse(&"A".repeat(64)).is_err());
        assert!(BlobRef::parse(&"a".repeat(63)).is_err());
        assert!(BlobRef::parse(&"a".repeat(65)).is_err());
        assert!(BlobRef::parse(&format!("../{}", "a".repeat(61))).is_err());
        assert!(BlobRef::parse(&format!("{}/", "a".repeat(63))).is_err());
        assert!(BlobRef::parse("").is_err());
        // Multi-byte characters must not sneak past a byte-length check.
        assert!(BlobRef::parse(&format!("é{}", "a".repeat(62))).is_err());
        assert!(serde_json::from_str::<BlobRef>("\"../../etc/passwd\"").is_err());
        let r: BlobRef = serde_json::from_str(&format!("\"{good}\"")).unwrap();
        assert_eq!(r.as_str(), good);
    }

    #[test]
    fn of_matches_known_sha256() {
        assert_eq!(
            BlobRef::of(b"abc").as_str(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(BlobRef::of(b"abc").short(), "ba7816bf8f01…");
    }

    #[test]
    fn put_get_check_roundtrip_and_layout() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = BlobDir::open(tmp.path().join("blobs")).unwrap();
        let r = dir.put(b"hello").unwrap();
        let path = tmp
            .path()
            .join("blobs")
            .join(&r.as_str()[..2])
            .join(&r.as_str()[2..]);
        assert!(path.is_file());
        assert_eq!(dir.get(&r).unwrap(), b"hello");
        assert_eq!(dir.check(&r), BlobCheck::Intact);
        assert!(dir.exists(&r).unwrap());
        // Idempotent, and no temp files left behind.
        assert_eq!(dir.put(b"hello").unwrap(), r);
        let entries: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert_eq!(entries.len(), 1);

        fs::write(&path, b"jello").unwrap();
        assert_eq!(dir.check(&r), BlobCheck::Altered);
        assert!(matches!(dir.get(&r), Err(AuditError::Corrupt(_))));
        // An existing blob is not rewritten, even if damaged; verify is what reports it.
        dir.put(b"hello").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"jello");

        fs::remove_file(&path).unwrap();
        assert_eq!(dir.check(&r), BlobCheck::Missing);
        assert!(matches!(dir.get(&r), Err(AuditError::UnknownBlob(_))));
        assert!(!dir.exists(&r).unwrap());
    }

    #[test]
    fn empty_blob_is_fine() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = BlobDir::open(tmp.path().join("blobs")).unwrap();
        let r = dir.put(b"").unwrap();
        assert_eq!(dir.get(&r).unwrap(), b"");
        assert_eq!(dir.check(&r), BlobCheck::Intact);
    }
}
