"""The request engine: ``send()`` is the one way a request leaves imgctl for a registry.

It adds the host's authentication (answering one 401 challenge), follows redirects (never
taking credentials to another origin, never in a loop or down from https to plain http),
retries transient statuses with the one retry policy (``RetryPolicy``), and maps transport
failures to typed errors.  ``first()`` runs an operation at each endpoint of a registry in
turn (mirrors, then the registry itself) and ``pages()`` follows a listing's ``Link`` headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar
from urllib.parse import urlsplit

import httpx

from imgctl import trust
from imgctl.config import Config
from imgctl.errors import RegistryError, TransportError, UnsupportedManifest, VerificationError
from imgctl.oci import MAX_MANIFEST_SIZE
from imgctl.events import Retry, seconds_text
from imgctl.registry.bodies import json_answer, read_capped
from imgctl.registry.check import _Skipped, _Unreachable, transient, with_context
from imgctl.registry.endpoints import Endpoint, api_host, bad_location, joined_url, redact
from imgctl.registry.pages import Pages
from imgctl.registry.tokens import Credentials, Tokens
from imgctl.registry.transport import (
    MIN_BLOB_RATE,
    Limit,
    is_loopback,
    new_client,
    reason,
    set_limit,
    ssl_verify_error,
)

T = TypeVar("T")

MAX_REDIRECTS = 10
TRANSIENT_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 60.0  # seconds: a longer Retry-After is not waited for (the request fails at once)
MAX_BACKOFF = 30.0
RATE_LIMIT_HEADERS = ("ratelimit-limit", "ratelimit-remaining", "docker-ratelimit-source")
MAX_PAGE_SIZE = MAX_MANIFEST_SIZE  # bytes of one page of a listing
ENDPOINT_ERRORS = (RegistryError, VerificationError, UnsupportedManifest)  # a mirror's failure: try the next
DRAIN_SIZE = 64 * 1024  # bytes of an answer not needed (a 401, a redirect, the ping) read to keep its connection
DRAIN_WAIT = 0.5  # seconds that reading may take; a slower body closes the connection instead


def discard(resp: httpx.Response) -> None:
    """Close an answer whose body is not needed.  A short body is read first, so that its
    connection goes back to the pool for the next request (closing an answer before its end
    closes the connection: the next request would pay a new connect)."""
    try:
        length = resp.headers.get("content-length", "")
        if not length or (length.isdigit() and int(length) <= DRAIN_SIZE):
            set_limit(Limit(DRAIN_WAIT))
            got = 0
            for chunk in resp.iter_raw():
                got += len(chunk)
                if got > DRAIN_SIZE:
                    break
    except (httpx.HTTPError, httpx.StreamError):
        pass
    finally:
        resp.close()


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


class RetryPolicy:
    """How often and how long to wait: ``max-download-attempts`` tries of anything transient,
    waits doubling from ``retry-delay`` (at most MAX_BACKOFF) unless Retry-After says otherwise;
    each wait announced (log line and ``on_retry``) and cut short by ``cancel()``."""

    def __init__(self, config: Config, log: Callable[[str], None], on_retry: Callable[[Retry], None]) -> None:
        self.attempts = config.max_download_attempts  # the one place it is read
        self.delay = config.retry_delay
        self._log = log
        self._on_retry = on_retry
        self.stop = threading.Event()

    def allows(self, failures: int) -> bool:
        """Another try after ``failures`` failed ones."""
        return failures < self.attempts

    @staticmethod
    def status_wait(resp: httpx.Response) -> float | None | bool:
        """How an answer's status is retried: seconds to wait (Retry-After), None (back off as
        usual), or False: not worth retrying (not transient).  A 429 without Retry-After (Docker
        Hub's pull rate limit: a six-hour window) or any Retry-After beyond MAX_RETRY_AFTER cannot
        succeed soon."""
        if resp.status_code not in TRANSIENT_STATUSES:
            return False
        wait = _retry_after(resp.headers.get("retry-after"))
        if wait is not None and wait > MAX_RETRY_AFTER:
            return False
        if wait is None and resp.status_code == 429:
            return False
        return wait

    def announce(
        self, what: str, attempt: int, retry_after: float | None, error: BaseException | str | None,
        digest: str | None = None,
    ) -> float:
        """The wait before retry ``attempt`` (1-based) of ``what``, said (log line and ``on_retry``)
        but not waited for (the caller waits: a multipart chunk's retry); Retry-After wins over doubling."""
        if retry_after is not None:
            delay = retry_after
        else:
            delay = min(self.delay * (2 ** (attempt - 1)), MAX_BACKOFF)
        self._log(f"{what}: {error}; retrying in {seconds_text(delay)}")
        self._on_retry(Retry(what, delay, digest, attempt))
        return delay

    def backoff(
        self, what: str, attempt: int, retry_after: float | None, error: BaseException | str | None,
        digest: str | None = None,
    ) -> None:
        """Wait before retry ``attempt`` (1-based) of ``what``, saying so (see ``announce``)."""
        delay = self.announce(what, attempt, retry_after, error, digest)
        if self.stop.wait(delay):
            raise TransportError(f"{what}: cancelled while waiting to retry")


class Engine:
    """One engine per command run: connections, endpoints' state and tokens are reused within it.

    Reads go to each mirror of the registry in order, then to the registry itself; any failure
    of a mirror moves on to the next endpoint.  Credentials and tokens are looked up and kept
    per host, so they never reach another one.
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
        self._log = log or (lambda msg: None)
        self.policy = RetryPolicy(config, self._log, on_retry or (lambda retry: None))
        self.tokens = Tokens(credentials, config.is_insecure, self._log)
        self._mirrors = tuple(mirrors)  # from the command line: for every registry, before the configured ones
        timeout = config.request_timeout if timeout is None else timeout  # idle; Limit bounds the whole
        # Connections: every layer download at once, each over its multipart connections, and a few more.
        connections = config.max_concurrent_downloads * config.max_concurrent_downloads_per_layer + 8
        self._http = new_client(config.certs_dirs(), config.is_insecure, timeout, max(32, connections))
        self._bases: dict[str, str] = {}  # endpoint URL -> resolved base URL
        self._dead: dict[str, str] = {}  # endpoint URL -> why it could not be reached
        self.ignores_range: set[str] = set()  # endpoint URLs whose answers (or redirect targets) ignored Range
        self.link_bound: set[str] = set()  # endpoint URLs whose streams waited on the link (download-split auto)
        self._challenges: dict[str, str] = {}  # host -> the WWW-Authenticate of its ping (GET /v2/)
        self._lock = threading.Lock()

    def close(self) -> None:
        self.policy.stop.set()
        self._http.close()

    def cancel(self) -> None:
        """Wake every retry wait at once (Ctrl-C): the waiting requests fail instead of retrying."""
        self.policy.stop.set()

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _limit(self, blob: bool = False) -> Limit:
        """A new exchange's limit: the whole answer within request-timeout, or (a blob) a minimum rate."""
        t = self.config.request_timeout
        return Limit(t, max(1, int(MIN_BLOB_RATE * t))) if blob else Limit(t)

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

    def registry(self, domain: str) -> Endpoint:
        """The registry itself (never a mirror): for writes and registry-only APIs."""
        return self.endpoints(domain, mirrors=False)[-1]

    def base_url(self, domain: str) -> str:
        """The registry's own base URL (https, or http for loopback and insecure registries)."""
        return self.resolve(self.registry(domain))

    def resolve(self, ep: Endpoint) -> str:
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
            self._ping(ep, url)
            return ep.url
        except (httpx.HTTPError, httpx.InvalidURL) as e:  # (InvalidURL: a redirect to a non-URL)
            https_error = e
        plain = f"http://{parts.netloc}{parts.path}"
        try:
            resp = self._ping(ep, f"{plain}/v2/")
        except (httpx.HTTPError, httpx.InvalidURL) as e2:
            raise _Unreachable(f"cannot reach {what} {ep.host} (GET {plain}/v2/): {reason(e2)}") from e2
        if resp.status_code == 400 and ssl_verify_error(https_error) is not None:
            # An HTTPS server refusing plain HTTP: the certificate is the problem, say so.
            raise _Unreachable(self._tls_message(what, ep.host, url, https_error)) from https_error
        return plain

    def _ping(self, ep: Endpoint, url: str) -> httpx.Response:
        """``GET /v2/`` (closed; only its status and challenge matter).  Its connection is kept for
        the requests that follow, and a challenge is kept to be answered before the first of them
        (docker's ping does the same): no request is sent only to be refused with a 401."""
        set_limit(self._limit())
        resp = self._http.send(self._http.build_request("GET", url), stream=True)
        discard(resp)
        if resp.status_code == 401 and resp.headers.get("www-authenticate"):
            with self._lock:
                self._challenges[ep.host] = resp.headers["www-authenticate"]
        return resp

    def _tls_message(self, what: str, host: str, url: str, exc: Exception) -> str:
        hint = ""
        if ssl_verify_error(exc) is not None:
            own = self.config.certs_dirs()[0]
            hint = f" (to trust a private CA, put its certificate in {own / host / 'ca.crt'})"
        return f"cannot reach {what} {host} (GET {url}): {reason(exc)}{hint}"

    # -- the one way to send --------------------------------------------------------------
    @contextmanager
    def send(
        self, method: str, ep: Endpoint, url: str, scope: str = "", headers: dict[str, str] | None = None, *,
        content: bytes | Callable[[], object] | None = None, retry: bool = True, redirects: bool = True,
        digest: str | None = None, deadline: str | None = "document", write: bool = False,
    ) -> Iterator[httpx.Response]:
        """Send one request to ``ep`` and yield its streaming answer (closed afterwards).

        Requests on the endpoint's own origin carry its host's auth; a 401 is answered once.
        Redirects are followed (``redirects``) but credentials never go to another origin.
        Transient statuses are retried from the registry (``retry``; never from a mirror).
        ``content``: bytes, or a function returning a fresh body for each sending.
        ``deadline``: ``document`` (the whole answer within request-timeout), ``blob`` (a
        minimum rate) or None (the idle timeout only: uploads).  ``digest`` names the blob a
        retry is for (a redirect target's URL need not contain it).  ``write``: every failure
        to exchange is a plain TransportError (a write is never moved to another endpoint).
        """
        start = url
        origin = urlsplit(url)[:2]
        auth = not (ep.foreign or ep.token)
        auth_origin = urlsplit(self.resolve(ep))[:2] if auth else None
        tried_auth = False
        redirects_followed = 0
        retries = 0
        visited: set[str] = set()
        while True:
            h = dict(headers or {})
            same_origin = auth and urlsplit(url)[:2] == auth_origin
            if same_origin:
                found = self.tokens.header(ep.host, scope)
                with self._lock:
                    pinged = self._challenges.get(ep.host) if not (found or tried_auth) else None
                if pinged:
                    # The ping was challenged: answer it now instead of after a 401 to this request.
                    tried_auth = True
                    if self.tokens.answer(self, ep.host, scope, pinged, digest):
                        found = self.tokens.header(ep.host, scope)
                h.update(found)
            body = content() if callable(content) else content
            req = self._http.build_request(method, url, headers=h, content=body)
            # each request sent, from connecting to its last byte
            set_limit(None if deadline is None else self._limit(deadline == "blob"))
            try:
                resp = self._http.send(req, stream=True)
            except (httpx.HTTPError, httpx.InvalidURL) as e:
                raise self._failure(e, method, ep, url, origin, write) from e
            if not (write or ep.token):
                limits = [f"{k}: {resp.headers[k]}" for k in RATE_LIMIT_HEADERS if k in resp.headers]
                if limits:
                    self._log(f"{method} {redact(url)}: HTTP {resp.status_code}; {', '.join(limits)}")
            if resp.status_code == 401 and same_origin and not tried_auth:
                tried_auth = True
                challenge = resp.headers.get("www-authenticate", "")
                try:
                    answered = bool(challenge) and self.tokens.answer(self, ep.host, scope, challenge, digest)
                except BaseException:
                    resp.close()
                    raise
                if answered:
                    discard(resp)
                    continue
            wait = self.policy.status_wait(resp) if retry else False
            if wait is not False and not ep.mirror and self.policy.allows(retries + 1):
                retries += 1
                discard(resp)
                what = f"blob {digest}" if digest else f"{method} {redact(url)}"
                self.policy.backoff(what, retries, wait, f"HTTP {resp.status_code}", digest)
                url, redirects_followed = start, 0  # a redirect's signed URL may have expired meanwhile: ask again
                continue
            if redirects and resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                discard(resp)
                redirects_followed += 1
                if redirects_followed > MAX_REDIRECTS:
                    raise RegistryError(f"too many redirects for {redact(url)}")
                previous = url
                url = joined_url(url, resp.headers["location"], f"{ep.label} redirected to a URL that")
                if redirects_followed == 1:
                    visited = {previous}  # (this chain of redirects)
                self._check_redirect(ep, previous, url, visited)
                self._log(f"redirected to {urlsplit(url).netloc}")  # never the query: it may hold a signature
                continue
            try:
                yield resp
            finally:
                resp.close()
                set_limit(None)
            return

    def _failure(self, e: Exception, method: str, ep: Endpoint, url: str, origin: tuple, write: bool) -> RegistryError:
        """The typed error for a request that got no answer (``raise ... from e``)."""
        where = f"{method} {redact(url)}"
        if write:
            return TransportError(f"{where}: {reason(e)}")
        if isinstance(e, (httpx.ReadTimeout, httpx.WriteTimeout)):
            if not ep.mirror and not ep.foreign:
                return TransportError(f"{where}: {reason(e)}")  # retried
            self._mark_dead(ep, e)
            return _Unreachable(f"{where}: {reason(e)}")
        if isinstance(e, (httpx.ConnectError, httpx.ConnectTimeout)):
            # No connection, or no answer at all: skip this endpoint for the rest of the run.
            if ssl_verify_error(e) is not None:
                err = _Unreachable(self._tls_message(ep.label.split()[0], urlsplit(url).netloc, redact(url), e))
            else:
                err = _Unreachable(f"{where}: {reason(e)}")
            if urlsplit(url)[:2] == origin and not ep.token:
                self._mark_dead(ep, e)
            return err
        if isinstance(e, (httpx.InvalidURL, httpx.RemoteProtocolError)) and bad_location(e):
            return RegistryError(f"{ep.label} redirected to a URL that is not a valid http(s) URL ({e})")
        return TransportError(f"{where}: {reason(e)}")

    def _mark_dead(self, ep: Endpoint, e: Exception) -> None:
        with self._lock:
            self._dead.setdefault(ep.url, f"{ep.label} is unreachable: {reason(e)}")

    def _check_redirect(self, ep: Endpoint, previous: str, url: str, visited: set[str]) -> None:
        """Refuse a redirect back to a URL already visited, or from https to plain http
        (allowed only to a loopback or insecure registry)."""
        if url in visited:
            raise RegistryError(f"{ep.label} redirected in a loop ({redact(url)})")
        visited.add(url)
        host = urlsplit(url).netloc
        if (
            urlsplit(previous).scheme == "https"
            and urlsplit(url).scheme == "http"
            and not (is_loopback(host) or self.config.is_insecure(host))
        ):
            raise RegistryError(f"{ep.label} redirected from https to plain http ({redact(url)}): refused")

    @contextmanager
    def _request(
        self, method: str, domain: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """A request to the registry itself (never a mirror): ``send()`` to ``registry(domain)``."""
        ep = self.registry(domain)
        with self.send(method, ep, self.resolve(ep) + path, scope, headers) as resp:
            yield resp

    # -- endpoints in turn ----------------------------------------------------------------
    def first(self, domain: str, what: str, attempt: Callable[[Endpoint, str], T]) -> T:
        """``attempt(endpoint, base_url)`` at each endpoint in turn; the first success wins.

        A mirror's failure moves on; the registry's own failure is raised, naming the mirrors
        that failed before it.
        """
        failed: list[str] = []
        for ep in self.endpoints(domain):
            try:
                result = self._with_retries(ep, what, attempt)
            except ENDPOINT_ERRORS as e:
                if ep.mirror:
                    if not isinstance(e, _Skipped):
                        self._log(f"{what}: {ep.label} failed: {e}; trying the next endpoint")
                    failed.append(f"{ep.url}: {short_reason(e)}")
                    continue
                if failed:
                    raise with_context(e, f"mirrors failed too: {'; '.join(failed)}") from e
                raise
            self._log(f"{what}: served by {ep.label}")
            return result
        raise AssertionError("unreachable: the registry is always the last endpoint")  # pragma: no cover

    def _with_retries(self, ep: Endpoint, what: str, attempt: Callable[[Endpoint, str], T]) -> T:
        """``attempt`` at one endpoint; a broken stream from the registry itself is retried with backoff."""
        n = 0
        while True:
            try:
                return attempt(ep, self.resolve(ep))
            except TransportError as e:
                n += 1
                if ep.mirror or not transient(e) or not self.policy.allows(n):
                    raise
                self.policy.backoff(what, n, None, e)

    # -- listings -------------------------------------------------------------------------
    def pages(
        self, ep: Endpoint, url: str, scope: str, listing: str, *, retry: bool,
        failed: Callable[[httpx.Response, str], None], body_what: Callable[[str], str], json_what: Callable[[str], str],
    ) -> Iterator[object]:
        """The decoded JSON pages of a listing at ``ep``: ``url``, then each page its ``Link:
        <...>; rel="next"`` names (see ``Pages`` for the limits).  ``failed(resp, url)`` raises
        for an answer other than 200; ``body_what(url)``/``json_what(url)`` name a page in errors."""
        pager = Pages(url, ep.label, listing)
        while url:
            with self.send("GET", ep, url, scope, retry=retry) as resp:
                if resp.status_code != 200:
                    failed(resp, url)
                body = read_capped(resp, MAX_PAGE_SIZE, what=body_what(url))
                link = resp.headers.get("link")
            yield json_answer(body, json_what(url))
            url = pager.next(url, link, len(body))


def short_reason(exc: BaseException) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:197] + "..."
