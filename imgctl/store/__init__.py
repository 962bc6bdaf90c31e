"""The local store: verified blobs by digest, and an SQLite index of images and tags.

Layout of a store root::

    blobs/sha256/<hex>   content, present only once its size and digest were verified
    ingest/              partial downloads (same filesystem, moved in with rename)
    index.db             SQLite (WAL): images, their blobs, layers, tags, repo digests, leases
    refs.journal         append-only, fsynced record of every tag and repo digest change, one
                         checksummed line each, so ``verify --repair`` can restore them if
                         index.db is lost (images themselves are rebuilt from the blobs)
    lost+found/          what ``verify --repair`` moved aside: a damaged index, stray entries

The package has three parts: ``blobs`` (the writer that verifies and publishes content,
spool files, leases, garbage collection), ``index`` (the schema and every SQL statement, as
named methods of :class:`~imgctl.store.index.Index`, reached as ``store.index``) and
``journal`` (refs.journal).  Content becomes visible through ``BlobWriter.commit`` alone;
index changes are single transactions.  No HTTP here.
"""

from __future__ import annotations

import errno
import os
import stat
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from imgctl.errors import IndexCorrupt, ReadOnlyStore, StoreError, StrayEntry
from imgctl.reference import validate_digest
from imgctl.store.blobs import (
    PARTIAL_EXPIRY,
    BlobWriter,
    Lease,
    ScratchFile,
    collect_garbage,
    disk_error_at,
    drop_dead_scratch,
    fsync_dir,
    is_blob_name,
    publish_checked,
)
from imgctl.store.index import ImageRecord, Index, LayerRecord, parse_created
from imgctl.store.journal import JOURNAL, REBUILDING, read_ref_journal

__all__ = [
    "Store", "Index", "BlobWriter", "ScratchFile", "Lease", "ImageRecord", "LayerRecord", "parse_created",
    "is_blob_name", "read_ref_journal", "collect_garbage", "JOURNAL", "REBUILDING", "PARTIAL_EXPIRY",
]


class Store:
    """A store root.  Cheap to open; the database is opened on first use."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.blobs_dir = self.root / "blobs" / "sha256"
        self.ingest_dir = self.root / "ingest"
        self.read_only: bool | None = None  # decided when the index is first opened
        self._ro_reason = ""
        self.index = Index(self)

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

    def ensure_dirs(self) -> None:
        try:
            self.blobs_dir.mkdir(parents=True, exist_ok=True)
            self.ingest_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create store at {self.root}: {e.strerror}") from e

    def blob_path(self, digest: str) -> Path:
        algo, _, hexd = validate_digest(digest).partition(":")
        if algo != "sha256":
            raise StoreError(f"{algo} content addresses are not supported by the store (use the image's sha256 digest)")
        return self.blobs_dir / hexd

    def sync_blobs(self) -> None:
        """Make the blobs renamed into place so far durable (fsync of their directory)."""
        try:
            fsync_dir(self.blobs_dir)
        except OSError as e:
            raise disk_error_at(self.root, e) from e

    def publish(self, writers: list[BlobWriter]) -> None:
        """Publish writers ``check()`` verified, with one filesystem sync for them all (see
        ``publish_checked``); ``sync_blobs()`` before the index names them."""
        publish_checked(self, writers)

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

    def writer(self, digest: str, size: int | None, *, resumable: bool = False, wait=None) -> BlobWriter:
        self.refuse_if_read_only()
        self.ensure_dirs()
        return BlobWriter(self, digest, size, resumable=resumable, wait=wait)

    def scratch(self, prefix: str, suffix: str = "") -> ScratchFile:
        """A spool file in ingest/ that cleans itself up on failure (see ScratchFile)."""
        return ScratchFile(self, prefix, suffix)

    def put_blob(self, digest: str, data: bytes) -> None:
        """Store small in-memory content (manifests, configs) through the same verified commit."""
        if self.has_blob(digest):
            return
        with self.writer(digest, len(data)) as w:  # (a write that fails, a full disk, removes its file)
            w.write(data)
            w.commit()
        drop_dead_scratch(self, digest)  # a pull killed while writing this blob left its temp file

    # -- the index --------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the index (see ``Index.db``)."""
        return self.index.db

    def refuse_if_read_only(self) -> None:
        if self.read_only is None:
            self.index.db  # noqa: B018 - opening the index decides
        if self.read_only:
            if self._ro_reason == os.strerror(errno.ENOSPC):
                raise StoreError(f"cannot write to the store at {self.root}: {self._ro_reason}")
            raise ReadOnlyStore(
                f"cannot write to the store at {self.root}: {self._ro_reason} (it is read-only here: only reads work)"
            )

    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``Index.transaction``: BEGIN IMMEDIATE ... COMMIT."""
        return self.index.transaction()

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
        """No rebuild of the index is running or was interrupted, and ``Index.check_removable``:
        what removals check first."""
        rebuild = self.rebuild_state()
        if rebuild == "running":
            raise IndexCorrupt("refusing to remove anything: imgctl verify --repair is rebuilding the index (try again once it is done)")
        if rebuild == "interrupted":
            raise IndexCorrupt("refusing to remove anything: a rebuild of the index was interrupted (run imgctl verify --repair)")
        self.index.check_removable()

    def close(self) -> None:
        self.index.close()

    @contextmanager
    def lease(self) -> Iterator[Lease]:
        lease = Lease(self)
        try:
            yield lease
        finally:
            lease.release()

    # The index's methods the tests call on the store itself; the library calls store.index.
    def ref_differences(self) -> list[tuple]:
        return self.index.ref_differences()
