"""`--notify URL`: when a run ends (finished, aborted, interrupted, or refused with exit 2 before
anything was sent: then the summary also holds the `error` line), POST its summary as JSON
with a one-line `text` field, so that a Slack or Teams incoming webhook, or any alerting
endpoint, can take it. A few attempts; a notification that fails is logged and never changes
the run's exit status. Nothing in it is secret (the summary never holds one, and the text
goes through redact); the API's credentials are never sent there.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from .errors import BatchpatchError
from .secret import redact
from .settings import Network
from .transport import AiohttpTransport, Request, Transport

__all__ = ["notify", "notify_text"]

log = logging.getLogger("batchpatch")

ATTEMPTS = 3


def notify_text(summary: dict[str, Any]) -> str:
    """One line a person reads in a chat channel."""
    name = summary.get("settings", {}).get("input") or summary.get("results", "")
    code = summary.get("exit_code")
    if summary.get("error"):  # refused before anything was sent (exit 2)
        verdict = f"refused (exit {code}): {' '.join(str(summary['error']).split())}"
    elif summary.get("aborted"):
        verdict = f"aborted (exit {code}): {summary['aborted']}"
    elif summary.get("interrupted"):
        verdict = f"interrupted by {summary['interrupted']} (exit {code}); --resume finishes it"
    elif summary.get("failed"):
        verdict = f"finished, {summary['failed']} of {summary['rows']} rows failed (exit {code})"
    else:
        verdict = f"finished, all {summary['rows']} rows succeeded (exit {code})"
    counts = ", ".join(f"{n} {s}" for s, n in summary.get("counts", {}).items() if n)
    return redact(f"batchpatch {name}: {verdict}" + (f" [{counts}]" if counts else ""))


async def notify(url: str, summary: dict[str, Any], network: Network,
                 transport: Transport | None = None,
                 pause: float = 1.0) -> bool:
    """POST the summary to `url`; True if it was taken (2xx)."""
    body = orjson.dumps({**summary, "text": notify_text(summary)})
    request = Request("POST", url, {"Content-Type": "application/json"}, body, 15.0)
    own = transport is None
    sender = transport or AiohttpTransport(network)
    problem = ""
    try:
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(pause * 2 ** (attempt - 1))
            try:
                answer = await sender.send(request)
            except BatchpatchError as exc:
                problem = exc.message
                continue
            if 200 <= answer.status < 300:
                return True
            problem = f"HTTP {answer.status}"
            if 400 <= answer.status < 500 and answer.status != 429:
                break
    finally:
        if own:
            await sender.close()
    log.warning("--notify %s: the summary was not delivered (%s); the run's result stands",
                redact(url), redact(problem))
    return False
