"""Pure field semantics: what a row wants, the PATCH that gets it there, and checking the read-back.

No I/O here. Rules (see README, "Cell semantics"):
- A column is a field; `a.b` is field `b` inside object `a`. A JSONL nested object is read as
  its leaf paths, so `{"location": {"city": "X"}}` means `location.city`; `field@replace` sets
  the field to its value whole (a nested object is not merged leaf by leaf).
- CSV cells are strings typed by what the profile holds (coerce.py): int, float, bool
  (true/false, 1/0, yes/no), object/list (JSON text); a string stays a string, `"0033"`
  included. JSONL values keep their JSON types.
- An empty CSV cell leaves the field as it is; the null token (if set) means null. In JSONL an
  absent key leaves the field, `null` sets null.
- A column `field@expected` is a guard: the profile must hold that value, else `Conflict`. A
  guard on a field the row also sets is met as well when the field already holds the row's
  value (so a row that already landed, resumed or undone twice, is `unchanged`, not a conflict).
- Two columns for one field (`location` and `location.city`) make the row invalid.
- The PATCH carries only the fields that differ; a nested field is sent as its whole parent
  object merged with what GET returned, so servers that replace nested objects keep siblings.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import coerce
from .errors import CellError, Conflict
from .schema import Schema

__all__ = [
    "GUARD_SUFFIX",
    "REPLACE_SUFFIX",
    "CellError",
    "Conflict",
    "Plan",
    "check_path",
    "check_readback",
    "collisions",
    "field_same",
    "flatten",
    "get_path",
    "plan_patch",
    "same",
    "shown",
    "wanted_values",
]

GUARD_SUFFIX = "@expected"
REPLACE_SUFFIX = "@replace"
MISSING: Any = object()
_SCALARS = frozenset({str, int, bool, type(None)})


@dataclass(frozen=True, slots=True)
class Plan:
    """The PATCH body, the changes it makes ({field: [before, after]}) and the values to verify."""

    body: dict[str, Any]
    changed: dict[str, list[Any]]
    sent: dict[str, Any]
    schema: Schema | None = None


def get_path(obj: Any, path: str) -> Any:
    """The value at a dotted path, or MISSING."""
    if "." not in path:  # the common case
        return obj.get(path, MISSING) if isinstance(obj, dict) else MISSING
    for part in path.split("."):
        if not isinstance(obj, dict) or part not in obj:
            return MISSING
        obj = obj[part]
    return obj


def same(a: Any, b: Any) -> bool:
    """Equality as a user means it: 1 == 1.0, but True != 1 and "1" != 1."""
    kind = type(a)
    if kind is type(b) and kind in _SCALARS:
        return a == b  # the common case: two strings, two ints
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b or (isinstance(a, float) and isinstance(b, float)
                          and math.isnan(a) and math.isnan(b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def _is_whole(name: str) -> bool:
    return name.endswith((GUARD_SUFFIX, REPLACE_SUFFIX))


def flatten(values: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """JSONL values as leaf paths: {"location": {"city": "X"}} -> {"location.city": "X"}.
    A path given twice (`{"a": {"b": 1}, "a.b": 2}`) is a CellError."""
    flat: dict[str, Any] = {}
    for name, value in values.items():
        path = f"{prefix}{name}"
        if isinstance(value, dict) and value and not _is_whole(name):
            leaves = flatten(value, path + ".")
        else:
            leaves = {path: value}
        for leaf, leaf_value in leaves.items():
            if leaf in flat:
                raise CellError(f"field {leaf!r} is given twice")
            flat[leaf] = leaf_value
    return flat


def check_path(path: str) -> None:
    """Raise CellError for a field name with an empty part (`a..b`, `.a`)."""
    if not _good_path(path):
        raise CellError(f"bad field name {path!r}")


@functools.lru_cache(maxsize=4096)
def _good_path(path: str) -> bool:
    return bool(path) and all(part.strip() for part in path.split("."))


def collisions(paths: list[str]) -> list[tuple[str, str]]:
    """Pairs of paths where one is inside the other (`location`, `location.city`)."""
    found = []
    ordered = sorted(paths)
    for i, path in enumerate(ordered):
        for other in ordered[i + 1:]:
            if not other.startswith(path):
                break
            if other.startswith(path + "."):
                found.append((path, other))
    return found


@functools.lru_cache(maxsize=4096)
def _field_of(column: str) -> tuple[str, str]:
    """(field path, role) for a column: role is "set", "guard" or "replace"."""
    if column.endswith(GUARD_SUFFIX):
        return column[: -len(GUARD_SUFFIX)], "guard"
    if column.endswith(REPLACE_SUFFIX):
        return column[: -len(REPLACE_SUFFIX)], "replace"
    return column, "set"


def coerce_cell(cell: str, current: Any, path: str) -> Any:
    """A CSV cell as the type the profile holds at `path` (a string when it holds nothing)."""
    if current is MISSING or current is None or isinstance(current, str):
        return cell
    if isinstance(current, bool):
        return coerce.to_bool(cell, path)
    if isinstance(current, int):
        return coerce.to_int(cell, path)
    if isinstance(current, float):
        return coerce.to_float(cell, path)
    if isinstance(current, dict | list):
        return coerce.to_json(cell.strip(), path, type(current))
    return cell


def check_value(value: Any, path: str) -> Any:
    """A typed (JSONL) value as it can be sent: integers within 64 bits."""
    if isinstance(value, int) and not isinstance(value, bool):
        return coerce.check_int(value, path)
    if isinstance(value, float) and not math.isfinite(value):
        raise CellError(f"field {path!r}: {value!r} is not a number that can be sent")
    if isinstance(value, dict):
        for k, v in value.items():
            check_value(v, f"{path}.{k}")
    elif isinstance(value, list):
        for v in value:
            check_value(v, path)
    return value


def field_same(schema: Schema | None, path: str, a: Any, b: Any) -> bool:
    """`same`, or the schema's notion of it for this field (dates as instants, case policies
    modulo case)."""
    spec = schema.get(path) if schema is not None else None
    if spec is not None and (verdict := schema.same(spec, a, b)) is not None:  # type: ignore[union-attr]
        return verdict
    return same(a, b)


def wanted_values(
    profile: Mapping[str, Any],
    values: Mapping[str, Any],
    typed: bool,
    null_token: str | None = None,
    schema: Schema | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The row's wanted values and guards, typed, as ({path: value}, {path: expected}).

    A CSV cell takes the type of the value the profile holds; where it holds nothing, the
    schema's type; else it stays a string. The schema then gives the value its canonical form
    (an enumeration's name, Adobe's date notation, a case policy)."""
    wanted: dict[str, Any] = {}
    guards: dict[str, Any] = {}
    for column, value in (flatten(values) if typed else values).items():
        path, role = _field_of(column)
        check_path(path)
        spec = schema.get(path) if schema is not None else None
        if not typed:
            if value == "":
                continue
            if null_token is not None and value == null_token:
                value = None
            elif role == "replace":
                value = coerce.to_json(value.strip(), path)
                if spec is not None:
                    value = schema.typed(spec, value)  # type: ignore[union-attr]
            else:
                current = get_path(profile, path)
                if spec is not None and (current is MISSING or current is None):
                    value = schema.coerce(spec, value)  # type: ignore[union-attr]
                else:
                    value = coerce_cell(value, current, path)
        else:
            value = check_value(value, path)
            if spec is None and schema is not None and role != "guard":
                problems = schema.problems([path])  # a JSONL key past the preflight's rows
                if problems:
                    raise CellError(problems[0].replace("`", "'"))
            if spec is not None and role != "guard":
                value = schema.typed(spec, value)  # type: ignore[union-attr]
        if spec is not None and role != "replace":
            value = schema.normalize(spec, value)  # type: ignore[union-attr]
        target = guards if role == "guard" else wanted
        if path in target:
            raise CellError(f"field {path!r} is given twice ({column!r})")
        target[path] = value
    for group in (wanted, guards):
        if len(group) > 1 and any("." in p for p in group):
            pairs = collisions(list(group))
            if pairs:
                a, b = pairs[0]
                raise CellError(f"columns {a!r} and {b!r} both set {a!r}; keep one")
    return wanted, guards


