"""Settings for a run, from flags, the environment, a TOML file and defaults (in that order).

Every run option has one name (`key_column`); the flag is `--key-column`, the environment
variable `BATCHPATCH_KEY_COLUMN`, the TOML key `key_column` (or `key-column`), the Python API
keyword `key_column`. A TOML file may hold `[profiles.NAME]` tables chosen with `--profile NAME`.
Secrets are wrapped in Secret as soon as they are read, so no repr or message can show them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from .api import DEFAULT_RESOURCE, Target
from .auth import DEFAULT_IMS_URL, DEFAULT_SCOPES
from .errors import UsageError
from .policy import RatePolicy, RetryPolicy, Timeouts
from .rows import detect_format
from .secret import Secret

__all__ = ["SECRET_OPTIONS", "Settings", "load_settings"]

SECRET_OPTIONS = frozenset({"token", "api_key", "client_secret"})
ENV_PREFIX = "BATCHPATCH_"


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated; built once and handed to the engine."""

    input: str
    format: str | None = None
    key_column: str = "PKey"
    delimiter: str = ","
    # target
    base_url: str | None = None
    org: str | None = None
    resource: str = DEFAULT_RESOURCE
    url_template: str | None = None
    lookup: str | None = None
    lookup_param: str | None = None
    lookup_url: str | None = None
    # auth
    token: Secret | None = None
    api_key: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    client_secret_file: str | None = None
    ims_url: str = DEFAULT_IMS_URL
    scopes: str = DEFAULT_SCOPES
    # pace
    concurrency: int = 8
    rate: float = 10.0
    retries: int = 5
    timeout: float = 30.0
    adaptive_rate: bool = True
    max_error_rate: float = 0.5
    error_window: int = 50
    grace: float = 30.0
    # output
    results: str | None = None
    failures: str | None = None
    summary: str | None = None
    # semantics and modes
    null_token: str | None = None
    dry_run: bool = False
    no_verify: bool = False
    resume: bool = False
    quiet: bool = False
    limit: int | None = None
    canary: int | None = None
    log_format: str = "text"
    log_level: str = "info"
    log_rows: bool = False
    progress: str = "auto"  # auto: a bar on a terminal, log lines otherwise; off: nothing
    progress_every: float = 60.0
    # not options: filled in by load_settings
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def input_format(self) -> str:
        return detect_format(self.input, self.format)

    @property
    def target(self) -> Target:
        if self.url_template:
            return Target(self.url_template, self.lookup_url)
        assert self.base_url and self.org
        target = Target.adobe(self.base_url, self.org, self.resource, self.lookup,
                              self.lookup_param)
        return Target(target.template, self.lookup_url or target.lookup_template)

    @property
    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(retries=self.retries, server_error_retries=min(2, self.retries))

    @property
    def rate_policy(self) -> RatePolicy:
        return RatePolicy(rate=self.rate, adaptive=self.adaptive_rate)

    @property
    def timeouts(self) -> Timeouts:
        return Timeouts(request=self.timeout, connect=min(10.0, self.timeout))

    def output_paths(self) -> tuple[Path, Path, Path]:
        """results, failures, summary: as given, else beside the input (`name.results.jsonl`)."""
        if self.input == "-":
            stem = Path("stdin")
        else:
            path = Path(self.input)
            name = path.name[:-3] if path.name.endswith(".gz") else path.name
            stem = path.with_name(Path(name).stem)
        ext = self.input_format
        def beside(given: str | None, suffix: str) -> Path:
            return Path(given) if given else stem.with_name(f"{stem.name}.{suffix}")

        return (beside(self.results, "results.jsonl"), beside(self.failures, f"failures.{ext}"),
                beside(self.summary, "summary.json"))

    def shown(self) -> dict[str, Any]:
        """The settings as a plain dict, secrets masked (for --print-config and the manifest)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name == "sources":
                continue
            value = getattr(self, f.name)
            if isinstance(value, Secret):
                value = "***"
            out[f.name] = value
        return out


_OPTION_FIELDS = {f.name: f for f in fields(Settings) if f.name != "sources"}


def _convert(name: str, value: Any, origin: str) -> Any:
    """A raw value (string from env, TOML value) as the option's type."""
    kind = _OPTION_FIELDS[name].type
    if value is None:
        return None
    try:
        if "bool" in kind:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if kind.startswith("int"):
            if isinstance(value, bool):
                raise ValueError(value)
            return int(value)
        if kind.startswith("float"):
            if isinstance(value, bool):
                raise ValueError(value)
            return float(value)
        if "Secret" in kind:
            return value if isinstance(value, Secret) else Secret(str(value))
        return str(value)
    except (TypeError, ValueError):
        shown = "***" if name in SECRET_OPTIONS else repr(value)
        kind_name = kind.split(" ")[0]
        raise UsageError(f"{origin}: {name} = {shown} is not a valid {kind_name}") from None


