#!/usr/bin/env bash
# Fuzzes every target under fuzz/fuzz_targets/ for SECONDS seconds each
# (first argument, default 20), one after the other, with cargo-fuzz (the
# instrumentation's unstable flags are unlocked on the stable compiler with
# RUSTC_BOOTSTRAP=1, so no nightly toolchain is needed). Exits non-zero on the first target that crashes (a
# panic, an overflow, an out-of-memory); cargo-fuzz then prints the input
# and saves it under fuzz/artifacts/<target>/.
#
# Without a sanitizer: the crate is safe Rust, so what fuzzing finds here is
# panics and overflows (debug assertions are on), and the build takes a
# third of the time an AddressSanitizer build takes. Each target's corpus
# (fuzz/corpus/<target>/, not committed) grows from run to run.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
export RUSTC_BOOTSTRAP=1

SECONDS_PER_TARGET=${1:-20}
# Bounded memory per input: a parser that allocates without limit is a bug.
RSS_LIMIT_MB=2048

targets=()
for file in fuzz_targets/*.rs; do
  targets+=("$(basename "$file" .rs)")
done

cargo fuzz build --sanitizer none --debug-assertions
log=$(mktemp)
trap 'rm -f "$log"' EXIT
for target in "${targets[@]}"; do
  printf 'fuzz: %s for %ss\n' "$target" "$SECONDS_PER_TARGET"
  status=0
  cargo fuzz run --sanitizer none --debug-assertions "$target" -- \
    -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb="$RSS_LIMIT_MB" \
    -print_final_stats=1 >"$log" 2>&1 || status=$?
  if [ "$status" != 0 ]; then
    tail -n 40 "$log" >&2
    printf 'fuzz: %s crashed (exit %s); the input is under fuzz/artifacts/%s/\n' \
      "$target" "$status" "$target" >&2
    exit "$status"
  fi
  grep -E '^stat::(number_of_executed_units|peak_rss_mb)' "$log" | sed 's/^/  /' || true
done
printf 'fuzz: %s targets, %ss each, no crash\n' "${#targets[@]}" "$SECONDS_PER_TARGET"
