"""protocol.py: one row against the API, through the in-memory transport. Every way a row can
end maps to exactly one outcome; nothing but an abort escapes."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import BASE, FakeApi, Sleeps, make_client

from batchpatch.errors import AuthFailed, TimedOut, WriteFailed
from batchpatch.model import Row, Status
from batchpatch.protocol import RowMode, RowProtocol
from batchpatch.target import Target
from batchpatch.transport import Request, respond

TARGET = Target(BASE + "{pkey}")


def profile(pkey: str = "@a", **fields: Any) -> dict[str, Any]:
    return {"PKey": pkey, "phone": "0000", "points": 10, "optin": False, **fields}


def row(values: dict[str, Any], key: str = "@a", typed: bool = False) -> Row:
    return Row(2, key, values, b"raw line\n", typed=typed)


def protocol(api: FakeApi, mode: RowMode | None = None, **kw: Any) -> RowProtocol:
    return RowProtocol(make_client(api.transport), TARGET, mode or RowMode(), sleep=Sleeps(),
                       **kw)


async def test_a_changed_row_is_patched_and_verified_in_three_requests() -> None:
    api = FakeApi([profile()])
    outcome = await protocol(api).process(row({"phone": "1234", "points": "11"}))
    assert outcome.status is Status.UPDATED and outcome.attempts == 3
    assert outcome.changed == {"phone": ["0000", "1234"], "points": [10, 11]}
    assert api.profiles["@a"]["points"] == 11
    assert [r.method for r in api.transport.requests] == ["GET", "PATCH", "GET"]


async def test_a_row_already_right_costs_one_get() -> None:
    api = FakeApi([profile()])
    outcome = await protocol(api).process(row({"phone": "0000"}))
    assert outcome.status is Status.UNCHANGED and len(api.transport.requests) == 1


@pytest.mark.parametrize(("values", "status", "words"), [
    ({"points": "many"}, Status.INVALID, "is not an integer"),
    ({"points": "1e20"}, Status.INVALID, "64-bit"),
    ({"points": "1.0000000000000001"}, Status.INVALID, "not an integer"),
    ({"phone": "1", "phone@expected": "9"}, Status.CONFLICT, "guard failed"),
])
async def test_row_errors_map_to_their_status_and_send_no_write(values: dict[str, str],
                                                                status: Status,
                                                                words: str) -> None:
    api = FakeApi([profile()])
    outcome = await protocol(api).process(row(values))
    assert outcome.status is status and words in (outcome.error or "")
    assert not api.sent("PATCH") and outcome.retryable is False


async def test_not_found_and_rejected_are_the_rows_own() -> None:
    api = FakeApi([profile()])
    missing = await protocol(api).process(row({"phone": "1"}, key="@nobody"))
    assert missing.status is Status.NOT_FOUND and not missing.retryable
    api.fault("PATCH", "@a", respond(500, {"code": 500, "message": "Cannot update the 'age' "
                                                                   "property that is read-only"}))
    rejected = await protocol(api).process(row({"phone": "1"}))
    assert rejected.status is Status.FAILED and not rejected.retryable
    assert "read-only" in (rejected.error or "")
    assert rejected.changed == {"phone": ["0000", "1"]}  # a PATCH was sent: undo must see it


async def test_transient_errors_that_outlive_retries_are_retryable_failures() -> None:
    api = FakeApi([profile()])
    api.fault("GET", "@a", *[TimedOut("GET https://api.test timed out")] * 4)
    outcome = await protocol(api).process(row({"phone": "1"}))
    assert outcome.status is Status.FAILED and outcome.retryable
    assert "gave up after 4 attempts" in (outcome.error or "")
    assert outcome.retries == 3


@pytest.mark.parametrize("surprise", [RuntimeError("boom"), KeyError("x"), ValueError("bad")])
async def test_an_unplanned_exception_still_gives_the_row_a_record(surprise: Exception) -> None:
    api = FakeApi([profile()])
    api.fault("PATCH", "@a", surprise)
    outcome = await protocol(api).process(row({"phone": "1"}))
    assert outcome.status is Status.FAILED and outcome.retryable
    assert f"unexpected error: {type(surprise).__name__}" in (outcome.error or "")


async def test_an_abort_is_raised_and_the_row_gets_no_outcome() -> None:
    api = FakeApi([profile()])
    api.fault("GET", "@a", respond(403, {"error_code": "403023", "message": "nope"}))
    with pytest.raises(AuthFailed):
        await protocol(api).process(row({"phone": "1"}))


async def test_a_write_whose_intent_cannot_be_recorded_is_not_sent() -> None:
    api = FakeApi([profile()])

    def full_disk(*_: Any) -> None:
        raise WriteFailed("journal: No space left on device")

    with pytest.raises(WriteFailed):
        await protocol(api, before_write=full_disk).process(row({"phone": "1"}))
    assert not api.sent("PATCH")


async def test_a_journalled_write_that_landed_is_recorded_with_its_real_before_values() -> None:
    api = FakeApi([profile(phone="1234")])  # the PATCH landed; its record was lost
    intents = {2: ("patch", {"phone": ["0000", "1234"]})}
    outcome = await protocol(api, intents=intents).process(row({"phone": "1234"}))
    assert outcome.status is Status.UPDATED
    assert outcome.changed == {"phone": ["0000", "1234"]}
    assert not api.sent("PATCH")


async def test_a_mismatch_is_read_again_once_before_it_is_reported() -> None:
    api = FakeApi([profile()])
    stale = respond(200, {"content": [profile()]})
    api.fault("GET", "@a", respond(200, {"content": [profile()]}), stale, stale)
    outcome = await protocol(api).process(row({"phone": "1"}))
    assert outcome.status is Status.VERIFY_MISMATCH
    assert outcome.mismatch == {"phone": ["1", "0000"]}
    assert [r.method for r in api.transport.requests] == ["GET", "PATCH", "GET", "GET"]


@pytest.mark.parametrize("href", ["http://[::1/x", "https://evil.test/x", 42, "javascript:x"])
async def test_a_bad_or_foreign_href_is_not_followed(href: object) -> None:
    api = FakeApi([profile()])
    api.fault("PATCH", "@a", respond(200, {"PKey": "@a", "href": href}))
    outcome = await protocol(api).process(row({"phone": "1"}, key="@a"))
    # the read-back went to the row's own URL (the faked PATCH changed nothing there)
    assert [r.url for r in api.transport.requests] == [BASE + "@a"] * 4
    assert outcome.status is Status.VERIFY_MISMATCH


@pytest.mark.parametrize(("body", "status"), [
    (b"", Status.FAILED), (b'{"content": null}', Status.FAILED), (b'"x"', Status.FAILED),
    (b'{"content": []}', Status.NOT_FOUND)])
async def test_lookups_that_cannot_be_read_fail_and_say_why(body: bytes, status: Status) -> None:
    def handler(request: Request):
        return respond(200, body=body)

    from batchpatch.transport import MemoryTransport

    transport = MemoryTransport(handler)
    target = Target(BASE + "{pkey}", BASE + "byEmail?email={key}")
    proto = RowProtocol(make_client(transport), target, RowMode(), sleep=Sleeps())
    outcome = await proto.process(row({"phone": "1"}, key="a@b.c"))
    assert outcome.status is status and outcome.error
    assert len(transport.requests) == 1
