"""The local store: verified blobs by digest, and an SQLite index of images and tags.

Layout of a store root::

    blobs/sha256/<hex>   content, present only once its size and digest were verified
    ingest/              partial downloads (same filesystem, moved in with rename)
    index.db             SQLite (WAL): images, their blobs, layers, tags, repo digests, leases

Content becomes visible through ``BlobWriter.commit`` alone: fsync, check size
and digest, rename into place, fsync the directory.  Index changes are single
transactions.  Blobs that a pull in progress will need are protected by a
*lease* (rows committed before the pull looks at the blob), so garbage
collection in another process never removes them.  No HTTP here.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imgctl.errors import StoreError, VerificationError
from imgctl.reference import validate_digest

__all__ = ["Store", "BlobWriter", "ImageRecord", "LayerRecord", "parse_created"]

SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                 -- sha256:<config digest>
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created TEXT,
    created_ts REAL,
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    variant TEXT,
    size INTEGER NOT NULL,               -- sum of uncompressed layer sizes
    compressed_size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    added_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_created ON images(created_ts);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,                  -- index | manifest | config | layer
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (image_id, kind, position, digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS layers (
    digest TEXT PRIMARY KEY,             -- compressed digest (blob name)
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    media_type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL,            -- fully qualified: docker.io/library/ubuntu
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT,                         -- the manifest (or index) digest it was pulled as
    PRIMARY KEY (repository, tag)
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS digests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS digests_image ON digests(image_id);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    digest TEXT NOT NULL,
    created_ts REAL NOT NULL,
    PRIMARY KEY (lease_id, digest)
);
CREATE INDEX IF NOT EXISTS leases_digest ON leases(digest);
CREATE TABLE IF NOT EXISTS damaged (
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE  -- found broken by verify --repair
);
"""


def parse_created(value: str | None) -> float | None:
    """RFC 3339 (with up to nanoseconds) to a Unix timestamp; None when absent or invalid."""
    if not value:
        return None
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, _, rest = s.partition(".")
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    ts = dt.timestamp()
    return ts if ts > 0 else None


@dataclass(frozen=True, slots=True)
class LayerRecord:
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    manifest_digest: str
    manifest_media_type: str
    created: str | None
    created_ts: float | None
    os: str
    architecture: str
    variant: str | None
    size: int
    compressed_size: int
    labels: dict
    added_ts: float


def _disk_error(store: "Store", e: OSError) -> StoreError:
    """ENOSPC and friends as one clear line; nothing half-written stays (the writer aborts)."""
    return StoreError(f"cannot write to the store at {store.root}: {e.strerror or e}")


