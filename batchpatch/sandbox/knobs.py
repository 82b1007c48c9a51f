"""`batchpatch sandbox`: its command-line knobs, and serving (over TLS if given a certificate)
until SIGINT/SIGTERM. Every knob of SandboxConfig but `ignore_fields` has a `--kebab-name` flag;
`--schema` takes a JSON file; `--tls-cert`/`--tls-key` exist only here (not at run time)."""

from __future__ import annotations

import argparse
import json
import signal
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

from ..errors import EXIT_OK, UsageError
from .config import CHAOS_KINDS, CHAOS_METHODS, CHOICES, REDIRECT_STATUSES, SandboxConfig

if TYPE_CHECKING:
    import ssl

__all__ = ["add_sandbox_arguments", "run_sandbox"]

FAULTS = ("429", "5xx", "drop", "slow", "badjson", "500")
DEFAULTS = SandboxConfig()
NOT_KNOBS = {"command", "host", "port", "profiles", "tls_cert", "tls_key"}


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
    p.add_argument("--rate-limit-shape", choices=CHOICES["rate_limit_shape"],
                   default=DEFAULTS.rate_limit_shape,
                   help="sliding: any last second; bucket: token bucket (nginx limit_req "
                   "burst nodelay); window: fixed windows")
    p.add_argument("--rate-limit-burst", type=float, default=DEFAULTS.rate_limit_burst,
                   metavar="N", help="bucket shape: tokens when full")
    p.add_argument("--rate-limit-window", type=float, default=DEFAULTS.rate_limit_window,
                   metavar="SECONDS", help="window shape: seconds per window")
    p.add_argument("--chaos", type=float, default=DEFAULTS.chaos, metavar="P",
                   help="share of API requests that get one misbehaviour from --chaos-kinds")
    p.add_argument("--chaos-kinds", type=_kinds, default=DEFAULTS.chaos_kinds,
                   metavar="KIND,KIND", help=f"from {','.join(CHAOS_KINDS)} (default: all)")
    p.add_argument("--chaos-methods", type=_methods, default=DEFAULTS.chaos_methods,
                   metavar="METHOD,METHOD",
                   help=f"chaos only for these, from {','.join(CHAOS_METHODS)} (default: all)")
    p.add_argument("--chaos-elsewhere", default=DEFAULTS.chaos_elsewhere, metavar="URL",
                   help="where the redirect_elsewhere misbehaviour points")
    p.add_argument("--redirect-status", type=int, default=DEFAULTS.redirect_status,
                   choices=REDIRECT_STATUSES, help="the status of every redirect answered")
    p.add_argument("--redirect-hops", type=int, default=DEFAULTS.redirect_hops, metavar="N",
                   help="API requests of --redirect-methods first get N same-origin redirects")
    p.add_argument("--redirect-methods", type=_method_list,
                   default=DEFAULTS.redirect_methods, metavar="METHOD,METHOD",
                   help="the methods --redirect-hops applies to (default: GET)")
    p.add_argument("--ims-redirect", default=DEFAULTS.ims_redirect, metavar="URL",
                   help="IMS answers a redirect to URL instead of a token")
    p.add_argument("--echo-request", action="store_true",
                   help="error answers echo the request's headers and body (secrets included)")
    p.add_argument("--schema", metavar="FILE",
                   help="JSON file: the resourceType content (default: inferred from profiles)")
    p.add_argument("--metadata", choices=CHOICES["metadata"], default=DEFAULTS.metadata,
                   help="the resourceType endpoint: on, off (404) or broken (HTML)")
    p.add_argument("--flavor", choices=CHOICES["flavor"], default=DEFAULTS.flavor,
                   help="acs, or v8 (Campaign v8's answers where they differ)")
    p.add_argument("--tls-cert", metavar="FILE", help="serve HTTPS with this certificate (PEM)")
    p.add_argument("--tls-key", metavar="FILE", help="the certificate's private key (PEM)")
    p.add_argument("--slow-seconds", type=float, default=5.0)
    p.add_argument("--retry-after", default="1", help="Retry-After sent with injected 429s")
    p.add_argument("--token", default="", help="require this static bearer token")
    p.add_argument("--api-key", default="", help="require this X-Api-Key")
    p.add_argument("--client-id", default="", help="accept IMS tokens for this client id")
    p.add_argument("--client-secret", default="")
    p.add_argument("--token-lifetime", type=float, default=86399.0)
    p.add_argument("--ims-expires-in", default="", metavar="JSON",
                   help="JSON text IMS answers as expires_in (default: the token lifetime)")
    p.add_argument("--seed", type=int)


def run_sandbox(args: argparse.Namespace,
                run: Callable[[Coroutine[Any, Any, None]], Any]) -> int:
    from .server import load_profiles, make_app, serve

    knobs = {k: v for k, v in vars(args).items() if k not in NOT_KNOBS}
    knobs["schema"] = _read_schema(args.schema) if args.schema else None
    config = SandboxConfig()
    try:
        config.update(knobs)
    except ValueError as exc:
        raise UsageError(f"sandbox: {exc}") from None
    try:
        profiles = load_profiles(args.profiles)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{args.profiles}: cannot load profiles: {exc}") from None
    tls = _tls_context(args.tls_cert, args.tls_key)

    import asyncio

    async def main() -> None:
        runner = await serve(make_app(config, profiles), args.host, args.port, tls)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    run(main())
    return EXIT_OK


def _kinds(text: str) -> list[str]:
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in kinds if k not in CHAOS_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown chaos kind {(unknown or [text])[0]!r}; "
                                         f"known: {', '.join(CHAOS_KINDS)}")
    return kinds


def _methods(text: str) -> list[str]:
    methods = [m.strip().upper() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in CHAOS_METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown chaos method {(unknown or [text])[0]!r}; "
                                         f"known: {', '.join(CHAOS_METHODS)}")
    return methods


def _method_list(text: str) -> list[str]:
    return [m.strip().upper() for m in text.split(",") if m.strip()]


def _read_schema(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: cannot read the schema: {exc}") from None


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert and not key:
        return None
    if not (cert and key):
        raise UsageError("sandbox: --tls-cert and --tls-key go together")
    import ssl  # here, not at the top: every batchpatch command builds this parser

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{cert}: cannot load the certificate and key: {exc}") from None
    return context
