"""The registry client: HTTP, authentication, manifests, blobs, tags.  No disk.

Endpoint choice and authentication live here so that use cases never think
about which URL served them.  Every document fetched is size-capped, and
every manifest is checked against its digest before it is returned.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from imgctl import __version__
from imgctl.config import Config
from imgctl.errors import (
    AccessDenied,
    ManifestUnknown,
    RegistryError,
    TransportError,
    Unauthorized,
    UnsupportedManifest,
    VerificationError,
)
from imgctl.oci import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE
from imgctl.reference import validate_digest

__all__ = ["RegistryClient", "FetchedManifest", "api_host", "is_loopback"]

MAX_TOKEN_SIZE = 1024 * 1024
MAX_ERROR_SIZE = 1024 * 1024
MAX_REDIRECTS = 10
CHUNK = 1024 * 1024
USER_AGENT = f"imgctl/{__version__}"

Credentials = Callable[[str], "tuple[str, str] | None"]


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


_CHALLENGE_RE = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_RE.finditer(rest)}
    return scheme.lower(), params


def _reason(exc: Exception) -> str:
    text = str(exc) or exc.__class__.__name__
    low = text.lower()
    if "connection refused" in low:
        return "connection refused"
    if "certificate" in low or "ssl" in low or "tls" in low:
        return f"TLS handshake failed: {text}"
    if isinstance(exc, httpx.TimeoutException):
        return "timed out"
    if "name or service not known" in low or "nodename nor servname" in low or "temporary failure in name resolution" in low:
        return "no such host"
    return text


class RegistryClient:
    """One client per command run: connections and tokens are reused within it."""

    def __init__(
        self,
        config: Config,
        *,
        credentials: Credentials | None = None,
        log: Callable[[str], None] | None = None,
        timeout: float = 30.0,
    ) -> None:
        self.config = config
        self._credentials = credentials or (lambda host: None)
        self._log = log or (lambda msg: None)
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=10.0),
            follow_redirects=False,
            headers={"User-Agent": USER_AGENT},
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
            trust_env=True,
        )
        self._bases: dict[str, str] = {}
        self._tokens: dict[tuple[str, str], str] = {}
        self._basic: set[str] = set()
        self._lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "RegistryClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- endpoints ------------------------------------------------------------------
    def base_url(self, domain: str) -> str:
        """https://host, or http://host for loopback and insecure registries when https fails."""
        host = api_host(domain)
        with self._lock:
            if host in self._bases:
                return self._bases[host]
        plain_ok = is_loopback(host) or self.config.is_insecure(host)
        base = f"https://{host}"
        try:
            resp = self._http.get(f"{base}/v2/")
            resp.close()
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.RemoteProtocolError, httpx.ReadError) as e:
            if not plain_ok:
                raise TransportError(f"cannot reach registry {host} (GET {base}/v2/): {_reason(e)}") from e
            base = f"http://{host}"
            try:
                self._http.get(f"{base}/v2/").close()
            except httpx.HTTPError as e2:
                raise TransportError(f"cannot reach registry {host} (GET {base}/v2/): {_reason(e2)}") from e2
        except httpx.HTTPError as e:
            raise TransportError(f"cannot reach registry {host} (GET {base}/v2/): {_reason(e)}") from e
        self._log(f"registry {host}: using {base}")
        with self._lock:
            self._bases[host] = base
        return base

    # -- auth -----------------------------------------------------------------------
    def _auth_header(self, host: str, scope: str) -> dict[str, str]:
        with self._lock:
            token = self._tokens.get((host, scope))
            basic = host in self._basic
        if token:
            return {"Authorization": f"Bearer {token}"}
        if basic:
            creds = self._credentials(host)
            if creds:
                raw = f"{creds[0]}:{creds[1]}".encode()
                return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _authenticate(self, host: str, scope: str, challenge_header: str) -> bool:
        """Answer a 401 challenge; True when a retry is worth it."""
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic":
            if self._credentials(host) is None:
                return False
            with self._lock:
                already = host in self._basic
                self._basic.add(host)
            return not already
        if scheme != "bearer" or "realm" not in params:
            return False
        realm = params["realm"]
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise RegistryError(f"registry {host} sent an invalid token realm {realm[:100]!r}")
        query = []
        if params.get("service"):
            query.append(("service", params["service"]))
        scopes = [s for s in {scope, params.get("scope") or ""} if s]
        for s in sorted(scopes):
            query.append(("scope", s))
        url = realm + ("&" if "?" in realm else "?") + urlencode(query)
        headers = {}
        creds = self._credentials(host)
        if creds:
            headers["Authorization"] = "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()
        try:
            with self._http.stream("GET", url, headers=headers) as resp:
                body = _read_capped(resp, MAX_TOKEN_SIZE, what="token answer")
                status = resp.status_code
        except httpx.HTTPError as e:
            raise TransportError(f"cannot get a token from {parts.netloc}: {_reason(e)}") from e
        if status in (401, 403):
            raise Unauthorized(f"authentication to {host} failed: token server {parts.netloc} answered {status}", status=status)
        if status != 200:
            raise RegistryError(f"token server {parts.netloc} answered HTTP {status}", status=status)
        try:
            doc = json.loads(body)
            token = doc.get("token") or doc.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token or any(c in token for c in "\r\n"):
            raise RegistryError(f"token server {parts.netloc} returned an invalid answer")
        with self._lock:
            self._tokens[(host, scope)] = token
        return True

    # -- requests ---------------------------------------------------------------------
    @contextmanager
    def _request(
        self, method: str, domain: str, path: str, scope: str, headers: dict[str, str] | None = None
    ) -> Iterator[httpx.Response]:
        """Send with auth, follow redirects (dropping credentials across hosts); yield a streaming response."""
        host = api_host(domain)
        base = self.base_url(domain)
        url = base + path
        tried_auth = False
        redirects = 0
        origin = urlsplit(url).netloc
        while True:
            h = dict(headers or {})
            same_host = urlsplit(url).netloc == origin
            if same_host:
                h.update(self._auth_header(host, scope))
            req = self._http.build_request(method, url, headers=h)
            try:
                resp = self._http.send(req, stream=True)
            except httpx.HTTPError as e:
                raise TransportError(f"{method} {_redact(url)}: {_reason(e)}") from e
            if resp.status_code == 401 and same_host and not tried_auth:
                tried_auth = True
                challenge = resp.headers.get("www-authenticate", "")
                try:
                    retry = bool(challenge) and self._authenticate(host, scope, challenge)
                except BaseException:
                    resp.close()
                    raise
                if retry:
                    resp.close()
                    continue
            if resp.status_code in (301, 302, 303, 307, 308) and "location" in resp.headers:
                resp.close()
                redirects += 1
                if redirects > MAX_REDIRECTS:
                    raise RegistryError(f"too many redirects for {_redact(url)}")
                url = urljoin(url, resp.headers["location"])
                if urlsplit(url).scheme not in ("http", "https"):
                    raise RegistryError(f"registry {host} redirected to an unsupported URL")
                self._log(f"redirected to {urlsplit(url).netloc}")
                continue
            try:
                yield resp
            finally:
                resp.close()
            return

    # -- API ----------------------------------------------------------------------------
    def get_manifest(self, domain: str, path: str, ref: str, *, display: str) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest; its digest is verified over the exact bytes.

        ``display`` names the image in error messages (``ubuntu:nope``).
        """
        want = validate_digest(ref) if ":" in ref else None
        scope = f"repository:{path}:pull"
        with self._request("GET", domain, f"/v2/{path}/manifests/{ref}", scope, {"Accept": MANIFEST_ACCEPT}) as resp:
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
        """A small blob (config) read whole, after checking it against its descriptor."""
        digest = validate_digest(digest)
        if size > max_size:
            raise VerificationError(f"blob {digest} is too large ({size} bytes, limit {max_size})")
        with self.blob_stream(domain, path, digest) as resp:
            data = _read_capped(resp, min(size, max_size), what=f"blob {digest}")
        if len(data) != size:
            raise VerificationError(f"blob {digest} is truncated: got {len(data)} of {size} bytes")
        algo = digest.split(":", 1)[0]
        if f"{algo}:{hashlib.new(algo, data).hexdigest()}" != digest:
            raise VerificationError(f"digest mismatch for blob {digest}")
        return data

    @contextmanager
    def blob_stream(self, domain: str, path: str, digest: str, offset: int = 0) -> Iterator[httpx.Response]:
        """A streaming 200 (or 206 when ``offset`` > 0 and the registry honours Range) response."""
        digest = validate_digest(digest)
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        with self._request("GET", domain, f"/v2/{path}/blobs/{digest}", f"repository:{path}:pull", headers) as resp:
            if resp.status_code not in (200, 206):
                self._raise_for(resp, what="blob", display=digest, path=path)
            yield resp

    def list_tags(self, domain: str, path: str, *, display: str) -> list[str]:
        tags: list[str] = []
        next_path: str | None = f"/v2/{path}/tags/list?n=1000"
        pages = 0
        while next_path and pages < 10000:
            pages += 1
            with self._request("GET", domain, next_path, f"repository:{path}:pull") as resp:
                if resp.status_code != 200:
                    self._raise_for(resp, what="tags", display=display, path=path)
                body = _read_capped(resp, MAX_MANIFEST_SIZE, what=f"tag list of {display}")
                link = resp.headers.get("link")
            try:
                page = json.loads(body).get("tags") or []
            except (ValueError, AttributeError):
                raise RegistryError(f"registry answered an invalid tag list for {display}") from None
            tags.extend(t for t in page if isinstance(t, str))
            next_path = _next_link(link)
        return tags

    # -- errors -------------------------------------------------------------------------
    def _raise_for(self, resp: httpx.Response, *, what: str, display: str, path: str) -> None:
        status = resp.status_code
        try:
            body = _read_capped(resp, MAX_ERROR_SIZE, what="error body", truncate=True)
        except RegistryError:
            body = b""
        code, message = _error_detail(body)
        detail = _detail_text(code, message) or f"HTTP {status}"
        familiar_repo = display.split("@")[0].rsplit(":", 1)[0] if "/" in display or ":" in display else display
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED", "NAME_UNKNOWN"):
            cls = Unauthorized if status == 401 else AccessDenied
            if what in ("manifest", "tags"):
                raise cls(
                    f"pull access denied for {familiar_repo}, repository does not exist or may require "
                    f"'imgctl login': {detail}",
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
        raise RegistryError(f"{what} {display}: registry answered HTTP {status}: {detail}", status=status, code=code)


def _detail_text(code: str | None, message: str | None) -> str:
    text = (code or "").lower().replace("_", " ")
    if message and message.lower() != text:
        return f"{text}: {message}" if text else message
    return text


def _error_detail(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc = json.loads(body)
        err = doc["errors"][0]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        msg = err.get("message") if isinstance(err.get("message"), str) else None
        if msg:
            msg = " ".join(msg.split())[:300]
        return code, msg
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None


def _read_capped(resp: httpx.Response, limit: int, *, what: str, truncate: bool = False) -> bytes:
    """Read at most ``limit`` bytes; a longer body is an error (or cut, for error bodies)."""
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
