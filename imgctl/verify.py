"""``imgctl verify``: re-hash every blob and check every image against the index.

Blobs are hashed in parallel (hashlib releases the GIL on large updates), each
streamed in 1 MiB reads so memory stays flat whatever the blob size.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
from dataclasses import dataclass, field

from imgctl.store import Store

__all__ = ["Problem", "VerifyReport", "verify_store"]

READ = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # corrupt-blob | missing-blob | bad-manifest | bad-config
    digest: str
    detail: str
    images: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.detail


@dataclass
class VerifyReport:
    blobs: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)


def _hash_file(path: str) -> tuple[str, int] | None:
    h = hashlib.sha256()
    n = 0
    try:
        with open(path, "rb", buffering=0) as f:
            while chunk := f.read(READ):
                h.update(chunk)
                n += len(chunk)
    except FileNotFoundError:
        return None  # removed meanwhile by a concurrent prune: not a problem
    return f"sha256:{h.hexdigest()}", n


def verify_store(store: Store, *, repair: bool = False, jobs: int | None = None) -> VerifyReport:
    report = VerifyReport()
    names = sorted(os.listdir(store.blobs_dir)) if store.blobs_dir.is_dir() else []
    con = store.db
    users: dict[str, list[str]] = {}
    for image_id, digest in con.execute("SELECT image_id, digest FROM image_blobs ORDER BY image_id"):
        users.setdefault(digest, []).append(image_id)

    corrupt: set[str] = set()
    workers = jobs or min(8, (os.cpu_count() or 2))
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda n: (n, _hash_file(str(store.blobs_dir / n))), names)
        for name, res in results:
            if res is None:
                continue
            report.blobs += 1
            digest = f"sha256:{name}"
            actual, _ = res
            if actual != digest:
                corrupt.add(digest)
                report.problems.append(
                    Problem("corrupt-blob", digest, f"blob {digest} is corrupt: its content hashes to {actual}",
                            tuple(users.get(digest, ())))
                )

    present = {f"sha256:{n}" for n in names}
    images = con.execute("SELECT id, manifest_digest FROM images ORDER BY id").fetchall()
    report.images = len(images)
    damaged = store.damaged()
    for image_id, manifest_digest in images:
        if image_id in damaged and not repair:
            report.problems.append(
                Problem("damaged", image_id, f"image {image_id[7:19]}: repaired earlier, needs a pull to be complete again", (image_id,))
            )
        rows = con.execute(
            "SELECT digest, kind, position FROM image_blobs WHERE image_id = ? ORDER BY kind, position", (image_id,)
        ).fetchall()
        for digest, kind, _ in rows:
            if digest not in present:
                report.problems.append(
                    Problem("missing-blob", digest, f"image {image_id[7:19]}: {kind} blob {digest} is missing", (image_id,))
                )
        if manifest_digest in present and manifest_digest not in corrupt:
            problem = _check_manifest(store, image_id, manifest_digest, [d for d, k, _ in rows if k == "layer"])
            if problem:
                report.problems.append(problem)

    if repair:
        damaged: set[str] = set()
        for p in report.problems:
            damaged.update(p.images)
            if p.kind == "corrupt-blob":
                try:
                    os.unlink(store.blob_path(p.digest))
                    report.removed.append(p.digest)
                except FileNotFoundError:
                    pass
        if report.removed:
            with store.transaction() as tx:
                tx.executemany("DELETE FROM layers WHERE digest = ?", [(d,) for d in report.removed])
        store.mark_damaged(sorted(damaged))
        report.damaged = sorted(damaged)
    return report


def _check_manifest(store: Store, image_id: str, manifest_digest: str, layers: list[str]) -> Problem | None:
    try:
        doc = json.loads(store.read_blob(manifest_digest))
        config = doc["config"]["digest"]
        listed = [l["digest"] for l in doc["layers"]]
    except (ValueError, KeyError, TypeError):
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: manifest {manifest_digest} is not an image manifest", (image_id,))
    if config != image_id:
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: manifest {manifest_digest} names config {config}", (image_id,))
    if listed != layers:
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: the index's layers differ from manifest {manifest_digest}", (image_id,))
    return None
