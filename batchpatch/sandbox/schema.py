"""The profile resource's schema: inferred from the loaded profiles or given by the `schema`
knob, served as Adobe's resourceType document, and applied to every write.

A schema is the `content` of Adobe's resourceType answer: an object keyed by field name, each
`{"apiName", "type", "resType", "dataPolicy", "category", "label"}`; a sub-object (`location`)
has `"type": "item"` and its own `content`; an enumeration has `"type": "enumeration"` and
`values` keyed by value name, each `{"value": NAME, "label": LABEL}`; a link has
`"type": "link"` and `resTarget`. A given schema may leave out any of these keys but `type`
(default `string`); `normalize` fills them in. A given field may also carry `"readOnly": true`
(Adobe documents no such flag; the sandbox honours it so tests can add read-only fields).

Inference, from the first non-null value each field holds in any profile: str → string/string,
a str shaped `YYYY-MM-DD HH:MM:SS.mmmZ` → datetime/datetime, `YYYY-MM-DD` → date/date,
int → number/int64, float → number/double, bool → boolean/boolean, a dict holding a PKey →
link, another dict → item (its content inferred the same way), a list → collection; no value →
string. `PKey` and `href` (string) and `created` and `lastModified` (datetime) are always there,
as Adobe lists them. Inferred fields have dataPolicy `none`: writes are stored as sent.

Writes (`conform`, for PATCH and POST of both APIs), field by field; null is always stored as is:
- string with dataPolicy `smartCase`: every letter that starts the text or follows a space, a
  hyphen or an apostrophe is upper-cased, every other letter lower-cased
  (`"jean-PIERRE o'neil"` → `"Jean-Pierre O'Neil"`; simple on purpose, so `"it's"` → `"It'S"`);
  `lowerCase` and `email` lower-case (the sandbox checks no e-mail syntax); `upperCase`
  upper-cases; any other policy (`none`, `phone`, `identifier`...) stores the value as sent;
- enumeration: the value must be one of the listed value names, exactly (case-sensitive);
- datetime: ISO 8601 (`T` or a space, with or without fractions, `Z`, an offset, or none:
  UTC) is stored in Adobe's form `2024-05-01 10:00:00.000Z`, in UTC;
- date: stored as `YYYY-MM-DD` (a datetime keeps the date as written);
- item: the same rules inside, against the item's own content.
A value these rules refuse (an enumeration value not listed, a date that does not parse)
raises `Refused`: the answer is Campaign's generic 500 and nothing is written.
"""

from __future__ import annotations

import copy
import re
from datetime import UTC, date, datetime
from typing import Any

__all__ = ["ALWAYS", "GENERIC_ERROR", "Refused", "conform", "document", "infer", "normalize",
           "read_only", "smart_case"]

#: What Campaign answers, with no detail, when a write holds a value the schema refuses.
GENERIC_ERROR = "An error has occurred - please contact your administrator"

#: The resType a field gets when the schema gives only its type.
RES_TYPES = {"string": "string", "number": "int64", "boolean": "boolean", "date": "date",
             "datetime": "datetime", "enumeration": "string", "link": "link", "item": "item",
             "collection": "collection"}

#: Fields every profile resource lists, with the type inference gives them.
ALWAYS = {"PKey": "string", "href": "string", "created": "datetime", "lastModified": "datetime"}

ADOBE_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}Z")
ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
WORD_START = re.compile(r"(^|[\s'-])(\w)")


class Refused(Exception):
    """A written value the schema does not accept; the message is what the server answers."""


# -- building a schema -------------------------------------------------------------------------
def infer(profiles: list[dict[str, Any]]) -> dict[str, Any]:
    """The schema the loaded profiles imply (see the module docstring)."""
    content = _infer_content(profiles, "profile")
    for name, kind in ALWAYS.items():
        if name not in content:
            content[name] = _field(name, kind, RES_TYPES[kind], "profile")
    return content


def _infer_content(objects: list[dict[str, Any]], category: str) -> dict[str, Any]:
    first: dict[str, Any] = {}  # field -> its first non-null value (None: none yet)
    nested: dict[str, list[dict[str, Any]]] = {}  # field -> every object it holds
    for obj in objects:
        for name, value in obj.items():
            if first.get(name) is None:
                first[name] = value
            if isinstance(value, dict):
                nested.setdefault(name, []).append(value)
    return {name: _infer_field(name, value, nested.get(name, []), category)
            for name, value in first.items()}


def _infer_field(name: str, first: Any, nested: list[dict[str, Any]],
                 category: str) -> dict[str, Any]:
    if isinstance(first, bool):
        return _field(name, "boolean", "boolean", category)
    if isinstance(first, int):
        return _field(name, "number", "int64", category)
    if isinstance(first, float):
        return _field(name, "number", "double", category)
    if isinstance(first, dict) and "PKey" in first:
        return {**_field(name, "link", "link", category), "resTarget": name}
    if isinstance(first, dict):
        return {**_field(name, "item", "item", category), "content": _infer_content(nested, name)}
    if isinstance(first, list):
        return {**_field(name, "collection", "collection", category), "resTarget": name}
    if isinstance(first, str) and ADOBE_DATETIME.fullmatch(first):
        return _field(name, "datetime", "datetime", category)
    if isinstance(first, str) and ISO_DATE.fullmatch(first):
        return _field(name, "date", "date", category)
    return _field(name, "string", "string", category)


