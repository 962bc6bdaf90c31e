"""What the store knows about one image: ``inspect`` documents and ``history`` rows.  Never prints.

The image itself is read with imgctl.localimage, as the other use cases read it.
"""

from __future__ import annotations

from dataclasses import dataclass

from imgctl.errors import ImageNotFound, ImgctlError
from imgctl.localimage import open_image, resolve_image
from imgctl.reference import familiar_name
from imgctl.store import ImageRecord, Store, parse_created

__all__ = [
    "HistoryEntry",
    "image_references",
    "inspect_image",
    "inspect_images",
    "image_history",
]


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    id: str  # the image ID for the newest entry, "<missing>" below it (as docker)
    created: str | None  # RFC 3339 as in the config
    created_ts: float | None
    created_by: str
    size: int  # uncompressed size of the layer it made; 0 for an empty layer
    comment: str
    empty_layer: bool


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
