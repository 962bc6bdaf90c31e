"""Blobs: a fetch writes into a sink, from the first endpoint that has the bytes.

A stream that breaks is resumed with ``Range: bytes=N-`` at the same endpoint while it makes
progress, then at the next endpoint, so no byte is fetched twice.  Every blob is checked
against its digest, so a mirror can make a pull faster, never different.

A large blob (at least two ``download-chunk-size`` chunks left to fetch) may be fetched as
ranges over ``max-concurrent-downloads-per-layer`` connections at once (``imgctl.multipart``),
delivered to the sink in order; each range is one ``send()``, so credentials, redirects and
deadlines hold range by range.  An endpoint that ignores Range (or redirects to a host that
does) is remembered for the run and gets one stream from the bytes delivered so far.

When to split (``download-split``): ``always`` splits from the first byte.  ``auto`` (the
default) starts one stream and watches its first PROBE_BYTES (or one chunk, if smaller): if the
stream waited for bytes more than twice as long as the sink took to consume them while the
process kept fewer than BUSY CPUs busy, the link sets the pace and more connections help, so
the stream is closed and the rest is fetched as ranges (and later blobs from that endpoint are
split from their first byte).  Otherwise imgctl itself (hashing, inflating) sets the pace --
loopback, a fast LAN -- and extra connections would only add requests and spooling.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import httpx

from imgctl.errors import ImgctlError, RegistryError, TransportError, VerificationError
from imgctl.oci import MAX_MANIFEST_SIZE, Descriptor
from imgctl.reference import validate_digest
from imgctl.registry.check import _Skipped, _Stalled, _Unreachable, check, transient, with_context
from imgctl.registry.bodies import refuse_encoding
from imgctl.registry.endpoints import Endpoint, redact, usable_url
from imgctl.registry.engine import ENDPOINT_ERRORS, short_reason
from imgctl.registry.transport import reason

RESUME_ATTEMPTS = 3  # tries per endpoint for one blob, each after progress, before moving on
PROBE_BYTES = 2 * 1024 * 1024  # download-split "auto": bytes of one stream watched before deciding
BUSY = 0.75  # download-split "auto": CPUs the process may keep busy while the link still sets the pace


class BlobSink(Protocol):
    """Where a blob's bytes go (the store's ``BlobWriter`` is one).  The sink hashes what it holds.

    Optional attribute ``spool_dir``: where a multipart fetch may spool ranges that arrive
    before their turn (the store's ingest directory; default: the system's temporary directory).
    """

    @property
    def written(self) -> int:
        """Bytes held already (from an interrupted download, say): the fetch continues after them."""

    def write(self, data: bytes) -> None:
        """The next bytes of the blob."""

    def reset(self) -> None:
        """Throw away every byte held: the fetch starts over at byte 0."""

    def hexdigest(self) -> str:
        """The hex digest (of the blob's algorithm) of every byte held."""


class _Memory:
    """A BlobSink in memory (a config, an attestation: small blobs read whole)."""

    def __init__(self, algo: str) -> None:
        self.algo, self.data, self._hash = algo, bytearray(), hashlib.new(algo)

    @property
    def written(self) -> int:
        return len(self.data)

    def write(self, data: bytes) -> None:
        self.data += data
        self._hash.update(data)

    def reset(self) -> None:
        self.data, self._hash = bytearray(), hashlib.new(self.algo)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class _SinkFailed(Exception):
    """The sink's own failure (a full disk, a cancelled pull): never blamed on an endpoint."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


@dataclass(slots=True)
class _Fetch:
    """What a blob download holds since its last restart: its length, who sent which bytes."""

    sink: BlobSink
    got: int = 0
    parts: list = field(default_factory=list)  # [endpoint, start, end] in order
    local: int = 0  # leading bytes that came from disk (an earlier, interrupted download)

    def start_over(self) -> None:
        self.got, self.parts, self.local = 0, [], 0
        self.sink.reset()


def _body(resp: httpx.Response, digest: str, ep: Endpoint) -> Iterator[bytes]:
    """A blob answer's bytes as they arrive; a broken or stalled stream as the registry's errors."""
    try:
        yield from resp.iter_bytes()
    except httpx.HTTPError as e:
        cls = _Stalled if reason(e).startswith("stalled") else TransportError
        raise cls(f"reading blob {digest} from {ep.label}: {reason(e)}") from e


def _describe_parts(parts: list) -> str:
    """``mirror URL (bytes 0-99), registry HOST (bytes 100-199)``: who sent which bytes, runs merged."""
    runs: list[list] = []
    for ep, start, end in parts:
        if end <= start:
            continue
        if runs and runs[-1][0] == ep and runs[-1][2] == start:
            runs[-1][2] = end
        else:
            runs.append([ep, start, end])
    return ", ".join(f"{ep.label} (bytes {start}-{end - 1})" for ep, start, end in runs)


class Blobs:
    """Part of RegistryClient: reads of blobs (an Engine's ``send``, endpoints and retry policy)."""

    def get_blob(self, domain: str, path: str, digest: str, size: int, *, max_size: int = MAX_MANIFEST_SIZE) -> bytes:
        """A small blob (config) read whole; size and digest are verified."""
        digest = validate_digest(digest)
        if size > max_size:
            raise VerificationError(f"blob {digest} is too large ({size} bytes, limit {max_size})")
        sink = _Memory(digest.split(":", 1)[0])
        self.fetch_blob(domain, path, Descriptor("", digest, size), sink)
        return bytes(sink.data)

    def fetch_blob(self, domain: str, path: str, descriptor: Descriptor, sink: BlobSink) -> None:
        """Write the blob ``descriptor`` names into ``sink``, from the first endpoint that has it.

        The ``sink.written`` bytes it holds already (an interrupted download on disk) are not
        fetched again.  ``sink.reset()`` is called when the bytes so far must be thrown away: an
        endpoint answered a Range request with the whole blob, or the whole did not match the
        digest.  On return the sink holds exactly ``descriptor.size`` bytes hashing to its
        digest.  The descriptor's ``urls`` (a foreign layer's own URLs) are tried last, without
        credentials.  If the whole fails to verify with bytes from disk in it, the local bytes
        are blamed first and the download starts over.  Transient failures (resets, timeouts,
        408/429/5xx) are retried with backoff, each retry announced.  The sink's own errors
        (a full disk, a cancelled pull) are raised as they are.
        """
        try:
            self._fetch(domain, path, validate_digest(descriptor.digest), descriptor.size, descriptor.urls, sink)
        except _SinkFailed as e:
            raise e.error from None

    def _fetch(self, domain: str, path: str, digest: str, size: int, urls, sink: BlobSink) -> None:
        from imgctl import multipart  # (here: a run that fetches no blob never loads it)

        algo = digest.split(":", 1)[0]
        endpoints = self.endpoints(domain)
        endpoints += [Endpoint(u, urlsplit(u).netloc, foreign=True) for u in urls if usable_url(u)]
        offset = sink.written
        state = _Fetch(sink, offset, [], offset)
        if offset:
            self._log(f"blob {digest}: resuming after {offset} bytes found on disk")
        failed: list[str] = []
        registry_error: ImgctlError | None = None
        bad: set[Endpoint] = set()  # sent bytes that did not verify
        while True:
            for ep in endpoints:
                if ep in bad:
                    continue
                resumes = stalls = 0
                while True:
                    before = state.got
                    ranged = self._ranged(ep, size, state.got)
                    try:
                        if ranged and self._split_now(ep):
                            self._ranges_from(ep, path, digest, size, state)
                        else:
                            probe, ranged = ranged, False  # (auto: a blob worth splitting is watched first)
                            if self._blob_from(ep, path, digest, size, state, probe=probe):
                                continue  # the link sets the pace: the rest as ranges
                        error = None
                    except multipart.RangeIgnored as e:
                        # Ranges are not honoured here (by the endpoint or where it redirects): one stream.
                        self.ignores_range.add(ep.url)
                        self._log(f"{e} at {ep.label}; fetching the rest as one stream from byte {state.got}")
                        continue
                    except ENDPOINT_ERRORS as e:
                        error = e
                    if error is None:
                        break
                    if not isinstance(error, _Skipped):
                        self._log(f"blob {digest}: {ep.label} failed after {state.got} of {size} bytes: {error}")
                    if isinstance(error, VerificationError):  # the bytes it sent cannot be trusted
                        bad.add(ep)
                        if any(p[0] == ep for p in state.parts):
                            state.start_over()
                        break
                    if ranged and self.policy.stop.is_set():
                        raise error  # cancelled (Ctrl-C, or another layer failed)
                    if ranged or isinstance(error, _Unreachable) or not transient(error):
                        # An answer rather than a broken stream, or a multipart fetch whose chunks
                        # used up their retries: next endpoint (from the bytes delivered so far).
                        break
                    if state.got > before and not isinstance(error, _Stalled):
                        resumes += 1  # progress: resume at once with Range
                        limit = RESUME_ATTEMPTS * (1 if ep.mirror or ep.foreign else self.policy.attempts)
                        if resumes >= limit:
                            break
                        continue
                    stalls += 1
                    if not self.policy.allows(stalls) or (ep.mirror and stalls >= 2):
                        break  # mirrors get one retry: the next endpoint is the better bet
                    self.policy.backoff(f"blob {digest}", stalls, getattr(error, "retry_after", None), error, digest)
                if error is None:
                    break
                if ep.mirror or ep.foreign:
                    failed.append(f"{redact(ep.url)}: {short_reason(error)}")
                else:
                    registry_error = error
            else:
                # Every endpoint failed: the registry's own answer is the error, the others are context.
                if registry_error is not None:
                    if failed:
                        raise with_context(registry_error, f"other endpoints failed too: {'; '.join(failed)}") from registry_error
                    raise registry_error
                raise TransportError(f"cannot download blob {digest}: {'; '.join(failed)}")
            actual = f"{algo}:{sink.hexdigest()}"
            sources = _describe_parts(state.parts)
            if actual == digest:
                self._log(f"blob {digest}: served by {sources or 'nobody (empty blob)'}")
                return
            if state.local:
                # The bytes found on disk may be what is wrong: start over before blaming anyone.
                self._log(f"blob {digest}: content hashes to {actual} with {state.local} bytes from disk; starting over")
                state.start_over()
                continue
            # Wrong bytes: blame the mirrors that contributed (the registry alone only when it was alone).
            contributors = {p[0] for p in state.parts}
            suspects = {e for e in contributors if e.mirror} or contributors
            bad |= suspects
            self._log(f"blob {digest}: content from {sources} hashes to {actual}; starting over")
            failed.append(f"{', '.join(sorted(e.url for e in suspects))}: digest mismatch")
            state.start_over()
            if all(e in bad for e in endpoints):
                raise VerificationError(f"digest mismatch for blob {digest}: {'; '.join(failed)}")

    def _ranged(self, ep: Endpoint, size: int, offset: int) -> bool:
        """Fetch the rest of a blob from ``ep`` as ranges over several connections at once: when
        configured (``max-concurrent-downloads-per-layer`` > 1), at least two chunks remain, and
        ``ep`` did not ignore Range before in this run."""
        c = self.config
        return (
            c.max_concurrent_downloads_per_layer > 1
            and size - offset >= 2 * c.download_chunk_size
            and ep.url not in self.ignores_range
        )

    def _split_now(self, ep: Endpoint) -> bool:
        """Split a blob from ``ep`` into ranges from its first byte (``download-split``): always,
        or once a stream from ``ep`` showed that the link, not imgctl, sets the pace."""
        return self.config.download_split == "always" or ep.url in self.link_bound

    def _link_bound(
        self, ep: Endpoint, digest: str, watched: int, waited: float, consumed: float, busy: float, left: int,
    ) -> bool:
        """Whether a stream that waited ``waited`` s for ``watched`` bytes the sink consumed in
        ``consumed`` s, while the process used ``busy`` CPUs, should give way to ranges for the
        ``left`` bytes still to come.

        The link sets the pace when the stream mostly waited and the process was mostly idle:
        a thread also "waits" while other threads hold the GIL, so waiting alone would mistake a
        busy process (several layers at once over loopback) for a slow link.
        """
        bound = waited > 2 * consumed and busy < BUSY
        self._log(
            f"blob {digest}: first {watched} bytes from {ep.label}: {waited * 1000:.0f} ms waiting, "
            f"{consumed * 1000:.0f} ms consuming, {busy:.2f} CPUs busy: {'the link' if bound else 'imgctl'} sets the pace"
        )
        if not bound:
            return False
        self.link_bound.add(ep.url)
        return left >= 2 * self.config.download_chunk_size

    def _ranges_from(self, ep: Endpoint, path: str, digest: str, size: int, state: _Fetch) -> None:
        """Write the rest of a blob (from ``state.got``) from one endpoint into the sink, as
        ranges fetched at once and delivered in order (``imgctl.multipart``).

        Each range is one ``send()``: the endpoint's credentials, redirects and their rules, and
        the blob's minimum rate hold per range.  A range that fails is retried with the retry
        policy's backoff (announced like the single stream's); one that still fails ends the
        fetch with its error.  ``RangeIgnored`` when the endpoint (or a redirect target) did not
        answer with the range asked for: the caller goes on with one stream from ``state.got``.
        """
        from imgctl import multipart

        url = ep.url if ep.foreign else f"{self.resolve(ep)}/v2/{path}/blobs/{digest}"
        scope = f"repository:{path}:pull"

        @contextmanager
        def open_range(first: int, end: int) -> Iterator[multipart.RangeAnswer]:
            headers = {"Accept-Encoding": "identity", "Range": f"bytes={first}-{end - 1}"}
            with self.send("GET", ep, url, scope, headers, digest=digest, deadline="blob") as resp:
                if resp.status_code not in (200, 206):
                    check(resp, ok=(), what="blob", display=digest, path=path)
                refuse_encoding(resp, f"blob {digest} from {ep.label}")
                yield multipart.RangeAnswer(resp.status_code, resp.headers.get("content-range"), _body(resp, digest, ep))

        def retry(error: BaseException, failures: int) -> float | None:
            if isinstance(error, _Unreachable) or not transient(error):
                return None
            if not self.policy.allows(failures) or (ep.mirror and failures >= 2):
                return None  # (mirrors get one retry, as with one stream)
            return self.policy.announce(f"blob {digest}", failures, getattr(error, "retry_after", None), error, digest)

        part = [ep, state.got, state.got]
        state.parts.append(part)

        def write(data: bytes) -> None:
            try:
                state.sink.write(data)
            except Exception as e:  # (not the endpoint's fault: see fetch_blob)
                raise _SinkFailed(e) from e
            state.got += len(data)
            part[2] = state.got

        c = self.config
        stats = multipart.fetch_ranges(
            size, open_range, write, start=state.got, chunk_size=c.download_chunk_size,
            connections=c.max_concurrent_downloads_per_layer, spool_dir=getattr(state.sink, "spool_dir", None),
            retry=retry, resumes=RESUME_ATTEMPTS, cancel=self.policy.stop, name=f"blob {digest}",
        )
        self._log(
            f"blob {digest}: {stats.chunks} ranges from {ep.label} over up to {stats.peak_active} connections "
            f"({stats.requests} requests, {stats.retries} retries)"
        )
        if state.got != size:
            raise TransportError(f"blob {digest}: {ep.label} delivered {state.got} of {size} bytes")

    def _blob_from(self, ep: Endpoint, path: str, digest: str, size: int, state: _Fetch, *, probe: bool = False) -> bool:
        """Write the rest of a blob (from ``state.got``) from one endpoint into the sink.

        ``probe``: watch the first PROBE_BYTES (at most a chunk); if they show that the link sets
        the pace (``_link_bound``), stop there and return True: the caller fetches the rest as
        ranges.  Otherwise False, with the whole blob written.
        """
        offset = state.got
        if offset and offset == size:
            return False  # everything is already here (from disk): only the digest check remains
        url = ep.url if ep.foreign else f"{self.resolve(ep)}/v2/{path}/blobs/{digest}"
        # Bytes as stored: no transfer compression, so that offsets and sizes mean the blob's bytes.
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        with self.send("GET", ep, url, f"repository:{path}:pull", headers, digest=digest, deadline="blob") as resp:
            status = resp.status_code
            if status == 206 and offset:
                from imgctl import multipart

                got = multipart.parse_content_range(resp.headers.get("content-range"))
                if got is None or got[0] != offset or (got[2] is not None and got[2] != size):
                    raise RegistryError(
                        f"{ep.label} answered bytes={offset}- with Content-Range "
                        f"{resp.headers.get('content-range')!r}"
                    )
            elif status == 200:
                if offset:
                    self._log(f"blob {digest}: {ep.label} ignored the Range request; starting over at byte 0")
                    state.start_over()
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) != size:
                    raise VerificationError(f"blob {digest}: {ep.label} announced {declared} bytes, descriptor says {size}")
            else:
                check(resp, ok=(), what="blob", display=digest, path=path)
            refuse_encoding(resp, f"blob {digest} from {ep.label}")
            part = [ep, state.got, state.got]
            state.parts.append(part)
            write = state.sink.write
            clock = time.perf_counter
            watch_until = state.got + min(PROBE_BYTES, self.config.download_chunk_size) if probe else None
            waited = consumed = 0.0  # while watched: seconds spent waiting for bytes, and in the sink
            mark = received = started = clock()
            cpu = time.process_time() if probe else 0.0
            for chunk in _body(resp, digest, ep):  # as they arrive: a broken stream keeps what came
                if watch_until is not None:
                    received = clock()
                    waited += received - mark
                if state.got + len(chunk) > size:
                    raise VerificationError(f"blob {digest}: {ep.label} sent more than the declared {size} bytes")
                try:
                    write(chunk)
                except Exception as e:  # (not the endpoint's fault: see fetch_blob)
                    raise _SinkFailed(e) from e
                state.got += len(chunk)
                part[2] = state.got
                if watch_until is not None:
                    mark = clock()
                    consumed += mark - received
                    if state.got >= watch_until:
                        watch_until = None
                        busy = (time.process_time() - cpu) / max(mark - started, 1e-6)
                        if self._link_bound(ep, digest, state.got - offset, waited, consumed, busy, size - state.got):
                            return True  # (closing the answer drops its connection)
        if state.got != size:
            raise TransportError(f"blob {digest}: {ep.label} ended the stream at byte {state.got} of {size}")
        return False
