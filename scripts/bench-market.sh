#!/usr/bin/env bash
# The trading post's benchmarks in docs/benchmarks.md, on a release build:
#   1. the report's experiment: 5 peers (3 buyers, 1 seller, peer 4 trades), 1002 buys back
#      to back (334 per buyer), the trader falling sick with chance 0.1%, 0.2%, 0.4%, 0.5% per
#      trade, over loopback TCP with the replicated, fsynced ledger;
#   2. many buyers at once: a market file of 64 buyers and 4 sellers, BUYS buys each (a
#      1000 ms timeout: with 68 peers in one process a 200 ms one suspects live traders);
#   3. the same market with WINDOW buys in flight per buyer and MANY buys each, the buys
#      multicast to every peer (the report's design) and sent to the trader alone.
# Prints one CSV line per run. Usage: scripts/bench-market.sh [RUNS] [BUYS] [MANY] [WINDOW]
set -euo pipefail
agora=${AGORA:-target/release/agora}
runs=${1:-3}
buys=${2:-100}
many=${3:-2000}
window=${4:-64}
row() { python3 "$(dirname "$0")/market-row.py" "$1"; }
python3 "$(dirname "$0")/market-row.py" --header
for p in 0.001 0.002 0.004 0.005; do
    for r in $(seq 1 "$runs"); do
        "$agora" market --scenario experiment --sick "$p" --interval-ms 0 --seed "$r" --json | row "experiment sick=$p seed=$r"
    done
done
file="$(dirname "$0")/m64.toml"
for r in $(seq 1 "$runs"); do
    "$agora" market --market "$file" --buys "$buys" --sick 0 --interval-ms 0 --timeout-ms 1000 --seed "$r" --json | row "64 buyers x $buys seed=$r"
done
for to in all trader; do
    for r in $(seq 1 "$runs"); do
        "$agora" market --market "$file" --buys "$many" --window "$window" --multicast "$to" --sick 0 \
            --interval-ms 0 --timeout-ms 1000 --seed "$r" --json | row "64 buyers x $many window=$window multicast=$to seed=$r"
    done
done
