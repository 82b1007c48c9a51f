"""What lets a run be resumed safely: the lock, the manifest, the prior results, the journal.

- RunLock: one run per results file (cron overlap); the second exits 2 naming the lock.
- Manifest: the input's identity (size, sha256) and every setting that changes outcomes,
  written beside the results; --resume refuses when they differ.
- PriorResults: the rows an earlier run already recorded, and whether each failure was
  retryable. A results file cut mid-line by a crash is repaired first (the torn tail dropped),
  so the file always parses line by line.
- Journal: before a write is sent, the row's intended change (its before-values) is on disk;
  --resume uses it for a row whose write may have landed but whose record was never written.
- compact: the results file rewritten with one record per row (the last), atomically.
"""

from __future__ import annotations

import array
import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .errors import LockHeld, UsageError, WriteFailed
from .model import Status

__all__ = ["Intent", "Journal", "Manifest", "PriorResults", "RunLock", "compact", "file_identity",
           "read_records", "repair_tail"]

_STATUSES = list(Status)
#: a journal entry: the write's kind ("patch", "create", "delete") and its `changed`
Intent = tuple[str, dict[str, list[Any]]]
_RETRYABLE = 0x80
#: a failure never to be sent again (its record has `"resend": false`: its create landed or
#: may have): not listed in the failures file, where it would create the profile again
_NO_RESEND = 0x40
_FLAGS = _RETRYABLE | _NO_RESEND


def lands_again(record: dict[str, Any]) -> bool:
    """Whether sending a failed row again could create its profile a second time."""
    return record.get("resend") is False


class RunLock:
    """An exclusive, non-blocking lock on `<results>.lock`, held for the whole run."""

    def __init__(self, results: Path) -> None:
        self.path = results.with_name(results.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot create the run's lock: "
                             f"{exc.strerror or exc}; nothing sent") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise LockHeld(
                f"another batchpatch run (pid {holder}) holds the lock {self.path}; "
                "wait for it to finish"
            ) from None
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except OSError as exc:  # a full disk, say: nothing can be recorded, so nothing is sent
            os.close(fd)
            with contextlib.suppress(OSError):
                self.path.unlink()
            raise UsageError(f"{self.path}: cannot write the run's lock: "
                             f"{exc.strerror or exc}; nothing sent") from None
        self._fd = fd
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self.path.unlink()
            os.close(self._fd)
            self._fd = None


