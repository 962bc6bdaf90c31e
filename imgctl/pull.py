"""Pull: resolve a reference, fetch and verify everything, record the image.

Returns data and reports progress through a callback; never prints.
"""

from __future__ import annotations

import hashlib
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from imgctl.codecs import OUT_CHUNK, Decoder
from imgctl.config import Config
from imgctl.events import Event, Kind, Progress
from imgctl.errors import ImgctlError, Interrupted, PlatformNotFound, UnsupportedManifest, VerificationError
from imgctl.localimage import image_record
from imgctl.oci import (
    MAX_MANIFEST_SIZE,
    Index,
    Manifest,
    Platform,
    choose_manifest,
    host_platform,
    layer_compression,
    parse_config,
    parse_document,
)
from imgctl.platforms import IndexDoc, attestation_blobs, attestation_entries, image_entries, keep_attestations, record_image
from imgctl.reference import Reference
from imgctl.store import LayerRecord, Store

if TYPE_CHECKING:
    import concurrent.futures as cf

__all__ = ["PullResult", "pull", "pull_all_tags"]

# Received bytes are written, hashed and handed to the inflate thread in pieces of at least
# this size: every step releases and retakes the GIL, and per 64 KiB read those hand-overs
# between the download, inflate and diff_id threads cost more than the work.  Larger pieces
# gain little more and cost memory (each thread's malloc arena keeps a few of them).
BATCH = 256 * 1024
RECORD_EVERY = 1.0  # seconds: verified layers are recorded in the index at most this often (and at the end)
INLINE_DECODE = BATCH  # layers up to this size are decompressed on the download thread itself
# Layers up to this size are published in batches: checked at once, then made durable with one
# filesystem sync for the batch and renamed into place (an fsync each cost more than the
# download of a small layer).  A batch is published when it has PUBLISH_BATCH blobs, when
# verified layers are recorded (RECORD_EVERY) and at the end, always before the index names them.
PUBLISH_SMALL = BATCH
PUBLISH_BATCH = 128


@dataclass(slots=True)
class PullResult:
    reference: Reference
    image_id: str
    digest: str  # what the reference resolved to (index digest for multi-platform images)
    # "Downloaded newer image": the tag (or digest) is new or moved, or this pull committed a
    # blob the store did not have (after ``verify --repair``, say).  Decided from what this pull
    # did, not from the index before it: two processes pulling the same image both fetch.
    changed: bool
    downloaded_bytes: int = 0  # every byte received, the manifest included
    blobs_fetched: int = 0  # blobs (manifests, config, layers) committed by this pull
    layers: list[str] = field(default_factory=list)


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


class _Cancelled(Exception):
    pass


class _ThreadedDecoder:
    """A ``Decoder`` whose decompression runs on a thread of its own, while the calling
    (download) thread receives, hashes and writes the blob and also hashes the tar that
    comes back.  zlib, ISA-L, zstd and hashlib release the GIL, so one big layer keeps both
    cores busy; two threads per layer rather than three is about 10% faster on 2 cores
    (fewer hand-overs; measured with benchmarks/floor_pull.py's pipeline).  Both queues are
    bounded, so memory stays flat however well the layer compresses; the caller never blocks
    on one queue while the inflater blocks on the other.  A decoding error is kept and
    reported by ``finish()`` (after the caller has checked the blob's digest)."""

    _DONE = object()
    _POLL = 0.005  # seconds: how long the caller waits for output before trying its input again

    def __init__(self, compression: str, depth: int = 8, out_depth: int = 8) -> None:
        self._hash = hashlib.sha256()
        self._in: "queue.Queue" = queue.Queue(maxsize=depth)
        self._out: "queue.Queue" = queue.Queue(maxsize=out_depth)
        self._inner = Decoder(compression, sink=self._out.put)
        self._error: VerificationError | None = None
        self._ended = False  # the end marker went in
        self._drained = False  # the inflater's end marker came out
        self._thread = threading.Thread(target=self._inflate, name="inflate", daemon=True)
        self._thread.start()

    @property
    def size(self) -> int:
        return self._inner.size

    def _inflate(self) -> None:
        try:
            while (chunk := self._in.get()) is not self._DONE:
                if self._error is None:
                    try:
                        self._inner.feed(chunk)
                    except VerificationError as e:
                        self._error = e  # keep draining so the producer never blocks
                    except Exception as e:  # noqa: BLE001 - anything else must not stall the producer either
                        self._error = VerificationError(f"cannot decompress the layer: {e}")
            if self._error is None:
                try:
                    self._inner.finish()  # flushes what zstd still holds into the queue
                except VerificationError as e:
                    self._error = e
        finally:
            self._out.put(self._DONE)

    def _take(self, wait: float | None) -> bool:
        """Hash one piece of output (waiting up to ``wait`` seconds; None: not at all)."""
        try:
            chunk = self._out.get(wait is not None, wait)
        except queue.Empty:
            return False
        if chunk is self._DONE:
            self._drained = True
            return False
        self._hash.update(chunk)
        return True

    def _put(self, item) -> None:
        # While the input queue is full, hash output instead of blocking: the inflater may
        # itself be waiting for room in the output queue.
        while True:
            try:
                self._in.put_nowait(item)
                return
            except queue.Full:
                self._take(self._POLL)

    def feed(self, data: bytes) -> None:
        self._put(data)
        while self._take(None):  # whatever output is ready
            pass

    def finish(self) -> str:
        self.close()
        if self._error is not None:
            raise self._error
        return "sha256:" + self._hash.hexdigest()

    def close(self) -> None:
        if not self._ended:
            self._ended = True
            self._put(self._DONE)
        while not self._drained:
            self._take(self._POLL)
        self._thread.join()


