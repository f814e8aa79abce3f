//! The `--web.config.file`: the Prometheus exporter-toolkit web
//! configuration (YAML), so a Pushgateway's file works unchanged.
//!
//! Understood keys:
//! - `tls_server_config`: `cert_file`/`key_file` (or inline `cert`/`key`),
//!   `client_ca_file` (or inline `client_ca`), `client_auth_type`
//!   (`NoClientCert`, `VerifyClientCertIfGiven`,
//!   `RequireAndVerifyClientCert`), `min_version`/`max_version` (`TLS12`,
//!   `TLS13`; `TLS10`/`TLS11` as a minimum mean TLS 1.2, the oldest rustls
//!   speaks), `cipher_suites` (Go names, TLS 1.2 only, as in Go),
//!   `curve_preferences` (`X25519`, `CurveP256`, `CurveP384`),
//!   `prefer_server_cipher_suites`;
//! - `http_server_config`: `http2` (ALPN `h2`), `headers` (the same five
//!   security headers exporter-toolkit allows);
//! - `basic_auth_users`: user name → bcrypt hash.
//!
//! Refused with a clear error rather than silently ignored, because
//! ignoring them would weaken what the operator asked for:
//! `client_auth_type` values that accept unverified certificates
//! (`RequestClientCert`, `RequireAnyClientCert`), `client_allowed_sans`,
//! `rate_limit`, and TLS 1.2 cipher suites or curves that rustls does not
//! implement. Relative paths are relative to the file's directory, as in
//! exporter-toolkit.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use serde::Deserialize;

use super::outbound::{parse_certs, parse_key};
use crate::config::Secret;

/// The file as written.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct WebConfigFile {
    tls_server_config: TlsServerFile,
    http_server_config: HttpServerFile,
    basic_auth_users: BTreeMap<String, Secret>,
    rate_limit: Option<serde_yaml::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TlsServerFile {
    cert: Option<String>,
    key: Option<Secret>,
    client_ca: Option<String>,
    cert_file: Option<PathBuf>,
    key_file: Option<PathBuf>,
    client_auth_type: Option<String>,
    client_ca_file: Option<PathBuf>,
    client_allowed_sans: Option<Vec<String>>,
    min_version: Option<String>,
    max_version: Option<String>,
    cipher_suites: Option<Vec<String>>,
    prefer_server_cipher_suites: Option<bool>,
    curve_preferences: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct HttpServerFile {
    http2: bool,
    headers: BTreeMap<String, String>,
}

impl Default for HttpServerFile {
    fn default() -> Self {
        Self {
            http2: true,
            headers: BTreeMap::new(),
        }
    }
}

/// A loaded, checked web configuration.
pub struct WebSettings {
    /// The TLS server configuration; `None` serves plain HTTP.
    pub tls: Option<Arc<ServerConfig>>,
    /// User name → bcrypt hash; empty means no authentication.
    pub users: HashMap<String, Secret>,
    /// Headers added to every response.
    pub response_headers: Vec<(HeaderName, HeaderValue)>,
    /// Every file this configuration was read from (the YAML file and the
    /// certificate, key and CA files); a change to any triggers a reload.
    pub files: Vec<PathBuf>,
}

impl std::fmt::Debug for WebSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut users: Vec<&String> = self.users.keys().collect();
        users.sort();
        f.debug_struct("WebSettings")
            .field("tls", &self.tls.is_some())
            .field("users", &users)
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

/// Reads and checks the web configuration at `path`. Errors name the key
/// (and the file), never a secret.
pub fn load(path: &Path) -> Result<WebSettings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("web config file {}: {e}", path.display()))?;
    let file: WebConfigFile = if text.trim().is_empty() {
        WebConfigFile::default()
    } else {
        serde_yaml::from_str(&text)
            .map_err(|e| format!("web config file {}: {e}", path.display()))?
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    build(file, dir)
        .map(|mut settings| {
            settings.files.insert(0, path.to_path_buf());
            settings
        })
        .map_err(|e| format!("web config file {}: {e}", path.display()))
}

