//! Outbound security building blocks against an in-process TLS receiver
//! (hyper + tokio-rustls with its own rcgen CA): the connector's trust,
//! server-name override, client certificates and insecure mode; the
//! credentials and extra headers as the backend receives them.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use common::tls::{TestCa, https_client, send, tls_server_config, write};
use http::HeaderMap;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use pushrelay::config::{BasicAuthConfig, ExtraHeaders, Secret, TlsClientConfig};
use pushrelay::config::{Cli, Config};
use pushrelay::security::outbound::Credentials;

/// A TLS remote_write receiver that records the headers of each request.
struct Receiver {
    addr: SocketAddr,
    ca: TestCa,
    seen: Arc<Mutex<Vec<HeaderMap>>>,
}

impl Receiver {
    /// Serves a certificate for `names`; with `client_ca`, client
    /// certificates from that CA are required.
    async fn start(names: &[&str], client_ca: Option<&TestCa>) -> Self {
        let ca = TestCa::new("receiver-ca");
        let config = tls_server_config(&ca, names, client_ca);
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let recorded = recorded.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            recorded.lock().unwrap().push(request.headers().clone());
                            let version = format!("{:?}", request.version());
                            async move {
                                Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                                    Bytes::from(version),
                                )))
                            }
                        });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Self { addr, ca, seen }
    }

    fn url(&self, host: &str) -> String {
        format!("https://{host}:{}/api/v1/write", self.addr.port())
    }

    fn ca_file(&self, dir: &Path) -> TlsClientConfig {
        TlsClientConfig {
            ca_file: Some(write(dir, "receiver-ca.crt", &self.ca.pem())),
            ..Default::default()
        }
    }

    fn last_headers(&self) -> HeaderMap {
        self.seen.lock().unwrap().last().cloned().unwrap()
    }
}

#[tokio::test]
async fn the_ca_file_is_trusted_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["127.0.0.1"], None).await;
    let url = receiver.url("127.0.0.1");

    let trusted = https_client(&receiver.ca_file(dir.path()));
    let answer = send(&trusted, "POST", &url, &[], "x").await.unwrap();
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, "HTTP/2.0", "h2 is negotiated by ALPN");

    // System roots only: the receiver's private CA is unknown.
    let error = send(
        &https_client(&TlsClientConfig::default()),
        "POST",
        &url,
        &[],
        "x",
    )
    .await
    .unwrap_err();
    assert!(error.contains("invalid peer certificate"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");

    // Another CA file: still refused.
    let other = TestCa::new("other");
    let wrong = TlsClientConfig {
        ca_file: Some(write(dir.path(), "other.crt", &other.pem())),
        ..Default::default()
    };
    let error = send(&https_client(&wrong), "POST", &url, &[], "x")
        .await
        .unwrap_err();
    assert!(error.contains("UnknownIssuer"), "{error}");
}

#[tokio::test]
async fn server_name_overrides_the_url_host() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["backend.internal"], None).await;
    let url = receiver.url("127.0.0.1");

    let error = send(
        &https_client(&receiver.ca_file(dir.path())),
        "POST",
        &url,
        &[],
        "x",
    )
    .await
    .unwrap_err();
    assert!(error.contains("not valid for name"), "{error}");

    let mut tls = receiver.ca_file(dir.path());
    tls.server_name = Some("backend.internal".into());
    let answer = send(&https_client(&tls), "POST", &url, &[], "x")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn client_certificates_are_presented_for_mtls() {
    let dir = tempfile::tempdir().unwrap();
    let client_ca = TestCa::new("client-ca");
    let receiver = Receiver::start(&["127.0.0.1"], Some(&client_ca)).await;
    let url = receiver.url("127.0.0.1");

    let without = send(
        &https_client(&receiver.ca_file(dir.path())),
        "POST",
        &url,
        &[],
        "x",
    )
    .await;
    assert!(without.is_err(), "{without:?}");

    let leaf = client_ca.client("pushrelay");
    let mut tls = receiver.ca_file(dir.path());
    tls.cert_file = Some(write(dir.path(), "client.crt", &leaf.cert_pem));
    tls.key_file = Some(write(dir.path(), "client.key", &leaf.key_pem));
    let answer = send(&https_client(&tls), "POST", &url, &[], "x")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_certificate() {
    let receiver = Receiver::start(&["elsewhere.example"], None).await;
    let tls = TlsClientConfig {
        insecure_skip_verify: true,
        ..Default::default()
    };
    let answer = send(
        &https_client(&tls),
        "POST",
        &receiver.url("127.0.0.1"),
        &[],
        "x",
    )
    .await
    .unwrap();
    assert_eq!(answer.status, 200);
}

#[test]
fn unusable_tls_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
    let tls = TlsClientConfig {
        ca_file: Some(garbage.clone()),
        ..Default::default()
    };
    let error = pushrelay::security::outbound::https_connector(&tls, true)
        .err()
        .unwrap();
    assert_eq!(error.key, "remote_write.tls.ca_file", "{error}");
    assert!(error.problem.contains("garbage.pem"), "{error}");
    let tls = TlsClientConfig {
        ca_file: Some(dir.path().join("missing.pem")),
        ..Default::default()
    };
    let error = pushrelay::security::outbound::https_connector(&tls, true)
        .err()
        .unwrap();
    assert_eq!(error.key, "remote_write.tls.ca_file", "{error}");
    assert!(error.problem.contains("missing.pem"), "{error}");
}