def _read_toml(path: str, profile: str | None) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UsageError(f"{path}: cannot read config: {exc}") from None
    profiles = data.pop("profiles", {})
    table = dict(data.get("run", data))
    table.pop("run", None)
    if profile:
        if profile not in profiles:
            raise UsageError(f"{path}: no [profiles.{profile}] table (have: {', '.join(profiles)})")
        table.update(profiles[profile])
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in _OPTION_FIELDS or name == "input":
            raise UsageError(f"{path}: unknown setting {key!r}")
        out[name] = value
    return out


def load_settings(
    options: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config: str | None = None,
    profile: str | None = None,
) -> Settings:
    """Merge flags (options), environment, config file and defaults; validate; return Settings."""
    env = os.environ if env is None else env
    merged: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if config:
        for name, value in _read_toml(config, profile).items():
            merged[name] = _convert(name, value, config)
            sources[name] = "file"
    for name in _OPTION_FIELDS:
        raw = env.get(ENV_PREFIX + name.upper())
        if raw is not None and raw != "":
            merged[name] = _convert(name, raw, ENV_PREFIX + name.upper())
            sources[name] = "env"
    for name, value in options.items():
        if name not in _OPTION_FIELDS:
            raise UsageError(f"unknown option {name!r}")
        if value is not None:
            merged[name] = _convert(name, value, "--" + name.replace("_", "-"))
            sources[name] = "flag"
    if "input" not in merged:
        raise UsageError("no input file given")
    settings = Settings(**merged, sources=sources)
    _validate(settings)
    return settings


def _validate(s: Settings) -> None:
    if s.concurrency < 1:
        raise UsageError("--concurrency must be at least 1")
    if s.rate < 0:
        raise UsageError("--rate must be 0 (unlimited) or more")
    if s.retries < 0:
        raise UsageError("--retries must be 0 or more")
    if s.timeout <= 0:
        raise UsageError("--timeout must be more than 0 seconds")
    if s.limit is not None and s.limit < 1:
        raise UsageError("--limit must be at least 1")
    if s.canary is not None and s.canary < 1:
        raise UsageError("--canary must be at least 1")
    if s.log_format not in ("text", "json"):
        raise UsageError("--log-format must be text or json")
    if s.log_level.lower() not in ("debug", "info", "warning", "error"):
        raise UsageError("--log-level must be debug, info, warning or error")
    if s.progress not in ("auto", "bar", "log", "off"):
        raise UsageError("--progress must be auto, bar, log or off")
    if s.progress_every <= 0:
        raise UsageError("--progress-every must be more than 0 seconds")
    if not 0 < s.max_error_rate <= 1:
        raise UsageError("--max-error-rate must be within (0, 1]")
    s.input_format  # noqa: B018 - raises UsageError for an unknown format
    if s.url_template:
        if s.base_url or s.org:
            raise UsageError("give either --url-template or --base-url/--org, not both")
        if "{pkey}" not in s.url_template:
            raise UsageError("--url-template must contain {pkey}")
        _check_url(s.url_template, "--url-template")
    elif s.base_url and s.org:
        _check_url(s.base_url, "--base-url")
    else:
        raise UsageError("no target: give --base-url and --org (Adobe), or --url-template")
    if s.lookup_url and "{key}" not in s.lookup_url:
        raise UsageError("--lookup-url must contain {key}")
    if s.lookup and s.url_template and not s.lookup_url:
        raise UsageError("--lookup works with --base-url/--org; with --url-template give "
                         "--lookup-url 'https://host/path?email={key}'")
    if s.client_secret_file and not s.client_secret:
        try:
            secret = Path(s.client_secret_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise UsageError(f"{s.client_secret_file}: cannot read the client secret: "
                             f"{exc.strerror}") from None
        object.__setattr__(s, "client_secret", Secret(secret))
    if s.client_id and not s.client_secret:
        raise UsageError("--client-id needs --client-secret, --client-secret-file or "
                         "BATCHPATCH_CLIENT_SECRET")
    if s.client_secret and not s.client_id:
        raise UsageError("a client secret needs --client-id")
    if s.resume and s.input == "-":
        raise UsageError("--resume needs an input file, not standard input")


def _check_url(url: str, flag: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"{flag} must start with http:// or https:// (got {url!r})")
