"""The failures file: the failed rows exactly as they were in the input, in the input's format,
so that it can be fixed and fed straight back. Each input kind gives its own (`failures_file`
on the opened input); the writer only calls `write(raw)` with a row's `raw`."""

from __future__ import annotations

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
    """CSV and JSON Lines: the header line (CSV), then each failed row's exact bytes."""

    def __init__(self, path: Path, header: bytes) -> None:
        self.path = path
        self._fh: BinaryIO = open(path, "wb")  # noqa: SIM115 - closed in close()
        if header:
            self._fh.write(header if header.endswith(b"\n") else header + b"\n")

    def write(self, raw: bytes) -> None:
        self._fh.write(raw if raw.endswith(b"\n") else raw + b"\n")

    def flush(self) -> None:
        self._fh.flush()

    def sync(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()
