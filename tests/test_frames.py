"""The Python API on data in memory (a DataFrame, Arrow data, an iterable of dicts): the same
server state and statuses as the run on the equivalent file, the failed rows handed back,
resume with the same data, and the data refused before anything is sent."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest
from conftest import read_results, run_cli, target_args, write_jsonl
from test_parquet import SCHEMA, fix_records, profiles, write_parquet

import batchpatch
from batchpatch.errors import LockHeld, UsageError
from batchpatch.resume import RunLock


def options(sandbox: Any, tmp_path: Path, name: str = "api", **more: Any) -> dict[str, Any]:
    return {"base_url": sandbox.url, "org": "demo", "rate": 0, "concurrency": 8,
            "progress": "off", "results": str(tmp_path / f"{name}.results.jsonl"), **more}


def file_run(sandbox: Any, tmp_path: Path, path: Path) -> tuple[dict[str, Any], dict[str, int]]:
    """The server state and the counts after the CLI runs `path` on fresh profiles."""
    sandbox.reset(profiles())
    proc = run_cli("run", path, *target_args(sandbox))
    assert proc.returncode in (0, 1), proc.stderr
    summary = json.loads(path.with_name(path.name.split(".")[0] + ".summary.json").read_text())
    return sandbox.profiles_now(), summary["counts"]


def test_dataframe_run_does_what_the_parquet_file_run_does(sandbox, tmp_path: Path) -> None:
    state, counts = file_run(sandbox, tmp_path, write_parquet(tmp_path / "file.parquet",
                                                              fix_records()))
    frame = pd.DataFrame(fix_records())  # cusScore NaN in row 10, phone None in rows 3 and 6
    sandbox.reset(profiles())
    result = batchpatch.run(frame, **options(sandbox, tmp_path))
    assert sandbox.profiles_now() == state
    assert result["counts"] == counts and result["exit_code"] == 1
    assert state["@p00003"]["phone"] is None and state["@p00010"]["cusScore"] == 0.5
    failed = result.failed_rows
    assert isinstance(failed, pd.DataFrame)
    assert list(failed["PKey"]) == ["@nobody", "@p00010"]
    assert list(failed.columns) == list(frame.columns)
    assert dict(failed.dtypes) == dict(frame.dtypes)
    assert failed["lastContact"][0] == frame["lastContact"][8]
    # the summary is the same plain, JSON-ready dict as before; the failures file is a path
    assert isinstance(result["failures"], str) and Path(result["failures"]).exists()
    assert json.loads(json.dumps(result))["counts"] == counts


@pytest.mark.parametrize("shape", ["table", "reader"])
def test_arrow_data_runs_like_the_file(sandbox, tmp_path: Path, shape: str) -> None:
    state, counts = file_run(sandbox, tmp_path, write_parquet(tmp_path / "file.parquet",
                                                              fix_records()))
    table = pa.Table.from_pylist(fix_records(), schema=SCHEMA)
    data = table if shape == "table" else table.to_reader(max_chunksize=3)
    sandbox.reset(profiles())
    result = batchpatch.run(data, **options(sandbox, tmp_path))
    assert sandbox.profiles_now() == state and result["counts"] == counts
    assert list(result.failed_rows["PKey"]) == ["@nobody", "@p00010"]


def dict_fixes() -> list[dict[str, Any]]:
    """Sparse dicts: a key left out leaves the field as it is; None sets null."""
    return [
        {"PKey": "@p00001", "phone": "+33100000001", "location": {"city": "Lyon"}},
        {"PKey": "@p00002", "cusLoyaltyPoints": 7, "mobilePhone": None},
        {"PKey": "@nobody", "phone": "1"},
        {"PKey": "@p00004", "cusScore": Decimal("2.5"), "blackListEmail": True},
        {"PKey": "@p00005", "lastContact": dt.datetime(2024, 5, 1, 10, 30,
                                                       tzinfo=dt.timezone(dt.timedelta(hours=2)))},
        {"PKey": "@p00006", "email": "x@example.com", "email@expected": "old@example.com"},
    ]


def test_dicts_run_does_what_the_jsonl_file_run_does(sandbox, tmp_path: Path) -> None:
    as_json = [{**d, "cusScore": 2.5} if "cusScore" in d else d for d in dict_fixes()]
    as_json[4] = {**as_json[4], "lastContact": "2024-05-01T08:30:00Z"}
    state, counts = file_run(sandbox, tmp_path, write_jsonl(tmp_path / "file.jsonl", as_json))
    sandbox.reset(profiles())
    result = batchpatch.run((d for d in dict_fixes()), **options(sandbox, tmp_path))
    assert sandbox.profiles_now() == state
    assert result["counts"] == counts
    assert counts["updated"] == 4 and counts["not_found"] == 1 and counts["conflict"] == 1
    assert state["@p00001"]["location"] == {"city": "Lyon", "zipCode": "75011",
                                             "countryCode": "FR"}
    assert state["@p00001"]["firstName"] == "Name1"  # absent key: left as is
    assert result.failed_rows == [as_json[2], as_json[5]]


def test_resume_with_the_same_dataframe_completes_it(sandbox, tmp_path: Path) -> None:
    frame = pd.DataFrame(fix_records())
    sandbox.reset(profiles())
    first = batchpatch.run(frame, **options(sandbox, tmp_path, limit=4))
    assert first["limited"] and first["rows"] == 4
    spool = tmp_path / "api.results.jsonl.input.parquet"
    written = spool.stat().st_mtime_ns
    second = batchpatch.run(frame.copy(), **options(sandbox, tmp_path, resume=True))
    assert second["rows"] == 10 and second["resumed_rows"] == 4
    assert sandbox.stats()["patches"] == {f"@p{i:05d}": 1 for i in range(1, 9)}
    assert list(second.failed_rows["PKey"]) == ["@nobody", "@p00010"]
    assert spool.stat().st_mtime_ns == written  # the same data: the same file
    records = read_results(tmp_path / "api.results.jsonl")
    assert sorted(r["row"] for r in records) == list(range(1, 11))
    with pytest.raises(UsageError, match="cannot resume"):
        batchpatch.run(frame.iloc[::-1], **options(sandbox, tmp_path, resume=True))


async def test_run_async_takes_a_dataframe(sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    frame = pd.DataFrame({"PKey": ["@p00001", "@p00002"], "cusLoyaltyPoints": [5, 6]})
    result = await batchpatch.run_async(frame, **options(sandbox, tmp_path))
    assert result["counts"]["updated"] == 2 and result.failed_rows.empty
    assert sandbox.profiles_now()["@p00002"]["cusLoyaltyPoints"] == 6


def test_unusable_data_is_refused_before_anything_is_sent(sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    with pytest.raises(UsageError, match="results= is required"):
        batchpatch.run([{"PKey": "@p00001", "phone": "1"}], base_url=sandbox.url, org="demo")
    with pytest.raises(UsageError, match="cannot run on a int"):
        batchpatch.run(42, **options(sandbox, tmp_path))
    with pytest.raises(UsageError, match="item 2: a str, not a dict"):
        batchpatch.run([{"PKey": "@p00001"}, "@p00002"], **options(sandbox, tmp_path))
    nan = [{"PKey": "@p00001", "phone": "1"}, {"PKey": "@p00002", "cusScore": float("nan")}]
    with pytest.raises(UsageError, match=r"item 2: field 'cusScore' is nan, which would be "
                                         r"sent as null and wipe the field"):
        batchpatch.run(nan, **options(sandbox, tmp_path))
    with pytest.raises(UsageError, match=r"item 1: field 'price': the decimal 0.1 has no exact"):
        batchpatch.run([{"PKey": "@p00001", "price": Decimal("0.1")}],
                       **options(sandbox, tmp_path))
    indexed = pd.DataFrame({"PKey": ["@p00001"], "phone": ["1"]}).set_index("PKey")
    with pytest.raises(UsageError, match=r"DataFrame's index; pass df\.reset_index"):
        batchpatch.run(indexed, **options(sandbox, tmp_path))
    with pytest.raises(UsageError, match="format='csv' is for files"):
        batchpatch.run(indexed, **options(sandbox, tmp_path, format="csv"))
    assert sandbox.stats()["patches"] == {}
    assert not (tmp_path / "api.results.jsonl").exists()


def test_a_second_run_on_the_same_results_cannot_rewrite_the_spool(sandbox,
                                                                   tmp_path: Path) -> None:
    spool = tmp_path / "api.results.jsonl.input.jsonl"
    spool.write_text('{"PKey": "@p00001", "phone": "first"}\n')
    with RunLock(spool), pytest.raises(LockHeld):  # as a run on these results holds it
        batchpatch.run([{"PKey": "@p00001", "phone": "second"}], **options(sandbox, tmp_path))
    assert spool.read_text() == '{"PKey": "@p00001", "phone": "first"}\n'


def test_a_path_runs_as_before_and_has_no_failed_rows(sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    path = write_parquet(tmp_path / "fixes.parquet", fix_records())
    result = batchpatch.run(path, base_url=sandbox.url, org="demo", rate=0, progress="off")
    assert result["counts"]["updated"] == 8 and result["exit_code"] == 1
    assert result.failed_rows is None
    assert result["failures"] == str(tmp_path / "fixes.failures.parquet")
