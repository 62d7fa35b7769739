#!/usr/bin/env python3
"""A disk's fdatasync latency: N threads at once, each writing PAGES pages of 4 KiB to its own
file in /tmp (scattered over its first 4 MiB, as a B-tree's commit writes its pages; 1 page by
default, always at offset 0) and calling fdatasync, 300 times; prints each thread's mean ms per
commit (the writes and the fdatasync).
Usage: scripts/fsync-latency.py N [PAGES]"""
import os, time, sys, threading

n = int(sys.argv[1])
pages = int(sys.argv[2]) if len(sys.argv) > 2 else 1
if not (1 <= n <= 64 and 1 <= pages <= 1024):
    sys.exit('usage: scripts/fsync-latency.py N [PAGES], N in 1..=64, PAGES in 1..=1024')
# Every thread starts timing once all have filled their files.
ready = threading.Barrier(n)


def w(i, res):
    fd = os.open(f'/tmp/fsync-test{i}', os.O_WRONLY | os.O_CREAT)
    if pages > 1:
        os.pwrite(fd, b'\0' * (4096 * 1024), 0)
        os.fsync(fd)
    ready.wait()
    t = time.perf_counter()
    for k in range(300):
        for p in range(pages):
            page = 0 if pages == 1 else (k * pages + p) * 37 % 1024
            os.pwrite(fd, b'x' * 4096, page * 4096)
        os.fdatasync(fd)
    res[i] = (time.perf_counter() - t) / 300 * 1000
    os.close(fd)
    os.unlink(f'/tmp/fsync-test{i}')


res = {}
ts = [threading.Thread(target=w, args=(i, res)) for i in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
print(n, 'x', pages, 'page(s): per-commit ms', [round(v, 3) for v in res.values()])
