"""No row without a record, no silent success: the real command against a sandbox in chaos mode
(redirect loops, answers that are not HTTP, empty, HTML, huge or odd JSON bodies, resets, slow
answers), end to end. The first tests run a whole file through every kind of misbehaviour at
once and check the one-record contract against the server's state; the others narrow the chaos
to one kind (and, with the sandbox's `chaos_methods`, to one method) and check the one record
it must give, and the words that name its cause."""

from __future__ import annotations

import copy
import csv
import json
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv
from test_reliability import start_cli, wait_for_records

from batchpatch.sandbox.chaos import APPLIED_FIRST
from batchpatch.sandbox.process import SandboxProcess

SUCCESS = {"updated", "unchanged", "dry_run", "created", "skipped", "deleted"}
#: statuses whose row must have left its profile as it was (or found it already right)
UNTOUCHED = {"unchanged", "invalid", "not_found", "conflict", "skipped"}
#: statuses of rows whose write may have reached the server
MAY_HAVE_WRITTEN = {"updated", "created", "failed", "verify_mismatch"}
ABORTED = {3, 130, 143}
HEADER = ["PKey", "phone", "phone@expected", "cusLoyaltyPoints", "location.city"]


@pytest.fixture
def sbx(sandbox_process: SandboxProcess) -> Iterator[SandboxProcess]:
    """The session's sandbox; left without chaos for the tests that follow."""
    yield sandbox_process
    sandbox_process.reset()


# -- helpers -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fix:
    """One input row: its cells as written, and the typed values it asks the profile to hold."""

    line: int
    pkey: str
    cells: list[str]
    wanted: dict[str, Any]


def chaos_fixes(path: Path, n: int) -> dict[int, Fix]:
    """n rows over @p00000..: most change one to three fields (one nested); a tenth each are
    already right, guarded by a value the profile does not hold, hold a cell of the wrong
    type, or name a key that does not exist; and a last row has no key."""
    fixes: dict[int, Fix] = {}
    for i in range(n):
        pkey, kind = f"@p{i:05d}", i % 10
        phone, guard, points, city = f"+1{i:08d}", "", "", ""
        if kind == 6:
            phone = f"0{i:09d}"  # what the profile holds
        elif kind == 7:
            guard = "not-the-phone"
        elif kind == 8:
            points = "many"
        elif kind == 9:
            pkey = f"@missing{i:05d}"
        else:
            points = str(i * 10 + 1) if i % 3 == 0 else ""
            city = f"City{i}" if i % 4 == 0 else ""
        wanted: dict[str, Any] = {"phone": phone}
        if points and kind != 8:
            wanted["cusLoyaltyPoints"] = int(points)
        if city:
            wanted["location.city"] = city
        fixes[i + 2] = Fix(i + 2, pkey, [pkey, phone, guard, points, city], wanted)
    fixes[n + 2] = Fix(n + 2, "", ["", "+100", "", "", ""], {"phone": "+100"})
    write_csv(path, HEADER, [fix.cells for fix in fixes.values()])
    return fixes


def get_path(profile: dict[str, Any], path: str) -> Any:
    value: Any = profile
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def set_path(profile: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        profile = profile.setdefault(part, {})
    profile[last] = value


def holds(profile: dict[str, Any], wanted: dict[str, Any]) -> bool:
    return all(get_path(profile, path) == value for path, value in wanted.items())


def no_traceback(*procs: subprocess.CompletedProcess[str]) -> None:
    for proc in procs:
        assert "Traceback" not in proc.stderr, proc.stderr


def run_to_the_end(*args: str | Path, interrupt_after: int | None = None,
                   rounds: int = 6) -> list[tuple[int, str]]:
    """The command, then the same with --resume while it exits 3/130/143 (at most `rounds`
    runs in all); the last one must have finished the file. With `interrupt_after`, the first
    run gets a SIGTERM once it has written that many records. Returns (exit status, stderr)
    of each run."""
    if interrupt_after is None:
        first = run_cli(*args)
        runs = [(first.returncode, first.stderr)]
    else:
        proc = start_cli(*args)
        wait_for_records(Path(str(args[1])).with_suffix(".results.jsonl"), interrupt_after,
                         proc)
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=120)
        # 143, unless the run finished in the moment between the last look and the signal
        assert proc.returncode in (143, 0, 1), stderr
        runs = [(proc.returncode, stderr)]
    while runs[-1][0] in ABORTED and len(runs) < rounds:
        again = run_cli(*args, "--resume")
        runs.append((again.returncode, again.stderr))
    for _, stderr in runs:
        assert "Traceback" not in stderr, stderr
    assert runs[-1][0] in (0, 1), [(rc, stderr[-2000:]) for rc, stderr in runs]
    return runs


