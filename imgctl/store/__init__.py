"""The local store: verified blobs by digest, and an SQLite index of images and tags.

Layout of a store root::

    blobs/sha256/<hex>   content, present only once its size and digest were verified
    ingest/              partial downloads (same filesystem, moved in with rename)
    index.db             SQLite (WAL): images, their blobs, layers, tags, repo digests, leases
    refs.journal         append-only, fsynced record of every tag and repo digest change, one
                         checksummed line each, so ``verify --repair`` can restore them if
                         index.db is lost (images themselves are rebuilt from the blobs)
    lost+found/          what ``verify --repair`` moved aside: a damaged index, stray entries

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
import re
import sqlite3
import stat
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from imgctl.errors import IndexCorrupt, ReadOnlyStore, StoreError, StrayEntry, VerificationError
from imgctl.reference import validate_digest

__all__ = ["Store", "BlobWriter", "ScratchFile", "ImageRecord", "LayerRecord", "parse_created", "is_blob_name", "read_ref_journal"]

_BLOB_NAME = re.compile(r"[0-9a-f]{64}\Z")


def is_blob_name(name: str) -> bool:
    """Whether NAME is one the store gives a blob: 64 lowercase hex digits (anything else is a stray)."""
    return bool(_BLOB_NAME.match(name))

SCHEMA_VERSION = 3

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
    kind TEXT NOT NULL,                  -- index | manifest | config | layer | platform (another platform's blob)
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
CREATE TABLE IF NOT EXISTS image_indexes (  -- schema 3: the index (manifest list) an image was pulled or loaded as
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_indexes_digest ON image_indexes(digest);
CREATE TABLE IF NOT EXISTS image_platforms (  -- schema 3: an index image's other available platforms
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    created TEXT,
    created_ts REAL,
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    variant TEXT,
    size INTEGER NOT NULL,
    compressed_size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (image_id, manifest_digest)
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
    return _disk_error_at(store.root, e)


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
            except IsADirectoryError:
                raise StrayEntry(f"{final} is a directory where blob {self.digest} belongs (run imgctl verify --repair)") from None
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


class ScratchFile:
    """A private file in ``ingest/`` for one command's spool (``load`` of a pipe or of a
    compressed archive).  A write that fails (a full disk) removes the file and raises the
    store's one-line error; leaving the ``with`` block by an exception removes it too; a
    killed process's file is removed by the next garbage collection (its name holds the pid).
    The caller unlinks it (``discard``) once it is done with it."""

    def __init__(self, store: "Store", prefix: str, suffix: str = "") -> None:
        store._refuse_if_read_only()
        store._ensure_dirs()
        self.store = store
        self.path = store.ingest_dir / f"{prefix}.{os.getpid()}.{uuid.uuid4().hex[:8]}{suffix}"
        try:
            self._f = open(self.path, "xb")
        except OSError as e:
            raise _disk_error(store, e) from e
        self.size = 0

    def write(self, data: bytes | memoryview) -> int:
        try:
            n = self._f.write(data)
        except OSError as e:
            self.discard()
            raise _disk_error(self.store, e) from e
        self.size += n
        return n

    def finish(self) -> Path:
        """Flush and close (a full disk may only show here); the path, ready to be read."""
        try:
            self._f.close()
        except OSError as e:
            self.discard()
            raise _disk_error(self.store, e) from e
        return self.path

    def discard(self) -> None:
        try:
            self._f.close()
        except OSError:
            pass
        try:
            os.unlink(self.path)
        except OSError:
            pass

    def __enter__(self) -> "ScratchFile":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is not None:
            self.discard()


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
        self.read_only: bool | None = None  # decided when the index is first opened
        self._ro_reason = ""
        self._checked = False  # check_index() passed in this process
        self._removable_checked = False  # and check_removable()
        self._rebuilding = False  # verify --repair creates a new index for blobs it found

    @property
    def index_path(self) -> Path:
        return self.root / "index.db"

    @property
    def journal_path(self) -> Path:
        return self.root / JOURNAL

    # -- layout ---------------------------------------------------------------
    LAYOUT_DIRS = ("blobs", "blobs/sha256", "ingest", "leases", "lost+found")

    def layout_problems(self) -> list[Path]:
        """The store's directories that exist but are not directories (a file named ``ingest``,
        ``leases``, ``blobs/sha256``): nothing can be written until ``verify --repair`` moves them."""
        out = []
        for name in self.LAYOUT_DIRS:
            path = self.root / name
            try:
                if not stat.S_ISDIR(os.stat(path).st_mode):
                    out.append(path)
            except FileNotFoundError:
                continue
            except NotADirectoryError:  # under a parent that is not one (listed already)
                continue
            except OSError:
                out.append(path)
        return out

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
        """A regular file under the digest's name (a directory or symlink there is not a blob)."""
        try:
            return stat.S_ISREG(os.lstat(self.blob_path(digest)).st_mode)
        except OSError:
            return False

    def open_blob(self, digest: str):
        """A verified blob opened for reading; a missing one is a StoreError, not a traceback."""
        path = self.blob_path(digest)
        try:
            # O_NONBLOCK: a FIFO planted under a blob's name must not hang the reader.
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            raise StoreError(
                f"blob {digest} is missing from the store (removed meanwhile, or run imgctl verify)"
            ) from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise StrayEntry(f"{path} is a symlink, not a blob (run imgctl verify --repair)") from None
            raise StoreError(f"cannot read blob {digest}: {e.strerror}") from None
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StrayEntry(f"{path} is not a regular file, not a blob (run imgctl verify --repair)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")

    def read_blob(self, digest: str, max_size: int | None = None) -> bytes:
        with self.open_blob(digest) as f:
            try:
                data = f.read() if max_size is None else f.read(max_size + 1)
            except OSError as e:
                raise StoreError(f"cannot read blob {digest}: {e.strerror}") from None
        if max_size is not None and len(data) > max_size:
            raise StoreError(f"blob {digest} is larger than {max_size} bytes")
        return data

    def writer(self, digest: str, size: int | None, *, resumable: bool = False) -> BlobWriter:
        self._refuse_if_read_only()
        self._ensure_dirs()
        return BlobWriter(self, digest, size, resumable=resumable)

    def scratch(self, prefix: str, suffix: str = "") -> ScratchFile:
        """A spool file in ingest/ that cleans itself up on failure (see ScratchFile)."""
        return ScratchFile(self, prefix, suffix)

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
        for suffix in ("", "-wal", "-shm"):
            try:
                mode = os.stat(f"{self.index_path}{suffix}").st_mode
            except OSError:
                continue
            if not stat.S_ISREG(mode):
                raise IndexCorrupt(_damaged(self, f"index.db{suffix} is not a regular file"))
        if self.read_only is None:
            self.read_only = not self._writable()
        if not self.read_only:
            for attempt in (1, 2):
                try:
                    return self._connect_rw()
                except StoreError as e:
                    if isinstance(e, IndexCorrupt) or not _cannot_write(e.__cause__):
                        raise
                    self._ro_reason = _reason(e.__cause__)
                    if _disk_full(self.root):
                        self._ro_reason = os.strerror(errno.ENOSPC)
                        # Scratch files of processes that died (a killed load's spool) are
                        # what most often fills the disk: they go, and the index opens again.
                        if attempt == 1 and _clean_ingest(self, set()):
                            continue
                    break
            # A read-only filesystem, a full disk: what is there can still be read.
            self.read_only = True
        return self._connect_ro()

    def _writable(self) -> bool:
        """False when the store exists but this process cannot write it (read-only mount, permissions,
        a file where one of its directories should be)."""
        bad = self.layout_problems()
        if bad:
            self._ro_reason = f"{bad[0]} is not a directory; run imgctl verify --repair"
            return False
        for path in (self.root, self.index_path):
            if path.exists() and not os.access(path, os.W_OK):
                self._ro_reason = os.strerror(errno.EROFS if _on_read_only_fs(path) else errno.EACCES)
                return False
        return True

    def _lost_index(self) -> bool:
        """The index is gone (or empty) but the store holds blobs or recorded references: the
        index was lost, this is not a new store (an empty index would have garbage collection
        remove everything)."""
        if self._rebuilding:
            return False
        try:
            if self.journal_path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        try:
            with os.scandir(self.blobs_dir) as it:
                return any(True for _ in it)
        except OSError:
            return False

    def _connect_rw(self) -> sqlite3.Connection:
        self._ensure_dirs()
        path = self.index_path
        if not path.exists() and self._lost_index():
            raise IndexCorrupt(_damaged(self, "index.db is missing but the store holds blobs"))
        try:
            con = sqlite3.connect(path, timeout=600, isolation_level=None, check_same_thread=False, factory=_Connection)
        except sqlite3.Error as e:
            raise _index_error(e, self.root) from e
        con.store_root = self.root
        try:
            con.execute("PRAGMA busy_timeout = 600000")
            con.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed removal is on disk before garbage collection unlinks anything.
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA temp_store = MEMORY")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                with _transaction(con, self.root):
                    version = con.execute("PRAGMA user_version").fetchone()[0]
                    if version == 0 and _tables(con):
                        raise IndexCorrupt(_damaged(self, "it is not an imgctl index"))
                    if version == 0 and self._lost_index():
                        raise IndexCorrupt(_damaged(self, "index.db is empty but the store holds blobs"))
                    if version < SCHEMA_VERSION:
                        for stmt in _SCHEMA.split(";"):
                            if stmt.strip():
                                con.execute(stmt)
                        _migrate(con, con.execute("PRAGMA user_version").fetchone()[0])
                        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            _check_schema(self, con)
            _journal_refs(con)
            if not self.journal_path.exists():
                self._start_journal(con)
        except BaseException:
            con.close()
            raise
        return con

    def _connect_ro(self) -> sqlite3.Connection:
        """Open the index without writing anything: no WAL, no -shm, no schema changes."""
        import urllib.parse

        path = self.index_path
        try:
            empty = path.stat().st_size == 0
        except FileNotFoundError:
            empty = True
        if empty and self._lost_index():
            raise IndexCorrupt(_damaged(self, "index.db is missing but the store holds blobs"))
        if empty:  # nothing was ever stored: an empty index in memory
            con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False, factory=_Connection)
            con.store_root = self.root
            con.executescript(_SCHEMA)
            return con
        uri = "file:" + urllib.parse.quote(str(path))
        con = None
        for mode in ("mode=ro", "immutable=1"):
            if mode == "immutable=1":
                wal = Path(f"{path}-wal")
                if wal.exists() and wal.stat().st_size > 0:
                    raise ReadOnlyStore(
                        f"cannot read the store index {path}: the store is read-only ({self._ro_reason}) and "
                        f"{wal.name} holds changes that need write access to be read"
                    )
            try:
                con = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False, factory=_Connection)
                con.store_root = self.root
                con.execute("PRAGMA user_version").fetchone()
                break
            except StoreError as e:
                if con is not None:
                    con.close()
                    con = None
                if isinstance(e, IndexCorrupt):
                    raise
            except sqlite3.Error:
                con = None
        if con is None:
            raise ReadOnlyStore(f"cannot read the store index {path} ({self._ro_reason})")
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"store {self.root} was written by a newer imgctl (schema {version})")
            if version < SCHEMA_VERSION:
                raise ReadOnlyStore(
                    f"store {self.root} needs an upgrade of its index, which needs write access ({self._ro_reason})"
                    if version else _damaged(self, "it is not an imgctl index")
                )
            _check_schema(self, con)
        except BaseException:
            con.close()
            raise
        return con

    def _refuse_if_read_only(self) -> None:
        if self.read_only is None:
            self.db  # noqa: B018 - opening the index decides
        if self.read_only:
            if self._ro_reason == os.strerror(errno.ENOSPC):
                raise StoreError(f"cannot write to the store at {self.root}: {self._ro_reason}")
            raise ReadOnlyStore(
                f"cannot write to the store at {self.root}: {self._ro_reason} (it is read-only here: only reads work)"
            )

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        con = self.db
        self._refuse_if_read_only()
        with _transaction(con, self.root) as tx:
            yield tx

    def check_index(self) -> None:
        """Prove the index sound before anything is removed on its word (once per process):
        SQLite's integrity check and no row naming an image the index does not hold."""
        if self._checked:
            return
        con = self.db
        # integrity_check, not quick_check: an index b-tree that disagrees with its table would
        # have "which images have no tag" answered wrong.
        rows = con.execute("PRAGMA integrity_check(1)").fetchall()
        if rows != [("ok",)]:
            raise IndexCorrupt(_damaged(self, str(rows[0][0]) if rows else "its integrity check failed"))
        if con.execute("PRAGMA foreign_key_check").fetchone() is not None:
            raise IndexCorrupt(_damaged(self, "some of its rows name images it does not hold"))
        for table in _EXPECTED_COLUMNS:  # every value decodes (a flipped byte in a text is not UTF-8)
            for _ in con.execute(f"SELECT * FROM {table}"):
                pass
        self._checked = True

    def rebuild_state(self) -> str | None:
        """"running" while ``verify --repair`` rebuilds the index (it holds the marker's lock; the
        new index then lacks images it has not recorded yet, so nothing may be collected),
        "interrupted" when the marker outlived its holder, else None."""
        import fcntl

        try:
            fd = os.open(self.root / REBUILDING, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError:
            return "interrupted"
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return "running"
        finally:
            os.close(fd)
        return "interrupted"

    def check_removable(self) -> None:
        """``check_index`` and, in addition, every image the index holds has each blob it names
        (unless marked damaged by ``verify --repair``): what removals check first."""
        rebuild = self.rebuild_state()
        if rebuild == "running":
            raise IndexCorrupt("refusing to remove anything: imgctl verify --repair is rebuilding the index (try again once it is done)")
        if rebuild == "interrupted":
            raise IndexCorrupt("refusing to remove anything: a rebuild of the index was interrupted (run imgctl verify --repair)")
        if self._removable_checked:
            return
        self.check_index()
        _refuse_unless_complete(self, self.db)
        diff = self.ref_differences()
        if diff:
            kind, (repo, name), _, _ = diff[0]
            raise IndexCorrupt(
                f"refusing to remove anything: the index and the reference journal disagree about "
                f"{repo}{':' if kind == 'tag' else '@'}{name} (run imgctl verify)"
            )
        self._removable_checked = True  # later images were checked by add_image as they came

    def ref_differences(self) -> list[tuple]:
        """Where the index's tags and repo digests differ from the reference journal (whose lines
        carry checksums, unlike the index's rows): (kind 'tag' | 'pin', (repository, tag or
        digest), index value, journal value), a value None where one side lacks the reference.
        Empty when there is no journal (a read-only store from before it)."""
        if not self.journal_path.exists():
            return []
        if self.read_only is None:
            self.db  # noqa: B018 - opening the index decides
        if self.read_only:
            return self._ref_differences(self.db)
        # Under the write lock: every journal append is made under it, before its COMMIT, so
        # nothing can be half-way between the two while they are compared.
        with self.transaction() as con:
            return self._ref_differences(con)

    def _ref_differences(self, con: sqlite3.Connection) -> list[tuple]:
        jtags, jpins, _ = read_ref_journal(self.root)
        itags = {(r, t): (i, d) for r, t, i, d in con.execute("SELECT repository, tag, image_id, digest FROM tags")}
        ipins = {(r, d): i for r, d, i in con.execute("SELECT repository, digest, image_id FROM digests")}
        out = []
        for kind, have, want in (("tag", itags, jtags), ("pin", ipins, jpins)):
            for key in sorted(set(have) | set(want)):
                if have.get(key) != want.get(key):
                    out.append((kind, key, have.get(key), want.get(key)))
        return out

    def journal_refs(self, records: list[tuple]) -> None:
        """Append reference records to the journal under the write lock (``verify --repair``
        makes the journal follow the index where the journal names an image the index lacks)."""
        if records:
            with self.transaction() as con:
                con.ref_changes.extend(records)

    def _start_journal(self, con: sqlite3.Connection) -> None:
        """The first writable open of a store without a journal records its references (a store
        from before the journal, or a new one); a damaged index is left for verify to judge."""
        try:
            with _transaction(con, self.root):
                if self.journal_path.exists():
                    return
                if con.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                    return
                _write_journal_snapshot(con, self.root)
        except IndexCorrupt:
            return

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
        rows = self.db.execute("SELECT kind, digest FROM image_blobs WHERE image_id = ?", (image_id,)).fetchall()
        kinds = {k for k, _ in rows}  # a blob list without its manifest or config is not complete
        return {"manifest", "config"} <= kinds and all(self.has_blob(d) for _, d in rows)

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
            # (An index image's indexes and other platforms are kept: see imgctl.platforms.)
            con.execute("DELETE FROM image_blobs WHERE image_id = ? AND kind NOT IN ('index', 'platform')", (rec.id,))
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
        if self.store.read_only is None:
            self.store.db  # noqa: B018 - opening the index decides
        if self.store.read_only:
            # Nothing here can remove blobs, and a pure read must not need to write: held in memory.
            self._digests.update(new)
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
        if self._digests and not self.store.read_only:
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


JOURNAL = "refs.journal"
REBUILDING = "index.db.rebuilding"  # exists (flock'ed) while verify --repair rebuilds the index
JOURNAL_COMPACT_AT = 1 << 20  # bytes: past this, the journal is rewritten as a snapshot of the references


def _translated(name: str):
    """Cursor method NAME, with any SQLite failure raised as the StoreError of its kind."""
    base = getattr(sqlite3.Cursor, name)

    def method(self, *args):
        try:
            return base(self, *args)
        except (sqlite3.Error, UnicodeDecodeError) as e:  # a damaged text value is not UTF-8
            raise _index_error(e, self.connection.store_root) from e

    method.__name__ = name
    return method


class _Cursor(sqlite3.Cursor):
    """Every SQLite failure leaves the store as a StoreError of its kind (never a bare DatabaseError)."""

    execute = _translated("execute")
    executemany = _translated("executemany")
    executescript = _translated("executescript")
    fetchone = _translated("fetchone")
    fetchall = _translated("fetchall")
    fetchmany = _translated("fetchmany")
    __next__ = _translated("__next__")


class _Connection(sqlite3.Connection):
    store_root: Path = Path(".")
    ref_changes: list | None = None  # tag and digest changes of the open transaction (see _journal_refs)

    def cursor(self, factory=None):
        return super().cursor(factory or _Cursor)

    # sqlite3's own execute() makes a plain cursor: go through ours, whose fetches translate too.
    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, *args):
        return self.cursor().executescript(*args)


