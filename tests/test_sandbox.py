"""The sandbox, observed as a client sees it: status, headers, body, the profiles it holds
(/_sandbox/state) and its counters (/_sandbox/stats). Most tests run the application on a real
loopback socket in this process (aiohttp's TestServer); the command-line flags and TLS run
`batchpatch sandbox` itself (SandboxProcess)."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import trustme
from aiohttp.test_utils import TestClient, TestServer
from conftest import make_profiles

from batchpatch.cli import build_parser
from batchpatch.sandbox.config import CHAOS_KINDS
from batchpatch.sandbox.limits import RateGate
from batchpatch.sandbox.process import SandboxProcess
from batchpatch.sandbox.schema import smart_case
from batchpatch.sandbox.server import SandboxConfig, make_app

API = "/demo/campaign/profileAndServices"
BASE = API + "/profile"
ONE = BASE + "/@p00001"
META = API + "/resourceType/profile"
GENERIC = {"code": 500, "message": "An error has occurred - please contact your administrator"}

Start = Callable[..., Awaitable[TestClient]]


@pytest.fixture
async def start() -> AsyncIterator[Start]:
    """`client = await start(profiles=None, **knobs)`: a sandbox on loopback and a client."""
    clients: list[TestClient] = []

    async def started(profiles: list[dict[str, Any]] | None = None, **knobs: Any) -> TestClient:
        config = SandboxConfig()
        config.update(knobs)
        app = make_app(config, make_profiles(3) if profiles is None else profiles)
        client = TestClient(TestServer(app))
        await client.start_server()
        clients.append(client)
        return client

    yield started
    for client in clients:
        await client.close()


async def state(client: TestClient) -> dict[str, dict[str, Any]]:
    return (await (await client.get("/_sandbox/state")).json())["profiles"]


async def stats(client: TestClient) -> dict[str, Any]:
    return await (await client.get("/_sandbox/stats")).json()


async def control(client: TestClient, path: str, body: Any) -> aiohttp.ClientResponse:
    return await client.post(path, json=body)


async def raw(client: TestClient, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; everything the server sends until it closes."""
    reader, writer = await asyncio.open_connection(client.host, client.port)
    writer.write(request)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), timeout=10)
    finally:
        writer.close()


