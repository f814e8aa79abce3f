#!/usr/bin/env bash
# Installs the real peers pushrelay's integration tests run against, when
# they are missing:
#   - Debian prometheus (remote_write receiver) and prometheus-pushgateway
#     (the behaviour oracle),
#   - Debian victoria-metrics (a second remote_write backend, 1.0 only;
#     its vmagent is scripts/bench.sh's forwarding peer),
#   - golang-go + Debian's client_golang (the Go test client is built
#     offline, GOPATH mode),
#   - wrk, curl,
#   - chromium (the web page test drives it headless over DevTools),
#   - Python prometheus_client (via pip; python3-pip from apt if no pip),
#   - cargo-fuzz (from crates.io), for the fuzz step of scripts/test.sh.
#
# Idempotent: when everything is present it only checks, in about a second.
# Runs apt as root, or through sudo when not root.
#
# Debian's maintainer scripts try to start prometheus and the Pushgateway:
# a /usr/sbin/policy-rc.d that answers 101 ("forbidden") is put in place for
# the install (only if none exists; removed afterwards), and the script
# checks afterwards that no daemon was started. Tests start the peers they
# need themselves, on 127.0.0.1.
set -euo pipefail

APT_PACKAGES=(prometheus prometheus-pushgateway victoria-metrics golang-go
              golang-github-prometheus-client-golang-dev wrk curl ca-certificates
              chromium)
PYTHON=${PYTHON:-python3}

log() { printf 'install-peers: %s\n' "$*" >&2; }

SUDO=()
if [ "$(id -u)" != 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  fi
fi
as_root() {
  if [ "$(id -u)" != 0 ] && [ "${#SUDO[@]}" = 0 ]; then
    log "need root (or sudo) to run: $*"
    exit 1
  fi
  "${SUDO[@]}" "$@"
}

missing_apt_packages() {
  local pkg
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$pkg"
    fi
  done
}

# PIDs of prometheus / Pushgateway / VictoriaMetrics daemons, one a line.
# Peers started by tests always listen on 127.0.0.1 explicitly; a daemon
# started by a maintainer script does not.
daemon_pids() {
  local name pid
  for name in prometheus prometheus-pushgateway pushgateway victoria-metrics vmagent; do
    for pid in $(pgrep -x "$name" 2>/dev/null || true); do
      if ! tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null \
          | grep -Eq -- '(--web.listen-address|-httpListenAddr)=127.0.0.1'; then
        printf '%s(%s)\n' "$pid" "$name"
      fi
    done
  done
}

POLICY=/usr/sbin/policy-rc.d
created_policy=0
remove_policy() {
  if [ "$created_policy" = 1 ]; then
    as_root rm -f "$POLICY"
    created_policy=0
  fi
}
trap remove_policy EXIT

apt_install() {
  local before
  before=$(daemon_pids)
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\n# pushrelay install-peers.sh: no service starts during install\nexit 101\n' \
      | as_root tee "$POLICY" >/dev/null
    as_root chmod 755 "$POLICY"
    created_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  log "apt-get update"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # The image deletes downloaded .debs after every dpkg run; when apt splits
  # a large install into several dpkg runs, the later ones lose their .debs.
  # A repair plus a new try downloads them again.
  local attempt
  for attempt in 1 2 3 4; do
    log "apt-get install (try $attempt): $*"
    if as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends "$@"; then
      break
    fi
    if [ "$attempt" = 4 ]; then
      log "apt-get install failed 4 times"
      exit 1
    fi
    log "apt-get install failed; repairing with apt-get -f install and trying again"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -f || true
  done
  remove_policy
  local started
  started=$(comm -13 <(sort <<<"$before") <(daemon_pids | sort) | tr '\n' ' ')
  if [ -n "${started// /}" ]; then
    log "a maintainer script started a daemon (pid(name)): $started- stop it by its PID"
    exit 1
  fi
}

mapfile -t missing < <(missing_apt_packages "${APT_PACKAGES[@]}")
if [ "${#missing[@]}" -gt 0 ]; then
  apt_install "${missing[@]}"
fi

if ! "$PYTHON" -c 'import prometheus_client' 2>/dev/null; then
  if ! "$PYTHON" -m pip --version >/dev/null 2>&1; then
    apt_install python3-pip
  fi
  log "pip install prometheus_client"
  # Debian's own python3 refuses pip installs outside a venv (PEP 668).
  "$PYTHON" -m pip install -q prometheus_client 2>/dev/null \
    || "$PYTHON" -m pip install -q --break-system-packages prometheus_client
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  log "cargo install cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

# Fail now, with the name, if anything is still missing.
for bin in prometheus prometheus-pushgateway victoria-metrics vmagent go wrk curl chromium; do
  command -v "$bin" >/dev/null 2>&1 || { log "$bin is still missing"; exit 1; }
done
if [ ! -d /usr/share/gocode/src/github.com/prometheus/client_golang/prometheus/push ]; then
  log "client_golang is missing under /usr/share/gocode"
  exit 1
fi
"$PYTHON" -c 'import prometheus_client' || { log "prometheus_client is still missing"; exit 1; }
cargo fuzz --version >/dev/null 2>&1 || { log "cargo-fuzz is still missing"; exit 1; }
log "peers present"
