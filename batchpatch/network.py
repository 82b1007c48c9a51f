"""What the run's network is, as --print-config shows it: the proxy each origin goes through
and the CA certificates trusted; and the environment proxies' credentials registered as secrets
(secret.register_proxy_url: every form they travel in)."""

from __future__ import annotations

import os
import ssl
import urllib.request
from typing import Any

from .secret import redact, register_proxy_url
from .settings import Settings
from .transport import proxy_for

__all__ = ["network_shown", "register_env_proxy_secrets"]


def register_env_proxy_secrets() -> None:
    """The credentials in HTTPS_PROXY / HTTP_PROXY (any case) are secrets of the run too."""
    for url in urllib.request.getproxies_environment().values():
        register_proxy_url(url)


def _ca_in_use(ca_bundle: str | None) -> str:
    if ca_bundle:
        return f"{ca_bundle} (--ca-bundle)"
    if os.environ.get("SSL_CERT_FILE"):
        return f"{os.environ['SSL_CERT_FILE']} (SSL_CERT_FILE)"
    paths = ssl.get_default_verify_paths()
    return f"the system's ({paths.cafile or paths.capath or 'OpenSSL default'})"


def network_shown(settings: Settings) -> dict[str, Any]:
    """The proxy for the API and for IMS (masked), and the CA bundle in use."""
    register_env_proxy_secrets()
    explicit = settings.network.proxy
    api_url = settings.target.url_for("x")
    shown: dict[str, Any] = {
        "proxy_for_api": redact(proxy_for(api_url, explicit) or "none (direct)"),
        "ca_bundle": _ca_in_use(settings.network.ca_bundle),
    }
    if settings.credentials.uses_ims:
        shown["proxy_for_ims"] = redact(proxy_for(settings.credentials.ims_url, explicit)
                                        or "none (direct)")
    return shown
