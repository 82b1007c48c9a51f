"""SIGINT and SIGTERM during a run: the first lets the rows in flight finish (up to --grace
seconds) and starts no new row; a second stops at once. Either way the run exits 130 / 143."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from .errors import SIGNAL_EXIT

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["install", "remove"]

log = logging.getLogger("batchpatch")


def install(engine: Engine, grace: float, received: list[signal.Signals]) -> None:
    """Handle both signals for this run; each one received is appended to `received`."""
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) == 1:
            log.warning("%s: finishing the rows in flight (up to %.0f s); again to stop now",
                        sig.name, grace)
            engine.stop()
            loop.call_later(grace, engine.cancel)
        else:
            log.warning("%s again: stopping now", sig.name)
            engine.cancel()

    for sig in SIGNAL_EXIT:
        loop.add_signal_handler(sig, on_signal, sig)


def remove() -> None:
    loop = asyncio.get_running_loop()
    for sig in SIGNAL_EXIT:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)
