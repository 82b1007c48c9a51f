"""The transport seam (as httpx's transports): "send this request, get status, headers, body".

Everything that decides (retries, pacing, auth, redirects, classification) sits above it, in
api.py and auth.py. Two implementations:
- AiohttpTransport: one aiohttp session for the run; never follows redirects (the client
  decides); chooses a proxy per origin (--proxy, else HTTPS_PROXY/HTTP_PROXY/NO_PROXY as curl
  does); verifies TLS with --ca-bundle or the system store (SSL_CERT_FILE honoured); reads at
  most --max-body bytes of an answer, decompressed.
- MemoryTransport: hands each request to a function; for unit tests of the client's decisions.

A transport raises only these: Unreachable (no HTTP answer), TlsFailed (the certificate did not
verify), AuthFailed (the proxy refused our credentials to open a tunnel: 407 to CONNECT),
BodyTooLarge, and Rejected for a URL that cannot be sent.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import ssl
import urllib.request
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, NamedTuple, Protocol
from urllib.parse import unquote, urlsplit

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from .errors import AuthFailed, BodyTooLarge, Rejected, TimedOut, TlsFailed, Unreachable
from .settings import Network

__all__ = ["AiohttpTransport", "MemoryTransport", "Request", "Response", "Transport",
           "respond"]



class Request(NamedTuple):
    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes | None = None
    #: seconds for the whole exchange; None: the transport's default
    timeout: float | None = None


class Response(NamedTuple):
    status: int
    headers: Mapping[str, str]  # case-insensitive
    body: bytes


class Transport(Protocol):
    async def send(self, request: Request) -> Response: ...

    async def close(self) -> None: ...




def proxy_for(url: str, explicit: str | None) -> str | None:
    """The proxy for `url`: `explicit`, else the environment's for its scheme; None when
    NO_PROXY names the host (as curl and requests decide)."""
    host = urlsplit(url).hostname or ""
    env = urllib.request.getproxies_environment()
    if env.get("no") and urllib.request.proxy_bypass_environment(host, env):
        return None
    if explicit:
        return explicit
    return env.get(urlsplit(url).scheme.lower())


def _split_proxy(proxy: str) -> tuple[str, aiohttp.BasicAuth | None]:
    parts = urlsplit(proxy)
    if parts.username is None:
        return proxy, None
    netloc = parts.hostname or ""
    if ":" in netloc:
        netloc = f"[{netloc}]"
    if parts.port:
        netloc += f":{parts.port}"
    bare = parts._replace(netloc=netloc).geturl()
    return bare, aiohttp.BasicAuth(unquote(parts.username), unquote(parts.password or ""))


def ssl_context(ca_bundle: str | None) -> ssl.SSLContext:
    """The context that verifies servers: --ca-bundle, else the system's (SSL_CERT_FILE)."""
    return ssl.create_default_context(cafile=ca_bundle)


class AiohttpTransport:
    """One aiohttp session for the run; see the module docstring."""

    def __init__(self, network: Network) -> None:
        self._network = network
        self._ssl = ssl_context(network.ca_bundle)
        connector = aiohttp.TCPConnector(limit=network.pool_size,
                                         keepalive_timeout=network.keepalive, ssl=self._ssl)
        self._timeout = aiohttp.ClientTimeout(total=network.request_timeout,
                                              sock_connect=network.connect_timeout)
        self._session = aiohttp.ClientSession(connector=connector, raise_for_status=False,
                                              cookie_jar=aiohttp.DummyCookieJar(),
                                              trust_env=False, timeout=self._timeout)
        self._proxies: dict[str, tuple[str | None, aiohttp.BasicAuth | None]] = {}
        # most hosts have no proxy at all: then nothing is looked up per request
        self._any_proxy = bool(network.proxy or {
            k for k in urllib.request.getproxies_environment() if k != "no"})

    def _proxy(self, url: str) -> tuple[str | None, aiohttp.BasicAuth | None]:
        origin = _origin_key(url)
        found = self._proxies.get(origin)
        if found is None:
            proxy = proxy_for(url, self._network.proxy)
            found = self._proxies[origin] = _split_proxy(proxy) if proxy else (None, None)
        return found

    async def send(self, request: Request) -> Response:
        proxy, proxy_auth = self._proxy(request.url) if self._any_proxy else (None, None)
        timeout = (self._timeout if request.timeout is None else
                   aiohttp.ClientTimeout(total=request.timeout,
                                         sock_connect=min(request.timeout,
                                                          self._network.connect_timeout)))
        url = request.url
        # a URL we built (or an href the API gave) is already encoded: yarl need not re-quote
        # it, nor normalise its path (which would turn a key `%2E%2E` into the parent)
        target: str | URL = URL(url, encoded=True) if _SAFE_URL.fullmatch(url) else url
        try:
            async with self._session.request(
                request.method, target, data=request.body, headers=request.headers,
                allow_redirects=False, timeout=timeout, proxy=proxy, proxy_auth=proxy_auth,
            ) as resp:
                if resp.status == 407 and proxy is not None:  # a plain-HTTP proxy's own answer
                    raise AuthFailed(
                        f"the proxy {_origin_key(proxy)} refused our credentials (407 "
                        f"{resp.reason or 'Proxy Authentication Required'}) for "
                        f"{_origin_key(request.url)}; check the user and password in --proxy "
                        "or HTTPS_PROXY/HTTP_PROXY", 407)
                body = await self._read(resp)
                return Response(resp.status, resp.headers, body)
        except AuthFailed:
            raise
        except Exception as exc:
            raise _transport_error(exc, request) from None

    async def _read(self, resp: aiohttp.ClientResponse) -> bytes:
        limit = self._network.max_body
        length = resp.content_length
        if length is not None and length > limit:
            raise BodyTooLarge(f"the answer is {length} bytes, more than --max-body {limit}",
                               resp.status)
        if length is not None and "Content-Encoding" not in resp.headers:
            return await resp.read()
        chunks, size = [], 0
        async for chunk in resp.content.iter_chunked(1 << 16):
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge(f"the answer is more than --max-body {limit} bytes",
                                   resp.status)
            chunks.append(chunk)
        return b"".join(chunks)

    async def close(self) -> None:
        await self._session.close()


