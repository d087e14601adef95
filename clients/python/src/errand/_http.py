"""One keep-alive HTTP/1.1 connection to errand, with JSON in and out."""

from __future__ import annotations

import http.client
import json
import socket
import ssl
import threading
from typing import Any, Dict, Mapping, Optional
from urllib.parse import urlencode, urlsplit

from .errors import TransportError, error_from_problem

# Errors that mean the server closed a kept-alive connection before reading
# our request: the request did nothing and may be sent again on a new one.
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class Transport:
    """A single reused connection; requests are serialized by a lock."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str] = None,
        timeout: float = 30.0,
        user_agent: str = "errand-python",
        ssl_context: Optional[ssl.SSLContext] = None,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"base_url must be http(s)://host[:port], got {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")
        self._token = token
        self.timeout = timeout
        self._user_agent = user_agent
        self._ssl = ssl_context
        self._lock = threading.Lock()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._aborted = False

    def _connect(self, timeout: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(
                self._host, self._port, timeout=timeout, context=self._ssl
            )
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: Optional[Mapping[str, Any]] = None,
        timeout: Optional[float] = None,
    ) -> Any:
        """Send one request; answer the decoded JSON or raise an ErrandError."""
        url = self._prefix + path
        if query:
            pairs = {k: _query_value(v) for k, v in query.items() if v is not None}
            if pairs:
                url += "?" + urlencode(pairs)
        headers: Dict[str, str] = {"Accept": "application/json", "User-Agent": self._user_agent}
        data: Optional[bytes] = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        limit = self.timeout if timeout is None else timeout
        with self._lock:
            self._aborted = False
            for fresh in (False, True):
                reused = self._conn is not None and not fresh
                if self._conn is None or fresh:
                    self.close_locked()
                    self._conn = self._connect(limit)
                conn = self._conn
                try:
                    conn.timeout = limit
                    if conn.sock is not None:
                        conn.sock.settimeout(limit)
                    conn.request(method, url, body=data, headers=headers)
                    resp = conn.getresponse()
                    raw = resp.read()
                except _STALE as exc:
                    self.close_locked()
                    if reused and not self._aborted:
                        continue
                    raise TransportError(f"{method} {path}: connection closed: {exc}") from exc
                except (OSError, http.client.HTTPException) as exc:
                    self.close_locked()
                    raise TransportError(f"{method} {path}: {exc}") from exc
                if resp.will_close:
                    self.close_locked()
                return _decode(resp.status, resp.reason, resp.getheader("Content-Type"), raw)
        raise AssertionError("unreachable")

    def abort(self) -> None:
        """Break a request in progress (from another thread or a signal handler)."""
        self._aborted = True
        conn = self._conn
        sock = conn.sock if conn is not None else None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def close(self) -> None:
        """Close the connection (a later request opens a new one)."""
        with self._lock:
            self.close_locked()

    def close_locked(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None


def _query_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decode(status: int, reason: str, ctype: Optional[str], raw: bytes) -> Any:
    body: Any = None
    if raw:
        text = raw.decode("utf-8", "replace")
        if ctype and "json" in ctype:
            try:
                body = json.loads(text)
            except ValueError:
                body = text
        else:
            body = text
    if 200 <= status < 300:
        return body
    raise error_from_problem(status, body, reason)
