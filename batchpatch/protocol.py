"""The row protocol: one row against the API (lookup, GET, plan, PATCH, verify), returning its
finished Outcome, built once.

The mapping from what can go wrong to the row's status is here and only here:
- a RowError carries its status (not_found, invalid, conflict, failed);
- a TransientError that outlived its retries is `failed`, retryable (not the row's own fault);
- an AbortRun is raised on: the run stops, and this row gets no record (--resume redoes it);
- any other exception is a defect of ours or a surprise of the server's: the row is `failed`,
  retryable, with the exception named, so that no worker ever dies with its row unrecorded.
A row whose PATCH was sent keeps `changed` even when it then fails, so undo covers it.
"""

from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .api import ApiClient, Attempts
from .columns import refusals
from .errors import (
    AbortRun,
    CellError,
    Conflict,
    MaybeCreated,
    NotFound,
    Rejected,
    RowError,
    TransientError,
)
from .model import Outcome, Row, Status
from .plan import Plan, check_readback, flatten, get_path, plan_patch, same, shown
from .resume import Intent
from .schema import Schema
from .secret import redact
from .target import Target, absolute_url, same_origin

__all__ = ["BeforeWrite", "RowMode", "RowProtocol"]

#: called with (row, pkey, changed, action) just before a write is sent; may raise AbortRun
BeforeWrite = Callable[[Row, str | None, dict[str, list[Any]], str], None]


@dataclass(frozen=True, slots=True)
class RowMode:
    """The per-row switches of a run."""

    dry_run: bool = False
    no_verify: bool = False
    null_token: str | None = None
    #: what a key that does not exist gets: "fail" (not_found), "skip" or "create"
    on_missing: str = "fail"
    #: where a profile is created (POST); None: not possible
    create_url: str | None = None
    #: the field a lookup key fills in a created profile (byEmail: email)
    lookup_field: str | None = None
    #: --fields: the fields a row may write (None: any)
    fields: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class _Decision:
    """How a row ended, before the bookkeeping of its attempts is added."""

    status: Status
    pkey: str | None = None
    changed: dict[str, list[Any]] | None = None
    error: str | None = None
    mismatch: dict[str, list[Any]] | None = None
    retryable: bool = False
    href: str | None = None
    action: str | None = None
    #: False: a create that landed or may have: never sent again (not in the failures file)
    resend: bool = True


class _Progress:
    """What a row has done so far; read when an error ends it early."""

    __slots__ = ("action", "href", "pkey", "sent")

    def __init__(self, pkey: str | None) -> None:
        self.pkey = pkey
        self.sent: dict[str, list[Any]] | None = None  # `changed` of a write attempted
        self.action: str | None = None
        self.href: str | None = None  # of the profile the row created


