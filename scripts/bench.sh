#!/usr/bin/env bash
# Load runs of pushrelay side by side with the Pushgateway, on this machine,
# in one run, and a table of both figures and their ratio.
#
# Usage: scripts/bench.sh            # full run, ~10 s per wrk scenario (~9 min)
#        QUICK=1 scripts/bench.sh    # smoke run, ~2 s per scenario
#        ACK_ONLY=1 scripts/bench.sh # only the sync/async/durable comparison
#        ONLY=vmagent scripts/bench.sh # only forwarding against vmagent
#        ONLY=relabel scripts/bench.sh # only relabeling's cost (issue 15)
# The re-send scenario compares the CPU pushrelay spends re-sending
# 100,000 cached series every 15 s with the CPU a Pushgateway holding them
# spends answering Prometheus' scrapes every 15 s, over RESEND_INTERVALS
# intervals (4; QUICK: 1).
# Forwarding against vmagent (issue 18) compares delivered samples/s and
# CPU per delivered sample of pushrelay (sync and async acknowledgement),
# vmagent and the Pushgateway, and what a push shed with 429 costs.
# Environment: ONLY (ack, vmagent, relabel, forward, cache or resend: run that part
#   alone; ACK_ONLY=1 is ONLY=ack),
#   DURATION (s per wrk run), FORWARD_CONNS ("32 64"),
#   CACHE_CONNS (16), ACK_CONNS (the first of FORWARD_CONNS),
#   SKIP_BUILD=1 (use the existing release build),
#   OUT (directory for logs and results; default: a temp dir, kept),
#   QUEUE_DIR (the durable run's disk queue; default $OUT/queue: it must be
#   on a real disk, as on tmpfs an fsync costs nothing).
#
# Needs: wrk, curl, python3 (free ports), prometheus-pushgateway,
# prometheus and vmagent (scripts/install-peers.sh installs them). Bodies:
# tests/fixtures/bench_10.txt and bench_1000.txt (the baseline's).
# Every server listens on 127.0.0.1 on a free port, is stopped by its PID
# when the script exits, and every wait is bounded.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

QUICK=${QUICK:-0}
if [ "$QUICK" = 1 ]; then
  DURATION=${DURATION:-2}
  FORWARD_CONNS=${FORWARD_CONNS:-32}
else
  DURATION=${DURATION:-10}
  FORWARD_CONNS=${FORWARD_CONNS:-32 64}
fi
CACHE_CONNS=${CACHE_CONNS:-16}
if [ "$QUICK" = 1 ]; then RESEND_INTERVALS=${RESEND_INTERVALS:-1}; else RESEND_INTERVALS=${RESEND_INTERVALS:-4}; fi
GROUPS_N=100
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-bench.XXXXXX")}
mkdir -p "$OUT"
RESULTS=$OUT/results.tsv
: >"$RESULTS"
BODY_10=$ROOT/tests/fixtures/bench_10.txt
BODY_1000=$ROOT/tests/fixtures/bench_1000.txt
export WRK_SCRIPTS=$ROOT/scripts/wrk

for tool in wrk curl python3 prometheus-pushgateway prometheus vmagent; do
  command -v "$tool" >/dev/null || { echo "bench.sh: $tool not found (scripts/install-peers.sh)" >&2; exit 1; }
done

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  timeout 1800 cargo build --release --quiet --bin pushrelay --example null_receiver
fi
PUSHRELAY=$ROOT/target/release/pushrelay
NULL_RECEIVER=$ROOT/target/release/examples/null_receiver

