"""The Worker against a real server: outcomes, leases, long poll, batches, events."""

from __future__ import annotations

import os
import threading
import time
from typing import Any, Dict, List

import pytest

from errand import (
    EXIT_CONFIG,
    EXIT_DEADLY,
    EXIT_OK,
    Client,
    Conflict,
    Deadly,
    JobContext,
    Permanent,
    Retry,
    Snooze,
    WorkerAPI,
    job_request,
)


def until(check: Any, limit: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it answers something truthy."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not met within {limit}s")


def test_enqueue_run_result(client: Client, start_worker: Any) -> None:
    w = start_worker({"echo": lambda payload: {"got": payload}})
    job = client.enqueue("echo", {"hello": "world"})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "completed", done
    assert done["result"] == {"got": {"hello": "world"}}
    assert done["attempt"] == 1
    assert w.stop() == EXIT_OK


def test_progress_rides_on_heartbeats(client: Client, start_worker: Any) -> None:
    def work(payload: Any, ctx: JobContext) -> str:
        ctx.progress({"done": 1, "of": 2})
        ctx.sleep(1.5)  # three heartbeats (500 ms) carry it and keep the 2 s lease
        return "ok"

    start_worker({"progress": work})
    job = client.enqueue("progress", None)
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "completed"
    assert done["progress"] == {"done": 1, "of": 2}


def test_last_progress_is_stored_before_the_finish(client: Client, start_worker: Any) -> None:
    def quick(payload: Any, ctx: JobContext) -> str:
        ctx.progress("step 1")
        ctx.progress({"done": 3, "of": 3})
        return "done"

    start_worker({"progress": quick})
    job = client.enqueue("progress", None)
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "completed"
    assert done["progress"] == {"done": 3, "of": 3}


def test_retry_with_backoff_then_success(client: Client, start_worker: Any) -> None:
    attempts: List[int] = []

    def flaky(payload: Any, ctx: JobContext) -> str:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise Retry("upstream said 500")
        if ctx.attempt == 2:
            raise ValueError("bad luck")
        return "third time"

    start_worker({"flaky": flaky})
    job = client.enqueue("flaky", {})
    done = client.wait_job(job["id"], timeout=20)
    assert done["state"] == "completed", done
    assert done["attempt"] == 3
    assert attempts == [1, 2, 3]
    errors = [e["error"] for e in done["errors"]]
    assert errors == ["upstream said 500", "ValueError: bad luck"]


def test_retry_until_attempts_used_up(client: Client, start_worker: Any) -> None:
    def always(payload: Any) -> None:
        raise RuntimeError("still broken")

    start_worker({"flaky": always})
    job = client.enqueue("flaky", {})
    done = client.wait_job(job["id"], timeout=20)
    assert done["state"] == "failed"
    assert done["attempt"] == 3
    assert len(done["errors"]) == 3


def test_permanent(client: Client, start_worker: Any) -> None:
    def doomed(payload: Any) -> None:
        raise Permanent("width must be a number")

    start_worker({"doomed": doomed})
    job = client.enqueue("doomed", {"width": "wide"})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "failed"
    assert done["attempt"] == 1
    assert done["errors"][-1]["error"] == "width must be a number"


def test_snooze_gives_the_attempt_back(client: Client, start_worker: Any) -> None:
    calls: List[float] = []

    def sleepy(payload: Any) -> str:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise Snooze(0.5)
        return "awake"

    start_worker({"sleepy": sleepy})
    job = client.enqueue("sleepy", {})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "completed"
    assert done["attempt"] == 1  # the snoozed attempt was given back
    assert len(calls) == 2 and calls[1] - calls[0] >= 0.45


def test_deadly_hands_back_and_stops(client: Client, start_worker: Any) -> None:
    def infra(payload: Any) -> None:
        raise Deadly("database server has gone away")

    w = start_worker({"infra": infra})
    job = client.enqueue("infra", {})
    assert w.join(15) == EXIT_DEADLY
    after = client.get_job(job["id"])
    assert after["state"] == "available", after
    assert after["attempt"] == 0  # no attempt used
    # A fresh worker runs it.
    start_worker({"infra": lambda payload: "fine now"})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "completed" and done["attempt"] == 1


