"""Issue 15: a multi-platform image is one image -- its index kept as its identity, platforms
added to it, listed, saved, loaded and pushed whole."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_index, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

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
    repo_path = name.split("/", 1)[1].rsplit(":", 1)[0]
    assert [l for l in r.lines if "Pulling from" in l or l.startswith("Digest")] == [
        f"multi: Pulling from {repo_path} ({_plat_of(e)})" for e in (host, other, armv7)
    ] + [f"Digest: {idx.manifest_digest}"]
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


def _registry_manifest(registry, repo, ref):
    """The manifest bytes the registry has under REF, None when it has none."""
    import httpx
    from tests.support.images import get_manifest

    try:
        return get_manifest(registry.url, repo, ref).content
    except httpx.HTTPStatusError as e:
        assert e.response.status_code == 404
        return None


def test_push_writes_the_index_and_refuses_missing_platforms(registry, repo_factory, store_root):
    idx, host, other, armv7 = _images()
    src = repo_factory("src")
    push_image(registry.url, src, idx, tag="multi")
    name = f"{registry.host}/{src}:multi"
    assert run("pull", name).code == 0

    dst = repo_factory("dst")
    target = f"{registry.host}/{dst}:copy"
    assert run("tag", name, target).code == 0
    r = run("push", target)  # only the host's platform is here, the new repository has nothing
    assert r.code == 1
    assert r.err.startswith(f"Error: cannot push {target}: its index names content the store does not hold")
    assert f"linux/{OTHER}" in r.err and "linux/arm/v7" in r.err and "attestation" in r.err
    assert len(r.err.splitlines()) == 1
    assert _registry_manifest(registry, dst, "copy") is None  # nothing pushed

    # --platform narrows it to the host's manifest
    r = run("push", "--platform", str(HOST), target)
    assert r.code == 0, r.err
    assert r.lines[-1].startswith(f"copy: digest: {host.manifest_digest} ")

    # Back to the source repository, which holds every entry: the index goes as it was.
    r = run("push", name)
    assert r.code == 0, r.err
    assert r.lines[-1] == f"multi: digest: {idx.manifest_digest} size: {len(idx.manifest_bytes)}"


SKOPEO = shutil.which("skopeo")
PODMAN = shutil.which("podman")


def skopeo(*args) -> str:
    p = subprocess.run([SKOPEO, *map(str, args)], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    return p.stdout


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_round_trip_pull_save_load_push_keeps_every_digest(registry, repo_factory, tmp_path, monkeypatch, docker, store_root):
    idx, host, other, armv7 = _images(docker=docker)
    src = repo_factory("src")
    push_image(registry.url, src, idx, tag="v1")
    r = run("pull", "--all-platforms", "--attestations", f"{registry.host}/{src}:v1")
    assert r.code == 0, r.err
    for att in idx.attestations:
        assert att.manifest_digest in blob_files(store_root)
    assert_store_verifies(store_root)
    assert run("verify").code == 0
    out = tmp_path / "all.tar"
    assert run("save", "-o", out, f"{registry.host}/{src}:v1").code == 0  # docker-archive

    monkeypatch.setenv("IMGCTL_ROOT", str(tmp_path / "second"))
    r = run("load", "-i", out)
    assert (r.code, r.out) == (0, f"Loaded image: {registry.host}/{src}:v1\n"), r.err
    dst = repo_factory("dst")
    assert run("tag", f"{registry.host}/{src}:v1", f"{registry.host}/{dst}:v2").code == 0
    r = run("push", f"{registry.host}/{dst}:v2")
    assert r.code == 0, r.err
    assert r.lines[-1] == f"v2: digest: {idx.manifest_digest} size: {len(idx.manifest_bytes)}"
    assert _registry_manifest(registry, dst, "v2") == idx.manifest_bytes
    for img in (host, other, armv7, *idx.attestations):
        assert _registry_manifest(registry, dst, img.manifest_digest) == img.manifest_bytes
    # pushed again: the tag's repo digest is the index's
    assert run("images", "--digests", "--format", "{{.Repository}} {{.Digest}}", f"{registry.host}/{dst}").out == (
        f"{registry.host}/{dst} {idx.manifest_digest}\n"
    )


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed")
def test_skopeo_copy_all_round_trips(registry, repo_factory, tmp_path, store_root):
    idx, host, other, armv7 = _images()  # with attestations
    src = repo_factory("src")
    push_image(registry.url, src, idx, tag="v1")
    # skopeo's oci-archive of the whole index (attestations included) loads as one image
    sk = tmp_path / "skopeo.tar"
    skopeo("copy", "-q", "--all", "--src-tls-verify=false", f"docker://{registry.host}/{src}:v1", f"oci-archive:{sk}:example.com/multi:1")
    r = run("load", "-i", sk)
    assert (r.code, r.out) == (0, "Loaded image: example.com/multi:1\n"), r.err
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest, armv7.manifest_digest}
    assert run("images", "--digests", "--format", "{{.Digest}}", "example.com/multi").out == f"{idx.manifest_digest}\n"

    # attestations came along: imgctl's oci-archive read back by skopeo copy --all into a new
    # repository gives the same index and every manifest, attestations included
    for att in idx.attestations:
        assert att.manifest_digest in blob_files(store_root)
    ours = tmp_path / "ours.tar"
    assert run("save", "--format", "oci-archive", "-o", ours, "example.com/multi:1").code == 0
    fresh = repo_factory("fresh")
    skopeo("copy", "-q", "--all", "--dest-tls-verify=false", f"oci-archive:{ours}", f"docker://{registry.host}/{fresh}:p")
    assert _registry_manifest(registry, fresh, "p") == idx.manifest_bytes
    for img in (host, other, armv7, *idx.attestations):
        assert _registry_manifest(registry, fresh, img.manifest_digest) == img.manifest_bytes
    info = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{registry.host}/{fresh}:p"))
    assert [m["digest"] for m in info["manifests"]] == [m["digest"] for m in idx.index["manifests"]]

    # and our push of it to another repository does the same
    again = repo_factory("again")
    assert run("tag", "example.com/multi:1", f"{registry.host}/{again}:q").code == 0
    r = run("push", f"{registry.host}/{again}:q")
    assert r.code == 0, r.err
    assert _registry_manifest(registry, again, "q") == idx.manifest_bytes
    assert_store_verifies(store_root)
    assert run("verify").code == 0


@pytest.mark.skipif(PODMAN is None or SKOPEO is None, reason="podman or skopeo is not installed")
def test_podman_loads_a_multi_platform_save(registry, repo_factory, tmp_path, store_root):
    import tempfile

    idx, host, other, armv7 = _images()
    src = repo_factory("src")
    push_image(registry.url, src, idx, tag="v1")
    name = f"{registry.host}/{src}:v1"
    assert run("pull", "--all-platforms", "--attestations", name).code == 0
    runroot = tempfile.mkdtemp(prefix="pm-", dir="/tmp")
    store = ["--root", str(tmp_path / "podman"), "--runroot", runroot, "--storage-driver", "vfs"]

    def podman(*args):
        return subprocess.run(["podman", *store, *map(str, args)], capture_output=True, text=True, timeout=120)

    try:
        for fmt in ("docker-archive", "oci-archive"):
            out = tmp_path / f"{fmt}.tar"
            assert run("save", "--format", fmt, "-o", out, name).code == 0
            p = podman("load", "-i", out)
            assert p.returncode == 0, p.stderr
            # podman keeps the host's platform, known by the index digest
            p = podman("image", "inspect", "--format", "{{.ID}} {{.Digest}}", name)
            assert (p.returncode, p.stdout.split()) == (0, [host.config_digest[7:], idx.manifest_digest]), p.stderr
            podman("rmi", "-a", "-f")
        # what imgctl pushes (the loaded index), podman reads as the same manifest list
        dst = repo_factory("dst")
        assert run("tag", name, f"{registry.host}/{dst}:v2").code == 0
        assert run("push", f"{registry.host}/{dst}:v2").code == 0
        conf = tmp_path / "registries.conf"
        conf.write_text(f'[[registry]]\nlocation = "{registry.host}"\ninsecure = true\n')
        p = subprocess.run(["podman", *store, "manifest", "inspect", f"{registry.host}/{dst}:v2"], capture_output=True,
                           text=True, timeout=120, env={**os.environ, "CONTAINERS_REGISTRIES_CONF": str(conf)})
        assert p.returncode == 0, p.stderr
        assert [m["digest"] for m in json.loads(p.stdout)["manifests"]] == [m["digest"] for m in idx.index["manifests"]]
    finally:
        shutil.rmtree(runroot, ignore_errors=True)


# -- a store written by the previous release (schema 2) ---------------------------------------
PREVIOUS_RELEASE = "24417da"  # main before schema 3: the last imgctl with SCHEMA_VERSION = 2
REPO_ROOT = Path(__file__).resolve().parent.parent


def _previous_release(tmp_path) -> Path | None:
    """imgctl's package as the previous release had it (git archive), or None without git history."""
    if shutil.which("git") is None:
        return None
    dest = tmp_path / "previous"
    dest.mkdir()
    p = subprocess.run(["git", "-C", str(REPO_ROOT), "archive", PREVIOUS_RELEASE, "imgctl"], capture_output=True, timeout=60)
    if p.returncode != 0:
        return None
    subprocess.run(["tar", "-x", "-C", str(dest)], input=p.stdout, check=True, timeout=60)
    return dest


