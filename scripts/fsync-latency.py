#!/usr/bin/env python3
"""A disk's fdatasync latency: N threads at once, each writing to its own file in /tmp and
calling fdatasync, 300 times (1000 for the log modes); prints each thread's mean ms per commit
(the writes and the fdatasync).
Modes:
  PAGES (a number, 1 by default): PAGES pages of 4 KiB a commit, scattered over the file's
      first 4 MiB, as a B-tree's commit writes its pages (1 page: always at offset 0);
  append: a 300-byte record appended a commit, the file growing with each (a log);
  room: the same records written into space allocated ahead (posix_fallocate, 8 MiB), the
      file's size unchanged (a log with room, as agora's write-ahead log keeps).
Usage: scripts/fsync-latency.py N [PAGES|append|room]"""
import os, time, sys, threading

mode = sys.argv[2] if len(sys.argv) > 2 else '1'
n = int(sys.argv[1]) if len(sys.argv) > 1 and sys.argv[1].isdigit() else 0
log = mode in ('append', 'room')
pages = 1 if log else (int(mode) if mode.isdigit() else 0)
if not (1 <= n <= 64 and 1 <= pages <= 1024):
    sys.exit('usage: scripts/fsync-latency.py N [PAGES|append|room], N in 1..=64, PAGES in 1..=1024')
commits = 1000 if log else 300
# Every thread starts timing once all have made their files.
ready = threading.Barrier(n)


def w(i, res):
    path = f'/tmp/fsync-test{i}'
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    if pages > 1:
        os.pwrite(fd, b'\0' * (4096 * 1024), 0)
        os.fsync(fd)
    if mode == 'room':
        os.posix_fallocate(fd, 0, 8 << 20)
        os.fsync(fd)
    ready.wait()
    t = time.perf_counter()
    for k in range(commits):
        if log:
            os.pwrite(fd, b'x' * 300, k * 300)
        else:
            for p in range(pages):
                page = 0 if pages == 1 else (k * pages + p) * 37 % 1024
                os.pwrite(fd, b'x' * 4096, page * 4096)
        os.fdatasync(fd)
    res[i] = (time.perf_counter() - t) / commits * 1000
    os.close(fd)
    os.unlink(path)


res = {}
ts = [threading.Thread(target=w, args=(i, res)) for i in range(n)]
[t.start() for t in ts]
[t.join() for t in ts]
what = mode if log else f'{pages} page(s)'
print(n, 'x', what + ': per-commit ms', [round(v, 3) for v in res.values()])