def test_cancel_while_running_is_seen_as_lost(client: Client, start_worker: Any) -> None:
    started = threading.Event()
    seen: Dict[str, Any] = {}

    def long_job(payload: Any, ctx: JobContext) -> str:
        started.set()
        stopped_early = ctx.sleep(15)
        seen.update(early=stopped_early, lost=ctx.lost, reason=ctx.lost_reason)
        return "should not count"

    w = start_worker({"cancelme": long_job})
    job = client.enqueue("cancelme", {})
    assert started.wait(10)
    client.cancel_job(job["id"])
    until(lambda: "lost" in seen, 5, "handler to see the cancel")
    assert seen == {"early": True, "lost": True, "reason": "cancelled"}
    time.sleep(0.5)
    after = client.get_job(job["id"])
    assert after["state"] == "cancelled" and after["result"] is None
    assert w.stop() == EXIT_OK


def test_late_finish_is_refused(server: Any, client: Client, start_worker: Any) -> None:
    # A worker that claims and then stalls (never heartbeats) past the 2 s lease.
    stalled = WorkerAPI(server.url, server.work, {"id": "py-stalled"})
    job = client.enqueue("late", {"who": "?"})
    claimed = stalled.claim(["late"], wait=5)["jobs"]
    assert [j["id"] for j in claimed] == [job["id"]]
    lease = {"id": job["id"], "fence": claimed[0]["fence"]}
    # Another worker re-runs it once the lease expired.
    start_worker({"late": lambda payload: "from the second worker"})
    done = client.wait_job(job["id"], timeout=20)
    assert done["state"] == "completed"
    assert done["result"] == "from the second worker"
    with pytest.raises(Conflict) as err:
        stalled.finish([dict(lease, outcome="success", result="from the stalled worker")])
    assert err.value.results[0]["applied"] is False
    assert err.value.results[0]["reason"] == "finished"
    with pytest.raises(Conflict) as err2:
        stalled.heartbeat([lease])
    assert err2.value.lost[0]["reason"] == "finished"
    assert client.get_job(job["id"])["result"] == "from the second worker"


def test_long_poll_wakes_an_idle_worker(client: Client, start_worker: Any) -> None:
    started: List[float] = []
    start_worker({"wake": lambda payload: started.append(time.monotonic())}, poll_wait=30)
    time.sleep(1.5)  # the worker now sits in a held claim
    latencies = []
    for _ in range(5):
        t0 = time.monotonic()
        job = client.enqueue("wake", {})
        until(lambda: len(started) > 0, 5, "job start")
        latency = started.pop() - t0
        latencies.append(latency)
        # Milliseconds in practice; the bound only proves the held claim
        # (30 s) was woken rather than run out, with room for a busy machine.
        assert latency < 1.0, f"pickup took {latency:.3f}s"
        assert client.wait_job(job["id"], timeout=5)["state"] == "completed"
        time.sleep(0.3)
    print("pickup latencies (enqueue call to handler start):", [f"{x * 1000:.1f}ms" for x in latencies])


def test_limit_stops_after_n_jobs(client: Client, start_worker: Any) -> None:
    ids = [client.enqueue("limited", {"i": i})["id"] for i in range(3)]
    w = start_worker({"limited": lambda payload: payload["i"]}, limit=2)
    assert w.join(15) == EXIT_OK
    states = sorted(client.get_job(i)["state"] for i in ids)
    assert states == ["available", "completed", "completed"]


def test_memory_limit_stops_after_the_job(client: Client, start_worker: Any) -> None:
    ids = [client.enqueue("fat", {})["id"] for _ in range(2)]
    w = start_worker({"fat": lambda payload: "ok"}, memory_limit=1)
    # The limit is checked before each claim: already over, it takes nothing.
    assert w.join(15) == EXIT_OK
    assert [client.get_job(i)["state"] for i in ids] == ["available", "available"]
    w2 = start_worker({"fat": lambda payload: "ok"}, time_limit=3.0)
    assert w2.join(15) == EXIT_OK
    assert [client.get_job(i)["state"] for i in ids] == ["completed", "completed"]


