"""A local server that speaks the Adobe Campaign Standard profile API (or Campaign v8's flavour
of it) and the IMS token endpoint, over HTTP or HTTPS, with knobs for latency, rate limits,
injected faults and chaos: for the demo, the tests, the benchmarks, and for rehearsing a night's
file. The server module is imported on first use (`--help` stays fast)."""

from __future__ import annotations

from typing import Any

__all__ = ["SandboxConfig", "SandboxState", "load_profiles", "make_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
