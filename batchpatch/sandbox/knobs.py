"""`batchpatch sandbox`: its command-line knobs, and serving until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from ..errors import EXIT_OK, UsageError

__all__ = ["add_sandbox_arguments", "run_sandbox"]

FAULTS = ("429", "5xx", "drop", "slow", "badjson")


def add_sandbox_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765, help="0 picks a free port")
    p.add_argument("--profiles", required=True, help="JSON or JSONL file of profiles (PKey each)")
    p.add_argument("--org", default="demo")
    p.add_argument("--get-shape", choices=["wrapped", "bare"], default="wrapped")
    p.add_argument("--nested-patch", choices=["replace", "merge"], default="replace")
    p.add_argument("--href-alias", action="store_true",
                   help="PATCH answers an href with another PKey string for the same profile")
    p.add_argument("--latency-ms", type=float, default=0.0)
    p.add_argument("--rate-limit", type=float, default=0.0, help="requests/s before 429s")
    for fault in FAULTS:
        p.add_argument(f"--fault-{fault}", type=float, default=0.0, metavar="P",
                       help=f"share of requests answered with the '{fault}' fault")
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument("--retry-after", default="1", help="Retry-After sent with injected 429s")
    p.add_argument("--token", default="", help="require this static bearer token")
    p.add_argument("--api-key", default="", help="require this X-Api-Key")
    p.add_argument("--client-id", default="", help="accept IMS tokens for this client id")
    p.add_argument("--client-secret", default="")
    p.add_argument("--token-lifetime", type=float, default=86399.0)
    p.add_argument("--seed", type=int)


def run_sandbox(args: argparse.Namespace,
                run: Callable[[Coroutine[Any, Any, None]], Any]) -> int:
    from .server import SandboxConfig, load_profiles, make_app, serve

    knobs = {k: v for k, v in vars(args).items()
             if k not in {"command", "host", "port", "profiles"}}
    config = SandboxConfig()
    config.update(knobs)
    try:
        profiles = load_profiles(args.profiles)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.profiles}: cannot load profiles: {exc}") from None

    async def main() -> None:
        runner = await serve(make_app(config, profiles), args.host, args.port)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    run(main())
    return EXIT_OK