PIDS=()
cleanup() {
  local pid
  [ "${#PIDS[@]}" -gt 0 ] || return 0
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    timeout 10 tail --pid="$pid" -f /dev/null 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
  done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { printf '%s\n' "$*" >&2; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# start NAME READY_URL CMD... : starts CMD in the background, logs to
# $OUT/NAME.log, waits up to 30 s for READY_URL to answer 2xx; sets PID.
start() {
  local name=$1 ready=$2
  shift 2
  "$@" >"$OUT/$name.log" 2>&1 &
  PID=$!
  PIDS+=("$PID")
  local deadline=$((SECONDS + 30))
  until curl -fsS -o /dev/null --max-time 2 "$ready" 2>/dev/null; do
    if ! kill -0 "$PID" 2>/dev/null; then
      log "bench.sh: $name exited; its log:"; cat "$OUT/$name.log" >&2; exit 1
    fi
    [ "$SECONDS" -lt "$deadline" ] || { log "bench.sh: $name not ready after 30 s"; exit 1; }
    sleep 0.1
  done
}

stop() { # PID: stops one server started here and forgets it
  local pid kept=()
  kill "$1" 2>/dev/null || true
  timeout 10 tail --pid="$1" -f /dev/null 2>/dev/null || kill -9 "$1" 2>/dev/null || true
  for pid in "${PIDS[@]}"; do
    [ "$pid" = "$1" ] || kept+=("$pid")
  done
  PIDS=("${kept[@]}")
}

start_pushrelay() { # NAME [ARGS...]: pushrelay on a free port; sets PID, URL
  local name=$1 port
  shift
  port=$(free_port)
  URL=http://127.0.0.1:$port
  start "$name" "$URL/-/ready" "$PUSHRELAY" --web.listen-address="127.0.0.1:$port" --log.level=warn "$@"
}

start_pushgateway() { # NAME: a fresh in-memory Pushgateway; sets PID, URL
  local port
  port=$(free_port)
  URL=http://127.0.0.1:$port
  start "$1" "$URL/-/ready" prometheus-pushgateway --web.listen-address="127.0.0.1:$port" \
    --persistence.file="" --log.level=warn
}

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
hwm_mib() { awk '/^VmHWM/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
TICKS=$(getconf CLK_TCK)

# run_wrk PID CONNS SECONDS URL SCRIPT [ENV...]: runs wrk against URL, sets
# W_rps W_p50 W_p99 W_bad (non-2xx + socket errors) W_cores (server CPU),
# W_requests, W_non2xx and W_ticks (server CPU in clock ticks).
run_wrk() {
  local pid=$1 conns=$2 secs=$3 url=$4 script=$5 line t0 t1 threads=2
  shift 5
  [ "$conns" -ge 2 ] || threads=1
  t0=$(cpu_ticks "$pid")
  line=$(env "$@" timeout $((secs + 90)) wrk -t"$threads" -c"$conns" -d"${secs}s" --timeout 30s \
    -s "$WRK_SCRIPTS/$script" "$url" | tee -a "$OUT/wrk.log" | grep '^WRK ')
  t1=$(cpu_ticks "$pid")
  W_rps=$(sed -E 's/.* rps=([^ ]+).*/\1/' <<<"$line")
  W_p50=$(sed -E 's/.* p50_ms=([^ ]+).*/\1/' <<<"$line")
  W_p99=$(sed -E 's/.* p99_ms=([^ ]+).*/\1/' <<<"$line")
  W_bad=$(awk '{for(i=1;i<=NF;i++){split($i,kv,"="); if(kv[1]=="non2xx"||kv[1]=="errors") s+=kv[2]}} END{print s+0}' <<<"$line")
  W_requests=$(sed -E 's/.*requests=([0-9]+).*/\1/' <<<"$line")
  W_non2xx=$(sed -E 's/.* non2xx=([0-9]+).*/\1/' <<<"$line")
  W_ticks=$((t1 - t0))
  W_cores=$(awk -v a="$t0" -v b="$t1" -v t="$TICKS" -v d="$secs" 'BEGIN{printf "%.2f", (b-a)/t/d}')
  log "  $url c=$conns: $line server_cores=$W_cores"
}

# result KEY VALUE: one figure for the table.
result() { printf '%s\t%s\n' "$1" "$2" >>"$RESULTS"; }

# put_groups URL BODY N: PUTs BODY to N groups g000.., one after the other.
put_groups() {
  local g
  for ((g = 0; g < $3; g++)); do
    curl -fsS -o /dev/null --max-time 60 -X PUT --data-binary "@$2" \
      -H 'Content-Type: text/plain; version=0.0.4' "$1/metrics/job/bench/instance/$(printf 'g%03d' "$g")"
  done
}

samples_of_null() { curl -fsS --max-time 5 "$1/" | awk '$1=="samples" {print $2}'; }
samples_of_prometheus() {
  curl -fsS --max-time 5 "$1/metrics" | awk '$1=="prometheus_tsdb_head_samples_appended_total" || $1 ~ /^prometheus_tsdb_head_samples_appended_total\{/ {s+=$2} END{printf "%.0f", s}'
}

ONLY=${ONLY:-all}
[ "${ACK_ONLY:-0}" != 1 ] || ONLY=ack
part() { [ "$ONLY" = all ] || [ "$ONLY" = "$1" ]; }

log "bench.sh: results and logs in $OUT (QUICK=$QUICK, ${DURATION}s per run)"
log "machine: $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo); load: $(cut -d' ' -f1-3 /proc/loadavg)"
result load_before "$(cut -d' ' -f1-3 /proc/loadavg)"

# ---------------------------------------------------------- ack modes
# The same load in the three acknowledgement modes, to a null receiver so
# that pushrelay's own cost shows: 1,000-series POSTs rotating over 100
# groups. sync answers once the backend took the push, async once it is
# queued in memory, durable once it is fsynced to the disk queue.
if part ack; then
ACK_CONNS=${ACK_CONNS:-${FORWARD_CONNS%% *}}
QUEUE_DIR=${QUEUE_DIR:-$OUT/queue}
log "== ack modes: sync, async, durable (queue in $QUEUE_DIR), c=$ACK_CONNS"
port=$(free_port)
start null_receiver_ack "http://127.0.0.1:$port/" "$NULL_RECEIVER" "$port"
backend_pid=$PID
for ack in sync async durable; do
  args=(--remote-write.url="http://127.0.0.1:$port/api/v1/write" --remote-write.ack="$ack")
  if [ "$ack" = durable ]; then
    rm -rf "$QUEUE_DIR"
    args+=(--remote-write.queue.dir="$QUEUE_DIR")
  fi
  start_pushrelay "pushrelay-ack-$ack" "${args[@]}"
  run_wrk "$PID" "$ACK_CONNS" "$DURATION" "$URL/" push.lua BODY="$BODY_1000" METHOD=POST GROUPS="$GROUPS_N"
  # Acknowledged: 2xx answers only (a full queue answers 429).
  result "ack_${ack}_sps" "$(awk -v r="$W_rps" -v n="$W_requests" -v b="$W_non2xx" \
    'BEGIN{printf "%.0f", (n > 0 ? r * (n - b) / n : 0) * 1000}')"
  result "ack_${ack}_p50" "$W_p50"
  result "ack_${ack}_p99" "$W_p99"
  result "ack_${ack}_bad" "$W_bad"
  result "ack_${ack}_cores" "$W_cores"
  stop "$PID"
done
stop "$backend_pid"
rm -rf "$QUEUE_DIR"

python3 - "$RESULTS" <<'PY'
import sys
r = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]) if "\t" in line)
print()
print("| ack mode | samples/s acknowledged | p50 ack ms | p99 ack ms | failed requests | pushrelay cores |")
print("|---|---|---|---|---|---|")
for ack in ("sync", "async", "durable"):
    sps = float(r.get(f"ack_{ack}_sps", "nan"))
    print(f"| {ack} | {sps/1e6:.2f}M | {r.get(f'ack_{ack}_p50', '–')} | {r.get(f'ack_{ack}_p99', '–')} "
          f"| {r.get(f'ack_{ack}_bad', '–')} | {r.get(f'ack_{ack}_cores', '–')} |")
