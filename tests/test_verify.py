"""`imgctl verify`: detects a flipped byte in any blob, missing blobs; --repair lets a pull fix it."""

from __future__ import annotations

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files


@pytest.fixture
def pulled(registry, unique_repo, store_root):
    img = make_image([make_layer({"a": b"A" * 50000}, "gzip"), make_layer({"b": b"B" * 70000}, "zstd")])
    push_image(registry.url, unique_repo, img, tag="v")
    name = f"{registry.host}/{unique_repo}:v"
    assert run("pull", "-q", name).code == 0
    return name, img


def test_clean_store_verifies(pulled):
    r = run("verify")
    assert (r.code, r.out, r.err) == (0, "Verified 4 blobs and 1 images: no problems found\n", "")


@pytest.mark.parametrize("which", ["manifest", "config", "layer0", "layer1"])
def test_flipped_byte_in_any_blob_is_detected_and_repaired(pulled, store_root, which):
    name, img = pulled
    digest = {"manifest": img.manifest_digest, "config": img.config_digest,
              "layer0": img.layers[0].digest, "layer1": img.layers[1].digest}[which]
    path = blob_files(store_root)[digest]
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))

    r = run("verify")
    assert r.code == 1
    assert r.out.startswith(f"blob {digest} is corrupt: its content hashes to sha256:")
    assert r.err == "Error: Verified 4 blobs and 1 images: 1 problem found\n"

    r = run("verify", "--repair")
    assert r.code == 1
    assert f"Removed corrupt blob {digest}" in r.lines
    assert f"Image {img.config_digest[7:19]} needs a pull to be complete again: imgctl pull {name}" in r.lines
    assert digest not in blob_files(store_root)
    r = run("verify")  # the mark stays until a pull completes the image again
    assert r.code == 1
    assert f"image {img.config_digest[7:19]}: repaired earlier, needs a pull to be complete again" in r.lines

    r = run("pull", name)
    assert r.code == 0, r.err
    assert_store_verifies(store_root)
    assert run("verify").code == 0


def test_missing_blob_is_reported(pulled, store_root):
    name, img = pulled
    blob_files(store_root)[img.layers[1].digest].unlink()
    r = run("verify")
    assert r.code == 1
    assert r.out == f"image {img.config_digest[7:19]}: layer blob {img.layers[1].digest} is missing\n"
