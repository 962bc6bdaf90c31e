"""A registry scripted to misbehave: the hostile half of the reliability tests (issue 6).

:class:`HostileRegistry` is a small threaded HTTP/1.1 server on 127.0.0.1 that imitates a
registry (v2 API): ``GET /v2/`` answers 200, ``GET|HEAD /v2/<name>/manifests/<tag|digest>``
answers the manifest with ``Content-Type`` and ``Docker-Content-Digest``, and
``GET|HEAD /v2/<name>/blobs/<digest>`` answers a blob, honouring ``Range: bytes=N-`` with
``206`` and ``Content-Range``.  With every switch off it is an honest registry; each switch
makes it misbehave in exactly one way.

Why not a real registry: a real one (distribution, zot, Harbor) verifies what it stores and
speaks HTTP correctly, so it cannot serve bytes that do not match their digest, lie in
``Content-Length`` or ``Content-Range``, cut a body at a chosen byte, answer a ``Range``
request with the whole blob, stream an endless body, send a 200 MiB error document or run a
token server that answers garbage.  Those are the answers a pull must survive.  Huge and
endless bodies are produced by generators, never built in memory, so the server itself stays
small whatever it offers.

Usage::

    with HostileRegistry(img, blob_bytes={layer.digest: wrong}) as reg:
        run("pull", reg.name)            # 127.0.0.1:PORT/hostile/app:latest

Switches (keyword arguments, see :class:`Script`)::

    manifest_type="..."            Content-Type of every manifest answer
    digest_header="sha256:..."     Docker-Content-Digest of every manifest answer
    manifest_body=b"..."           these bytes for every manifest request (tag or digest)
    manifest_stream=callable       () -> iterator of bytes: the manifest body, chunked, no length
    blob_bytes={digest: bytes}     these bytes (with their honest length) instead of the blob
    any_blob=b"..."                served under any blob name the server does not know
    blob_stream={digest: callable} () -> iterator of bytes: the blob body, chunked, no length
    cut_digest=..., cut_at=N       GETs of that blob announce their full length but the
    cut_times=K                    connection closes after byte N of the blob (at once when the
                                   answer starts at or after N); the first K GETs, or all (None)
    range_mode="honour"            206 + Content-Range for ``Range: bytes=N-`` (default)
               "ignore"            200 with the whole blob instead (never cut)
               "shift"             206 whose Content-Range and bytes start ``range_shift``
                                   bytes after N (never cut)
    error_on=("manifest",)         these kinds of request ("ping", "manifest", "blob") answer
    error_status=404               ``error_status`` with a JSON-ish body of ``error_size`` bytes
    error_size=200 << 20           (streamed)
    manifest_encoding="gzip"       a Content-Encoding header on every manifest answer, or
    blob_encoding="gzip"           on the blob answers of ``blob_bytes`` and ``blob_stream``
                                   (bodies are served as given: pass compressed bytes or
                                   streams, e.g. ``bomb()``)
    token="notjson"                every /v2/ request needs ``Bearer`` auth; the token endpoint
                                   (``/token`` on this server) answers: "ok" (a real token),
                                   "notjson", "notoken", "crlf" (a token with a line break),
                                   "endless" (a never-ending JSON string)

``requests`` records every request (method, path, range, authorization, accept_encoding,
status, sent bytes).  ``endless(prefix)``, ``filler(prefix, size, suffix)`` and
``bomb(encoding, total)`` make streamed bodies; ``run_measured`` runs ``imgctl`` as a child
and reports its peak RSS and wall time.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import unquote

from .server import LoopbackServer

__all__ = ["HostileRegistry", "Script", "endless", "filler", "bomb", "Measured", "run_measured"]

CHUNK = 64 * 1024
_PATH_RE = re.compile(r"^/v2/(?P<name>.+?)/(?P<kind>manifests|blobs)/(?P<ref>.+)$")
_RANGE_RE = re.compile(r"^\s*bytes=(\d+)-\s*$")


def endless(prefix: bytes, fill: bytes = b"a") -> Callable[[], Iterator[bytes]]:
    """A body factory: ``prefix`` then ``fill`` repeated forever (64 KiB at a time)."""

    def gen() -> Iterator[bytes]:
        yield prefix
        block = (fill * (CHUNK // len(fill) + 1))[:CHUNK]
        while True:
            yield block

    return gen


def bomb(encoding: str, total: int, prefix: bytes = b"", fill: bytes = b"\0") -> Callable[[], Iterator[bytes]]:
    """A body factory: ``prefix`` + ``fill``... (``total`` bytes once decoded) sent compressed with
    ``encoding`` ("gzip" or "zstd"), produced as it is sent.  Zeros compress about 1000:1 with
    gzip and about 30000:1 with zstd: a few KiB on the wire are hundreds of MiB once decoded."""
    import zlib

    import zstandard

    mib = 1024 * 1024
    block = (fill * (mib // len(fill) + 1))[:mib]

    def decoded() -> Iterator[bytes]:
        yield prefix
        left = total - len(prefix)
        while left > 0:
            yield block[: min(left, mib)]
            left -= mib

    def gen() -> Iterator[bytes]:
        if encoding == "gzip":
            z = zlib.compressobj(9, zlib.DEFLATED, 31)
        elif encoding == "zstd":
            z = zstandard.ZstdCompressor(level=3).compressobj()
        else:
            raise ValueError(f"unknown encoding {encoding!r}")
        out = b""
        for piece in decoded():
            out += z.compress(piece)
            if len(out) >= CHUNK:
                yield out
                out = b""
        yield out + z.flush()

    return gen


def filler(prefix: bytes, size: int, suffix: bytes, fill: bytes = b"x") -> Callable[[], Iterator[bytes]]:
    """A body factory: exactly ``size`` bytes, ``prefix`` + ``fill``... + ``suffix`` (streamed)."""
    middle = size - len(prefix) - len(suffix)
    if middle < 0:
        raise ValueError("size is smaller than prefix + suffix")

    def gen() -> Iterator[bytes]:
        yield prefix
        block = (fill * (CHUNK // len(fill) + 1))[:CHUNK]
        left = middle
        while left > 0:
            n = min(left, CHUNK)
            yield block[:n]
            left -= n
        yield suffix

    return gen


@dataclass
class Script:
    """How the server misbehaves.  The defaults are an honest registry."""

    manifest_type: str | None = None
    digest_header: str | None = None
    manifest_body: bytes | None = None
    manifest_stream: Callable[[], Iterator[bytes]] | None = None
    blob_bytes: dict[str, bytes] = field(default_factory=dict)
    any_blob: bytes | None = None
    blob_stream: dict[str, Callable[[], Iterator[bytes]]] = field(default_factory=dict)
    cut_digest: str | None = None
    cut_at: int = 0
    cut_times: int | None = None
    range_mode: str = "honour"
    range_shift: int = 7
    error_on: tuple[str, ...] = ()
    error_status: int = 500
    error_size: int = 0
    token: str | None = None
    manifest_encoding: str | None = None
    blob_encoding: str | None = None

    def __post_init__(self) -> None:
        if self.range_mode not in ("honour", "ignore", "shift"):
            raise ValueError(f"unknown range_mode {self.range_mode!r}")
        if self.token not in (None, "ok", "notjson", "notoken", "crlf", "endless"):
            raise ValueError(f"unknown token mode {self.token!r}")
        unknown = set(self.error_on) - {"ping", "manifest", "blob"}
        if unknown:
            raise ValueError(f"unknown error_on kinds {sorted(unknown)}")


GOOD_TOKEN = "hostile-good-token"


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HostileRegistry(LoopbackServer):
    """Serves one image (an ``images.Image`` or ``images.Index``, or nothing) as ``repo:tag``."""

    request_timeout = 30  # a client that stops reading cannot pin a thread forever

    def __init__(self, image=None, *, repo: str = "hostile/app", tag: str = "latest", **switches) -> None:
        names = {f.name for f in fields(Script)}
        unknown = set(switches) - names
        if unknown:
            raise TypeError(f"unknown switches {sorted(unknown)}")
        self.script = Script(**switches)
        self.repo = repo
        self.tag = tag
        self.manifests: dict[str, tuple[bytes, str]] = {}  # tag or digest -> (bytes, media type)
        self.blobs: dict[str, bytes] = {}
        self.requests: list[dict] = []
        self._cuts = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        if image is not None:
            self.add_image(image, tag=tag)
        super().__init__()
        self.start()

    # -- content -------------------------------------------------------------------------
    def add_image(self, obj, *, tag: str | None = None) -> None:
        """An ``Image`` or ``Index`` (children by digest, blobs), optionally also under ``tag``."""
        self.add_manifest(obj.manifest_bytes, obj.manifest_media_type, tag=tag)
        for child in getattr(obj, "manifests", ()) or ():
            self.add_image(child)
        if hasattr(obj, "config_bytes"):
            for digest, data in obj.blobs():
                self.blobs[digest] = data

    def add_manifest(self, data: bytes, media_type: str, *, tag: str | None = None) -> str:
        digest = _sha256(data)
        self.manifests[digest] = (data, media_type)
        if tag is not None:
            self.manifests[tag] = (data, media_type)
        return digest

    def add_blob(self, data: bytes, digest: str | None = None) -> str:
        digest = digest or _sha256(data)
        self.blobs[digest] = data
        return digest

    @property
    def name(self) -> str:
        """``127.0.0.1:PORT/REPO:TAG``, what ``imgctl pull`` is given."""
        return f"{self.host}/{self.repo}:{self.tag}"

    def by_digest(self, digest: str) -> str:
        return f"{self.host}/{self.repo}@{digest}"

    def seen(self, part: str = "") -> list[dict]:
        with self._lock:
            return [dict(r) for r in self.requests if part in r["path"]]

    # -- lifecycle -------------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()
        super().stop()

    # -- HTTP ------------------------------------------------------------------------------
    def _send(
        self,
        h: BaseHTTPRequestHandler,
        rec: dict,
        status: int,
        headers: dict[str, str],
        body: bytes | Callable[[], Iterable[bytes]],
        *,
        head: bool = False,
        length: int | None = None,
        stop_after: int | None = None,
    ) -> None:
        """Answer; ``body`` is bytes (Content-Length) or a factory of chunks (chunked unless ``length``).

        ``stop_after``: send only that many body bytes, then close the connection (a cut body).
        """
        rec["status"] = status
        chunked = callable(body) and length is None
        if isinstance(body, bytes) and length is None:
            length = len(body)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(length))
        if stop_after is not None:
            h.send_header("Connection", "close")
        h.end_headers()
        if head:
            h.wfile.flush()
            return
        chunks: Iterable[bytes] = (body,) if isinstance(body, bytes) else body()
        sent = 0
        try:
            for chunk in chunks:
                if self._stop.is_set():
                    break
                if stop_after is not None:
                    chunk = chunk[: max(0, stop_after - sent)]
                if chunk:
                    if chunked:
                        h.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                    else:
                        h.wfile.write(chunk)
                    sent += len(chunk)
                    rec["sent"] = sent
                if stop_after is not None and sent >= stop_after:
                    break
            else:
                if chunked:
                    h.wfile.write(b"0\r\n\r\n")
            h.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, socket.timeout, OSError):
            h.close_connection = True
            return
        if stop_after is not None or self._stop.is_set():
            h.close_connection = True
            try:
                h.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _error(self, h, rec, status: int, code: str, message: str, *, head: bool = False, headers=None) -> None:
        body = json.dumps({"errors": [{"code": code, "message": message}]}).encode()
        self._send(h, rec, status, {"Content-Type": "application/json", **(headers or {})}, body, head=head)

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        rec = {
            "method": method,
            "path": h.path,
            "range": h.headers.get("Range"),
            "authorization": h.headers.get("Authorization"),
            "accept_encoding": h.headers.get("Accept-Encoding"),
            "status": None,
            "sent": 0,
        }
        with self._lock:
            self.requests.append(rec)
        head = method == "HEAD"
        s = self.script
        path = h.path.split("?", 1)[0]

        if path == "/token":
            return self._token(h, rec, head)
        if not path.startswith("/v2/"):
            return self._error(h, rec, 404, "NOT_FOUND", "not a registry path", head=head)
        if s.token is not None and h.headers.get("Authorization") != f"Bearer {GOOD_TOKEN}":
            challenge = f'Bearer realm="{self.url}/token",service="hostile"'
            m = _PATH_RE.match(path)
            if m:
                challenge += f',scope="repository:{m["name"]}:pull"'
            return self._error(
                h, rec, 401, "UNAUTHORIZED", "authentication required",
                head=head, headers={"WWW-Authenticate": challenge},
            )

        if path == "/v2/":
            if "ping" in s.error_on:
                return self._huge_error(h, rec, head)
            return self._send(h, rec, 200, {"Content-Type": "application/json"}, b"{}", head=head)
        m = _PATH_RE.match(path)
        if not m:
            return self._error(h, rec, 404, "NOT_FOUND", "unknown path", head=head)
        name, kind, ref = m["name"], m["kind"], unquote(m["ref"])
        if name != self.repo:
            return self._error(h, rec, 404, "NAME_UNKNOWN", "repository name not known to registry", head=head)
        if kind == "manifests":
            if "manifest" in s.error_on:
                return self._huge_error(h, rec, head)
            return self._manifest(h, rec, ref, head)
        if "blob" in s.error_on:
            return self._huge_error(h, rec, head)
        return self._blob(h, rec, ref, head)

    def _huge_error(self, h, rec, head: bool) -> None:
        s = self.script
        prefix = b'{"errors":[{"code":"UNKNOWN","message":"'
        suffix = b'"}]}'
        size = max(s.error_size, len(prefix) + len(suffix))
        body = filler(prefix, size, suffix)
        self._send(h, rec, s.error_status, {"Content-Type": "application/json"}, body, head=head, length=size)

    def _manifest(self, h, rec, ref: str, head: bool) -> None:
        s = self.script
        encoding = {"Content-Encoding": s.manifest_encoding} if s.manifest_encoding else {}
        if s.manifest_stream is not None:
            media_type = s.manifest_type or "application/vnd.oci.image.manifest.v1+json"
            return self._send(h, rec, 200, {"Content-Type": media_type, **encoding}, s.manifest_stream, head=head)
        if s.manifest_body is not None:
            data = s.manifest_body
            media_type = s.manifest_type or "application/vnd.oci.image.manifest.v1+json"
        elif ref in self.manifests:
            data, media_type = self.manifests[ref]
        else:
            return self._error(h, rec, 404, "MANIFEST_UNKNOWN", f"manifest unknown: {ref}", head=head)
        headers = {
            "Content-Type": s.manifest_type or media_type,
            "Docker-Content-Digest": s.digest_header or _sha256(data),
            **encoding,
        }
        self._send(h, rec, 200, headers, data, head=head)

    def _blob(self, h, rec, ref: str, head: bool) -> None:
        s = self.script
        scripted = ref in s.blob_stream or ref in s.blob_bytes
        encoding = {"Content-Encoding": s.blob_encoding} if s.blob_encoding and scripted else {}
        if ref in s.blob_stream:
            headers = {"Content-Type": "application/octet-stream", **encoding}
            return self._send(h, rec, 200, headers, s.blob_stream[ref], head=head)
        if ref in s.blob_bytes:
            data = s.blob_bytes[ref]
        elif ref in self.blobs:
            data = self.blobs[ref]
        elif s.any_blob is not None:
            data = s.any_blob
        else:
            return self._error(h, rec, 404, "BLOB_UNKNOWN", f"blob unknown: {ref}", head=head)
        size = len(data)
        headers = {"Content-Type": "application/octet-stream", "Docker-Content-Digest": ref, **encoding}
        m = _RANGE_RE.match(h.headers.get("Range") or "")
        start, status = 0, 200
        if m and s.range_mode != "ignore":
            start = int(m.group(1))
            if start >= size and size:
                rec["status"] = 416
                return self._send(h, rec, 416, {"Content-Range": f"bytes */{size}"}, b"", head=head)
            if s.range_mode == "shift":
                start = min(size, start + s.range_shift)
            status = 206
            headers["Content-Range"] = f"bytes {start}-{size - 1}/{size}"
        stop_after = None
        can_cut = not (m and s.range_mode in ("ignore", "shift"))
        if can_cut and not head and ref == s.cut_digest:
            with self._lock:
                if s.cut_times is None or self._cuts < s.cut_times:
                    self._cuts += 1
                    stop_after = max(0, s.cut_at - start)
        self._send(h, rec, status, headers, data[start:], head=head, stop_after=stop_after)

    def _token(self, h, rec, head: bool) -> None:
        mode = self.script.token
        if mode == "endless":
            return self._send(h, rec, 200, {"Content-Type": "application/json"}, endless(b'{"token":"'), head=head)
        body = {
            "ok": json.dumps({"token": GOOD_TOKEN, "expires_in": 300}).encode(),
            "notjson": b"<html><body>Welcome to nginx!</body></html>",
            "notoken": json.dumps({"expires_in": 300, "issued_at": "2024-01-01T00:00:00Z"}).encode(),
            "crlf": json.dumps({"token": GOOD_TOKEN + "\r\nX-Injected: 1"}).encode(),
        }.get(mode or "", b"")
        if not body:
            return self._error(h, rec, 404, "NOT_FOUND", "no token service", head=head)
        self._send(h, rec, 200, {"Content-Type": "application/json"}, body, head=head)


# -- running imgctl as a measured subprocess ----------------------------------------------------
@dataclass
class Measured:
    code: int
    out: str
    err: str
    maxrss_kib: int  # peak resident set size of the child (Linux: KiB)
    seconds: float
    timed_out: bool


# The launcher is a fresh, small Python that starts imgctl and reaps it with wait4.  Measuring a
# direct child of pytest would not work: on Linux, exec() folds the peak RSS of the memory the
# process had before (pytest's own, a few hundred MiB after some tests) into the child's
# ru_maxrss.  The grandchild starts from the launcher's ~10 MiB instead.
_LAUNCHER = """
import os, sys
pid = os.posix_spawn(sys.executable, [sys.executable, "-m", "imgctl", *sys.argv[2:]], os.environ)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def run_measured(
    args: list[str], *, timeout: float, env: dict[str, str] | None = None, cwd: str | Path | None = None
) -> Measured:
    """Run ``python -m imgctl ARGS``; return its status, output, peak RSS and wall time.

    imgctl's peak RSS is its ``os.wait4`` rusage (``ru_maxrss``), taken by a small launcher
    process (see ``_LAUNCHER``).  The wait is bounded: past ``timeout`` seconds the launcher's
    process group (it and imgctl, nothing else) is killed and ``timed_out`` is set.  Output goes
    to temporary files, so a chatty child cannot block on a full pipe.
    """
    import signal
    import tempfile

    repo = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ if env is None else env)
    env["PYTHONPATH"] = repo + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "rusage"
        with open(Path(tmp) / "out", "w+b") as out, open(Path(tmp) / "err", "w+b") as err:
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-c", _LAUNCHER, str(report), *args],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd or repo,
                start_new_session=True,
            )
            try:
                proc.wait(timeout)
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
            seconds = time.monotonic() - start
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read().decode(errors="replace"), err.read().decode(errors="replace")
        if report.exists():
            maxrss, code = (int(x) for x in report.read_text().split())
        else:  # killed before imgctl ended
            maxrss, code = 0, proc.returncode
    return Measured(code=code, out=stdout, err=stderr, maxrss_kib=maxrss, seconds=seconds, timed_out=timed_out)


