"""`make demo`: start the sandbox on loopback, run the sample fixes against it, show the summary,
stop the sandbox. The sandbox requires a token and an API key, as Adobe does, answers 5xx to 1%
of requests (so the demo shows retries), and serves resource metadata with a smartCase data
policy on names and enumerations (samples/schema.json): a name typed in lower case comes back
normalised and is still `updated`, or `unchanged` when it already matched."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from batchpatch.sandbox.process import SandboxProcess

HERE = Path(__file__).parent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0, help="unused: the sandbox takes a free port")
    parser.parse_args()
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    flags = ["--token", "demo-token", "--api-key", "demo-key", "--fault-5xx", "0.01",
             "--latency-ms", "5", "--seed", "7", "--schema", str(HERE / "schema.json")]
    with SandboxProcess(HERE / "profiles.json", *flags) as sandbox:
        print(f"sandbox: {sandbox.url} (org 'demo'; profiles from {HERE / 'profiles.json'})",
              flush=True)
        env = {**os.environ, "BATCHPATCH_TOKEN": "demo-token", "BATCHPATCH_API_KEY": "demo-key"}
        cmd = [sys.executable, "-m", "batchpatch", "run", str(HERE / "fixes.csv"),
               "--base-url", sandbox.url, "--org", "demo", "--rate", "200", "--concurrency", "16",
               "--results", str(out / "fixes.results.jsonl"),
               "--failures", str(out / "fixes.failures.csv"),
               "--summary", str(out / "fixes.summary.json"),
               "--metrics-file", str(out / "fixes.prom")]
        print("$ batchpatch run samples/fixes.csv --base-url", sandbox.url,
              "--org demo --rate 200 --concurrency 16 --results samples/out/... "
              "--metrics-file samples/out/fixes.prom "
              "(token and API key from BATCHPATCH_TOKEN / BATCHPATCH_API_KEY)", flush=True)
        code = subprocess.call(cmd, env=env)
    report = out / "fixes.report.html"
    subprocess.call([sys.executable, "-m", "batchpatch", "report",
                     str(out / "fixes.results.jsonl"), "-o", str(report)],
                    stderr=subprocess.DEVNULL)
    print(f"\nexit status {code} (1 = finished, some rows failed: the unknown keys and the two "
          "bad rows, on purpose)")
    print(f"each row's record: {out / 'fixes.results.jsonl'}")
    print(f"the failed rows, ready to fix and feed back: {out / 'fixes.failures.csv'}")
    print(f"a report to read: {report} (batchpatch report RESULTS -o report.html|report.md)")
    print(f"metrics for Prometheus' textfile collector: {out / 'fixes.prom'}")
    return 0 if code in (0, 1) else code


if __name__ == "__main__":
    sys.exit(main())
