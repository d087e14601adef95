"""The remote worker: claim jobs over HTTP, run handlers, heartbeat, finish.

See docs/worker-protocol.md for the wire contract. Threads:

- the main thread claims (long poll) and starts one thread per job;
- a heartbeat thread renews every held lease every `heartbeat_ms`, carries
  progress, abandons jobs the server says are lost, enforces `timeout_ms`
  and learns `stop` (drain);
- a finisher thread sends outcomes, several per request when they pile up.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
import json
import logging
import os
import queue
import signal
import socket
import ssl
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from ._http import Transport
from ._types import Duration, duration, seconds
from .errors import Conflict, ErrandError, Forbidden, Unauthorized, ValidationError
from .outcomes import Deadly, Permanent, Retry, Snooze
from .version import __version__

log = logging.getLogger("errand.worker")

#: Exit status after a normal stop: signal, drain, `limit`, `memory_limit`, `time_limit`.
EXIT_OK = 0
#: Exit status after a handler abandoned by the worker kept running.
EXIT_STUCK = 70
#: Exit status after a `Deadly` outcome: restart the process fresh.
EXIT_DEADLY = 75
#: Exit status when the server refuses the worker (token, kinds, id).
EXIT_CONFIG = 78

#: A handler: `fn(payload)` or `fn(payload, ctx)`; its return value is the result.
Handler = Callable[..., Any]

# An error text is cut to this many characters (a stack trace or a payload
# echoed in an exception message must not bloat the job).
_ERROR_CAP = 2000
# An abandoned handler (lost lease, timeout) still running this long after
# is considered stuck: the worker drains and exits so it is replaced.
_ABANDON_GRACE = 10.0
_TICK = 0.1


class JobContext:
    """One claimed job as a handler sees it, with cooperative cancellation."""

    def __init__(self, job: Dict[str, Any]) -> None:
        self.job = job
        self.id: int = int(job["id"])
        self.fence: int = int(job["fence"])
        self.kind: str = job["kind"]
        self.queue: str = job.get("queue", "")
        self.payload: Any = job.get("payload")
        self.attempt: int = int(job.get("attempt", 0))
        self.max_attempts: int = int(job.get("max_attempts", 0))
        self.tags: List[str] = list(job.get("tags") or [])
        self.batch_id: Optional[int] = job.get("batch_id")
        ms = job.get("timeout_ms")
        self.timeout: Optional[float] = ms / 1000.0 if ms is not None else None
        self.started = time.monotonic()
        self._abandon = threading.Event()
        self._lock = threading.Lock()
        self._progress: Any = None
        self._progress_dirty = False
        self.lost_reason: Optional[str] = None
        self.timed_out = False

    def progress(self, value: Any) -> None:
        """Report progress (any JSON value up to 4 KiB); sent with the next heartbeat."""
        json.dumps(value)  # fail here, in the handler, rather than in the heartbeat
        with self._lock:
            self._progress = value
            self._progress_dirty = True

    @property
    def lost(self) -> bool:
        """True once the server said this worker no longer owns the job."""
        return self.lost_reason is not None

    @property
    def cancelled(self) -> bool:
        """True once the handler should stop: lease lost, job cancelled, or timed out."""
        return self._abandon.is_set()

    def sleep(self, secs: float) -> bool:
        """Sleep up to `secs`, waking early when cancelled; answers `cancelled`."""
        return self._abandon.wait(secs)

    def deadline_passed(self, now: float) -> bool:
        return self.timeout is not None and now - self.started >= self.timeout

    def take_progress(self) -> Tuple[bool, Any]:
        with self._lock:
            dirty, self._progress_dirty = self._progress_dirty, False
            return dirty, self._progress

    def put_back_progress(self) -> None:
        with self._lock:
            self._progress_dirty = True


class _Slot:
    """A job this worker holds or whose handler still runs."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.thread: Optional[threading.Thread] = None
        self.holding = True  # the lease is ours: list it in heartbeats
        self.finishing = False  # an outcome is queued or in flight
        self.abandoned_at: Optional[float] = None

    @property
    def busy(self) -> bool:
        return self.holding or (self.thread is not None and self.thread.is_alive())


