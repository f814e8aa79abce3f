//! Tests of the configuration layers, their error messages and the flags.

use std::path::Path;

use clap::Parser;

use super::*;

/// Loads a config inside a figment jail: a private environment and a
/// temporary working directory holding the optional config file.
#[allow(clippy::result_large_err)] // figment's Jail closure signature
fn load(
    args: &[&str],
    env: &[(&str, &str)],
    file: Option<(&str, &str)>,
) -> Result<Config, ConfigError> {
    let mut outcome = None;
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        let mut argv = vec!["pushrelay".to_string()];
        if let Some((name, body)) = file {
            jail.create_file(name, body)?;
            argv.push(format!("--config={name}"));
        }
        argv.extend(args.iter().map(|s| s.to_string()));
        for (k, v) in env {
            jail.set_env(k, v);
        }
        let cli = Cli::try_parse_from(argv).unwrap();
        outcome = Some(Config::load(&cli));
        Ok(())
    });
    outcome.unwrap()
}

#[test]
fn defaults_listen_on_9091_in_cache_mode() {
    let config = load(&[], &[], None).unwrap();
    assert_eq!(config.listen_addr().unwrap().port(), 9091);
    assert!(config.caching());
    assert!(!config.forwarding());
}

#[test]
fn layers_file_then_env_then_flags() {
    let file = (
        "c.toml",
        "[web]\nlisten_address = \"127.0.0.1:1000\"\n[remote_write]\nurl = \"http://file/\"\nconcurrency = 2\n",
    );
    let config = load(&[], &[], Some(file)).unwrap();
    assert_eq!(config.web.listen_address, "127.0.0.1:1000");
    assert_eq!(config.remote_write.concurrency, 2);

    let config = load(
        &[],
        &[("PUSHRELAY_WEB__LISTEN_ADDRESS", "127.0.0.1:2000")],
        Some(file),
    )
    .unwrap();
    assert_eq!(config.web.listen_address, "127.0.0.1:2000");

    let config = load(
        &[
            "--web.listen-address=127.0.0.1:3000",
            "--remote-write.url=http://flag/",
        ],
        &[("PUSHRELAY_WEB__LISTEN_ADDRESS", "127.0.0.1:2000")],
        Some(file),
    )
    .unwrap();
    assert_eq!(config.web.listen_address, "127.0.0.1:3000");
    assert_eq!(config.remote_write.url.as_deref(), Some("http://flag/"));
    assert_eq!(config.remote_write.concurrency, 2);
}

#[test]
fn kubernetes_service_variables_are_not_configuration() {
    let env = [
        ("PUSHRELAY_PORT", "tcp://10.0.0.1:9091"),
        ("PUSHRELAY_SERVICE_HOST", "10.0.0.1"),
        (
            "PUSHRELAY_REMOTE_WRITE__URL",
            "http://env:9090/api/v1/write",
        ),
    ];
    let config = load(&[], &env, None).unwrap();
    assert_eq!(
        config.remote_write.url.as_deref(),
        Some("http://env:9090/api/v1/write")
    );
}