def _layer_failed(digest: str) -> VerificationError:
    return VerificationError(f"filesystem layer verification failed for digest {digest}")


class _LayerSink:
    """Where a layer's bytes go while it downloads (a registry ``BlobSink``): the store's writer
    and the decoder that derives its diff_id, in batches of BATCH bytes (or every 0.1 s on a
    slow link, so that progress and the resumable partial on disk never lag behind for long)."""

    def __init__(self, writer, desc, decoder: type, cancel: threading.Event, progress: Progress) -> None:
        self._writer = writer
        self._desc, self._short = desc, _short(desc.digest)
        self._decoder = decoder  # Decoder or _ThreadedDecoder
        self._cancel = cancel
        self._progress = progress
        self.decoder = decoder(layer_compression(desc.media_type))
        self.spool_dir = writer.path.parent  # the store's ingest directory: multipart spools ranges there
        self.bad_data: VerificationError | None = None  # the decoder's complaint, judged once the digest is checked
        self._batch: list[bytes] = []  # received, not yet written or decoded
        self._batched = 0
        self._last = 0.0

    @property
    def written(self) -> int:
        return self._writer.written + self._batched

    def write(self, chunk: bytes) -> None:
        if self._cancel.is_set():
            raise _Cancelled()
        self._batch.append(chunk)
        self._batched += len(chunk)
        now = time.monotonic()
        if self._batched >= BATCH or now - self._last > 0.1:
            self.flush()
            if now - self._last > 0.1:
                self._last = now
                self._progress(Event(Kind.DOWNLOADING, self._short, self._writer.written, self._desc.size))

    def flush(self) -> None:
        if self._batch:
            data = self._batch[0] if len(self._batch) == 1 else b"".join(self._batch)
            self._batch, self._batched = [], 0
            self._writer.write(data)
            self.feed(data)

    def feed(self, chunk: bytes) -> None:
        """Bytes the writer holds already, to the decoder only."""
        if self.bad_data is None:
            try:
                self.decoder.feed(chunk)
            except VerificationError as e:
                # Maybe a mirror's (or a stale partial's) wrong bytes: judged once the digest is checked.
                self.bad_data = e

    def hexdigest(self) -> str:
        # Asked before a download ends normally: every byte received is then written and fed,
        # and the digest check covers them all.
        self.flush()
        return self._writer.hexdigest()

    def reset(self) -> None:
        # The blob starts over at byte 0 (an endpoint ignored Range, or the bytes so far did
        # not verify): nothing written or decoded so far counts.
        self._batch, self._batched = [], 0
        self._writer.reset()
        self.decoder.close()
        self.decoder = self._decoder(layer_compression(self._desc.media_type))
        self.bad_data = None