# Handlers registered with the module-level `handler` decorator, for the
# `errand-worker` command to pick up from a user's file.
_registry: Dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register a handler for `kind` in the default registry (used by `errand-worker`)."""

    def register(fn: Handler) -> Handler:
        _registry[kind] = fn
        return fn

    return register


class Worker:
    """A remote worker process: claims jobs of its kinds and runs their handlers."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        *,
        concurrency: int = 1,
        queues: Optional[Sequence[str]] = None,
        worker_id: Optional[str] = None,
        host: Optional[str] = None,
        pid: Optional[int] = None,
        library: str = "errand-python",
        version: str = __version__,
        limit: Optional[int] = None,
        memory_limit: Optional[int] = None,
        time_limit: Optional[Duration] = None,
        poll_wait: float = 30.0,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.host = host or socket.gethostname()
        self.pid = pid if pid is not None else os.getpid()
        self.id = worker_id or _safe_id(f"{self.host}-{self.pid}")
        self.identity: Dict[str, Any] = {
            "id": self.id,
            "host": self.host[:255],
            "pid": self.pid,
            "library": library,
            "version": version,
        }
        self.concurrency = concurrency
        self.queues = list(queues) if queues else None
        self.limit = limit
        self.memory_limit = memory_limit
        self.time_limit = seconds(time_limit) if time_limit is not None else None
        self.poll_wait = min(max(poll_wait, 0.0), 30.0)
        self.handlers: Dict[str, Handler] = {}
        # One connection per role: a held long poll must not delay heartbeats.
        agent = f"{library}/{version}"
        self._claim_http = Transport(base_url, token, timeout, agent, ssl_context)
        self._beat_http = Transport(base_url, token, timeout, agent, ssl_context)
        self._finish_http = Transport(base_url, token, timeout, agent, ssl_context)
        self._cond = threading.Condition()
        self._slots: Dict[Tuple[int, int], _Slot] = {}
        self._finishes: "queue.Queue[Optional[Tuple[_Slot, Dict[str, Any]]]]" = queue.Queue()
        self._stop = threading.Event()
        self._hard = threading.Event()
        self._stop_reason = ""
        self._exit = EXIT_OK
        self._in_claim = False
        self._taken = 0
        self.lease_s = 15.0
        self.heartbeat_s = 5.0
        #: Counters for logs and tests: requests sent and jobs seen.
        self.stats: Dict[str, int] = {
            "claims": 0,
            "jobs": 0,
            "heartbeats": 0,
            "lost": 0,
            "finish_requests": 0,
            "finished": 0,
            "refused": 0,
        }

    # Registration -------------------------------------------------------

    def register(self, kind: str, fn: Handler) -> None:
        """Run `fn` for jobs of `kind`."""
        self.handlers[kind] = fn

    def handler(self, kind: str) -> Callable[[Handler], Handler]:
        """Decorator form of `register`."""

        def register(fn: Handler) -> Handler:
            self.register(kind, fn)
            return fn

        return register

    # Stopping -----------------------------------------------------------

    def stop(self, reason: str = "asked to stop", exit_code: Optional[int] = None) -> None:
        """Stop claiming; `run` returns once the running jobs have finished."""
        if exit_code is not None and self._exit == EXIT_OK:
            self._exit = exit_code
        if not self._stop.is_set():
            self._stop_reason = reason
            self._stop.set()
        # A held long poll would otherwise keep an idle worker up to 30 s.
        if self._in_claim:
            self._claim_http.abort()

    @property
    def stopping(self) -> bool:
        """True once the worker drains (signal, drain, limit, deadly…)."""
        return self._stop.is_set()

    def _on_signal(self, signum: int, frame: Optional[FrameType]) -> None:
        if self._stop.is_set():
            log.warning("second signal: handing back running jobs and exiting now")
            self._hard.set()
            self._claim_http.abort()
        else:
            log.info("signal %d: finishing running jobs, then exiting", signum)
            self.stop(f"signal {signum}")

    # The loop -----------------------------------------------------------

    def run(self, install_signals: bool = True) -> int:
        """Claim and run jobs until stopped; answers the process exit status."""
        if not self.handlers:
            raise ValueError("no handlers registered")
        if install_signals and threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGTERM, self._on_signal)
            signal.signal(signal.SIGINT, self._on_signal)
        started = time.monotonic()
        beater = threading.Thread(target=self._heartbeat_loop, name="errand-heartbeat", daemon=True)
        finisher = threading.Thread(target=self._finish_loop, name="errand-finish", daemon=True)
        beater.start()
        finisher.start()
        log.info("worker %s claiming %s", self.id, ", ".join(sorted(self.handlers)))
        failures = 0
        try:
            while not self._stop.is_set():
                self._check_limits(started)
                if self._stop.is_set():
                    break
                free = self._wait_free_slots()
                if free == 0 or self._stop.is_set():
                    continue
                if self.limit is not None:
                    free = min(free, self.limit - self._taken)
                wait = self.poll_wait
                if self.time_limit is not None:
                    wait = max(0.0, min(wait, self.time_limit - (time.monotonic() - started)))
                try:
                    answer = self._claim(free, wait)
                    failures = 0
                except (Unauthorized, Forbidden, ValidationError) as exc:
                    log.error("claim refused: %s", exc)
                    self.stop("claim refused", EXIT_CONFIG)
                    break
                except ErrandError as exc:
                    if self._stop.is_set():
                        break
                    failures += 1
                    pause = min(30.0, 0.5 * 2 ** min(failures, 6))
                    log.warning("claim failed (%s); again in %.1fs", exc, pause)
                    self._stop.wait(pause)
                    continue
                self._take(answer)
        finally:
            self._drain()
            self._finishes.put(None)
            finisher.join()
            self._beat_stop = True
            beater.join(timeout=self.heartbeat_s + 5)
            for http in (self._claim_http, self._beat_http, self._finish_http):
                http.close()
        log.info("worker %s stopped: %s", self.id, self._stop_reason or "done")
        return self._exit

    def _claim(self, max_jobs: int, wait: float) -> Dict[str, Any]:
        body: Dict[str, Any] = {
            "worker": self.identity,
            "kinds": sorted(self.handlers),
            "max_jobs": max(1, min(100, max_jobs)),
            "wait": round(wait, 3),
        }
        if self.queues:
            body["queues"] = self.queues
        self._in_claim = True
        try:
            if self._stop.is_set():  # a signal came between the check and the flag
                return {"jobs": [], "stop": False}
            answer: Dict[str, Any] = self._claim_http.request(
                "POST", "/v1/worker/claim", body, timeout=self._claim_http.timeout + wait
            )
        finally:
            self._in_claim = False
        self._learn(answer)
        self.stats["claims"] += 1
        self.stats["jobs"] += len(answer.get("jobs", []))
        return answer

    def _learn(self, answer: Dict[str, Any]) -> None:
        if "lease_ms" in answer:
            self.lease_s = answer["lease_ms"] / 1000.0
        if "heartbeat_ms" in answer:
            self.heartbeat_s = max(0.05, answer["heartbeat_ms"] / 1000.0)
        if answer.get("stop"):
            self.stop("drain requested")

    def _take(self, answer: Dict[str, Any]) -> None:
        handbacks: List[Tuple[_Slot, Dict[str, Any]]] = []
        for job in answer.get("jobs", []):
            ctx = JobContext(job)
            slot = _Slot(ctx)
            with self._cond:
                self._slots[(ctx.id, ctx.fence)] = slot
            self._taken += 1
            if self._stop.is_set() or ctx.kind not in self.handlers:
                # Claimed but never started: give it back without using an attempt.
                handbacks.append((slot, {"outcome": "handback"}))
                continue
            thread = threading.Thread(
                target=self._run_job, args=(slot,), name=f"errand-job-{ctx.id}", daemon=True
            )
            slot.thread = thread
            thread.start()
        for slot, outcome in handbacks:
            self._queue_finish(slot, outcome)

    def _wait_free_slots(self) -> int:
        with self._cond:
            while True:
                free = self.concurrency - sum(1 for s in self._slots.values() if s.busy)
                if free > 0 or self._stop.is_set():
                    return max(free, 0)
                self._cond.wait(_TICK)
                self._reap_locked()

    def _reap_locked(self) -> None:
        for key in [k for k, s in self._slots.items() if not s.busy]:
            del self._slots[key]

    def _check_limits(self, started: float) -> None:
        if self.limit is not None and self._taken >= self.limit:
            self.stop(f"limit of {self.limit} jobs reached")
        elif self.time_limit is not None and time.monotonic() - started >= self.time_limit:
            self.stop(f"time limit of {self.time_limit:g}s reached")
        elif self.memory_limit is not None:
            rss = _rss_bytes()
            if rss is not None and rss >= self.memory_limit:
                self.stop(f"memory limit reached ({rss} >= {self.memory_limit} bytes)")

    def _drain(self) -> None:
        """Wait for the jobs still held, or hand them back on a second signal."""
        with self._cond:
            while any(s.holding for s in self._slots.values()):
                if self._hard.is_set():
                    for slot in self._slots.values():
                        if slot.holding and not slot.finishing:
                            self._abandon(slot, None)
                            slot.holding = True  # until the handback is answered
                            self._queue_finish_locked(slot, {"outcome": "handback"})
                    self._hard.clear()
                self._cond.wait(_TICK)

    # Running a job ------------------------------------------------------

    def _run_job(self, slot: _Slot) -> None:
        ctx = slot.ctx
        fn = self.handlers[ctx.kind]
        outcome: Dict[str, Any]
        try:
            if _takes_context(fn):
                result = fn(ctx.payload, ctx)
            else:
                result = fn(ctx.payload)
            try:
                json.dumps(result)
                outcome = {"outcome": "success", "result": result}
            except (TypeError, ValueError) as exc:
                outcome = {"outcome": "permanent", "error": _cap(f"result is not JSON: {exc}")}
        except Retry as exc:
            outcome = {"outcome": "retry", "error": _cap(exc.error)}
        except Permanent as exc:
            outcome = {"outcome": "permanent", "error": _cap(exc.error)}
        except Snooze as exc:
            outcome = {"outcome": "snooze", "delay": duration(exc.delay)}
        except Deadly as exc:
            outcome = {"outcome": "deadly", "error": _cap(exc.error)}
            self.stop(f"deadly outcome of job {ctx.id}: {_cap(exc.error, 200)}", EXIT_DEADLY)
        except Exception as exc:  # any other error: retry with its text
            outcome = {"outcome": "retry", "error": _cap(f"{type(exc).__name__}: {exc}")}
            log.debug("job %d (%s) raised", ctx.id, ctx.kind, exc_info=True)
        finally:
            with self._cond:
                self._cond.notify_all()
        if outcome["outcome"] != "success":
            log.warning(
                "job %d (%s) attempt %d: %s %s",
                ctx.id,
                ctx.kind,
                ctx.attempt,
                outcome["outcome"],
                outcome.get("error", outcome.get("delay", "")),
            )
        with self._cond:
            if slot.finishing or not slot.holding:
                # Timed out (already finished as retry) or lost: the server has
                # moved on, so this outcome must not be reported.
                self._cond.notify_all()
                return
        self._flush_progress(ctx)
        with self._cond:
            if slot.finishing or not slot.holding:
                self._cond.notify_all()
                return
            self._queue_finish_locked(slot, outcome)

    def _flush_progress(self, ctx: JobContext) -> None:
        """Store progress reported since the last heartbeat before finishing, as
        errand's own workers do (the finish itself carries none)."""
        dirty, value = ctx.take_progress()
        if not dirty:
            return
        try:
            self._beat_http.request(
                "POST",
                "/v1/worker/heartbeat",
                {"worker": self.identity, "jobs": [{"id": ctx.id, "fence": ctx.fence, "progress": value}]},
                timeout=min(self._beat_http.timeout, max(1.0, self.lease_s / 3)),
            )
        except ErrandError as exc:  # lost meanwhile, or unreachable: the finish says
            log.debug("job %d: last progress not stored: %s", ctx.id, exc)

    def _abandon(self, slot: _Slot, reason: Optional[str]) -> None:
        if reason is not None:
            slot.ctx.lost_reason = reason
        slot.ctx._abandon.set()
        slot.abandoned_at = time.monotonic()

    # Finishing ----------------------------------------------------------

    def _queue_finish(self, slot: _Slot, outcome: Dict[str, Any]) -> None:
        with self._cond:
            self._queue_finish_locked(slot, outcome)

    def _queue_finish_locked(self, slot: _Slot, outcome: Dict[str, Any]) -> None:
        slot.finishing = True
        body = {"id": slot.ctx.id, "fence": slot.ctx.fence}
        body.update(outcome)
        self._finishes.put((slot, body))

    def _finish_loop(self) -> None:
        done = False
        while not done:
            item = self._finishes.get()
            if item is None:
                break
            batch = [item]
            while len(batch) < 1000:
                try:
                    more = self._finishes.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    done = True
                    break
                batch.append(more)
            self._send_finishes(batch)

    def _send_finishes(self, batch: List[Tuple[_Slot, Dict[str, Any]]]) -> None:
        body: Dict[str, Any] = {"worker": {"id": self.id}, "jobs": [b for _, b in batch]}
        results: List[Dict[str, Any]] = []
        pause = 0.2
        give_up = time.monotonic() + max(self.lease_s, 5.0) * 4
        resent = False
        while True:
            try:
                answer = self._finish_http.request("POST", "/v1/worker/finish", body)
                results = list(answer.get("results", []))
                break
            except Conflict as exc:  # none applied: each says why
                results = exc.results
                break
            except ErrandError as exc:
                # Sending the same finishes again is safe: an applied one then
                # answers `applied: false, reason: finished`.
                retryable = exc.status == 0 or exc.status >= 500
                if exc.status in (413, 422) and len(batch) > 1:
                    # One bad finish refuses the whole request: send each alone.
                    for item in batch:
                        self._send_finishes([item])
                    return
                if exc.status in (413, 422) and batch[0][1]["outcome"] == "success":
                    # The result itself was refused (too large, …): fail the
                    # job rather than let its lease expire, attempt after attempt.
                    slot, sent = batch[0]
                    log.error("job %d: result refused (%s); failing the job", slot.ctx.id, exc)
                    failed: Dict[str, Any] = {
                        "id": sent["id"],
                        "fence": sent["fence"],
                        "outcome": "permanent",
                        "error": _cap(f"result refused by errand: {exc.detail}"),
                    }
                    body = {"worker": {"id": self.id}, "jobs": [failed]}
                    batch = [(slot, failed)]
                    continue
                if not retryable or time.monotonic() > give_up:
                    log.error("finish of %d job(s) failed: %s", len(batch), exc)
                    break
                time.sleep(pause)
                pause = min(pause * 2, 5.0)
                resent = True
        by_lease = {(r.get("id"), r.get("fence")): r for r in results}
        self.stats["finish_requests"] += 1
        self.stats["finished"] += len(batch)
        with self._cond:
            for slot, sent in batch:
                r = by_lease.get((slot.ctx.id, slot.ctx.fence), {})
                # `finished` after a resend is our own earlier finish; on the
                # first send it means another worker ended the job.
                ours = resent and r.get("reason") == "finished"
                if r and not r.get("applied") and not ours:
                    log.warning(
                        "job %d: %s not applied (%s, now %s)",
                        slot.ctx.id,
                        sent["outcome"],
                        r.get("reason"),
                        r.get("state"),
                    )
                    self._abandon(slot, str(r.get("reason")))
                    self.stats["refused"] += 1
                slot.holding = False
            self._reap_locked()
            self._cond.notify_all()

    # Heartbeats ---------------------------------------------------------

    _beat_stop = False

    def _heartbeat_loop(self) -> None:
        next_beat = time.monotonic()
        while not self._beat_stop:
            time.sleep(_TICK)
            now = time.monotonic()
            self._enforce_timeouts(now)
            if now >= next_beat:
                ok = self._heartbeat()
                # After a failure, try again soon: two missed beats are tolerated.
                next_beat = now + (self.heartbeat_s if ok else min(1.0, self.heartbeat_s))

    def _enforce_timeouts(self, now: float) -> None:
        with self._cond:
            for slot in self._slots.values():
                ctx = slot.ctx
                if slot.holding and not slot.finishing and ctx.deadline_passed(now):
                    ctx.timed_out = True
                    self._abandon(slot, None)
                    self._queue_finish_locked(
                        slot, {"outcome": "retry", "error": f"timed out after {ctx.timeout:g}s"}
                    )
                    log.warning("job %d (%s) timed out after %gs", ctx.id, ctx.kind, ctx.timeout)
                if (
                    slot.abandoned_at is not None
                    and slot.thread is not None
                    and slot.thread.is_alive()
                    and now - slot.abandoned_at > _ABANDON_GRACE
                    and not self._stop.is_set()
                ):
                    self.stop(f"handler of job {ctx.id} ignored its cancellation", EXIT_STUCK)

    def _heartbeat(self) -> bool:
        with self._cond:
            held = [s for s in self._slots.values() if s.holding]
        leases: List[Dict[str, Any]] = []
        sent_progress: List[JobContext] = []
        for slot in held:
            lease: Dict[str, Any] = {"id": slot.ctx.id, "fence": slot.ctx.fence}
            dirty, value = slot.ctx.take_progress()
            if dirty:
                lease["progress"] = value
                sent_progress.append(slot.ctx)
            leases.append(lease)
        try:
            # A heartbeat stuck on a dead connection must not outlive the lease.
            answer = self._beat_http.request(
                "POST",
                "/v1/worker/heartbeat",
                {"worker": self.identity, "jobs": leases},
                timeout=min(self._beat_http.timeout, max(1.0, self.lease_s / 3)),
            )
            lost = list(answer.get("lost", []))
            self._learn(answer)
            self.stats["heartbeats"] += 1
        except Conflict as exc:
            lost = exc.lost
        except ErrandError as exc:
            for ctx in sent_progress:
                ctx.put_back_progress()
            log.warning("heartbeat failed: %s", exc)
            return False
        if lost:
            with self._cond:
                for item in lost:
                    owned = self._slots.get((item.get("id"), item.get("fence")))
                    if owned is None or not owned.holding:
                        continue
                    if owned.finishing and item.get("reason") == "finished":
                        continue  # our own finish got there first
                    log.warning(
                        "job %d lost (%s, now %s): abandoning it",
                        owned.ctx.id,
                        item.get("reason"),
                        item.get("state"),
                    )
                    self._abandon(owned, str(item.get("reason")))
                    owned.holding = False
                    self.stats["lost"] += 1
                self._reap_locked()
                self._cond.notify_all()
        return True


