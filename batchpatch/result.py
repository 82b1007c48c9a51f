"""What the Python API returns: the summary dict, and the failed rows of in-memory input."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["RunResult"]


class RunResult(dict[str, Any]):
    """The run's summary dict; `failed_rows` holds the failed rows of in-memory input."""

    def __init__(self, summary: Mapping[str, Any], failed_rows: Any = None) -> None:
        super().__init__(summary)
        #: DataFrame (DataFrame/Arrow input), list of dicts (iterable input), None (a path)
        self.failed_rows = failed_rows
