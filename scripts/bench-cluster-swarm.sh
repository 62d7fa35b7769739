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
        "$agora" cluster status --json --dir "$dir" | python3 -c '
import json, socket, subprocess, sys, time
s = json.loads(sys.stdin.read())
leader = s["leader"]["node"]
victim = next(c for c in s["containers"] if c["node"] == leader)
if victim.get("tasks"):
    # A Swarm task: its container on this machine (a single-node swarm).
    victim = subprocess.run(["docker", "ps", "-q", "--filter", "label=com.docker.swarm.task.id=" + victim["tasks"][-1]],
                            check=True, capture_output=True, text=True).stdout.strip()
    left = [tuple(c["relayed"]["6379"].rsplit(":", 1)) for c in s["containers"] if c["node"] != leader]
else:
    victim = victim["id"]
    left = [(c["ip"], "6379") for c in s["containers"] if c["node"] != leader]
def set_ok(at):
    try:
        with socket.create_connection((at[0], int(at[1])), timeout=1) as c:
            c.settimeout(2)
            c.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$1\r\nx\r\n")
            return c.recv(64).startswith(b"+OK")
    except OSError:
        return False
t0 = time.monotonic()
subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True, capture_output=True)
i = 0
while not set_ok(left[i % 2]):
    i += 1
    if time.monotonic() - t0 > 120:
        sys.exit("no replica served within 120 s")
print(f"{sys.argv[1]},{sys.argv[2]},{sys.argv[3]},{(time.monotonic() - t0) * 1e3:.0f}")
' "$r" "$how" "$up_s"
        "$agora" cluster down --dir "$dir" >/dev/null 2>&1
        dir=""
    done
done
