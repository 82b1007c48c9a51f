"""A tiny HTTP server that records every request it gets: the "other origin" of the redirect
tests, which must receive nothing (no credentials, no PATCH body, no IMS form).

    with Recorder() as other:          # listens on a free loopback port, in a thread
        ... other.url ...              # http://127.0.0.1:PORT
        assert other.requests == [] and other.connections == 0

Every connection is counted when accepted, before a byte is read, so a client that connected
and sent something unreadable still shows; every request is kept whole (method, path, headers,
body). Whatever is asked, it answers 200 with `{}`.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple

__all__ = ["Recorded", "Recorder"]


class Recorded(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, recorder: Recorder) -> None:
        self.recorder = recorder
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[Any, Any]:
        accepted = super().get_request()
        with self.recorder.lock:
            self.recorder.connections += 1
        return accepted


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def _record(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        recorder = self.server.recorder
        with recorder.lock:
            recorder.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
        answer = b"{}"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = do_HEAD = _record

    def log_message(self, format: str, *args: Any) -> None:
        return None  # quiet: the test reads `requests`


class Recorder:
    """An HTTP server on a free loopback port that keeps every request (see the module doc).

    State, shared with the server's threads under `lock`: `requests` in arrival order and
    `connections` accepted."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Recorded] = []
        self.connections = 0
        self._server = _Server(self)
        self._thread = threading.Thread(target=self._server.serve_forever, name="recorder",
                                        daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def received(self) -> bytes:
        """Everything it was sent, as one text to search (request lines, headers, bodies)."""
        with self.lock:
            return b"".join(
                f"{r.method} {r.path}\n".encode()
                + "".join(f"{k}: {v}\n" for k, v in r.headers.items()).encode() + r.body
                for r in self.requests)

    def __enter__(self) -> Recorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
