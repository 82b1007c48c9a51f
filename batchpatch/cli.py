"""The command line: `batchpatch run|validate|undo|report|sandbox ...`. Flags come from the option
table (options.py) and go through config.py like the environment and the TOML file; the command
runs, prints the human summary on stderr and exits with the contract's status.

Heavy modules (aiohttp, pandas) are imported inside the commands, so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Coroutine, Sequence
from typing import Any

from . import __version__
from .errors import EXIT_ABORTED, EXIT_OK, EXIT_SIGINT, EXIT_USAGE, AbortRun, UsageError
from .options import Option, options_for

__all__ = ["main"]

log = logging.getLogger("batchpatch")

_GROUPS = {"input": "input", "target": "target",
           "auth": "auth (secrets: prefer the environment or a file)",
           "network": "network", "pace": "pace", "output": "output", "modes": "modes"}
#: flags that are not settings: they say how to read the settings, or what to do with them
_NOT_SETTINGS = {"command", "config", "profile", "verbose", "print_config", "input",
                 "results_file", "output", "online"}


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse exits 2 too; keep it to one line
        _usage_error(f"batchpatch: error: {message}", _json_logs(sys.argv[1:]))
        self.exit(EXIT_USAGE)


def _add_options(parser: argparse.ArgumentParser, command: str) -> None:
    groups: dict[str, Any] = {}
    for option in options_for(command):
        if option.flag_name is None:
            continue
        group = groups.get(option.group)
        if group is None:
            group = groups[option.group] = parser.add_argument_group(_GROUPS[option.group])
        names = [option.short, option.flag_name] if option.short else [option.flag_name]
        if option.switch is not None:
            group.add_argument(*names, dest=option.name, action="store_const",
                               const=option.switch, help=option.help_text())
        else:
            group.add_argument(*names, dest=option.name, metavar=_metavar(option),
                               choices=option.choices, help=option.help_text())
    parser.add_argument("--config", help="TOML file holding any of these settings")
    parser.add_argument("--profile", help="use the [profiles.NAME] table of --config")


def _metavar(option: Option) -> str | None:
    return None if option.choices else option.name.upper()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="batchpatch", description="Apply a file of profile fixes to a REST "
                     "API, safely: fetch, patch only what differs, verify.")
    parser.add_argument("--version", action="version", version=f"batchpatch {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = sub.add_parser("run", help="apply a file of fixes: fetch, patch, verify",
                         description="Apply INPUT (CSV or JSONL, .gz, or - for stdin) to the API.")
    run.add_argument("input", help="CSV or JSONL file, plain or .gz; - reads standard input")
    _add_options(run, "run")
    run.add_argument("-v", "--verbose", action="count", default=0,
                     help="a log line per row (-vv: per request attempt too)")
    run.add_argument("--print-config", action="store_true",
                     help="print the merged settings (secrets masked) and exit")
    validate = sub.add_parser(
        "validate", help="check an input file offline; sends nothing",
        description="Read INPUT as a run would and report every problem with its line number, "
        "duplicate keys, and how each column will be read. Exit 0: no problems; 1: problems; "
        "2: the file cannot be used at all.")
    validate.add_argument("input")
    validate.add_argument("--online", action="store_true",
                          help="also check the columns against the API's schema (one metadata "
                          "request with the target and credentials flags; no profile request)")
    _add_options(validate, "validate")
    undo = sub.add_parser(
        "undo", help="write an input file that restores what a run changed",
        description="From RESULTS, write OUT (.csv or .jsonl): every changed field back to its "
        "old value, guarded by field@expected = the new value.")
    undo.add_argument("results_file", metavar="results", help="a results .jsonl file")
    undo.add_argument("-o", "--output", required=True, help="the undo file: OUT.csv or "
                      "OUT.jsonl (.gz for gzip)")
    _add_options(undo, "undo")
    report = sub.add_parser("report", help="an HTML or Markdown report of a results file")
    report.add_argument("results_file", metavar="results", help="a results .jsonl file")
    report.add_argument("-o", "--output", help="report.html or report.md (default: Markdown "
                        "on standard output)")
    report.add_argument("--summary", metavar="PATH", help="the run's summary JSON (default: "
                        "STEM.summary.json beside STEM.results.jsonl)")
    _add_options(report, "report")
    delete = sub.add_parser(
        "delete", help="delete the profiles an undo listed as created",
        description="Delete each profile FILE lists (PKey,href: the .delete.csv that "
        "`batchpatch undo` writes when a run created profiles), with run's target, credentials, "
        "pacing, resume and results. Nothing is ever deleted but by this command.")
    delete.add_argument("input", metavar="FILE", help="a .delete.csv from batchpatch undo")
    _add_options(delete, "delete")
    _sandbox_parser(sub)
    return parser


def _sandbox_parser(sub: Any) -> None:
    from .sandbox.knobs import add_sandbox_arguments

    p = sub.add_parser("sandbox", help="serve a local stand-in of the API for rehearsals and tests")
    add_sandbox_arguments(p)


def _settings_flags(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in _NOT_SETTINGS}


def _setup_logging(level: str, fmt: str, run_id: str = "") -> None:
    from .logs import setup_logging

    setup_logging(level, fmt, run_id)


def _asyncio_run(coro: Coroutine[Any, Any, Any]) -> Any:
    import asyncio

    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        from .runner import quiet_leftovers

        # a task an abort cancelled may still report its failure when it is collected
        runner.get_loop().set_exception_handler(quiet_leftovers)
        return runner.run(coro)


def _cmd_run(args: argparse.Namespace) -> int:
    import signal
    import uuid

    from .config import load_settings
    from .runner import execute
    from .summary import summary_text

    options = _settings_flags(args)
    if getattr(args, "verbose", 0):
        options["log_rows"] = True
        if args.verbose > 1:
            options["log_level"] = "debug"
    settings = load_settings({"input": args.input, **options}, config=args.config,
                             profile=args.profile, command=args.command)
    run_id = uuid.uuid4().hex[:12]
    reporting = settings.reporting
    _setup_logging(reporting.log_level, reporting.log_format, run_id)
    if getattr(args, "print_config", False):
        import orjson

        from .network import network_shown

        shown = settings.shown()
        shown["network"] = network_shown(settings)
        shown["sources"] = settings.sources
        sys.stdout.write(orjson.dumps(shown, option=orjson.OPT_INDENT_2).decode() + "\n")
        return EXIT_OK
    # a file-size limit must fail a write (and stop the run cleanly), not kill the process
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    summary = _asyncio_run(execute(settings, handle_signals=True, run_id=run_id,
                                   command=args.command))
    if reporting.log_format == "json":  # every stderr line stays one JSON object
        if summary["aborted"]:
            log.error("aborted: %s", summary["aborted"], extra={"event": "aborted"})
        if not reporting.quiet:
            log.warning("%s", summary_text(summary), extra={"event": "summary"})
        return int(summary["exit_code"])
    if summary["aborted"]:
        print(f"batchpatch: aborted: {summary['aborted']}", file=sys.stderr)
    if not reporting.quiet:
        print(summary_text(summary), file=sys.stderr)
    return int(summary["exit_code"])


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from .sandbox.knobs import run_sandbox

    return run_sandbox(args, _asyncio_run)


def _values(command: str, args: argparse.Namespace) -> dict[str, Any]:
    from .config import load_values

    values, _ = load_values(command, _settings_flags(args), config=args.config,
                            profile=args.profile)
    return values


def _cmd_validate(args: argparse.Namespace) -> int:
    from .validate import validate

    v = _values("validate", args)
    schema = None
    if v["fields"] is not None or args.online:
        from .metadata import check_fields, input_columns
        from .settings import InputSpec

        spec = InputSpec(args.input, v["format"], v["key_column"], v["delimiter"],
                         v["null_token"])
        columns = input_columns(spec)
        if v["fields"] is not None:
            check_fields(v["fields"], columns, args.input)
        if args.online:
            from .config import load_settings
            from .metadata import check_online

            settings = load_settings({"input": args.input, **_settings_flags(args)},
                                     config=args.config, profile=args.profile,
                                     command="validate")
            line, schema = _asyncio_run(check_online(settings, columns))
            print(line)
    result = validate(args.input, v["format"], v["key_column"], v["null_token"], v["delimiter"],
                      schema)
    print(result.text(v["null_token"]))
    return EXIT_OK if result.ok else 1


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .report import build_report, render

    summary = vars(args).pop("summary")  # a file to read, not a setting
    _values("report", args)
    out = Path(args.output) if args.output else None
    if out is not None and out.is_dir():
        raise UsageError(f"-o {out}: is a directory; give a file name (report.html or "
                         "report.md)")
    text = render(build_report(Path(args.results_file), Path(summary) if summary else None), out)
    if out is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write the report: {exc.strerror}") from None
    print(f"batchpatch: wrote {out}", file=sys.stderr)
    return EXIT_OK


def _cmd_undo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .undo import DEFAULT_NULL_TOKEN, collect_changes, delete_list_path, write_undo

    v = _values("undo", args)
    null_token = v["null_token"] or DEFAULT_NULL_TOKEN
    out = Path(args.output)
    changes = collect_changes(Path(args.results_file))
    for warning in write_undo(changes, out, v["key_column"], null_token):
        print(f"batchpatch: warning: {warning}", file=sys.stderr)
    fields = sum(len(f) for f in changes.fields.values())
    extra = f" --null-token '{null_token}'" if out.name.endswith((".csv", ".csv.gz")) else ""
    print(f"batchpatch: wrote {len(changes.fields)} rows ({fields} fields) to {out}; apply it "
          f"with: batchpatch run {out}{extra} ... (same target)", file=sys.stderr)
    if changes.created:
        listed = delete_list_path(out)
        print(f"batchpatch: the run created {len(changes.created)} profiles, listed in "
              f"{listed}; remove them with: batchpatch delete {listed} ... (same target)",
              file=sys.stderr)
    return EXIT_OK


def _json_logs(argv: Sequence[str]) -> bool:
    """Whether the user asked for JSON logs, read before (or without) parsing the flags."""
    for i, arg in enumerate(argv):
        if arg == "--log-format" and i + 1 < len(argv):
            return argv[i + 1] == "json"
        if arg.startswith("--log-format="):
            return arg.split("=", 1)[1] == "json"
    return os.environ.get("BATCHPATCH_LOG_FORMAT") == "json"


def _usage_error(message: str, as_json: bool) -> None:
    if as_json:
        import orjson

        line = {"level": "error", "event": "usage_error", "msg": message, "exit_code": EXIT_USAGE}
        sys.stderr.write(orjson.dumps(line).decode() + "\n")
    else:
        sys.stderr.write(message + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    _setup_logging("info", "json" if _json_logs(argv) else "text")
    handlers = {"run": _cmd_run, "validate": _cmd_validate, "undo": _cmd_undo,
                "report": _cmd_report, "sandbox": _cmd_sandbox, "delete": _cmd_run}
    try:
        return handlers[args.command](args)
    except UsageError as exc:
        from .secret import redact

        _usage_error(f"batchpatch: error: {redact(exc.message)}", _json_logs(argv))
        return EXIT_USAGE
    except AbortRun as exc:  # validate --online: the API refused the credentials, say
        from .secret import redact

        _usage_error(f"batchpatch: aborted: {redact(exc.message)}", _json_logs(argv))
        return EXIT_ABORTED
    except KeyboardInterrupt:
        return EXIT_SIGINT
    except Exception as exc:  # the last line of defence: one line, never a traceback
        from .secret import redact

        why = " ".join(f"{type(exc).__name__}: {exc}".split())
        _usage_error(f"batchpatch: aborted: unexpected error: {redact(why)}; what was recorded "
                     "is kept: run again with --resume", _json_logs(argv))
        return EXIT_ABORTED


if __name__ == "__main__":
    sys.exit(main())
