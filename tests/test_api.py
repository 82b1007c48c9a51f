"""api.py: the client's decisions (what is retried, what fails the row, what aborts, which
redirects are followed), through the in-memory transport; timeouts and dropped connections on
real sockets are tested against the sandbox elsewhere."""

from __future__ import annotations

import time

import pytest
from fakes import BASE, FAST_RETRY, Sleeps, make_client

from batchpatch.answers import classify, parse_retry_after, unwrap, unwrap_list
from batchpatch.api import OUTAGE_REFUNDS, Attempts
from batchpatch.counters import Counters
from batchpatch.errors import (
    AuthFailed,
    NotFound,
    RateLimited,
    Rejected,
    ServerBusy,
    TimedOut,
    TransientError,
    Unreachable,
)
from batchpatch.target import Target
from batchpatch.transport import MemoryTransport, respond

URL = BASE + "@k"


async def test_get_accepts_wrapped_and_bare() -> None:
    client = make_client(MemoryTransport.script(
        respond(200, {"content": [{"PKey": "@k", "a": 1}]}), respond(200, {"PKey": "@k", "a": 2})))
    assert (await client.get(URL, Attempts()))["a"] == 1
    assert (await client.get(URL, Attempts()))["a"] == 2


async def test_sends_adobe_headers() -> None:
    transport = MemoryTransport.script(respond(200, {"PKey": "@k", "href": URL}))
    await make_client(transport).patch(URL, {"phone": "1"}, Attempts())
    (request,) = transport.requests
    assert request.method == "PATCH" and request.body == b'{"phone":"1"}'
    assert request.headers["Authorization"] == "Bearer tok-123456"
    assert request.headers["X-Api-Key"] == "key-123456"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Cache-Control"] == "no-cache"


async def test_transient_503_is_retried_then_succeeds() -> None:
    counters, attempts = Counters(), Attempts()
    client = make_client(MemoryTransport.script(
        respond(503, {"code": 503, "message": "busy"}), respond(502, body=b""),
        respond(200, {"PKey": "@k"})), counters=counters)
    assert await client.get(URL, attempts) == {"PKey": "@k"}
    assert attempts.count == 3 and attempts.http_status == 200 and attempts.retries == 2
    assert counters.retries == 2
    assert counters.requests_by_method() == {"GET": {"200": 1, "502": 1, "503": 1}}


async def test_retries_are_bounded() -> None:
    attempts = Attempts()
    transport = MemoryTransport.script(respond(503, body=b""))
    with pytest.raises(ServerBusy):
        await make_client(transport).get(URL, attempts)
    assert attempts.count == len(transport.requests) == 4  # first + 3 retries


@pytest.mark.parametrize("status", [400, 404, 409, 422])
async def test_request_errors_are_not_retried(status: int) -> None:
    attempts = Attempts()
    transport = MemoryTransport.script(
        respond(status, {"error_code": str(status), "message": "no"}))
    with pytest.raises(NotFound if status == 404 else Rejected, match=f"HTTP {status}: no"):
        await make_client(transport).patch(URL, {"a": 1}, attempts)
    assert attempts.count == len(transport.requests) == 1


@pytest.mark.parametrize("message", [
    "XTK-170036 Unable to parse expression '@zz'.",
    "Cannot update the 'age' property that is read-only.",
    "RST-360011 'zipCode' property is not valid for the 'profile' resource.",
    "'x' is not a valid constant",
    "Check your URI and try again.",
])
async def test_500_saying_the_request_is_wrong_fails_at_once(message: str) -> None:
    transport = MemoryTransport.script(respond(500, {"code": 500, "message": message}))
    with pytest.raises(Rejected) as info:
        await make_client(transport).patch(URL, {"age": 1}, Attempts())
    assert len(transport.requests) == 1
    assert message in info.value.message


async def test_plain_500_retries_a_bounded_number_of_times() -> None:
    transport = MemoryTransport.script(respond(500, {"code": 500, "message": "Internal error"}))
    with pytest.raises(TransientError):
        await make_client(transport).get(URL, Attempts())
    assert len(transport.requests) == 2  # server_error_retries=1


async def test_v8_generic_500_is_retried_boundedly_and_says_v8_hides_the_cause() -> None:
    transport = MemoryTransport.script(respond(500, {
        "code": 500, "message": "An error has occurred - please contact your administrator"}))
    with pytest.raises(ServerBusy, match="Campaign v8 hides the cause"):
        await make_client(transport).patch(URL, {"gender": "x"}, Attempts())
    assert len(transport.requests) == 2


