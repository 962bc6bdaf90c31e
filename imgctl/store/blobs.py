"""Blobs: verified content by digest, the writer that publishes it, spool files, leases,
partial downloads, and garbage collection.

Content becomes visible through ``BlobWriter.commit`` alone: fsync, check size and digest,
rename into place, fsync the directory.  Blobs a pull in progress needs are protected by a
*lease* (rows committed before the pull looks at the blob), so garbage collection in another
process never removes them.  The rows themselves are the index's business (imgctl.store.index)."""

from __future__ import annotations

import errno
import hashlib
import os
import re
import stat
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from imgctl.errors import ReadOnlyStore, StoreError, StrayEntry, VerificationError
from imgctl.reference import validate_digest

if TYPE_CHECKING:
    from imgctl.store import Store

_BLOB_NAME = re.compile(r"[0-9a-f]{64}\Z")


def is_blob_name(name: str) -> bool:
    """Whether NAME is one the store gives a blob: 64 lowercase hex digits (anything else is a stray)."""
    return bool(_BLOB_NAME.match(name))

def _disk_error(store: "Store", e: OSError) -> StoreError:
    """ENOSPC and friends as one clear line; nothing half-written stays (the writer aborts)."""
    return disk_error_at(store.root, e)


def disk_error_at(root: Path, e: OSError) -> StoreError:
    if e.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return ReadOnlyStore(f"cannot write to the store at {root}: {e.strerror or e}")
    return StoreError(f"cannot write to the store at {root}: {e.strerror or e}")


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobWriter:
    """Writes one blob into the ingest area; ``commit`` verifies and publishes it.

    ``write`` refuses more bytes than the expected size as soon as they arrive, so
    a hostile stream can never grow a file beyond its descriptor.

    A *resumable* writer keeps its data in ``ingest/<hex>.partial`` under an exclusive
    ``flock`` (released by the kernel if the process dies).  A later writer for the same
    digest takes the file over: ``existing()`` re-reads and re-hashes what is there, so
    the download continues from ``written`` and nothing is trusted unverified.  When
    another live process holds the lock, this writer uses a private temporary file, or,
    given ``wait``, waits for that process as containerd's ingest locks do (see
    ``lock_partial``): once it has the lock the blob may be in the store (the other process
    committed it: the caller checks ``store.has_blob`` and aborts this writer) or its partial
    is taken over like any other.  A writer holds no lock while it waits, and the lock it
    ends up holding is for one blob only, so processes waiting on each other's blobs cannot
    deadlock: every lock holder is downloading, not waiting.
    """

    def __init__(self, store: "Store", digest: str, size: int | None, *, resumable: bool = False,
                 wait: Callable[[float], None] | None = None) -> None:
        self.store = store
        self.digest = validate_digest(digest)
        self.expected_size = size
        self._hash = hashlib.new(self.digest.split(":", 1)[0])
        self.written = 0
        self._on_disk = 0  # bytes of an earlier partial not yet re-hashed by existing()
        self._closed = False
        self._committed = False
        self._aborted = False
        hexd = self.digest.split(":", 1)[1]
        fd = lock_partial(store.ingest_dir / f"{hexd}.partial", wait) if resumable else None
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
            self._check()
            try:
                os.fsync(self._f.fileno())
            except OSError as e:
                raise _disk_error(self.store, e) from e
            final = self._publish()
        finally:
            if not self._committed:
                self.abort()
        if sync_dir:
            self.store.sync_blobs()
        return final

    def check(self) -> None:
        """Verify size and digest now and publish later, with others (``publish_checked``):
        the writer keeps its file and lock meanwhile.  The caller aborts a writer that fails."""
        self._check()

    def _check(self) -> None:
        if self.expected_size is not None and self.written != self.expected_size:
            raise VerificationError(
                f"blob {self.digest} is truncated: got {self.written} of {self.expected_size} bytes"
            )
        actual = f"{self._hash.name}:{self._hash.hexdigest()}"
        if actual != self.digest:
            raise VerificationError(f"digest mismatch for {self.digest}: content hashes to {actual}")
        try:
            if os.fstat(self._f.fileno()).st_size != self.written:
                raise VerificationError(f"blob {self.digest}: the ingest file does not hold what was written")
        except OSError as e:
            raise _disk_error(self.store, e) from e

    def _publish(self) -> Path:
        """Rename the checked, durable file into place (the caller fsynced its content)."""
        final = self.store.blob_path(self.digest)
        try:
            os.replace(self.path, final)  # still under our lock: nobody else writes this file
        except IsADirectoryError:
            raise StrayEntry(f"{final} is a directory where blob {self.digest} belongs (run imgctl verify --repair)") from None
        except OSError as e:
            raise _disk_error(self.store, e) from e
        # From here the old name may already belong to another writer's new partial: never unlink it.
        self._f.close()
        self._closed = True
        self._committed = True
        return final

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
        if self._committed or self._aborted:
            return  # (once: after closing, a resumable name may already be another writer's)
        self._aborted = True
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
        store.refuse_if_read_only()
        store.ensure_dirs()
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


_libc = None