durable, fast = float(r.get("ack_durable_sps", "nan")), float(r.get("ack_async_sps", "nan"))
print(f"\ndurable keeps {durable / fast:.0%} of async's throughput (target: at least 50%).")
PY
fi
# --------------------------------------------- against vmagent (issue 18)
# Forwarding side by side, to one null receiver, the same 1,000-series
# POSTs at VM_CONNS connections: pushrelay acknowledging sync and async
# (POSTs rotating over 100 groups, as a fleet of jobs pushes), vmagent
# (its /api/v1/import/prometheus, forwarding by remote_write 1.0) and the
# Pushgateway (it forwards nothing: its figures count what it stored).
# A third pushrelay run overloads async acknowledgement: its queue holds
# OVERLOAD_QUEUE (32) pushes per shard.
# Delivered = what the receiver counted during the run; CPU per sample =
# the server's utime+stime over the run / delivered samples. Then the cost
# of shedding: pushrelay async whose backend accepts connections and never
# answers, so its (small) queue stays full and every push is a 429.
VM_CONNS=${VM_CONNS:-${FORWARD_CONNS%% *}}
OVERLOAD_QUEUE=${OVERLOAD_QUEUE:-32}
# vm_run NAME PID URL GROUPS: one wrk run against a forwarder of
# $backend_url; records NAME_{requests,non2xx,delivered,ticks,p99}.
vm_run() {
  local name=$1 pid=$2 url=$3 groups=$4 before after
  before=$(samples_of_null "$backend_url")
  run_wrk "$pid" "$VM_CONNS" "$DURATION" "$url" push.lua BODY="$BODY_1000" METHOD=POST GROUPS="$groups"
  after=$(samples_of_null "$backend_url")
  result "vm_${name}_requests" "$W_requests"
  result "vm_${name}_non2xx" "$W_non2xx"
  result "vm_${name}_errors" "$((W_bad - W_non2xx))"
  result "vm_${name}_delivered" "$((after - before))"
  result "vm_${name}_ticks" "$W_ticks"
  result "vm_${name}_p99" "$W_p99"
}
if part vmagent; then
  log "== forward against vmagent: delivered samples/s and CPU per sample, c=$VM_CONNS"
  port=$(free_port)
  start null_receiver_vm "http://127.0.0.1:$port/" "$NULL_RECEIVER" "$port"
  backend_pid=$PID backend_url=http://127.0.0.1:$port
  for ack in sync async overload; do
    args=(--remote-write.url="$backend_url/api/v1/write" --remote-write.ack="${ack/overload/async}")
    # Overload: a queue of a few requests' worth fills within a second,
    # so the run shows the steady state of shedding (the default 1,024
    # pushes per shard take longer than a run to fill at this rate).
    [ "$ack" != overload ] || args+=(--remote-write.queue-capacity="$OVERLOAD_QUEUE")
    start_pushrelay "pushrelay-vm-$ack" "${args[@]}"
    vm_run "$ack" "$PID" "$URL/" "$GROUPS_N"
    stop "$PID"
  done
  vport=$(free_port)
  start vmagent "http://127.0.0.1:$vport/health" vmagent -httpListenAddr="127.0.0.1:$vport" \
    -remoteWrite.url="$backend_url/api/v1/write" -remoteWrite.tmpDataPath="$OUT/vmagent-data" \
    -loggerLevel=WARN
  vm_run vmagent "$PID" "http://127.0.0.1:$vport/api/v1/import/prometheus" 0
  stop "$PID"
  start_pushgateway pushgateway-vm
  # One group: a Pushgateway holding 100 groups × 1,000 series checks
  # every POST against all of them (10 POSTs/s here).
  vm_run pushgateway "$PID" "$URL/metrics/job/bench/instance/fixed" 0
  stop "$PID"
  stop "$backend_pid"

  # Shedding: a backend that takes connections and never answers.
  stall_port_file=$OUT/stall.port
  python3 -c 'import socket,sys,time
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(4096)
open(sys.argv[1],"w").write(str(s.getsockname()[1])); time.sleep(86400)' "$stall_port_file" &
  stall_pid=$!
  PIDS+=("$stall_pid")
  for _ in $(seq 50); do [ -s "$stall_port_file" ] && break; sleep 0.1; done
  port=$(free_port)
  URL=http://127.0.0.1:$port
  start pushrelay-shed "$URL/-/healthy" "$PUSHRELAY" --web.listen-address="127.0.0.1:$port" --log.level=error \
    --remote-write.url="http://127.0.0.1:$(cat "$stall_port_file")/api/v1/write" --remote-write.ack=async \
    --remote-write.queue-capacity=4
  shed_pid=$PID
  # Fill the queues (4 shards × 4 pushes, plus one in flight each).
  put_groups "$URL" "$BODY_1000" 40 2>/dev/null || true
  # What it spends idle meanwhile (retries, readiness probes) is not the
  # sheds' cost: measured over a quiet stretch and taken off.
  idle_secs=$(( DURATION < 5 ? DURATION : 5 ))
  idle_t0=$(cpu_ticks "$shed_pid")
  sleep "$idle_secs"
  result vm_shed_idle_ticks_per_s "$(awk -v a="$idle_t0" -v b="$(cpu_ticks "$shed_pid")" -v d="$idle_secs" 'BEGIN{printf "%.2f", (b-a)/d}')"
  run_wrk "$shed_pid" "$VM_CONNS" "$DURATION" "$URL/" push.lua BODY="$BODY_1000" METHOD=POST GROUPS="$GROUPS_N"
  result vm_shed_requests "$W_requests"
  result vm_shed_non2xx "$W_non2xx"
  result vm_shed_errors "$((W_bad - W_non2xx))"
  result vm_shed_ticks "$W_ticks"
  result vm_shed_p99 "$W_p99"
  kill -9 "$shed_pid" 2>/dev/null || true  # its queue would wait for the stalled backend
  stop "$shed_pid"
  stop "$stall_pid"

  python3 - "$RESULTS" "$TICKS" "$DURATION" <<'PY'
