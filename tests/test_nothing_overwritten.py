"""Defects found by testing, each checked as a user meets it: `undo` and `report` never overwrite
the files they read (links resolved), nor an undo a delete list it did not write; `delete` never
deletes a profile other than the row's PKey; the report's verdict comes from the records when
the summary beside them disagrees; a refused `resume=True` changes nothing on disk."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import by_row, read_results, run_cli, target_args, write_csv, write_jsonl

import batchpatch
from batchpatch.errors import UsageError


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (links as their targets' bytes), by relative name."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}


def one_error_line(proc: Any) -> str:
    lines = proc.stderr.splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("batchpatch: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def applied_results(folder: Path, created: bool = True) -> Path:
    """A results file as a run writes it: two rows patched and, when `created`, one profile
    created, with the summary and manifest beside it."""
    records = [
        {"row": 2, "pkey": "@p00001", "status": "updated", "changed": {"phone": ["01", "02"]},
         "http_status": 200, "attempts": 3, "error": None, "elapsed_ms": 4.0, "ts": 1.0},
        {"row": 3, "pkey": "@p00002", "status": "updated", "changed": {"phone": ["03", "04"]},
         "http_status": 200, "attempts": 3, "error": None, "elapsed_ms": 4.0, "ts": 1.0},
    ]
    if created:
        records.append({"row": 4, "pkey": "@new-1", "status": "created", "action": "create",
                        "href": "http://127.0.0.1:1/demo/campaign/profileAndServices/profile/"
                                "@new-1", "changed": {"firstName": [None, "Ann"]},
                        "http_status": 200, "attempts": 2, "error": None, "elapsed_ms": 4.0,
                        "ts": 1.0})
    results = write_jsonl(folder / "a.results.jsonl", records)
    summary = {"rows": len(records), "failed": 0, "exit_code": 0,
               "counts": {"updated": 2, "created": 1 if created else 0}}
    (folder / "a.summary.json").write_text(json.dumps(summary))
    fixes = write_csv(folder / "fixes.csv", ["PKey", "phone"], [["@p00001", "02"]])
    (folder / "a.results.jsonl.manifest.json").write_text(json.dumps(
        {"input": {"path": str(fixes), "size": fixes.stat().st_size}, "format": "csv"}))
    return results


# -- 1. undo and report never overwrite what they read --------------------------------------

@pytest.mark.parametrize("through", ["itself", "a link"])
def test_undo_refuses_to_write_over_its_results(tmp_path: Path, through: str) -> None:
    results = applied_results(tmp_path)
    out = results
    if through == "a link":
        out = tmp_path / "lnk.jsonl"
        out.symlink_to(results.name)
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("undo", results, "-o", out))
    assert str(out) in line and "results file" in line
    assert snapshot(tmp_path) == before


def test_undo_refuses_a_delete_list_that_is_its_results(tmp_path: Path) -> None:
    results = applied_results(tmp_path)
    (tmp_path / "mine.delete.csv").symlink_to(results.name)
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("undo", results, "-o", tmp_path / "mine.jsonl"))
    assert "mine.delete.csv" in line and "results file" in line
    assert snapshot(tmp_path) == before  # not even the undo file was written


@pytest.mark.parametrize("name", ["a.summary.json", "fixes.csv"])
def test_undo_refuses_to_write_over_the_runs_summary_or_input(tmp_path: Path, name: str) -> None:
    results = applied_results(tmp_path)
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("undo", results, "-o", tmp_path / name))
    assert name in line and "overwritten" in line
    assert snapshot(tmp_path) == before


def test_undo_keeps_a_delete_list_it_did_not_write(tmp_path: Path) -> None:
    results = applied_results(tmp_path)
    theirs = tmp_path / "mine.delete.csv"
    theirs.write_text("PKey,href\n@precious,\n")
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("undo", results, "-o", tmp_path / "mine.jsonl"))
    assert "mine.delete.csv" in line and "already exists" in line and "-o" in line
    assert snapshot(tmp_path) == before
    # the same undo again over its own list, or over an empty file, is fine
    theirs.write_text("")
    assert run_cli("undo", results, "-o", tmp_path / "mine.jsonl").returncode == 0
    first = theirs.read_bytes()
    assert b"@new-1" in first
    again = run_cli("undo", results, "-o", tmp_path / "mine.jsonl")
    assert again.returncode == 0, again.stderr
    assert theirs.read_bytes() == first


def test_undo_without_creations_leaves_a_delete_list_alone(tmp_path: Path) -> None:
    results = applied_results(tmp_path, created=False)
    theirs = tmp_path / "mine.delete.csv"
    theirs.write_text("PKey,href\n@precious,\n")
    proc = run_cli("undo", results, "-o", tmp_path / "mine.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert theirs.read_text() == "PKey,href\n@precious,\n"


@pytest.mark.parametrize("name", ["a.results.jsonl", "lnk.md", "a.summary.json", "fixes.csv"])
def test_report_refuses_to_write_over_what_it_reads(tmp_path: Path, name: str) -> None:
    results = applied_results(tmp_path)
    if name == "lnk.md":
        (tmp_path / name).symlink_to(results.name)
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("report", results, "-o", tmp_path / name))
    assert name in line and "overwritten" in line
    assert snapshot(tmp_path) == before


def test_report_refuses_to_write_over_the_summary_it_was_given(tmp_path: Path) -> None:
    results = applied_results(tmp_path)
    named = tmp_path / "elsewhere.json"
    named.write_text((tmp_path / "a.summary.json").read_text())
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("report", results, "--summary", named, "-o", named))
    assert "elsewhere.json" in line and "summary" in line
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("flag", ["--results", "--failures", "--summary"])
def test_delete_refuses_outputs_over_its_file(sandbox, tmp_path: Path, flag: str) -> None:
    listed = write_csv(tmp_path / "undo.delete.csv", ["PKey", "href"], [["@p00001", ""]])
    before = snapshot(tmp_path)
    line = one_error_line(run_cli("delete", listed, *target_args(sandbox), flag, listed))
    assert flag in line and "undo.delete.csv" in line
    assert snapshot(tmp_path) == before
    assert sandbox.stats()["deleted"] == []


# -- 2. delete never deletes another profile than the row's PKey ----------------------------

def test_delete_refuses_an_href_naming_another_profile_or_origin(sandbox, tmp_path: Path) -> None:
    profile = f"{sandbox.url}/demo/campaign/profileAndServices/profile/"
    elsewhere = "http://elsewhere.invalid/demo/campaign/profileAndServices/profile/"
    listed = write_csv(tmp_path / "undo.delete.csv", ["PKey", "href"], [
        ["@p00007", profile + "@p00006"],      # same origin, another profile
        ["@p00008", elsewhere + "@p00008"],    # the right key, on another origin
        ["@p00009", ""],                       # no href: by PKey
        ["@p00005", profile + "%40p00005"],    # its own href (URL-encoded)
    ])
    proc = run_cli("delete", listed, *target_args(sandbox))
    assert proc.returncode == 1, proc.stderr
    records = by_row(read_results(tmp_path / "undo.delete.results.jsonl"))
    assert {n: r["status"] for n, r in records.items()} == {
        2: "invalid", 3: "invalid", 4: "deleted", 5: "deleted"}
    assert "@p00006" in records[2]["error"] and "@p00007" in records[2]["error"]
    assert "elsewhere.invalid" in records[3]["error"]
    assert "\n" not in records[2]["error"] + records[3]["error"]
    assert sorted(sandbox.stats()["deleted"]) == ["@p00005", "@p00009"]
    left = sandbox.profiles_now()
    assert {"@p00006", "@p00007", "@p00008"} <= left.keys()
    assert "@p00005" not in left and "@p00009" not in left
    # the failures file holds the refused rows, ready to fix and feed back
    failures = (tmp_path / "undo.delete.failures.csv").read_text().splitlines()
    assert failures[0] == "PKey,href" and len(failures) == 3


# -- 3. the report's verdict follows the records --------------------------------------------

def test_report_verdict_follows_the_records_when_the_summary_disagrees(tmp_path: Path) -> None:
    records = [{"row": i, "pkey": f"@p{i:05d}", "status": "updated" if i > 4 else "failed",
                "changed": {"phone": ["1", "2"]}, "http_status": 200 if i > 4 else 400,
                "attempts": 3, "error": None if i > 4 else "rejected (400): bad phone",
                "elapsed_ms": 5.0, "ts": 100.0 + i} for i in range(2, 10)]
    results = write_jsonl(tmp_path / "a.results.jsonl", records)
    (tmp_path / "a.summary.json").write_text(json.dumps(
        {"rows": 300, "failed": 0, "exit_code": 0, "counts": {"updated": 300}}))
    for out in ("r.md", "r.html"):
        proc = run_cli("report", results, "-o", tmp_path / out)
        assert proc.returncode == 0, proc.stderr
    md = (tmp_path / "r.md").read_text()
    verdict = md.splitlines()[2]
    assert verdict.startswith("**3 rows failed.**"), verdict
    assert "5 of 8 rows succeeded" in verdict and "summary" in verdict and "disagree" in verdict
    assert "All good" not in md and "Exit status 0" not in verdict
    html = (tmp_path / "r.html").read_text()
    assert 'class="verdict failed"' in html and "All good" not in html


def test_report_verdict_still_comes_from_an_agreeing_summary(tmp_path: Path) -> None:
    records = [{"row": i, "pkey": f"@p{i:05d}", "status": "updated", "changed": {},
                "http_status": 200, "attempts": 3, "error": None, "elapsed_ms": 5.0,
                "ts": 100.0 + i} for i in range(2, 5)]
    results = write_jsonl(tmp_path / "a.results.jsonl", records)
    (tmp_path / "a.summary.json").write_text(json.dumps(
        {"rows": 3, "failed": 0, "exit_code": 0, "counts": {"updated": 3}}))
    proc = run_cli("report", results, "-o", tmp_path / "r.md")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "r.md").read_text().splitlines()[2].startswith(
        "**All good: 3 rows succeeded.** No row failed. Exit status 0.")


# -- 4. a refused resume changes nothing on disk --------------------------------------------

def test_a_refused_resume_leaves_every_file_as_it_was(sandbox, tmp_path: Path) -> None:
    options = {"base_url": sandbox.url, "org": "demo", "rate": 0, "progress": "off",
               "results": str(tmp_path / "out" / "r.results.jsonl")}
    first = [{"PKey": f"@p{i:05d}", "phone": f"+33{i}"} for i in range(1, 6)]
    result = batchpatch.run(first, **options, limit=3)
    assert result["rows"] == 3
    before = snapshot(tmp_path)
    assert "out/r.results.jsonl.input.jsonl" in before
    other = [{"PKey": f"@p{i:05d}", "phone": f"+44{i}"} for i in range(1, 6)]
    with pytest.raises(UsageError, match="cannot resume"):
        batchpatch.run(other, **options, resume=True)
    assert snapshot(tmp_path) == before
    assert sandbox.stats()["patches"] == {f"@p{i:05d}": 1 for i in range(1, 4)}
    # and the same data still completes the first run
    done = batchpatch.run(first, **options, resume=True)
    assert done["rows"] == 5 and done["exit_code"] == 0
    assert sandbox.profiles_now()["@p00005"]["phone"] == "+335"

