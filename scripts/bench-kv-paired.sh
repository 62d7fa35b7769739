#!/usr/bin/env bash
# Alternates agora builds, round by round: each line a fresh `agora kv --port 0` (3 replicas,
# redb) and redis-benchmark SET through its leader: 50 connections (100,000 SETs, then INFO's
# raft_commit_index: the log entries they took), 1 connection (5,000), 50 connections with
# -P 16 (500,000). Needs redis-tools. Usage:
#   scripts/bench-kv-paired.sh BEFORE/agora AFTER/agora [ROUNDS]
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE/agora AFTER/agora [ROUNDS]" >&2; exit 2; }
rounds=${3:-4}
for round in $(seq "$rounds"); do
    for bin in "$1" "$2"; do
        work=$(mktemp -d /tmp/bench-kv-paired.XXXXXX)
        TMPDIR=$work "$bin" kv --port 0 >"$work/log" 2>&1 &
        pid=$!
        for _ in $(seq 300); do [ "$(grep -c " resp " "$work/log" 2>/dev/null)" -ge 3 ] && break; sleep 0.1; done
        ports=$(grep " resp " "$work/log" | grep -oE "127\.0\.0\.1:[0-9]+" | cut -d: -f2)
        lport=""
        for _ in $(seq 100); do
            for p in $ports; do
                redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q leader && { lport=$p; break 2; }
            done
            sleep 0.1
        done
        [ -n "$lport" ] || { echo "$bin: no leader found" >&2; kill "$pid"; exit 1; }
        field() { tail -1 | cut -d, -f2,3 | tr -d '"'; } # requests/s,avg ms
        a=$(redis-benchmark -p "$lport" -t set -n 100000 -c 50 -r 100000 --csv | field)
        e=$(redis-cli -p "$lport" info | grep commit_index | cut -d: -f2 | tr -d '\r')
        b=$(redis-benchmark -p "$lport" -t set -n 5000 -c 1 -r 100000 --csv | field)
        c=$(redis-benchmark -p "$lport" -t set -n 500000 -c 50 -P 16 -r 100000 --csv | field)
        echo "$round $bin c50=$a entries_after_c50=$e c1=$b P16=$c"
        kill "$pid"
        wait "$pid" 2>/dev/null || true
        rm -rf "$work"
    done
done
