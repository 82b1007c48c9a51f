"""Every option, declared once: its name, how a value is read, its default, its help, and which
commands take it. The command line (cli.py), the environment (`BATCHPATCH_<NAME>`), a TOML file
(`name = value`) and the Python API (`name=`) all go through these converters, so a value means
the same wherever it comes from. Defaults that belong to a policy are read from the policy
class, so each is written once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .errors import UsageError
from .secret import Secret, register_proxy_url
from .settings import (
    Credentials,
    InputSpec,
    Network,
    Pacing,
    Reporting,
    RunMode,
    TargetSpec,
)

__all__ = ["OPTIONS", "Option", "options_for"]

Converter = Callable[[Any, str], Any]  # (raw value, where it came from) -> value


def _bad(where: str, value: Any, what: str, secret: bool = False) -> UsageError:
    shown = "***" if secret else repr(value)
    return UsageError(f"{where} = {shown} is not {what}")


def text(value: Any, where: str) -> str:
    if isinstance(value, str):
        return value
    raise _bad(where, value, "text")


def schema_source(value: Any, where: str) -> str:
    """`auto`, `none` or the path of a file: never empty."""
    if isinstance(value, str) and value.strip():
        return value
    raise UsageError(f"{where} = {value!r}: give auto, none or the path of a JSON Schema file")


def secret(value: Any, where: str) -> Secret:
    if isinstance(value, Secret):
        return value
    if not isinstance(value, str):
        raise _bad(where, value, "text", secret=True)
    cleaned = value.strip()  # a token read with $(cat file) may keep a CR; a header cannot
    if any(not c.isprintable() for c in cleaned):
        raise UsageError(f"{where}: the value holds a control character (a line break?); "
                         "give the secret alone")
    return Secret(cleaned)


def boolean(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        low = value.strip().lower()
        if low in {"1", "true", "yes", "on"}:
            return True
        if low in {"0", "false", "no", "off", ""}:
            return False
    raise _bad(where, value, "true or false")


def integer(minimum: int | None = None) -> Converter:
    def convert(value: Any, where: str) -> int:
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("+-").isascii() \
                and value.strip().lstrip("+-").isdigit():
            number = int(value.strip())
        if number is None:
            raise _bad(where, value, "a whole number")
        if minimum is not None and number < minimum:
            raise UsageError(f"{where} must be at least {minimum} (got {number})")
        return number
    return convert


def number(minimum: float | None = None, above: float | None = None,
           maximum: float | None = None) -> Converter:
    def convert(value: Any, where: str) -> float:
        result: float | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            result = float(value)
        elif isinstance(value, str):
            try:
                result = float(value.strip())
            except ValueError:
                result = None
        if result is None or not math.isfinite(result):
            raise _bad(where, value, "a finite number")
        if minimum is not None and result < minimum:
            raise UsageError(f"{where} must be {minimum:g} or more (got {result:g})")
        if above is not None and result <= above:
            raise UsageError(f"{where} must be more than {above:g} (got {result:g})")
        if maximum is not None and result > maximum:
            raise UsageError(f"{where} must be at most {maximum:g} (got {result:g})")
        return result
    return convert


def proxy_url(value: Any, where: str) -> str:
    """An http:// proxy URL; its password becomes a secret of the run (masked everywhere)."""
    raw = text(value, where).strip()
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise UsageError(f"{where}: not a valid proxy URL ({exc})") from None
    if parts.scheme.lower() != "http" or not parts.hostname:
        raise UsageError(f"{where} must look like http://[user:pass@]host:port (an HTTP "
                         "proxy; HTTPS goes through it with CONNECT)")
    register_proxy_url(raw)
    return raw


def field_list(value: Any, where: str) -> tuple[str, ...]:
    """`a,b,c` (or a TOML list of names)."""
    items = value if isinstance(value, list | tuple) else text(value, where).split(",")
    names = tuple(str(item).strip() for item in items if str(item).strip())
    if not names or not all(isinstance(item, str) for item in items):
        raise _bad(where, value, "a comma-separated list of field names")
    return names


def notify_url(value: Any, where: str) -> str:
    """A webhook URL: it is a credential of its own (Slack's, Teams'), so it is masked."""
    raw = text(value, where).strip()
    Secret(raw)
    path = urlsplit(raw).path
    if len(path) >= 12:
        Secret(path)
    return raw


def auto_or(convert: Converter) -> Converter:
    """`auto` (None in the settings), or a value for `convert`."""
    def read(value: Any, where: str) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
            return None
        return convert(value, where)
    return read


def choice(*allowed: str) -> Converter:
    def convert(value: Any, where: str) -> str:
        if isinstance(value, str) and value in allowed:
            return value
        raise UsageError(f"{where} = {value!r}: choose {', '.join(allowed)}")
    return convert


def delimiter(value: Any, where: str) -> str:
    """One character; `\\t` or `tab` (as typed on a command line or in a file) is a tab."""
    raw = text(value, where)
    shown = {"\\t": "\t", "tab": "\t", "TAB": "\t"}.get(raw, raw)
    if len(shown) != 1:
        raise UsageError(f"{where} must be one character, or '\\t' for a tab (got {raw!r})")
    return shown