def _downgrade_to_schema_2(root) -> None:
    """What the previous release leaves: no schema-3 tables, user_version 2."""
    con = _db(root)
    con.execute("DROP TABLE image_indexes")
    con.execute("DROP TABLE image_platforms")
    con.execute("DELETE FROM image_blobs WHERE kind = 'platform'")
    con.execute("PRAGMA user_version = 2")
    con.commit()
    con.close()


@pytest.mark.parametrize("writer", ["previous-release", "schema-2-by-hand"])
def test_a_store_from_the_previous_release_is_migrated(multi, store_root, tmp_path, writer):
    name, idx, host, other, armv7 = multi
    if writer == "previous-release":
        old = _previous_release(tmp_path)
        if old is None:
            pytest.skip("no git history to take the previous release from")
        assert "SCHEMA_VERSION = 2\n" in (old / "imgctl" / "store.py").read_text()
        p = subprocess.run([sys.executable, "-m", "imgctl", "pull", "-q", name], capture_output=True, text=True,
                           timeout=120, cwd=old, env={**os.environ, "PYTHONPATH": str(old)})
        assert p.returncode == 0, p.stderr
    else:
        assert run("pull", "-q", name).code == 0
        _downgrade_to_schema_2(store_root)
    con = _db(store_root)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    assert con.execute("SELECT count(*) FROM sqlite_master WHERE name = 'image_indexes'").fetchone()[0] == 0
    con.close()

    # the first use migrates: the image keeps its index as its identity
    r = run("images", "--digests", "--format", "{{.Tag}} {{.Digest}} {{.ID}}")
    assert r.out == f"multi {idx.manifest_digest} {host.config_digest[7:19]}\n", r.err
    con = _db(store_root)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 3
    assert con.execute("SELECT image_id, digest FROM image_indexes").fetchall() == [(host.config_digest, idx.manifest_digest)]
    con.close()
    # ... so another platform joins the same image, and save writes the index
    assert run("pull", "--platform", f"linux/{OTHER}", name).code == 0
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest}
    out = tmp_path / "m.tar"
    assert run("save", "--format", "oci-archive", "-o", out, name).code == 0
    assert [e["digest"] for e in _tar_json(out, "index.json")["manifests"]] == [idx.manifest_digest]
    assert_store_verifies(store_root)
    assert run("verify").code == 0


