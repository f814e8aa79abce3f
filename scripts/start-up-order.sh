#!/usr/bin/env bash
# Regenerates link/start-up.ld, the linker script that places the functions
# pushrelay runs from start to idle together, before the rest of the code
# (build.rs links the binary with it; see that file for why).
#
# It runs the release binary under valgrind's callgrind twice: in cache mode
# (no backend) and forwarding to a stub receiver (which answers the
# readiness probes with 204). Each run waits for /-/ready, idles one second
# and stops on SIGTERM. Every function of the binary that ran is listed
# twice: by its name, and as a pattern of it without the parts a compiler,
# dependency or feature change renews (the legacy symbol hash
# `17h<16 hex>E`, v0 crate disambiguators, LTO's `.llvm.N` suffixes). The
# names stay valid while the code changes (names from a profile two hours
# and 2,600 changed lines older still matched 1,151 of 1,159); the
# patterns keep most of the effect after such an upgrade (idle RSS 7.2
# instead of 6.4 MiB). A function renamed since is only placed as before.
# It prints how many of the functions that ran the previous file named:
# when that drops (after an upgrade of rustc or of a dependency), commit
# the new file.
#
# Usage: scripts/start-up-order.sh        # builds the release binary first
#        SKIP_BUILD=1 scripts/start-up-order.sh
# Environment: SKIP_BUILD=1, PUSHRELAY (the binary), OUT (the profiles;
#   default: a temp dir, kept).
# Needs valgrind, curl, python3. Servers listen on 127.0.0.1 on free ports
# and are stopped by their PID.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
OUT=${OUT:-$(mktemp -d "${TMPDIR:-/tmp}/pushrelay-start-up.XXXXXX")}
mkdir -p "$OUT"
for tool in valgrind curl python3; do
  command -v "$tool" >/dev/null || { echo "start-up-order.sh: $tool not found" >&2; exit 1; }
done
if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --release --quiet --bin pushrelay
fi
PUSHRELAY=$(readlink -f "${PUSHRELAY:-$ROOT/target/release/pushrelay}")

PIDS=()
stop_started() {
  local pid
  [ "${#PIDS[@]}" -gt 0 ] || return 0
  for pid in "${PIDS[@]}"; do
    { kill "$pid" 2>/dev/null && timeout 60 tail --pid="$pid" -f /dev/null 2>/dev/null; } || true
    kill -9 "$pid" 2>/dev/null || true
  done
}
trap stop_started EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# profile NAME [FLAGS...]: one callgrind run of pushrelay until ready + 1 s.
profile() {
  local name=$1 port pid
  shift
  port=$(free_port)
  valgrind --tool=callgrind --demangle=no --callgrind-out-file="$OUT/$name.callgrind" \
    "$PUSHRELAY" --web.listen-address="127.0.0.1:$port" --log.level=warn "$@" \
    >"$OUT/$name.log" 2>&1 &
  pid=$!
  PIDS+=("$pid")
  local deadline=$((SECONDS + 120))
  until curl -fsS -o /dev/null --max-time 5 "http://127.0.0.1:$port/-/ready" 2>/dev/null; do
    kill -0 "$pid" 2>/dev/null || { cat "$OUT/$name.log" >&2; exit 1; }
    [ "$SECONDS" -lt "$deadline" ] || { echo "start-up-order.sh: $name not ready" >&2; exit 1; }
    sleep 0.5
  done
  sleep 1
  kill "$pid"
  wait "$pid" || true
}

profile cache

receiver_port=$(free_port)
python3 - "$receiver_port" <<'PY' >"$OUT/receiver.log" 2>&1 &
import http.server, sys
class Stub(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(204)
        self.end_headers()
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Stub).serve_forever()
PY
PIDS+=("$!")
profile forward --remote-write.url="http://127.0.0.1:$receiver_port/api/v1/write"

python3 - link/start-up.ld "$PUSHRELAY" "$OUT"/cache.callgrind "$OUT"/forward.callgrind \
  >"$OUT/start-up.ld" <<'PY'
import os, re, sys
previous, binary, profiles = sys.argv[1], sys.argv[2], sys.argv[3:]
ran = set()
for profile in profiles:
    objects, names, in_binary, function = {}, {}, False, None
    for line in open(profile):
        entry = re.match(r"(c?)(ob|fn)=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
        if entry:
            callee, kind, key, name = entry.groups()
            table = objects if kind == "ob" else names
            if name:
                table[key] = name
            if not callee:
                if kind == "ob":
                    in_binary = objects[key] == binary
                else:
                    function = names[key] if in_binary else None
            continue
        # A cost line: the function ran. valgrind's own names ("(below
        # main)", unnamed addresses) are no symbols.
        if function and re.match(r"[0-9+*-]", line) and re.fullmatch(r"[A-Za-z_][\w.$]*", function):
            ran.add(function)


def without_hashes(symbol):
    pattern = re.sub(r"17h[0-9a-f]{16}E", "*", symbol)
    if pattern.startswith("_R"):
        pattern = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", pattern)
    return re.sub(r"\.llvm\.\d+$", "*", pattern)


patterns = {without_hashes(symbol) for symbol in ran} - ran
if os.path.exists(previous):
    named = set(re.findall(r"^    \*\(\.text\.\*(\S+)\)$", open(previous).read(), re.M))
    print(f"start-up-order.sh: {len(ran & named)} of the {len(ran)} functions that ran "
          f"were named in the previous {previous}", file=sys.stderr)
print(f"""/* Generated by scripts/start-up-order.sh: the {len(ran)} functions pushrelay
   runs from start to idle, first in .text (see build.rs). `.text.*` also
   takes cold functions' sections (`.text.unlikely.`). First by their names
   in the build profiled, which stay valid while code changes, then as
   patterns without the parts a compiler, dependency or feature change
   renews (symbol hashes, crate disambiguators, LTO suffixes): these still
   match after such a change, but also take in the functions' other generic
   instantiations, so they come second. The rest of .text follows as GNU
   ld's default script places it. One output section named .text, so that
   valgrind still finds the symbols. */
SECTIONS {{
  .text : {{""")
for name in sorted(ran) + sorted(patterns):
    print(f"    *(.text.*{name})")
print("""    *(.text.unlikely .text.*_unlikely .text.unlikely.*)
    *(.text.exit .text.exit.*)
    *(.text.startup .text.startup.*)
    *(.text.hot .text.hot.*)
    *(.text .stub .text.*)
  }
} INSERT BEFORE .init;""")
PY
mv "$OUT/start-up.ld" link/start-up.ld
echo "start-up-order.sh: link/start-up.ld written (profiles in $OUT)" >&2
