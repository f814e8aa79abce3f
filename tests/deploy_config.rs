//! The configuration files shipped in `deploy/` and in the Helm chart are
//! accepted by the pushrelay binary they are meant for.
//!
//! Every ConfigMap of pushrelay in `deploy/*.yaml` and the chart's default
//! configuration (`config` in `helm/pushrelay/values.yaml`, plus the keys the
//! chart sets from its other default values) is written to a file and run
//! through `pushrelay --check-config --config FILE`. The manifests are also
//! checked for what would stop the binary from starting in a cluster: a
//! `--config` path that no ConfigMap provides, and service links (Kubernetes
//! injects `PUSHRELAY_SERVICE_HOST` and the like for a Service named
//! `pushrelay`, which pushrelay reads as configuration).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::pushrelay_command;
use figment::Figment;
use figment::providers::{Format, Yaml};
use serde_json::Value;

const CONFIG_MOUNT: &str = "/etc/pushrelay/config/";

fn repo_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The documents of a multi-document YAML file, comment-only ones skipped.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text =
        std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    text.split("\n---\n")
        .filter(|doc| {
            doc.lines()
                .any(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        })
        .map(|doc| {
            Figment::from(Yaml::string(doc))
                .extract::<Value>()
                .unwrap_or_else(|e| panic!("parsing a document of {}: {e}", path.display()))
        })
        .collect()
}

fn manifest_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo_path("deploy"))
        .expect("listing deploy/")
        .map(|entry| entry.expect("reading deploy/").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no manifests in deploy/");
    files
}

fn is_pushrelay(object: &Value) -> bool {
    object["metadata"]["labels"]["app.kubernetes.io/name"] == "pushrelay"
}

/// The config files of pushrelay's ConfigMaps in one manifest file, by name.
fn pushrelay_configs(documents: &[Value]) -> BTreeMap<String, String> {
    documents
        .iter()
        .filter(|doc| doc["kind"] == "ConfigMap" && is_pushrelay(doc))
        .flat_map(|doc| doc["data"].as_object().cloned().unwrap_or_default())
        .filter(|(name, _)| {
            [".toml", ".yaml", ".yml"]
                .iter()
                .any(|ext| name.ends_with(ext))
        })
        .map(|(name, text)| {
            (
                name,
                text.as_str().expect("ConfigMap data is text").to_owned(),
            )
        })
        .collect()
}

/// Every pod spec in a workload: Deployment, StatefulSet, DaemonSet, Job or
/// CronJob.
fn pod_specs(object: &Value) -> Vec<&Value> {
    [
        &object["spec"]["template"]["spec"],
        &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
    ]
    .into_iter()
    .filter(|spec| spec.is_object())
    .collect()
}

fn pushrelay_containers(pod: &Value) -> Vec<&Value> {
    ["containers", "initContainers"]
        .iter()
        .flat_map(|list| pod[*list].as_array().into_iter().flatten())
        .filter(|container| {
            container["image"]
                .as_str()
                .is_some_and(|image| image.contains("/pushrelay:"))
        })
        .collect()
}

/// Runs `pushrelay --check-config --config FILE` with no `PUSHRELAY_*`
/// variables from this environment.
fn check_config(file: &Path) -> Output {
    pushrelay_command()
        .arg("--check-config")
        .arg("--config")
        .arg(file)
        .output()
        .expect("running pushrelay")
}

fn assert_accepted(file: &Path, origin: &str) {
    let output = check_config(file);
    assert!(
        output.status.success(),
        "pushrelay refused the config from {origin}:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        !output.stdout.is_empty(),
        "--check-config printed no configuration for {origin}"
    );
}

#[test]
fn every_deploy_config_map_is_accepted_by_pushrelay() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut checked = 0;
    for file in manifest_files() {
        let documents = yaml_documents(&file);
        for (name, text) in pushrelay_configs(&documents) {
            let origin = format!("{} ({name})", file.display());
            let written = dir.path().join(format!("{checked}-{name}"));
            std::fs::write(&written, text).expect("writing the config");
            assert_accepted(&written, &origin);
            checked += 1;
        }
    }
    // One per example: sidecar, legacy sidecar, DaemonSet, forward, cache.
    assert!(
        checked >= 5,
        "only {checked} pushrelay configs found in deploy/"
    );
}

