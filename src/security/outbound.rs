//! Outbound security: how pushrelay connects and authenticates to the
//! remote_write backend, built from the settings in
//! `crate::config::backend`.
//!
//! Two building blocks for the sender:
//! - [`https_connector`] turns `remote_write.tls` into a hyper-rustls
//!   connector for hyper-util's legacy client (HTTP/1.1 and h2 by ALPN,
//!   plain `http://` still allowed): roots from a CA file or the system
//!   store, an optional client certificate (mTLS), an optional server-name
//!   override, and `insecure_skip_verify` (logged loudly).
//! - [`Credentials`] puts the configured `Authorization` (basic auth with a
//!   password file, or a bearer token file, both re-read when the file
//!   changes) and the extra headers on each request.
//!
//! The remote_write sender (`crate::forward::send`) builds its pooled
//! client on [`https_connector`] and, per request, applies
//! [`Credentials::apply`], then `TenantPolicy::apply` for the request's
//! tenant, then sets its four reserved headers last; a failed exchange is
//! reported with [`error_chain`] (which names a certificate problem, e.g.
//! `invalid peer certificate: UnknownIssuer`).
//!
//! Extra headers can never replace what the sender owns: the four
//! remote_write headers, HTTP framing headers, `Authorization` (use
//! `basic_auth`/`bearer_token_file`) and the tenant header (use
//! `remote_write.tenant`). Such configuration is refused at load.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use base64::Engine;
use http::{HeaderMap, HeaderName, HeaderValue, header};
use hyper_rustls::{FixedServerNameResolver, HttpsConnector};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::SecurityError;
use super::secret::SecretFile;
use crate::config::{
    BasicAuthConfig, DEFAULT_TENANT_HEADER, ExtraHeaders, RemoteWriteConfig, Secret,
    TlsClientConfig,
};

/// Headers the remote_write sender sets itself; configuration cannot set or
/// override them.
pub const RESERVED_HEADERS: &[&str] = &[
    "content-encoding",
    "content-type",
    "x-prometheus-remote-write-version",
    "user-agent",
    "authorization",
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "proxy-authorization",
];

/// The header map of `remote_write.headers`: names and values checked,
/// reserved headers refused; an error names the header, never its value.
pub fn extra_header_map(headers: &ExtraHeaders) -> Result<HeaderMap, SecurityError> {
    let refuse = |problem: String| SecurityError::new("remote_write.headers", problem);
    let mut map = HeaderMap::new();
    for (name, value) in &headers.0 {
        let header = HeaderName::try_from(name.as_str())
            .map_err(|_| refuse(format!("{name:?} is not a valid header name")))?;
        if RESERVED_HEADERS.contains(&header.as_str()) {
            return Err(refuse(format!(
                "header {name:?} is set by pushrelay itself and cannot be configured{}",
                match header.as_str() {
                    "authorization" =>
                        "; use remote_write.basic_auth or remote_write.bearer_token_file",
                    _ => "",
                }
            )));
        }
        if header.as_str().eq_ignore_ascii_case(DEFAULT_TENANT_HEADER) {
            return Err(refuse(format!(
                "header {name:?} carries the tenant; configure it with remote_write.tenant"
            )));
        }
        let mut value = HeaderValue::from_str(value.expose()).map_err(|_| {
            refuse(format!(
                "the value of header {name:?} is not a valid header value"
            ))
        })?;
        value.set_sensitive(true);
        map.append(header, value);
    }
    Ok(map)
}