def assert_one_record_contract(fixes: dict[int, Fix], rc: int, tmp_path: Path, stem: str,
                               before: dict[str, dict[str, Any]],
                               after: dict[str, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Every row has exactly one record, the exit status, summary and failures file agree with
    the records, and the server's state agrees with them; returns the records by row."""
    records = by_row(read_results(tmp_path / f"{stem}.results.jsonl"))
    assert sorted(records) == sorted(fixes)
    statuses = Counter(r["status"] for r in records.values())
    failed = {line for line, r in records.items() if r["status"] not in SUCCESS}
    assert rc == (1 if failed else 0), statuses
    for record in records.values():
        if record["row"] in failed:
            assert isinstance(record["retryable"], bool), record
            assert record["error"], record

    summary = json.loads((tmp_path / f"{stem}.summary.json").read_text())
    assert summary["exit_code"] == rc
    assert summary["rows"] == len(records) and summary["failed"] == len(failed)
    assert {k: v for k, v in summary["counts"].items() if v} == dict(statuses)
    assert summary["rows_without_record"] == 0

    with open(tmp_path / f"{stem}.failures.csv", newline="", encoding="utf-8") as fh:
        listed = list(csv.reader(fh))
    assert listed[0] == HEADER
    assert sorted(listed[1:]) == sorted(fixes[line].cells for line in failed)
    check = run_cli("validate", tmp_path / f"{stem}.failures.csv")  # batchpatch reads it too
    assert check.returncode in (0, 1) and f"{len(failed)} rows" in check.stdout, check.stdout

    assert set(after) == set(before), "a profile was created or deleted"
    for line, fix in fixes.items():
        record = records[line]
        status = record["status"]
        if fix.pkey not in before:  # an unknown key, or no key at all
            assert status in {"not_found", "invalid", "failed"}, record
            continue
        was, now = before[fix.pkey], after[fix.pkey]
        if status in {"updated", "created"}:
            assert holds(now, fix.wanted), (record, now)
        if status in UNTOUCHED:
            assert now == was or holds(was, fix.wanted), (record, now)
        if status == "unchanged":
            assert holds(was, fix.wanted), record
        if now != was:  # the profile changed: its record says so, field by field
            assert status in MAY_HAVE_WRITTEN and record["changed"], (record, was, now)
            restored = copy.deepcopy(now)
            for path, (old, _) in record["changed"].items():
                set_path(restored, path, old)
            assert restored == was, (record, was, now)
    return records


def undo_restores(sbx: SandboxProcess, results: Path, before: dict[str, dict[str, Any]],
                  tmp_path: Path, *flags: str) -> None:
    """`batchpatch undo`, applied without chaos, gives every profile back as it was."""
    sbx.configure(chaos=0.0)
    undo = run_cli("undo", results, "-o", tmp_path / "undo.jsonl")
    assert undo.returncode == 0, undo.stderr
    back = run_cli("run", tmp_path / "undo.jsonl", *target_args(sbx), *flags)
    no_traceback(undo, back)
    assert back.returncode == 0, back.stderr
    assert sbx.profiles_now() == before


def chaos_run(sbx: SandboxProcess, tmp_path: Path, n: int, seed: int, interrupt: bool,
              share: float = 0.3, retries: int = 3) -> list[tuple[int, str]]:
    """A file of n rows through chaos at `share` over every kind, to its end (--resume after an
    abort or, with `interrupt`, a SIGTERM a third of the way); the contract, then the undo."""
    sbx.reset(make_profiles(n), chaos=share, seed=seed, slow_seconds=1.5)
    before = sbx.profiles_now()
    fixes = chaos_fixes(tmp_path / "fixes.csv", n)
    runs = run_to_the_end("run", tmp_path / "fixes.csv", *target_args(sbx), "--concurrency",
                          "32", "--timeout", "1", "--retries", str(retries), "--max-body",
                          "1000000", interrupt_after=n // 3 if interrupt else None)
    served = sbx.stats()["chaos"]
    assert set(served) >= {"reset", "not_http", "html", "huge", "redirect_self", "slow"}
    assert_one_record_contract(fixes, runs[-1][0], tmp_path, "fixes", before,
                               sbx.profiles_now())
    undo_restores(sbx, tmp_path / "fixes.results.jsonl", before, tmp_path)
    return runs


# -- the whole contract, every kind at once ----------------------------------------------------
def test_chaos_every_row_one_record_state_matches_and_undo_restores(sbx: SandboxProcess,
                                                                    tmp_path: Path) -> None:
    chaos_run(sbx, tmp_path, 250, seed=20240601, interrupt=False)


def test_chaos_interrupted_then_resumed_to_the_end(sbx: SandboxProcess, tmp_path: Path) -> None:
    runs = chaos_run(sbx, tmp_path, 250, seed=20240602, interrupt=True)
    assert runs[0][0] == 143 and len(runs) >= 2, [rc for rc, _ in runs]


@pytest.mark.benchmark
@pytest.mark.parametrize(("seed", "share", "retries", "interrupt"), [
    (1, 0.3, 3, False), (2, 0.5, 1, False), (3, 0.8, 1, False), (5, 0.3, 3, True),
    (4, 0.8, 1, True), (6, 0.8, 1, True),
])
def test_chaos_soak(sbx: SandboxProcess, tmp_path: Path, seed: int, share: float,
                    retries: int, interrupt: bool) -> None:
    """`pytest -m benchmark tests/test_chaos.py`: more rows, more chaos, fewer retries (so that
    many rows end failed after writes that landed, and a resume retries them)."""
    chaos_run(sbx, tmp_path, 1500, seed=seed, interrupt=interrupt, share=share,
              retries=retries)


# -- one kind at a time ------------------------------------------------------------------------
def one_row(tmp_path: Path, key: str = "@p00001", column: str = "PKey") -> Path:
    return write_csv(tmp_path / "one.csv", [column, "phone"], [[key, "+15550001"]])


def only_record(tmp_path: Path, stem: str = "one") -> dict[str, Any]:
    (record,) = read_results(tmp_path / f"{stem}.results.jsonl")
    return record


LOOKUP = ["--key-column", "email", "--lookup", "byEmail", "--schema", "none"]


@pytest.mark.parametrize(("kind", "words"), [
    ("no_content", "HTTP 204: the lookup answered an empty body"),
    ("content_null", "not a list"),
    ("json_string", "a JSON string, not a list"),
    ("json_list", "holds something other than records"),
])
def test_a_lookup_answer_that_cannot_be_read_fails_the_row_not_not_found(
        sbx: SandboxProcess, tmp_path: Path, kind: str, words: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind])
    proc = run_cli("run", one_row(tmp_path, "user1@example.com", "email"), *target_args(sbx),
                   *LOOKUP)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    record = only_record(tmp_path)
    assert record["status"] == "failed", record
    assert words in record["error"]
    assert sbx.stats()["chaos"] == {kind: 1} and sbx.stats()["patches"] == {}


@pytest.mark.parametrize("on_missing", ["fail", "skip", "create"])
def test_a_get_answering_content_null_fails_the_row_and_creates_nothing(
        sbx: SandboxProcess, tmp_path: Path, on_missing: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=["content_null"],
              chaos_methods=["GET"])
    before = sbx.profiles_now()
    proc = run_cli("run", one_row(tmp_path), *target_args(sbx), "--schema", "none",
                   "--on-missing", on_missing)
    no_traceback(proc)
    assert sbx.profiles_now() == before  # no second profile for a key that exists
    record = only_record(tmp_path)
    assert (record["status"], proc.returncode) == ("failed", 1), record
    assert "content" in record["error"]


def test_a_lookup_answering_a_list_of_no_records_creates_nothing(sbx: SandboxProcess,
                                                               tmp_path: Path) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=["json_list"], chaos_methods=["GET"])
    before = sbx.profiles_now()
    proc = run_cli("run", one_row(tmp_path, "user1@example.com", "email"), *target_args(sbx),
                   *LOOKUP, "--on-missing", "create")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    assert sbx.profiles_now() == before


@pytest.mark.parametrize(("kind", "words"), [
    ("redirect_self", "more than 3 redirects (a loop?)"),
    ("redirect_elsewhere", "redirected to another origin (http://127.0.0.1:9)"),
])
def test_a_redirect_that_is_not_followed_fails_the_row_naming_why(
        sbx: SandboxProcess, tmp_path: Path, kind: str, words: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind])
    proc = run_cli("run", one_row(tmp_path), *target_args(sbx), "--schema", "none")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    record = only_record(tmp_path)
    assert record["status"] == "failed" and words in record["error"], record
    assert record["http_status"] == 302
    assert sbx.stats()["patches"] == {}