_REF_TRIGGERS = """
CREATE TEMP TRIGGER imgctl_tags_ins AFTER INSERT ON main.tags BEGIN
  SELECT imgctl_ref('tag', NEW.repository, NEW.tag, NEW.image_id, NEW.digest); END;
CREATE TEMP TRIGGER imgctl_tags_upd AFTER UPDATE ON main.tags BEGIN
  SELECT imgctl_ref('untag', OLD.repository, OLD.tag);
  SELECT imgctl_ref('tag', NEW.repository, NEW.tag, NEW.image_id, NEW.digest); END;
CREATE TEMP TRIGGER imgctl_tags_del AFTER DELETE ON main.tags BEGIN
  SELECT imgctl_ref('untag', OLD.repository, OLD.tag); END;
CREATE TEMP TRIGGER imgctl_digests_ins AFTER INSERT ON main.digests BEGIN
  SELECT imgctl_ref('pin', NEW.repository, NEW.digest, NEW.image_id); END;
CREATE TEMP TRIGGER imgctl_digests_upd AFTER UPDATE ON main.digests BEGIN
  SELECT imgctl_ref('unpin', OLD.repository, OLD.digest);
  SELECT imgctl_ref('pin', NEW.repository, NEW.digest, NEW.image_id); END;
CREATE TEMP TRIGGER imgctl_digests_del AFTER DELETE ON main.digests BEGIN
  SELECT imgctl_ref('unpin', OLD.repository, OLD.digest); END;
"""


