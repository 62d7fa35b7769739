#!/usr/bin/env python3
"""One CSV line of an `agora market --json` run read from stdin, labelled argv[1]; with
--header, the header line instead. Used by bench-market.sh and bench-market-paired.sh."""
import json
import sys

COLUMNS = ("run,buys,receipts,elections,sick,trading_ms,open_wait_ms,wall_ms,p50_ms,p99_ms,max_ms,"
           "buys_per_s,peak_rss_mb,checks,violations,not_judged")

if sys.argv[1] == "--header":
    print(COLUMNS)
    sys.exit(0)
d = json.loads(sys.stdin.read())
s = d["summary"]
l = d["latency_ms"]
print(",".join(str(x) for x in [
    sys.argv[1], d["buys"], d["served"], d["elections"], d["sick"], round(d["trading_ms"], 1),
    round(d["open_wait_ms"], 1), round(d["wall_ms"], 1), round(l["p50"], 3), round(l["p99"], 3),
    round(l["max"], 1), round(d["buys_per_s"]), s.get("peak_rss_mb"), d["checks_passed"],
    len(s.get("violations", [])), len(s.get("not_judged", []))]))
