"""The remote worker and the `errand-worker` command (`python -m errand.worker FILE`)."""

import sys

from ._worker import (
    EXIT_CONFIG,
    EXIT_DEADLY,
    EXIT_OK,
    EXIT_STUCK,
    Handler,
    JobContext,
    Worker,
    handler,
    main,
    parse_size,
)

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DEADLY",
    "EXIT_OK",
    "EXIT_STUCK",
    "Handler",
    "JobContext",
    "Worker",
    "handler",
    "main",
    "parse_size",
]

if __name__ == "__main__":
    sys.exit(main())
