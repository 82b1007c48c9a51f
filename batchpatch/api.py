"""The HTTP client: builds URLs, sends GET/PATCH with the API's headers, and turns every answer
into a value or a typed error (errors.py). Retries, pacing and auth are applied per attempt here.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import aiohttp
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential_jitter

from .auth import Auth
from .errors import AbortRun, AuthFailed, NotFound, RateLimited, Rejected, TransientError
from .policy import Pacer, RetryPolicy, Timeouts

__all__ = ["ApiClient", "Attempts", "Stats", "Target", "classify", "parse_retry_after"]

log = logging.getLogger("batchpatch")

DEFAULT_RESOURCE = "profileAndServices/profile"

# 500s from Adobe Campaign whose message says the request itself is wrong (reference/acs-api.md):
# an unparsable key, an unknown or read-only field, a wrong org. Retrying them only burns quota.
_REQUEST_IS_WRONG = re.compile(
    r"unable to parse expression|is not a valid constant|read-only|readonly"
    r"|property is not valid|is not valid for the|check your uri|invalid (?:pkey|key)",
    re.IGNORECASE,
)
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class Target:
    """Where a key's profile lives: `{base}/{org}/campaign/{resource}/{pkey}` or a URL template."""

    template: str  # contains "{pkey}"
    #: where a row's key is looked up (e.g. by email) when it is not the profile key; has "{key}"
    lookup_template: str | None = None

    @classmethod
    def adobe(cls, base_url: str, org: str, resource: str = DEFAULT_RESOURCE,
              lookup: str | None = None, lookup_param: str | None = None) -> Target:
        """The ACS URLs; `lookup` names a lookup resource such as `byEmail` (param `email`)."""
        root = f"{base_url.rstrip('/')}/{quote(org, safe='')}/campaign/{resource.strip('/')}"
        lookup_template = None
        if lookup:
            param = lookup_param or (lookup[2].lower() + lookup[3:] if lookup.startswith("by")
                                     and len(lookup) > 2 else lookup)
            lookup_template = f"{root}/{lookup}?{quote(param)}={{key}}"
        return cls(f"{root}/{{pkey}}", lookup_template)

    #: `scheme://host[:port]/` of the template, for the read-back's fast origin check
    origin: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.template)
        object.__setattr__(self, "origin", f"{parts.scheme}://{parts.netloc}/")

    def url_for(self, pkey: str) -> str:
        return self.template.replace("{pkey}", quote(pkey, safe="@"))

    def lookup_url(self, key: str) -> str:
        assert self.lookup_template is not None
        return self.lookup_template.replace("{key}", quote(key, safe="@"))

    def follow(self, href: Any, fallback: str) -> str:
        """The URL to read back from: the API's href when it is on the target's own origin.

        A href elsewhere would receive our credentials, so the row's own URL is used instead.
        """
        if not isinstance(href, str) or not href:
            return fallback
        if href.startswith(self.origin):  # the common case, without parsing
            return href
        url = urljoin(fallback, href)
        mine, theirs = urlsplit(fallback), urlsplit(url)
        if (mine.scheme, mine.netloc) != (theirs.scheme, theirs.netloc):
            return fallback
        return url


@dataclass(slots=True)
class Attempts:
    """Per-row bookkeeping the client fills in: attempts made and the last HTTP status."""

    count: int = 0
    http_status: int | None = None
    rate_limited: int = 0
    retries: int = 0


