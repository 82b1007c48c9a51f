"""The API's schema (pure): which fields exist, their types, enumerations, data policies and
which are read-only; read from Adobe's resource metadata (`resourceType`) or from a JSON Schema
of one resource. Used to refuse a file with unknown or read-only columns before anything is
sent (preflight), and for every row: typing a CSV cell where the profile holds nothing,
enumerations matched case-insensitively, dates compared as dates, data policies applied.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from .errors import CellError

__all__ = ["READ_ONLY", "EnumValue", "FieldSpec", "Schema", "from_adobe", "from_json_schema"]

#: fields Adobe never lets a PATCH write (it documents no per-field flag)
READ_ONLY = frozenset({"PKey", "href", "created", "lastModified", "createdBy",
                       "lastModifiedBy"})
#: data policies that only change letter case: values equal modulo case are the same value
#: (`email` lower-cases an address, as `lowerCase` does)
CASE_POLICIES = frozenset({"smartCase", "lowerCase", "upperCase", "email"})
_INTEGER_RES = frozenset({"int64", "int32", "int16", "int8", "long", "short", "byte", "int",
                          "integer", "uint64", "uint32"})
_FLOAT_RES = frozenset({"double", "float", "percent", "decimal", "number"})


@dataclass(frozen=True, slots=True)
class EnumValue:
    name: str
    label: str | None = None


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field: its kind (string, integer, float, boolean, date, datetime, enumeration,
    object, link, collection, unknown), and what else the schema says."""

    path: str
    kind: str
    values: tuple[EnumValue, ...] = ()
    policy: str | None = None
    read_only: bool = False
    #: for objects: whether the schema lists their fields (else any sub-field is accepted)
    closed: bool = False


