"""A layer that inflates enormously (a few KiB of zstd describing 256 MiB): save reads it back
in bounded steps, export refuses it; memory stays flat either way."""

from __future__ import annotations

import io
import tarfile

from tests.support.cli import run
from tests.support.hostile import run_measured
from tests.support.images import layer_from_tar, make_image, push_image

MIB = 1024 * 1024


def zero_bomb_tar(size: int) -> bytes:
    """A tar holding one file of ``size`` zero bytes, built without holding the file twice."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("zeros")
        info.size = size
        tf.addfile(info, io.BytesIO(bytes(size)))
    return buf.getvalue()


def test_save_and_export_of_a_zstd_bomb_stay_bounded(registry, unique_repo, store_root, tmp_path):
    tar = zero_bomb_tar(256 * MIB)
    layer = layer_from_tar(tar, "zstd")
    del tar
    assert layer.size < 64 * 1024  # tiny on the wire
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="bomb")
    name = f"{registry.host}/{unique_repo}:bomb"
    assert run("pull", "-q", name).code == 0

    out = tmp_path / "bomb.tar"
    m = run_measured(["save", "-o", str(out), name], timeout=120)
    assert m.code == 0, m.err
    assert m.maxrss_kib * 1024 < 150 * MIB, f"save peaked at {m.maxrss_kib // 1024} MiB"

    # export refuses such a layer outright (its ratio guard), without inflating it first
    m = run_measured(["export", "-o", str(tmp_path / "fs.tar"), name], timeout=120)
    assert m.code == 1
    assert m.err.startswith(f"Error: layer {layer.digest} inflates ") and m.err.endswith("refusing to export it\n")
    assert m.maxrss_kib * 1024 < 150 * MIB, f"export peaked at {m.maxrss_kib // 1024} MiB"
