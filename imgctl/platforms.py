"""Multi-platform images: an index kept as the image's identity.  Never prints.

A tag (or a pinned digest) that names an index records the index digest as its repo digest
(``tags.digest``, ``digests.digest``), as docker does.  The image row (``images``) is one of
the index's platforms: the one the classic ``images`` table, ``inspect``, ``history`` and
``export`` show by default -- the host's when its content is present, else the first
present one in index order.  The other platforms whose content is present are rows of
``image_platforms``; their blobs are the image's ``platform`` blobs in ``image_blobs``, so
garbage collection keeps them and ``system df`` counts what they share once.
``image_indexes`` lists the indexes an image was pulled or loaded as, so ``save`` and
``push`` can write the index byte for byte.

Index entries whose platform is ``unknown/unknown`` (buildx attestations) are not
platforms: they are never pulled and never listed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from imgctl.errors import ImageNotFound, PlatformNotFound, StoreError, UnsupportedManifest, VerificationError
from imgctl.oci import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MAX_MANIFEST_SIZE,
    OCI_INDEX,
    Descriptor,
    Index,
    Manifest,
    Platform,
    best_match,
    host_platform,
    parse_document,
)
from imgctl.store import ImageRecord, Store

__all__ = [
    "IndexDoc",
    "PlatformEntry",
    "image_entries",
    "is_attestation",
    "load_index",
    "index_for",
    "platform_records",
    "platforms",
    "select_record",
    "record_image",
    "remove_platform",
    "sync_platforms",
    "manifest_blobs",
    "attestation_entries",
    "attestation_blobs",
]


@dataclass(frozen=True, slots=True)
class IndexDoc:
    """An index as stored: its exact bytes (what save and push write) and their parse."""

    digest: str
    media_type: str
    data: bytes
    index: Index


@dataclass(frozen=True, slots=True)
class PlatformEntry:
    """One platform of an image: from its index entry, with its content when present."""

    platform: Platform
    manifest_digest: str
    record: ImageRecord | None  # None: the platform's content is not in the store
    primary: bool  # the image row itself (what the classic views show)
    descriptor: Descriptor | None = None  # the index entry (None for a single-manifest image)

    @property
    def available(self) -> bool:
        return self.record is not None


def is_attestation(desc: Descriptor) -> bool:
    """A buildx attestation (or any entry without a real platform): not a platform of the image."""
    if (desc.annotations or {}).get("vnd.docker.reference.type") == "attestation-manifest":
        return True
    return desc.platform is None or desc.platform.os == "unknown" or desc.platform.architecture == "unknown"


def image_entries(index: Index) -> list[Descriptor]:
    """The index's platform images, in index order (attestations and nested indexes left out)."""
    return [d for d in index.manifests if d.media_type in MANIFEST_TYPES and not is_attestation(d)]


def attestation_entries(index: Index) -> list[Descriptor]:
    """The index's attestation manifests (buildx's ``unknown/unknown`` entries)."""
    return [d for d in index.manifests if d.media_type in MANIFEST_TYPES and is_attestation(d)]


def attestation_blobs(store: Store, manifest_digest: str) -> list[str] | None:
    """The digests of an attestation manifest and everything it names, when all are in the
    store (each was verified against its digest when committed); else None."""
    if not store.has_blob(manifest_digest):
        return None
    try:
        doc = parse_document(store.read_blob(manifest_digest, MAX_MANIFEST_SIZE))
    except UnsupportedManifest:
        return None
    if not isinstance(doc, Manifest):
        return None
    digests = [manifest_digest, doc.config.digest] + [d.digest for d in doc.layers]
    return digests if all(store.has_blob(d) for d in digests) else None


def record_platform(rec: ImageRecord) -> Platform:
    return Platform(rec.os or "unknown", rec.architecture or "unknown", rec.variant)


def load_index(store: Store, digest: str, media_type: str = "") -> IndexDoc | None:
    """The stored index ``digest``; None when the blob is gone or is not an index."""
    if not store.has_blob(digest):
        return None
    data = store.read_blob(digest, MAX_MANIFEST_SIZE)
    try:
        doc = parse_document(data, media_type or None)
    except UnsupportedManifest:
        return None
    if not isinstance(doc, Index):
        return None
    return IndexDoc(digest, media_type or doc.media_type or OCI_INDEX, data, doc)