class _ConfigRefused(VerificationError):
    """A layer stops (its partial dropped): the image's config was refused, the pull fails with that error."""


class _ConfigGate:
    """The image config's verdict, which layers wait for only before they are committed: a
    config not in the store is fetched alongside the first layers rather than before them
    (one round trip less), and no layer of an image whose config is refused is kept."""

    def __init__(self, cancel: threading.Event) -> None:
        self._cancel = cancel
        self._done = threading.Event()
        self.doc: ImageConfig | None = None
        self.refused = False

    def settle(self, doc: ImageConfig | None) -> None:
        """The config checked out (``doc``), or None: it was refused (or the pull stopped first)."""
        self.doc, self.refused = doc, doc is None
        self._done.set()

    def diff_id(self, i: int) -> str:
        """The diff_id of layer ``i``, once the config checked out."""
        while not self._done.wait(0.2):
            if self._cancel.is_set():
                raise _Cancelled()
        if self.doc is None:
            raise _ConfigRefused("image config refused")
        return self.doc.diff_ids[i]


INTERRUPTED = "interrupted: pull stopped; the next pull resumes where it left off"  # Ctrl-C's message
FIRST_LAYER_WAIT = 1.0  # seconds the config's GET waits for the first layer's to leave first


def _fetch_config(client, ref: Reference, desc, first_layer: threading.Event) -> cf.Future:
    """The config blob's GET, on a thread of its own beside the layers' GETs.  It leaves once the
    first layer's has (``first_layer``): that one gets the connection already open, the config
    (needed only when a layer is done) a new one."""
    import concurrent.futures as cf  # (here: an up-to-date pull does not load it)

    fut: cf.Future = cf.Future()

    def run() -> None:
        first_layer.wait(FIRST_LAYER_WAIT)
        if fut.set_running_or_notify_cancel():
            try:
                fut.set_result(client.get_blob(ref.domain, ref.path, desc.digest, desc.size))
            except BaseException as e:  # noqa: BLE001 - handed to the pull's own thread
                fut.set_exception(e)

    threading.Thread(target=run, name="config", daemon=True).start()
    return fut