import sys
r = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]) if "\t" in line)
ticks, secs = float(sys.argv[2]), float(sys.argv[3])
SERIES = 1000
def f(k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None
rows = {}
print()
print("| server | delivered samples/s | CPU ns per delivered sample | pushes answered 429 | p99 ms | other errors |")
print("|---|---|---|---|---|---|")
for name, label in (("sync", "pushrelay, ack sync"), ("async", "pushrelay, ack async"),
                    ("overload", "pushrelay, ack async, overloaded (small queue)"),
                    ("vmagent", "vmagent"), ("pushgateway", "Pushgateway (stores, forwards nothing)")):
    req, non2xx, delivered, t = (f(f"vm_{name}_{k}") for k in ("requests", "non2xx", "delivered", "ticks"))
    if req is None:
        continue
    if name == "pushgateway":
        delivered = (req - non2xx) * SERIES
    ns = t / ticks * 1e9 / delivered if delivered else float("nan")
    rows[name] = (delivered / secs, ns)
    share = non2xx / req if req else 0
    print(f"| {label} | {delivered / secs / 1e6:.2f}M | {ns:.0f} | {share:.0%} of {int(req)} | "
          f"{r.get(f'vm_{name}_p99', '–')} | {r.get(f'vm_{name}_errors', '–')} |")
if "vmagent" in rows:
    vm_sps, vm_ns = rows["vmagent"]
    for name in ("sync", "async"):
        if name in rows:
            sps, ns = rows[name]
            print(f"- goal 1, {name}: delivered {sps / vm_sps:.2f}× vmagent's (target ≥ 1), "
                  f"CPU per sample {ns / vm_ns:.2f}× vmagent's (target ≤ 0.5)")
# Shedding: CPU per 429 against CPU per accepted push of the sync run
# (the whole cost of a push: parse, convert, send, answer).
shed_req, shed_non2xx, shed_t = f("vm_shed_requests"), f("vm_shed_non2xx"), f("vm_shed_ticks")
if shed_req and "sync" in rows:
    shed_t = max(shed_t - (f("vm_shed_idle_ticks_per_s") or 0) * secs, 0)
    per_429 = shed_t / ticks * 1e6 / shed_req
    sync_req, sync_non2xx, sync_t = f("vm_sync_requests"), f("vm_sync_non2xx"), f("vm_sync_ticks")
    per_push = sync_t / ticks * 1e6 / (sync_req - sync_non2xx)
    print(f"- goal 2: a shed push (queue full, {shed_non2xx / shed_req:.0%} of {int(shed_req)} answered 429) "
          f"costs {per_429:.1f} µs of CPU (idle CPU taken off); an accepted sync push {per_push:.0f} µs: "
          f"1/{per_push / per_429:.0f} (target < 1/20)")
for name in ("async", "overload"):
    if name in rows and "sync" in rows:
        req, non2xx, t = f(f"vm_{name}_requests"), f(f"vm_{name}_non2xx"), f(f"vm_{name}_ticks")
        accepted = (req - non2xx) * SERIES
        print(f"- goal 2, {name}: {non2xx / req:.0%} answered 429, delivered "
              f"{rows[name][0] / 1e6:.2f}M samples/s ({rows[name][0] / rows['sync'][0]:.2f}× sync's; target ≥ 1), "
              f"{t / ticks * 1e9 / accepted:.0f} ns of CPU per accepted sample")
PY
fi
# ------------------------------------------------ relabeling (issue 15)
# What external labels and write relabeling cost end to end: the same
# 1,000-series POSTs (rotating over 100 groups, RELABEL_CONNS connections)
# to pushrelay forwarding with ack sync to one null receiver, without
# rules and with the two external labels and five rules of
# benches/relabel_5_rules.yaml (the criterion benches' `*_relabel_5_rules`).
# Both servers run side by side and the wrk runs alternate between them,
# RELABEL_ROUNDS times each, so that both see the same machine. CPU per
# delivered sample = the server's utime+stime over its runs / the samples
# the receiver counted during them (the rules' `keep` drops the two
# push-time series: 1,000 per push with rules, 1,002 without), and per
# pushed series (accepted pushes × 1,000). Issue 15's goal: with rules at
# most 1.2× without.
if part relabel; then
  RELABEL_CONNS=${RELABEL_CONNS:-${FORWARD_CONNS%% *}}
  if [ "$QUICK" = 1 ]; then RELABEL_ROUNDS=${RELABEL_ROUNDS:-1}; else RELABEL_ROUNDS=${RELABEL_ROUNDS:-3}; fi
  log "== relabeling: forward sync without and with 5 rules, c=$RELABEL_CONNS, $RELABEL_ROUNDS rounds"
  port=$(free_port)
  start null_receiver_relabel "http://127.0.0.1:$port/" "$NULL_RECEIVER" "$port"
  backend_pid=$PID backend_url=http://127.0.0.1:$port
  args=(--remote-write.url="$backend_url/api/v1/write" --remote-write.ack=sync)
  start_pushrelay pushrelay-relabel-none "${args[@]}"
  declare -A rl_pid rl_url rl_requests rl_non2xx rl_delivered rl_ticks
  rl_pid[none]=$PID rl_url[none]=$URL
  start_pushrelay pushrelay-relabel-rules "${args[@]}" --config="$ROOT/benches/relabel_5_rules.yaml"
  rl_pid[rules]=$PID rl_url[rules]=$URL
  for kind in none rules; do
    rl_requests[$kind]=0 rl_non2xx[$kind]=0 rl_delivered[$kind]=0 rl_ticks[$kind]=0
  done
  for ((round = 0; round < RELABEL_ROUNDS; round++)); do
    for kind in none rules; do
      before=$(samples_of_null "$backend_url")
      run_wrk "${rl_pid[$kind]}" "$RELABEL_CONNS" "$DURATION" "${rl_url[$kind]}/" push.lua BODY="$BODY_1000" \
        METHOD=POST GROUPS="$GROUPS_N"
      after=$(samples_of_null "$backend_url")
      rl_requests[$kind]=$((rl_requests[$kind] + W_requests))
      rl_non2xx[$kind]=$((rl_non2xx[$kind] + W_non2xx))
      rl_delivered[$kind]=$((rl_delivered[$kind] + after - before))
      rl_ticks[$kind]=$((rl_ticks[$kind] + W_ticks))
    done
  done
  for kind in none rules; do
    result "relabel_${kind}_requests" "${rl_requests[$kind]}"
    result "relabel_${kind}_non2xx" "${rl_non2xx[$kind]}"
    result "relabel_${kind}_delivered" "${rl_delivered[$kind]}"
    result "relabel_${kind}_ticks" "${rl_ticks[$kind]}"
    stop "${rl_pid[$kind]}"
  done
  stop "$backend_pid"
  result relabel_load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

  python3 - "$RESULTS" "$TICKS" "$DURATION" "$RELABEL_ROUNDS" "$RELABEL_CONNS" <<'PY'
import sys
r = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]) if "\t" in line)
ticks, secs, rounds, conns = float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
SERIES = 1000
rows = {}
print()
print(f"| pushrelay, ack sync, c={conns} | pushes accepted | delivered samples/s | CPU ns per delivered sample "
      "| CPU ns per pushed series | failed pushes |")
