#!/usr/bin/env bash
# Instructions per forwarded series: pushrelay forwarding (ack sync) to the
# null receiver under valgrind's callgrind, pushed the 1,000-series body
# FEW and then 5 × FEW times (POSTs one after the other on one keep-alive
# connection, rotating over PUSH_GROUPS groups). The difference between the
# two runs' totals, divided by the series pushed in between, is the per-push
# path (handler, parse, convert, relabel, shard worker, encode, snappy,
# send) without start-up, warm-up and shutdown; with PUSH_GROUPS <= FEW
# every push in the difference is a group's push again, as a job pushes
# every interval. Instruction counts depend far less on the machine's load
# than timings do, though not nil: idle threads' timers run by the clock
# (repeat a figure before trusting a difference of a few %).
#
# Usage: scripts/callgrind-forward.sh                       # no rules
#        CONFIG=benches/relabel_5_rules.yaml scripts/callgrind-forward.sh
# Environment: CONFIG (a pushrelay config file; none by default),
#   FEW (20), PUSH_GROUPS (10), PUSHRELAY, NULL_RECEIVER (default: the release
#   builds in target/), OUT (directory for the profiles; default: a temp
#   dir, kept).
# Prints one line: instructions per pushed series for the whole path and
# for `Relabeler::apply` (inclusive).
#
# Build without LTO first, so that the stages stay separate functions:
#   CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
#     CARGO_PROFILE_RELEASE_DEBUG=line-tables-only \
#     cargo build --release --bin pushrelay --example null_receiver
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
FEW=${FEW:-20}
PUSH_GROUPS=${PUSH_GROUPS:-10}
PUSHRELAY=${PUSHRELAY:-$ROOT/target/release/pushrelay}
NULL_RECEIVER=${NULL_RECEIVER:-$ROOT/target/release/examples/null_receiver}
BODY=$ROOT/tests/fixtures/bench_1000.txt
SERIES_PER_PUSH=1000
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-callgrind.XXXXXX")}
mkdir -p "$OUT"
for tool in valgrind callgrind_annotate curl python3; do
  command -v "$tool" >/dev/null || { echo "callgrind-forward.sh: $tool not found" >&2; exit 1; }
done
config=()
[ -z "${CONFIG:-}" ] || config=(--config="$CONFIG")

# shellcheck source=lib/valgrind-servers.sh
. "$ROOT/scripts/lib/valgrind-servers.sh"
wait_ready() { # URL PID SECONDS
  local deadline=$((SECONDS + $3))
  until curl -fsS -o /dev/null --max-time 5 "$1" 2>/dev/null; do
    kill -0 "$2" 2>/dev/null || { echo "callgrind-forward.sh: a server exited (logs in $OUT)" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "callgrind-forward.sh: $1 not ready" >&2; exit 1; }
    sleep 0.5
  done
}

rport=$(free_port)
"$NULL_RECEIVER" "$rport" >"$OUT/null_receiver.log" 2>&1 &
PIDS+=("$!")
wait_ready "http://127.0.0.1:$rport/" "$!" 30

# profile PUSHES: the profile of a server pushed PUSHES times.
profile() {
  local pushes=$1 port relay i urls=()
  port=$(free_port)
  valgrind --tool=callgrind --callgrind-out-file="$OUT/callgrind.$pushes" \
    "$PUSHRELAY" --web.listen-address="127.0.0.1:$port" --log.level=warn \
    --remote-write.url="http://127.0.0.1:$rport/api/v1/write" --remote-write.ack=sync \
    "${config[@]}" >"$OUT/pushrelay.$pushes.log" 2>&1 &
  relay=$!
  PIDS+=("$relay")
  wait_ready "http://127.0.0.1:$port/-/ready" "$relay" 120
  for ((i = 0; i < pushes; i++)); do
    urls+=("http://127.0.0.1:$port/metrics/job/bench/instance/$(printf 'g%03d' $((i % PUSH_GROUPS)))")
  done
  curl -fsS --max-time 1200 --data-binary "@$BODY" -H 'Content-Type: text/plain; version=0.0.4' \
    "${urls[@]}" >/dev/null
  # Callgrind writes the profile as the server exits.
  kill "$relay"
  timeout 300 tail --pid="$relay" -f /dev/null
}
profile "$FEW"
profile $((FEW * 5))

# counts FILE: the program's total and `Relabeler::apply`'s inclusive count
# (its largest row: code inlined into it is also listed by its own file,
# as part of that row).
counts() {
  local total apply
  total=$(awk '/^summary:/ {print $2}' "$1")
  apply=$(callgrind_annotate --inclusive=yes --threshold=100 "$1" 2>/dev/null |
    awk '/:pushrelay::forward::relabel::Relabeler::apply( |$)/ {
      gsub(",", "", $1); if ($1 + 0 > max) max = $1 + 0 } END {print max + 0}')
  echo "$total $apply"
}
read -r few_total few_apply < <(counts "$OUT/callgrind.$FEW")
read -r many_total many_apply < <(counts "$OUT/callgrind.$((FEW * 5))")
series=$((FEW * 4 * SERIES_PER_PUSH))
awk -v a="$few_total" -v b="$many_total" -v c="$few_apply" -v d="$many_apply" -v n="$series" \
  -v cfg="${CONFIG:-no config}" 'BEGIN {
    printf "%s: %.0f instructions per pushed series, of which Relabeler::apply %.0f\n",
      cfg, (b - a) / n, (d - c) / n }'
echo "profiles: $OUT/callgrind.{$FEW,$((FEW * 5))}"
