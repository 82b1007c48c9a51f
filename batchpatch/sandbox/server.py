"""The sandbox's aiohttp application.

Routes:
  GET|PATCH /{org}/campaign/{api}/{resource}/{pkey}    Adobe-style profile API
  GET       /{org}/campaign/{api}/{resource}/byEmail?email=...
  GET|PATCH /rest/profiles/{pkey}                       a plain REST API (bare GET; PATCH answers
                                                        the updated resource, no href)
  POST      /ims/token/v3                               IMS OAuth Server-to-Server tokens
  GET       /_sandbox/state   /_sandbox/stats           what tests assert on
  POST      /_sandbox/reset   /_sandbox/config          change profiles and knobs between tests
"""

from __future__ import annotations

import asyncio
import copy
import math
import random
import secrets
import time
from collections import Counter, deque
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

__all__ = ["SandboxConfig", "SandboxState", "load_profiles", "make_app", "serve"]

READ_ONLY = ("PKey", "href", "age", "created", "lastModified", "createdBy", "lastModifiedBy")


@dataclass
class SandboxConfig:
    """Every knob; all can be changed at run time through POST /_sandbox/config."""

    org: str = "demo"
    get_shape: str = "wrapped"  # wrapped: {"content": [profile]}; bare: the profile itself
    nested_patch: str = "replace"  # replace: a nested object in a PATCH replaces it; or merge
    href_alias: bool = False  # PATCH answers an href with another PKey string for the profile
    latency_ms: float = 0.0
    rate_limit: float = 0.0  # requests/s over any one second; more get 429
    fault_429: float = 0.0
    fault_5xx: float = 0.0
    fault_drop: float = 0.0
    fault_slow: float = 0.0
    fault_badjson: float = 0.0
    slow_seconds: float = 5.0
    retry_after: str = "1"  # Retry-After sent with injected 429s ("" for none)
    token: str = ""  # static bearer token required on profile routes ("" = not enforced)
    api_key: str = ""  # X-Api-Key required with a static token
    client_id: str = ""  # IMS credential; when set, IMS tokens are accepted (and required)
    client_secret: str = ""
    token_lifetime: float = 86399.0
    ignore_fields: list[str] = field(default_factory=list)  # accepted by PATCH, not stored
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        names = {f.name for f in fields(self)}
        for key, value in changes.items():
            name = key.replace("-", "_")
            if name not in names:
                raise ValueError(f"unknown sandbox setting {key!r}")
            setattr(self, name, value)


