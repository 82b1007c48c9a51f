"""A proxy.py plugin for the network tests, loaded into the proxy's own process (see
tests/forward_proxy.py, which starts it with `--plugins proxy_plugin.LoopbackNames`).

- Host names ending in `.batchpatch.test` resolve to 127.0.0.1, for the proxy only: batchpatch
  cannot resolve them, so a target named so is reachable through the proxy alone, and a run
  that succeeds against it proves its requests went through the proxy.
- Every request the proxy forwards (after its own --basic-auth check) is appended to the file
  named by BATCHPATCH_TEST_PROXY_LOG, one `METHOD host:port/path` line each (a CONNECT line
  for a tunnel), written when the request arrives rather than when its connection closes.
"""

from __future__ import annotations

import os
from typing import Any

from proxy.http.parser import HttpParser
from proxy.http.proxy import HttpProxyBasePlugin

__all__ = ["TEST_DOMAIN", "LoopbackNames"]

TEST_DOMAIN = ".batchpatch.test"


class LoopbackNames(HttpProxyBasePlugin):
    """Resolves the test domain to loopback and logs every forwarded request."""

    def resolve_dns(self, host: str, port: int) -> tuple[str | None, Any]:
        if host.lower().endswith(TEST_DOMAIN):
            return "127.0.0.1", None
        return None, None

    def before_upstream_connection(self, request: HttpParser) -> HttpParser | None:
        return request

    def handle_client_request(self, request: HttpParser) -> HttpParser | None:
        path = os.environ.get("BATCHPATCH_TEST_PROXY_LOG")
        if path:
            host = (request.host or b"?").decode("latin-1")
            where = f"{host}:{request.port}{(request.path or b'').decode('latin-1')}"
            line = f"{(request.method or b'?').decode('latin-1')} {where}\n".encode()
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)  # one write with O_APPEND: lines never interleave
            finally:
                os.close(fd)
        return request

    def handle_upstream_chunk(self, chunk: memoryview) -> memoryview:
        return chunk

    def on_upstream_connection_close(self) -> None:
        return None
