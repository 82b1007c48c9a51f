"""Shared fixtures: one sandbox process (a real server on loopback) for the session, reset to a
known state before each test that uses it, and helpers to run the real `batchpatch` command."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchpatch.sandbox.process import SandboxProcess

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"


def make_profiles(n: int, prefix: str = "@p") -> list[dict[str, Any]]:
    """n profiles with integers, booleans, leading-zero strings, nested objects and nulls."""
    return [
        {
            "PKey": f"{prefix}{i:05d}",
            "firstName": f"Name{i}",
            "email": f"user{i}@example.com",
            "phone": f"0{i:09d}",
            "mobilePhone": None,
            "cusLoyaltyPoints": i * 10,
            "cusScore": 0.5,
            "blackListEmail": False,
            "cusCustomerId": f"{i:07d}",
            "location": {"city": "Paris", "zipCode": "75011", "countryCode": "FR"},
            "age": 30,
        }
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def sandbox_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SandboxProcess]:
    path = tmp_path_factory.mktemp("sandbox") / "profiles.json"
    path.write_text(json.dumps(make_profiles(10)))
    with SandboxProcess(path) as sandbox:
        yield sandbox


@pytest.fixture
def sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The sandbox, reset: 50 profiles @p00000..@p00049, no faults, no auth."""
    sandbox_process.reset(make_profiles(50))
    return sandbox_process


def write_csv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[Any]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def read_results(path: Path) -> list[dict[str, Any]]:
    """The results file, parsed line by line (a torn line fails the test)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_row(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    rows = {r["row"]: r for r in records}
    assert len(rows) == len(records), "more than one record for a row"
    return rows


def run_cli(*args: str | Path, env: dict[str, str] | None = None, stdin: str | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `python -m batchpatch ARGS` as a user would; returns the finished process."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPATCH_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "batchpatch", *map(str, args)], input=stdin,
                          capture_output=True, text=True, env=full_env, timeout=timeout)


def target_args(sandbox: SandboxProcess) -> list[str]:
    return ["--base-url", sandbox.url, "--org", "demo", "--rate", "0", "--concurrency", "8"]
