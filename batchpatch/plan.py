"""Pure field semantics: what a row wants, the PATCH that gets it there, and checking the read-back.

No I/O here. Rules (see README, "Cell semantics"):
- A column is a field; `a.b` is field `b` inside object `a`. A JSONL nested object is read as
  its leaf paths, so `{"location": {"city": "X"}}` means `location.city`.
- CSV cells are strings typed by what the profile holds: int, float, bool
  (true/false, 1/0, yes/no), object/list (JSON text); a string stays a string, `"0033"` included.
  JSONL values keep their JSON types.
- An empty CSV cell leaves the field as it is; the null token (if set) means null. In JSONL an
  absent key leaves the field, `null` sets null.
- A column `field@expected` is a guard: the profile must hold that value, else `Conflict`.
- The PATCH carries only the fields that differ; a nested field is sent as its whole parent
  object merged with what GET returned, so servers that replace nested objects keep siblings.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson

__all__ = [
    "GUARD_SUFFIX",
    "CellError",
    "Conflict",
    "Plan",
    "check_path",
    "check_readback",
    "flatten",
    "get_path",
    "plan_patch",
    "same",
    "wanted_values",
]

GUARD_SUFFIX = "@expected"
MISSING: Any = object()
_TRUE = frozenset({"true", "1", "yes", "y", "t"})
_FALSE = frozenset({"false", "0", "no", "n", "f"})


class CellError(ValueError):
    """A cell cannot be read as the field's type: the row is `invalid`."""


class Conflict(Exception):
    """The profile does not hold a value a `field@expected` guard requires."""

    def __init__(self, mismatch: dict[str, list[Any]]) -> None:
        fields = ", ".join(f"{k}: expected {v[0]!r}, found {v[1]!r}" for k, v in mismatch.items())
        super().__init__(f"guard failed: {fields}")
        self.mismatch = mismatch


@dataclass(frozen=True, slots=True)
class Plan:
    """The PATCH body, the changes it makes ({field: [before, after]}) and the values to verify."""

    body: dict[str, Any]
    changed: dict[str, list[Any]]
    sent: dict[str, Any]


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING."""
    for part in path.split("."):
        if not isinstance(obj, Mapping) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def same(a: Any, b: Any) -> bool:
    """Equality as a user means it: 1 == 1.0, but True != 1 and "1" != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (math.isnan(a) and math.isnan(b))
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """JSONL values as leaf paths: {"location": {"city": "X"}} -> {"location.city": "X"}."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        path = f"{prefix}{name}"
        if isinstance(value, Mapping) and value and not name.endswith(GUARD_SUFFIX):
            flat.update(flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def check_path(path: str) -> None:
    """Raise CellError for a field name with an empty part (`a..b`, `.a`)."""
    if not path or any(not part.strip() for part in path.split(".")):
        raise CellError(f"bad field name {path!r}")


def coerce(cell: str, current: Any, path: str) -> Any:
    """A CSV cell as the type the profile holds at `path` (a string when it holds nothing)."""
    if current is MISSING or current is None or isinstance(current, str):
        return cell
    text = cell.strip()
    if isinstance(current, bool):
        low = text.lower()
        if low in _TRUE:
            return True
        if low in _FALSE:
            return False
        raise CellError(f"field {path!r}: {cell!r} is not a boolean (true/false, 1/0, yes/no)")
    if isinstance(current, int):
        try:
            return int(text)
        except ValueError:
            try:
                number = float(text)
            except ValueError:
                number = math.nan
            if number.is_integer():
                return int(number)
            raise CellError(f"field {path!r}: {cell!r} is not an integer") from None
    if isinstance(current, float):
        try:
            return float(text)
        except ValueError:
            raise CellError(f"field {path!r}: {cell!r} is not a number") from None
    if isinstance(current, dict | list):
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError:
            value = MISSING
        if type(value) is not type(current):
            kind = "object" if isinstance(current, dict) else "list"
            raise CellError(f"field {path!r}: {cell!r} is not a JSON {kind}")
        return value
    return cell


def wanted_values(
    profile: Mapping[str, Any],
    values: Mapping[str, Any],
    typed: bool,
    null_token: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's wanted values and guards, typed, as ({path: value}, {path: expected})."""
    wanted: dict[str, Any] = {}
    guards: dict[str, Any] = {}
    for path, value in (flatten(values) if typed else values).items():
        target = wanted
        if path.endswith(GUARD_SUFFIX):
            path = path[: -len(GUARD_SUFFIX)]
            target = guards
        check_path(path)
        if not typed:
            if value == "":
                continue
            if null_token is not None and value == null_token:
                value = None
            else:
                value = coerce(value, get_path(profile, path), path)
        target[path] = value
    return wanted, guards


def plan_patch(
    profile: Mapping[str, Any],
    values: Mapping[str, Any],
    typed: bool,
    null_token: str | None = None,
) -> Plan:
    """What to PATCH so that `profile` holds the row's values; raises CellError or Conflict."""
    wanted, guards = wanted_values(profile, values, typed, null_token)
    conflicts = {
        path: [expected, _shown(get_path(profile, path))]
        for path, expected in guards.items()
        if not same(expected, _shown(get_path(profile, path)))
    }
    if conflicts:
        raise Conflict(conflicts)
    changed: dict[str, list[Any]] = {}
    body: dict[str, Any] = {}
    for path, value in wanted.items():
        before = _shown(get_path(profile, path))  # an absent field reads as null
        if same(before, value):
            continue
        changed[path] = [before, value]
        _set_merged(body, profile, path, value)
    return Plan(body=body, changed=changed, sent={p: wanted[p] for p in changed})


def _shown(value: Any) -> Any:
    return None if value is MISSING else value


def _set_merged(body: dict[str, Any], profile: Mapping[str, Any], path: str, value: Any) -> None:
    """Set `path` in `body`, carrying every parent object whole, merged with the profile's."""
    parts = path.split(".")
    top = parts[0]
    if len(parts) > 1 and top not in body:
        current = profile.get(top)
        body[top] = copy.deepcopy(current) if isinstance(current, dict) else {}
    node = body
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def check_readback(plan: Plan, profile: Mapping[str, Any]) -> dict[str, list[Any]]:
    """{field: [sent, found]} for every patched field the read-back does not hold; {} if all do."""
    return {
        path: [sent, _shown(get_path(profile, path))]
        for path, sent in plan.sent.items()
        if not same(sent, _shown(get_path(profile, path)))
    }
