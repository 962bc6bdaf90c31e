"""Running out of disk space: a clear error, nothing half-written, and a later pull completes.

The store lives on a small tmpfs mounted by the test (needs root, as CI runs).
"""

from __future__ import annotations

import os
import subprocess

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_random_layer, push_image
from tests.support.storecheck import assert_store_verifies, image_ids


@pytest.fixture
def small_fs(tmp_path):
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True)
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_then_space(small_fs, registry, unique_repo, monkeypatch):
    root = small_fs / "root"
    monkeypatch.setenv("IMGCTL_ROOT", str(root))
    # ~6 MB of incompressible data: does not fit in 3 MB.
    img = make_image([make_random_layer(60, 100_000, seed=s, compression="gzip") for s in (51, 52)])
    push_image(registry.url, unique_repo, img, tag="big")
    name = f"{registry.host}/{unique_repo}:big"

    r = run("pull", name)
    assert r.code == 1
    assert r.err.splitlines()[-1] == f"Error: cannot write to the store at {root}: No space left on device"
    assert len(r.err.splitlines()) == 1
    assert image_ids(root) == set()
    # Every blob present verifies; what did arrive waits in ingest/ for the next pull to resume.
    assert_store_verifies(root, allow_partials=True)

    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    r = run("pull", name)
    assert r.code == 0, r.err
    assert image_ids(root) == {img.config_digest}
    assert_store_verifies(root)  # the partials were taken over: nothing is left in ingest/


def test_a_small_blob_that_does_not_fit_leaves_no_file(small_fs):
    """A manifest or config written whole (put_blob) on a full disk: the store's one-line error,
    and its temporary file is gone at once -- not left for the next process to find, which
    would be too late for this one (a pull that goes on, a test that pulls again in-process)."""
    import hashlib

    from imgctl.errors import StoreError
    from imgctl.store import Store

    store = Store(small_fs / "root")
    store.ensure_dirs()
    data = os.urandom(4 * 1024 * 1024)  # more than the 3 MB the file system holds
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    with pytest.raises(StoreError, match="No space left on device"):
        store.put_blob(digest, data)
    assert list(store.ingest_dir.iterdir()) == []
    assert not store.has_blob(digest)
    store.close()