def index_for(store: Store, image_id: str, digest: str | None = None) -> IndexDoc | None:
    """The index image ``image_id`` stands for: ``digest`` when given (a tag's repo digest),
    else the one its tags name (first by name), else the last one it was pulled as.
    None for a single-manifest image."""
    known = dict(store.index.indexes_of(image_id))
    if digest is not None:
        return load_index(store, digest, known[digest]) if digest in known else None
    for d in store.index.named_digests(image_id):
        if d in known:
            return load_index(store, d, known[d])
    for d, mt in known.items():
        doc = load_index(store, d, mt)
        if doc is not None:
            return doc
    return None


def index_for_ref(store: Store, image_id: str, digest: str | None) -> IndexDoc | None:
    """The index a reference names: its repo digest when that is an index of the image; a
    reference without one (made by ``tag``) stands for the image's index.  None when the
    reference names a single manifest."""
    return index_for(store, image_id, digest) if digest else index_for(store, image_id)


def platform_records(store: Store, image_id: str) -> list[ImageRecord]:
    """The content present for an image: its own row first, then its other platforms."""
    rec = store.index.image(image_id)
    if rec is None:
        return []
    return [rec] + store.index.platform_records(image_id)


def platforms(store: Store, image_id: str, index_digest: str | None = None) -> list[PlatformEntry]:
    """Every platform of the image, present or not: the index's entries in its order; a
    single-manifest image has one."""
    records = platform_records(store, image_id)
    if not records:
        raise ImageNotFound(f"No such image: {image_id}")
    idx = index_for(store, image_id, index_digest)
    if idx is None:
        r = records[0]
        return [PlatformEntry(record_platform(r), r.manifest_digest, r, True)]
    by_manifest = {r.manifest_digest: r for r in records}
    out = []
    for d in image_entries(idx.index):
        rec = by_manifest.get(d.digest)
        out.append(PlatformEntry(d.platform, d.digest, rec, rec is records[0], d))
    return out


def select_record(store: Store, image_id: str, want: Platform, name: str) -> ImageRecord:
    """The content of platform ``want`` of the image NAME names; a clear error when the image
    does not provide it or when it is not in the store."""
    entries = platforms(store, image_id)
    hit = best_match([(e.platform, e) for e in entries], want)
    if hit is None:
        # A record's own platform (from its config) may say more than its index entry.
        hit = best_match([(record_platform(e.record), e) for e in entries if e.record], want)
    if hit is None:
        raise PlatformNotFound(f"image {name} does not provide the specified platform ({want.normalized()})")
    if hit.record is None:
        raise PlatformNotFound(
            f"platform {hit.platform.normalized()} of image {name} is not in the store "
            f"(pull it with --platform {hit.platform.normalized()})"
        )
    return hit.record


def platform_record(store: Store, image_id: str, want: Platform | None, name: str) -> ImageRecord | None:
    """``--platform``'s record of the image NAME names (see ``select_record``); None without one."""
    return None if want is None else select_record(store, image_id, want, name)


def primary_of(records: list[ImageRecord], want: Platform | None = None) -> ImageRecord:
    """The platform an image row shows: ``want`` (default: the host's) when present, else the first."""
    hit = best_match([(record_platform(r), r) for r in records], want or host_platform())
    return hit if hit is not None else records[0]


def stored_record(store: Store, manifest_digest: str) -> ImageRecord | None:
    """The record of an image whose manifest, config and verified layers are all in the
    store; None when any of it is missing."""
    from imgctl.localimage import image_record, open_image

    if not store.has_blob(manifest_digest):
        return None
    try:
        doc = parse_document(store.read_blob(manifest_digest, MAX_MANIFEST_SIZE))
        if not isinstance(doc, Manifest) or not store.has_blob(doc.config.digest):
            return None
        probe = ImageRecord(doc.config.digest, manifest_digest, doc.media_type, None, None, "", "", None, 0, 0, {}, 0.0)
        img = open_image(store, doc.config.digest, probe)
    except (StoreError, UnsupportedManifest, VerificationError):
        return None
    if not all(store.has_blob(lr.digest) for lr in img.layers):
        return None
    return image_record(manifest_digest, img.manifest, img.config, list(img.layers))


