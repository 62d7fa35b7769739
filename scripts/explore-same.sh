#!/usr/bin/env bash
# Two builds of `agora explore` on the same searches: each search's whole JSON report must be
# the same but for its times (states, unique states, depths, dead ends, cycles, the violation
# and its trace). For a change to the explorer that must not change what it finds. Usage:
#   scripts/explore-same.sh BEFORE/agora AFTER/agora [THREADS]
# Prints one line a search and exits 1 if any differs.
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE/agora AFTER/agora [THREADS]" >&2; exit 2; }
before=$1 after=$2 threads=${3:-1}
searches=(
    "bully --nodes 3"
    "bully --nodes 3 --timing sync --crashes 1 --restarts 1"
    "bully --nodes 3 --timing sync --crashes 1 --restarts 1 --variant no-bully"
    "ring-election --nodes 3 --loss 1"
    "3pc --nodes 3"
    "3pc --nodes 3 --timing sync --crashes 1"
    "2pc --nodes 3 --timing sync --crashes 1 --restarts 1"
    "2pc --nodes 3 --depth 10"
    "2pc --nodes 4 --fires 1 --no-symmetry"
    "2pc --nodes 5 --fires 1 --max-states 100000"
    "flood --nodes 5 --variant no-dedup"
    "flood --nodes 4 --loss 1 --duplicate 1 --crashes 1"
    "flood --nodes 4 --topology ring --variant no-relay"
    "lamport-mutex --links raw --nodes 3"
    "ricart-agrawala --nodes 2 --requests 1 --variant no-priority"
    "ricart-agrawala --nodes 3 --crashes 1 --restarts 1 --max-states 50000"
    "raft --nodes 3 --clients 0 --timing sync --fires 4 --crashes 1 --restarts 1 --depth 60 --max-states 50000"
    "raft --nodes 3 --clients 1 --msgs 1 --reads 0 --interval-ms 0 --variant no-dedup --max-states 50000"
    "market --nodes 3 --buys 1 --ledger local --fifo --fires 2"
)
strip='del(.seconds, .states_per_second, .threads, .progress_seconds)'
bad=0
for s in "${searches[@]}"; do
    # shellcheck disable=SC2086
    a=$("$before" explore $s --threads "$threads" --json 2>/dev/null | jq -S "$strip" || true)
    # shellcheck disable=SC2086
    b=$("$after" explore $s --threads "$threads" --json 2>/dev/null | jq -S "$strip" || true)
    if [ -z "$a" ] || [ "$a" != "$b" ]; then
        echo "DIFFERS  $s"
        diff <(echo "$a") <(echo "$b") | head -20 || true
        bad=1
    else
        echo "same     $s ($(echo "$a" | jq -r '"\(.states) states, \(.unique) unique"'))"
    fi
done
exit $bad
