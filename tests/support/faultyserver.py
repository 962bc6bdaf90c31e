"""Small scripted HTTP servers that misbehave on purpose, for mirror and credential tests.

These are NOT registries: each one either proxies a real registry (and breaks what it
relays in one specific way) or answers every request the same scripted way.  They listen
on loopback only, record every request they get, and are stopped by the test that started
them (use them as context managers or call ``stop()``).

Modes::

    FaultyServer("error500")                       # every request: HTTP 500 with a registry error body
    FaultyServer("challenge")                      # every request: 401 with a Basic challenge
    FaultyServer("hang")                           # accepts, reads the request, never answers
    FaultyServer("pass", upstream=reg.url)         # an honest relay (records what it served)
    FaultyServer("truncate", upstream=reg.url)     # relays blobs but cuts every body in half
    FaultyServer("corrupt", upstream=reg.url)      # relays manifests and blobs with every byte flipped
    FaultyServer("norange", upstream=reg.url)      # relays, ignoring Range (always a full 200)
    FaultyServer("files", root=DIR)                # serves files under DIR (a blob store behind redirects)

``prefix="/hub"`` makes the server answer under that path only (``/hub/v2/...``), like a
mirror URL with a path.  ``host="127.0.0.2"`` binds another loopback address.
``tls=(cert, key)`` serves HTTPS; with ``client_ca=`` it demands a client certificate.
``dead_url()`` is a URL where nothing listens.
"""

from __future__ import annotations

import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx

from .registry import free_port
from .server import LoopbackServer

MODES = ("error500", "challenge", "hang", "pass", "truncate", "corrupt", "norange", "files")
_RELAYED_REQUEST_HEADERS = ("accept", "range")
_RELAYED_RESPONSE_HEADERS = ("content-type", "docker-content-digest", "content-range", "link", "etag")


def dead_url(host: str = "127.0.0.1") -> str:
    """An http URL on a port where nothing listens (connection refused)."""
    return f"http://{host}:{free_port(host)}"


class FaultyServer(LoopbackServer):
    methods = ("GET", "HEAD", "POST")

    def __init__(
        self,
        mode: str,
        *,
        upstream: str | None = None,
        root: str | Path | None = None,
        prefix: str = "",
        host: str = "127.0.0.1",
        tls: tuple[str | Path, str | Path] | None = None,
        client_ca: str | Path | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}")
        if mode in ("pass", "truncate", "corrupt", "norange") and not upstream:
            raise ValueError(f"mode {mode!r} needs upstream=")
        self.mode = mode
        self.upstream = upstream.rstrip("/") if upstream else None
        self.root = Path(root) if root else None
        self.prefix = prefix.rstrip("/")
        self.requests: list[dict] = []  # {"method", "path", "headers" (lower-case keys), "status", "sent"}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._client = httpx.Client(trust_env=False, timeout=30.0) if self.upstream else None
        ctx = None
        if tls is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(str(tls[0]), str(tls[1]))
            if client_ca is not None:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=str(client_ca))
        super().__init__(host=host, tls=ctx)
        self.start()

    @property
    def url(self) -> str:
        return super().url + self.prefix

    # -- lifecycle ------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        super().stop()
        if self._client is not None:
            self._client.close()

    # -- what it saw -------------------------------------------------------------------------
    def seen(self, part: str = "") -> list[dict]:
        with self._lock:
            return [r for r in self.requests if part in r["path"]]

    def authorization_headers(self) -> list[str]:
        with self._lock:
            return [r["headers"]["authorization"] for r in self.requests if "authorization" in r["headers"]]

    # -- behaviour ---------------------------------------------------------------------------
    def _record(self, h: BaseHTTPRequestHandler, method: str) -> dict:
        rec = {"method": method, "path": h.path, "headers": {k.lower(): v for k, v in h.headers.items()}, "status": None, "sent": 0}
        with self._lock:
            self.requests.append(rec)
        return rec

    def _send(self, h, rec, status: int, headers: dict, body: bytes, *, head: bool = False, cut: bool = False) -> None:
        rec["status"] = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(len(body)))
        if cut:
            h.send_header("Connection", "close")
        h.end_headers()
        if head:
            return
        data = body[: len(body) // 2] if cut else body
        h.wfile.write(data)
        h.wfile.flush()
        rec["sent"] = len(data)
        if cut:
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        rec = self._record(h, method)
        length = int(h.headers.get("Content-Length") or 0)
        if length:
            h.rfile.read(length)
        mode = self.mode
        if mode == "hang":
            self._stop.wait(60)
            h.close_connection = True
            return
        if mode == "error500":
            body = b'{"errors":[{"code":"UNKNOWN","message":"scripted failure"}]}'
            return self._send(h, rec, 500, {"Content-Type": "application/json"}, body, head=method == "HEAD")
        if mode == "challenge":
            body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
            headers = {"Content-Type": "application/json", "WWW-Authenticate": 'Basic realm="faulty"'}
            return self._send(h, rec, 401, headers, body, head=method == "HEAD")
        path = h.path
        if self.prefix:
            if not path.startswith(self.prefix + "/"):
                return self._send(h, rec, 404, {}, b"not under the prefix\n")
            path = path[len(self.prefix):]
        if mode == "files":
            target = (self.root / path.split("?", 1)[0].lstrip("/")).resolve()
            if self.root.resolve() not in target.parents or not target.is_file():
                return self._send(h, rec, 404, {}, b"no such file\n")
            return self._send(h, rec, 200, {"Content-Type": "application/octet-stream"}, target.read_bytes(), head=method == "HEAD")
        # relaying modes
        fwd = {k: v for k, v in h.headers.items() if k.lower() in _RELAYED_REQUEST_HEADERS}
        if mode == "norange":
            fwd.pop("Range", None)
            fwd.pop("range", None)
        try:
            up = self._client.request(method, self.upstream + path, headers=fwd)
        except httpx.HTTPError as e:
            return self._send(h, rec, 502, {}, f"upstream: {e}\n".encode())
        headers = {k: v for k, v in up.headers.items() if k.lower() in _RELAYED_RESPONSE_HEADERS}
        body = up.content
        is_content = "/blobs/" in path or "/manifests/" in path
        if mode == "corrupt" and method == "GET" and is_content and up.status_code in (200, 206):
            body = bytes(b ^ 0xFF for b in body)
        cut = mode == "truncate" and method == "GET" and "/blobs/" in path and up.status_code in (200, 206) and len(body) > 1
        self._send(h, rec, up.status_code, headers, body, head=method == "HEAD", cut=cut)