def stored_platforms(store: Store, index: IndexDoc, skip: str = "") -> list[ImageRecord]:
    """The index's platforms whose content is complete in the store, in index order."""
    out = []
    for d in image_entries(index.index):
        if d.digest != skip:
            rec = stored_record(store, d.digest)
            if rec is not None:
                out.append(rec)
    return out


def manifest_blobs(store: Store, manifest_digest: str) -> list[tuple[str, str, int]]:
    """(kind, digest, position) of a stored manifest and what it names."""
    doc = parse_document(store.read_blob(manifest_digest, MAX_MANIFEST_SIZE))
    if not isinstance(doc, Manifest):
        raise UnsupportedManifest(f"manifest {manifest_digest} is not an image manifest")
    return [("manifest", manifest_digest, 0), ("config", doc.config.digest, 0)] + [
        ("layer", d.digest, i) for i, d in enumerate(doc.layers)
    ]


def record_image(
    store: Store,
    record: ImageRecord,
    blobs: list[tuple[str, str, int]],
    index: IndexDoc | None,
    *,
    repository: str | None = None,
    tag: str | None = None,
    digest: str | None = None,
    pinned: bool = False,
) -> tuple[str, bool]:
    """Record a pulled or loaded image: ``Index.add_image`` for a single manifest; for a
    platform of ``index``, add it to the image the reference already names through that
    index (a new platform of the same image).  Returns (image row ID, changed)."""
    if index is None:
        changed = store.index.add_image(record, blobs, repository=repository, tag=tag, digest=digest, pinned=pinned)
        return record.id, changed
    with _recording(store):
        return _record_platform(store, record, blobs, index, repository, tag, digest, pinned)


@contextmanager
def _recording(store: Store) -> Iterator[None]:
    """One process at a time chooses an index image's row and platforms: two pulls of two
    platforms of one image, each seeing the other's content, agree on the outcome."""
    import fcntl

    try:
        fd = os.open(store.root / "platforms.lock", os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"cannot write to the store at {store.root}: {e.strerror or e}") from e
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _record_platform(store: Store, record: ImageRecord, blobs, index: IndexDoc, repository, tag, digest, pinned) -> tuple[str, bool]:
    db = store.index
    current = None
    if repository and tag:
        row = db.tag_row(repository, tag)
        current = row[0] if row and row[1] == index.digest else None
    elif repository and pinned:
        current = db.pin_target(repository, index.digest)
    before: set[str] = set()
    if current is not None and any(d == index.digest for d, _ in db.indexes_of(current)):
        before = {r.manifest_digest for r in platform_records(store, current)}
    added = record.manifest_digest not in before
    # Every platform whose content is complete in the store is available, however it came
    # (this pull or load, an earlier one, another tag of the same index).
    known = {r.manifest_digest: r for r in stored_platforms(store, index, skip=record.manifest_digest)}
    known[record.manifest_digest] = record
    members = [d.digest for d in image_entries(index.index)]
    ordered = [known[m] for m in members if m in known] or [record]
    primary = primary_of(ordered)
    if primary.manifest_digest == record.manifest_digest:
        primary_blobs = list(blobs)
    else:
        primary_blobs = manifest_blobs(store, primary.manifest_digest)
    primary_blobs.append(("index", index.digest, 0))
    changed = store.index.add_image(primary, primary_blobs, repository=repository, tag=tag, digest=digest or index.digest, pinned=pinned)
    with db.transaction():
        if not db.has_image(primary.id):
            return primary.id, changed  # removed meanwhile by another process
        # Under the write lock, again: a concurrent pull of another platform may have completed.
        ordered = {r.manifest_digest: r for r in [*ordered, *stored_platforms(store, index, skip=record.manifest_digest)]}
        others = [r for r in ordered.values() if r.id != primary.id and r.manifest_digest != primary.manifest_digest]
        db.put_index(primary.id, index.digest, index.media_type)
        for r in others:
            db.put_platform(primary.id, r)
        sync_platforms(store, primary.id)
        if current is not None and current != primary.id:
            _drop_if_unreferenced(db, current)
    return primary.id, changed or added


def _drop_if_unreferenced(db, image_id: str) -> None:
    """An image row whose platforms another row took over goes once nothing names it."""
    if not db.referenced(image_id):
        db.delete_image(image_id)


