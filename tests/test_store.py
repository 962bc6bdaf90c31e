"""Store internals that the CLI tests cannot reach directly: leases and garbage collection."""

from __future__ import annotations

import hashlib
import os

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