fn build(file: WebConfigFile, dir: &Path) -> Result<WebSettings, String> {
    if file.rate_limit.is_some() {
        return Err("rate_limit is not supported by pushrelay; remove it".into());
    }
    let mut users = HashMap::new();
    for (name, hash) in file.basic_auth_users {
        hash.expose().parse::<bcrypt::HashParts>().map_err(|_| {
            format!("basic_auth_users: the password of user {name:?} is not a bcrypt hash")
        })?;
        users.insert(name, hash);
    }
    let response_headers = response_headers(&file.http_server_config.headers)?;
    let mut files = Vec::new();
    let tls = tls_server_config(
        file.tls_server_config,
        dir,
        file.http_server_config.http2,
        &mut files,
    )?
    .map(Arc::new);
    Ok(WebSettings {
        tls,
        users,
        response_headers,
        files,
    })
}

/// The security headers exporter-toolkit lets a web config add, with their
/// allowed values (empty: any value).
const ALLOWED_RESPONSE_HEADERS: &[(&str, &[&str])] = &[
    ("Strict-Transport-Security", &[]),
    ("X-Content-Type-Options", &["nosniff"]),
    ("X-Frame-Options", &["deny", "sameorigin"]),
    ("X-XSS-Protection", &[]),
    ("Content-Security-Policy", &[]),
];

fn response_headers(
    configured: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, HeaderValue)>, String> {
    let mut headers = Vec::new();
    for (name, value) in configured {
        let Some((canonical, allowed)) = ALLOWED_RESPONSE_HEADERS
            .iter()
            .find(|(n, _)| *n == name.as_str())
        else {
            return Err(format!(
                "http_server_config.headers: HTTP header {name:?} can not be configured"
            ));
        };
        if !allowed.is_empty() && !allowed.contains(&value.as_str()) {
            return Err(format!(
                "http_server_config.headers: invalid value for {name}: expected one of {allowed:?}, got {value:?}"
            ));
        }
        if value.is_empty() {
            continue;
        }
        let value = HeaderValue::from_str(value).map_err(|_| {
            format!("http_server_config.headers: the value of {name} is not a valid header value")
        })?;
        headers.push((HeaderName::from_static(lowercase(canonical)), value));
    }
    Ok(headers)
}