/// Builds the connector for hyper-util's legacy client from
/// `remote_write.tls`. Works for `http://` and `https://` URLs;
/// `system_roots` as in [`client_tls_config`].
pub fn https_connector(
    tls: &TlsClientConfig,
    system_roots: bool,
) -> Result<HttpsConnector<HttpConnector>, SecurityError> {
    let config = client_tls_config(tls, system_roots)?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    let builder = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(config)
        .https_or_http();
    let builder = match &tls.server_name {
        Some(name) => {
            let name = ServerName::try_from(name.clone()).map_err(|_| {
                SecurityError::new(
                    "remote_write.tls.server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                )
            })?;
            builder.with_server_name_resolver(FixedServerNameResolver::new(name))
        }
        None => builder,
    };
    Ok(builder.enable_http1().enable_http2().wrap_connector(http))
}

/// The rustls client configuration for `remote_write.tls` (ALPN is left to
/// the connector). Without `ca_file`, `system_roots` loads the system's CA
/// certificates; a plain `http://` backend passes `false`, as it never
/// verifies a certificate and the parsed store would cost idle memory.
pub fn client_tls_config(
    tls: &TlsClientConfig,
    system_roots: bool,
) -> Result<ClientConfig, SecurityError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| SecurityError::new("remote_write.tls", format!("TLS setup: {e}")))?;
    let builder = if tls.insecure_skip_verify {
        tracing::warn!(
            "remote_write.tls.insecure_skip_verify is on: the backend's certificate is NOT verified; \
             anyone on the path can read and alter forwarded metrics and credentials"
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        builder.with_root_certificates(root_store(tls.ca_file.as_deref(), system_roots)?)
    };
    match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert, "remote_write.tls.cert_file")?;
            let key = read_key(key, "remote_write.tls.key_file")?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                SecurityError::new(
                    "remote_write.tls.cert_file",
                    format!("the certificate and remote_write.tls.key_file do not form a usable pair: {e}"),
                )
            })
        }
        (None, None) => Ok(builder.with_no_client_auth()),
        (Some(_), None) => Err(SecurityError::new(
            "remote_write.tls.cert_file",
            "is set without key_file",
        )),
        (None, Some(_)) => Err(SecurityError::new(
            "remote_write.tls.key_file",
            "is set without cert_file",
        )),
    }
}

fn root_store(ca_file: Option<&Path>, system_roots: bool) -> Result<RootCertStore, SecurityError> {
    let mut roots = RootCertStore::empty();
    match ca_file {
        Some(path) => {
            for cert in read_certs(path, "remote_write.tls.ca_file")? {
                roots.add(cert).map_err(|e| {
                    SecurityError::new(
                        "remote_write.tls.ca_file",
                        format!("{}: unusable CA certificate: {e}", path.display()),
                    )
                })?;
            }
        }
        None if !system_roots => {}
        None => {
            let native = rustls_native_certs::load_native_certs();
            for error in &native.errors {
                tracing::warn!(%error, "while loading the system's CA certificates");
            }
            let (added, ignored) = roots.add_parsable_certificates(native.certs);
            if ignored > 0 {
                tracing::warn!(ignored, "system CA certificates that could not be used");
            }
            if added == 0 {
                tracing::warn!(
                    "no system CA certificates found: https backends will fail verification; \
                     set remote_write.tls.ca_file"
                );
            }
        }
    }
    Ok(roots)
}

/// Every PEM certificate in `path`; `key` names the setting in errors.
fn read_certs(
    path: &Path,
    key: &'static str,
) -> Result<Vec<CertificateDer<'static>>, SecurityError> {
    let problem = |e: String| SecurityError::new(key, format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    parse_certs(&bytes).map_err(problem)
}

/// Every PEM certificate in `pem`; at least one.
pub(crate) fn parse_certs(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("not valid PEM: {e}"))?;
    if certs.is_empty() {
        return Err("no PEM certificate found".into());
    }
    Ok(certs)
}

/// The first PEM private key (PKCS#8, PKCS#1 or SEC1) in `path`.
fn read_key(path: &Path, key: &'static str) -> Result<PrivateKeyDer<'static>, SecurityError> {
    let problem = |e: String| SecurityError::new(key, format!("{}: {e}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| problem(e.to_string()))?;
    parse_key(&bytes).map_err(problem)
}

/// The first PEM private key in `pem`. The error never quotes the input.
pub(crate) fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls::pki_types::pem::Error::NoItemsFound => "no PEM private key found".to_string(),
        _ => "not a valid PEM private key".to_string(),
    })
}

/// `insecure_skip_verify`: trusts any certificate but still checks that the
/// peer holds its key, so the handshake itself stays sound.
#[derive(Debug)]
struct AcceptAnyServerCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The credentials and extra headers of every remote_write request.
pub struct Credentials {
    authorization: Option<Authorization>,
    extra: HeaderMap,
}

enum Authorization {
    Basic {
        username: String,
        password: Option<SecretFile>,
    },
    Bearer(SecretFile),
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.authorization {
            None => "none".to_string(),
            Some(Authorization::Basic { username, password }) => format!(
                "basic(username={username:?}, password_file={:?})",
                password.as_ref().map(SecretFile::path)
            ),
            Some(Authorization::Bearer(file)) => {
                format!("bearer(token_file={:?})", file.path())
            }
        };
        let names: Vec<&str> = self.extra.keys().map(HeaderName::as_str).collect();
        f.debug_struct("Credentials")
            .field("authorization", &auth)
            .field("extra_headers", &names)
            .finish()
    }
}