def _journal_refs(con: _Connection) -> None:
    """Collect every change to tags and repo digests, however made (cascades included), so
    the transaction can append them to the journal before it commits."""
    con.ref_changes = []
    con.create_function("imgctl_ref", -1, lambda *a: con.ref_changes.append(a))
    for stmt in _REF_TRIGGERS.split("END;"):
        if stmt.strip():
            con.execute(stmt + "END;")


def _journal_line(record: tuple | list) -> bytes:
    payload = json.dumps(list(record), separators=(",", ":"))
    return f"{hashlib.sha256(payload.encode()).hexdigest()[:16]} {payload}\n".encode()


def _append_journal(root: Path, records: list[tuple]) -> None:
    """Append records and fsync; a failed append is cut off again, so no torn line stays."""
    path = root / JOURNAL
    data = b"".join(_journal_line(r) for r in records)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
    if new:
        Store._fsync_dir(root)


def _write_journal_snapshot(con: sqlite3.Connection, root: Path) -> None:
    """Replace the journal by the references the index holds now (atomically)."""
    path = root / JOURNAL
    tmp = root / f"{JOURNAL}.{os.getpid()}.tmp"
    lines = [_journal_line(("snapshot", time.time()))]
    lines += [_journal_line(("tag", *r)) for r in con.execute("SELECT repository, tag, image_id, digest FROM tags")]
    lines += [_journal_line(("pin", *r)) for r in con.execute("SELECT repository, digest, image_id FROM digests")]
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        Store._fsync_dir(root)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_ref_journal(root: Path) -> tuple[dict, dict, int]:
    """Replay the journal: ({(repository, tag): (image_id, digest)}, {(repository, digest): image_id},
    number of damaged lines skipped).  Only lines whose checksum holds are believed."""
    tags: dict[tuple[str, str], tuple[str, str | None]] = {}
    pins: dict[tuple[str, str], str] = {}
    bad = 0
    try:
        f = open(Path(root) / JOURNAL, "rb")
    except FileNotFoundError:
        return tags, pins, 0
    except OSError as e:  # a directory, a FIFO's permissions, EIO: nothing here can be believed
        raise IndexCorrupt(
            f"the reference journal {Path(root) / JOURNAL} cannot be read ({e.strerror or e}): run imgctl verify"
        ) from None
    with f:
        for line in f:
            try:
                check, _, payload = line.rstrip(b"\n").partition(b" ")
                if hashlib.sha256(payload).hexdigest()[:16].encode() != check:
                    raise ValueError
                rec = json.loads(payload)
                op, args = rec[0], rec[1:]
                if op == "snapshot":
                    tags.clear()
                    pins.clear()
                elif op == "tag":
                    tags[(args[0], args[1])] = (args[2], args[3])
                elif op == "untag":
                    tags.pop((args[0], args[1]), None)
                elif op == "pin":
                    pins[(args[0], args[1])] = args[2]
                elif op == "unpin":
                    pins.pop((args[0], args[1]), None)
                else:
                    raise ValueError
            except (ValueError, TypeError, IndexError, UnicodeDecodeError):
                bad += 1
    return tags, pins, bad