fn lowercase(name: &'static str) -> &'static str {
    match name {
        "Strict-Transport-Security" => "strict-transport-security",
        "X-Content-Type-Options" => "x-content-type-options",
        "X-Frame-Options" => "x-frame-options",
        "X-XSS-Protection" => "x-xss-protection",
        _ => "content-security-policy",
    }
}

fn non_empty<T: AsRef<str>>(value: Option<T>) -> Option<T> {
    value.filter(|v| !v.as_ref().is_empty())
}

fn non_empty_path(value: Option<PathBuf>) -> Option<PathBuf> {
    value.filter(|p| !p.as_os_str().is_empty())
}

fn tls_server_config(
    tls: TlsServerFile,
    dir: &Path,
    http2: bool,
    files: &mut Vec<PathBuf>,
) -> Result<Option<ServerConfig>, String> {
    let cert_file = non_empty_path(tls.cert_file).map(|p| dir.join(p));
    let key_file = non_empty_path(tls.key_file).map(|p| dir.join(p));
    let client_ca_file = non_empty_path(tls.client_ca_file).map(|p| dir.join(p));
    let cert = non_empty(tls.cert);
    let key = tls.key.filter(|k| !k.expose().is_empty());
    let client_ca = non_empty(tls.client_ca);
    let client_auth = non_empty(tls.client_auth_type);
    let enabled = cert_file.is_some()
        || key_file.is_some()
        || client_ca_file.is_some()
        || cert.is_some()
        || key.is_some()
        || client_ca.is_some()
        || client_auth.is_some();
    if !enabled {
        return Ok(None);
    }
    let chain = match (&cert_file, &cert) {
        (Some(_), Some(_)) => {
            return Err("tls_server_config: set cert or cert_file, not both".into());
        }
        (Some(path), None) => {
            files.push(path.clone());
            read_file(path, "tls_server_config.cert_file").and_then(|pem| {
                parse_certs(&pem)
                    .map_err(|e| format!("tls_server_config.cert_file {}: {e}", path.display()))
            })?
        }
        (None, Some(text)) => {
            parse_certs(text.as_bytes()).map_err(|e| format!("tls_server_config.cert: {e}"))?
        }
        (None, None) => return Err("tls_server_config: missing one of cert or cert_file".into()),
    };
    let private_key: PrivateKeyDer<'static> = match (&key_file, &key) {
        (Some(_), Some(_)) => return Err("tls_server_config: set key or key_file, not both".into()),
        (Some(path), None) => {
            files.push(path.clone());
            read_file(path, "tls_server_config.key_file").and_then(|pem| {
                parse_key(&pem)
                    .map_err(|e| format!("tls_server_config.key_file {}: {e}", path.display()))
            })?
        }
        (None, Some(secret)) => parse_key(secret.expose().as_bytes())
            .map_err(|e| format!("tls_server_config.key: {e}"))?,
        (None, None) => return Err("tls_server_config: missing one of key or key_file".into()),
    };
    let client_cas: Option<Vec<CertificateDer<'static>>> = match (&client_ca_file, &client_ca) {
        (Some(_), Some(_)) => {
            return Err("tls_server_config: set client_ca or client_ca_file, not both".into());
        }
        (Some(path), None) => {
            files.push(path.clone());
            Some(
                read_file(path, "tls_server_config.client_ca_file").and_then(|pem| {
                    parse_certs(&pem).map_err(|e| {
                        format!("tls_server_config.client_ca_file {}: {e}", path.display())
                    })
                })?,
            )
        }
        (None, Some(text)) => Some(
            parse_certs(text.as_bytes())
                .map_err(|e| format!("tls_server_config.client_ca: {e}"))?,
        ),
        (None, None) => None,
    };
    if tls.client_allowed_sans.is_some() {
        return Err("tls_server_config.client_allowed_sans is not supported by pushrelay".into());
    }

    let provider = Arc::new(crypto_provider(
        tls.cipher_suites.as_deref(),
        tls.curve_preferences.as_deref(),
    )?);
    let versions = protocol_versions(tls.min_version.as_deref(), tls.max_version.as_deref())?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| format!("tls_server_config: {e}"))?;

    let verifier = |roots: Vec<CertificateDer<'static>>, optional: bool| {
        let mut store = RootCertStore::empty();
        for cert in roots {
            store
                .add(cert)
                .map_err(|e| format!("tls_server_config: unusable client CA certificate: {e}"))?;
        }
        let builder =
            WebPkiClientVerifier::builder_with_provider(Arc::new(store), provider.clone());
        let builder = if optional {
            builder.allow_unauthenticated()
        } else {
            builder
        };
        builder
            .build()
            .map_err(|e| format!("tls_server_config: client CA: {e}"))
    };
    let builder = match client_auth.as_deref().unwrap_or("NoClientCert") {
        "NoClientCert" => {
            if client_cas.is_some() {
                return Err(
                    "tls_server_config: client CA's have been configured without a client_auth_type \
                     (use RequireAndVerifyClientCert or VerifyClientCertIfGiven)"
                        .into(),
                );
            }
            builder.with_no_client_auth()
        }
        mode @ ("RequireAndVerifyClientCert" | "VerifyClientCertIfGiven") => {
            let Some(roots) = client_cas else {
                return Err(format!(
                    "tls_server_config: client_auth_type {mode} needs client_ca_file (or client_ca)"
                ));
            };
            builder.with_client_cert_verifier(verifier(roots, mode == "VerifyClientCertIfGiven")?)
        }
        mode @ ("RequestClientCert" | "RequireAnyClientCert" | "RequireClientCert") => {
            return Err(format!(
                "tls_server_config.client_auth_type {mode} accepts unverified client certificates and is \
                 not supported; use RequireAndVerifyClientCert or VerifyClientCertIfGiven with client_ca_file"
            ));
        }
        other => {
            return Err(format!(
                "tls_server_config: invalid client_auth_type {other:?}"
            ));
        }
    };
    let mut config = builder.with_single_cert(chain, private_key).map_err(|e| {
        format!("tls_server_config: the certificate and key do not match or cannot be used: {e}")
    })?;
    config.ignore_client_order = tls.prefer_server_cipher_suites.unwrap_or(true);
    config.alpn_protocols = if http2 {
        vec![b"h2".to_vec(), b"http/1.1".to_vec()]
    } else {
        vec![b"http/1.1".to_vec()]
    };
    Ok(Some(config))
}