# kind -> (HTTP status, whether retryable, words) of a row whose GET answered that way
NOT_A_PROFILE = {
    "no_content": (204, False, "HTTP 204 with an empty body, not a profile"),
    "json_string": (200, False, "HTTP 200 with a JSON string, not a profile"),
    "json_list": (200, False, "HTTP 200 with a JSON list, not a profile"),
    "html": (200, True, "HTTP 200 with a body that is not JSON"),
    "huge": (None, False, "more than --max-body 1000000"),
}


@pytest.mark.parametrize("kind", sorted(NOT_A_PROFILE))
def test_a_get_answer_that_is_not_a_profile_fails_the_row_naming_it(
        sbx: SandboxProcess, tmp_path: Path, kind: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind])
    proc = run_cli("run", one_row(tmp_path), *target_args(sbx), "--schema", "none",
                   "--retries", "1", "--max-body", "1000000")
    no_traceback(proc)
    assert proc.returncode == 1
    status, retryable, words = NOT_A_PROFILE[kind]
    record = only_record(tmp_path)
    assert record["status"] == "failed" and record["retryable"] is retryable, record
    assert record["http_status"] == status and words in record["error"]
    if kind == "no_content":
        assert "HTTP 200" not in record["error"]
    assert sbx.stats()["patches"] == {}