def test_drain_from_the_server(client: Client, start_worker: Any) -> None:
    w = start_worker({"drained": lambda payload: "ok"})
    job = client.enqueue("drained", {})
    assert client.wait_job(job["id"], timeout=10)["state"] == "completed"
    # Listed among the nodes with its identity, from its first claim.
    [me] = [n for n in client.nodes()["nodes"] if n["name"] == w.worker.id]
    assert me["remote"]["library"] == "errand-python"
    assert me["remote"]["pid"] == os.getpid()
    assert me["remote"]["kinds"] == ["drained"]
    client.drain(w.worker.id)
    assert w.join(10) == EXIT_OK
    assert w.worker.stopping


def test_timeout_is_enforced(client: Client, start_worker: Any) -> None:
    seen: Dict[str, Any] = {}

    def overtime(payload: Any, ctx: JobContext) -> str:
        seen["cancelled"] = ctx.sleep(10)
        seen["timed_out"] = ctx.timed_out
        return "too late"

    start_worker({"overtime": overtime})
    job = client.enqueue("overtime", {})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "failed", done
    assert done["errors"][-1]["error"].startswith("timed out after 1")
    until(lambda: "timed_out" in seen, 5, "handler to return")
    assert seen == {"cancelled": True, "timed_out": True}


def test_batch_and_concurrency(client: Client, start_worker: Any) -> None:
    running = []
    peak = []
    lock = threading.Lock()

    def part(payload: Any) -> int:
        with lock:
            running.append(1)
            peak.append(len(running))
        time.sleep(0.4)
        with lock:
            running.pop()
        return int(payload["n"]) * 2

    start_worker({"parts": part}, concurrency=4)
    batch = client.create_batch([job_request("parts", {"n": n}) for n in range(8)])
    view = client.wait_batch(batch["id"], timeout=20)
    assert view["batch"]["finished_at"] is not None
    assert view["batch"]["counts"].get("completed") == 8
    results = view["results"]
    assert [r.get("result") for r in results] == [n * 2 for n in range(8)], results
    assert max(peak) > 1


def test_events_reach_remote_listeners(client: Client, start_worker: Any) -> None:
    start_worker({"listener": lambda payload: payload["event"]["data"]})
    published = client.publish("thing.happened", {"x": 1}, unique_key="evt-1")
    assert not published["duplicate"]
    [job] = published["jobs"]
    done = client.wait_job(job["id"], timeout=15)
    assert done["result"] == {"x": 1}
    again = client.publish("thing.happened", {"x": 1}, unique_key="evt-1")
    assert again["duplicate"] is True
    event = client.get_event(published["event"]["id"])
    assert event["jobs"][0]["state"] == "completed"


def test_worker_token_without_work_is_refused(server: Any, start_worker: Any) -> None:
    w = start_worker({"echo": lambda payload: None}, token=server.enqueue_only)
    assert w.join(10) == EXIT_CONFIG


def test_batch_claims_and_finishes(client: Client, start_worker: Any) -> None:
    jobs = client.enqueue_many([job_request("parts", {"n": n}) for n in range(6)])
    gate = threading.Barrier(3, timeout=10)

    def part(payload: Any) -> int:
        gate.wait()  # three at once: the claim must have handed out several
        return int(payload["n"])

    w = start_worker({"parts": part}, concurrency=3)
    for job in jobs:
        assert client.wait_job(job["id"], timeout=15)["result"] == job["payload"]["n"]
    stats = w.worker.stats
    assert stats["jobs"] == 6
    assert stats["claims"] < stats["jobs"], stats  # at least one claim took several jobs
    until(lambda: stats["finished"] == 6, 5, "finishes counted")
    assert stats["finish_requests"] <= 6


def test_a_result_too_large_fails_the_job(client: Client, start_worker: Any) -> None:
    # Over the server's 1 MiB body limit: the finish is refused (413), so the
    # worker reports the job failed instead of letting its lease expire.
    start_worker({"doomed": lambda payload: "x" * (2 * 1024 * 1024)})
    job = client.enqueue("doomed", {})
    done = client.wait_job(job["id"], timeout=15)
    assert done["state"] == "failed", done
    assert done["attempt"] == 1
    assert done["errors"][-1]["error"].startswith("result refused by errand")
