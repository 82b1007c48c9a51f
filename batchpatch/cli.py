"""The command line: `batchpatch run|validate|sandbox ...`. Parses flags, hands them to config,
runs, prints the human summary on stderr and exits with the contract's status.

Heavy modules are imported inside the commands, so `batchpatch --help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from . import __version__
from .errors import EXIT_USAGE, UsageError

__all__ = ["main"]

log = logging.getLogger("batchpatch")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it to one line
        self.exit(EXIT_USAGE, f"batchpatch: error: {message}\n")


def _run_parser(sub: Any) -> None:
    p = sub.add_parser("run", help="apply a file of fixes: fetch, patch, verify",
                       description="Apply INPUT (CSV or JSONL, .gz, or - for stdin) to the API.")
    p.add_argument("input", help="CSV or JSONL file, plain or .gz; - reads standard input")
    p.add_argument("--config", help="TOML file holding any of these settings")
    p.add_argument("--profile", help="use the [profiles.NAME] table of --config")
    g = p.add_argument_group("input")
    g.add_argument("--format", choices=["csv", "jsonl"], help="input format (default: by name)")
    g.add_argument("--key-column", help="the column holding the profile key (default PKey)")
    g.add_argument("--null-token", help="a CSV cell equal to this sets the field to null")
    g.add_argument("--delimiter", help="CSV field separator (default ','; e.g. ';' or '\\t')")
    g = p.add_argument_group("target")
    g.add_argument("--base-url", help="API root, e.g. https://mc.adobe.io")
    g.add_argument("--org", help="Adobe organization id (e.g. acme-mkt-stage)")
    g.add_argument("--resource", help="API path of the resource "
                   "(default profileAndServices/profile)")
    g.add_argument("--url-template", help="any REST API: a URL with {pkey}, "
                   "e.g. https://api.example.com/v1/contacts/{pkey}")
    g.add_argument("--lookup", help="the key column is not the profile key: resolve it "
                   "through this lookup resource, e.g. byEmail (.../profile/byEmail?email=)")
    g.add_argument("--lookup-param", help="the lookup's query parameter (default: from the "
                   "name, byEmail -> email)")
    g.add_argument("--lookup-url", help="any REST API: a lookup URL with {key} answering a "
                   "list or {\"content\": [...]}")
    g = p.add_argument_group("auth (secrets: prefer the environment or a file)")
    g.add_argument("--token", help="static bearer token (env BATCHPATCH_TOKEN)")
    g.add_argument("--api-key", help="X-Api-Key header (env BATCHPATCH_API_KEY)")
    g.add_argument("--client-id", help="Adobe OAuth Server-to-Server client id")
    g.add_argument("--client-secret", help="its client secret (env BATCHPATCH_CLIENT_SECRET)")
    g.add_argument("--client-secret-file", help="read the client secret from this file")
    g.add_argument("--ims-url", help="IMS token endpoint (default Adobe's ims/token/v3)")
    g.add_argument("--scopes", help="comma-separated OAuth scopes")
    g = p.add_argument_group("pace")
    g.add_argument("--concurrency", type=int, help="rows in flight at once (default 8)")
    g.add_argument("--rate", type=float, help="requests per second, all workers together; "
                   "0 = unlimited (default 10)")
    g.add_argument("--retries", type=int, help="further attempts after a transient failure "
                   "(default 5)")
    g.add_argument("--timeout", type=float, help="seconds per request (default 30)")
    g.add_argument("--no-adaptive-rate", dest="adaptive_rate", action="store_const", const=False,
                   help="do not slow down below --rate when the server answers 429")
    g.add_argument("--max-error-rate", type=float, help="abort (exit 3) when more than this "
                   "share of recent rows fail for reasons not their own (default 0.5)")
    g.add_argument("--grace", type=float, help="seconds to let rows in flight finish after "
                   "SIGINT/SIGTERM (default 30)")
    g = p.add_argument_group("output")
    g.add_argument("--results", help="results JSONL (default INPUT-NAME.results.jsonl)")
    g.add_argument("--failures", help="failed rows, as in the input (default "
                   "INPUT-NAME.failures.EXT)")
    g.add_argument("--summary", help="summary JSON (default INPUT-NAME.summary.json)")
    g.add_argument("-q", "--quiet", action="store_const", const=True,
                   help="no human summary on stderr")
    g.add_argument("-v", "--verbose", action="count", default=0,
                   help="a log line per row (-vv: per request attempt too)")
    g.add_argument("--log-format", choices=["text", "json"],
                   help="text (default) or json: one object a line, for log pipelines")
    g.add_argument("--log-level", choices=["debug", "info", "warning", "error"],
                   help="default info")
    g.add_argument("--progress", choices=["auto", "bar", "log", "off"],
                   help="auto (default): a bar on a terminal, a log line every "
                   "--progress-every seconds otherwise")
    g.add_argument("--progress-every", type=float, help="seconds between progress log lines "
                   "(default 60)")
    g = p.add_argument_group("modes")
    g.add_argument("--dry-run", action="store_const", const=True,
                   help="send only GETs; record what would change")
    g.add_argument("--no-verify", action="store_const", const=True,
                   help="skip the read-back GET after a PATCH")
    g.add_argument("--resume", action="store_const", const=True,
                   help="finish an interrupted run: skip rows that have a record")
    g.add_argument("--limit", type=int, help="process only the first N rows")
    g.add_argument("--canary", type=int, help="process the first N rows; if any fails, stop "
                   "(exit 3) before the rest of the file touches the API")
    g.add_argument("--print-config", action="store_true",
                   help="print the merged settings (secrets masked) and exit")


def _sandbox_parser(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="serve a local stand-in of the API for rehearsals and tests")
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
    for fault in ("429", "5xx", "drop", "slow", "badjson"):
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


def _undo_parser(sub: Any) -> None:
    p = sub.add_parser("undo", help="write an input file that restores what a run changed",
                       description="From RESULTS, write OUT (.csv or .jsonl): every changed "
                       "field back to its old value, guarded by field@expected = the new value.")
    p.add_argument("results", help="a results .jsonl file of an earlier run")
    p.add_argument("-o", "--output", required=True, help="the undo file: OUT.csv or OUT.jsonl")
    p.add_argument("--key-column", default="PKey")
    p.add_argument("--null-token", default=None,
                   help="CSV only: the cell that means null (default #NULL)")


def _validate_parser(sub: Any) -> None:
    p = sub.add_parser("validate", help="check an input file offline; sends nothing",
                       description="Read INPUT as a run would and report every problem with "
                       "its line number, duplicate keys, and how each column will be read. "
                       "Exit 0: no problems; 1: problems; 2: the file cannot be used at all.")
    p.add_argument("input")
    p.add_argument("--format", choices=["csv", "jsonl"])
    p.add_argument("--key-column", default="PKey")
    p.add_argument("--null-token")
    p.add_argument("--delimiter", default=",")


def _report_parser(sub: Any) -> None:
    p = sub.add_parser("report", help="an HTML or Markdown report of a results file")
    p.add_argument("results", help="a results .jsonl file")
    p.add_argument("-o", "--output", help="report.html or report.md (default: Markdown on "
                   "standard output)")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batchpatch", description="Apply a file of profile fixes to a REST "
                     "API, safely: fetch, patch only what differs, verify.")
    parser.add_argument("--version", action="version", version=f"batchpatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _run_parser(sub)
    _validate_parser(sub)
    _undo_parser(sub)
    _report_parser(sub)
    _sandbox_parser(sub)
    return parser


def _setup_logging(level: str, fmt: str, run_id: str = "") -> None:
    from .logs import setup_logging

    setup_logging(level, fmt, run_id)


def _asyncio_run(coro: Coroutine[Any, Any, Any]) -> Any:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(coro)


_NOT_SETTINGS = {"command", "config", "profile", "verbose", "print_config"}


def _cmd_run(args: argparse.Namespace) -> int:
    import uuid

    from .config import load_settings
    from .runner import execute
    from .summary import human_summary

    options = {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}
    if options.get("delimiter"):
        options["delimiter"] = _unescape(options["delimiter"])
    if args.verbose:
        options["log_rows"] = True
        options["log_level"] = "debug" if args.verbose > 1 else options["log_level"]
    settings = load_settings(options, config=args.config, profile=args.profile)
    run_id = uuid.uuid4().hex[:12]
    _setup_logging(settings.log_level, settings.log_format, run_id)
    if args.print_config:
        import orjson

        shown = settings.shown()
        shown["sources"] = settings.sources
        sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    summary = _asyncio_run(execute(settings, handle_signals=True, run_id=run_id))
    if settings.log_format == "json":  # every stderr line stays one JSON object
        if summary["aborted"]:
            log.error("aborted: %s", summary["aborted"], extra={"event": "aborted"})
        if not settings.quiet:
            log.warning("%s", human_summary(summary), extra={"event": "summary"})
        return int(summary["exit_code"])
    if summary["aborted"]:
        print(f"batchpatch: aborted: {summary['aborted']}", file=sys.stderr)
    if not settings.quiet:
        print(human_summary(summary), file=sys.stderr)
    return int(summary["exit_code"])


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox import SandboxConfig, load_profiles, make_app, serve

    knobs = {k: v for k, v in vars(args).items() if k not in {"command", "host", "port",
                                                                "profiles"}}
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
        import signal

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    _asyncio_run(main())
    return 0


def _unescape(delimiter: str) -> str:
    """`\\t` typed on a command line means a tab."""
    return "\t" if delimiter in ("\\t", "tab") else delimiter


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate

    result = validate(args.input, args.format, args.key_column, args.null_token,
                      _unescape(args.delimiter))
    print(result.text(args.null_token))
    return 0 if result.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import build_report, render

    out = Path(args.output) if args.output else None
    text = render(build_report(Path(args.results)), out)
    if out is None:
        sys.stdout.write(text)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
        print(f"batchpatch: wrote {out}", file=sys.stderr)
    return 0


def _cmd_undo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .undo import DEFAULT_NULL_TOKEN, collect_changes, write_undo

    null_token = args.null_token or DEFAULT_NULL_TOKEN
    out = Path(args.output)
    changes = collect_changes(Path(args.results))
    for warning in write_undo(changes, out, args.key_column, null_token):
        print(f"batchpatch: warning: {warning}", file=sys.stderr)
    fields = sum(len(f) for f in changes.values())
    extra = f" --null-token '{null_token}'" if out.name.endswith((".csv", ".csv.gz")) else ""
    print(f"batchpatch: wrote {len(changes)} rows ({fields} fields) to {out}; apply it with: "
          f"batchpatch run {out}{extra} ... (same target)", file=sys.stderr)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging("info", "text")
    handlers = {"run": _cmd_run, "validate": _cmd_validate, "undo": _cmd_undo,
                "report": _cmd_report, "sandbox": _cmd_sandbox}
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        print(f"batchpatch: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