class _Puller:
    def __init__(self, store: Store, client, config: Config, progress: Progress, cancel: threading.Event) -> None:
        self.store = store
        self.client = client
        self.config = config
        self.progress = progress
        self.cancel = cancel
        self.downloaded = 0
        self.fetched = 0
        self.awaited = 0  # blobs another process fetched while this pull waited for them
        self._lock = threading.Lock()
        self._unrecorded: list[LayerRecord] = []  # verified layers not yet in the index
        self.first_layer = threading.Event()  # set when the first layer's download starts (or none is needed)
        self._unpublished: list[tuple] = []  # (writer, record) checked, not yet renamed into place

    def _verified(self, rec: LayerRecord) -> LayerRecord:
        """A layer whose blob is committed and whose diff_id checked out: recorded by ``record()``
        in batches, one transaction for many layers instead of one each.  Until then a crash
        costs only a re-hash: the next pull re-derives an unrecorded blob's diff_id locally."""
        with self._lock:
            self._unrecorded.append(rec)
        return rec

    def _check_later(self, writer, rec: LayerRecord) -> None:
        """A small layer whose blob checked out: published with others (``publish``)."""
        with self._lock:
            self._unpublished.append((writer, rec))
            full = len(self._unpublished) >= PUBLISH_BATCH
        if full:
            self.publish()

    def publish(self) -> None:
        """Make checked blobs durable and visible (one filesystem sync); then they may be recorded."""
        with self._lock:
            batch, self._unpublished = self._unpublished, []
        if batch:
            self.store.publish([w for w, _ in batch])
            for _, rec in batch:
                self._verified(rec)

    def pending(self) -> bool:
        with self._lock:
            return bool(self._unpublished)

    def record(self) -> None:
        self.publish()
        with self._lock:
            recs, self._unrecorded = self._unrecorded, []
        if recs:
            self.store.sync_blobs()  # their blobs' names are durable before the index has them
            self.store.index.record_layers(recs)

    def _count(self, n: int, blobs: int = 0) -> None:
        with self._lock:
            self.downloaded += n
            self.fetched += blobs

    def manifest_bytes(self, ref: Reference, digest: str, display: str) -> tuple[bytes, str]:
        """A manifest by digest: from the store when present, else from the registry."""
        if self.store.has_blob(digest):
            data = self.store.read_blob(digest, MAX_MANIFEST_SIZE)
            return data, ""
        fm = self.client.get_manifest(ref.domain, ref.path, digest, display=display)
        self._count(len(fm.data))
        return fm.data, fm.media_type

    def put_small(self, digest: str, data: bytes) -> None:
        """Commit a manifest or config held in memory (verified against ``digest`` on commit)."""
        if not self.store.has_blob(digest):
            self.store.put_blob(digest, data)
            self._count(0, 1)

    def layer(self, ref: Reference, desc, gate: _ConfigGate, i: int, missing: bool = False) -> LayerRecord:
        """Make sure a layer blob is in the store and its diff_id (layer ``i``'s in the config
        ``gate`` settles) checks out.  ``missing``: the caller has just found it absent (a blob
        committed since is found once the writer has its lock, so it is not looked up twice:
        one index query and stat less per layer)."""
        short = _short(desc.digest)
        have = None if missing else self._stored(desc, gate, i)
        if have is not None:
            return have
        # A small layer is inflated inline: a thread of its own costs more than it saves there
        # (a thread start and queue hand-overs per layer: most of the time of a 5,000-layer pull).
        decoder = _ThreadedDecoder if desc.size > INLINE_DECODE else Decoder
        waited = False

        def wait(delay: float) -> None:
            # Another process is fetching this blob: wait for it (docker's "Waiting") rather
            # than download the same bytes twice; a cancelled pull stops waiting at once.
            nonlocal waited
            if not waited:
                waited = True
                self.progress(Event(Kind.WAITING, short))
            if self.cancel.wait(delay):
                raise _Cancelled()

        # Resumable: an interrupted earlier download of this blob is re-hashed and continued
        # (also one the process this pull waited for left behind when it died or gave up).
        writer = self.store.writer(desc.digest, desc.size, resumable=True, wait=wait)
        if self.store.has_blob(desc.digest):
            # Committed by the process this pull waited for (or just before the lock was taken):
            # no bytes to fetch; its diff_id is checked here as for any blob already stored.
            writer.abort()
            have = self._stored(desc, gate, i)
            if have is None:  # removed again meanwhile (verify --repair): start over
                return self.layer(ref, desc, gate, i)
            if waited:
                with self._lock:
                    self.awaited += 1
                self.progress(Event(Kind.DOWNLOADED, short))
            return have
        sink = _LayerSink(writer, desc, decoder, self.cancel, self.progress)
        try:
            if writer.on_disk:
                self.first_layer.set()  # (re-hashing the partial first: the config need not wait for it)
                self.progress(Event(Kind.RESUMING, short, writer.on_disk, desc.size,
                                    text=f"Resuming after {writer.on_disk} bytes already downloaded"))
                for chunk in writer.existing():
                    sink.feed(chunk)
            resumed = writer.written
            self.progress(Event(Kind.DOWNLOADING, short, writer.written, desc.size))
            self.first_layer.set()
            self.client.fetch_blob(ref.domain, ref.path, desc, sink)
            # The client verified size and digest: these are the bytes the manifest names.
            sink.flush()
            if sink.bad_data is not None:
                raise sink.bad_data
            self._count(writer.written - resumed, 1)
            self.progress(Event(Kind.VERIFYING, short))
            got_diff_id = sink.decoder.finish()
            diff_id = gate.diff_id(i)  # (the config may still be on its way)
            later = desc.size <= PUBLISH_SMALL and got_diff_id == diff_id
            if later:
                writer.check()  # checks size and digest again; published with others (publish())
            else:
                writer.commit(sync_dir=False)  # checks size and digest again; publishes the blob (record() syncs)
        except VerificationError:
            writer.abort()  # bad bytes are never kept for a resume
            raise
        except BaseException:
            if gate.refused:
                writer.abort()  # nothing of an image whose config was refused is kept
                raise
            # Interrupted or a network failure: keep what arrived for the next pull to resume
            # from (it is re-hashed then, like any partial).
            try:
                sink.flush()
            except ImgctlError:
                pass  # a full disk, say: the partial simply ends earlier
            writer.suspend()
            raise
        finally:
            sink.decoder.close()
        if got_diff_id != diff_id:
            # The compressed blob is exactly what the manifest names, so it stays; the image is refused.
            self.store.index.record_layers([LayerRecord(desc.digest, got_diff_id, desc.size, sink.decoder.size, desc.media_type)])
            raise _layer_failed(desc.digest)
        rec = LayerRecord(desc.digest, diff_id, desc.size, sink.decoder.size, desc.media_type)
        if later:
            self._check_later(writer, rec)
        else:
            self._verified(rec)
        self.progress(Event(Kind.DOWNLOADED, short))
        return rec

    def _stored(self, desc, gate: _ConfigGate, i: int) -> LayerRecord | None:
        """The layer's record when its blob is in the store already (its diff_id checked against
        layer ``i``'s in the config ``gate`` settles), else None."""
        known = self.store.index.layer(desc.digest)
        if known is not None and self.store.has_blob(desc.digest):
            if known.diff_id != gate.diff_id(i):
                raise _layer_failed(desc.digest)
            return known
        if self.store.has_blob(desc.digest):
            # Committed by a process that stopped before recording it (or has not yet): re-derive locally.
            self.first_layer.set()  # (no download here: the config need not wait for it)
            return self._verified(self._verify_local(desc, gate.diff_id(i)))
        return None

    def _verify_local(self, desc, diff_id: str) -> LayerRecord:
        decoder = Decoder(layer_compression(desc.media_type))
        with self.store.open_blob(desc.digest) as f:
            while chunk := f.read(OUT_CHUNK):
                decoder.feed(chunk)
        got = decoder.finish()
        if got != diff_id:
            raise _layer_failed(desc.digest)
        return LayerRecord(desc.digest, diff_id, desc.size, decoder.size, desc.media_type)


