"""Field semantics end to end: typed CSV cells, nested fields, empty and null, lookups by email,
guards, dry-run counts, and undo restoring every profile exactly."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv

from batchpatch.undo import collect_changes


def test_csv_cells_land_typed_nested_and_null(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "t.csv", ["PKey", "cusLoyaltyPoints", "blackListEmail",
                                           "cusScore", "cusCustomerId", "location.zipCode",
                                           "mobilePhone", "phone"], [
        ["@p00001", "12", "TRUE", "2.5", "0000099", "69002", "0611", "#N/A"],
        ["@p00002", "", "", "", "", "", "", ""],  # every cell empty: nothing changes
    ])
    proc = run_cli("run", fixes, *target_args(sandbox), "--null-token", "#N/A")
    assert proc.returncode == 0, proc.stderr
    p = sandbox.profiles_now()["@p00001"]
    assert p["cusLoyaltyPoints"] == 12 and p["blackListEmail"] is True and p["cusScore"] == 2.5
    assert p["cusCustomerId"] == "0000099" and p["mobilePhone"] == "0611" and p["phone"] is None
    assert p["location"] == {"city": "Paris", "zipCode": "69002", "countryCode": "FR"}
    assert sandbox.profiles_now()["@p00002"] == make_profiles(50)[2]
    rows = by_row(read_results(tmp_path / "t.results.jsonl"))
    assert rows[3]["status"] == "unchanged" and rows[3]["attempts"] == 1


def test_dry_run_reports_what_would_change(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "d.csv", ["PKey", "phone", "location.city"], [
        ["@p00001", "1", "Lyon"], ["@p00002", "0000000002", "Paris"], ["@p00003", "", "Nice"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((tmp_path / "d.summary.json").read_text())
    assert summary["would_change"] == 2 and summary["counts"]["unchanged"] == 1
    assert summary["changed_fields"] == {"location.city": 2, "phone": 1}
    rows = by_row(read_results(tmp_path / "d.results.jsonl"))
    assert rows[2]["changed"] == {"phone": ["0000000001", "1"], "location.city": ["Paris", "Lyon"]}
    assert not any(k.startswith("PATCH") for k in sandbox.stats()["counts"])


def test_run_then_undo_restores_every_profile_exactly(sandbox, tmp_path: Path) -> None:
    before = sandbox.profiles_now()
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone", "cusLoyaltyPoints", "blackListEmail",
                                           "location.city", "mobilePhone"], [
        [f"@p{i:05d}", f"+1{i}", str(i + 1000), "yes", "Lyon", "06"] for i in range(10)
    ] + [["@p00001", "", "7", "", "", ""]])  # the same key twice: undo restores the oldest
    assert run_cli("run", fixes, *target_args(sandbox)).returncode == 0
    assert sandbox.profiles_now() != before
    for out in ("undo.jsonl", "undo.csv"):
        proc = run_cli("undo", tmp_path / "f.results.jsonl", "-o", tmp_path / out)
        assert proc.returncode == 0, proc.stderr
    changes = collect_changes(tmp_path / "f.results.jsonl")
    assert changes.fields["@p00001"]["cusLoyaltyPoints"] == [10, 7]
    proc = run_cli("run", tmp_path / "undo.jsonl", *target_args(sandbox))
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now() == before


def test_csv_undo_restores_nulls_with_its_token(sandbox, tmp_path: Path) -> None:
    before = sandbox.profiles_now()
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "mobilePhone", "cusScore"],
                      [["@p00003", "0622", "0.25"]])
    assert run_cli("run", fixes, *target_args(sandbox)).returncode == 0
    assert run_cli("undo", tmp_path / "f.results.jsonl", "-o", tmp_path / "u.csv").returncode == 0
    assert "#NULL" in (tmp_path / "u.csv").read_text()
    proc = run_cli("run", tmp_path / "u.csv", *target_args(sandbox), "--null-token", "#NULL")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now() == before


def test_undo_over_a_later_change_is_a_conflict(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "A"], ["@p00002", "B"]])
    assert run_cli("run", fixes, *target_args(sandbox)).returncode == 0
    later = write_csv(tmp_path / "later.csv", ["PKey", "phone"], [["@p00002", "someone else"]])
    assert run_cli("run", later, *target_args(sandbox)).returncode == 0
    assert run_cli("undo", tmp_path / "f.results.jsonl", "-o", tmp_path / "u.jsonl").returncode == 0
    proc = run_cli("run", tmp_path / "u.jsonl", *target_args(sandbox))
    assert proc.returncode == 1
    statuses = {r["pkey"]: r["status"] for r in read_results(tmp_path / "u.results.jsonl")}
    assert statuses == {"@p00001": "updated", "@p00002": "conflict"}
    state = sandbox.profiles_now()
    assert state["@p00001"]["phone"] == "0000000001"
    assert state["@p00002"]["phone"] == "someone else"


def test_lookup_by_email(sandbox, tmp_path: Path) -> None:
    profiles = make_profiles(5)
    profiles[4]["email"] = profiles[3]["email"]  # two profiles share an address
    sandbox.reset(copy.deepcopy(profiles))
    fixes = write_csv(tmp_path / "e.csv", ["email", "phone"], [
        ["user1@example.com", "111"],
        ["USER2@example.com", "222"],  # lookups are case-sensitive: not found
        ["user3@example.com", "333"],
        ["nobody@example.com", "444"],
    ])
    proc = run_cli("run", fixes, *target_args(sandbox), "--key-column", "email",
                   "--lookup", "byEmail")
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "e.results.jsonl"))
    assert rows[2]["status"] == "updated" and rows[2]["pkey"] == "@p00001"
    assert rows[2]["attempts"] == 3  # lookup (it carries the profile), PATCH, read-back
    assert rows[3]["status"] == "not_found" and rows[5]["status"] == "not_found"
    assert rows[4]["status"] == "failed" and "ambiguous: 2 profiles" in rows[4]["error"]
    state = sandbox.profiles_now()
    assert state["@p00001"]["phone"] == "111"
    assert state["@p00003"]["phone"] == profiles[3]["phone"]


@pytest.mark.parametrize("shape", ["wrapped", "bare"])
def test_custom_resource_path(sandbox, tmp_path: Path, shape: str) -> None:
    sandbox.configure(get_shape=shape)
    fixes = write_csv(tmp_path / "c.csv", ["PKey", "phone"], [["@p00001", "5"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--resource",
                   "profileAndServicesExt/profile")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now()["@p00001"]["phone"] == "5"
