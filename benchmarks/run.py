"""`make bench`: measure batchpatch against the sandbox on loopback, side by side with plain
clients, in one run. Prints every target with its figure and met / not met; writes RESULTS.md
and results.json here.

    python benchmarks/run.py [--quick] [--only STEP,STEP] [--before REV]

--quick: smaller sizes (a smoke run, not figures to quote). --only: some steps (results of the
others are kept from results.json). --before REV: the git revision profiled as "before"
(default: the 0.1.0 release commit), taken with `git archive`; skipped where git or the
revision is missing.
"""

from __future__ import annotations

import argparse
import cProfile  # noqa: F401  (run as `python -m cProfile` in the child)
import io
import json
import os
import platform
import pstats
import signal
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from batchpatch.sandbox.process import SandboxProcess  # noqa: E402

PY = sys.executable
ORG_PATH = "/demo/campaign/profileAndServices/profile/{pkey}"
BEFORE = "2e847938d32590607e8ff250d14c2532e8cda612"  # 0.1.0, before the restructure


# ----------------------------------------------------------------------------- processes


@dataclass
class Ran:
    """One child process, measured: wall seconds from spawn to exit (start-up included), its
    own user + system CPU (wait4's rusage of exactly that child), its peak memory (VmHWM)."""

    rc: int
    wall: float
    cpu: float
    peak_kb: int
    stdout: str


def spawn(cmd: list[str], *, cwd: Path | None = None, env: dict[str, str] | None = None,
          stop_after: float | None = None) -> Ran:
    with tempfile.TemporaryFile() as out:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, cwd=cwd,
                                env={**os.environ, **(env or {})})
        peak = 0
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            # The kernel keeps the peak of the process itself; ru_maxrss would also carry the
            # pages of this runner, copied by fork before exec.
            peak = max(peak, _vm_hwm_kb(proc.pid))
            if stop_after is not None and time.perf_counter() - started >= stop_after:
                proc.send_signal(signal.SIGTERM)  # a bounded soak, then a graceful stop
                stop_after = None
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        return Ran(proc.returncode, wall, usage.ru_utime + usage.ru_stime, peak,
                   out.read().decode(errors="replace"))


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def batchpatch_cmd(command: str, target: Path, sandbox: SandboxProcess, *flags: str) -> list[str]:
    return [PY, "-m", "batchpatch", command, str(target), "--base-url", sandbox.url,
            "--org", "demo", "--progress", "off", "-q", *flags]


def run_batchpatch(fixes: Path, sandbox: SandboxProcess, *flags: str,
                   stop_after: float | None = None) -> tuple[dict[str, Any], Ran]:
    """Run the real command; returns its summary and the measured process."""
    ran = spawn(batchpatch_cmd("run", fixes, sandbox, *flags), stop_after=stop_after)
    stem = fixes.name.split(".")[0]
    summary = json.loads((fixes.with_name(stem + ".summary.json")).read_text())
    return summary, ran


# ----------------------------------------------------------------------------- data


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


def server_window(sandbox: SandboxProcess, skip: float, tail: float = 1.0) -> dict[str, Any]:
    """The server's view of the last run: requests (arrival times) between `skip` seconds after
    the first and `tail` seconds before the last, how many were refused, how many it accepted
    per second there, and the busiest one-second window of the whole run."""
    times = sorted(sandbox.stats(times=True)["times"])
    start, end = times[0][0], times[-1][0]
    steady = [(t, label) for t, label in times if start + skip <= t <= end - tail]
    span = max(end - tail - (start + skip), 1e-9)
    worst, j = 0, 0
    for i, (t, _) in enumerate(times):
        while times[j][0] <= t - 1.0:
            j += 1
        worst = max(worst, i - j + 1)
    refused = sum(label == "429" for _, label in steady)
    return {"requests": len(times), "span_s": round(end - start, 2),
            "steady_requests": len(steady),
            "steady_refused_pct": round(100 * refused / max(len(steady), 1), 2),
            "steady_accepted_per_s": round((len(steady) - refused) / span, 2),
            "steady_per_s": round(len(steady) / span, 2),
            "overall_per_s": round((len(times) - 1) / max(end - start, 1e-9), 2),
            "max_in_1s_window": worst}


# ----------------------------------------------------------------------------- steps


def bench_startup(**_: Any) -> dict[str, Any]:
    times = [spawn([PY, "-m", "batchpatch", "--help"]).wall for _ in range(7)]
    return {"help_median_s": round(statistics.median(times), 3)}


