"""A link emulator for the benchmarks (issue 16): latency and a per-connection throughput cap.

This machine has no ``netem`` (and tests may not use root ``tc`` tricks), so a slow link is
emulated in user space by a loopback TCP *reverse* proxy with its own port: the tools address
it directly (Go ignores ``HTTP(S)_PROXY`` for loopback, so a forward proxy would be bypassed)::

    with LinkEmulator(("127.0.0.1", registry_port), rtt=0.030, rate=20e6) as link:
        link.host        # "127.0.0.1:PORT": use it in image references instead of the registry's
        ...
        link.requests    # plain-HTTP request lines seen on the way (for counting round trips)

Model (per connection, each direction separately, order preserved):

* every chunk read from one side is delivered to the other ``rtt / 2`` after it finished
  "transmitting", so a request/response exchange costs one ``rtt``;
* transmitting is serialised at ``rate`` bytes/s (a virtual clock per direction: a chunk of n
  bytes occupies the link for n / rate), and the reader does not read ahead of that clock, so
  the sender is held back by TCP flow control as on a real link: each connection gets at most
  ``rate``, and parallel connections each get their own ``rate``;
* a new connection's first byte from the client cannot leave before ``rtt`` after the accept
  (the TCP handshake's round trip: SYN / SYN-ACK), so connecting costs a round trip too.

It is byte-level, so TLS passes through unchanged.  Only plain HTTP/1.x request lines are
sniffed for :attr:`LinkEmulator.requests`.  Everything listens on 127.0.0.1 only; ``stop()``
(or leaving the ``with``) closes every socket and joins every thread.

A registry that redirects blob downloads to another host needs one emulator in front of that
host as well (``LinkEmulator(("127.0.0.1", cdn_port))``) and the redirect pointing at it.
"""

from __future__ import annotations

import collections
import re
import socket
import threading
import time
from dataclasses import dataclass

CHUNK = 64 * 1024
LAG = 0.050  # how far a busy link's clock may trail the real one (catching up after a late wake-up)
_EOF = object()
_REQUEST_LINE = re.compile(rb"(?:^|\r\n)(GET|HEAD|POST|PUT|PATCH|DELETE|OPTIONS) (\S+) HTTP/1\.[01]\r\n")


@dataclass
class Request:
    """A plain-HTTP request line seen going upstream, and when (``time.monotonic()``) it was read."""

    t: float
    conn: int
    method: str
    path: str


@dataclass
class Connection:
    """One proxied connection (times are ``time.monotonic()``)."""

    id: int
    accepted: float
    closed: float | None = None
    up_bytes: int = 0     # client -> upstream
    down_bytes: int = 0   # upstream -> client
    first_down: float | None = None
    first_up: float | None = None      # when the client's first byte was read
    opening: bytes = b""               # the client's first bytes (b"\x16\x03..." is a TLS ClientHello)

    @property
    def tls(self) -> bool:
        return self.opening[:2] == b"\x16\x03"


@dataclass
class _Direction:
    src: socket.socket
    dst: socket.socket
    start: float          # the link is free from this time on (accept, or accept + rtt for the client side)
    upstream: bool
    conn: Connection
    q: _Pipe


class _Pipe:
    """A FIFO of (due time, chunk) holding at most ``limit`` bytes of chunks: what is "on the wire"."""

    def __init__(self, limit: int, stop: threading.Event) -> None:
        self.limit = limit
        self.stop = stop
        self.items: collections.deque = collections.deque()
        self.size = 0
        self.cond = threading.Condition()

    def put(self, due: float, data) -> None:
        n = len(data) if isinstance(data, bytes) else 0
        with self.cond:
            while self.size and self.size + n > self.limit and not self.stop.is_set():
                self.cond.wait(0.1)
            self.items.append((due, data))
            self.size += n
            self.cond.notify_all()

    def get(self):
        with self.cond:
            while not self.items:
                self.cond.wait()
            due, data = self.items.popleft()
            self.size -= len(data) if isinstance(data, bytes) else 0
            self.cond.notify_all()
            return due, data


