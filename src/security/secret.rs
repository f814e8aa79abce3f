//! Secret values and secret files.
//!
//! A [`Secret`] holds a password, token or header value. Its `Debug`,
//! `Display` and `Serialize` all print `<secret>`, so a secret that reaches a
//! log line, an error message or `--check-config` output shows nothing. The
//! only way to the value is [`Secret::expose`], which makes every use
//! greppable.
//!
//! A [`SecretFile`] is the configured way to give pushrelay a secret: the
//! configuration keeps the file's path, and the contents are read when
//! needed and re-read whenever the file changes (so a rotated token is picked
//! up without a restart). As Prometheus does, one trailing newline is
//! trimmed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// What every secret prints as.
pub const REDACTED: &str = "<secret>";

/// A secret string that never prints itself.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret value itself; the one way to read it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Self)
    }
}

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
        if let Some(c) = cached.as_ref() {
            if c.modified == modified && c.len == len && modified.is_some() {
                return Ok(c.value.clone());
            }
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
    fn secrets_never_print_themselves() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret}"), REDACTED);
        assert_eq!(format!("{secret:?}"), REDACTED);
        assert_eq!(format!("{:?}", Some(&secret)), "Some(<secret>)");
        assert_eq!(
            toml::to_string(
                &[("k", &secret)]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>()
            )
            .unwrap()
            .trim(),
            "k = \"<secret>\""
        );
        assert_eq!(secret.expose(), "hunter2");
    }

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
