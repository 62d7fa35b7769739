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
    "$agora" cluster status --json --dir "$dir" | python3 -c '
import json, socket, subprocess, sys, time
s = json.loads(sys.stdin.read())
leader = s["leader"]["node"]
victim = next(c["id"] for c in s["containers"] if c["node"] == leader)
left = [(c["ip"], c["node"]) for c in s["containers"] if c["node"] != leader]
def set_ok(ip):
    try:
        with socket.create_connection((ip, 6379), timeout=1) as c:
            c.settimeout(2)
            c.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$1\r\nx\r\n")
            return c.recv(64).startswith(b"+OK")
    except OSError:
        return False
t0 = time.monotonic()
subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True, capture_output=True)
kill_ms = (time.monotonic() - t0) * 1e3
i = 0
while not set_ok(left[i % 2][0]):
    i += 1
    if time.monotonic() - t0 > 120:
        sys.exit("no replica served within 120 s")
ms = (time.monotonic() - t0) * 1e3
print(f"{sys.argv[1]},{sys.argv[2]},{ms:.0f},{kill_ms:.0f},{left[i % 2][1]}")
' "$r" "$up_s"
    "$agora" cluster down --dir "$dir" >/dev/null 2>&1
    dir=""
done
