"""The metrics file: Prometheus text format that parses, every count equal to the run's summary,
the exit code only once known, and a file that cannot be written never stops the run."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from conftest import write_csv
from prometheus_client.parser import text_string_to_metric_families

from batchpatch.config import load_settings
from batchpatch.counters import Counters
from batchpatch.metrics import MetricsFile
from batchpatch.model import Status
from batchpatch.runner import execute


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} of a metrics file."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted({"job": "nightly", **labels}.items())))]


def test_counts_exit_code_and_job_label(tmp_path: Path) -> None:
    counters = Counters(retries=3, rate_limited=2)
    counters.statuses.update({Status.UPDATED: 5, Status.NOT_FOUND: 1})
    counters.request("GET", "200")
    counters.request("GET", "200")
    counters.request("PATCH", "429")
    counters.request("GET", "timeout")
    path = tmp_path / "batchpatch.prom"
    metrics = MetricsFile(path, "nightly", clock=lambda: 1_750_000_000.5)

    assert metrics.write(counters, 12.25)
    during = samples(path)
    assert not any(name == "batchpatch_last_run_exit_code" for name, _ in during)
    assert value(during, "batchpatch_rows_total", status="updated") == 5
    assert value(during, "batchpatch_rows_total", status="conflict") == 0
    assert value(during, "batchpatch_requests_total", method="GET", code="200") == 2
    assert value(during, "batchpatch_requests_total", method="PATCH", code="429") == 1
    assert value(during, "batchpatch_requests_total", method="GET", code="timeout") == 1
    assert value(during, "batchpatch_retries_total") == 3
    assert value(during, "batchpatch_rate_limited_total") == 2
    assert value(during, "batchpatch_run_duration_seconds") == 12.25
    assert value(during, "batchpatch_last_run_timestamp_seconds") == 1_750_000_000.5
    assert all(dict(labels)["job"] == "nightly" for _, labels in during)

    counters.statuses[Status.UPDATED] += 1
    assert metrics.write(counters, 13.0, exit_code=1)
    after = samples(path)
    assert value(after, "batchpatch_last_run_exit_code") == 1
    assert value(after, "batchpatch_rows_total", status="updated") == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["batchpatch.prom"]  # no temp left


def test_an_unwritable_file_is_logged_once_and_never_raises(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    metrics = MetricsFile(tmp_path / "missing-dir" / "m.prom", "nightly")
    with caplog.at_level(logging.WARNING, logger="batchpatch"):
        assert metrics.write(Counters(), 1.0) is False
        assert metrics.write(Counters(), 2.0, exit_code=0) is False
    warnings = [r for r in caplog.records if "metrics file" in r.getMessage()]
    assert len(warnings) == 1 and "No such file or directory" in warnings[0].getMessage()


async def test_a_real_runs_counts_equal_its_summary(sandbox, tmp_path: Path) -> None:
    sandbox.configure(fault_429=0.2, fault_5xx=0.1, retry_after="0", seed=7)
    rows = [[f"@p{i:05d}", f"+44{i:07d}"] for i in range(30)] + [["@nobody", "1"]]
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"], rows)
    settings = load_settings({"input": str(fixes), "base_url": sandbox.url, "org": "demo",
                              "rate": 0, "concurrency": 4, "progress": "off",
                              "retries": 6})
    engines: list[Any] = []
    summary = await execute(settings, on_engine=engines.append)
    counters: Counters = engines[0]._counters  # the run's own Counters object
    path = tmp_path / "run.prom"
    MetricsFile(path, "fixes").write(counters, summary["elapsed_s"], summary["exit_code"])
    found = samples(path)

    def get(name: str, **labels: str) -> float:
        return found[(name, tuple(sorted({"job": "fixes", **labels}.items())))]

    assert summary["rate_limited"] > 0 and summary["retries"] > 0  # the faults did happen
    for status, count in summary["counts"].items():
        assert get("batchpatch_rows_total", status=status) == count
    for method, codes in summary["requests"].items():
        for code, count in codes.items():
            assert get("batchpatch_requests_total", method=method, code=code) == count
    requests = sum(v for (name, _), v in found.items() if name == "batchpatch_requests_total")
    assert requests == summary["requests_total"]
    assert get("batchpatch_retries_total") == summary["retries"]
    assert get("batchpatch_rate_limited_total") == summary["rate_limited"]
    assert get("batchpatch_last_run_exit_code") == summary["exit_code"] == 1


def test_a_run_writes_metrics_that_equal_its_summary(sandbox, tmp_path: Path) -> None:
    import json

    from conftest import run_cli, target_args, write_csv
    from prometheus_client.parser import text_string_to_metric_families

    sandbox.configure(fault_429=0.1, retry_after="0", seed=5)
    fixes = write_csv(tmp_path / "night.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"+7{i}"] for i in range(30)] + [["@nobody", "1"]])
    metrics = tmp_path / "textfile" / "batchpatch.prom"
    proc = run_cli("run", fixes, *target_args(sandbox), "--metrics-file", metrics,
                   "--progress-every", "0.2")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((tmp_path / "night.summary.json").read_text())
    families = {f.name: f for f in text_string_to_metric_families(metrics.read_text())}
    rows = {s.labels["status"]: s.value for s in families["batchpatch_rows"].samples
            if s.name == "batchpatch_rows_total"}
    assert {k: v for k, v in rows.items() if v} == {
        k: float(v) for k, v in summary["counts"].items() if v}
    requests = {(s.labels["method"], s.labels["code"]): s.value
                for s in families["batchpatch_requests"].samples
                if s.name == "batchpatch_requests_total"}
    assert requests == {(m, c): float(n) for m, codes in summary["requests"].items()
                        for c, n in codes.items()}
    (code,) = families["batchpatch_last_run_exit_code"].samples
    assert code.value == 1 and code.labels["job"] == "night"
    (limited,) = [s for s in families["batchpatch_rate_limited"].samples
                  if s.name == "batchpatch_rate_limited_total"]
    assert limited.value == summary["rate_limited"]
    assert not list(metrics.parent.glob("*.tmp*"))  # written atomically
