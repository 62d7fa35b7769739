#!/usr/bin/env bash
# Paired before/after runs of the trading post's benchmarks, for docs/benchmarks.md: the
# report's experiment (5 peers, sick 0 to 0.5%, seeds 1-3) and 64 buyers x 2000 buys (windows
# 8 and 16, seeds 1-2), the build BEFORE and the build AFTER alternating run by run, so that
# both see the same machine. One CSV line per run. EXP=0 or MANY=0 skips a part. Usage:
#   BEFORE=path/to/old/agora AFTER=target/release/agora scripts/bench-market-paired.sh
set -uo pipefail
B=${BEFORE:?the build before, a path}
A=${AFTER:-target/release/agora}
row() { python3 "$(dirname "$0")/market-row.py" "$1"; }
file="$(dirname "$0")/m64.toml"
python3 "$(dirname "$0")/market-row.py" --header
if [ "${EXP:-1}" = 1 ]; then
    for p in 0 0.001 0.002 0.004 0.005; do
        for s in 1 2 3; do
            for b in before after; do
                bin=$B; [ $b = after ] && bin=$A
                "$bin" market --scenario experiment --sick "$p" --interval-ms 0 --seed "$s" --json | row "$b exp sick=$p seed=$s"
            done
        done
    done
fi
if [ "${MANY:-1}" = 1 ]; then
    for w in 8 16; do
        for s in 1 2; do
            for b in before after; do
                bin=$B; [ $b = after ] && bin=$A
                "$bin" market --market "$file" --buys 2000 --window "$w" --multicast trader --sick 0 \
                    --interval-ms 0 --timeout-ms 1000 --seed "$s" --json | row "$b 64x2000 w=$w seed=$s"
            done
        done
    done
fi
