"""Logging set-up: plain text, or one JSON object a line for log pipelines.

JSON lines carry `run_id` and, where they apply, `row`, `pkey`, `status`, `attempt`,
`http_status`, `event`. Every line passes secret.RedactingFilter: no secret of the run is
written, whatever an API or an exception said.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from .secret import RedactingFilter

__all__ = ["setup_logging"]

_EXTRA = ("event", "row", "pkey", "status", "attempt", "http_status", "error", "rows_done")


class JsonFormatter(logging.Formatter):
    def __init__(self, run_id: str) -> None:
        super().__init__()
        self.run_id = run_id

    def format(self, record: logging.LogRecord) -> str:
        data = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "run_id": self.run_id,
            "msg": record.getMessage(),
        }
        for name in _EXTRA:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        return orjson.dumps(data).decode()


def setup_logging(level: str = "info", fmt: str = "text", run_id: str = "") -> None:
    """Send batchpatch's log to stderr in the chosen format (idempotent)."""
    logger = logging.getLogger("batchpatch")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter(run_id))
    else:
        handler.setFormatter(logging.Formatter("batchpatch: %(message)s"))
    handler.addFilter(RedactingFilter())
    logger.addHandler(handler)
    logger.setLevel(level.upper())
    logger.propagate = False
