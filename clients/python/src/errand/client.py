"""The errand HTTP API client: enqueue, read and wait for jobs, batches, events."""

from __future__ import annotations

import datetime as _dt
import ssl
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Sequence, Union
from urllib.parse import quote

from ._http import Transport
from ._types import Duration, duration, seconds, timestamp
from .version import __version__

#: A job, batch or event exactly as the API answers it (JSON object).
Json = Dict[str, Any]

#: Job states after which a job never changes again (unless retried by hand).
TERMINAL_STATES = frozenset({"completed", "failed", "cancelled"})

# A server holds `?wait=` requests at most this long per request; longer
# waits are done in several requests (and the socket timeout gets a margin).
_MAX_WAIT = 30.0
_WAIT_MARGIN = 10.0


def job_request(
    kind: str,
    payload: Any = None,
    *,
    queue: Optional[str] = None,
    priority: Optional[int] = None,
    run_at: Union[_dt.datetime, str, None] = None,
    delay: Optional[Duration] = None,
    max_attempts: Optional[int] = None,
    timeout: Optional[Duration] = None,
    unique_key: Optional[str] = None,
    unique_for: Optional[Duration] = None,
    tags: Optional[Sequence[str]] = None,
) -> Json:
    """Build one job for `enqueue_many` or `create_batch` (unset options are left out)."""
    if run_at is not None and delay is not None:
        raise ValueError("run_at and delay are exclusive")
    body: Json = {"kind": kind, "payload": payload}
    if queue is not None:
        body["queue"] = queue
    if priority is not None:
        body["priority"] = priority
    if run_at is not None:
        body["run_at"] = timestamp(run_at)
    if delay is not None:
        body["delay"] = duration(delay)
    if max_attempts is not None:
        body["max_attempts"] = max_attempts
    if timeout is not None:
        body["timeout"] = duration(timeout)
    if unique_key is not None:
        body["unique_key"] = unique_key
    if unique_for is not None:
        body["unique_for"] = duration(unique_for)
    if tags is not None:
        body["tags"] = list(tags)
    return body


