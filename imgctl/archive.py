"""``save`` and ``load``: images in and out of the store as docker-archive or oci-archive tars.

*docker-archive* is what ``docker save`` writes and ``docker load`` / ``podman load`` read:
``manifest.json`` (``[{"Config", "RepoTags", "Layers"}]``), ``repositories``, the config as
``<id>.json`` and each layer as an uncompressed tar named after its diff_id.  *oci-archive*
is an OCI image layout in a tar: ``oci-layout``, ``index.json`` (one entry per tag, with
``org.opencontainers.image.ref.name`` and ``io.containerd.image.name``) and the blobs exactly
as stored, so manifest digests survive the round trip.

Loading reads both (plain, gzip or zstd compressed), never trusts a name in the archive:
every blob goes through ``BlobWriter`` (size and digest verified) under a lease, every
layer is decompressed to check the config's diff_id, and archive member names are only
ever looked up, never used as paths.  Never prints.

Budgets: a pipe or a compressed archive is spooled into ``ingest/`` up to ``max_ratio``
(default 100) times the compressed bytes read beyond ``SPOOL_FLOOR`` (256 MiB), and never
into the last 5% (at most 1 GiB) of the filesystem; the spool is removed whatever happens.
At most ``MAX_MEMBERS`` tar members, headers bounded as in ``export``, JSON documents at
most ``jsonlimit.MAX_DEPTH`` deep; images are recorded only once the whole archive verified, and
each distinct layer is read once however many images share it.  ``save`` checks every
document and blob it writes against its digest and size as it reads it (a damaged store
fails the save, naming ``imgctl verify``; ``-o`` leaves no file), and writes docker's
familiar names in ``RepoTags``.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import tarfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from imgctl.errors import (
    ImageNotFound,
    ImgctlError,
    InvalidReference,
    PlatformNotFound,
    StoreError,
    UnsupportedManifest,
    VerificationError,
)
from imgctl.codecs import Decoder
from imgctl.localimage import LayerReader, LocalImage, image_record, open_image, resolve_image
from imgctl.oci import (
    DOCKER_CONFIG,
    DOCKER_MANIFEST,
    INDEX_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
    Platform,
    choose_manifest,
    host_platform,
    layer_compression,
    load_json,
    parse_config,
    parse_document,
)
from imgctl.platforms import (
    IndexDoc,
    attestation_blobs,
    attestation_entries,
    image_entries,
    index_for_ref,
    index_media_type,
    load_index,
    platforms,
    record_image,
    select_record,
)
from imgctl.reference import Reference, familiar_name, familiar_repository, looks_like_image_id, parse
from imgctl.store import ImageRecord, LayerRecord, Store
from imgctl.tario import BoundedTarInfo, output_file

__all__ = ["FORMATS", "SaveItem", "Loaded", "select_images", "save", "save_to_file", "load"]

FORMATS = ("docker-archive", "oci-archive")

DOCKER_LAYER_TYPES = {
    "none": "application/vnd.docker.image.rootfs.diff.tar",
    "gzip": "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "zstd": "application/vnd.docker.image.rootfs.diff.tar.zstd",
}
REF_NAME = "org.opencontainers.image.ref.name"
CONTAINERD_NAME = "io.containerd.image.name"
CHUNK = 1024 * 1024
MAX_MEMBERS = 1_000_000  # an archive's tar members (~150 bytes of memory each while loading)
MAX_RATIO = 100  # spooled (uncompressed) bytes per compressed byte of a gzip/zstd archive ...
SPOOL_FLOOR = 256 * 1024**2  # ... beyond this much
_BLOB_NAME = re.compile(r"blobs/sha256/([0-9a-f]{64})")


# == save =====================================================================================
@dataclass(frozen=True, slots=True)
class SaveItem:
    image_id: str
    refs: tuple[tuple[str, str], ...]  # (fully qualified repository, tag)


def select_images(store: Store, names: list[str]) -> list[SaveItem]:
    """What ``save NAME...`` writes, as docker: ``NAME:TAG`` that tag, a bare repository all of
    its tags, ``NAME@DIGEST`` or an ID the image without a tag.  Images in first-seen order."""
    order: list[str] = []
    refs: dict[str, list[tuple[str, str]]] = {}

    def add(image_id: str, ref: tuple[str, str] | None) -> None:
        if image_id not in refs:
            order.append(image_id)
            refs[image_id] = []
        if ref is not None and ref not in refs[image_id]:
            refs[image_id].append(ref)

    for name in names:
        ref: Reference | None = None
        if not looks_like_image_id(name):
            try:
                ref = parse(name, default_tag=False)
            except InvalidReference:
                ref = None
        if ref is not None and ref.tag and not ref.digest:
            image_id = store.index.tag_target(ref.repository, ref.tag)
            if image_id is None:
                raise ImageNotFound(f"No such image: {name}")
            add(image_id, (ref.repository, ref.tag))
            continue
        if ref is not None and not ref.tag and not ref.digest:
            rows = store.index.repository_tags(ref.repository)
            if rows:
                for tag, image_id in rows:
                    add(image_id, (ref.repository, tag))
                continue
        try:
            image_id, _ = resolve_image(store, name)
        except ImageNotFound:
            raise ImageNotFound(f"No such image: {name}") from None
        add(image_id, None)
    return [SaveItem(i, tuple(refs[i])) for i in order]


class _TarOut:
    """A minimal streaming tar writer (PAX headers when needed): members go out as they come."""

    def __init__(self, f: BinaryIO) -> None:
        self.f = f
        self.written = 0
        self.names: set[str] = set()

    def _write(self, data: bytes) -> None:
        self.f.write(data)
        self.written += len(data)

    def _header(self, name: str, size: int, kind: bytes, mode: int) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.type, info.mode, info.mtime = size, kind, mode, 0
        self._write(info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape"))
        self.names.add(name)

    def _pad(self, size: int) -> None:
        if size % tarfile.BLOCKSIZE:
            self._write(b"\0" * (tarfile.BLOCKSIZE - size % tarfile.BLOCKSIZE))

    def directory(self, name: str) -> None:
        if name not in self.names:
            self._header(name, 0, tarfile.DIRTYPE, 0o755)

    def file(self, name: str, data: bytes) -> None:
        self._header(name, len(data), tarfile.REGTYPE, 0o644)
        self._write(data)
        self._pad(len(data))

    def stream(self, name: str, size: int, chunks: Iterable[bytes]) -> None:
        self._header(name, size, tarfile.REGTYPE, 0o644)
        n = 0
        for chunk in chunks:
            n += len(chunk)
            if n > size:
                raise VerificationError(f"{name}: more than the expected {size} bytes")
            self._write(chunk)
        if n != size:
            raise VerificationError(f"{name}: {n} bytes instead of the expected {size}")
        self._pad(size)

    def close(self) -> None:
        self._write(b"\0" * (2 * tarfile.BLOCKSIZE))
        rest = self.written % tarfile.RECORDSIZE
        if rest:
            self._write(b"\0" * (tarfile.RECORDSIZE - rest))
        self.f.flush()


def _blob_chunks(store: Store, digest: str) -> Iterator[bytes]:
    """A stored blob's bytes, hashed again on the way out (a damaged store never reaches an archive)."""
    h = hashlib.sha256()
    with store.open_blob(digest) as f:
        while chunk := f.read(CHUNK):
            h.update(chunk)
            yield chunk
    if f"sha256:{h.hexdigest()}" != digest:
        raise VerificationError(f"blob {digest} in the store does not match its digest")


