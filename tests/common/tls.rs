//! TLS and authentication for the security tests: a throwaway certificate
//! authority (rcgen), pushrelay behind TLS or credentials, and an HTTPS
//! client built on pushrelay's own outbound connector.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use pushrelay::config::TlsClientConfig;
use pushrelay::security::outbound::https_connector;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{Pushrelay, Ready};

/// A certificate authority made for one test.
pub struct TestCa {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A PEM certificate and its PEM private key.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        Self { issuer }
    }

    pub fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A server certificate for these names (DNS names or IP addresses).
    pub fn server(&self, names: &[&str]) -> Leaf {
        self.leaf(names, ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate.
    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn leaf(&self, names: &[&str], usage: ExtendedKeyUsagePurpose) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        }
    }
}

/// A TLS server configuration with a certificate for `names` signed by
/// `ca`, offering h2 and HTTP/1.1 by ALPN; with `client_ca`, client
/// certificates from that CA are required.
pub fn tls_server_config(
    ca: &TestCa,
    names: &[&str],
    client_ca: Option<&TestCa>,
) -> rustls::ServerConfig {
    let leaf = ca.server(names);
    let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(client_ca) => {
            let mut roots = rustls::RootCertStore::empty();
            roots
                .add(CertificateDer::from_pem_slice(client_ca.pem().as_bytes()).unwrap())
                .unwrap();
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(chain, key).unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    config
}

/// Writes `contents` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, contents: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

/// The pushrelay binary behind TLS or authentication, where no plain
/// `GET /-/healthy` answers 200: ready as soon as it accepts connections.
pub struct Relay {
    pub addr: SocketAddr,
    relay: Pushrelay,
}

impl Relay {
    /// Starts pushrelay with `args` (plus a listen address and a backend
    /// nobody listens on) and waits until it accepts connections.
    pub async fn start(args: &[&str]) -> Self {
        let mut all = vec![
            "--remote-write.url=http://127.0.0.1:1/api/v1/write",
            "--remote-write.retry-deadline=1s",
        ];
        all.extend_from_slice(args);
        Self::start_bare(&all).await
    }

    /// Starts pushrelay with `args` and a listen address only, and waits
    /// until it accepts connections.
    pub async fn start_bare(args: &[&str]) -> Self {
        let relay = Pushrelay::start_until(Ready::Listening, args).await;
        Self {
            addr: relay.peer.addr(),
            relay,
        }
    }

    /// Stops the process (SIGKILL) and returns everything it logged.
    pub fn stop(self) -> String {
        self.relay.peer.stop()
    }

    pub fn log_text(&self) -> String {
        self.relay.peer.log()
    }
}

pub type HttpsClient = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// An HTTP/HTTPS client using pushrelay's outbound connector with `tls`.
pub fn https_client(tls: &TlsClientConfig) -> HttpsClient {
    Client::builder(TokioExecutor::new()).build(https_connector(tls, true).unwrap())
}

/// A response reduced to what the tests look at.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub version: http::Version,
    pub headers: http::HeaderMap,
    pub body: String,
}

/// Sends one request; `Err` carries the whole error chain.
pub async fn send(
    client: &HttpsClient,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Result<Answer, String> {
    let mut request = http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(20), client.request(request))
        .await
        .map_err(|_| "timed out".to_string())?
        .map_err(|e| pushrelay::security::outbound::error_chain(&e))?;
    let status = response.status().as_u16();
    let version = response.version();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .map_err(|e| pushrelay::security::outbound::error_chain(&e))?
        .to_bytes();
    Ok(Answer {
        status,
        version,
        headers,
        body: String::from_utf8_lossy(&bytes).into_owned(),
    })
}

/// `Authorization: Basic ...` for a user and password.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}