def pull(
    ref: Reference,
    *,
    store: Store,
    client,
    config: Config,
    platform: Platform | None = None,
    progress: Progress | None = None,
    all_platforms: bool = False,
    resolved: str | None = None,
    attestations: bool = False,
    member: str | None = None,
) -> PullResult:
    """Pull one image by tag or digest into ``store``.

    From an index: the platform asked for (default: the host's), added to the image the
    reference names through that index; ``all_platforms``: every platform of the index
    (attestations excepted; ``attestations`` fetches them too, for a complete copy of the
    index).  ``resolved``: the digest the reference was resolved to already; ``member``: the
    digest of the index entry to pull (instead of matching ``platform``).
    """
    if all_platforms:
        return _pull_every_platform(
            ref, store=store, client=client, config=config, progress=progress, attestations=attestations
        )
    progress = progress or (lambda e: None)
    cancel = threading.Event()
    p = _Puller(store, client, config, progress, cancel)
    want = platform or host_platform()
    display = ref.familiar()
    if ref.digest and not ref.digest.startswith("sha256:"):
        raise UnsupportedManifest(f"cannot pull {display}: only sha256 digests are supported by the store")
    by = ref.digest or ref.tag or "latest"

    with store.lease() as lease:
        top = client.get_manifest(ref.domain, ref.path, resolved or by, display=display)
        progress(Event(Kind.PULLING_FROM, text=f"{by}: Pulling from {ref.path}"))
        p._count(len(top.data))
        doc = top_doc = parse_document(top.data, top.media_type)
        blobs: list[tuple[str, str, int]] = []
        index_digest = top.digest
        index_doc = None
        if isinstance(doc, Index):
            index_doc = IndexDoc(top.digest, top.media_type or doc.media_type, top.data, doc)
            lease.add(top.digest)
            p.put_small(top.digest, top.data)
            blobs.append(("index", top.digest, 0))
            entry = next((d for d in image_entries(doc) if d.digest == member), None) or choose_manifest(doc, want)
            lease.add(entry.digest)
            if entry.size > MAX_MANIFEST_SIZE:
                raise VerificationError(f"manifest {entry.digest} is too large ({entry.size} bytes)")
            data, media_type = p.manifest_bytes(ref, entry.digest, display)
            if len(data) != entry.size:
                raise VerificationError(f"manifest {entry.digest} does not match the size its index declares")
            doc = parse_document(data, media_type or entry.media_type)
            if isinstance(doc, Index):
                raise VerificationError(f"manifest {entry.digest} for {want} is an index, not an image manifest")
            manifest_digest, manifest_data = entry.digest, data
        else:
            manifest_digest, manifest_data = top.digest, top.data
        manifest: Manifest = doc
        if len(manifest.layers) > config.max_layers:
            # Before anything else is fetched or leased: each layer costs a request, a file and rows.
            raise UnsupportedManifest(
                f"cannot pull {display}: manifest {manifest_digest} lists {len(manifest.layers)} layers, "
                f"more than the limit of {config.max_layers} (max-layers in config.toml)"
            )
        lease.add(manifest_digest, manifest.config.digest, *(l.digest for l in manifest.layers))
        p.put_small(manifest_digest, manifest_data)
        blobs.append(("manifest", manifest_digest, 0))

        cfg_desc = manifest.config
        if cfg_desc.size > MAX_MANIFEST_SIZE:
            raise VerificationError(f"image config {cfg_desc.digest} is too large ({cfg_desc.size} bytes)")
        check_platform = platform is not None and not isinstance(top_doc, Index)

        config_bytes: list[bytes] = []

        def verdict(cfg_bytes: bytes) -> ImageConfig:
            """The config checked against the platform asked for and the manifest."""
            config_bytes.append(cfg_bytes)
            config_doc = parse_config(cfg_bytes)
            if check_platform:
                got = Platform(config_doc.os or "unknown", config_doc.architecture or "unknown", config_doc.variant)
                if not got.matches(want):
                    raise PlatformNotFound(
                        f"image with reference {display} was found but does not match the specified "
                        f"platform: wanted {want.normalized()}, actual: {got.normalized()}"
                    )
            if len(config_doc.diff_ids) != len(manifest.layers):
                raise VerificationError(
                    f"image config {cfg_desc.digest} lists {len(config_doc.diff_ids)} layers, "
                    f"the manifest {len(manifest.layers)}"
                )
            return config_doc

        gate = _ConfigGate(cancel)
        if store.has_blob(cfg_desc.digest):
            gate.settle(verdict(store.read_blob(cfg_desc.digest, MAX_MANIFEST_SIZE)))
            layer_records = _fetch_layers(p, ref, manifest, gate)
        else:
            fetched = _fetch_config(client, ref, cfg_desc, p.first_layer)

            def settle() -> None:
                """On the pull's thread once the layers are under way: the fetched config's verdict."""
                try:
                    cfg_bytes = _result(fetched)
                    p._count(len(cfg_bytes))
                    doc = verdict(cfg_bytes)
                    # Committed at once, so another pull of this image finds it and fetches it
                    # no more (it is leased; GC keeps it until the image is recorded).
                    p.put_small(cfg_desc.digest, cfg_bytes)
                    gate.settle(doc)
                except Exception:
                    gate.settle(None)  # (Ctrl-C instead: the layers stop, their partials kept)
                    raise

            layer_records = _fetch_layers(p, ref, manifest, gate, settle)
        config_doc = gate.doc
        p.put_small(cfg_desc.digest, config_bytes[0])  # (already there when fetched: a no-op)
        blobs.append(("config", cfg_desc.digest, 0))
        for i, rec in enumerate(layer_records):
            blobs.append(("layer", rec.digest, i))

        record = image_record(manifest_digest, manifest, config_doc, layer_records)
        image_id, changed = record_image(
            store,
            record,
            blobs,
            index_doc,
            repository=ref.repository,
            tag=None if ref.digest else (ref.tag or "latest"),
            digest=index_digest,
            pinned=bool(ref.digest),
        )
    progress(Event(Kind.DIGEST, text=index_digest))
    # A blob fetched for this pull by the process it waited for counts as fetched by it.
    changed = changed or p.fetched > 0 or p.awaited > 0
    return PullResult(ref, image_id, index_digest, changed, p.downloaded, p.fetched, [r.digest for r in layer_records])


