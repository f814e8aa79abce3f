//! The forwarder with its security settings wired in, against the
//! in-process remote_write receiver (plain, or HTTPS with its own rcgen CA):
//! backend verification with a CA file, credentials and tenant headers as
//! the backend receives them, tenant resolution in the push handler, and
//! requests that never mix tenants. The last tests run the real binary.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::receiver::{Fault, Received, Receiver};
use common::tls::Relay as Binary;
use common::tls::{TestCa, basic, https_client, send, tls_server_config, write};
use common::{STALE_NAN_BITS, bounded};
use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::Full;
use pushrelay::config::{BasicAuthConfig, TlsClientConfig};
use pushrelay::config::{GoDuration, PushConfig, RemoteWriteConfig};
use pushrelay::forward::Forwarder;
use pushrelay::proto::prompb::{TimeSeries, WriteRequest};
use pushrelay::push::PushOp;
use pushrelay::push::handler::{Ingest, PushFailure};
use pushrelay::sinks::Sinks;

/// A TLS receiver whose certificate (for 127.0.0.1 and localhost) is
/// signed by `ca`; it offers h2 and HTTP/1.1 by ALPN.
async fn tls_receiver(ca: &TestCa) -> Receiver {
    tls_receiver_with(ca, &["127.0.0.1", "localhost"], None).await
}

/// A TLS receiver with a certificate for `names`; with `client_ca` it
/// requires a client certificate from that CA.
async fn tls_receiver_with(ca: &TestCa, names: &[&str], client_ca: Option<&TestCa>) -> Receiver {
    Receiver::start_tls(tls_server_config(ca, names, client_ca)).await
}

fn config(url: &str) -> RemoteWriteConfig {
    RemoteWriteConfig {
        url: Some(url.to_string()),
        timeout: GoDuration(Duration::from_secs(2)),
        retry_deadline: GoDuration(Duration::from_secs(5)),
        min_backoff: GoDuration(Duration::from_millis(50)),
        max_backoff: GoDuration(Duration::from_millis(400)),
        ..RemoteWriteConfig::default()
    }
}

/// The push path as the server hands it over: the forwarder as the only
/// sink, behind the real handler (tenant resolution included).
struct Relay {
    sinks: Sinks,
    ingest: Ingest,
}

impl Relay {
    fn new(config: &RemoteWriteConfig) -> Arc<Self> {
        let forwarder = Forwarder::new(config).unwrap();
        let ingest = Ingest::new(PushConfig::default(), Some(forwarder.tenancy().clone()));
        Arc::new(Self {
            sinks: Sinks {
                forwarder: Some(forwarder),
                cache: None,
            },
            ingest,
        })
    }

    /// A push of `body` (text format) to `/metrics/<path>` with `headers`.
    async fn push(
        &self,
        op: PushOp,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Result<StatusCode, PushFailure> {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        let body = Full::new(Bytes::from(body.to_string()));
        bounded(
            self.ingest
                .handle(&self.sinks, op, path.as_bytes(), &map, body),
        )
        .await
    }
}

fn label<'a>(series: &'a TimeSeries, name: &str) -> Option<&'a str> {
    series
        .labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
}

/// The `__name__`s of a request's series, sorted.
fn names(request: &WriteRequest) -> Vec<&str> {
    let mut names: Vec<&str> = request
        .timeseries
        .iter()
        .filter_map(|s| label(s, "__name__"))
        .collect();
    names.sort_unstable();
    names
}

fn header<'a>(received: &'a Received, name: &str) -> Option<&'a str> {
    received.headers.get(name).map(|v| v.to_str().unwrap())
}

fn has_stale_marker(request: &WriteRequest) -> bool {
    request
        .timeseries
        .iter()
        .flat_map(|s| &s.samples)
        .any(|s| s.value.to_bits() == STALE_NAN_BITS)
}

