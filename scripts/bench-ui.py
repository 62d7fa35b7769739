#!/usr/bin/env python3
"""The live view under load: `agora run stream --nodes N` with and without `--ui`.

Runs ROUNDS rounds, each one run without the view and one with it (a page open: this script
follows the stream of snapshots as a page does; odd rounds without the view first, even
rounds with it first), and prints per run the report's `wall_ms`, `delivered_per_s` and `cpu_ms` (the process's user and
system CPU time), and
for the runs with the view the snapshots' size in bytes and the sampler's own time to build
each one (`build_us`), largest and median; then each kind's mean throughput and CPU time, and how
far apart they are.

    scripts/bench-ui.py target/release/agora [ROUNDS] [MSGS] [NODES] [TOPOLOGY]

(TOPOLOGY: stream's `--topology`, `complete` by default — every node streams to every other;
`regular:8`, each to its 8 neighbours.)

(100 nodes by default; at 100 every pair of nodes needs a connection, 19,800 sockets in one
process, above what the runtime allows itself, so such a run ends at its time limit.)
"""
import json
import socket
import statistics
import subprocess
import sys
import threading

agora = sys.argv[1]
rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 3
msgs = sys.argv[3] if len(sys.argv) > 3 else "20"
nodes = sys.argv[4] if len(sys.argv) > 4 else "100"
topology = sys.argv[5] if len(sys.argv) > 5 else "complete"
base = [agora, "run", "stream", "--nodes", nodes, "--msgs", msgs, "--topology", topology, "--json"]


def plain():
    out = subprocess.run(base, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def watched():
    p = subprocess.Popen(base + ["--ui", "127.0.0.1:0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = None
    for line in p.stderr:
        if line.startswith("ui: "):
            url = line.strip()[4:]
            break
    threading.Thread(target=lambda: [None for _ in p.stderr], daemon=True).start()
    addr = url.replace("http://", "").rstrip("/")
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)))
    s.sendall(f"GET /events HTTP/1.1\r\nHost: {addr}\r\n\r\n".encode())
    sizes, builds = [], []
    for line in s.makefile("r"):
        if not line.startswith("data: "):
            continue
        data = line[6:].strip()
        v = json.loads(data)
        sizes.append(len(data.encode()))
        if v.get("started") and not v.get("ended"):
            builds.append(v["build_us"])
        if v.get("verdicts"):
            break
    out = p.stdout.read()
    p.wait()
    return json.loads(out.strip().splitlines()[-1]), sizes, builds


def report_plain(r, a):
    print(f"round {r} without --ui: wall_ms {a['wall_ms']:.0f} delivered_per_s {a['delivered_per_s']:.0f}"
          f" cpu_ms {a['cpu_ms']:.0f} violations {len(a['violations'])}")


def report_watched(r, b, sizes, builds):
    print(f"round {r} with --ui:    wall_ms {b['wall_ms']:.0f} delivered_per_s {b['delivered_per_s']:.0f}"
          f" cpu_ms {b['cpu_ms']:.0f} violations {len(b['violations'])}; {len(sizes)} snapshots, bytes max {max(sizes)}"
          f" median {statistics.median(sizes):.0f}; build_us max {max(builds or [0])}"
          f" median {statistics.median(builds or [0]):.0f}")


# On a shared machine the load drifts: odd rounds run without the view first, even rounds
# with it first, so neither kind always gets the quieter moment.
plain_rates, watched_rates, plain_cpu, watched_cpu = [], [], [], []
for r in range(1, rounds + 1):
    if r % 2 == 1:
        a = plain()
        report_plain(r, a)
        b, sizes, builds = watched()
        report_watched(r, b, sizes, builds)
    else:
        b, sizes, builds = watched()
        report_watched(r, b, sizes, builds)
        a = plain()
        report_plain(r, a)
    plain_rates.append(a['delivered_per_s'])
    watched_rates.append(b['delivered_per_s'])
    plain_cpu.append(a['cpu_ms'])
    watched_cpu.append(b['cpu_ms'])
mp, mw = statistics.mean(plain_rates), statistics.mean(watched_rates)
print(f"mean delivered_per_s without --ui {mp:.0f}, with --ui {mw:.0f}: {100 * (mp - mw) / mp:+.1f}% slower with the view")
cp, cw = statistics.mean(plain_cpu), statistics.mean(watched_cpu)
print(f"mean cpu_ms without --ui {cp:.0f}, with --ui {cw:.0f}: {100 * (cw - cp) / cp:+.1f}% more with the view")