def _pull_every_platform(ref: Reference, *, client, attestations: bool = False, **kw) -> PullResult:
    """``pull --all-platforms``: each platform of the index the reference names, one after
    another (each pull verifies and records its own content); one result for them all."""
    display = ref.familiar()
    top = client.get_manifest(ref.domain, ref.path, ref.digest or ref.tag or "latest", display=display)
    doc = parse_document(top.data, top.media_type)
    if not isinstance(doc, Index):
        return pull(ref, client=client, resolved=top.digest, **kw)
    progress = kw.pop("progress", None) or (lambda e: None)
    digest_events: list[Event] = []

    def each(platform: Platform) -> Progress:
        def show(e: Event) -> None:
            if e.kind == Kind.DIGEST:  # one Digest line for the whole index, at the end
                digest_events.append(e)
            elif e.kind == Kind.PULLING_FROM:
                progress(Event(e.kind, e.id, e.current, e.total, f"{e.text} ({platform})"))
            else:
                progress(e)

        return show

    results = [
        pull(ref, client=client, platform=e.platform, resolved=top.digest, member=e.digest, progress=each(e.platform), **kw)
        for e in image_entries(doc)
    ]
    if not results:
        raise PlatformNotFound(f"{display}: the index {top.digest} lists no platform images")
    if digest_events:
        progress(digest_events[-1])
    last = results[-1]
    fetched = 0
    if attestations:
        store = kw["store"]
        with store.lease() as lease:
            fetched = _fetch_attestations(
                store, client, ref, IndexDoc(top.digest, top.media_type or doc.media_type, top.data, doc), lease
            )
            keep_attestations(store, last.image_id)
    return PullResult(
        ref,
        last.image_id,
        last.digest,
        fetched > 0 or any(r.changed for r in results),
        sum(r.downloaded_bytes for r in results),
        sum(r.blobs_fetched for r in results) + fetched,
        [d for r in results for d in r.layers],
    )