def bench_throughput(sandbox: SandboxProcess, work: Path, n: int, rounds: int,
                     **_: Any) -> dict[str, Any]:
    """6,000 changed rows, concurrency 32, no rate limit: three clients alternating round by
    round so that each sees the same machine; wall time from spawn to exit, client CPU."""
    keys = [f"@p{i:06d}" for i in range(n)]
    (work / "keys.json").write_text(json.dumps(keys))
    fixes = write_fixes(work / "tp.csv", n)
    url = sandbox.url + ORG_PATH
    clients: dict[str, Callable[[], Ran]] = {
        "bare": lambda: spawn([PY, str(HERE / "bare_loop.py"), url, str(work / "keys.json"),
                               "32"]),
        "bare_fast": lambda: spawn([PY, str(HERE / "bare_loop_fast.py"), url,
                                    str(work / "keys.json"), "32"]),
        "batchpatch": lambda: run_batchpatch(fixes, sandbox, "--rate", "0",
                                             "--concurrency", "32")[1],
    }
    walls: dict[str, list[float]] = {name: [] for name in clients}
    cpus: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(rounds):
        for name, client in clients.items():
            sandbox.reset(profiles(n))
            ran = client()
            assert ran.rc == 0, (name, ran.rc)
            done = sandbox.stats()["counts"].get("PATCH 200", 0)
            assert done == n, (name, done)
            walls[name].append(ran.wall)
            cpus[name].append(ran.cpu)
    med = {name: statistics.median(w) for name, w in walls.items()}
    cpu = {name: statistics.median(c) for name, c in cpus.items()}
    out: dict[str, Any] = {"rows": n, "concurrency": 32, "rounds": rounds}
    for name in clients:
        out[name] = {"wall_s": round(med[name], 3), "rows_per_s": round(n / med[name], 1),
                     "cpu_us_per_row": round(cpu[name] / n * 1e6, 1),
                     "all_wall_s": [round(w, 3) for w in walls[name]],
                     "all_cpu_us_per_row": [round(c / n * 1e6, 1) for c in cpus[name]]}
    out["ratio_vs_fast"] = round(med["bare_fast"] / med["batchpatch"], 3)
    out["ratio_vs_bare"] = round(med["bare"] / med["batchpatch"], 3)
    out["cpu_ratio_vs_fast"] = round(cpu["batchpatch"] / cpu["bare_fast"], 3)
    out["cpu_ratio_vs_bare"] = round(cpu["batchpatch"] / cpu["bare"], 3)
    naive_n = min(n, 300)
    (work / "naive.json").write_text(json.dumps(keys[:naive_n]))
    sandbox.reset(profiles(naive_n))
    ran = spawn([PY, str(HERE / "naive_loop.py"), url, str(work / "naive.json")])
    out["naive_requests_rows_per_s"] = round(json.loads(ran.stdout)["rows_per_s"], 1)
    return out


def _profile_table(stats_path: Path, rows: int, top: int = 12) -> dict[str, Any]:
    st = pstats.Stats(str(stats_path), stream=io.StringIO())
    entries = []
    by_part: dict[str, float] = {}
    total = 0.0
    for (file, line, func), (_cc, nc, tt, _ct, _callers) in st.stats.items():  # type: ignore[attr-defined]
        total += tt
        part = _part(file)
        by_part[part] = by_part.get(part, 0.0) + tt
        entries.append((tt, nc, f"{_short(file)}:{line}({func})"))
    entries.sort(reverse=True)
    return {"rows": rows, "total_us_per_row": round(total / rows * 1e6, 1),
            "by_part_us_per_row": {k: round(v / rows * 1e6, 1) for k, v in
                                   sorted(by_part.items(), key=lambda kv: -kv[1])},
            "top": [{"function": name, "us_per_row": round(tt / rows * 1e6, 1),
                     "calls_per_row": round(nc / rows, 2)} for tt, nc, name in entries[:top]]}


def _part(file: str) -> str:
    for marker, name in (("/batchpatch/", "batchpatch"), ("/aiohttp/", "aiohttp"),
                         ("/yarl/", "yarl"), ("/multidict/", "multidict"),
                         ("/asyncio/", "asyncio"), ("/tenacity/", "tenacity"),
                         ("/aiolimiter/", "aiolimiter"), ("/uvloop/", "uvloop")):
        if marker in file:
            return name
    if file.startswith("~") or file.startswith("<"):
        return "builtins (C)"
    return "other Python"


