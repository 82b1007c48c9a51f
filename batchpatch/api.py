"""The API client: GET, PATCH (and lookups) with the API's headers, through the transport, with
pacing, auth, retries and redirects decided here; every answer becomes a value or a typed error
(answers.py, errors.py).

Redirects: never followed to another origin (scheme, host, port), since our credentials and a
PATCH body would go along; a same-origin redirect is followed for GET only, at most
MAX_REDIRECTS hops. A redirect not followed fails the row, naming where it pointed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

from .answers import (
    BAD_JSON,
    api_message,
    classify,
    parse_json,
    parse_retry_after,
    unwrap,
    unwrap_list,
)
from .auth import Auth
from .counters import Counters
from .errors import (
    AuthFailed,
    MaybeCreated,
    RateLimited,
    Rejected,
    ServerBusy,
    TimedOut,
    TransientError,
    Unreachable,
)
from .pacing import Pacer
from .policy import RetryPolicy
from .target import absolute_url, describe_origin, same_origin
from .transport import Request, Response, Transport

__all__ = ["MAX_REDIRECTS", "OUTAGE_REFUNDS", "ApiClient", "Attempts"]

log = logging.getLogger("batchpatch")

MAX_REDIRECTS = 3
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_BASE_HEADERS = {"Accept": "application/json", "Cache-Control": "no-cache"}


@dataclass(slots=True)
class Attempts:
    """Per-row bookkeeping the client fills in: attempts made and the last HTTP status."""

    count: int = 0
    http_status: int | None = None
    rate_limited: int = 0
    retries: int = 0
    #: failures to answer in a row (not yet known to be an outage), and those that were part
    #: of an outage: the latter do not spend the retry budget
    unanswered: int = 0
    outage: int = 0


#: attempts of one row an outage may refund (see ApiClient._account)
OUTAGE_REFUNDS = 6


class ApiClient:
    """GET and PATCH against the target through a transport, with retries and pacing.

    State: `_headers` caches the request headers built for the auth generation in
    `_headers_generation` (one dict per generation, with and without a body)."""

    def __init__(
        self,
        transport: Transport,
        auth: Auth,
        pacer: Pacer,
        retry: RetryPolicy,
        counters: Counters,
        timeout: float | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._sleep = sleep
        self._transport = transport
        self._auth = auth
        self._pacer = pacer
        self._retry = retry
        self._timeout = timeout
        self._backoff = wait_exponential_jitter(
            multiplier=retry.initial_backoff, max=retry.max_backoff, jitter=retry.initial_backoff)
        self._counters = counters
        self._headers: tuple[dict[str, str], dict[str, str]] | None = None
        self._headers_generation = -1

    async def _backoff_sleep(self, seconds: float) -> None:
        """A retry's wait: the time a worker holds a row without a request out, which
        --concurrency auto must cover as it covers latency."""
        self._counters.backoff_s += seconds
        await self._sleep(seconds)

    async def get(self, url: str, attempts: Attempts) -> dict[str, Any]:
        """The profile at `url`, bare or wrapped in {"content": [...]}."""
        data, answer = await self._call("GET", url, None, attempts)
        return unwrap(data, answer.status)

    async def get_json(self, url: str, attempts: Attempts,
                       retry: RetryPolicy | None = None) -> Any:
        """Whatever JSON a GET answers (the resource metadata, for one); `retry` instead of
        the run's policy."""
        data, _ = await self._call("GET", url, None, attempts, retry)
        return data

    async def get_list(self, url: str, attempts: Attempts) -> list[dict[str, Any]]:
        """The records a lookup (e.g. byEmail) answers, from {"content": [...]} or a list."""
        data, answer = await self._call("GET", url, None, attempts)
        return unwrap_list(data, answer.status)

    async def patch(self, url: str, body: dict[str, Any], attempts: Attempts) -> dict[str, Any]:
        """Send a partial update; the answer ({"PKey","href"} or the resource), {} when empty."""
        data, _ = await self._call("PATCH", url, orjson.dumps(body), attempts)
        return data if isinstance(data, dict) else {}  # 204 No Content, or a bare value

    async def post(self, url: str, body: dict[str, Any],
                   attempts: Attempts) -> tuple[dict[str, Any], str | None]:
        """Create: the answer (e.g. {"PKey", "href"}) and its Location header. Retried only
        when the request surely did not land (429, a connection refused): never twice."""
        data, answer = await self._call("POST", url, orjson.dumps(body), attempts)
        return (data if isinstance(data, dict) else {}), answer.headers.get("Location")

    async def delete(self, url: str, attempts: Attempts) -> None:
        """Delete what is at `url` (NotFound if nothing is)."""
        await self._call("DELETE", url, None, attempts)

    def _retryable(self, method: str, exc: BaseException) -> bool:
        if not isinstance(exc, TransientError):
            return False
        if method != "POST":
            return True
        return isinstance(exc, RateLimited) or (isinstance(exc, Unreachable) and not exc.sent)

    async def _call(self, method: str, url: str, body: bytes | None,
                    attempts: Attempts,
                    retry: RetryPolicy | None = None) -> tuple[Any, Response]:
        # The first attempt runs bare: building tenacity's machinery for every request costs
        # more than the request itself on a fast API. Only a transient failure enters the retry
        # loop, whose attempt 1 replays that failure, so numbering, stop and wait stay exact.
        try:
            return await self._attempt(method, url, body, attempts)
        except TransientError as exc:
            if not self._retryable(method, exc):
                raise _not_retried(exc) from None
            first: TransientError | None = exc
            outage = self._account(exc, attempts)
        retrying = AsyncRetrying(  # a new one per call: tenacity keeps per-call state
            stop=lambda state: self._stop(state, attempts, retry or self._retry),
            wait=lambda state: 0.0 if outage else self._wait(state),
            retry=retry_if_exception(lambda exc: self._retryable(method, exc)),
            reraise=True,
            sleep=self._backoff_sleep,
        )
        async for attempt in retrying:
            with attempt:
                if first is not None:
                    failure, first = first, None
                    raise failure
                self._counters.retries += 1
                attempts.retries += 1
                try:
                    return await self._attempt(method, url, body, attempts)
                except TransientError as exc:
                    if not self._retryable(method, exc):
                        raise _not_retried(exc) from None
                    outage = self._account(exc, attempts)
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _account(self, exc: TransientError, attempts: Attempts) -> bool:
        """Whether this failure is part of an outage (the gate pauses everyone; the row's
        retry budget is not spent: its unanswered attempts since the last answer refunded, up
        to OUTAGE_REFUNDS of them). The cap is what tells one bad key from a target that is
        down: waiting rows take turns as the probe, so in an outage each is refunded a few
        times at most, while a row whose own request never answers (a key whose body stalls,
        the last rows of a file) would otherwise probe for ever and be `failed` never."""
        if not (isinstance(exc, Unreachable) or exc.http_status in (502, 503, 504)):
            attempts.unanswered = 0
            return False
        attempts.unanswered += 1
        if not self._pacer.gate.down:
            return False
        refund = min(attempts.unanswered, OUTAGE_REFUNDS - attempts.outage)
        attempts.outage += max(refund, 0)
        attempts.unanswered = 0
        return refund > 0

    def _stop(self, state: RetryCallState, attempts: Attempts, policy: RetryPolicy) -> bool:
        """Out of retries: attempts made in an outage do not count (the gate bounds an outage,
        with --max-outage)."""
        exc = state.outcome.exception() if state.outcome else None
        status = exc.http_status if isinstance(exc, TransientError) else None
        return state.attempt_number - attempts.outage > policy.limit_for(status)

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, TransientError) and exc.retry_after is not None:
            return min(exc.retry_after, self._retry.max_retry_after)
        return self._backoff(state)

    async def _request_headers(self, with_body: bool) -> dict[str, str]:
        auth = self._auth
        if (self._headers is not None and self._headers_generation == auth.generation
                and auth.reusable()):
            return self._headers[with_body]  # the common case: no await
        auth_headers = await auth.headers()
        if self._headers is None or self._headers_generation != self._auth.generation:
            plain = {**auth_headers, **_BASE_HEADERS}
            self._headers = (plain, {**plain, "Content-Type": "application/json"})
            self._headers_generation = self._auth.generation
        return self._headers[with_body]

    async def _attempt(self, method: str, url: str, body: bytes | None,
                       attempts: Attempts) -> tuple[Any, Response]:
        refreshed = False
        hops = 0
        pacer = self._pacer
        while True:
            if not pacer.free:
                await pacer.wait_turn()
            generation = self._auth.generation
            headers = await self._request_headers(body is not None)
            attempts.count += 1
            answer = await self._send(Request(method, url, headers, body, self._timeout))
            status = answer.status
            attempts.http_status = status
            retry_after = answer.headers.get("Retry-After") if status >= 300 else None
            pacer.on_answer(status, parse_retry_after(retry_after) if retry_after else None)
            if status == 401 and not refreshed:
                await self._auth.unauthorized(generation, _said(answer))
                refreshed = True
                continue
            if status == 401:
                raise AuthFailed(f"the API answered 401 again after a new token: "
                                 f"{_said(answer)}", 401)
            if 200 <= status < 300:
                if log.isEnabledFor(logging.DEBUG):  # -vv: every attempt (failures below)
                    log.debug("%s %s attempt %d: HTTP %d", method, url, attempts.count, status,
                              extra={"event": "attempt", "attempt": attempts.count,
                                     "http_status": status})
                data = parse_json(answer.body)
                if data is BAD_JSON:
                    raise ServerBusy(f"HTTP {status} with a body that is not JSON", status)
                return data, answer
            if status in _REDIRECTS:
                url = self._redirect(method, url, answer, hops)
                hops += 1
                continue
            error = classify(status, answer.body, retry_after)
            if isinstance(error, RateLimited):
                self._counters.rate_limited += 1
                attempts.rate_limited += 1
            if log.isEnabledFor(logging.DEBUG):
                log.debug("%s %s attempt %d: %s", method, url, attempts.count, error,
                          extra={"event": "attempt", "attempt": attempts.count,
                                 "http_status": status})
            raise error

    def _redirect(self, method: str, url: str, answer: Response, hops: int) -> str:
        """Where a redirect may be followed to, or Rejected saying why it is not."""
        status = answer.status
        location = answer.headers.get("Location")
        target = absolute_url(location, url)
        if target is None:
            raise Rejected(f"HTTP {status}: a redirect with no usable Location "
                           f"({location!r}); not followed", status)
        if not same_origin(target, url):
            raise Rejected(f"HTTP {status}: redirected to another origin "
                           f"({describe_origin(target)}); not followed: our "
                           "credentials stay with the target", status)
        if method != "GET":
            raise Rejected(f"HTTP {status}: the API redirected a {method} (to "
                           f"{describe_origin(target)}); not followed: only GETs "
                           "follow redirects", status)
        if hops >= MAX_REDIRECTS:
            raise Rejected(f"HTTP {status}: more than {MAX_REDIRECTS} redirects (a loop?); "
                           "not followed", status)
        return target

    async def _send(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            answer = await self._transport.send(request)
        except Unreachable as exc:
            timed_out = isinstance(exc, TimedOut)
            self._counters.request(request.method, "timeout" if timed_out else "error")
            self._pacer.on_unreachable(exc.message)
            raise
        except BaseException:
            self._counters.request(request.method, "error")
            self._pacer.gate.release()  # a probe that ended neither way lets another go
            raise
        self._counters.requests[(request.method, str(answer.status))] += 1
        self._counters.observe(time.perf_counter() - started)
        return answer


def _not_retried(exc: TransientError) -> Rejected:
    """A create that failed in a way that may have landed: not sent again."""
    return MaybeCreated(f"{exc.message}; the create may have landed, so it is not sent again: "
                    "check whether the profile exists", exc.http_status)


def _said(answer: Response) -> str:
    return api_message(answer.body)