def _result(fut: cf.Future):
    """``fut``'s result; waiting in short steps keeps Ctrl-C prompt."""
    import concurrent.futures as cf

    while True:
        try:
            return fut.result(timeout=0.2)
        except cf.TimeoutError:
            continue


def _fetch_layers(
    p: _Puller, ref: Reference, manifest: Manifest, gate: _ConfigGate, settle: Callable[[], None] | None = None,
) -> list[LayerRecord]:
    """Every layer of ``manifest`` in the store and verified against the config ``gate`` settles;
    ``settle``: settles it, run once the layers' downloads are started (a config still to fetch)."""
    progress = p.progress
    todo = []
    for i, desc in enumerate(manifest.layers):
        layer_compression(desc.media_type)  # refuse unknown layer types before downloading anything
        known = p.store.index.layer(desc.digest)
        if known is None or not p.store.has_blob(desc.digest):
            todo.append(i)
    # An image already complete shows no layer lines at all (docker skips the layers when it
    # has the image's config); otherwise each layer in order: "Already exists" or "Pulling fs layer".
    todo_set = set(todo)
    if not todo:
        p.first_layer.set()  # no layer to download: the config's GET need not wait
    if todo or p.fetched:
        for i, desc in enumerate(manifest.layers):
            if i in todo_set:
                progress(Event(Kind.PULLING, _short(desc.digest), 0, desc.size))
            else:
                progress(Event(Kind.EXISTS, _short(desc.digest)))
    workers = max(1, p.config.max_concurrent_downloads)
    for n, i in enumerate(todo):
        if n >= workers:
            progress(Event(Kind.WAITING, _short(manifest.layers[i].digest)))

    if not todo:
        # Every layer is here already (an image up to date, or sharing all its layers): each is
        # checked on this thread, with no pool of threads to start and hand results back through.
        try:
            if settle is not None:
                settle()
            checked = [p.layer(ref, desc, gate, i) for i, desc in enumerate(manifest.layers)]
            p.record()
        except KeyboardInterrupt:
            _settle(p)
            raise Interrupted(INTERRUPTED) from None
        except BaseException:
            _settle(p)
            raise
        return checked

    import concurrent.futures as cf  # (here: a pull with nothing to download does not load it)

    results: list[LayerRecord | None] = [None] * len(manifest.layers)
    # Finished layers arrive on a queue (one put per layer) rather than through cf.wait()
    # over every pending future, which costs O(pending) per wake-up: O(n^2) for 5,000 layers.
    finished: "queue.SimpleQueue[int]" = queue.SimpleQueue()
    try:
        with cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="layer") as pool:
            futures = []
            done_upto = 0
            recorded_at = time.monotonic()
            try:
                # (Inside the try: a Ctrl-C while layers are being submitted stops those already running.)
                for i, desc in enumerate(manifest.layers):
                    f = pool.submit(p.layer, ref, desc, gate, i, i in todo_set)
                    f.add_done_callback(lambda _f, i=i: finished.put(i))
                    futures.append(f)
                if settle is not None:
                    settle()
                for _ in futures:
                    while True:
                        try:
                            i = finished.get(timeout=0.2)  # a timeout keeps Ctrl-C prompt
                            break
                        except queue.Empty:
                            # Checked blobs wait no longer than this to be published: another
                            # layer of this pull or another process may be waiting for one.
                            if p.pending() and time.monotonic() - recorded_at > RECORD_EVERY:
                                p.record()
                                recorded_at = time.monotonic()
                            continue
                    f = futures[i]
                    exc = f.exception()
                    if exc is not None:
                        raise exc
                    results[i] = f.result()
                    if time.monotonic() - recorded_at > RECORD_EVERY:
                        p.record()
                        recorded_at = time.monotonic()
                    # "Pull complete" in layer order, as docker registers layers one after another.
                    while done_upto < len(results) and results[done_upto] is not None:
                        if done_upto in todo_set:
                            progress(Event(Kind.COMPLETE, _short(manifest.layers[done_upto].digest)))
                        done_upto += 1
                p.record()
            except KeyboardInterrupt:
                _stop(p, futures)
                raise Interrupted(INTERRUPTED) from None
            except BaseException:
                _stop(p, futures)
                raise
    except BaseException:
        # Layers still running when the pull stopped may have checked blobs since: publish them.
        _settle(p)
        raise
    return [r for r in results if r is not None]


