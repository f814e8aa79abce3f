//! Inbound security against the real binary: `--web.config.file` with TLS,
//! basic auth, client certificates, the health exemption, and certificate
//! reload.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{Relay, TestCa, basic, https_client, send, write};
use pushrelay::config::TlsClientConfig;

const PUSH_BODY: &str = "# TYPE some_metric counter\nsome_metric 1\n";

/// A web config with a server certificate for 127.0.0.1 and `extra` YAML.
fn tls_setup(dir: &std::path::Path, ca: &TestCa, extra: &str) -> std::path::PathBuf {
    let server = ca.server(&["127.0.0.1", "localhost"]);
    write(dir, "server.crt", &server.cert_pem);
    write(dir, "server.key", &server.key_pem);
    write(
        dir,
        "web.yml",
        &format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{extra}"),
    )
}

fn trusting(dir: &std::path::Path, ca: &TestCa) -> TlsClientConfig {
    TlsClientConfig {
        ca_file: Some(write(dir, "ca.crt", &ca.pem())),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn https_with_basic_auth_admits_only_the_right_password() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("inbound-ca");
    let hash = bcrypt::hash("s3cret-pass", 10).unwrap();
    let web = tls_setup(
        dir.path(),
        &ca,
        &format!("basic_auth_users:\n  alice: '{hash}'\n"),
    );
    let relay = Relay::start(&[&format!("--web.config.file={}", web.display())]).await;
    let client = https_client(&trusting(dir.path(), &ca));
    let base = format!("https://{}", relay.addr);
    let good = basic("alice", "s3cret-pass");

    let ok = send(
        &client,
        "GET",
        &format!("{base}/-/healthy"),
        &[("authorization", &good)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body, "OK");
    assert_eq!(
        ok.version,
        http::Version::HTTP_2,
        "h2 is negotiated by ALPN"
    );

    let metrics = send(
        &client,
        "GET",
        &format!("{base}/metrics"),
        &[("authorization", &good)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(metrics.status, 200);

    for (what, headers) in [
        ("no credentials", vec![]),
        (
            "a wrong password",
            vec![("authorization", basic("alice", "s3cret-pasS"))],
        ),
        (
            "an unknown user",
            vec![("authorization", basic("mallory", "s3cret-pass"))],
        ),
        (
            "a bearer token",
            vec![("authorization", "Bearer s3cret-pass".to_string())],
        ),
    ] {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        for path in ["/-/healthy", "/metrics", "/metrics/job/j", "/nowhere"] {
            let denied = send(&client, "GET", &format!("{base}{path}"), &headers, "")
                .await
                .unwrap();
            assert_eq!(denied.status, 401, "{what} on {path}: {denied:?}");
            assert_eq!(denied.headers["www-authenticate"], "Basic");
            assert_eq!(denied.body, "Unauthorized\n");
        }
    }
    let denied_push = send(
        &client,
        "PUT",
        &format!("{base}/metrics/job/j"),
        &[],
        PUSH_BODY,
    )
    .await
    .unwrap();
    assert_eq!(denied_push.status, 401);

    // An authenticated push reaches the push handler: with no reachable
    // backend it is refused as unavailable, not as unauthorised.
    let push = send(
        &client,
        "DELETE",
        &format!("{base}/metrics/job/j"),
        &[("authorization", &good)],
        "",
    )
    .await
    .unwrap();
    // Past authentication: a DELETE of a group never forwarded has no stale
    // markers to send, so it is accepted at once.
    assert_eq!(push.status, 202, "{push:?}");

    // Plain HTTP on the TLS port gets nowhere.
    let plain = https_client(&TlsClientConfig::default());
    assert!(
        send(
            &plain,
            "GET",
            &format!("http://{}/-/healthy", relay.addr),
            &[],
            ""
        )
        .await
        .is_err()
            || send(
                &plain,
                "GET",
                &format!("http://{}/-/healthy", relay.addr),
                &[],
                ""
            )
            .await
            .unwrap()
            .status
                == 400
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn successful_logins_are_cached_so_repeat_requests_skip_bcrypt() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 10).unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  bob: '{hash}'\n"),
    );
    let relay = Relay::start(&[&format!("--web.config.file={}", web.display())]).await;
    let client = https_client(&TlsClientConfig::default());
    let url = format!("http://{}/-/healthy", relay.addr);
    let good = basic("bob", "pw");

    let started = Instant::now();
    bcrypt::verify("pw", &hash).unwrap();
    let one_bcrypt = started.elapsed();

    assert_eq!(
        send(&client, "GET", &url, &[("authorization", &good)], "")
            .await
            .unwrap()
            .status,
        200
    );
    const REPEATS: u32 = 20;
    let started = Instant::now();
    for _ in 0..REPEATS {
        let answer = send(&client, "GET", &url, &[("authorization", &good)], "")
            .await
            .unwrap();
        assert_eq!(answer.status, 200);
    }
    let cached = started.elapsed();
    println!("one bcrypt verify (cost 10): {one_bcrypt:?}; {REPEATS} cached requests: {cached:?}");
    assert!(
        cached < one_bcrypt * REPEATS / 2,
        "{REPEATS} authenticated requests took {cached:?}, one bcrypt takes {one_bcrypt:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn client_certificates_are_required_when_configured() {
    let dir = tempfile::tempdir().unwrap();
    let server_ca = TestCa::new("server-ca");
    let client_ca = TestCa::new("client-ca");
    write(dir.path(), "clients.crt", &client_ca.pem());
    let web = tls_setup(
        dir.path(),
        &server_ca,
        "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients.crt\n",
    );
    let relay = Relay::start(&[&format!("--web.config.file={}", web.display())]).await;
    let url = format!("https://{}/-/healthy", relay.addr);

    let no_cert = https_client(&trusting(dir.path(), &server_ca));
    let refused = send(&no_cert, "GET", &url, &[], "").await.unwrap_err();
    println!("without a client certificate: {refused}");

    let good = client_ca.client("pusher");
    let mut with_cert = trusting(dir.path(), &server_ca);
    with_cert.cert_file = Some(write(dir.path(), "client.crt", &good.cert_pem));
    with_cert.key_file = Some(write(dir.path(), "client.key", &good.key_pem));
    let answer = send(&https_client(&with_cert), "GET", &url, &[], "")
        .await
        .unwrap();
    assert_eq!(answer.status, 200);

    let stranger_ca = TestCa::new("stranger-ca");
    let bad = stranger_ca.client("intruder");
    let mut wrong_cert = trusting(dir.path(), &server_ca);
    wrong_cert.cert_file = Some(write(dir.path(), "bad.crt", &bad.cert_pem));
    wrong_cert.key_file = Some(write(dir.path(), "bad.key", &bad.key_pem));
    let refused = send(&https_client(&wrong_cert), "GET", &url, &[], "")
        .await
        .unwrap_err();
    println!("with a certificate from another CA: {refused}");

    // The refusal is the TLS handshake itself: a raw rustls client sees the
    // server's alert, before any HTTP.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from(rustls_pem_cert(
            &server_ca.pem(),
        )))
        .unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let outcome = async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"GET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
            .await?;
        let mut buf = Vec::new();
        tls.read_to_end(&mut buf).await?;
        Ok::<_, std::io::Error>(buf)
    }
    .await;
    let error = outcome
        .expect_err("the handshake must be refused")
        .to_string();
    assert!(error.contains("CertificateRequired"), "{error}");
}

