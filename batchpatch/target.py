"""Where a key's profile lives: one place builds every URL, and one place decides whether a URL
the API handed back (an href, a redirect's Location) is on the target's own origin."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote, urljoin, urlsplit

__all__ = ["DEFAULT_RESOURCE", "Target", "absolute_url", "describe_origin", "encode_key",
           "origin_of", "same_origin"]

DEFAULT_RESOURCE = "profileAndServices/profile"


def encode_key(key: str) -> str:
    """A key as one path segment: every reserved character escaped, and `.`/`..` too, so that
    no key can address its parent (`quote` leaves dots alone)."""
    encoded = quote(key, safe="@")
    if encoded in (".", ".."):
        encoded = encoded.replace(".", "%2E")
    return encoded


def origin_of(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the scheme's default port filled in; ValueError if malformed."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    port = parts.port or {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or "").lower(), port


def same_origin(a: str, b: str) -> bool:
    try:
        return origin_of(a) == origin_of(b)
    except ValueError:
        return False


def describe_origin(url: str) -> str:
    """`scheme://host:port` of a URL, for messages."""
    try:
        scheme, host, port = origin_of(url)
    except ValueError:
        return repr(url)
    return f"{scheme}://{host}:{port}"


def absolute_url(location: Any, base: str) -> str | None:
    """An href or Location made absolute against `base`; None if it is not a usable http(s)
    URL."""
    if not isinstance(location, str) or not location.strip():
        return None
    try:
        url = urljoin(base, location.strip())
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        return None
    return url


@dataclass(frozen=True, slots=True)
class Target:
    """`{base}/{org}/campaign/{resource}/{pkey}` or a URL template with `{pkey}`."""

    template: str  # contains "{pkey}"
    #: where a row's key is looked up (e.g. by email) when it is not the profile key; has "{key}"
    lookup_template: str | None = None
    #: `scheme://host[:port]/` of the template, for the fast same-origin check
    prefix: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        parts = urlsplit(self.template)
        object.__setattr__(self, "prefix", f"{parts.scheme}://{parts.netloc}/")

    @classmethod
    def adobe(cls, base_url: str, org: str, resource: str = DEFAULT_RESOURCE,
              lookup: str | None = None, lookup_param: str | None = None,
              lookup_url: str | None = None) -> Target:
        """The ACS URLs; `lookup` names a lookup resource such as `byEmail` (param `email`)."""
        root = f"{base_url.rstrip('/')}/{quote(org, safe='')}/campaign/{resource.strip('/')}"
        lookup_template = lookup_url
        if lookup and not lookup_url:
            param = lookup_param or (lookup[2].lower() + lookup[3:] if lookup.startswith("by")
                                     and len(lookup) > 2 else lookup)
            lookup_template = f"{root}/{lookup}?{quote(param)}={{key}}"
        return cls(f"{root}/{{pkey}}", lookup_template)

    @property
    def collection(self) -> str | None:
        """Where profiles are created: the template without its trailing `/{pkey}`."""
        if self.template.endswith("/{pkey}"):
            return self.template[: -len("/{pkey}")]
        return None

    @property
    def lookup_field(self) -> str | None:
        """The field a lookup searches (`...?email={key}` -> email)."""
        if self.lookup_template is None:
            return None
        found = re.search(r"[?&]([^=&?]+)=\{key\}", self.lookup_template)
        return unquote(found.group(1)) if found else None

    def url_for(self, pkey: str) -> str:
        return self.template.replace("{pkey}", encode_key(pkey))

    def lookup_url(self, key: str) -> str:
        assert self.lookup_template is not None
        return self.lookup_template.replace("{key}", quote(key, safe="@"))

    def follow(self, href: Any, fallback: str) -> str:
        """The URL to read back from: the API's href when it is a valid URL on the target's own
        origin. A href elsewhere would receive our credentials, so `fallback` is used instead."""
        if isinstance(href, str) and href.startswith(self.prefix) and "\\" not in href:
            return href  # the common case, without parsing
        url = absolute_url(href, fallback)
        if url is None or not same_origin(url, fallback):
            return fallback
        return url
