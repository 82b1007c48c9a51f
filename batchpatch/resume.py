"""What lets a run be resumed safely: the lock, the manifest, and the prior results.

- RunLock: one run per results file (cron overlap); the second exits 2 naming the lock.
- Manifest: the input's identity (size, sha256) and the settings that change outcomes, written
  beside the results; --resume refuses when they differ.
- PriorResults: the rows an earlier run already recorded. A results file cut mid-line by a crash
  is repaired first (the torn tail dropped), so the file always parses line by line.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

from .errors import UsageError
from .model import Status

__all__ = ["Manifest", "PriorResults", "RunLock", "read_records", "repair_tail"]

_STATUSES = list(Status)


class RunLock:
    """An exclusive, non-blocking lock on `<results>.lock`, held for the whole run."""

    def __init__(self, results: Path) -> None:
        self.path = results.with_name(results.name + ".lock")
        self._fd: int | None = None

    def __enter__(self) -> RunLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 64).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise UsageError(
                f"another batchpatch run (pid {holder}) holds the lock {self.path}; "
                "wait for it to finish"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
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


def read_records(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a results file, its torn tail repaired first; UsageError on a line that
    is not a batchpatch result (every record has an integer `row` and a known `status`)."""
    repair_tail(path)
    with open(path, "rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                record = orjson.loads(line)
                record["row"] = int(record["row"])
                Status(record["status"])
            except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
                raise UsageError(f"{path}: line {number}: not a batchpatch result record") from None
            yield record


class PriorResults:
    """Which input lines already have a record, and its status (a byte per line: flat memory)."""

    def __init__(self) -> None:
        self._status = bytearray()
        self.count = 0

    @classmethod
    def load(cls, path: Path) -> PriorResults:
        prior = cls()
        if path.exists():
            for record in read_records(path):
                prior.add(record["row"], Status(record["status"]))
        return prior

    def add(self, row: int, status: Status) -> None:
        if row >= len(self._status):
            self._status.extend(bytes(row + 1 - len(self._status) + 1024))
        if not self._status[row]:
            self.count += 1
        self._status[row] = _STATUSES.index(status) + 1

    def get(self, row: int) -> Status | None:
        if row < len(self._status) and self._status[row]:
            return _STATUSES[self._status[row] - 1]
        return None


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
        tmp.write_bytes(orjson.dumps(content, option=orjson.OPT_INDENT_2))
        os.replace(tmp, self.path)

    def check(self, content: dict[str, Any]) -> None:
        """Raise UsageError if the stored manifest differs from `content` (what resume needs)."""
        try:
            stored = orjson.loads(self.path.read_bytes())
        except FileNotFoundError:
            raise UsageError(f"{self.path}: no manifest beside the results; cannot tell what "
                             "they were made from (run without --resume to start over)") from None
        except orjson.JSONDecodeError:
            raise UsageError(f"{self.path}: the manifest is damaged; run without --resume "
                             "to start over") from None
        for key, value in content.items():
            if key == "input":
                old = stored.get("input", {})
                if (old.get("size"), old.get("sha256")) != (value["size"], value["sha256"]):
                    raise UsageError(f"cannot resume: the input {value['path']} changed since "
                                     f"the first run (see {self.path}); run without --resume")
            elif stored.get(key) != value:
                raise UsageError(f"cannot resume: {key} was {stored.get(key)!r}, now {value!r} "
                                 f"(see {self.path}); run without --resume")
