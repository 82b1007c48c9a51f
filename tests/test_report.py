"""`batchpatch report`: the HTML page read in a real headless browser (Chromium from Debian's
packages, driven by selenium and Debian's chromedriver; skipped where they are missing), the
Markdown tables, where the summary is found, the input rows shown for errors, bad inputs as
one-line usage errors, and memory that stays bounded for long runs."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import make_profiles, read_results, run_cli, target_args, write_csv

from batchpatch.report import build_report, render
from batchpatch.report_timeline import TimeSlots
from batchpatch.secret import Secret

CHROMIUM = Path("/usr/bin/chromium")
CHROME_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync")
CHARTS = ("throughput", "statuses", "retries", "latency")


@dataclass(frozen=True)
class Run:
    """A real run against the sandbox with injected 429s and 5xx, some rows failing."""

    input: Path
    results: Path
    summary: dict[str, Any]
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def faulty_run(sandbox_process, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    sandbox_process.reset(make_profiles(50), fault_429=0.1, fault_5xx=0.1, retry_after="0",
                          seed=11)
    work = tmp_path_factory.mktemp("faulty")
    rows = [[f"@p{i:05d}", f"+44{i:07d}", "Nice"] for i in range(45)]
    rows += [["@gone1", "+441", "Lyon"], ["@gone2", "+442", ""], ["", "+443", "Nice"]]
    fixes = write_csv(work / "fixes.csv", ["PKey", "phone", "location.city"], rows)
    args = target_args(sandbox_process)
    args[args.index("--rate") + 1] = "150"
    args[args.index("--concurrency") + 1] = "4"
    proc = run_cli("run", fixes, *args)
    sandbox_process.reset(make_profiles(50))
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((work / "fixes.summary.json").read_text())
    assert summary["retries"] > 0 and summary["rate_limited"] > 0  # the faults were met
    yield Run(fixes, work / "fixes.results.jsonl", summary,
              read_results(work / "fixes.results.jsonl"))


def report(results: Path, out: Path, *extra: str | Path) -> str:
    made = run_cli("report", results, "-o", out, *extra)
    assert made.returncode == 0, made.stderr
    return out.read_text(encoding="utf-8")


def expected_headline(summary: dict[str, Any]) -> str:
    """The verdict's first words, from the summary alone."""
    if summary["aborted"]:
        return f"Aborted: {summary['aborted']}."
    failed = summary["failed"]
    if failed:
        return f"{failed} row{'s' if failed != 1 else ''} failed."
    return f"All good: {summary['rows']} rows succeeded."


# -- in a browser ---------------------------------------------------------------------------

@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Headless Chromium through Debian's chromedriver; never downloads a browser or driver."""
    driver_path = shutil.which("chromedriver")
    if not CHROMIUM.exists() or driver_path is None:
        pytest.skip("no Chromium here (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver")
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager, if it ever ran: no downloads
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*CHROME_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}",
                 "--window-size=1200,900"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


_CHART_PROBE = """
const svg = document.querySelector('#chart-' + arguments[0] + ' svg');
if (!svg) return null;
const drawn = [...svg.querySelectorAll('path[clip-path]')].filter(p => {
    const box = p.getBBox(); return box.width > 0 && box.height > 0; }).length;
const ticks = axis => [...svg.querySelectorAll('[id*="' + axis + 'tick"] text')]
    .map(t => t.textContent.trim()).filter(t => t.length > 0);
const box = svg.getBoundingClientRect();
return {drawn: drawn, xticks: ticks('x'), yticks: ticks('y'), text: svg.textContent,
        width: box.width, height: box.height};
"""


