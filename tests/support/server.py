"""The loopback server every scripted test server is built on.

:class:`LoopbackServer` binds a free port on 127.0.0.1 (or any loopback address given as
``host``, IPv6 included), answers each connection in its own daemon thread, serves from a
daemon thread of the test process, and never logs: the tests capture stderr and assert on it,
and clients hanging up mid-answer (an https probe, a cancelled read, a cut on purpose) are
part of the scripts.  ``start()`` / ``stop()`` (also as a context manager); ``stop()`` shuts
the server down, closes its socket and joins the serving thread.

HTTP (the default): every request whose method is in ``methods`` goes to
``handle(h, method)`` with ``h`` the :class:`http.server.BaseHTTPRequestHandler` (HTTP/1.1,
keep-alive); any other method gets http.server's own 501.  ``tls`` (an ``ssl.SSLContext``)
serves https, with the handshake in the connection's thread so one bad client cannot stall
the server.

TCP (``stream = True``): ``handle(conn)`` gets each accepted socket, closed after it returns.
``join_requests = True``: ``stop()`` also waits for the connections' threads.

Subclass and override ``handle``, or pass ``handle=`` for a server built from a callable.
``reply`` / ``reply_json`` send a whole answer with its Content-Length; ``basic_user``
checks Basic credentials.
"""

from __future__ import annotations

import base64
import json
import socket
import socketserver
import ssl
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def reply(h: BaseHTTPRequestHandler, status: int, body: bytes = b"", *, content_type: str = "application/json",
          headers: dict[str, str] | None = None) -> None:
    """Status line, Content-Type, Content-Length, then ``headers``, then the body."""
    h.send_response(status)
    for k, v in {"Content-Type": content_type, "Content-Length": str(len(body)), **(headers or {})}.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


def reply_json(h: BaseHTTPRequestHandler, status: int, doc: object, headers: dict[str, str] | None = None) -> None:
    reply(h, status, json.dumps(doc).encode(), headers=headers)


def basic_user(header: str, users: dict[str, str]) -> str | None:
    """The user an ``Authorization`` value names, when it is Basic with that user's password
    (None when not).  Credentials that do not decode count as user "" with no password."""
    scheme, _, value = header.partition(" ")
    try:
        name, _, password = base64.b64decode(value).decode().partition(":")
    except ValueError:
        name, password = "", None
    return name if scheme.lower() == "basic" and users.get(name) == password else None


class _HTTPHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_HTTPServer"

    def setup(self) -> None:
        self.timeout = self.server.owner.request_timeout
        super().setup()

    def log_message(self, *args) -> None:
        pass

    def _dispatch(self) -> None:
        owner = self.server.owner
        if self.command not in owner.methods:
            self.send_error(501, "Unsupported method (%r)" % self.command)
            return
        owner.handle(self, self.command)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _dispatch


class _StreamHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        self.server.owner.handle(self.request)


class _Quiet:
    """What both server flavours share: daemon request threads, a deep accept queue, no
    traceback printed for a connection that failed, TLS wrapped per accepted connection."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64
    owner: "LoopbackServer"

    def handle_error(self, request, client_address) -> None:
        pass

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.owner.tls is not None:
            sock = self.owner.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr


class _HTTPServer(_Quiet, ThreadingHTTPServer):
    pass


class _HTTPServer6(_HTTPServer):
    address_family = socket.AF_INET6


class _TCPServer(_Quiet, socketserver.ThreadingTCPServer):
    pass


class _TCPServer6(_TCPServer):
    address_family = socket.AF_INET6


class LoopbackServer:
    methods: tuple[str, ...] = ("GET", "HEAD")  # HTTP methods handed to handle()
    request_timeout: float | None = None  # per-connection socket timeout (None: block)
    stream = False  # True: raw TCP, handle(conn) per connection
    join_requests = False  # True: stop() also waits for the connections' threads

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
        handle: Callable | None = None,
        methods: tuple[str, ...] | None = None,
    ) -> None:
        self.bind_host = host
        self.tls = tls
        if handle is not None:
            self.handle = handle
        if methods is not None:
            self.methods = methods
        self._server: socketserver.TCPServer | None = None
        self._thread: threading.Thread | None = None
        self._port: int | None = None

    def handle(self, *args) -> None:
        raise NotImplementedError

    # -- where --------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        assert self._port is not None, "server not started"
        return self._port

    @property
    def host(self) -> str:
        """``HOST:PORT`` (``[::1]:PORT`` for IPv6)."""
        name = f"[{self.bind_host}]" if ":" in self.bind_host else self.bind_host
        return f"{name}:{self.port}"

    @property
    def url(self) -> str:
        return f"{'https' if self.tls is not None else 'http'}://{self.host}"

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self):
        if self._server is None:
            v6 = ":" in self.bind_host
            if self.stream:
                cls, handler = (_TCPServer6 if v6 else _TCPServer), _StreamHandler
            else:
                cls, handler = (_HTTPServer6 if v6 else _HTTPServer), _HTTPHandler
            server = cls((self.bind_host, 0), handler, bind_and_activate=False)
            server.owner = self
            server.daemon_threads = not self.join_requests
            try:
                server.server_bind()
                server.server_activate()
            except BaseException:
                server.server_close()
                raise
            self._server, self._port = server, server.server_address[1]
            self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
