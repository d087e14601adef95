"""`errand-worker` as a process: SIGTERM after the current job, SIGSTOP past the lease, deadly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any, Iterator, List

import pytest

from errand import EXIT_DEADLY, Client

HANDLERS = textwrap.dedent(
    """
    import os, time
    import errand

    MARKS = os.environ["MARKS"]

    def mark(name):
        open(os.path.join(MARKS, name), "w").close()

    @errand.handler("slow")
    def slow(payload, ctx):
        mark(f"started-{ctx.id}")
        time.sleep(payload.get("sleep", 2))
        mark(f"done-{ctx.id}")
        return {"slept": payload.get("sleep", 2), "pid": os.getpid()}

    @errand.handler("stalls")
    def stalls(payload, ctx):
        mark(f"started-{ctx.id}-{ctx.fence}")
        if ctx.fence == 1:
            # the test SIGSTOPs this process here; on resume the lease is gone
            cancelled = ctx.sleep(30)
            mark(f"after-{ctx.id}-lost={ctx.lost}-{ctx.lost_reason}-{cancelled}")
            return "from the stopped worker"
        return "from the second worker"

    @errand.handler("deadly_cli")
    def deadly(payload):
        raise errand.Deadly("cache server unreachable")
    """
)


@pytest.fixture
def spawn(server: Any, tmp_path: Path) -> Iterator[Any]:
    handlers = tmp_path / "handlers.py"
    handlers.write_text(HANDLERS)
    marks = tmp_path / "marks"
    marks.mkdir()
    procs: List[subprocess.Popen] = []

    def start(*args: str) -> subprocess.Popen:
        env = dict(os.environ, ERRAND_TOKEN=server.work, MARKS=str(marks))
        proc = subprocess.Popen(
            [sys.executable, "-m", "errand.worker", str(handlers), "--url", server.url, *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    start.marks = marks  # type: ignore[attr-defined]
    yield start
    for proc in procs:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
            proc.kill()
        proc.wait()


def wait_for(path: Path, limit: float = 15.0) -> None:
    deadline = time.monotonic() + limit
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.05)


def test_sigterm_stops_after_the_current_job(client: Client, spawn: Any) -> None:
    first = client.enqueue("slow", {"sleep": 2})
    second = client.enqueue("slow", {"sleep": 0})
    proc = spawn()
    wait_for(spawn.marks / f"started-{first['id']}")
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, out
    done = client.get_job(first["id"])
    assert done["state"] == "completed", (done, out)
    assert done["result"]["pid"] == proc.pid
    waiting = client.get_job(second["id"])
    assert waiting["state"] == "available" and waiting["attempt"] == 0, waiting
    client.cancel_job(second["id"])  # no later worker should take it


def test_sigterm_while_idle_exits_at_once(spawn: Any) -> None:
    proc = spawn()
    time.sleep(1.5)  # held in a long-poll claim
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert proc.returncode == 0, out
    assert time.monotonic() - t0 < 5, out


def test_stopped_past_the_lease_loses_the_job(client: Client, spawn: Any) -> None:
    job = client.enqueue("stalls", {})
    a = spawn()
    wait_for(spawn.marks / f"started-{job['id']}-1")
    os.kill(a.pid, signal.SIGSTOP)
    b = spawn()
    done = client.wait_job(job["id"], timeout=20)
    assert done["state"] == "completed"
    assert done["result"] == "from the second worker"
    os.kill(a.pid, signal.SIGCONT)
    wait_for(spawn.marks / f"after-{job['id']}-lost=True-finished-True", 10)
    time.sleep(0.5)
    assert client.get_job(job["id"])["result"] == "from the second worker"
    for proc in (a, b):
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=15)
        assert proc.returncode == 0, out


def test_deadly_exits_for_the_supervisor(client: Client, spawn: Any) -> None:
    job = client.enqueue("deadly_cli", {})
    proc = spawn()
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == EXIT_DEADLY, out
    assert "cache server unreachable" in out
    after = client.get_job(job["id"])
    assert after["attempt"] == 0 and after["state"] in ("available", "running"), after
    client.cancel_job(job["id"])  # no later worker should take it


def test_second_signal_hands_back_at_once(client: Client, spawn: Any) -> None:
    job = client.enqueue("slow", {"sleep": 20})
    proc = spawn()
    try:
        wait_for(spawn.marks / f"started-{job['id']}")
    except AssertionError:
        proc.kill()
        raise AssertionError(proc.communicate()[0])
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=10)
    assert time.monotonic() - t0 < 10, out  # the handler sleeps 20 s
    assert proc.returncode == 0, out
    after = client.get_job(job["id"])
    # Handed back: available again at once, the attempt given back.
    assert after["state"] == "available" and after["attempt"] == 0, after
    client.cancel_job(job["id"])  # no later test should run it
