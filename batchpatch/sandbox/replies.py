"""How the sandbox answers: JSON bodies, Adobe's two error envelopes (and an error that echoes
the request, secrets included), and the ways of not answering at all (a dropped, reset or
garbled connection)."""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any

import orjson
from aiohttp import web

__all__ = ["Dropped", "echo_request", "error", "json_response", "reset_connection",
           "write_garbage"]


class Dropped(Exception):
    """The connection was cut on purpose; nothing is answered. `label` is what stats count."""

    def __init__(self, label: str = "drop") -> None:
        super().__init__(label)
        self.label = label


def json_response(data: Any, status: int = 200,
                  headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def error(status: int, message: str, code: str | None = None) -> web.Response:
    """`{"code": status, "message": ...}`, or `{"error_code": code, ...}` when code is given."""
    if code is None:
        return json_response({"code": status, "message": message}, status)
    return json_response({"error_code": code, "message": message}, status)


async def echo_request(request: web.Request, response: web.Response) -> web.Response:
    """`response` with the request echoed in its words, as careless gateways do: its line, every
    header and the body appended to `message` (to `error_description` in IMS's envelope)."""
    body = (await request.read()).decode("utf-8", "replace")
    headers = "; ".join(f"{name}: {value}" for name, value in request.headers.items())
    said = f" [request: {request.method} {request.path_qs}; {headers}; body: {body}]"
    try:
        data = orjson.loads(response.body) if isinstance(response.body, bytes) else None
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        data = {"message": "" if data is None else str(data)}
    key = "message" if "message" in data or "error_description" not in data else \
        "error_description"
    data[key] = f"{data.get(key, '')}{said}"
    kept = {k: v for k, v in response.headers.items()
            if k.lower() not in ("content-type", "content-length")}
    return json_response(data, response.status, kept)


def reset_connection(request: web.Request) -> None:
    """Abort with a TCP RST (linger 0), so the client reads 'connection reset'."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):  # already gone: aborting is all that is left
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def write_garbage(request: web.Request, data: bytes) -> None:
    """Write bytes that are not HTTP straight to the socket, then close it."""
    transport = request.transport
    if transport is not None:
        transport.write(data)
        transport.close()