_SAFE_URL = re.compile(r"https?://[A-Za-z0-9.\-\[\]:]+(?:/[A-Za-z0-9\-._~%!$&'()*+,;=:@/]*)?"
                       r"(?:\?[A-Za-z0-9\-._~%!$&'()*+,;=:@/?]*)?")


def _origin_key(url: str) -> str:
    """`scheme://host:port` of a URL, by string slicing (this runs for every request)."""
    start = url.find("//") + 2
    end = url.find("/", start)
    query = url.find("?", start)
    if end < 0 or 0 <= query < end:
        end = query
    return url if end < 0 else url[:end]


def _transport_error(exc: Exception, request: Request) -> Exception:
    """The typed error for what aiohttp (or the OS) raised; other exceptions as they are."""
    what = f"{request.method} {_origin_key(request.url)}"
    if isinstance(exc, BodyTooLarge):
        return exc
    if isinstance(exc, TimeoutError):
        return TimedOut(f"{what} timed out")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        return TlsFailed(_tls_words(exc.certificate_error, request.url))
    if isinstance(exc, aiohttp.ClientSSLError):
        return TlsFailed(_tls_words(exc, request.url))
    if isinstance(exc, aiohttp.ClientHttpProxyError) and exc.status == 407:
        proxy = _origin_key(str(exc.request_info.real_url))
        return AuthFailed(f"the proxy {proxy} refused our credentials (407 {exc.message}) for "
                          f"{_origin_key(request.url)}; check the user and password in --proxy "
                          "or HTTPS_PROXY/HTTP_PROXY", 407)
    if isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientProxyConnectionError):
        return Unreachable(f"{what} failed: {type(exc).__name__}: {exc}", sent=False)
    if isinstance(exc, aiohttp.InvalidURL | ValueError):
        return Rejected(f"cannot send to {request.url!r}: {type(exc).__name__}: {exc}")
    if isinstance(exc, aiohttp.ClientError | OSError):
        return Unreachable(f"{what} failed: {type(exc).__name__}: {exc}")
    return exc


def _tls_words(error: BaseException, url: str) -> str:
    """One line naming the host, what is wrong with its certificate (or its TLS), and the fix
    for that cause: a CA bundle cures only a CA this machine does not know."""
    parts = urlsplit(url)
    host = parts.hostname or url
    text = str(getattr(error, "verify_message", "") or error)
    low = text.lower()
    if any(words in low for words in _NOT_TLS):
        where = f"{host}:{parts.port or 443}"
        return (f"TLS: {where} does not speak TLS ({_NOT_TLS_SAID}); check the URL's scheme "
                "(http:// or https://) and port")
    if "hostname mismatch" in low or "doesn't match" in low or "not valid for" in low:
        why = "its certificate is for another host name (hostname mismatch)"
        fix = "use the host name the certificate names in the URL (a CA bundle cannot change it)"
    elif "not yet valid" in low:
        why = "its certificate is not valid yet"
        fix = "check this machine's clock"
    elif "expired" in low:
        why = "its certificate has expired"
        fix = "the server's certificate must be renewed (or this machine's clock is wrong)"
    elif "self-signed" in low or "self signed" in low or "unable to get local issuer" in low \
            or "unknown ca" in low or "unable to get issuer" in low:
        why = "its certificate is signed by a CA this machine does not trust (unknown CA)"
        fix = "give the company CA with --ca-bundle FILE (or SSL_CERT_FILE)"
    else:
        why = f"TLS failed ({text})"
        fix = "if a proxy inspects TLS, give its CA with --ca-bundle FILE (or SSL_CERT_FILE)"
    return f"TLS: cannot verify {host}: {why}; {fix}"


#: what OpenSSL says when the other end answers something that is not TLS (plain HTTP)
_NOT_TLS = ("wrong version number", "record layer failure", "unknown protocol",
            "packet length too long")
_NOT_TLS_SAID = "it answered something that is not a TLS handshake, plain HTTP perhaps"


Handler = Callable[[Request], Response | Awaitable[Response]]


def respond(status: int = 200, json: Any = None, body: bytes | None = None,
            headers: Mapping[str, str] | None = None) -> Response:
    """A Response for tests: `json` is serialised, `body` given as bytes."""
    import orjson

    raw = body if body is not None else (b"" if json is None else orjson.dumps(json))
    out = CIMultiDict(headers or {})
    if json is not None:
        out.setdefault("Content-Type", "application/json")
    return Response(status, CIMultiDictProxy(out), raw)


class MemoryTransport:
    """Hands each request to `handler` (sync or async; it may raise a transport error) and
    keeps every request sent, in order, in `requests`."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[Request] = []

    async def send(self, request: Request) -> Response:
        self.requests.append(request)
        answer = self._handler(request)
        if inspect.isawaitable(answer):
            answer = await answer
        await asyncio.sleep(0)  # a real transport always yields to the loop
        return answer

    async def close(self) -> None:
        return None

    @classmethod
    def script(cls, *answers: Response | BaseException) -> MemoryTransport:
        """Answer requests with `answers` in order (an exception is raised); the last repeats."""
        queue = list(answers)

        def handler(request: Request) -> Response:
            answer = queue.pop(0) if len(queue) > 1 else queue[0]
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return cls(handler)
