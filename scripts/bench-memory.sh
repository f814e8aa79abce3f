#!/usr/bin/env bash
# Memory of a cache-mode pushrelay through a load storm (issue 18 goal 5):
# RSS idle (and its parts: the binary's own pages, other files mapped,
# anonymous memory), with 100,000 series loaded, right after the storm, after 30 s
# of idle, the peak (VmHWM), and the RSS of many idle connections while
# held and 30 s after they closed.
#
# Usage: scripts/bench-memory.sh             # ~2 min; prints one table
#        DURATION=2 scripts/bench-memory.sh  # shorter storm
# The storm is the cache runs of scripts/bench.sh on the loaded server
# (POST 10 series at c=1, PUTs of 1,000 series rotating over the 100
# groups at c=16, GET /metrics at c=1), then PUTs and scrapes at once
# (c=8 PUTs, c=4 scrapes), as a Prometheus scraping a busy gateway sees it.
# Environment: DURATION (s per wrk run, 10), IDLE (s to wait after the
#   storm, 30), HELD_CONNS (idle connections to hold, 3000),
#   SKIP_BUILD=1 (use the existing release build), PUSHRELAY (the binary),
#   OUT (logs and results.tsv; default: a temp dir, kept).
# Needs wrk, curl, python3. Every server listens on 127.0.0.1 on a free
# port and is stopped by its PID when the script exits.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

DURATION=${DURATION:-10}
IDLE=${IDLE:-30}
HELD_CONNS=${HELD_CONNS:-3000}
GROUPS_N=100
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-memory.XXXXXX")}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
BODY_10=$ROOT/tests/fixtures/bench_10.txt
BODY_1000=$ROOT/tests/fixtures/bench_1000.txt
export WRK_SCRIPTS=$ROOT/scripts/wrk

