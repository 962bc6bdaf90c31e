"""What the store knows about one image: ``inspect`` documents and ``history`` rows.  Never prints.

:func:`open_image` is the one way the other use cases (save, export, push) read an
image back from the store: its record, manifest, config and layers, every piece
already verified when it was committed.
"""

from __future__ import annotations

import hashlib

from dataclasses import dataclass

from imgctl.codecs import decompressed_steps
from imgctl.errors import ImageNotFound, ImgctlError, StoreError, UnsupportedManifest
from imgctl.images import resolve_image
from imgctl.oci import MAX_MANIFEST_SIZE, ImageConfig, Manifest, parse_config, parse_document
from imgctl.reference import familiar_name
from imgctl.store import ImageRecord, LayerRecord, Store, parse_created

__all__ = [
    "LocalImage",
    "HistoryEntry",
    "open_image",
    "image_references",
    "inspect_image",
    "inspect_images",
    "image_history",
    "LayerReader",
]


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


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: str  # the image ID for the newest entry, "<missing>" below it (as docker)
    created: str | None  # RFC 3339 as in the config
    created_ts: float | None
    created_by: str
    size: int  # uncompressed size of the layer it made; 0 for an empty layer
    comment: str
    empty_layer: bool


def open_image(store: Store, image_id: str, record: ImageRecord | None = None) -> LocalImage:
    """Read an image's manifest, config and layer records from the store (``record``: one
    platform of a multi-platform image, see imgctl.platforms)."""
    rec = store.image(image_id) if record is None else record
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
        lr = store.layer(desc.digest)
        if lr is None:
            raise StoreError(f"image {image_id}: layer {desc.digest} is not recorded in the store")
        if lr.diff_id != diff_id:
            raise StoreError(f"image {image_id}: layer {desc.digest} does not match the config's diff_id {diff_id}")
        layers.append(lr)
    if len(layers) != len(doc.layers) or len(config.diff_ids) != len(doc.layers):
        raise StoreError(f"image {image_id}: the manifest and the config disagree on the number of layers")
    return LocalImage(rec, doc, manifest_bytes, config, config_bytes, tuple(layers))


def image_references(store: Store, image_id: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """(tags, digests): fully qualified (repository, tag) and (repository, manifest digest) pairs, sorted."""
    tags = sorted(store.index.tags_of(image_id))
    return tags, sorted(store.index.repo_digests(image_id))


def inspect_image(store: Store, image_id: str, record: ImageRecord | None = None) -> dict:
    """docker's ``image inspect`` document for one image, plus the manifest's layers
    (``record``: one platform of a multi-platform image)."""
    img = open_image(store, image_id, record)
    raw = img.config.raw
    tags, digests = image_references(store, image_id)
    doc: dict = {
        "Id": img.id,
        "RepoTags": [familiar_name(r, t) for r, t in tags],
        "RepoDigests": [familiar_name(r, digest=d) for r, d in digests],
        "Parent": raw.get("parent") if isinstance(raw.get("parent"), str) else "",
        "Comment": raw.get("comment") if isinstance(raw.get("comment"), str) else "",
        "Created": img.config.created or "",
        "DockerVersion": raw.get("docker_version") if isinstance(raw.get("docker_version"), str) else "",
        "Author": raw.get("author") if isinstance(raw.get("author"), str) else "",
        "Config": raw.get("config") if isinstance(raw.get("config"), dict) else None,
        "Architecture": img.config.architecture,
    }
    if img.config.variant:
        doc["Variant"] = img.config.variant
    doc["Os"] = img.config.os
    if isinstance(raw.get("os.version"), str) and raw["os.version"]:
        doc["OsVersion"] = raw["os.version"]
    doc["Size"] = img.record.size
    doc["RootFS"] = {"Type": "layers", "Layers": list(img.config.diff_ids)}
    doc["Descriptor"] = {
        "mediaType": img.manifest.media_type,
        "digest": img.record.manifest_digest,
        "size": len(img.manifest_bytes),
    }
    doc["Manifest"] = {
        "MediaType": img.manifest.media_type,
        "Digest": img.record.manifest_digest,
        "Size": len(img.manifest_bytes),
        "Config": {
            "MediaType": img.manifest.config.media_type,
            "Digest": img.manifest.config.digest,
            "Size": img.manifest.config.size,
        },
        "Layers": [
            {
                "MediaType": desc.media_type,
                "Digest": desc.digest,
                "Size": desc.size,
                "DiffID": lr.diff_id,
                "UncompressedSize": lr.uncompressed_size,
            }
            for desc, lr in zip(img.manifest.layers, img.layers)
        ],
    }
    return doc


def inspect_images(store: Store, names: list[str], platform=None) -> tuple[list[dict], list[ImgctlError]]:
    """Documents for each name that resolves, and one error per name that does not (as docker);
    ``platform``: that platform of each (multi-platform) image."""
    from imgctl.platforms import platform_record

    docs: list[dict] = []
    errors: list[ImgctlError] = []
    for name in names:
        try:
            image_id, _ = resolve_image(store, name)
            docs.append(inspect_image(store, image_id, platform_record(store, image_id, platform, name)))
        except ImageNotFound:
            errors.append(ImageNotFound(f"No such image: {name}"))  # docker names it as given here
        except ImgctlError as e:
            errors.append(e)
    return docs, errors


def image_history(store: Store, name: str, platform=None) -> list[HistoryEntry]:
    """The config's history aligned with the layers, newest first (docker's ``history``);
    ``platform``: that platform of a multi-platform image."""
    from imgctl.platforms import platform_record

    image_id, _ = resolve_image(store, name)
    img = open_image(store, image_id, platform_record(store, image_id, platform, name))
    raw_history = img.config.raw.get("history")
    history = [h for h in raw_history if isinstance(h, dict)] if isinstance(raw_history, list) else []
    sizes = [lr.uncompressed_size for lr in img.layers]
    entries: list[HistoryEntry] = []
    if not history:
        # No history in the config: one row per layer, as docker shows such images.
        for size in sizes:
            entries.append(HistoryEntry("<missing>", None, None, "", size, "", False))
    else:
        layer = 0
        for h in history:
            empty = h.get("empty_layer") is True
            size = 0
            if not empty:
                size = sizes[layer] if layer < len(sizes) else 0
                layer += 1
            created = h.get("created") if isinstance(h.get("created"), str) else None
            entries.append(
                HistoryEntry(
                    "<missing>",
                    created,
                    parse_created(created),
                    h.get("created_by") if isinstance(h.get("created_by"), str) else "",
                    size,
                    h.get("comment") if isinstance(h.get("comment"), str) else "",
                    empty,
                )
            )
    entries.reverse()
    if entries:
        top = entries[0]
        entries[0] = HistoryEntry(img.id, top.created, top.created_ts, top.created_by, top.size, top.comment, top.empty_layer)
    return entries


# -- reading a layer back ----------------------------------------------------------------------
class LayerReader:
    """A layer blob of the store as its uncompressed tar stream (a read-only file object).

    Decompression is pull-based: each step yields at most ``OUT_STEP`` bytes, whatever the
    compression ratio (a few KiB of zstd can describe GiBs), so memory stays flat.  The
    diff_id and the uncompressed size are checked when the stream ends; more bytes than
    ``max_size`` (default: the size recorded when the layer was verified) abort at once.
    """

    OUT_STEP = 1024 * 1024

    def __init__(self, store: Store, layer: LayerRecord, *, max_size: int | None = None) -> None:
        from imgctl.oci import layer_compression

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
        from imgctl.errors import VerificationError

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