print("|---|---|---|---|---|---|")
for kind, label in (("none", "no rules"), ("rules", "2 external labels + 5 rules")):
    req, non2xx, delivered, t = (float(r[f"relabel_{kind}_{k}"]) for k in ("requests", "non2xx", "delivered", "ticks"))
    accepted = req - non2xx
    cpu_ns = t / ticks * 1e9
    per_delivered = cpu_ns / delivered if delivered else float("nan")
    per_pushed = cpu_ns / (accepted * SERIES) if accepted else float("nan")
    rows[kind] = (per_delivered, per_pushed)
    print(f"| {label} | {int(accepted)} | {delivered / (secs * rounds) / 1e6:.2f}M | {per_delivered:.0f} "
          f"| {per_pushed:.0f} | {int(non2xx)} |")
(nd, np_), (rd, rp) = rows["none"], rows["rules"]
print(f"\nrelabeling: CPU per delivered sample {rd / nd:.2f}× without rules, per pushed series {rp / np_:.2f}× "
      f"(issue 15: at most 1.20×); {rounds} alternating rounds of {secs:.0f} s each; "
      f"load before {r.get('load_before', '–')}, after {r.get('relabel_load_after', '–')}")
PY

  # Instructions, load-independent (scripts/callgrind-forward.sh): the
  # per-push path under callgrind, without and with the rules.
  if [ "${RELABEL_CALLGRIND:-$([ "$ONLY" = relabel ] && command -v valgrind >/dev/null && echo 1 || echo 0)}" = 1 ]; then
    log "== relabeling under callgrind"
    for kind in none rules; do
      config=
      [ "$kind" = none ] || config=$ROOT/benches/relabel_5_rules.yaml
      CONFIG=$config OUT=$OUT/callgrind-relabel-$kind PUSHRELAY=$PUSHRELAY NULL_RECEIVER=$NULL_RECEIVER \
        "$ROOT/scripts/callgrind-forward.sh"
    done
  fi
