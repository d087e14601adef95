"""Handlers for crates/errand/tests/remote_clients.rs, run by `python -m errand.worker`.

Each run appends a `start` and an `end` line to $ERRAND_TEST_LOG, so the
test can tell which runs a SIGKILL cut short:
`start|end JOB FENCE ATTEMPT WORKER UNIX_TIME`.
"""

import os
import time

import errand

WORKER = os.environ["ERRAND_TEST_WORKER"]
# O_APPEND and one os.write per line: a line is there whole or not at all,
# even under SIGKILL.
LOG = os.open(os.environ["ERRAND_TEST_LOG"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
SLEEP = int(os.environ.get("ERRAND_TEST_SLEEP_MS", "0")) / 1000


def mark(what, ctx):
    line = f"{what} {ctx.id} {ctx.fence} {ctx.attempt} {WORKER} {time.time():.6f}\n"
    os.write(LOG, line.encode())


def busy(seconds):
    """Waits until a wall-clock deadline, like a handler that ignores cancellation."""
    end = time.time() + seconds
    while time.time() < end:
        time.sleep(min(0.05, max(0.0, end - time.time())))


@errand.handler("tick")
def tick(payload, ctx):
    """The kill test's job: a few milliseconds of work, so SIGKILLs often land inside it."""
    mark("start", ctx)
    busy(SLEEP)
    mark("end", ctx)
    return {"worker": WORKER}


@errand.handler("stall")
def stall(payload, ctx):
    """The fencing test's job: the first attempt takes `seconds`, long enough to be SIGSTOPped in."""
    mark("start", ctx)
    if ctx.attempt == 1:
        busy(payload["seconds"])
    mark("end", ctx)
    return {"worker": WORKER, "attempt": ctx.attempt}