@contextmanager
def _transaction(con: sqlite3.Connection, root: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: writers queue on the busy timeout instead of failing.

    Reference changes reach the journal under the write lock, before COMMIT: the journal's
    order is the commit order of every process."""
    changes = getattr(con, "ref_changes", None)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        if changes:
            try:
                if _journal_outgrown(con, root):
                    _write_journal_snapshot(con, root)
                else:
                    _append_journal(root, changes)
            except OSError as e:
                raise _disk_error_at(root, e) from e
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    finally:
        if changes:
            changes.clear()


def _journal_outgrown(con: sqlite3.Connection, root: Path) -> bool:
    """Past JOURNAL_COMPACT_AT and several times what a snapshot of the live references takes
    (a store with very many tags does not rewrite its journal at every change)."""
    try:
        size = (root / JOURNAL).stat().st_size
    except FileNotFoundError:
        return False
    if size <= JOURNAL_COMPACT_AT:
        return False
    live = con.execute("SELECT (SELECT count(*) FROM tags) + (SELECT count(*) FROM digests)").fetchone()[0]
    return size > 4 * 256 * live


def _disk_error_at(root: Path, e: OSError) -> StoreError:
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyStore(f"cannot write to the store at {root}: {e.strerror or e}")
    return StoreError(f"cannot write to the store at {root}: {e.strerror or e}")


_PRIMARY = {"CORRUPT": 11, "NOTADB": 26, "FULL": 13, "READONLY": 8, "IOERR": 10, "CANTOPEN": 14, "PERM": 3, "BUSY": 5}


def _index_error(e: sqlite3.Error | UnicodeDecodeError, root: Path) -> StoreError:
    """A failed index read or update as a StoreError of its kind; a full disk reads the same as
    when a blob write hits it."""
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    text = "a text value is not valid UTF-8" if isinstance(e, UnicodeDecodeError) else _one_line(str(e))
    if isinstance(e, UnicodeDecodeError) or code in (_PRIMARY["CORRUPT"], _PRIMARY["NOTADB"]) or text.startswith(("no such table", "no such column", "malformed database schema")):
        return IndexCorrupt(f"the store index {root / 'index.db'} is damaged ({text}): run imgctl verify")
    if code == _PRIMARY["FULL"]:
        return StoreError(f"cannot write to the store at {root}: {os.strerror(errno.ENOSPC)}")
    if code == _PRIMARY["READONLY"]:
        return ReadOnlyStore(f"cannot write to the store at {root}: {text}")
    if code == _PRIMARY["BUSY"]:
        return StoreError(f"cannot lock the store index: {text}")
    return StoreError(f"cannot update the store index: {text}")


def _one_line(text: str, limit: int = 200) -> str:
    """SQLite's messages can quote a damaged schema: one line, bounded, as the CLI promises."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _damaged(store: "Store", why: str) -> str:
    return f"the store index {store.index_path} is damaged ({_one_line(why)}): run imgctl verify"


def _cannot_write(e: BaseException | None) -> bool:
    """A failure that means "this process cannot write here", not "the index is wrong"."""
    if isinstance(e, OSError):
        return e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, sqlite3.Error):
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        return code in (_PRIMARY["READONLY"], _PRIMARY["CANTOPEN"], _PRIMARY["IOERR"], _PRIMARY["FULL"], _PRIMARY["PERM"])
    return False


