"""Several real imgctl processes on one store: pulls sharing layers, rmi and prune racing them.

Processes, not threads: the guarantees are about separate programs sharing a
store (SQLite transactions, leases, atomic renames), which threads would not test.
"""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.images import make_image, make_layer, make_random_layer, push_image
from tests.support.storecheck import assert_store_verifies, image_ids


def imgctl(*args: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "imgctl", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_parallel_pulls_with_rmi_and_prune(registry, unique_repo, store_root, cfg_file):
    base = make_random_layer(300, 4000, seed=11, compression="gzip")
    mid = make_random_layer(200, 4000, seed=12, compression="zstd")
    images = {
        "a": make_image([base, mid, make_layer({"a": "a"}, "gzip")]),
        "b": make_image([base, mid, make_layer({"b": "b"}, "gzip")]),
        "c": make_image([base, make_layer({"c": "c"}, "none")]),
        "d": make_image([mid, make_layer({"d": "d"}, "zstd")]),
    }
    for tag, img in images.items():
        push_image(registry.url, unique_repo, img, tag=tag)
    repo = f"{registry.host}/{unique_repo}"
    env = dict(os.environ)
    tags = list(images)

    loop = (
        "import subprocess, sys\n"
        "for tag in sys.argv[1:]:\n"
        f"    r = subprocess.run([sys.executable, '-m', 'imgctl', 'pull', '-q', '{repo}:' + tag], capture_output=True, text=True)\n"
        "    if r.returncode != 0:\n"
        "        print(r.stderr, file=sys.stderr); sys.exit(1)\n"
    )
    reaper = (
        "import subprocess, sys\n"
        "for i in range(6):\n"
        f"    for tag in {tags!r}:\n"
        f"        r = subprocess.run([sys.executable, '-m', 'imgctl', 'rmi', '{repo}:' + tag], capture_output=True, text=True)\n"
        "        if r.returncode != 0 and 'No such image' not in r.stderr:\n"
        "            print(r.stderr, file=sys.stderr); sys.exit(1)\n"
        "    r = subprocess.run([sys.executable, '-m', 'imgctl', 'image', 'prune', '-a', '-f'], capture_output=True, text=True)\n"
        "    if r.returncode != 0:\n"
        "        print(r.stderr, file=sys.stderr); sys.exit(1)\n"
    )
    pullers = [
        subprocess.Popen(
            [sys.executable, "-c", loop, *(tags[(i + k) % 4] for k in range(3))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for i in range(8)
    ]
    killer = subprocess.Popen([sys.executable, "-c", reaper], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for p in [*pullers, killer]:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0, err

    # Whatever survived is complete, and every blob verifies.
    assert_store_verifies(store_root)
    assert image_ids(store_root) <= {img.config_digest for img in images.values()}

    # Everything can be pulled to completion afterwards, with one copy of each blob.
    for tag in tags:
        r = subprocess.run([sys.executable, "-m", "imgctl", "pull", "-q", f"{repo}:{tag}"], env=env, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    assert image_ids(store_root) == {img.config_digest for img in images.values()}
    assert_store_verifies(store_root)


def test_two_processes_pull_the_same_image(registry, unique_repo, store_root):
    layers = [make_random_layer(400, 5000, seed=s, compression="gzip") for s in (21, 22, 23)]
    img = make_image(layers)
    push_image(registry.url, unique_repo, img, tag="same")
    env = dict(os.environ)
    ps = [imgctl("pull", "-q", f"{registry.host}/{unique_repo}:same", env=env) for _ in range(4)]
    for p in ps:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out == f"{registry.host}/{unique_repo}:same\n"
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)
