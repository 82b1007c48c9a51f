"""Credentials: a static bearer token, or Adobe IMS OAuth Server-to-Server access tokens.

Both give the headers for a request and are told about a 401. ImsAuth fetches a token
(form-encoded client_credentials), refreshes it ahead of expiry at a margin proportional to its
lifetime, and refreshes at once on a 401: single-flight, so however many workers see the 401,
one token request is made and all of them wait for it.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

import aiohttp
import orjson

from .errors import AuthFailed
from .secret import Secret, redact

__all__ = ["Auth", "ImsAuth", "StaticAuth", "refresh_margin"]

DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
DEFAULT_SCOPES = "openid,AdobeID,campaign_sdk,additional_info.projectedProductContext"


class Auth(Protocol):
    """What the API client needs from credentials."""

    #: bumped on every new token; a 401 names the generation it was answered to
    generation: int

    async def headers(self) -> dict[str, str]: ...

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
        self._secrets = (token, api_key)

    async def headers(self) -> dict[str, str]:
        return self._headers

    async def unauthorized(self, generation: int, message: str) -> None:
        raise AuthFailed(
            f"the API rejected the token (401: {redact(message, *self._secrets)}); "
            "give a valid --token / BATCHPATCH_TOKEN, or use --client-id/--client-secret",
            401,
        )


def refresh_margin(lifetime: float) -> float:
    """How long before expiry to refresh: a tenth of the lifetime, at most five minutes."""
    return min(lifetime * 0.1, 300.0)


class ImsAuth:
    """OAuth Server-to-Server access tokens from Adobe IMS (POST ims/token/v3)."""

    ATTEMPTS = 3

    def __init__(
        self,
        session: aiohttp.ClientSession,
        client_id: str,
        client_secret: Secret,
        scopes: str = DEFAULT_SCOPES,
        ims_url: str = DEFAULT_IMS_URL,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._client_id = client_id
        self._secret = client_secret
        self._scopes = scopes
        self._url = ims_url
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: Secret | None = None
        self._refresh_at = 0.0
        # a 401 to a token fetched because of a 401, soon after, means tokens are refused as such
        self._fresh_until = 0.0
        self._after_401 = False
        self._lock = asyncio.Lock()
        self.generation = 0
        self.token_requests = 0

    async def headers(self) -> dict[str, str]:
        if self._token is None or time.monotonic() >= self._refresh_at:
            await self._refresh(self.generation)
        assert self._token is not None
        return {"Authorization": f"Bearer {self._token.value}", "X-Api-Key": self._client_id}

    async def unauthorized(self, generation: int, message: str) -> None:
        if (generation == self.generation and self._after_401
                and time.monotonic() < self._fresh_until):
            raise AuthFailed(
                f"the API rejected a fresh IMS access token for client id {self._client_id} "
                f"(401: {redact(message, self._secret)}); check the credential's scopes and "
                "product profile",
                401,
            )
        await self._refresh(generation, after_401=True)

    async def _refresh(self, generation: int, after_401: bool = False) -> None:
        async with self._lock:
            if self.generation != generation and self._token is not None:
                return  # another worker refreshed while this one waited
            answer = await self._request_token()
            lifetime = float(answer.get("expires_in") or 3600)
            now = time.monotonic()
            self._token = Secret(str(answer["access_token"]))
            self._refresh_at = now + lifetime - refresh_margin(lifetime)
            self._fresh_until = now + min(5.0, lifetime / 2)
            self.generation += 1
            self._after_401 = after_401

    async def _request_token(self) -> dict[str, Any]:
        form = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._secret.value,
            "scope": self._scopes,
        }
        problem = ""
        for attempt in range(self.ATTEMPTS):
            if attempt:
                await asyncio.sleep(0.5 * 2**attempt)
            self.token_requests += 1
            try:
                async with self._session.post(self._url, data=form, timeout=self._timeout) as resp:
                    body = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"cannot reach IMS at {self._url}: {type(exc).__name__}"
                continue
            answer = _json_object(body)
            if status == 200 and answer.get("access_token"):
                return answer
            said = ": ".join(
                str(answer[k]) for k in ("error", "error_description") if answer.get(k)
            )
            said = said or body[:200].decode("utf-8", "replace")
            problem = f"IMS refused client id {self._client_id} ({status}: {said})"
            if status < 500 and status != 429:
                break
        raise AuthFailed(redact(problem, self._secret), 401)


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
