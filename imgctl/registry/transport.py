"""Transport: one httpx client for every host, with that host's TLS settings (``certs.d``),
its proxy (environment), and a limit on every exchange (a deadline, or a blob's minimum rate).

TLS is verified with the system trust store plus docker's ``certs.d/HOST[:PORT]/`` (``*.crt``
CAs, ``client.cert`` and ``client.key``); insecure registries (only they) are also reached over
HTTPS without verification.  Nothing here knows about registries, tokens or retries.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import httpcore
import httpx

from imgctl import __version__, trust
from imgctl.errors import ConfigError
from imgctl.events import seconds_text

USER_AGENT = f"imgctl/{__version__}"


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


def ssl_verify_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    seen = 0
    cur: BaseException | None = exc
    while cur is not None and seen < 10:
        if isinstance(cur, ssl.SSLCertVerificationError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


_LIMIT_MESSAGES = ("no complete answer within ", "stalled: ")


def reason(exc: Exception) -> str:
    verify = ssl_verify_error(exc)
    if verify is not None:
        return f"TLS certificate verification failed: {verify.verify_message or verify.reason or verify}"
    text = str(exc) or exc.__class__.__name__
    if isinstance(exc, httpx.TimeoutException) and text.startswith(_LIMIT_MESSAGES):
        return text  # an exchange's deadline or a blob's minimum rate (see Limit)
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


# -- deadlines (issue 13) -----------------------------------------------------------------------
# An idle timeout alone lets a server that sends one byte a second (or endless ``100 Continue``
# lines, or a header that never ends) hold a command for ever.  So every exchange runs under a
# limit that covers all of it, from connecting to the last byte of the answer: documents (a
# manifest, a token, a page of tags or search results, an error body) must be complete within
# ``request-timeout`` seconds; a blob must deliver at least MIN_BLOB_RATE bytes a second over
# each window of ``request-timeout`` seconds, or it is a stall (retried, then the next endpoint).
# The limit is enforced below httpx, on each socket read, write and connect of the exchange.
MIN_BLOB_RATE = 1024  # bytes per second, averaged over each request-timeout window


class Limit:
    """The limit of the exchange running on this thread: a deadline, or a minimum rate per window."""

    __slots__ = ("window", "min_bytes", "start", "got", "message", "watched", "unwatch")

    def __init__(self, window: float, min_bytes: int | None = None) -> None:
        self.window, self.min_bytes = window, min_bytes
        self.start, self.got, self.message = time.monotonic(), 0, None
        self.watched: object = None  # the connection registered with multipart.on_abort (see _watch)
        self.unwatch: Callable[[], None] | None = None

    def watch(self, stream: "_LimitedStream") -> None:
        """Let a multipart fetch abort this exchange at once (cancelled, another chunk failed):
        shutting the connection down breaks any wait on it.  Outside a multipart worker a no-op."""
        self.end()
        multipart = sys.modules.get("imgctl.multipart")  # not loaded: no multipart fetch is running
        self.watched = stream
        self.unwatch = multipart.on_abort(stream.shutdown) if multipart is not None else None

    def end(self) -> None:
        if self.unwatch is not None:
            self.unwatch()
        self.watched = self.unwatch = None

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


_exchange = threading.local()  # .limit: the Limit of the exchange this thread is running, or None


def set_limit(limit: Limit | None) -> None:
    """Put the next exchange on this thread under ``limit`` (every exchange sets its own)."""
    old = getattr(_exchange, "limit", None)
    if old is not None:
        old.end()  # its connection may go back to the pool: no longer this exchange's to abort
    _exchange.limit = limit


def _bounded(timeout: float | None) -> tuple[Limit | None, float | None]:
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
            if limit is not None and limit.watched is not self:
                limit.watch(self)
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
        limit, wait = _bounded(timeout)
        if limit is not None and limit.watched is not self:
            limit.watch(self)
        self._stream.write(buffer, wait)

    def close(self) -> None:
        self._stream.close()

    def shutdown(self) -> None:
        """Break every wait on this connection now (from another thread); it is not reused."""
        import socket

        sock = self._stream.get_extra_info("socket")
        if sock is not None:
            sock.shutdown(socket.SHUT_RDWR)

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
            # plain HTTP, see Engine._probe).  A client certificate is still offered.
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


def new_client(
    certs_dirs: Sequence[Path], insecure: Callable[[str], bool], timeout: float, connections: int = 32
) -> httpx.Client:
    """The one client of a run: every host through a _Transport; ``timeout`` is the idle timeout
    (each exchange's Limit bounds the whole of it); at most ``connections`` per pool at once."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=max(16, connections // 2))
    return httpx.Client(
        timeout=httpx.Timeout(timeout, connect=min(timeout, 10.0)),
        follow_redirects=False,
        # Bodies as stored: no transfer compression, so sizes mean bytes and no answer can
        # inflate into memory unbounded (a few KiB of gzip/zstd can decode to GiBs).
        headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        transport=_Transport(certs_dirs, limits, insecure=insecure),
    )