def _short(file: str) -> str:
    for marker in ("/site-packages/", "/lib/python3"):
        if marker in file:
            return file.split(marker, 1)[1]
    return file.rsplit("/", 1)[-1] if "/" in file else file


def bench_profile(sandbox: SandboxProcess, work: Path, n: int, before: str | None,
                  **_: Any) -> dict[str, Any]:
    """cProfile of the client, the same 6,000-row run as the throughput step, now and before."""
    fixes = write_fixes(work / "prof.csv", n)
    out: dict[str, Any] = {}
    trees: dict[str, Path] = {"after": ROOT}
    old = _checkout(before, work / "before") if before else None
    if old is not None:
        trees["before"] = old
    keys = work / "profkeys.json"
    keys.write_text(json.dumps([f"@p{i:06d}" for i in range(n)]))
    sandbox.reset(profiles(n))
    stats = work / "bare.pstats"
    ran = spawn([PY, "-m", "cProfile", "-o", str(stats), str(HERE / "bare_loop_fast.py"),
                 sandbox.url + ORG_PATH, str(keys), "32"])
    assert ran.rc == 0, ran.rc
    out["bare_fast"] = _profile_table(stats, n)
    out["bare_fast"]["revision"] = "bare loop, uvloop + orjson (benchmarks/bare_loop_fast.py)"
    for label, tree in trees.items():
        sandbox.reset(profiles(n))
        for leftover in work.glob("prof.*.json*"):
            leftover.unlink()
        for leftover in work.glob("prof.results*"):
            leftover.unlink()
        stats = work / f"{label}.pstats"
        cmd = [PY, "-m", "cProfile", "-o", str(stats), "-m", "batchpatch", "run", str(fixes),
               "--base-url", sandbox.url, "--org", "demo", "--progress", "off", "-q",
               "--rate", "0", "--concurrency", "32"]
        ran = spawn(cmd, cwd=tree, env={"PYTHONPATH": str(tree)})
        assert ran.rc == 0, (label, ran.rc)
        out[label] = _profile_table(stats, n)
        out[label]["revision"] = "working tree" if tree == ROOT else before
    return out


def _checkout(rev: str, dest: Path) -> Path | None:
    try:
        blob = subprocess.run(["git", "-C", str(ROOT), "archive", rev, "batchpatch"],
                              capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(dest, filter="data")
    return dest


def bench_latency(sandbox: SandboxProcess, work: Path, sizes: dict[int, int],
                  **_: Any) -> dict[str, Any]:
    """Latency hiding: 64 rows in flight against a server answering each request after 150 ms
    (and 300 ms); the ideal is 64 / (3 x latency) rows/s. Rows/s is the summary's, over the whole
    run (the metadata request included); the files hold whole rounds of 64 rows, so that the
    last round is not a partial one that no pool could fill."""
    out: dict[str, Any] = {}
    for latency_ms, n in sizes.items():
        sandbox.reset(profiles(n), latency_ms=latency_ms)
        fixes = write_fixes(work / f"lat{latency_ms}.csv", n)
        summary, _ = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "64")
        assert summary["counts"].get("updated") == n, summary["counts"]
        ideal = 64 / (3 * latency_ms / 1000)
        out[str(latency_ms)] = {"rows": n, "rows_per_s": summary["rows_per_s"],
                                "ideal_rows_per_s": round(ideal, 1),
                                "share_of_ideal": round(summary["rows_per_s"] / ideal, 3)}
    return out


def bench_auto(sandbox: SandboxProcess, work: Path, n: int, **_: Any) -> dict[str, Any]:
    """`--concurrency auto` (the default) at 150 ms per request and --rate 200: the user sets
    only the quota. Needs 200 x 0.15 = 30 requests in flight."""
    sandbox.reset(profiles(n), latency_ms=150)
    fixes = write_fixes(work / "auto.csv", n)
    summary, _ = run_batchpatch(fixes, sandbox, "--rate", "200")
    assert summary["counts"].get("updated") == n, summary["counts"]
    stats = sandbox.stats()
    window = server_window(sandbox, skip=5.0)
    needed = 200 * 0.150
    return {"rows": n, "rate": 200, "latency_ms": 150, **window,
            "connections": stats["connections"], "connections_needed": needed,
            "connections_ratio": round(stats["connections"] / needed, 2),
            "share_of_rate": round(window["steady_per_s"] / 200, 3),
            "overall_share_of_rate": round(window["overall_per_s"] / 200, 3)}


