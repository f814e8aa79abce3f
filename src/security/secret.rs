//! [`SecretFile`]: the configured way to give pushrelay a secret. The
//! configuration keeps the file's path, and the contents are read when
//! needed and re-read whenever the file changes (so a rotated token is picked
//! up without a restart). As Prometheus does, one trailing newline is
//! trimmed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::config::Secret;

/// A file holding one secret (a password or a bearer token), read on demand
/// and re-read when its modification time or size changes.
pub struct SecretFile {
    path: PathBuf,
    cached: Mutex<Option<Cached>>,
}

struct Cached {
    modified: Option<SystemTime>,
    len: u64,
    value: Secret,
}

impl fmt::Debug for SecretFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretFile")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl SecretFile {
    /// A secret file at `path`; it is read at once so that a missing or
    /// unreadable file is an error at start, not at the first request.
    pub fn open(path: &Path) -> Result<Self, String> {
        let file = Self {
            path: path.to_path_buf(),
            cached: Mutex::new(None),
        };
        file.read()?;
        Ok(file)
    }

    /// The file's path (never its contents).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current secret: the cached value while the file is unchanged,
    /// otherwise the file read again. One trailing `\n` (or `\r\n`) is
    /// trimmed.
    pub fn read(&self) -> Result<Secret, String> {
        let describe = |e: std::io::Error| format!("reading {}: {e}", self.path.display());
        let meta = std::fs::metadata(&self.path).map_err(describe)?;
        let modified = meta.modified().ok();
        let len = meta.len();
        let mut cached = self
            .cached
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(c) = cached.as_ref()
            && c.modified == modified
            && c.len == len
            && modified.is_some()
        {
            return Ok(c.value.clone());
        }
        let text = std::fs::read_to_string(&self.path).map_err(describe)?;
        let trimmed = text
            .strip_suffix('\n')
            .map(|t| t.strip_suffix('\r').unwrap_or(t))
            .unwrap_or(&text);
        let value = Secret::new(trimmed);
        *cached = Some(Cached {
            modified,
            len,
            value: value.clone(),
        });
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_files_trim_one_newline_and_follow_changes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "first\n").unwrap();
        let file = SecretFile::open(&path).unwrap();
        assert_eq!(file.read().unwrap().expose(), "first");
        std::fs::write(&path, "second-longer\r\n").unwrap();
        assert_eq!(file.read().unwrap().expose(), "second-longer");
        std::fs::write(&path, "two\n\n").unwrap();
        assert_eq!(file.read().unwrap().expose(), "two\n");
        assert!(!format!("{file:?}").contains("two"));
    }

    #[test]
    fn a_missing_secret_file_is_an_error_naming_the_path() {
        let err = SecretFile::open(Path::new("/nonexistent/pushrelay-token")).unwrap_err();
        assert!(err.contains("pushrelay-token"), "{err}");
    }
}