async def test_200_with_broken_json_is_transient() -> None:
    attempts = Attempts()
    client = make_client(MemoryTransport.script(
        respond(200, body=b'{"PKey": "@', headers={"Content-Type": "application/json"}),
        respond(200, {"PKey": "@k"})))
    assert await client.get(URL, attempts) == {"PKey": "@k"}
    assert attempts.count == 2


async def test_connection_errors_and_timeouts_are_retried() -> None:
    attempts, counters = Attempts(), Counters()
    client = make_client(MemoryTransport.script(
        Unreachable("PATCH https://api.test failed: ServerDisconnectedError"),
        TimedOut("PATCH https://api.test timed out"), respond(200, {"PKey": "@k"})),
        counters=counters)
    assert await client.patch(URL, {"a": 1}, attempts) == {"PKey": "@k"}
    assert attempts.count == 3
    assert counters.requests_by_method() == {"PATCH": {"200": 1, "error": 1, "timeout": 1}}


async def test_retry_after_is_honoured_and_capped() -> None:
    sleeps, counters = Sleeps(), Counters()
    client = make_client(MemoryTransport.script(
        respond(429, {"error_code": "429050", "message": "Too many requests"},
                headers={"Retry-After": "0.3"}),
        respond(429, headers={"Retry-After": "100000"}), respond(200, {"PKey": "@k"})),
        counters=counters, sleep=sleeps)
    await client.get(URL, Attempts())
    assert sleeps.waits == [0.3, 120.0]  # a day-long Retry-After is capped
    assert counters.rate_limited == 2


async def test_401_with_a_static_token_aborts_and_hides_the_token() -> None:
    transport = MemoryTransport.script(respond(401, {
        "error_code": "401013", "message": "Oauth token is not valid for tok-123456"}))
    with pytest.raises(AuthFailed) as info:
        await make_client(transport).get(URL, Attempts())
    assert "Oauth token is not valid" in str(info.value)
    assert "tok-123456" not in str(info.value)


async def test_403_aborts() -> None:
    transport = MemoryTransport.script(respond(403, {"error_code": "403023",
                                                     "message": "Profile is not valid"}))
    with pytest.raises(AuthFailed, match="403"):
        await make_client(transport).get(URL, Attempts())


async def test_same_origin_redirect_is_followed_for_get_only() -> None:
    moved = BASE + "@moved"
    transport = MemoryTransport.script(respond(302, headers={"Location": "@moved"}),
                                       respond(200, {"PKey": "@moved"}))
    assert await make_client(transport).get(URL, Attempts()) == {"PKey": "@moved"}
    assert [r.url for r in transport.requests] == [URL, moved]
    transport = MemoryTransport.script(respond(307, headers={"Location": moved}))
    with pytest.raises(Rejected, match="redirected a PATCH"):
        await make_client(transport).patch(URL, {"a": 1}, Attempts())
    assert len(transport.requests) == 1


@pytest.mark.parametrize("location", [
    "https://evil.test/acme/profile/@k", "http://api.test/acme/profile/@k",
    "https://api.test:8443/acme/profile/@k", "//evil.test/x"])
async def test_redirect_to_another_origin_is_never_followed(location: str) -> None:
    transport = MemoryTransport.script(respond(302, headers={"Location": location}))
    with pytest.raises(Rejected, match="another origin") as info:
        await make_client(transport).get(URL, Attempts())
    assert len(transport.requests) == 1
    assert "evil.test" in str(info.value) or "api.test" in str(info.value)


async def test_a_redirect_loop_stops_after_three_hops() -> None:
    transport = MemoryTransport.script(respond(302, headers={"Location": URL}))
    with pytest.raises(Rejected, match="more than 3 redirects"):
        await make_client(transport).get(URL, Attempts())
    assert len(transport.requests) == 4


def test_classify_and_retry_after_forms() -> None:
    assert isinstance(classify(429, b"", "2"), RateLimited)
    assert classify(429, b"", "2").retry_after == 2.0
    assert isinstance(classify(504, b""), ServerBusy)
    assert isinstance(classify(501, b""), Rejected)
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # a date in the past
    future = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 30))
    assert 25 < parse_retry_after(future) <= 30
    for unreadable in ("soon", "inf", "nan", "-inf", "Wed, 99 Oct 99999 07:28:00 GMT"):
        assert parse_retry_after(unreadable) is None


