"""`imgctl save` / `imgctl load`: docker-archive and oci-archive, round trips with skopeo and podman."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_index, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

from imgctl.oci import host_platform

SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")
needs_skopeo = pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (scripts/run-tests installs it)")


def skopeo(*args: str) -> str:
    p = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


def members(path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as t:
        return {m.name: m for m in t.getmembers()}


def read_member(path, name) -> bytes:
    with tarfile.open(path) as t:
        return t.extractfile(name).read()


@pytest.fixture
def two_images(registry, repo_factory):
    """Two images sharing their base layer; one has a zstd layer. Pulled into the store."""
    base = make_layer({"etc": None, "etc/os-release": "NAME=base\n"}, "gzip")
    app = make_layer({"app": None, "app/run": b"#!/bin/sh\necho hi\n" * 300}, "zstd")
    tool = make_layer({"usr": None, "usr/tool": b"tool" * 2000}, "gzip")
    a = make_image([base, app], labels={"which": "a"})
    b = make_image([base, tool], labels={"which": "b"})
    ra, rb = repo_factory("a"), repo_factory("b")
    push_image(registry.url, ra, a, tag="v1")
    push_image(registry.url, rb, b, tag="v2")
    na, nb = f"{registry.host}/{ra}:v1", f"{registry.host}/{rb}:v2"
    for n in (na, nb):
        assert run("pull", "-q", n).code == 0
    return {"a": a, "b": b, "na": na, "nb": nb, "base": base}


def test_save_docker_archive_layout_and_round_trip(two_images, tmp_path, store_root):
    a, b, na, nb = two_images["a"], two_images["b"], two_images["na"], two_images["nb"]
    out = tmp_path / "out.tar"
    r = run("save", "-o", out, na, nb)
    assert (r.code, r.out, r.err) == (0, "", "")
    m = members(out)
    hexes = lambda d: d.split(":", 1)[1]
    expected = {"manifest.json", "repositories", f"{hexes(a.config_digest)}.json", f"{hexes(b.config_digest)}.json"}
    expected |= {f"{hexes(l.diff_id)}.tar" for l in (*a.layers, *b.layers)}
    assert set(m) == expected  # the shared base layer is written once
    manifest = json.loads(read_member(out, "manifest.json"))
    assert manifest == [
        {"Config": f"{hexes(a.config_digest)}.json", "RepoTags": [na], "Layers": [f"{hexes(l.diff_id)}.tar" for l in a.layers]},
        {"Config": f"{hexes(b.config_digest)}.json", "RepoTags": [nb], "Layers": [f"{hexes(l.diff_id)}.tar" for l in b.layers]},
    ]
    # layers are the uncompressed tars (docker load checks them against the diff_ids)
    assert read_member(out, f"{hexes(a.layers[1].diff_id)}.tar") == a.layers[1].tar
    assert read_member(out, f"{hexes(a.config_digest)}.json") == a.config_bytes
    assert not list(tmp_path.glob(".out.tar.*"))  # no temporary file left

    other = tmp_path / "other-root"
    r = run("--root", other, "load", "-i", out)
    assert r.code == 0, r.err
    assert r.out == f"Loaded image: {na}\nLoaded image: {nb}\n"
    assert image_ids(other) == {a.config_digest, b.config_digest}
    assert_store_verifies(other)
    assert_store_verifies(store_root)
    r = run("--root", other, "inspect", "-f", "{{.Id}} {{json .RepoTags}} {{.Size}} {{json .RootFS.Layers}}", na)
    assert r.out == f'{a.config_digest} ["{na}"] {sum(l.uncompressed_size for l in a.layers)} {json.dumps([l.diff_id for l in a.layers], separators=(",", ":"))}\n'
    # loading the same archive again changes nothing and says the same
    again = run("--root", other, "load", "-i", out)
    assert again.out == r.out.replace(r.out, f"Loaded image: {na}\nLoaded image: {nb}\n")
    # an image loaded from a docker-archive can be exported in both formats again
    assert run("--root", other, "save", "--format", "oci-archive", "-o", tmp_path / "again.tar", na).code == 0


def test_save_by_repository_id_and_errors(two_images, tmp_path):
    a, na = two_images["a"], two_images["na"]
    repo = na.rsplit(":", 1)[0]
    assert run("tag", na, f"{repo}:second").code == 0
    out = tmp_path / "repo.tar"
    assert run("image", "save", "--output", out, repo).code == 0  # a bare repository: all its tags
    manifest = json.loads(read_member(out, "manifest.json"))
    assert manifest[0]["RepoTags"] == [f"{repo}:second", na]
    out2 = tmp_path / "id.tar"
    assert run("save", "-o", out2, a.config_digest[7:19]).code == 0
    assert json.loads(read_member(out2, "manifest.json"))[0]["RepoTags"] == []
    assert "repositories" not in members(out2)

    r = run("save", "-o", tmp_path / "x.tar", na, "nosuch:1")
    assert (r.code, r.err) == (1, "Error: No such image: nosuch:1\n")
    assert not (tmp_path / "x.tar").exists() and not list(tmp_path.glob(".x.tar.*"))
    r = run("save", "--format", "tar", "-o", tmp_path / "y.tar", na)
    assert r.code == 2
    r = run("load", "-i", tmp_path / "missing.tar")
    assert (r.code, r.err) == (1, f"Error: cannot read {tmp_path / 'missing.tar'}: No such file or directory\n")
    (tmp_path / "junk.tar").write_bytes(b"hello world, not a tar" * 50)
    r = run("load", "-i", tmp_path / "junk.tar")
    assert r.code == 1 and r.err.startswith("Error: invalid archive")


def test_save_oci_archive_keeps_digests(two_images, tmp_path, store_root):
    a, b, na, nb = two_images["a"], two_images["b"], two_images["na"], two_images["nb"]
    out = tmp_path / "oci.tar"
    assert run("save", "--format", "oci-archive", "-o", out, na, nb).code == 0
    m = members(out)
    assert json.loads(read_member(out, "oci-layout")) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(read_member(out, "index.json"))
    assert [(e["digest"], e["annotations"]) for e in index["manifests"]] == [
        (a.manifest_digest, {"io.containerd.image.name": na, "org.opencontainers.image.ref.name": "v1"}),
        (b.manifest_digest, {"io.containerd.image.name": nb, "org.opencontainers.image.ref.name": "v2"}),
    ]
    blobs = {n.split("/")[-1] for n in m if n.startswith("blobs/sha256/") and m[n].isfile()}
    want = {d.split(":")[1] for img in (a, b) for d in (img.manifest_digest, img.config_digest, *(l.digest for l in img.layers))}
    assert blobs == want
    assert read_member(out, f"blobs/sha256/{a.manifest_digest[7:]}") == a.manifest_bytes

    other = tmp_path / "other"
    r = run("--root", other, "load", "-i", out)
    assert (r.code, r.out) == (0, f"Loaded image: {na}\nLoaded image: {nb}\n"), r.err
    r = run("--root", other, "inspect", "-f", "{{.Descriptor.digest}}", na, nb)
    assert r.out == f"{a.manifest_digest}\n{b.manifest_digest}\n"
    assert set(blob_files(other)) == set(blob_files(store_root))
    assert_store_verifies(other)


@needs_skopeo
def test_skopeo_reads_what_save_writes(two_images, tmp_path):
    a, na = two_images["a"], two_images["na"]
    docker_tar, oci_tar = tmp_path / "d.tar", tmp_path / "o.tar"
    assert run("save", "-o", docker_tar, na).code == 0
    assert run("save", "--format", "oci-archive", "-o", oci_tar, na).code == 0
    info = json.loads(skopeo("inspect", f"docker-archive:{docker_tar}"))
    assert info["Layers"] == [l.diff_id for l in a.layers]
    assert info["Labels"] == {"which": "a"}
    cfg = json.loads(skopeo("inspect", "--config", "--raw", f"docker-archive:{docker_tar}"))
    assert cfg == a.config
    info = json.loads(skopeo("inspect", f"oci-archive:{oci_tar}"))
    assert info["Digest"] == a.manifest_digest
    assert info["Layers"] == [l.digest for l in a.layers]
    raw = skopeo("inspect", "--raw", f"oci-archive:{oci_tar}:v1")
    assert raw.encode() == a.manifest_bytes
    # skopeo copies out of both into a directory and gets the same config
    skopeo("copy", "-q", f"docker-archive:{docker_tar}", f"dir:{tmp_path / 'dir'}")
    assert (tmp_path / "dir" / a.config_digest[7:]).read_bytes() == a.config_bytes


@needs_skopeo
def test_load_what_skopeo_writes(registry, repo_factory, tmp_path, store_root):
    docker_img = make_image(
        [make_layer({"etc": None, "etc/x": "1"}, docker=True), make_layer({"bin": None, "bin/y": b"y" * 999}, docker=True)],
        docker=True,
    )
    oci_img = make_image([make_layer({"opt": None, "opt/z": b"z" * 5000}, "zstd")])
    rd, ro = repo_factory("docker"), repo_factory("oci")
    push_image(registry.url, rd, docker_img, tag="d")
    push_image(registry.url, ro, oci_img, tag="o")
    dtar, otar = tmp_path / "sk-docker.tar", tmp_path / "sk-oci.tar"
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{registry.host}/{rd}:d", f"docker-archive:{dtar}:example.com/team/app:1.0")
    skopeo("copy", "-q", "--src-tls-verify=false", f"docker://{registry.host}/{ro}:o", f"oci-archive:{otar}:example.com/team/oci:2.0")

    r = run("load", "-i", dtar)
    assert (r.code, r.out, r.err) == (0, "Loaded image: example.com/team/app:1.0\n", "")
    r = run("load", "--input", otar)
    assert (r.code, r.out, r.err) == (0, "Loaded image: example.com/team/oci:2.0\n", "")
    assert image_ids(store_root) == {docker_img.config_digest, oci_img.config_digest}
    r = run("inspect", "-f", "{{.Descriptor.digest}}", "example.com/team/oci:2.0")
    assert r.out == f"{oci_img.manifest_digest}\n"  # the OCI layout keeps the registry's manifest
    assert_store_verifies(store_root)

    # gzip-compressed archives load the same way; a moved tag is reported as docker does
    gz = tmp_path / "sk-docker.tar.gz"
    gz.write_bytes(gzip.compress(dtar.read_bytes()))
    assert run("tag", "example.com/team/oci:2.0", "example.com/team/app:1.0").code == 0
    r = run("load", "-i", gz)
    assert r.out == (
        f"The image example.com/team/app:1.0 already exists, renaming the old one with ID {oci_img.config_digest} to empty string\n"
        "Loaded image: example.com/team/app:1.0\n"
    ), r.err
    assert_store_verifies(store_root)

    # a multi-platform index written with --all: the host's platform is loaded
    host = host_platform()
    other = "arm64" if host.architecture != "arm64" else "amd64"
    mine = make_image([make_layer({"p": "host"})], architecture=host.architecture, variant=host.variant)
    theirs = make_image([make_layer({"p": "other"})], architecture=other)
    ri = repo_factory("idx")
    push_image(registry.url, ri, make_index([mine, theirs]), tag="multi")
    itar = tmp_path / "idx.tar"
    skopeo("copy", "-q", "--all", "--src-tls-verify=false", f"docker://{registry.host}/{ri}:multi", f"oci-archive:{itar}:example.com/multi:1")
    r = run("load", "-i", itar)
    assert (r.code, r.out) == (0, "Loaded image: example.com/multi:1\n"), r.err
    assert run("inspect", "-f", "{{.Id}}", "example.com/multi:1").out == f"{mine.config_digest}\n"
    assert_store_verifies(store_root)


def _rewrite_tar(src, dst, change):
    """Copy a tar, passing each (info, data) through change()."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read() if info.isfile() else None
            info, data = change(info, data)
            if data is not None:
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
            else:
                tout.addfile(info)


