"""The failures file: the failed rows exactly as they were in the input, in the input's format,
so that it can be fixed and fed straight back. Each input kind gives its own (`failures_file`
on the opened input); the writer only calls `write(raw)` with a row's `raw`."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import BinaryIO

__all__ = ["FailuresFile", "RawFailures"]


class FailuresFile:
    """Where failed rows go, in the input's own format."""

    path: Path

    def write(self, raw: bytes) -> None:
        raise NotImplementedError

    def flush(self) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class RawFailures(FailuresFile):
    """CSV and JSON Lines: the header line (CSV), then each failed row's exact bytes. Written
    unbuffered, a whole row at a time: a row the disk refuses is cut back, so the file always
    ends with a whole row and can be fed back as it is."""

    def __init__(self, path: Path, header: bytes) -> None:
        self.path = path
        self._fh: BinaryIO = open(path, "wb", buffering=0)  # noqa: SIM115 - closed in close()
        self._size = 0
        if header:
            self.write(header)

    def write(self, raw: bytes) -> None:
        data = memoryview(raw if raw.endswith(b"\n") else raw + b"\n")
        try:
            while data:
                written = self._fh.write(data) or 0
                if written <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device (short write)")
                data = data[written:]
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fh.fileno(), self._size)
            raise
        self._size += len(raw) + (0 if raw.endswith(b"\n") else 1)

    def flush(self) -> None:
        pass  # unbuffered

    def sync(self) -> None:
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
