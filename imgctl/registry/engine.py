"""The registry client: HTTP, mirrors, authentication, TLS, manifests, blobs, tags.  No disk.

Endpoint choice and authentication live here so that use cases never think
about which URL served them: reads try each mirror, then the registry; a blob
stream that breaks resumes with ``Range`` there or at the next endpoint.
Every document fetched is size-capped, every manifest and blob is checked
against its digest, so a mirror can make a pull faster, never different.

Credentials and tokens are kept per host and sent only to it: never across a
redirect to another origin, to a mirror on another host, or to a layer's own
URL, and never into a log line.  TLS is verified with the system trust store
plus docker's ``certs.d/HOST[:PORT]/`` (``*.crt`` CAs, ``client.cert`` and
``client.key``); plain HTTP is used only for loopback and insecure registries, and
insecure registries (only they) are also reached over HTTPS without verification.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

import httpcore
import httpx

from imgctl import __version__, jsonlimit, trust
from imgctl.auth import IDENTITY_TOKEN_USER, Credential
from imgctl.config import Config
from imgctl.errors import (
    AccessDenied,
    ConfigError,
    ImgctlError,
    ManifestUnknown,
    RegistryError,
    TransportError,
    Unauthorized,
    UnsupportedManifest,
    VerificationError,
)
from imgctl.oci import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE
from imgctl.reference import validate_digest

__all__ = ["RegistryClient", "Endpoint", "FetchedManifest", "Retry", "api_host", "is_loopback", "tls_files"]

MAX_TOKEN_SIZE = 1024 * 1024
MAX_ERROR_SIZE = 1024 * 1024
MAX_REDIRECTS = 10
MAX_PAGES = 1000  # pages of one listing (tags, catalog) before it is stopped as endless
MAX_LISTING_BYTES = 64 * 1024 * 1024  # bytes of one listing, all pages together
MAX_TAGS = 100_000  # tags list_tags() collects (``iter_tags`` streams them instead)
MAX_URL_LENGTH = 8192
MAX_TOKEN_LIFETIME = 86400.0  # seconds: a longer expires_in is capped
USER_AGENT = f"imgctl/{__version__}"
MIN_TOKEN_LIFETIME = 60.0  # seconds; also the default when a token answer has no expires_in
TOKEN_MARGIN = 5.0  # renew a token this long before it expires
RESUME_ATTEMPTS = 3  # tries per endpoint for one blob, each after progress, before moving on
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is not waited for (the request fails at once)
MAX_BACKOFF = 30.0


def _transient(error: BaseException) -> bool:
    """A failure worth retrying: a broken or stalled stream (not an answer, not a refusal)."""
    return isinstance(error, TransportError) and not isinstance(error, _Unreachable)


def _retry_after(value: str | None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return max(0.0, when - time.time())


def _retry_wait(status: int, retry_after: str | None) -> float | None | bool:
    """How a transient status is retried: seconds to wait (Retry-After), None (back off as
    usual), or False: not worth retrying.  A 429 without Retry-After (Docker Hub's pull rate
    limit: a six-hour window) or any Retry-After beyond MAX_RETRY_AFTER cannot succeed soon."""
    wait = _retry_after(retry_after)
    if wait is not None and wait > MAX_RETRY_AFTER:
        return False
    if wait is None and status == 429:
        return False
    return wait


RATE_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry about to happen (``on_retry``): what is retried, the blob it is for, the wait."""

    what: str
    delay: float
    digest: str | None = None  # the blob's digest, also when its bytes come from a redirect target


def seconds_text(delay: float) -> str:
    """``1 second``, ``5 seconds``, ``0.25 seconds`` (docker's wording for whole seconds)."""
    if delay == int(delay):
        n = int(delay)
        return f"{n} second" + ("" if n == 1 else "s")
    return f"{delay:.2g} seconds"

Credentials = Callable[[str], "Credential | None"]  # host -> (user, secret) or None
T = TypeVar("T")


def api_host(domain: str) -> str:
    """The host that serves the registry API for a reference's domain."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


def is_loopback(host: str) -> bool:
    """``host`` is ``name``, ``name:port``, ``[v6]`` or ``[v6]:port``."""
    if host.startswith("["):
        name = host[1:].split("]", 1)[0]
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    else:
        name = host
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


_TOKEN_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,65535}")  # printable ASCII: what a header value may hold
_CHALLENGE_RE = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_RE.finditer(rest)}
    return scheme.lower(), params


def _ssl_verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


def _reason(exc: Exception) -> str:
    verify = _ssl_verify_error(exc)
    if verify is not None:
        return f"TLS certificate verification failed: {verify.verify_message or verify.reason or verify}"
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, httpx.TimeoutException) and text.startswith(_LIMIT_MESSAGES):
        return text  # an exchange's deadline or a blob's minimum rate (see _Limit)
    low = text.lower()
    if "connection refused" in low:
        return "connection refused"
    if "certificate" in low or "ssl" in low or "tls" in low:
        return f"TLS handshake failed: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "name or service not known" in low or "nodename nor servname" in low or "temporary failure in name resolution" in low:
        return "no such host"
    m = re.search(r"incomplete message body \(received (\d+) bytes, expected (\d+)\)", text)
    if m:
        return f"the connection closed after {m.group(1)} of {m.group(2)} bytes"
    if "connection reset" in low:
        return "connection reset by peer"
    return text


class _Unreachable(TransportError):
    """No connection could be made (refused, timeout, TLS): the endpoint is skipped for the rest of the run."""


class _Skipped(_Unreachable):
    """An endpoint found unreachable earlier in this run (not logged again)."""


class _Stalled(TransportError):
    """A blob stream slower than MIN_BLOB_RATE: a stall (backoff, shown), never progress to resume at once."""


_LIMIT_MESSAGES = ("no complete answer within ", "stalled: ")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place a registry's content is read from: a mirror, the registry itself, or a layer's own URL."""

    url: str  # scheme://host[:port][/prefix] (a foreign layer: the whole blob URL)
    host: str  # host[:port]: what credentials, tokens and TLS settings belong to
    mirror: bool = False
    foreign: bool = False  # a layer's ``urls`` entry: never sent credentials

    @property
    def label(self) -> str:
        if self.mirror:
            return f"mirror {self.url}"
        if self.foreign:
            return f"layer URL {_redact(self.url)}"
        return f"registry {self.host}"


def tls_files(host: str, certs_dirs: Sequence[Path]) -> tuple[tuple[Path, ...], tuple[Path, Path] | None]:
    """docker's certs.d convention for ``host`` (``name[:port]``): ``*.crt`` are CAs, ``X.cert`` + ``X.key`` a client pair.

    CAs are gathered from every directory; the first client pair found wins.
    """
    cas: list[Path] = []
    client: tuple[Path, Path] | None = None
    for base in certs_dirs:
        d = Path(base) / host
        try:
            names = sorted(p.name for p in d.iterdir())
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as e:
            raise ConfigError(f"cannot read {d}: {e.strerror}") from e
        cas.extend(d / n for n in names if n.endswith(".crt"))
        for n in names:
            if n.endswith(".cert") and client is None:
                key = d / (n[: -len(".cert")] + ".key")
                if not key.is_file():
                    raise ConfigError(f"{d / n} has no matching key {key.name}")
                client = (d / n, key)
        for n in names:
            if n.endswith(".key") and not (d / (n[: -len(".key")] + ".cert")).is_file():
                raise ConfigError(f"{d / n} has no matching certificate {n[: -len('.key')]}.cert")
    return tuple(cas), client


def _proxy_environment() -> dict[str, str]:
    """``urllib.request.getproxies_environment()``, without importing urllib.request (about
    7 ms) when no ``*_proxy`` variable is set, which is nearly always."""
    if not any(k.lower().endswith("_proxy") for k in os.environ):
        return {}
    import urllib.request

    return urllib.request.getproxies_environment()


_URL_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


