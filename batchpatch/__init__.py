"""batchpatch: apply a file of profile fixes to a REST API (Adobe Campaign Standard first),
one row at a time, safely: fetch, patch only what differs, read back and verify.

From Python (Airflow, Dagster, a script)::

    import batchpatch
    summary = batchpatch.run("fixes.csv", base_url="https://mc.adobe.io", org="acme",
                             client_id="...", client_secret="...")
    summary = await batchpatch.run_async("fixes.csv", url_template="https://h/p/{pkey}")
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "run", "run_async"]


async def run_async(input: str, **options: Any) -> dict[str, Any]:
    """Run a job with the command line's options as keywords; returns the summary dict.

    Raises batchpatch.errors.UsageError (exit 2 on the command line) before anything is sent
    when the options or the input cannot be used. Environment variables (BATCHPATCH_TOKEN, ...)
    apply as on the command line; pass `config=` for a TOML file and `profile=` for a table.
    """
    from .config import load_settings
    from .runner import execute

    config = options.pop("config", None)
    profile = options.pop("profile", None)
    settings = load_settings({"input": str(input), **options}, config=config, profile=profile)
    return await execute(settings)


def run(input: str, **options: Any) -> dict[str, Any]:
    """The blocking form of `run_async`, for code with no event loop of its own."""
    import asyncio

    return asyncio.run(run_async(input, **options))
