"""`chaos`: API requests (not /ims/, not /_sandbox/) that get one misbehaviour each.

With probability `chaos` (drawn from the server's seeded random, one number per API request
while chaos > 0, so a `seed` replays the same run), a request gets one kind, chosen uniformly
from `chaos_kinds` among those that fit its method (`bad_href` fits PATCH only; a GET, POST or
DELETE picks among the others, and gets none if no other is listed). A request whose method is
not in `chaos_methods` gets none (its number is drawn all the same):

  redirect_self       302 (or `redirect_status`), Location = the request's own URL (a loop)
  redirect_elsewhere  302 (or `redirect_status`), Location = `chaos_elsewhere` + the
                      request's path (and query)
  no_content          204, empty body
  html                200 text/html `<html><body>Service page</body></html>`
  json_string         200 `"ok"`
  json_list           200 `[1,2]`
  content_null        200 `{"content": null}`
  bad_href            200 `{"PKey": <the PKey the write answered, else the URL's>,
                            "href": "http://[::1/broken"}`
  huge                200, a 12 MiB JSON body
  reset               the TCP connection is aborted with a RST; nothing is answered
  not_http            the raw bytes `GARBAGE\\r\\n\\r\\n` are written to the socket, then it closes
  slow                the real answer, `slow_seconds` late

Whether a write happened (the rule a test relies on to compare the server's state with the
client's records; it holds for PATCH, and the same way for POST and DELETE):
  APPLIED, then answered badly, as by a server that wrote and then failed to answer well:
      html, no_content, json_string, bad_href, slow, huge
      (the write goes through the normal checks first: one they refuse writes nothing, and the
      answer is the misbehaviour all the same)
  NOT APPLIED, the request never reaches the service:
      reset, not_http, redirect_self, redirect_elsewhere, json_list, content_null
A PATCH counts in the stats' `patches` only when it was applied; `chaos` in the stats counts
each kind served.
"""

from __future__ import annotations

import asyncio
import random
from functools import cache
from typing import Any

import orjson
from aiohttp import web

from .config import SandboxConfig
from .replies import Dropped, json_response, reset_connection, write_garbage

__all__ = ["APPLIED_FIRST", "HTML_PAGE", "HUGE_BYTES", "misbehave", "pick"]

#: Kinds that let the request reach the service before answering badly.
APPLIED_FIRST = frozenset({"html", "no_content", "json_string", "bad_href", "slow", "huge"})

HTML_PAGE = "<html><body>Service page</body></html>"
HUGE_BYTES = 12 * 1024 * 1024
BROKEN_HREF = "http://[::1/broken"


def pick(config: SandboxConfig, method: str, rng: random.Random) -> str | None:
    """The kind this request gets, or None."""
    if config.chaos <= 0 or rng.random() >= config.chaos:
        return None
    if method not in config.chaos_methods:
        return None
    kinds = [k for k in config.chaos_kinds if k != "bad_href" or method == "PATCH"]
    return rng.choice(kinds) if kinds else None


async def misbehave(kind: str, request: web.Request, handler: Any,
                    config: SandboxConfig) -> web.StreamResponse:
    """Serve `request` with misbehaviour `kind`; raises Dropped when nothing is answered."""
    answer = await handler(request) if kind in APPLIED_FIRST else None
    if kind == "slow":
        assert answer is not None
        await asyncio.sleep(config.slow_seconds)
        return answer
    if kind == "reset":
        reset_connection(request)
        raise Dropped("reset")
    if kind == "not_http":
        write_garbage(request, b"GARBAGE\r\n\r\n")
        raise Dropped("not_http")
    if kind == "redirect_self":
        return web.Response(status=config.redirect_status,
                            headers={"Location": str(request.url)})
    if kind == "redirect_elsewhere":
        target = config.chaos_elsewhere.rstrip("/") + request.raw_path
        return web.Response(status=config.redirect_status, headers={"Location": target})
    if kind == "no_content":
        return web.Response(status=204)
    if kind == "html":
        return web.Response(text=HTML_PAGE, content_type="text/html")
    if kind == "bad_href":
        return json_response({"PKey": _answered_pkey(answer, request), "href": BROKEN_HREF})
    if kind == "huge":
        return web.Response(body=_huge_body(), content_type="application/json")
    return json_response({"json_string": "ok", "json_list": [1, 2],
                          "content_null": {"content": None}}[kind])


def _answered_pkey(answer: web.StreamResponse | None, request: web.Request) -> Any:
    if isinstance(answer, web.Response) and isinstance(answer.body, bytes):
        try:
            data = orjson.loads(answer.body)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict) and data.get("PKey"):
            return data["PKey"]
    return request.match_info.get("pkey")


@cache
def _huge_body() -> bytes:
    head, tail = b'{"content": [], "padding": "', b'"}'
    return head + b"x" * (HUGE_BYTES - len(head) - len(tail)) + tail