def _checked_url(url: str, what: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host that httpx can send, else RegistryError.

    Whitespace and control characters are refused rather than stripped (``urlsplit`` drops
    some silently), so is a user name or password in the URL, a bad port or IPv6 literal.
    """
    bad = RegistryError(f"{what} is not a valid http(s) URL: {ascii(url[:100])}")
    if len(url) > MAX_URL_LENGTH or _URL_BAD_CHARS.search(url):
        raise bad
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
        if ok:
            httpx.URL(url).host  # noqa: B018 - and httpx's own parser (IDNA, IPv6) accepts it
    except (ValueError, UnicodeError, httpx.InvalidURL):
        ok = False
    if not ok:
        raise bad
    return url


def _bad_location(e: Exception) -> bool:
    """httpx builds the request a redirect leads to even when not following it: its error for a
    ``Location`` that is not a URL (a redirect answer, not a transport failure)."""
    return isinstance(e, httpx.InvalidURL) or str(e).startswith("Invalid URL in location header")


def _usable_url(url: str) -> bool:
    """A foreign layer's URL worth trying (others are skipped, as docker skips non-http ones)."""
    try:
        return bool(_checked_url(url, "URL"))
    except RegistryError:
        return False


def _joined_url(base: str, ref: str, what: str) -> str:
    """``ref`` (a Link or Location value) resolved against ``base``, checked like _checked_url."""
    try:
        url = ref if _URL_BAD_CHARS.search(ref) else urljoin(base, ref)  # (urljoin drops some silently)
    except ValueError:
        url = ref
    return _checked_url(url, what)


class _Pages:
    """Where a listing (tags, catalog) goes next after each page.

    It follows ``Link: <...>; rel="next"`` on the same origin only, and stops with an error
    at a link back to a page already read, after MAX_PAGES pages or MAX_LISTING_BYTES bytes.
    """

    def __init__(self, url: str, label: str, what: str) -> None:
        self.origin, self.label, self.what = urlsplit(url)[:2], label, what
        self.seen = {hashlib.sha256(url.encode()).digest()}  # 32 bytes a page, whatever the URL
        self.pages = self.bytes = 0

    def next(self, url: str, link: str | None, size: int) -> str | None:
        """The next page's URL after ``url`` (``size`` bytes, ``link`` its Link header), or None."""
        self.pages += 1
        self.bytes += size
        m = _LINK_RE.search(link or "")
        if not m:
            return None
        nxt = _joined_url(url, m.group(1), f"{self.label}: the {self.what} page link")
        if urlsplit(nxt)[:2] != self.origin:
            raise RegistryError(f"{self.label} sent a {self.what} page link to another host")
        key = hashlib.sha256(nxt.encode()).digest()
        if key in self.seen:
            raise RegistryError(f"{self.label} sent a {self.what} page link back to an earlier page (after {self.pages} pages)")
        if self.pages >= MAX_PAGES or self.bytes >= MAX_LISTING_BYTES:
            raise RegistryError(
                f"{self.label}: the {self.what} goes on for more than {self.pages} pages ({self.bytes} bytes); "
                f"stopped (limits: {MAX_PAGES} pages, {MAX_LISTING_BYTES} bytes)"
            )
        self.seen.add(key)
        return nxt


def _json_answer(body: bytes, what: str) -> object:
    """A registry answer's JSON; RegistryError naming ``what`` when it is not JSON or nests too deep."""
    try:
        return jsonlimit.loads(body)
    except jsonlimit.TooDeep as e:
        raise RegistryError(f"{what} is {e}") from None
    except ValueError:
        raise RegistryError(f"{what} is not valid JSON") from None


# -- deadlines (issue 13) -----------------------------------------------------------------------
# An idle timeout alone lets a server that sends one byte a second (or endless ``100 Continue``
# lines, or a header that never ends) hold a command for ever.  So every exchange runs under a
# limit that covers all of it, from connecting to the last byte of the answer: documents (a
# manifest, a token, a page of tags or search results, an error body) must be complete within
# ``request-timeout`` seconds; a blob must deliver at least MIN_BLOB_RATE bytes a second over
# each window of ``request-timeout`` seconds, or it is a stall (retried, then the next endpoint).
# The limit is enforced below httpx, on each socket read, write and connect of the exchange.
MIN_BLOB_RATE = 1024  # bytes per second, averaged over each request-timeout window


class _Limit:
    """The limit of the exchange running on this thread: a deadline, or a minimum rate per window."""

    __slots__ = ("window", "min_bytes", "start", "got", "message")

    def __init__(self, window: float, min_bytes: int | None = None) -> None:
        self.window, self.min_bytes = window, min_bytes
        self.start, self.got, self.message = time.monotonic(), 0, None

    def until(self, now: float) -> float:
        """Seconds left before the next check; raises (a read timeout) when the limit is broken."""
        left = self.start + self.window - now
        if left > 0:
            return left
        if self.min_bytes is not None and self.got >= self.min_bytes:
            self.start, self.got = now, 0  # enough bytes in this window: a new window starts
            return self.window
        n = seconds_text(self.window)
        if self.min_bytes is None:
            self.message = f"no complete answer within {n} (request-timeout)"
        else:
            self.message = f"stalled: fewer than {self.min_bytes} bytes in {n} (request-timeout)"
        raise httpcore.ReadTimeout(self.message)


_exchange = threading.local()  # .limit: the _Limit of the exchange this thread is running, or None


def _set_limit(limit: _Limit | None) -> None:
    """Put the next exchange on this thread under ``limit`` (every exchange sets its own)."""
    _exchange.limit = limit


def _bounded(timeout: float | None) -> tuple[_Limit | None, float | None]:
    limit = getattr(_exchange, "limit", None)
    if limit is None:
        return None, timeout
    left = limit.until(time.monotonic())
    return limit, left if timeout is None else min(timeout, left)


class _LimitedStream(httpcore.NetworkStream):
    """A connection whose every wait is cut at the current exchange's limit."""

    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            limit, wait = _bounded(timeout)
            try:
                data = self._stream.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                if limit is None or wait == timeout:
                    raise  # the idle timeout itself
                continue  # the limit's check point: ``until`` raises if it is broken
            if limit is not None:
                limit.got += len(data)
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _bounded(timeout)[1])

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, ssl_context, server_hostname=None, timeout=None) -> httpcore.NetworkStream:
        return _LimitedStream(self._stream.start_tls(ssl_context, server_hostname, _bounded(timeout)[1]))

    def get_extra_info(self, info: str):
        return self._stream.get_extra_info(info)


class _LimitedBackend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None) -> httpcore.NetworkStream:
        stream = self._backend.connect_tcp(host, port, _bounded(timeout)[1], local_address, socket_options)
        return _LimitedStream(stream)

    def connect_unix_socket(self, path, timeout=None, socket_options=None) -> httpcore.NetworkStream:  # pragma: no cover
        return _LimitedStream(self._backend.connect_unix_socket(path, _bounded(timeout)[1], socket_options))

    def sleep(self, seconds: float) -> None:  # pragma: no cover
        self._backend.sleep(seconds)


def _limited_pool(pool: httpx.HTTPTransport) -> httpx.HTTPTransport:
    """``pool`` with its connections made by a _LimitedBackend (httpx has no argument for it)."""
    inner = getattr(pool, "_pool", None)
    backend = getattr(inner, "_network_backend", None)
    if backend is not None and not isinstance(backend, _LimitedBackend):
        inner._network_backend = _LimitedBackend(backend)
    return pool


