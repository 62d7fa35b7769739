#!/usr/bin/env bash
# `agora cluster up --swarm` against `agora cluster up` (Compose), one after the other, RUNS
# times each, a 3-replica Raft key-value store on this machine (docs/benchmarks.md):
#   up_s        from `up` to a majority following one leader (what `up` prints);
#   failover_ms from `docker kill` (SIGKILL) of the leader's container to the first SET
#               acknowledged by a replica left (Compose: at its container's address; Swarm:
#               through the relay `status` started, at its relayed port on 127.0.0.1).
# The machine is made a single-node swarm if it is in none, and left again at the end.
# Prints one CSV line per run. Usage: scripts/bench-cluster-swarm.sh [RUNS]
# AGORA: the binary (default: the static one `cargo static` builds).
set -euo pipefail
agora=${AGORA:-target/x86_64-unknown-linux-gnu/release/agora}
runs=${1:-3}
parent=$(mktemp -d)
dir=""
made_swarm=0
if [ "$(docker info --format '{{.Swarm.LocalNodeState}}')" = inactive ]; then
    docker swarm init >/dev/null 2>&1 || docker swarm init --advertise-addr 127.0.0.1 >/dev/null
    made_swarm=1
fi
finish() {
    [ -n "$dir" ] && "$agora" cluster down --dir "$dir" >/dev/null 2>&1
    [ "$made_swarm" = 1 ] && docker swarm leave --force >/dev/null 2>&1
    rm -rf "$parent"
}
trap finish EXIT
echo "run,deploy,up_s,failover_ms"
for r in $(seq 1 "$runs"); do
    for how in compose swarm; do
        dir="$parent/bench$how$r"
        flag=()
        [ "$how" = swarm ] && flag=(--swarm)
        up_s=$("$agora" cluster up --system raft --dir "$dir" "${flag[@]}" 2>/dev/null \
            | sed -n 's/^answering \([0-9.]*\) s.*/\1/p')
        read -r ms _ _ < <("$agora" cluster status --json --dir "$dir" \
            | python3 "$(dirname "$0")/cluster-failover.py")
        echo "$r,$how,$up_s,$ms"
        "$agora" cluster down --dir "$dir" >/dev/null 2>&1
        dir=""
    done
done