@pytest.mark.parametrize(("kind", "words"), [
    ("reset", "Connection reset"),
    ("not_http", "Bad status line"),
])
def test_no_http_answer_is_retried_then_failed_retryable_and_resume_finishes_it(
        sbx: SandboxProcess, tmp_path: Path, kind: str, words: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind])
    args = ["run", one_row(tmp_path), *target_args(sbx), "--schema", "none", "--retries", "1"]
    proc = run_cli(*args)
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    record = only_record(tmp_path)
    assert record["status"] == "failed" and record["retryable"] is True, record
    assert record["attempts"] == 2 and record["retries"] == 1
    assert words in record["error"] and "gave up after 2 attempts" in record["error"]
    sbx.configure(chaos=0.0)
    again = run_cli(*args, "--resume")
    no_traceback(again)
    assert again.returncode == 0, again.stderr
    assert only_record(tmp_path)["status"] == "updated"
    assert sbx.profiles_now()["@p00001"]["phone"] == "+15550001"


# kind -> the status of a row whose PATCH the server applied and then answered that way
LANDED = {"html": "failed", "huge": "failed", "slow": "failed", "no_content": "updated",
          "json_string": "updated", "bad_href": "updated"}
assert set(LANDED) == APPLIED_FIRST


@pytest.mark.parametrize("kind", sorted(LANDED))
def test_a_write_that_landed_then_was_answered_badly_keeps_changed_for_undo(
        sbx: SandboxProcess, tmp_path: Path, kind: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind], chaos_methods=["PATCH"],
              slow_seconds=1.0)
    before = sbx.profiles_now()
    proc = run_cli("run", one_row(tmp_path), *target_args(sbx), "--schema", "none",
                   "--retries", "1", "--timeout", "0.5", "--max-body", "1000000")
    no_traceback(proc)
    record = only_record(tmp_path)
    assert record["status"] == LANDED[kind], record
    assert proc.returncode == (0 if LANDED[kind] == "updated" else 1)
    assert record["changed"] == {"phone": ["0000000001", "+15550001"]}
    assert sbx.profiles_now()["@p00001"]["phone"] == "+15550001"
    stats = sbx.stats()
    assert stats["chaos"].get(kind) and stats["patches"]["@p00001"] >= 1
    if kind == "bad_href":  # read back from the row's own URL instead
        assert stats["counts"] == {"GET 200": 2, "PATCH 200": 1}
    if record["status"] == "failed":  # the undo of an `updated` row is the chaos run's part
        undo_restores(sbx, tmp_path / "one.results.jsonl", before, tmp_path, "--schema", "none")