#[tokio::test]
async fn an_https_backend_is_verified_with_the_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend-ca");
    let receiver = tls_receiver(&ca).await;
    assert!(receiver.url.starts_with("https://"));
    let mut config = config(&receiver.url);
    config.tls.ca_file = Some(write(dir.path(), "ca.crt", &ca.pem()));
    let relay = Relay::new(&config);
    let status = relay
        .push(PushOp::Replace, "job/tls", &[], "tls_metric 1\n")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert!(names(&received[0].request).contains(&"tls_metric"));
    // ALPN picked h2, as the receiver offers it first.
    assert_eq!(received[0].version, http::Version::HTTP_2);
    assert_eq!(header(&received[0], "content-encoding"), Some("snappy"));
}

#[tokio::test]
async fn a_backend_certificate_from_an_unknown_ca_makes_the_push_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = tls_receiver(&TestCa::new("backend-ca")).await;
    let mut config = config(&receiver.url);
    config.retry_deadline = GoDuration(Duration::from_secs(1));
    // Trusting another CA: the same as not having the backend's CA file,
    // without depending on this machine's system store.
    let other = TestCa::new("some-other-ca");
    config.tls.ca_file = Some(write(dir.path(), "other.crt", &other.pem()));
    let relay = Relay::new(&config);
    let failure = relay
        .push(PushOp::Replace, "job/tls", &[], "tls_metric 1\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        failure.message.contains("invalid peer certificate")
            && failure.message.contains("UnknownIssuer"),
        "{}",
        failure.message
    );
    assert!(failure.retry_after.is_some());
    assert!(receiver.received().is_empty());
    assert!(!relay.sinks.is_ready());
}

#[tokio::test]
async fn client_certificates_and_a_server_name_override_are_used_by_the_forwarder() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend-ca");
    let client_ca = TestCa::new("client-ca");
    // The certificate names the backend only by DNS name; the URL uses the
    // IP address.
    let receiver = tls_receiver_with(&ca, &["backend.test"], Some(&client_ca)).await;
    let client = client_ca.client("pushrelay");
    let mut config = config(&receiver.url);
    config.retry_deadline = GoDuration(Duration::from_secs(1));
    config.tls = TlsClientConfig {
        ca_file: Some(write(dir.path(), "ca.crt", &ca.pem())),
        cert_file: Some(write(dir.path(), "client.crt", &client.cert_pem)),
        key_file: Some(write(dir.path(), "client.key", &client.key_pem)),
        server_name: Some("backend.test".into()),
        insecure_skip_verify: false,
    };
    let status = Relay::new(&config)
        .push(PushOp::Replace, "job/mtls", &[], "m_mtls 1\n")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::OK);

    // Without the override the certificate does not match 127.0.0.1.
    let mut no_override = config.clone();
    no_override.tls.server_name = None;
    let failure = Relay::new(&no_override)
        .push(PushOp::Replace, "job/mtls", &[], "m_mtls 2\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        failure.message.contains("not valid for name"),
        "{}",
        failure.message
    );

    // Without a client certificate the receiver refuses the handshake.
    let mut no_client_cert = config.clone();
    no_client_cert.tls.cert_file = None;
    no_client_cert.tls.key_file = None;
    let failure = Relay::new(&no_client_cert)
        .push(PushOp::Replace, "job/mtls", &[], "m_mtls 3\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn the_tenant_header_follows_the_configured_source() {
    let receiver = Receiver::start().await;

    // Static: every push, whatever the pusher sends.
    let mut config = config(&receiver.url);
    config.tenant.id = Some("team-static".into());
    let relay = Relay::new(&config);
    relay
        .push(
            PushOp::Replace,
            "job/a",
            &[("X-Scope-OrgID", "evil")],
            "m_static 1\n",
        )
        .await
        .unwrap();

    // From a grouping label, which stays on the forwarded series.
    let mut config = self::config(&receiver.url);
    config.tenant.from_label = Some("tenant".into());
    let relay = Relay::new(&config);
    relay
        .push(PushOp::Replace, "job/b/tenant/blue", &[], "m_label 1\n")
        .await
        .unwrap();

    // Passthrough, in a configured header, falling back to the static one.
    let mut config = self::config(&receiver.url);
    config.tenant.passthrough = true;
    config.tenant.id = Some("fallback".into());
    config.tenant.header = "X-Tenant".into();
    let relay = Relay::new(&config);
    relay
        .push(
            PushOp::Replace,
            "job/c",
            &[("X-Tenant", "pusher-own")],
            "m_passthrough 1\n",
        )
        .await
        .unwrap();
    relay
        .push(PushOp::Replace, "job/d", &[], "m_fallback 1\n")
        .await
        .unwrap();

    let received = receiver.received();
    let tenant_of = |metric: &str, header_name: &str| {
        let request = received
            .iter()
            .find(|r| names(&r.request).contains(&metric))
            .unwrap_or_else(|| panic!("{metric} not received"));
        header(request, header_name).map(str::to_string)
    };
    assert_eq!(
        tenant_of("m_static", "x-scope-orgid").as_deref(),
        Some("team-static")
    );
    assert_eq!(
        tenant_of("m_label", "x-scope-orgid").as_deref(),
        Some("blue")
    );
    assert_eq!(
        tenant_of("m_passthrough", "x-tenant").as_deref(),
        Some("pusher-own")
    );
    assert_eq!(tenant_of("m_passthrough", "x-scope-orgid"), None);
    assert_eq!(
        tenant_of("m_fallback", "x-tenant").as_deref(),
        Some("fallback")
    );
    let labelled = received
        .iter()
        .flat_map(|r| &r.request.timeseries)
        .find(|s| label(s, "__name__") == Some("m_label"))
        .unwrap();
    assert_eq!(label(labelled, "tenant"), Some("blue"));
}