/// Applies `credentials` to a request sent through the receiver and returns
/// the headers it got.
async fn received_with(receiver: &Receiver, dir: &Path, credentials: &Credentials) -> HeaderMap {
    let mut headers = HeaderMap::new();
    credentials.apply(&mut headers).unwrap();
    let pairs: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect();
    let pairs: Vec<(&str, &str)> = pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let client = https_client(&receiver.ca_file(dir));
    let answer = send(&client, "POST", &receiver.url("127.0.0.1"), &pairs, "x")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);
    receiver.last_headers()
}

#[tokio::test]
async fn basic_auth_reads_the_password_file_without_its_newline() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["127.0.0.1"], None).await;
    let password_file = write(dir.path(), "password", "open sesame\n");
    let basic = BasicAuthConfig {
        username: "relay".into(),
        password_file: Some(password_file),
    };
    let credentials = Credentials::new(Some(&basic), None, &ExtraHeaders::default()).unwrap();
    let got = received_with(&receiver, dir.path(), &credentials).await;
    // base64("relay:open sesame")
    assert_eq!(got["authorization"], "Basic cmVsYXk6b3BlbiBzZXNhbWU=");
    assert!(!format!("{credentials:?}").contains("open sesame"));
}

#[tokio::test]
async fn the_bearer_token_is_re_read_when_its_file_changes() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["127.0.0.1"], None).await;
    let token_file = write(dir.path(), "token", "token-one\n");
    let credentials = Credentials::new(None, Some(&token_file), &ExtraHeaders::default()).unwrap();
    let got = received_with(&receiver, dir.path(), &credentials).await;
    assert_eq!(got["authorization"], "Bearer token-one");

    write(dir.path(), "token", "token-two-rotated\n");
    let got = received_with(&receiver, dir.path(), &credentials).await;
    assert_eq!(got["authorization"], "Bearer token-two-rotated");

    std::fs::remove_file(&token_file).unwrap();
    let error = credentials.apply(&mut HeaderMap::new()).unwrap_err();
    assert!(
        error.contains("token") && !error.contains("rotated"),
        "{error}"
    );
}

#[tokio::test]
async fn extra_headers_are_sent_and_cannot_replace_reserved_ones() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&["127.0.0.1"], None).await;
    let headers = ExtraHeaders(vec![
        ("X-Api-Key".into(), Secret::new("k-123")),
        ("X-Team".into(), Secret::new("blue")),
    ]);
    let credentials = Credentials::new(None, None, &headers).unwrap();
    let got = received_with(&receiver, dir.path(), &credentials).await;
    assert_eq!(got["x-api-key"], "k-123");
    assert_eq!(got["x-team"], "blue");
    assert!(got.get("authorization").is_none());

    for reserved in [
        "Content-Encoding",
        "Content-Type",
        "X-Prometheus-Remote-Write-Version",
        "User-Agent",
        "Authorization",
        "X-Scope-OrgID",
    ] {
        let headers = ExtraHeaders(vec![(reserved.into(), Secret::new("v"))]);
        let error = Credentials::new(None, None, &headers).unwrap_err();
        assert_eq!(error.key, "remote_write.headers", "{error}");
        assert!(error.problem.contains(reserved), "{reserved}: {error}");
    }
}

