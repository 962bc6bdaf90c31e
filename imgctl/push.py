"""Push: upload an image of the store to its registry.  Returns data, reports progress; never prints.

For each blob (layers top first, then the config): ``HEAD`` (the repository has it:
"Layer already exists"), else a cross-repository mount from another repository of the
same registry that the store knows holds it ("Mounted from ..."), else an upload of the
stored bytes ("Pushed").  Then the manifest, byte for byte as stored, so its digest is
the one the image was pulled or loaded with.  Writes go to the registry itself; mirrors
are for reading only.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from imgctl.errors import ImageNotFound, PushRefused, RegistryError, UsageError, VerificationError
from imgctl.events import Event, Kind, Progress
from imgctl.localimage import open_image
from imgctl.oci import MAX_MANIFEST_SIZE, Platform, parse_document
from imgctl.platforms import (
    attestation_blobs,
    attestation_entries,
    index_for_ref,
    index_media_type,
    is_attestation,
    platforms,
    select_record,
)
from imgctl.reference import Reference
from imgctl.store import Store

__all__ = ["PushResult", "push", "push_all_tags", "mount_sources"]

CHUNK = 1024 * 1024
MAX_MOUNT_TRIES = 3  # as docker: a few candidate repositories, then upload


@dataclass(frozen=True, slots=True)
class PushResult:
    reference: Reference
    image_id: str
    digest: str  # the manifest digest the registry now has under the tag
    size: int  # manifest size, as docker prints it
    pushed: int  # blobs uploaded
    mounted: int
    existed: int


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def mount_sources(store: Store, ref: Reference, digest: str) -> list[str]:
    """Repository paths on ``ref``'s registry (other than ``ref``'s) whose images hold ``digest``."""
    prefix = ref.domain + "/"
    rows = store.index.repositories_holding(digest)
    return sorted(
        {r[len(prefix):] for r in rows if r.startswith(prefix) and r != ref.repository}
    )[:MAX_MOUNT_TRIES]


def _chunks(store: Store, digest: str, size: int, progress: Progress) -> Callable[[], Iterator[bytes]]:
    """A factory of the blob's bytes (hashed again on the way out: a damaged store is never pushed)."""

    def gen() -> Iterator[bytes]:
        h = hashlib.sha256()
        sent = 0
        with store.open_blob(digest) as f:
            while chunk := f.read(CHUNK):
                h.update(chunk)
                sent += len(chunk)
                progress(Event(Kind.PUSHING, _short(digest), sent, size))
                yield chunk
        if sent != size or f"sha256:{h.hexdigest()}" != digest:
            raise VerificationError(f"blob {digest} in the store does not match its digest; not pushing it")

    return gen


def push(
    ref: Reference, *, store: Store, client, progress: Progress | None = None, platform: Platform | None = None
) -> PushResult:
    """Push the image ``ref`` (NAME:TAG or NAME@DIGEST) names in the store to ``ref``'s registry.

    A multi-platform image is pushed whole: every platform the store holds, then its index
    byte for byte.  An index entry the store lacks must already be in the repository
    (``HEAD``), else nothing is pushed.  ``platform``: that platform's manifest alone."""
    progress = progress or (lambda e: None)
    if ref.digest:
        image_id = store.index.digest_target(ref.repository, ref.digest)
    else:
        image_id = store.index.tag_target(ref.repository, ref.tag or "latest")
    if image_id is None:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
    index = None
    if platform is not None:
        img = open_image(store, image_id, select_record(store, image_id, platform, ref.familiar()))
    else:
        img = open_image(store, image_id)
        named = ref.digest or _tag_digest(store, ref)
        index = index_for_ref(store, image_id, named)
        if index is None and ref.digest and ref.digest != img.record.manifest_digest:
            raise UsageError(f"{ref.familiar()} names an index that is not in the store; push a tag of the image instead")
    entries = platforms(store, image_id, index.digest) if index is not None else []
    present = [e for e in entries if e.record is not None]
    atts = [d for d in attestation_entries(index.index) if attestation_blobs(store, d.digest)] if index else []
    if index is not None:
        _refuse_missing(ref, client, index, {e.manifest_digest for e in present} | {d.digest for d in atts})
    progress(Event(Kind.PUSHING_TO, text=f"The push refers to repository [{ref.repository}]"))

    counts = [0, 0, 0]  # pushed, mounted, existed
    with store.lease() as lease:
        if index is None:
            _push_blobs(ref, store, client, lease, img, progress, counts)
            target = ref.digest or ref.tag or "latest"
            digest = client.put_manifest(ref.domain, ref.path, target, img.manifest_bytes, img.manifest.media_type)
            sent, expected = img.manifest_bytes, img.record.manifest_digest
        else:
            for e in present:
                pimg = open_image(store, image_id, e.record)
                _push_blobs(ref, store, client, lease, pimg, progress, counts)
                got = client.put_manifest(ref.domain, ref.path, e.manifest_digest, pimg.manifest_bytes, pimg.manifest.media_type)
                if got != e.manifest_digest:
                    raise VerificationError(f"the manifest sent hashes to {got}, the store knows it as {e.manifest_digest}")
            for d in atts:  # attestations the store holds go along, unchanged
                data = store.read_blob(d.digest, MAX_MANIFEST_SIZE)
                _push_blobs(ref, store, client, lease, _Docs(parse_document(data, d.media_type)), progress, counts)
                if client.put_manifest(ref.domain, ref.path, d.digest, data, d.media_type) != d.digest:
                    raise VerificationError(f"attestation {d.digest} in the store does not match its digest")
            target = ref.digest or ref.tag or "latest"
            digest = client.put_manifest(ref.domain, ref.path, target, index.data, index_media_type(index))
            sent, expected = index.data, index.digest
    if digest != expected:
        raise VerificationError(f"the manifest sent hashes to {digest}, the store knows it as {expected}")
    if not ref.digest and platform is None:
        # The tag now has a repo digest, as after a pull (docker's RepoDigests) -- if it still names
        # this image: another process may have moved or removed it meanwhile.
        store.index.set_tag_digest(ref.repository, target, image_id, digest)
    progress(Event(Kind.PUSHED_MANIFEST, text=f"{target}: digest: {digest} size: {len(sent)}"))
    return PushResult(ref, image_id, digest, len(sent), *counts)


