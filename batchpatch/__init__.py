"""batchpatch: apply a file of profile fixes to a REST API (Adobe Campaign Standard first),
one row at a time, safely: fetch, patch only what differs, read back and verify.

From Python (Airflow, Dagster, a script)::

    import batchpatch
    summary = batchpatch.run("fixes.csv", base_url="https://mc.adobe.io", org="acme",
                             client_id="...", client_secret="...")
    summary = await batchpatch.run_async("fixes.csv", url_template="https://h/p/{pkey}")

The input may also be data in memory: a pandas DataFrame, a pyarrow Table, RecordBatch or
RecordBatchReader, or an iterable of dicts; `results=` is then required, and the data is
spooled beside it (`<results>.input.parquet` or `.input.jsonl`, see frames.py)::

    result = batchpatch.run(df, results="out/fixes.results.jsonl", url_template=...)
    result["failed"], result["failures"]      # the summary, as for a file
    result.failed_rows                        # the failed rows: a DataFrame here

Both return a RunResult: the summary dict (the same JSON as --summary) with the attribute
`failed_rows` (a DataFrame for DataFrame/Arrow input, a list of dicts for dicts, None for a
path).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .result import RunResult

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from .settings import Settings

__version__ = "0.2.0"
__all__ = ["RunResult", "__version__", "run", "run_async"]


async def run_async(input: Any, **options: Any) -> RunResult:
    """Run a job with the command line's options as keywords; returns the summary dict.

    `input` is a path (str or os.PathLike), a pandas DataFrame, a pyarrow Table, RecordBatch
    or RecordBatchReader, or an iterable of dicts (then `results=` is required). Raises
    batchpatch.errors.UsageError (exit 2 on the command line) before anything is sent when the
    options or the input cannot be used. Environment variables (BATCHPATCH_TOKEN, ...) apply
    as on the command line; pass `config=` for a TOML file and `profile=` for a table.
    """
    import os
    from pathlib import Path

    from .config import load_settings
    from .errors import UsageError
    from .frames import is_path, spool_for
    from .resume import RunLock
    from .runner import execute

    config = options.pop("config", None)
    profile = options.pop("profile", None)
    if is_path(input):
        settings = load_settings({"input": os.fspath(input), **options}, config=config,
                                 profile=profile)
        return RunResult(await execute(settings))
    spool = spool_for(input, options.get("results"))
    if options.get("format") not in (None, spool.format):
        raise UsageError(f"format={options['format']!r} is for files; this data is read as "
                         f"{spool.format}")
    settings = load_settings({**options, "input": str(spool.path), "format": spool.format},
                             config=config, profile=profile)
    with RunLock(spool.path):
        spool.write(settings.input.key_column, _resume_check(settings, spool.path))
        summary = await execute(settings)
        return RunResult(summary, spool.failed_rows(Path(summary["failures"])))


def _resume_check(settings: Settings, spool: Path) -> Callable[[Path], None] | None:
    """For `resume=True` over results already there: the manifest check on the new data,
    before they replace the first run's spool, so that a refused resume changes nothing."""
    import dataclasses

    from .assembly import manifest_content
    from .resume import Manifest

    assert settings.outputs is not None
    results = settings.outputs.results
    if not settings.mode.resume or not results.exists():
        return None

    def check(staged: Path) -> None:
        staged_input = dataclasses.replace(settings.input, path=str(staged))
        content = manifest_content(dataclasses.replace(settings, input=staged_input))
        content["input"]["path"] = str(spool.resolve())
        Manifest(results).check(content)

    return check


def run(input: Any, **options: Any) -> RunResult:
    """The blocking form of `run_async`, for code with no event loop of its own."""
    import asyncio

    return asyncio.run(run_async(input, **options))
