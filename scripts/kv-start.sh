# Sourced by the kv benchmark scripts: `kv_start BIN` starts `BIN kv --port 0` (3 replicas,
# redb, its files in a fresh directory) and waits for its leader; it sets `work` (the
# directory, its log in `$work/log`), `pid` and `lport` (the leader's RESP port), or exits 1.
# `kv_stop` ends it and removes the directory.
kv_start() {
    local bin=$1 ports p
    work=$(mktemp -d /tmp/bench-kv.XXXXXX)
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
}

kv_stop() {
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$work"
}