def plan_patch(
    profile: Mapping[str, Any],
    values: Mapping[str, Any],
    typed: bool,
    null_token: str | None = None,
    schema: Schema | None = None,
) -> Plan:
    """What to PATCH so that `profile` holds the row's values; raises CellError or Conflict."""
    wanted, guards = wanted_values(profile, values, typed, null_token, schema)
    conflicts = {}
    for path, expected in guards.items():
        current = shown(get_path(profile, path))
        if field_same(schema, path, expected, current):
            continue
        if path in wanted and field_same(schema, path, wanted[path], current):
            continue  # already holds what the row sets: nothing to protect
        conflicts[path] = [expected, current]
    if conflicts:
        raise Conflict(conflicts)
    changed: dict[str, list[Any]] = {}
    body: dict[str, Any] = {}
    for path, value in wanted.items():
        before = shown(get_path(profile, path))  # an absent field reads as null
        if field_same(schema, path, value, before):
            continue
        changed[path] = [before, value]
        _set_merged(body, profile, path, value)
    return Plan(body=body, changed=changed, sent={p: wanted[p] for p in changed},
                schema=schema)


def shown(value: Any) -> Any:
    """A value read with get_path as the API shows it: an absent field reads as null."""
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
        path: [sent, shown(get_path(profile, path))]
        for path, sent in plan.sent.items()
        if not field_same(plan.schema, path, sent, shown(get_path(profile, path)))
    }
