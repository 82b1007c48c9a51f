"""api.py: the client's decisions (what is retried, what fails the row, what aborts), tested with
aioresponses; timeouts and dropped connections are tested against the sandbox elsewhere."""

from __future__ import annotations

import time

import aiohttp
import pytest
from aioresponses import aioresponses

from batchpatch.api import ApiClient, Attempts, Target, classify, parse_retry_after, unwrap
from batchpatch.auth import StaticAuth
from batchpatch.errors import AuthFailed, NotFound, RateLimited, Rejected, TransientError
from batchpatch.policy import Pacer, RatePolicy, RetryPolicy, Timeouts
from batchpatch.secret import Secret

URL = "https://mc.adobe.io/acme/campaign/profileAndServices/profile/@k"


@pytest.fixture
async def client():
    async with aiohttp.ClientSession() as session:
        yield ApiClient(
            session,
            StaticAuth(Secret("tok-123456"), Secret("key-123456")),
            Pacer(RatePolicy(rate=0, adaptive=False)),
            RetryPolicy(retries=3, server_error_retries=1, initial_backoff=0.01, max_backoff=0.02),
            Timeouts(request=5),
        )


async def test_get_accepts_wrapped_and_bare(client) -> None:
    with aioresponses() as mock:
        mock.get(URL, payload={"content": [{"PKey": "@k", "a": 1}]})
        mock.get(URL, payload={"PKey": "@k", "a": 2})
        assert (await client.get(URL, Attempts()))["a"] == 1
        assert (await client.get(URL, Attempts()))["a"] == 2


async def test_sends_adobe_headers(client) -> None:
    with aioresponses() as mock:
        mock.patch(URL, payload={"PKey": "@k", "href": URL})
        await client.patch(URL, {"phone": "1"}, Attempts())
        (call,) = next(iter(mock.requests.values()))
        headers = call.kwargs["headers"]
        assert headers["Authorization"] == "Bearer tok-123456"
        assert headers["X-Api-Key"] == "key-123456"
        assert headers["Content-Type"] == "application/json"
        assert headers["Cache-Control"] == "no-cache"


async def test_transient_503_is_retried_then_succeeds(client) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.get(URL, status=503, payload={"code": 503, "message": "busy"})
        mock.get(URL, status=502)
        mock.get(URL, payload={"PKey": "@k"})
        assert await client.get(URL, attempts) == {"PKey": "@k"}
    assert attempts.count == 3 and attempts.http_status == 200
    assert client.stats.retries == 2


async def test_retries_are_bounded(client) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.get(URL, status=503, repeat=True)
        with pytest.raises(TransientError):
            await client.get(URL, attempts)
    assert attempts.count == 4  # first + 3 retries


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_request_errors_are_not_retried(client, status: int) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.patch(URL, status=status, payload={"error_code": str(status), "message": "no"})
        with pytest.raises(NotFound if status == 404 else Rejected, match=f"HTTP {status}: no"):
            await client.patch(URL, {"a": 1}, attempts)
    assert attempts.count == 1


@pytest.mark.parametrize("message", [
    "XTK-170036 Unable to parse expression '@zz'.",
    "Cannot update the 'age' property that is read-only.",
    "RST-360011 'zipCode' property is not valid for the 'profile' resource.",
    "'x' is not a valid constant",
    "Check your URI and try again.",
])
async def test_500_saying_the_request_is_wrong_fails_at_once(client, message: str) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.patch(URL, status=500, payload={"code": 500, "message": message})
        with pytest.raises(Rejected) as info:
            await client.patch(URL, {"age": 1}, attempts)
    assert attempts.count == 1
    assert message in info.value.message


async def test_plain_500_retries_a_bounded_number_of_times(client) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.get(URL, status=500, payload={"code": 500, "message": "Internal error"}, repeat=True)
        with pytest.raises(TransientError):
            await client.get(URL, attempts)
    assert attempts.count == 2  # server_error_retries=1


async def test_200_with_broken_json_is_transient(client) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.get(URL, body=b'{"PKey": "@', content_type="application/json")
        mock.get(URL, payload={"PKey": "@k"})
        assert await client.get(URL, attempts) == {"PKey": "@k"}
    assert attempts.count == 2


async def test_connection_errors_and_timeouts_are_retried(client) -> None:
    attempts = Attempts()
    with aioresponses() as mock:
        mock.patch(URL, exception=aiohttp.ServerDisconnectedError())
        mock.patch(URL, exception=TimeoutError())
        mock.patch(URL, payload={"PKey": "@k"})
        assert await client.patch(URL, {"a": 1}, attempts) == {"PKey": "@k"}
    assert attempts.count == 3


async def test_retry_after_is_honoured(client) -> None:
    with aioresponses() as mock:
        mock.get(URL, status=429, headers={"Retry-After": "0.3"},
                 payload={"error_code": "429050", "message": "Too many requests"})
        mock.get(URL, payload={"PKey": "@k"})
        started = time.monotonic()
        await client.get(URL, Attempts())
        assert time.monotonic() - started >= 0.3
    assert client.stats.rate_limited == 1


async def test_401_with_a_static_token_aborts_and_hides_the_token(client) -> None:
    with aioresponses() as mock:
        mock.get(URL, status=401, payload={"error_code": "401013",
                                           "message": "Oauth token is not valid"})
        with pytest.raises(AuthFailed) as info:
            await client.get(URL, Attempts())
    assert "Oauth token is not valid" in str(info.value)
    assert "tok-123456" not in str(info.value)


async def test_403_aborts(client) -> None:
    with aioresponses() as mock:
        mock.get(URL, status=403, payload={"error_code": "403023",
                                           "message": "Profile is not valid"})
        with pytest.raises(AuthFailed, match="403"):
            await client.get(URL, Attempts())


def test_classify_and_retry_after_forms() -> None:
    assert isinstance(classify(429, b"", "2"), RateLimited)
    assert classify(429, b"", "2").retry_after == 2.0
    assert isinstance(classify(504, b""), TransientError)
    assert isinstance(classify(501, b""), Rejected)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after(future) <= 30
    assert parse_retry_after("soon") is None


def test_unwrap_shapes() -> None:
    assert unwrap({"content": [{"PKey": "@a"}]}) == {"PKey": "@a"}
    with pytest.raises(NotFound):
        unwrap({"content": []})
    with pytest.raises(TransientError):
        unwrap(None)


def test_target_urls_and_href_following() -> None:
    target = Target.adobe("https://mc.adobe.io/", "acme-mkt-stage")
    url = target.url_for("@a/b c")
    assert url == "https://mc.adobe.io/acme-mkt-stage/campaign/profileAndServices/profile/@a%2Fb%20c"
    assert target.follow("https://mc.adobe.io/x/@b", url) == "https://mc.adobe.io/x/@b"
    assert target.follow("/x/@b", url) == "https://mc.adobe.io/x/@b"
    # a href on another host would receive our credentials: read back from our own URL
    assert target.follow("https://evil.example/x", url) == url
    assert target.follow(None, url) == url
    custom = Target("https://api.example.com/v1/contacts/{pkey}?full=1")
    assert custom.url_for("a@b.c") == "https://api.example.com/v1/contacts/a@b.c?full=1"
