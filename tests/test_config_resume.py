"""config.py (precedence, validation) and resume.py (torn tails, prior results, manifest)."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchpatch.config import load_settings
from batchpatch.errors import UsageError
from batchpatch.model import Status
from batchpatch.resume import Manifest, PriorResults, RunLock, repair_tail

BASE = {"input": "fixes.csv", "base_url": "https://mc.adobe.io", "org": "acme"}


def test_precedence_flags_env_file_defaults(tmp_path: Path) -> None:
    config = tmp_path / "c.toml"
    config.write_text("rate = 3\nconcurrency = 4\nretries = 1\n")
    settings = load_settings({**BASE, "rate": 7.0}, env={"BATCHPATCH_CONCURRENCY": "5"},
                             config=str(config))
    pacing = settings.pacing
    assert (pacing.rate.rate, pacing.concurrency, pacing.retry.retries,
            pacing.timeouts.request) == (7.0, 5, 1, 30.0)
    assert settings.sources == {"rate": "flag", "concurrency": "env", "retries": "file",
                                "input": "flag", "base_url": "flag", "org": "flag"}


@pytest.mark.parametrize(("options", "env", "message"), [
    ({"rate": -1.0}, {}, "--rate"),
    ({}, {"BATCHPATCH_RETRIES": "many"}, "BATCHPATCH_RETRIES = 'many' is not a whole number"),
    ({"url_template": "https://x/{pkey}"}, {}, "not both"),
    ({"client_id": "abc"}, {}, "needs --client-secret"),
    ({"base_url": "ftp://x"}, {}, "must start with http"),
    ({"format": "xml"}, {}, "--format = .xml.: choose csv, jsonl"),
])
def test_bad_settings_are_usage_errors(options: dict, env: dict, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_settings({**BASE, **options}, env=env)


def test_secret_values_never_appear_in_errors() -> None:
    with pytest.raises(UsageError) as info:
        load_settings({**BASE}, env={"BATCHPATCH_CLIENT_SECRET": "sup3r-secret"})
    assert "sup3r-secret" not in str(info.value)
    settings = load_settings({**BASE, "client_id": "id"},
                             env={"BATCHPATCH_CLIENT_SECRET": "sup3r-secret"})
    assert "sup3r-secret" not in repr(settings) and settings.shown()["client_secret"] == "***"


def test_default_output_paths_sit_beside_the_input(tmp_path: Path) -> None:
    settings = load_settings({**BASE, "input": str(tmp_path / "night.jsonl.gz")})
    assert settings.outputs is not None
    results, failures, summary = (settings.outputs.results, settings.outputs.failures,
                                  settings.outputs.summary)
    assert results == tmp_path / "night.results.jsonl"
    assert failures == tmp_path / "night.failures.jsonl"
    assert summary == tmp_path / "night.summary.json"


def test_repair_tail_drops_only_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_bytes(b'{"row": 2}\n{"row": 3}\n{"row": 4, "sta')
    assert repair_tail(path) == len(b'{"row": 4, "sta')
    assert path.read_bytes() == b'{"row": 2}\n{"row": 3}\n'
    assert repair_tail(path) == 0


def test_prior_results_load_and_reject_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    path.write_text('{"row": 2, "status": "updated"}\n{"row": 900000, "status": "failed"}\n'
                    '{"row": 5, "sta')
    prior = PriorResults.load(path)
    assert prior.get(2) is Status.UPDATED and prior.get(900000) is Status.FAILED
    assert prior.get(3) is None and prior.count == 2
    path.write_text("not json\n")
    with pytest.raises(UsageError, match="line 1"):
        PriorResults.load(path)


def test_manifest_refuses_a_different_target(tmp_path: Path) -> None:
    manifest = Manifest(tmp_path / "r.jsonl")
    content = {"input": {"path": "f", "size": 1, "sha256": "a"}, "target": "https://a/{pkey}"}
    manifest.write(content)
    manifest.check(content)
    with pytest.raises(UsageError, match="target"):
        manifest.check({**content, "target": "https://b/{pkey}"})


def test_lock_is_exclusive_and_released(tmp_path: Path) -> None:
    results = tmp_path / "r.jsonl"
    with RunLock(results), pytest.raises(UsageError, match="holds the lock"), RunLock(results):
        pass
    with RunLock(results):
        pass


def test_prior_results_read_fast_agree_with_records_read_whole(tmp_path: Path) -> None:
    import orjson
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from batchpatch.model import Outcome
    from batchpatch.resume import read_records

    keys = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12) | st.just(
        'a","status":"updated') | st.none()

    @settings(max_examples=60, deadline=None, derandomize=True)
    @given(st.lists(st.tuples(st.integers(2, 5000), keys, st.sampled_from(list(Status)),
                              st.booleans()), min_size=1, max_size=40))
    def check(records: list) -> None:
        path = tmp_path / "r.jsonl"
        with open(path, "wb") as fh:
            for row, pkey, status, retryable in records:
                record = Outcome(row, pkey, status, retryable=retryable).record()
                if status.is_failure:
                    record["retryable"] = retryable
                fh.write(orjson.dumps(record) + b"\n")
        prior = PriorResults.load(path)
        expected: dict[int, tuple[Status, bool]] = {}
        for record in read_records(path):
            status = Status(record["status"])
            expected[record["row"]] = (status, status.is_failure and record.get("retryable"))
        assert prior.count == len(expected)
        for row, (status, retryable) in expected.items():
            assert (prior.status(row), prior.retryable(row)) == (status, bool(retryable))

    check()