def test_html_report_reads_in_a_real_browser(faulty_run: Run, browser: Any,
                                             tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    report(faulty_run.results, page)
    browser.get(page.as_uri())
    assert browser.execute_script("return document.readyState") == "complete"
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    assert errors == []
    # nothing was fetched: no network, no other file
    assert browser.execute_script("return performance.getEntriesByType('resource').length") == 0
    summary = faulty_run.summary
    verdict = browser.find_element("id", "verdict").text
    assert verdict.startswith(expected_headline(summary))
    assert f"{summary['rows'] - summary['failed']} of {summary['rows']} rows succeeded" in verdict
    assert f"Exit status {summary['exit_code']}" in verdict
    for name in CHARTS:
        chart = browser.execute_script(_CHART_PROBE, name)
        assert chart is not None, f"no {name} chart"
        assert chart["width"] > 300 and chart["height"] > 100, name
        assert chart["drawn"] > 0, f"{name}: nothing drawn"
        assert len(chart["xticks"]) >= 3 and len(chart["yticks"]) >= 3, name
        if name == "latency":
            assert "elapsed per row, ms" in chart["text"]
        else:
            assert "seconds since the run's start" in chart["text"]
    throughput = browser.execute_script(_CHART_PROBE, "throughput")["text"]
    assert "--rate ceiling: 150 requests/s" in throughput and "rows/s" in throughput
    statuses = browser.execute_script(_CHART_PROBE, "statuses")["text"]
    assert "updated" in statuses and "not_found" in statuses and "invalid" in statuses
    run_table = browser.find_element("id", "run").text
    for shown in ("150 requests/s", str(faulty_run.input), "started at", "duration"):
        assert shown in run_table


def test_html_is_self_contained(faulty_run: Run, tmp_path: Path) -> None:
    html = report(faulty_run.results, tmp_path / "report.html")
    assert "<script" not in html
    assert not re.search(r"""\b(?:src|href)\s*=\s*["']?(?:https?:|//)""", html)
    assert html.count("<svg") == len(CHARTS) and html.count("Matplotlib v") == len(CHARTS)
    ids = re.findall(r'\bid="([^"]+)"', html)
    assert len(ids) == len(set(ids))  # several SVGs in one page: ids stay unique
    assert f"<td>{faulty_run.summary['counts']['updated']}</td>" in html


# -- Markdown -------------------------------------------------------------------------------

def test_markdown_has_the_tables_and_no_charts(faulty_run: Run, tmp_path: Path) -> None:
    md = report(faulty_run.results, tmp_path / "report.md")
    summary = faulty_run.summary
    assert "<svg" not in md
    assert f"**{expected_headline(summary)}**" in md
    assert "| rate | 150 requests/s (--rate) |" in md and "| concurrency | 4 |" in md
    assert f"| input | {faulty_run.input} |" in md
    for status, n in summary["counts"].items():
        assert (f"| {status} | {n} |" in md) == bool(n)
    # the errors, their example rows, and those rows' cells read again from the input
    assert "| not_found | 0 | HTTP 404" in md
    assert "| invalid | 0 | empty key column 'PKey'" in md
    assert "phone = +441; location.city = Lyon" in md
    assert "phone = +442; location.city = (empty)" in md
    assert f"Cells from the input {faulty_run.input}, read again now." in md
    assert re.search(r'\| phone \| 45 \| "0(\d{9})" → "\+44\d{7}"', md)
    assert '| location.city | 45 | "Paris" → "Nice" |' in md
    measured = sum(1 for r in faulty_run.records if r["attempts"] > 0)
    assert re.search(rf"\| [\d.]+ \| [\d.]+ \| [\d.]+ \| [\d.]+ \| {measured} \|", md)
    assert "No outage." in md


def test_summary_is_found_beside_the_results_or_named(faulty_run: Run, tmp_path: Path) -> None:
    assert faulty_run.results.name == "fixes.results.jsonl"  # beside it: fixes.summary.json
    assert "| rate | 150 requests/s (--rate) |" in report(faulty_run.results, tmp_path / "0.md")
    renamed = tmp_path / "night.jsonl"
    shutil.copy(faulty_run.results, renamed)
    md = report(renamed, tmp_path / "a.md")
    assert "The run's settings are unknown" in md and "give --summary PATH" in md
    assert "From the records alone" in md
    assert f"| updated | {faulty_run.summary['counts']['updated']} |" in md
    named = report(renamed, tmp_path / "b.md", "--summary",
                   faulty_run.results.with_name("fixes.summary.json"))
    assert "| rate | 150 requests/s (--rate) |" in named
    assert "From the records alone" not in named


def test_example_cells_say_when_the_input_is_gone(faulty_run: Run, tmp_path: Path) -> None:
    results = tmp_path / "copy.results.jsonl"
    shutil.copy(faulty_run.results, results)
    manifest = json.loads(Path(str(faulty_run.results) + ".manifest.json").read_text())
    manifest["input"]["path"] = str(tmp_path / "moved-away.csv")
    Path(str(results) + ".manifest.json").write_text(json.dumps(manifest))
    md = report(results, tmp_path / "r.md")
    assert "the input" in md and "moved-away.csv named in the manifest is no longer there" in md
    assert "phone = +441" not in md
    Path(str(results) + ".manifest.json").unlink()
    assert "no manifest beside the results" in report(results, tmp_path / "r.md")


@pytest.mark.parametrize("case", ["missing", "directory", "not results", "summary not json",
                                  "summary not an object", "summary missing keys",
                                  "named summary missing"])
def test_bad_inputs_are_one_line_usage_errors(faulty_run: Run, tmp_path: Path,
                                              case: str) -> None:
    results, extra = faulty_run.results, list[str | Path]()
    summary = tmp_path / "s.json"
    if case == "missing":
        results = tmp_path / "none.results.jsonl"
    elif case == "directory":
        results = tmp_path
    elif case == "not results":
        results = faulty_run.input
    elif case == "named summary missing":
        extra = ["--summary", tmp_path / "absent.json"]
    else:
        summary.write_text({"summary not json": '{"rows": 3,', "summary not an object": "[1]",
                            "summary missing keys": '{"rows": 3}'}[case])
        extra = ["--summary", summary]
    made = run_cli("report", results, "-o", tmp_path / "r.html", *extra)
    assert made.returncode == 2
    lines = made.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("batchpatch: error: "), made.stderr
    assert not (tmp_path / "r.html").exists()


# -- how runs end ---------------------------------------------------------------------------

def test_an_aborted_run_says_why(sandbox, tmp_path: Path) -> None:
    rows = [[f"@missing{i}", "1"] for i in range(10)] + [[f"@p{i:05d}", "2"] for i in range(10)]
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], rows)
    assert run_cli("run", fixes, *target_args(sandbox), "--canary", "10").returncode == 3
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    md = report(tmp_path / "f.results.jsonl", tmp_path / "r.md")
    assert f"**Aborted: {summary['aborted']}.**" in md
    assert "run the same command with --resume to finish" in md
    assert "Exit status 3." in md