def repair_tail(path: Path) -> int:
    """Drop a torn last line (no newline) from `path`; returns the bytes dropped."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return 0
    if size == 0:
        return 0
    with open(path, "rb+") as fh:
        keep = size
        chunk = 65536
        while keep > 0:
            start = max(0, keep - chunk)
            fh.seek(start)
            block = fh.read(keep - start)
            cut = block.rfind(b"\n")
            if cut >= 0:
                keep = start + cut + 1
                break
            keep = start
        if keep == size:
            return 0
        fh.truncate(keep)
        return size - keep


def _open_results(path: Path) -> Any:
    if path.is_dir():
        raise UsageError(f"{path}: is a directory, not a results file")
    if not path.exists():
        raise UsageError(f"{path}: no such results file")
    try:
        return open(path, "rb")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from None


_STATUS_CODES = {status.value.encode(): i + 1 for i, status in enumerate(Status)}
_FAILURE_CODES = frozenset(_STATUS_CODES[s.value.encode()] for s in Status if s.is_failure)


def _parse_record(path: Path, number: int, line: bytes) -> dict[str, Any]:
    try:
        record = orjson.loads(line)
        row = record["row"]
        if not isinstance(row, int) or isinstance(row, bool) or row < 1:
            raise ValueError(row)
        Status(record["status"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        raise UsageError(f"{path}: line {number}: not a batchpatch result record") from None
    return record  # type: ignore[no-any-return]


def read_records(path: Path, repair: bool = True) -> Iterator[dict[str, Any]]:
    """The records of a results file, its torn tail repaired first; UsageError on a line that
    is not a batchpatch result (every record has an integer `row` and a known `status`)."""
    fh = _open_results(path)
    with fh:
        if repair:
            with contextlib.suppress(OSError):
                repair_tail(path)
        for number, line in enumerate(fh, start=1):
            yield _parse_record(path, number, line)


class PriorResults:
    """Which input rows already have a record: its status, and whether a failure was retryable
    (a byte per row: flat memory). With `retry`, retryable failures count as not recorded."""

    def __init__(self, retry: bool = True) -> None:
        self._status = bytearray()
        self._retry = retry
        self.count = 0

    @classmethod
    def load(cls, path: Path, retry: bool = True) -> PriorResults:
        """The records of `path` (its torn tail repaired first). Lines as batchpatch writes them
        are read by their first fields, a large block at a time (2,000,000 lines in about a
        second); a block holding any other line is read line by line, each parsed whole and
        required to be a result record."""
        prior = cls(retry)
        if not path.exists():
            return prior
        fh = _open_results(path)
        with fh:
            with contextlib.suppress(OSError):
                repair_tail(path)
            number, tail = 0, b""
            while block := fh.read(1 << 20):
                block = tail + block
                cut = block.rfind(b"\n") + 1
                number = prior._add_block(path, number, block, cut)
                tail = block[cut:]
            if tail:
                number = prior._add_block(path, number, tail + b"\n", len(tail) + 1)
        return prior

    def _add_block(self, path: Path, number: int, block: bytes, size: int) -> int:
        """Add the records of the whole lines in `block[:size]`; returns the number of the last
        line. Searched in place: no line is copied out unless it needs a full parse."""
        codes, failures, status_of = _STATUS_CODES, _FAILURE_CODES, self._status
        pos = 0
        find, startswith = block.find, block.startswith
        while pos < size:
            end = find(b"\n", pos)
            number += 1
            code = 0
            if startswith(b'{"row":', pos) and block[end - 1] == 0x7D:  # ends with }
                # the row, then (after the pkey, whose quotes are escaped) the status
                comma = find(b",", pos + 7, end)
                start = find(b'"status":"', comma, end) + 10
                if comma > 0 and start > 9:
                    code = codes.get(block[start:find(b'"', start, end)], 0)
                    digits = block[pos + 7:comma]
            if code and digits.isdigit():
                row = int(digits)
                if row >= len(status_of):
                    status_of.extend(bytes(row + 1 - len(status_of) + 65536))
                if not status_of[row]:
                    self.count += 1
                if code in failures:
                    if find(b'"retryable":true', pos, end) >= 0:
                        code |= _RETRYABLE
                    if find(b'"resend":false', pos, end) >= 0:
                        code |= _NO_RESEND
                status_of[row] = code
            else:
                record = _parse_record(path, number, block[pos:end])
                status = Status(record["status"])
                self.add(record["row"], status,
                         status.is_failure and record.get("retryable") is True,
                         status.is_failure and lands_again(record))
            pos = end + 1
        return number

    def add(self, row: int, status: Status, retryable: bool = False,
            no_resend: bool = False) -> None:
        if row >= len(self._status):
            self._status.extend(bytes(row + 1 - len(self._status) + 1024))
        if not self._status[row]:
            self.count += 1
        self._status[row] = ((_STATUSES.index(status) + 1) | (_RETRYABLE if retryable else 0)
                             | (_NO_RESEND if no_resend else 0))

    def status(self, row: int) -> Status | None:
        """The status recorded for `row`, retryable or not."""
        if row < len(self._status) and (code := self._status[row]):
            return _STATUSES[(code & ~_FLAGS) - 1]
        return None

    def retryable(self, row: int) -> bool:
        return row < len(self._status) and bool(self._status[row] & _RETRYABLE)

    def listed(self, row: int) -> bool:
        """Whether the row belongs in the failures file: a failure that is safe to send again
        (not one whose create landed)."""
        status = self.status(row)
        return status is not None and status.is_failure and not self._status[row] & _NO_RESEND

    def get(self, row: int) -> Status | None:
        """The status that keeps `row` from running again, or None if it runs."""
        if self._retry and self.retryable(row):
            return None
        return self.status(row)

    def totals(self) -> dict[Status, int]:
        """Records per status."""
        counts = [0] * (len(_STATUSES) + 1)
        for code in self._status:
            counts[code & ~_FLAGS] += 1
        return {status: counts[i + 1] for i, status in enumerate(_STATUSES) if counts[i + 1]}

    def rows(self) -> Iterator[int]:
        return (row for row, code in enumerate(self._status) if code)


def file_identity(path: str) -> dict[str, Any]:
    """Size and sha256 of the input file."""
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while block := fh.read(1 << 20):
            digest.update(block)
            size += len(block)
    return {"path": str(Path(path).resolve()), "size": size, "sha256": digest.hexdigest()}


class Manifest:
    """`<results>.manifest.json`: what the results file was made from."""

    def __init__(self, results: Path) -> None:
        self.path = results.with_name(results.name + ".manifest.json")

    def write(self, content: dict[str, Any]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2))
            os.replace(tmp, self.path)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise UsageError(f"{self.path}: cannot write the manifest: {exc.strerror or exc}; "
                             "nothing sent") from None

    def check(self, content: dict[str, Any]) -> None:
        """Raise UsageError if the stored manifest differs from `content` (what resume needs)."""
        try:
            stored = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise UsageError(f"{self.path}: no manifest beside the results; cannot tell what "
                             "they were made from (run without --resume to start over)") from None
        except (orjson.JSONDecodeError, OSError):
            raise UsageError(f"{self.path}: the manifest is damaged; run without --resume "
                             "to start over") from None
        if not isinstance(stored, dict):
            raise UsageError(f"{self.path}: the manifest is damaged; run without --resume")
        for key, value in content.items():
            if key == "input":
                old = stored.get("input") or {}
                if (old.get("size"), old.get("sha256")) != (value.get("size"),
                                                            value.get("sha256")):
                    raise UsageError(f"cannot resume: the input {value.get('path')} changed "
                                     f"since the first run (see {self.path}); run without "
                                     "--resume")
            elif stored.get(key) != value:
                raise UsageError(f"cannot resume: {key} was {stored.get(key)!r}, now {value!r} "
                                 f"(see {self.path}); run without --resume")


class Journal:
    """`<results>.journal`: one line per write about to be sent ({"row", "pkey", "changed"}),
    flushed to the OS before the write goes out, so a kill at any moment leaves it on disk."""

    def __init__(self, results: Path) -> None:
        self.path = results.with_name(results.name + ".journal")
        self._fh: Any = None

    def write(self, row: int, pkey: str | None, changed: dict[str, list[Any]],
              action: str = "patch") -> None:
        line = orjson.dumps({"row": row, "pkey": pkey, "action": action, "changed": changed},
                            option=orjson.OPT_NON_STR_KEYS) + b"\n"
        try:
            if self._fh is None:
                self._fh = open(self.path, "ab", buffering=0)  # noqa: SIM115 - closed in close()
            written = self._fh.write(line)
            if written != len(line):
                raise OSError(28, "No space left on device (short write)")
        except OSError as exc:
            raise WriteFailed(f"{self.path}: cannot write the journal: "
                              f"{exc.strerror or exc}; nothing more is sent") from None

    def sync(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                os.fsync(self._fh.fileno())

    def close(self) -> None:
        if self._fh is not None:
            with contextlib.suppress(OSError):
                self._fh.close()
            self._fh = None

    def remove(self) -> None:
        self.close()
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def load(self) -> dict[int, Intent]:
        """{row: (action, changed)} of every entry (the last per row); a torn last line is
        ignored."""
        entries: dict[int, Intent] = {}
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return entries
        for line in data.splitlines():
            try:
                entry = orjson.loads(line)
                entries[int(entry["row"])] = (str(entry.get("action", "patch")),
                                              dict(entry["changed"]))
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                continue
        return entries


def compact(path: Path) -> bool:
    """Rewrite `path` keeping the last record of each row, atomically (temp file, fsync,
    rename). Returns False when there was nothing to drop."""
    last = array.array("q")
    duplicates = False
    with open(path, "rb") as fh:
        for index, line in enumerate(fh):
            row = orjson.loads(line)["row"]
            if row >= len(last):
                last.extend([-1] * (row + 1 - len(last) + 1024))
            duplicates |= last[row] >= 0
            last[row] = index
    if not duplicates:
        return False
    tmp = path.with_name(path.name + ".tmp")
    with open(path, "rb") as src, open(tmp, "wb") as out:
        for index, line in enumerate(src):
            if last[orjson.loads(line)["row"]] == index:
                out.write(line)
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    return True
