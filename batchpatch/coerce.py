"""Typing a CSV cell (pure): the text becomes the type of the field, never a guess that loses.

Where the type comes from is the caller's business (the schema, else the value the profile
holds); here are the rules for each type. A number is exact or refused: only ASCII digits (no
`1_000`, no `١٢٣`), never NaN or infinity, an integer within 64 bits and never rounded
(`9007199254740993.0` is 9007199254740993; `1.5` and `1.0000000000000001` are not integers).
"""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation
from typing import Any

import orjson

from .errors import CellError

__all__ = ["INT64_MAX", "INT64_MIN", "check_int", "to_bool", "to_float", "to_int", "to_json"]

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


def check_int(value: int, path: str, shown: Any = None) -> int:
    """`value` if it fits in 64 bits (what JSON APIs and our serialiser carry)."""
    if not INT64_MIN <= value <= INT64_MAX:
        raise CellError(f"field {path!r}: {shown if shown is not None else value!r} is beyond "
                        "the 64-bit integer range")
    return value


def to_int(cell: str, path: str) -> int:
    text = cell.strip()
    if _INTEGER.fullmatch(text):
        return check_int(int(text), path, cell)
    if _DECIMAL.fullmatch(text):
        try:
            number = Decimal(text)
        except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
            number = Decimal("NaN")
        if number.is_finite() and number == number.to_integral_value():
            if abs(number.adjusted()) > 20:  # far beyond 64 bits; do not build the integer
                raise CellError(f"field {path!r}: {cell!r} is beyond the 64-bit integer range")
            return check_int(int(number), path, cell)
    raise CellError(f"field {path!r}: {cell!r} is not an integer")


def to_float(cell: str, path: str) -> float:
    text = cell.strip()
    if _DECIMAL.fullmatch(text):
        value = float(text)
        if math.isfinite(value):
            return value
        raise CellError(f"field {path!r}: {cell!r} is out of the range of a number")
    raise CellError(f"field {path!r}: {cell!r} is not a number")


def to_bool(cell: str, path: str) -> bool:
    low = cell.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise CellError(f"field {path!r}: {cell!r} is not a boolean (true/false, 1/0, yes/no)")


def to_json(cell: str, path: str, kind: type | None = None) -> Any:
    """A JSON text as its value; `kind` (dict or list) if given must match."""
    try:
        value = orjson.loads(cell)
    except orjson.JSONDecodeError:
        value = _NOT_JSON
    if value is _NOT_JSON or (kind is not None and type(value) is not kind):
        what = {dict: "a JSON object", list: "a JSON list"}.get(kind, "JSON")  # type: ignore[arg-type]
        raise CellError(f"field {path!r}: {cell!r} is not {what}")
    return value


_NOT_JSON: Any = object()
