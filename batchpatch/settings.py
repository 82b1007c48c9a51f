"""The settings of a run as grouped value objects, built once by config.py and handed in: what to
read, where to send, with which credentials over which network, how fast, what to write, and how
to run. Each group's defaults are the tool's defaults (options.py reads them from here).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .policy import BreakerPolicy, RatePolicy, RetryPolicy, Timeouts
from .secret import Secret, redact
from .target import DEFAULT_RESOURCE, Target

__all__ = ["DEFAULT_IMS_URL", "DEFAULT_MAX_BODY", "DEFAULT_SCOPES", "Credentials", "InputSpec",
           "Network", "Outputs", "Pacing", "Reporting", "RunMode", "Settings", "TargetSpec",
           "default_of"]

DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com/ims/token/v3"
DEFAULT_SCOPES = "openid,AdobeID,campaign_sdk,additional_info.projectedProductContext"
DEFAULT_MAX_BODY = 10 * 1024 * 1024


def default_of(cls: type, name: str) -> Any:
    """The default a dataclass declares for one of its fields."""
    for f in dataclasses.fields(cls):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{cls.__name__}.{name} has no default")


@dataclass(frozen=True)
class InputSpec:
    """What to read."""

    path: str = "-"
    format: str | None = None  # None: by the file name
    key_column: str = "PKey"
    delimiter: str = ","
    null_token: str | None = None


@dataclass(frozen=True)
class TargetSpec:
    """Where the profiles live."""

    base_url: str | None = None
    org: str | None = None
    resource: str = DEFAULT_RESOURCE
    url_template: str | None = None
    lookup: str | None = None
    lookup_param: str | None = None
    lookup_url: str | None = None

    def target(self) -> Target:
        if self.url_template:
            return Target(self.url_template, self.lookup_url)
        assert self.base_url and self.org
        return Target.adobe(self.base_url, self.org, self.resource, self.lookup,
                            self.lookup_param, self.lookup_url)


@dataclass(frozen=True)
class Credentials:
    """Who we are: a static token and API key, or an IMS client id and secret."""

    token: Secret | None = None
    api_key: Secret | None = None
    client_id: str | None = None
    client_secret: Secret | None = None
    ims_url: str = DEFAULT_IMS_URL
    scopes: str = DEFAULT_SCOPES

    @property
    def uses_ims(self) -> bool:
        return bool(self.client_id and self.client_secret)


@dataclass(frozen=True)
class Network:
    """How the process reaches the API and IMS."""

    #: http://[user:pass@]host:port for every request; None: the environment's, if any
    proxy: str | None = None
    #: PEM file of CA certificates to trust instead of the system's
    ca_bundle: str | None = None
    max_body: int = DEFAULT_MAX_BODY
    pool_size: int = 100
    keepalive: float = 10.0
    request_timeout: float = Timeouts().request
    connect_timeout: float = Timeouts().connect


@dataclass(frozen=True)
class Pacing:
    """How fast and how patiently."""

    #: rows in flight at once; None: auto (sized from the rate and the latency observed)
    concurrency: int | None = None
    #: the most rows auto may put in flight
    max_concurrency: int = 128
    rate: RatePolicy = field(default_factory=RatePolicy)
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    timeouts: Timeouts = field(default_factory=Timeouts)
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    grace: float = 30.0
    max_outage: float = 900.0


@dataclass(frozen=True)
class Outputs:
    """The files a run writes."""

    results: Path
    failures: Path
    summary: Path
    metrics: Path | None = None
    #: the metrics' job label
    metrics_job: str = "batchpatch"

    def all(self) -> dict[str, Path]:
        paths = {"--results": self.results, "--failures": self.failures,
                 "--summary": self.summary}
        if self.metrics is not None:
            paths["--metrics-file"] = self.metrics
        return paths


@dataclass(frozen=True)
class RunMode:
    """What kind of run."""

    dry_run: bool = False
    no_verify: bool = False
    resume: bool = False
    limit: int | None = None
    canary: int | None = None
    on_missing: str = "fail"
    create_url: str | None = None
    max_changes: int | None = None
    fields: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Reporting:
    """What the run says while it goes."""

    quiet: bool = False
    log_format: str = "text"
    log_level: str = "info"
    log_rows: bool = False
    progress: str = "auto"  # auto: a bar on a terminal, log lines otherwise; off: nothing
    progress_every: float = 60.0


@dataclass(frozen=True)
class Settings:
    """Everything a run needs, validated; built once by config.load_settings."""

    input: InputSpec
    target_spec: TargetSpec = field(default_factory=TargetSpec)
    credentials: Credentials = field(default_factory=Credentials)
    network: Network = field(default_factory=Network)
    pacing: Pacing = field(default_factory=Pacing)
    outputs: Outputs | None = None
    mode: RunMode = field(default_factory=RunMode)
    reporting: Reporting = field(default_factory=Reporting)
    #: where field types come from: "auto" (the API's metadata), "none", or a JSON Schema file
    schema: str = "auto"
    #: where the summary is POSTed when the run ends
    notify: str | None = None
    #: every option's value by name, and where it came from (flag, env, file, default)
    values: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    sources: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def target(self) -> Target:
        return self.target_spec.target()

    def shown(self) -> dict[str, Any]:
        """The settings as a plain dict, secrets masked (for --print-config)."""
        return {name: "***" if isinstance(value, Secret) else
                redact(value) if isinstance(value, str) else value
                for name, value in self.values.items()}