# kind -> (status, whether retryable, words) of a row whose PATCH never reached the service
NOT_LANDED = {
    "json_list": ("verify_mismatch", False, "read-back differs"),
    "content_null": ("verify_mismatch", False, "read-back differs"),
    "reset": ("failed", True, "Connection reset"),
    "not_http": ("failed", True, "Bad status line"),
    "redirect_self": ("failed", False, "only GETs follow redirects"),
    "redirect_elsewhere": ("failed", False, "another origin"),
}


@pytest.mark.parametrize("kind", sorted(NOT_LANDED))
def test_a_write_that_did_not_land_is_never_a_success(sbx: SandboxProcess, tmp_path: Path,
                                                      kind: str) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=[kind], chaos_methods=["PATCH"])
    before = sbx.profiles_now()
    proc = run_cli("run", one_row(tmp_path), *target_args(sbx), "--schema", "none",
                   "--retries", "1")
    no_traceback(proc)
    assert proc.returncode == 1, proc.stderr
    status, retryable, words = NOT_LANDED[kind]
    record = only_record(tmp_path)
    assert (record["status"], record["retryable"]) == (status, retryable), record
    assert words in record["error"]
    assert record["changed"] == {"phone": ["0000000001", "+15550001"]}  # sent: undo covers it
    assert sbx.profiles_now() == before and sbx.stats()["patches"] == {}


def test_resume_of_a_failed_row_whose_write_landed_keeps_it_in_the_undo(
        sbx: SandboxProcess, tmp_path: Path) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=["html"], chaos_methods=["PATCH"])
    before = sbx.profiles_now()
    args = ["run", one_row(tmp_path), *target_args(sbx), "--schema", "none", "--retries", "1"]
    first = run_cli(*args)
    assert first.returncode == 1 and only_record(tmp_path)["retryable"] is True
    sbx.configure(chaos=0.0)
    again = run_cli(*args, "--resume")
    no_traceback(first, again)
    assert again.returncode == 0, again.stderr
    record = only_record(tmp_path)
    assert record["status"] == "updated", record
    assert record["changed"] == {"phone": ["0000000001", "+15550001"]}
    undo_restores(sbx, tmp_path / "one.results.jsonl", before, tmp_path, "--schema", "none")


def test_a_retry_that_fails_before_its_patch_keeps_the_landed_write_in_the_undo(
        sbx: SandboxProcess, tmp_path: Path) -> None:
    sbx.reset(make_profiles(5), chaos=1.0, chaos_kinds=["html"], chaos_methods=["PATCH"])
    before = sbx.profiles_now()
    fixes = write_csv(tmp_path / "two.csv", ["PKey", "phone"],
                      [["@p00001", "+15550001"], ["@p00002", "+15550002"]])
    args = ["run", fixes, *target_args(sbx), "--schema", "none", "--retries", "1",
            "--concurrency", "1"]
    first = run_cli(*args, "--canary", "1")  # stops after row 1: its journal entry is kept
    assert first.returncode == 3, first.stderr
    (record,) = read_results(tmp_path / "two.results.jsonl")
    assert record["retryable"] is True and record["changed"], record
    sbx.configure(chaos_kinds=["json_string"], chaos_methods=["GET"])
    again = run_cli(*args, "--resume")
    no_traceback(first, again)
    assert again.returncode == 1, again.stderr
    records = by_row(read_results(tmp_path / "two.results.jsonl"))
    assert records[2]["status"] == "failed", records[2]
    assert records[2]["changed"] == {"phone": ["0000000001", "+15550001"]}, records[2]
    undo_restores(sbx, tmp_path / "two.results.jsonl", before, tmp_path, "--schema", "none")


