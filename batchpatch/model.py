"""The domain values every module shares: a row read from the input, its outcome, the statuses."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

__all__ = ["FAILURE_STATUSES", "WRITE_STATUSES", "Outcome", "Row", "Status"]


class Status(enum.StrEnum):
    """What happened to one input row; the value written in the results file."""

    #: patched and verified (or patched, with --no-verify)
    UPDATED = "updated"
    #: the profile already held every wanted value; no PATCH sent
    UNCHANGED = "unchanged"
    #: would change (see `changed`); nothing sent but GET
    DRY_RUN = "dry_run"
    #: the key does not exist
    NOT_FOUND = "not_found"
    #: the row itself is unusable (bad line, missing key, value of the wrong type)
    INVALID = "invalid"
    #: rejected by the API, or retries exhausted
    FAILED = "failed"
    #: PATCH accepted, but the read-back differs
    VERIFY_MISMATCH = "verify_mismatch"
    #: the profile did not hold a `field@expected` value the row required; nothing sent
    CONFLICT = "conflict"
    #: the profile did not exist and `--on-missing create` created it (verified)
    CREATED = "created"
    #: the profile did not exist and `--on-missing skip` left it
    SKIPPED = "skipped"
    #: `batchpatch delete` removed the profile
    DELETED = "deleted"

    @property
    def is_failure(self) -> bool:
        return self in FAILURE_STATUSES


FAILURE_STATUSES = frozenset(
    {Status.NOT_FOUND, Status.INVALID, Status.FAILED, Status.VERIFY_MISMATCH, Status.CONFLICT}
)
#: statuses of rows whose write reached the API
WRITE_STATUSES = frozenset({Status.UPDATED, Status.VERIFY_MISMATCH, Status.CREATED})


@dataclass(slots=True)
class Row:
    """One input record: its line number, its key, the cells to apply, and its exact raw bytes."""

    line: int
    key: str | None
    #: column -> cell; CSV cells are strings, JSONL values keep their JSON types
    values: dict[str, Any]
    #: the record exactly as it stood in the input, for the failures file
    raw: bytes
    #: True when values carry their own types (JSONL), False for CSV strings
    typed: bool = False
    #: why the row cannot be used; set by the reader, makes the outcome `invalid`
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    """The result of one row, built once when the row is decided; `record()` is its line in
    the results file."""

    row: int
    pkey: str | None
    status: Status
    changed: dict[str, list[Any]] | None = None
    http_status: int | None = None
    attempts: int = 0
    error: str | None = None
    elapsed_ms: float = 0.0
    #: further attempts after transient failures, and how many of them followed a 429
    retries: int = 0
    rate_limited: int = 0
    #: when the row finished (seconds since the epoch)
    finished_at: float = 0.0
    #: extra detail for mismatches and conflicts: {field: [wanted, found]}
    mismatch: dict[str, list[Any]] | None = None
    #: a failure that was not the row's own (transient errors that exhausted their retries)
    retryable: bool = False
    #: a profile created by the row: where it lives; and "create" when a create was (or, in a
    #: dry run, would be) sent rather than a PATCH
    href: str | None = None
    action: str | None = None
    #: False for a failed row whose create landed or may have: kept out of the failures file
    #: (sent again it would be created twice); recorded as "resend": false
    resend: bool = True
    raw: bytes = field(default=b"", repr=False)

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {
            "row": self.row,
            "pkey": self.pkey,
            "status": self.status.value,
            "changed": self.changed,
            "http_status": self.http_status,
            "attempts": self.attempts,
            "error": self.error,
            "elapsed_ms": round(self.elapsed_ms, 1),
            "retries": self.retries,
            "rate_limited": self.rate_limited,
            "ts": round(self.finished_at, 3),
        }
        if self.mismatch is not None:
            rec["mismatch"] = self.mismatch
        if self.action is not None:
            rec["action"] = self.action
        if self.href is not None:
            rec["href"] = self.href
        if not self.resend:
            rec["resend"] = False
        return rec