fi
case $ONLY in ack | vmagent | relabel) exit 0 ;; esac

# ---------------------------------------------------------------- forward
part forward && log "== forward: 1,000-series POSTs to one group"
part forward && for backend in null prometheus; do
  port=$(free_port)
  if [ "$backend" = null ]; then
    start null_receiver "http://127.0.0.1:$port/" "$NULL_RECEIVER" "$port"
    write_url=http://127.0.0.1:$port/api/v1/write
  else
    pdir=$OUT/prometheus-data
    mkdir -p "$pdir"
    printf 'global:\n  scrape_interval: 15s\nscrape_configs: []\n' >"$OUT/prometheus.yml"
    start prometheus "http://127.0.0.1:$port/-/ready" prometheus --config.file="$OUT/prometheus.yml" \
      --storage.tsdb.path="$pdir" --web.listen-address="127.0.0.1:$port" \
      --web.enable-remote-write-receiver --log.level=warn
  fi
  backend_pid=$PID
  backend_url=http://127.0.0.1:$port
  write_url=$backend_url/api/v1/write
  start_pushrelay "pushrelay-forward-$backend" --remote-write.url="$write_url"
  relay_pid=$PID relay_url=$URL
  for conns in $FORWARD_CONNS; do
    before=$(samples_of_$backend "$backend_url")
    backend_t0=$(cpu_ticks "$backend_pid")
    run_wrk "$relay_pid" "$conns" "$DURATION" "$relay_url/metrics/job/bench/instance/fixed" push.lua \
      BODY="$BODY_1000" METHOD=POST
    after=$(samples_of_$backend "$backend_url")
    result "forward_${backend}_c${conns}_backend_cores" "$(awk -v a="$backend_t0" -v b="$(cpu_ticks "$backend_pid")" \
      -v t="$TICKS" -v d="$DURATION" 'BEGIN{printf "%.2f", (b-a)/t/d}')"
    result "forward_${backend}_c${conns}_sps" "$(awk -v r="$W_rps" 'BEGIN{printf "%.0f", r*1000}')"
    result "forward_${backend}_c${conns}_p50" "$W_p50"
    result "forward_${backend}_c${conns}_bad" "$W_bad"
    result "forward_${backend}_c${conns}_cores" "$W_cores"
    # What the backend counted, push_time series included (2 per push).
    result "forward_${backend}_c${conns}_backend_sps" "$(awk -v a="$before" -v b="$after" -v d="$DURATION" 'BEGIN{printf "%.0f", (b-a)/d}')"
  done
  result "forward_${backend}_rss" "$(rss_mib "$relay_pid")"
  stop "$relay_pid"
  stop "$backend_pid"
done

# ------------------------------------------------------------ cache mode
# Each server runs the same sequence: idle RSS, POST 10 / 1,000 series to a
# group of their own, then a fresh server loaded with 100 groups × 1,000
# series for the push latency, the rotating PUTs and the scrape.
part cache && for server in pushrelay pushgateway; do
  log "== cache: $server"
  if [ "$server" = pushrelay ]; then start_pushrelay "pushrelay-cache"; else start_pushgateway pushgateway; fi
  pid=$PID url=$URL
  sleep 1
  result "${server}_rss_idle" "$(rss_mib "$pid")"
  for conns in $FORWARD_CONNS; do
    run_wrk "$pid" "$conns" "$DURATION" "$url/metrics/job/bench/instance/post1000c$conns" push.lua \
      BODY="$BODY_1000" METHOD=POST
    result "${server}_post1000_c${conns}_sps" "$(awk -v r="$W_rps" 'BEGIN{printf "%.0f", r*1000}')"
    result "${server}_post1000_c${conns}_bad" "$W_bad"
    result "${server}_post1000_c${conns}_cores" "$W_cores"
  done
  run_wrk "$pid" "$CACHE_CONNS" "$DURATION" "$url/metrics/job/bench/instance/post10" push.lua \
    BODY="$BODY_10" METHOD=POST
  result "${server}_post10_rps" "$W_rps"
  result "${server}_post10_bad" "$W_bad"
  stop "$pid"

  if [ "$server" = pushrelay ]; then start_pushrelay "pushrelay-cache-loaded"; else start_pushgateway pushgateway-loaded; fi
  pid=$PID url=$URL
  started=$SECONDS
  put_groups "$url" "$BODY_1000" "$GROUPS_N"
  log "  loaded $GROUPS_N groups × 1,000 series in $((SECONDS - started)) s"
  sleep 1
  result "${server}_rss_loaded" "$(rss_mib "$pid")"
  run_wrk "$pid" 1 "$DURATION" "$url/metrics/job/bench/instance/latency" push.lua \
    BODY="$BODY_10" METHOD=POST
  result "${server}_post10_loaded_p50" "$W_p50"
  result "${server}_post10_loaded_p99" "$W_p99"
  run_wrk "$pid" "$CACHE_CONNS" "$DURATION" "$url/" push.lua \
    BODY="$BODY_1000" METHOD=PUT GROUPS="$GROUPS_N"
  result "${server}_put_rotating_sps" "$(awk -v r="$W_rps" 'BEGIN{printf "%.0f", r*1000}')"
  result "${server}_put_rotating_bad" "$W_bad"
  result "${server}_put_rotating_cores" "$W_cores"
  run_wrk "$pid" 1 "$DURATION" "$url/metrics" get.lua
  result "${server}_scrape_rps" "$W_rps"
  result "${server}_scrape_p50" "$W_p50"
  result "${server}_scrape_bad" "$W_bad"
  result "${server}_scrape_bytes" "$(curl -fsS --max-time 60 "$url/metrics" | wc -c)"
  result "${server}_rss_after_load" "$(rss_mib "$pid")"
  result "${server}_hwm" "$(hwm_mib "$pid")"
  stop "$pid"
