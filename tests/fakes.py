"""In-memory stand-ins for unit tests of decisions: an API on the MemoryTransport, and a client
wired to it. End-to-end tests use the real sandbox instead."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import orjson

from batchpatch.api import ApiClient
from batchpatch.auth import StaticAuth
from batchpatch.counters import Counters
from batchpatch.pacing import Pacer
from batchpatch.policy import RatePolicy, RetryPolicy
from batchpatch.secret import Secret
from batchpatch.transport import MemoryTransport, Request, Response, respond

BASE = "https://api.test/acme/campaign/profileAndServices/profile/"
FAST_RETRY = RetryPolicy(retries=3, server_error_retries=1, initial_backoff=0.01,
                         max_backoff=0.02)


class Sleeps:
    """An injectable sleep that records how long it was asked to wait, and does not wait."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def make_client(transport: MemoryTransport, retry: RetryPolicy = FAST_RETRY,
                counters: Counters | None = None,
                sleep: Callable[[float], Any] | None = None) -> ApiClient:
    return ApiClient(transport, StaticAuth(Secret("tok-123456"), Secret("key-123456")),
                     Pacer(RatePolicy(rate=0, adaptive=False)), retry,
                     counters or Counters(), sleep=sleep or Sleeps())


class FakeApi:
    """Profiles by PKey behind GET (wrapped) and PATCH (answers PKey and href); `faults` maps
    (method, pkey) to answers (or exceptions) served first, one per request."""

    def __init__(self, profiles: list[dict[str, Any]]) -> None:
        self.profiles = {p["PKey"]: copy.deepcopy(p) for p in profiles}
        self.faults: dict[tuple[str, str], list[Response | BaseException]] = {}
        self.transport = MemoryTransport(self.handle)

    def fault(self, method: str, pkey: str, *answers: Response | BaseException) -> None:
        self.faults.setdefault((method, pkey), []).extend(answers)

    def handle(self, request: Request) -> Response:
        pkey = request.url.rsplit("/", 1)[1]
        queued = self.faults.get((request.method, pkey))
        if queued:
            answer = queued.pop(0)
            if isinstance(answer, BaseException):
                raise answer
            return answer
        profile = self.profiles.get(pkey)
        if profile is None:
            return respond(404, {"code": 404, "message": f"The resource '{pkey}' was not found"})
        if request.method == "GET":
            return respond(200, {"content": [profile]})
        body = orjson.loads(request.body or b"{}")
        profile.update(body)
        return respond(200, {"PKey": pkey, "href": BASE + pkey})

    def sent(self, method: str) -> list[Request]:
        return [r for r in self.transport.requests if r.method == method]