def patch_bytes(path: str, body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return (f"PATCH {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


# -- fault_500 ---------------------------------------------------------------------------------
async def test_fault_500_is_a_plain_internal_error_and_writes_nothing(start: Start) -> None:
    client = await start(fault_500=1.0)
    for method in ("GET", "PATCH"):
        resp = await client.request(method, ONE, json={"phone": "1"})
        assert resp.status == 500
        assert await resp.json() == {"code": 500, "message": "Internal server error"}
    assert (await state(client))["@p00001"]["phone"] == "0000000001"
    assert (await stats(client))["counts"] == {"GET 500": 1, "PATCH 500": 1}


async def test_fault_5xx_still_answers_gateway_errors(start: Start) -> None:
    client = await start(fault_5xx=1.0, seed=1)
    statuses = {(await client.get(ONE)).status for _ in range(30)}
    assert statuses == {502, 503, 504}


# -- chaos -------------------------------------------------------------------------------------
# kind -> (status, content type, body, whether a PATCH was applied)
CHAOS_ANSWERS: dict[str, tuple[int, str | None, Any, bool]] = {
    "no_content": (204, None, b"", True),
    "html": (200, "text/html", b"<html><body>Service page</body></html>", True),
    "json_string": (200, "application/json", "ok", True),
    "json_list": (200, "application/json", [1, 2], False),
    "content_null": (200, "application/json", {"content": None}, False),
    "bad_href": (200, "application/json", {"PKey": "@p00001", "href": "http://[::1/broken"},
                 True),
}


@pytest.mark.parametrize("kind", sorted(CHAOS_ANSWERS))
async def test_chaos_answers_and_whether_the_patch_was_applied(start: Start, kind: str) -> None:
    status, content_type, body, applied = CHAOS_ANSWERS[kind]
    client = await start(chaos=1.0, chaos_kinds=[kind])
    resp = await client.patch(ONE, json={"phone": "+33 6 00"})
    assert resp.status == status
    assert resp.headers.get("Content-Type", "").split(";")[0] == (content_type or "")
    assert (await resp.read() if isinstance(body, bytes) else await resp.json()) == body
    assert ((await state(client))["@p00001"]["phone"] == "+33 6 00") is applied
    seen = await stats(client)
    assert seen["patches"] == ({"@p00001": 1} if applied else {})
    assert seen["chaos"] == {kind: 1}


async def test_chaos_redirects_to_itself_and_elsewhere_without_writing(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["redirect_self"])
    resp = await client.patch(ONE + "?x=1", json={"phone": "9"}, allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == str(client.make_url(ONE + "?x=1"))
    await control(client, "/_sandbox/config", {"chaos_kinds": ["redirect_elsewhere"],
                                               "chaos_elsewhere": "http://elsewhere.test/"})
    resp = await client.patch(ONE, json={"phone": "9"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "http://elsewhere.test" + ONE
    await control(client, "/_sandbox/config", {"chaos_elsewhere": "http://127.0.0.1:9/"})
    resp = await client.get(ONE, allow_redirects=False)
    assert resp.headers["Location"] == "http://127.0.0.1:9" + ONE  # the default
    assert (await state(client))["@p00001"]["phone"] == "0000000001"
    seen = await stats(client)
    assert seen["patches"] == {} and seen["counts"] == {"PATCH 302": 2, "GET 302": 1}


async def test_chaos_huge_is_a_12_mb_json_body_after_the_write(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["huge"])
    resp = await client.patch(ONE, json={"phone": "7"})
    body = await resp.read()
    assert resp.status == 200 and len(body) >= 12_000_000
    assert isinstance(json.loads(body), dict)
    assert (await state(client))["@p00001"]["phone"] == "7"


async def test_chaos_slow_answers_late_after_the_write(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["slow"], slow_seconds=0.3)
    loop = asyncio.get_running_loop()
    began = loop.time()
    resp = await client.patch(ONE, json={"phone": "8"})
    assert loop.time() - began >= 0.25
    assert resp.status == 200 and (await resp.json())["PKey"] == "@p00001"
    assert (await state(client))["@p00001"]["phone"] == "8"


async def test_chaos_reset_aborts_the_connection_without_writing(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["reset"])
    with pytest.raises(ConnectionResetError):
        await raw(client, patch_bytes(ONE, {"phone": "5"}))
    with pytest.raises(aiohttp.ClientError):
        await client.get(ONE)
    assert (await state(client))["@p00001"]["phone"] == "0000000001"
    seen = await stats(client)
    assert seen["patches"] == {} and seen["counts"] == {"PATCH reset": 1, "GET reset": 1}


async def test_chaos_not_http_writes_garbage_to_the_socket(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["not_http"])
    assert await raw(client, patch_bytes(ONE, {"phone": "5"})) == b"GARBAGE\r\n\r\n"
    with pytest.raises(aiohttp.ClientError):
        await client.get(ONE)
    assert (await state(client))["@p00001"]["phone"] == "0000000001"
    assert (await stats(client))["chaos"] == {"not_http": 2}


async def test_chaos_bad_href_is_for_patches_only(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["bad_href", "json_list"])
    for _ in range(10):
        assert await (await client.get(ONE)).json() == [1, 2]
    await control(client, "/_sandbox/config", {"chaos_kinds": ["bad_href"]})
    resp = await client.get(ONE)  # nothing else to pick: a normal answer
    assert (await resp.json())["content"][0]["PKey"] == "@p00001"
    assert (await stats(client))["chaos"] == {"json_list": 10}


async def test_chaos_picks_kinds_uniformly_at_its_share_and_a_seed_replays_it(
        start: Start) -> None:
    client = await start(chaos=0.5, chaos_kinds=["json_string", "json_list"], seed=7)

    async def bodies() -> list[Any]:
        return [await (await client.get(ONE)).json() for _ in range(300)]

    first = await bodies()
    served = (await stats(client))["chaos"]
    assert 40 <= served["json_string"] <= 110 and 40 <= served["json_list"] <= 110
    normal = [b for b in first if isinstance(b, dict)]
    assert len(normal) == 300 - served["json_string"] - served["json_list"]
    assert all(b["content"][0]["PKey"] == "@p00001" for b in normal)
    await control(client, "/_sandbox/reset", {"config": {
        "chaos": 0.5, "chaos_kinds": ["json_string", "json_list"], "seed": 7}})
    assert await bodies() == first


async def test_chaos_leaves_ims_and_control_alone(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["html"], client_id="cid", client_secret="s")
    resp = await client.post("/ims/token/v3", data={"grant_type": "client_credentials",
                                                    "client_id": "cid", "client_secret": "s"})
    assert resp.status == 200 and (await resp.json())["token_type"] == "bearer"
    seen = await stats(client)
    assert seen["chaos"] == {} and seen["tokens_issued"] == 1


async def test_chaos_on_creation_follows_the_same_rule(start: Start) -> None:
    client = await start(chaos=1.0, chaos_kinds=["json_string"])
    assert await (await client.post(BASE, json={"firstName": "Ann"})).json() == "ok"
    await control(client, "/_sandbox/config", {"chaos_kinds": ["content_null"]})
    await client.post(BASE, json={"firstName": "Bob"})
    created = (await stats(client))["created"]
    assert len(created) == 1
    assert (await state(client))[created[0]]["firstName"] == "Ann"


# -- rate-limit shapes -------------------------------------------------------------------------
async def test_sliding_limit_answers_429_with_retry_after(start: Start) -> None:
    client = await start(rate_limit=3)
    answers = [await client.get(ONE) for _ in range(4)]
    assert [r.status for r in answers] == [200, 200, 200, 429]
    assert answers[3].headers["Retry-After"] == "1"
    assert await answers[3].json() == {"error_code": "429050", "message": "Too many requests"}


async def test_bucket_lets_a_burst_through_then_429_without_retry_after(start: Start) -> None:
    client = await start(rate_limit=0.001, rate_limit_shape="bucket", rate_limit_burst=5)
    answers = [await client.get(ONE) for _ in range(8)]
    assert [r.status for r in answers] == [200] * 5 + [429] * 3
    assert all("Retry-After" not in r.headers for r in answers)
    assert (await client.get("/_sandbox/stats")).status == 200  # control is never limited


async def test_window_allows_rate_times_window_then_429(start: Start) -> None:
    client = await start(rate_limit=0.5, rate_limit_shape="window", rate_limit_window=10)
    answers = [await client.get(ONE) for _ in range(7)]
    assert [r.status for r in answers] == [200] * 5 + [429] * 2
    assert all("Retry-After" not in r.headers for r in answers)


async def test_limits_leave_ims_alone(start: Start) -> None:
    client = await start(rate_limit=0.001, rate_limit_shape="bucket", rate_limit_burst=1,
                         client_id="cid", client_secret="s")
    form = {"grant_type": "client_credentials", "client_id": "cid", "client_secret": "s"}
    for _ in range(3):
        assert (await client.post("/ims/token/v3", data=form)).status == 200
    token = (await (await client.post("/ims/token/v3", data=form)).json())["access_token"]
    headers = {"Authorization": f"Bearer {token}", "X-Api-Key": "cid"}
    assert [(await client.get(ONE, headers=headers)).status for _ in range(2)] == [200, 429]


def test_bucket_refills_at_the_rate_up_to_its_capacity() -> None:
    gate, config = RateGate(), SandboxConfig(rate_limit=2, rate_limit_shape="bucket",
                                             rate_limit_burst=3)
    assert [gate.admit(config, 100.0) is None for _ in range(4)] == [True] * 3 + [False]
    assert gate.admit(config, 100.25) is not None  # half a token
    assert gate.admit(config, 100.5) is None  # one token back after 0.5 s
    assert gate.admit(config, 100.5) is not None
    assert [gate.admit(config, 200.0) is None for _ in range(4)] == [True] * 3 + [False]
    assert gate.admit(config, 200.0).retry_after is None  # type: ignore[union-attr]


def test_window_starts_at_the_first_request_and_resets_on_each_boundary() -> None:
    gate, config = RateGate(), SandboxConfig(rate_limit=0.2, rate_limit_shape="window",
                                             rate_limit_window=10)
    assert [gate.admit(config, 103.0) is None for _ in range(3)] == [True, True, False]
    assert gate.admit(config, 112.9) is not None  # 103-113: its 2 are spent
    assert gate.admit(config, 113.0) is None  # the next window begins at 113
    assert gate.admit(config, 121.0) is None
    assert gate.admit(config, 122.9) is not None  # still 113-123, not from 121
    assert gate.admit(config, 123.0) is None


# -- resource metadata -------------------------------------------------------------------------
async def test_metadata_is_inferred_from_the_profiles(start: Start) -> None:
    profiles = [{**p, "birthDate": "1980-10-24", "lastModified": "2024-11-02 17:45:12.000Z",
                 "orgUnit": {"PKey": "@org1"}} for p in make_profiles(2)]
    profiles[0]["mobilePhone"] = None
    client = await start(profiles)
    resp = await client.get(META)
    assert resp.status == 200
    doc = await resp.json()
    assert {k: doc[k] for k in ("label", "name", "schema", "type", "mandatory", "readOnly")} == {
        "label": "Profiles", "name": "profile", "schema": "nms:recipient", "type": "item",
        "mandatory": False, "readOnly": False}
    assert doc["href"] == str(client.make_url(META))
    content = doc["content"]
    types = {name: (spec["type"], spec["resType"]) for name, spec in content.items()}
    assert types["firstName"] == ("string", "string")
    assert types["cusLoyaltyPoints"] == ("number", "int64")
    assert types["cusScore"] == ("number", "double")
    assert types["blackListEmail"] == ("boolean", "boolean")
    assert types["birthDate"] == ("date", "date")
    assert types["lastModified"] == types["created"] == ("datetime", "datetime")
    assert types["PKey"] == types["href"] == types["mobilePhone"] == ("string", "string")
    assert types["orgUnit"] == ("link", "link") and content["orgUnit"]["resTarget"]
    assert content["location"]["content"]["city"]["type"] == "string"
    first = content["firstName"]
    assert first["apiName"] == "firstName" and first["label"] == "First name"
    assert {"dataPolicy", "category"} <= set(first)


SCHEMA: dict[str, Any] = {
    "PKey": {"type": "string"},
    "firstName": {"type": "string", "dataPolicy": "smartCase"},
    "lastName": {"dataPolicy": "upperCase"},
    "cusTag": {"dataPolicy": "lowerCase"},
    "email": {"type": "string", "dataPolicy": "email"},
    "phone": {"type": "string", "dataPolicy": "phone"},
    "gender": {"type": "enumeration", "values": {
        "male": {"value": "male", "label": "Male"}, "female": {"value": "female",
                                                             "label": "Female"}}},
    "cusLastSeen": {"type": "datetime"},
    "birthDate": {"type": "date"},
    "location": {"type": "item", "content": {"city": {"dataPolicy": "smartCase"},
                                             "zipCode": {"type": "string"}}},
    "orgUnit": {"type": "link", "resTarget": "orgUnit"},
    "cusSecret": {"type": "string", "readOnly": True},
}


async def test_metadata_serves_the_given_schema_in_adobe_shape(start: Start) -> None:
    client = await start(schema=SCHEMA)
    content = (await (await client.get(META)).json())["content"]
    assert list(content) == list(SCHEMA)
    assert content["gender"]["type"] == "enumeration"
    assert content["gender"]["values"]["female"] == {"value": "female", "label": "Female"}
    assert (content["orgUnit"]["type"], content["orgUnit"]["resTarget"]) == ("link", "orgUnit")
    assert content["location"]["content"]["city"]["dataPolicy"] == "smartCase"
    assert content["lastName"] == {"apiName": "lastName", "type": "string", "resType": "string",
                                   "dataPolicy": "upperCase", "category": "profile",
                                   "label": "Last name"}


async def test_metadata_off_broken_unknown_and_wrong_org(start: Start) -> None:
    client = await start()
    resp = await client.get(API + "/resourceType/nothing")
    assert resp.status == 404
    resp = await client.get("/other/campaign/profileAndServices/resourceType/profile")
    assert resp.status == 500 and "Check your URI" in (await resp.json())["message"]
    await control(client, "/_sandbox/config", {"metadata": "off"})
    assert (await client.get(META)).status == 404
    await control(client, "/_sandbox/config", {"metadata": "broken"})
    resp = await client.get(META)
    assert resp.status == 200 and resp.content_type == "text/html"
    with pytest.raises(ValueError):
        json.loads(await resp.text())


# -- data policies and types on writes ---------------------------------------------------------
async def test_writes_follow_data_policies_and_types(start: Start) -> None:
    client = await start(schema=SCHEMA)
    resp = await client.patch(ONE, json={
        "firstName": "jean-PIERRE o'neil", "lastName": "dupont", "cusTag": "VIP",
        "email": "Jean.Dupont@Example.COM", "phone": "+33 6 00", "gender": "male",
        "cusLastSeen": "2024-05-01T12:00:00+02:00", "birthDate": "1980-10-24",
        "location": {"city": "saint-ÉTIENNE", "zipCode": "42000"}})
    assert resp.status == 200
    stored = (await state(client))["@p00001"]
    assert {k: stored[k] for k in ("firstName", "lastName", "cusTag", "email", "phone",
                                   "gender", "cusLastSeen", "birthDate")} == {
        "firstName": "Jean-Pierre O'Neil", "lastName": "DUPONT", "cusTag": "vip",
        "email": "jean.dupont@example.com", "phone": "+33 6 00", "gender": "male",
        "cusLastSeen": "2024-05-01 10:00:00.000Z", "birthDate": "1980-10-24"}
    assert stored["location"] == {"city": "Saint-Étienne", "zipCode": "42000"}
    got = await (await client.get(ONE)).json()
    assert got["content"][0]["firstName"] == "Jean-Pierre O'Neil"


@pytest.mark.parametrize(("sent", "stored"), [
    ("2024-05-01T10:00:00Z", "2024-05-01 10:00:00.000Z"),
    ("2024-05-01T10:00:00.5Z", "2024-05-01 10:00:00.500Z"),
    ("2024-05-01 10:00:00.123Z", "2024-05-01 10:00:00.123Z"),
    ("2024-05-01T07:30:00-02:30", "2024-05-01 10:00:00.000Z"),
    ("2024-05-01T10:00:00", "2024-05-01 10:00:00.000Z"),
    ("2024-05-01 10:00:00+00:00", "2024-05-01 10:00:00.000Z"),
])
async def test_datetimes_are_stored_in_adobe_form_in_utc(start: Start, sent: str,
                                                         stored: str) -> None:
    client = await start(schema=SCHEMA)
    assert (await client.patch(ONE, json={"cusLastSeen": sent})).status == 200
    assert (await state(client))["@p00001"]["cusLastSeen"] == stored


async def test_dates_are_stored_as_plain_dates(start: Start) -> None:
    client = await start(schema=SCHEMA)
    assert (await client.patch(ONE, json={"birthDate": "1980-10-24T23:00:00+05:00"})).status == 200
    assert (await state(client))["@p00001"]["birthDate"] == "1980-10-24"


@pytest.mark.parametrize("body", [{"gender": "Male"}, {"gender": "other"},
                                  {"phone": "1", "gender": "MALE"},
                                  {"birthDate": "yesterday"}, {"cusLastSeen": 12}])
async def test_a_refused_value_answers_the_generic_500_and_writes_nothing(
        start: Start, body: dict[str, Any]) -> None:
    client = await start(schema=SCHEMA)
    resp = await client.patch(ONE, json=body)
    assert resp.status == 500 and await resp.json() == GENERIC
    assert (await state(client))["@p00001"] == make_profiles(3)[1]
    assert (await stats(client))["patches"] == {}


async def test_a_given_schema_decides_unknown_and_read_only_fields(start: Start) -> None:
    client = await start(schema=SCHEMA)
    resp = await client.patch(ONE, json={"cusScore": 0.9})  # in the profiles, not the schema
    assert resp.status == 500 and "'cusScore' property is not valid" in (await resp.json())[
        "message"]
    resp = await client.patch(ONE, json={"cusSecret": "x"})
    assert resp.status == 500 and "read-only" in (await resp.json())["message"]
    assert (await stats(client))["patches"] == {}


async def test_an_inferred_schema_stores_values_as_sent(start: Start) -> None:
    client = await start()
    await client.patch(ONE, json={"firstName": "jean-PIERRE", "email": "A@B.C"})
    stored = (await state(client))["@p00001"]
    assert stored["firstName"] == "jean-PIERRE" and stored["email"] == "A@B.C"


def test_smart_case_capitalises_each_word() -> None:
    assert smart_case("jean-PIERRE o'neil") == "Jean-Pierre O'Neil"
    assert smart_case("  marie  CURIE 3rd") == "  Marie  Curie 3rd"


# -- Campaign v8 flavour -----------------------------------------------------------------------
@pytest.mark.parametrize("pkey", ["@nobody", "nobody"])
async def test_v8_answers_unknown_keys_with_unable_to_decrypt(start: Start, pkey: str) -> None:
    client = await start(flavor="v8")
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.request(method, f"{BASE}/{pkey}", json={"phone": "1"})
        assert resp.status == 404
        assert await resp.json() == {"code": 404, "message": "Unable to decrypt PKey"}


async def test_acs_answers_unknown_keys_as_before(start: Start) -> None:
    client = await start()
    resp = await client.get(BASE + "/nobody")
    assert resp.status == 500 and "Unable to parse expression" in (await resp.json())["message"]
    resp = await client.get(BASE + "/@nobody")
    assert resp.status == 404 and (await resp.json())["error_code"] == "404"


async def test_v8_empty_patch_is_204_and_writes_nothing(start: Start) -> None:
    client = await start(flavor="v8")
    resp = await client.patch(ONE, json={})
    assert resp.status == 204 and await resp.read() == b""
    assert (await stats(client))["patches"] == {}
    await control(client, "/_sandbox/config", {"flavor": "acs"})
    resp = await client.patch(ONE, json={})
    assert resp.status == 200 and (await resp.json())["PKey"] == "@p00001"


@pytest.mark.parametrize("shape", ["wrapped", "bare"])
async def test_v8_single_get_includes_href(start: Start, shape: str) -> None:
    client = await start(flavor="v8", get_shape=shape)
    body = await (await client.get(ONE)).json()
    profile = body["content"][0] if shape == "wrapped" else body
    assert profile["href"] == str(client.make_url(ONE))
    assert "href" not in (await state(client))["@p00001"]  # only shown, not stored
    await control(client, "/_sandbox/config", {"flavor": "acs"})
    body = await (await client.get(ONE)).json()
    assert "href" not in (body["content"][0] if shape == "wrapped" else body)


# -- creation and deletion ---------------------------------------------------------------------
async def test_post_creates_a_profile_with_policies_applied(start: Start) -> None:
    client = await start(schema=SCHEMA)
    resp = await client.post(BASE, json={"firstName": "ann-marie", "email": "Ann@X.ORG",
                                         "gender": "female"})
    assert resp.status == 201
    body = await resp.json()
    assert body["PKey"].startswith("@new-") and resp.headers["Location"] == body["href"]
    assert body["href"] == str(client.make_url(f"{BASE}/{body['PKey']}"))
    got = await (await client.session.get(body["href"])).json()
    assert got["content"][0] == {"PKey": body["PKey"], "firstName": "Ann-Marie",
                                 "email": "ann@x.org", "gender": "female"}
    second = await (await client.post(BASE, json={"firstName": "bo"})).json()
    assert second["PKey"] != body["PKey"]
    assert (await stats(client))["created"] == [body["PKey"], second["PKey"]]


@pytest.mark.parametrize(("body", "status", "says"), [
    ({"PKey": "@mine", "firstName": "x"}, 500, "read-only"),
    ({"age": 3}, 500, "read-only"),
    ({"zipCode": "1"}, 500, "property is not valid"),
    ({"gender": "Female"}, 500, "please contact your administrator"),
    ([1], 400, "must be a JSON object"),
])
async def test_post_refuses_what_patch_refuses_and_creates_nothing(
        start: Start, body: Any, status: int, says: str) -> None:
    client = await start(schema={**SCHEMA, "age": {"type": "number"}})
    resp = await client.post(BASE, json=body)
    assert resp.status == status and says in (await resp.json())["message"]
    assert len(await state(client)) == 3 and (await stats(client))["created"] == []


async def test_post_with_a_wrong_org_is_refused(start: Start) -> None:
    client = await start()
    resp = await client.post("/nope/campaign/profileAndServices/profile", json={"phone": "1"})
    assert resp.status == 500 and (await stats(client))["created"] == []


async def test_rest_post_creates_with_the_body_id_or_a_new_key(start: Start) -> None:
    client = await start([{"PKey": "a1", "id": "a1", "phone": "1"}])
    resp = await client.post("/rest/profiles", json={"id": "cust-7", "phone": "7"})
    assert resp.status == 201
    assert resp.headers["Location"] == str(client.make_url("/rest/profiles/cust-7"))
    assert await resp.json() == {"PKey": "cust-7", "id": "cust-7", "phone": "7"}
    assert (await (await client.get("/rest/profiles/cust-7")).json())["phone"] == "7"
    assert (await client.post("/rest/profiles", json={"id": "cust-7"})).status == 409
    resp = await client.post("/rest/profiles", json={"phone": "8"})
    key = (await resp.json())["PKey"]
    assert resp.status == 201 and key.startswith("@new-")
    assert resp.headers["Location"].endswith(f"/rest/profiles/{key}")
    resp = await client.post("/rest/profiles", json={"nickname": "x"})
    assert resp.status == 422 and "nickname" in (await resp.json())["error"]
    assert (await stats(client))["created"] == ["cust-7", key]


async def test_delete_removes_then_answers_404(start: Start) -> None:
    client = await start()
    resp = await client.delete(ONE)
    assert resp.status == 200 and await resp.json() == {}
    assert (await client.get(ONE)).status == 404
    assert (await client.delete(ONE)).status == 404
    resp = await client.delete(BASE + "/nobody")
    assert resp.status == 500 and "Unable to parse expression" in (await resp.json())["message"]
    resp = await client.delete("/rest/profiles/@p00002")
    assert resp.status == 200 and await resp.json() == {}
    assert (await client.delete("/rest/profiles/@p00002")).status == 404
    assert sorted(await state(client)) == ["@p00000"]
    assert (await stats(client))["deleted"] == ["@p00001", "@p00002"]


async def test_reset_forgets_created_and_deleted(start: Start) -> None:
    client = await start()
    await client.post(BASE, json={"phone": "1"})
    await client.delete(ONE)
    await control(client, "/_sandbox/reset", {"profiles": make_profiles(2)})
    seen = await stats(client)
    assert seen["created"] == [] and seen["deleted"] == [] and seen["chaos"] == {}


# -- knobs: validation, flags, a real process, TLS ---------------------------------------------
@pytest.mark.parametrize("bad", [{"flavor": "v9"}, {"rate_limit_shape": "leaky"},
                                 {"metadata": "maybe"}, {"chaos_kinds": ["html", "fire"]},
                                 {"chaos_kinds": []}, {"schema": ["not", "an", "object"]},
                                 {"schema": {"gender": {"type": "enumeration"}}}])
async def test_bad_knob_values_are_400_and_change_nothing(start: Start,
                                                         bad: dict[str, Any]) -> None:
    client = await start(flavor="v8")
    resp = await control(client, "/_sandbox/config", {"latency_ms": 1, **bad})
    assert resp.status == 400
    resp = await control(client, "/_sandbox/reset", {"config": bad, "profiles": []})
    assert resp.status == 400
    config = (await (await control(client, "/_sandbox/config", {})).json())["config"]
    assert config["flavor"] == "v8" and config["latency_ms"] == 0.0
    assert len(await state(client)) == 3


async def test_new_knobs_default_and_are_set_by_reset(start: Start) -> None:
    client = await start()
    config = (await (await control(client, "/_sandbox/reset", {})).json())["config"]
    assert {k: config[k] for k in ("fault_500", "chaos", "chaos_kinds", "chaos_elsewhere",
                                   "rate_limit_shape", "rate_limit_burst", "rate_limit_window",
                                   "schema", "metadata", "flavor")} == {
        "fault_500": 0.0, "chaos": 0.0, "chaos_kinds": list(CHAOS_KINDS),
        "chaos_elsewhere": "http://127.0.0.1:9/", "rate_limit_shape": "sliding",
        "rate_limit_burst": 10, "rate_limit_window": 10.0, "schema": None, "metadata": "on",
        "flavor": "acs"}
    resp = await control(client, "/_sandbox/reset", {"config": {"flavor": "v8", "chaos": 0.1}})
    assert (await resp.json())["config"]["flavor"] == "v8"


def test_every_new_knob_has_a_flag() -> None:
    args = build_parser().parse_args([
        "sandbox", "--profiles", "p.json", "--fault-500", "0.2", "--chaos", "0.3",
        "--chaos-kinds", "html,reset", "--chaos-elsewhere", "http://x/",
        "--rate-limit-shape", "bucket", "--rate-limit-burst", "4", "--rate-limit-window", "3",
        "--schema", "s.json", "--metadata", "broken", "--flavor", "v8",
        "--tls-cert", "c.pem", "--tls-key", "k.pem"])
    assert (args.fault_500, args.chaos, args.chaos_kinds, args.chaos_elsewhere) == (
        0.2, 0.3, ["html", "reset"], "http://x/")
    assert (args.rate_limit_shape, args.rate_limit_burst, args.rate_limit_window) == (
        "bucket", 4.0, 3.0)
    assert (args.schema, args.metadata, args.flavor, args.tls_cert, args.tls_key) == (
        "s.json", "broken", "v8", "c.pem", "k.pem")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["sandbox", "--profiles", "p", "--chaos-kinds", "fire"])


def write_profiles(tmp_path: Path) -> Path:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(make_profiles(3)))
    return path


def fetch(url: str, context: ssl.SSLContext | None = None) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10, context=context) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_the_command_line_sets_the_new_knobs(tmp_path: Path) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text(json.dumps(SCHEMA))
    with SandboxProcess(write_profiles(tmp_path), "--schema", str(schema), "--flavor", "v8",
                        "--fault-500", "0", "--rate-limit-shape", "window",
                        "--rate-limit", "0.1", "--rate-limit-window", "30") as sbx:
        status, doc = fetch(sbx.url + META)
        assert status == 200 and doc["content"]["gender"]["type"] == "enumeration"
        assert fetch(sbx.url + BASE + "/@nobody") == (
            404, {"code": 404, "message": "Unable to decrypt PKey"})
        assert [fetch(sbx.url + ONE)[0] for _ in range(2)] == [200, 429]  # 3 per 30 s window


def test_a_bad_schema_file_or_half_tls_is_a_usage_error(tmp_path: Path) -> None:
    profiles = write_profiles(tmp_path)
    (tmp_path / "bad.json").write_text("{not json")
    for flags, says in [(["--schema", str(tmp_path / "bad.json")], "cannot read the schema"),
                        (["--tls-cert", str(profiles)], "--tls-cert and --tls-key")]:
        proc = subprocess.run([sys.executable, "-m", "batchpatch", "sandbox", "--port", "0",
                               "--profiles", str(profiles), *flags],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and says in proc.stderr


def test_https_with_a_certificate_from_a_test_ca(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    with SandboxProcess(write_profiles(tmp_path), "--tls-cert", str(cert_file),
                        "--tls-key", str(key_file), cafile=ca_file) as sbx:
        assert sbx.url.startswith("https://127.0.0.1:")
        trusted = ssl.create_default_context(cafile=str(ca_file))
        status, body = fetch(sbx.url + ONE, trusted)
        assert status == 200 and body["content"][0]["PKey"] == "@p00001"
        with pytest.raises(urllib.error.URLError) as refused:
            fetch(sbx.url + ONE, ssl.create_default_context())  # the CA is not trusted
        assert isinstance(refused.value.reason, ssl.SSLCertVerificationError)
        sbx.configure(latency_ms=0)  # the control calls go over HTTPS too
        assert sbx.stats()["counts"] == {"GET 200": 1}