def sync_platforms(store: Store, image_id: str) -> None:
    """Inside a transaction: keep only the indexes the image's references still name (all of
    them when none does: a tag made with ``tag`` names no digest), the platforms those
    indexes list, and exactly their blobs as the image's ``platform`` blobs."""
    db = store.index
    indexes = db.indexes_of(image_id)
    named = set(db.named_digests(image_id))
    kept = [(d, mt) for d, mt in indexes if d in named] or indexes
    for d, mt in indexes:
        if (d, mt) not in kept:
            db.drop_index(image_id, d)
    docs = [doc for d, mt in kept if (doc := load_index(store, d, mt)) is not None]
    members = {e.digest for doc in docs for e in image_entries(doc.index)}
    rows = db.platform_manifests(image_id)
    db.clear_platform_blobs(image_id)
    need: set[str] = set()
    for m in rows:
        blobs = manifest_blobs(store, m) if m in members and store.has_blob(m) else []
        if not blobs or not all(store.has_blob(d) for _, d, _ in blobs):
            # Not in the index any more, or its content is gone (verify --repair): not available.
            db.drop_platform(image_id, m)
            continue
        need.update(d for _, d, _ in blobs)
    for doc in docs:  # attestations pulled or loaded with the image stay with it
        for att in attestation_entries(doc.index):
            need.update(attestation_blobs(store, att.digest) or ())
    db.add_platform_blobs(image_id, sorted(need))


def remove_platform(store: Store, image_id: str, want: Platform, name: str) -> str:
    """``rmi --platform``: drop one platform's content from an image; returns the manifest
    digest removed.  The image's last platform goes only with the whole image (plain rmi)."""
    with _recording(store):
        return _remove_platform(store, image_id, want, name)


def _remove_platform(store: Store, image_id: str, want: Platform, name: str) -> str:
    store.check_removable()  # nothing is removed on the word of an index that was not checked
    rec = select_record(store, image_id, want, name)
    records = platform_records(store, image_id)
    if len(records) == 1:
        raise PlatformNotFound(
            f"platform {record_platform(rec).normalized()} is the only one of image {name} in the store: "
            f"remove the image instead (imgctl rmi {name})"
        )
    if rec.manifest_digest != records[0].manifest_digest:
        with store.index.transaction():
            store.index.drop_platform(image_id, rec.manifest_digest)
            sync_platforms(store, image_id)
        return rec.manifest_digest
    # The image row's own platform goes: another platform becomes the image row, taking over
    # every reference, index and remaining platform.
    rest = records[1:]
    new = primary_of(rest)
    blobs = manifest_blobs(store, new.manifest_digest)
    store.index.add_image(new, blobs)
    db = store.index
    with db.transaction():
        if not db.has_image(image_id):
            raise ImageNotFound(f"No such image: {name}")  # removed meanwhile by another process
        for d, mt in db.indexes_of(image_id):
            db.put_index(new.id, d, mt)
            db.add_index_blob(new.id, d)
        for r in rest:
            if r is not new:
                db.put_platform(new.id, r)
        db.move_references(image_id, new.id)  # every reference moves to the new row
        db.delete_image(image_id)
        sync_platforms(store, new.id)
    return rec.manifest_digest


def index_media_type(doc: IndexDoc) -> str:
    return doc.media_type if doc.media_type in INDEX_TYPES else OCI_INDEX


def keep_attestations(store: Store, image_id: str) -> None:
    """After attestations were fetched for an image's index: record them as its blobs."""
    with store.index.transaction():
        if store.index.has_image(image_id):
            sync_platforms(store, image_id)


def regroup(store: Store) -> int:
    """After ``verify --repair`` rebuilt the index from the blobs (one image per manifest):
    each reference that names an index gets its image back whole -- every platform present
    joins it, and the rows the rebuild made for those platforms go.  Returns how many
    images were regrouped."""
    refs = store.index.digest_references()
    done = 0
    for repository, tag, image_id, digest, pinned in refs:
        index = load_index(store, digest)
        rec = store.index.image(image_id)
        if index is None or rec is None:
            continue
        blobs = manifest_blobs(store, rec.manifest_digest) + [("index", digest, 0)]
        new_id, _ = record_image(store, rec, blobs, index, repository=repository, tag=tag, digest=digest, pinned=bool(pinned))
        members = {d.digest for d in image_entries(index.index)}
        with store.index.transaction():
            for other_id, manifest in store.index.image_manifests():
                if other_id != new_id and manifest in members:
                    _drop_if_unreferenced(store.index, other_id)
        done += 1
    return done