def _stop(p: _Puller, futures: list[cf.Future]) -> None:
    """A pull ends early: other layers stop (and stop waiting to retry); what verified is recorded."""
    p.cancel.set()
    getattr(p.client, "cancel", lambda: None)()
    for f in futures:
        f.cancel()
    _settle(p)


def _settle(p: _Puller) -> None:
    try:
        p.record()
    except ImgctlError:
        pass  # a full disk, say: those layers are re-derived from their blobs next time


def pull_all_tags(ref: Reference, *, client, **kw) -> list[PullResult]:
    """Pull every tag of ``ref``'s repository (``pull -a``)."""
    tags = client.list_tags(ref.domain, ref.path, display=ref.familiar_repository)
    return [pull(ref.with_tag(tag), client=client, **kw) for tag in sorted(set(tags))]


MAX_ATTESTATION_BLOB = 32 * 1024 * 1024  # an SBOM or provenance document, held in memory once


def _fetch_attestations(store: Store, client, ref, index: IndexDoc, lease, count=lambda n: None) -> int:
    """Fetch the index's attestation manifests and the blobs they name (each verified against
    its digest and size, none larger than a manifest may be); returns how many were fetched."""
    fetched = 0
    display = ref.familiar()
    for att in attestation_entries(index.index):
        if attestation_blobs(store, att.digest) is not None:
            continue
        if att.size > MAX_MANIFEST_SIZE:
            raise VerificationError(f"attestation manifest {att.digest} is too large ({att.size} bytes)")
        lease.add(att.digest)
        fm = client.get_manifest(ref.domain, ref.path, att.digest, display=display)
        if len(fm.data) != att.size:
            raise VerificationError(f"manifest {att.digest} does not match the size its index declares")
        doc = parse_document(fm.data, fm.media_type or att.media_type)
        if not isinstance(doc, Manifest):
            raise VerificationError(f"attestation {att.digest} is not an image manifest")
        for desc in (doc.config, *doc.layers):
            if desc.size > MAX_ATTESTATION_BLOB:
                raise VerificationError(f"attestation blob {desc.digest} is too large ({desc.size} bytes)")
            lease.add(desc.digest)
            if not store.has_blob(desc.digest):
                data = client.get_blob(ref.domain, ref.path, desc.digest, desc.size, max_size=MAX_ATTESTATION_BLOB)
                store.put_blob(desc.digest, data)  # verified: size and digest
                count(desc.size)
        store.put_blob(att.digest, fm.data)
        fetched += 1
    return fetched
