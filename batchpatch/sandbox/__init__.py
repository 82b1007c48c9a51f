"""A local server that speaks the Adobe Campaign Standard profile API and the IMS token endpoint,
with knobs for latency, rate limits and injected faults: for the demo, the tests, the benchmarks,
and for rehearsing a night's file. The server module is imported on first use (`--help` stays
fast)."""

from __future__ import annotations

from typing import Any

__all__ = ["SandboxConfig", "SandboxState", "load_profiles", "make_app", "serve"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(name)
