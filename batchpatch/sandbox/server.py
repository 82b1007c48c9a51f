"""The sandbox's aiohttp application: its state, the pipeline every request goes through, the
profile APIs' reads and updates, and IMS; creation.py and control.py hold the other handlers.

Routes:
  GET|PATCH|DELETE /{org}/campaign/{api}/{resource}/{pkey}   Adobe-style profile API
  POST             /{org}/campaign/{api}/{resource}          create a profile (creation.py)
  GET              /{org}/campaign/{api}/{resource}/byEmail?email=...
  GET              /{org}/campaign/{api}/resourceType/{name} the resource's metadata (schema.py)
  GET|PATCH|DELETE /rest/profiles/{pkey}                     a plain REST API (bare GET; PATCH
  POST             /rest/profiles                            answers the updated resource)
  POST             /ims/token/v3                             IMS OAuth Server-to-Server tokens
  GET              /_sandbox/state   /_sandbox/stats         what tests assert on
  POST             /_sandbox/reset   /_sandbox/config        change profiles and knobs

Every API request (not /_sandbox/): the server's rate limit (limits.py; not /ims/), then
credentials (not /ims/), then `latency_ms`, then (not /ims/) `redirect_hops` same-origin
redirects for `redirect_methods`, then at most one injected fault (faults.py) or else at most
one chaos misbehaviour (chaos.py), then the handler. With `echo_request`, an error answer
(>= 400, IMS's too) echoes the request's line, headers and body in its message; `ims_redirect`
makes IMS answer a redirect (`redirect_status`) there instead of a token.

`flavor` v8 changes three answers: an unknown or unreadable PKey is 404 "Unable to decrypt
PKey" (ACS: 404 for an unknown `@...` key, 500 "Unable to parse expression" for a malformed
one), a PATCH of `{}` is 204 with no body (and writes nothing), and a single-profile GET includes
the profile's `href`.

Writes (PATCH, POST) check each field: read-only (READ_ONLY, and fields a given `schema` marks
`"readOnly": true`), unknown (not in the given `schema`; without one, in no loaded profile),
then the schema's data policies and types (schema.py), before anything is stored.
"""

from __future__ import annotations

import asyncio
import copy
import random
import secrets
import ssl
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web

from . import chaos, faults
from .config import SandboxConfig
from .control import Control
from .creation import Lifecycle
from .limits import RateGate
from .replies import Dropped, echo_request, error, json_response
from .schema import Refused, conform, document, infer, normalize, read_only

__all__ = ["SandboxConfig", "SandboxState", "load_profiles", "make_app", "serve"]

READ_ONLY = ("PKey", "href", "age", "created", "lastModified", "createdBy", "lastModifiedBy")
BROKEN_METADATA = "<html><body>Service unavailable</body></html>"


@dataclass
class SandboxState:
    """Profiles, their schema, issued tokens, the rate limit's state and request counters."""

    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    schema: set[str] = field(default_factory=set)  # the fields the loaded profiles hold
    inferred: dict[str, Any] = field(default_factory=dict)  # their resourceType content
    aliases: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, float] = field(default_factory=dict)  # token -> expiry (monotonic)
    tokens_issued: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    patches: Counter[str] = field(default_factory=Counter)  # pkey -> PATCHes applied
    chaos: Counter[str] = field(default_factory=Counter)  # kind -> requests served it
    created: list[str] = field(default_factory=list)  # PKeys created by POST, in order
    deleted: list[str] = field(default_factory=list)  # PKeys deleted, in order
    times: deque[tuple[float, str]] = field(default_factory=lambda: deque(maxlen=200_000))
    rate: RateGate = field(default_factory=RateGate)
    #: the client connections API requests came on (host, port), and when the first came
    connections: set[Any] = field(default_factory=set)
    first_at: float | None = None  # time.time()

    def load(self, profiles: list[dict[str, Any]]) -> None:
        self.profiles = {str(p["PKey"]): copy.deepcopy(p) for p in profiles}
        self.schema = {name for p in profiles for name in p}
        self.inferred = infer(profiles)
        for kept in (self.aliases, self.patches, self.counts, self.chaos, self.times):
            kept.clear()
        self.created.clear()
        self.deleted.clear()
        self.connections.clear()
        self.first_at = None
        self.tokens_issued = 0
        self.rate.clear()

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