class Client:
    """A synchronous client of errand's HTTP API over keep-alive connections.

    Thread-safe: each thread gets its own connection, reused for its
    requests, so a long `wait_job` in one thread never delays another.
    Every error answer raises a subclass of `errand.ErrandError`.
    """

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        timeout: float = 30.0,
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        self._args = (base_url, token, timeout, f"errand-python/{__version__}", ssl_context)
        Transport(*self._args)  # check the URL now, not at the first request
        self._local = threading.local()
        self._all: List[Transport] = []
        self._lock = threading.Lock()

    @property
    def _http(self) -> Transport:
        http: Optional[Transport] = getattr(self._local, "http", None)
        if http is None:
            http = Transport(*self._args)
            self._local.http = http
            with self._lock:
                self._all.append(http)
        return http

    def close(self) -> None:
        """Close every connection."""
        with self._lock:
            for http in self._all:
                http.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # Jobs ---------------------------------------------------------------

    def enqueue(self, kind: str, payload: Any = None, **options: Any) -> Json:
        """Enqueue one job; answers it with `duplicate` (see `job_request` for options)."""
        result: Json = self._http.request("POST", "/v1/jobs", job_request(kind, payload, **options))
        return result

    def enqueue_many(self, jobs: Sequence[Json]) -> List[Json]:
        """Enqueue jobs (from `job_request`) all or none; answers them in order."""
        answer = self._http.request("POST", "/v1/jobs/batch", {"jobs": list(jobs)})
        return list(answer["jobs"])

    def get_job(self, job_id: int, wait: Optional[Duration] = None) -> Json:
        """The job with its errors; with `wait`, held until it ends (at most `wait`)."""
        query = None
        limit = None
        if wait is not None:
            query = {"wait": duration(wait)}
            limit = self._http.timeout + seconds(wait)
        result: Json = self._http.request("GET", f"/v1/jobs/{int(job_id)}", query=query, timeout=limit)
        return result

    def wait_job(self, job_id: int, timeout: Duration = 60.0) -> Json:
        """Wait until the job ends (or `timeout` passes); answers it as it then is."""
        deadline = time.monotonic() + seconds(timeout)
        while True:
            left = deadline - time.monotonic()
            job = self.get_job(job_id, wait=max(0.0, min(left, _MAX_WAIT)))
            if job["state"] in TERMINAL_STATES or left <= _MAX_WAIT:
                return job

    def list_jobs(
        self,
        *,
        state: Optional[str] = None,
        kind: Optional[str] = None,
        queue: Optional[str] = None,
        tag: Optional[str] = None,
        created_after: Union[_dt.datetime, str, None] = None,
        created_before: Union[_dt.datetime, str, None] = None,
        text: Optional[str] = None,
        limit: Optional[int] = None,
        cursor: Optional[int] = None,
    ) -> Json:
        """One page of jobs, newest first: `{"jobs": [...], "next_cursor": ...}`."""
        query = {
            "state": state,
            "kind": kind,
            "queue": queue,
            "tag": tag,
            "created_after": timestamp(created_after) if created_after is not None else None,
            "created_before": timestamp(created_before) if created_before is not None else None,
            "text": text,
            "limit": limit,
            "cursor": cursor,
        }
        result: Json = self._http.request("GET", "/v1/jobs", query=query)
        return result

    def iter_jobs(self, **filters: Any) -> Iterator[Json]:
        """Every job matching the filters of `list_jobs`, page after page."""
        cursor = filters.pop("cursor", None)
        while True:
            page = self.list_jobs(cursor=cursor, **filters)
            yield from page["jobs"]
            cursor = page.get("next_cursor")
            if cursor is None:
                return

    def cancel_job(self, job_id: int) -> Json:
        """Cancel a job that has not ended (`admin`)."""
        result: Json = self._http.request("POST", f"/v1/jobs/{int(job_id)}/cancel")
        return result

    def retry_job(self, job_id: int) -> Json:
        """Run a failed or cancelled job again (`admin`)."""
        result: Json = self._http.request("POST", f"/v1/jobs/{int(job_id)}/retry")
        return result

    # Batches ------------------------------------------------------------

    def create_batch(self, jobs: Sequence[Json], on_complete: Optional[Json] = None) -> Json:
        """Enqueue jobs as one batch, with an optional job run after the last ends."""
        body: Json = {"jobs": list(jobs)}
        if on_complete is not None:
            body["on_complete"] = on_complete
        answer = self._http.request("POST", "/v1/batches", body)
        return dict(answer["batch"])

    def get_batch(self, batch_id: int, wait: Optional[Duration] = None, results: bool = False) -> Json:
        """The batch view (`{"batch": ..., "results"?: [...]}`); `wait` holds until it ends."""
        query: Dict[str, Any] = {}
        limit = None
        if wait is not None:
            query["wait"] = duration(wait)
            limit = self._http.timeout + seconds(wait)
        if results:
            query["results"] = "true"
        result: Json = self._http.request("GET", f"/v1/batches/{int(batch_id)}", query=query, timeout=limit)
        return result

    def wait_batch(self, batch_id: int, timeout: Duration = 60.0) -> Json:
        """Wait until every job of the batch ended; answers the view with `results`."""
        deadline = time.monotonic() + seconds(timeout)
        while True:
            left = deadline - time.monotonic()
            view = self.get_batch(batch_id, wait=max(0.0, min(left, _MAX_WAIT)), results=True)
            if view["batch"].get("finished_at") or left <= _MAX_WAIT:
                return view

    # Events -------------------------------------------------------------

    def publish(self, name: str, data: Any = None, unique_key: Optional[str] = None) -> Json:
        """Publish an event: `{"event": ..., "jobs": [...], "duplicate": bool}`."""
        body: Json = {"name": name, "data": data}
        if unique_key is not None:
            body["unique_key"] = unique_key
        result: Json = self._http.request("POST", "/v1/events", body)
        return result

    def get_event(self, event_id: int) -> Json:
        """An event with its listeners' jobs."""
        result: Json = self._http.request("GET", f"/v1/events/{int(event_id)}")
        return result

    # Operations ---------------------------------------------------------

    def nodes(self) -> Json:
        """Live nodes and remote workers."""
        result: Json = self._http.request("GET", "/v1/nodes")
        return result

    def drain(self, name: str) -> None:
        """Ask a remote worker to finish its jobs and exit (`admin`)."""
        self._http.request("POST", f"/v1/nodes/{quote(name, safe='')}/drain")

    def stats(self) -> Json:
        """Counts by queue, kind and state."""
        result: Json = self._http.request("GET", "/v1/stats")
        return result
