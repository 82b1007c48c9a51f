"""engine.py: scheduling only, tested with the real row protocol on the in-memory transport:
one outcome per row, same-key order, canary, breaker, limit, stops from outside."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

from fakes import BASE, FakeApi, Sleeps, make_client

from batchpatch.counters import Counters
from batchpatch.engine import Engine, Schedule
from batchpatch.errors import BreakerOpen, CanaryFailed, InputBroken, ServerBusy, WriteFailed
from batchpatch.model import Outcome, Row, Status
from batchpatch.policy import Breaker, BreakerPolicy
from batchpatch.protocol import RowMode, RowProtocol
from batchpatch.target import Target


def rows(n: int, key: str = "@p{i}", value: str = "new{i}", first: int = 2) -> list[Row]:
    return [Row(i + first, key.format(i=i), {"phone": value.format(i=i)}, b"")
            for i in range(n)]


def engine(api: FakeApi, schedule: Schedule, out: list[Outcome],
           breaker: BreakerPolicy | None = None) -> Engine:
    proto = RowProtocol(make_client(api.transport), Target(BASE + "{pkey}"), RowMode(),
                        sleep=Sleeps())
    return Engine(proto, out.append, schedule, Breaker(breaker or BreakerPolicy()), Counters())


def profiles(n: int) -> list[dict[str, Any]]:
    return [{"PKey": f"@p{i}", "phone": "old"} for i in range(n)]


async def test_every_row_gets_exactly_one_outcome_and_same_keys_keep_their_order() -> None:
    api = FakeApi(profiles(40))
    batch = rows(40) + rows(30, key="@p1", value="v{i}", first=100)
    out: list[Outcome] = []
    await engine(api, Schedule(concurrency=8), out).run(iter(batch))
    assert sorted(o.row for o in out) == sorted(r.line for r in batch)
    assert api.profiles["@p1"]["phone"] == "v29"  # the last row of the key won
    key_rows = [o.row for o in out if o.pkey == "@p1"]
    assert key_rows == sorted(key_rows)


async def test_only_the_first_n_rows_are_the_canary() -> None:
    api = FakeApi(profiles(30))
    batch = rows(30)
    batch[20] = Row(22, "@missing", {"phone": "x"}, b"")  # fails after the canary
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=4, canary=10), out)
    await eng.run(iter(batch))
    assert eng.abort is None and len(out) == 30
    assert [o.status for o in out].count(Status.NOT_FOUND) == 1


async def test_a_failing_canary_stops_before_the_rest_is_sent() -> None:
    api = FakeApi(profiles(30))
    batch = rows(30)
    batch[3] = Row(5, "@missing", {"phone": "x"}, b"")
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=4, canary=10), out)
    await eng.run(iter(batch))
    assert isinstance(eng.abort, CanaryFailed) and len(out) == 10
    assert "1 of the first 10 rows failed" in str(eng.abort)


async def test_a_file_shorter_than_the_canary_is_an_ordinary_run() -> None:
    api = FakeApi(profiles(5))
    batch = [*rows(5), Row(7, "@missing", {"phone": "x"}, b"")]
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=2, canary=50), out)
    await eng.run(iter(batch))
    assert eng.abort is None and len(out) == 6


async def test_the_breaker_stops_an_error_storm() -> None:
    api = FakeApi(profiles(200))
    for i in range(200):
        api.fault("GET", f"@p{i}", *[ServerBusy("HTTP 503: busy", 503)] * 10)
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=4), out, BreakerPolicy(0.5, 20))
    await eng.run(iter(rows(200)))
    assert isinstance(eng.abort, BreakerOpen)
    assert 10 <= len(out) <= 10 + 4
    assert all(o.status is Status.FAILED and o.retryable for o in out)


async def test_limit_starts_only_n_rows() -> None:
    api = FakeApi(profiles(30))
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=4, limit=7), out)
    await eng.run(iter(rows(30)))
    assert sorted(o.row for o in out) == list(range(2, 9)) and eng.limited


async def test_an_abort_from_outside_stops_new_rows_at_once() -> None:
    api = FakeApi(profiles(500))
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=4), out)

    def emit(outcome: Outcome) -> None:
        out.append(outcome)
        if len(out) == 20:
            eng.fail(WriteFailed("results: No space left on device"))

    eng._emit = emit  # the writer's failure arrives through the same path in a run
    await eng.run(iter(rows(500)))
    assert isinstance(eng.abort, WriteFailed)
    assert len(out) <= 20 + 4
    assert len(api.sent("PATCH")) <= 20 + 4


async def test_rows_read_before_a_broken_input_are_all_processed() -> None:
    api = FakeApi(profiles(100))

    def broken() -> Iterator[Row]:
        yield from rows(85)
        raise InputBroken("f.csv.gz: line 87: cannot read further")

    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=8), out)
    await asyncio.wait_for(eng.run(broken()), 10)
    assert isinstance(eng.abort, InputBroken) and "line 87" in str(eng.abort)
    assert sorted(o.row for o in out) == list(range(2, 87))


async def test_the_pool_grows_and_shrinks_without_losing_a_row() -> None:
    api = FakeApi(profiles(300))
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=2, max_concurrency=40), out)
    sizes: list[int] = []

    def emit(outcome: Outcome) -> None:
        out.append(outcome)
        if len(out) == 50:
            eng.resize(30)  # --concurrency auto found the latency: more workers
        elif len(out) == 150:
            eng.resize(3)  # the rate was cut: fewer
        sizes.append(eng.workers)

    eng._emit = emit
    await eng.run(iter(rows(300)))
    assert sorted(o.row for o in out) == list(range(2, 302))
    assert max(sizes) == 30 and sizes[-1] <= 3
    eng.resize(1000)
    assert eng.workers <= 40  # never past the cap (and none once the input is done)


async def test_the_pool_grows_for_a_file_read_at_once() -> None:
    """A small file is queued whole before the latency is known; growing must still help it:
    30 requests in flight after resize(30), not the 2 of the start."""
    api = FakeApi(profiles(60))
    gate, waiting = asyncio.Event(), [0]
    send = api.transport.send

    async def held(request: Any) -> Any:
        waiting[0] += 1
        await gate.wait()
        return await send(request)

    api.transport.send = held  # type: ignore[method-assign]
    out: list[Outcome] = []
    eng = engine(api, Schedule(concurrency=2, max_concurrency=40), out)
    run = asyncio.create_task(eng.run(iter(rows(60))))
    for _ in range(500):
        if eng.input_finished and waiting[0] == 2:
            break
        await asyncio.sleep(0.01)
    assert eng.input_finished and waiting[0] == 2
    eng.resize(30)
    for _ in range(500):
        if waiting[0] == 30:
            break
        await asyncio.sleep(0.01)
    in_flight = waiting[0]
    gate.set()
    await asyncio.wait_for(run, 10)
    assert in_flight == 30
    assert sorted(o.row for o in out) == list(range(2, 62))


def test_auto_concurrency_follows_rate_times_latency() -> None:
    from batchpatch.runner import workers_for

    assert workers_for(200, 0.150, 128) == 40  # 200 x 0.15 = 30 in flight, +25% and 2
    assert workers_for(10, 0.050, 128) == 4
    assert workers_for(1000, 1.0, 128) == 128
