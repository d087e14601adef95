"""A real `errand serve` for the whole session, with remote kinds and tokens."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from errand import Client, Worker

REPO = Path(__file__).resolve().parents[3]

# Short leases so lost leases are rescued within seconds; fast backoff so
# retries are visible quickly.
CONFIG = """
database = "sqlite://errand.db"

[server]
auth = "required"
# Idle kept-alive connections are closed soon, so the clients' reconnect
# path runs throughout the tests.
idle_timeout = "1s"

[worker]
lease = "2s"
heartbeat = "500ms"
maintenance_interval = "200ms"

[queues.default]
concurrency = 4
"""

# Every test uses its own kinds, so workers of one test never take another's jobs.
KINDS = {
    "echo": {},
    "progress": {},
    "flaky": {"max_attempts": 3, "backoff": '{ base = "100ms", max = "200ms", jitter = 0 }'},
    "doomed": {},
    "sleepy": {},
    "infra": {},
    "cancelme": {},
    "stalls": {"backoff": '{ base = "0s", max = "0s", jitter = 0 }'},
    "wake": {},
    "slow": {},
    "limited": {},
    "drained": {},
    "parts": {},
    "listener": {},
    "overtime": {"timeout": '"1s"', "max_attempts": 1},
    "fat": {},
    "late": {"backoff": '{ base = "0s", max = "0s", jitter = 0 }'},
    "deadly_cli": {},
}


def _config() -> str:
    text = CONFIG
    for kind, opts in KINDS.items():
        text += f"\n[kinds.{kind}]\nremote = true\n"
        for key, value in opts.items():
            text += f"{key} = {value}\n"
    text += '\n[events."thing.happened"]\nlisteners = ["listener"]\n'
    return text


def _die_with_parent() -> None:
    """In the child: be killed when pytest dies, even by SIGKILL (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """The running server: its URL, directory and tokens."""

    def __init__(self, binary: str, directory: Path) -> None:
        self.binary = binary
        self.dir = directory
        self.config = directory / "errand.toml"
        self.config.write_text(_config())
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = directory / "server.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            [binary, "serve", "--config", str(self.config), "--listen", f"127.0.0.1:{self.port}"],
            cwd=directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={k: v for k, v in os.environ.items() if not k.startswith("ERRAND_")},
            preexec_fn=_die_with_parent,
        )
        self._wait_healthy()
        self.admin = self.token("app", "admin", "enqueue", "read")
        self.work = self.token("workers", "work")
        self.enqueue_only = self.token("web", "enqueue")

    def _wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"errand serve exited ({self.proc.returncode}):\n{self.log()}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as resp:
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"errand serve not healthy within 30s:\n{self.log()}")

    def token(self, name: str, *scopes: str) -> str:
        """`errand tokens create` on the server's database; the secret."""
        args = [self.binary, "tokens", "create", "--name", name, "--config", str(self.config)]
        for scope in scopes:
            args += ["--scope", scope]
        out = subprocess.run(args, cwd=self.dir, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        for word in out.stdout.split():
            if word.startswith("errand_"):
                return word
        raise AssertionError(f"no secret in {out.stdout!r}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    binary = os.environ.get("ERRAND_BIN") or str(REPO / "target" / "release" / "errand")
    if not (os.path.isfile(binary) and os.access(binary, os.X_OK)):
        # Fail loudly: a missing server must never turn into skipped tests.
        raise RuntimeError(f"errand binary not found at {binary}: build it or set ERRAND_BIN")
    directory = Path(tempfile.mkdtemp(prefix="errand-py-"))
    srv = Server(binary, directory)
    try:
        yield srv
    finally:
        srv.stop()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def client(server: Server) -> Iterator[Client]:
    with Client(server.url, server.admin) as c:
        yield c


class Running:
    """A Worker run in a thread of the test process."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.code: Optional[int] = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.code = self.worker.run(install_signals=False)

    def join(self, timeout: float = 20.0) -> Optional[int]:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"
        return self.code

    def stop(self, timeout: float = 20.0) -> Optional[int]:
        self.worker.stop("test over")
        return self.join(timeout)


@pytest.fixture
def start_worker(server: Server) -> Iterator[Callable[..., Running]]:
    """Start in-thread workers from `{kind: handler}`; all are stopped afterwards."""
    started: List[Running] = []

    def start(handlers: Dict[str, Callable[..., Any]], **options: Any) -> Running:
        options.setdefault("poll_wait", 5.0)
        # Workers of one process must still have distinct ids.
        options.setdefault("worker_id", f"py-test-{os.getpid()}-{len(started)}-{time.time_ns()}")
        worker = Worker(server.url, options.pop("token", server.work), **options)
        for kind, fn in handlers.items():
            worker.register(kind, fn)
        running = Running(worker)
        started.append(running)
        return running

    yield start
    for running in started:
        if running.thread.is_alive():
            running.stop()
