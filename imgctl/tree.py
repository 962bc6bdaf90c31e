"""The data behind ``images --tree`` and the manifests list of ``images --format json``.

Never prints (cli/images_tree.py renders docker 29's layout).  Sizes are bytes of the store's blobs
(imgctl keeps the content only, nothing unpacked): a platform's DISK USAGE and CONTENT SIZE
are the bytes of its manifest, config and layers; an image's DISK USAGE counts each blob it
holds once (platforms share layers), its CONTENT SIZE sums its platforms' as docker does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imgctl.platforms import attestation_entries, image_entries, index_for, platforms
from imgctl.store import Store

__all__ = ["TreeImage", "TreePlatform", "tree_images", "manifest_summaries", "has_index"]


@dataclass(frozen=True, slots=True)
class TreePlatform:
    platform: str  # os/arch[/variant]
    id: str  # the platform's manifest digest
    available: bool
    disk_usage: int
    content_size: int


@dataclass(slots=True)
class TreeImage:
    id: str
    names: list[str] = field(default_factory=list)  # NAME:TAG (familiar); none: <untagged>
    disk_usage: int = 0
    content_size: int = 0
    platforms: list[TreePlatform] = field(default_factory=list)


def _blob_size(store: Store, digest: str, cache: dict[str, int]) -> int:
    if digest not in cache:
        try:
            cache[digest] = os.stat(store.blob_path(digest)).st_size
        except OSError:
            cache[digest] = 0
    return cache[digest]


def _platform_blobs(store: Store, manifest_digest: str) -> list[str]:
    from imgctl.platforms import manifest_blobs

    return [d for _, d, _ in manifest_blobs(store, manifest_digest)]


def tree_images(store: Store, rows) -> list[TreeImage]:
    """One entry per image of ``rows`` (``images``' rows, newest first), with its platforms."""
    out: dict[str, TreeImage] = {}
    sizes: dict[str, int] = {}
    for r in rows:
        img = out.get(r.id)
        if img is None:
            img = out[r.id] = TreeImage(r.id)
        if r.repository and r.tag:
            img.names.append(f"{r.repository}:{r.tag}")
    for img in out.values():
        held = set(store.index.image_digests(img.id))
        img.disk_usage = sum(_blob_size(store, d, sizes) for d in held)
        for e in platforms(store, img.id):
            size = sum(_blob_size(store, d, sizes) for d in _platform_blobs(store, e.manifest_digest)) if e.available else 0
            img.platforms.append(TreePlatform(str(e.platform), e.manifest_digest, e.available, size, size))
            img.content_size += size
    return list(out.values())


def has_index(store: Store) -> set[str]:
    """IDs of the images that stand for an index (multi-platform images)."""
    return store.index.index_image_ids()


def manifest_summaries(store: Store, image_id: str) -> list[dict]:
    """docker's API ``Manifests`` of an image (ImageManifestSummary): each platform image and
    each attestation of its index, with whether its content is in the store and its sizes."""
    idx = index_for(store, image_id)
    if idx is None:
        return []
    sizes: dict[str, int] = {}
    by_manifest = {e.manifest_digest: e for e in platforms(store, image_id, idx.digest)}
    out = []
    attests = {d.digest for d in attestation_entries(idx.index)}
    images = {d.digest for d in image_entries(idx.index)}
    from imgctl.platforms import attestation_blobs

    for d in idx.index.manifests:
        desc: dict = {"mediaType": d.media_type, "digest": d.digest, "size": d.size}
        if d.platform is not None:
            p = {"architecture": d.platform.architecture, "os": d.platform.os}
            if d.platform.variant:
                p["variant"] = d.platform.variant
            desc["platform"] = p
        if d.annotations:
            desc["annotations"] = dict(d.annotations)
        entry: dict = {"ID": d.digest, "Descriptor": desc}
        if d.digest in images:
            e = by_manifest.get(d.digest)
            content = sum(_blob_size(store, b, sizes) for b in _platform_blobs(store, d.digest)) if e and e.available else 0
            entry.update(
                Available=bool(e and e.available),
                Size={"Total": content, "Content": content},
                Kind="image",
                ImageData={
                    "Platform": desc.get("platform", {}),
                    "Containers": [],
                    "Size": {"Unpacked": e.record.size if e and e.record else 0},
                },
            )
        elif d.digest in attests:
            blobs = attestation_blobs(store, d.digest)
            content = sum(_blob_size(store, b, sizes) for b in blobs or ())
            entry.update(
                Available=blobs is not None,
                Size={"Total": content, "Content": content},
                Kind="attestation",
                AttestationData={"For": (d.annotations or {}).get("vnd.docker.reference.digest", "")},
            )
        else:
            entry.update(Available=False, Size={"Total": 0, "Content": 0}, Kind="unknown")
        out.append(entry)
    return out
