"""`imgctl pull` against a real docker-registry, with images built by the tests."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_index, make_layer, make_random_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

from imgctl.oci import host_platform


def three_layer_image(docker: bool = False, seed: str = ""):
    layers = [
        make_layer({"etc/os-release": f"NAME=test{seed}\n", "etc/hosts": "127.0.0.1 localhost\n"}, "gzip", docker=docker),
        make_layer({"usr/bin/tool": b"\x7fELF" + bytes(range(256)) * 400 + seed.encode()}, "zstd" if not docker else "gzip", docker=docker),
        make_layer({"var/lib/data": b"plain" * 1000 + seed.encode()}, "none", docker=docker),
    ]
    return make_image(layers, docker=docker, labels={"org.example.seed": seed or "none"})


def short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def set_config(cfg_file, text: str) -> None:
    cfg_file.write_text(text)


def test_pull_exact_output_and_verified_store(registry, unique_repo, store_root, cfg_file):
    set_config(cfg_file, "max-concurrent-downloads = 1\n")  # one at a time: a deterministic line order
    img = three_layer_image()
    push_image(registry.url, unique_repo, img, tag="v1")
    name = f"{registry.host}/{unique_repo}:v1"

    r = run("pull", name)
    assert r.code == 0, r.err
    ids = [short(l.digest) for l in img.layers]
    assert r.lines == [
        f"v1: Pulling from {unique_repo}",
        f"{ids[0]}: Pulling fs layer",
        f"{ids[1]}: Pulling fs layer",
        f"{ids[2]}: Pulling fs layer",
        f"{ids[1]}: Waiting",
        f"{ids[2]}: Waiting",
        f"{ids[0]}: Verifying Checksum",
        f"{ids[0]}: Download complete",
        f"{ids[0]}: Pull complete",
        f"{ids[1]}: Verifying Checksum",
        f"{ids[1]}: Download complete",
        f"{ids[1]}: Pull complete",
        f"{ids[2]}: Verifying Checksum",
        f"{ids[2]}: Download complete",
        f"{ids[2]}: Pull complete",
        f"Digest: {img.manifest_digest}",
        f"Status: Downloaded newer image for {name}",
        name,
    ]
    assert r.err == ""
    assert_store_verifies(store_root)
    expected = {img.manifest_digest, img.config_digest, *(l.digest for l in img.layers)}
    assert set(blob_files(store_root)) == expected
    assert image_ids(store_root) == {img.config_digest}

    con = sqlite3.connect(store_root / "index.db")
    size, csize, os_, arch = con.execute(
        "SELECT size, compressed_size, os, architecture FROM images WHERE id = ?", (img.config_digest,)
    ).fetchone()
    assert size == sum(l.uncompressed_size for l in img.layers)
    assert csize == sum(l.size for l in img.layers)
    assert (os_, arch) == ("linux", "amd64")
    assert con.execute("SELECT repository, tag, digest FROM tags").fetchall() == [
        (f"{registry.host}/{unique_repo}", "v1", img.manifest_digest)
    ]


def test_up_to_date_pull_fetches_only_the_manifest(registry_factory, store_root):
    reg = registry_factory()
    img = three_layer_image(seed="uptodate")
    push_image(reg.url, "app/uptodate", img, tag="latest")
    assert run("pull", f"{reg.host}/app/uptodate").code == 0
    before = {d: p.stat().st_mtime_ns for d, p in blob_files(store_root).items()}

    # Remove the layer and config blobs from the registry (the manifest stays servable).
    blobs = reg.storage / "docker" / "registry" / "v2" / "blobs" / "sha256"
    for d in [img.config_digest, *(l.digest for l in img.layers)]:
        hexd = d.split(":")[1]
        shutil.rmtree(blobs / hexd[:2] / hexd)

    r = run("pull", f"{reg.host}/app/uptodate")
    assert r.code == 0, r.err
    name = f"{reg.host}/app/uptodate:latest"
    assert r.lines == [
        "Using default tag: latest",
        "latest: Pulling from app/uptodate",  # no per-layer lines: docker skips the layers of an image it has
        f"Digest: {img.manifest_digest}",
        f"Status: Image is up to date for {name}",
        name,
    ]
    after = {d: p.stat().st_mtime_ns for d, p in blob_files(store_root).items()}
    assert after == before
    assert_store_verifies(store_root)


def test_docker_media_types(registry, unique_repo, store_root):
    img = three_layer_image(docker=True, seed="docker")
    assert img.manifest_media_type == "application/vnd.docker.distribution.manifest.v2+json"
    push_image(registry.url, unique_repo, img, tag="1.0")
    r = run("pull", "-q", f"{registry.host}/{unique_repo}:1.0")
    assert r.code == 0, r.err
    assert r.out == f"{registry.host}/{unique_repo}:1.0\n"
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


@pytest.fixture
def multiarch(registry, unique_repo):
    shared = make_layer({"bin/sh": b"#!shared\n" * 100}, "gzip")
    amd = make_image([shared, make_layer({"arch": "amd64"}, "gzip")], architecture="amd64")
    arm = make_image([shared, make_layer({"arch": "arm64"}, "zstd")], architecture="arm64", variant="v8")
    armv7 = make_image([make_layer({"arch": "armv7"}, "gzip")], architecture="arm", variant="v7")
    idx = make_index([amd, arm, armv7], attestation_for=True)
    push_image(registry.url, unique_repo, idx, tag="multi")
    return f"{registry.host}/{unique_repo}:multi", idx, amd, arm, armv7


def test_platform_default_picks_host(multiarch, store_root):
    name, idx, amd, arm, armv7 = multiarch
    r = run("pull", name)
    assert r.code == 0, r.err
    host = host_platform()
    want = {"amd64": amd, "arm64": arm}.get(host.architecture)
    if want is None:
        pytest.skip(f"no test image for host {host}")
    assert image_ids(store_root) == {want.config_digest}
    # The repo digest recorded is the index's, as docker records it.
    assert f"Digest: {idx.manifest_digest}" in r.lines
    # Attestation blobs are never fetched.
    for att in idx.attestations:
        assert att.manifest_digest not in blob_files(store_root)
    assert_store_verifies(store_root)


@pytest.mark.parametrize("platform,which", [("linux/arm64", 3), ("linux/arm64/v8", 3), ("linux/arm/v7", 4), ("linux/arm", 4), ("linux/amd64", 2)])
def test_platform_option(multiarch, store_root, platform, which):
    name = multiarch[0]
    want = multiarch[which]
    r = run("pull", "--platform", platform, name)
    assert r.code == 0, r.err
    assert image_ids(store_root) == {want.config_digest}
    con = sqlite3.connect(store_root / "index.db")
    arch = con.execute("SELECT architecture, variant FROM images").fetchone()
    assert arch[0] == platform.split("/")[1]


def test_platform_absent(multiarch, store_root):
    r = run("pull", "--platform", "linux/s390x", multiarch[0])
    assert r.code == 1
    assert r.err == "Error: no matching manifest for linux/s390x in the manifest list entries\n"
    assert not blob_files(store_root) or all(
        d not in blob_files(store_root) for d in [l.digest for l in multiarch[2].layers]
    )
    assert_store_verifies(store_root)


def test_platform_attestation_is_not_a_platform(multiarch, store_root):
    r = run("pull", "--platform", "unknown/unknown", multiarch[0])
    assert r.code == 1
    assert r.err == "Error: no matching manifest for unknown/unknown in the manifest list entries\n"


def test_bad_platform_is_usage_error(multiarch):
    r = run("pull", "--platform", "linux", multiarch[0])
    assert r.code == 2
    assert r.err == "Error: invalid platform 'linux': expected os/arch[/variant], e.g. linux/arm64\n"


def test_pull_by_digest_records_repo_digest(registry, unique_repo, store_root):
    img = three_layer_image(seed="bydigest")
    push_image(registry.url, unique_repo, img, tag="t")
    name = f"{registry.host}/{unique_repo}@{img.manifest_digest}"
    r = run("pull", name)
    assert r.code == 0, r.err
    assert r.lines[0] == f"{img.manifest_digest}: Pulling from {unique_repo}"
    assert r.lines[-2:] == [f"Status: Downloaded newer image for {name}", name]
    con = sqlite3.connect(store_root / "index.db")
    assert con.execute("SELECT repository, digest, image_id FROM digests").fetchall() == [
        (f"{registry.host}/{unique_repo}", img.manifest_digest, img.config_digest)
    ]
    assert con.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
    r = run("images", "--digests", "--format", "{{.Repository}} {{.Tag}} {{.Digest}}")
    assert r.out == f"{registry.host}/{unique_repo} <none> {img.manifest_digest}\n"


def test_pull_by_wrong_digest_is_refused(registry, unique_repo, store_root):
    img = three_layer_image(seed="wrongdigest")
    push_image(registry.url, unique_repo, img, tag="t")
    missing = "sha256:" + "0" * 64
    r = run("pull", f"{registry.host}/{unique_repo}@{missing}")
    assert r.code == 1
    assert r.err.startswith(f"Error: manifest for {registry.host}/{unique_repo}@{missing} not found: manifest unknown")
    assert not (store_root / "index.db").exists() or image_ids(store_root) == set()


def test_unknown_tag(registry, unique_repo, store_root):
    push_image(registry.url, unique_repo, three_layer_image(seed="unknown"), tag="v1")
    r = run("pull", f"{registry.host}/{unique_repo}:nope")
    assert r.code == 1
    assert r.out == ""
    assert r.err == f"Error: manifest for {registry.host}/{unique_repo}:nope not found: manifest unknown: manifest unknown\n"


@pytest.mark.parametrize(
    "name,message",
    [
        ("Foo", "invalid reference format: repository name (library/Foo) must be lowercase"),
        ("127.0.0.1:5000/Team/app", "invalid reference format: repository name (Team/app) must be lowercase"),
        ("ubuntu:", "invalid reference format"),
        ("a" * 256, "repository name must not be more than 255 characters"),
        ("0" * 64, f"invalid repository name ({'0' * 64}), cannot specify 64-byte hexadecimal strings"),
        ("ubuntu@sha256:abc", "invalid reference format"),
    ],
)
def test_bad_references(name, message, store_root):
    r = run("pull", name)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: {message}\n"
    assert not store_root.exists() or not blob_files(store_root)


def test_tag_with_all_tags_is_refused():
    r = run("pull", "-a", "127.0.0.1:1/x:tag")
    assert (r.code, r.err) == (2, "Error: tag can't be used with --all-tags/-a\n")


def test_all_tags(registry, unique_repo, store_root):
    imgs = {t: three_layer_image(seed=t) for t in ("1.0", "2.0", "latest")}
    for t, img in imgs.items():
        push_image(registry.url, unique_repo, img, tag=t)
    r = run("pull", "-a", f"{registry.host}/{unique_repo}")
    assert r.code == 0, r.err
    assert [l for l in r.lines if "Pulling from" in l] == [f"{t}: Pulling from {unique_repo}" for t in sorted(imgs)]
    assert r.lines[-2:] == [
        f"Status: Downloaded newer image for {registry.host}/{unique_repo}",
        f"{registry.host}/{unique_repo}",
    ]
    assert image_ids(store_root) == {i.config_digest for i in imgs.values()}
    r = run("images", "--format", "{{.Tag}}", f"{registry.host}/{unique_repo}")
    assert sorted(r.lines) == sorted(imgs)


def test_unreachable_registry(store_root):
    r = run("pull", "127.0.0.1:1/nothing/here")
    assert r.code == 1
    assert r.err == "Error: cannot reach registry 127.0.0.1:1 (GET http://127.0.0.1:1/v2/): connection refused\n"


def test_diff_id_mismatch_fails_and_records_nothing(registry, unique_repo, store_root):
    layer = make_layer({"f": "content"}, "gzip")
    img = make_image([layer], config_extra={"rootfs": {"type": "layers", "diff_ids": ["sha256:" + "1" * 64]}})
    push_image(registry.url, unique_repo, img, tag="bad")
    r = run("pull", f"{registry.host}/{unique_repo}:bad")
    assert r.code == 1
    assert r.err == f"Error: filesystem layer verification failed for digest {layer.digest}\n"
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root)


def test_config_layer_count_mismatch(registry, unique_repo, store_root):
    layer = make_layer({"f": "content"}, "gzip")
    img = make_image([layer], config_extra={"rootfs": {"type": "layers", "diff_ids": [layer.diff_id, layer.diff_id]}})
    push_image(registry.url, unique_repo, img, tag="bad")
    r = run("pull", f"{registry.host}/{unique_repo}:bad")
    assert r.code == 1
    assert r.err == f"Error: image config {img.config_digest} lists 2 layers, the manifest 1\n"
    assert image_ids(store_root) == set()


def test_tag_moves_old_image_dangles(registry, unique_repo, store_root):
    old, new = three_layer_image(seed="old"), three_layer_image(seed="new")
    name = f"{registry.host}/{unique_repo}:latest"
    push_image(registry.url, unique_repo, old, tag="latest")
    assert run("pull", name).code == 0
    push_image(registry.url, unique_repo, new, tag="latest")
    r = run("pull", name)
    assert r.code == 0
    assert r.lines[-2] == f"Status: Downloaded newer image for {name}"
    assert image_ids(store_root) == {old.config_digest, new.config_digest}
    r = run("images", "-a", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert sorted(r.lines) == sorted(
        [f"{registry.host}/{unique_repo}:latest {short(new.config_digest)}", f"<none>:<none> {short(old.config_digest)}"]
    )


@pytest.mark.slow
def test_realistic_image(registry, unique_repo, store_root):
    """Tens of MB and thousands of files across several layers, as the foundation issue asks."""
    layers = [
        make_random_layer(2500, 8000, seed=1, compression="gzip"),
        make_random_layer(1500, 6000, seed=2, compression="zstd"),
        make_random_layer(200, 20000, seed=3, compression="none"),
        make_layer({"etc/motd": "hello\n"}, "gzip"),
    ]
    img = make_image(layers)
    assert sum(l.uncompressed_size for l in layers) > 30_000_000
    push_image(registry.url, unique_repo, img, tag="big")
    r = run("pull", f"{registry.host}/{unique_repo}:big")
    assert r.code == 0, r.err
    assert_store_verifies(store_root)
    assert set(blob_files(store_root)) == {img.manifest_digest, img.config_digest, *(l.digest for l in layers)}
    r = run("images", "--no-trunc", "--format", "{{json .}}")
    row = json.loads(r.out)
    assert row["ID"] == img.config_digest
    r2 = run("pull", f"{registry.host}/{unique_repo}:big")
    assert r2.lines[-2] == f"Status: Image is up to date for {registry.host}/{unique_repo}:big"


def test_pull_off_a_terminal_does_not_load_the_progress_library(registry, unique_repo, store_root):
    import subprocess
    import sys

    push_image(registry.url, unique_repo, three_layer_image(seed="norich"), tag="t")
    code = (
        "import sys\n"
        "from imgctl.cli import main\n"
        "try:\n"
        f"    main(['pull', '{registry.host}/{unique_repo}:t'])\n"
        "except SystemExit as e:\n"
        "    assert e.code == 0, e.code\n"
        "loaded = sorted(m for m, mod in sys.modules.items() if mod is not None and m.split('.')[0] in ('rich', 'trio', 'anyio'))\n"
        "print('LOADED', loaded, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "LOADED []" in r.stderr, r.stderr
    assert r.stdout.endswith(f"{registry.host}/{unique_repo}:t\n")


def test_platform_option_checks_a_single_manifest_image(registry, unique_repo, store_root):
    img = three_layer_image(seed="single")  # linux/amd64, no index
    push_image(registry.url, unique_repo, img, tag="one")
    name = f"{registry.host}/{unique_repo}:one"
    r = run("pull", "--platform", "linux/arm64", name)
    assert r.code == 1
    assert r.err == (
        f"Error: image with reference {name} was found but does not match the specified platform: "
        "wanted linux/arm64/v8, actual: linux/amd64\n"
    )
    assert image_ids(store_root) == set()
    assert run("pull", "-q", "--platform", "linux/amd64", name).code == 0


def test_sha512_reference_is_a_clear_error(registry, unique_repo, store_root):
    name = f"{registry.host}/{unique_repo}@sha512:" + "a" * 128
    r = run("pull", name)
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: cannot pull {name}: only sha256 digests are supported by the store\n"