@dataclass(frozen=True)
class Schema:
    """Fields by dotted path (objects and their fields both listed)."""

    fields: dict[str, FieldSpec]
    source: str
    names: tuple[str, ...] = field(default=())

    def get(self, path: str) -> FieldSpec | None:
        return self.fields.get(path)

    def problems(self, columns: Iterable[str]) -> list[str]:
        """Why each column cannot be written: unknown (with the closest valid name) or
        read-only. Guards (`@expected`) and the key column are for the caller to leave out."""
        out = []
        for column in columns:
            if (why := self._problem(column)) is not None:
                out.append(why)
        return out

    def _problem(self, column: str) -> str | None:
        parts = column.split(".")
        for depth in range(1, len(parts) + 1):
            path = ".".join(parts[:depth])
            spec = self.fields.get(path)
            if spec is None:
                siblings = self._children(".".join(parts[: depth - 1]))
                hint = _closest(parts[depth - 1], siblings)
                prefix = ".".join(parts[: depth - 1])
                hint = f"; did you mean `{prefix + '.' if prefix else ''}{hint}`?" if hint else ""
                return f"`{column}`: no such field{hint}"
            if spec.read_only:
                return f"`{column}`: read-only ({path} cannot be written)"
            if spec.kind == "link":
                rest = parts[depth:]
                if rest == ["PKey"]:
                    return None
                return f"`{column}`: a link; write it by PKey (`{path}.PKey`)"
            if spec.kind == "collection":
                return f"`{column}`: a collection, not written through a profile"
            if spec.kind != "object" or not spec.closed:
                if depth < len(parts) and spec.kind != "object":
                    return f"`{column}`: {path} is a {spec.kind}, it has no fields"
                return None
        return None

    def _children(self, parent: str) -> list[str]:
        prefix = parent + "." if parent else ""
        return [p[len(prefix):] for p in self.fields
                if p.startswith(prefix) and "." not in p[len(prefix):]]

    # -- values ----------------------------------------------------------------------------
    def coerce(self, spec: FieldSpec, cell: str) -> Any:
        """A CSV cell as the schema's type (where the profile gives none)."""
        from . import coerce

        kind = spec.kind
        if kind == "integer":
            return coerce.to_int(cell, spec.path)
        if kind == "float":
            return coerce.to_float(cell, spec.path)
        if kind == "boolean":
            return coerce.to_bool(cell, spec.path)
        if kind == "object":
            return coerce.to_json(cell.strip(), spec.path, dict)
        return cell

    def typed(self, spec: FieldSpec, value: Any) -> Any:
        """A JSON (or Parquet) value checked against the field's type: a number for a number
        field (42.0 is 42 for an integer one), true/false for a boolean, text for text and
        dates; a string for a number or a boolean is read as a CSV cell would be. CellError
        if it is none of these."""
        from . import coerce

        kind = spec.kind
        if value is None or kind in _ANY_VALUE:
            return value
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if isinstance(value, str):
            if kind in ("integer", "float", "boolean"):
                return self.coerce(spec, value)
            if kind != "object":
                return value
        elif kind == "integer" and number:
            if isinstance(value, int):
                return value
            if value.is_integer():
                return coerce.check_int(int(value), spec.path, value)
        elif kind == "object" and isinstance(value, dict):
            self.check_object(spec.path, value)
            return value
        elif ((kind == "float" and number) or (kind == "boolean" and isinstance(value, bool))
              or (kind == "enumeration" and isinstance(value, int) and number)
              or (kind == "list" and isinstance(value, list))):
            return value
        raise CellError(f"field {spec.path!r}: {_shown(value)} is not {_KIND_WORDS[kind]}")

    def check_object(self, path: str, value: dict[str, Any]) -> None:
        """A whole object (`field@replace`): CellError for a sub-field the schema does not
        have, or a value not of its sub-field's type."""
        for name, item in value.items():
            sub = f"{path}.{name}"
            spec = self.fields.get(sub)
            if spec is None:
                if (problem := self._problem(sub)) is not None:
                    raise CellError(problem.replace("`", "'"))
                continue
            self.typed(spec, item)

    def normalize(self, spec: FieldSpec, value: Any) -> Any:
        """The value as the API will hold it: an enumeration's canonical name, a date or
        datetime in Adobe's notation, a case policy applied. CellError if it cannot be."""
        if value is None:
            return None
        if spec.kind == "enumeration" and spec.values:
            return _enum_name(spec, value)
        if spec.kind == "datetime" and isinstance(value, str):
            return format_datetime(parse_datetime(value, spec.path))
        if spec.kind == "date" and isinstance(value, str):
            return parse_date(value, spec.path).isoformat()
        if spec.policy in CASE_POLICIES and isinstance(value, str):
            return apply_policy(spec.policy, value)
        return value

    def same(self, spec: FieldSpec, wanted: Any, found: Any) -> bool | None:
        """Whether two values are the same for this field; None: compare them as they are."""
        if wanted is None or found is None or not isinstance(found, str):
            return None
        if spec.kind == "datetime" and isinstance(wanted, str):
            try:
                return parse_datetime(wanted, spec.path) == parse_datetime(found, spec.path)
            except CellError:
                return None
        if spec.kind == "date" and isinstance(wanted, str):
            try:
                return parse_date(wanted, spec.path) == parse_date(found, spec.path)
            except CellError:
                return None
        if spec.policy in CASE_POLICIES and isinstance(wanted, str):
            return wanted.casefold() == found.casefold()
        return None


#: kinds whose values the schema does not constrain here (links and collections are refused by
#: name, by the preflight)
_ANY_VALUE = frozenset({"unknown", "link", "collection"})
_KIND_WORDS = {"integer": "an integer", "float": "a number", "boolean": "true or false",
               "string": "text", "date": "a date (text)", "datetime": "a date and time (text)",
               "enumeration": "one of its values", "object": "an object", "list": "a list"}


def _shown(value: Any) -> str:
    kind = ("a list" if isinstance(value, list) else "an object" if isinstance(value, dict)
            else "a boolean" if isinstance(value, bool) else "a number"
            if isinstance(value, int | float) else "text")
    text = repr(value)
    return f"{kind} ({text[:40] + '...' if len(text) > 40 else text})"