def test_images_tree_and_json_manifests(multi, store_root, monkeypatch):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--platform", f"linux/{OTHER}", name).code == 0
    assert run("pull", name).code == 0
    monkeypatch.setenv("COLUMNS", "200")
    r = run("images", "--tree")
    assert r.code == 0, r.err
    shown = name
    plats = [(str(_plat_of(e)), e) for e in (host, other, armv7)]
    order = [d["digest"] for d in idx.index["manifests"] if d["platform"]["os"] != "unknown"]
    by_digest = {e.manifest_digest: e for e in (host, other, armv7)}
    w = max(len(shown), *(len(p) + 3 for p, _ in plats))
    size = {e.manifest_digest: len(e.manifest_bytes) + len(e.config_bytes) + sum(l.size for l in e.layers) for e in (host, other)}
    from imgctl.cli.format.units import human_size

    disk = sum(len(b) for b in {d: b for e in (host, other) for d, b in [(e.manifest_digest, e.manifest_bytes), *e.blobs()]}.values())
    disk += len(idx.manifest_bytes)
    lines = [
        f"{'IMAGE':<{w}}   ID             DISK USAGE   CONTENT SIZE   EXTRA",
        f"{shown:<{w}}   {host.config_digest[7:19]}   {human_size(disk):>10}   {human_size(sum(size.values())):>12}",
    ]
    for i, d in enumerate(order):
        e = by_digest[d]
        branch = "└─ " if i == len(order) - 1 else "├─ "
        s = size.get(d, 0)
        lines.append(f"{branch + str(_plat_of(e)):<{w}}   {d[7:19]}   {human_size(s):>10}   {human_size(s):>12}")
    assert r.lines == lines, r.out

    for flag in ("-q", "--digests", "--no-trunc"):
        r = run("images", "--tree", flag)
        assert (r.code, r.err) == (2, f"Error: {'--quiet' if flag == '-q' else flag} is not supported with --tree\n")

    row = json.loads(run("images", "--format", "json").out)
    assert list(row) == sorted(row) and row["ID"] == host.config_digest[7:19]
    got = [(m["ID"], m["Kind"], m["Available"]) for m in row["Manifests"]]
    want = [(e.manifest_digest, "image", e is not armv7) for e in (host, other, armv7)]
    want += [(a.manifest_digest, "attestation", False) for a in idx.attestations]
    assert sorted(got) == sorted(want)
    m = next(m for m in row["Manifests"] if m["ID"] == host.manifest_digest)
    assert m["ImageData"]["Platform"]["architecture"] == HOST.architecture
    assert m["Size"]["Content"] == size[host.manifest_digest]
    assert m["ImageData"]["Size"]["Unpacked"] == sum(l.uncompressed_size for l in host.layers)
    assert run("images", "--format", "{{len .Manifests}}").out == f"{len(idx.index['manifests'])}\n"


