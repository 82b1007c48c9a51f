"""`make bench`: measure batchpatch against the sandbox on loopback, side by side with a bare
aiohttp loop and a naive `requests` loop, in one run. Writes RESULTS.md and results.json here.

    python benchmarks/run.py [--quick]      (--quick: smaller sizes, for a smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from batchpatch.sandbox.process import SandboxProcess  # noqa: E402

PY = sys.executable
ORG_PATH = "/demo/campaign/profileAndServices/profile/{pkey}"


def profiles(n: int) -> list[dict[str, Any]]:
    return [{"PKey": f"@p{i:06d}", "phone": f"0{i:09d}", "email": f"u{i}@example.com",
             "cusLoyaltyPoints": i, "location": {"city": "Paris", "zipCode": "75011"}}
            for i in range(n)]


def write_fixes(path: Path, n: int, keys: int | None = None, changed: float = 1.0) -> Path:
    """n rows over `keys` distinct profiles; a share `changed` of them differ from the server."""
    keys = keys or n
    with open(path, "w") as fh:
        fh.write("PKey,phone\n")
        for i in range(n):
            k = i % keys
            phone = f"+33{k:09d}" if (i % 100) < changed * 100 else f"0{k:09d}"
            fh.write(f"@p{k:06d},{phone}\n")
    return path


def run_batchpatch(fixes: Path, sandbox: SandboxProcess, *flags: str,
                   stop_after: float | None = None) -> tuple[dict[str, Any], int]:
    """Run the real command; returns its summary and its peak RSS in kB."""
    cmd = [PY, "-m", "batchpatch", "run", str(fixes), "--base-url", sandbox.url, "--org", "demo",
           "--progress", "off", "-q", *flags]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    # The kernel keeps the peak (VmHWM) of the process itself; rusage from wait4 would also
    # count the pages of this runner, copied into the child by fork before exec.
    peak, started = 0, time.monotonic()
    while proc.poll() is None:
        peak = max(peak, _vm_hwm_kb(proc.pid))
        if stop_after is not None and time.monotonic() - started >= stop_after:
            proc.send_signal(signal.SIGTERM)  # a bounded soak, then a graceful stop
            stop_after = None
        time.sleep(0.05)
    summary_path = fixes.with_name(fixes.name.removesuffix(".csv") + ".summary.json")
    return json.loads(summary_path.read_text()), peak


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform()}


def bench_throughput(sandbox: SandboxProcess, work: Path, n: int, rounds: int) -> dict[str, Any]:
    keys = [f"@p{i:06d}" for i in range(n)]
    (work / "keys.json").write_text(json.dumps(keys))
    fixes = write_fixes(work / "tp.csv", n)
    bare, ours = [], []
    for _ in range(rounds):  # alternate, so that both see the same machine
        sandbox.reset(profiles(n))
        out = subprocess.run([PY, str(HERE / "bare_loop.py"), sandbox.url + ORG_PATH,
                              str(work / "keys.json"), "32"], capture_output=True, text=True,
                             check=True)
        bare.append(json.loads(out.stdout)["rows_per_s"])
        sandbox.reset(profiles(n))
        summary, _ = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "32")
        assert summary["counts"]["updated"] == n, summary["counts"]
        ours.append(summary["rows_per_s"])
    naive_n = min(n, 300)
    (work / "naive.json").write_text(json.dumps(keys[:naive_n]))
    sandbox.reset(profiles(naive_n))
    out = subprocess.run([PY, str(HERE / "naive_loop.py"), sandbox.url + ORG_PATH,
                          str(work / "naive.json")], capture_output=True, text=True, check=True)
    b, o = statistics.median(bare), statistics.median(ours)
    return {"rows": n, "rounds": rounds, "bare_rows_per_s": round(b, 1),
            "batchpatch_rows_per_s": round(o, 1), "ratio": round(o / b, 3),
            "naive_requests_rows_per_s": round(json.loads(out.stdout)["rows_per_s"], 1),
            "all_bare": [round(x) for x in bare], "all_batchpatch": [round(x) for x in ours]}


def bench_rate(sandbox: SandboxProcess, work: Path, n: int) -> dict[str, Any]:
    sandbox.reset(profiles(n))
    fixes = write_fixes(work / "rate.csv", n)
    summary, _ = run_batchpatch(fixes, sandbox, "--rate", "100", "--concurrency", "16")
    times = [t for t, _ in sandbox.stats(times=True)["times"]]
    achieved = (len(times) - 1) / (times[-1] - times[0])
    worst, j = 0, 0
    for i, t in enumerate(times):  # the most requests in any one-second window
        while times[j] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    return {"asked": 100, "requests": len(times), "achieved": round(achieved, 2),
            "error_pct": round(abs(achieved - 100) / 100 * 100, 2), "max_in_1s_window": worst,
            "rows_updated": summary["counts"]["updated"]}


def bench_latency(sandbox: SandboxProcess, work: Path, n: int) -> dict[str, Any]:
    sandbox.reset(profiles(n), latency_ms=50)
    fixes = write_fixes(work / "lat.csv", n)
    summary, _ = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "64")
    ideal = 64 / (3 * 0.050)
    return {"latency_ms": 50, "concurrency": 64, "rows_per_s": summary["rows_per_s"],
            "ideal_rows_per_s": round(ideal, 1),
            "share_of_ideal": round(summary["rows_per_s"] / ideal, 3)}


def bench_requests_per_row(sandbox: SandboxProcess, work: Path, n: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for flags in ((), ("--no-verify",)):
        sandbox.reset(profiles(n))
        fixes = write_fixes(work / "half.csv", n, changed=0.5)
        summary, _ = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "16", *flags)
        out["no_verify" if flags else "verify"] = {
            "requests_per_row": summary["requests_per_row"], "expected": 1.5 if flags else 2.0,
            "updated": summary["counts"]["updated"], "unchanged": summary["counts"]["unchanged"]}
    return out


def bench_memory(sandbox: SandboxProcess, work: Path, big: int, small: int, large: int,
                 soak: float) -> dict[str, Any]:
    distinct = 5000
    sandbox.reset(profiles(distinct), latency_ms=50)
    streamed = write_fixes(work / "big.csv", big, keys=distinct, changed=0.0)
    summary, rss_big = run_batchpatch(streamed, sandbox, "--rate", "0", "--concurrency", "16",
                                      stop_after=soak)
    out: dict[str, Any] = {
        "streaming": {"rows_in_file": big, "file_mb": round(streamed.stat().st_size / 2**20, 1),
                      "soak_s": soak, "rows_done": summary["rows"],
                      "rows_read": summary["rows"] + summary["unfinished"],
                      "peak_rss_mb": round(rss_big / 1024, 1)}}
    streamed.unlink()
    sandbox.reset(profiles(distinct))
    for label, n in (("small", small), ("large", large)):
        fixes = write_fixes(work / f"{label}.csv", n, keys=distinct, changed=0.0)
        summary, rss = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "32")
        assert summary["rows"] == n, summary
        out[label] = {"rows": n, "rows_per_s": summary["rows_per_s"],
                      "peak_rss_mb": round(rss / 1024, 1)}
        fixes.unlink()
    out["large_minus_small_mb"] = round(out["large"]["peak_rss_mb"] -
                                        out["small"]["peak_rss_mb"], 1)
    return out


def bench_startup() -> dict[str, Any]:
    times = []
    for _ in range(7):
        started = time.perf_counter()
        subprocess.run([PY, "-m", "batchpatch", "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return {"help_median_s": round(statistics.median(times), 3)}


def bench_report(sandbox: SandboxProcess, work: Path, n: int) -> dict[str, Any]:
    sandbox.reset(profiles(n))
    fixes = write_fixes(work / "rep.csv", n, changed=0.7)
    run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "32")
    out = {}
    for name in ("report.html", "report.md"):
        started = time.perf_counter()
        subprocess.run([PY, "-m", "batchpatch", "report", str(work / "rep.results.jsonl"),
                        "-o", str(work / name)], capture_output=True, check=True)
        out[name] = round(time.perf_counter() - started, 2)
    return {"rows": n, "seconds": out}


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, bool]]:
    m = r["memory"]
    return [
        ("throughput ≥ 0.9 × bare aiohttp", f"{r['throughput']['ratio']:.2f} ×",
         r["throughput"]["ratio"] >= 0.9),
        ("rate within 2% of --rate 100", f"{r['rate']['achieved']} req/s",
         r["rate"]["error_pct"] <= 2),
        ("no 1-s window above rate + 10%", f"max {r['rate']['max_in_1s_window']} in 1 s",
         r["rate"]["max_in_1s_window"] <= 110),
        ("latency hiding ≥ 85% of ideal", f"{r['latency']['share_of_ideal']:.0%}",
         r["latency"]["share_of_ideal"] >= 0.85),
        ("peak RSS < 150 MB streaming the big file", f"{m['streaming']['peak_rss_mb']} MB",
         m["streaming"]["peak_rss_mb"] < 150),
        ("large run within 20 MB of small run", f"+{m['large_minus_small_mb']} MB",
         m["large_minus_small_mb"] <= 20),
        ("requests/row: 2.0 half-right (1.5 no-verify)",
         f"{r['requests_per_row']['verify']['requests_per_row']} / "
         f"{r['requests_per_row']['no_verify']['requests_per_row']}",
         r["requests_per_row"]["verify"]["requests_per_row"] == 2.0
         and r["requests_per_row"]["no_verify"]["requests_per_row"] == 1.5),
        ("startup (--help) < 0.3 s", f"{r['startup']['help_median_s']} s",
         r["startup"]["help_median_s"] < 0.3),
        ("report of 10,000 rows < 5 s", ", ".join(f"{k} {v} s" for k, v in
                                                   r["report"]["seconds"].items()),
         all(v < 5 for v in r["report"]["seconds"].values())),
    ]


def write_results(r: dict[str, Any]) -> None:
    (HERE / "results.json").write_text(json.dumps(r, indent=2) + "\n")
    mc, t, m = r["machine"], r["throughput"], r["memory"]
    lines = [
        "# Benchmark results", "",
        f"Measured {r['date']} on {mc['cpu']}, {mc['cores']} cores, {mc['memory_gib']} GiB, "
        f"Python {mc['python']} ({mc['platform']}); sandbox on loopback; `make bench`"
        + (" --quick" if r["quick"] else "") + ".", "",
        "| target | measured | met |", "|---|---|---|",
        *[f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in
          verdicts(r)],
        "", "## Details", "",
        f"- Throughput ({t['rows']} changed rows, concurrency 32, unlimited rate, medians of "
        f"{t['rounds']} alternating rounds): batchpatch {t['batchpatch_rows_per_s']} rows/s, "
        f"bare aiohttp loop {t['bare_rows_per_s']} rows/s (ratio {t['ratio']}); naive "
        f"sequential `requests` loop {t['naive_requests_rows_per_s']} rows/s. "
        f"Rounds: batchpatch {t['all_batchpatch']}, bare {t['all_bare']}.",
        f"- Rate: asked 100 req/s over {r['rate']['requests']} requests, achieved "
        f"{r['rate']['achieved']} (error {r['rate']['error_pct']}%), at most "
        f"{r['rate']['max_in_1s_window']} requests in any one-second window (server clock).",
        f"- Latency hiding: 50 ms per request, concurrency 64: {r['latency']['rows_per_s']} "
        f"rows/s of an ideal {r['latency']['ideal_rows_per_s']} "
        f"({r['latency']['share_of_ideal']:.0%}).",
        f"- Memory, streaming: {m['streaming']['rows_in_file']:,} rows "
        f"({m['streaming']['file_mb']} MB) against a 50 ms sandbox for {m['streaming']['soak_s']}"
        f" s, then SIGTERM: {m['streaming']['rows_done']:,} rows done, "
        f"{m['streaming']['rows_read']:,} read (the reader does not run ahead), peak RSS "
        f"{m['streaming']['peak_rss_mb']} MB.",
        f"- Memory, whole runs: {m['small']['rows']:,} rows peak {m['small']['peak_rss_mb']} MB;"
        f" {m['large']['rows']:,} rows peak {m['large']['peak_rss_mb']} MB "
        f"({m['large']['rows_per_s']} rows/s).",
        f"- Requests per row, half the rows already right: {r['requests_per_row']}.",
        "", "Raw figures: `results.json`.",
    ]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    args = parser.parse_args()
    q = args.quick
    results: dict[str, Any] = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                               "machine": machine(), "quick": q}
    with tempfile.TemporaryDirectory() as tmp, \
            SandboxProcess(ROOT / "samples" / "profiles.json") as sandbox:
        work = Path(tmp)
        steps = [
            ("startup", lambda: bench_startup()),
            ("throughput", lambda: bench_throughput(sandbox, work, 1000 if q else 5000,
                                                    2 if q else 3)),
            ("rate", lambda: bench_rate(sandbox, work, 200 if q else 550)),
            ("latency", lambda: bench_latency(sandbox, work, 1000 if q else 4000)),
            ("requests_per_row", lambda: bench_requests_per_row(sandbox, work, 1000)),
            ("report", lambda: bench_report(sandbox, work, 2000 if q else 10_000)),
            ("memory", lambda: bench_memory(sandbox, work, 200_000 if q else 2_000_000,
                                            10_000, 100_000 if q else 1_000_000,
                                            5.0 if q else 20.0)),
        ]
        for name, step in steps:
            started = time.perf_counter()
            results[name] = step()
            print(f"{name}: {json.dumps(results[name])} ({time.perf_counter() - started:.0f} s)",
                  flush=True)
    write_results(results)
    for name, value, ok in verdicts(results):
        print(f"{'ok  ' if ok else 'MISS'} {name}: {value}")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
