"""Independent checks of a store's invariants (read straight from disk and SQLite)."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path


def blob_files(root: Path) -> dict[str, Path]:
    d = Path(root) / "blobs" / "sha256"
    return {f"sha256:{p.name}": p for p in d.iterdir()} if d.is_dir() else {}


def assert_store_verifies(root: Path, *, allow_partials: bool = False) -> None:
    """Every blob hashes to its name, every indexed image is complete, and (unless
    ``allow_partials``, e.g. after a kill) no partial download is left."""
    root = Path(root)
    for digest, path in blob_files(root).items():
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
        assert f"sha256:{h.hexdigest()}" == digest, f"blob {path} does not hash to its name"
    leftovers = [p for p in (root / "ingest").iterdir()] if (root / "ingest").is_dir() else []
    if not allow_partials:
        assert leftovers == [], f"partial files left in ingest: {leftovers}"
    db = root / "index.db"
    if db.exists():
        con = sqlite3.connect(db)
        try:
            present = set(blob_files(root))
            for image_id, digest in con.execute("SELECT image_id, digest FROM image_blobs"):
                assert digest in present, f"image {image_id} needs missing blob {digest}"
            for (image_id,) in con.execute("SELECT id FROM images"):
                assert image_id in present, f"image {image_id} has no config blob"
        finally:
            con.close()


def image_ids(root: Path) -> set[str]:
    if not (Path(root) / "index.db").exists():
        return set()
    con = sqlite3.connect(Path(root) / "index.db")
    try:
        return {r[0] for r in con.execute("SELECT id FROM images")}
    finally:
        con.close()
