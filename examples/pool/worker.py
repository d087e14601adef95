#!/usr/bin/env python3
"""Reference errand pool worker in Python (protocol: docs/pool-protocol.md).

Reads one job per line on stdin and answers on stdout. The payload's "op"
picks what to do, so tests can drive every path of the protocol:
echo, sleep, fail, permanent, snooze, deadly, crash, grow, progress,
garbage, spawn. With "once": true the op applies to the first attempt
only (later attempts echo), so tests can watch a job recover. An attempt
that does not count (deadly, snooze) comes again with the same number, so
for those "once_file": PATH applies the op only while PATH does not exist
(the worker creates it). "progress" reports {"step": 1} to
{"step": count} (count: 3 unless given) before its result.
"""

import json
import os
import subprocess
import sys
import time

hoard = []  # memory kept by "grow", to push the process over max_rss


def send(message):
    # ensure_ascii=False: unicode travels as UTF-8, as errand sends it.
    sys.stdout.write(json.dumps(message, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def run(job):
    """Returns the answer to one job (or None once it answered itself)."""
    p = job["payload"] if isinstance(job["payload"], dict) else {}
    op, jid = p.get("op", "echo"), job["id"]
    once_file = p.get("once_file")
    if (p.get("once") and job["attempt"] > 1) or (once_file and os.path.exists(once_file)):
        op = "echo"
    elif once_file:
        open(once_file, "a").close()
    done = {"type": "result", "id": jid, "result": {"pid": os.getpid(), "data": p.get("data")}}
    if op == "sleep":
        time.sleep(float(p.get("seconds", 1)))
    elif op == "fail":
        return {"type": "error", "id": jid, "error": p.get("message", "failed")}
    elif op == "permanent":
        return {"type": "permanent", "id": jid, "error": p.get("message", "cannot ever work")}
    elif op == "snooze":
        return {"type": "snooze", "id": jid, "seconds": p.get("seconds", 60)}
    elif op == "deadly":
        return {"type": "deadly", "id": jid, "error": p.get("message", "database unreachable")}
    elif op == "crash":
        sys.stderr.write("crashing on purpose\n")
        os._exit(int(p.get("code", 3)))
    elif op == "grow":
        hoard.append(bytearray(os.urandom(1)) * (int(p.get("mib", 64)) << 20))
    elif op == "progress":
        for step in range(1, int(p.get("count", 3)) + 1):
            send({"type": "progress", "id": jid, "progress": {"step": step}})
    elif op == "garbage":
        sys.stdout.write("this is not JSON\n")
        sys.stdout.flush()
        return None
    elif op == "spawn":
        child = subprocess.Popen(["sleep", "300"])
        done["result"]["child"] = child.pid
    return done


def main():
    send({"type": "ready"})
    for line in sys.stdin:
        answer = run(json.loads(line))
        if answer is not None:
            send(answer)


if __name__ == "__main__":
    main()