done
# ---------------------------------------------------------------- re-send
# The setup re-sending replaces: a Pushgateway holding 100 groups × 1,000
# series, scraped by Prometheus every 15 s; against pushrelay holding the
# same groups and re-sending them every 15 s to a null receiver (the
# backend's cost is the same samples either way). CPU of the server alone,
# after one interval to settle, over RESEND_INTERVALS intervals.
resend_part() {
log "== re-send: 100k cached series every 15 s vs a Pushgateway scraped every 15 s"
resend_secs=$((RESEND_INTERVALS * 15))
port=$(free_port)
start null_receiver_resend "http://127.0.0.1:$port/" "$NULL_RECEIVER" "$port"
null_pid=$PID
start_pushrelay pushrelay-resend --remote-write.url="http://127.0.0.1:$port/api/v1/write" \
  --remote-write.resend-interval=15s
relay_pid=$PID
put_groups "$URL" "$BODY_1000" "$GROUPS_N"
start_pushgateway pushgateway-scraped
gateway_pid=$PID gateway_url=$URL
put_groups "$gateway_url" "$BODY_1000" "$GROUPS_N"
pport=$(free_port)
mkdir -p "$OUT/prometheus-scrape"
printf 'global:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: pushgateway\n    honor_labels: true\n    static_configs: [{targets: ["%s"]}]\n' \
  "${gateway_url#http://}" >"$OUT/prometheus-scrape.yml"
start prometheus-scrape "http://127.0.0.1:$pport/-/ready" prometheus --config.file="$OUT/prometheus-scrape.yml" \
  --storage.tsdb.path="$OUT/prometheus-scrape" --web.listen-address="127.0.0.1:$pport" --log.level=warn
prometheus_pid=$PID
sleep 15
relay_t0=$(cpu_ticks "$relay_pid") gateway_t0=$(cpu_ticks "$gateway_pid") null_before=$(samples_of_null "http://127.0.0.1:$port")
sleep "$resend_secs"
per_interval() { awk -v a="$1" -v b="$2" -v t="$TICKS" -v n="$RESEND_INTERVALS" 'BEGIN{printf "%.3f", (b-a)/t/n}'; }
result resend_pushrelay_cpu "$(per_interval "$relay_t0" "$(cpu_ticks "$relay_pid")")"
result resend_pushgateway_cpu "$(per_interval "$gateway_t0" "$(cpu_ticks "$gateway_pid")")"
result resend_samples_per_interval "$(awk -v a="$null_before" -v b="$(samples_of_null "http://127.0.0.1:$port")" \
  -v n="$RESEND_INTERVALS" 'BEGIN{printf "%.0f", (b-a)/n}')"
result resend_pushrelay_rss "$(rss_mib "$relay_pid")"
for pid in "$prometheus_pid" "$gateway_pid" "$relay_pid" "$null_pid"; do stop "$pid"; done
}
part resend && resend_part
result load_after "$(cut -d' ' -f1-3 /proc/loadavg)"

# ------------------------------------------------------------------ table
python3 - "$RESULTS" "$FORWARD_CONNS" <<'PY'
import sys
r = dict(line.rstrip("\n").split("\t", 1) for line in open(sys.argv[1]) if "\t" in line)
conns = sys.argv[2].split()
def num(k):
    try:
        return float(r[k])
    except (KeyError, ValueError):
        return None
def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "samples/s":
        return f"{v/1e6:.2f}M" if v >= 1e6 else f"{v/1e3:.1f}k"
    if unit == "ms":
        return f"{v:.2f}"
    if unit == "MiB":
        return f"{v:.1f}"
    if unit == "s":
        return f"{v:.3f}"
    return f"{v:.1f}"