@pytest.mark.parametrize("kind", ["json_string", "html"])
def test_a_failing_canary_ends_the_run_and_only_its_rows_are_judged(
        sbx: SandboxProcess, tmp_path: Path, kind: str) -> None:
    n, canary = 12, 3
    sbx.reset(make_profiles(n), chaos=1.0, chaos_kinds=[kind])
    fixes = write_csv(tmp_path / "c.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"+1{i:08d}"] for i in range(n)])
    args = ["run", fixes, *target_args(sbx), "--schema", "none", "--retries", "1",
            "--concurrency", "8", "--canary", str(canary)]
    proc = run_cli(*args, timeout=60)
    no_traceback(proc)
    assert proc.returncode == 3, proc.stderr
    assert f"canary: {canary} of the first {canary} rows failed" in proc.stderr
    records = by_row(read_results(tmp_path / "c.results.jsonl"))
    assert sorted(records) == [2, 3, 4]
    assert {r["status"] for r in records.values()} == {"failed"}
    stats = sbx.stats()
    assert sum(stats["counts"].values()) == canary * (2 if kind == "html" else 1)
    summary = json.loads((tmp_path / "c.summary.json").read_text())
    assert summary["rows_without_record"] == n - canary
    sbx.configure(chaos=0.0)
    again = run_cli(*args, "--resume", timeout=60)
    no_traceback(again)
    records = by_row(read_results(tmp_path / "c.results.jsonl"))
    assert sorted(records) == list(range(2, n + 2)), again.stderr
    retried = kind == "html"  # a retryable failure is tried again; a rejected one is kept
    assert again.returncode == (0 if retried else 1)
    assert Counter(r["status"] for r in records.values()) == (
        {"updated": n} if retried else {"updated": n - canary, "failed": canary})


@pytest.mark.parametrize("given", ["tok\r", " tok\r\n"])
def test_a_token_given_with_a_trailing_cr_works(sbx: SandboxProcess, tmp_path: Path,
                                                given: str) -> None:
    sbx.reset(make_profiles(5), token="tok", api_key="key")
    fixes = one_row(tmp_path)
    proc = run_cli("run", fixes, *target_args(sbx), "--schema", "none",
                   env={"BATCHPATCH_TOKEN": given, "BATCHPATCH_API_KEY": "key\r"})
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert only_record(tmp_path)["status"] == "updated"
    wrong = run_cli("run", fixes, *target_args(sbx), "--schema", "none",
                    env={"BATCHPATCH_TOKEN": "tok2", "BATCHPATCH_API_KEY": "key"})
    assert wrong.returncode == 3  # the sandbox does hold the run to the clean token


@pytest.mark.parametrize("expires_in", ['"soon"', "null", "0", '"3600"'])
def test_an_ims_expires_in_that_is_not_a_number_still_gives_a_token(
        sbx: SandboxProcess, tmp_path: Path, expires_in: str) -> None:
    sbx.reset(make_profiles(5), client_id="cid", client_secret="sec", ims_expires_in=expires_in)
    fixes = write_csv(tmp_path / "one.csv", ["PKey", "phone"],
                      [["@p00001", "+15550001"], ["@p00002", "+15550002"]])
    proc = run_cli("run", fixes, *target_args(sbx), "--schema", "none", "--client-id", "cid",
                   "--ims-url", sbx.url + "/ims/token/v3",
                   env={"BATCHPATCH_CLIENT_SECRET": "sec"})
    no_traceback(proc)
    assert proc.returncode == 0, proc.stderr
    assert {r["status"] for r in read_results(tmp_path / "one.results.jsonl")} == {"updated"}
    assert sbx.stats()["tokens_issued"] == 1
    if expires_in != '"3600"':
        assert "no usable expires_in" in proc.stderr
