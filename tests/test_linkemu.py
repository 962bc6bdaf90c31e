"""benchmarks/linkemu.py: the link emulator really delays round trips, caps each connection's
throughput, and passes bytes (plain and TLS) through unchanged.

Timing assertions are lower bounds the emulator must enforce (it schedules deliveries on the
monotonic clock), plus one generous upper bound showing that parallel connections each get
their own cap rather than sharing one.
"""

from __future__ import annotations

import hashlib
import os
import socket
import ssl
import threading
import time

import httpx
import pytest

from benchmarks.linkemu import LinkEmulator
from tests.support.registry import make_self_signed_cert
from tests.support.server import LoopbackServer


class Upstream(LoopbackServer):
    """A loopback TCP server: ``echo`` echoes what it reads; ``send`` reads an 8-byte size and
    sends that many bytes of a fixed pattern, then closes."""

    stream = True

    def __init__(self, mode: str, tls=None) -> None:
        super().__init__(tls=tls)
        self.mode = mode

    @property
    def addr(self) -> tuple[str, int]:
        return (self.bind_host, self.port)

    def handle(self, c: socket.socket) -> None:
        c.settimeout(10)
        try:
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.mode == "echo":
                while data := c.recv(65536):
                    c.sendall(data)
            else:
                n = int.from_bytes(recv_exact(c, 8), "big")
                block = pattern(1 << 16)
                while n > 0:
                    k = min(n, len(block))
                    c.sendall(block[:k])
                    n -= k
        except OSError:
            pass


def pattern(n: int) -> bytes:
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def recv_exact(s: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        data = s.recv(n - len(buf))
        if not data:
            raise EOFError(f"closed after {len(buf)} of {n} bytes")
        buf += data
    return bytes(buf)


def fetch(host: str, port: int, n: int) -> float:
    """Ask a ``send`` upstream for n bytes through the link; seconds from connect to the last byte."""
    t0 = time.monotonic()
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(n.to_bytes(8, "big"))
        got = 0
        while data := s.recv(1 << 16):
            got += len(data)
    assert got == n
    return time.monotonic() - t0


def test_bytes_pass_through_unchanged_both_ways():
    payload = os.urandom(3 * 1024 * 1024 + 17)
    with Upstream("echo") as up, LinkEmulator(up.addr, rtt=0.002, rate=None) as link:
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as s:
            sender = threading.Thread(target=s.sendall, args=(payload,))
            sender.start()
            back = recv_exact(s, len(payload))
            sender.join()
        assert hashlib.sha256(back).digest() == hashlib.sha256(payload).digest()
        assert link.host == f"127.0.0.1:{link.port}"


def test_each_round_trip_costs_rtt_and_connect_costs_one():
    rtt, n = 0.04, 6
    with Upstream("echo") as up, LinkEmulator(up.addr, rtt=rtt, rate=None) as link:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as s:
            laps = []
            for i in range(n):
                t = time.monotonic()
                s.sendall(b"%d\n" % i)
                assert recv_exact(s, len(b"%d\n" % i)) == b"%d\n" % i
                laps.append(time.monotonic() - t)
        total = time.monotonic() - t0
    # n sequential exchanges: at least n round trips, plus the TCP handshake's round trip
    assert total >= (n + 1) * rtt
    assert all(lap >= rtt for lap in laps)
    assert laps[0] >= 2 * rtt  # the first exchange waits for the handshake
    assert total < (n + 1) * rtt + 2.0  # sanity: delays are not piling up


def test_throughput_is_capped_per_connection():
    rate, size = 8e6, 4_000_000  # 0.5 s at the cap
    with Upstream("send") as up, LinkEmulator(up.addr, rtt=0.004, rate=rate) as link:
        one = fetch("127.0.0.1", link.port, size)
        assert one >= size / rate
        assert one < 1.5 * size / rate  # and a late wake-up of the proxy does not cost throughput
        results: list[float] = []
        t0 = time.monotonic()
        ts = [threading.Thread(target=lambda: results.append(fetch("127.0.0.1", link.port, size)))
              for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        both = time.monotonic() - t0
    assert len(results) == 2 and all(r >= size / rate for r in results)
    # two connections together move 2 x size in about the time of one: each has its own cap
    # (a shared cap would need 2 x size / rate = 1.0 s)
    assert both < 0.75 * 2 * size / rate, (one, both)


def test_upload_direction_is_capped_too():
    rate, size = 8e6, 2_000_000
    with Upstream("echo") as up, LinkEmulator(up.addr, rtt=0.002, rate=rate) as link:
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as s:
            t0 = time.monotonic()
            sender = threading.Thread(target=s.sendall, args=(b"x" * size,))
            sender.start()
            recv_exact(s, size)
            sender.join()
            took = time.monotonic() - t0
    assert took >= size / rate


def test_tls_passes_through(tmp_path):
    cert, key = make_self_signed_cert(tmp_path)
    sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    sctx.load_cert_chain(cert, key)
    cctx = ssl.create_default_context(cafile=str(cert))
    payload = os.urandom(200_000)
    with Upstream("echo", tls=sctx) as up, \
            LinkEmulator(up.addr, rtt=0.01, rate=50e6) as link:
        t0 = time.monotonic()
        with socket.create_connection(("127.0.0.1", link.port), timeout=10) as raw, \
                cctx.wrap_socket(raw, server_hostname="127.0.0.1") as s:
            s.sendall(payload)
            back = recv_exact(s, len(payload))
        took = time.monotonic() - t0
    assert back == payload
    assert took >= 3 * 0.01  # handshake RTT + TLS handshake + the exchange


def test_http_requests_are_logged_against_a_real_registry(registry):
    host, port = registry.host.split(":")
    with LinkEmulator((host, int(port)), rtt=0.02, rate=None) as link:
        with httpx.Client(base_url=f"http://{link.host}", trust_env=False, timeout=10) as c:
            t0 = time.monotonic()
            assert c.get("/v2/").status_code == 200
            assert c.get("/v2/no/such/manifests/latest").status_code == 404
            took = time.monotonic() - t0
        assert [(r.method, r.path) for r in link.requests] == [
            ("GET", "/v2/"), ("GET", "/v2/no/such/manifests/latest")]
        assert {r.conn for r in link.requests} == {1}  # keep-alive: one connection
        assert len(link.connections) == 1 and link.connections[0].down_bytes > 0
    assert took >= 3 * 0.02  # connect + two exchanges


def test_stop_closes_live_connections_and_joins_threads():
    with Upstream("echo") as up:
        link = LinkEmulator(up.addr, rtt=0.01, rate=1e6).start()
        port = link.port
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(b"hello")
        assert recv_exact(s, 5) == b"hello"
        t0 = time.monotonic()
        link.stop()
        assert time.monotonic() - t0 < 2
        assert not [t for t in threading.enumerate() if t.name.startswith("linkemu")]
        assert s.recv(10) == b""  # the proxy closed its side
        s.close()
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
