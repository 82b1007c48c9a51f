"""Credentials: a static bearer token, or Adobe IMS OAuth Server-to-Server access tokens.

Both give the headers for a request and are told about a 401. ImsAuth fetches a token
(form-encoded client_credentials) through the run's transport (same proxy, same CA bundle),
refreshes it ahead of expiry at a margin proportional to its lifetime, and refreshes at once on
a 401: single-flight, so however many workers see the 401, one token request is made and all of
them wait for it. IMS is never followed through a redirect: the form holds the client secret.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlencode

import orjson

from .counters import Counters
from .errors import AbortRun, AuthFailed, Unreachable
from .pacing import Clock
from .secret import Secret, redact
from .settings import DEFAULT_IMS_URL, DEFAULT_SCOPES
from .target import describe_origin
from .transport import Request, Transport

__all__ = ["DEFAULT_IMS_URL", "DEFAULT_SCOPES", "Auth", "ImsAuth", "StaticAuth",
           "refresh_margin"]

log = logging.getLogger("batchpatch")

#: the lifetime assumed when IMS gives none that can be read (a 401 refreshes sooner anyway)
FALLBACK_LIFETIME = 300.0


class Auth(Protocol):
    """What the API client needs from credentials."""

    #: bumped on every new token; a 401 names the generation it was answered to
    generation: int

    async def headers(self) -> dict[str, str]: ...

    def reusable(self) -> bool:
        """Whether the headers of the current generation may be sent again as they are."""
        ...

    async def unauthorized(self, generation: int, message: str) -> None:
        """A request sent with `generation` got 401: get a new token, or raise AuthFailed."""
        ...


class StaticAuth:
    """A bearer token and API key given as they are (flags or environment)."""

    def __init__(self, token: Secret | None, api_key: Secret | None) -> None:
        self.generation = 0
        self._headers: dict[str, str] = {}
        if token:
            self._headers["Authorization"] = f"Bearer {token.value}"
        if api_key:
            self._headers["X-Api-Key"] = api_key.value

    async def headers(self) -> dict[str, str]:
        return self._headers

    def reusable(self) -> bool:
        return True

    async def unauthorized(self, generation: int, message: str) -> None:
        raise AuthFailed(
            f"the API rejected the token (401: {redact(message)}); "
            "give a valid --token / BATCHPATCH_TOKEN, or use --client-id/--client-secret",
            401,
        )


def refresh_margin(lifetime: float) -> float:
    """How long before expiry to refresh: a tenth of the lifetime, at most five minutes."""
    return min(lifetime * 0.1, 300.0)


def token_lifetime(value: Any) -> float | None:
    """`expires_in` as seconds, or None when it is not a positive finite number."""
    if isinstance(value, bool):
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


class ImsAuth:
    """OAuth Server-to-Server access tokens from Adobe IMS (POST ims/token/v3).

    State: `_token` is the current access token (None before the first), valid until
    `_refresh_at` on `clock`; `generation` counts tokens; `_after_401` says the current token
    was fetched because of a 401, and `_fresh_until` how long a 401 to it means "tokens are
    refused as such" rather than "this one expired"."""

    ATTEMPTS = 3

    def __init__(
        self,
        transport: Transport,
        client_id: str,
        client_secret: Secret,
        scopes: str = DEFAULT_SCOPES,
        ims_url: str = DEFAULT_IMS_URL,
        timeout: float = 30.0,
        counters: Counters | None = None,
        clock: Clock = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._transport = transport
        self._client_id = client_id
        self._secret = client_secret
        self._scopes = scopes
        self._url = ims_url
        self._timeout = timeout
        self._counters = counters or Counters()
        self._clock = clock
        self._token: Secret | None = None
        self._refresh_at = 0.0
        self._fresh_until = 0.0
        self._after_401 = False
        self._lock = asyncio.Lock()
        self.generation = 0

    def reusable(self) -> bool:
        return self._token is not None and self._clock() < self._refresh_at

    async def headers(self) -> dict[str, str]:
        if self._token is None or self._clock() >= self._refresh_at:
            await self._refresh(self.generation)
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token.value}", "X-Api-Key": self._client_id}

    async def unauthorized(self, generation: int, message: str) -> None:
        if (generation == self.generation and self._after_401
                and self._clock() < self._fresh_until):
            raise AuthFailed(
                f"the API rejected a fresh IMS access token for client id {self._client_id} "
                f"(401: {redact(message)}); check the credential's scopes and product profile",
                401,
            )
        await self._refresh(generation, after_401=True)

    async def _refresh(self, generation: int, after_401: bool = False) -> None:
        async with self._lock:
            if self.generation != generation and self._token is not None:
                return  # another worker refreshed while this one waited
            try:
                answer = await self._request_token()
            except AbortRun:
                raise
            except Exception as exc:  # a token that cannot be fetched stops the run
                raise AuthFailed(redact(f"cannot get an IMS token from {self._url}: "
                                        f"{type(exc).__name__}: {exc}")) from None
            token = answer["access_token"]
            lifetime = token_lifetime(answer.get("expires_in"))
            if lifetime is None:
                log.warning("IMS gave no usable expires_in (%r); assuming %.0f s",
                            answer.get("expires_in"), FALLBACK_LIFETIME)
                lifetime = FALLBACK_LIFETIME
            now = self._clock()
            self._token = Secret(token)
            self._refresh_at = now + lifetime - refresh_margin(lifetime)
            self._fresh_until = now + min(5.0, lifetime / 2)
            self.generation += 1
            self._after_401 = after_401

    async def _request_token(self) -> dict[str, Any]:
        body = urlencode({
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.value,
            "scope": self._scopes,
        }).encode()
        request = Request("POST", self._url, {
            "Content-Type": "application/x-www-form-urlencoded", "Accept": "application/json",
        }, body, self._timeout)
        problem = ""
        for attempt in range(self.ATTEMPTS):
            if attempt:
                await self._sleep(0.5 * 2**attempt)
            self._counters.token_requests += 1
            try:
                answer = await self._transport.send(request)
            except Unreachable as exc:
                problem = f"cannot reach IMS at {self._url}: {exc.message}"
                continue
            status = answer.status
            if status == 407:  # the proxy answered, not IMS: our client id was never judged
                raise AuthFailed(
                    f"the proxy refused our credentials (407 Proxy Authentication Required) "
                    f"on the way to IMS at {self._url}; check the user and password in --proxy "
                    "or HTTPS_PROXY/HTTP_PROXY", status)
            if 300 <= status < 400:
                where = answer.headers.get("Location", "")
                raise AuthFailed(
                    f"IMS at {self._url} answered a redirect ({status}) to "
                    f"{describe_origin(where) if where else 'nowhere'}; not followed: "
                    "the request holds the client secret. Check --ims-url", status)
            data = _json_object(answer.body)
            token = data.get("access_token")
            if status == 200 and isinstance(token, str) and _usable(token):
                return data
            said = ": ".join(str(data[k]) for k in ("error", "error_description") if data.get(k))
            # masked before it is cut: a secret the cut went through would no longer match
            said = said or redact(answer.body.decode("utf-8", "replace"))[:200]
            if status == 200:
                problem = f"IMS answered no usable access_token for client id {self._client_id}"
                break
            problem = f"IMS refused client id {self._client_id} ({status}: {said})"
            if status < 500 and status != 429:
                break
        raise AuthFailed(redact(problem), 401)


def _usable(token: str) -> bool:
    return bool(token) and token.isprintable() and not any(c.isspace() for c in token)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