def test_rows_tried_again_from_an_earlier_run_are_counted(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"+44{i}"] for i in range(6)])
    sandbox.configure(fault_5xx=1.0, retry_after="0")
    first = run_cli("run", fixes, *target_args(sandbox), "--retries", "0")
    assert first.returncode in (1, 3), first.stderr
    sandbox.configure(fault_5xx=0.0)
    assert run_cli("run", fixes, *target_args(sandbox), "--resume").returncode == 0
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    again = summary["retried_from_earlier"]
    assert again > 0
    md = report(tmp_path / "f.results.jsonl", tmp_path / "r.md")
    assert f"{again} row{'s' if again != 1 else ''} re-tried from an earlier run" in md
    assert f"**All good: {summary['rows']} rows succeeded.**" in md


def test_outages_and_an_interruption_from_the_summary(faulty_run: Run, tmp_path: Path) -> None:
    summary = dict(faulty_run.summary, interrupted="SIGTERM", exit_code=143,
                   rows_without_record=7)
    start = summary["started_at"]
    summary["outages"] = [{"start": start + 0.2, "seconds": 1.5, "probes": 4}]
    named = tmp_path / "s.json"
    named.write_text(json.dumps(summary))
    md = report(faulty_run.results, tmp_path / "r.md", "--summary", named)
    assert "**Interrupted by SIGTERM.**" in md and "7 rows of the input have no record yet" in md
    assert "| 0.2 | 1.5 | 4 |" in md
    html = report(faulty_run.results, tmp_path / "r.html", "--summary", named)
    assert 'class="verdict interrupted"' in html
    throughput = html[html.index('id="chart-throughput"'):html.index('id="chart-retries"')]
    assert ">outage<" in throughput  # the outage shaded, with its legend


def test_a_run_still_writing_is_reported_so_far_and_left_alone(faulty_run: Run,
                                                               tmp_path: Path) -> None:
    """A live run holds `<results>.lock`: the report says so, reads the whole lines only, and
    does not repair the half-written last one (the run is still writing it)."""
    results = tmp_path / "live.results.jsonl"
    lines = faulty_run.results.read_bytes().splitlines(keepends=True)
    results.write_bytes(b"".join(lines[:10]) + lines[10][:25])
    Path(str(results) + ".lock").write_text(f"{os.getpid()}\n")  # this test: a live process
    before = results.read_bytes()
    md = report(results, tmp_path / "r.md")
    assert "**Still running.**" in md and "10 rows recorded so far" in md
    assert results.read_bytes() == before
    Path(str(results) + ".lock").unlink()  # the run is gone: its torn tail is repaired
    assert "**Still running.**" not in report(results, tmp_path / "r.md")
    assert results.read_bytes() == b"".join(lines[:10])


# -- the numbers ----------------------------------------------------------------------------

