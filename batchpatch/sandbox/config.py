"""Every knob of the sandbox with its default, and the checks on values set at run time.

Stdlib only: the command line (`knobs.py`) reads the defaults and the choices from here without
importing aiohttp, so `batchpatch sandbox --help` stays fast.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

__all__ = ["CHAOS_KINDS", "CHAOS_METHODS", "CHOICES", "SandboxConfig"]

#: Every misbehaviour `chaos` can pick (see chaos.py for what each one does).
CHAOS_KINDS = ("redirect_self", "redirect_elsewhere", "no_content", "html", "json_string",
               "json_list", "content_null", "bad_href", "huge", "reset", "not_http", "slow")

#: The methods `chaos` may pick; `chaos_methods` narrows it to some of them.
CHAOS_METHODS = ("GET", "PATCH", "POST", "DELETE")

#: The statuses `redirect_status` may take.
REDIRECT_STATUSES = (301, 302, 303, 307, 308)

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
    #: the methods chaos applies to (the draw is made all the same, so a seed replays a run)
    chaos_methods: list[str] = field(default_factory=lambda: list(CHAOS_METHODS))
    chaos_elsewhere: str = "http://127.0.0.1:9/"  # where redirect_elsewhere points
    redirect_status: int = 302  # the status of every redirect the sandbox answers
    #: API requests of `redirect_methods` first get this many same-origin redirects, each to
    #: the request's own URL with `_hop=N` (N = 1, 2, ...), then their real answer
    redirect_hops: int = 0
    redirect_methods: list[str] = field(default_factory=lambda: ["GET"])
    ims_redirect: str = ""  # IMS answers redirect_status with this Location ("": it answers)
    #: error answers (status >= 400, IMS included) echo the request's line, headers and body in
    #: their message, as some gateways and debug builds do: for tests that secrets stay masked
    echo_request: bool = False
    slow_seconds: float = 5.0
    retry_after: str = "1"  # Retry-After sent with injected 429s ("" for none)
    token: str = ""  # static bearer token required on profile routes ("" = not enforced)
    api_key: str = ""  # X-Api-Key required with a static token
    client_id: str = ""  # IMS credential; when set, IMS tokens are accepted (and required)
    client_secret: str = ""
    token_lifetime: float = 86399.0
    #: JSON text sent as the IMS answer's `expires_in` ('"soon"', 'null', '-1'); "": the
    #: token_lifetime in seconds
    ims_expires_in: str = ""
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
    if name == "chaos_methods":
        methods = value.split(",") if isinstance(value, str) else value
        if not isinstance(methods, list) or not methods:
            raise ValueError("chaos_methods must be a non-empty list of methods")
        methods = [str(m).upper() for m in methods]
        unknown = [m for m in methods if m not in CHAOS_METHODS]
        if unknown:
            raise ValueError(f"unknown chaos method {unknown[0]!r}; known: "
                             f"{', '.join(CHAOS_METHODS)}")
        return methods
    if name == "ims_expires_in" and value != "":
        import json

        try:
            json.loads(value)
        except (TypeError, ValueError):
            raise ValueError(f"ims_expires_in must be JSON text, not {value!r}") from None
    if name == "redirect_methods":
        methods = value.split(",") if isinstance(value, str) else value
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            raise ValueError("redirect_methods must be a list of HTTP methods")
        return [m.strip().upper() for m in methods if m.strip()]
    if name == "redirect_status" and value not in REDIRECT_STATUSES:
        raise ValueError(f"redirect_status must be one of "
                         f"{', '.join(map(str, REDIRECT_STATUSES))}, not {value!r}")
    if name == "redirect_hops" and (not isinstance(value, int) or isinstance(value, bool)
                                    or value < 0):
        raise ValueError(f"redirect_hops must be a whole number, 0 or more, not {value!r}")
    if name == "schema" and value is not None:
        from .schema import normalize

        normalize(value)  # raises ValueError on a shape the sandbox cannot use
    return value
