"""The three worker routes as plain calls, for custom loops and tests.

`Worker` runs the whole loop; `WorkerAPI` is one connection speaking the
protocol (docs/worker-protocol.md) with no policy of its own.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from ._http import Transport
from ._types import Duration, duration, seconds


class WorkerAPI:
    """claim, heartbeat and finish over one keep-alive connection."""

    def __init__(
        self,
        base_url: str,
        token: Optional[str],
        identity: Dict[str, Any],
        timeout: float = 30.0,
    ) -> None:
        self.identity = dict(identity)
        self._http = Transport(base_url, token, timeout, "errand-python-worker")

    def claim(
        self,
        kinds: Sequence[str],
        max_jobs: int = 1,
        wait: Duration = 0,
        queues: Optional[Sequence[str]] = None,
    ) -> Dict[str, Any]:
        """Take up to `max_jobs` jobs, holding the request up to `wait` for one."""
        body: Dict[str, Any] = {
            "worker": self.identity,
            "kinds": list(kinds),
            "max_jobs": max_jobs,
            "wait": duration(wait),
        }
        if queues:
            body["queues"] = list(queues)
        answer: Dict[str, Any] = self._http.request(
            "POST", "/v1/worker/claim", body, timeout=self._http.timeout + seconds(wait)
        )
        return answer

    def heartbeat(self, jobs: Sequence[Dict[str, Any]]) -> Dict[str, Any]:
        """Renew leases (`{"id", "fence", "progress"?}`); 409 raises `Conflict` with `.lost`."""
        answer: Dict[str, Any] = self._http.request(
            "POST", "/v1/worker/heartbeat", {"worker": self.identity, "jobs": list(jobs)}
        )
        return answer

    def finish(self, jobs: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
        """Report outcomes; answers `results`. 409 raises `Conflict` with `.results`."""
        answer = self._http.request(
            "POST", "/v1/worker/finish", {"worker": {"id": self.identity["id"]}, "jobs": list(jobs)}
        )
        return list(answer["results"])

    def close(self) -> None:
        """Close the connection."""
        self._http.close()
