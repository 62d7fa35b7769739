#!/usr/bin/env python3
"""Is the live page responsive while a big run streams to it? Opens the page of a run in
headless chromium (through chromedriver's WebDriver API) and measures, in the page, while the
run goes: how late a 50 ms timer fires at worst (the main thread busy: a click would wait as
long), the long tasks chromium reports (over 50 ms: `PerformanceObserver('longtask')`), and
how many snapshots the page drew (its status line changes with each).

    scripts/ui-page-lag.py target/release/agora ARGS...   # e.g.
    scripts/ui-page-lag.py target/release/agora run stream --nodes 100 --topology regular:8 --msgs 20000

The run gets `--json --ui 127.0.0.1:0 --ui-linger`; its report's `delivered_per_s` is printed
with the page's figures. Needs `chromium` and `chromedriver` on the PATH.
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request

agora, args = sys.argv[1], sys.argv[2:]
run = subprocess.Popen([agora] + args + ["--json", "--ui", "127.0.0.1:0", "--ui-linger"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
url = None
for line in run.stderr:
    if line.startswith("ui: "):
        url = line.strip()[4:]
        break
driver = subprocess.Popen(["chromedriver", "--port=0"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
port = None
for line in driver.stdout:
    if "started successfully on port " in line:
        port = int(line.split("started successfully on port ")[1].strip().rstrip("."))
        break


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    return json.loads(urllib.request.urlopen(req, timeout=120).read())["value"]


profile = tempfile.mkdtemp(prefix="agora-lag-")
caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
    "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--window-size=1280,900", f"--user-data-dir={profile}"]}}}}
session = call("POST", "/session", caps)["sessionId"]
call("POST", f"/session/{session}/url", {"url": url})
monitor = """
window.lag = {max_ms: 0, long: 0, long_ms: 0, long_max_ms: 0, drawn: 0, ticks: 0};
let last = performance.now();
setInterval(() => { const now = performance.now(); lag.max_ms = Math.max(lag.max_ms, now - last - 50);
  lag.ticks++; last = now; }, 50);
new PerformanceObserver((l) => { for (const e of l.getEntries()) { lag.long++; lag.long_ms += e.duration;
  lag.long_max_ms = Math.max(lag.long_max_ms, e.duration); } }).observe({type: "longtask", buffered: false});
const status = document.querySelector("#connection") || document.body;
new MutationObserver(() => lag.drawn++).observe(status, {childList: true, characterData: true, subtree: true});
"""
call("POST", f"/session/{session}/execute/sync", {"script": monitor, "args": []})
started = time.time()
out = run.stdout.readline()  # the report: printed once the run has ended
time.sleep(1.5)  # the last snapshot reaches the page
lag = call("POST", f"/session/{session}/execute/sync", {"script": "return window.lag;", "args": []})
report = json.loads(out)
print(f"delivered_per_s {report['delivered_per_s']:.0f} wall_ms {report['wall_ms']:.0f} violations "
      f"{len(report['violations'])}; page: {lag['drawn']} status changes (snapshots drawn), timer late by "
      f"{lag['max_ms']:.0f} ms at most over {lag['ticks']} ticks, {lag['long']} long tasks "
      f"({lag['long_ms']:.0f} ms in all, the longest {lag['long_max_ms']:.0f} ms)")
call("DELETE", f"/session/{session}")
driver.terminate()
run.send_signal(signal.SIGTERM)
run.wait()
