"""Issue 15: a multi-platform image is one image -- its index kept as its identity, platforms
added to it, listed, saved, loaded and pushed whole."""

from __future__ import annotations

import json
import sqlite3

import pytest
from cli import run
from images import make_image, make_index, make_layer, push_image
from storecheck import assert_store_verifies, blob_files, image_ids

from imgctl.oci import host_platform

HOST = host_platform()
OTHER = "arm64" if HOST.architecture != "arm64" else "amd64"


def _plat(arch: str) -> dict:
    return {"architecture": arch, "variant": "v8" if arch == "arm64" else None}


def _images(docker: bool = False):
    """host, other and arm/v7 images sharing a base layer; an index of them with attestations."""
    shared = make_layer({"bin/sh": b"#!shared\n" * 300}, "gzip", docker=docker)
    host = make_image([shared, make_layer({"p": "host"}, "gzip", docker=docker)], docker=docker,
                      created="2024-03-01T00:00:00Z", **_plat(HOST.architecture))
    other = make_image([shared, make_layer({"p": OTHER * 500}, "zstd" if not docker else "gzip", docker=docker)],
                       docker=docker, created="2024-03-02T00:00:00Z", **_plat(OTHER))
    armv7 = make_image([make_layer({"p": "armv7"}, "gzip", docker=docker)], docker=docker, architecture="arm", variant="v7")
    idx = make_index([host, other, armv7], docker=docker, attestation_for=not docker)
    return idx, host, other, armv7


@pytest.fixture(params=["oci", "docker"])
def multi(request, registry, unique_repo):
    idx, host, other, armv7 = _images(docker=request.param == "docker")
    push_image(registry.url, unique_repo, idx, tag="multi")
    return f"{registry.host}/{unique_repo}:multi", idx, host, other, armv7


def _db(root):
    return sqlite3.connect(root / "index.db")


def _available(root) -> set[str]:
    con = _db(root)
    try:
        rows = con.execute("SELECT manifest_digest FROM images UNION SELECT manifest_digest FROM image_platforms").fetchall()
        return {r[0] for r in rows}
    finally:
        con.close()


def test_pull_keeps_the_index_and_adds_platforms(multi, store_root):
    name, idx, host, other, armv7 = multi
    r = run("pull", "--platform", f"linux/{OTHER}", name)
    assert r.code == 0, r.err
    assert f"Digest: {idx.manifest_digest}" in r.lines
    assert image_ids(store_root) == {other.config_digest}  # the only platform present is the row
    assert idx.manifest_digest in blob_files(store_root)

    r = run("pull", name)  # the host's platform joins the same image, and becomes its row
    assert r.code == 0, r.err
    assert r.lines[-2] == f"Status: Downloaded newer image for {name}"
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest}
    rows = run("images", "--digests", "--format", "{{.Tag}} {{.Digest}} {{.ID}}").lines
    assert rows == [f"multi {idx.manifest_digest} {host.config_digest[7:19]}"]
    doc = json.loads(run("inspect", name).out)[0]
    assert doc["RepoDigests"] == [f"{name.rsplit(':', 1)[0]}@{idx.manifest_digest}"]
    assert doc["Architecture"] == HOST.architecture

    r = run("pull", "--platform", f"linux/{OTHER}", name)  # already there: nothing to do
    assert r.code == 0, r.err
    assert r.lines[-2] == f"Status: Image is up to date for {name}"
    assert image_ids(store_root) == {host.config_digest}
    # Attestations are never fetched.
    for att in idx.attestations:
        assert att.manifest_digest not in blob_files(store_root)
    assert_store_verifies(store_root)
    assert run("verify").code == 0


def test_pull_all_platforms(multi, store_root):
    name, idx, host, other, armv7 = multi
    r = run("pull", "--all-platforms", name)
    assert r.code == 0, r.err
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest, armv7.manifest_digest}
    for att in idx.attestations:
        assert att.manifest_digest not in blob_files(store_root)
    every = {d for img in (host, other, armv7) for d, _ in img.blobs()}
    assert every <= set(blob_files(store_root))
    assert_store_verifies(store_root)
    assert run("verify").code == 0
    # rmi removes every platform
    r = run("rmi", name)
    assert r.code == 0, r.err
    assert blob_files(store_root) == {}


def _tar_json(path, member):
    import tarfile

    with tarfile.open(path) as t:
        return json.loads(t.extractfile(member).read())


def _tar_names(path):
    import tarfile

    with tarfile.open(path) as t:
        return set(t.getnames())


@pytest.mark.parametrize("fmt", ["oci-archive", "docker-archive"])
def test_save_writes_the_index_and_load_restores_it(multi, store_root, tmp_path, fmt, monkeypatch):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--platform", f"linux/{OTHER}", name).code == 0
    assert run("pull", name).code == 0
    out = tmp_path / "multi.tar"
    r = run("save", "--format", fmt, "-o", out, name)
    assert r.code == 0, r.err
    index = _tar_json(out, "index.json")
    assert [(e["digest"], e["mediaType"]) for e in index["manifests"]] == [(idx.manifest_digest, idx.manifest_media_type)]
    names = _tar_names(out)
    hexes = {n.rsplit("/", 1)[1] for n in names if n.startswith("blobs/sha256/") and n != "blobs/sha256/"}
    # the index byte for byte, both platforms present, the absent one (and attestations) left out
    import tarfile

    with tarfile.open(out) as t:
        assert t.extractfile(f"blobs/sha256/{idx.manifest_digest[7:]}").read() == idx.manifest_bytes
    for img in (host, other):
        assert img.manifest_digest[7:] in hexes and img.config_digest[7:] in hexes
        assert all(l.digest[7:] in hexes for l in img.layers)
    assert armv7.manifest_digest[7:] not in hexes
    if fmt == "docker-archive":
        m = _tar_json(out, "manifest.json")
        assert [e["Config"] for e in m] == [f"blobs/sha256/{host.config_digest[7:]}"]

    # load into a fresh store: the same image, both platforms, the index digest kept
    other_root = tmp_path / "other-store"
    monkeypatch.setenv("IMGCTL_ROOT", str(other_root))
    r = run("load", "-i", out)
    assert r.code == 0, r.err
    assert image_ids(other_root) == {host.config_digest}
    assert _available(other_root) == {host.manifest_digest, other.manifest_digest}
    assert run("images", "--digests", "--format", "{{.Digest}}").out == f"{idx.manifest_digest}\n"
    assert_store_verifies(other_root)
    assert run("verify").code == 0
