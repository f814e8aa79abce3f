#!/usr/bin/env bash
# The one test command: installs the real peers when missing
# (scripts/install-peers.sh), then checks formatting, lints, and runs every
# unit and integration test. Exits non-zero if any step fails; prints a
# summary of the steps either way.
#
# Bounded: each step has a time limit (the whole run stays well under 30
# minutes on 2 cores). PUSHRELAY_TEST_STEP_TIMEOUT overrides the limit of one
# step, in seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

STEP_TIMEOUT=${PUSHRELAY_TEST_STEP_TIMEOUT:-1200}
results=()
failed=0

run_step() {
  local name=$1
  shift
  local started=$SECONDS status=0
  printf '\n==> %s: %s\n' "$name" "$*"
  timeout --kill-after=30 "$STEP_TIMEOUT" "$@" || status=$?
  local took=$((SECONDS - started))
  if [ "$status" = 0 ]; then
    results+=("PASS  $name (${took}s)")
  else
    if [ "$status" = 124 ]; then
      results+=("FAIL  $name (timed out after ${STEP_TIMEOUT}s)")
    else
      results+=("FAIL  $name (exit $status, ${took}s)")
    fi
    failed=1
  fi
  return "$status"
}

summary() {
  printf '\n==> summary\n'
  printf '  %s\n' "${results[@]}"
  if [ "$failed" = 0 ]; then
    printf 'all checks passed\n'
  else
    printf 'FAILED\n'
  fi
}
trap summary EXIT

# Without the peers the integration tests cannot run: stop here.
run_step "install peers" scripts/install-peers.sh || exit 1
run_step "cargo fmt" cargo fmt --all --check || true
run_step "cargo clippy" cargo clippy --all-targets --locked -- -D warnings || true
if cargo nextest --version >/dev/null 2>&1; then
  run_step "tests (nextest)" cargo nextest run --all-targets --locked --no-fail-fast || true
  # nextest does not run doc tests.
  run_step "doc tests" cargo test --doc --locked || true
else
  run_step "tests (cargo test)" cargo test --all-targets --locked --no-fail-fast || true
  run_step "doc tests" cargo test --doc --locked || true
fi
exit "$failed"