# -- a server that sends any bytes at any pace (issue 13: deadlines, broken HTTP) ---------------
Answer = bytes | Iterable[bytes | float]  # bytes, or pieces to send with pauses (float seconds)


def http_answer(status: int, body: bytes = b"", headers: dict[str, str] | None = None, *, reason: str = "X") -> bytes:
    """A whole HTTP/1.1 answer with an honest Content-Length (``headers`` may override it)."""
    head = {"Content-Type": "application/json", "Content-Length": str(len(body)), "Connection": "close", **(headers or {})}
    lines = [f"HTTP/1.1 {status} {reason}"] + [f"{k}: {v}" for k, v in head.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def trickle(data: bytes, every: float = 0.05, step: int = 1) -> Iterator[bytes | float]:
    """``data`` ``step`` bytes at a time, ``every`` seconds apart."""
    for i in range(0, len(data), step):
        yield data[i:i + step]
        yield every


def forever(piece: bytes, every: float = 0.05) -> Iterator[bytes | float]:
    """``piece`` again and again, ``every`` seconds apart, until the server stops."""
    while True:
        yield piece
        yield every


class RawServer(LoopbackServer):
    """HTTP on 127.0.0.1 where ``route(method, target, headers)`` returns the raw answer.

    Each connection carries one request (``http_answer`` says ``Connection: close``); the answer's pieces are written as they come (a float
    is a pause) and the connection is closed after it.  With ``route`` returning ``None`` the
    server plays an honest registry ping: ``GET /v2/`` -> 200 ``{}``, anything else -> 404.
    ``requests`` lists (method, target, headers) in order.
    """

    stream = True
    join_requests = True

    def __init__(self, route: Callable[[str, str, dict[str, str]], Answer | None]) -> None:
        self.route = route
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._stop = threading.Event()
        super().__init__()
        self.start()

    def handle(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data and len(data) < 1 << 20:
                piece = conn.recv(65536)
                if not piece or data + piece[:1] == b"\x16":
                    return  # closed, or a TLS handshake (an https probe): plain HTTP only here
                data += piece
            head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
            method, target = head[0].split(" ")[:2]
            headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:])}
            self.requests.append((method, target, headers))
            answer = self.route(method, target, headers)
            if answer is None:
                answer = http_answer(200, b"{}") if target == "/v2/" else http_answer(404, b'{"errors":[]}')
            for piece in (answer,) if isinstance(answer, bytes) else answer:
                if self._stop.is_set():
                    break
                if isinstance(piece, float):
                    self._stop.wait(piece)
                else:
                    conn.sendall(piece)
        except OSError:
            pass
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        super().stop()
