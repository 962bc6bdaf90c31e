"""Multipart fetch: one blob's bytes over several connections at once, delivered in order.

The blob ``[start, size)`` is cut into chunks of ``chunk_size`` bytes.  Up to ``connections``
worker threads each fetch one chunk at a time through the caller's ``open_range(a, b)``
(which does the HTTP: endpoint, credentials, redirects, its own deadlines) and the calling
thread hands the bytes, strictly in order, to ``write`` -- the single pass that hashes,
inflates and checks the diff_id.  No HTTP here: the engine only asks for ranges, checks that
each answer is the range asked for, buffers what arrives before its turn and retries chunks.

Memory is bounded whatever the blob size: bytes that arrive before the consumer wants them
are kept in memory only while all chunks together hold at most ``memory`` bytes (default
8 MiB; chunks ahead of the one being delivered get half of it); past that a chunk appends what
it receives to its own spool file (in ``spool_dir``, the ingest directory; unlinked as soon as
it is created) and the consumer reads it back in 1 MiB pieces.  Workers therefore never wait
for memory (a connection that stops reading would look stalled to the server), and at most
``window`` chunks (default ``2 * connections``) are fetched ahead of the one being delivered,
which bounds the spool on disk by ``window * chunk_size``.  Peak memory of a fetch is
``memory`` + one network read per connection + one 1 MiB spool read (measured: a 1 GiB blob,
8 connections, 16 MiB chunks: 14 MiB above the interpreter's with the default, about twice
``memory`` in general, malloc keeping freed 64 KiB reads per thread).

The first chunk is asked for alone; the others start once its answer proved that ranges are
honoured (``206`` with the ``Content-Range`` asked for).  An answer that is not the range asked
for -- a ``200`` (the registry, or only the redirect target, ignored ``Range``), or a
``Content-Range`` for other bytes -- stops everything and raises ``RangeIgnored``: the caller
goes on with one stream from ``delivered``.  A chunk that fails is retried on its own: at once,
from where it broke, when it made progress (at most ``resumes`` times), otherwise after the
delay the caller's ``retry(error, n)`` returns (``None``: give up).  A chunk that gives up
stops every other chunk and its error is raised, after every worker thread has ended.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from imgctl.errors import RegistryError, TransportError, VerificationError

__all__ = [
    "RangeAnswer", "RangeIgnored", "MultipartFetch", "Stats", "fetch_ranges", "on_abort",
    "parse_content_range", "DEFAULT_CHUNK_SIZE", "DEFAULT_MEMORY",
]

DEFAULT_CHUNK_SIZE = 16 * 1024 * 1024
DEFAULT_MEMORY = 8 * 1024 * 1024  # bytes held in memory ahead of the consumer, all chunks together
SPOOL_READ = 1024 * 1024  # the consumer reads spooled bytes back in pieces this large
TICK = 0.1  # seconds: how often the consumer looks at cancellation and stalls while it waits


@dataclass
class RangeAnswer:
    """What ``open_range`` yields: the answer's status, its ``Content-Range`` and its body."""

    status: int
    content_range: str | None
    body: Iterable[bytes]


class RangeIgnored(RegistryError):
    """An answer to a range request was not that range: fetch the blob as one stream instead.

    ``delivered`` is the offset up to which bytes were handed to the consumer (in order):
    the single stream continues from there."""

    def __init__(self, message: str, *, delivered: int) -> None:
        super().__init__(message)
        self.delivered = delivered


_CONTENT_RANGE = re.compile(r"\s*bytes\s+(\d+)-(\d+)/(\d+|\*)\s*")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """``bytes FIRST-LAST/TOTAL`` -> (FIRST, LAST, TOTAL or None for ``*``); None when unreadable."""
    m = _CONTENT_RANGE.fullmatch(value or "")
    if not m:
        return None
    return int(m.group(1)), int(m.group(2)), (None if m.group(3) == "*" else int(m.group(3)))