class _Transport(httpx.BaseTransport):
    """Sends each request through a pool with its host's TLS settings (certs.d) and proxy (environment).

    One client serves every host, so every caller gets per-host trust without choosing a client.
    Proxies follow ``HTTPS_PROXY``/``HTTP_PROXY``/``ALL_PROXY``/``NO_PROXY``; loopback is never proxied.
    """

    def __init__(self, certs_dirs: Sequence[Path], limits: httpx.Limits,
                 insecure: Callable[[str], bool] = lambda host: False) -> None:
        self._certs_dirs = tuple(certs_dirs)
        self._insecure = insecure
        self._limits = limits
        self._proxies = _proxy_environment()
        self._contexts: dict[str, ssl.SSLContext] = {}
        self._pools: dict[tuple[int, str | None], httpx.HTTPTransport] = {}
        self._lock = threading.Lock()

    def context(self, host: str) -> ssl.SSLContext:
        with self._lock:
            if host in self._contexts:
                return self._contexts[host]
        cas, client = tls_files(host, self._certs_dirs)
        if self._insecure(host):
            # docker's insecure-registries: HTTPS without verifying the certificate (or
            # plain HTTP, see RegistryClient._probe).  A client certificate is still offered.
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        elif not cas and client is None:
            ctx = trust.system_context()
        else:
            ctx = trust.new_context()
            for ca in cas:
                try:
                    ctx.load_verify_locations(cafile=str(ca))
                except (OSError, ssl.SSLError) as e:
                    raise ConfigError(f"cannot load CA certificate {ca}: {e}") from e
        if client is not None:  # (never the shared context: that one is used only without)
            try:
                ctx.load_cert_chain(str(client[0]), str(client[1]))
            except (OSError, ssl.SSLError) as e:
                raise ConfigError(f"cannot load client certificate {client[0]}: {e}") from e
        with self._lock:
            return self._contexts.setdefault(host, ctx)

    def _proxy(self, scheme: str, host: str) -> str | None:
        name = host[1:].split("]", 1)[0] if host.startswith("[") else host.rsplit(":", 1)[0]
        if not self._proxies or is_loopback(host):
            return None
        import urllib.request

        if urllib.request.proxy_bypass_environment(name, self._proxies):
            return None
        return self._proxies.get(scheme) or self._proxies.get("all")

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        scheme = request.url.scheme
        host = request.url.netloc.decode("ascii")
        ctx = self.context(host) if scheme == "https" else None
        proxy = self._proxy(scheme, host)
        key = (id(ctx), proxy)
        with self._lock:
            pool = self._pools.get(key)
            if pool is None:
                # A plain-HTTP pool without a proxy never does TLS: don't let httpx build (and
                # load a CA bundle into) a context it will not use.  Through a proxy, keep
                # verifying, as the proxy itself may be reached over https.
                verify = ctx if ctx is not None else (True if proxy else False)
                pool = _limited_pool(httpx.HTTPTransport(verify=verify, proxy=proxy, limits=self._limits, trust_env=False))
                self._pools[key] = pool
        return pool.handle_request(request)

    def close(self) -> None:
        with self._lock:
            pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            pool.close()


