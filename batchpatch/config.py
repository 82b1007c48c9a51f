"""Settings from flags, the environment, a TOML file and defaults, in that order of precedence,
for every command through the same path (options.py declares the options).

Every option has one name (`key_column`); the flag is `--key-column`, the environment variable
`BATCHPATCH_KEY_COLUMN`, the TOML key `key_column` (or `key-column`), the Python API keyword
`key_column`. A TOML file may hold `[profiles.NAME]` tables chosen with `--profile NAME`, and
its settings either at the top or in a `[run]` table. Secrets are wrapped in Secret as soon as
they are read, so no repr or message can show them.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import UsageError
from .options import BY_NAME, options_for
from .policy import BreakerPolicy, RatePolicy, RetryPolicy, Timeouts
from .settings import (
    Credentials,
    InputSpec,
    Network,
    Outputs,
    Pacing,
    Reporting,
    RunMode,
    Settings,
    TargetSpec,
)

__all__ = ["check_url", "load_settings", "load_values", "output_paths"]

_RANK = {"default": 0, "file": 1, "env": 2, "flag": 3}


def _table(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise UsageError(f"{where} must be a table ([...]), not {type(value).__name__}")
    return value


def _read_toml(path: str, profile: str | None) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise UsageError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a config file") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read config: {exc.strerror}") from None
    profiles = _table(data.pop("profiles", {}), f"{path}: profiles")
    table = dict(_table(data.pop("run"), f"{path}: run")) if "run" in data else {}
    table = {**data, **table}
    if profile:
        if profile not in profiles:
            have = ", ".join(profiles) or "none"
            raise UsageError(f"{path}: no [profiles.{profile}] table (have: {have})")
        table.update(_table(profiles[profile], f"{path}: profiles.{profile}"))
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = key.replace("-", "_")
        if name not in BY_NAME:
            raise UsageError(f"{path}: unknown setting {key!r}")
        out[name] = value
    return out


def load_values(
    command: str,
    options: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config: str | None = None,
    profile: str | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Each option of `command` as (value, source), merged by precedence: flags > environment >
    file > defaults. `options` holds the flags (None: not given)."""
    env = os.environ if env is None else env
    if profile and not config:
        raise UsageError("--profile needs --config (the file that holds [profiles.NAME])")
    wanted = {option.name: option for option in options_for(command)}
    values: dict[str, Any] = {name: option.default for name, option in BY_NAME.items()}
    sources = dict.fromkeys(wanted, "default")
    layers: list[tuple[str, dict[str, tuple[Any, str]]]] = []
    if config:
        layers.append(("file", {name: (value, f"{config}: {name}") for name, value in
                                _read_toml(config, profile).items() if name in wanted}))
    layers.append(("env", {name: (raw, option.env_name) for name, option in wanted.items()
                           if (raw := env.get(option.env_name)) not in (None, "")}))
    flags: dict[str, tuple[Any, str]] = {}
    for name, value in options.items():
        option = wanted.get(name)
        if option is None:
            raise UsageError(f"unknown option {name!r} for {command}")
        if value is not None:
            flags[name] = (value, option.flag_name or name)
    layers.append(("flag", flags))
    for source, layer in layers:
        for name, (raw, where) in layer.items():
            values[name] = wanted[name].convert(raw, where)
            sources[name] = source
    return values, sources


def output_paths(values: Mapping[str, Any], input_path: str, input_format: str) -> Outputs:
    """results, failures, summary: as given, else beside the input (`name.results.jsonl`)."""
    if input_path == "-":
        stem = Path("stdin")
    else:
        path = Path(input_path)
        name = path.name[:-3] if path.name.endswith(".gz") else path.name
        stem = path.with_name(Path(name).stem)

    def beside(given: str | None, suffix: str) -> Path:
        return Path(given) if given else stem.with_name(f"{stem.name}.{suffix}")

    metrics = values.get("metrics_file")
    return Outputs(beside(values.get("results"), "results.jsonl"),
                   beside(values.get("failures"), f"failures.{input_format}"),
                   beside(values.get("summary"), "summary.json"),
                   Path(metrics) if metrics else None,
                   values.get("metrics_job") or stem.name)


def load_settings(
    options: Mapping[str, Any],
    env: Mapping[str, str] | None = None,
    config: str | None = None,
    profile: str | None = None,
    command: str = "run",
) -> Settings:
    """The settings of `batchpatch run` (or of another command that talks to the API, with
    its options and the defaults of the rest): merged, validated, grouped."""
    from .rows import detect_format

    options = dict(options)
    input_path = options.pop("input", None)
    if input_path is None:
        raise UsageError("no input file given")
    values, sources = load_values(command, options, env, config, profile)
    _resolve_client_secret(values, sources)
    input_format = detect_format(str(input_path), values["format"])
    settings = Settings(
        input=InputSpec(str(input_path), values["format"], values["key_column"],
                        values["delimiter"], values["null_token"]),
        target_spec=_target(values),
        credentials=Credentials(values["token"], values["api_key"], values["client_id"],
                                values["client_secret"], values["ims_url"], values["scopes"]),
        network=Network(proxy=values["proxy"], ca_bundle=values["ca_bundle"],
                        max_body=values["max_body"],
                        request_timeout=values["timeout"],
                        connect_timeout=Timeouts(values["timeout"]).connect,
                        pool_size=(values["concurrency"] or Pacing().max_concurrency) + 4),
        pacing=Pacing(
            concurrency=values["concurrency"],
            rate=RatePolicy(values["rate"], values["adaptive_rate"]),
            retry=RetryPolicy(retries=values["retries"]),
            timeouts=Timeouts(values["timeout"]),
            breaker=BreakerPolicy(values["max_error_rate"], values["error_window"]),
            grace=values["grace"], max_outage=values["max_outage"]),
        outputs=output_paths(values, str(input_path), input_format),
        mode=RunMode(values["dry_run"], values["no_verify"], values["resume"], values["limit"],
                     values["canary"], values["on_missing"], values["create_url"],
                     values["max_changes"], values["fields"]),
        reporting=Reporting(values["quiet"], values["log_format"], values["log_level"],
                            values["log_rows"], values["progress"], values["progress_every"]),
        schema=values["schema"],
        notify=values["notify"],
        values={"input": str(input_path), **values},
        sources={"input": "flag", **{k: v for k, v in sources.items() if v != "default"}},
    )
    _check(settings)
    return settings