@dataclass(frozen=True, slots=True)
class _Docs:
    manifest: object  # what _push_blobs reads of an image: its manifest


def _tag_digest(store: Store, ref: Reference) -> str | None:
    row = store.index.tag_row(ref.repository, ref.tag or "latest")
    return row[1] if row else None


def _refuse_missing(ref: Reference, client, index, present: set[str]) -> None:
    """Every entry of the index the store lacks (platforms not pulled, attestations) must be in
    the repository already: the registry refuses an index naming unknown manifests."""
    absent = [d for d in index.index.manifests if d.digest not in present]
    missing = [d for d in absent if not client.manifest_exists(ref.domain, ref.path, d.digest)]
    if not missing:
        return
    names = []
    for d in missing:
        if d.platform is None or is_attestation(d):
            names.append(f"attestation {d.digest[7:19]}")
        else:
            names.append(str(d.platform.normalized()))
    raise PushRefused(
        f"cannot push {ref.familiar()}: its index names content the store does not hold and "
        f"{ref.repository} does not have ({', '.join(names)}); pull them with --all-platforms "
        f"(and --attestations), or push one platform with --platform"
    )


def _push_blobs(ref: Reference, store: Store, client, lease, img, progress: Progress, counts: list[int]) -> None:
    """An image's layers (top first) and config: skipped when the repository has them,
    mounted from another repository when the store knows one, else uploaded."""
    blobs = [(d.digest, d.size, d.urls, True) for d in reversed(img.manifest.layers)]
    blobs.append((img.manifest.config.digest, img.manifest.config.size, (), False))
    for digest, _, _, is_layer in blobs:
        if is_layer:
            progress(Event(Kind.PREPARING, _short(digest)))
    done: set[str] = set()
    lease.add(*(b[0] for b in blobs))  # no collection removes them while they are read
    for digest, size, urls, is_layer in blobs:
        short = _short(digest)
        if digest in done:
            continue
        done.add(digest)
        if urls:
            progress(Event(Kind.SKIPPED, short, text="Skipped foreign layer"))
            continue
        if client.blob_exists(ref.domain, ref.path, digest):
            counts[2] += 1
            if is_layer:
                progress(Event(Kind.EXISTS, short))
            continue
        location = None
        was_mounted = False
        for source in mount_sources(store, ref, digest):
            try:
                location = client.mount_blob(ref.domain, ref.path, digest, source)
            except RegistryError:
                continue  # not allowed there, or gone: try the next one, then upload
            if location is None:
                was_mounted = True
                counts[1] += 1
                if is_layer:
                    progress(Event(Kind.MOUNTED, short, text=f"Mounted from {source}"))
            break  # mounted, or the registry started a plain upload instead: use it
        if was_mounted:
            continue
        if location is None:
            location = client.start_upload(ref.domain, ref.path)
        client.upload_blob(ref.domain, ref.path, location, digest, size, _chunks(store, digest, size, progress if is_layer else (lambda e: None)))
        counts[0] += 1
        if is_layer:
            progress(Event(Kind.PUSHED, short))


def push_all_tags(ref: Reference, *, store: Store, client, progress: Progress | None = None) -> list[PushResult]:
    """Push every tag the store has for ``ref``'s repository (``push -a``)."""
    tags = [t for t, _ in store.index.repository_tags(ref.repository)]
    if not tags:
        raise ImageNotFound(f"An image does not exist locally with the tag: {ref.familiar_repository}")
    return [push(ref.with_tag(t), store=store, client=client, progress=progress) for t in tags]
