"""writer.py: records, failures and counters on real files; a disk that refuses writes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from batchpatch.counters import Counters
from batchpatch.errors import WriteFailed
from batchpatch.failures import RawFailures
from batchpatch.model import Outcome, Status
from batchpatch.resume import Journal
from batchpatch.writer import ResultsWriter

FULL = Path("/dev/full")  # every write answers ENOSPC, as a full disk does


def outcome(row: int, status: Status, **kw: object) -> Outcome:
    return Outcome(row, f"@p{row}", status, raw=f"@p{row},x\n".encode(), **kw)  # type: ignore[arg-type]


async def write(writer: ResultsWriter, outcomes: list[Outcome]) -> None:
    task = asyncio.create_task(writer.run())
    for o in outcomes:
        writer.put(o)
    writer.finish()
    await task


async def test_records_failures_and_counts(tmp_path: Path) -> None:
    counters, errors = Counters(), []
    writer = ResultsWriter(tmp_path / "r.jsonl", RawFailures(tmp_path / "f.csv", b"PKey,x\r\n"),
                           counters, append=False, on_error=errors.append)
    await write(writer, [
        outcome(2, Status.UPDATED, changed={"x": [1, 2]}),
        outcome(3, Status.FAILED, error="HTTP 503: busy", retryable=True),
        outcome(4, Status.NOT_FOUND, error="HTTP 404"),
    ])
    records = [json.loads(line) for line in (tmp_path / "r.jsonl").read_text().splitlines()]
    assert [(r["row"], r["status"]) for r in records] == [(2, "updated"), (3, "failed"),
                                                         (4, "not_found")]
    assert records[1]["retryable"] is True and records[2]["retryable"] is False
    assert "retryable" not in records[0]
    assert (tmp_path / "f.csv").read_bytes() == b"PKey,x\r\n@p3,x\n@p4,x\n"
    assert counters.recorded == 3 and counters.failed == 2
    assert dict(counters.changed_fields) == {"x": 1} and errors == []


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full")
async def test_a_full_disk_is_reported_once_and_nothing_more_is_written(tmp_path: Path) -> None:
    counters, errors = Counters(), []
    writer = ResultsWriter(FULL, RawFailures(tmp_path / "f.csv", b""), counters, append=True,
                           on_error=errors.append)
    await write(writer, [outcome(i, Status.UPDATED) for i in range(2, 50)])
    assert len(errors) == 1 and isinstance(errors[0], WriteFailed)
    assert "No space left on device" in str(errors[0]) and str(FULL) in str(errors[0])
    assert writer.broken is errors[0]
    with pytest.raises(WriteFailed):
        writer.intend(60, "@p60", {"x": [1, 2]})  # and no further write may be sent


@pytest.mark.skipif(not FULL.exists(), reason="no /dev/full")
def test_a_journal_that_cannot_be_written_refuses_the_write(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    journal.path = FULL
    with pytest.raises(WriteFailed, match="cannot write the journal"):
        journal.write(2, "@p2", {"x": [1, 2]})


def test_the_journal_keeps_each_rows_last_intent_and_skips_a_torn_tail(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "r.jsonl")
    journal.write(2, "@p2", {"x": [1, 2]})
    journal.write(3, "@p3", {"y": [None, "a"]})
    journal.write(2, "@p2", {"x": [2, 3]})
    journal.close()
    with open(journal.path, "ab") as fh:
        fh.write(b'{"row": 4, "pk')
    assert journal.load() == {2: ("patch", {"x": [2, 3]}), 3: ("patch", {"y": [None, "a"]})}
