"""The multipart engine (imgctl/multipart.py) against real HTTP servers on 127.0.0.1.

Every server here is a tests.support LoopbackServer serving one random blob with ``Range`` support;
a ``plan`` decides per request how it misbehaves.  Where a test needs things to happen at
the same time it makes the server wait for them (a barrier, an event), never a sleep.
"""

from __future__ import annotations

import _thread
import hashlib
import http.client
import random
import socket
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from tests.support.images import push_blob
from tests.support.server import LoopbackServer

from imgctl import multipart
from imgctl.errors import RegistryError, TransportError, VerificationError
from imgctl.multipart import MultipartFetch, RangeAnswer, RangeIgnored, fetch_ranges, parse_content_range

KiB = 1024
WAIT = 10.0  # seconds: the most a server handler waits for the test (never reached when it passes)


def blob(n: int, seed: int = 16) -> bytes:
    return random.Random(seed).randbytes(n)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server(LoopbackServer):
    """A blob server.  ``plan(server, n, first, last)`` -> an action for request number ``n``
    (0-based) asking for ``bytes=first-last``: None (serve it right), "500", "ignore" (200,
    whole blob), "wrong-range", "short" (half the body, then close), "too-much",
    "stall-headers", "stall-body" (half the body, then wait), ("redirect", url)."""

    methods = ("GET",)

    def __init__(self, data: bytes, plan=None, *, barrier: int = 0) -> None:
        super().__init__()
        self.data, self.plan = data, plan
        self.lock = threading.Lock()
        self.requests: list[tuple[int, int]] = []  # (first, last) in arrival order
        self.active = self.max_active = 0
        self.release = threading.Event()  # stalled handlers go on (or give up) when set
        self.barrier = threading.Barrier(barrier, timeout=WAIT) if barrier else None

    @property
    def url(self) -> str:
        return f"{super().url}/blob"

    def __exit__(self, *exc) -> None:
        self.release.set()
        if self.barrier is not None:
            self.barrier.abort()
        self.stop()

    def handle(self, h: BaseHTTPRequestHandler, method: str = "GET") -> None:
        size = len(self.data)
        first, last = 0, size - 1
        ranged = h.headers.get("Range")
        if ranged:
            a, _, b = ranged.removeprefix("bytes=").partition("-")
            first, last = int(a), (int(b) if b else size - 1)
        with self.lock:
            n = len(self.requests)
            self.requests.append((first, last))
        action = self.plan(self, n, first, last) if self.plan else None
        if isinstance(action, tuple) and action[0] == "redirect":
            h.send_response(307)
            h.send_header("Location", action[1])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if action == "500":
            h.send_response(503)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        if action == "ignore" or not ranged:
            first, last = 0, size - 1
            h.send_response(200)
        else:
            h.send_response(206)
            shown = (first + 1, last + 1) if action == "wrong-range" else (first, last)
            h.send_header("Content-Range", f"bytes {shown[0]}-{shown[1]}/{size}")
        body = self.data[first:last + 1]
        if action == "too-much":
            body += b"x" * 1000
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.flush()
        if action == "stall-headers":
            self.release.wait(WAIT)
            return
        with self.lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            if self.barrier is not None and n < self.barrier.parties:
                try:
                    self.barrier.wait()  # until that many bodies are being sent at once
                except threading.BrokenBarrierError:
                    pass
            if action in ("short", "stall-body"):
                h.wfile.write(body[: len(body) // 2])
                h.wfile.flush()
                if action == "stall-body":
                    self.release.wait(WAIT)
                h.close_connection = True
                return
            for i in range(0, len(body), 64 * KiB):
                h.wfile.write(body[i:i + 64 * KiB])
            h.wfile.flush()
        except OSError:
            h.close_connection = True
        finally:
            with self.lock:
                self.active -= 1


def opener(url: str, timeout: float = WAIT):
    """An ``open_range`` over http.client: follows redirects, 5xx is a TransportError, and a
    blocked wait is broken (the socket shut down) when the engine aborts the exchange."""

    @contextmanager
    def open_range(first: int, end: int):
        target = url
        for _ in range(5):
            u = urlsplit(target)
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
            try:
                conn.connect()
                sock = conn.sock
                unregister = multipart.on_abort(lambda: sock.shutdown(socket.SHUT_RDWR))
                try:
                    conn.request("GET", u.path, headers={"Range": f"bytes={first}-{end - 1}"})
                    resp = conn.getresponse()
                    if resp.status in (301, 302, 307, 308):
                        target = urljoin(target, resp.getheader("Location"))
                        continue
                    if resp.status >= 500:
                        raise TransportError(f"HTTP {resp.status}")
                    yield RangeAnswer(resp.status, resp.getheader("Content-Range"), iter(lambda: resp.read(64 * KiB), b""))
                    return
                finally:
                    unregister()
            except OSError as e:
                raise TransportError(f"GET {target}: {e}") from e
            finally:
                conn.close()
        raise TransportError("too many redirects")

    return open_range


def again(times: int):
    """A retry policy: try again at once, ``times`` times."""
    return lambda error, n: 0.0 if n <= times else None


def no_workers_left() -> bool:
    return not [t for t in threading.enumerate() if t.name.startswith("multipart-")]


def fetch(server_url: str, size: int, **kw) -> tuple[bytearray, MultipartFetch]:
    out = bytearray()
    engine = MultipartFetch(size, opener(server_url), out.extend, **kw)
    engine.run()
    return out, engine


# -- delivery -----------------------------------------------------------------------------------
def test_ordered_delivery_over_concurrent_connections():
    data = blob(2 * 1024 * KiB + 12345)  # the last chunk is short
    with Server(data, barrier=4) as srv:
        out, engine = fetch(srv.url, len(data), chunk_size=256 * KiB, connections=4)
    assert sha(bytes(out)) == sha(data)
    assert srv.max_active >= 4  # the server saw four bodies being sent at the same time
    assert engine.stats.peak_active >= 4
    assert sorted(srv.requests) == [(a, min(a + 256 * KiB, len(data)) - 1) for a in range(0, len(data), 256 * KiB)]
    assert srv.requests[0] == (0, 256 * KiB - 1)  # the first chunk was asked for first (alone)
    assert engine.delivered == len(data)
    assert no_workers_left()


def test_single_chunk_and_empty_range():
    data = blob(1000)
    with Server(data) as srv:
        out, engine = fetch(srv.url, len(data), chunk_size=4096, connections=8)
        assert bytes(out) == data and engine.stats.requests == 1
        out, engine = fetch(srv.url, len(data), start=len(data), chunk_size=4096)
        assert out == b"" and engine.stats.requests == 0


def test_resume_from_an_offset_fetches_only_the_rest():
    data = blob(1024 * KiB)
    start = 3 * 100 * KiB + 1000
    with Server(data) as srv:
        out, engine = fetch(srv.url, len(data), start=start, chunk_size=100 * KiB, connections=3)
    assert bytes(out) == data[start:]
    assert min(first for first, _ in srv.requests) == start
    assert sum(last - first + 1 for first, last in srv.requests) == len(data) - start  # no byte twice
    assert engine.delivered == len(data)


def test_memory_stays_bounded_and_early_chunks_spool(tmp_path):
    """The consumer is held on its first write until eight chunks (the window) have arrived:
    only ``memory`` bytes of them stay in memory, the rest goes to spool files, and no chunk
    beyond the window is asked for meanwhile."""
    chunk, memory = 128 * KiB, 300 * KiB
    data = blob(24 * chunk)
    spool = tmp_path / "ingest"
    spool.mkdir()
    with Server(data) as srv:
        seen_then: list[int] = []

        def write(piece: bytes, out=bytearray()) -> None:
            if not out:  # the engine holds every chunk of the window now
                with engine._cond:
                    assert engine._cond.wait_for(lambda: all(c.done for c in engine.chunks[:8]), WAIT)
                seen_then.append(len(srv.requests))
            out.extend(piece)
            write.out = out

        engine = MultipartFetch(len(data), opener(srv.url), write, chunk_size=chunk, connections=4, window=8,
                                memory=memory, spool_dir=spool)
        engine.run()
    assert sha(bytes(write.out)) == sha(data)
    assert seen_then == [8]  # while the consumer was held, nothing past the window was asked for
    assert 0 < engine.stats.peak_buffered <= memory
    assert engine.stats.spooled >= 8 * chunk - memory - 64 * KiB  # (the piece being written was taken out)
    assert engine.buffered == 0
    assert list(spool.iterdir()) == []  # spool files are unlinked from the start


# -- falling back to one stream ------------------------------------------------------------------
def test_a_server_that_ignores_range_means_one_stream():
    data = blob(512 * KiB)
    with Server(data, lambda s, n, a, b: "ignore") as srv:
        with pytest.raises(RangeIgnored, match="ignored Range") as e:
            fetch(srv.url, len(data), chunk_size=64 * KiB, connections=4)
    assert e.value.delivered == 0
    assert len(srv.requests) == 1  # only the first chunk was asked for before it was known
    assert no_workers_left()


def test_a_redirect_target_that_ignores_range_means_one_stream():
    data = blob(512 * KiB)
    with Server(data, lambda s, n, a, b: "ignore") as target, \
            Server(data, lambda s, n, a, b: ("redirect", target.url)) as front:
        with pytest.raises(RangeIgnored) as e:
            fetch(front.url, len(data), chunk_size=64 * KiB, connections=4)
    assert e.value.delivered == 0 and len(front.requests) == 1 and len(target.requests) == 1


def test_a_redirect_target_that_stops_honouring_range_later():
    """Chunk 0 is served as a range, a later one (another CDN node, say) is not: the fallback
    starts at what was delivered, which is a correct prefix."""
    data = blob(512 * KiB)
    chunk = 64 * KiB

    def plan(s, n, first, last):
        return "ignore" if first == 3 * chunk else None

    with Server(data, plan) as target, Server(data, lambda s, n, a, b: ("redirect", target.url)) as front:
        out = bytearray()
        with pytest.raises(RangeIgnored) as e:
            fetch_ranges(len(data), opener(front.url), out.extend, chunk_size=chunk, connections=4)
    assert e.value.delivered == len(out) <= 3 * chunk
    assert bytes(out) == data[: len(out)]
    assert no_workers_left()


def test_a_content_range_for_other_bytes_means_one_stream():
    data = blob(256 * KiB)
    with Server(data, lambda s, n, a, b: "wrong-range") as srv:
        with pytest.raises(RangeIgnored, match="Content-Range"):
            fetch(srv.url, len(data), chunk_size=64 * KiB, connections=2)


# -- failures and retries ------------------------------------------------------------------------
def test_a_chunk_that_fails_once_is_retried_on_its_own():
    data = blob(512 * KiB)
    chunk = 64 * KiB
    with Server(data, lambda s, n, first, last: "500" if first == 2 * chunk and (first, last) not in s.requests[:n] else None) as srv:
        out, engine = fetch(srv.url, len(data), chunk_size=chunk, connections=4, retry=again(2))
    assert sha(bytes(out)) == sha(data)
    assert engine.stats.retries == 1
    assert [r for r in srv.requests if r[0] == 2 * chunk] == [(2 * chunk, 3 * chunk - 1)] * 2


def test_a_short_body_is_resumed_where_it_broke():
    data = blob(512 * KiB)
    chunk = 128 * KiB
    plan = lambda s, n, first, last: "short" if first == chunk else None  # noqa: E731 - first try only
    with Server(data, plan) as srv:
        out, engine = fetch(srv.url, len(data), chunk_size=chunk, connections=2)
    assert bytes(out) == data
    assert engine.stats.resumes == 1 and engine.stats.retries == 0
    assert (chunk + chunk // 2, 2 * chunk - 1) in srv.requests  # the rest of the chunk, not all of it


def test_a_stalled_chunk_is_aborted_and_resumed():
    data = blob(512 * KiB)
    chunk = 128 * KiB
    plan = lambda s, n, first, last: "stall-body" if first == 2 * chunk else None  # noqa: E731
    with Server(data, plan) as srv:
        t0 = time.monotonic()
        out, engine = fetch(srv.url, len(data), chunk_size=chunk, connections=3, stall=0.3, retry=again(1))
        took = time.monotonic() - t0
    assert bytes(out) == data
    assert engine.stats.stalls == 1
    assert (2 * chunk + chunk // 2, 3 * chunk - 1) in srv.requests
    assert took < WAIT / 2  # the stall was noticed, not the server's give-up


def test_too_much_data_is_refused_not_retried():
    data = blob(256 * KiB)
    with Server(data, lambda s, n, first, last: "too-much" if first else None) as srv:
        with pytest.raises(VerificationError, match="more than"):
            fetch(srv.url, len(data), chunk_size=64 * KiB, connections=2, retry=again(5))
    assert no_workers_left()


def test_an_unexpected_status_is_an_error_for_the_retry_policy():
    data = blob(64 * KiB)

    @contextmanager
    def open_range(first, end):
        yield RangeAnswer(404, None, iter(()))

    seen = []
    with pytest.raises(RegistryError, match="HTTP 404"):
        fetch_ranges(len(data), open_range, lambda b: None, chunk_size=KiB,
                     retry=lambda e, n: seen.append(n) or None)
    assert seen == [1]


def test_a_chunk_that_keeps_failing_stops_the_others_at_once():
    """Chunk 2 fails every time; chunks 1 and 3 are stalled by the server (headers, no body)
    and must be aborted, not waited for; every worker has ended when the error is raised."""
    data = blob(512 * KiB)
    chunk = 64 * KiB

    def plan(s, n, first, last):
        return {2 * chunk: "500", chunk: "stall-headers", 3 * chunk: "stall-headers"}.get(first)

    with Server(data, plan) as srv:
        t0 = time.monotonic()
        with pytest.raises(TransportError, match="HTTP 503"):
            fetch(srv.url, len(data), chunk_size=chunk, connections=4, retry=again(2))
        took = time.monotonic() - t0
        assert no_workers_left()
        assert took < WAIT / 2
        assert [r[0] for r in srv.requests].count(2 * chunk) == 3


def test_ctrl_c_on_the_main_thread_stops_and_joins_the_workers():
    data = blob(512 * KiB)
    chunk = 64 * KiB

    def plan(s, n, first, last):
        if first == chunk:
            _thread.interrupt_main()  # Ctrl-C while the other chunks are stalled
        return "stall-headers" if first else None

    with Server(data, plan) as srv:
        t0 = time.monotonic()
        with pytest.raises(KeyboardInterrupt):
            fetch(srv.url, len(data), chunk_size=chunk, connections=4)
        assert time.monotonic() - t0 < WAIT / 2
        assert no_workers_left()


def test_a_cancel_event_stops_the_fetch():
    data = blob(512 * KiB)
    cancel = threading.Event()
    chunk = 64 * KiB

    def plan(s, n, first, last):
        if first == chunk:
            cancel.set()
        return "stall-headers" if first else None

    with Server(data, plan) as srv:
        with pytest.raises(TransportError, match="cancelled"):
            fetch(srv.url, len(data), chunk_size=chunk, connections=4, cancel=cancel)
        assert no_workers_left()


def test_retry_waits_end_when_the_fetch_stops():
    """A chunk waiting out a long backoff does not hold the failure of another one up."""
    data = blob(256 * KiB)
    chunk = 64 * KiB

    def retry(error, n):
        return 3600.0 if "HTTP 503" in str(error) and n == 1 else None

    def plan(s, n, first, last):
        return "500" if first == chunk else ("too-much" if first == 2 * chunk else None)

    with Server(data, plan) as srv:
        t0 = time.monotonic()
        with pytest.raises(VerificationError):
            fetch(srv.url, len(data), chunk_size=chunk, connections=3, retry=retry)
        assert time.monotonic() - t0 < WAIT / 2
        assert no_workers_left()


def test_parse_content_range():
    assert parse_content_range("bytes 0-99/100") == (0, 99, 100)
    assert parse_content_range(" bytes 5-9/* ") == (5, 9, None)
    assert parse_content_range("bytes 5-9") is None
    assert parse_content_range(None) is None


# -- a real registry -----------------------------------------------------------------------------
def test_a_real_registry_serves_ranges_to_the_engine(registry, unique_repo, tmp_path):
    data = blob(3 * 1024 * KiB + 77, seed=7)
    digest = push_blob(registry.url, unique_repo, data)
    url = f"{registry.url}/v2/{unique_repo}/blobs/{digest}"
    statuses = []
    with httpx.Client(trust_env=False, follow_redirects=True) as client:

        @contextmanager
        def open_range(first, end):
            headers = {"Range": f"bytes={first}-{end - 1}", "Accept-Encoding": "identity"}
            with client.stream("GET", url, headers=headers) as r:
                statuses.append(r.status_code)
                yield RangeAnswer(r.status_code, r.headers.get("content-range"), r.iter_bytes())

        h = hashlib.sha256()
        stats = fetch_ranges(len(data), open_range, h.update, start=1000, chunk_size=512 * KiB, connections=4,
                             spool_dir=tmp_path)
    assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
    assert h.hexdigest() == hashlib.sha256(data[1000:]).hexdigest()
    assert set(statuses) == {206} and stats.requests == len(statuses) == -(-(len(data) - 1000) // (512 * KiB))


def test_bad_parameters_are_refused():
    with pytest.raises(ValueError):
        MultipartFetch(10, opener("http://127.0.0.1:1/"), lambda b: None, chunk_size=0)
    with pytest.raises(ValueError):
        MultipartFetch(10, opener("http://127.0.0.1:1/"), lambda b: None, start=11)


def test_a_consumer_that_fails_stops_the_workers():
    """The single pass refuses the bytes (a bad gzip stream, a full disk): its error is raised
    once every worker has ended."""
    data = blob(512 * KiB)

    def write(piece: bytes) -> None:
        raise VerificationError("not gzip")

    with Server(data, lambda s, n, first, last: "stall-headers" if first else None) as srv:
        with pytest.raises(VerificationError, match="not gzip"):
            fetch_ranges(len(data), opener(srv.url), write, chunk_size=64 * KiB, connections=4)
        assert no_workers_left()
