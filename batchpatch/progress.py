"""Progress while a run goes: a live bar on a terminal (tqdm, on stderr), a log line every
`every` seconds otherwise. It polls the writer's counts, so it costs nothing per row."""

from __future__ import annotations

import asyncio
import gzip
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

__all__ = ["Progress", "count_rows"]

log = logging.getLogger("batchpatch")


def count_rows(path: str, fmt: str, limit_bytes: int = 2 << 30) -> int | None:
    """Rows in a plain input file, by counting lines (CSV: less the header), or from a Parquet
    file's footer; None if not cheap.

    A CSV cell holding a newline makes this a slight overcount; the bar says `~`.
    """
    if path == "-":
        return None
    if fmt == "parquet":
        from .parquet_input import count_parquet_rows

        return count_parquet_rows(path)
    try:
        with open(path, "rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
            fh.seek(0, 2)
            if fh.tell() > limit_bytes:
                return None
            fh.seek(0)
            lines, last = 0, b"\n"
            while block := fh.read(1 << 20):
                lines += block.count(b"\n")
                last = block[-1:]
    except (OSError, gzip.BadGzipFile):
        return None
    lines += last != b"\n"
    return max(0, lines - 1) if fmt == "csv" else lines


class Progress:
    """Shows how far the run is; `counts` is read, never written."""

    def __init__(self, counts: Callable[[], dict[str, int]], total: int | None,
                 tty: bool, every: float = 60.0, done_before: int = 0) -> None:
        self._counts = counts
        self._total = total
        self._tty = tty
        self._every = every
        self._done_before = done_before
        self._bar: Any = None

    async def run(self) -> None:
        started = time.monotonic()
        if self._tty:
            from tqdm import tqdm

            try:
                sized = os.get_terminal_size(sys.stderr.fileno()).columns > 0
            except OSError:
                sized = False
            self._bar = tqdm(total=self._total, unit="row", dynamic_ncols=sized,
                             ncols=None if sized else 100, leave=True, file=sys.stderr,
                             initial=self._done_before, smoothing=0.1)
        try:
            while True:
                await asyncio.sleep(0.25 if self._tty else self._every)
                self._show(started)
        finally:
            if self._bar is not None:  # off a terminal the summary follows: no last line
                self._show(started)
                self._bar.close()

    def _show(self, started: float) -> None:
        counts = self._counts()
        done = sum(counts.values())
        statuses = " ".join(f"{status}={n}" for status, n in counts.items() if n)
        if self._bar is not None:
            self._bar.update(done - self._bar.n)
            self._bar.set_postfix_str(statuses, refresh=True)
            return
        elapsed = time.monotonic() - started
        fresh = done - self._done_before
        rate = fresh / elapsed if elapsed else 0.0
        of = f" of ~{self._total}" if self._total else ""
        eta = ""
        if self._total and rate > 0:
            eta = f", ETA {max(0.0, (self._total - done) / rate):.0f} s"
        log.info("progress: %d%s rows, %.1f rows/s%s (%s)", done, of, rate, eta,
                 statuses or "none yet", extra={"event": "progress", "rows_done": done})