fn rustls_pem_cert(pem: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .unwrap()
        .to_vec()
}

#[tokio::test(flavor = "multi_thread")]
async fn health_endpoints_can_be_exempt_from_auth() {
    let dir = tempfile::tempdir().unwrap();
    let hash = bcrypt::hash("pw", 4).unwrap();
    let web = write(
        dir.path(),
        "web.yml",
        &format!("basic_auth_users:\n  bob: '{hash}'\n"),
    );
    let relay = Relay::start(&[
        &format!("--web.config.file={}", web.display()),
        "--web.auth-exempt-health",
    ])
    .await;
    let client = https_client(&TlsClientConfig::default());
    let base = format!("http://{}", relay.addr);
    let healthy = send(&client, "GET", &format!("{base}/-/healthy"), &[], "")
        .await
        .unwrap();
    assert_eq!(healthy.status, 200);
    let ready = send(&client, "GET", &format!("{base}/-/ready"), &[], "")
        .await
        .unwrap();
    assert_ne!(ready.status, 401);
    // Only the exact paths: everything else still needs credentials.
    for path in ["/metrics", "/-/%68ealthy", "/-/healthy/", "/metrics/job/j"] {
        let denied = send(&client, "GET", &format!("{base}{path}"), &[], "")
            .await
            .unwrap();
        assert_eq!(denied.status, 401, "{path}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_reloaded_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let old_ca = TestCa::new("old-ca");
    let web = tls_setup(dir.path(), &old_ca, "");
    let relay = Relay::start(&[&format!("--web.config.file={}", web.display())]).await;
    let url = format!("https://{}/-/healthy", relay.addr);
    let old_client = https_client(&trusting(dir.path(), &old_ca));
    assert_eq!(
        send(&old_client, "GET", &url, &[], "")
            .await
            .unwrap()
            .status,
        200
    );

    let new_ca = TestCa::new("new-ca");
    let rotated = new_ca.server(&["127.0.0.1"]);
    write(dir.path(), "server.crt", &rotated.cert_pem);
    write(dir.path(), "server.key", &rotated.key_pem);
    let new_tls = TlsClientConfig {
        ca_file: Some(write(dir.path(), "new-ca.crt", &new_ca.pem())),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A fresh client each time: a pooled connection keeps the old cert.
        match send(&https_client(&new_tls), "GET", &url, &[], "").await {
            Ok(answer) => {
                assert_eq!(answer.status, 200);
                break;
            }
            Err(error) => {
                assert!(
                    Instant::now() < deadline,
                    "rotated certificate never served: {error}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let stale = send(
        &https_client(&trusting(dir.path(), &old_ca)),
        "GET",
        &url,
        &[],
        "",
    )
    .await;
    assert!(stale.is_err(), "the old certificate is still served");
}