def test_load_verifies_every_digest(two_images, tmp_path):
    a, na = two_images["a"], two_images["na"]
    good_docker, good_oci = tmp_path / "d.tar", tmp_path / "o.tar"
    assert run("save", "-o", good_docker, na).code == 0
    assert run("save", "--format", "oci-archive", "-o", good_oci, na).code == 0
    victim = a.layers[1]

    def flip_layer(info, data):
        if data is not None and info.name == f"{victim.diff_id[7:]}.tar":
            data = data[:600] + bytes([data[600] ^ 1]) + data[601:]
        return info, data

    def flip_blob(info, data):
        if data is not None and info.name == f"blobs/sha256/{victim.digest[7:]}":
            data = data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]
        return info, data

    def swap_config(info, data):
        if data is not None and info.name == f"blobs/sha256/{a.config_digest[7:]}":
            data = data.replace(b'"which":"a"', b'"which":"z"')
        return info, data

    cases = [
        (good_docker, flip_layer, "filesystem layer verification failed"),
        (good_oci, flip_blob, "digest mismatch"),
        (good_oci, swap_config, "digest mismatch"),
    ]
    for i, (src, change, message) in enumerate(cases):
        bad = tmp_path / f"bad{i}.tar"
        _rewrite_tar(src, bad, change)
        root = tmp_path / f"root{i}"
        r = run("--root", root, "load", "-i", bad)
        assert r.code == 1, (i, r.out)
        assert message in r.err, (i, r.err)
        assert r.out == ""
        assert not (root / "index.db").exists() or image_ids(root) == set()
        assert_store_verifies(root)
        assert victim.digest not in blob_files(root) or i == 2