@dataclass(slots=True)
class _Fetch:
    """What a blob download holds since its last restart: its hash, its length, who sent which bytes."""

    hasher: "hashlib._Hash | None"  # None: the caller hashes what it is given (``digest_so_far``)
    got: int = 0
    parts: list = field(default_factory=list)  # [endpoint, start, end] in order
    local: int = 0  # leading bytes that came from disk (an earlier, interrupted download)


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """``bytes START-END/TOTAL`` -> (START, TOTAL or None for ``*``); (None, None) when unreadable."""
    m = re.fullmatch(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*", value or "")
    if not m:
        return None, None
    return int(m.group(1)), (None if m.group(3) == "*" else int(m.group(3)))


def _describe_parts(parts: list) -> str:
    """``mirror URL (bytes 0-99), registry HOST (bytes 100-199)``: who sent which bytes, runs merged."""
    runs: list[list] = []
    for ep, start, end in parts:
        if end <= start:
            continue
        if runs and runs[-1][0] == ep and runs[-1][2] == start:
            runs[-1][2] = end
        else:
            runs.append([ep, start, end])
    return ", ".join(f"{ep.label} (bytes {start}-{end - 1})" for ep, start, end in runs)


def _short_reason(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."


_ENDPOINT_ERRORS = (RegistryError, VerificationError, UnsupportedManifest)


class RegistryClient:
    """One client per command run: connections and tokens are reused within it.

    Reads (manifests, blobs, tags) go to each mirror of the registry in order, then to the
    registry itself; any failure of a mirror moves on to the next endpoint.  Credentials and
    tokens are looked up and kept per host, so they never reach another one.
    """

    def __init__(
        self,
        config: Config,
        *,
        credentials: Credentials | None = None,
        log: Callable[[str], None] | None = None,
        timeout: float | None = None,
        mirrors: Sequence[str] = (),
        on_retry: Callable[[Retry], None] | None = None,
    ) -> None:
        trust.prefetch()
        self.config = config
        self._on_retry = on_retry or (lambda retry: None)
        self._stop = threading.Event()
        self._credentials_source = credentials
        self._log = log or (lambda msg: None)
        self._mirrors = tuple(mirrors)  # from the command line: for every registry, before the configured ones
        limits = httpx.Limits(max_connections=32, max_keepalive_connections=16)
        self._transport = _Transport(config.certs_dirs(), limits, insecure=config.is_insecure)
        timeout = config.request_timeout if timeout is None else timeout  # idle; _Limit bounds the whole
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            follow_redirects=False,
            # Bodies as stored: no transfer compression, so sizes mean bytes and no answer can
            # inflate into memory unbounded (a few KiB of gzip/zstd can decode to GiBs).
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            transport=self._transport,
        )
        self._bases: dict[str, str] = {}  # endpoint URL -> resolved base URL
        self._dead: dict[str, str] = {}  # endpoint URL -> why it could not be reached
        self._creds: dict[str, Credential | None] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (host, scope) -> (token, expiry)
        self._basic: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._stop.set()
        self._http.close()

    def cancel(self) -> None:
        """Wake every retry wait at once (Ctrl-C): the waiting requests fail instead of retrying."""
        self._stop.set()

    def _backoff(
        self, what: str, attempt: int, retry_after: float | None, error: BaseException | str | None,
        digest: str | None = None,
    ) -> None:
        """Wait before retry ``attempt`` (1-based) of ``what``, saying so; Retry-After wins over doubling."""
        if retry_after is not None:
            delay = retry_after
        else:
            delay = min(self.config.retry_delay * (2 ** (attempt - 1)), MAX_BACKOFF)
        self._log(f"{what}: {error}; retrying in {seconds_text(delay)}")
        self._on_retry(Retry(what, delay, digest))
        if self._stop.wait(delay):
            raise TransportError(f"{what}: cancelled while waiting to retry")

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _limit(self, blob: bool = False) -> _Limit:
        """A new exchange's limit: the whole answer within request-timeout, or (a blob) a minimum rate."""
        t = self.config.request_timeout
        return _Limit(t, max(1, int(MIN_BLOB_RATE * t))) if blob else _Limit(t)

    # -- endpoints ------------------------------------------------------------------
    def endpoints(self, domain: str, *, mirrors: bool = True) -> list[Endpoint]:
        """Where reads for ``domain`` go, in order: mirrors (command line, then configuration), then the registry.

        Writes (push) must use ``mirrors=False``: mirrors are for reading only.
        """
        out: list[Endpoint] = []
        if mirrors:
            seen: set[str] = set()
            for url in (*self._mirrors, *self.config.mirrors_for(domain)):
                if url not in seen:
                    seen.add(url)
                    out.append(Endpoint(url, urlsplit(url).netloc, mirror=True))
        host = api_host(domain)
        out.append(Endpoint(f"https://{host}", host))
        return out

    def base_url(self, domain: str) -> str:
        """The registry's own base URL (https, or http for loopback and insecure registries)."""
        return self._resolve(self.endpoints(domain, mirrors=False)[-1])

    def _resolve(self, ep: Endpoint) -> str:
        """The base URL to use for an endpoint: its https URL, or http where plain HTTP is allowed and https fails."""
        with self._lock:
            if ep.url in self._dead:
                raise _Skipped(self._dead[ep.url])
            if ep.url in self._bases:
                return self._bases[ep.url]
        parts = urlsplit(ep.url)
        plain_ok = is_loopback(ep.host) or self.config.is_insecure(ep.host)
        try:
            if parts.scheme == "http" and not plain_ok:
                raise _Unreachable(
                    f"{ep.label}: plain HTTP is only used for loopback addresses and insecure-registries"
                )
            base = self._probe(ep, parts) if parts.scheme == "https" and plain_ok else ep.url
        except _Unreachable as e:
            with self._lock:
                self._dead[ep.url] = str(e)
            raise
        if base != ep.url:
            self._log(f"{ep.label}: using {base}")
        with self._lock:
            self._bases[ep.url] = base
        return base

    def _probe(self, ep: Endpoint, parts) -> str:
        """https first; then plain http (loopback and insecure registries only)."""
        what = "registry" if not ep.mirror else "mirror"
        url = f"{ep.url}/v2/"
        try:
            _set_limit(self._limit())
            with self._http.stream("GET", url):
                pass  # only the status matters: the body is never read
            return ep.url
        except (httpx.HTTPError, httpx.InvalidURL) as e:  # (InvalidURL: a redirect to a non-URL)
            https_error = e
        plain = f"http://{parts.netloc}{parts.path}"
        try:
            _set_limit(self._limit())
            with self._http.stream("GET", f"{plain}/v2/") as resp:
                pass
        except (httpx.HTTPError, httpx.InvalidURL) as e2:
            raise _Unreachable(f"cannot reach {what} {ep.host} (GET {plain}/v2/): {_reason(e2)}") from e2
        if resp.status_code == 400 and _ssl_verify_error(https_error) is not None:
            # An HTTPS server refusing plain HTTP: the certificate is the problem, say so.
            raise _Unreachable(self._tls_message(what, ep.host, url, https_error)) from https_error
        return plain

    def _tls_message(self, what: str, host: str, url: str, exc: Exception) -> str:
        hint = ""
        if _ssl_verify_error(exc) is not None:
            own = self.config.certs_dirs()[0]
            hint = f" (to trust a private CA, put its certificate in {own / host / 'ca.crt'})"
        return f"cannot reach {what} {host} (GET {url}): {_reason(exc)}{hint}"

    # -- auth -----------------------------------------------------------------------
    def _credentials(self, host: str) -> Credential | None:
        """Credentials for ``host`` only (cached for this run; a helper program may be asked once)."""
        with self._lock:
            if host in self._creds:
                return self._creds[host]
        if self._credentials_source is not None:
            found = self._credentials_source(host)
        else:
            from imgctl import auth

            found = auth.lookup(host)
        with self._lock:
            self._creds[host] = found
        return found

    def _auth_header(self, host: str, scope: str) -> dict[str, str]:
        now = time.monotonic()
        with self._lock:
            token, expiry = self._tokens.get((host, scope), (None, 0.0))
            if token and now >= expiry:
                del self._tokens[(host, scope)]
                token = None
            basic = host in self._basic
        if token:
            return {"Authorization": f"Bearer {token}"}
        if basic:
            creds = self._credentials(host)
            if creds and creds[0] != IDENTITY_TOKEN_USER:
                raw = f"{creds[0]}:{creds[1]}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _authenticate(self, host: str, scope: str, challenge_header: str, digest: str | None = None) -> bool:
        """Answer a 401 challenge from ``host``; True when a retry is worth it.  ``digest``: the
        blob the request was for (a retry line names it)."""
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic":
            creds = self._credentials(host)
            if creds is None or creds[0] == IDENTITY_TOKEN_USER:
                return False
            with self._lock:
                already = host in self._basic
                self._basic.add(host)
            return not already
        if scheme != "bearer" or "realm" not in params:
            return False
        realm = _checked_url(params["realm"], f"the token realm of registry {host}")
        parts = urlsplit(realm)
        scopes = sorted(s for s in {scope, params.get("scope") or ""} if s)
        creds = self._credentials(host)
        if creds and parts.scheme == "http" and not (is_loopback(parts.netloc) or self.config.is_insecure(parts.netloc)):
            self._log(f"token realm of {host} is plain HTTP: asking {parts.netloc} for an anonymous token")
            creds = None
        headers: dict[str, str] = {}
        if creds and creds[0] == IDENTITY_TOKEN_USER:
            # OAuth2 refresh-token grant (docker's identity tokens).
            form = {"grant_type": "refresh_token", "refresh_token": creds[1], "client_id": "imgctl"}
            if params.get("service"):
                form["service"] = params["service"]
            if scopes:
                form["scope"] = " ".join(scopes)
            request = self._http.build_request("POST", realm, data=form)
        else:
            query = [("service", params["service"])] if params.get("service") else []
            query += [("scope", s) for s in scopes]
            url = realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm
            if creds:
                headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
            request = self._http.build_request("GET", url, headers=headers)
        resp, body = self._token_answer(request, parts.netloc, digest)
        status = resp.status_code
        if status in (401, 403):
            raise Unauthorized(
                f"authentication to {host} failed: unauthorized: incorrect username or password "
                f"(token server {parts.netloc} answered {status})",
                status=status,
            )
        if status != 200:
            raise RegistryError(f"token server {parts.netloc} answered HTTP {status}", status=status)
        doc = _json_answer(body, f"the answer of token server {parts.netloc}")
        token = (doc.get("token") or doc.get("access_token")) if isinstance(doc, dict) else None
        lifetime = doc.get("expires_in", MIN_TOKEN_LIFETIME) if isinstance(doc, dict) else None
        if not isinstance(token, str) or not _TOKEN_RE.fullmatch(token):
            # No CR/LF (header injection), other control or non-ASCII character: it goes into a header as is.
            raise RegistryError(f"token server {parts.netloc} returned an invalid answer")
        if isinstance(lifetime, bool) or not isinstance(lifetime, (int, float)) or not (0 <= lifetime < 1e12):
            lifetime = MIN_TOKEN_LIFETIME  # absent, a string, negative, NaN or 10^1000 (issued_at is not used)
        lifetime = min(max(float(lifetime), MIN_TOKEN_LIFETIME), MAX_TOKEN_LIFETIME)
        with self._lock:
            # Renew a little early, so a token does not expire between the check and the request.
            self._tokens[(host, scope)] = (token, time.monotonic() + lifetime - TOKEN_MARGIN)
        self._log(f"token for {host} ({scope or 'no scope'}) from {parts.netloc}, valid {int(lifetime)} s")
        return True

    def _token_answer(self, request: httpx.Request, netloc: str, digest: str | None) -> tuple[httpx.Response, bytes]:
        """The token service's answer; it is part of the registry, so its broken streams,
        timeouts and transient statuses are retried with the registry's policy."""
        what = f"token from {netloc}"
        attempt = 0
        while True:
            wait: float | None | bool = None
            try:
                _set_limit(self._limit())
                resp = self._http.send(request, stream=True)
                try:
                    body = _read_capped(resp, MAX_TOKEN_SIZE, what="token answer")
                finally:
                    resp.close()
            except httpx.InvalidURL as e:  # httpx reads a redirect's Location even when not following it
                raise RegistryError(f"token server {netloc} redirected to a URL that is not a valid http(s) URL ({e})") from e
            except (httpx.HTTPError, TransportError) as e:
                cause = e.__cause__ if isinstance(e, TransportError) else e
                error = TransportError(f"cannot get a token from {netloc}: {_reason(cause or e)}")
                error.__cause__ = e
                if isinstance(cause, httpx.ConnectError):  # refused, no such host, TLS: not transient
                    raise error
            else:
                if resp.status_code not in TRANSIENT_STATUSES:
                    return resp, body
                wait = _retry_wait(resp.status_code, resp.headers.get("retry-after"))
                error = None
            attempt += 1
            if wait is False or attempt >= self.config.max_download_attempts:
                if error is None:
                    return resp, body
                raise error
            self._backoff(what, attempt, wait, error or f"HTTP {resp.status_code}", digest)

    # -- requests ---------------------------------------------------------------------
    @contextmanager
    def _open(
        self, method: str, ep: Endpoint, url: str, scope: str, headers: dict[str, str] | None = None,
        *, retry: bool = True, digest: str | None = None, blob: bool = False,
    ) -> Iterator[httpx.Response]:
        """Send to one endpoint with that host's auth; follow redirects, never taking credentials
        to another origin (scheme, host or port); yield a streaming response.  ``digest`` names
        the blob a retry is for (a redirect target's URL need not contain it)."""
        start = url
        origin = urlsplit(url)[:2]
        tried_auth = False
        redirects = 0
        retries = 0
        while True:
            h = dict(headers or {})
            same_origin = urlsplit(url)[:2] == origin and not ep.foreign
            if same_origin:
                h.update(self._auth_header(ep.host, scope))
            req = self._http.build_request(method, url, headers=h)
            _set_limit(self._limit(blob))  # each request sent, from connecting to its last byte
            try:
                resp = self._http.send(req, stream=True)
            except (httpx.ReadTimeout, httpx.WriteTimeout) as e:
                if not ep.mirror and not ep.foreign:
                    raise TransportError(f"{method} {_redact(url)}: {_reason(e)}") from e  # retried
                with self._lock:
                    self._dead.setdefault(ep.url, f"{ep.label} is unreachable: {_reason(e)}")
                raise _Unreachable(f"{method} {_redact(url)}: {_reason(e)}") from e
            except (httpx.ConnectError, httpx.ConnectTimeout) as e:
                # No connection, or no answer at all: skip this endpoint for the rest of the run.
                if _ssl_verify_error(e) is not None:
                    err = _Unreachable(self._tls_message(ep.label.split()[0], urlsplit(url).netloc, _redact(url), e))
                else:
                    err = _Unreachable(f"{method} {_redact(url)}: {_reason(e)}")
                if urlsplit(url)[:2] == origin:
                    with self._lock:
                        self._dead.setdefault(ep.url, f"{ep.label} is unreachable: {_reason(e)}")
                raise err from e
            except (httpx.InvalidURL, httpx.RemoteProtocolError) as e:
                if not _bad_location(e):
                    raise TransportError(f"{method} {_redact(url)}: {_reason(e)}") from e
                raise RegistryError(f"{ep.label} redirected to a URL that is not a valid http(s) URL ({e})") from e
            except httpx.HTTPError as e:
                raise TransportError(f"{method} {_redact(url)}: {_reason(e)}") from e
            limits = [f"{k}: {resp.headers[k]}" for k in RATE_LIMIT_HEADERS if k in resp.headers]
            if limits:
                self._log(f"{method} {_redact(url)}: HTTP {resp.status_code}; {', '.join(limits)}")
            if resp.status_code == 401 and same_origin and not tried_auth:
                tried_auth = True
                challenge = resp.headers.get("www-authenticate", "")
                try:
                    answered = bool(challenge) and self._authenticate(ep.host, scope, challenge, digest)
                except BaseException:
                    resp.close()
                    raise
                if answered:
                    resp.close()
                    continue
            wait = (
                _retry_wait(resp.status_code, resp.headers.get("retry-after"))
                if resp.status_code in TRANSIENT_STATUSES
                else False
            )
            if retry and wait is not False and not ep.mirror and retries + 1 < self.config.max_download_attempts:
                retries += 1
                resp.close()
                what = f"blob {digest}" if digest else f"{method} {_redact(url)}"
                self._backoff(what, retries, wait, f"HTTP {resp.status_code}", digest)
                url, redirects = start, 0  # a redirect's signed URL may have expired meanwhile: ask again
                continue
            if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"too many redirects for {_redact(url)}")
                previous = url
                url = _joined_url(url, resp.headers["location"], f"{ep.label} redirected to a URL that")
                visited = {previous} if redirects == 1 else visited  # (this chain of redirects)
                self._check_redirect(ep, previous, url, visited)
                self._log(f"redirected to {urlsplit(url).netloc}")  # never the query: it may hold a signature
                continue
            try:
                yield resp
            finally:
                resp.close()
                _set_limit(None)
            return

    def _check_redirect(self, ep: Endpoint, previous: str, url: str, visited: set[str]) -> None:
        """Refuse a redirect back to a URL already visited, or from https to plain http
        (allowed only to a loopback or insecure registry)."""
        if url in visited:
            raise RegistryError(f"{ep.label} redirected in a loop ({_redact(url)})")
        visited.add(url)
        host = urlsplit(url).netloc
        if (
            urlsplit(previous).scheme == "https"
            and urlsplit(url).scheme == "http"
            and not (is_loopback(host) or self.config.is_insecure(host))
        ):
            raise RegistryError(f"{ep.label} redirected from https to plain http ({_redact(url)}): refused")

    @contextmanager
    def _request(
        self, method: str, domain: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """A request to the registry itself (never a mirror): for writes and registry-only APIs."""
        ep = self.endpoints(domain, mirrors=False)[-1]
        with self._open(method, ep, self._resolve(ep) + path, scope, headers) as resp:
            yield resp

    def _first(self, domain: str, what: str, attempt: Callable[[Endpoint, str], T]) -> T:
        """``attempt(endpoint, base_url)`` at each endpoint in turn; the first success wins.

        A mirror's failure moves on; the registry's own failure is raised, naming the mirrors
        that failed before it.
        """
        failed: list[str] = []
        for ep in self.endpoints(domain):
            try:
                result = self._with_retries(ep, what, attempt)
            except _ENDPOINT_ERRORS as e:
                if ep.mirror:
                    if not isinstance(e, _Skipped):
                        self._log(f"{what}: {ep.label} failed: {e}; trying the next endpoint")
                    failed.append(f"{ep.url}: {_short_reason(e)}")
                    continue
                if failed:
                    e.message = f"{e.message} (mirrors failed too: {'; '.join(failed)})"
                    e.args = (e.message,)
                raise
            self._log(f"{what}: served by {ep.label}")
            return result
        raise AssertionError("unreachable: the registry is always the last endpoint")  # pragma: no cover

    def _with_retries(self, ep: Endpoint, what: str, attempt: Callable[[Endpoint, str], T]) -> T:
        """``attempt`` at one endpoint; a broken stream from the registry itself is retried with backoff."""
        n = 0
        while True:
            try:
                return attempt(ep, self._resolve(ep))
            except TransportError as e:
                n += 1
                if ep.mirror or not _transient(e) or n >= self.config.max_download_attempts:
                    raise
                self._backoff(what, n, None, e)

    # -- API ----------------------------------------------------------------------------
    def get_manifest(self, domain: str, path: str, ref: str, *, display: str) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest; its digest is verified over the exact bytes.

        ``display`` names the image in error messages (``ubuntu:nope``).
        """
        want = validate_digest(ref) if ":" in ref else None
        sep = "@" if want else ":"
        return self._first(
            domain,
            f"manifest {path}{sep}{ref}",
            lambda ep, base: self._manifest_at(ep, base, path, ref, want, display),
        )

    def _manifest_at(self, ep: Endpoint, base: str, path: str, ref: str, want: str | None, display: str) -> FetchedManifest:
        scope = f"repository:{path}:pull"
        url = f"{base}/v2/{path}/manifests/{ref}"
        with self._open("GET", ep, url, scope, {"Accept": MANIFEST_ACCEPT}) as resp:
            if resp.status_code != 200:
                self._raise_for(resp, what="manifest", display=display, path=path)
            data = _read_capped(resp, MAX_MANIFEST_SIZE, what=f"manifest for {display}")
            media_type = resp.headers.get("content-type", "").split(";")[0].strip()
            header_digest = resp.headers.get("docker-content-digest")
        algo = want.split(":", 1)[0] if want else "sha256"
        actual = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
        if want and actual != want:
            raise VerificationError(f"manifest for {display} does not match its digest: expected {want}, got {actual}")
        if header_digest and header_digest.startswith(algo + ":") and header_digest != actual:
            raise VerificationError(
                f"manifest for {display} does not match the digest the registry announced ({header_digest})"
            )
        return FetchedManifest(data, media_type, actual)

    def get_blob(self, domain: str, path: str, digest: str, size: int, *, max_size: int = MAX_MANIFEST_SIZE) -> bytes:
        """A small blob (config) read whole; size and digest are verified."""
        digest = validate_digest(digest)
        if size > max_size:
            raise VerificationError(f"blob {digest} is too large ({size} bytes, limit {max_size})")
        buf = bytearray()
        with closing(self.fetch_blob(domain, path, digest, size, restart=buf.clear)) as chunks:
            for chunk in chunks:
                buf += chunk
        return bytes(buf)

    def fetch_blob(
        self,
        domain: str,
        path: str,
        digest: str,
        size: int,
        *,
        restart: Callable[[], None] = lambda: None,
        urls: Sequence[str] = (),
        offset: int = 0,
        digest_so_far: Callable[[], str] | None = None,
    ) -> Iterator[bytes]:
        """The bytes of a blob, from the first endpoint that has them; close the iterator when done.

        A stream that breaks is resumed with ``Range: bytes=N-`` at the same endpoint while it
        makes progress, then at the next endpoint, so no byte is fetched twice.  ``restart()`` is
        called when the bytes yielded so far must be thrown away: an endpoint answered a Range
        request with the whole blob, or the whole did not match ``digest``.  When the iterator
        ends normally, exactly ``size`` bytes hashing to ``digest`` were yielded since the last
        ``restart()``.  ``urls`` (a foreign layer's own URLs) are tried last, without credentials.

        ``offset`` bytes may already be held (an interrupted download on disk): only the rest is
        fetched.  ``digest_so_far`` says the caller hashes every byte it holds (the ``offset``
        bytes, then each chunk yielded, from zero again after ``restart()``) and returns that
        hash's hex digest; the bytes are then hashed once, by the caller, instead of twice.
        Without it, resuming from ``offset`` is refused (there would be no hash to continue).  If the whole then fails to verify, the
        local bytes are blamed first and the download starts over.  Transient failures
        (resets, timeouts, 408/429/5xx) are retried with backoff, each retry announced.
        """
        digest = validate_digest(digest)
        algo = digest.split(":", 1)[0]
        endpoints = self.endpoints(domain)
        endpoints += [Endpoint(u, urlsplit(u).netloc, foreign=True) for u in urls if _usable_url(u)]
        if offset and digest_so_far is None:
            raise ValueError("fetch_blob: resuming from an offset needs digest_so_far")
        new_hasher = (lambda: None) if digest_so_far is not None else (lambda: hashlib.new(algo))
        state = _Fetch(new_hasher(), offset, [], offset)
        if offset:
            self._log(f"blob {digest}: resuming after {offset} bytes found on disk")

        def start_over() -> None:
            state.hasher, state.got, state.parts, state.local = new_hasher(), 0, [], 0
            restart()

        failed: list[str] = []
        registry_error: ImgctlError | None = None
        bad: set[Endpoint] = set()  # sent bytes that did not verify
        while True:
            for ep in endpoints:
                if ep in bad:
                    continue
                resumes = stalls = 0
                while True:
                    before = state.got
                    try:
                        yield from self._blob_from(ep, path, digest, size, state, start_over)
                        error = None
                    except _ENDPOINT_ERRORS as e:
                        error = e
                    if error is None:
                        break
                    if not isinstance(error, _Skipped):
                        self._log(f"blob {digest}: {ep.label} failed after {state.got} of {size} bytes: {error}")
                    if isinstance(error, VerificationError):  # the bytes it sent cannot be trusted
                        bad.add(ep)
                        if any(p[0] == ep for p in state.parts):
                            start_over()
                        break
                    if isinstance(error, _Unreachable) or not _transient(error):
                        break  # an answer rather than a broken stream: next endpoint
                    if state.got > before and not isinstance(error, _Stalled):
                        resumes += 1  # progress: resume at once with Range
                        limit = RESUME_ATTEMPTS * (1 if ep.mirror or ep.foreign else self.config.max_download_attempts)
                        if resumes >= limit:
                            break
                        continue
                    stalls += 1
                    if stalls >= self.config.max_download_attempts or (ep.mirror and stalls >= 2):
                        break  # mirrors get one retry: the next endpoint is the better bet
                    self._backoff(f"blob {digest}", stalls, getattr(error, "retry_after", None), error, digest)
                if error is None:
                    break
                if ep.mirror or ep.foreign:
                    failed.append(f"{_redact(ep.url)}: {_short_reason(error)}")
                else:
                    registry_error = error
            else:
                # Every endpoint failed: the registry's own answer is the error, the others are context.
                if registry_error is not None:
                    if failed:
                        registry_error.message = f"{registry_error.message} (other endpoints failed too: {'; '.join(failed)})"
                        registry_error.args = (registry_error.message,)
                    raise registry_error
                raise TransportError(f"cannot download blob {digest}: {'; '.join(failed)}")
            actual = f"{algo}:{digest_so_far() if state.hasher is None else state.hasher.hexdigest()}"
            sources = _describe_parts(state.parts)
            if actual == digest:
                self._log(f"blob {digest}: served by {sources or 'nobody (empty blob)'}")
                return
            if state.local:
                # The bytes found on disk may be what is wrong: start over before blaming anyone.
                self._log(f"blob {digest}: content hashes to {actual} with {state.local} bytes from disk; starting over")
                start_over()
                continue
            # Wrong bytes: blame the mirrors that contributed (the registry alone only when it was alone).
            contributors = {p[0] for p in state.parts}
            suspects = {e for e in contributors if e.mirror} or contributors
            bad |= suspects
            self._log(f"blob {digest}: content from {sources} hashes to {actual}; starting over")
            failed.append(f"{', '.join(sorted(e.url for e in suspects))}: digest mismatch")
            start_over()
            if all(e in bad for e in endpoints):
                raise VerificationError(f"digest mismatch for blob {digest}: {'; '.join(failed)}")

    def _blob_from(
        self, ep: Endpoint, path: str, digest: str, size: int, state: _Fetch, start_over: Callable[[], None]
    ) -> Iterator[bytes]:
        """Stream the rest of a blob (from ``state.got``) from one endpoint."""
        offset = state.got
        if offset and offset == size:
            return  # everything is already here (from disk): only the digest check remains
        url = ep.url if ep.foreign else f"{self._resolve(ep)}/v2/{path}/blobs/{digest}"
        # Bytes as stored: no transfer compression, so that offsets and sizes mean the blob's bytes.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self._open("GET", ep, url, f"repository:{path}:pull", headers, digest=digest, blob=True) as resp:
            status = resp.status_code
            if status == 206 and offset:
                start, total = _content_range(resp.headers.get("content-range"))
                if start != offset or (total is not None and total != size):
                    raise RegistryError(
                        f"{ep.label} answered bytes={offset}- with Content-Range "
                        f"{resp.headers.get('content-range')!r}"
                    )
            elif status == 200:
                if offset:
                    self._log(f"blob {digest}: {ep.label} ignored the Range request; starting over at byte 0")
                    start_over()
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) != size:
                    raise VerificationError(f"blob {digest}: {ep.label} announced {declared} bytes, descriptor says {size}")
            else:
                self._raise_for(resp, what="blob", display=digest, path=path)
            _refuse_encoding(resp, f"blob {digest} from {ep.label}")
            part = [ep, state.got, state.got]
            state.parts.append(part)
            try:
                hasher = state.hasher
                for chunk in resp.iter_bytes():  # as they arrive: a broken stream keeps what came
                    if state.got + len(chunk) > size:
                        raise VerificationError(f"blob {digest}: {ep.label} sent more than the declared {size} bytes")
                    if hasher is not None:
                        hasher.update(chunk)
                    state.got += len(chunk)
                    part[2] = state.got
                    yield chunk
            except httpx.HTTPError as e:
                cls = _Stalled if _reason(e).startswith("stalled") else TransportError
                raise cls(f"reading blob {digest} from {ep.label}: {_reason(e)}") from e
        if state.got != size:
            raise TransportError(f"blob {digest}: {ep.label} ended the stream at byte {state.got} of {size}")

    def list_tags(self, domain: str, path: str, *, display: str) -> list[str]:
        """Every tag of a repository (at most MAX_TAGS), from the first endpoint that answers."""
        tags: list[str] = []
        for page in self.iter_tags(domain, path, display=display):
            tags.extend(page)
            if len(tags) > MAX_TAGS:
                raise RegistryError(f"{display} has more than {MAX_TAGS} tags; stopped")
        return tags

    def iter_tags(self, domain: str, path: str, *, display: str) -> Iterator[list[str]]:
        """The tags of a repository page by page, as they arrive (memory: one page).

        The first endpoint (mirrors, then the registry) that answers the first page serves the
        rest: what was already given out cannot be taken back, so a later failure is final.
        """
        first, rest = self._first(domain, f"tags of {path}", lambda ep, base: self._tags_from(ep, base, path, display))
        yield first
        yield from rest

    def _tags_from(self, ep: Endpoint, base: str, path: str, display: str) -> tuple[list[str], Iterator[list[str]]]:
        """(the first page, an iterator of the pages after it) of ``ep``'s tag list."""
        pages = self._tag_pages(ep, f"{base}/v2/{path}/tags/list?n=1000", path, display)
        return next(pages), pages

    def _tag_pages(self, ep: Endpoint, url: str | None, path: str, display: str) -> Iterator[list[str]]:
        pager = _Pages(url, ep.label, "tag list")
        while url:
            with self._open("GET", ep, url, f"repository:{path}:pull") as resp:
                if resp.status_code != 200:
                    self._raise_for(resp, what="tags", display=display, path=path)
                body = _read_capped(resp, MAX_MANIFEST_SIZE, what=f"tag list of {display}")
                link = resp.headers.get("link")
            doc = _json_answer(body, f"the tag list of {display} from {ep.label}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            if page is not None and not isinstance(page, list):
                raise RegistryError(f"registry answered an invalid tag list for {display}")
            yield [t for t in page or () if isinstance(t, str)]
            url = pager.next(url, link, len(body))

    def check_login(self, domain: str) -> None:
        """Verify the credentials for ``domain``'s registry (never a mirror) with ``GET /v2/``."""
        ep = self.endpoints(domain, mirrors=False)[-1]
        url = self._resolve(ep) + "/v2/"
        with self._open("GET", ep, url, "") as resp:
            status = resp.status_code
            if status == 200:
                return
            if status in (401, 403):
                raise Unauthorized(
                    f"login to {ep.host} failed: unauthorized: incorrect username or password", status=status
                )
            self._raise_for(resp, what="registry", display=ep.host, path="")

    # -- search and catalog at one endpoint (issue 5) ---------------------------------------------
    # ``ep`` is an index server (``Endpoint("https://index.docker.io", "index.docker.io")``), a
    # mirror or the registry itself (from ``endpoints()``); ``_open`` keeps credentials with its host.
    def _status_error(self, url: str, resp: httpx.Response) -> RegistryError:
        """``GET URL: HTTP 500[: detail]`` for a failed answer (error body read, capped)."""
        try:
            body = _read_capped(resp, MAX_ERROR_SIZE, what="error body", truncate=True)
        except RegistryError:
            body = b""
        code, message = _error_detail(body)
        detail = _detail_text(code, message)
        cls = AccessDenied if resp.status_code in (401, 403) else RegistryError
        return cls(f"GET {_redact(url)}: HTTP {resp.status_code}" + (f": {detail}" if detail else ""), status=resp.status_code, code=code)

    def _json_pages(self, ep: Endpoint, url: str, scope: str, *, what: str) -> Iterator[object]:
        """Decoded JSON answers of ``url`` and of the pages its ``Link: <...>; rel="next"`` headers name."""
        pager = _Pages(url, ep.label, what)
        while url:
            with self._open("GET", ep, url, scope, retry=False) as resp:  # search: fall back, don't wait
                if resp.status_code != 200:
                    raise self._status_error(url, resp)
                body = _read_capped(resp, MAX_MANIFEST_SIZE, what=f"{what} from {_redact(url)}")
                link = resp.headers.get("link")
            doc = _json_answer(body, f"GET {_redact(url)}: the answer")
            yield doc
            url = pager.next(url, link, len(body))

    def search_v1(self, ep: Endpoint, term: str, *, n: int, page: int = 1) -> dict:
        """One page of a Docker Hub style answer to ``GET /v1/search?q=TERM&n=N[&page=P]``."""
        query = {"q": term, "n": str(n)} | ({"page": str(page)} if page > 1 else {})
        url = f"{self._resolve(ep)}/v1/search?{urlencode(query)}"
        doc = next(self._json_pages(ep, url, "registry:catalog:search", what="search answer"))
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise RegistryError(f"GET {_redact(url)}: not a search answer")
        return doc

    def catalog_pages(self, ep: Endpoint, *, page_size: int = 100) -> Iterator[list[str]]:
        """Pages of repository names of ``GET /v2/_catalog`` (scope ``registry:catalog:*``), as they arrive."""
        url = f"{self._resolve(ep)}/v2/_catalog?n={page_size}"
        for doc in self._json_pages(ep, url, "registry:catalog:*", what="catalog"):
            page = doc.get("repositories") if isinstance(doc, dict) else None
            if not isinstance(page, list):
                raise RegistryError(f"GET {_redact(url)}: not a catalog answer")
            yield [r for r in page if isinstance(r, str)]
            if not page:
                return

    # -- errors -------------------------------------------------------------------------
    def _raise_for(self, resp: httpx.Response, *, what: str, display: str, path: str) -> None:
        status = resp.status_code
        try:
            body = _read_capped(resp, MAX_ERROR_SIZE, what="error body", truncate=True)
        except RegistryError:
            body = b""
        # distribution's client reads an OAuth error in the challenge before the body's errors,
        # and docker reports the first error only.
        code, message = _challenge_error(resp) or _error_detail(body)
        detail = _detail_text(code, message) or f"HTTP {status}"
        name = display.split("@")[0]
        familiar_repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name  # a port is not a tag
        if code == "NAME_UNKNOWN" and what in ("manifest", "tags"):
            raise AccessDenied(f"repository {familiar_repo} not found: {detail}", status=status, code=code)
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            cls = Unauthorized if status == 401 and code != "DENIED" else AccessDenied
            if what in ("manifest", "tags"):
                raise cls(
                    f"pull access denied for {familiar_repo}, repository does not exist or may require "
                    f"'docker login': {detail}",
                    status=status,
                    code=code,
                )
            raise cls(f"access to {what} {display} denied: {detail}", status=status, code=code)
        if status == 404 and what == "manifest":
            raise ManifestUnknown(f"manifest for {display} not found: {detail}", status=status, code=code)
        if status == 404:
            raise RegistryError(f"{what} {display} not found: {detail}", status=status, code=code)
        if code == "UNSUPPORTED" or status == 415:
            raise UnsupportedManifest(f"{what} {display}: {detail}")
        if status == 429 and code:  # docker prints the registry's error as it is (Hub's pull rate limit)
            raise RegistryError(detail, status=status, code=code)
        answered = f"registry answered HTTP {status}" + ("" if detail == f"HTTP {status}" else f": {detail}")
        raise RegistryError(f"{what} {display}: {answered}", status=status, code=code)

    # -- push (issue 7): writes go to the registry itself, never to a mirror ----------------------
    # Each request carries the registry host's auth only while it stays on the registry's own
    # origin (an upload Location on a storage host gets none) and follows no redirect.  A 401
    # is answered once and the request sent again with a fresh body from ``body()``.
    def _push_write(
        self,
        method: str,
        domain: str,
        url: str,
        scope: str,
        *,
        headers: dict[str, str] | None = None,
        body: Callable[[], object] | None = None,
    ) -> tuple[httpx.Response, bytes]:
        """(response, its body capped at MAX_ERROR_SIZE) of one write request to ``domain``'s registry."""
        ep = self.endpoints(domain, mirrors=False)[-1]
        base = self._resolve(ep)
        if not url.startswith(("http://", "https://")):
            url = base + url
        same_origin = urlsplit(url)[:2] == urlsplit(base)[:2]
        for attempt in range(2):
            h = dict(headers or {})
            if same_origin:
                h.update(self._auth_header(ep.host, scope))
            req = self._http.build_request(method, url, headers=h, content=body() if body is not None else None)
            _set_limit(None)  # uploads: only the idle timeout
            try:
                resp = self._http.send(req, stream=True)
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise TransportError(f"{method} {_redact(url)}: {_reason(e)}") from e
            try:
                data = _read_capped(resp, MAX_ERROR_SIZE, what="registry answer", truncate=True)
            finally:
                resp.close()
            if resp.status_code == 401 and same_origin and attempt == 0:
                challenge = resp.headers.get("www-authenticate", "")
                if challenge and self._authenticate(ep.host, scope, challenge):
                    continue
            return resp, data
        raise AssertionError("unreachable")  # pragma: no cover

    def _push_error(self, resp: httpx.Response, body: bytes, *, what: str, path: str) -> RegistryError:
        status = resp.status_code
        code, message = _error_detail(body)
        detail = _detail_text(code, message) or f"HTTP {status}"
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            cls = Unauthorized if status == 401 else AccessDenied
            return cls(f"denied: requested access to the resource is denied ({path}: {detail})", status=status, code=code)
        if code == "NAME_UNKNOWN":
            return AccessDenied(f"{what}: repository {path} is unknown to the registry: {detail}", status=status, code=code)
        if code in ("MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN") or status == 415:
            return UnsupportedManifest(f"{what}: the registry refused it: {detail}")
        answered = f"registry answered HTTP {status}" + ("" if detail == f"HTTP {status}" else f": {detail}")
        return RegistryError(f"{what}: {answered}", status=status, code=code)

    def _upload_url(self, request_url: str, resp: httpx.Response, *, what: str) -> str:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{what}: the registry started an upload without a Location")
        return _joined_url(request_url, location, f"{what}: the registry's upload URL")

    def blob_exists(self, domain: str, path: str, digest: str) -> bool:
        """``HEAD /v2/<path>/blobs/<digest>`` at the registry: does the repository have the blob?"""
        digest = validate_digest(digest)
        resp, body = self._push_write("HEAD", domain, f"/v2/{path}/blobs/{digest}", f"repository:{path}:pull,push")
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._push_error(resp, body, what=f"blob {digest}", path=path)

    def manifest_exists(self, domain: str, path: str, digest: str) -> bool:
        """``HEAD /v2/<path>/manifests/<digest>`` at the registry (push: an index's absent platforms)."""
        digest = validate_digest(digest)
        headers = {"Accept": MANIFEST_ACCEPT}
        resp, body = self._push_write(
            "HEAD", domain, f"/v2/{path}/manifests/{digest}", f"repository:{path}:pull,push", headers=headers
        )
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._push_error(resp, body, what=f"manifest {digest}", path=path)

    def mount_blob(self, domain: str, path: str, digest: str, from_path: str) -> str | None:
        """Cross-mount a blob from another repository of the same registry.

        None when mounted (201); otherwise the URL of the upload the registry started instead (202).
        """
        digest = validate_digest(digest)
        query = urlencode({"mount": digest, "from": from_path})
        url = f"{self.base_url(domain)}/v2/{path}/blobs/uploads/?{query}"
        resp, body = self._push_write("POST", domain, url, f"repository:{path}:pull,push")
        if resp.status_code == 201:
            return None
        if resp.status_code == 202:
            return self._upload_url(url, resp, what=f"blob {digest}")
        raise self._push_error(resp, body, what=f"blob {digest}", path=path)

    def start_upload(self, domain: str, path: str) -> str:
        """``POST /v2/<path>/blobs/uploads/``: the URL to upload one blob to."""
        url = f"{self.base_url(domain)}/v2/{path}/blobs/uploads/"
        resp, body = self._push_write("POST", domain, url, f"repository:{path}:pull,push")
        if resp.status_code != 202:
            raise self._push_error(resp, body, what="blob upload", path=path)
        return self._upload_url(url, resp, what="blob upload")

    def upload_blob(
        self, domain: str, path: str, location: str, digest: str, size: int, chunks: Callable[[], object]
    ) -> None:
        """Finish an upload with one ``PUT <location>?digest=...`` carrying the whole blob.

        ``chunks()`` returns a fresh iterable of the blob's bytes (called again after a 401).
        """
        digest = validate_digest(digest)
        url = location + ("&" if "?" in location else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp, body = self._push_write("PUT", domain, url, f"repository:{path}:pull,push", headers=headers, body=chunks)
        if resp.status_code not in (201, 204):
            raise self._push_error(resp, body, what=f"blob {digest}", path=path)
        announced = resp.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise VerificationError(f"blob {digest}: the registry stored it as {announced}")

    def put_manifest(self, domain: str, path: str, ref: str, data: bytes, media_type: str) -> str:
        """``PUT /v2/<path>/manifests/<tag or digest>``; returns the digest of the exact bytes sent."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        headers = {"Content-Type": media_type}
        resp, body = self._push_write(
            "PUT", domain, f"/v2/{path}/manifests/{ref}", f"repository:{path}:pull,push", headers=headers, body=lambda: data
        )
        if resp.status_code not in (200, 201):
            raise self._push_error(resp, body, what=f"manifest {path}:{ref}", path=path)
        announced = resp.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise VerificationError(f"manifest {path}:{ref}: the registry stored it as {announced}, not {digest}")
        return digest


# distribution's messages for its error codes, used when an error carries none (errcode's
# Errors.UnmarshalJSON does the same).
_CODE_MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "DENIED": "requested access to the resource is denied",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_UNKNOWN": "repository name not known to registry",
    "TOOMANYREQUESTS": "too many requests",
    "UNAUTHORIZED": "authentication required",
}


def _detail_text(code: str | None, message: str | None) -> str:
    """An error as docker prints it: errcode's ``code: message`` (``manifest unknown: manifest unknown``)."""
    text = (code or "").lower().replace("_", " ")
    message = message or _CODE_MESSAGES.get(code or "")
    if message:
        return f"{text}: {message}" if text else message
    return text


def _challenge_error(resp: httpx.Response) -> tuple[str, str] | None:
    """A Bearer challenge's OAuth error as (code, message), as distribution's client maps it:
    ``insufficient_scope`` is DENIED, ``invalid_token`` UNAUTHORIZED; its error_description wins."""
    if not 400 <= resp.status_code < 500:
        return None
    scheme, params = parse_challenge(resp.headers.get("www-authenticate", ""))
    code = {"insufficient_scope": "DENIED", "invalid_token": "UNAUTHORIZED"}.get(params.get("error", ""))
    if scheme != "bearer" or code is None:
        return None
    description = " ".join((params.get("error_description") or "").split())[:300]
    return code, description or _CODE_MESSAGES[code]


def _error_detail(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc = jsonlimit.loads(body)  # an error body nested too deep has no detail
        err = doc["errors"][0]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        msg = err.get("message") if isinstance(err.get("message"), str) else None
        if msg:
            msg = " ".join(msg.split())[:300]
        return code, msg
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None


def _refuse_encoding(resp: httpx.Response, what: str) -> None:
    """We ask for ``identity``: an encoded body anyway is refused, never inflated."""
    encoding = resp.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise VerificationError(f"{what}: the server sent a {encoding}-encoded body although none was accepted")


def _read_capped(resp: httpx.Response, limit: int, *, what: str, truncate: bool = False) -> bytes:
    """Read at most ``limit`` bytes; a longer body is an error (or cut, for error bodies)."""
    if truncate and resp.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
        return b""  # an error body we did not ask to have compressed: not worth inflating
    _refuse_encoding(resp, what)
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit and not truncate:
        raise VerificationError(f"{what} is too large ({declared} bytes, limit {limit})")
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > limit:
                if truncate:
                    return bytes(buf[:limit])
                raise VerificationError(f"{what} is too large (more than {limit} bytes)")
    except httpx.HTTPError as e:
        raise TransportError(f"reading {what}: {_reason(e)}") from e
    return bytes(buf)


_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


def _next_link(link: str | None) -> str | None:
    if not link:
        return None
    m = _LINK_RE.search(link)
    if not m:
        return None
    target = urlsplit(m.group(1))
    return target.path + (f"?{target.query}" if target.query else "")


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
