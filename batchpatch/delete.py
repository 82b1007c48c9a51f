"""`batchpatch delete FILE`: remove the profiles an undo listed as created (`PKey,href`), with the
same target, credentials, pacing, resume, results and exit codes as `run`. Each row: DELETE the
profile (its href, else the URL its PKey gives), then GET it to check it is gone. Status
`deleted`, or `not_found` when it was already gone. Nothing is ever deleted but by this command.

A row's href must name the row's own profile on the target's own origin: an href whose last path
segment (URL-decoded) is another key than the PKey, or on another origin, or not a URL, makes
the row `invalid` and nothing is sent for it. Deleting by the href would remove a profile the
record does not name; deleting by the PKey instead would remove one the href does not name.
"""

from __future__ import annotations

import time
from typing import Any
from urllib.parse import unquote, urlsplit

from .api import ApiClient, Attempts
from .errors import AbortRun, NotFound, RowError, TransientError
from .model import Outcome, Row, Status
from .protocol import BeforeWrite
from .secret import redact
from .target import Target, absolute_url, describe_origin, same_origin

__all__ = ["DeleteProtocol", "delete_url"]


def delete_url(target: Target, pkey: str, href: Any) -> tuple[str | None, str | None]:
    """(the URL to DELETE, None), or (None, why the row cannot be deleted). Pure."""
    own = target.url_for(pkey)
    if href is None or (isinstance(href, str) and not href.strip()):
        return own, None
    url = absolute_url(href, own)
    if url is None:
        return None, f"href {href!r} is not an http(s) URL; nothing deleted"
    if not same_origin(url, own):
        return None, (f"href {url} is on another origin ({describe_origin(url)}) than the "
                      f"target ({describe_origin(own)}); nothing deleted")
    named = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1])
    # a PKey the protocol took from an href's last segment may still be percent-encoded
    if url != own and named not in (pkey, unquote(pkey)):
        return None, (f"href {url} names the profile {named!r}, not the row's PKey {pkey!r}; "
                      "nothing deleted")
    return url, None


class DeleteProtocol:
    """The row protocol of `batchpatch delete`; `process` never raises but AbortRun."""

    def __init__(self, client: ApiClient, target: Target, no_verify: bool = False,
                 before_write: BeforeWrite | None = None) -> None:
        self._client = client
        self._target = target
        self._no_verify = no_verify
        self._before_write = before_write

    def reject(self, row: Row) -> Outcome:
        return Outcome(row.line, row.key, Status.INVALID, error=row.problem, raw=row.raw,
                       finished_at=time.time())

    async def process(self, row: Row) -> Outcome:
        if row.problem is not None or row.key is None:
            return self.reject(row)
        started = time.perf_counter()
        attempts = Attempts()
        status, error, retryable = Status.DELETED, None, False
        url, problem = delete_url(self._target, row.key, row.values.get("href"))
        if url is None:
            return Outcome(row.line, row.key, Status.INVALID, error=redact(problem or ""),
                           raw=row.raw, finished_at=time.time())
        try:
            if self._before_write is not None:
                self._before_write(row, row.key, {}, "delete")
            await self._client.delete(url, attempts)
            if not self._no_verify:
                try:
                    await self._client.get(url, attempts)
                except NotFound:
                    pass
                else:
                    status, error = Status.FAILED, f"{url} is still there after the DELETE"
        except AbortRun:
            raise
        except NotFound as exc:
            status, error = Status.NOT_FOUND, f"already gone ({exc.message})"
        except RowError as exc:
            status, error = exc.status, exc.message
        except TransientError as exc:
            status, retryable = Status.FAILED, True
            error = f"{exc.message} (gave up after {attempts.count} attempts)"
        except Exception as exc:
            status, retryable = Status.FAILED, True
            error = f"unexpected error: {type(exc).__name__}: {exc}"
        return Outcome(row.line, row.key, status, http_status=attempts.http_status,
                       attempts=attempts.count, error=redact(error) if error else None,
                       elapsed_ms=(time.perf_counter() - started) * 1000,
                       retries=attempts.retries, rate_limited=attempts.rate_limited,
                       finished_at=time.time(), retryable=retryable, href=url, raw=row.raw)
