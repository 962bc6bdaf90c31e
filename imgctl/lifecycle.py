"""Tag, remove and prune images; disk usage.  Docker's semantics, no printing.

Every index change is one transaction; blobs are removed afterwards by
``collect_garbage``, which never touches what an image or a live pull needs.
A crash between the two leaves only unreferenced blobs, which the next
collection removes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from imgctl.errors import ConflictError, ImageNotFound, ImgctlError, UsageError
from imgctl.images import familiar_repository, resolve_image, resolve_image_id
from imgctl.reference import parse
from imgctl.store import Store, collect_garbage, is_blob_name

__all__ = ["tag_image", "remove_images", "RemoveOutcome", "prune_images", "PruneResult", "disk_usage", "DiskUsage"]


def _familiar(repository: str, tag: str | None = None, digest: str | None = None) -> str:
    name = familiar_repository(repository)
    if tag:
        return f"{name}:{tag}"
    if digest:
        return f"{name}@{digest}"
    return name


def tag_image(store: Store, source: str, target: str) -> None:
    """Point TARGET (NAME[:TAG]) at the image SOURCE names; moves an existing TARGET."""
    dst = parse(target, default_tag=False)
    if dst.digest:
        raise UsageError("refusing to create a tag with a digest reference")
    image_id = resolve_image_id(store, source)
    tag = dst.tag or "latest"
    with store.transaction() as con:
        if con.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
            raise ImageNotFound(f"No such image: {source}")  # removed meanwhile by another process
        con.execute(
            "INSERT INTO tags (repository, tag, image_id, digest) VALUES (?,?,?,NULL) "
            "ON CONFLICT(repository, tag) DO UPDATE SET image_id=excluded.image_id, "
            "digest=CASE WHEN tags.image_id = excluded.image_id THEN tags.digest ELSE NULL END",
            (dst.repository, tag, image_id),
        )


@dataclass
class RemoveOutcome:
    name: str
    lines: list[str] = field(default_factory=list)  # "Untagged: ...", "Deleted: ..."
    error: ImgctlError | None = None


def _refs(con, image_id: str) -> list[tuple[str, str | None, str | None]]:
    """(repository, tag, digest) references of an image: tags first, then pinned digests."""
    rows = [(r, t, None) for r, t in con.execute("SELECT repository, tag FROM tags WHERE image_id = ? ORDER BY repository, tag", (image_id,))]
    rows += [(r, None, d) for r, d in con.execute("SELECT repository, digest FROM digests WHERE image_id = ? ORDER BY repository, digest", (image_id,))]
    return rows


def _repo_digest_lines(con, image_id: str, repository: str | None, tag_digests: set[tuple[str, str]]) -> list[str]:
    """Drop the repo digests (``repo@sha256:...``) of ``repository`` (None: every repository) and
    say so, as docker does: pinned digests and the digests the removed tags were pulled as."""
    pinned = con.execute(
        "SELECT repository, digest FROM digests WHERE image_id = ? AND (? IS NULL OR repository = ?)",
        (image_id, repository, repository),
    ).fetchall()
    for repo, digest in pinned:
        _drop_ref(con, repo, None, digest)
    wanted = {(r, d) for r, d in tag_digests if repository is None or r == repository}
    return [f"Untagged: {_familiar(r, None, d)}" for r, d in sorted(wanted | set(pinned))]


def _remove_one(store: Store, name: str, image_id: str, is_id: bool, force: bool) -> tuple[list[str], str | None]:
    """Docker's ImageDelete for one argument; returns (lines, image id deleted or None)."""
    lines: list[str] = []
    ref = None if is_id else parse(name)
    with store.transaction() as con:
        if is_id:
            if con.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is None:
                raise ImageNotFound(f"No such image: {name}")  # removed meanwhile by another process
            refs = _refs(con, image_id)
            repos = {r for r, _, _ in refs}
            tags = [x for x in refs if x[1] is not None]
            if len(tags) <= 1 and len(repos) <= 1 or force:
                tag_digests = _tag_digests(con, image_id)
                for repo, tag, _ in tags:
                    _drop_ref(con, repo, tag, None)
                    lines.append(f"Untagged: {_familiar(repo, tag)}")
                lines.extend(_repo_digest_lines(con, image_id, None, tag_digests))
            else:
                raise ConflictError(
                    f"conflict: unable to delete {image_id[7:19]} (must be forced) - "
                    "image is referenced in multiple repositories"
                )
        else:
            if ref.digest:
                row = con.execute(
                    "SELECT image_id FROM digests WHERE repository = ? AND digest = ?", (ref.repository, ref.digest)
                ).fetchone()
                tag_rows = con.execute(
                    "SELECT tag, image_id FROM tags WHERE repository = ? AND digest = ?", (ref.repository, ref.digest)
                ).fetchall()
                if row is None and not tag_rows:
                    raise ImageNotFound(f"No such image: {ref.familiar()}")
                image_id = row[0] if row else tag_rows[0][1]
                if row:
                    _drop_ref(con, ref.repository, None, ref.digest)
                for tag, tagged_image in tag_rows:  # the digest also named these tags' content
                    con.execute("UPDATE tags SET digest = NULL WHERE repository = ? AND tag = ?", (ref.repository, tag))
                lines.append(f"Untagged: {_familiar(ref.repository, None, ref.digest)}")
            else:
                tag = ref.tag or "latest"
                row = con.execute(
                    "SELECT image_id FROM tags WHERE repository = ? AND tag = ?", (ref.repository, tag)
                ).fetchone()
                if row is None:
                    raise ImageNotFound(f"No such image: {_familiar(ref.repository, tag)}")
                image_id = row[0]
                tag_digests = _tag_digests(con, image_id, ref.repository, tag)
                _drop_ref(con, ref.repository, tag, None)
                lines.append(f"Untagged: {_familiar(ref.repository, tag)}")
                # The last tag of a repository takes that repository's digest references with it.
                if not con.execute(
                    "SELECT 1 FROM tags WHERE image_id = ? AND repository = ?", (image_id, ref.repository)
                ).fetchone():
                    lines.extend(_repo_digest_lines(con, image_id, ref.repository, tag_digests))
            if _refs(con, image_id):
                return lines, None  # other references remain: the untag was the whole removal
        con.execute("DELETE FROM images WHERE id = ?", (image_id,))
    return lines, image_id


