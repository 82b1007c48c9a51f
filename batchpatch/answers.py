"""Pure reading of HTTP answers: the API's own words from an error body, the typed error for a
status, Retry-After, and the shapes of a GET (bare or wrapped in {"content": [...]})."""

from __future__ import annotations

import email.utils
import math
import re
import time
from collections.abc import Callable
from typing import Any

import orjson

from .errors import (
    AuthFailed,
    BatchpatchError,
    NotFound,
    RateLimited,
    Rejected,
    ServerBusy,
)
from .secret import redact

__all__ = ["api_message", "classify", "parse_json", "parse_retry_after", "unwrap",
           "unwrap_list"]

# 500s from Adobe Campaign whose message says the request itself is wrong (reference/acs-api.md):
# an unparsable key, an unknown or read-only field, a wrong org. Retrying them only burns quota.
_REQUEST_IS_WRONG = re.compile(
    r"unable to parse expression|is not a valid constant|read-only|readonly"
    r"|property is not valid|is not valid for the|check your uri|invalid (?:pkey|key)",
    re.IGNORECASE,
)
# Campaign v8 hides the cause of many request errors behind one generic 500.
_V8_GENERIC = re.compile(r"an error has occurred - please contact your administrator", re.I)
V8_HINT = ("Campaign v8 hides the cause of this 500: it is often an enumeration value or a key "
           "conflict; check the row's values")
_BUSY_STATUS = frozenset({408, 425, 500, 502, 503, 504})
_ENVELOPE_PRIORITY = ("message", "error_description", "error", "title", "detail")


def parse_retry_after(value: str | None, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date; None if absent
    or unreadable (a value that is not finite included)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    try:
        return max(0.0, when.timestamp() - now())
    except (OverflowError, ValueError, OSError):
        return None


def api_message(body: bytes) -> str:
    """The API's own words from an error body (both Adobe envelopes), else the body's start."""
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        message = next((data[k] for k in _ENVELOPE_PRIORITY if data.get(k)), None)
        code = data.get("error_code") or data.get("code")
        if message:
            text = message if isinstance(message, str) else orjson.dumps(message).decode()
            text = _cut(redact(text))  # masked whole before it is cut: no secret half-shown
            return f"{text} ({code})" if code else text
    return _cut(redact(body[:20_000].decode("utf-8", "replace"))) or "(empty body)"


def _cut(text: str, limit: int = 300) -> str:
    """One line of at most `limit` characters."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify(status: int, body: bytes, retry_after: str | None = None) -> BatchpatchError:
    """The typed error for a non-2xx, non-3xx answer (401 is handled by the client, through
    Auth)."""
    said = api_message(body)
    message = f"HTTP {status}: {said}"
    if status == 429:
        return RateLimited(message, status, parse_retry_after(retry_after))
    if status == 404:
        return NotFound(message, status)
    if status == 407:
        return AuthFailed(f"the proxy refused our credentials (407): {said}; check --proxy "
                          "or HTTPS_PROXY/HTTP_PROXY", status)
    if status == 403:
        return AuthFailed(f"the API refused access (403): {said}; check the API key, the org "
                          "id and the integration's product profile", status)
    if status == 500 and _REQUEST_IS_WRONG.search(message):
        return Rejected(message, status)
    if status == 500 and _V8_GENERIC.search(message):
        return ServerBusy(f"{message} ({V8_HINT})", status)
    if status in _BUSY_STATUS:
        return ServerBusy(message, status, parse_retry_after(retry_after))
    return Rejected(message, status)


BAD_JSON: Any = object()


def parse_json(body: bytes) -> Any:
    """The JSON value of a body; None for an empty body; BAD_JSON if it is not JSON."""
    if not body.strip():
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return BAD_JSON


def _kind(data: Any) -> str:
    if data is None:
        return "an empty body"
    return {dict: "a JSON object", list: "a JSON list", str: "a JSON string",
            bool: "a JSON boolean"}.get(type(data), f"a JSON {type(data).__name__}")


def unwrap(data: Any, status: int = 200) -> dict[str, Any]:
    """A profile from a GET answer: the object itself, or the single item of {"content": [...]}.
    Raises NotFound for an empty content list, Rejected for any other shape."""
    if isinstance(data, dict) and "content" in data and not isinstance(data["content"], dict):
        items = data["content"]
        if isinstance(items, list) and not items:
            raise NotFound(f"HTTP {status} with an empty content list", status)
        if isinstance(items, list) and isinstance(items[0], dict):
            return items[0]
        kind = "null" if items is None else _kind(items)
        raise Rejected(f"HTTP {status}: the answer's content is {kind}, not a list of "
                       "profiles", status)
    if isinstance(data, dict):
        return data
    raise Rejected(f"HTTP {status} with {_kind(data)}, not a profile (a JSON object)", status)


def unwrap_list(data: Any, status: int = 200) -> list[dict[str, Any]]:
    """The records a lookup answers, from {"content": [...]} or a bare list; Rejected for any
    other shape (a lookup that cannot be read is not the same as one that found nothing)."""
    items = data.get("content") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise Rejected(f"HTTP {status}: the lookup answered {_kind(data)}, not a list", status)
    if not all(isinstance(item, dict) for item in items):
        raise Rejected(f"HTTP {status}: the lookup's list holds something other than "
                       "records", status)
    return items