fn read_file(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| format!("{key} {}: {e}", path.display()))
}

/// rustls' ring provider restricted to the configured TLS 1.2 cipher suites
/// and key-exchange curves. TLS 1.3 suites are always kept: Go does not let
/// them be configured either.
fn crypto_provider(
    cipher_suites: Option<&[String]>,
    curves: Option<&[String]>,
) -> Result<CryptoProvider, String> {
    let mut provider = rustls::crypto::ring::default_provider();
    if let Some(names) = cipher_suites.filter(|n| !n.is_empty()) {
        let all = provider.cipher_suites.clone();
        let mut chosen: Vec<_> = all
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS13)
            .copied()
            .collect();
        for name in names {
            let suite = all
                .iter()
                .find(|s| {
                    s.version() == &rustls::version::TLS12 && format!("{:?}", s.suite()) == *name
                })
                .ok_or_else(|| {
                    let known: Vec<String> = all
                        .iter()
                        .filter(|s| s.version() == &rustls::version::TLS12)
                        .map(|s| format!("{:?}", s.suite()))
                        .collect();
                    format!(
                        "tls_server_config.cipher_suites: {name:?} is not supported; supported: {}",
                        known.join(", ")
                    )
                })?;
            chosen.push(*suite);
        }
        provider.cipher_suites = chosen;
    }
    if let Some(names) = curves.filter(|n| !n.is_empty()) {
        let all = provider.kx_groups.clone();
        let mut chosen = Vec::new();
        for name in names {
            let wanted = match name.as_str() {
                "X25519" => rustls::NamedGroup::X25519,
                "CurveP256" => rustls::NamedGroup::secp256r1,
                "CurveP384" => rustls::NamedGroup::secp384r1,
                other => {
                    return Err(format!(
                        "tls_server_config.curve_preferences: {other:?} is not supported; supported: X25519, CurveP256, CurveP384"
                    ));
                }
            };
            if let Some(group) = all.iter().find(|g| g.name() == wanted) {
                chosen.push(*group);
            }
        }
        provider.kx_groups = chosen;
    }
    Ok(provider)
}

fn protocol_versions(
    min: Option<&str>,
    max: Option<&str>,
) -> Result<Vec<&'static SupportedProtocolVersion>, String> {
    let rank = |key: &str, value: Option<&str>, default: u8| match value.filter(|v| !v.is_empty()) {
        None => Ok(default),
        Some("TLS10") => Ok(10),
        Some("TLS11") => Ok(11),
        Some("TLS12") => Ok(12),
        Some("TLS13") => Ok(13),
        Some(other) => Err(format!(
            "tls_server_config.{key}: unknown TLS version {other:?} (TLS10, TLS11, TLS12, TLS13)"
        )),
    };
    let min = rank("min_version", min, 12)?;
    let max = rank("max_version", max, 13)?;
    let mut versions = Vec::new();
    if min <= 12 && max >= 12 {
        versions.push(&rustls::version::TLS12);
    }
    if max >= 13 {
        versions.push(&rustls::version::TLS13);
    }
    if versions.is_empty() || min > max {
        return Err(
            "tls_server_config: min_version/max_version allow no TLS version pushrelay speaks (TLS 1.2 and 1.3)"
                .into(),
            );
    }
    Ok(versions)
}

#[cfg(test)]
mod tests;