def _closest(name: str, candidates: list[str]) -> str | None:
    folded = {c.casefold(): c for c in candidates}
    if name.casefold() in folded:
        return folded[name.casefold()]
    found = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return found[0] if found else None


def _enum_name(spec: FieldSpec, value: Any) -> str:
    text = str(value).strip().casefold() if isinstance(value, str | int) else None
    for item in spec.values:
        if text is not None and (item.name.casefold() == text
                                 or (item.label and item.label.casefold() == text)):
            return item.name
    allowed = ", ".join(v.name for v in spec.values[:12])
    more = f" and {len(spec.values) - 12} more" if len(spec.values) > 12 else ""
    raise CellError(f"field {spec.path!r}: {value!r} is not one of its values ({allowed}{more})")


# -- dates ---------------------------------------------------------------------------------
_DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?"
    r"\s*(Z|[+-]\d{2}(?::?\d{2})?)?", re.IGNORECASE)


def parse_datetime(text: str, path: str) -> datetime:
    """An instant from ISO 8601 (`T` or space, `Z` or an offset, with or without fractions);
    a value with no zone is taken as UTC, as Adobe writes them."""
    found = _DATETIME.fullmatch(text.strip())
    if found is None:
        raise CellError(f"field {path!r}: {text!r} is not a date and time "
                        "(e.g. 2024-05-01 10:00:00Z)")
    year, month, day, hour, minute, second, fraction, zone = found.groups()
    try:
        micro = int((fraction or "0").ljust(6, "0")[:6])
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0),
                          int(second or 0), micro, tzinfo=_zone(zone))
    except ValueError as exc:
        raise CellError(f"field {path!r}: {text!r} is not a date and time ({exc})") from None
    return moment.astimezone(UTC)


def _zone(text: str | None) -> timezone:
    if not text or text.upper() == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
    return timezone(sign * timedelta(hours=hours, minutes=minutes))


def format_datetime(moment: datetime) -> str:
    """Adobe's notation: `2017-06-05 13:23:44.870Z`."""
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_date(text: str, path: str) -> date:
    try:
        return date.fromisoformat(text.strip()[:10]) if len(text.strip()) == 10 else \
            parse_datetime(text, path).date()
    except ValueError:
        raise CellError(f"field {path!r}: {text!r} is not a date (e.g. 2024-05-01)") from None


def apply_policy(policy: str, value: str) -> str:
    if policy in ("lowerCase", "email"):
        return value.lower()
    if policy == "upperCase":
        return value.upper()
    return re.sub(r"[^\W_]+", lambda m: m.group(0)[:1].upper() + m.group(0)[1:].lower(), value)


# -- sources -------------------------------------------------------------------------------
def _kind(node: Mapping[str, Any]) -> str:
    kind = str(node.get("type") or "").lower()
    res = str(node.get("resType") or "").lower()
    if isinstance(node.get("content"), Mapping) and kind not in ("link", "collection"):
        return "object"
    if kind == "enumeration" or (node.get("values") and kind in ("", "string")):
        return "enumeration"
    if kind in ("link", "collection", "boolean", "date", "datetime"):
        return kind
    if kind == "time" or res == "time":
        return "string"  # a time of day: sent as given, never read as a date
    if kind == "timestamp" or res in ("datetime", "timestamp"):
        return "datetime"
    if res in _INTEGER_RES or kind in ("integer", "int", "long", "short", "byte"):
        return "integer"
    if res in _FLOAT_RES or kind in ("number", "double", "float"):
        return "float" if res not in _INTEGER_RES else "integer"
    if res == "boolean":
        return "boolean"
    if kind in ("string", "memo", "text", "html", "email", "uuid") or res in ("string", "memo"):
        return "string"
    return "unknown"


