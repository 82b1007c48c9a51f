"""Secrets: a wrapper that keeps them out of reprs, and the one place text is redacted.

Every Secret made in the process registers its value (and the forms a URL or a form body would
give it; a proxy URL's password also its Proxy-Authorization form, see register_proxy_url);
`redact(text)` masks all of them. Every text that leaves the process from an API's
words or an exception goes through it: records, failures, logs (a filter on the `batchpatch`
logger), stderr, the summary and the report.
"""

from __future__ import annotations

import base64
import logging
from urllib.parse import quote, quote_plus, unquote, urlsplit

__all__ = ["RedactingFilter", "Secret", "redact", "register_proxy_url"]

MASK = "***"
_MIN_LENGTH = 4  # shorter values would mask ordinary words
_known: set[str] = set()
_ordered: list[str] = []  # longest first, so that a secret inside another is masked whole


def _register(value: str) -> None:
    forms = {value, quote(value, safe=""), quote_plus(value)}
    fresh = [f for f in forms if len(f) >= _MIN_LENGTH and f not in _known]
    if fresh:
        _known.update(fresh)
        _ordered.extend(fresh)
        _ordered.sort(key=len, reverse=True)


class Secret:
    """A string that prints as `***`; `.value` gives it out, on purpose only."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value
        _register(value)

    @property
    def value(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def register_proxy_url(url: str) -> None:
    """A proxy URL's password is a secret of the run in every form it travels in: as written
    (percent-encoded), decoded, and inside the Proxy-Authorization header, `Basic` base64 of
    `user:password` (latin-1, as aiohttp encodes it): a proxy may pass that header on to the
    API, and the API echo it. Stdlib only, so that reading the options stays cheap."""
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        return
    if not password:
        return
    Secret(password)
    Secret(unquote(password))
    credentials = f"{unquote(user or '')}:{unquote(password)}"
    for encoding in ("latin-1", "utf-8"):
        try:
            Secret(base64.b64encode(credentials.encode(encoding)).decode("ascii"))
        except UnicodeEncodeError:
            continue


def redact(text: str) -> str:
    """`text` with every secret of the process masked."""
    if not _ordered or not text:
        return text
    for value in _ordered:
        if value in text:
            text = text.replace(value, MASK)
    return text


class RedactingFilter(logging.Filter):
    """Masks secrets in a log record's message, arguments and extra fields."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _ordered:
            message = record.getMessage()
            masked = redact(message)
            if masked != message:
                record.msg, record.args = masked, None
            for name in ("error", "pkey"):
                value = getattr(record, name, None)
                if isinstance(value, str):
                    setattr(record, name, redact(value))
        return True
