#!/usr/bin/env bash
# The CPU an `agora kv` process spends per SET, and the SETs per second, for two builds run
# alternately: each line a fresh `agora kv --port 0` (3 replicas, redb, in one process) and one
# redis-benchmark run through its leader; the CPU is the process's user and system time
# (/proc/PID/stat) over that run, divided by its SETs. Needs redis-tools. Usage:
#   scripts/bench-kv-cpu.sh BEFORE/agora AFTER/agora [ROUNDS]
# Each round runs 50 connections with -P 16 (1,000,000 SETs), then without (200,000).
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE/agora AFTER/agora [ROUNDS]" >&2; exit 2; }
rounds=${3:-3}
tck=$(getconf CLK_TCK)
. "$(dirname "$0")/kv-start.sh"
one() { # BIN N REDIS-BENCHMARK-FLAGS...
    local bin=$1 n=$2; shift 2
    local t0 t1 rps
    kv_start "$bin"
    t0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    rps=$(redis-benchmark -p "$lport" -t set -n "$n" -r 100000 "$@" --csv | tail -1 | cut -d, -f2 | tr -d '"')
    t1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    kv_stop
    python3 -c "print(f'set/s={float(\"$rps\"):.0f} cpu_us_per_set={($t1 - $t0) / $tck * 1e6 / $n:.2f}')"
}
for round in $(seq "$rounds"); do
    for bin in "$1" "$2"; do
        echo "$round $bin P16 $(one "$bin" 1000000 -c 50 -P 16)"
    done
done
for round in $(seq "$rounds"); do
    for bin in "$1" "$2"; do
        echo "$round $bin c50 $(one "$bin" 200000 -c 50)"
    done
done