impl Credentials {
    /// Reads the configured secret files once (so a missing one fails at
    /// start) and checks the extra headers. `basic_auth` and
    /// `bearer_token_file` exclude each other.
    pub fn new(
        basic_auth: Option<&BasicAuthConfig>,
        bearer_token_file: Option<&Path>,
        headers: &ExtraHeaders,
    ) -> Result<Self, SecurityError> {
        let authorization = match (basic_auth, bearer_token_file) {
            (Some(_), Some(_)) => {
                return Err(SecurityError::new(
                    "remote_write.basic_auth",
                    "remote_write.basic_auth and remote_write.bearer_token_file exclude each other",
                ));
            }
            (Some(basic), None) => {
                let username =
                    |problem| SecurityError::new("remote_write.basic_auth.username", problem);
                if basic.username.is_empty() {
                    return Err(username("is empty"));
                }
                if basic.username.contains(':') {
                    return Err(username("cannot contain ':'"));
                }
                let password = basic
                    .password_file
                    .as_deref()
                    .map(SecretFile::open)
                    .transpose()
                    .map_err(|e| SecurityError::new("remote_write.basic_auth.password_file", e))?;
                Some(Authorization::Basic {
                    username: basic.username.clone(),
                    password,
                })
            }
            (None, Some(path)) => Some(Authorization::Bearer(
                SecretFile::open(path)
                    .map_err(|e| SecurityError::new("remote_write.bearer_token_file", e))?,
            )),
            (None, None) => None,
        };
        let extra = extra_header_map(headers)?;
        Ok(Self {
            authorization,
            extra,
        })
    }

    /// [`Credentials::new`] for the `remote_write` section.
    pub fn from_config(remote_write: &RemoteWriteConfig) -> Result<Self, SecurityError> {
        Self::new(
            remote_write.basic_auth.as_ref(),
            remote_write.bearer_token_file.as_deref(),
            &remote_write.headers,
        )
    }

    /// Adds the extra headers and `Authorization` to a request's headers.
    /// Secret files are re-read when they changed; an unreadable one is an
    /// error (naming the file, never its contents).
    pub fn apply(&self, headers: &mut HeaderMap) -> Result<(), String> {
        for name in self.extra.keys() {
            headers.remove(name);
            for value in self.extra.get_all(name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let value = match &self.authorization {
            None => return Ok(()),
            Some(Authorization::Basic { username, password }) => {
                let password = match password {
                    Some(file) => file.read()?,
                    None => Secret::default(),
                };
                let raw = format!("{username}:{}", password.expose());
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(raw)
                )
            }
            Some(Authorization::Bearer(file)) => format!("Bearer {}", file.read()?.expose()),
        };
        let mut value = HeaderValue::from_str(&value).map_err(|_| {
            "the configured credentials contain characters not allowed in a header".to_string()
        })?;
        value.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, value);
        Ok(())
    }
}

/// An error with its whole `source()` chain, e.g. `client error (Connect):
/// invalid peer certificate: UnknownIssuer`, for logs and 503 messages;
/// hyper's top-level messages alone do not say what failed.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let part = inner.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> ExtraHeaders {
        ExtraHeaders(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), Secret::new(*v)))
                .collect(),
        )
    }

    #[test]
    fn reserved_headers_are_refused_in_any_case() {
        for name in [
            "Content-Encoding",
            "content-type",
            "X-Prometheus-Remote-Write-Version",
            "USER-AGENT",
            "Authorization",
            "Host",
            "X-Scope-OrgID",
        ] {
            let err = extra_header_map(&headers(&[(name, "v")])).unwrap_err();
            assert_eq!(err.key, "remote_write.headers");
            assert!(err.problem.contains(name), "{name}: {err}");
        }
        assert!(extra_header_map(&headers(&[("bad name", "v")])).is_err());
        let err = extra_header_map(&headers(&[("X-Key", "line\nbreak")])).unwrap_err();
        assert!(!err.to_string().contains("line"), "{err}");
    }

    #[test]
    fn basic_auth_and_bearer_exclude_each_other() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("t");
        std::fs::write(&file, "x").unwrap();
        let basic = BasicAuthConfig {
            username: "u".into(),
            password_file: Some(file.clone()),
        };
        let err =
            Credentials::new(Some(&basic), Some(&file), &ExtraHeaders::default()).unwrap_err();
        assert!(err.problem.contains("exclude"), "{err}");
    }

    #[test]
    fn cert_without_key_is_refused() {
        let tls = TlsClientConfig {
            cert_file: Some("c.pem".into()),
            ..Default::default()
        };
        let err = client_tls_config(&tls, true).unwrap_err();
        assert_eq!(err.key, "remote_write.tls.cert_file");
        assert!(err.problem.contains("without key_file"), "{err}");
    }
}
