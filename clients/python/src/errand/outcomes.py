"""Exceptions a handler raises to choose how its attempt ends."""

from __future__ import annotations

from ._types import Duration


class Outcome(Exception):
    """Base of the outcome exceptions (never raised itself)."""


class Retry(Outcome):
    """Fail this attempt; errand retries after the kind's backoff (uses an attempt).

    The protocol has no per-job retry delay: errand's backoff decides when.
    Use `Snooze` to run again after a chosen delay without using an attempt.
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Permanent(Outcome):
    """Fail the job at once, with no more attempts."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class Snooze(Outcome):
    """Run the job again after `delay` without using an attempt."""

    def __init__(self, delay: Duration) -> None:
        super().__init__(f"snooze {delay!r}")
        self.delay = delay


class Deadly(Outcome):
    """Infrastructure is down: give the job back (no attempt used) and stop this worker.

    The worker finishes its other jobs and exits with `EXIT_DEADLY` so a
    supervisor starts a fresh process (new connections, new state).
    """

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error
