"""The exception tree: what is retried, what fails the row, what aborts the run.

    BatchpatchError
     ├── UsageError            bad flags, config or input file: exit 2, nothing sent
     │    └── LockHeld         another run holds the results file
     ├── RowError              this row fails; the run goes on
     │    ├── NotFound         the key does not exist (404, or an empty lookup)
     │    └── Rejected         the request itself is wrong (4xx, or a 500 that says so): no retry
     ├── TransientError        worth another attempt: 429, 502/503/504, other 5xx, timeouts,
     │    │                    dropped connections, a 2xx whose body is not JSON
     │    └── RateLimited      429; carries the server's Retry-After
     └── AbortRun              the target is plainly broken: stop sending, exit 3
          ├── AuthFailed       credentials rejected (401 after a fresh token, 403, IMS refusal)
          └── BreakerOpen      too many recent rows failed for reasons not their own

Every message is built by this package and never contains a secret.
"""

from __future__ import annotations

__all__ = [
    "EXIT_ABORTED",
    "EXIT_FAILURES",
    "EXIT_OK",
    "EXIT_USAGE",
    "AbortRun",
    "AuthFailed",
    "BatchpatchError",
    "BreakerOpen",
    "LockHeld",
    "NotFound",
    "RateLimited",
    "Rejected",
    "RowError",
    "TransientError",
    "UsageError",
]

#: the exit statuses of DESIGN.md (signals add 130 for SIGINT, 143 for SIGTERM)
EXIT_OK, EXIT_FAILURES, EXIT_USAGE, EXIT_ABORTED = 0, 1, 2, 3


class BatchpatchError(Exception):
    """Base of every error batchpatch raises on purpose."""


class UsageError(BatchpatchError):
    """The command line, the configuration or the input file cannot be used; nothing was sent."""


class LockHeld(UsageError):
    """Another batchpatch run is writing the same results file."""


class HttpError(BatchpatchError):
    """An HTTP answer that is not the value asked for; keeps the status and the API's message."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class RowError(HttpError):
    """The row fails; retrying would not help."""


class NotFound(RowError):
    """The key does not exist."""


class Rejected(RowError):
    """The API refused the request itself (bad field, bad key, bad value)."""


class TransientError(HttpError):
    """A failure that another attempt may not meet."""

    def __init__(
        self, message: str, http_status: int | None = None, retry_after: float | None = None
    ) -> None:
        super().__init__(message, http_status)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The server answered 429 Too Many Requests."""


class AbortRun(HttpError):
    """The run must stop: continuing would only burn quota."""


class AuthFailed(AbortRun):
    """The credentials (token, API key, client secret) were rejected."""


class BreakerOpen(AbortRun):
    """Too many recent rows failed for reasons that are not the rows' own."""