# -- aborting a blocked read ------------------------------------------------------------------
# A worker blocked in a read (or a connect, or waiting for headers) cannot see a flag.  The
# code doing its HTTP registers, on the worker thread, how to break that wait (shut the socket
# down): ``on_abort(fn)``.  The engine calls it on cancellation, on another chunk's failure,
# and when the chunk stalls (no byte for ``stall`` seconds).
class _Slot:
    """One worker's current exchange: its abort callbacks and when it last received a byte."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.aborts: list[Callable[[], None]] = []
        self.aborted: str | None = None  # why: "cancelled", "stalled ..."
        self.active = False  # inside an exchange (connecting, waiting for headers or bytes)
        self.last = time.monotonic()

    def register(self, fn: Callable[[], None]) -> Callable[[], None]:
        with self.lock:
            if self.aborted is None:
                self.aborts.append(fn)
                return lambda: self._unregister(fn)
        _quietly(fn)  # already aborted: break the new wait at once
        return lambda: None

    def _unregister(self, fn: Callable[[], None]) -> None:
        with self.lock:
            if fn in self.aborts:
                self.aborts.remove(fn)

    def abort(self, why: str) -> None:
        with self.lock:
            if self.aborted is not None:
                return
            self.aborted = why
            fns, self.aborts = self.aborts, []
        for fn in fns:
            _quietly(fn)

    def reset(self) -> None:
        with self.lock:
            self.aborts, self.aborted, self.active = [], None, True
            self.last = time.monotonic()


def _quietly(fn: Callable[[], None]) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - breaking a wait that already ended, say
        pass


_worker = threading.local()  # .slot: the _Slot of the exchange this worker thread runs


def on_abort(fn: Callable[[], None]) -> Callable[[], None]:
    """Register ``fn`` to break the current chunk exchange's blocking waits (shut its socket down).

    Called by ``open_range`` code on the worker thread; returns an unregister function.  Outside
    a multipart worker it does nothing."""
    slot = getattr(_worker, "slot", None)
    if slot is None:
        return lambda: None
    return slot.register(fn)


# -- one chunk ----------------------------------------------------------------------------------
@dataclass(eq=False)
class _Chunk:
    index: int
    start: int
    end: int  # exclusive
    pieces: deque = field(default_factory=deque)  # bytes, or [file offset, length] in the spool
    received: int = 0
    done: bool = False
    spool: int | None = None  # fd of the spool file, unlinked at once
    spooled: int = 0  # bytes written to the spool file


@dataclass
class Stats:
    """What a fetch did: for logs, benchmarks and tests."""

    chunks: int = 0
    requests: int = 0
    retries: int = 0
    resumes: int = 0
    stalls: int = 0
    peak_buffered: int = 0  # most bytes held in memory ahead of the consumer at once
    peak_active: int = 0  # most chunk exchanges running at once
    spooled: int = 0  # bytes that went through spool files


class _Stop(Exception):
    """This worker is told to stop (another chunk failed, or the fetch was cancelled)."""


class MultipartFetch:
    """One blob fetched as ranges on several threads; see the module docstring.

    ``open_range(a, b)`` must return a context manager yielding a ``RangeAnswer`` for the bytes
    ``[a, b)`` (asked as ``Range: bytes=a-(b-1)``); it runs on a worker thread and raises the
    caller's errors.  ``retry(error, n)`` -> seconds to wait before the chunk's next try after
    its ``n``-th failure without progress, or None to give up (default: give up).  ``stall``:
    seconds without a byte after which an exchange is aborted and retried (None: the caller's
    own deadlines only).  ``cancel``: an event that stops the fetch (it raises TransportError).
    """

    def __init__(
        self,
        size: int,
        open_range: Callable[[int, int], AbstractContextManager[RangeAnswer]],
        write: Callable[[bytes], object],
        *,
        start: int = 0,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        connections: int = 4,
        window: int | None = None,
        memory: int = DEFAULT_MEMORY,
        spool_dir: Path | str | None = None,
        retry: Callable[[BaseException, int], float | None] | None = None,
        resumes: int = 3,
        stall: float | None = None,
        cancel: threading.Event | None = None,
        name: str = "blob",
    ) -> None:
        if chunk_size < 1 or connections < 1 or not 0 <= start <= size:
            raise ValueError("multipart: chunk_size and connections must be positive, 0 <= start <= size")
        self.size, self.open_range, self.write = size, open_range, write
        self.connections = connections
        self.window = max(connections, window if window is not None else 2 * connections)
        self.memory, self.spool_dir = memory, spool_dir
        self.retry = retry or (lambda error, n: None)
        self.resumes, self.stall, self.name = resumes, stall, name
        self.cancel = cancel
        self.chunks = [_Chunk(i, a, min(a + chunk_size, size)) for i, a in enumerate(range(start, size, chunk_size))]
        self.delivered = start  # bytes handed to ``write`` (an absolute offset)
        self.buffered = 0  # bytes held in memory ahead of the consumer
        self.stats = Stats(chunks=len(self.chunks))
        lock = threading.Lock()
        self._cond = threading.Condition(lock)  # the consumer waits here for the head chunk's bytes
        self._room = threading.Condition(lock)  # workers wait here for a chunk to take
        self._head = 0  # index of the chunk being delivered
        self._next = 0  # index of the next chunk a worker takes
        self._proven = False  # the first answer was the range asked for: the others may start
        self._error: BaseException | None = None
        self._stopping = False
        self._slots: list[_Slot] = []
        self._threads: list[threading.Thread] = []
        self._active = 0

    # -- the consumer (calling thread) ----------------------------------------------------------
    def run(self) -> Stats:
        """Fetch and deliver every byte from ``start``; returns the stats.  Raises ``RangeIgnored``
        (fall back to one stream from ``.delivered``), a chunk's error, or TransportError when
        cancelled; every worker thread has ended when it returns or raises."""
        if not self.chunks:
            return self.stats
        n = min(self.connections, len(self.chunks))
        self._slots = [_Slot() for _ in range(n)]
        self._threads = [
            threading.Thread(target=self._work, args=(slot,), name=f"multipart-{self.name[:19]}-{i}", daemon=True)
            for i, slot in enumerate(self._slots)
        ]
        try:
            for t in self._threads:
                t.start()
            for chunk in self.chunks:
                self._deliver(chunk)
            return self.stats
        except BaseException as e:  # KeyboardInterrupt too: every worker stops before it is raised
            self._stop("cancelled" if not isinstance(e, Exception) else "stopped")
            raise
        finally:
            self._stop("finished")
            for t in self._threads:
                if t.ident is not None:
                    t.join()
            for chunk in self.chunks:
                self._close_spool(chunk)

    def _deliver(self, chunk: _Chunk) -> None:
        while True:
            with self._cond:
                while not chunk.pieces and not chunk.done:
                    self._check()
                    self._cond.wait(TICK)
                    self._watch()
                if not chunk.pieces:  # done, everything delivered
                    self._head += 1
                    self._room.notify_all()  # a worker waiting for the window may go on
                    break
                piece = chunk.pieces.popleft()
                if isinstance(piece, bytes):
                    self.buffered -= len(piece)
            if isinstance(piece, bytes):
                self.write(piece)
                self.delivered += len(piece)
            else:
                offset, length = piece
                while length:
                    data = os.pread(chunk.spool, min(SPOOL_READ, length), offset)
                    if not data:
                        raise TransportError(f"{self.name}: spool file ended early")
                    self.write(data)
                    self.delivered += len(data)
                    offset += len(data)
                    length -= len(data)
        self._close_spool(chunk)

    def _check(self) -> None:
        """Raise what stops the fetch (called with the lock held)."""
        if self._error is not None:
            if isinstance(self._error, RangeIgnored):
                self._error.delivered = self.delivered  # bytes delivered since it was found count too
            raise self._error
        if self.cancel is not None and self.cancel.is_set():
            raise TransportError(f"{self.name}: cancelled")

    def _watch(self) -> None:
        """Abort exchanges that received nothing for ``stall`` seconds (they are retried)."""
        if self.stall is None:
            return
        now = time.monotonic()
        for slot in self._slots:
            if slot.active and slot.aborted is None and now - slot.last > self.stall:
                slot.abort(f"stalled: no data for {self.stall:g} s")

    def _stop(self, why: str) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._room.notify_all()
        for slot in self._slots:
            slot.abort(why)

    def _close_spool(self, chunk: _Chunk) -> None:
        if chunk.spool is not None:
            os.close(chunk.spool)
            chunk.spool = None

    # -- workers ------------------------------------------------------------------------------
    def _work(self, slot: _Slot) -> None:
        _worker.slot = slot
        try:
            while True:
                with self._cond:
                    while not self._stopping and not self._may_take():
                        self._room.wait()
                    if self._stopping:
                        return
                    chunk = self.chunks[self._next]
                    self._next += 1
                self._fetch(chunk, slot)
        except _Stop:
            pass
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which raises it
            with self._cond:
                if self._error is None and not self._stopping:
                    self._error = e
                self._stopping = True
                self._cond.notify_all()
                self._room.notify_all()
            for other in self._slots:
                if other is not slot:
                    other.abort("another chunk failed")
        finally:
            slot.active = False
            _worker.slot = None

    def _may_take(self) -> bool:
        if self._next >= len(self.chunks) or self._next >= self._head + self.window:
            return False
        return self._next == 0 or self._proven

    def _fetch(self, chunk: _Chunk, slot: _Slot) -> None:
        """Fetch one chunk into its buffer, retrying on its own."""
        failures = resumes = 0
        while True:
            before = chunk.received
            try:
                self._exchange(chunk, slot)
                return
            except (_Stop, RangeIgnored, VerificationError):
                raise
            except Exception as e:  # noqa: BLE001 - the caller's policy decides
                with self._cond:
                    if self._stopping:
                        raise _Stop() from None
                error: BaseException = e
                if slot.aborted is not None and slot.aborted.startswith("stalled"):
                    self.stats.stalls += 1
                    error = TransportError(f"{self.name}: bytes {chunk.start}-{chunk.end - 1}: {slot.aborted}")
                    error.__cause__ = e
                elif chunk.received > before and resumes < self.resumes:
                    resumes += 1  # progress: resume at once from where it broke
                    self.stats.resumes += 1
                    continue
                failures += 1
                delay = self.retry(error, failures)
                if delay is None:
                    raise error from e
                self.stats.retries += 1
                if self._wait(delay):
                    raise _Stop() from None

    def _wait(self, delay: float) -> bool:
        """Sleep before a retry; True when the fetch stops meanwhile."""
        deadline = time.monotonic() + delay
        with self._cond:
            while not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._room.wait(left)
            return True

    def _exchange(self, chunk: _Chunk, slot: _Slot) -> None:
        first, end = chunk.start + chunk.received, chunk.end
        slot.reset()
        with self._cond:
            if self._stopping:
                raise _Stop()
            self._active += 1
            self.stats.requests += 1
            self.stats.peak_active = max(self.stats.peak_active, self._active)
        try:
            with self.open_range(first, end) as answer:
                self._check_answer(answer, first, end)
                for piece in answer.body:
                    if slot.aborted is not None:
                        raise _Stop() if self._stopping else TransportError(f"{self.name}: {slot.aborted}")
                    if not piece:
                        continue
                    slot.last = time.monotonic()
                    if chunk.received + len(piece) > chunk.end - chunk.start:
                        raise VerificationError(
                            f"{self.name}: the answer for bytes {first}-{end - 1} held more than {end - first} bytes"
                        )
                    self._keep(chunk, piece)
            if chunk.received < chunk.end - chunk.start:
                raise TransportError(
                    f"{self.name}: the answer for bytes {first}-{end - 1} ended at byte {chunk.start + chunk.received}"
                )
            with self._cond:
                chunk.done = True
                self._cond.notify_all()
        finally:
            slot.active = False
            with self._cond:
                self._active -= 1

    def _check_answer(self, answer: RangeAnswer, first: int, end: int) -> None:
        asked = f"bytes={first}-{end - 1}"
        if answer.status == 206:
            got = parse_content_range(answer.content_range)
            if got is not None and got[:2] == (first, end - 1) and got[2] in (None, self.size):
                with self._cond:
                    if not self._proven:
                        self._proven = True
                        self._room.notify_all()
                return
            why = f"answered {asked} with Content-Range {answer.content_range!r}"
        elif answer.status == 200:
            why = f"ignored Range (HTTP 200 to {asked})"
        else:
            raise RegistryError(f"{self.name}: HTTP {answer.status} to {asked}", status=answer.status)
        with self._cond:
            delivered = self.delivered
        raise RangeIgnored(f"{self.name}: {why}", delivered=delivered)

    def _keep(self, chunk: _Chunk, piece: bytes) -> None:
        """Hold a piece for the consumer: in memory while within ``memory``, else in the spool."""
        n = len(piece)
        with self._cond:
            # The chunk being delivered may use all of ``memory``, chunks ahead of it half: bytes
            # the consumer takes next never queue behind early ones for want of memory.
            limit = self.memory if chunk.index == self._head else self.memory // 2
            if self.buffered + n <= limit:
                self.buffered += n
                self.stats.peak_buffered = max(self.stats.peak_buffered, self.buffered)
                chunk.pieces.append(piece)
                chunk.received += n
                if chunk.index == self._head:
                    self._cond.notify()
                return
            if chunk.spool is None:
                fd, path = tempfile.mkstemp(prefix=".multipart-", dir=self.spool_dir)
                os.unlink(path)  # nothing to clean up later, whatever happens
                chunk.spool = fd
            fd, offset = chunk.spool, chunk.spooled
        view, at = memoryview(piece), offset
        while view:  # only this worker writes this chunk's spool
            written = os.pwrite(fd, view, at)
            view, at = view[written:], at + written
        with self._cond:
            chunk.spooled += n
            self.stats.spooled += n
            last = chunk.pieces[-1] if chunk.pieces else None
            if isinstance(last, list) and last[0] + last[1] == offset:
                last[1] += n  # contiguous with the spooled piece before: one read-back
            else:
                chunk.pieces.append([offset, n])
            chunk.received += n
            if chunk.index == self._head:
                self._cond.notify()


def fetch_ranges(
    size: int,
    open_range: Callable[[int, int], AbstractContextManager[RangeAnswer]],
    write: Callable[[bytes], object],
    **options,
) -> Stats:
    """``MultipartFetch(size, open_range, write, **options).run()``."""
    return MultipartFetch(size, open_range, write, **options).run()

