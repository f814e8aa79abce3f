# Sourced by the scripts that run pushrelay under valgrind
# (callgrind-forward.sh, start-up-order.sh): PIDS holds the servers a
# script started; they are stopped one by one when it exits, each given up
# to 60 s (a server under valgrind takes seconds to write its profile).
# free_port prints a free port on 127.0.0.1.
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