def _tag_digests(con, image_id: str, repository: str | None = None, tag: str | None = None) -> set[tuple[str, str]]:
    """(repository, digest) each tag of the image (or just ``repository:tag``) was pulled as."""
    return set(con.execute(
        "SELECT repository, digest FROM tags WHERE image_id = ? AND digest IS NOT NULL "
        "AND (? IS NULL OR (repository = ? AND tag = ?))",
        (image_id, repository, repository, tag),
    ).fetchall())


def _drop_ref(con, repository: str, tag: str | None, digest: str | None) -> None:
    if tag is not None:
        con.execute("DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))
    else:
        con.execute("DELETE FROM digests WHERE repository = ? AND digest = ?", (repository, digest))


def _image_blob_order(store: Store, image_id: str) -> list[str]:
    """The image's blobs in the order docker reports deletions: layers top-down, then manifests."""
    rows = store.db.execute(
        "SELECT digest, kind, position FROM image_blobs WHERE image_id = ?", (image_id,)
    ).fetchall()
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


@dataclass
class PruneResult:
    lines: list[str]
    reclaimed: int


def prune_images(store: Store, *, all_untagged: bool = False) -> PruneResult:
    """Remove dangling images (``all_untagged``: every image without a tag) and their unshared blobs."""
    lines: list[str] = []
    store.check_removable()  # nothing is removed on the word of an index that was not checked
    with store.transaction() as con:
        if all_untagged:
            victims = [r[0] for r in con.execute(
                "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) ORDER BY id"
            )]
        else:
            victims = [r[0] for r in con.execute(
                "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) "
                "AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id) ORDER BY id"
            )]
        for image_id in victims:
            for repo, _, digest in _refs(con, image_id):
                _drop_ref(con, repo, None, digest)
                lines.append(f"untagged: {_familiar(repo, None, digest)}")
            con.execute("DELETE FROM images WHERE id = ?", (image_id,))
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
    con = store.db
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
    for image_id, digest in con.execute("SELECT image_id, digest FROM image_blobs"):
        users.setdefault(digest, set()).add(image_id)
    images = con.execute(
        "SELECT i.id, i.created_ts, "
        "EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) OR EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id) "
        "FROM images i"
    ).fetchall()
    active_ids = {i for i, _, a in images if a}
    names = {}
    for repo, tag, image_id in con.execute("SELECT repository, tag, image_id FROM tags ORDER BY repository, tag"):
        names.setdefault(image_id, (familiar_repository(repo), tag))
    for repo, image_id in con.execute("SELECT repository, image_id FROM digests ORDER BY repository"):
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