def _syncfs(fd: int) -> bool:
    """syncfs(2) on the filesystem holding ``fd``: everything written there is durable (Linux);
    False where the call does not exist."""
    import ctypes

    global _libc
    if _libc is None:
        try:
            lib = ctypes.CDLL(None, use_errno=True)
            lib.syncfs  # noqa: B018 - present?
            _libc = lib
        except (OSError, AttributeError):
            _libc = False
    if not _libc:
        return False
    if _libc.syncfs(fd) != 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return True


def publish_checked(store: "Store", writers: list[BlobWriter]) -> None:
    """Publish writers whose content ``check()`` verified: make their bytes durable with one
    ``syncfs`` of the store's filesystem (instead of an fsync per blob: a 5,000-layer pull
    spent more time in fsync than anywhere else), then rename each into place.  The blobs'
    directory is the caller's to sync (``Store.sync_blobs``) before the index names them.
    On failure every writer not yet published is aborted and the error raised."""
    todo = list(writers)
    try:
        if todo:
            try:
                if not _syncfs(todo[0]._f.fileno()):
                    for w in todo:
                        os.fsync(w._f.fileno())
            except OSError as e:
                raise _disk_error(store, e) from e
        while todo:
            todo[0]._publish()
            todo.pop(0)
    finally:
        for w in todo:
            w.abort()


WAIT_FIRST = 0.01  # seconds before the first retry of a partial another process holds
WAIT_MAX = 0.25  # longest pause between retries (a waiter starts at most this late)
WAIT_STALL = 10.0  # seconds a held partial may stay the same size before the waiter stops waiting


def lock_partial(path: Path, wait: Callable[[float], None] | None = None) -> int | None:
    """Open and exclusively lock a partial file.  When another live process holds it: None,
    or, given ``wait``, try again after ``wait(delay)`` until the lock is free (the holder
    committed the blob, gave up or died: the kernel drops a dead process's flock).

    The wait is a poll with backoff (WAIT_FIRST doubling up to WAIT_MAX seconds), not a
    blocking flock: a blocked flock cannot be interrupted from another thread, while
    ``wait`` can return early or raise (a pull being cancelled).  Nothing is held while
    waiting.  A holder whose partial has not grown for WAIT_STALL seconds (alive but stuck:
    stopped, stalled on its link, or itself waiting on this process some other way) is
    waited for no longer: None, and the caller downloads into a file of its own."""
    import fcntl

    delay = WAIT_FIRST
    replaced = 0
    seen, since = -1, time.monotonic()
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            size = os.fstat(fd).st_size
            os.close(fd)
            if wait is None:
                return None
            now = time.monotonic()
            if size != seen:
                seen, since = size, now
            elif now - since > WAIT_STALL:
                return None
            wait(delay)
            delay = min(delay * 2, WAIT_MAX)
            continue
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd
        except FileNotFoundError:
            pass
        os.close(fd)  # the name was removed or replaced meanwhile: open it again
        replaced += 1
        if replaced >= 3:
            return None


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
        self.store.index.add_leases(self.id, os.getpid(), new, time.time())
        self._digests.update(new)

    def release(self) -> None:
        if self._digests and not self.store.read_only:
            self.store.index.release_lease(self.id)  # failing, a stale lease only keeps blobs alive
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


def _left_by_dead_process(name: str) -> bool:
    """Whether a private temp file (``<name>.<pid>.<random>[suffix]``) belongs to a process that
    is gone: its pid is not ours and not alive (a name without a pid counts as orphaned)."""
    try:
        pid = int(name.split(".")[1])
    except (IndexError, ValueError):
        pid = -1
    return pid != os.getpid() and not _pid_alive(pid)


def drop_dead_scratch(store: Store, digest: str) -> None:
    """Remove the private temp files of ``digest`` that processes now dead left (killed mid-write):
    the blob is in place, so nothing will ever resume them."""
    hexd = digest.split(":", 1)[1]
    try:
        names = os.listdir(store.ingest_dir)
    except OSError:
        return
    for name in names:
        if name.startswith(f"{hexd}.") and name.endswith(".part") and _left_by_dead_process(name):
            try:
                os.unlink(store.ingest_dir / name)
            except OSError:
                pass


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
    index = store.index
    with index.transaction():
        for lease_id in index.lease_ids():
            if not _lease_alive(store, lease_id):
                index.drop_lease(lease_id)
                try:
                    os.unlink(store.root / "leases" / f"{lease_id}.lock")
                except OSError:
                    pass
        keep = index.digests_in_use()
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
            index.forget_layers([d for d, _ in removed])
        clean_ingest(store, index.leased_digests())
    if failed is not None:
        err = disk_error_at(store.root, failed)
        raise type(err)(f"{err}; unused blobs stay until the next prune")
    return removed


PARTIAL_EXPIRY = 24 * 3600  # seconds an interrupted download is kept for a resume


def clean_ingest(store: Store, leased: set[str]) -> bool:
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
        if not _left_by_dead_process(name):
            continue
        try:
            os.unlink(path)
            removed = True
        except OSError:
            pass
    return removed
