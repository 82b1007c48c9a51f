"""The exception tree: what is retried, what fails the row, what aborts the run; and the exit codes.

    BatchpatchError
     ├── UsageError              bad flags, config, input or output path: exit 2, nothing sent
     │    └── LockHeld           another run holds the results file
     ├── RowError                this row gets a record with `status`; the run goes on
     │    ├── NotFound           not_found: the key does not exist (404, an empty lookup)
     │    ├── CellError          invalid: a cell cannot be read as its field's type
     │    ├── Conflict           conflict: a `field@expected` guard does not hold
     │    └── Rejected           failed: the request itself is wrong (4xx, a 500 that says so,
     │         │                 an ambiguous lookup, a redirect not followed): no retry
     │         └── BodyTooLarge  failed: the answer is larger than --max-body
     ├── TransientError          worth another attempt (failed, retryable, once retries run out)
     │    ├── RateLimited        429; carries the server's Retry-After
     │    ├── ServerBusy         500, 502/503/504, 408, 425; or a 2xx whose body is not JSON
     │    └── Unreachable        no HTTP answer: refused, reset, not HTTP
     │         └── TimedOut      no answer within --timeout
     └── AbortRun                stop sending: exit 3; rows not decided get no record
          ├── AuthFailed         credentials rejected (401 after a fresh token, 403, IMS refusal)
          ├── TlsFailed          the server's certificate failed verification
          ├── BreakerOpen        too many recent rows failed for reasons not their own
          ├── CanaryFailed       a row among the first --canary rows failed
          ├── OutageTooLong      the target stayed unreachable past --max-outage
          ├── MaxChangesReached  --max-changes rows were written
          ├── InputBroken        the input cannot be read past some row (a gzip cut short)
          └── WriteFailed        a record or journal entry cannot be written (disk full)

Every message is built by this package; secrets are masked where any text leaves the process
(secret.redact). Row errors carry the status they map to, so the row protocol maps every one of
them in a single place.
"""

from __future__ import annotations

import signal
from typing import Any, ClassVar

from .model import Status

__all__ = [
    "EXIT_ABORTED",
    "EXIT_FAILURES",
    "EXIT_OK",
    "EXIT_SIGINT",
    "EXIT_SIGTERM",
    "EXIT_USAGE",
    "SIGNAL_EXIT",
    "AbortRun",
    "AuthFailed",
    "BatchpatchError",
    "BodyTooLarge",
    "BreakerOpen",
    "CanaryFailed",
    "CellError",
    "Conflict",
    "InputBroken",
    "LockHeld",
    "MaxChangesReached",
    "MaybeCreated",
    "NotFound",
    "OutageTooLong",
    "RateLimited",
    "Rejected",
    "RowError",
    "ServerBusy",
    "TimedOut",
    "TlsFailed",
    "TransientError",
    "Unreachable",
    "UsageError",
    "WriteFailed",
]

#: every row succeeded
EXIT_OK = 0
#: the run finished and some rows failed
EXIT_FAILURES = 1
#: usage, configuration or input error; nothing sent
EXIT_USAGE = 2
#: the run was aborted; rows not decided have no record (--resume finishes them)
EXIT_ABORTED = 3
#: interrupted by SIGINT / SIGTERM after draining the rows in flight
EXIT_SIGINT = 128 + signal.SIGINT
EXIT_SIGTERM = 128 + signal.SIGTERM
SIGNAL_EXIT = {signal.SIGINT: EXIT_SIGINT, signal.SIGTERM: EXIT_SIGTERM}


class BatchpatchError(Exception):
    """Base of every error batchpatch raises on purpose; keeps the HTTP status, if any."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.http_status = http_status


class UsageError(BatchpatchError):
    """The command line, the configuration or a file cannot be used; nothing was sent."""


class LockHeld(UsageError):
    """Another batchpatch run is writing the same results file."""


class RowError(BatchpatchError):
    """The row fails with `status`; retrying would not help."""

    status: ClassVar[Status] = Status.FAILED


class NotFound(RowError):
    """The key does not exist."""

    status = Status.NOT_FOUND


class CellError(RowError, ValueError):
    """A cell cannot be read as the field's type: the row is `invalid`."""

    status = Status.INVALID


class Conflict(RowError):
    """The profile does not hold a value a `field@expected` guard requires."""

    status = Status.CONFLICT

    def __init__(self, mismatch: dict[str, list[Any]], message: str | None = None) -> None:
        text = message or "guard failed: " + ", ".join(
            f"{k}: expected {v[0]!r}, found {v[1]!r}" for k, v in mismatch.items())
        super().__init__(text)
        self.mismatch = mismatch


class Rejected(RowError):
    """The API refused the request itself (bad field, bad key, bad value)."""


class MaybeCreated(Rejected):
    """A create that may have landed (its answer was lost, or an earlier run sent it and
    stopped): never sent again, so the row is kept out of the failures file."""


class BodyTooLarge(Rejected):
    """The answer's body is larger than --max-body."""


class TransientError(BatchpatchError):
    """A failure that another attempt may not meet."""

    def __init__(self, message: str, http_status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message, http_status)
        self.retry_after = retry_after


class RateLimited(TransientError):
    """The server answered 429 Too Many Requests."""


class ServerBusy(TransientError):
    """The server answered, but with a status (5xx, 408) or body that may pass."""


class Unreachable(TransientError):
    """No HTTP answer at all: the connection was refused, reset or timed out, or the bytes
    were not HTTP. Many of these in a row, across the pool, mean an outage. `sent` is False
    when the request surely never reached the server (the connection was refused)."""

    def __init__(self, message: str, http_status: int | None = None,
                 retry_after: float | None = None, sent: bool = True) -> None:
        super().__init__(message, http_status, retry_after)
        self.sent = sent


class TimedOut(Unreachable):
    """No complete answer within --timeout."""


class AbortRun(BatchpatchError):
    """The run must stop: continuing would only burn quota or lose records."""


class AuthFailed(AbortRun):
    """The credentials (token, API key, client secret) were rejected."""


class TlsFailed(AbortRun):
    """The server's TLS certificate failed verification; every row would fail the same way."""


class BreakerOpen(AbortRun):
    """Too many recent rows failed for reasons that are not the rows' own."""


class CanaryFailed(AbortRun):
    """A row among the first --canary rows failed: the rest of the file is not sent."""


class OutageTooLong(AbortRun):
    """The target stayed unreachable for longer than --max-outage."""


class MaxChangesReached(AbortRun):
    """--max-changes rows were patched or created; the next write is not sent."""


class InputBroken(AbortRun):
    """The input cannot be read past some row (for example a gzip file cut short)."""


class WriteFailed(AbortRun):
    """An output file cannot be written (disk full, file-size limit, I/O error)."""