def _plat_of(img):
    p = img.platform
    return "/".join(x for x in (p["os"], p["architecture"], p.get("variant")) if x)


def test_platform_option_on_inspect_history_export_save_rmi(multi, store_root, tmp_path):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--all-platforms", name).code == 0
    o = f"linux/{OTHER}"
    # inspect: the platform's config and manifest, the image's names
    doc = json.loads(run("inspect", "--platform", o, name).out)[0]
    assert (doc["Id"], doc["Architecture"]) == (other.config_digest, OTHER)
    assert doc["Descriptor"]["digest"] == other.manifest_digest
    assert doc["RepoDigests"] == [f"{name.rsplit(':', 1)[0]}@{idx.manifest_digest}"]
    assert run("inspect", "-f", "{{.Id}}", name).out == f"{host.config_digest}\n"  # default: the host's
    assert run("inspect", "-f", "{{.Id}}", "--platform", "linux/arm", name).out == f"{armv7.config_digest}\n"
    # history: the platform's layers
    assert run("history", "-q", "--no-trunc", "--platform", o, name).lines[0] == other.config_digest
    assert run("history", "-q", "--no-trunc", name).lines[0] == host.config_digest
    # export: the platform's filesystem
    d = tmp_path / "rootfs"
    assert run("export", "--platform", o, "--dir", d, name).code == 0, run("export", "--platform", o, "--dir", d, name).err
    assert (d / "p").read_text() == OTHER * 500
    # save --platform: that manifest alone, not the index
    out = tmp_path / "one.tar"
    assert run("save", "--format", "oci-archive", "--platform", "linux/arm/v7", "-o", out, name).code == 0
    assert [e["digest"] for e in _tar_json(out, "index.json")["manifests"]] == [armv7.manifest_digest]
    # a platform the image does not provide, and one not in the store
    r = run("inspect", "--platform", "linux/s390x", name)
    assert (r.code, r.err) == (1, f"Error: image {name} does not provide the specified platform (linux/s390x)\n")

    # rmi --platform: the platform's content goes, the image and the others stay
    r = run("rmi", "--platform", o, name)
    assert r.code == 0, r.err
    assert r.lines[0] == f"Deleted: {other.manifest_digest}"
    assert f"Deleted: {other.config_digest}" in r.lines
    shared = host.layers[0].digest
    assert f"Deleted: {shared}" not in r.lines and shared in blob_files(store_root)
    assert _available(store_root) == {host.manifest_digest, armv7.manifest_digest}
    r = run("inspect", "--platform", o, name)
    assert (r.code, r.err) == (1, f"Error: platform linux/{OTHER}{'/v8' if OTHER == 'arm64' else ''} of image {name} is not in the store (pull it with --platform linux/{OTHER}{'/v8' if OTHER == 'arm64' else ''})\n")
    # removing the image row's own platform: another platform becomes the row, names kept
    r = run("rmi", "--platform", str(HOST), name)
    assert r.code == 0, r.err
    assert image_ids(store_root) == {armv7.config_digest}
    assert run("images", "--digests", "--format", "{{.Digest}} {{.ID}}").out == f"{idx.manifest_digest} {armv7.config_digest[7:19]}\n"
    r = run("rmi", "--platform", "linux/arm/v7", name)  # the last one: the image must go as a whole
    assert r.code == 1 and "is the only one of image" in r.err
    assert_store_verifies(store_root)
    assert run("verify").code == 0
    assert run("rmi", name).code == 0
    assert blob_files(store_root) == {}