def _reason(e: BaseException | None) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e) if e is not None else "not writable"


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0


def _on_read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}


_EXPECTED_COLUMNS: dict[str, set[str]] = {}


def _check_schema(store: "Store", con: sqlite3.Connection) -> None:
    """Every table and column this version uses is there (a valid SQLite file with another
    schema is a damaged index, not an "unexpected OperationalError" later)."""
    if not _EXPECTED_COLUMNS:
        mem = sqlite3.connect(":memory:")
        mem.executescript(_SCHEMA)
        for (t,) in mem.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            _EXPECTED_COLUMNS[t] = {r[1] for r in mem.execute(f"PRAGMA table_info({t})")}
        mem.close()
    have = _tables(con)
    for table, cols in _EXPECTED_COLUMNS.items():
        if table not in have:
            raise IndexCorrupt(_damaged(store, f"table {table} is missing"))
        got = {r[1] for r in con.execute(f"PRAGMA main.table_info({table})")}
        if not cols <= got:
            raise IndexCorrupt(_damaged(store, f"table {table} lacks column {sorted(cols - got)[0]}"))


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back if SQLite has not already done so (it does by itself on SQLITE_FULL and others)."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# -- schema migrations ------------------------------------------------------------------------
def _migrate(con: sqlite3.Connection, version: int) -> None:
    """Bring an index written by an earlier imgctl (schema ``version``; 0: a new store) up to
    date, inside the transaction that created the new tables."""
    if 0 < version < 3:
        # Schema 3 keeps the index an image was pulled as (its identity) in image_indexes;
        # schema 2 only listed the index blob among the image's blobs.  Its media type is
        # read from the blob when needed.
        con.execute(
            "INSERT OR IGNORE INTO image_indexes (image_id, digest, media_type) "
            "SELECT image_id, digest, '' FROM image_blobs WHERE kind = 'index'"
        )


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
    are cleaned up on the way.  Nothing is removed unless the index passed
    ``check_removable`` (else IndexCorrupt: the index no longer says what is in use).  Only regular files named like a blob
    are removed; stray entries are left to ``verify --repair``.  Returns (digest,
    bytes freed) of removed blobs.
    """
    removed: list[tuple[str, int]] = []
    failed: OSError | None = None
    store.check_removable()
    with store.transaction() as con:
        for lease_id in [r[0] for r in con.execute("SELECT DISTINCT lease_id FROM leases")]:
            if not _lease_alive(store, lease_id):
                con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
                try:
                    os.unlink(store.root / "leases" / f"{lease_id}.lock")
                except OSError:
                    pass
        keep = {r[0] for r in con.execute("SELECT digest FROM image_blobs UNION SELECT digest FROM leases")}
        try:
            names = os.listdir(store.blobs_dir)
        except FileNotFoundError:
            names = []
        for name in names:
            digest = f"sha256:{name}"
            if digest in keep or not is_blob_name(name):
                continue
            path = store.blobs_dir / name
            try:
                st = os.lstat(path)
                if stat.S_ISDIR(st.st_mode):
                    continue
                path.unlink()
            except FileNotFoundError:
                continue
            except OSError as e:
                failed = failed or e
                continue
            removed.append((digest, st.st_size if stat.S_ISREG(st.st_mode) else 0))
        if removed:
            con.executemany("DELETE FROM layers WHERE digest = ?", [(d,) for d, _ in removed])
        _clean_ingest(store, {r[0] for r in con.execute("SELECT digest FROM leases")})
    if failed is not None:
        err = _disk_error_at(store.root, failed)
        raise type(err)(f"{err}; unused blobs stay until the next prune")
    return removed


def _refuse_unless_complete(store: Store, con: sqlite3.Connection) -> None:
    """Every image the index holds has its manifest and config and every blob it names is a
    present, well-named file, unless ``verify --repair`` marked the image damaged: an index
    that lost or garbled rows would otherwise have garbage collection remove what is in use."""
    damaged = {r[0] for r in con.execute("SELECT image_id FROM damaged")}
    for image_id, digest in con.execute("SELECT image_id, digest FROM image_blobs"):
        if image_id in damaged:
            continue
        algo, _, hexd = str(digest).partition(":")
        if algo != "sha256" or not is_blob_name(hexd) or not store.has_blob(digest):
            raise IndexCorrupt(
                f"refusing to remove anything: image {str(image_id)[7:19]} needs blob {digest}, "
                "which is not in the store (run imgctl verify)"
            )
    row = con.execute(
        "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_blobs b WHERE b.image_id = i.id "
        "AND b.kind = 'config' AND b.digest = i.id) AND id NOT IN (SELECT image_id FROM damaged) LIMIT 1"
    ).fetchone()
    if row is not None:
        raise IndexCorrupt(
            f"refusing to remove anything: the store index does not list the blobs of image {str(row[0])[7:19]} "
            "(run imgctl verify)"
        )


PARTIAL_EXPIRY = 24 * 3600  # seconds an interrupted download is kept for a resume


def _clean_ingest(store: Store, leased: set[str]) -> bool:
    """Remove partial downloads nobody is writing: private temp files of dead processes, and
    resumable partials that are unlocked, not leased by a pull in progress, and older than a
    day (younger ones wait for the next pull to resume them, as containerd keeps ingests)."""
    import fcntl

    removed = False
    try:
        names = os.listdir(store.ingest_dir)
    except OSError:
        return False
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
                removed = True
            except OSError:
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
            removed = True
        except OSError:
            pass
    return removed