class Sandbox:
    """Request handling; one instance per application. The helpers without a leading
    underscore are shared with creation.py."""

    def __init__(self, config: SandboxConfig, profiles: list[dict[str, Any]]) -> None:
        self.config = config
        self.state = SandboxState()
        self.state.load(profiles)
        self.random = random.Random(config.seed)
        self._given_schema: Any = None  # the `schema` knob's value `_schema` was built from
        self._schema: dict[str, Any] = {}

    # -- the pipeline every API request goes through ------------------------------------------
    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        now = time.monotonic()
        try:
            response = self._gate(request, now)
            if response is None:
                if self.config.latency_ms:
                    await asyncio.sleep(self.config.latency_ms / 1000)
                response = await self._serve(request, handler)
        except Dropped as dropped:
            self._count(request, now, dropped.label)
            raise
        if self.config.echo_request and response.status >= 400 \
                and isinstance(response, web.Response):
            response = await echo_request(request, response)
        self._count(request, now, str(response.status))
        return response

    def _count(self, request: web.Request, now: float, label: str) -> None:
        state = self.state
        state.counts[f"{request.method} {label}"] += 1
        state.times.append((now, label))
        if state.first_at is None:
            state.first_at = time.time() - (time.monotonic() - now)
        if request.transport is not None:
            state.connections.add(request.transport.get_extra_info("peername"))

    def _gate(self, request: web.Request, now: float) -> web.Response | None:
        """The server's own rate limit, and credentials."""
        if request.path.startswith("/ims/"):
            return None
        refusal = self.state.rate.admit(self.config, now)
        if refusal is not None:
            headers = {"Retry-After": refusal.retry_after} if refusal.retry_after else None
            return json_response({"error_code": "429050", "message": "Too many requests"}, 429,
                                 headers)
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
            return error(401, "Oauth token is not valid", "401013")
        key = request.headers.get("X-Api-Key", "")
        if key not in {k for k in (config.api_key, config.client_id) if k}:
            return error(403, "Api Key is invalid", "403003")
        return None

    async def _serve(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/ims/"):
            return await handler(request)
        moved = self._redirect_hop(request)
        if moved is not None:
            return moved
        fault = faults.draw(self.config, self.random)
        if fault is not None:
            return await faults.inject(fault, request, handler, self.config, self.random)
        kind = chaos.pick(self.config, request.method, self.random)
        if kind is None:
            return await handler(request)
        self.state.chaos[kind] += 1
        return await chaos.misbehave(kind, request, handler, self.config)

    def _redirect_hop(self, request: web.Request) -> web.Response | None:
        """`redirect_hops`: the next same-origin redirect this request gets, or None."""
        config = self.config
        if not config.redirect_hops or request.method not in config.redirect_methods:
            return None
        hop = request.query.get("_hop", "0")
        done = int(hop) if hop.isdigit() else 0
        if done >= config.redirect_hops:
            return None
        location = request.url.update_query({"_hop": str(done + 1)})
        return web.Response(status=config.redirect_status, headers={"Location": str(location)})

    # -- helpers shared by the handlers --------------------------------------------------------
    def content(self) -> dict[str, Any]:
        """The resource's schema: the `schema` knob's, else the one the profiles imply."""
        given = self.config.schema
        if given is None:
            return self.state.inferred
        if given is not self._given_schema:
            self._given_schema, self._schema = given, normalize(given)
        return self._schema

    def known(self, name: str) -> bool:
        return name in (self.state.schema if self.config.schema is None else self.content())

    def check_org(self, request: web.Request) -> web.Response | None:
        if request.match_info["org"] != self.config.org:
            return error(500, "RST-360011 An error has occurred - please check your request. "
                         "Check your URI and try again.")
        return None

    def find(self, pkey: str) -> tuple[dict[str, Any] | None, web.Response | None]:
        """The profile an Adobe-API URL names, or the flavour's answer for a bad key."""
        profile = self.state.profiles.get(self.state.resolve(pkey))
        if profile is not None and pkey.startswith("@"):
            return profile, None
        if self.config.flavor == "v8":
            return None, error(404, "Unable to decrypt PKey")
        if not pkey.startswith("@"):
            return None, error(500, f"XTK-170036 Unable to parse expression '{pkey}'.")
        return None, error(404, f"RST-360011 The resource '{pkey}' was not found", "404")

    async def read_body(self, request: web.Request) -> tuple[dict[str, Any], web.Response | None]:
        try:
            body = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return {}, error(400, "The request body is not valid JSON", "400")
        if not isinstance(body, dict):
            return {}, error(400, "The request body must be a JSON object", "400")
        return body, None

    def vet(self, body: dict[str, Any]) -> tuple[dict[str, Any], web.Response | None]:
        """An Adobe-API write as it will be stored, or Adobe's 500 for its first bad field."""
        marked = read_only(self.content()) if self.config.schema is not None else set()
        for name in body:
            if name in READ_ONLY or name in marked:
                return {}, error(500, f"XTK-170036 Cannot update the '{name}' property that is "
                                 "read-only.")
            if not self.known(name):
                return {}, error(500, f"RST-360011 '{name}' property is not valid for the "
                                 f"'profile' resource.")
        try:
            return conform(self.content(), body), None
        except Refused as refused:
            return {}, error(500, str(refused))

    def href(self, request: web.Request, pkey: str) -> str:
        info = request.match_info
        return (f"{request.url.origin()}/{self.config.org}/campaign/{info['api']}/"
                f"{info['resource']}/{pkey}")

    def store(self, profile: dict[str, Any], body: dict[str, Any]) -> None:
        for name, value in body.items():
            if name in self.config.ignore_fields:
                continue
            current = profile.get(name)
            if (self.config.nested_patch == "merge" and isinstance(current, dict)
                    and isinstance(value, dict)):
                current.update(copy.deepcopy(value))
            else:
                profile[name] = copy.deepcopy(value)

    # -- Adobe-style profile API ---------------------------------------------------------------
    async def get_profile(self, request: web.Request) -> web.Response:
        if (bad := self.check_org(request)) is not None:
            return bad
        profile, problem = self.find(request.match_info["pkey"])
        if problem is not None:
            return problem
        assert profile is not None
        if self.config.flavor == "v8":
            profile = {**profile, "href": self.href(request, str(profile["PKey"]))}
        if self.config.get_shape == "bare":
            return json_response(profile)
        return json_response({"content": [profile]})

    async def by_email(self, request: web.Request) -> web.Response:
        if (bad := self.check_org(request)) is not None:
            return bad
        email = request.query.get("email", "")
        found = [{**p, "href": self.href(request, p["PKey"])}
                 for p in self.state.profiles.values() if p.get("email") == email]
        return json_response({"content": found, "count": {"value": len(found)}})

    async def patch_profile(self, request: web.Request) -> web.Response:
        if (bad := self.check_org(request)) is not None:
            return bad
        profile, problem = self.find(request.match_info["pkey"])
        if problem is not None:
            return problem
        assert profile is not None
        body, problem = await self.read_body(request)
        if problem is not None:
            return problem
        if self.config.flavor == "v8" and not body:
            return web.Response(status=204)
        body, problem = self.vet(body)
        if problem is not None:
            return problem
        self.store(profile, body)
        real = str(profile["PKey"])
        self.state.patches[real] += 1
        shown = real
        if self.config.href_alias:
            shown = "@alias-" + real.lstrip("@")
            self.state.aliases[shown] = real
        return json_response({"PKey": real, "href": self.href(request, shown)})

    async def resource_type(self, request: web.Request) -> web.Response:
        if (bad := self.check_org(request)) is not None:
            return bad
        name = request.match_info["name"]
        if self.config.metadata == "off" or name != "profile":
            return error(404, f"RST-360011 The resource 'resourceType/{name}' was not found",
                         "404")
        if self.config.metadata == "broken":
            return web.Response(text=BROKEN_METADATA, content_type="text/html")
        base = f"{request.url.origin()}/{self.config.org}/campaign/{request.match_info['api']}"
        return json_response(document(self.content(), f"{base}/resourceType/{name}",
                                      f"{base}/{name}/"))

    # -- a plain REST API ----------------------------------------------------------------------
    async def rest_get(self, request: web.Request) -> web.Response:
        profile = self.state.profiles.get(request.match_info["pkey"])
        if profile is None:
            return json_response({"error": "not found"}, 404)
        return json_response(profile)

    async def rest_patch(self, request: web.Request) -> web.Response:
        profile = self.state.profiles.get(request.match_info["pkey"])
        if profile is None:
            return json_response({"error": "not found"}, 404)
        body, problem = await self.read_body(request)
        if problem is not None:
            return problem
        unknown = [name for name in body if not self.known(name)]
        if unknown:
            return json_response({"error": f"unknown field {unknown[0]}"}, 422)
        try:
            body = conform(self.content(), body)
        except Refused as refused:
            return json_response({"error": str(refused)}, 422)
        self.store(profile, body)
        self.state.patches[str(profile["PKey"])] += 1
        return json_response(profile)

    # -- IMS -----------------------------------------------------------------------------------
    async def ims_token(self, request: web.Request) -> web.Response:
        config = self.config
        if config.ims_redirect:
            return web.Response(status=config.redirect_status,
                                headers={"Location": config.ims_redirect})
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return json_response({"error": "unsupported_grant_type"}, 400)
        if not config.client_id or form.get("client_id") != config.client_id:
            return json_response({"error": "invalid_client",
                                  "error_description": "invalid client_id parameter"}, 400)
        if form.get("client_secret") != config.client_secret:
            return json_response({"error": "invalid_client",
                                  "error_description": "invalid client_secret parameter"}, 401)
        token = "sbx-" + secrets.token_urlsafe(24)
        self.state.tokens[token] = time.monotonic() + config.token_lifetime
        self.state.tokens_issued += 1
        lifetime = config.token_lifetime
        expires_in = (orjson.loads(config.ims_expires_in) if config.ims_expires_in else
                      int(lifetime) if lifetime >= 1 else lifetime)
        return json_response({"access_token": token, "token_type": "bearer",
                              "expires_in": expires_in})


@web.middleware
async def _swallow_dropped(request: web.Request, handler: Any) -> web.StreamResponse:
    try:
        return await handler(request)
    except Dropped:
        raise asyncio.CancelledError() from None


def make_app(config: SandboxConfig | None = None,
             profiles: list[dict[str, Any]] | None = None) -> web.Application:
    sandbox = Sandbox(config or SandboxConfig(), profiles or [])
    lifecycle, control = Lifecycle(sandbox), Control(sandbox)
    app = web.Application(middlewares=[_swallow_dropped, sandbox.middleware],
                          client_max_size=8 * 1024 * 1024)
    app["sandbox"] = sandbox
    base = "/{org}/campaign/{api}/{resource}"
    app.router.add_get("/{org}/campaign/{api}/resourceType/{name}", sandbox.resource_type)
    app.router.add_get(base + "/byEmail", sandbox.by_email)
    app.router.add_get(base + "/{pkey}", sandbox.get_profile)
    app.router.add_patch(base + "/{pkey}", sandbox.patch_profile)
    app.router.add_delete(base + "/{pkey}", lifecycle.delete_profile)
    app.router.add_post(base, lifecycle.create_profile)
    app.router.add_get("/rest/profiles/{pkey}", sandbox.rest_get)
    app.router.add_patch("/rest/profiles/{pkey}", sandbox.rest_patch)
    app.router.add_delete("/rest/profiles/{pkey}", lifecycle.rest_delete)
    app.router.add_post("/rest/profiles", lifecycle.rest_create)
    app.router.add_post("/ims/token/v3", sandbox.ims_token)
    app.router.add_get("/_sandbox/state", control.state)
    app.router.add_get("/_sandbox/stats", control.stats)
    app.router.add_post("/_sandbox/reset", control.reset)
    app.router.add_post("/_sandbox/config", control.configure)
    return app


async def serve(app: web.Application, host: str = "127.0.0.1", port: int = 0,
                ssl_context: ssl.SSLContext | None = None) -> web.AppRunner:
    """Start `app` on host:port (0: any free port), over TLS when given a context; prints the
    address line scripts wait for: `batchpatch sandbox listening on URL`."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024, ssl_context=ssl_context)
    await site.start()
    server = site._server
    assert server is not None
    bound = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    scheme = "https" if ssl_context is not None else "http"
    app["url"] = f"{scheme}://{host}:{bound}"
    print(f"batchpatch sandbox listening on {app['url']}", flush=True)
    return runner