class BlobWriter:
    """Writes one blob into the ingest area; ``commit`` verifies and publishes it.

    ``write`` refuses more bytes than the expected size as soon as they arrive, so
    a hostile stream can never grow a file beyond its descriptor.

    A *resumable* writer keeps its data in ``ingest/<hex>.partial`` under an exclusive
    ``flock`` (released by the kernel if the process dies).  A later writer for the same
    digest takes the file over: ``existing()`` re-reads and re-hashes what is there, so
    the download continues from ``written`` and nothing is trusted unverified.  When
    another live process holds the lock, this writer uses a private temporary file.
    """

    def __init__(self, store: "Store", digest: str, size: int | None, *, resumable: bool = False) -> None:
        self.store = store
        self.digest = validate_digest(digest)
        self.expected_size = size
        self._hash = hashlib.new(self.digest.split(":", 1)[0])
        self.written = 0
        self._on_disk = 0  # bytes of an earlier partial not yet re-hashed by existing()
        self._closed = False
        self._committed = False
        hexd = self.digest.split(":", 1)[1]
        fd = _lock_partial(store.ingest_dir / f"{hexd}.partial") if resumable else None
        try:
            if fd is not None:
                self.resumable = True
                self.path = store.ingest_dir / f"{hexd}.partial"
                self._f = os.fdopen(fd, "r+b", buffering=0)
                self._on_disk = os.fstat(fd).st_size
                if size is not None and self._on_disk > size:
                    self._f.truncate(0)
                    self._on_disk = 0
            else:
                self.resumable = False
                self.path = store.ingest_dir / f"{hexd}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part"
                self._f = open(self.path, "wb", buffering=0)
        except OSError as e:
            raise _disk_error(store, e) from e

    @property
    def on_disk(self) -> int:
        """Bytes an earlier, interrupted download left that ``existing()`` will re-read."""
        return self._on_disk

    def existing(self, chunk_size: int = 1024 * 1024) -> Iterator[bytes]:
        """Re-read (and re-hash) the bytes an interrupted download left; afterwards ``written`` counts them."""
        self._f.seek(0)
        remaining = self._on_disk
        while remaining > 0:
            chunk = self._f.read(min(chunk_size, remaining))
            if not chunk:
                break
            self._hash.update(chunk)
            self.written += len(chunk)
            remaining -= len(chunk)
            yield chunk
        self._f.seek(self.written)
        self._f.truncate(self.written)
        self._on_disk = 0

    def hexdigest(self) -> str:
        """The hex digest of the bytes written so far (a download checks its bytes against it)."""
        return self._hash.hexdigest()

    def reset(self) -> None:
        """Throw away everything written: the download starts over at byte 0."""
        try:
            self._f.seek(0)
            self._f.truncate(0)
        except OSError as e:
            raise _disk_error(self.store, e) from e
        self._hash = hashlib.new(self.digest.split(":", 1)[0])
        self.written = 0
        self._on_disk = 0

    def write(self, data: bytes | memoryview) -> None:
        n = len(data)
        if self.expected_size is not None and self.written + n > self.expected_size:
            raise VerificationError(
                f"blob {self.digest} is larger than its declared size of {self.expected_size} bytes"
            )
        try:
            view = memoryview(data)
            while view:
                # An unbuffered write may be short (the disk filling up): the file must hold
                # exactly what the hash covers, so write the rest or fail.
                done = self._f.write(view)
                if not done:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                view = view[done:]
        except OSError as e:
            try:  # a failed write leaves the writer as it was: drop the part that got through
                self._f.truncate(self.written)
                self._f.seek(self.written)
            except OSError:
                pass  # the file then holds more than was written: commit() refuses it
            raise _disk_error(self.store, e) from e
        self._hash.update(data)
        self.written += n

    def commit(self, *, sync_dir: bool = True) -> Path:
        """Verify size and digest, then move the blob into place atomically.

        ``sync_dir=False`` leaves the directory's fsync to the caller, who must call
        ``Store.sync_blobs()`` before the index names the blob (a pull of many layers: one
        directory fsync instead of one per blob)."""
        try:
            if self.expected_size is not None and self.written != self.expected_size:
                raise VerificationError(
                    f"blob {self.digest} is truncated: got {self.written} of {self.expected_size} bytes"
                )
            actual = f"{self._hash.name}:{self._hash.hexdigest()}"
            if actual != self.digest:
                raise VerificationError(f"digest mismatch for {self.digest}: content hashes to {actual}")
            final = self.store.blob_path(self.digest)
            try:
                if os.fstat(self._f.fileno()).st_size != self.written:
                    raise VerificationError(f"blob {self.digest}: the ingest file does not hold what was written")
                os.fsync(self._f.fileno())
                os.replace(self.path, final)  # still under our lock: nobody else writes this file
            except OSError as e:
                raise _disk_error(self.store, e) from e
            # From here the old name may already belong to another writer's new partial: never unlink it.
            self._f.close()
            self._closed = True
            self._committed = True
            if sync_dir:
                self.store.sync_blobs()
            return final
        finally:
            if not self._committed:
                self.abort()

    def suspend(self) -> None:
        """Stop without verifying: a resumable partial stays for the next attempt; anything else goes."""
        if self.resumable and self.written > 0 and not self._closed:
            try:
                self._f.truncate(self.written)
            except OSError:
                pass
            self._f.close()  # releases the lock
            self._closed = True
            return
        self.abort()

    def abort(self) -> None:
        """Stop and delete what was written (bad data); a committed blob is left alone."""
        if self._committed:
            return
        if not self._closed:
            try:
                os.unlink(self.path)  # before closing: the lock still guards the name
            except FileNotFoundError:
                pass
            self._f.close()
            self._closed = True
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.abort()