def bench_rate(sandbox: SandboxProcess, work: Path, n: int, **_: Any) -> dict[str, Any]:
    sandbox.reset(profiles(n))
    fixes = write_fixes(work / "rate.csv", n)
    summary, _ = run_batchpatch(fixes, sandbox, "--rate", "100", "--concurrency", "16",
                                "--schema", "none")
    w = server_window(sandbox, skip=0.0, tail=0.0)
    return {"asked": 100, "requests": w["requests"], "achieved": w["overall_per_s"],
            "error_pct": round(abs(w["overall_per_s"] - 100), 2),
            "max_in_1s_window": w["max_in_1s_window"],
            "rows_updated": summary["counts"]["updated"]}


def bench_gateways(sandbox: SandboxProcess, work: Path, n: int, **_: Any) -> dict[str, Any]:
    """The gateway allows 20 requests/s, in three shapes: nginx limit_req (token bucket,
    burst 10, nodelay, no Retry-After), a fixed window (200 per 10 s, no Retry-After) and a
    sliding second (with Retry-After). The user asks --rate 100; after the first 10 s at most 3%
    refused and at least 95% of 20 req/s accepted."""
    out: dict[str, Any] = {}
    for shape in ("bucket", "window", "sliding"):
        sandbox.reset(profiles(n), rate_limit=20, rate_limit_shape=shape, rate_limit_burst=10,
                      rate_limit_window=10)
        fixes = write_fixes(work / f"gw_{shape}.csv", n)
        summary, _ = run_batchpatch(fixes, sandbox, "--rate", "100", "--schema", "none")
        assert summary["counts"].get("updated") == n, (shape, summary["counts"])
        w = server_window(sandbox, skip=10.0)
        out[shape] = {**w, "share_of_gateway": round(w["steady_accepted_per_s"] / 20, 3)}
    return out


def bench_requests_per_row(sandbox: SandboxProcess, work: Path, n: int,
                           **_: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for label, flags, expected in (("verify", (), 2.0), ("no_verify", ("--no-verify",), 1.5),
                                   ("verify_schema_auto", ("--schema", "auto"), 2.0 + 1 / n)):
        sandbox.reset(profiles(n))
        fixes = write_fixes(work / "half.csv", n, changed=0.5)
        if "--schema" not in flags:
            flags = (*flags, "--schema", "none")
        summary, _ = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "16", *flags)
        sent = sum(sandbox.stats()["counts"].values())
        out[label] = {"requests_per_row": round(sent / n, 4), "expected": round(expected, 4),
                      "updated": summary["counts"]["updated"],
                      "unchanged": summary["counts"]["unchanged"]}
    return out


def bench_memory(sandbox: SandboxProcess, work: Path, big: int, small: int, large: int,
                 soak: float, **_: Any) -> dict[str, Any]:
    """Peak memory: 2,000,000 rows streamed (CSV, then the same rows as Parquet) for a bounded
    soak against a slow server; then whole runs of a small and a large file."""
    import pyarrow.csv
    import pyarrow.parquet

    distinct = 5000
    streamed = write_fixes(work / "big.csv", big, keys=distinct, changed=0.0)
    parquet = work / "bigpq.parquet"
    table = pyarrow.csv.read_csv(streamed, convert_options=pyarrow.csv.ConvertOptions(
        column_types={"PKey": pyarrow.string(), "phone": pyarrow.string()}))
    pyarrow.parquet.write_table(table, parquet, row_group_size=65_536)
    del table
    out: dict[str, Any] = {}
    for label, path in (("streaming", streamed), ("parquet", parquet)):
        sandbox.reset(profiles(distinct), latency_ms=50)
        summary, ran = run_batchpatch(path, sandbox, "--rate", "0", "--concurrency", "16",
                                      stop_after=soak)
        out[label] = {"rows_in_file": big, "file_mb": round(path.stat().st_size / 2**20, 1),
                      "soak_s": soak, "rows_done": summary["rows"],
                      "rows_read": summary["rows"] + summary["unfinished"],
                      "peak_rss_mb": round(ran.peak_kb / 1024, 1)}
    out["parquet_minus_csv_mb"] = round(out["parquet"]["peak_rss_mb"] -
                                        out["streaming"]["peak_rss_mb"], 1)
    # What pyarrow itself costs (its libraries, loaded for any Parquet file): a 10-row file.
    tiny = work / "tinypq.parquet"
    pyarrow.parquet.write_table(pyarrow.parquet.read_table(parquet).slice(0, 10), tiny)
    sandbox.reset(profiles(distinct))
    summary, ran = run_batchpatch(tiny, sandbox, "--rate", "0", "--concurrency", "16")
    assert summary["rows"] == 10, summary
    out["parquet_10_rows_peak_rss_mb"] = round(ran.peak_kb / 1024, 1)
    out["parquet_reading_mb"] = round(out["parquet"]["peak_rss_mb"] -
                                      out["parquet_10_rows_peak_rss_mb"], 1)
    parquet.unlink()
    sandbox.reset(profiles(distinct))
    for label, n in (("small", small), ("large", large)):
        fixes = write_fixes(work / f"{label}.csv", n, keys=distinct, changed=0.0)
        summary, ran = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "32")
        assert summary["rows"] == n, summary
        out[label] = {"rows": n, "rows_per_s": summary["rows_per_s"],
                      "peak_rss_mb": round(ran.peak_kb / 1024, 1)}
        fixes.unlink()
    out["large_minus_small_mb"] = round(out["large"]["peak_rss_mb"] -
                                        out["small"]["peak_rss_mb"], 1)
    return out


