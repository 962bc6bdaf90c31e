"""Tag, remove and prune images; disk usage.  Docker's semantics, no printing.

Every index change is one transaction; blobs are removed afterwards by
``collect_garbage``, which never touches what an image or a live pull needs.
A crash between the two leaves only unreferenced blobs, which the next
collection removes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgctl.errors import ConflictError, ImageNotFound, ImgctlError, UsageError
from imgctl.localimage import resolve_image, resolve_image_id
from imgctl.oci import Platform
from imgctl.platforms import remove_platform
from imgctl.reference import familiar_name, familiar_repository, parse
from imgctl.store import Index, Store, collect_garbage, is_blob_name

__all__ = ["tag_image", "remove_images", "remove_platform_images", "RemoveOutcome", "prune_images", "PruneResult", "disk_usage", "DiskUsage"]


def tag_image(store: Store, source: str, target: str) -> None:
    """Point TARGET (NAME[:TAG]) at the image SOURCE names; moves an existing TARGET."""
    dst = parse(target, default_tag=False)
    if dst.digest:
        raise UsageError("refusing to create a tag with a digest reference")
    image_id = resolve_image_id(store, source)
    tag = dst.tag or "latest"
    index = store.index
    with index.transaction():
        if not index.has_image(image_id):
            raise ImageNotFound(f"No such image: {source}")  # removed meanwhile by another process
        index.tag(dst.repository, tag, image_id)


@dataclass
class RemoveOutcome:
    name: str
    lines: list[str] = field(default_factory=list)  # "Untagged: ...", "Deleted: ..."
    error: ImgctlError | None = None


def _refs(index: Index, image_id: str) -> list[tuple[str, str | None, str | None]]:
    """(repository, tag, digest) references of an image: tags first, then pinned digests."""
    rows = [(r, t, None) for r, t in index.tags_of(image_id)]
    rows += [(r, None, d) for r, d in index.pins_of(image_id)]
    return rows


def _repo_digest_lines(index: Index, image_id: str, repository: str | None, tag_digests: set[tuple[str, str]]) -> list[str]:
    """Drop the repo digests (``repo@sha256:...``) of ``repository`` (None: every repository) and
    say so, as docker does: pinned digests and the digests the removed tags were pulled as."""
    pinned = index.pins_in(image_id, repository)
    for repo, digest in pinned:
        index.unpin(repo, digest)
    wanted = {(r, d) for r, d in tag_digests if repository is None or r == repository}
    return [f"Untagged: {familiar_name(r, None, d)}" for r, d in sorted(wanted | set(pinned))]


def _remove_one(store: Store, name: str, image_id: str, is_id: bool, force: bool) -> tuple[list[str], str | None]:
    """Docker's ImageDelete for one argument; returns (lines, image id deleted or None)."""
    lines: list[str] = []
    ref = None if is_id else parse(name)
    index = store.index
    with index.transaction():
        if is_id:
            if not index.has_image(image_id):
                raise ImageNotFound(f"No such image: {name}")  # removed meanwhile by another process
            refs = _refs(index, image_id)
            repos = {r for r, _, _ in refs}
            tags = [x for x in refs if x[1] is not None]
            if len(tags) <= 1 and len(repos) <= 1 or force:
                tag_digests = index.tag_digests(image_id)
                for repo, tag, _ in tags:
                    index.untag(repo, tag)
                    lines.append(f"Untagged: {familiar_name(repo, tag)}")
                lines.extend(_repo_digest_lines(index, image_id, None, tag_digests))
            else:
                raise ConflictError(
                    f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
        else:
            if ref.digest:
                pinned_id = index.pin_target(ref.repository, ref.digest)
                tag_rows = index.tags_pulled_as(ref.repository, ref.digest)
                if pinned_id is None and not tag_rows:
                    raise ImageNotFound(f"No such image: {ref.familiar()}")
                image_id = pinned_id if pinned_id is not None else tag_rows[0][1]
                if pinned_id is not None:
                    index.unpin(ref.repository, ref.digest)
                for tag, tagged_image in tag_rows:  # the digest also named these tags' content
                    index.clear_tag_digest(ref.repository, tag)
                lines.append(f"Untagged: {familiar_name(ref.repository, None, ref.digest)}")
            else:
                tag = ref.tag or "latest"
                image_id = index.tag_target(ref.repository, tag)
                if image_id is None:
                    raise ImageNotFound(f"No such image: {familiar_name(ref.repository, tag)}")
                tag_digests = index.tag_digests(image_id, ref.repository, tag)
                index.untag(ref.repository, tag)
                lines.append(f"Untagged: {familiar_name(ref.repository, tag)}")
                # The last tag of a repository takes that repository's digest references with it.
                if not index.tagged_in(image_id, ref.repository):
                    lines.extend(_repo_digest_lines(index, image_id, ref.repository, tag_digests))
            if _refs(index, image_id):
                return lines, None  # other references remain: the untag was the whole removal
        index.delete_image(image_id)
    return lines, image_id


def _image_blob_order(store: Store, image_id: str) -> list[str]:
    """The image's blobs in the order docker reports deletions: layers top-down, then manifests."""
    rows = [(d, k, p) for k, d, p in store.index.blob_rows(image_id)]
    layers = [d for d, k, p in sorted(rows, key=lambda r: -r[2]) if k == "layer"]
    others = [d for d, k, _ in rows if k in ("manifest", "index")]
    return layers + others


def remove_images(store: Store, names: list[str], *, force: bool = False, prune: bool = True) -> list[RemoveOutcome]:
    """``rmi``: each name is handled on its own; failures don't stop the rest."""
    store.check_removable()  # nothing is removed on the word of an index that was not checked
    outcomes = []
    for name in names:
        out = RemoveOutcome(name)
        try:
            image_id, is_id = resolve_image(store, name)
            order = _image_blob_order(store, image_id)
            lines, deleted = _remove_one(store, name, image_id, is_id, force)
            out.lines.extend(lines)
            if deleted is not None:
                out.lines.append(f"Deleted: {deleted}")
                if prune:
                    freed = {d for d, _ in collect_garbage(store)}
                    out.lines.extend(f"Deleted: {d}" for d in order if d in freed and d != deleted)
        except ImgctlError as e:
            out.error = e
        outcomes.append(out)
    return outcomes


def remove_platform_images(store: Store, names: list[str], want: Platform, *, prune: bool = True) -> list:
    """``rmi --platform``: remove that platform's content from each image; the lines say what
    was deleted (the platform's manifest, then its blobs nothing else uses)."""
    outcomes = []
    for name in names:
        out = RemoveOutcome(name)
        try:
            image_id, _ = resolve_image(store, name)
            manifest = remove_platform(store, image_id, want, name)
            out.lines.append(f"Deleted: {manifest}")
            if prune:
                out.lines.extend(f"Deleted: {d}" for d, _ in collect_garbage(store) if d != manifest)
        except ImgctlError as e:
            out.error = e
        outcomes.append(out)
    return outcomes


@dataclass
class PruneResult:
    lines: list[str]
    reclaimed: int


def prune_images(store: Store, *, all_untagged: bool = False) -> PruneResult:
    """Remove dangling images (``all_untagged``: every image without a tag) and their unshared blobs."""
    lines: list[str] = []
    store.check_removable()  # nothing is removed on the word of an index that was not checked
    index = store.index
    with index.transaction():
        for image_id in index.prune_candidates(all_untagged=all_untagged):
            for repo, _, digest in _refs(index, image_id):
                index.unpin(repo, digest)
                lines.append(f"untagged: {familiar_name(repo, None, digest)}")
            index.delete_image(image_id)
            lines.append(f"deleted: {image_id}")
    freed = collect_garbage(store)
    return PruneResult(lines, sum(size for _, size in freed))


@dataclass
class ImageUsage:
    id: str
    repository: str
    tag: str
    created_ts: float | None
    size: int
    shared: int
    unique: int


@dataclass
class DiskUsage:
    total: int
    active: int
    size: int
    reclaimable: int
    images: list[ImageUsage]


def disk_usage(store: Store) -> DiskUsage:
    """Bytes on disk: blobs counted once however many images share them."""
    index = store.index
    sizes: dict[str, int] = {}
    if store.blobs_dir.is_dir():
        import os

        for entry in os.scandir(store.blobs_dir):
            if is_blob_name(entry.name) and entry.is_file(follow_symlinks=False):  # strays are not blobs
                try:
                    sizes[f"sha256:{entry.name}"] = entry.stat(follow_symlinks=False).st_size
                except FileNotFoundError:
                    pass  # removed meanwhile
    users: dict[str, set[str]] = {}
    for image_id, digest in index.blob_users():
        users.setdefault(digest, set()).add(image_id)
    images = index.image_activity()
    active_ids = {i for i, _, a in images if a}
    names = {}
    for repo, tag, image_id in index.all_tags():
        names.setdefault(image_id, (familiar_repository(repo), tag))
    for repo, _, image_id in index.all_pins():
        names.setdefault(image_id, (familiar_repository(repo), "<none>"))
    per_image = []
    for image_id, created_ts, _ in images:
        mine = [d for d, u in users.items() if image_id in u]
        shared = sum(sizes.get(d, 0) for d in mine if len(users[d]) > 1)
        unique = sum(sizes.get(d, 0) for d in mine if len(users[d]) == 1)
        repo, tag = names.get(image_id, ("<none>", "<none>"))
        per_image.append(ImageUsage(image_id, repo, tag, created_ts, shared + unique, shared, unique))
    per_image.sort(key=lambda u: (-(u.created_ts or 0), u.repository, u.tag))
    needed_by_active = {d for d, u in users.items() if u & active_ids}
    total_size = sum(sizes.values())
    reclaimable = sum(s for d, s in sizes.items() if d not in needed_by_active)
    return DiskUsage(len(images), len(active_ids), total_size, reclaimable, per_image)
