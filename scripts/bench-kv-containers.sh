#!/usr/bin/env bash
# Throughput of the Raft key-value store across containers against the same store on loopback
# (docs/benchmarks.md), the same clients on this machine against each, RUNS times:
#   containers  `agora cluster up --system raft` (3 replicas, one per container, each on its
#               own address of a Docker bridge), the clients at the containers' addresses;
#   loopback    3 `agora kv serve` processes of one cluster file on 127.0.0.1 (the cluster
#               file `up` writes, the addresses changed), data in a temporary folder.
# Both: `agora kv workload --servers ... --ops OPS --clients CLIENTS` (GET, SET, APPEND, CAS,
# MSET, MGET on 8 keys; each client one operation at a time). Prints one CSV line per run and
# setting: run,where,ops_per_s,p50_ms,p99_ms,ok,fail,info.
# Usage: scripts/bench-kv-containers.sh [RUNS] [OPS] [CLIENTS]
# AGORA: the binary (default: the static one `cargo static` builds).
set -euo pipefail
agora=${AGORA:-target/x86_64-unknown-linux-gnu/release/agora}
runs=${1:-3}
ops=${2:-20000}
clients=${3:-16}
parent=$(mktemp -d)
dir=""
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    [ -n "$dir" ] && "$agora" cluster down --dir "$dir" >/dev/null 2>&1
    rm -rf "$parent"
}
trap cleanup EXIT

# The workload's report as CSV fields: ops_per_s,p50_ms,p99_ms,ok,fail,info.
fields() {
    python3 -c '
import re, sys
t = sys.stdin.read()
rate = re.search(r"workload .* ([0-9.]+) ops/s", t).group(1)
p50, p99 = re.search(r"latency ms +p50 ([0-9.]+) +p99 ([0-9.]+)", t).groups()
ok, fail, info = re.search(r"outcomes +(\d+) ok, (\d+) fail .*, (\d+) info", t).groups()
print(f"{rate},{p50},{p99},{ok},{fail},{info}")'
}

# Whether one of the RESP servers (comma-separated) says it leads.
led() {
    for s in ${1//,/ }; do
        "$agora" health --resp "$s" 2>/dev/null | grep -q "raft_role:leader" && return 0
    done
    return 1
}

# A free port of 127.0.0.1 (bound, then released: a benchmark, not a test).
port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

echo "run,where,ops_per_s,p50_ms,p99_ms,ok,fail,info"
for r in $(seq 1 "$runs"); do
    dir="$parent/kvbench$r"
    "$agora" cluster up --system raft --dir "$dir" >/dev/null 2>&1
    servers=$("$agora" cluster status --json --dir "$dir" |
        python3 -c 'import json, sys; print(",".join(c["ip"] + ":6379" for c in json.load(sys.stdin)["containers"]))')
    echo "$r,containers,$("$agora" kv workload --servers "$servers" --ops "$ops" --clients "$clients" 2>/dev/null | fields)"

    # The same cluster file on loopback: node i at 127.0.0.1, two free ports each.
    local_dir="$parent/loop$r"
    mkdir -p "$local_dir/data"
    python3 - "$dir/cluster.toml" "$local_dir" $(for i in 0 1 2; do echo "$(port) $(port)"; done) <<'EOF'
import re, sys
text, out, ports = open(sys.argv[1]).read(), sys.argv[2], sys.argv[3:]
text = text.replace('data_dir = "/data"', 'data_dir = "data"')
for i in range(3):
    text = text.replace(f'"n{i}:7000"', f'"127.0.0.1:{ports[2 * i]}"')
    text = text.replace(f'"n{i}:6379"', f'"127.0.0.1:{ports[2 * i + 1]}"')
open(f"{out}/cluster.toml", "w").write(text)
EOF
    "$agora" cluster down --dir "$dir" >/dev/null 2>&1
    dir=""
    pids=()
    for i in 0 1 2; do
        "$agora" kv serve --config "$local_dir/cluster.toml" --id "$i" --new 2>/dev/null &
        pids+=($!)
    done
    servers=$(grep -o 'resp = "[^"]*"' "$local_dir/cluster.toml" | cut -d'"' -f2 | paste -sd, -)
    # Until a majority follows a leader: the workload's own retries would count the election.
    until led "$servers"; do sleep 0.2; done
    echo "$r,loopback,$("$agora" kv workload --servers "$servers" --ops "$ops" --clients "$clients" 2>/dev/null | fields)"
    for p in "${pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    pids=()
done
