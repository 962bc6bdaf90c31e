"""A Hub-shaped fixture: Docker Hub's pull path on its real host names, served on 127.0.0.1.

Three HTTPS servers, each with its own certificate from a test CA (with the Subject and
Authority Key Identifiers that Python 3.13's strict verification wants), play

* ``registry-1.docker.io``: the registry API.  Anonymous requests get
  ``401`` + ``WWW-Authenticate: Bearer realm="https://auth.docker.io/token",service="registry.docker.io"``
  (with ``scope="repository:NAME:pull"`` on repository requests).  A token that does not grant
  the repository (missing or private) gets ``401`` with ``error="insufficient_scope"`` and an
  ``UNAUTHORIZED`` body; an unknown or expired token ``error="invalid_token"``.  Manifest
  answers carry ``ratelimit-limit``/``ratelimit-remaining``/``docker-ratelimit-source``; with
  ``rate_limited`` a manifest GET is ``429 TOOMANYREQUESTS`` without ``Retry-After`` (or with
  ``rate_limit_retry_after``).  Blob
  GETs are ``307`` to the CDN with a long signed query, a fresh signature each time.
* ``auth.docker.io``: the token service (``GET /token?service=registry.docker.io&scope=...``),
  answering ``{token, access_token, expires_in, issued_at}``; Basic credentials are checked
  against ``users``.  ``token_faults`` (``"503"``, ``"500"``, ``"hang"``) are used up one per request.
* ``production.cloudflare.docker.com``: the CDN.  It serves a blob only for a signature the
  registry issued, honours ``Range: bytes=N-``, and records every ``Authorization`` it is sent
  (there must be none).  ``cdn_faults[digest]`` (``("cut", nbytes)``, ``("status", 503)``) are
  used up one per request for that blob; with ``single_use_urls`` a signature works once (it
  "expired").

imgctl reaches these names through a CONNECT proxy on 127.0.0.1 (``HTTPS_PROXY``, as behind a
corporate proxy) and trusts the CA through ``SSL_CERT_FILE``; neither /etc/hosts nor imgctl is
changed.  Every request is recorded in ``requests`` as :class:`Rec`::

    with Hub(tmp_path) as hub:
        hub.add("library/ubuntu", "18.04", index)
        hub.environ(monkeypatch)
        run("pull", "ubuntu:18.04")
"""

from __future__ import annotations

import datetime as dt
import json
import re
import secrets
import select
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from .pki import CA
from .server import LoopbackServer, basic_user

__all__ = ["Hub", "Rec", "ConnectProxy", "REGISTRY", "AUTH", "CDN", "RATE_LIMIT_TEXT"]

REGISTRY = "registry-1.docker.io"
AUTH = "auth.docker.io"
CDN = "production.cloudflare.docker.com"
SERVICE = "registry.docker.io"
RATE_LIMIT_TEXT = (
    "You have reached your unauthenticated pull rate limit. https://www.docker.com/increase-rate-limit"
)