#[tokio::test]
async fn a_push_without_a_required_tenant_is_a_400_and_is_not_sent() {
    let receiver = Receiver::start().await;
    let mut config = config(&receiver.url);
    config.tenant.from_label = Some("tenant".into());
    config.tenant.passthrough = true;
    let relay = Relay::new(&config);
    for op in [PushOp::Replace, PushOp::Delete] {
        let failure = relay
            .push(op, "job/no-tenant", &[], "m 1\n")
            .await
            .unwrap_err();
        assert_eq!(failure.status, StatusCode::BAD_REQUEST);
        assert!(
            failure.message.contains("no tenant")
                && failure.message.contains("grouping label tenant"),
            "{}",
            failure.message
        );
    }
    let failure = relay
        .push(PushOp::Replace, "job/j/tenant/a|b", &[], "m 1\n")
        .await
        .unwrap_err();
    assert_eq!(failure.status, StatusCode::BAD_REQUEST);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn basic_auth_and_bearer_tokens_reach_the_backend() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let mut config = config(&receiver.url);
    config.basic_auth = Some(BasicAuthConfig {
        username: "relay".into(),
        password_file: Some(write(dir.path(), "password", "pa55word\n")),
    });
    Relay::new(&config)
        .push(PushOp::Replace, "job/basic", &[], "m_basic 1\n")
        .await
        .unwrap();

    let ca = TestCa::new("backend-ca");
    let tls_receiver = tls_receiver(&ca).await;
    let token = write(dir.path(), "token", "t0ken-1\n");
    let mut config = self::config(&tls_receiver.url);
    config.tls.ca_file = Some(write(dir.path(), "ca.crt", &ca.pem()));
    config.bearer_token_file = Some(token.clone());
    let relay = Relay::new(&config);
    relay
        .push(PushOp::Replace, "job/bearer", &[], "m_bearer 1\n")
        .await
        .unwrap();
    // A rotated token is picked up by the next request. The file's mtime
    // has a coarse resolution on some file systems: change the length too.
    std::fs::write(&token, "t0ken-number-2\n").unwrap();
    relay
        .push(PushOp::Replace, "job/bearer", &[], "m_bearer 2\n")
        .await
        .unwrap();

    let received = receiver.received();
    assert_eq!(
        header(&received[0], "authorization"),
        Some(basic("relay", "pa55word").as_str())
    );
    let received = tls_receiver.received();
    let tokens: Vec<_> = received
        .iter()
        .map(|r| header(r, "authorization").unwrap())
        .collect();
    assert_eq!(tokens, ["Bearer t0ken-1", "Bearer t0ken-number-2"]);
}

