#!/usr/bin/env bash
# `agora cluster` benchmarks in docs/benchmarks.md: a 3-replica Raft key-value store in
# containers, RUNS times:
#   up_s        from `agora cluster up --system raft` to a majority following one leader
#               (what `up` prints; the image already built, except on run 1 if it was new);
#   failover_ms from `docker kill` (SIGKILL) of the leader's container to the first SET
#               acknowledged by a replica left (a new connection per try, tries back to back);
#   kill_ms     how long of that the `docker kill` command itself took.
# Prints one CSV line per run. Usage: scripts/bench-cluster.sh [RUNS]
# AGORA: the binary (default: the static one `cargo static` builds).
set -euo pipefail
agora=${AGORA:-target/x86_64-unknown-linux-gnu/release/agora}
runs=${1:-5}
parent=$(mktemp -d)
dir=""
trap '[ -n "$dir" ] && "$agora" cluster down --dir "$dir" >/dev/null 2>&1; rm -rf "$parent"' EXIT
echo "run,up_s,failover_ms,kill_ms,served_by"
for r in $(seq 1 "$runs"); do
    dir="$parent/benchkv$r"
    up_s=$("$agora" cluster up --system raft --dir "$dir" 2>/dev/null | sed -n 's/^answering \([0-9.]*\) s.*/\1/p')
    read -r ms kill_ms served < <("$agora" cluster status --json --dir "$dir" \
        | python3 "$(dirname "$0")/cluster-failover.py")
    echo "$r,$up_s,$ms,$kill_ms,$served"
    "$agora" cluster down --dir "$dir" >/dev/null 2>&1
    dir=""
done
