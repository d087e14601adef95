"""Typed exceptions built from errand's problem+json answers (RFC 9457)."""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Type


class ErrandError(Exception):
    """An error answer from errand, or a failure to reach it."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str,
        field: Optional[str] = None,
        problem: Optional[Mapping[str, Any]] = None,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}" if status else detail)
        self.status = status
        self.title = title
        self.detail = detail
        self.field = field
        self.problem: Dict[str, Any] = dict(problem or {})


class TransportError(ErrandError):
    """errand could not be reached, or the connection broke mid-request."""

    def __init__(self, detail: str) -> None:
        super().__init__(0, "Transport Error", detail)


class BadRequest(ErrandError):
    """400: a malformed body or query parameter."""


class Unauthorized(ErrandError):
    """401: no token, or an unknown or revoked one."""


class Forbidden(ErrandError):
    """403: the token lacks the scope (or kind) the request needs."""

    @property
    def required_scope(self) -> Optional[str]:
        """The scope the route needs, when the server says."""
        value = self.problem.get("required_scope")
        return value if isinstance(value, str) else None


class NotFound(ErrandError):
    """404: no such job, batch, event or node."""


class Conflict(ErrandError):
    """409: the resource is in the wrong state (or no listed lease is held)."""

    @property
    def lost(self) -> List[Dict[str, Any]]:
        """For a refused heartbeat: each lease and why it is no longer held."""
        return list(self.problem.get("lost") or [])

    @property
    def results(self) -> List[Dict[str, Any]]:
        """For a refused finish: what became of each finish."""
        return list(self.problem.get("results") or [])


class PayloadTooLarge(ErrandError):
    """413: the body is over the server's limit."""


class UnsupportedMediaType(ErrandError):
    """415: the body was not sent as JSON."""


class ValidationError(ErrandError):
    """422: a field is wrong; `field` names it."""

    @property
    def known_kinds(self) -> List[str]:
        """For an unknown kind: the kinds the server knows."""
        return list(self.problem.get("known_kinds") or [])


class ServiceUnavailable(ErrandError):
    """503: the store is unavailable; retry with backoff."""


class ServerError(ErrandError):
    """Any other 5xx answer."""


_BY_STATUS: Dict[int, Type[ErrandError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    503: ServiceUnavailable,
}


def error_from_problem(status: int, body: Any, reason: str = "") -> ErrandError:
    """Build the typed exception for an error answer."""
    problem: Mapping[str, Any] = body if isinstance(body, dict) else {}
    title = str(problem.get("title") or reason or "Error")
    detail = str(problem.get("detail") or (body if isinstance(body, str) else "") or title)
    field = problem.get("field")
    cls = _BY_STATUS.get(status)
    if cls is None:
        cls = ServerError if status >= 500 else ErrandError
    return cls(status, title, detail, field if isinstance(field, str) else None, problem)
