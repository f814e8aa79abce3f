//! Secrets never leave pushrelay: not in `--check-config` output, not in
//! configuration errors, not in `Debug` output, not in the logs of a run.

mod common;

use common::pushrelay_command;
use common::tls::{Relay, basic, https_client, send, write};

const PUSHER_PASSWORD: &str = "pusher-pw-7f3a9c";
const BACKEND_PASSWORD: &str = "backend-pw-b81d2e";
const BEARER_TOKEN: &str = "bearer-tok-5c0e44";
const HEADER_VALUE: &str = "api-key-d93f10";

struct Setup {
    dir: tempfile::TempDir,
    hash: String,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let hash = bcrypt::hash(PUSHER_PASSWORD, 4).unwrap();
        write(
            dir.path(),
            "web.yml",
            &format!("basic_auth_users:\n  pusher: '{hash}'\n"),
        );
        write(dir.path(), "password", &format!("{BACKEND_PASSWORD}\n"));
        write(dir.path(), "token", &format!("{BEARER_TOKEN}\n"));
        write(
            dir.path(),
            "pushrelay.toml",
            &format!("[remote_write.headers]\nX-Api-Key = \"{HEADER_VALUE}\"\n"),
        );
        Self { dir, hash }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn assert_clean(&self, what: &str, text: &str) {
        for secret in [
            PUSHER_PASSWORD,
            BACKEND_PASSWORD,
            BEARER_TOKEN,
            HEADER_VALUE,
            self.hash.as_str(),
        ] {
            assert!(!text.contains(secret), "{what} leaks a secret:\n{text}");
        }
    }
}

fn check_config(args: &[String]) -> (bool, String) {
    let output = pushrelay_command()
        .arg("--check-config")
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn check_config_prints_paths_and_placeholders_never_secrets() {
    let setup = Setup::new();
    for auth in [
        vec![
            "--remote-write.basic-auth.username=relay".to_string(),
            format!(
                "--remote-write.basic-auth.password-file={}",
                setup.path("password")
            ),
        ],
        vec![format!(
            "--remote-write.bearer-token-file={}",
            setup.path("token")
        )],
    ] {
        let mut args = vec![
            format!("--config={}", setup.path("pushrelay.toml")),
            format!("--web.config.file={}", setup.path("web.yml")),
            "--remote-write.url=https://backend.example/api/v1/write".to_string(),
        ];
        args.extend(auth);
        let (ok, text) = check_config(&args);
        assert!(ok, "{text}");
        setup.assert_clean("--check-config", &text);
        assert!(text.contains("<secret>"), "{text}");
        assert!(text.contains(&setup.path("web.yml")), "{text}");
    }
}

#[test]
fn configuration_errors_do_not_quote_secrets() {
    let setup = Setup::new();
    let cases: Vec<Vec<String>> = vec![
        // A header without a colon: the whole entry may be a secret.
        vec![format!("--remote-write.header={HEADER_VALUE}")],
        // A reserved header with a secret value.
        vec![format!(
            "--remote-write.header=Authorization: Bearer {BEARER_TOKEN}"
        )],
        // Basic auth and a bearer token together.
        vec![
            "--remote-write.basic-auth.username=relay".to_string(),
            format!(
                "--remote-write.basic-auth.password-file={}",
                setup.path("password")
            ),
            format!("--remote-write.bearer-token-file={}", setup.path("token")),
        ],
    ];
    for case in cases {
        let mut args = vec!["--remote-write.url=http://127.0.0.1:9/api/v1/write".to_string()];
        args.extend(case.clone());
        let (ok, text) = check_config(&args);
        assert!(!ok, "{case:?} was accepted: {text}");
        setup.assert_clean("a configuration error", &text);
    }
    // A web config with a plain-text password instead of a hash.
    let web = write(
        setup.dir.path(),
        "plain.yml",
        &format!("basic_auth_users:\n  pusher: {PUSHER_PASSWORD}\n"),
    );
    let (ok, text) = check_config(&[
        "--remote-write.url=http://127.0.0.1:9/api/v1/write".to_string(),
        format!("--web.config.file={}", web.display()),
    ]);
    assert!(!ok);
    assert!(text.contains("not a bcrypt hash"), "{text}");
    setup.assert_clean("a web config error", &text);
}

#[test]
fn debug_output_of_the_configuration_has_no_secrets() {
    use clap::Parser;
    let setup = Setup::new();
    let cli = pushrelay::config::Cli::try_parse_from([
        "pushrelay".to_string(),
        format!("--config={}", setup.path("pushrelay.toml")),
        "--remote-write.url=http://127.0.0.1:9/api/v1/write".to_string(),
        format!("--remote-write.bearer-token-file={}", setup.path("token")),
    ])
    .unwrap();
    let config = pushrelay::config::Config::load(&cli).unwrap();
    setup.assert_clean("Config's Debug", &format!("{config:?}"));
    let web =
        pushrelay::security::inbound::WebSecurity::load(&setup.dir.path().join("web.yml")).unwrap();
    setup.assert_clean("WebSecurity's Debug", &format!("{web:?}"));
    let credentials = pushrelay::security::outbound::Credentials::new(
        None,
        Some(&setup.dir.path().join("token")),
        &config.remote_write.headers,
    )
    .unwrap();
    setup.assert_clean("Credentials' Debug", &format!("{credentials:?}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_with_debug_logs_never_logs_a_secret() {
    let setup = Setup::new();
    let relay = Relay::start(&[
        "--log.level=debug",
        &format!("--config={}", setup.path("pushrelay.toml")),
        &format!("--web.config.file={}", setup.path("web.yml")),
        "--remote-write.basic-auth.username=relay",
        &format!(
            "--remote-write.basic-auth.password-file={}",
            setup.path("password")
        ),
    ])
    .await;
    let client = https_client(&Default::default());
    let base = format!("http://{}", relay.addr);
    let wrong = basic("pusher", BACKEND_PASSWORD);
    let right = basic("pusher", PUSHER_PASSWORD);
    let denied = send(
        &client,
        "GET",
        &format!("{base}/metrics"),
        &[("authorization", &wrong)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(denied.status, 401);
    let ok = send(
        &client,
        "GET",
        &format!("{base}/metrics"),
        &[("authorization", &right)],
        "",
    )
    .await
    .unwrap();
    assert_eq!(ok.status, 200);
    let push = send(
        &client,
        "PUT",
        &format!("{base}/metrics/job/j"),
        &[("authorization", &right)],
        "some_metric 1\n",
    )
    .await
    .unwrap();
    assert_ne!(push.status, 401);
    let log = relay.stop();
    assert!(!log.is_empty(), "the run logged nothing");
    setup.assert_clean("the log", &log);
}