def _tag_name(repository: str, tag: str) -> str:
    """The familiar name, as ``docker save`` writes RepoTags (``ubuntu:18.04``, ``team/app:1.0``);
    ``load`` (ours, docker's, podman's) reads a name without a registry as docker.io."""
    return familiar_name(repository, tag)


def _check_stored(data: bytes, digest: str, size: int, what: str) -> None:
    """A blob read whole from the store must still be what the image's documents say it is."""
    if len(data) != size or f"sha256:{hashlib.sha256(data).hexdigest()}" != digest:
        raise VerificationError(f"{what} {digest} in the store does not match its digest")


def _verify_images(store: Store, images: list[LocalImage]) -> None:
    """The documents, and that every layer is there (before a byte goes out)."""
    for img in images:
        for lr in img.layers:
            if not store.has_blob(lr.digest):
                raise VerificationError(f"layer {lr.digest} is missing from the store")
        _check_stored(img.manifest_bytes, img.record.manifest_digest, len(img.manifest_bytes), "manifest")
        _check_stored(img.config_bytes, img.manifest.config.digest, img.manifest.config.size, "image config")


def save(
    store: Store, names: list[str], out: BinaryIO, *, format: str = "docker-archive", platform: Platform | None = None
) -> list[SaveItem]:
    """Write the images NAMES name to ``out`` as one archive; shared blobs are written once.

    A multi-platform image is written whole: its index byte for byte and every platform the
    store holds (see ``_indexes_of``); ``platform`` writes that platform's manifest alone."""
    if format not in FORMATS:
        from imgctl.errors import UsageError

        raise UsageError(f"unknown archive format {format!r} (docker-archive or oci-archive)")
    items = select_images(store, names)
    if not items:
        from imgctl.errors import UsageError

        raise UsageError("no images to save")
    with store.lease() as lease:  # a concurrent rmi or prune cannot take blobs away mid-save
        for item in items:
            lease.add(*store.index.image_digests(item.image_id))
        try:
            # Everything written is checked as it is read: documents here, blobs and layers
            # as they stream (a damaged store must never reach an archive, nor exit 0).
            try:
                images = [_open_for_save(store, item, platform) for item in items]
                indexes = {} if platform is not None else _indexes_of(store, items)
                _verify_images(store, images + _platform_images(store, indexes))
                for doc in indexes.values():
                    _check_stored(doc.data, doc.digest, len(doc.data), "index")
            except (StoreError, UnsupportedManifest) as e:
                raise VerificationError(str(e)) from None
            tar = _TarOut(out)
            if format == "docker-archive" and indexes:
                _save_docker_oci(store, items, images, indexes, tar)
            elif format == "docker-archive":
                _save_docker(store, items, images, tar)
            else:
                _save_oci(store, items, images, tar, indexes)
            tar.close()
        except VerificationError as e:
            raise VerificationError(f"cannot save: {e}; the store is damaged, run 'imgctl verify'") from None
    return items


