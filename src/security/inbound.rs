//! Inbound security: who may talk to pushrelay, enforced from the
//! `--web.config.file` (`super::webconfig`).
//!
//! [`WebSecurity`] owns the loaded file and keeps it current: at most once
//! per second (on a new connection or request) it compares the modification
//! times and sizes of the file and of the certificate, key and CA files it
//! names, and reloads when one changed, so rotated certificates and edited
//! users apply without a restart. A reload that fails is logged and the last
//! good configuration stays in force. Turning TLS on or off needs a restart
//! (the listener's protocol is fixed at start).
//!
//! Basic auth follows exporter-toolkit: bcrypt hashes (whose check is
//! constant-time), an unknown user pays the same bcrypt cost as a known one
//! so user names cannot be probed by timing, and a successful check is
//! cached under the SHA-256 of user, hash and password, so repeat pushes do
//! not pay bcrypt's ~50 ms each. bcrypt runs off the async threads and at
//! most a few at a time, so bad passwords cannot starve the server.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use http::{HeaderMap, header};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;

use super::SecurityError;
use super::webconfig::{self, WebSettings};
use crate::config::Secret;
use crate::http_response::header_str;

/// How often the files are checked for changes, at most.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Most cached successful logins; the cache is emptied when full.
const AUTH_CACHE_CAPACITY: usize = 4096;

/// The live web security configuration.
pub struct WebSecurity {
    path: PathBuf,
    current: RwLock<Arc<WebSettings>>,
    watch: Mutex<Watch>,
    tls_at_start: bool,
    verified: Mutex<HashSet<[u8; 32]>>,
    bcrypt_slots: Semaphore,
}

struct Watch {
    checked_at: Instant,
    stamps: Vec<Stamp>,
}

type Stamp = Option<(SystemTime, u64)>;

fn stamps(files: &[PathBuf]) -> Vec<Stamp> {
    files
        .iter()
        .map(|f| {
            std::fs::metadata(f)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

impl std::fmt::Debug for WebSecurity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebSecurity")
            .field("path", &self.path)
            .field("settings", &self.settings())
            .finish_non_exhaustive()
    }
}

impl WebSecurity {
    /// Loads and checks the web configuration file (`web.config_file`).
    pub fn load(path: &Path) -> Result<Self, SecurityError> {
        let settings =
            webconfig::load(path).map_err(|e| SecurityError::new("web.config_file", e))?;
        let stamps = stamps(&settings.files);
        let parallel = std::thread::available_parallelism().map_or(1, |n| n.get().div_ceil(2));
        Ok(Self {
            path: path.to_path_buf(),
            tls_at_start: settings.tls.is_some(),
            current: RwLock::new(Arc::new(settings)),
            watch: Mutex::new(Watch {
                checked_at: Instant::now(),
                stamps,
            }),
            verified: Mutex::new(HashSet::new()),
            bcrypt_slots: Semaphore::new(parallel),
        })
    }

    /// Whether the listener speaks TLS (fixed at start).
    pub fn tls_enabled(&self) -> bool {
        self.tls_at_start
    }

    /// Whether requests need basic auth (under the current configuration).
    pub fn auth_enabled(&self) -> bool {
        self.refresh();
        !self.settings().users.is_empty()
    }

    /// The current configuration.
    pub fn settings(&self) -> Arc<WebSettings> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// A TLS acceptor with the current certificates, for one new connection;
    /// `None` when TLS is off.
    pub fn tls_acceptor(&self) -> Option<TlsAcceptor> {
        self.refresh();
        self.settings().tls.clone().map(TlsAcceptor::from)
    }

    /// Reloads the configuration if one of its files changed; checks at most
    /// once per `RELOAD_CHECK_INTERVAL`.
    pub fn refresh(&self) {
        let mut watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        if watch.checked_at.elapsed() < RELOAD_CHECK_INTERVAL {
            return;
        }
        watch.checked_at = Instant::now();
        let files = self.settings().files.clone();
        let now = stamps(&files);
        if now == watch.stamps {
            return;
        }
        watch.stamps = now;
        match webconfig::load(&self.path) {
            Ok(settings) if settings.tls.is_some() != self.tls_at_start => {
                tracing::error!(
                    file = %self.path.display(),
                    "web config changed whether TLS is on; that needs a restart, keeping the previous configuration"
                );
            }
            Ok(settings) => {
                watch.stamps = stamps(&settings.files);
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(settings);
                self.verified
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clear();
                tracing::info!(file = %self.path.display(), "web config reloaded");
            }
            Err(error) => {
                tracing::error!(%error, "web config reload failed; keeping the previous configuration");
            }
        }
    }

    /// Whether a request with these headers may proceed: always when no
    /// users are configured, otherwise only with valid basic-auth
    /// credentials.
    pub async fn authorize(&self, headers: &HeaderMap) -> bool {
        self.refresh();
        let settings = self.settings();
        if settings.users.is_empty() {
            return true;
        }
        let Some((user, password)) = basic_credentials(headers) else {
            return false;
        };
        let (hash, known) = match settings.users.get(&user) {
            Some(hash) => (hash.clone(), true),
            // Check against some real hash so an unknown user costs the same.
            None => match settings.users.values().next() {
                Some(hash) => (hash.clone(), false),
                None => return false,
            },
        };
        let key = cache_key(&user, &hash, &password);
        if known && self.is_cached(&key) {
            return true;
        }
        let Ok(_slot) = self.bcrypt_slots.acquire().await else {
            return false;
        };
        let matches = tokio::task::spawn_blocking(move || {
            bcrypt::verify(password.expose(), hash.expose()).unwrap_or(false)
        })
        .await
        .unwrap_or(false);
        if !(matches && known) {
            tracing::debug!(user = %user, "basic auth failed");
            return false;
        }
        let mut verified = self.verified.lock().unwrap_or_else(|p| p.into_inner());
        if verified.len() >= AUTH_CACHE_CAPACITY {
            verified.clear();
        }
        verified.insert(key);
        true
    }

    fn is_cached(&self, key: &[u8; 32]) -> bool {
        self.verified
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(key)
    }
}

/// The user and password of a `Basic` `Authorization` header (scheme
/// case-insensitive, as Go's `Request.BasicAuth`).
fn basic_credentials(headers: &HeaderMap) -> Option<(String, Secret)> {
    let value = header_str(headers, header::AUTHORIZATION)?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), Secret::new(password)))
}

