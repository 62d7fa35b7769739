#!/usr/bin/env python3
"""SIGKILLs the leader of a Raft key-value cluster of `agora cluster` and times until a replica
left acknowledges a SET (a new connection per try, tries back to back). Reads `agora cluster
status --json` on stdin; under Compose it asks the replicas at their containers' addresses, on
a (single-node) Swarm at their ports relayed on this machine. Prints `failover_ms kill_ms
served_by`: the time from the kill to the SET's answer, how long of it the `docker kill` took,
and the node that answered. Used by scripts/bench-cluster.sh and bench-cluster-swarm.sh."""
import json, socket, subprocess, sys, time

s = json.loads(sys.stdin.read())
leader = s["leader"]["node"]
victim = next(c for c in s["containers"] if c["node"] == leader)
others = [c for c in s["containers"] if c["node"] != leader]
if victim.get("tasks"):
    # A Swarm task: its container on this machine.
    victim = subprocess.run(
        ["docker", "ps", "-q", "--filter", "label=com.docker.swarm.task.id=" + victim["tasks"][-1]],
        check=True, capture_output=True, text=True).stdout.strip()
    left = [(c["relayed"]["6379"].rsplit(":", 1)[0], int(c["relayed"]["6379"].rsplit(":", 1)[1]), c["node"])
            for c in others]
else:
    victim = victim["id"]
    left = [(c["ip"], 6379, c["node"]) for c in others]


def set_ok(host, port):
    try:
        with socket.create_connection((host, port), timeout=1) as c:
            c.settimeout(2)
            c.sendall(b"*3\r\n$3\r\nSET\r\n$5\r\nprobe\r\n$1\r\nx\r\n")
            return c.recv(64).startswith(b"+OK")
    except OSError:
        return False


t0 = time.monotonic()
subprocess.run(["docker", "kill", "--signal", "KILL", victim], check=True, capture_output=True)
kill_ms = (time.monotonic() - t0) * 1e3
i = 0
while not set_ok(*left[i % 2][:2]):
    i += 1
    if time.monotonic() - t0 > 120:
        sys.exit("no replica served within 120 s")
print(f"{(time.monotonic() - t0) * 1e3:.0f} {kill_ms:.0f} {left[i % 2][2]}")