#[test]
fn every_config_flag_in_deploy_names_a_config_map_file_of_the_same_manifest() {
    let mut references = 0;
    for file in manifest_files() {
        let documents = yaml_documents(&file);
        let configs = pushrelay_configs(&documents);
        for workload in &documents {
            for pod in pod_specs(workload) {
                for container in pushrelay_containers(pod) {
                    let args = container["args"].as_array().cloned().unwrap_or_default();
                    let config = args
                        .iter()
                        .filter_map(Value::as_str)
                        .find_map(|arg| arg.strip_prefix("--config="))
                        .unwrap_or_else(|| {
                            panic!("{}: a pushrelay container has no --config", file.display())
                        });
                    let name = config.strip_prefix(CONFIG_MOUNT).unwrap_or_else(|| {
                        panic!(
                            "{}: --config={config} is not under {CONFIG_MOUNT}",
                            file.display()
                        )
                    });
                    assert!(
                        configs.contains_key(name),
                        "{}: --config={config} but no pushrelay ConfigMap has {name}",
                        file.display()
                    );
                    references += 1;
                }
            }
        }
    }
    assert!(
        references >= 5,
        "only {references} pushrelay containers found in deploy/"
    );
}

#[test]
fn pods_running_pushrelay_disable_service_links() {
    let mut pods = 0;
    for file in manifest_files() {
        for workload in yaml_documents(&file) {
            for pod in pod_specs(&workload) {
                if pushrelay_containers(pod).is_empty() {
                    continue;
                }
                assert_eq!(
                    pod["enableServiceLinks"],
                    Value::Bool(false),
                    "{}: {} {} runs pushrelay with service links enabled",
                    file.display(),
                    workload["kind"],
                    workload["metadata"]["name"]
                );
                pods += 1;
            }
        }
    }
    assert!(
        pods >= 5,
        "only {pods} pods running pushrelay found in deploy/"
    );
}

#[test]
fn the_chart_default_config_is_accepted_by_pushrelay() {
    let values: Value = Figment::from(Yaml::file_exact(repo_path("helm/pushrelay/values.yaml")))
        .extract()
        .expect("parsing the chart's values.yaml");
    let mut config = values["config"].clone();
    assert!(config.is_object(), "values.yaml has no `config` map");
    // The keys the chart sets from its other values (templates/_helpers.tpl,
    // "pushrelay.config"): with the defaults (no remoteWrite.url, mode "")
    // that is the listen address and cache mode.
    assert_eq!(
        values["remoteWrite"]["url"], "",
        "the chart's default has a backend"
    );
    assert_eq!(
        values["mode"], "",
        "the chart's default mode is not automatic"
    );
    config["web"]["listen_address"] = Value::from(format!(":{}", values["service"]["targetPort"]));
    config["cache"]["enabled"] = Value::Bool(true);

    let dir = tempfile::tempdir().expect("temp dir");
    // JSON is YAML: pushrelay reads it as a .yaml file.
    let written = dir.path().join("pushrelay.yaml");
    std::fs::write(&written, config.to_string()).expect("writing the config");
    assert_accepted(&written, "helm/pushrelay/values.yaml (config)");
}

#[test]
fn a_broken_deploy_config_is_refused_naming_the_key() {
    let documents = yaml_documents(&repo_path("deploy/sidecar-cronjob.yaml"));
    let original = pushrelay_configs(&documents)
        .remove("pushrelay.toml")
        .expect("the sidecar example has a pushrelay.toml");
    assert!(original.contains("retry_deadline"));
    let broken = original.replace("retry_deadline", "retry_dedline");

    let dir = tempfile::tempdir().expect("temp dir");
    let written = dir.path().join("pushrelay.toml");
    std::fs::write(&written, broken).expect("writing the config");
    let output = check_config(&written);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "a misspelled key was accepted");
    assert!(
        stderr.contains("remote_write.retry_dedline"),
        "the error does not name the key: {stderr}"
    );
}