def _lock_partial(path: Path) -> int | None:
    """Open and exclusively lock a partial file; None when another live process holds it."""
    import fcntl

    for _ in range(3):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the name was removed or replaced meanwhile: open it again
    return None


class Store:
    """A store root.  Cheap to open; the database is opened on first use."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []

    # -- layout ---------------------------------------------------------------
    def _ensure_dirs(self) -> None:
        try:
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            self.ingest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store at {self.root}: {e.strerror}") from e

    @staticmethod
    def _fsync_dir(path: Path) -> None:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = validate_digest(digest).partition(":")
        if algo != "sha256":
            raise StoreError(f"{algo} content addresses are not supported by the store (use the image's sha256 digest)")
        return self.blobs_dir / hexd

    def sync_blobs(self) -> None:
        """Make the blobs renamed into place so far durable (fsync of their directory)."""
        try:
            self._fsync_dir(self.blobs_dir)
        except OSError as e:
            raise _disk_error(self, e) from e

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str):
        """A verified blob opened for reading; a missing one is a StoreError, not a traceback."""
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest} is missing from the store (removed meanwhile, or run imgctl verify)"
            ) from None

    def read_blob(self, digest: str, max_size: int | None = None) -> bytes:
        path = self.blob_path(digest)
        try:
            with open(path, "rb") as f:
                data = f.read() if max_size is None else f.read(max_size + 1)
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is missing from the store") from None
        if max_size is not None and len(data) > max_size:
            raise StoreError(f"blob {digest} is larger than {max_size} bytes")
        return data

    def writer(self, digest: str, size: int | None, *, resumable: bool = False) -> BlobWriter:
        self._ensure_dirs()
        return BlobWriter(self, digest, size, resumable=resumable)

    def put_blob(self, digest: str, data: bytes) -> None:
        """Store small in-memory content (manifests, configs) through the same verified commit."""
        if self.has_blob(digest):
            return
        w = self.writer(digest, len(data))
        w.write(data)
        w.commit()

    # -- database ---------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the index (one per thread; SQLite serialises writers)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    def _connect(self) -> sqlite3.Connection:
        self._ensure_dirs()
        path = self.root / "index.db"
        try:
            con = sqlite3.connect(path, timeout=600, isolation_level=None, check_same_thread=False)
            con.execute("PRAGMA busy_timeout = 600000")
            con.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed removal is on disk before garbage collection unlinks anything.
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                with _transaction(con, self.root):
                    if con.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                        for stmt in _SCHEMA.split(";"):
                            if stmt.strip():
                                con.execute(stmt)
                        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version > SCHEMA_VERSION:
                raise StoreError(f"store {self.root} was written by a newer imgctl (schema {version})")
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store index {path}: {e}") from e
        return con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with _transaction(self.db, self.root) as con:
            yield con

    def close(self) -> None:
        with self._lock:
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    # -- leases -----------------------------------------------------------------
    @contextmanager
    def lease(self) -> Iterator["Lease"]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            lease.release()

    # -- layers -----------------------------------------------------------------
    def layer(self, digest: str) -> LayerRecord | None:
        row = self.db.execute(
            "SELECT digest, diff_id, size, uncompressed_size, media_type FROM layers WHERE digest = ?", (digest,)
        ).fetchone()
        return LayerRecord(*row) if row else None

    def record_layer(self, rec: LayerRecord) -> None:
        self.record_layers([rec])

    def record_layers(self, recs: Iterable[LayerRecord]) -> None:
        """Record verified layers in one transaction (a pull of many small layers batches them)."""
        with self.transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO layers (digest, diff_id, size, uncompressed_size, media_type) VALUES (?,?,?,?,?)",
                [(r.digest, r.diff_id, r.size, r.uncompressed_size, r.media_type) for r in recs],
            )

    # -- images -----------------------------------------------------------------
    def image(self, image_id: str) -> ImageRecord | None:
        row = self.db.execute(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return _image(row) if row else None

    def image_digests(self, image_id: str) -> list[str]:
        """Every blob an image needs (index, manifest, config, layers)."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT digest FROM image_blobs WHERE image_id = ?", (image_id,))]

    def image_is_complete(self, image_id: str) -> bool:
        """The image is indexed and every blob it needs is present."""
        if self.image(image_id) is None:
            return False
        rows = self.db.execute("SELECT digest FROM image_blobs WHERE image_id = ?", (image_id,)).fetchall()
        return bool(rows) and all(self.has_blob(d) for (d,) in rows)

    def mark_damaged(self, image_ids: list[str]) -> None:
        """Remember images that ``verify --repair`` found broken; a pull of them clears the mark."""
        if not image_ids:
            return
        with self.transaction() as con:
            con.executemany("INSERT OR IGNORE INTO damaged (image_id) VALUES (?)", [(i,) for i in image_ids])

    def damaged(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT image_id FROM damaged")}

    def set_tag_digest(self, repository: str, tag: str, image_id: str, digest: str) -> None:
        """Record the repo digest a tag was pushed as, if the tag still names ``image_id``."""
        with self.transaction() as con:
            con.execute(
                "UPDATE tags SET digest = ? WHERE repository = ? AND tag = ? AND image_id = ?",
                (digest, repository, tag, image_id),
            )

    def tag_target(self, repository: str, tag: str) -> str | None:
        row = self.db.execute("SELECT image_id FROM tags WHERE repository = ? AND tag = ?", (repository, tag)).fetchone()
        return row[0] if row else None

    def digest_target(self, repository: str, digest: str) -> str | None:
        row = self.db.execute(
            "SELECT image_id FROM digests WHERE repository = ? AND digest = ? "
            "UNION SELECT image_id FROM tags WHERE repository = ? AND digest = ? LIMIT 1",
            (repository, digest, repository, digest),
        ).fetchone()
        return row[0] if row else None

    def add_image(
        self,
        rec: ImageRecord,
        blobs: Iterable[tuple[str, str, int]],
        *,
        repository: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
        pinned: bool = False,
    ) -> bool:
        """Record an image (whose blobs are all committed) and point ``repository:tag`` at it.

        ``blobs`` are (kind, digest, position).  ``digest`` is the manifest/index digest
        the image was pulled as; with ``pinned`` (pulled by digest) it is recorded as a
        repo digest of its own.  Returns True when the tag (or digest) was new or moved.
        """
        blobs = list(blobs)
        kinds = {kind for kind, _, _ in blobs}
        if not {"manifest", "config"} <= kinds:
            raise StoreError(f"cannot record image {rec.id}: its manifest and config must be given")
        changed = False
        with self.transaction() as con:
            # Inside the write lock: garbage collection cannot remove a blob between check and record.
            missing = [d for _, d, _ in blobs if not self.has_blob(d)]
            if missing:
                raise StoreError(f"cannot record image {rec.id}: blob {missing[0]} is missing")
            con.execute(
                f"INSERT INTO images ({_IMAGE_COLS}) VALUES ({','.join('?' * _IMAGE_COLS_N)}) "
                "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, "
                "manifest_media_type=excluded.manifest_media_type",
                (
                    rec.id, rec.manifest_digest, rec.manifest_media_type, rec.created, rec.created_ts, rec.os,
                    rec.architecture, rec.variant, rec.size, rec.compressed_size,
                    json.dumps(rec.labels, sort_keys=True), rec.added_ts,
                ),
            )
            con.execute("DELETE FROM damaged WHERE image_id = ?", (rec.id,))
            # One manifest per image: the same config reached through another manifest (other
            # compression, another registry) replaces the blob list; unshared old blobs become garbage.
            con.execute("DELETE FROM image_blobs WHERE image_id = ?", (rec.id,))
            con.executemany(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest, kind, position) VALUES (?,?,?,?)",
                [(rec.id, d, kind, pos) for kind, d, pos in blobs],
            )
            if repository and tag:
                row = con.execute(
                    "SELECT image_id, digest FROM tags WHERE repository = ? AND tag = ?", (repository, tag)
                ).fetchone()
                changed = row is None or row[0] != rec.id
                con.execute(
                    "INSERT INTO tags (repository, tag, image_id, digest) VALUES (?,?,?,?) "
                    "ON CONFLICT(repository, tag) DO UPDATE SET image_id=excluded.image_id, digest=excluded.digest",
                    (repository, tag, rec.id, digest),
                )
            if repository and digest and pinned:
                row = con.execute(
                    "SELECT image_id FROM digests WHERE repository = ? AND digest = ?", (repository, digest)
                ).fetchone()
                changed = changed or row is None or row[0] != rec.id
                con.execute(
                    "INSERT OR REPLACE INTO digests (repository, digest, image_id) VALUES (?,?,?)",
                    (repository, digest, rec.id),
                )
        return changed

    def list_rows(self) -> list[tuple]:
        """Everything ``images`` needs in one query: one row per (image, tag or digest).

        Columns: id, created_ts, size, labels, repository, tag, digest, kind
        (kind 't' tag, 'd' digest-only, 'n' no reference).
        """
        return self.db.execute(
            """
            SELECT i.id, i.created_ts, i.size, i.labels, t.repository, t.tag, t.digest, 't'
              FROM images i JOIN tags t ON t.image_id = i.id
            UNION ALL
            SELECT i.id, i.created_ts, i.size, i.labels, d.repository, NULL, d.digest, 'd'
              FROM images i JOIN digests d ON d.image_id = i.id
            UNION ALL
            SELECT i.id, i.created_ts, i.size, i.labels, NULL, NULL, NULL, 'n'
              FROM images i
             WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id)
            """
        ).fetchall()