def _save_docker(store: Store, items: list[SaveItem], images: list[LocalImage], tar: _TarOut) -> None:
    manifest = []
    repositories: dict[str, dict[str, str]] = {}
    for item, img in zip(items, images):
        config_name = f"{img.id.split(':', 1)[1]}.json"
        if config_name not in tar.names:
            tar.file(config_name, img.config_bytes)
        layer_names = []
        for lr in img.layers:
            name = f"{lr.diff_id.split(':', 1)[1]}.tar"
            if name not in tar.names:
                with LayerReader(store, lr) as reader:
                    tar.stream(name, lr.uncompressed_size, reader.chunks())
            layer_names.append(name)
        tags = [_tag_name(r, t) for r, t in item.refs]
        manifest.append({"Config": config_name, "RepoTags": tags, "Layers": layer_names})
        for r, t in item.refs:
            if img.layers:
                repositories.setdefault(familiar_repository(r), {})[t] = img.layers[-1].diff_id.split(":", 1)[1]
    tar.file("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    if repositories:
        tar.file("repositories", json.dumps(repositories, separators=(",", ":")).encode())


def _open_for_save(store: Store, item: SaveItem, platform: Platform | None) -> LocalImage:
    if platform is None:
        return open_image(store, item.image_id)
    name = _tag_name(*item.refs[0]) if item.refs else item.image_id
    return open_image(store, item.image_id, select_record(store, item.image_id, platform, name))


def _indexes_of(store: Store, items: list[SaveItem]) -> dict[str, IndexDoc]:
    """{image ID: the index it stands for} for the multi-platform images among ``items``: the
    index its first saved tag was pulled or loaded as, else the image's own."""
    out = {}
    for item in items:
        digest = None
        if item.refs:
            row = store.index.tag_row(*item.refs[0])
            digest = row[1] if row else None
        doc = index_for_ref(store, item.image_id, digest)
        if doc is not None:
            out[item.image_id] = doc
    return out


def _platform_images(store: Store, indexes: dict[str, IndexDoc]) -> list[LocalImage]:
    """Every platform the store holds of the multi-platform images being saved."""
    return [
        open_image(store, image_id, e.record)
        for image_id, doc in indexes.items()
        for e in platforms(store, image_id, doc.digest)
        if e.record is not None
    ]


def _oci_blobs(store: Store, tar: _TarOut, img: LocalImage) -> None:
    """An image's layers, config and manifest as ``blobs/sha256/<hex>`` (each name once)."""
    for desc in img.manifest.layers:
        _oci_blob(store, tar, desc.digest, desc.size)
    _oci_blob(store, tar, img.manifest.config.digest, img.manifest.config.size)
    _oci_blob(store, tar, img.record.manifest_digest, len(img.manifest_bytes))


def _oci_blob(store: Store, tar: _TarOut, digest: str, size: int) -> None:
    name = f"blobs/sha256/{digest.split(':', 1)[1]}"
    if name not in tar.names:
        tar.stream(name, size, _blob_chunks(store, digest))


def _oci_index_blobs(store: Store, tar: _TarOut, image_id: str, doc: IndexDoc) -> dict:
    """A multi-platform image: every platform the store holds, then the index as stored (its
    absent platforms are left out, as docker does); returns the index's descriptor."""
    for entry in platforms(store, image_id, doc.digest):
        if entry.record is not None:
            _oci_blobs(store, tar, open_image(store, image_id, entry.record))
    for att in attestation_entries(doc.index):
        for digest in attestation_blobs(store, att.digest) or ():
            _oci_blob(store, tar, digest, store.blob_path(digest).stat().st_size)
    name = f"blobs/sha256/{doc.digest.split(':', 1)[1]}"
    if name not in tar.names:
        tar.file(name, doc.data)
    return {"mediaType": index_media_type(doc), "digest": doc.digest, "size": len(doc.data)}


def _save_oci(store: Store, items: list[SaveItem], images: list[LocalImage], tar: _TarOut, indexes: dict | None = None) -> None:
    tar.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    tar.directory("blobs/")
    tar.directory("blobs/sha256/")
    entries = []

    def blob(digest: str, size: int) -> None:
        _oci_blob(store, tar, digest, size)

    for item, img in zip(items, images):
        if item.image_id in (indexes or {}):
            base = _oci_index_blobs(store, tar, item.image_id, indexes[item.image_id])
            entries += _index_entries(base, item)
            continue
        for desc in img.manifest.layers:
            blob(desc.digest, desc.size)
        blob(img.manifest.config.digest, img.manifest.config.size)
        blob(img.record.manifest_digest, len(img.manifest_bytes))
        base = {"mediaType": img.manifest.media_type, "digest": img.record.manifest_digest, "size": len(img.manifest_bytes)}
        platform = {"architecture": img.config.architecture, "os": img.config.os}
        if img.config.variant:
            platform["variant"] = img.config.variant
        if not item.refs:
            entries.append({**base, "platform": platform})
        for repository, tag in item.refs:
            ann = {CONTAINERD_NAME: f"{repository}:{tag}", REF_NAME: tag}
            entries.append({**base, "annotations": ann, "platform": platform})
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    tar.file("index.json", json.dumps(index, separators=(",", ":")).encode())


def _index_entries(base: dict, item: SaveItem) -> list[dict]:
    """index.json entries for an image: one per tag, as containerd names them."""
    if not item.refs:
        return [dict(base)]
    return [{**base, "annotations": {CONTAINERD_NAME: f"{r}:{t}", REF_NAME: t}} for r, t in item.refs]


def _save_docker_oci(
    store: Store, items: list[SaveItem], images: list[LocalImage], indexes: dict[str, IndexDoc], tar: _TarOut
) -> None:
    """docker-archive as docker 25+ writes it when an image is multi-platform: ``manifest.json``
    (each image's default platform; its config and layers named ``blobs/sha256/<hex>``, the
    layers as stored) next to an OCI layout whose ``index.json`` names each image by its
    index or manifest, so ``load`` restores every platform and the index digest."""
    tar.file("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
    tar.directory("blobs/")
    tar.directory("blobs/sha256/")
    manifest, entries = [], []
    repositories: dict[str, dict[str, str]] = {}
    for item, img in zip(items, images):
        _oci_blobs(store, tar, img)
        if item.image_id in indexes:
            base = _oci_index_blobs(store, tar, item.image_id, indexes[item.image_id])
        else:
            base = {"mediaType": img.manifest.media_type, "digest": img.record.manifest_digest, "size": len(img.manifest_bytes)}
        entries += _index_entries(base, item)
        manifest.append({
            "Config": f"blobs/sha256/{img.manifest.config.digest.split(':', 1)[1]}",
            "RepoTags": [_tag_name(r, t) for r, t in item.refs],
            "Layers": [f"blobs/sha256/{d.digest.split(':', 1)[1]}" for d in img.manifest.layers],
        })
        for r, t in item.refs:
            if img.manifest.layers:
                repositories.setdefault(r, {})[t] = img.manifest.layers[-1].digest.split(":", 1)[1]
    tar.file("index.json", json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}, separators=(",", ":")).encode())
    tar.file("manifest.json", json.dumps(manifest, separators=(",", ":")).encode())
    if repositories:
        tar.file("repositories", json.dumps(repositories, separators=(",", ":")).encode())


