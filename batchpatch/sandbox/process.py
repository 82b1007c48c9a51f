"""Run the sandbox as a separate process on loopback, and talk to its control endpoints.

Used by `make demo`, the end-to-end tests and the benchmarks: a real server, a real socket.
Given `--tls-cert FILE --tls-key FILE` among its flags the sandbox serves HTTPS and `url` starts
with https://; the control calls then trust `cafile` if given, else (loopback, test-only) skip
certificate verification.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

__all__ = ["SandboxProcess"]


class SandboxProcess:
    """`with SandboxProcess(profiles) as sbx:` starts `batchpatch sandbox` on a free port."""

    def __init__(self, profiles: str | Path, *flags: str, startup_timeout: float = 20.0,
                 cafile: str | Path | None = None) -> None:
        self.profiles = str(profiles)
        self.flags = list(flags)
        self.startup_timeout = startup_timeout
        self.cafile = None if cafile is None else str(cafile)
        self.url = ""
        self._proc: subprocess.Popen[str] | None = None

    def start(self) -> SandboxProcess:
        cmd = [sys.executable, "-m", "batchpatch", "sandbox", "--port", "0",
               "--profiles", self.profiles, *self.flags]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        assert self._proc.stdout is not None
        line = self._proc.stdout.readline()  # the server prints its address when it listens
        if "listening on" not in line:
            self.stop()
            err = self._proc.stderr.read() if self._proc.stderr else ""
            raise RuntimeError(f"sandbox did not start: {line!r} {err[-2000:]}")
        self.url = line.rsplit(" ", 1)[1].strip()
        return self

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()

    def __enter__(self) -> SandboxProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- control endpoints ---------------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30, context=self._tls()) as resp:
            return json.loads(resp.read())

    def _tls(self) -> ssl.SSLContext | None:
        if not self.url.startswith("https://"):
            return None
        if self.cafile is not None:
            return ssl.create_default_context(cafile=self.cafile)
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context

    def reset(self, profiles: list[dict[str, Any]] | None = None, **config: Any) -> None:
        """Fresh state: these profiles (or the loaded ones, as they are now) and these knobs."""
        body: dict[str, Any] = {"config": config}
        if profiles is not None:
            body["profiles"] = profiles
        self._call("POST", "/_sandbox/reset", body)

    def configure(self, **config: Any) -> None:
        self._call("POST", "/_sandbox/config", config)

    def profiles_now(self) -> dict[str, dict[str, Any]]:
        return self._call("GET", "/_sandbox/state")["profiles"]

    def stats(self, times: bool = False) -> dict[str, Any]:
        return self._call("GET", "/_sandbox/stats" + ("?times=1" if times else ""))