/// Pushes `first` and, while its request is held by the receiver, the
/// `together` pushes concurrently, so the single shard batches them; returns
/// every request received.
async fn batched(
    config: &RemoteWriteConfig,
    receiver: &Receiver,
    first: (&'static str, &'static str),
    together: &[(&'static str, &'static str)],
) -> Vec<Received> {
    receiver.script([Fault::Delay(
        Duration::from_millis(500),
        Box::new(Fault::Accept),
    )]);
    let relay = Relay::new(config);
    let held = {
        let relay = relay.clone();
        tokio::spawn(async move { relay.push(PushOp::Replace, first.0, &[], first.1).await })
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let pushes: Vec<_> = together
        .iter()
        .map(|&(path, body)| {
            let relay = relay.clone();
            tokio::spawn(async move { relay.push(PushOp::Replace, path, &[], body).await })
        })
        .collect();
    held.await.unwrap().unwrap();
    for push in pushes {
        push.await.unwrap().unwrap();
    }
    receiver.received()
}

#[tokio::test]
async fn pushes_of_two_tenants_arriving_together_go_in_separate_requests() {
    let together = [
        ("job/j1/tenant/red", "m_red 1\n"),
        ("job/j2/tenant/green", "m_green 1\n"),
        ("job/j3/tenant/red", "m_red_again 1\n"),
    ];
    let first = ("job/j0/tenant/red", "m_first 1\n");

    // Without tenancy the three queued pushes share one request: the
    // scenario does batch them.
    let receiver = Receiver::start().await;
    let mut config = config(&receiver.url);
    config.concurrency = 1;
    let received = batched(&config, &receiver, first, &together).await;
    assert_eq!(received.len(), 2, "{:?}", received.len());

    let receiver = Receiver::start().await;
    let mut config = self::config(&receiver.url);
    config.concurrency = 1;
    config.tenant.from_label = Some("tenant".into());
    let received = batched(&config, &receiver, first, &together).await;
    assert_eq!(received.len(), 3);
    let mut seen = Vec::new();
    for request in &received {
        let tenant = header(request, "x-scope-orgid").expect("tenant header");
        for series in &request.request.timeseries {
            assert_eq!(label(series, "tenant"), Some(tenant), "{series:?}");
        }
        seen.push((tenant.to_string(), names(&request.request).join(",")));
    }
    let with_names = |n: &str| seen.iter().filter(|(_, s)| s.contains(n)).count();
    // Both red pushes that waited went in one request.
    assert_eq!(with_names("m_red_again"), 1);
    assert!(
        seen.iter()
            .any(|(t, s)| t == "red" && s.contains("m_red,") && s.contains("m_red_again"))
    );
    assert!(
        seen.iter()
            .any(|(t, s)| t == "green" && s.contains("m_green"))
    );
}

#[tokio::test]
async fn one_grouping_key_under_two_tenants_keeps_two_series_sets() {
    let receiver = Receiver::start().await;
    let mut config = config(&receiver.url);
    config.tenant.passthrough = true;
    let relay = Relay::new(&config);
    let as_tenant = |tenant: &'static str| [("X-Scope-OrgID", tenant)];
    relay
        .push(PushOp::Replace, "job/shared", &as_tenant("a"), "m_of_a 1\n")
        .await
        .unwrap();
    relay
        .push(PushOp::Replace, "job/shared", &as_tenant("b"), "m_of_b 1\n")
        .await
        .unwrap();
    relay
        .push(PushOp::Delete, "job/shared", &as_tenant("a"), "")
        .await
        .unwrap();
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    // Tenant b's push does not end tenant a's series.
    assert_eq!(header(&received[1], "x-scope-orgid"), Some("b"));
    assert!(!has_stale_marker(&received[1].request));
    // Tenant a's DELETE ends a's series only, as tenant a.
    assert_eq!(header(&received[2], "x-scope-orgid"), Some("a"));
    let ended: Vec<&str> = received[2]
        .request
        .timeseries
        .iter()
        .filter_map(|s| label(s, "__name__"))
        .collect();
    assert!(ended.contains(&"m_of_a"), "{ended:?}");
    assert!(!ended.contains(&"m_of_b"), "{ended:?}");
}

/// Sends one request to the binary.
async fn call(relay: &Binary, method: &str, path: &str, body: &str) -> (u16, String) {
    let client = https_client(&TlsClientConfig::default());
    let url = format!("http://{}{path}", relay.addr);
    match send(&client, method, &url, &[], body).await {
        Ok(answer) => (answer.status, answer.body),
        Err(error) => panic!("{error}: {}", relay.log_text()),
    }
}

#[tokio::test]
async fn the_binary_forwards_to_an_https_backend_with_a_bearer_token() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("backend-ca");
    let receiver = tls_receiver(&ca).await;
    let ca_file = write(dir.path(), "ca.crt", &ca.pem());
    let token = write(dir.path(), "token", "e2e-token\n");
    let relay = Binary::start_bare(&[
        &format!("--remote-write.url={}", receiver.url),
        &format!("--remote-write.tls.ca-file={}", ca_file.display()),
        &format!("--remote-write.bearer-token-file={}", token.display()),
        "--remote-write.tenant.id=team-e2e",
    ])
    .await;
    let (status, body) = call(&relay, "PUT", "/metrics/job/e2e", "e2e_metric 42\n").await;
    assert_eq!(status, 200, "{body}\n{}", relay.log_text());
    let received = receiver.received();
    let request = received
        .iter()
        .find(|r| names(&r.request).contains(&"e2e_metric"))
        .expect("the push reached the backend");
    assert_eq!(header(request, "authorization"), Some("Bearer e2e-token"));
    assert_eq!(header(request, "x-scope-orgid"), Some("team-e2e"));
    // The readiness probe went through TLS too.
    let (status, _) = call(&relay, "GET", "/-/ready", "").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_binary_warns_at_start_when_certificates_are_not_verified() {
    let receiver = tls_receiver(&TestCa::new("unknown-ca")).await;
    let relay = Binary::start_bare(&[
        &format!("--remote-write.url={}", receiver.url),
        "--remote-write.tls.insecure-skip-verify",
    ])
    .await;
    let (status, body) = call(&relay, "PUT", "/metrics/job/insecure", "m_insecure 1\n").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(receiver.received().len(), 1);
    let log = relay.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("WARN") && l.contains("insecure_skip_verify")),
        "{log}"
    );
}

#[tokio::test]
async fn the_binary_answers_503_and_logs_the_certificate_problem_without_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let receiver = tls_receiver(&TestCa::new("backend-ca")).await;
    let other = write(dir.path(), "other.crt", &TestCa::new("other-ca").pem());
    let relay = Binary::start_bare(&[
        &format!("--remote-write.url={}", receiver.url),
        &format!("--remote-write.tls.ca-file={}", other.display()),
        "--remote-write.retry-deadline=1s",
    ])
    .await;
    let (status, body) = call(&relay, "PUT", "/metrics/job/e2e", "e2e_metric 42\n").await;
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("invalid peer certificate"), "{body}");
    let log = relay.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("remote_write") && l.contains("UnknownIssuer")),
        "{log}"
    );
    assert!(receiver.received().is_empty());
}