def save_to_file(
    store: Store, names: list[str], path: Path, *, format: str = "docker-archive", platform: Platform | None = None
) -> list[SaveItem]:
    """``save`` into ``path``, atomically: a failed save leaves no file behind (``output_file``:
    ``-o /dev/null`` is written in place, never replaced)."""
    with output_file(Path(path), lambda e, p: ImgctlError(f"cannot write {p}: {e.strerror or e}")) as f:
        return save(store, names, f, format=format, platform=platform)


# == load =====================================================================================
@dataclass(slots=True)
class Loaded:
    image_id: str
    names: list[str] = field(default_factory=list)  # familiar NAME:TAG, in archive order
    replaced: list[tuple[str, str]] = field(default_factory=list)  # (NAME:TAG, previous image ID)


def _sniff(head: bytes) -> str:
    if head[:2] == b"\x1f\x8b":
        return "gzip"
    if head[:4] == b"\x28\xb5\x2f\xfd":
        return "zstd"
    return "none"


class _SpoolLimit:
    """Where spooled bytes go: refuses past ``max_ratio`` times the compressed bytes read (beyond
    ``SPOOL_FLOOR``), and when the disk would keep less than ``_reserve`` bytes free."""

    CHECK_EVERY = 16 * CHUNK

    def __init__(self, out: BinaryIO, where: Path, compression: str, max_ratio: float) -> None:
        self.out, self.where, self.compression, self.max_ratio = out, where, compression, max_ratio
        self.consumed = self.written = self.next_check = 0
        self.error: ImgctlError | None = None

    def write(self, data: bytes) -> None:
        self.written += len(data)
        if self.compression != "none" and self.written > max(SPOOL_FLOOR, self.max_ratio * self.consumed):
            self.error = VerificationError(
                f"invalid archive: the {self.compression} input expands more than {self.max_ratio:g} times "
                f"({self.consumed} bytes to more than {self.written}); raise the limit with --max-ratio N"
            )
            raise self.error
        if self.written >= self.next_check:
            self.next_check = self.written + self.CHECK_EVERY
            st = os.statvfs(self.where)
            free, reserve = st.f_bavail * st.f_frsize, _reserve(st)
            if free < reserve + len(data):
                self.error = StoreError(
                    f"cannot load: the archive needs more room than {self.where} has "
                    f"({free} bytes free, {reserve} of them kept free)"
                )
                raise self.error
        self.out.write(data)