class Lease:
    """Digests a pull (or load, save, export) in progress depends on; committed before it
    looks at them.  The lease is alive while its holder keeps ``leases/<id>.lock`` flocked:
    the kernel drops the lock when the process dies, whatever PID namespace it ran in (a
    store shared between containers), so garbage collection never trusts PIDs for this."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.id = uuid.uuid4().hex
        self._digests: set[str] = set()
        self._fd: int | None = None

    def _hold(self) -> None:
        import fcntl

        d = self.store.root / "leases"
        try:
            d.mkdir(parents=True, exist_ok=True)
            fd = os.open(d / f"{self.id}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise _disk_error(self.store, e) from e
        fcntl.flock(fd, fcntl.LOCK_EX)  # a fresh name: never contended
        self._fd = fd

    def add(self, *digests: str) -> None:
        new = [validate_digest(d) for d in digests if d not in self._digests]
        if not new:
            return
        if self._fd is None:
            self._hold()  # the lock exists before any row names this lease
        now = time.time()
        with self.store.transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO leases (lease_id, pid, digest, created_ts) VALUES (?,?,?,?)",
                [(self.id, os.getpid(), d, now) for d in new],
            )
        self._digests.update(new)

    def release(self) -> None:
        if self._digests:
            try:
                with self.store.transaction() as con:
                    con.execute("DELETE FROM leases WHERE lease_id = ?", (self.id,))
            except (sqlite3.Error, StoreError):
                pass  # a stale lease only keeps blobs alive; GC drops it once its lock is free
            self._digests.clear()
        if self._fd is not None:
            try:
                os.unlink(self.store.root / "leases" / f"{self.id}.lock")
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None


def _lease_alive(store: Store, lease_id: str) -> bool:
    """Whether a lease's holder still holds its lock file (False when the file is gone)."""
    import fcntl

    try:
        fd = os.open(store.root / "leases" / f"{lease_id}.lock", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


_IMAGE_COLS = (
    "id, manifest_digest, manifest_media_type, created, created_ts, os, architecture, variant, "
    "size, compressed_size, labels, added_ts"
)
_IMAGE_COLS_N = 12


def _image(row: tuple) -> ImageRecord:
    vals = list(row)
    vals[10] = json.loads(vals[10] or "{}")
    return ImageRecord(*vals)


@contextmanager
def _transaction(con: sqlite3.Connection, root: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: writers queue on the busy timeout instead of failing."""
    try:
        con.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise StoreError(f"cannot lock the store index: {e}") from e
    try:
        yield con
    except sqlite3.Error as e:
        _rollback(con)
        raise _index_error(e, root) from e
    except BaseException:
        _rollback(con)
        raise
    else:
        try:
            con.execute("COMMIT")
        except sqlite3.Error as e:
            _rollback(con)
            raise _index_error(e, root) from e


def _index_error(e: sqlite3.Error, root: Path) -> StoreError:
    """A failed index update; a full disk reads the same as when a blob write hits it."""
    if getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL:
        return StoreError(f"cannot write to the store at {root}: {os.strerror(errno.ENOSPC)}")
    return StoreError(f"cannot update the store index: {e}")


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back if SQLite has not already done so (it does by itself on SQLITE_FULL and others)."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# -- garbage collection -----------------------------------------------------------------------
def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def collect_garbage(store: Store) -> list[tuple[str, int]]:
    """Delete every blob no image references and no live pull has leased.

    Runs inside one write transaction, so a pull cannot lease a blob between the
    check and the unlink; leases of dead processes and their partial downloads
    are cleaned up on the way.  Returns (digest, bytes freed) of removed blobs.
    """
    removed: list[tuple[str, int]] = []
    with store.transaction() as con:
        for lease_id in [r[0] for r in con.execute("SELECT DISTINCT lease_id FROM leases")]:
            if not _lease_alive(store, lease_id):
                con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
                try:
                    os.unlink(store.root / "leases" / f"{lease_id}.lock")
                except FileNotFoundError:
                    pass
        keep = {r[0] for r in con.execute("SELECT digest FROM image_blobs UNION SELECT digest FROM leases")}
        try:
            names = os.listdir(store.blobs_dir)
        except FileNotFoundError:
            names = []
        for name in names:
            digest = f"sha256:{name}"
            if digest in keep:
                continue
            path = store.blobs_dir / name
            try:
                size = path.stat().st_size
                path.unlink()
            except FileNotFoundError:
                continue
            removed.append((digest, size))
        if removed:
            con.executemany("DELETE FROM layers WHERE digest = ?", [(d,) for d, _ in removed])
        _clean_ingest(store, {r[0] for r in con.execute("SELECT digest FROM leases")})
    return removed


PARTIAL_EXPIRY = 24 * 3600  # seconds an interrupted download is kept for a resume


def _clean_ingest(store: Store, leased: set[str]) -> None:
    """Remove partial downloads nobody is writing: private temp files of dead processes, and
    resumable partials that are unlocked, not leased by a pull in progress, and older than a
    day (younger ones wait for the next pull to resume them, as containerd keeps ingests)."""
    import fcntl

    try:
        names = os.listdir(store.ingest_dir)
    except FileNotFoundError:
        return
    for name in names:
        path = store.ingest_dir / name
        parts = name.split(".")
        if name.endswith(".partial"):
            if f"sha256:{parts[0]}" in leased:
                continue
            try:
                if time.time() - path.stat().st_mtime < PARTIAL_EXPIRY:
                    continue
            except FileNotFoundError:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
            os.close(fd)
            continue
        try:
            pid = int(parts[1])
        except (IndexError, ValueError):
            pid = -1
        if pid == os.getpid() or _pid_alive(pid):
            continue
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
