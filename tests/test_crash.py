"""kill -9 at many points of a real `imgctl pull`: the store always verifies and the next pull completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest
from tests.support.images import make_image, make_layer, make_random_layer, push_image
from tests.support.killproxy import KillProxy
from tests.support.storecheck import assert_store_verifies, image_ids


@pytest.fixture
def proxy(registry):
    p = KillProxy(registry.port)
    yield p
    p.close()


def pull(proxy: KillProxy, name: str, kill_at: int | None, root=None, sig=signal.SIGKILL) -> subprocess.CompletedProcess:
    env = dict(os.environ, **({"IMGCTL_ROOT": str(root)} if root else {}))
    proc = subprocess.Popen(
        [sys.executable, "-m", "imgctl", "pull", "-q", name], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    proxy.arm(proc.pid, kill_at, sig)
    out, err = proc.communicate(timeout=120)
    proxy.disarm()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_kill_at_many_byte_offsets(proxy, registry, unique_repo, store_root):
    layers = [
        make_random_layer(300, 4000, seed=31, compression="gzip"),
        make_random_layer(200, 4000, seed=32, compression="zstd"),
        make_layer({"etc/x": "x" * 10000}, "none"),
    ]
    img = make_image(layers)
    push_image(registry.url, unique_repo, img, tag="crash")
    name = f"{proxy.host}/{unique_repo}:crash"

    # One uninterrupted pull into a scratch store measures how many bytes a pull reads.
    done = pull(proxy, name, None, root=store_root.parent / "scratch")
    assert done.returncode == 0, done.stderr
    total = proxy.sent
    assert total > sum(l.size for l in layers)

    rng = random.Random(1234)
    points = sorted({rng.randrange(1, total) for _ in range(14)} | {1, 200, total - 1})
    for at in points:
        r = pull(proxy, name, at)
        assert r.returncode == -9 or r.returncode == 0, (at, r.returncode, r.stderr)
        # After every kill: each blob hashes to its name and no indexed image is incomplete.
        assert_store_verifies(store_root, allow_partials=True)
        assert image_ids(store_root) <= {img.config_digest}
    r = pull(proxy, name, None)
    assert r.returncode == 0, r.stderr
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root, allow_partials=True)


def test_ctrl_c_stops_cleanly_and_the_next_pull_resumes(proxy, registry, unique_repo, store_root, cfg_file):
    cfg_file.write_text("max-concurrent-downloads = 1\n")
    layers = [make_random_layer(400, 6000, seed=41 + i, compression="gzip") for i in range(3)]
    img = make_image(layers)
    push_image(registry.url, unique_repo, img, tag="int")
    name = f"{proxy.host}/{unique_repo}:int"
    r = pull(proxy, name, layers[0].size + layers[1].size // 2, sig=signal.SIGINT)
    assert r.returncode == 130, r.stderr
    assert r.stdout == ""
    assert r.stderr == "Error: interrupted: pull stopped; the next pull resumes where it left off\n"
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root, allow_partials=True)
    first = proxy.sent

    r = pull(proxy, name, None)
    assert r.returncode == 0, r.stderr
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)  # the partials were taken over and committed: none left
    # Only what was missing came over the wire the second time.
    assert proxy.sent < sum(l.size for l in layers) - first // 2


def test_resume_after_kill_downloads_only_the_missing_bytes(proxy, registry, unique_repo, store_root):
    layer = make_random_layer(1500, 6000, seed=61, compression="none")  # ~9 MB, one layer
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="resume")
    name = f"{proxy.host}/{unique_repo}:resume"
    cut = layer.size * 2 // 3
    r = pull(proxy, name, cut)
    assert r.returncode == -9
    assert_store_verifies(store_root, allow_partials=True)
    partials = list((store_root / "ingest").glob("*.partial"))
    assert [p.name for p in partials] == [f"{layer.digest[7:]}.partial"]
    kept = partials[0].stat().st_size
    assert 0 < kept <= cut  # what arrived before the kill (less what sat in socket buffers) was kept

    r = pull(proxy, name, None)
    assert r.returncode == 0, r.stderr
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)
    assert proxy.sent < layer.size - kept + 64 * 1024  # the rest of the layer plus manifests and headers


def test_corrupt_partial_is_detected_and_replaced(proxy, registry, unique_repo, store_root):
    layer = make_random_layer(600, 6000, seed=71, compression="gzip")
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="corrupt")
    name = f"{proxy.host}/{unique_repo}:corrupt"
    # An interrupted download whose bytes on disk went bad (the disk lied): it will not verify.
    ingest = store_root / "ingest"
    ingest.mkdir(parents=True)
    data = bytearray(layer.data[: len(layer.data) // 2])
    data[len(data) // 3] ^= 0xFF
    (ingest / f"{layer.digest[7:]}.partial").write_bytes(bytes(data))
    r = pull(proxy, name, None)
    assert r.returncode == 0, r.stderr
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_complete_partial_needs_no_download(proxy, registry, unique_repo, store_root):
    layer = make_random_layer(300, 6000, seed=72, compression="gzip")
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="whole")
    ingest = store_root / "ingest"
    ingest.mkdir(parents=True)
    (ingest / f"{layer.digest[7:]}.partial").write_bytes(layer.data)  # killed just before the commit
    r = pull(proxy, f"{proxy.host}/{unique_repo}:whole", None)
    assert r.returncode == 0, r.stderr
    assert proxy.sent < layer.size  # the layer itself was not fetched again
    assert_store_verifies(store_root)


def test_prune_keeps_a_recent_partial_and_drops_an_expired_one(proxy, registry, unique_repo, store_root):
    import time as _time

    from tests.support.cli import run

    layer = make_random_layer(300, 6000, seed=81, compression="gzip")
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="keep")
    ingest = store_root / "ingest"
    ingest.mkdir(parents=True)
    partial = ingest / f"{layer.digest[7:]}.partial"
    partial.write_bytes(layer.data[: len(layer.data) // 2])
    assert run("image", "prune", "-f").code == 0
    assert partial.exists()  # an interrupted pull from a moment ago: kept for its resume
    old = _time.time() - 2 * 24 * 3600
    os.utime(partial, (old, old))
    assert run("image", "prune", "-f").code == 0
    assert not partial.exists()  # days old: cleaned up


def test_temp_file_of_a_pull_killed_mid_write_goes_when_the_blob_lands(proxy, registry, unique_repo, store_root):
    # The config is fetched alongside the layers and committed at once, so a kill can land
    # while its few bytes are written: the dead process's private temp file must not outlive
    # the blob the next pull commits.
    img = make_image([make_layer({"f": b"x" * 100})])
    push_image(registry.url, unique_repo, img, tag="scratch")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ingest = store_root / "ingest"
    ingest.mkdir(parents=True)
    left = ingest / f"{img.config_digest[7:]}.{dead.pid}.0badf00d.part"
    left.write_bytes(img.config_bytes[:10])
    alive = ingest / f"{img.config_digest[7:]}.{os.getpid()}.0c0ffee0.part"  # a live writer's: kept
    alive.write_bytes(b"")
    r = pull(proxy, f"{proxy.host}/{unique_repo}:scratch", None)
    assert r.returncode == 0, r.stderr
    assert not left.exists()
    assert alive.exists()
    alive.unlink()
    assert_store_verifies(store_root)