class RowProtocol:
    """Runs one row against the API; `process` never raises but AbortRun (and cancellation)."""

    REREAD_DELAY = 0.5  # one more read-back after a mismatch, for servers slow to show a write

    def __init__(
        self,
        client: ApiClient,
        target: Target,
        mode: RowMode,
        before_write: BeforeWrite | None = None,
        intents: dict[int, Intent] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        schema: Schema | None = None,
    ) -> None:
        self._schema = schema
        self._client = client
        self._target = target
        self._mode = mode
        self._before_write = before_write
        self._intents = intents or {}
        self._sleep = sleep
        #: key -> (href, PKey) of a profile this run created
        self._created: dict[str, tuple[str, str | None]] = {}
        #: --dry-run: key -> the profile a create would have made (later rows of the key
        #: patch it, as in a real run)
        self._would_create: dict[str, dict[str, Any]] = {}
        #: columns of JSON records found writable (_refusal)
        self._good_columns: set[str] = set()

    def reject(self, row: Row) -> Outcome:
        """The outcome of a row the reader could not use."""
        return Outcome(row.line, row.key, Status.INVALID, error=row.problem, raw=row.raw,
                       finished_at=time.time())

    async def process(self, row: Row) -> Outcome:
        if row.problem is not None or row.key is None:
            return self.reject(row)
        started = time.perf_counter()
        attempts = Attempts()
        progress = _Progress(row.key)
        intent = self._intents.get(row.line)
        if intent is not None and intent[0] == "patch":
            progress.sent = intent[1]  # an earlier run's write that may have landed
        try:
            decision = await self._apply(row, attempts, progress)
        except AbortRun:
            raise
        except RowError as exc:
            decision = _Decision(exc.status, progress.pkey, progress.sent,
                                 _after_create(exc.message, progress),
                                 exc.mismatch if isinstance(exc, Conflict) else None,
                                 action=progress.action, href=progress.href,
                                 resend=not isinstance(exc, MaybeCreated))
        except TransientError as exc:
            decision = _Decision(Status.FAILED, progress.pkey, progress.sent, _after_create(
                f"{exc.message} (gave up after {attempts.count} attempts)", progress),
                retryable=progress.href is None, action=progress.action, href=progress.href)
        except Exception as exc:
            decision = _Decision(Status.FAILED, progress.pkey, progress.sent, _after_create(
                f"unexpected error: {type(exc).__name__}: {exc}", progress),
                retryable=progress.action != "create", action=progress.action,
                href=progress.href,
                resend=not (progress.action == "create" and progress.sent is not None))
        return Outcome(
            row=row.line, pkey=decision.pkey, status=decision.status, changed=decision.changed,
            http_status=attempts.http_status, attempts=attempts.count,
            error=_one_line(redact(decision.error)) if decision.error else None,
            elapsed_ms=(time.perf_counter() - started) * 1000, retries=attempts.retries,
            rate_limited=attempts.rate_limited, finished_at=time.time(),
            mismatch=decision.mismatch, retryable=decision.retryable, href=decision.href,
            action=decision.action, raw=row.raw,
            resend=decision.resend and not (decision.action == "create" and decision.href))

    async def _fetch(self, key: str, attempts: Attempts,
                     progress: _Progress) -> tuple[str, dict[str, Any]]:
        """The row's profile and the URL to write it at (NotFound if there is none)."""
        if key in self._would_create:
            return "", copy.deepcopy(self._would_create[key])
        known = self._created.get(key)
        if known is not None:  # created by an earlier row of this key
            progress.pkey = known[1]
            return known[0], await self._client.get(known[0], attempts)
        if self._target.lookup_template is not None:
            url, profile = await self._look_up(key, attempts)
            progress.pkey = profile.get("PKey", key)
            return url, profile
        url = self._target.url_for(key)
        return url, await self._client.get(url, attempts)

    def _refusal(self, row: Row) -> str | None:
        """For a JSON record (the preflight read only the file's first ones): why the API or
        --fields would refuse one of its columns, before anything is sent for it."""
        if not row.typed or (self._schema is None and self._mode.fields is None):
            return None
        try:
            columns = [c for c in flatten(row.values) if c not in self._good_columns]
        except CellError:
            return None  # the plan says what is wrong with it
        if not columns:
            return None
        problems = refusals(columns, self._schema, self._mode.fields)
        if problems:
            return "; ".join(problems).replace("`", "'") + "; nothing sent"
        self._good_columns.update(columns)
        return None

    async def _apply(self, row: Row, attempts: Attempts, progress: _Progress) -> _Decision:
        assert row.key is not None
        if (refused := self._refusal(row)) is not None:
            return _Decision(Status.INVALID, progress.pkey, error=refused)
        try:
            url, profile = await self._fetch(row.key, attempts, progress)
        except NotFound:
            if self._mode.on_missing == "fail":
                raise
            if self._mode.on_missing == "skip":
                return _Decision(Status.SKIPPED, progress.pkey, error="no such profile; left "
                                 "as is (--on-missing skip)")
            return await self._create(row, attempts, progress)
        plan = plan_patch(profile, row.values, row.typed, self._mode.null_token, self._schema)
        landed = self._landed(row.line, profile, plan)
        if not plan.changed:
            if landed:  # an earlier run's write landed, its record was lost: it is done
                return _Decision(Status.UPDATED, progress.pkey, landed)
            return _Decision(Status.UNCHANGED, progress.pkey)
        if self._mode.dry_run:
            return _Decision(Status.DRY_RUN, progress.pkey, plan.changed)
        changed = {**landed, **plan.changed}
        if self._before_write is not None:
            self._before_write(row, progress.pkey, changed, "patch")
        progress.sent = changed
        answer = await self._client.patch(url, plan.body, attempts)
        if self._mode.no_verify:
            return _Decision(Status.UPDATED, progress.pkey, changed)
        return await self._verify(plan, self._target.follow(answer.get("href"), url), attempts,
                                  progress.pkey, changed)

    async def _create(self, row: Row, attempts: Attempts, progress: _Progress) -> _Decision:
        """POST the row's fields where profiles are created, then read the new one back."""
        assert row.key is not None
        mode = self._mode
        try:
            plan = plan_patch({}, row.values, row.typed, mode.null_token, self._schema)
        except Conflict as exc:
            raise Conflict(exc.mismatch, "the profile does not exist, so the row's guard cannot "
                           "hold; nothing created") from None
        body, changed = dict(plan.body), dict(plan.changed)
        if mode.lookup_field and mode.lookup_field not in body:
            spec = self._schema.get(mode.lookup_field) if self._schema is not None else None
            key = self._schema.normalize(spec, row.key) if spec is not None else row.key  # type: ignore[union-attr]
            body[mode.lookup_field] = key
            changed[mode.lookup_field] = [None, key]
        plan = Plan(body, changed, {p: v[1] for p, v in changed.items()}, plan.schema)
        progress.action = "create"
        if mode.dry_run:
            self._would_create[row.key] = copy.deepcopy(body)
            return _Decision(Status.DRY_RUN, progress.pkey, changed, action="create")
        if mode.create_url is None:
            raise Rejected("no such profile, and no URL to create it at (give --create-url)")
        intent = self._intents.get(row.line)
        if self._target.lookup_template is None and intent is not None and intent[0] == "create":
            raise MaybeCreated("an earlier run sent a create for this row and stopped before its "
                           "answer: it may exist under a new key; not created twice")
        if self._before_write is not None:
            self._before_write(row, None, changed, "create")
        progress.sent = changed
        answer, location = await self._client.post(mode.create_url, body, attempts)
        href = absolute_url(answer.get("href") or location, mode.create_url)
        pkey = answer.get("PKey")
        if href is None or not same_origin(href, mode.create_url):
            href = self._target.url_for(pkey) if isinstance(pkey, str) and pkey else None
        if not isinstance(pkey, str) or not pkey:
            pkey = href.rstrip("/").rsplit("/", 1)[-1] if href else None
        progress.pkey, progress.href = pkey, href
        if href is None:
            return _Decision(Status.CREATED, pkey, changed, "created; the API gave no href, "
                             "Location or PKey to read it back", action="create")
        self._created[row.key] = (href, pkey)
        if mode.no_verify:
            return _Decision(Status.CREATED, pkey, changed, href=href, action="create")
        decision = await self._verify(plan, href, attempts, pkey, changed)
        if decision.status is Status.UPDATED:
            return _Decision(Status.CREATED, pkey, changed, href=href, action="create")
        return _Decision(decision.status, pkey, changed,
                         _after_create(decision.error or "", progress), decision.mismatch,
                         href=href, action="create")

    def _landed(self, line: int, profile: dict[str, Any], plan: Plan) -> dict[str, list[Any]]:
        """The fields of an earlier run's journal entry for this row that the profile already
        holds: that write landed, and these are its real before-values."""
        intent = self._intents.get(line)
        if not intent or intent[0] != "patch":
            return {}
        return {path: [before, after] for path, (before, after) in intent[1].items()
                if path not in plan.changed and same(shown(get_path(profile, path)), after)}

    async def _verify(self, plan: Plan, url: str, attempts: Attempts,
                      pkey: str | None, changed: dict[str, list[Any]]) -> _Decision:
        mismatch: dict[str, list[Any]] = {}
        for reread in (False, True):
            if reread:
                await self._sleep(self.REREAD_DELAY)
            try:
                mismatch = check_readback(plan, await self._client.get(url, attempts))
            except NotFound as exc:
                return _Decision(Status.VERIFY_MISMATCH, pkey, changed,
                                 f"read-back of {url} found nothing ({exc.message})")
            if not mismatch:
                return _Decision(Status.UPDATED, pkey, changed)
        error = "read-back differs: " + "; ".join(
            f"{name}: sent {sent!r}, found {found!r}" for name, (sent, found) in mismatch.items())
        return _Decision(Status.VERIFY_MISMATCH, pkey, changed, error, mismatch)

    async def _look_up(self, key: str, attempts: Attempts) -> tuple[str, dict[str, Any]]:
        """The profile a lookup (e.g. byEmail) finds for `key`, and the URL to patch it at."""
        found = await self._client.get_list(self._target.lookup_url(key), attempts)
        if not found:
            raise NotFound(f"no profile matches {key!r}", attempts.http_status)
        if len(found) > 1:
            raise Rejected(f"ambiguous: {len(found)} profiles match {key!r}",
                           attempts.http_status)
        profile = found[0]
        pkey = profile.get("PKey")
        if not isinstance(pkey, str) or not pkey:
            raise Rejected(f"the lookup for {key!r} answered a profile with no PKey")
        # Adobe: follow the href the API gave rather than building the URL by hand
        return self._target.follow(profile.get("href"), self._target.url_for(pkey)), profile


def _after_create(error: str, progress: _Progress) -> str:
    """A failure after the row's create landed says so: it is not listed in the failures file
    nor retried by --resume, where it would be created twice."""
    if progress.href is None:
        return error
    return (f"{error}; the profile was created ({progress.pkey or progress.href}), so the row "
            "is not in the failures file nor retried (sent again it would be created twice)")


def _one_line(text: str) -> str:
    """An error as one line (aiohttp's messages hold line breaks)."""
    return " ".join(text.split()) if "\n" in text or "\r" in text else text