def bench_resume(sandbox: SandboxProcess, work: Path, n: int, left: int,
                 **_: Any) -> dict[str, Any]:
    """Resuming a 2,000,000-row results file: a first run is stopped, its results file is then
    filled up to all but `left` rows (as a run that got that far would have left it), and the
    resume is timed from spawn to the server's first request; peak memory against a fresh run
    of the same file over the same soak."""
    distinct = 5000
    fixes = write_fixes(work / "res.csv", n, keys=distinct, changed=0.0)
    sandbox.reset(profiles(distinct), latency_ms=50)
    summary, fresh = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "16",
                                    stop_after=10.0)
    results = work / "res.results.jsonl"
    lines = results.read_bytes().splitlines()
    done = {json.loads(line)["row"] for line in lines}
    template = json.loads(lines[0])
    with open(results, "ab") as fh:
        for row in range(2, n + 2 - left):
            if row in done:
                continue
            k = (row - 2) % distinct
            fh.write(json.dumps({**template, "row": row, "pkey": f"@p{k:06d}"},
                                    separators=(",", ":")).encode() + b"\n")
    size_mb = results.stat().st_size / 2**20
    sandbox.reset(profiles(distinct))
    started = time.time()
    _, resumed = run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "16",
                                "--resume")
    first_at = sandbox.stats()["first_at"]
    assert resumed.rc == 0, resumed.rc
    records = results.read_bytes().count(b"\n")
    return {"rows": n, "left": left, "results_mb": round(size_mb, 1),
            "first_request_s": round(first_at - started, 2) if first_at else None,
            "resume_wall_s": round(resumed.wall, 2), "records_after": records,
            "resume_peak_rss_mb": round(resumed.peak_kb / 1024, 1),
            "fresh_peak_rss_mb": round(fresh.peak_kb / 1024, 1),
            "fresh_rows_done": summary["rows"]}


def bench_chaos(**_: Any) -> dict[str, Any]:
    """The chaos soak of the test suite, bigger (`pytest -m benchmark`): its verdict and time."""
    started = time.perf_counter()
    done = subprocess.run([PY, "-m", "pytest", "-q", "-m", "benchmark", "-p", "no:cacheprovider"],
                          cwd=ROOT, capture_output=True, text=True)
    last = (done.stdout.strip().splitlines() or ["?"])[-1]
    return {"passed": done.returncode == 0, "outcome": last,
            "seconds": round(time.perf_counter() - started, 1)}


def bench_report(sandbox: SandboxProcess, work: Path, n: int, **_: Any) -> dict[str, Any]:
    sandbox.reset(profiles(n))
    fixes = write_fixes(work / "rep.csv", n, changed=0.7)
    run_batchpatch(fixes, sandbox, "--rate", "0", "--concurrency", "32")
    out = {}
    for name in ("report.html", "report.md"):
        ran = spawn([PY, "-m", "batchpatch", "report", str(work / "rep.results.jsonl"),
                     "-o", str(work / name)])
        out[name] = round(ran.wall, 2)
    return {"rows": n, "seconds": out}


# ----------------------------------------------------------------------------- verdicts


