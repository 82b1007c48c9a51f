"""After a run: the failures file rebuilt from every record (after a resume), and a finished
run's results compacted to one record per row with its journal removed."""

from __future__ import annotations

import contextlib
import logging
import os

from .errors import InputBroken, UsageError
from .resume import Journal, PriorResults, compact
from .rows import open_input
from .settings import Settings

__all__ = ["rebuild_failures", "tidy"]

log = logging.getLogger("batchpatch")


def rebuild_failures(settings: Settings, final: PriorResults) -> None:
    """After a resume, the failures file lists the failed rows of every record, whether or not
    this run got as far as them: one more pass over the input, written atomically."""
    assert settings.outputs is not None
    path = settings.outputs.failures
    tmp = path.with_name(path.name + ".tmp")
    spec = settings.input
    try:
        source = open_input(spec.path, spec.format, spec.key_column, spec.delimiter)
    except UsageError:
        return
    try:
        out = source.failures_file(tmp)
        try:
            with contextlib.suppress(InputBroken):
                for row in source:
                    if final.listed(row.line):
                        out.write(row.raw)
            out.sync()
        finally:
            out.close()
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("%s: could not list every failed row: %s", path, exc.strerror or exc)
    finally:
        source.close()


def tidy(settings: Settings, journal: Journal, resumed: bool, keep_journal: bool) -> None:
    """A finished run: one record per row (the last), and no journal left to replay, unless
    a failure that --resume will retry may have written (its entry gives the before-values)."""
    assert settings.outputs is not None
    results = settings.outputs.results
    try:
        if resumed:
            compact(results)
        if keep_journal:
            journal.close()
        else:
            journal.remove()
    except OSError as exc:
        log.warning("%s: could not tidy the results: %s", results, exc.strerror or exc)