def test_unwrap_shapes() -> None:
    assert unwrap({"content": [{"PKey": "@a"}]}) == {"PKey": "@a"}
    with pytest.raises(NotFound):
        unwrap({"content": []})
    for bad, words in [(None, "empty body"), ("x", "JSON string"), ([1], "JSON list"),
                       ({"content": [1]}, "not a list of profiles"),
                       ({"content": None}, "content is null, not a list")]:
        with pytest.raises(Rejected, match=words):
            unwrap(bad, 204 if bad is None else 200)
    assert unwrap_list({"content": [{"PKey": "@a"}]}) == [{"PKey": "@a"}]
    assert unwrap_list([]) == []
    for bad in (None, "x", {"content": None}, {"count": 1}, {"content": [{"PKey": "@a"}, 3]},
                [1, 2]):
        with pytest.raises(Rejected):
            unwrap_list(bad)


def test_target_urls_and_href_following() -> None:
    target = Target.adobe("https://mc.adobe.io/", "acme-mkt-stage")
    url = target.url_for("@a/b c")
    assert url == "https://mc.adobe.io/acme-mkt-stage/campaign/profileAndServices/profile/@a%2Fb%20c"
    assert target.follow("https://mc.adobe.io/x/@b", url) == "https://mc.adobe.io/x/@b"
    assert target.follow("/x/@b", url) == "https://mc.adobe.io/x/@b"
    # a href on another host would receive our credentials: read back from our own URL
    assert target.follow("https://evil.example/x", url) == url
    for junk in (None, "", "http://[::1/x", "https://mc.adobe.io:99999/x", "javascript:x", 5):
        assert target.follow(junk, url) == url
    custom = Target("https://api.example.com/v1/contacts/{pkey}?full=1")
    assert custom.url_for("a@b.c") == "https://api.example.com/v1/contacts/a@b.c?full=1"
    # no key addresses its parent
    assert custom.url_for("..") == "https://api.example.com/v1/contacts/%2E%2E?full=1"
    assert custom.url_for(".") == "https://api.example.com/v1/contacts/%2E?full=1"


async def test_an_outage_does_not_spend_the_rows_retry_budget() -> None:
    from test_policy import QuickGate

    from batchpatch.api import ApiClient
    from batchpatch.auth import StaticAuth
    from batchpatch.pacing import Pacer
    from batchpatch.policy import RatePolicy

    gate = QuickGate.make()
    refused = Unreachable("GET https://api.test failed: connection refused")
    busy = respond(429, {"error_code": "429050", "message": "Too many requests"})
    # 3 retries allowed: 6 attempts (OUTAGE_REFUNDS) in the outage, then the row still has
    # its 3 retries
    transport = MemoryTransport.script(*[refused] * OUTAGE_REFUNDS, busy, busy, busy,
                                       respond(200, {"PKey": "@k"}))
    client = ApiClient(transport, StaticAuth(None, None), Pacer(RatePolicy(0, False), gate=gate),
                       FAST_RETRY, Counters(), sleep=Sleeps())
    attempts = Attempts()
    assert await client.get(URL, attempts) == {"PKey": "@k"}
    assert attempts.count == OUTAGE_REFUNDS + 4 and not gate.down and len(gate.periods) == 1


async def test_a_row_that_never_answers_is_not_refunded_for_ever() -> None:
    """One bad key (its body stalls, its connection resets) can look like an outage when it
    is all that is in flight: its refunds are capped, so it ends `failed` (retryable) instead of
    probing until --max-outage aborts every run of the file."""
    from test_policy import QuickGate

    from batchpatch.api import ApiClient
    from batchpatch.auth import StaticAuth
    from batchpatch.pacing import Pacer
    from batchpatch.policy import RatePolicy

    gate = QuickGate.make()
    reset = Unreachable("GET https://api.test failed: connection reset mid-body")
    transport = MemoryTransport.script(*[reset] * 50)
    client = ApiClient(transport, StaticAuth(None, None), Pacer(RatePolicy(0, False), gate=gate),
                       FAST_RETRY, Counters(), sleep=Sleeps())
    attempts = Attempts()
    with pytest.raises(Unreachable):
        await client.get(URL, attempts)
    assert attempts.count == OUTAGE_REFUNDS + 1 + 3  # refunds, the first attempt, 3 retries