def _values(node: Mapping[str, Any]) -> tuple[EnumValue, ...]:
    raw = node.get("values")
    items: list[tuple[Any, Any]] = []
    if isinstance(raw, Mapping):
        for key, item in raw.items():
            if isinstance(item, Mapping):
                items.append((item.get("value", item.get("name", key)), item.get("label")))
            else:
                items.append((key, item if isinstance(item, str) else None))
    elif isinstance(raw, list):
        for item in raw:
            if isinstance(item, Mapping):
                items.append((item.get("value", item.get("name")), item.get("label")))
            elif isinstance(item, str):
                items.append((item, None))
    return tuple(EnumValue(str(name), str(label) if label is not None else None)
                 for name, label in items if name is not None)


def from_adobe(answer: Any, source: str) -> Schema:
    """A Schema from Adobe's resourceType answer ({"content": {FIELD: {...}}}); ValueError if
    the answer is not that shape."""
    content = answer.get("content") if isinstance(answer, Mapping) else None
    if not isinstance(content, Mapping) or not content:
        raise ValueError("the metadata has no `content` object of fields")
    fields: dict[str, FieldSpec] = {}

    def walk(nodes: Mapping[str, Any], prefix: str) -> None:
        for key, node in nodes.items():
            if not isinstance(node, Mapping):  # a field we cannot read: known, not typed
                fields[prefix + str(key)] = FieldSpec(prefix + str(key), "unknown")
                continue
            name = str(node.get("apiName") or key)
            path = prefix + name
            kind = _kind(node)
            policy = node.get("dataPolicy") if isinstance(node.get("dataPolicy"), str) else None
            read_only = (name in READ_ONLY and not prefix) or node.get("readOnly") is True \
                or (kind == "collection")
            sub = node.get("content")
            fields[path] = FieldSpec(path, kind, _values(node), policy or None, read_only,
                                     closed=isinstance(sub, Mapping) and bool(sub))
            if isinstance(sub, Mapping) and kind == "object":
                walk(sub, path + ".")

    walk(content, "")
    return Schema(fields, source)


def from_json_schema(doc: Any, source: str) -> Schema:
    """A Schema from a JSON Schema of one resource (`properties` with `type`, `enum`,
    `format: date|date-time`, `readOnly`); ValueError if it has no properties."""
    if not isinstance(doc, Mapping) or not isinstance(doc.get("properties"), Mapping):
        raise ValueError("a JSON Schema with an object of `properties` is needed")
    fields: dict[str, FieldSpec] = {}

    def walk(props: Mapping[str, Any], prefix: str) -> None:
        for name, node in props.items():
            if not isinstance(node, Mapping):  # a field we cannot read: known, not typed
                fields[prefix + str(name)] = FieldSpec(prefix + str(name), "unknown")
                continue
            path = prefix + name
            kinds = node.get("type")
            kind = next((k for k in kinds if k != "null"), "string") if isinstance(kinds, list) \
                else (kinds or ("object" if "properties" in node else "unknown"))
            fmt = node.get("format")
            mapped = {"integer": "integer", "number": "float", "boolean": "boolean",
                      "string": "string", "object": "object", "array": "list"}.get(kind, "unknown")
            if mapped == "string" and fmt == "date":
                mapped = "date"
            elif mapped == "string" and fmt == "date-time":
                mapped = "datetime"
            values: tuple[EnumValue, ...] = ()
            if isinstance(node.get("enum"), list):
                mapped = "enumeration"
                values = tuple(EnumValue(str(v)) for v in node["enum"] if v is not None)
            sub = node.get("properties")
            fields[path] = FieldSpec(path, mapped, values, node.get("x-dataPolicy"),
                                     node.get("readOnly") is True,
                                     closed=isinstance(sub, Mapping) and bool(sub))
            if isinstance(sub, Mapping):
                walk(sub, path + ".")

    walk(doc["properties"], "")
    return Schema(fields, source)
