"""errand: a client and a remote worker for the errand background-job server."""

from .client import TERMINAL_STATES, Client, job_request
from .errors import (
    BadRequest,
    Conflict,
    ErrandError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from .outcomes import Deadly, Outcome, Permanent, Retry, Snooze
from .version import __version__
from .protocol import WorkerAPI
from ._worker import EXIT_CONFIG, EXIT_DEADLY, EXIT_OK, EXIT_STUCK, JobContext, Worker, handler

__all__ = [
    "BadRequest",
    "Client",
    "Conflict",
    "Deadly",
    "ErrandError",
    "Forbidden",
    "JobContext",
    "NotFound",
    "Outcome",
    "PayloadTooLarge",
    "Permanent",
    "Retry",
    "ServerError",
    "ServiceUnavailable",
    "Snooze",
    "TERMINAL_STATES",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "Worker",
    "WorkerAPI",
    "EXIT_CONFIG",
    "EXIT_DEADLY",
    "EXIT_OK",
    "EXIT_STUCK",
    "__version__",
    "handler",
    "job_request",
]
