#!/usr/bin/env bash
# Alternates agora builds, round by round: each line a fresh `agora kv --port 0` (3 replicas,
# redb) and redis-benchmark SET through its leader: 50 connections (100,000 SETs, then INFO's
# raft_commit_index: the log entries they took), 1 connection (5,000), 50 connections with
# -P 16 (500,000). Needs redis-tools. Usage:
#   scripts/bench-kv-paired.sh BEFORE/agora AFTER/agora [ROUNDS]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE/agora AFTER/agora [ROUNDS]" >&2; exit 2; }
rounds=${3:-4}
. "$(dirname "$0")/kv-start.sh"
for round in $(seq "$rounds"); do
    for bin in "$1" "$2"; do
        kv_start "$bin"
        field() { tail -1 | cut -d, -f2,3 | tr -d '"'; } # requests/s,avg ms
        a=$(redis-benchmark -p "$lport" -t set -n 100000 -c 50 -r 100000 --csv | field)
        e=$(redis-cli -p "$lport" info | grep commit_index | cut -d: -f2 | tr -d '\r')
        b=$(redis-benchmark -p "$lport" -t set -n 5000 -c 1 -r 100000 --csv | field)
        c=$(redis-benchmark -p "$lport" -t set -n 500000 -c 50 -P 16 -r 100000 --csv | field)
        echo "$round $bin c50=$a entries_after_c50=$e c1=$b P16=$c"
        kv_stop
    done
done