def test_save_to_stdout_and_load_from_stdin(two_images, tmp_path, store_root):
    """The pipe docker users type: `imgctl save IMAGE | imgctl load`."""
    na, a = two_images["na"], two_images["a"]
    env = {**os.environ, "IMGCTL_ROOT": str(store_root)}
    saver = subprocess.Popen([sys.executable, "-m", "imgctl", "save", na], stdout=subprocess.PIPE, env=env)
    other = tmp_path / "piped"
    loader = subprocess.run(
        [sys.executable, "-m", "imgctl", "--root", str(other), "load"], stdin=saver.stdout, capture_output=True, text=True, env=env, timeout=60
    )
    saver.stdout.close()
    assert saver.wait(timeout=60) == 0
    assert (loader.returncode, loader.stdout, loader.stderr) == (0, f"Loaded image: {na}\n", "")
    assert image_ids(other) == {a.config_digest}
    assert_store_verifies(other)


@pytest.mark.skipif(PODMAN is None, reason="podman is not installed")
def test_podman_loads_what_save_writes(two_images, tmp_path):
    na, a = two_images["na"], two_images["a"]
    import tempfile

    runroot = tempfile.mkdtemp(prefix="pm-", dir="/tmp")  # podman wants a runroot under 50 characters
    store = ["--root", str(tmp_path / "podman"), "--runroot", runroot, "--storage-driver", "vfs"]
    try:
        _podman_round_trip(store, na, a, tmp_path)
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


def _podman_round_trip(store, na, a, tmp_path):
    for fmt in ("docker-archive", "oci-archive"):
        out = tmp_path / f"{fmt}.tar"
        assert run("save", "--format", fmt, "-o", out, na).code == 0
        p = subprocess.run(["podman", *store, "load", "-i", str(out)], capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert na in p.stdout
        p = subprocess.run(["podman", *store, "image", "inspect", "--format", "{{.ID}}", na], capture_output=True, text=True, timeout=60)
        assert (p.returncode, p.stdout.strip()) == (0, a.config_digest[7:]), p.stderr
        subprocess.run(["podman", *store, "rmi", "-a", "-f"], capture_output=True, timeout=60)
