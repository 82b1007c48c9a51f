"""Where the schema comes from (`--schema auto|none|FILE`) and the preflight that checks a file's
columns against it before the first profile request.

`auto` (the default for Adobe targets) asks the API once, through the run's client (same auth,
pacing, retries): `GET {base}/{org}/campaign/{api}/resourceType/{name}`. A metadata endpoint
that is missing or unreadable gives a warning and the run goes on typing cells from the
profiles alone; credentials it rejects abort the run as any request would.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import orjson

from .api import ApiClient, Attempts
from .columns import outside_fields, writable
from .errors import AbortRun, BatchpatchError, UsageError
from .plan import flatten
from .policy import RetryPolicy
from .rows import open_input
from .schema import Schema, from_adobe, from_json_schema
from .settings import InputSpec, Settings, TargetSpec

__all__ = ["PREFLIGHT_ROWS", "check_fields", "input_columns", "load_schema", "metadata_url",
           "preflight"]

log = logging.getLogger("batchpatch")

#: rows of a JSON Lines or Parquet file read for its columns before the run (later rows with
#: a column the schema does not know are `invalid`)
PREFLIGHT_ROWS = 1000
METADATA_RETRY = RetryPolicy(retries=1, server_error_retries=1)


def metadata_url(spec: TargetSpec) -> str | None:
    """Adobe's resourceType URL for the target's resource; None for other APIs."""
    if not (spec.base_url and spec.org) or spec.url_template:
        return None
    parts = [p for p in spec.resource.strip("/").split("/") if p]
    if len(parts) < 2:
        return None
    root = spec.target().template.split("/campaign/")[0]
    return f"{root}/campaign/{parts[0]}/resourceType/{parts[-1]}"


def read_schema_file(path: str) -> Schema:
    try:
        data = orjson.loads(Path(path).read_bytes())
    except FileNotFoundError:
        raise UsageError(f"--schema {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--schema {path}: is a directory, not a JSON Schema file") from None
    except orjson.JSONDecodeError as exc:
        raise UsageError(f"--schema {path}: not JSON ({exc})") from None
    except OSError as exc:
        raise UsageError(f"--schema {path}: cannot read: {exc.strerror}") from None
    try:
        if isinstance(data, dict) and isinstance(data.get("content"), dict):
            return from_adobe(data, path)
        return from_json_schema(data, path)
    except ValueError as exc:
        raise UsageError(f"--schema {path}: {exc}") from None


async def load_schema(settings: Settings, client: ApiClient) -> Schema | None:
    """The schema the run types and checks against, or None (today's behaviour)."""
    setting = settings.schema
    if setting == "none":
        return None
    if setting != "auto":
        return read_schema_file(setting)
    url = metadata_url(settings.target_spec)
    if url is None:
        return None
    try:  # one retry at most: an endpoint answering nonsense is not worth the night's wait
        data: Any = await client.get_json(url, Attempts(), retry=METADATA_RETRY)
    except AbortRun:
        raise
    except BatchpatchError as exc:
        log.warning("no schema from %s (%s); cells are typed from the profiles only", url,
                    exc.message, extra={"event": "schema"})
        return None
    try:
        schema = from_adobe(data, url)
    except ValueError as exc:
        log.warning("cannot read the schema at %s (%s); cells are typed from the profiles "
                    "only", url, exc, extra={"event": "schema"})
        return None
    log.debug("schema: %d fields from %s", len(schema.fields), url)
    return schema


def input_columns(spec: InputSpec, opened: Any = None) -> list[str]:
    """The fields the input writes: CSV's header, or the keys of the first PREFLIGHT_ROWS
    records of a JSON Lines or Parquet file (nested objects as dotted paths). Standard input
    cannot be read twice: only its header counts (later rows are checked one by one)."""
    if opened is not None and opened.columns is not None:
        return [c for c in opened.columns if c != spec.key_column]
    if spec.path == "-":
        return []
    source = open_input(spec.path, spec.format, spec.key_column, spec.delimiter)
    try:
        if source.columns is not None:
            return [c for c in source.columns if c != spec.key_column]
        seen: dict[str, None] = {}
        for i, row in enumerate(source):
            if i >= PREFLIGHT_ROWS:
                break
            if row.problem is None:
                try:
                    seen.update(dict.fromkeys(flatten(row.values) if row.typed else row.values))
                except BatchpatchError:
                    continue
        return list(seen)
    finally:
        source.close()


def check_fields(allowed: Iterable[str], columns: Iterable[str], where: str) -> None:
    """--fields: UsageError (exit 2) naming every column outside the allow-list (guards
    aside; `location.city` is allowed by `location` or `location.city`)."""
    names = set(allowed)
    extra = outside_fields(names, columns)
    if extra:
        raise UsageError(f"{where}: column{'s' if len(extra) > 1 else ''} outside --fields "
                         f"({', '.join(sorted(names))}): {', '.join(extra)}; nothing sent")


def preflight(schema: Schema, columns: Iterable[str], where: str) -> None:
    """UsageError (exit 2) with one line listing every column the API would refuse."""
    problems = schema.problems(writable(columns))
    if problems:
        raise UsageError(f"{where}: the API would refuse {len(problems)} column"
                         f"{'s' if len(problems) > 1 else ''} (schema from {schema.source}): "
                         + "; ".join(problems))


async def check_online(settings: Settings, columns: list[str]) -> tuple[str, Schema | None]:
    """`validate --online`: one metadata request and the preflight; UsageError (exit 2) when
    the API would refuse the file, else a line saying what was checked, and the schema (for
    `validate` to type every cell with)."""
    from .auth import ImsAuth, StaticAuth
    from .counters import Counters
    from .pacing import Pacer
    from .transport import AiohttpTransport

    if settings.schema == "none":
        raise UsageError("--online checks the file against a schema: give --schema auto (an "
                         "Adobe target) or --schema FILE")
    transport = AiohttpTransport(settings.network)
    counters = Counters()
    c = settings.credentials
    auth = (ImsAuth(transport, c.client_id, c.client_secret, c.scopes, c.ims_url,
                    counters=counters) if c.client_id and c.client_secret
            else StaticAuth(c.token, c.api_key))
    client = ApiClient(transport, auth, Pacer(settings.pacing.rate, counters),
                       settings.pacing.retry, counters)
    try:
        schema = await load_schema(settings, client)
    finally:
        await transport.close()
    if schema is None:
        where = metadata_url(settings.target_spec) or "this target"
        return (f"online: no schema from {where}; the columns could not be checked (a run "
                "types cells from the profiles only)"), None
    preflight(schema, columns, settings.input.path)
    return (f"online: every column is a writable field of {schema.source}; every cell is "
            "checked against its field's type below"), schema
