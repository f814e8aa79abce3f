#!/usr/bin/env bash
# The one test command: installs the real peers when missing
# (scripts/install-peers.sh), then checks formatting, lints, and runs every
# unit and integration test, then fuzzes each target of fuzz/ for a short,
# bounded time (PUSHRELAY_FUZZ_SECONDS each, 20 by default; a crash fails
# the step and leaves its input under fuzz/artifacts/). Exits non-zero if
# any step fails; prints a summary of the steps either way.
#
# Bounded: the whole run has a time budget (29 minutes by default,
# PUSHRELAY_TEST_BUDGET seconds to change it); a step still running when the
# budget is spent is stopped and counts as failed.
set -euo pipefail
cd "$(dirname "$0")/.."

BUDGET=${PUSHRELAY_TEST_BUDGET:-1740}
results=()
failed=0

run_step() {
  local name=$1
  shift
  local started=$SECONDS status=0
  local remaining=$((BUDGET - SECONDS))
  if [ "$remaining" -le 0 ]; then
    results+=("FAIL  $name (not run: time budget of ${BUDGET}s spent)")
    failed=1
    return 1
  fi
  printf '\n==> %s: %s\n' "$name" "$*"
  timeout --kill-after=10 "$remaining" "$@" || status=$?
  local took=$((SECONDS - started))
  if [ "$status" = 0 ]; then
    results+=("PASS  $name (${took}s)")
  else
    if [ "$status" = 124 ]; then
      results+=("FAIL  $name (stopped: time budget of ${BUDGET}s spent)")
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
run_step "deploy validation" scripts/validate-deploy.sh || true
if cargo nextest --version >/dev/null 2>&1; then
  run_step "tests (nextest)" cargo nextest run --all-targets --locked --no-fail-fast || true
  # nextest does not run doc tests.
  run_step "doc tests" cargo test --doc --locked || true
else
  run_step "tests (cargo test)" cargo test --all-targets --locked --no-fail-fast || true
  run_step "doc tests" cargo test --doc --locked || true
fi
run_step "fuzz" scripts/fuzz.sh "${PUSHRELAY_FUZZ_SECONDS:-20}" || true
exit "$failed"
