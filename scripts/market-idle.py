#!/usr/bin/env python3
"""Time a trading-post run spent with no buy in flight, from the market.csv that
`agora market --out DIR` writes: the sum of the gaps between one answer and the next buy
asked, and the gaps over 20 ms one by one. Usage: scripts/market-idle.py DIR"""
import csv
import sys

rows = sorted(csv.DictReader(open(f"{sys.argv[1]}/market.csv")), key=lambda r: float(r["asked_ms"]))
answered_until, idle, gaps = None, 0.0, []
for r in rows:
    asked = float(r["asked_ms"])
    if answered_until is not None and asked > answered_until:
        idle += asked - answered_until
        if asked - answered_until > 20:
            gaps.append(round(asked - answered_until))
    done = asked + float(r["response_ms"])
    answered_until = done if answered_until is None else max(answered_until, done)
print(f"idle {idle:.0f} ms, gaps over 20 ms: {gaps}")