def verdicts(r: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(target, figure, met) for every target of the steps that ran."""
    v: list[tuple[str, str, bool | None]] = []
    if "throughput" in r:
        t = r["throughput"]
        v += [("throughput ≥ 1.0 × bare loop on uvloop + orjson (6,000 rows, c=32, start-up "
               "included)", f"{t['ratio_vs_fast']:.2f} × ({t['ratio_vs_bare']:.2f} × the "
               "default-loop bare loop)", t["ratio_vs_fast"] >= 1.0),
              ("client CPU per row ≤ 1.1 × that loop's",
               f"{t['batchpatch']['cpu_us_per_row']} µs vs {t['bare_fast']['cpu_us_per_row']}"
               f" µs: {t['cpu_ratio_vs_fast']:.2f} ×", t["cpu_ratio_vs_fast"] <= 1.1)]
    if "latency" in r:
        for ms, lat in r["latency"].items():
            v.append((f"latency hiding ≥ 95% of ideal at {ms} ms, c=64",
                      f"{lat['share_of_ideal']:.1%} ({lat['rows_per_s']} of "
                      f"{lat['ideal_rows_per_s']} rows/s)", lat["share_of_ideal"] >= 0.95))
    if "auto" in r:
        a = r["auto"]
        v += [("--concurrency auto reaches ≥ 95% of --rate 200 at 150 ms",
               f"{a['share_of_rate']:.1%} after 5 s ({a['overall_share_of_rate']:.1%} "
               "overall)", a["share_of_rate"] >= 0.95),
              ("auto opens ≤ 1.5 × the connections needed (30)",
               f"{a['connections']} ({a['connections_ratio']} ×)",
               a["connections_ratio"] <= 1.5)]
    if "resume" in r:
        s = r["resume"]
        v += [("resume of 2,000,000 rows: first request ≤ 5 s", f"{s['first_request_s']} s",
               s["first_request_s"] is not None and s["first_request_s"] <= 5.0),
              ("resume peak memory within a fresh run's (+5 MB: the table of one byte per "
               "row, 2 MB, and read buffers)", f"{s['resume_peak_rss_mb']} MB vs "
               f"{s['fresh_peak_rss_mb']} MB", s["resume_peak_rss_mb"] <=
               s["fresh_peak_rss_mb"] + 5)]
    if "gateways" in r:
        for shape, g in r["gateways"].items():
            v.append((f"gateway {shape}: ≤ 3% refused after 10 s, ≥ 95% of its 20 req/s",
                      f"{g['steady_refused_pct']}% refused, {g['share_of_gateway']:.1%}",
                      g["steady_refused_pct"] <= 3 and g["share_of_gateway"] >= 0.95))
    if "rate" in r:
        rate = r["rate"]
        v += [("rate within 2% of --rate 100", f"{rate['achieved']} req/s",
               rate["error_pct"] <= 2),
              ("no 1-s window above rate + 10%", f"max {rate['max_in_1s_window']} in 1 s",
               rate["max_in_1s_window"] <= 110)]
    if "memory" in r:
        m = r["memory"]
        if "parquet_reading_mb" in m:
            v.append(("Parquet: reading 2,000,000 rows costs ≤ 20 MB over a 10-row file",
                      f"{m['parquet_reading_mb']:+} MB (pyarrow's libraries: "
                      f"{m['parquet_10_rows_peak_rss_mb']} MB peak for 10 rows)",
                      m["parquet_reading_mb"] <= 20))
        v += [("peak RSS < 150 MB streaming 2,000,000 rows",
               f"{m['streaming']['peak_rss_mb']} MB", m["streaming"]["peak_rss_mb"] < 150),
              ("Parquet 2,000,000 rows within the CSV figure + 20 MB",
               f"{m['parquet']['peak_rss_mb']} MB ({m['parquet_minus_csv_mb']:+} MB)",
               m["parquet_minus_csv_mb"] <= 20),
              ("large run within 20 MB of small run", f"{m['large_minus_small_mb']:+} MB",
               m["large_minus_small_mb"] <= 20)]
    if "requests_per_row" in r:
        q = r["requests_per_row"]
        v.append(("requests/row, half the rows right: 2.0 (1.5 --no-verify)",
                  f"{q['verify']['requests_per_row']} / {q['no_verify']['requests_per_row']}"
                  f" (+1 metadata request per run with the schema: "
                  f"{q['verify_schema_auto']['requests_per_row']})",
                  q["verify"]["requests_per_row"] == 2.0
                  and q["no_verify"]["requests_per_row"] == 1.5
                  and q["verify_schema_auto"]["requests_per_row"]
                  == q["verify_schema_auto"]["expected"]))
    if "chaos" in r:
        v.append(("chaos soak (pytest -m benchmark): one record per row, exit codes hold",
                  r["chaos"]["outcome"], r["chaos"]["passed"]))
    if "startup" in r:
        v.append(("start-up (--help) < 0.3 s", f"{r['startup']['help_median_s']} s",
                  r["startup"]["help_median_s"] < 0.3))
    if "report" in r:
        v.append(("report of 10,000 rows < 5 s", ", ".join(
            f"{k} {s} s" for k, s in r["report"]["seconds"].items()),
            all(s < 5 for s in r["report"]["seconds"].values())))
    return v


def write_results(r: dict[str, Any]) -> None:
    (HERE / "results.json").write_text(json.dumps(r, indent=2) + "\n")
    mc = r["machine"]
    lines = [
        "# Benchmark results", "",
        f"Measured {r['date']} on {mc['cpu']}, {mc['cores']} cores, {mc['memory_gib']} GiB, "
        f"Python {mc['python']} ({mc['platform']}), aiohttp {mc.get('aiohttp', '?')}; client "
        "and sandbox share the machine, sandbox on loopback; `make bench`"
        + (" --quick (smoke sizes: not figures to quote)" if r["quick"] else "") + ".", "",
        "| target | measured | met |", "|---|---|---|",
        *[f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in
          verdicts(r)],
        "", "## Details", "",
    ]
    if "throughput" in r:
        t = r["throughput"]
        lines.append(f"- Throughput, {t['rows']:,} changed rows, concurrency 32, --rate 0, "
                     f"medians of {t['rounds']} alternating rounds, wall time from spawn to exit:")
        lines += ["", "  | client | wall s | rows/s | client CPU µs/row | rounds (wall s) |",
                  "  |---|---|---|---|---|"]
        for name, label in (("bare", "bare aiohttp loop, default loop + json"),
                            ("bare_fast", "bare aiohttp loop, uvloop + orjson"),
                            ("batchpatch", "batchpatch")):
            c = t[name]
            lines.append(f"  | {label} | {c['wall_s']} | {c['rows_per_s']} | "
                         f"{c['cpu_us_per_row']} | {c['all_wall_s']} |")
        lines += ["", f"  Naive sequential `requests` loop: {t['naive_requests_rows_per_s']} "
                  "rows/s."]
    if "profile" in r:
        lines += ["", "## Where the time goes (cProfile, the throughput run; µs of profiled "
                  "CPU per row, profiling overhead included)", ""]
        for label in ("bare_fast", "before", "after"):
            p = r["profile"].get(label)
            if not p:
                continue
            lines += [f"### {label.replace('_', ' ')}: {p['revision']}, "
                      f"{p['total_us_per_row']} µs/row", "",
                      "By part: " + ", ".join(f"{k} {v}" for k, v in
                                              p["by_part_us_per_row"].items()), "",
                      "| function | µs/row | calls/row |", "|---|---|---|",
                      *[f"| `{e['function']}` | {e['us_per_row']} | {e['calls_per_row']} |"
                        for e in p["top"]], ""]
    if "latency" in r:
        lines.append("- Latency hiding (concurrency 64): " + "; ".join(
            f"{ms} ms: {x['rows_per_s']} rows/s of an ideal {x['ideal_rows_per_s']} "
            f"({x['share_of_ideal']:.1%}, {x['rows']} rows)" for ms, x in r["latency"].items())
            + ".")
    if "auto" in r:
        a = r["auto"]
        lines.append(f"- `--concurrency auto`, --rate 200, 150 ms: {a['steady_per_s']} req/s "
                     f"after the first 5 s ({a['overall_per_s']} over the whole run of "
                     f"{a['span_s']} s), {a['connections']} connections for 30 needed.")
    if "resume" in r:
        s = r["resume"]
        lines.append(f"- Resume: {s['rows']:,}-row file, results of {s['rows'] - s['left']:,} "
                     f"rows ({s['results_mb']} MB); first request {s['first_request_s']} s "
                     f"after spawn, resume done in {s['resume_wall_s']} s, "
                     f"{s['records_after']:,} records after; peak {s['resume_peak_rss_mb']} MB "
                     f"(a fresh run of the same file: {s['fresh_peak_rss_mb']} MB).")
    if "gateways" in r:
        lines.append("- Gateways at 20 req/s, --rate 100, after the first 10 s: " + "; ".join(
            f"{shape}: {g['steady_refused_pct']}% refused, {g['steady_accepted_per_s']} "
            f"accepted/s ({g['requests']} requests in {g['span_s']} s)"
            for shape, g in r["gateways"].items()) + ".")
    if "rate" in r:
        rate = r["rate"]
        lines.append(f"- Rate: asked 100 req/s over {rate['requests']} requests, achieved "
                     f"{rate['achieved']} (error {rate['error_pct']}%), at most "
                     f"{rate['max_in_1s_window']} requests in any one-second window (server "
                     "clock).")
    if "memory" in r:
        m = r["memory"]
        for label in ("streaming", "parquet"):
            x = m[label]
            lines.append(f"- Memory, {label} ({'CSV' if label == 'streaming' else 'Parquet'}"
                         f"): {x['rows_in_file']:,} rows ({x['file_mb']} MB) against a 50 ms "
                         f"sandbox for {x['soak_s']} s, then SIGTERM: {x['rows_done']:,} rows "
                         f"done, {x['rows_read']:,} read, peak RSS {x['peak_rss_mb']} MB.")
        lines.append(f"- Memory, whole runs: {m['small']['rows']:,} rows peak "
                     f"{m['small']['peak_rss_mb']} MB; {m['large']['rows']:,} rows peak "
                     f"{m['large']['peak_rss_mb']} MB ({m['large']['rows_per_s']} rows/s).")
    if "requests_per_row" in r:
        lines.append(f"- Requests per row, half the rows already right: "
                     f"{json.dumps(r['requests_per_row'])}.")
    if "chaos" in r:
        lines.append(f"- Chaos soak (`pytest -m benchmark`): {r['chaos']['outcome']} in "
                     f"{r['chaos']['seconds']} s.")
    lines += ["", "Raw figures: `results.json`."]
    (HERE / "RESULTS.md").write_text("\n".join(lines) + "\n")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import aiohttp

    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return {"cpu": model, "cores": os.cpu_count(), "memory_gib": round(mem, 1),
            "python": platform.python_version(), "platform": platform.platform(),
            "aiohttp": aiohttp.__version__}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--only", help="comma-separated steps to run")
    parser.add_argument("--before", default=BEFORE, help="git revision profiled as before")
    args = parser.parse_args()
    q = args.quick
    steps: dict[str, Callable[..., dict[str, Any]]] = {
        "startup": bench_startup,
        "throughput": lambda **k: bench_throughput(n=1000 if q else 6000, rounds=2 if q else 3,
                                                   **k),
        "profile": lambda **k: bench_profile(n=1000 if q else 6000, before=args.before, **k),
        "latency": lambda **k: bench_latency(sizes={150: 64 * 5, 300: 64 * 3} if q else
                                             {150: 64 * 48, 300: 64 * 24}, **k),
        "auto": lambda **k: bench_auto(n=300 if q else 2400, **k),
        "resume": lambda **k: bench_resume(n=200_000 if q else 2_000_000, left=1000, **k),
        "gateways": lambda **k: bench_gateways(n=100 if q else 330, **k),
        "rate": lambda **k: bench_rate(n=200 if q else 550, **k),
        "requests_per_row": lambda **k: bench_requests_per_row(n=1000, **k),
        "report": lambda **k: bench_report(n=2000 if q else 10_000, **k),
        "chaos": bench_chaos,
        "memory": lambda **k: bench_memory(big=200_000 if q else 2_000_000, small=10_000,
                                           large=100_000 if q else 1_000_000,
                                           soak=5.0 if q else 20.0, **k),
    }
    chosen = args.only.split(",") if args.only else list(steps)
    unknown = set(chosen) - set(steps)
    if unknown:
        parser.error(f"unknown steps: {', '.join(sorted(unknown))}")
    results: dict[str, Any] = {}
    if args.only and (HERE / "results.json").exists():
        results = json.loads((HERE / "results.json").read_text())
    results.update({"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
                    "machine": machine(), "quick": q})
    with tempfile.TemporaryDirectory() as tmp, \
            SandboxProcess(ROOT / "samples" / "profiles.json") as sandbox:
        work = Path(tmp)
        for name in chosen:
            started = time.perf_counter()
            results[name] = steps[name](sandbox=sandbox, work=work)
            print(f"{name}: {json.dumps(results[name])[:400]} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_results(results)
    for name, value, ok in verdicts(results):
        print(f"{'ok  ' if ok else 'MISS'} {name}: {value}")
    print(f"wrote {HERE / 'RESULTS.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