@dataclass(frozen=True, slots=True)
class Option:
    """One setting of the tool."""

    name: str
    convert: Converter
    default: Any
    help: str
    group: str
    commands: frozenset[str]
    #: the flag; None: the option has no flag of its own (set by another, e.g. -v)
    flag: str | None = ""
    short: str | None = None
    choices: tuple[str, ...] | None = None
    secret: bool = False
    #: a switch: the flag stores this value (True, or False for a --no-... flag)
    switch: bool | None = None
    metavar: str | None = None

    @property
    def flag_name(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    @property
    def env_name(self) -> str:
        return "BATCHPATCH_" + self.name.upper()

    def help_text(self) -> str:
        if self.default in (None, False, True) or self.switch is not None:
            return self.help
        return f"{self.help} (default {self.default:g})" if isinstance(self.default, float) \
            else f"{self.help} (default {self.default})"


# the defaults, read from the value objects that hold them
_IN, _TARGET, _CREDS = InputSpec(), TargetSpec(), Credentials()
_PACING, _NETWORK, _REPORTING, _MODE = Pacing(), Network(), Reporting(), RunMode()
_RUN = frozenset({"run"})
_WRITE = frozenset({"run", "delete"})  # commands that write through the API
_ONLINE = frozenset({"run", "validate", "delete"})  # commands that may talk to the API
_ANY = frozenset({"run", "validate", "undo", "report", "delete"})
_READ = frozenset({"run", "validate"})  # commands that read an input file
_READ_ALL = _READ | {"delete"}
_UNDO = frozenset({"run", "validate", "undo"})
_UNDO_ALL = _UNDO | {"delete"}


def _o(name: str, convert: Converter, default: Any, group: str, commands: frozenset[str],
       help: str, **kw: Any) -> Option:
    return Option(name, convert, default, help, group, commands, **kw)


OPTIONS: tuple[Option, ...] = (
    # input
    _o("format", choice("csv", "jsonl", "parquet"), None, "input", _READ_ALL,
       "input format (default: by the file name)", choices=("csv", "jsonl", "parquet")),
    _o("key_column", text, _IN.key_column, "input", _UNDO_ALL,
       "the column holding the profile key"),
    _o("null_token", text, None, "input", _UNDO,
       "a CSV cell equal to this sets the field to null"),
    _o("delimiter", delimiter, _IN.delimiter, "input", _READ,
       "CSV field separator (e.g. ';' or '\\t')"),
    # target
    _o("base_url", text, None, "target", _ONLINE, "API root, e.g. https://mc.adobe.io"),
    _o("org", text, None, "target", _ONLINE, "Adobe organization id (e.g. acme-mkt-stage)"),
    _o("resource", text, _TARGET.resource, "target", _ONLINE, "API path of the resource"),
    _o("url_template", text, None, "target", _ONLINE,
       "any REST API: a URL with {pkey}, e.g. https://api.example.com/v1/contacts/{pkey}"),
    _o("lookup", text, None, "target", _ONLINE, "the key column is not the profile key: resolve "
       "it through this lookup resource, e.g. byEmail (.../profile/byEmail?email=)"),
    _o("lookup_param", text, None, "target", _ONLINE,
       "the lookup's query parameter (default: from the name, byEmail -> email)"),
    _o("lookup_url", text, None, "target", _ONLINE,
       "any REST API: a lookup URL with {key} answering a list or {\"content\": [...]}"),
    # auth
    _o("token", secret, None, "auth", _ONLINE, "static bearer token (env BATCHPATCH_TOKEN)",
       secret=True),
    _o("api_key", secret, None, "auth", _ONLINE, "X-Api-Key header (env BATCHPATCH_API_KEY)",
       secret=True),
    _o("client_id", text, None, "auth", _ONLINE, "Adobe OAuth Server-to-Server client id"),
    _o("client_secret", secret, None, "auth", _ONLINE,
       "its client secret (env BATCHPATCH_CLIENT_SECRET)", secret=True),
    _o("client_secret_file", text, None, "auth", _ONLINE, "read the client secret from this file"),
    _o("ims_url", text, _CREDS.ims_url, "auth", _ONLINE, "IMS token endpoint"),
    _o("scopes", text, _CREDS.scopes, "auth", _ONLINE, "comma-separated OAuth scopes"),
    _o("schema", schema_source, "auto", "target", _ONLINE,
       "where field types come from: auto (Adobe's resource metadata), none, or a JSON Schema "
       "FILE of one resource"),
    # network
    _o("proxy", proxy_url, _NETWORK.proxy, "network", _ONLINE,
       "HTTP proxy for the API and IMS: http://[user:pass@]host:port (default: HTTPS_PROXY / "
       "HTTP_PROXY, minus NO_PROXY)"),
    _o("ca_bundle", text, _NETWORK.ca_bundle, "network", _ONLINE,
       "PEM file of CA certificates to trust (default: the system's, or SSL_CERT_FILE)"),
    # pace
    _o("concurrency", auto_or(integer(minimum=1)), None, "pace", _WRITE,
       "rows in flight at once, or auto (the default): sized from --rate and the latency "
       "observed (32 with --rate 0)"),
    _o("rate", number(minimum=0), _PACING.rate.rate, "pace", _ONLINE,
       "requests per second, all workers together; 0 = unlimited"),
    _o("retries", integer(minimum=0), _PACING.retry.retries, "pace", _ONLINE,
       "further attempts after a transient failure"),
    _o("timeout", number(above=0), _PACING.timeouts.request, "pace", _ONLINE,
       "seconds per request"),
    _o("adaptive_rate", boolean, _PACING.rate.adaptive, "pace", _WRITE,
       "do not slow down below --rate when the server answers 429",
       flag="--no-adaptive-rate", switch=False),
    _o("max_error_rate", number(above=0, maximum=1), _PACING.breaker.max_error_rate, "pace",
       _WRITE, "abort (exit 3) when more than this share of recent rows fail for reasons not "
       "their own"),
    _o("error_window", integer(minimum=1), _PACING.breaker.window, "pace", _WRITE,
       "how many recent rows --max-error-rate looks at"),
    _o("grace", number(minimum=0), _PACING.grace, "pace", _WRITE,
       "seconds to let rows in flight finish after SIGINT/SIGTERM"),
    _o("max_body", integer(minimum=1024), _NETWORK.max_body, "pace", _ONLINE,
       "the largest answer read, in bytes; a larger one fails the row"),
    _o("max_outage", number(minimum=0), _PACING.max_outage, "pace", _WRITE,
       "seconds to wait, probing, while the target does not answer; then abort (exit 3)"),
    # output
    _o("results", text, None, "output", _WRITE, "results JSONL (default INPUT-NAME.results.jsonl)"),
    _o("failures", text, None, "output", _WRITE,
       "failed rows, as in the input (default INPUT-NAME.failures.EXT)"),
    _o("summary", text, None, "output", _WRITE, "summary JSON (default INPUT-NAME.summary.json)"),
    _o("quiet", boolean, _REPORTING.quiet, "output", _WRITE, "no human summary on stderr",
       short="-q", switch=True),
    _o("log_format", choice("text", "json"), _REPORTING.log_format, "output", _ANY,
       "text or json: one object a line, for log pipelines", choices=("text", "json")),
    _o("log_level", choice("debug", "info", "warning", "error"), _REPORTING.log_level,
       "output", _WRITE, "log level", choices=("debug", "info", "warning", "error")),
    _o("log_rows", boolean, _REPORTING.log_rows, "output", _RUN, "a log line per row (-v)",
       flag=None),
    _o("progress", choice("auto", "bar", "log", "off"), _REPORTING.progress, "output", _WRITE,
       "auto: a bar on a terminal, a log line every --progress-every seconds otherwise",
       choices=("auto", "bar", "log", "off")),
    _o("progress_every", number(above=0), _REPORTING.progress_every, "output", _WRITE,
       "seconds between progress log lines"),
    # modes
    _o("dry_run", boolean, _MODE.dry_run, "modes", _RUN,
       "send only GETs; record what would change", switch=True),
    _o("no_verify", boolean, _MODE.no_verify, "modes", _WRITE,
       "skip the read-back GET after a PATCH", switch=True),
    _o("resume", boolean, _MODE.resume, "modes", _WRITE,
       "finish an interrupted run: skip rows that have a record", switch=True),
    _o("limit", integer(minimum=1), _MODE.limit, "modes", _WRITE, "process only the first N rows"),
    _o("on_missing", choice("fail", "skip", "create"), _MODE.on_missing, "modes", _RUN,
       "a key that does not exist: fail (not_found), skip (skipped) or create it",
       choices=("fail", "skip", "create")),
    _o("create_url", text, _MODE.create_url, "modes", _RUN, "any REST API: where "
       "--on-missing create POSTs a new profile (Adobe: the resource's collection)"),
    _o("max_changes", integer(minimum=1), _MODE.max_changes, "modes", _RUN,
       "write (patch or create) at most N rows in this run; then stop (exit 3)"),
    _o("fields", field_list, _MODE.fields, "modes", _ONLINE,
       "the only fields the file may set (comma-separated); any other column refuses the file"),
    _o("metrics_file", text, None, "output", _WRITE,
       "write Prometheus metrics here (text format, replaced atomically) every "
       "--progress-every seconds and at the end"),
    _o("metrics_job", text, None, "output", _WRITE,
       "the metrics' job label (default: the input's name without extensions)"),
    _o("notify", notify_url, None, "output", _WRITE,
       "POST the summary (JSON, with a one-line `text`) to this URL when the run ends"),
    _o("canary", integer(minimum=1), _MODE.canary, "modes", _RUN, "process the first N rows; if "
       "any fails, stop (exit 3) before the rest of the file touches the API"),
)

BY_NAME = {option.name: option for option in OPTIONS}


def options_for(command: str) -> list[Option]:
    return [option for option in OPTIONS if command in option.commands]
