//! Tests of the web configuration file: parsing, refusals and TLS set-up.

use super::*;

fn load_text(text: &str) -> Result<WebSettings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(&path, text).unwrap();
    load(&path)
}

#[test]
fn empty_file_means_no_tls_and_no_auth() {
    let settings = load_text("").unwrap();
    assert!(settings.tls.is_none());
    assert!(settings.users.is_empty());
}

#[test]
fn users_need_bcrypt_hashes_and_errors_do_not_quote_them() {
    let err = load_text("basic_auth_users:\n  alice: plaintext-pass\n").unwrap_err();
    assert!(err.contains("alice"), "{err}");
    assert!(!err.contains("plaintext-pass"), "{err}");
    let ok = load_text(
        "basic_auth_users:\n  alice: $2y$10$mDwo.lAisC94iLAyP81MCesa29IzH37oigHC/42V2pdJlUprsJPze\n",
    )
    .unwrap();
    assert_eq!(ok.users.len(), 1);
    assert!(!format!("{ok:?}").contains("$2y$"));
}

#[test]
fn unknown_and_unsupported_keys_are_refused() {
    assert!(
        load_text("tls_server_confg: {}\n")
            .unwrap_err()
            .contains("tls_server_confg")
    );
    assert!(
        load_text("rate_limit: {interval: 1s, burst: 2}\n")
            .unwrap_err()
            .contains("rate_limit")
    );
    let err =
        load_text("http_server_config:\n  headers:\n    X-Frame-Options: allow\n").unwrap_err();
    assert!(err.contains("X-Frame-Options"), "{err}");
    let err = load_text("http_server_config:\n  headers:\n    Server: x\n").unwrap_err();
    assert!(err.contains("can not be configured"), "{err}");
}

#[test]
fn tls_needs_cert_and_key() {
    let err = load_text("tls_server_config:\n  key_file: k.pem\n").unwrap_err();
    assert!(err.contains("missing one of cert or cert_file"), "{err}");
    let err =
        load_text("tls_server_config:\n  cert_file: nothere.pem\n  key_file: k.pem\n").unwrap_err();
    assert!(err.contains("nothere.pem"), "{err}");
}

/// A directory with a self-signed `server.crt`/`server.key` and a
/// `web.yml` holding `yaml`.
fn with_certificate(yaml: &str) -> Result<WebSettings, String> {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(dir.path().join("server.crt"), cert.cert.pem()).unwrap();
    std::fs::write(
        dir.path().join("server.key"),
        cert.signing_key.serialize_pem(),
    )
    .unwrap();
    std::fs::write(dir.path().join("ca.crt"), cert.cert.pem()).unwrap();
    let path = dir.path().join("web.yml");
    std::fs::write(
        &path,
        format!("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n{yaml}"),
    )
    .unwrap();
    load(&path)
}

#[test]
fn tls_files_are_relative_to_the_config_and_watched() {
    let settings = with_certificate("").unwrap();
    let tls = settings.tls.as_ref().unwrap();
    assert_eq!(tls.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
    assert_eq!(settings.files.len(), 3, "{:?}", settings.files);
    let settings = with_certificate("http_server_config:\n  http2: false\n").unwrap();
    assert_eq!(settings.tls.unwrap().alpn_protocols, [b"http/1.1".to_vec()]);
}

#[test]
fn client_auth_types_follow_exporter_toolkit() {
    assert!(
        with_certificate(
            "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.crt\n"
        )
        .is_ok()
    );
    assert!(
        with_certificate("  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n")
            .is_ok()
    );
    let err = with_certificate("  client_ca_file: ca.crt\n").unwrap_err();
    assert!(err.contains("without a client_auth_type"), "{err}");
    let err = with_certificate("  client_auth_type: RequireAndVerifyClientCert\n").unwrap_err();
    assert!(err.contains("needs client_ca_file"), "{err}");
    let err = with_certificate("  client_auth_type: RequireAnyClientCert\n").unwrap_err();
    assert!(err.contains("not supported"), "{err}");
    let err = with_certificate("  client_auth_type: Whatever\n").unwrap_err();
    assert!(err.contains("invalid client_auth_type"), "{err}");
    let err = with_certificate("  client_allowed_sans: [a]\n").unwrap_err();
    assert!(err.contains("client_allowed_sans"), "{err}");
}

#[test]
fn versions_map_to_what_rustls_speaks() {
    assert_eq!(protocol_versions(None, None).unwrap().len(), 2);
    assert_eq!(
        protocol_versions(Some("TLS10"), Some("TLS12"))
            .unwrap()
            .len(),
        1
    );
    assert_eq!(protocol_versions(Some("TLS13"), None).unwrap().len(), 1);
    assert!(protocol_versions(Some("TLS10"), Some("TLS11")).is_err());
    assert!(protocol_versions(Some("SSL3"), None).is_err());
}

#[test]
fn cipher_suites_and_curves_use_go_names() {
    let p = crypto_provider(
        Some(&["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256".to_string()]),
        Some(&["CurveP256".to_string()]),
    )
    .unwrap();
    assert_eq!(
        p.cipher_suites
            .iter()
            .filter(|s| s.version() == &rustls::version::TLS12)
            .count(),
        1
    );
    assert_eq!(p.kx_groups.len(), 1);
    assert!(crypto_provider(Some(&["TLS_RSA_WITH_RC4_128_SHA".to_string()]), None).is_err());
    assert!(crypto_provider(None, Some(&["CurveP521".to_string()])).is_err());
}
