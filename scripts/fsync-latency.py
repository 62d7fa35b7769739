#!/usr/bin/env python3
"""A disk's fdatasync latency: N threads at once, each overwriting 4 KiB of its own file in
/tmp and calling fdatasync 300 times; prints each thread's mean ms per call.
Usage: scripts/fsync-latency.py N"""
import os,time,sys,threading
n=int(sys.argv[1])
def w(i,res):
    fd=os.open(f'/tmp/fsync-test{i}',os.O_WRONLY|os.O_CREAT)
    t=time.time()
    for k in range(300):
        os.pwrite(fd,b'x'*4096,0); os.fdatasync(fd)
    res[i]=(time.time()-t)/300*1000
res={}
ts=[threading.Thread(target=w,args=(i,res)) for i in range(n)]
[t.start() for t in ts]; [t.join() for t in ts]
print(n, 'per-call ms', [round(v,3) for v in res.values()])