for tool in wrk curl python3; do
  command -v "$tool" >/dev/null || { echo "bench-memory.sh: $tool not found (scripts/install-peers.sh)" >&2; exit 1; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  timeout 1800 cargo build --release --quiet --bin pushrelay
fi
PUSHRELAY=${PUSHRELAY:-$ROOT/target/release/pushrelay}

PIDS=()
cleanup() {
  local pid
  [ "${#PIDS[@]}" -gt 0 ] || return 0
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }
result() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; log "  $1 = $2"; }
rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
# rss_parts_mib PID FILE: resident MiB of FILE's own mappings (the binary's
# code and data), of the other files mapped (shared libraries), and of the
# anonymous memory (heap, stacks), from /proc/PID/smaps.
rss_parts_mib() {
  awk -v own="$2" '
    /^[0-9a-f]+-[0-9a-f]+ / { name = $6; next }
    /^Rss:/ { if (name == own) b += $2; else if (name ~ /^\//) f += $2; else a += $2 }
    END { printf "%.1f %.1f %.1f", b / 1024, f / 1024, a / 1024 }' "/proc/$1/smaps"
}

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
URL=http://127.0.0.1:$port
"$PUSHRELAY" --web.listen-address="127.0.0.1:$port" --log.level=warn >"$OUT/pushrelay.log" 2>&1 &
PID=$!
PIDS+=("$PID")
deadline=$((SECONDS + 30))
until curl -fsS -o /dev/null --max-time 2 "$URL/-/ready" 2>/dev/null; do
  kill -0 "$PID" 2>/dev/null || { log "bench-memory.sh: pushrelay exited"; cat "$OUT/pushrelay.log" >&2; exit 1; }
  [ "$SECONDS" -lt "$deadline" ] || { log "bench-memory.sh: pushrelay not ready after 30 s"; exit 1; }
  sleep 0.1
done

# wrk_run CONNS URL SCRIPT [ENV...]: one wrk run of DURATION seconds.
wrk_run() {
  local conns=$1 url=$2 script=$3 threads=2
  shift 3
  [ "$conns" -ge 2 ] || threads=1
  env "$@" timeout $((DURATION + 90)) wrk -t"$threads" -c"$conns" -d"${DURATION}s" --timeout 30s \
    -s "$WRK_SCRIPTS/$script" "$url" | grep '^WRK ' | tee -a "$OUT/wrk.log" >&2
}

log "bench-memory.sh: logs and results in $OUT (${DURATION}s per run, ${IDLE}s idle)"
sleep 1
result rss_idle "$(rss_mib "$PID")"
read -r idle_binary idle_libs idle_anon <<<"$(rss_parts_mib "$PID" "$(readlink -f "$PUSHRELAY")")"
result rss_idle_binary "$idle_binary"
result rss_idle_libs "$idle_libs"
result rss_idle_anon "$idle_anon"
for ((g = 0; g < GROUPS_N; g++)); do
  curl -fsS -o /dev/null --max-time 60 -X PUT --data-binary "@$BODY_1000" \
    -H 'Content-Type: text/plain; version=0.0.4' "$URL/metrics/job/bench/instance/$(printf 'g%03d' "$g")"
done
sleep 1
result rss_loaded "$(rss_mib "$PID")"
curl -fsS -o /dev/null --max-time 60 "$URL/metrics"
result rss_loaded_scraped "$(rss_mib "$PID")"

log "== storm"
wrk_run 1 "$URL/metrics/job/bench/instance/latency" push.lua BODY="$BODY_10" METHOD=POST
wrk_run 16 "$URL/" push.lua BODY="$BODY_1000" METHOD=PUT GROUPS="$GROUPS_N"
wrk_run 1 "$URL/metrics" get.lua
wrk_run 8 "$URL/" push.lua BODY="$BODY_1000" METHOD=PUT GROUPS="$GROUPS_N" &
mixed=$!
wrk_run 4 "$URL/metrics" get.lua
wait "$mixed"
result rss_after_storm "$(rss_mib "$PID")"
sleep "$IDLE"
result rss_after_idle "$(rss_mib "$PID")"
result hwm "$(hwm_mib "$PID")"

log "== $HELD_CONNS idle keep-alive connections"
before=$(rss_mib "$PID")
python3 - "$port" "$HELD_CONNS" "$OUT/held" <<'PY' &
import socket, sys, time
port, count, flag = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
held = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"GET /-/healthy HTTP/1.1\r\nHost: bench\r\n\r\n")
    held.append(s)
for s in held:
    assert s.recv(4096).startswith(b"HTTP/1.1 200")
open(flag, "w").close()
time.sleep(5)
PY
holder=$!
until [ -e "$OUT/held" ]; do
  kill -0 "$holder" 2>/dev/null || { log "bench-memory.sh: the connection holder failed"; exit 1; }
  sleep 0.2
done
sleep 2
held=$(rss_mib "$PID")
wait "$holder"
result rss_before_conns "$before"
result rss_conns_held "$held"
result kib_per_held_conn "$(awk -v a="$before" -v b="$held" -v n="$HELD_CONNS" 'BEGIN{printf "%.1f", (b-a)*1024/n}')"
sleep "$IDLE"
result rss_conns_closed "$(rss_mib "$PID")"

python3 - "$RESULTS" <<'PY'
import sys
r = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]) if "\t" in line)
loaded, after = float(r["rss_loaded"]), float(r["rss_after_idle"])
print()
print("| idle | 100k loaded | loaded + 1 scrape | after storm | after storm + idle | peak (HWM) | after / loaded | conns held | KiB per conn | conns closed + idle |")
print("|---|---|---|---|---|---|---|---|---|---|")
print(f"| {r['rss_idle']} | {r['rss_loaded']} | {r['rss_loaded_scraped']} | {r['rss_after_storm']} | {r['rss_after_idle']} "
      f"| {r['hwm']} | {after / loaded:.2f}× | {r['rss_conns_held']} | {r['kib_per_held_conn']} | {r['rss_conns_closed']} |")
print(f"(MiB; goal 5: after storm + idle ≤ 2× loaded, idle ≤ 8 MiB; idle = binary {r['rss_idle_binary']}"
      f" + other files {r['rss_idle_libs']} + anonymous {r['rss_idle_anon']})")
PY