# -- a CONNECT proxy that knows where the names live ---------------------------------------------
class ConnectProxy(LoopbackServer):
    """``CONNECT name:443`` to the loopback port ``routes[name]``; anything else is refused (502)."""

    stream = True

    def __init__(self, routes: dict[str, int]) -> None:
        self.routes = dict(routes)
        self.connects: list[str] = []  # the CONNECT targets, in order
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        super().__init__()
        self.start()

    def handle(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head and len(head) < 16384:
            chunk = client.recv(4096)
            if not chunk:
                return
            head += chunk
        line = head.split(b"\r\n", 1)[0].decode("latin-1")
        m = re.fullmatch(r"CONNECT ([A-Za-z0-9.\-]+):(\d+) HTTP/1\.[01]", line)
        port = self.routes.get(m.group(1)) if m and m.group(2) == "443" else None
        with self._lock:
            self.connects.append(line.split(" ")[1] if " " in line else line)
        if port is None:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        upstream = socket.create_connection(("127.0.0.1", port))
        with self._lock:
            self._open |= {client, upstream}
        try:
            client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
            pair = {client: upstream, upstream: client}
            while True:
                ready, _, _ = select.select(list(pair), [], [], 0.5)
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    pair[s].sendall(data)
        except OSError:
            return
        finally:
            with self._lock:
                self._open -= {client, upstream}
            upstream.close()

    def stop(self) -> None:
        super().stop()
        with self._lock:
            for s in list(self._open):
                try:
                    s.close()
                except OSError:
                    pass


# -- Hub ----------------------------------------------------------------------------------------
@dataclass
class Rec:
    host: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-cased names
    status: int = 0


@dataclass
class _Repo:
    tags: dict[str, str] = field(default_factory=dict)  # tag -> digest
    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # digest -> (bytes, media type)
    private: bool = False


class Hub:
    def __init__(self, directory: Path, *, users: dict[str, str] | None = None, expires_in: int | None = 300) -> None:
        self.dir = Path(directory)
        self.users = dict(users or {})  # username -> password (may also pull private repositories)
        self.expires_in = expires_in
        self.repos: dict[str, _Repo] = {}
        self.blobs: dict[str, bytes] = {}
        self.requests: list[Rec] = []
        self.rate_limited = False
        self.rate_limit_retry_after: str | None = None
        self.remaining = 100
        self.token_faults: list[str] = []
        self.cdn_faults: dict[str, list[tuple]] = {}
        self.single_use_urls = False
        self.hang_seconds = 5.0
        self._tokens: dict[str, tuple[set[str], float, str | None]] = {}  # token -> (scopes, expiry, user)
        self._signatures: dict[str, int] = {}  # issued CDN signature -> times used
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.ca = CA(self.dir / "ca", "imgctl hub test CA")
        self._servers: list[LoopbackServer] = []
        ports = {}
        for host, handle in ((REGISTRY, self._registry), (AUTH, self._auth), (CDN, self._cdn)):
            ports[host] = self._serve(host, handle)
        self.proxy = ConnectProxy(ports)

    # -- content ------------------------------------------------------------------------------
    def add(self, path: str, tag: str | None, obj, *, private: bool = False) -> None:
        """Store an images.Image or images.Index (with every child and blob) under ``path:tag``."""
        with self._lock:
            repo = self.repos.setdefault(path, _Repo())
            repo.private = repo.private or private
            stack = [obj]
            while stack:
                o = stack.pop()
                repo.manifests[o.manifest_digest] = (o.manifest_bytes, o.manifest_media_type)
                stack.extend(getattr(o, "manifests", []))
                for digest, data in o.blobs() if not hasattr(o, "manifests") else []:
                    self.blobs[digest] = data
            if tag:
                repo.tags[tag] = obj.manifest_digest

    # -- environment --------------------------------------------------------------------------
    def environ(self, monkeypatch) -> None:
        """Point imgctl (and anything else in this process) at the fixture: proxy and CA."""
        monkeypatch.setenv("HTTPS_PROXY", self.proxy.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(self.ca.path))

    def of(self, host: str, kind: str | None = None) -> list[Rec]:
        """Recorded requests to ``host`` (optionally only ``/manifests/``, ``/blobs/`` ... paths)."""
        with self._lock:
            return [r for r in self.requests if r.host == host and (kind is None or kind in r.path)]

    def revoke_tokens(self) -> None:
        """Every token issued so far stops working (``error="invalid_token"``), as after expiry."""
        with self._lock:
            self._tokens.clear()

    def token_scopes(self) -> list[list[str]]:
        return [r.query.get("scope", []) for r in self.of(AUTH)]

    # -- servers ------------------------------------------------------------------------------
    def _serve(self, host: str, handle) -> int:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*self.ca.issue(host, server=True, hosts=(host,)))

        def record(h: BaseHTTPRequestHandler, method: str) -> None:
            url = urlsplit(h.path)
            rec = Rec(host, h.command, url.path, parse_qs(url.query), {k.lower(): v for k, v in h.headers.items()})
            with self._lock:
                self.requests.append(rec)
            handle(h, rec)

        server = LoopbackServer(tls=ctx, handle=record).start()
        self._servers.append(server)
        return server.port

    def stop(self) -> None:
        self._stopping.set()
        self.proxy.stop()
        for server in self._servers:
            server.stop()

    def __enter__(self) -> "Hub":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- answers ------------------------------------------------------------------------------
    @staticmethod
    def _send(h: BaseHTTPRequestHandler, rec: Rec, status: int, body: bytes = b"",
              headers: dict[str, str] | None = None) -> None:
        rec.status = status
        h.send_response(status)
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _errors(self, h, rec, status: int, code: str, message: str, headers=None, detail=None) -> None:
        err = {"code": code, "message": message}
        if detail is not None:
            err["detail"] = detail
        body = json.dumps({"errors": [err]}).encode()
        self._send(h, rec, status, body, {"Content-Type": "application/json", **(headers or {})})

    def _challenge(self, scope: str | None, error: str | None = None) -> dict[str, str]:
        value = f'Bearer realm="https://{AUTH}/token",service="{SERVICE}"'
        if scope:
            value += f',scope="{scope}"'
        if error:
            value += f',error="{error}"'
        return {"Www-Authenticate": value}

    def _registry(self, h: BaseHTTPRequestHandler, rec: Rec) -> None:
        auth = rec.headers.get("authorization", "")
        token = auth[7:] if auth.startswith("Bearer ") else None
        with self._lock:
            grant = self._tokens.get(token) if token else None
        valid = grant is not None and grant[1] > time.monotonic()
        if rec.path == "/v2/":
            if not valid:
                return self._errors(h, rec, 401, "UNAUTHORIZED", "authentication required", self._challenge(None))
            return self._send(h, rec, 200, b"{}", {"Content-Type": "application/json"})
        m = re.fullmatch(r"/v2/(.+)/(manifests|blobs|tags)/(.+)", rec.path)
        if not m:
            return self._errors(h, rec, 404, "NOT_FOUND", "not found")
        name, kind, ref = m.groups()
        scope = f"repository:{name}:pull"
        if not valid:
            error = "invalid_token" if token else None
            return self._errors(h, rec, 401, "UNAUTHORIZED", "authentication required", self._challenge(scope, error))
        if scope not in grant[0]:
            detail = [{"Type": "repository", "Class": "", "Name": name, "Action": "pull"}]
            return self._errors(h, rec, 401, "UNAUTHORIZED", "authentication required",
                                self._challenge(scope, "insufficient_scope"), detail)
        repo = self.repos[name]
        if kind == "tags":
            body = json.dumps({"name": name, "tags": sorted(repo.tags)}).encode()
            return self._send(h, rec, 200, body, {"Content-Type": "application/json"})
        if kind == "manifests":
            return self._manifest(h, rec, repo, ref, grant[2])
        data = self.blobs.get(ref)
        if data is None:
            return self._errors(h, rec, 404, "BLOB_UNKNOWN", "blob unknown to registry", detail=ref)
        if h.command == "HEAD":
            return self._send(h, rec, 200, data, {"Docker-Content-Digest": ref, "Content-Type": "application/octet-stream"})
        hexdigest = ref.split(":", 1)[1]
        signature = f"{int(time.time()) + 1200}-{secrets.token_urlsafe(96)}"
        with self._lock:
            self._signatures[signature] = 0
        location = (
            f"https://{CDN}/registry-v2/docker/registry/v2/blobs/sha256/{hexdigest[:2]}/{hexdigest}/data"
            f"?verify={signature}"
        )
        self._send(h, rec, 307, b"", {"Location": location, "Docker-Distribution-Api-Version": "registry/2.0"})

    def _manifest(self, h, rec: Rec, repo: _Repo, ref: str, user: str | None) -> None:
        if h.command == "GET" and not self.rate_limited:
            with self._lock:
                self.remaining -= 1
        limits = {
            "ratelimit-limit": "100;w=21600" if user is None else "200;w=21600",
            "ratelimit-remaining": f"{self.remaining};w=21600",
            "docker-ratelimit-source": "192.0.2.7" if user is None else f"{user}-account-id",
        }
        if h.command == "GET" and self.rate_limited:
            limits["ratelimit-remaining"] = "0;w=21600"
            if self.rate_limit_retry_after is not None:
                limits["Retry-After"] = self.rate_limit_retry_after
            return self._errors(h, rec, 429, "TOOMANYREQUESTS", RATE_LIMIT_TEXT, limits)
        digest = repo.tags.get(ref, ref)
        found = repo.manifests.get(digest)
        if found is None:
            return self._errors(h, rec, 404, "MANIFEST_UNKNOWN", "manifest unknown", limits, detail=f"unknown tag={ref}")
        data, media_type = found
        self._send(h, rec, 200, data, {"Content-Type": media_type, "Docker-Content-Digest": digest, **limits})

    def _auth(self, h: BaseHTTPRequestHandler, rec: Rec) -> None:
        with self._lock:
            fault = self.token_faults.pop(0) if self.token_faults else None
        if fault == "hang":
            self._stopping.wait(self.hang_seconds)
            h.close_connection = True
            return
        if fault is not None:
            return self._send(h, rec, int(fault), b"<html>upstream connect error</html>", {"Content-Type": "text/html"})
        if rec.path != "/token" or rec.query.get("service") != [SERVICE]:
            return self._send(h, rec, 400, b'{"details":"invalid request"}', {"Content-Type": "application/json"})
        user = None
        header = rec.headers.get("authorization")
        if header:
            user = basic_user(header, self.users)
            if user is None:
                return self._send(h, rec, 401, b'{"details":"incorrect username or password"}',
                                  {"Content-Type": "application/json"})
        granted = set()
        for scope in rec.query.get("scope", []):
            _, _, rest = scope.partition(":")
            name = rest.rpartition(":")[0]
            repo = self.repos.get(name)
            if repo is not None and (not repo.private or user is not None):
                granted.add(f"repository:{name}:pull")
        token = secrets.token_urlsafe(48)
        lifetime = self.expires_in if self.expires_in is not None else 60
        with self._lock:
            self._tokens[token] = (granted, time.monotonic() + lifetime, user)
        doc = {"token": token, "access_token": token}
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        doc["issued_at"] = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self._send(h, rec, 200, json.dumps(doc).encode(), {"Content-Type": "application/json"})

    def _cdn(self, h: BaseHTTPRequestHandler, rec: Rec) -> None:
        m = re.fullmatch(r"/registry-v2/docker/registry/v2/blobs/sha256/[0-9a-f]{2}/([0-9a-f]{64})/data", rec.path)
        signature = (rec.query.get("verify") or [""])[0]
        digest = f"sha256:{m.group(1)}" if m else ""
        with self._lock:
            uses = self._signatures.get(signature)
            if uses is not None:
                self._signatures[signature] = uses + 1
            faults = self.cdn_faults.get(digest)
            fault = faults.pop(0) if faults else None
        if uses is None or (self.single_use_urls and uses > 0):
            return self._send(h, rec, 403, b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>",
                              {"Content-Type": "application/xml"})
        data = self.blobs.get(digest)
        if data is None:
            return self._send(h, rec, 404, b"not found")
        if fault is not None and fault[0] == "status":
            return self._send(h, rec, fault[1], b"<html>error</html>", {"Content-Type": "text/html"})
        start = 0
        rng = re.fullmatch(r"bytes=(\d+)-", rec.headers.get("range", ""))
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        status = 200
        if rng and int(rng.group(1)) < len(data):
            start, status = int(rng.group(1)), 206
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
        body = data[start:]
        if fault is not None and fault[0] == "cut":
            rec.status = status
            h.send_response(status)
            for k, v in {**headers, "Content-Length": str(len(body))}.items():
                h.send_header(k, v)
            h.end_headers()
            h.wfile.write(body[: fault[1]])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)  # a cut: the peer sees the stream end early
            return
        self._send(h, rec, status, body, headers)
