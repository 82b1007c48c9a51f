"""Outputs on a disk that is full, or that are not files at all, end to end with the real
command: a small tmpfs (mounted for the test; skipped where mounting is not allowed) holding the
results, the failures file or the summary, and device paths given as outputs. What a user sees:
one line naming the file that failed, the exit code, a summary that agrees with the records,
and nothing on the machine replaced."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv

from batchpatch.sandbox.process import SandboxProcess


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 256 KiB tmpfs, unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk: Path, leave: int = 0) -> None:
    """Fill the disk, leaving about `leave` bytes."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while os.write(fd, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(fd)
    if leave:
        size = (disk / "filler").stat().st_size
        os.truncate(disk / "filler", max(0, size - leave))


def fixes_of(tmp_path: Path, n: int, missing: int = 0) -> Path:
    rows = [[f"@gone{i}", "1"] for i in range(missing)]
    rows += [[f"@p{i:05d}", f"+4{i:08d}"] for i in range(n)]
    return write_csv(tmp_path / "fixes.csv", ["PKey", "phone"], rows)


def test_results_on_a_full_disk_at_start_exit_2_one_line_nothing_sent(
        sandbox: SandboxProcess, tmp_path: Path, small_disk: Path) -> None:
    fill(small_disk)
    fixes = fixes_of(tmp_path, 5)
    proc = run_cli("run", fixes, *target_args(sandbox), "--results",
                   small_disk / "r.results.jsonl")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "No space left on device" in lines[0], proc.stderr
    assert sandbox.stats()["counts"] == {}
    assert not (small_disk / "r.results.jsonl.lock").exists()


def test_a_failures_file_that_fills_the_disk_is_named_and_not_announced_as_ready(
        sandbox_process: SandboxProcess, tmp_path: Path, small_disk: Path) -> None:
    sandbox_process.reset(make_profiles(20))
    fixes = fixes_of(tmp_path, 20, missing=3000)  # 3,000 rows for the failures file
    fill(small_disk, leave=8192)
    failures = small_disk / "f.failures.csv"
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--schema", "none",
                   "--rate", "0", "--failures", failures)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"{failures}: cannot write the failed rows" in proc.stderr
    assert "cannot write the results" not in proc.stderr
    assert "ready to re-run" not in proc.stderr
    assert failures.read_bytes().endswith(b"\n")  # a row the disk refused is cut back
    assert all(line.count(",") == 1 and line.endswith(",1")
               for line in failures.read_text().splitlines()[1:])
    (small_disk / "filler").unlink()
    again = run_cli("run", fixes, *target_args(sandbox_process), "--schema", "none",
                    "--rate", "0", "--failures", failures, "--resume")
    assert again.returncode == 1, again.stderr  # the 3,000 missing keys are not_found
    listed = failures.read_text().splitlines()
    assert listed[0] == "PKey,phone" and len(listed) == 1 + 3000


def test_a_summary_that_cannot_be_written_is_not_a_success(
        sandbox_process: SandboxProcess, tmp_path: Path, small_disk: Path) -> None:
    sandbox_process.reset(make_profiles(5))
    fixes = fixes_of(tmp_path, 5)
    fill(small_disk)
    summary = small_disk / "s.json"
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--schema", "none",
                   "--summary", summary)
    assert proc.returncode == 3, proc.stderr
    assert "cannot write the summary" in proc.stderr
    assert f"summary: {summary}  exit" not in proc.stderr
    assert not summary.exists()
    assert len(read_results(tmp_path / "fixes.results.jsonl")) == 5


def test_the_summary_counts_only_records_on_disk(sandbox_process: SandboxProcess,
                                                 tmp_path: Path) -> None:
    """A results file over RLIMIT_FSIZE part-way: the summary agrees with what was written."""
    import resource

    n = 600
    sandbox_process.reset(make_profiles(n))
    fixes = fixes_of(tmp_path, n)
    limit = 40_000

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "batchpatch", "run", str(fixes), *target_args(sandbox_process),
            "--concurrency", "16", "--schema", "none"]
    proc = subprocess.run(args, capture_output=True, text=True, preexec_fn=limited, timeout=120)
    assert proc.returncode == 3, proc.stderr
    written = read_results(tmp_path / "fixes.results.jsonl")
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert 0 < len(written) < n
    assert summary["rows"] == len(written) == sum(summary["counts"].values())
    assert summary["rows_without_record"] == n - len(written)
    assert len(by_row(written)) == len(written)


@pytest.mark.parametrize("flag", ["--summary", "--failures", "--results", "--metrics-file"])
def test_a_device_given_as_an_output_is_refused_and_left_as_it_is(
        sandbox: SandboxProcess, tmp_path: Path, flag: str) -> None:
    if not Path("/dev/full").is_char_device():
        pytest.skip("no /dev/full character device here")
    before = os.stat("/dev/full")
    proc = run_cli("run", fixes_of(tmp_path, 2), *target_args(sandbox), flag, "/dev/full")
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr
    after = os.stat("/dev/full")
    assert (after.st_mode, after.st_rdev, after.st_ino) == (before.st_mode, before.st_rdev,
                                                            before.st_ino)
    assert sandbox.stats()["counts"] == {}