def _reserve(st: os.statvfs_result) -> int:
    """Free space a spool never takes: 5% of the filesystem, at most 1 GiB."""
    return min(1024**3, st.f_blocks * st.f_frsize // 20)


def _spool(store: Store, src: BinaryIO, head: bytes, compression: str, max_ratio: float) -> Path:
    """Copy (and decompress) a non-seekable or compressed input next to the store's blobs.

    Bounded (see ``_SpoolLimit``); the store's scratch file is removed on any failure (a full
    disk gives the store's one-line error)."""

    step = CHUNK if compression == "none" else 64 * 1024  # small steps: the ratio is checked per step
    with store.scratch("load", ".tar") as out:
        limit = _SpoolLimit(out, store.ingest_dir, compression, max_ratio)
        dec = Decoder(compression, sink=limit.write)
        try:
            data = head or _read(src, step)
            while data:
                limit.consumed += len(data)
                dec.feed(data)
                data = _read(src, step)
            dec.finish()
        except VerificationError as e:
            if limit.error is not None:  # raised by the sink, inside the decoder
                raise limit.error from None
            raise VerificationError(f"invalid archive: {_why(e)}") from None
        except _InputError as e:
            raise ImgctlError(f"cannot read the archive: {e.strerror or e}") from e
        return out.finish()


class _InputError(OSError):
    pass


def _read(src: BinaryIO, n: int) -> bytes:
    try:
        return src.read(n)
    except OSError as e:
        raise _InputError(e.errno, e.strerror) from e


class _Archive:
    """Random access to the members of a tar; names are keys, never paths.

    Only each member's header offset is kept (a name and an int: ~150 bytes, where a TarInfo
    costs ~600), headers are parsed again when a member is looked up; directories and other
    members that can hold nothing a load reads are not kept at all."""

    def __init__(self, f: BinaryIO, max_members: int = MAX_MEMBERS) -> None:
        self.offsets: dict[str, int] = {}
        self.layers: dict[tuple, LayerRecord] = {}  # layers verified by this load: each is read once
        self.max_ratio: float = MAX_RATIO  # a compressed layer expands at most this much (see _check_expansion)
        count = 0
        try:
            self.tar = tarfile.open(fileobj=f, mode="r:", tarinfo=BoundedTarInfo)
            while (info := self.tar.next()) is not None:
                self.tar.members.clear()  # tarfile would keep every header
                count += 1
                if count > max_members:
                    raise UnsupportedManifest(f"invalid archive: more than {max_members} members")
                if not (info.isreg() or info.issym() or info.islnk()):
                    continue
                name = _clean(info.name)
                if name is not None:
                    self.offsets[name] = info.offset  # a later entry of the same name wins, as when extracting
            # tarfile stops quietly at the first header that is not one; only zero blocks (the
            # end-of-archive marker) or the end of the file may follow the last member.
            end = self.tar.offset
            f.seek(end)
            if f.read(tarfile.BLOCKSIZE).strip(b"\0"):
                raise UnsupportedManifest(f"invalid archive: no valid tar header at offset {end} (damaged, or followed by other data)")
        except (tarfile.TarError, EOFError, UnicodeError) as e:
            raise UnsupportedManifest(f"invalid archive: not a tar file ({_why(e)})") from None

    def _member(self, name: str) -> tarfile.TarInfo | None:
        offset = self.offsets.get(name)
        if offset is None:
            return None
        self.tar.fileobj.seek(offset)
        try:
            return BoundedTarInfo.fromtarfile(self.tar)
        except (tarfile.TarError, EOFError, UnicodeError) as e:
            raise UnsupportedManifest(f"invalid archive: member {name!r}: {_why(e)}") from None

    def has(self, name: str) -> bool:
        return self.regular(name) is not None

    def regular(self, name: str) -> tarfile.TarInfo | None:
        """The regular file NAME refers to, following links inside the archive."""
        current = _clean(name)
        for _ in range(16):
            if current is None:
                return None
            info = self._member(current)
            if info is None:
                return None
            if info.isreg():
                return info
            if info.issym():
                target = info.linkname
                current = _clean(target if target.startswith("/") else posixpath.join(posixpath.dirname(current), target))
            elif info.islnk():
                current = _clean(info.linkname)
            else:
                return None
        return None

    def open(self, name: str) -> tuple[BinaryIO, int]:
        info = self.regular(name)
        if info is None:
            raise VerificationError(f"invalid archive: {name} is missing")
        f = self.tar.extractfile(info)
        assert f is not None
        return f, info.size

    def read_small(self, name: str, limit: int = MAX_MANIFEST_SIZE) -> bytes:
        f, size = self.open(name)
        if size > limit:
            raise VerificationError(f"invalid archive: {name} is too large ({size} bytes, limit {limit})")
        return f.read()


def _why(e: BaseException) -> str:
    """tarfile's and the decoders' reason, with their "unexpected end of ..." said plainly."""
    text = str(e)
    for early in ("unexpected end of data", "unexpected end of stream"):
        text = text.replace(early, "truncated, or followed by other data")
    return text


def _clean(name: str) -> str | None:
    """An archive member name as a lookup key: relative and normalised; None if it climbs out
    (or holds a NUL, which no file name can)."""
    if "\0" in name:
        return None
    n = posixpath.normpath(name.lstrip("/"))
    if n in (".", "..") or n.startswith("../"):
        return None
    return n


def _check_expansion(decoder, compressed: int, max_ratio: float, name: str) -> None:
    """A compressed layer is decompressed (to check its diff_id) only up to ``max_ratio`` times its
    size beyond ``SPOOL_FLOOR``: a small gzip of zeros must not keep a load hashing for minutes."""
    if decoder.size > max(SPOOL_FLOOR, max_ratio * compressed):
        raise VerificationError(
            f"invalid archive: layer {name} expands more than {max_ratio:g} times ({compressed} bytes to more "
            f"than {decoder.size}); raise the limit with --max-ratio N"
        )


def _json(data: bytes, what: str) -> object:
    return load_json(data, f"invalid archive: {what}")


def load(store: Store, source: BinaryIO | Path | str, *, max_ratio: float = MAX_RATIO) -> list[Loaded]:
    """Add every image of a docker-archive or oci-archive (plain, gzip or zstd) to the store.

    A pipe or a compressed archive is first spooled into ``ingest/`` (bounded: ``max_ratio``
    and free space, see ``_SpoolLimit``); each distinct layer is read and hashed once."""
    owned: list[BinaryIO] = []
    spooled: Path | None = None
    try:
        if isinstance(source, (str, Path)):
            try:
                src = open(source, "rb")
            except OSError as e:
                raise ImgctlError(f"cannot read {source}: {e.strerror or e}") from e
            owned.append(src)
        else:
            src = source
        try:
            seekable = bool(src.seekable())
        except (AttributeError, OSError, ValueError):
            seekable = False
        if seekable:
            start = src.tell()
            head = _read(src, 8)
            src.seek(start)
        else:
            head = _read(src, 8)
        if not head:
            raise UnsupportedManifest("invalid archive: the input is empty")
        compression = _sniff(head)
        if seekable and compression == "none":
            f = src
        else:
            # A pipe, or a compressed archive: one sequential pass into a file we can seek in.
            spooled = _spool(store, src, b"" if seekable else head, compression, max_ratio)
            f = open(spooled, "rb")
            owned.append(f)
        archive = _Archive(f)
        archive.max_ratio = max_ratio
        with store.lease() as lease:
            if archive.has("index.json"):
                return _load_oci(store, archive, lease)
            if archive.has("manifest.json"):
                return _load_docker(store, archive, lease)
            raise UnsupportedManifest(
                "invalid archive: it has neither manifest.json (docker-archive) nor index.json (oci-archive)"
            )
    except _InputError as e:
        raise ImgctlError(f"cannot read the archive: {e.strerror or e}") from e
    finally:
        for f in reversed(owned):
            f.close()
        if spooled is not None:
            try:
                os.unlink(spooled)
            except FileNotFoundError:
                pass


def _write_member(store: Store, lease, archive: _Archive, name: str, digest: str, size: int, compression: str | None) -> tuple[str | None, int]:
    """Commit member NAME as blob DIGEST (unless the store has it) through a verifying writer.

    With ``compression`` the content is decompressed on the way: returns (diff_id, uncompressed size).
    """

    f, member_size = archive.open(name)
    if member_size != size:
        raise VerificationError(f"invalid archive: {name} has {member_size} bytes, its descriptor says {size}")
    decoder = Decoder(compression) if compression else None
    lease.add(digest)
    writer = None if store.has_blob(digest) else store.writer(digest, size)
    h = hashlib.sha256() if writer is None else None
    bad_data: VerificationError | None = None  # judged only once the digest is known to be right
    step = CHUNK if decoder is None else 64 * 1024  # small steps: the expansion is checked per step
    try:
        while chunk := f.read(step):
            if writer is not None:
                writer.write(chunk)
            else:
                h.update(chunk)
            if decoder is not None and bad_data is None:
                try:
                    decoder.feed(chunk)
                except VerificationError as e:
                    bad_data = e
                _check_expansion(decoder, size, archive.max_ratio, name)
        if writer is not None:
            writer.commit()
        elif f"sha256:{h.hexdigest()}" != digest:
            raise VerificationError(f"digest mismatch for {digest}: {name} in the archive hashes to sha256:{h.hexdigest()}")
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if decoder is None:
        return None, size
    if bad_data is None:
        try:
            return decoder.finish(), decoder.size
        except VerificationError as e:
            bad_data = e
    raise VerificationError(f"filesystem layer verification failed for digest {digest}: {bad_data}")


def _small_blob(store: Store, lease, archive: _Archive, desc: Descriptor, what: str) -> bytes:
    if desc.size > MAX_MANIFEST_SIZE:
        raise VerificationError(f"{what} {desc.digest} is too large ({desc.size} bytes)")
    name = f"blobs/sha256/{desc.digest.split(':', 1)[1]}"
    data = archive.read_small(name)
    if len(data) != desc.size:
        raise VerificationError(f"invalid archive: {what} {desc.digest} has {len(data)} bytes, its descriptor says {desc.size}")
    if f"sha256:{hashlib.sha256(data).hexdigest()}" != desc.digest:
        raise VerificationError(f"digest mismatch for {what} {desc.digest} in the archive")
    lease.add(desc.digest)
    store.put_blob(desc.digest, data)
    return data


def _layer(store: Store, lease, archive: _Archive, name: str, desc: Descriptor, diff_id: str) -> LayerRecord:
    key = (name, desc.digest, desc.size, desc.media_type, diff_id)
    if key in archive.layers:
        return archive.layers[key]
    compression = layer_compression(desc.media_type)
    got, usize = _write_member(store, lease, archive, name, desc.digest, desc.size, compression)
    if got != diff_id:
        raise VerificationError(f"filesystem layer verification failed for digest {desc.digest}")
    rec = LayerRecord(desc.digest, diff_id, desc.size, usize, desc.media_type)
    store.index.record_layers([rec])
    archive.layers[key] = rec
    return rec


def _commit(store: Store, rec: ImageRecord, blobs: list[tuple[str, str, int]], refs: list[Reference]) -> Loaded:
    """Record the image (an image already complete in the store keeps its own manifest) and tag it."""
    index = next((load_index(store, d) for kind, d, _ in blobs if kind == "index"), None)
    existing = store.index.image(rec.id)
    if existing is not None and store.index.image_is_complete(rec.id):
        rec = existing
        blobs = store.index.blob_rows(rec.id)
    elif existing is not None:
        with store.index.transaction():  # an incomplete leftover: replace its blob list
            store.index.forget_blob_rows(rec.id)
    out = Loaded(rec.id)
    if not refs:
        out.image_id = record_image(store, rec, blobs, index)[0]
    for ref in refs:
        tag = ref.tag or "latest"
        row = store.index.tag_row(ref.repository, tag)
        keep_digest = row[1] if row and row[0] == rec.id else None
        if row and row[0] != rec.id:
            out.replaced.append((_tag_name(ref.repository, tag), row[0]))
        out.image_id = record_image(store, rec, blobs, index, repository=ref.repository, tag=tag, digest=keep_digest)[0]
        out.names.append(_tag_name(ref.repository, tag))
    return out


def _ref_or_none(text: object) -> Reference | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        ref = parse(text)
    except InvalidReference:
        return None
    return None if ref.digest else ref


# -- oci-archive ----------------------------------------------------------------------------------
def _load_oci(store: Store, archive: _Archive, lease) -> list[Loaded]:
    layout = _json(archive.read_small("oci-layout"), "oci-layout") if archive.has("oci-layout") else None
    if not isinstance(layout, dict) or not str(layout.get("imageLayoutVersion", "")).startswith("1."):
        raise UnsupportedManifest("invalid archive: index.json without a valid oci-layout file")
    top = parse_document(archive.read_small("index.json"))
    if not isinstance(top, Index):
        raise UnsupportedManifest("invalid archive: index.json is not an image index")
    pending: list[tuple[ImageRecord, list[tuple[str, str, int]], list[Reference]]] = []
    for entry in top.manifests:
        ann = entry.annotations or {}
        named = ann.get(CONTAINERD_NAME)
        ref = _ref_or_none(named)
        if isinstance(named, str) and named and ref is None and "@" not in named:
            # A name that is not a reference is refused, as a bad RepoTags entry is (a digest
            # reference names no tag: that image is loaded without one).
            raise InvalidReference(f"invalid archive: index.json names the image {named[:200]!r}, which is not a valid reference")
        if ref is None:
            name = ann.get(REF_NAME)
            if isinstance(name, str) and "/" in name:  # a full name; a bare "v1" names only a tag
                ref = _ref_or_none(name)
        rec, blobs = _load_oci_entry(store, archive, lease, entry)
        pending.append((rec, blobs, [ref] if ref else []))
    if not pending:
        raise UnsupportedManifest("invalid archive: index.json lists no images")
    return _commit_all(store, pending)


def _commit_all(store: Store, pending: list[tuple[ImageRecord, list[tuple[str, str, int]], list[Reference]]]) -> list[Loaded]:
    """Record and tag the images of an archive once every one of them is verified: an archive
    that fails anywhere adds no image (its verified blobs stay, unreferenced, for prune)."""
    # Each name goes to the last entry that claims it and each image is recorded once with all
    # its names (its first entry's blobs, as a second record of it would keep the first): an
    # archive listing one image 10,000 times costs one commit, not 10,000.
    winner = {(r.repository, r.tag or "latest"): rec.id for rec, _, refs in pending for r in refs}
    merged: dict[str, tuple[ImageRecord, list, list[Reference], set]] = {}
    for rec, blobs, refs in pending:
        _, _, names, seen = merged.setdefault(rec.id, (rec, blobs, [], set()))
        for r in refs:
            key = (r.repository, r.tag or "latest")
            if winner[key] == rec.id and key not in seen:
                seen.add(key)
                names.append(r)
    return [_commit(store, rec, blobs, refs) for rec, blobs, refs, _ in merged.values()]


def _has_host(index: Index) -> bool:
    try:
        choose_manifest(index, host_platform())
    except PlatformNotFound:
        return False
    return bool(image_entries(index))


def _load_oci_entry(store: Store, archive: _Archive, lease, entry: Descriptor) -> tuple[ImageRecord, list[tuple[str, str, int]]]:
    blobs: list[tuple[str, str, int]] = []
    desc = entry
    if entry.media_type in INDEX_TYPES:
        data = _small_blob(store, lease, archive, entry, "index")
        index = parse_document(data, entry.media_type)
        if not isinstance(index, Index):
            raise UnsupportedManifest(f"invalid archive: {entry.digest} is not an index")
        present = Index(index.media_type, tuple(d for d in index.manifests if archive.has(f"blobs/sha256/{d.digest.split(':', 1)[1]}")))
        if not image_entries(present):
            raise UnsupportedManifest(f"invalid archive: index {entry.digest} holds no image for any platform")
        desc = choose_manifest(present, host_platform()) if _has_host(present) else image_entries(present)[0]
        blobs.append(("index", entry.digest, 0))
        for other in image_entries(present):  # every platform the archive holds: one image (imgctl.platforms)
            if other.digest != desc.digest:
                _load_oci_entry(store, archive, lease, other)
        for att in attestation_entries(present):  # and its attestations, verified blob by blob
            doc = parse_document(_small_blob(store, lease, archive, att, "attestation manifest"), att.media_type)
            if not isinstance(doc, Manifest):
                raise UnsupportedManifest(f"invalid archive: attestation {att.digest} is not an image manifest")
            for d in (doc.config, *doc.layers):
                _write_member(store, lease, archive, f"blobs/sha256/{d.digest.split(':', 1)[1]}", d.digest, d.size, None)
    data = _small_blob(store, lease, archive, desc, "manifest")
    manifest = parse_document(data, desc.media_type)
    if not isinstance(manifest, Manifest):
        raise UnsupportedManifest(f"invalid archive: {desc.digest} is not an image manifest")
    blobs.append(("manifest", desc.digest, 0))
    config_bytes = _small_blob(store, lease, archive, manifest.config, "image config")
    cfg = parse_config(config_bytes)
    if len(cfg.diff_ids) != len(manifest.layers):
        raise VerificationError(
            f"image config {manifest.config.digest} lists {len(cfg.diff_ids)} layers, the manifest {len(manifest.layers)}"
        )
    blobs.append(("config", manifest.config.digest, 0))
    layers = []
    for i, (ldesc, diff_id) in enumerate(zip(manifest.layers, cfg.diff_ids)):
        layers.append(_layer(store, lease, archive, f"blobs/sha256/{ldesc.digest.split(':', 1)[1]}", ldesc, diff_id))
        blobs.append(("layer", ldesc.digest, i))
    return image_record(desc.digest, manifest, parse_config(config_bytes), layers), blobs


# -- docker-archive -------------------------------------------------------------------------------
def _load_docker(store: Store, archive: _Archive, lease) -> list[Loaded]:
    doc = _json(archive.read_small("manifest.json"), "manifest.json")
    if not isinstance(doc, list) or not doc:
        raise UnsupportedManifest("invalid archive: manifest.json is not a list of images")
    pending: list[tuple[ImageRecord, list[tuple[str, str, int]], list[Reference]]] = []
    for i, entry in enumerate(doc):
        if not isinstance(entry, dict) or not isinstance(entry.get("Config"), str) or not isinstance(entry.get("Layers"), list):
            raise UnsupportedManifest(f"invalid archive: manifest.json entry {i} has no Config or Layers")
        layer_names = entry["Layers"]
        if not all(isinstance(n, str) for n in layer_names):
            raise UnsupportedManifest(f"invalid archive: manifest.json entry {i} has invalid Layers")
        tags = entry.get("RepoTags") or []
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise UnsupportedManifest(f"invalid archive: manifest.json entry {i} has invalid RepoTags")
        refs = []
        for t in tags:
            ref = parse(t)
            if ref.digest:
                raise InvalidReference(f"invalid archive: RepoTags entry {t!r} is not NAME:TAG")
            refs.append(ref)
        rec, blobs = _load_docker_entry(store, archive, lease, entry["Config"], layer_names)
        pending.append((rec, blobs, refs))
    return _commit_all(store, pending)


def _member_digest(archive: _Archive, name: str) -> tuple[str, int, str, str, int]:
    """(digest, size, compression, diff_id, uncompressed size) of a layer member, read once."""

    f, size = archive.open(name)
    head = f.read(8)
    compression = _sniff(head)
    decoder = Decoder(compression)
    h = hashlib.sha256()
    data = head
    while data:
        h.update(data)
        decoder.feed(data)
        _check_expansion(decoder, size, archive.max_ratio, name)
        data = f.read(CHUNK if compression == "none" else 64 * 1024)  # small steps: the ratio is checked per step
    try:
        diff_id = decoder.finish()
    except VerificationError as e:
        raise VerificationError(f"invalid archive: layer {name}: {_why(e)}") from None
    return f"sha256:{h.hexdigest()}", size, compression, diff_id, decoder.size


def _load_docker_entry(store: Store, archive: _Archive, lease, config_name: str, layer_names: list[str]) -> tuple[ImageRecord, list[tuple[str, str, int]]]:
    config_bytes = archive.read_small(config_name)
    config_digest = f"sha256:{hashlib.sha256(config_bytes).hexdigest()}"
    _check_named_digest(archive, config_name, config_digest)
    cfg = parse_config(config_bytes)
    if len(cfg.diff_ids) != len(layer_names):
        raise VerificationError(
            f"invalid archive: image config {config_name} lists {len(cfg.diff_ids)} layers, manifest.json {len(layer_names)}"
        )
    layers: list[LayerRecord] = []
    for name, diff_id in zip(layer_names, cfg.diff_ids):
        key = ("docker", _clean(name), diff_id)
        if key in archive.layers:  # another image of this archive shares the layer: verified already
            layers.append(archive.layers[key])
            continue
        info = archive.regular(name)
        if info is None:
            raise VerificationError(f"invalid archive: layer {name} is missing")
        f, _ = archive.open(name)
        compression = _sniff(f.read(8))
        if compression == "none":
            # An uncompressed layer is its own diff: the config names its digest.
            desc = Descriptor(DOCKER_LAYER_TYPES["none"], diff_id, info.size)
            try:
                _check_named_digest(archive, name, diff_id)
                _write_member(store, lease, archive, name, diff_id, info.size, None)
            except VerificationError:
                raise VerificationError(f"filesystem layer verification failed for {name}: it does not match diff_id {diff_id}") from None
            rec = LayerRecord(diff_id, diff_id, info.size, info.size, desc.media_type)
            store.index.record_layers([rec])
        else:
            digest, size, compression, got, usize = _member_digest(archive, name)
            _check_named_digest(archive, name, digest)
            if got != diff_id:
                raise VerificationError(f"filesystem layer verification failed for {name}: it does not match diff_id {diff_id}")
            desc = Descriptor(DOCKER_LAYER_TYPES[compression], digest, size)
            rec = _layer(store, lease, archive, name, desc, diff_id)
        archive.layers[key] = rec
        layers.append(rec)
    manifest_doc = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG, "size": len(config_bytes), "digest": config_digest},
        "layers": [{"mediaType": l.media_type, "size": l.size, "digest": l.digest} for l in layers],
    }
    manifest_bytes = json.dumps(manifest_doc, indent=3).encode()
    manifest_digest = f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}"
    lease.add(config_digest, manifest_digest)
    store.put_blob(config_digest, config_bytes)
    store.put_blob(manifest_digest, manifest_bytes)
    manifest = parse_document(manifest_bytes, DOCKER_MANIFEST)
    assert isinstance(manifest, Manifest)
    blobs = [("manifest", manifest_digest, 0), ("config", config_digest, 0)]
    blobs += [("layer", l.digest, i) for i, l in enumerate(layers)]
    return image_record(manifest_digest, manifest, parse_config(config_bytes), layers), blobs


def _check_named_digest(archive: _Archive, name: str, digest: str) -> None:
    """A member named after a digest (``<hex>.json``, ``blobs/sha256/<hex>``) must have that digest."""
    cleaned = _clean(name) or ""
    m = _BLOB_NAME.fullmatch(cleaned) or re.fullmatch(r"([0-9a-f]{64})\.json", cleaned)
    if m and f"sha256:{m.group(1)}" != digest:
        raise VerificationError(f"digest mismatch: {name} in the archive hashes to {digest}")