@dataclass
class Stats:
    """Run-wide request counts for the summary."""

    requests: Counter[str] = field(default_factory=Counter)  # "GET 200", "PATCH error"
    retries: int = 0
    rate_limited: int = 0

    def by_method(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for key, count in sorted(self.requests.items()):
            method, status = key.split(" ", 1)
            out.setdefault(method, {})[status] = count
        return out

    @property
    def total(self) -> int:
        return sum(self.requests.values())


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(0.0, when.timestamp() - time.time())


def api_message(body: bytes) -> str:
    """The API's own words from an error body (both Adobe envelopes), else the body's start."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error_description") or data.get("error")
        code = data.get("error_code") or data.get("code")
        if message:
            return f"{message} ({code})" if code else str(message)
    text = body[:300].decode("utf-8", "replace").strip()
    return text or "(empty body)"


def classify(status: int, body: bytes, retry_after: str | None = None) -> Exception:
    """The typed error for a non-2xx answer (401 is handled by the client, through Auth)."""
    message = f"HTTP {status}: {api_message(body)}"
    if status == 429:
        return RateLimited(message, status, parse_retry_after(retry_after))
    if status == 404:
        return NotFound(message, status)
    if status == 403:
        return AuthFailed(f"the API refused access (403): {api_message(body)}; check the API "
                          "key, the org id and the integration's product profile", status)
    if status == 500 and _REQUEST_IS_WRONG.search(message):
        return Rejected(message, status)
    if status in _TRANSIENT_STATUS:
        return TransientError(message, status, parse_retry_after(retry_after))
    return Rejected(message, status)


class ApiClient:
    """GET and PATCH against the target through one aiohttp session, with retries and pacing."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        auth: Auth,
        pacer: Pacer,
        retry: RetryPolicy,
        timeouts: Timeouts,
        stats: Stats | None = None,
    ) -> None:
        self._session = session
        self._auth = auth
        self._pacer = pacer
        self._retry = retry
        self._timeout = aiohttp.ClientTimeout(
            total=timeouts.request, sock_connect=timeouts.connect
        )
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial_backoff, max=retry.max_backoff, jitter=retry.initial_backoff
        )
        self.stats = stats or Stats()

    async def get(self, url: str, attempts: Attempts) -> dict[str, Any]:
        """The profile at `url`, bare or wrapped in {"content": [...]}."""
        return unwrap(await self._call("GET", url, None, attempts))

    async def get_list(self, url: str, attempts: Attempts) -> list[dict[str, Any]]:
        """The records a lookup (e.g. byEmail) answers, from {"content": [...]} or a list."""
        data = await self._call("GET", url, None, attempts)
        items = data.get("content", []) if isinstance(data, dict) else data
        return [item for item in items if isinstance(item, dict)]

    async def patch(self, url: str, body: dict[str, Any], attempts: Attempts) -> dict[str, Any]:
        """Send a partial update; the answer ({"PKey","href"} or the resource), {} when empty."""
        data = await self._call("PATCH", url, orjson.dumps(body), attempts)
        return data if isinstance(data, dict) else {}  # 204 No Content, or a bare value

    async def _call(self, method: str, url: str, body: bytes | None, attempts: Attempts) -> Any:
        # The first attempt runs bare: building tenacity's machinery for every request costs
        # more than the request itself on a fast API. Only a transient failure enters the retry
        # loop, whose attempt 1 replays that failure, so numbering, stop and wait stay exact.
        try:
            return await self._attempt(method, url, body, attempts)
        except TransientError as exc:
            first: TransientError | None = exc
        retrying = AsyncRetrying(  # a new one per call: tenacity keeps per-call state
            stop=self._stop,
            wait=self._wait,
            retry=retry_if_exception_type(TransientError),
            reraise=True,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    failure, first = first, None
                    raise failure
                self.stats.retries += 1
                attempts.retries += 1
                return await self._attempt(method, url, body, attempts)
        raise AssertionError("unreachable")  # pragma: no cover

    def _stop(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        limit = self._retry.retries
        if (
            isinstance(exc, TransientError)
            and exc.http_status == 500
            and not isinstance(exc, RateLimited)
        ):
            limit = min(limit, self._retry.server_error_retries)
        return state.attempt_number > limit

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry.max_retry_after)
        return self._backoff(state)

    async def _attempt(self, method: str, url: str, body: bytes | None, attempts: Attempts) -> Any:
        refreshed = False
        while True:
            await self._pacer.wait_turn()
            generation = self._auth.generation
            headers = {
                **(await self._auth.headers()),
                "Accept": "application/json",
                "Cache-Control": "no-cache",
            }
            if body is not None:
                headers["Content-Type"] = "application/json"
            attempts.count += 1
            status, data, raw, retry_after = await self._send(method, url, body, headers)
            attempts.http_status = status
            self._pacer.on_answer(status == 429, parse_retry_after(retry_after))
            if status == 401 and not refreshed:
                await self._auth.unauthorized(generation, api_message(raw))
                refreshed = True
                continue
            if status == 401:
                raise AuthFailed(f"the API answered 401 again after a new token: "
                                 f"{api_message(raw)}", 401)
            if 200 <= status < 300:
                if data is _BAD_JSON:
                    raise TransientError(f"HTTP {status} with a body that is not JSON", status)
                return data
            error = classify(status, raw, retry_after)
            if isinstance(error, RateLimited):
                self.stats.rate_limited += 1
                attempts.rate_limited += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s attempt %d: %s", method, url, attempts.count, error,
                          extra={"event": "attempt", "attempt": attempts.count,
                                 "http_status": status})
            raise error

    async def _send(
        self, method: str, url: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, Any, bytes, str | None]:
        try:
            async with self._session.request(
                method, url, data=body, headers=headers, timeout=self._timeout
            ) as resp:
                raw = await resp.read()
                status = resp.status
                retry_after = resp.headers.get("Retry-After")
        except TimeoutError:
            self.stats.requests[f"{method} timeout"] += 1
            self._pacer.on_answer(False, None)
            raise TransientError(f"{method} timed out", None) from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
            self.stats.requests[f"{method} error"] += 1
            self._pacer.on_answer(False, None)
            raise TransientError(f"{method} failed: {type(exc).__name__}: {exc}", None) from None
        except aiohttp.InvalidURL as exc:
            raise AbortRun(f"invalid URL: {exc}") from None
        self.stats.requests[f"{method} {status}"] += 1
        data: Any = None
        if 200 <= status < 300:
            data = _loads(raw) if raw.strip() else None
        return status, data, raw, retry_after


_BAD_JSON: Any = object()


def _loads(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _BAD_JSON


def unwrap(data: Any) -> dict[str, Any]:
    """A profile from a GET answer: the object itself, or the single item of {"content": [...]}."""
    if isinstance(data, dict) and isinstance(data.get("content"), list):
        items = data["content"]
        if not items:
            raise NotFound("HTTP 200 with an empty content list", 200)
        if isinstance(items[0], dict):
            return items[0]
    if isinstance(data, dict):
        return data
    raise TransientError("HTTP 200 with a body that is not a JSON object", 200)