def _resolve_client_secret(values: dict[str, Any], sources: dict[str, str]) -> None:
    """The client secret from whichever of --client-secret and --client-secret-file was given
    with the higher precedence (flags > environment > file)."""
    path = values.get("client_secret_file")
    if not path:
        return
    direct, from_file = _RANK[sources["client_secret"]], _RANK[sources["client_secret_file"]]
    if values.get("client_secret") and direct == from_file:
        raise UsageError("give --client-secret or --client-secret-file, not both")
    if values.get("client_secret") and direct > from_file:
        return
    try:
        raw = Path(path).read_bytes()
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a client secret file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the client secret: {exc.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"{path}: the client secret file is not UTF-8 text") from None
    values["client_secret"] = BY_NAME["client_secret"].convert(text, path)
    if not values["client_secret"]:
        raise UsageError(f"{path}: the client secret file is empty")
    sources["client_secret"] = sources["client_secret_file"]


def _target(values: dict[str, Any]) -> TargetSpec:
    return TargetSpec(values["base_url"], values["org"], values["resource"],
                      values["url_template"], values["lookup"], values["lookup_param"],
                      values["lookup_url"])


def check_url(url: str, flag: str, placeholder: str | None = None) -> None:
    """A URL we can send to: http(s), a host, a valid port; the placeholder where it belongs."""
    sample = url.replace(placeholder, "x") if placeholder else url
    try:
        parts = urlsplit(sample)
        port = parts.port
    except ValueError as exc:
        raise UsageError(f"{flag}: {url!r} is not a valid URL ({exc})") from None
    if parts.scheme.lower() not in ("http", "https"):
        raise UsageError(f"{flag} must start with http:// or https:// (got {url!r})")
    if not parts.hostname:
        raise UsageError(f"{flag}: {url!r} names no host")
    if port == 0:
        raise UsageError(f"{flag}: {url!r}: port 0 is not a port")
    if placeholder and placeholder in (parts.scheme + parts.netloc):
        raise UsageError(f"{flag}: {placeholder} must be in the path or query, not the host")


def check_ca_bundle(path: str) -> None:
    """A PEM file ssl can load, else UsageError naming it."""
    import ssl

    try:
        ssl.create_default_context(cafile=path)
    except FileNotFoundError:
        raise UsageError(f"--ca-bundle {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--ca-bundle {path}: is a directory, not a PEM file") from None
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise UsageError(f"--ca-bundle {path}: not a PEM file of certificates ({exc})") \
            from None


def _check(s: Settings) -> None:
    t, c = s.target_spec, s.credentials
    if t.url_template:
        if t.base_url or t.org:
            raise UsageError("give either --url-template or --base-url/--org, not both")
        if "{pkey}" not in t.url_template:
            raise UsageError("--url-template must contain {pkey}")
        check_url(t.url_template, "--url-template", "{pkey}")
    elif t.base_url and t.org:
        check_url(t.base_url, "--base-url")
    else:
        raise UsageError("no target: give --base-url and --org (Adobe), or --url-template")
    if t.lookup_url:
        if "{key}" not in t.lookup_url:
            raise UsageError("--lookup-url must contain {key}")
        check_url(t.lookup_url, "--lookup-url", "{key}")
    if t.lookup and t.url_template and not t.lookup_url:
        raise UsageError("--lookup works with --base-url/--org; with --url-template give "
                         "--lookup-url 'https://host/path?email={key}'")
    if c.client_id or c.client_secret:
        check_url(c.ims_url, "--ims-url")
    if c.client_id and not c.client_secret:
        raise UsageError("--client-id needs --client-secret, --client-secret-file or "
                         "BATCHPATCH_CLIENT_SECRET")
    if c.client_secret and not c.client_id:
        raise UsageError("a client secret needs --client-id")
    if s.mode.create_url:
        check_url(s.mode.create_url, "--create-url")
    if s.mode.on_missing == "create" and t.url_template and not s.mode.create_url:
        raise UsageError("--on-missing create with --url-template needs --create-url (where "
                         "a new profile is POSTed)")
    if s.notify:
        check_url(s.notify, "--notify")
    if s.network.ca_bundle:
        check_ca_bundle(s.network.ca_bundle)
    if s.mode.resume and s.input.path == "-":
        raise UsageError("--resume needs an input file, not standard input")

