"""A run refused with exit 2 (the preflight, a missing input, the lock held, --fields) is
reported like any other end: the metrics file says exit code 2 (with the job label, the
timestamp, no rows) and --notify gets the summary with the error, exit_code 2 and a one-line
`text`; a few attempts, the exit status unchanged, no traceback, no secret. A bad option
(here a --metrics-file that is a directory) is still refused as before, reported nowhere.
Run with the real `batchpatch` command against the sandbox and a webhook on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import run_cli, target_args, write_csv
from prometheus_client.parser import text_string_to_metric_families
from webhook import Receiver, serve

from batchpatch.notify import notify_text
from batchpatch.resume import RunLock
from batchpatch.sandbox.process import SandboxProcess

TOKEN = "tok-D3fect-9b1e77"
API_KEY = "key-D3fect-52ac"
HOOK_SECRET = "hooksig-D3fect-0c4f1d"
CREDENTIALS = {"BATCHPATCH_TOKEN": TOKEN, "BATCHPATCH_API_KEY": API_KEY}


class Hook:
    """The webhook's POST bodies, and each request's headers and body as text (not its URL,
    which holds the webhook's own secret)."""

    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.url = receiver.url

    @property
    def bodies(self) -> list[dict[str, Any]]:
        return self.receiver.bodies()

    @property
    def raw(self) -> list[str]:
        return [str(r["headers"]) + "\n" + r["body"] for r in self.receiver.received]

    @property
    def status(self) -> int:
        return self.receiver.status

    @status.setter
    def status(self, value: int) -> None:
        self.receiver.status = value


@pytest.fixture
def hook() -> Iterator[Hook]:
    with serve(f"/hooks/nightly?sig={HOOK_SECRET}") as receiver:
        yield Hook(receiver)


def metrics_of(path: Path) -> dict[str, tuple[dict[str, str], float]]:
    """{sample name: (labels, value)} of the series that carry only the job label."""
    found = {}
    for family in text_string_to_metric_families(path.read_text()):
        for sample in family.samples:
            if set(sample.labels) == {"job"}:
                found[sample.name] = (sample.labels, sample.value)
    return found


def rows_total(path: Path) -> float:
    return sum(s.value for family in text_string_to_metric_families(path.read_text())
               for s in family.samples if s.name == "batchpatch_rows_total")


def refused(proc: subprocess.CompletedProcess[str], words: str) -> None:
    """Exit 2 with the one error line on stderr, as before the fix; no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchpatch: error: "), proc.stderr
    assert words in lines[0], proc.stderr


def reported(metrics: Path, hook: Hook, job: str, words: str) -> dict[str, Any]:
    """The metrics file says exit 2 for `job`; the webhook got one summary saying so."""
    found = metrics_of(metrics)
    labels, code = found["batchpatch_last_run_exit_code"]
    assert code == 2 and labels == {"job": job}
    assert found["batchpatch_last_run_timestamp_seconds"][1] > 0
    assert "batchpatch_run_duration_seconds" in found
    assert rows_total(metrics) == 0
    assert not list(metrics.parent.glob("*.tmp*"))
    assert len(hook.bodies) == 1, hook.bodies
    (body,) = hook.bodies
    assert body["exit_code"] == 2 and body["rows"] == 0
    assert words in body["error"]
    text = body["text"]
    assert isinstance(text, str) and "\n" not in text
    assert "refused (exit 2)" in text and words in text
    for raw in hook.raw:
        assert TOKEN not in raw and API_KEY not in raw and HOOK_SECRET not in raw
    return body


def no_secret(*texts: str) -> None:
    for text in texts:
        assert TOKEN not in text and API_KEY not in text and HOOK_SECRET not in text


def test_a_file_the_preflight_refuses_is_reported_over_the_last_good_run(
        sandbox: SandboxProcess, hook: Hook, tmp_path: Path) -> None:
    metrics = tmp_path / "textfile" / "m.prom"
    good = write_csv(tmp_path / "good.csv", ["PKey", "phone"], [["@p00001", "+33 1"]])
    proc = run_cli("run", good, *target_args(sandbox), "--metrics-file", metrics, env=CREDENTIALS)
    assert proc.returncode == 0, proc.stderr
    assert metrics_of(metrics)["batchpatch_last_run_exit_code"][1] == 0
    before = metrics_of(metrics)["batchpatch_last_run_timestamp_seconds"][1]

    bad = write_csv(tmp_path / "bad.csv", ["PKey", "phoneNumberX"], [["@p00001", "1"]])
    proc = run_cli("run", bad, *target_args(sandbox), "--metrics-file", metrics,
                   "--notify", hook.url, env=CREDENTIALS)
    refused(proc, "the API would refuse 1 column")
    body = reported(metrics, hook, "bad", "`phoneNumberX`: no such field")
    assert body["text"].startswith(f"batchpatch {bad}: refused (exit 2): ")
    assert metrics_of(metrics)["batchpatch_last_run_timestamp_seconds"][1] > before
    assert sandbox.profiles_now()["@p00001"]["phone"] == "+33 1"  # nothing sent
    no_secret(proc.stderr, metrics.read_text())


def test_a_missing_input_is_reported(hook: Hook, tmp_path: Path) -> None:
    metrics = tmp_path / "m.prom"
    missing = tmp_path / "tonight.csv"
    proc = run_cli("run", missing, "--url-template", "http://127.0.0.1:9/p/{pkey}",
                   "--metrics-file", metrics, "--notify", hook.url, env=CREDENTIALS)
    refused(proc, "no such file")
    body = reported(metrics, hook, "tonight", "tonight.csv: no such file")
    assert body["settings"]["input"] == str(missing)


def test_a_run_refused_for_the_lock_is_reported(sandbox: SandboxProcess, hook: Hook,
                                                tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"], [["@p00001", "+33 2"]])
    metrics = tmp_path / "m.prom"
    with RunLock(tmp_path / "fixes.results.jsonl"):  # as another run on these results does
        proc = run_cli("run", fixes, *target_args(sandbox), "--metrics-file", metrics,
                       "--metrics-job", "nightly", "--notify", hook.url, env=CREDENTIALS)
    refused(proc, "holds the lock")
    reported(metrics, hook, "nightly", "holds the lock")
    assert not (tmp_path / "fixes.summary.json").exists()  # the other run's, not this one's
    assert sandbox.stats()["counts"] == {}


def test_a_file_outside_fields_is_reported(sandbox: SandboxProcess, hook: Hook,
                                           tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone", "email"],
                      [["@p00001", "1", "a@example.com"]])
    metrics = tmp_path / "m.prom"
    proc = run_cli("run", fixes, *target_args(sandbox), "--fields", "phone",
                   "--metrics-file", metrics, "--notify", hook.url, env=CREDENTIALS)
    refused(proc, "outside --fields")
    reported(metrics, hook, "fixes", "outside --fields (phone): email")


def test_a_failing_webhook_is_tried_again_and_the_exit_stays_2(hook: Hook,
                                                               tmp_path: Path) -> None:
    hook.status = 500
    proc = run_cli("run", tmp_path / "gone.csv", "--url-template", "http://127.0.0.1:9/{pkey}",
                   "--notify", hook.url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert len(hook.bodies) == 3 and all(b["exit_code"] == 2 for b in hook.bodies)
    lines = proc.stderr.strip().splitlines()
    assert "was not delivered" in lines[0] and "the run's result stands" in lines[0]
    assert lines[-1] == f"batchpatch: error: {tmp_path / 'gone.csv'}: no such file"
    no_secret(proc.stderr)


def test_a_metrics_file_that_is_a_directory_is_a_bad_option_reported_nowhere(
        hook: Hook, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"], [["@p00001", "1"]])
    proc = run_cli("run", fixes, "--url-template", "http://127.0.0.1:9/{pkey}",
                   "--metrics-file", tmp_path, "--notify", hook.url)
    refused(proc, "--metrics-file")
    assert hook.bodies == []


def test_the_text_of_a_refusal_is_one_line() -> None:
    summary = {"exit_code": 2, "rows": 0, "failed": 0, "counts": {"updated": 0},
               "error": "x.csv: the API would refuse 1 column: `a\nb`: no such field",
               "settings": {"input": "x.csv"}}
    assert notify_text(summary) == ("batchpatch x.csv: refused (exit 2): x.csv: the API would "
                                    "refuse 1 column: `a b`: no such field")