def test_disk_usage_and_gc_count_shared_content_once(multi, store_root):
    from imgctl.lifecycle import disk_usage
    from imgctl.store import Store

    name, idx, host, other, armv7 = multi
    assert run("pull", "--all-platforms", name).code == 0
    blobs = {idx.manifest_digest: len(idx.manifest_bytes)}
    for img in (host, other, armv7):
        blobs[img.manifest_digest] = len(img.manifest_bytes)
        blobs.update((d, len(b)) for d, b in img.blobs())
    assert host.layers[0].digest == other.layers[0].digest  # the shared base layer
    total = sum(blobs.values())
    assert {d: p.stat().st_size for d, p in blob_files(store_root).items()} == blobs
    du = disk_usage(Store(store_root))
    assert (du.total, du.active, du.size, du.reclaimable) == (1, 1, total, 0)
    assert [(u.id, u.size, u.shared, u.unique) for u in du.images] == [(host.config_digest, total, 0, total)]

    # another tag of another image sharing the base layer: shared once between images
    solo = make_image([host.layers[0], make_layer({"solo": "1"})])
    repo = name.rsplit(":", 1)[0]
    push_image(f"http://{repo.split('/', 1)[0]}", repo.split("/", 1)[1], solo, tag="solo")
    assert run("pull", f"{repo}:solo").code == 0
    du = disk_usage(Store(store_root))
    base = len(host.layers[0].data)
    mine = {u.id: u for u in du.images}[host.config_digest]
    assert (mine.shared, mine.unique) == (base, total - base)
    assert du.size == total + sum(len(b) for d, b in solo.blobs() if d not in blobs) + len(solo.manifest_bytes)

    # garbage collection keeps every platform's blobs while the image lives ...
    from imgctl.store import collect_garbage

    assert collect_garbage(Store(store_root)) == []
    # ... and removing one platform frees only what no other platform or image uses
    r = run("rmi", "--platform", "linux/arm/v7", name)
    assert r.code == 0, r.err
    freed = {l.split(" ", 1)[1] for l in r.lines}
    assert freed == {armv7.manifest_digest, armv7.config_digest, *(l.digest for l in armv7.layers)}
    assert_store_verifies(store_root)


