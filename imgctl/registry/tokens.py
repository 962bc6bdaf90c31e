"""Authentication to a registry: its challenges, the token service, credentials per host.

Credentials and tokens are kept per host and sent only to it (the engine decides which
requests carry them); they never go into a log line.  The credential file itself is
``imgctl.auth``'s business: this module only asks it (or the ``credentials`` callback).
"""

from __future__ import annotations

import base64
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlencode, urlsplit

import httpx

from imgctl.auth import IDENTITY_TOKEN_USER, Credential
from imgctl.errors import RegistryError, TransportError, Unauthorized
from imgctl.registry.bodies import json_answer, read_capped
from imgctl.registry.endpoints import Endpoint, checked_url
from imgctl.registry.transport import is_loopback, reason

if TYPE_CHECKING:
    from imgctl.registry.engine import Engine

MAX_TOKEN_SIZE = 1024 * 1024
MAX_TOKEN_LIFETIME = 86400.0  # seconds: a longer expires_in is capped
MIN_TOKEN_LIFETIME = 60.0  # seconds; also the default when a token answer has no expires_in
TOKEN_MARGIN = 5.0  # renew a token this long before it expires

Credentials = Callable[[str], "Credential | None"]  # host -> (user, secret) or None

_TOKEN_RE = re.compile(r"[\x21-\x7e][\x20-\x7e]{0,65535}")  # printable ASCII: what a header value may hold
_CHALLENGE_RE = re.compile(r'([A-Za-z0-9_\-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {m.group(1).lower(): (m.group(2) if m.group(2) is not None else m.group(3)) for m in _CHALLENGE_RE.finditer(rest)}
    return scheme.lower(), params


def _basic(creds: Credential) -> str:
    return "Basic " + base64.b64encode(f"{creds[0]}:{creds[1]}".encode()).decode()


class Tokens:
    """The credentials, tokens and Basic-auth hosts of one run, per host."""

    def __init__(self, source: Credentials | None, insecure: Callable[[str], bool], log: Callable[[str], None]) -> None:
        self._source = source
        self._insecure = insecure
        self._log = log
        self._creds: dict[str, Credential | None] = {}
        self._tokens: dict[tuple[str, str], tuple[str, float]] = {}  # (host, scope) -> (token, expiry)
        self._basic: set[str] = set()
        self._lock = threading.Lock()

    def credentials(self, host: str) -> Credential | None:
        """Credentials for ``host`` only (cached for this run; a helper program may be asked once)."""
        with self._lock:
            if host in self._creds:
                return self._creds[host]
        if self._source is not None:
            found = self._source(host)
        else:
            from imgctl import auth

            found = auth.lookup(host)
        with self._lock:
            self._creds[host] = found
        return found

    def header(self, host: str, scope: str) -> dict[str, str]:
        """The Authorization header a request to ``host`` for ``scope`` carries now (maybe none)."""
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
            creds = self.credentials(host)
            if creds and creds[0] != IDENTITY_TOKEN_USER:
                return {"Authorization": _basic(creds)}
        return {}

    def answer(self, engine: "Engine", host: str, scope: str, challenge_header: str, digest: str | None = None) -> bool:
        """Answer a 401 challenge from ``host``; True when a retry is worth it.  ``digest``: the
        blob the request was for (a retry line names it)."""
        scheme, params = parse_challenge(challenge_header)
        if scheme == "basic":
            creds = self.credentials(host)
            if creds is None or creds[0] == IDENTITY_TOKEN_USER:
                return False
            with self._lock:
                already = host in self._basic
                self._basic.add(host)
            return not already
        if scheme != "bearer" or "realm" not in params:
            return False
        realm = checked_url(params["realm"], f"the token realm of registry {host}")
        parts = urlsplit(realm)
        scopes = sorted(s for s in {scope, params.get("scope") or ""} if s)
        creds = self.credentials(host)
        if creds and parts.scheme == "http" and not (is_loopback(parts.netloc) or self._insecure(parts.netloc)):
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
            method, url, content = "POST", realm, urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            query = [("service", params["service"])] if params.get("service") else []
            query += [("scope", s) for s in scopes]
            method, url, content = "GET", realm + ("&" if "?" in realm else "?") + urlencode(query) if query else realm, None
            if creds:
                headers["Authorization"] = _basic(creds)
        ep = Endpoint(f"{parts.scheme}://{parts.netloc}", parts.netloc, token=True)
        status, body = self._token_answer(engine, ep, method, url, headers, content, digest)
        if status in (401, 403):
            raise Unauthorized(
                f"authentication to {host} failed: unauthorized: incorrect username or password "
                f"(token server {parts.netloc} answered {status})",
                status=status,
            )
        if status != 200:
            raise RegistryError(f"token server {parts.netloc} answered HTTP {status}", status=status)
        doc = json_answer(body, f"the answer of token server {parts.netloc}")
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

    @staticmethod
    def _token_answer(
        engine: "Engine", ep: Endpoint, method: str, url: str, headers: dict[str, str], content: bytes | None,
        digest: str | None,
    ) -> tuple[int, bytes]:
        """(status, body) of the token service's answer; it is part of the registry, so its broken
        streams, timeouts and transient statuses are retried with the registry's policy."""
        what = f"token from {ep.host}"
        attempt = 0
        while True:
            try:
                with engine.send(method, ep, url, headers=headers, content=content, retry=False, redirects=False) as resp:
                    body = read_capped(resp, MAX_TOKEN_SIZE, what="token answer")
            except TransportError as e:
                cause = e.__cause__ or e
                error = TransportError(f"cannot get a token from {ep.host}: {reason(cause)}")
                error.__cause__ = e
                if isinstance(cause, httpx.ConnectError):  # refused, no such host, TLS: not transient
                    raise error from e
                status, wait = None, None
            else:
                status, error = resp.status_code, None
                wait = engine.policy.status_wait(resp)
                if wait is False:
                    return status, body
            attempt += 1
            if wait is False or not engine.policy.allows(attempt):
                if error is None:
                    return status, body
                raise error
            engine.policy.backoff(what, attempt, wait, error or f"HTTP {status}", digest)
