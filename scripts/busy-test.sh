#!/usr/bin/env bash
# Runs `cargo test --workspace` RUNS times in a row (default 10) while CPU burners keep every
# core busy, as on a loaded CI machine; stops at the first failure. Builds first, so the
# burners compete with the tests, not with the compiler. Prints each run's time.
#
#   scripts/busy-test.sh [RUNS]
#
# Extra cargo flags go in CARGO_TEST_FLAGS; BURNERS sets how many burners (default: cores).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-10}
burners=${BURNERS:-$(nproc)}
logs=${CARGO_TARGET_DIR:-target}
mkdir -p "$logs"
cargo test --workspace --no-run ${CARGO_TEST_FLAGS:-} >/dev/null 2>&1
pids=()
stop() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap stop EXIT
for _ in $(seq "$burners"); do
  sh -c 'while :; do :; done' &
  pids+=($!)
done
for i in $(seq "$runs"); do
  start=$(date +%s)
  if ! cargo test --workspace ${CARGO_TEST_FLAGS:-} >"$logs/busy-test-$i.log" 2>&1; then
    echo "run $i: FAILED after $(( $(date +%s) - start )) s ($logs/busy-test-$i.log)"
    exit 1
  fi
  echo "run $i: passed in $(( $(date +%s) - start )) s with $burners burners"
done
