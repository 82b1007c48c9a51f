"""What a run is made of, read from its settings: the manifest that a resume must match, where
creates go, the credentials, and the settings as the summary and the report show them."""

from __future__ import annotations

from typing import Any

from .auth import Auth, ImsAuth, StaticAuth
from .counters import Counters
from .resume import file_identity
from .rows import detect_format
from .settings import Settings
from .transport import Transport

__all__ = ["create_url", "make_auth", "manifest_content", "settings_shown"]


def manifest_content(settings: Settings) -> dict[str, Any]:
    """Every setting that changes what a row's outcome is: a resume must use the same."""
    spec = settings.input
    identity = {"path": "-"} if spec.path == "-" else file_identity(spec.path)
    target = settings.target
    return {
        "input": identity,
        "format": detect_format(spec.path, spec.format),
        "key_column": spec.key_column,
        "delimiter": spec.delimiter,
        "target": target.template,
        "lookup": target.lookup_template,
        "dry_run": settings.mode.dry_run,
        "no_verify": settings.mode.no_verify,
        "null_token": spec.null_token,
        "schema": settings.schema,
        "on_missing": settings.mode.on_missing,
        "create_url": create_url(settings),
    }


def create_url(settings: Settings) -> str | None:
    """Where --on-missing create POSTs: --create-url, else the Adobe resource's collection."""
    if settings.mode.on_missing != "create":
        return None
    if settings.mode.create_url:
        return settings.mode.create_url
    return settings.target.collection if not settings.target_spec.url_template else None


def settings_shown(settings: Settings) -> dict[str, Any]:
    """What the run was asked to do, as the summary and the report show it (no secret)."""
    pacing = settings.pacing
    return {
        "input": settings.input.path,
        "target": settings.target.template,
        "lookup": settings.target.lookup_template,
        "rate": pacing.rate.rate,
        "concurrency": pacing.concurrency or "auto",
        "retries": pacing.retry.retries,
        "timeout": pacing.timeouts.request,
        "dry_run": settings.mode.dry_run,
        "no_verify": settings.mode.no_verify,
        "resume": settings.mode.resume,
        "on_missing": settings.mode.on_missing,
        "max_changes": settings.mode.max_changes,
    }


def make_auth(settings: Settings, transport: Transport, counters: Counters) -> Auth:
    c = settings.credentials
    if c.uses_ims:
        assert c.client_id and c.client_secret
        return ImsAuth(transport, c.client_id, c.client_secret, c.scopes, c.ims_url,
                       timeout=settings.pacing.timeouts.request, counters=counters)
    return StaticAuth(c.token, c.api_key)