def _rewrite(src, dst, change):
    import io
    import tarfile

    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for info in tin.getmembers():
            data = tin.extractfile(info).read() if info.isfile() else None
            data = change(info.name, data)
            if data is not None:
                info.size = len(data)
                tout.addfile(info, io.BytesIO(data))
            else:
                tout.addfile(info)


@pytest.mark.parametrize("damage", ["other-layer", "other-manifest", "index-entry-size"])
def test_load_of_a_damaged_multi_platform_archive_adds_nothing(multi, store_root, tmp_path, monkeypatch, damage):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--all-platforms", name).code == 0
    good = tmp_path / "good.tar"
    assert run("save", "--format", "oci-archive", "-o", good, name).code == 0
    bad = tmp_path / "bad.tar"

    def change(member, data):
        if data is None:
            return None
        if damage == "other-layer" and member == f"blobs/sha256/{other.layers[1].digest[7:]}":
            return data[:-5] + bytes([data[-5] ^ 1]) + data[-4:]
        if damage == "other-manifest" and member == f"blobs/sha256/{other.manifest_digest[7:]}":
            return data.replace(b'"layers"', b'"layers" ')
        if damage == "index-entry-size" and member == f"blobs/sha256/{idx.manifest_digest[7:]}":
            return data  # the index stays; its entry in index.json lies about its size below
        if damage == "index-entry-size" and member == "index.json":
            return data.replace(f'"size":{len(idx.manifest_bytes)}'.encode(), f'"size":{len(idx.manifest_bytes) + 1}'.encode())
        return data

    _rewrite(good, bad, change)
    fresh = tmp_path / "fresh"
    monkeypatch.setenv("IMGCTL_ROOT", str(fresh))
    r = run("load", "-i", bad)
    assert r.code == 1 and len(r.err.splitlines()) == 1 and "Traceback" not in r.err, r.err
    assert image_ids(fresh) == set()
    assert run("images", "-q").out == ""
    assert run("verify").code == 0


def test_load_of_an_index_without_any_platform_image_is_refused(multi, store_root, tmp_path, monkeypatch):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--all-platforms", name).code == 0
    good = tmp_path / "good.tar"
    assert run("save", "--format", "oci-archive", "-o", good, name).code == 0
    bad = tmp_path / "bad.tar"
    platform_manifests = {f"blobs/sha256/{e.manifest_digest[7:]}" for e in (host, other, armv7)}
    import tarfile  # the platform manifests left out: only attestations stay in the index


    with tarfile.open(good) as tin, tarfile.open(bad, "w") as tout:
        for info in tin.getmembers():
            if info.name not in platform_manifests:
                tout.addfile(info, tin.extractfile(info) if info.isfile() else None)
    monkeypatch.setenv("IMGCTL_ROOT", str(tmp_path / "fresh"))
    r = run("load", "-i", bad)
    assert (r.code, r.err) == (1, f"Error: invalid archive: index {idx.manifest_digest} holds no image for any platform\n")
    assert run("images", "-q").out == ""


def test_save_refuses_a_damaged_platform(multi, store_root, tmp_path):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--all-platforms", name).code == 0
    victim = blob_files(store_root)[other.layers[1].digest]
    victim.chmod(0o644)
    data = bytearray(victim.read_bytes())
    data[-3] ^= 1
    victim.write_bytes(bytes(data))
    out = tmp_path / "x.tar"
    r = run("save", "--format", "oci-archive", "-o", out, name)
    assert r.code == 1 and len(r.err.splitlines()) == 1 and "imgctl verify" in r.err, r.err
    assert not out.exists()