#[test]
fn reserved_headers_are_refused_when_the_configuration_loads() {
    use clap::Parser;
    let cli = Cli::try_parse_from([
        "pushrelay",
        "--remote-write.url=http://127.0.0.1:9/api/v1/write",
        "--remote-write.header=X-Fine: yes",
        "--remote-write.header=Content-Type: text/plain",
    ])
    .unwrap();
    let error = Config::load_checked(&cli, pushrelay::security::check)
        .unwrap_err()
        .to_string();
    assert!(error.contains("remote_write.headers"), "{error}");
    assert!(error.contains("Content-Type"), "{error}");
}

#[test]
fn every_security_flag_sets_its_configuration_key() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("flags-ca");
    let leaf = ca.client("relay");
    let ca_file = write(dir.path(), "ca.crt", &ca.pem());
    let cert = write(dir.path(), "c.crt", &leaf.cert_pem);
    let key = write(dir.path(), "c.key", &leaf.key_pem);
    let password = write(dir.path(), "pw", "x\n");
    let cli = Cli::try_parse_from([
        "pushrelay".to_string(),
        "--remote-write.url=https://backend:9090/api/v1/write".into(),
        format!("--remote-write.tls.ca-file={}", ca_file.display()),
        format!("--remote-write.tls.cert-file={}", cert.display()),
        format!("--remote-write.tls.key-file={}", key.display()),
        "--remote-write.tls.server-name=backend.internal".into(),
        "--remote-write.tls.insecure-skip-verify".into(),
        "--remote-write.basic-auth.username=relay".into(),
        format!(
            "--remote-write.basic-auth.password-file={}",
            password.display()
        ),
        "--remote-write.header=X-One: 1".into(),
        "--remote-write.header=X-Two:2".into(),
        "--remote-write.tenant.from-label=tenant".into(),
        "--remote-write.tenant.id=fallback".into(),
        "--remote-write.tenant.passthrough".into(),
        "--web.auth-exempt-health".into(),
    ])
    .unwrap();
    let config = Config::load(&cli).unwrap();
    let rw = &config.remote_write;
    assert_eq!(rw.tls.ca_file.as_deref(), Some(ca_file.as_path()));
    assert_eq!(rw.tls.cert_file.as_deref(), Some(cert.as_path()));
    assert_eq!(rw.tls.key_file.as_deref(), Some(key.as_path()));
    assert_eq!(rw.tls.server_name.as_deref(), Some("backend.internal"));
    assert!(rw.tls.insecure_skip_verify);
    let basic = rw.basic_auth.as_ref().unwrap();
    assert_eq!(basic.username, "relay");
    assert_eq!(basic.password_file.as_deref(), Some(password.as_path()));
    let headers: Vec<(&str, &str)> = rw
        .headers
        .0
        .iter()
        .map(|(n, v)| (n.as_str(), v.expose()))
        .collect();
    assert_eq!(headers, [("X-One", "1"), ("X-Two", "2")]);
    assert_eq!(rw.tenant.from_label.as_deref(), Some("tenant"));
    assert_eq!(rw.tenant.id.as_deref(), Some("fallback"));
    assert!(rw.tenant.passthrough);
    assert!(config.web.auth_exempt_health);
}

#[test]
fn the_tenant_section_reads_from_a_config_file() {
    use clap::Parser;
    let dir = tempfile::tempdir().unwrap();
    let file = write(
        dir.path(),
        "c.yaml",
        "remote_write:\n  url: http://m:9009/api/v1/push\n  tenant:\n    from_label: team\n    required: false\n  headers:\n    X-Env: prod\n",
    );
    let cli = Cli::try_parse_from([
        "pushrelay".to_string(),
        format!("--config={}", file.display()),
    ])
    .unwrap();
    let config = Config::load(&cli).unwrap();
    assert_eq!(
        config.remote_write.tenant.from_label.as_deref(),
        Some("team")
    );
    assert!(!config.remote_write.tenant.required);
    assert_eq!(config.remote_write.headers.0[0].1.expose(), "prod");
    let policy = pushrelay::push::tenant::TenantPolicy::new(&config.remote_write.tenant).unwrap();
    let key = pushrelay::push::GroupingKey::new([("job".to_string(), "j".to_string())]);
    assert_eq!(policy.resolve(&key, &HeaderMap::new()).unwrap(), None);
}
