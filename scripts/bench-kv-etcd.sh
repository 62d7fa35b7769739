#!/usr/bin/env bash
# agora kv (3 replicas, redb) side by side with etcd 3.4 (3 members) and Redis 7 (one node,
# appendfsync always), all on this machine,
# their data on the same disk, one after the other, for docs/benchmarks.md:
#   - etcd: wrk (HTTP/1.1 keep-alive) against etcd's v3 JSON gateway, PUT (/v3/kv/put) and
#     linearizable GET (/v3/kv/range), C connections, D seconds each, and `etcdctl check perf`;
#   - agora kv: redis-benchmark SET and GET with the same C connections, without pipelining and
#     with 16 commands pipelined per connection; Redis the same way.
# Needs etcd-server, etcd-client, wrk, redis-server and redis-tools (Debian). Usage:
#   scripts/bench-kv-etcd.sh [CONNECTIONS] [SECONDS]      (CHECK_PERF=0 skips etcdctl check perf)
set -euo pipefail
agora=${AGORA:-target/release/agora}
conns=${1:-50}
secs=${2:-20}
work=$(mktemp -d /tmp/bench-kv-etcd.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_ports() { # prints N ports the kernel hands out now
    python3 -c '
import socket, sys
ss = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in ss: s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in ss))' "$1"
}

# etcd: 3 members on loopback.
read -r c0 c1 c2 p0 p1 p2 <<<"$(free_ports 6)"
cluster="e0=http://127.0.0.1:$p0,e1=http://127.0.0.1:$p1,e2=http://127.0.0.1:$p2"
cports=("$c0" "$c1" "$c2")
pports=("$p0" "$p1" "$p2")
for i in 0 1 2; do
    etcd --name "e$i" --data-dir "$work/e$i" \
        --listen-client-urls "http://127.0.0.1:${cports[$i]}" \
        --advertise-client-urls "http://127.0.0.1:${cports[$i]}" \
        --listen-peer-urls "http://127.0.0.1:${pports[$i]}" \
        --initial-advertise-peer-urls "http://127.0.0.1:${pports[$i]}" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --log-level error >"$work/e$i.log" 2>&1 &
    pids+=($!)
done
endpoints="127.0.0.1:$c0,127.0.0.1:$c1,127.0.0.1:$c2"
for _ in $(seq 100); do
    ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1 && break
    sleep 0.2
done
leader=$(ETCDCTL_API=3 etcdctl --endpoints "$endpoints" endpoint status -w json |
    python3 -c 'import json,sys; s=json.load(sys.stdin); print([e["Endpoint"] for e in s if e["Status"]["leader"]==e["Status"]["header"]["member_id"]][0])')
echo "etcd leader: $leader"
# One request script per operation: POST to PATH a JSON body with the key (and for a put, a
# value), over 100,000 distinct keys.
request_lua() { # PATH EXTRA-JSON
    cat <<EOF
local n = 0
request = function()
  n = n + 1
  local body = string.format('{"key":"%s"$2}', b64("key:" .. (n % 100000)))
  return wrk.format("POST", "$1", {["Content-Type"] = "application/json"}, body)
end
EOF
}
request_lua /v3/kv/put ',"value":"dmFsdWU="' >"$work/put.lua"
request_lua /v3/kv/range '' >"$work/get.lua"
# wrk's Lua has no base64: a small encoder, prepended to both scripts.
cat >"$work/b64.lua" <<'EOF'
local chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
function b64(s)
  return ((s:gsub(".", function(x)
    local r, b = "", x:byte()
    for i = 8, 1, -1 do r = r .. (b % 2 ^ i - b % 2 ^ (i - 1) > 0 and "1" or "0") end
    return r
  end) .. "0000"):gsub("%d%d%d?%d?%d?%d?", function(x)
    if #x < 6 then return "" end
    local c = 0
    for i = 1, 6 do c = c + (x:sub(i, i) == "1" and 2 ^ (6 - i) or 0) end
    return chars:sub(c + 1, c + 1)
  end) .. ({ "", "==", "=" })[#s % 3 + 1])
end
EOF
for op in put get; do
    cat "$work/b64.lua" "$work/$op.lua" >"$work/$op-full.lua"
    echo "== etcd $op, $conns connections, ${secs}s, to the leader"
    wrk -t 2 -c "$conns" -d "${secs}s" --latency -s "$work/$op-full.lua" "http://$leader" |
        grep -E "Requests/sec|50%|99%|Non-2xx|Socket errors" || true
done
if [ "${CHECK_PERF:-1}" = 1 ]; then
echo "== etcdctl check perf --load l (8,000 writes/s offered for 60 s)"
ETCDCTL_API=3 etcdctl --endpoints "$endpoints" check perf --load l 2>&1 | tr '\r' '\n' | grep -E "PASS|FAIL" || true
fi
for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

# agora kv: 3 replicas on loopback, the leader's RESP port.
TMPDIR="$work" "$agora" kv --port 0 >"$work/agora.log" 2>&1 &
pids+=($!)
for _ in $(seq 300); do [ "$(grep -c " resp " "$work/agora.log" 2>/dev/null)" -ge 3 ] && break; sleep 0.1; done
ports=$(grep " resp " "$work/agora.log" | grep -oE "127\.0\.0\.1:[0-9]+" | cut -d: -f2)
lport=""
for _ in $(seq 100); do
    for p in $ports; do
        if redis-cli -p "$p" role 2>/dev/null | head -1 | grep -q leader; then lport=$p; break 2; fi
    done
    sleep 0.1
done
[ -n "$lport" ] || { echo "agora kv: no leader found"; cat "$work/agora.log"; exit 1; }
echo "agora kv leader: 127.0.0.1:$lport"
n=$((conns * 400))
echo "== agora kv SET/GET, $conns connections, no pipelining, $n requests"
redis-benchmark -p "$lport" -t set,get -n "$n" -c "$conns" -r 100000 -q | tr '\r' '\n' | grep "per second"
echo "== agora kv SET/GET, $conns connections, -P 16, $((n * 10)) requests"
redis-benchmark -p "$lport" -t set,get -n "$((n * 10))" -c "$conns" -P 16 -r 100000 -q | tr '\r' '\n' | grep "per second"
kill "${pids[@]}" 2>/dev/null || true
wait 2>/dev/null || true
pids=()

# Redis 7, one node, every write fsynced (appendfsync always), the same client and flags.
read -r rport <<<"$(free_ports 1)"
mkdir -p "$work/redis"
redis-server --port "$rport" --appendonly yes --appendfsync always --save "" --dir "$work/redis" \
    >"$work/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
echo "== redis appendfsync always SET/GET, $conns connections, no pipelining, $n requests"
redis-benchmark -p "$rport" -t set,get -n "$n" -c "$conns" -r 100000 -q | tr '\r' '\n' | grep "per second"
echo "== redis appendfsync always SET/GET, $conns connections, -P 16, $((n * 10)) requests"
redis-benchmark -p "$rport" -t set,get -n "$((n * 10))" -c "$conns" -P 16 -r 100000 -q | tr '\r' '\n' | grep "per second"