def test_concurrent_pulls_of_several_platforms_make_one_image(registry, unique_repo, tmp_path):
    idx, host, other, armv7 = _images()
    push_image(registry.url, unique_repo, idx, tag="multi")
    name = f"{registry.host}/{unique_repo}:multi"
    for round_ in range(3):
        root = tmp_path / f"store{round_}"
        env = {**os.environ, "IMGCTL_ROOT": str(root)}
        procs = [
            subprocess.Popen([sys.executable, "-m", "imgctl", "pull", "-q", "--platform", p, name], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for p in (f"linux/{OTHER}", "linux/arm/v7", str(HOST))
        ]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
        assert image_ids(root) == {host.config_digest}  # no stray row, the host's platform shows
        assert _available(root) == {host.manifest_digest, other.manifest_digest, armv7.manifest_digest}
        assert_store_verifies(root)


def test_repair_after_a_lost_index_gives_the_image_back_whole(multi, store_root):
    name, idx, host, other, armv7 = multi
    assert run("pull", "--platform", f"linux/{OTHER}", name).code == 0
    assert run("pull", name).code == 0
    before = run("images", "--digests").out
    for n in ("index.db", "index.db-wal", "index.db-shm"):
        if (store_root / n).exists():
            (store_root / n).unlink()
    r = run("verify", "--repair")
    assert "Rebuilt the index from the blobs" in r.out, (r.out, r.err)
    assert run("verify").code == 0
    assert run("images", "--digests").out == before
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest}
    assert_store_verifies(store_root)


def test_pull_by_index_digest_adds_platforms_to_the_pinned_image(multi, store_root):
    name, idx, host, other, armv7 = multi
    pinned = f"{name.rsplit(':', 1)[0]}@{idx.manifest_digest}"
    assert run("pull", pinned).code == 0
    assert run("pull", "--platform", f"linux/{OTHER}", pinned).code == 0
    assert image_ids(store_root) == {host.config_digest}
    assert _available(store_root) == {host.manifest_digest, other.manifest_digest}
    assert run("images", "--digests", "--format", "{{.Tag}} {{.Digest}}").out == f"<none> {idx.manifest_digest}\n"
    # the tag pulled later is the same image
    assert run("pull", name).code == 0
    assert image_ids(store_root) == {host.config_digest}
    assert run("push", pinned).code == 0  # by digest: the index, whose entries the repository has
    assert_store_verifies(store_root)


def test_tree_rendering_fits_the_width():
    from imgctl.cli.images_tree import render_tree
    from imgctl.tree import TreeImage, TreePlatform

    img = TreeImage(
        "sha256:" + "a" * 64, ["registry.example:5000/team/application:1.0"], 5000, 3000,
        [TreePlatform("linux/amd64", "sha256:" + "b" * 64, True, 2000, 2000),
         TreePlatform("linux/arm64/v8", "sha256:" + "c" * 64, False, 0, 0)],
    )
    wide = render_tree([img], width=200).splitlines()
    assert wide[0] == f"{'IMAGE':<42}   ID             DISK USAGE   CONTENT SIZE   EXTRA"
    assert wide[1] == f"{img.names[0]}   aaaaaaaaaaaa   {'5kB':>10}   {'3kB':>12}"
    assert wide[3] == f"{'└─ linux/arm64/v8':<42}   cccccccccccc   {'0B':>10}   {'0B':>12}"
    # 50 columns: CONTENT SIZE and EXTRA give way (the name keeps 12 or more), the name is cut
    narrow = render_tree([img], width=50).splitlines()
    assert narrow[0] == f"{'IMAGE':<22}   ID             DISK USAGE"
    assert narrow[1] == f"{img.names[0][:19]}...   aaaaaaaaaaaa   {'5kB':>10}"
    assert all(len(l) <= 50 for l in narrow)
    # on a terminal absent platforms are dimmed
    assert render_tree([img], width=200, faint=True).splitlines()[3].startswith("\x1b[2m└─ linux/arm64/v8")
