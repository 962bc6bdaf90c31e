"""Images of the store as the use cases read them: finding one by name or ID
(:func:`resolve_image`), its record, manifest, config and layers (:func:`open_image`, every
piece already verified when it was committed), a layer as its uncompressed tar stream
(:class:`LayerReader`), and the index record of a verified image (:func:`image_record`, built
alike by pull, load and verify).  Never prints.
"""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import dataclass

from imgctl.codecs import decompressed_steps
from imgctl.errors import ImageNotFound, InvalidReference, StoreError, UnsupportedManifest, UsageError, VerificationError
from imgctl.oci import MAX_MANIFEST_SIZE, ImageConfig, Manifest, layer_compression, parse_config, parse_document
from imgctl.reference import looks_like_image_id, parse
from imgctl.store import ImageRecord, LayerRecord, Store, parse_created

__all__ = ["LocalImage", "open_image", "image_record", "resolve_image", "resolve_image_id", "LayerReader"]


def resolve_image(store: Store, name: str) -> tuple[str, bool]:
    """(full image ID, named by ID) for an ID, a unique ID prefix, NAME[:TAG] or NAME@DIGEST.

    As docker: a full ID first, then a name in the index, then an ID prefix.
    """
    if looks_like_image_id(name):
        image_id = name if name.startswith("sha256:") else f"sha256:{name}"
        if store.index.image(image_id) is None:
            raise ImageNotFound(f"No such image: {name}")
        return image_id, True
    shown = name
    try:
        ref = parse(name)
    except InvalidReference:
        ref = None
    if ref is not None:
        shown = ref.familiar()
        found = (
            store.index.digest_target(ref.repository, ref.digest)
            if ref.digest
            else store.index.tag_target(ref.repository, ref.tag or "latest")
        )
        if found:
            return found, False
    text = name[7:] if name.startswith("sha256:") else name
    if re.fullmatch(r"[0-9a-f]{1,63}", text):
        rows = store.index.image_ids_with_prefix(text, 2)
        if len(rows) == 1:
            return rows[0], True
        if len(rows) > 1:
            raise UsageError(f"ambiguous image ID prefix {text!r}: it matches several images")
        shown = name
    raise ImageNotFound(f"No such image: {shown}")


def resolve_image_id(store: Store, name: str) -> str:
    return resolve_image(store, name)[0]


@dataclass(frozen=True, slots=True)
class LocalImage:
    """An image of the store with its documents parsed."""

    record: ImageRecord
    manifest: Manifest
    manifest_bytes: bytes
    config: ImageConfig
    config_bytes: bytes
    layers: tuple[LayerRecord, ...]  # in manifest order

    @property
    def id(self) -> str:
        return self.record.id


def open_image(store: Store, image_id: str, record: ImageRecord | None = None) -> LocalImage:
    """Read an image's manifest, config and layer records from the store (``record``: one
    platform of a multi-platform image, see imgctl.platforms)."""
    rec = store.index.image(image_id) if record is None else record
    if rec is None:
        raise StoreError(f"No such image: {image_id}")
    manifest_bytes = store.read_blob(rec.manifest_digest, MAX_MANIFEST_SIZE)
    doc = parse_document(manifest_bytes, rec.manifest_media_type)
    if not isinstance(doc, Manifest):
        raise UnsupportedManifest(f"image {image_id}: manifest {rec.manifest_digest} is not an image manifest")
    config_bytes = store.read_blob(doc.config.digest, MAX_MANIFEST_SIZE)
    config = parse_config(config_bytes)
    layers = []
    for desc, diff_id in zip(doc.layers, config.diff_ids):
        lr = store.index.layer(desc.digest)
        if lr is None:
            raise StoreError(f"image {image_id}: layer {desc.digest} is not recorded in the store")
        if lr.diff_id != diff_id:
            raise StoreError(f"image {image_id}: layer {desc.digest} does not match the config's diff_id {diff_id}")
        layers.append(lr)
    if len(layers) != len(doc.layers) or len(config.diff_ids) != len(doc.layers):
        raise StoreError(f"image {image_id}: the manifest and the config disagree on the number of layers")
    return LocalImage(rec, doc, manifest_bytes, config, config_bytes, tuple(layers))


def image_record(manifest_digest: str, manifest: Manifest, config: ImageConfig, layers: list[LayerRecord]) -> ImageRecord:
    """The index entry for an image whose blobs are all verified (pull and load build it alike)."""
    return ImageRecord(
        id=manifest.config.digest,
        manifest_digest=manifest_digest,
        manifest_media_type=manifest.media_type,
        created=config.created,
        created_ts=parse_created(config.created),
        os=config.os,
        architecture=config.architecture,
        variant=config.variant,
        size=sum(r.uncompressed_size for r in layers),
        compressed_size=sum(r.size for r in layers),
        labels={str(k): str(v) for k, v in config.labels.items()},
        added_ts=time.time(),
    )


class LayerReader:
    """A layer blob of the store as its uncompressed tar stream (a read-only file object).

    Decompression is pull-based: each step yields at most ``OUT_STEP`` bytes, whatever the
    compression ratio (a few KiB of zstd can describe GiBs), so memory stays flat.  The
    diff_id and the uncompressed size are checked when the stream ends; more bytes than
    ``max_size`` (default: the size recorded when the layer was verified) abort at once.
    """

    OUT_STEP = 1024 * 1024

    def __init__(self, store: Store, layer: LayerRecord, *, max_size: int | None = None) -> None:
        self.layer = layer
        self.max_size = layer.uncompressed_size if max_size is None else max_size
        self._buf = bytearray()
        self._hash = hashlib.sha256()
        self._size = 0
        self._f = store.open_blob(layer.digest)
        self._steps = decompressed_steps(self._f, layer_compression(layer.media_type), self.OUT_STEP)
        self._eof = False
        self.closed = False

    def _fill(self) -> bool:
        """Decode one more step; False at the (verified) end of the stream."""
        if self._eof:
            return False
        piece = next(self._steps, None)
        if piece is None:
            self._eof = True
            if self._size != self.layer.uncompressed_size or f"sha256:{self._hash.hexdigest()}" != self.layer.diff_id:
                raise VerificationError(f"filesystem layer verification failed for digest {self.layer.digest}")
            return False
        self._size += len(piece)
        if self._size > self.max_size:
            raise VerificationError(f"layer {self.layer.digest} inflates beyond {self.max_size} bytes; refusing to read it")
        self._hash.update(piece)
        self._buf += piece
        return True

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            while self._fill():
                pass
            out = bytes(self._buf)
            self._buf.clear()
            return out
        while len(self._buf) < n and self._fill():
            pass
        out = bytes(self._buf[:n])
        del self._buf[:n]  # O(1) at the front of a bytearray
        return out

    def chunks(self):
        """The uncompressed bytes in pieces, verified at the end."""
        while True:
            if self._buf:
                out = bytes(self._buf)
                self._buf.clear()
                yield out
            if not self._fill() and not self._buf:
                return

    def close(self) -> None:
        if not self.closed:
            self._f.close()
            self.closed = True

    def __enter__(self) -> "LayerReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
