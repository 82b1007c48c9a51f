"""The control endpoints under /_sandbox/ that tests and benchmarks drive: the profiles as they
are now, the request counters, and fresh state or changed knobs between tests.

`GET /_sandbox/stats` answers `counts` ({"METHOD STATUS": n}; a cut connection counts as
`drop`, `reset` or `not_http` instead of a status), `total`, `patches` ({pkey: writes applied}),
`tokens_issued`, `chaos` ({kind: requests served it}), `created` and `deleted` (PKeys, in
order), and with `?times=1` `times` ([[seconds since the first, label], ...]).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from .config import SandboxConfig
from .replies import json_response

if TYPE_CHECKING:
    from .server import Sandbox

__all__ = ["Control"]


class Control:
    """The /_sandbox/ handlers, over the sandbox they control."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    async def state(self, request: web.Request) -> web.Response:
        return json_response({"profiles": self.sandbox.state.profiles})

    async def stats(self, request: web.Request) -> web.Response:
        state = self.sandbox.state
        out: dict[str, Any] = {
            "counts": dict(state.counts),
            "total": sum(state.counts.values()),
            "patches": dict(state.patches),
            "tokens_issued": state.tokens_issued,
            "chaos": dict(state.chaos),
            "created": list(state.created),
            "deleted": list(state.deleted),
            "connections": len(state.connections),
            "first_at": state.first_at,
        }
        if request.query.get("times"):
            start = state.times[0][0] if state.times else 0.0
            out["times"] = [[round(t - start, 6), label] for t, label in state.times]
        return json_response(out)

    async def reset(self, request: web.Request) -> web.Response:
        """Default knobs updated by `config`; `profiles` (or the current ones) and no counts."""
        sandbox = self.sandbox
        body = orjson.loads(await request.read() or b"{}")
        config = SandboxConfig()
        try:
            config.update(body.get("config", {}))
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        sandbox.config = config
        sandbox.random = random.Random(config.seed)
        if "profiles" in body:
            sandbox.state.load(body["profiles"])
        else:
            sandbox.state.load(list(sandbox.state.profiles.values()))
        sandbox.state.tokens.clear()
        return json_response({"ok": True, "config": asdict(config)})

    async def configure(self, request: web.Request) -> web.Response:
        """These knobs changed, the rest kept; `revoke_tokens: true` forgets issued tokens."""
        sandbox = self.sandbox
        body = orjson.loads(await request.read() or b"{}")
        revoke = body.pop("revoke_tokens", False)
        try:
            sandbox.config.update(body)
        except ValueError as exc:
            return json_response({"error": str(exc)}, 400)
        if revoke:
            sandbox.state.tokens.clear()
        return json_response({"ok": True, "config": asdict(sandbox.config)})