/// A digest of everything a verification depended on; the password itself
/// is never stored.
fn cache_key(user: &str, hash: &Secret, password: &Secret) -> [u8; 32] {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in [user, hash.expose(), password.expose()] {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part.as_bytes());
    }
    let mut key = [0u8; 32];
    key.copy_from_slice(context.finish().as_ref());
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn with_auth(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    fn basic(user: &str, password: &str) -> HeaderMap {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        with_auth(&format!("Basic {encoded}"))
    }

    fn security(users: &[(&str, &str)]) -> (tempfile::TempDir, WebSecurity) {
        let dir = tempfile::tempdir().unwrap();
        let mut yaml = String::from("basic_auth_users:\n");
        for (user, password) in users {
            let hash = bcrypt::hash(password, 4).unwrap();
            yaml.push_str(&format!("  {user}: '{hash}'\n"));
        }
        let path = dir.path().join("web.yml");
        std::fs::write(&path, yaml).unwrap();
        let security = WebSecurity::load(&path).unwrap();
        (dir, security)
    }

    #[test]
    fn basic_credentials_are_parsed_like_go() {
        let (user, password) = basic_credentials(&basic("alice", "pa:ss")).unwrap();
        assert_eq!(user, "alice");
        assert_eq!(password.expose(), "pa:ss");
        assert!(basic_credentials(&with_auth("bAsIc YWxpY2U6eA==")).is_some());
        assert!(basic_credentials(&with_auth("Bearer YWxpY2U6eA==")).is_none());
        assert!(basic_credentials(&with_auth("Basic !!!")).is_none());
        assert!(basic_credentials(&with_auth("Basic YWxpY2U=")).is_none());
        assert!(basic_credentials(&HeaderMap::new()).is_none());
    }

    #[tokio::test]
    async fn only_the_right_password_passes() {
        let (_dir, security) = security(&[("alice", "wonderland"), ("bob", "builder")]);
        assert!(security.authorize(&basic("alice", "wonderland")).await);
        assert!(security.authorize(&basic("bob", "builder")).await);
        assert!(!security.authorize(&basic("alice", "builder")).await);
        assert!(!security.authorize(&basic("carol", "wonderland")).await);
        assert!(!security.authorize(&HeaderMap::new()).await);
        // A cached success does not let a different password through.
        assert!(security.authorize(&basic("alice", "wonderland")).await);
        assert!(!security.authorize(&basic("alice", "wonderlanD")).await);
    }

    #[tokio::test]
    async fn no_users_means_open() {
        let (_dir, security) = security(&[]);
        assert!(security.authorize(&HeaderMap::new()).await);
    }

    #[tokio::test]
    async fn users_are_reloaded_when_the_file_changes() {
        let (dir, security) = security(&[("alice", "one")]);
        assert!(security.authorize(&basic("alice", "one")).await);
        let hash = bcrypt::hash("two", 4).unwrap();
        std::fs::write(
            dir.path().join("web.yml"),
            format!("basic_auth_users:\n  alice: '{hash}'\n"),
        )
        .unwrap();
        security.watch.lock().unwrap().checked_at -= RELOAD_CHECK_INTERVAL;
        assert!(!security.authorize(&basic("alice", "one")).await);
        assert!(security.authorize(&basic("alice", "two")).await);
        // A broken edit keeps the last good configuration.
        std::fs::write(dir.path().join("web.yml"), "basic_auth_users: [").unwrap();
        security.watch.lock().unwrap().checked_at -= RELOAD_CHECK_INTERVAL;
        assert!(security.authorize(&basic("alice", "two")).await);
    }
}
