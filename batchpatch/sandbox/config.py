"""Every knob of the sandbox with its default, and the checks on values set at run time.

Stdlib only: the command line (`knobs.py`) reads the defaults and the choices from here without
importing aiohttp, so `batchpatch sandbox --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["CHAOS_KINDS", "CHOICES", "SandboxConfig"]

#: Every misbehaviour `chaos` can pick (see chaos.py for what each one does).
CHAOS_KINDS = ("redirect_self", "redirect_elsewhere", "no_content", "html", "json_string",
               "json_list", "content_null", "bad_href", "huge", "reset", "not_http", "slow")

#: Knobs that take one of a few words; the first is the default.
CHOICES: dict[str, tuple[str, ...]] = {
    "get_shape": ("wrapped", "bare"),
    "nested_patch": ("replace", "merge"),
    "rate_limit_shape": ("sliding", "bucket", "window"),
    "metadata": ("on", "off", "broken"),
    "flavor": ("acs", "v8"),
}


@dataclass
class SandboxConfig:
    """Every knob; all can be changed at run time through POST /_sandbox/config."""

    org: str = "demo"
    get_shape: str = "wrapped"  # wrapped: {"content": [profile]}; bare: the profile itself
    nested_patch: str = "replace"  # replace: a nested object in a PATCH replaces it; or merge
    href_alias: bool = False  # PATCH answers an href with another PKey string for the profile
    latency_ms: float = 0.0
    rate_limit: float = 0.0  # requests/s (0: no limit); how they are counted: rate_limit_shape
    rate_limit_shape: str = "sliding"  # sliding (last second) | bucket | window: see limits.py
    rate_limit_burst: float = 10  # bucket: tokens it holds when full
    rate_limit_window: float = 10.0  # window: seconds per fixed window
    fault_429: float = 0.0
    fault_5xx: float = 0.0  # 502/503/504: a gateway that cannot reach the service
    fault_drop: float = 0.0
    fault_slow: float = 0.0
    fault_badjson: float = 0.0
    fault_500: float = 0.0  # a plain 500 "Internal server error": the service answers, badly
    chaos: float = 0.0  # share of API requests that get one misbehaviour from chaos_kinds
    chaos_kinds: list[str] = field(default_factory=lambda: list(CHAOS_KINDS))
    chaos_elsewhere: str = "http://127.0.0.1:9/"  # where redirect_elsewhere points
    slow_seconds: float = 5.0
    retry_after: str = "1"  # Retry-After sent with injected 429s ("" for none)
    token: str = ""  # static bearer token required on profile routes ("" = not enforced)
    api_key: str = ""  # X-Api-Key required with a static token
    client_id: str = ""  # IMS credential; when set, IMS tokens are accepted (and required)
    client_secret: str = ""
    token_lifetime: float = 86399.0
    ignore_fields: list[str] = field(default_factory=list)  # accepted by PATCH, not stored
    schema: dict[str, Any] | None = None  # resourceType content; None: inferred from profiles
    metadata: str = "on"  # the resourceType endpoint: on | off (404) | broken (200 HTML)
    flavor: str = "acs"  # acs | v8 (Campaign v8's answers where they differ)
    seed: int | None = None

    def update(self, changes: dict[str, Any]) -> None:
        """Apply `changes` (names with - or _) all or nothing; ValueError names the bad one."""
        names = {f.name for f in fields(self)}
        values: dict[str, Any] = {}
        for key, value in changes.items():
            name = key.replace("-", "_")
            if name not in names:
                raise ValueError(f"unknown sandbox setting {key!r}")
            values[name] = _checked(name, value)
        for name, value in values.items():
            setattr(self, name, value)


def _checked(name: str, value: Any) -> Any:
    if name in CHOICES and value not in CHOICES[name]:
        raise ValueError(f"{name} must be one of {', '.join(CHOICES[name])}, not {value!r}")
    if name == "chaos_kinds":
        kinds = value.split(",") if isinstance(value, str) else value
        if not isinstance(kinds, list) or not kinds:
            raise ValueError("chaos_kinds must be a non-empty list of kinds")
        unknown = [k for k in kinds if k not in CHAOS_KINDS]
        if unknown:
            raise ValueError(f"unknown chaos kind {unknown[0]!r}; known: {', '.join(CHAOS_KINDS)}")
        return list(kinds)
    if name == "schema" and value is not None:
        from .schema import normalize

        normalize(value)  # raises ValueError on a shape the sandbox cannot use
    return value
