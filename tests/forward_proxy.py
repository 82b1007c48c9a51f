"""A real HTTP forward proxy on loopback for the network tests: proxy.py (PyPI `proxy.py`, in
the test extra) in a process of its own, with the plugin in tests/proxy_plugin.py.

    with ForwardProxy(tmp_path, basic_auth=("user", "pass")) as proxy:
        proxy.url                  # http://127.0.0.1:PORT       (no credentials)
        proxy.url_with_auth        # http://user:pass@127.0.0.1:PORT
        ... run batchpatch against http://api.batchpatch.test:PORT (only the proxy resolves it)
        proxy.forwarded()          # ["GET api.batchpatch.test:PORT/demo/...", "POST ..."]

The port is the one proxy.py picked itself (`--port 0 --port-file`); `forwarded()` lists the
requests it forwarded, in arrival order, written by the plugin as each one arrives (proxy.py's
own access log is written when a connection closes, one line per connection, too late and too
coarse for a test). A request refused for want of the right --basic-auth is not forwarded and
not listed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

__all__ = ["ForwardProxy"]

HERE = Path(__file__).resolve().parent


class ForwardProxy:
    """proxy.py on a free loopback port; see the module docstring."""

    def __init__(self, workdir: Path, basic_auth: tuple[str, str] | None = None,
                 startup_timeout: float = 20.0) -> None:
        self.workdir = workdir
        self.basic_auth = basic_auth
        self.startup_timeout = startup_timeout
        self.port = 0
        self.port_file = workdir / "proxy.port"
        self.log_file = workdir / "proxy.log"  # proxy.py's own log (startup, errors)
        self.forward_log = workdir / "proxy.forwarded"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url_with_auth(self) -> str:
        """The URL with its --basic-auth user and password (percent-encoded, as a URL must)."""
        assert self.basic_auth is not None
        user, password = (quote(part, safe="") for part in self.basic_auth)
        return f"http://{user}:{password}@127.0.0.1:{self.port}"

    def forwarded(self) -> list[str]:
        if not self.forward_log.exists():
            return []
        return self.forward_log.read_text().splitlines()

    def start(self) -> ForwardProxy:
        cmd = [sys.executable, "-m", "proxy", "--hostname", "127.0.0.1", "--port", "0",
               "--port-file", str(self.port_file), "--num-workers", "1",
               "--num-acceptors", "1", "--log-level", "INFO", "--log-file", str(self.log_file),
               "--plugins", "proxy_plugin.LoopbackNames"]
        if self.basic_auth is not None:
            cmd += ["--basic-auth", ":".join(self.basic_auth)]
        env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
        env.update(PYTHONPATH=os.pathsep.join([str(HERE), env.get("PYTHONPATH", "")]),
                   BATCHPATCH_TEST_PROXY_LOG=str(self.forward_log),
                   HOME=str(self.workdir))  # proxy.py keeps its data and cache in ~/.proxy
        self._proc = subprocess.Popen(cmd, cwd=self.workdir, env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + self.startup_timeout
        while not self._listening():
            if self._proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                err = self._proc.stderr.read().decode(errors="replace") if self._proc.stderr \
                    else ""
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise RuntimeError(f"proxy.py did not start: {err[-2000:]} {log[-2000:]}")
            time.sleep(0.05)  # polling for the port file, not waiting out a race
        return self

    def _listening(self) -> bool:
        try:
            text = self.port_file.read_text().strip()
        except FileNotFoundError:
            return False
        if not text.isdigit():
            return False
        self.port = int(text)
        return True

    def stop(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()

    def __enter__(self) -> ForwardProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
