"""Injected faults: each API request draws once, and with the knobs' shares gets a 429, a 5xx
from a gateway (502/503/504), a plain 500 from the service, a dropped connection, a late answer
or a truncated JSON body. The shares add up along FAULTS in that order (one draw, one fault at
most); a slow or truncated answer comes after the work is done, as from a real server."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web

from .config import SandboxConfig
from .replies import Dropped, error, json_response

__all__ = ["FAULTS", "draw", "inject"]

#: The fault knobs, in the order the single draw walks them.
FAULTS = ("fault_429", "fault_5xx", "fault_drop", "fault_slow", "fault_badjson", "fault_500")


def draw(config: SandboxConfig, rng: random.Random) -> str | None:
    """The fault this request gets, or None. Always consumes exactly one number from `rng`."""
    left = rng.random()
    for name in FAULTS:
        chance = getattr(config, name)
        if left < chance:
            return name
        left -= chance
    return None


async def inject(name: str, request: web.Request, handler: Any, config: SandboxConfig,
                 rng: random.Random) -> web.StreamResponse:
    """Answer `request` with fault `name`; raises Dropped for a cut connection."""
    if name == "fault_429":
        headers = {"Retry-After": config.retry_after} if config.retry_after else None
        return json_response({"error_code": "429050", "message": "Too many requests"}, 429,
                             headers)
    if name == "fault_5xx":
        return error(rng.choice((502, 503, 504)), "Service temporarily unavailable")
    if name == "fault_500":
        return error(500, "Internal server error")
    if name == "fault_drop":
        if request.transport is not None:
            request.transport.abort()
        raise Dropped("drop")
    response = await handler(request)  # the work is done; only the answer is late or broken
    if name == "fault_slow":
        await asyncio.sleep(config.slow_seconds)
        return response
    body = response.body if isinstance(response, web.Response) else b""
    return web.Response(body=bytes(body or b"{")[: max(1, len(body or b"") // 2)],
                        status=200, content_type="application/json")
