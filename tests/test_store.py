"""Store internals that the CLI tests cannot reach directly: leases and garbage collection."""

from __future__ import annotations

import errno
import hashlib
import os

import pytest

from imgctl.errors import StoreError, VerificationError
from imgctl.store import Store, collect_garbage


def put(store: Store, data: bytes) -> str:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    store.put_blob(digest, data)
    return digest


def test_lease_liveness_follows_the_lock_not_the_pid(tmp_path):
    store = Store(tmp_path / "root")
    kept = put(store, b"leased by a live pull in another PID namespace")
    with store.lease() as lease:
        lease.add(kept)
        # The holder's PID means nothing here (another container): only its lock counts.
        with store.transaction() as con:
            con.execute("UPDATE leases SET pid = 999999 WHERE lease_id = ?", (lease.id,))
        assert collect_garbage(store) == []
        assert store.has_blob(kept)
    # Released: nothing protects the blob any more.
    assert [d for d, _ in collect_garbage(store)] == [kept]


def test_lease_rows_without_a_held_lock_are_dropped(tmp_path):
    store = Store(tmp_path / "root")
    orphan = put(store, b"leased by a process that died")
    with store.transaction() as con:  # a crashed holder: its row stays, its lock is gone
        con.execute(
            "INSERT INTO leases (lease_id, pid, digest, created_ts) VALUES (?,?,?,0)",
            ("deadbeef", os.getpid(), orphan),
        )
    assert [d for d, _ in collect_garbage(store)] == [orphan]
    assert store.db.execute("SELECT count(*) FROM leases").fetchone()[0] == 0
    leases_dir = tmp_path / "root" / "leases"
    assert not leases_dir.exists() or list(leases_dir.iterdir()) == []


class _ShortWrites:
    """A file whose writes are short (what write(2) does as a disk fills up), and which can be
    told to fail with ENOSPC after the next short write, like a disk that is then full."""

    def __init__(self, f, fail_after: int | None = None) -> None:
        self._f = f
        self.fail_after = fail_after  # short writes to allow before ENOSPC

    def write(self, data) -> int:
        if self.fail_after is not None:
            if self.fail_after == 0:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.fail_after -= 1
        return self._f.write(bytes(data)[: max(1, len(data) // 3)])

    def __getattr__(self, name):
        return getattr(self._f, name)


def test_short_writes_are_completed_before_a_blob_is_committed(tmp_path):
    store = Store(tmp_path / "root")
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    w = store.writer(digest, len(data))
    w._f = _ShortWrites(w._f)
    w.write(data[:100_000])
    w.write(data[100_000:])
    w.commit()
    assert store.blob_path(digest).read_bytes() == data


def test_a_write_that_fails_part_way_leaves_the_writer_as_it_was(tmp_path):
    """The disk fills in the middle of a write: what got through is dropped, so the file
    always holds exactly what the hash covers and a later commit cannot publish a hole."""
    store = Store(tmp_path / "root")
    data = os.urandom(300_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    w = store.writer(digest, len(data), resumable=True)
    w.write(data[:100_000])
    real = w._f
    w._f = _ShortWrites(real, fail_after=1)  # a third of the next write lands, then ENOSPC
    with pytest.raises(StoreError, match="No space left on device"):
        w.write(data[100_000:])
    assert w.written == 100_000 and os.fstat(real.fileno()).st_size == 100_000
    w._f = real  # space again: the same writer carries on
    w.write(data[100_000:])
    w.commit()
    assert store.blob_path(digest).read_bytes() == data


def test_commit_refuses_a_file_that_does_not_hold_what_was_written(tmp_path):
    store = Store(tmp_path / "root")
    data = os.urandom(50_000)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    w = store.writer(digest, len(data))
    w.write(data)
    os.truncate(w.path, 40_000)  # lost behind the writer's back
    with pytest.raises(VerificationError, match="does not hold what was written"):
        w.commit()
    assert not store.has_blob(digest)
