"""Arrow values as the API can take them: the JSON types a JSONL row would carry.

One converter per column, chosen once from the column's Arrow type, turns each Python value
that `to_pylist()` gives into a JSON value, or raises `Unsendable` with a text naming the column
(the row is then `invalid`; nothing is rounded or dropped silently):

- null, bool, integers and strings as they are; integers beyond 64 bits are refused later by
  plan.check_value, as for JSONL.
- floats as they are; NaN and ±inf are refused (orjson writes NaN as null: it would wipe the
  field).
- decimals exactly: with no fractional part and within 64 bits an int; else a float only when
  the float is the same number (`Decimal("1.5")`); else refused (`Decimal("0.1")`).
- structs as nested objects (read as `a.b` leaves, like JSONL), lists as lists, dictionary
  (categorical) columns as their values.
- timestamps with a time zone as UTC ISO 8601 with `Z`, naive ones as they are (no suffix);
  the fraction is shown only when it is not zero, in 3, 6 or 9 digits, whichever is exact;
  dates as `YYYY-MM-DD`, times of day as `HH:MM:SS[.ffffff]`.
- binary and every other type (durations, maps, ...) are refused.

`exact_number` and `iso_datetime` are used by frames.py too, for dicts spooled to JSON Lines.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pyarrow as pa

__all__ = ["Converter", "Unsendable", "converter", "exact_number", "iso_datetime"]

#: a column's value converter: None when values go as they are
Converter = Callable[[Any], Any] | None

_INT64 = 2**63


class Unsendable(ValueError):
    """A value that has no exact JSON form the API takes; the text names the column."""


def exact_number(value: Decimal, where: str) -> int | float:
    """A Decimal as an int or a float holding exactly the same number; else Unsendable, its
    text starting with `where` ("column 'price'")."""
    if not value.is_finite():
        raise Unsendable(f"{where}: {value} is not a number that can be sent")
    if value == value.to_integral_value() and -_INT64 <= value < _INT64:
        return int(value)
    as_float = float(value)
    if math.isfinite(as_float) and Decimal(as_float) == value:
        return as_float
    raise Unsendable(f"{where}: the decimal {value} has no exact JSON number (a float would "
                     "round it); cast the column to string or to float in the data")


def iso_datetime(value: dt.datetime) -> str:
    """ISO 8601: an aware datetime in UTC with `Z`, a naive one as it is. Nanoseconds (a pandas
    Timestamp, which `to_pylist()` gives for `ns` columns) are kept."""
    aware = value.tzinfo is not None
    if aware:
        value = value.astimezone(dt.UTC)
    nanos = value.microsecond * 1000 + getattr(value, "nanosecond", 0)
    text = (f"{value.year:04d}-{value.month:02d}-{value.day:02d}T"
            f"{value.hour:02d}:{value.minute:02d}:{value.second:02d}")
    if nanos:
        digits = f"{nanos:09d}"
        width = 3 if nanos % 1_000_000 == 0 else 6 if nanos % 1000 == 0 else 9
        text += "." + digits[:width]
    return text + ("Z" if aware else "")


def converter(arrow_type: pa.DataType, where: str) -> Converter:
    """The converter for values of `arrow_type`; `where` is the column's path (`a.b`)."""
    import pyarrow as pa

    t = pa.types
    if (t.is_null(arrow_type) or t.is_boolean(arrow_type) or t.is_integer(arrow_type)
            or t.is_string(arrow_type) or t.is_large_string(arrow_type)
            or t.is_string_view(arrow_type)):
        return None
    if t.is_floating(arrow_type):
        return _float(where)
    if t.is_decimal(arrow_type):
        label = f"column {where!r}"
        return lambda v: None if v is None else exact_number(v, label)
    if t.is_timestamp(arrow_type):
        return lambda v: None if v is None else iso_datetime(v)
    if t.is_date(arrow_type):
        return lambda v: None if v is None else v.isoformat()
    if t.is_time(arrow_type):
        return _time(where)
    if t.is_struct(arrow_type):
        return _struct(arrow_type, where)
    if (t.is_list(arrow_type) or t.is_large_list(arrow_type)
            or t.is_fixed_size_list(arrow_type) or t.is_list_view(arrow_type)
            or t.is_large_list_view(arrow_type)):
        return _list(arrow_type.value_type, where)
    if t.is_dictionary(arrow_type):
        return converter(arrow_type.value_type, where)
    if (t.is_binary(arrow_type) or t.is_large_binary(arrow_type)
            or t.is_fixed_size_binary(arrow_type) or t.is_binary_view(arrow_type)):
        return _refuse(f"column {where!r}: binary data cannot be sent (JSON has no bytes); "
                       "cast the column to string in the data")
    return _refuse(f"column {where!r}: values of type {arrow_type} cannot be sent; cast the "
                   "column to a string, number or boolean in the data")


def _float(where: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is not None and not math.isfinite(value):
            why = "JSON has no NaN; sent as null it would wipe the field" \
                if math.isnan(value) else "JSON has no infinity"
            raise Unsendable(f"column {where!r}: {value} cannot be sent ({why})")
        return value
    return convert


def _time(where: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.time):
            raise Unsendable(f"column {where!r}: the time {value} cannot be sent exactly")
        return value.isoformat()
    return convert


def _struct(arrow_type: pa.StructType, where: str) -> Callable[[Any], Any]:
    fields = [(f.name, converter(f.type, f"{where}.{f.name}")) for f in arrow_type]

    def convert(value: Any) -> Any:
        if value is None:
            return None
        return {name: value[name] if conv is None else conv(value[name])
                for name, conv in fields}
    return convert


def _list(value_type: pa.DataType, where: str) -> Callable[[Any], Any]:
    item = converter(value_type, f"{where}[]")

    def convert(value: Any) -> Any:
        if value is None or item is None:
            return value
        return [item(v) for v in value]
    return convert


def _refuse(problem: str) -> Callable[[Any], Any]:
    def convert(value: Any) -> Any:
        if value is not None:
            raise Unsendable(problem)
        return None
    return convert