def test_each_row_counts_once_by_its_last_record(tmp_path: Path) -> None:
    """After an interrupted resume a row can have two records: the last one is its outcome."""
    def record(row: int, status: str, **extra: Any) -> dict[str, Any]:
        return {"row": row, "pkey": f"@k{row}", "status": status, "changed": None,
                "attempts": 1, "error": None, "elapsed_ms": 10.0, "retries": 0,
                "rate_limited": 0, "ts": 1_700_000_000.0 + row, **extra}

    lines = [record(2, "failed", error="HTTP 503 (gave up)", retryable=True),
             record(3, "updated", changed={"phone": ["1", "2"]}),
             record(2, "updated", changed={"phone": ["3", "4"]})]
    results = tmp_path / "x.results.jsonl"
    results.write_text("".join(json.dumps(r) + "\n" for r in lines))
    md = render(build_report(results), tmp_path / "r.md")
    assert "| updated | 2 |" in md and "| failed |" not in md
    assert "1 record replaced by a later record of the same row" in md
    assert "| phone | 2 |" in md


def test_time_buckets_stay_bounded_for_a_long_run() -> None:
    """Rows over a night, a burst of them at the start: a bounded number of time slots, about
    a hundred buckets, and every row and request counted once."""
    slots = TimeSlots()
    start = 1_700_000_000.0
    for i in range(5_000):  # 5,000 rows in the first second
        slots.add(start + i * 0.0002, 0, 3, 1, 0)
    for i in range(20_000):  # then one every 1.5 s, for 8 hours
        slots.add(start + 1 + i * 1.5, 1, 1, 0, 1)
        assert len(slots.slots) <= TimeSlots.LIMIT
    timeline = slots.timeline(start, 25_000)
    assert timeline is not None and 60 <= len(timeline.rows) <= 100
    assert sum(timeline.rows) == 25_000 and sum(timeline.requests) == 5_000 * 3 + 20_000
    assert sum(timeline.statuses["updated"]) == 5_000 and timeline.rows[0] >= 5_000
    assert sum(timeline.rate_limited) == 20_000 and timeline.span >= 30_000


def test_text_from_files_is_redacted(tmp_path: Path) -> None:
    token = Secret("s3cr3t-T0KEN-value")
    record = {"row": 2, "pkey": "@a", "status": "failed", "changed": None, "attempts": 1,
              "error": f"HTTP 400: bad header {token.value}", "elapsed_ms": 5.0, "retries": 0,
              "rate_limited": 0, "ts": 1_700_000_000.0, "retryable": False}
    results = tmp_path / "x.results.jsonl"
    results.write_text(json.dumps(record) + "\n")
    fixes = write_csv(tmp_path / "x.csv", ["PKey", "phone"], [["@a", token.value]])
    Path(str(results) + ".manifest.json").write_text(json.dumps(
        {"input": {"path": str(fixes)}, "format": "csv", "key_column": "PKey"}))
    for name in ("r.md", "r.html"):
        text = render(build_report(results), tmp_path / name)
        assert "phone = ***" in text and "bad header ***" in text
        assert token.value not in text


def test_report_of_a_big_file_keeps_to_bounded_memory(tmp_path: Path) -> None:
    """200,000 rows: the report process stays far below what holding them would take (about
    80 MiB here for any length, against 200 MiB for the parsed records alone, 600 MiB with
    pandas)."""
    results = tmp_path / "big.results.jsonl"
    with open(results, "w") as fh:
        for i in range(200_000):
            fh.write(json.dumps({"row": i + 2, "pkey": f"@p{i}", "status": "updated",
                                 "changed": {"phone": [str(i), str(i + 1)]}, "attempts": 3,
                                 "error": None, "elapsed_ms": 20.0 + i % 50, "retries": 0,
                                 "rate_limited": 0, "ts": 1_700_000_000.0 + i / 100}) + "\n")
    # VmHWM, the peak of this process's own memory: getrusage's ru_maxrss would also carry the
    # pages of the (large) pytest process forked before exec.
    script = ("import re, sys; from pathlib import Path; "
              "from batchpatch.report import build_report, render; "
              "r = build_report(Path(sys.argv[1])); render(r, Path('r.html')); "
              "hwm = re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()); "
              "print(len(r.records.timeline.rows), hwm.group(1))")
    done = subprocess.run([sys.executable, "-c", script, str(results)], capture_output=True,
                          text=True, check=True)
    buckets, peak_kib = map(int, done.stdout.split())
    assert 60 <= buckets <= 100
    assert peak_kib < 180 * 1024