#[test]
fn forwarding_delivery_settings_layer_and_validate() {
    let config = load(&[], &[], None).unwrap();
    assert_eq!(config.remote_write.ack, AckMode::Sync);
    assert!(config.remote_write.push_time_metrics);
    let config = load(
        &[
            "--remote-write.ack=async",
            "--remote-write.min-backoff=10ms",
            "--remote-write.max-backoff=2s",
            "--remote-write.push-time-metrics=false",
            "--remote-write.max-remembered-series=7",
        ],
        &[],
        Some(("c.toml", "[remote_write]\nqueue_capacity = 3\n")),
    )
    .unwrap();
    assert_eq!(config.remote_write.ack, AckMode::Async);
    assert_eq!(config.remote_write.min_backoff.0, Duration::from_millis(10));
    assert_eq!(config.remote_write.max_backoff.0, Duration::from_secs(2));
    assert!(!config.remote_write.push_time_metrics);
    assert_eq!(config.remote_write.max_remembered_series, 7);
    assert_eq!(config.remote_write.queue_capacity, 3);

    let err = load(&["--remote-write.ack=later"], &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote_write.ack"), "{err}");
    let err = load(
        &[
            "--remote-write.min-backoff=10s",
            "--remote-write.max-backoff=1s",
        ],
        &[],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("remote_write.min_backoff"), "{err}");
}

#[test]
fn remote_write_protocol_defaults_to_auto_and_layers() {
    assert_eq!(
        load(&[], &[], None).unwrap().remote_write.protocol,
        Protocol::Auto
    );
    let from_file = load(
        &[],
        &[],
        Some(("c.toml", "[remote_write]\nprotocol = \"1.0\"\n")),
    );
    assert_eq!(from_file.unwrap().remote_write.protocol, Protocol::V1);
    let from_flag = load(
        &["--remote-write.protocol=2.0"],
        &[],
        Some(("c.toml", "[remote_write]\nprotocol = \"1.0\"\n")),
    );
    assert_eq!(from_flag.unwrap().remote_write.protocol, Protocol::V2);
    let err = load(&["--remote-write.protocol=3.0"], &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote_write.protocol"), "{err}");
}

#[test]
fn yaml_files_are_read() {
    let config = load(
        &[],
        &[],
        Some((
            "c.yaml",
            "remote_write:\n  url: http://y:9090/api/v1/write\n  timeout: 1m30s\n",
        )),
    )
    .unwrap();
    assert_eq!(
        config.remote_write.url.as_deref(),
        Some("http://y:9090/api/v1/write")
    );
    assert_eq!(config.remote_write.timeout.0, Duration::from_secs(90));
}

#[test]
fn bad_values_name_the_key_and_the_file() {
    let err = load(
        &[],
        &[],
        Some(("bad.toml", "[web]\nlisten_address = \"nope\"\n")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("web.listen_address"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    let err = load(
        &[],
        &[],
        Some(("bad.toml", "[remote_write]\ntimeout = \"5 parsecs\"\n")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("remote_write.timeout"), "{err}");
    assert!(err.contains("bad.toml"), "{err}");

    let err = load(
        &[],
        &[],
        Some(("bad.toml", "[web]\nlisten_adress = \":1\"\n")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("listen_adress"), "{err}");

    let err = load(&["--remote-write.url=ftp://x/"], &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote_write.url"), "{err}");
}

#[test]
fn go_durations_parse() {
    assert_eq!(GoDuration::parse("5m").unwrap().0, Duration::from_secs(300));
    assert_eq!(
        GoDuration::parse("250ms").unwrap().0,
        Duration::from_millis(250)
    );
    assert_eq!(
        GoDuration::parse("1h30m").unwrap().0,
        Duration::from_secs(5400)
    );
    assert_eq!(GoDuration::parse("7").unwrap().0, Duration::from_secs(7));
    assert!(GoDuration::parse("").is_err());
    assert!(GoDuration::parse("5x").is_err());
    assert_eq!(GoDuration(Duration::from_secs(300)).to_string(), "5m");
    assert_eq!(
        GoDuration(Duration::from_millis(1500)).to_string(),
        "1500ms"
    );
}

#[test]
fn route_prefix_is_normalised() {
    let mut config = Config::default();
    for (given, want) in [
        ("", ""),
        ("/", ""),
        ("x", "/x"),
        ("/x/", "/x"),
        ("/a/b", "/a/b"),
    ] {
        config.web.route_prefix = given.into();
        assert_eq!(config.route_prefix(), want, "{given:?}");
    }
}

#[test]
#[allow(clippy::result_large_err)] // figment's Jail closure signature
fn a_setting_refused_by_its_user_names_the_key_and_its_source() {
    struct Unreadable;
    impl KeyedProblem for Unreadable {
        fn key(&self) -> &str {
            "remote_write.bearer_token_file"
        }
        fn problem(&self) -> &str {
            "cannot be read"
        }
    }
    figment::Jail::expect_with(|jail| {
        jail.clear_env();
        jail.create_file("c.toml", "[remote_write]\nbearer_token_file = \"t\"\n")?;
        let cli = Cli::try_parse_from(["pushrelay", "--config=c.toml"]).unwrap();
        let err = Config::load_checked(&cli, |_| Err(Unreadable))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `remote_write.bearer_token_file` (from TOML file")
                && err.contains("c.toml")
                && err.ends_with(": cannot be read"),
            "{err}"
        );
        assert!(Config::load_checked(&cli, |_| Ok::<(), Unreadable>(())).is_ok());
        Ok(())
    });
}

#[test]
fn durable_acks_need_a_queue_directory_from_flags_or_file() {
    let err = load(&["--remote-write.ack=durable"], &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote_write.queue.dir"), "{err}");
    let config = load(
        &[
            "--remote-write.ack=durable",
            "--remote-write.queue.dir=q",
            "--remote-write.queue.max-bytes=2000000",
        ],
        &[],
        None,
    )
    .unwrap();
    assert_eq!(config.remote_write.ack, AckMode::Durable);
    assert_eq!(
        config.remote_write.queue.dir.as_deref(),
        Some(Path::new("q"))
    );
    assert_eq!(config.remote_write.queue.max_bytes, 2_000_000);
    let config = load(
        &[],
        &[],
        Some((
            "c.toml",
            "[remote_write]\nack = \"durable\"\n[remote_write.queue]\ndir = \"/var/lib/q\"\n",
        )),
    )
    .unwrap();
    assert_eq!(
        config.remote_write.queue.dir.as_deref(),
        Some(Path::new("/var/lib/q"))
    );
    let err = load(
        &[
            "--remote-write.ack=durable",
            "--remote-write.queue.dir=q",
            "--remote-write.queue.max-bytes=10",
        ],
        &[],
        None,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("remote_write.queue.max_bytes"), "{err}");
}

#[test]
fn help_shows_each_setting_flags_default() {
    let help = Cli::command_with_defaults().render_help().to_string();
    for (flag, default) in [
        ("--web.listen-address", ":9091"),
        ("--web.telemetry-path", "/metrics"),
        ("--remote-write.timeout", "10s"),
        ("--remote-write.retry-deadline", "30s"),
        ("--remote-write.ack", "sync"),
        ("--push.max-label-value-length", "65536"),
        ("--persistence.interval", "5m"),
        ("--log.format", "logfmt"),
    ] {
        let line = help
            .lines()
            .skip_while(|l| !l.contains(&format!("{flag} <")))
            .take_while(|l| !l.trim_start().starts_with("--") || l.contains(flag))
            .collect::<String>();
        assert!(
            line.contains(&format!("[default: {default}]")),
            "{flag}: {line}"
        );
    }
    // Every flag taking a value shows a default, except those whose
    // default is "not set".
    let unset = [
        "config",
        "web.route-prefix",
        "web.config.file",
        "remote-write.url",
        "remote-write.header",
        "remote-write.queue.dir",
        "remote-write.external-label",
        "persistence.file",
    ];
    let command = Cli::command_with_defaults();
    for arg in command.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        let takes_value = arg.get_action().takes_values();
        let Some(help) = arg.get_help() else { continue };
        if !takes_value
            || unset.contains(&long)
            || long.contains(".tls.")
            || long.contains("basic-auth")
            || long.contains("tenant")
            || long.ends_with("-file")
        {
            continue;
        }
        assert!(help.to_string().contains("[default: "), "--{long}: {help}");
    }
}

#[test]
fn resend_and_expiry_layer_and_resend_needs_a_backend() {
    let config = load(
        &[
            "--remote-write.url=http://127.0.0.1:9090/api/v1/write",
            "--remote-write.resend-interval=15s",
        ],
        &[],
        Some((
            "ttl.toml",
            "[cache]\ngroup_ttl = \"26h\"\n\n[[cache.group_ttl_rules]]\nmatch = { job = \"backup\" }\nttl = \"0s\"\n",
        )),
    )
    .unwrap();
    assert!(
        config.resending() && config.caching(),
        "re-sending turns the cache on"
    );
    assert_eq!(
        config.remote_write.resend_interval.0,
        Duration::from_secs(15)
    );
    assert_eq!(config.cache.group_ttl.0, Duration::from_secs(26 * 3600));
    assert_eq!(config.cache.group_ttl_rules[0].matches["job"], "backup");
    assert!(config.cache.group_ttl_rules[0].ttl.0.is_zero());
    let flag = load(&["--cache.group-ttl=1h"], &[], None).unwrap();
    assert_eq!(flag.cache.group_ttl.0, Duration::from_secs(3600));

    let err = load(&["--remote-write.resend-interval=15s"], &[], None)
        .unwrap_err()
        .to_string();
    assert!(err.contains("remote_write.resend_interval"), "{err}");
}