class LinkEmulator:
    """Reverse proxy 127.0.0.1:port -> ``upstream`` with a delay of ``rtt / 2`` each way and at most
    ``rate`` bytes/s per connection and direction (``rate=None``: no cap)."""

    def __init__(self, upstream: tuple[str, int], *, rtt: float = 0.030, rate: float | None = 20e6,
                 port: int = 0, connect_rtt: bool = True, sniff: bool = True) -> None:
        if rtt < 0 or (rate is not None and rate <= 0):
            raise ValueError("rtt must be >= 0 and rate > 0")
        self.upstream = upstream
        self.rtt = rtt
        self.rate = rate
        self.connect_rtt = connect_rtt
        self.sniff = sniff
        self._want_port = port
        self._lsock: socket.socket | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._socks: set[socket.socket] = set()
        self.connections: list[Connection] = []
        self.requests: list[Request] = []
        self.started_at: float | None = None

    # -- addresses -----------------------------------------------------------------------
    @property
    def port(self) -> int:
        if self._lsock is None:
            raise RuntimeError("link emulator not started")
        return self._lsock.getsockname()[1]

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> LinkEmulator:
        if self._lsock is not None:
            return self
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self._want_port))
        s.listen(128)
        s.settimeout(0.05)
        self._lsock = s
        self._stop.clear()
        self.started_at = time.monotonic()
        self._spawn(self._accept_loop, "linkemu-accept")
        return self

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        while True:
            with self._lock:
                threads = [t for t in self._threads if t.is_alive()]
                self._threads = threads
            if not threads:
                break
            for t in threads:
                if t is not threading.current_thread():
                    t.join()
        for s in socks:
            s.close()
        if self._lsock is not None:
            self._lsock.close()
        self._lsock = None

    def __enter__(self) -> LinkEmulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset_log(self) -> None:
        """Forget the connection and request log (between measured runs)."""
        with self._lock:
            self.connections = []
            self.requests = []

    # -- internals -----------------------------------------------------------------------
    def _spawn(self, fn, name: str, *args) -> None:
        t = threading.Thread(target=fn, args=args, name=name, daemon=True)
        with self._lock:
            if len(self._threads) > 64:
                self._threads = [x for x in self._threads if x.is_alive()]
            self._threads.append(t)
        t.start()

    def _accept_loop(self) -> None:
        n = 0
        while not self._stop.is_set():
            try:
                client, _ = self._lsock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            accepted = time.monotonic()
            client.settimeout(None)
            try:
                up = socket.create_connection(self.upstream, timeout=10)
                up.settimeout(None)
            except OSError:
                client.close()
                continue
            for s in (client, up):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            n += 1
            conn = Connection(n, accepted)
            with self._lock:
                if self._stop.is_set():
                    client.close()
                    up.close()
                    return
                self.connections.append(conn)
                self._socks.update((client, up))
            done = [0]
            first = accepted + (self.rtt if self.connect_rtt else 0.0)
            # room for what is in flight (rate x one-way delay), twice, and a few chunks
            limit = int(2 * (self.rate or 200e6) * (self.rtt / 2 + 0.005)) + 4 * CHUNK
            for d in (_Direction(client, up, first, True, conn, _Pipe(limit, self._stop)),
                      _Direction(up, client, accepted, False, conn, _Pipe(limit, self._stop))):
                self._spawn(self._reader, f"linkemu-r{n}", d)
                self._spawn(self._writer, f"linkemu-w{n}", d, done, client, up)

    def _reader(self, d: _Direction) -> None:
        """Read as the link allows; stamp each chunk with its delivery time; hand it to the writer."""
        free = d.start            # virtual clock: when the link is free for the next chunk
        half = self.rtt / 2
        sniff = self.sniff and d.upstream
        while True:
            now = time.monotonic()
            if free > now:        # do not read ahead of the link: the sender waits in TCP's buffers
                if self._stop.wait(free - now):
                    break
            # Data already waiting means the link was busy all along: the chunk goes out when the
            # previous one is done (``free``), even if this thread woke up late (a late wake-up
            # must not cost throughput), within LAG.  Otherwise the link was idle until now.
            busy = True
            try:
                try:
                    data = d.src.recv(CHUNK, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    busy = False
                    data = d.src.recv(CHUNK)
            except OSError:
                data = b""
            now = time.monotonic()
            if not data:
                d.q.put(max(free, now) + half, _EOF)
                return
            if d.upstream and d.conn.first_up is None:
                d.conn.first_up, d.conn.opening = now, bytes(data[:16])
            if sniff:
                for m in _REQUEST_LINE.finditer(data):
                    with self._lock:
                        self.requests.append(Request(now, d.conn.id, m.group(1).decode(),
                                                     m.group(2).decode(errors="replace")))
            free = max(free, now - LAG if busy else now) + (len(data) / self.rate if self.rate else 0.0)
            d.q.put(free + half, data)
        d.q.put(0.0, _EOF)

    def _writer(self, d: _Direction, done: list[int], client: socket.socket, up: socket.socket) -> None:
        try:
            while True:
                due, data = d.q.get()
                wait = due - time.monotonic()
                if wait > 0 and self._stop.wait(wait):
                    break
                if data is _EOF:
                    try:
                        d.dst.shutdown(socket.SHUT_WR)
                    except OSError:
                        pass
                    break
                try:
                    d.dst.sendall(data)
                except OSError:
                    # the receiver is gone: stop the other side too
                    for s in (client, up):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    break
                if d.upstream:
                    d.conn.up_bytes += len(data)
                else:
                    if d.conn.first_down is None:
                        d.conn.first_down = time.monotonic()
                    d.conn.down_bytes += len(data)
        finally:
            with self._lock:
                done[0] += 1
                last = done[0] == 2
                if last:
                    self._socks.discard(client)
                    self._socks.discard(up)
            if last:
                d.conn.closed = time.monotonic()
                client.close()
                up.close()