rows = []
# (label, unit, ours, theirs, higher_is_better, target, bad-keys)
for c in conns:
    for b in ("null", "prometheus"):
        rows.append((f"forward POST 1,000 series, c={c}, → {b} receiver", "samples/s",
                     num(f"forward_{b}_c{c}_sps"), num(f"pushgateway_post1000_c{c}_sps"), True,
                     "≥ 15×", [f"forward_{b}_c{c}_bad", f"pushgateway_post1000_c{c}_bad"]))
for c in conns:
    rows.append((f"cache POST 1,000 series, one group, c={c}", "samples/s",
                 num(f"pushrelay_post1000_c{c}_sps"), num(f"pushgateway_post1000_c{c}_sps"), True, "",
                 [f"pushrelay_post1000_c{c}_bad", f"pushgateway_post1000_c{c}_bad"]))
rows += [
    ("cache POST 10 series, one group", "req/s", num("pushrelay_post10_rps"), num("pushgateway_post10_rps"), True, "",
     ["pushrelay_post10_bad", "pushgateway_post10_bad"]),
    ("cache POST 10 series, 100k stored, p50 (c=1)", "ms", num("pushrelay_post10_loaded_p50"), num("pushgateway_post10_loaded_p50"), False, "p50 ≤ 1 ms", []),
    ("cache POST 10 series, 100k stored, p99 (c=1)", "ms", num("pushrelay_post10_loaded_p99"), num("pushgateway_post10_loaded_p99"), False, "", []),
    ("cache PUT 1,000 series over 100 groups (100k stored)", "samples/s", num("pushrelay_put_rotating_sps"), num("pushgateway_put_rotating_sps"), True, "≥ 100×",
     ["pushrelay_put_rotating_bad", "pushgateway_put_rotating_bad"]),
    ("GET /metrics, 100k series (c=1)", "req/s", num("pushrelay_scrape_rps"), num("pushgateway_scrape_rps"), True, "≥ 10×",
     ["pushrelay_scrape_bad", "pushgateway_scrape_bad"]),
    ("GET /metrics, 100k series, p50", "ms", num("pushrelay_scrape_p50"), num("pushgateway_scrape_p50"), False, "", []),
    ("re-send 100k series every 15 s vs answering a 15 s scrape: CPU per interval", "s",
     num("resend_pushrelay_cpu"), num("resend_pushgateway_cpu"), False, "> 1×", []),
    ("RSS idle", "MiB", num("pushrelay_rss_idle"), num("pushgateway_rss_idle"), False, "≤ 8 MiB", []),
    ("RSS, 100k series stored", "MiB", num("pushrelay_rss_loaded"), num("pushgateway_rss_loaded"), False, "≤ 1/3", []),
    ("RSS after the loaded runs", "MiB", num("pushrelay_rss_after_load"), num("pushgateway_rss_after_load"), False, "", []),
    ("peak RSS (VmHWM), loaded server", "MiB", num("pushrelay_hwm"), num("pushgateway_hwm"), False, "", []),
]
print()
print("| scenario | unit | pushrelay | Pushgateway | ratio | target | failed requests |")
print("|---|---|---|---|---|---|---|")
for label, unit, ours, theirs, higher, target, bad in rows:
    if ours and theirs:
        ratio = ours / theirs if higher else theirs / ours
        ratio_s = f"{ratio:.1f}×" if ratio < 100 else f"{ratio:.0f}×"
    else:
        ratio_s = "–"
    failed = "/".join(str(int(num(k) or 0)) for k in bad) if bad else ""
    print(f"| {label} | {unit} | {fmt(ours, unit)} | {fmt(theirs, unit)} | {ratio_s} | {target} | {failed} |")
print()
print("ratio: how many times better pushrelay is (higher rate, or lower time/memory).")
extra = []
for c in conns:
    for b in ("null", "prometheus"):
        extra.append(f"forward→{b} c={c}: backend counted {fmt(num(f'forward_{b}_c{c}_backend_sps'), 'samples/s')} samples/s "
                     f"(push_time series included); cores used: pushrelay {r.get(f'forward_{b}_c{c}_cores', '–')}, "
                     f"receiver {r.get(f'forward_{b}_c{c}_backend_cores', '–')}")
for c in conns:
    extra.append(f"POST 1,000 series c={c}, cores used: pushrelay (cache) {r.get(f'pushrelay_post1000_c{c}_cores', '–')}, "
                 f"Pushgateway {r.get(f'pushgateway_post1000_c{c}_cores', '–')}")
for s in ("pushrelay", "pushgateway"):
    extra.append(f"{s}: PUT rotating used {r.get(s + '_put_rotating_cores', '–')} cores; "
                 f"/metrics body {r.get(s + '_scrape_bytes', '–')} B")
extra.append(f"forwarding pushrelay RSS after the runs: null {r.get('forward_null_rss', '–')} MiB, prometheus {r.get('forward_prometheus_rss', '–')} MiB")
extra.append(f"re-send: {r.get('resend_samples_per_interval', '–')} samples re-sent per interval "
             f"(100k series + 2 push_time series per group); re-sending pushrelay RSS {r.get('resend_pushrelay_rss', '–')} MiB")
extra.append(f"load average before: {r.get('load_before', '–')}; after: {r.get('load_after', '–')}")
for line in extra:
    print("- " + line)
PY
log "bench.sh: raw figures in $RESULTS, wrk output in $OUT/wrk.log"
