"""kill -9 at many points of a real `imgctl pull`: the store always verifies and the next pull completes."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys

import pytest
from images import make_image, make_layer, make_random_layer, push_image
from killproxy import KillProxy
from storecheck import assert_store_verifies, image_ids


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


def test_ctrl_c_stops_cleanly(proxy, registry, unique_repo, store_root):
    layers = [make_random_layer(400, 6000, seed=41 + i, compression="gzip") for i in range(3)]
    img = make_image(layers)
    push_image(registry.url, unique_repo, img, tag="int")
    name = f"{proxy.host}/{unique_repo}:int"
    r = pull(proxy, name, sum(l.size for l in layers) // 2, sig=signal.SIGINT)
    assert r.returncode == 130, r.stderr
    assert r.stdout == ""
    assert len(r.stderr.splitlines()) == 1 and r.stderr.startswith("Error: interrupted"), r.stderr
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root)  # Ctrl-C cleans up its partial files too
    r = pull(proxy, name, None)
    assert r.returncode == 0, r.stderr
    assert_store_verifies(store_root)