@dataclass
class SandboxState:
    """Profiles, issued tokens and request counters."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: set[str] = field(default_factory=set)
    aliases: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    counts: Counter[str] = field(default_factory=Counter)
    patches: Counter[str] = field(default_factory=Counter)  # pkey -> PATCHes applied
    times: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200_000))
    window: deque[float] = field(default_factory=deque)  # accepted request times, last second

    def load(self, profiles: list[dict[str, Any]]) -> None:
        self.profiles = {str(p["PKey"]): copy.deepcopy(p) for p in profiles}
        self.schema = {name for p in profiles for name in p}
        self.aliases.clear()
        self.patches.clear()
        self.counts.clear()
        self.times.clear()
        self.window.clear()

    def resolve(self, pkey: str) -> str:
        return self.aliases.get(pkey, pkey)


def load_profiles(path: str | Path) -> list[dict[str, Any]]:
    """Profiles from a JSON list, {"content": [...]}, or JSON Lines; each needs a PKey."""
    data = Path(path).read_bytes()
    try:
        parsed = orjson.loads(data)
        items = parsed.get("content", []) if isinstance(parsed, dict) else parsed
    except orjson.JSONDecodeError:
        items = [orjson.loads(line) for line in data.splitlines() if line.strip()]
    profiles = [p for p in items if isinstance(p, dict) and p.get("PKey")]
    if len(profiles) != len(items):
        raise ValueError(f"{path}: every profile needs a PKey")
    return profiles


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    if code is None:
        return _json({"code": status, "message": message}, status)
    return _json({"error_code": code, "message": message}, status)


class Sandbox:
    """Request handling; one instance per application."""

    def __init__(self, config: SandboxConfig, profiles: list[dict[str, Any]]) -> None:
        self.config = config
        self.state = SandboxState()
        self.state.load(profiles)
        self.random = random.Random(config.seed)

    # -- the pipeline every API request goes through ------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        state, config = self.state, self.config
        now = time.monotonic()
        response = await self._gate(request, now)
        if response is None:
            if config.latency_ms:
                await asyncio.sleep(config.latency_ms / 1000)
            response = await self._faulty(request, handler)
        label = "drop" if response is None else str(response.status)
        state.counts[f"{request.method} {label}"] += 1
        state.times.append((now, label))
        if response is None:
            raise _Dropped()
        return response

    async def _gate(self, request: web.Request, now: float) -> web.Response | None:
        """The server's own rate limit, and credentials."""
        config, state = self.config, self.state
        if config.rate_limit > 0 and not request.path.startswith("/ims/"):
            window = state.window
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= config.rate_limit:
                wait = max(0.001, window[0] + 1.0 - now)
                return _json({"error_code": "429050", "message": "Too many requests"}, 429,
                             {"Retry-After": str(math.ceil(wait))})
            window.append(now)
        if request.path.startswith("/ims/"):
            return None
        return self._check_auth(request)

    def _check_auth(self, request: web.Request) -> web.Response | None:
        config = self.config
        if not (config.token or config.client_id):
            return None
        bearer = request.headers.get("Authorization", "")
        token = bearer[7:] if bearer.startswith("Bearer ") else ""
        expiry = self.state.tokens.get(token)
        valid = (config.token and token == config.token) or (
            expiry is not None and expiry > time.monotonic()
        )
        if not valid:
            return _error(401, "Oauth token is not valid", "401013")
        key = request.headers.get("X-Api-Key", "")
        if key not in {k for k in (config.api_key, config.client_id) if k}:
            return _error(403, "Api Key is invalid", "403003")
        return None

    async def _faulty(self, request: web.Request, handler: Any) -> web.StreamResponse | None:
        config = self.config
        if request.path.startswith("/ims/"):
            return await handler(request)
        draw = self.random.random()
        for name in ("fault_429", "fault_5xx", "fault_drop", "fault_slow", "fault_badjson"):
            chance = getattr(config, name)
            if draw < chance:
                break
            draw -= chance
        else:
            return await handler(request)
        if name == "fault_429":
            headers = {"Retry-After": config.retry_after} if config.retry_after else None
            return _json({"error_code": "429050", "message": "Too many requests"}, 429, headers)
        if name == "fault_5xx":
            status = self.random.choice((502, 503, 504))
            return _error(status, "Service temporarily unavailable")
        if name == "fault_drop":
            if request.transport is not None:
                request.transport.abort()
            return None
        response = await handler(request)  # the work is done; only the answer is late or broken
        if name == "fault_slow":
            await asyncio.sleep(config.slow_seconds)
            return response
        body = response.body if isinstance(response, web.Response) else b""
        return web.Response(body=bytes(body or b"{")[: max(1, len(body or b"") // 2)],
                            status=200, content_type="application/json")

    # -- Adobe-style profile API ---------------------------------------------------------------
    def _check_org(self, request: web.Request) -> web.Response | None:
        if request.match_info["org"] != self.config.org:
            return _error(500, "RST-360011 An error has occurred - please check your request. "
                          "Check your URI and try again.")
        return None

    def _find(self, pkey: str) -> tuple[dict[str, Any] | None, web.Response | None]:
        if not pkey.startswith("@"):
            return None, _error(500, f"XTK-170036 Unable to parse expression '{pkey}'.")
        profile = self.state.profiles.get(self.state.resolve(pkey))
        if profile is None:
            return None, _error(404, f"RST-360011 The resource '{pkey}' was not found", "404")
        return profile, None

    async def get_profile(self, request: web.Request) -> web.Response:
        if (bad := self._check_org(request)) is not None:
            return bad
        profile, problem = self._find(request.match_info["pkey"])
        if problem is not None:
            return problem
        if self.config.get_shape == "bare":
            return _json(profile)
        return _json({"content": [profile]})

    async def by_email(self, request: web.Request) -> web.Response:
        if (bad := self._check_org(request)) is not None:
            return bad
        email = request.query.get("email", "")
        base = f"{request.url.origin()}/{self.config.org}/campaign/{request.match_info['api']}/"
        found = [{**p, "href": f"{base}{request.match_info['resource']}/{p['PKey']}"}
                 for p in self.state.profiles.values() if p.get("email") == email]
        return _json({"content": found, "count": {"value": len(found)}})

    async def patch_profile(self, request: web.Request) -> web.Response:
        if (bad := self._check_org(request)) is not None:
            return bad
        pkey = request.match_info["pkey"]
        profile, problem = self._find(pkey)
        if problem is not None:
            return problem
        assert profile is not None
        body, problem = await self._read_patch(request)
        if problem is not None:
            return problem
        for name in body:
            if name in READ_ONLY:
                return _error(500, f"XTK-170036 Cannot update the '{name}' property that is "
                              "read-only.")
            if name not in self.state.schema:
                return _error(500, f"RST-360011 '{name}' property is not valid for the "
                              f"'profile' resource.")
        self._apply(profile, body)
        real = str(profile["PKey"])
        shown = real
        if self.config.href_alias:
            shown = "@alias-" + real.lstrip("@")
            self.state.aliases[shown] = real
        base = f"{request.url.origin()}/{self.config.org}/campaign/{request.match_info['api']}/"
        return _json({"PKey": real, "href": f"{base}{request.match_info['resource']}/{shown}"})

    async def _read_patch(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return {}, _error(400, "The request body is not valid JSON", "400")
        if not isinstance(body, dict):
            return {}, _error(400, "The request body must be a JSON object", "400")
        return body, None

    def _apply(self, profile: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name in self.config.ignore_fields:
                continue
            current = profile.get(name)
            if (self.config.nested_patch == "merge" and isinstance(current, dict)
                    and isinstance(value, dict)):
                current.update(copy.deepcopy(value))
            else:
                profile[name] = copy.deepcopy(value)
        self.state.patches[str(profile["PKey"])] += 1

    # -- a plain REST API ----------------------------------------------------------------------
    async def rest_get(self, request: web.Request) -> web.Response:
        profile = self.state.profiles.get(request.match_info["pkey"])
        if profile is None:
            return _json({"error": "not found"}, 404)
        return _json(profile)

    async def rest_patch(self, request: web.Request) -> web.Response:
        profile = self.state.profiles.get(request.match_info["pkey"])
        if profile is None:
            return _json({"error": "not found"}, 404)
        body, problem = await self._read_patch(request)
        if problem is not None:
            return problem
        unknown = [name for name in body if name not in self.state.schema]
        if unknown:
            return _json({"error": f"unknown field {unknown[0]}"}, 422)
        self._apply(profile, body)
        return _json(profile)

    # -- IMS -----------------------------------------------------------------------------------
    async def ims_token(self, request: web.Request) -> web.Response:
        form = await request.post()
        config = self.config
        if form.get("grant_type") != "client_credentials":
            return _json({"error": "unsupported_grant_type"}, 400)
        if not config.client_id or form.get("client_id") != config.client_id:
            return _json({"error": "invalid_client",
                          "error_description": "invalid client_id parameter"}, 400)
        if form.get("client_secret") != config.client_secret:
            return _json({"error": "invalid_client",
                          "error_description": "invalid client_secret parameter"}, 401)
        token = "sbx-" + secrets.token_urlsafe(24)
        self.state.tokens[token] = time.monotonic() + config.token_lifetime
        lifetime = config.token_lifetime
        return _json({"access_token": token, "token_type": "bearer",
                      "expires_in": int(lifetime) if lifetime >= 1 else lifetime})

    # -- control -------------------------------------------------------------------------------
    async def control_state(self, request: web.Request) -> web.Response:
        return _json({"profiles": self.state.profiles})

    async def control_stats(self, request: web.Request) -> web.Response:
        state = self.state
        out: dict[str, Any] = {
            "counts": dict(state.counts),
            "total": sum(state.counts.values()),
            "patches": dict(state.patches),
            "tokens_issued": state.counts.get("POST 200", 0),
        }
        if request.query.get("times"):
            start = state.times[0][0] if state.times else 0.0
            out["times"] = [[round(t - start, 6), label] for t, label in state.times]
        return _json(out)

    async def control_reset(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        self.config = SandboxConfig()
        self.config.update(body.get("config", {}))
        self.random = random.Random(self.config.seed)
        if "profiles" in body:
            self.state.load(body["profiles"])
        else:
            self.state.load(list(self.state.profiles.values()))
        self.state.tokens.clear()
        return _json({"ok": True, "config": asdict(self.config)})

    async def control_config(self, request: web.Request) -> web.Response:
        body = orjson.loads(await request.read() or b"{}")
        revoke = body.pop("revoke_tokens", False)
        try:
            self.config.update(body)
        except ValueError as exc:
            return _json({"error": str(exc)}, 400)
        if revoke:
            self.state.tokens.clear()
        return _json({"ok": True, "config": asdict(self.config)})


class _Dropped(Exception):
    """The connection was cut on purpose; nothing is answered."""


@web.middleware
async def _swallow_dropped(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except _Dropped:
        raise asyncio.CancelledError() from None


def make_app(config: SandboxConfig | None = None,
             profiles: list[dict[str, Any]] | None = None) -> web.Application:
    sandbox = Sandbox(config or SandboxConfig(), profiles or [])
    app = web.Application(middlewares=[_swallow_dropped, sandbox.middleware],
                          client_max_size=8 * 1024 * 1024)
    app["sandbox"] = sandbox
    base = "/{org}/campaign/{api}/{resource}"
    app.router.add_get(base + "/byEmail", sandbox.by_email)
    app.router.add_get(base + "/{pkey}", sandbox.get_profile)
    app.router.add_patch(base + "/{pkey}", sandbox.patch_profile)
    app.router.add_get("/rest/profiles/{pkey}", sandbox.rest_get)
    app.router.add_patch("/rest/profiles/{pkey}", sandbox.rest_patch)
    app.router.add_post("/ims/token/v3", sandbox.ims_token)
    app.router.add_get("/_sandbox/state", sandbox.control_state)
    app.router.add_get("/_sandbox/stats", sandbox.control_stats)
    app.router.add_post("/_sandbox/reset", sandbox.control_reset)
    app.router.add_post("/_sandbox/config", sandbox.control_config)
    return app


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0) -> web.AppRunner:
    """Start `app` on host:port (0: any free port); prints the address line scripts wait for."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    app["url"] = f"http://{host}:{bound}"
    print(f"batchpatch sandbox listening on {app['url']}", flush=True)
    return runner
