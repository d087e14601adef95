"""The Client against a real server: enqueue options, reads, problem+json errors."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from errand import (
    Client,
    Forbidden,
    NotFound,
    Unauthorized,
    ValidationError,
    WorkerAPI,
    job_request,
)


def test_enqueue_with_every_option(client: Client) -> None:
    run_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    job = client.enqueue(
        "echo",
        {"n": 1},
        queue="elsewhere",
        priority=-5,
        run_at=run_at,
        max_attempts=7,
        timeout="90s",
        unique_key="opts-1",
        unique_for=dt.timedelta(minutes=5),
        tags=["a", "b"],
    )
    assert job["state"] == "scheduled"
    assert job["queue"] == "elsewhere"
    assert job["priority"] == -5
    assert job["max_attempts"] == 7
    assert job["tags"] == ["a", "b"]
    assert job["duplicate"] is False
    again = client.enqueue("echo", {"n": 2}, unique_key="opts-1", delay=10)
    assert again["duplicate"] is True and again["id"] == job["id"]
    fetched = client.get_job(job["id"])
    assert fetched["payload"] == {"n": 1}
    page = client.list_jobs(kind="echo", tag="a", limit=10)
    assert job["id"] in [j["id"] for j in page["jobs"]]
    assert any(j["id"] == job["id"] for j in client.iter_jobs(kind="echo", queue="elsewhere", limit=1))
    client.cancel_job(job["id"])
    assert client.get_job(job["id"])["state"] == "cancelled"


def test_enqueue_many_is_all_or_none(client: Client) -> None:
    jobs = client.enqueue_many([job_request("echo", {"i": i}, delay=3600) for i in range(3)])
    assert [j["payload"]["i"] for j in jobs] == [0, 1, 2]
    with pytest.raises(ValidationError) as err:
        client.enqueue_many([job_request("echo", {}), job_request("nope", {})])
    assert err.value.field == "jobs[1].kind"


def test_wait_runs_out_with_the_job_as_it_is(client: Client) -> None:
    job = client.enqueue("echo", None, delay=3600)
    seen = client.wait_job(job["id"], timeout=0.3)
    assert seen["state"] == "scheduled"


def test_not_found(client: Client) -> None:
    with pytest.raises(NotFound) as err:
        client.get_job(987654321)
    assert err.value.status == 404
    assert "987654321" in err.value.detail
    with pytest.raises(NotFound):
        client.get_batch(987654321)


def test_validation_error_names_the_field(client: Client) -> None:
    with pytest.raises(ValidationError) as err:
        client.enqueue("no_such_kind", {})
    assert err.value.status == 422
    assert err.value.field == "kind"
    assert "echo" in err.value.known_kinds
    with pytest.raises(ValidationError) as err2:
        client.enqueue("echo", {}, max_attempts=0)
    assert err2.value.field == "max_attempts"
    assert err2.value.title == "Unprocessable Entity"


def test_unauthorized_and_forbidden(server) -> None:  # type: ignore[no-untyped-def]
    with Client(server.url) as anonymous:
        with pytest.raises(Unauthorized) as err:
            anonymous.get_job(1)
        assert err.value.status == 401
    with Client(server.url, server.enqueue_only) as web:
        with pytest.raises(Forbidden) as err2:
            web.get_job(1)
        assert err2.value.status == 403
        assert err2.value.required_scope == "read"
    # A token without `work` on every worker route.
    api = WorkerAPI(server.url, server.admin, {"id": "py-forbidden"})
    for call in (
        lambda: api.claim(["echo"]),
        lambda: api.heartbeat([]),
        lambda: api.finish([{"id": 1, "fence": 1, "outcome": "handback"}]),
    ):
        with pytest.raises(Forbidden) as err3:
            call()
        assert err3.value.required_scope == "work"
    # ...and a `work` token cannot use the client routes.
    with Client(server.url, server.work) as worker_token:
        with pytest.raises(Forbidden):
            worker_token.enqueue("echo", {})


def test_worker_routes_validate(server) -> None:  # type: ignore[no-untyped-def]
    api = WorkerAPI(server.url, server.work, {"id": "py-validate"})
    with pytest.raises(ValidationError) as err:
        api.claim(["echo"], max_jobs=0)
    assert err.value.field == "max_jobs"
    with pytest.raises(ValidationError) as err2:
        api.finish([{"id": 1, "fence": 1, "outcome": "explode"}])
    assert err2.value.field is not None and err2.value.field.startswith("jobs[0]")


def test_keep_alive_reuses_and_reconnects(client: Client) -> None:
    client.stats()
    conn = client._http._conn
    assert conn is not None and conn.sock is not None
    port = conn.sock.getsockname()[1]
    for _ in range(20):
        client.stats()
    assert client._http._conn is conn and conn.sock.getsockname()[1] == port
    # The server closes connections idle for 1 s (idle_timeout): the next
    # request goes out again on a new connection, transparently.
    time.sleep(1.5)
    client.stats()
    new = client._http._conn
    assert new is not None and new.sock is not None
    assert new.sock.getsockname()[1] != port
