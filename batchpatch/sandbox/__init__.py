"""A local server that speaks the Adobe Campaign Standard profile API and the IMS token endpoint,
with knobs for latency, rate limits and injected faults: for the demo, the tests, the benchmarks,
and for rehearsing a night's file."""

from .server import SandboxConfig, SandboxState, load_profiles, make_app, serve

__all__ = ["SandboxConfig", "SandboxState", "load_profiles", "make_app", "serve"]