def _takes_context(fn: Handler) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return True
    positional = 0
    for p in params:
        if p.kind is p.VAR_POSITIONAL:
            return True
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            positional += 1
    return positional >= 2


def _cap(text: str, limit: int = _ERROR_CAP) -> str:
    text = str(text) or "error"
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _safe_id(text: str) -> str:
    cleaned = "".join(c if c.isalnum() or c in "_-.:" else "-" for c in text)
    return cleaned[:255] or "worker"


def _rss_bytes() -> Optional[int]:
    """The process's resident memory now (Linux), else its peak."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


_SIZE_UNITS = {"": 1, "b": 1, "k": 1024, "kb": 1000, "kib": 1024, "m": 1024**2, "mb": 1000**2,
               "mib": 1024**2, "g": 1024**3, "gb": 1000**3, "gib": 1024**3}


def parse_size(text: str) -> int:
    """Parse a memory size such as `256M`, `1GiB` or `500000000` into bytes."""
    raw = text.strip().lower()
    i = len(raw)
    while i > 0 and raw[i - 1].isalpha():
        i -= 1
    number, unit = raw[:i].strip(), raw[i:]
    if unit not in _SIZE_UNITS or not number:
        raise ValueError(f"not a size: {text!r}")
    return int(float(number) * _SIZE_UNITS[unit])


def _load_handlers(path: str) -> Dict[str, Handler]:
    """Run the user's handler file; answer what it registered with `errand.handler`."""
    spec = importlib.util.spec_from_file_location("errand_handlers", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"errand-worker: cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.path.insert(0, os.path.dirname(os.path.abspath(path)))
    sys.modules["errand_handlers"] = module
    spec.loader.exec_module(module)
    found = dict(_registry)
    extra = getattr(module, "HANDLERS", None)
    if isinstance(extra, dict):
        found.update(extra)
    return found


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The `errand-worker` command: run the handlers of a Python file."""
    parser = argparse.ArgumentParser(
        prog="errand-worker",
        description="Run errand jobs with the handlers of a Python file "
        "(registered with @errand.handler(\"kind\")). Token from ERRAND_TOKEN.",
    )
    parser.add_argument("handlers", help="path to a Python file registering handlers")
    parser.add_argument("--url", default=os.environ.get("ERRAND_URL", "http://127.0.0.1:7070"),
                        help="errand's base URL (default: $ERRAND_URL or http://127.0.0.1:7070)")
    parser.add_argument("--concurrency", type=int, default=1, help="jobs run at once (threads)")
    parser.add_argument("--queue", action="append", dest="queues", help="queue to take from (repeat)")
    parser.add_argument("--limit", type=int, help="exit after this many jobs")
    parser.add_argument("--memory-limit", type=parse_size, help="exit once RSS passes this (e.g. 256M)")
    parser.add_argument("--time-limit", type=seconds, help="exit after this long (e.g. 1h, 3600)")
    parser.add_argument("--id", dest="worker_id", help="worker id (default: HOST-PID)")
    parser.add_argument("--log-level", default=os.environ.get("ERRAND_LOG", "INFO"))
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    handlers = _load_handlers(args.handlers)
    if not handlers:
        parser.error(f"{args.handlers} registers no handler (use @errand.handler(\"kind\"))")
    worker = Worker(
        args.url,
        os.environ.get("ERRAND_TOKEN") or None,
        concurrency=args.concurrency,
        queues=args.queues,
        worker_id=args.worker_id,
        limit=args.limit,
        memory_limit=args.memory_limit,
        time_limit=args.time_limit,
    )
    for kind, fn in handlers.items():
        worker.register(kind, fn)
    return worker.run()
