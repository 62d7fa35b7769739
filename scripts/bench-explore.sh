#!/usr/bin/env bash
# `agora explore` beside Stateright on two-phase commit, one run, at growing sizes (the table
# in docs/benchmarks.md). agora explores its real `2pc` protocol code (a coordinator and N − 1
# participants); Stateright, through the harness in benches/stateright, explores two-phase
# commit as Gray and Lamport specify it (a transaction manager and N − 1 resource managers).
# Both search breadth first, with 1 thread and then 2; each run's peak resident memory comes
# from /usr/bin/time. Prints a table: states generated, unique states, seconds, states per
# second, per core, peak RSS and bytes of it per unique state.
#
# Build first (the harness is outside the workspace, so CI never compiles Stateright):
#   cargo build --release -p agora
#   cargo build --release --manifest-path benches/stateright/Cargo.toml
# Usage: scripts/bench-explore.sh [SIZES] [LARGER] [AGORA_BOUNDS...]
#   SIZES: node counts both run, comma-separated (default 3,4,5)
#   LARGER: node counts only Stateright runs, where its searches last long enough to measure
#     (default 7,8,9)
#   AGORA_BOUNDS: agora's bounds (default: --fires 1 --max-states 2000000 --no-symmetry,
#     asynchronous: the whole state space, as Stateright searches it)
set -euo pipefail
agora=${AGORA:-target/release/agora}
stateright=${STATERIGHT_2PC:-benches/stateright/target/release/stateright-2pc}
sizes=${1:-3,4,5}
larger=${2:-7,8,9}
shift 2 || shift $# || true
bounds=("$@")
[ ${#bounds[@]} -eq 0 ] && bounds=(--fires 1 --max-states 2000000 --no-symmetry)
echo "uptime before: $(uptime)"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
# One run: a label, then the command; appends "label<TAB>json<TAB>peak KiB" to $out.
run() {
    local label=$1
    shift
    local json
    json=$(/usr/bin/time -f "%M" -o "$out.rss" "$@" | tail -n 1)
    printf '%s\t%s\t%s\n' "$label" "$json" "$(tail -n 1 "$out.rss")" >>"$out"
}
for n in ${sizes//,/ }; do
    for t in 1 2; do
        run "stateright $((n - 1)) RMs" "$stateright" $((n - 1)) "$t" bfs
        run "agora $n nodes" "$agora" explore 2pc --nodes "$n" --threads "$t" "${bounds[@]}" --json
    done
done
for n in ${larger//,/ }; do
    for t in 1 2; do
        run "stateright $((n - 1)) RMs" "$stateright" $((n - 1)) "$t" bfs
    done
done
rm -f "$out.rss"
echo "uptime after: $(uptime)"
echo "agora bounds: ${bounds[*]}"
python3 - "$out" <<'PY'
import json, sys
rows = []
for line in open(sys.argv[1]):
    label, body, rss = line.rstrip("\n").split("\t")
    d = json.loads(body)
    threads = d["threads"]
    secs = d["seconds"]
    rate = d["states"] / secs
    rss_kib = int(rss)
    rows.append([label, threads, f'{d["states"]:,}', f'{d["unique"]:,}' + ("" if d.get("complete", True) else " (cut)"),
                 f"{secs:.2f}", f"{rate/1e3:,.0f} k", f"{rate/threads/1e3:,.0f} k",
                 f"{rss_kib/1024:,.1f} MiB", f"{rss_kib*1024/d['unique']:,.0f}"])
head = ["checker", "threads", "states", "unique", "seconds", "states/s", "per core", "peak RSS", "bytes/unique"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(str(c) for c in r) + " |")
PY
