#!/usr/bin/env python3
"""A no-op errand pool worker (docs/pool-protocol.md) for bench/peers.sh, the Python twin of
noop-pool.php: BENCH_MARKS/first-<pid> holds its first job's start time; with BENCH_PICKUP_LOG
set it appends "<seq> <start time>" for every job whose payload carries a seq; with BENCH_GO set it
greets errand only once that file exists."""

import json
import os
import sys
import time

marks, pickup_log = os.environ.get("BENCH_MARKS"), os.environ.get("BENCH_PICKUP_LOG")
first = True
go = os.environ.get("BENCH_GO")
while go and not os.path.exists(go):
    time.sleep(0.001)
sys.stdout.write('{"type":"ready"}\n')
sys.stdout.flush()
for line in sys.stdin:
    started = time.time()
    job = json.loads(line)
    payload = job.get("payload")
    if pickup_log and isinstance(payload, dict) and "seq" in payload:
        with open(pickup_log, "a") as f:
            f.write(f"{payload['seq']} {started:.6f}\n")
    if first and marks:
        first = False
        with open(os.path.join(marks, f"first-{os.getpid()}"), "w") as f:
            f.write(f"{started:.6f}")
    sys.stdout.write('{"type":"result","id":%d}\n' % job["id"])
    sys.stdout.flush()