def _field(name: str, kind: str, res_type: str, category: str) -> dict[str, Any]:
    return {"apiName": name, "type": kind, "resType": res_type, "dataPolicy": "none",
            "category": category, "label": _label(name)}


def _label(name: str) -> str:
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).split()
    return " ".join([words[0].capitalize(), *(w.lower() for w in words[1:])]) if words else name


def normalize(given: Any, category: str = "profile") -> dict[str, Any]:
    """A given schema with every key filled in; ValueError on a shape the sandbox cannot use.
    Accepts the content object itself, or a whole resourceType document holding it."""
    if isinstance(given, dict) and isinstance(given.get("content"), dict) and "name" in given:
        given = given["content"]
    if not isinstance(given, dict):
        raise ValueError("schema must be a JSON object keyed by field name")
    content: dict[str, Any] = {}
    for name, spec in given.items():
        if not isinstance(spec, dict):
            raise ValueError(f"schema field {name!r} must be a JSON object")
        kind = str(spec.get("type", "string"))
        entry = {**_field(name, kind, RES_TYPES.get(kind, kind), category), **copy.deepcopy(spec)}
        entry["type"] = kind
        if kind == "enumeration":
            entry["values"] = _enum_values(name, spec.get("values"))
        if "content" in spec:
            entry["content"] = normalize(spec["content"], name)
        content[name] = entry
    return content


def _enum_values(name: str, values: Any) -> dict[str, Any]:
    """Enumeration values keyed by name, from an object keyed by name or a list of objects."""
    out: dict[str, Any] = {}
    if isinstance(values, dict):
        for key, spec in values.items():
            label = spec.get("label", key) if isinstance(spec, dict) else spec
            out[str(key)] = {"value": str(key), "label": str(label)}
        return out
    if isinstance(values, list):
        for item in values:
            if isinstance(item, dict) and ("value" in item or "name" in item):
                key = str(item.get("value", item.get("name")))
                out[key] = {"value": key, "label": str(item.get("label", key))}
            elif isinstance(item, str):
                out[item] = {"value": item, "label": item}
            else:
                raise ValueError(f"schema field {name!r}: an enumeration value needs a name")
        return out
    raise ValueError(f"schema field {name!r}: an enumeration needs its values")


def document(content: dict[str, Any], href: str, collection: str) -> dict[str, Any]:
    """Adobe's resourceType answer for the profile resource."""
    return {"content": content, "data": collection, "filters": {"href": href + "/filters"},
            "href": href, "label": "Profiles", "name": "profile", "schema": "nms:recipient",
            "type": "item", "mandatory": False, "readOnly": False}


def read_only(content: dict[str, Any]) -> set[str]:
    """Fields a given schema marks `"readOnly": true`."""
    return {name for name, spec in content.items() if spec.get("readOnly") is True}


# -- applying it to writes ---------------------------------------------------------------------
def conform(content: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    """`body` as the server stores it (data policies and types applied); raises Refused."""
    return {name: _conform_value(content.get(name), value) for name, value in body.items()}


def _conform_value(spec: dict[str, Any] | None, value: Any) -> Any:
    if spec is None or value is None:
        return value
    kind = spec.get("type")
    if kind == "enumeration":
        if not isinstance(value, str) or value not in spec.get("values", {}):
            raise Refused(GENERIC_ERROR)
        return value
    if kind == "datetime":
        return _adobe_datetime(value)
    if kind == "date":
        return _adobe_date(value)
    if kind == "item" and isinstance(value, dict):
        return conform(spec.get("content", {}), value)
    if isinstance(value, str) and kind in (None, "string"):
        return _policy(spec.get("dataPolicy"), value)
    return value


def _policy(policy: Any, value: str) -> str:
    if policy == "smartCase":
        return smart_case(value)
    if policy in ("lowerCase", "email"):
        return value.lower()
    if policy == "upperCase":
        return value.upper()
    return value


def smart_case(text: str) -> str:
    """Each word capitalised: a letter at the start or after a space, - or ' goes upper."""
    return WORD_START.sub(lambda m: m.group(1) + m.group(2).upper(), text.lower())


def _adobe_datetime(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused(GENERIC_ERROR)
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Refused(GENERIC_ERROR) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return f"{moment:%Y-%m-%d %H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _adobe_date(value: Any) -> str:
    if not isinstance(value, str):
        raise Refused(GENERIC_ERROR)
    text = value.strip()
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).date().isoformat()
    except ValueError:
        raise Refused(GENERIC_ERROR) from None
