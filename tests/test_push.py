"""`imgctl push` to real registries: HEAD skip, cross-repository mount, uploads, manifest PUT."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess

import pytest
from tests.support.cli import run
from tests.support.images import get_blob, get_manifest, make_image, make_layer, push_image
from tests.support.registry import make_htpasswd
from tests.support.storecheck import assert_store_verifies, image_ids

SKOPEO = shutil.which("skopeo")


def short(d: str) -> str:
    return d.split(":", 1)[1][:12]


def skopeo_inspect(ref: str) -> dict:
    p = subprocess.run([SKOPEO, "inspect", "--tls-verify=false", f"docker://{ref}"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.fixture
def pulled(registry, repo_factory):
    img = make_image([make_layer({"etc": None, "etc/a": "a" * 3000}), make_layer({"b": b"b" * 7000}, "zstd")])
    src = repo_factory("src")
    push_image(registry.url, src, img, tag="v1")
    name = f"{registry.host}/{src}:v1"
    assert run("pull", "-q", name).code == 0
    return img, name, src


def test_push_mounts_then_skips(registry, repo_factory, pulled, tmp_path):
    img, name, src = pulled
    dst = repo_factory("dst")
    target = f"{registry.host}/{dst}:v2"
    assert run("tag", name, target).code == 0
    top, bottom = short(img.layers[1].digest), short(img.layers[0].digest)
    r = run("push", target)
    assert (r.code, r.err) == (0, ""), r.err
    assert r.lines == [
        f"The push refers to repository [{registry.host}/{dst}]",
        f"{top}: Preparing",
        f"{bottom}: Preparing",
        f"{top}: Mounted from {src}",
        f"{bottom}: Mounted from {src}",
        f"v2: digest: {img.manifest_digest} size: {len(img.manifest_bytes)}",
    ]
    assert get_manifest(registry.url, dst, "v2").content == img.manifest_bytes
    assert get_blob(registry.url, dst, img.config_digest) == img.config_bytes

    r = run("image", "push", target)
    assert r.lines[3:] == [
        f"{top}: Layer already exists",
        f"{bottom}: Layer already exists",
        f"v2: digest: {img.manifest_digest} size: {len(img.manifest_bytes)}",
    ]
    # the tag now carries its repo digest, as after a pull
    r = run("inspect", "-f", "{{json .RepoDigests}}", target)
    assert json.loads(r.out) == sorted([f"{registry.host}/{dst}@{img.manifest_digest}", f"{registry.host}/{src}@{img.manifest_digest}"])

    if SKOPEO:
        info = skopeo_inspect(target)
        assert info["Digest"] == img.manifest_digest
        assert info["Layers"] == [l.digest for l in img.layers]
    # a fresh store pulls back exactly what was pushed
    fresh = tmp_path / "fresh"
    r = run("--root", fresh, "pull", "-q", target)
    assert r.code == 0, r.err
    assert image_ids(fresh) == {img.config_digest}
    assert run("--root", fresh, "inspect", "-f", "{{.Descriptor.digest}}", target).out == f"{img.manifest_digest}\n"
    assert_store_verifies(fresh)


def test_push_uploads_to_another_registry(registry_factory, pulled, tmp_path):
    """A loaded image (uncompressed layers) to a registry that has nothing: every blob is uploaded."""
    img, name, _ = pulled
    archive = tmp_path / "img.tar"
    assert run("save", "-o", archive, name).code == 0
    other_root = tmp_path / "loaded"
    assert run("--root", other_root, "load", "-i", archive).code == 0
    second = registry_factory()
    target = f"{second.host}/team/copy:1.0"
    assert run("--root", other_root, "tag", name, target).code == 0
    r = run("--root", other_root, "push", target)
    assert r.code == 0, r.err
    lines = r.lines
    assert lines[0] == f"The push refers to repository [{second.host}/team/copy]"
    assert sorted(l.split(": ", 1)[1] for l in lines[1:-1]) == ["Preparing", "Preparing", "Pushed", "Pushed"]
    manifest_digest = lines[-1].split()[2]
    raw = get_manifest(second.url, "team/copy", "1.0")
    assert raw.headers["Docker-Content-Digest"] == manifest_digest
    doc = json.loads(raw.content)
    assert doc["config"]["digest"] == img.config_digest
    assert [l["digest"] for l in doc["layers"]] == [l.diff_id for l in img.layers]  # uncompressed, as loaded
    if SKOPEO:
        assert skopeo_inspect(target)["Digest"] == manifest_digest
    fresh = tmp_path / "fresh"
    assert run("--root", fresh, "pull", "-q", target).code == 0
    assert image_ids(fresh) == {img.config_digest}
    r = run("--root", fresh, "export", "-o", tmp_path / "a.tar", target)
    r2 = run("export", "-o", tmp_path / "b.tar", name)
    assert r.code == r2.code == 0
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
    # push -a: every tag of the repository
    assert run("--root", other_root, "tag", target, f"{second.host}/team/copy:latest").code == 0
    r = run("--root", other_root, "push", "-a", "-q", f"{second.host}/team/copy")
    assert r.out == f"{second.host}/team/copy:1.0\n{second.host}/team/copy:latest\n", r.err


def test_push_errors(registry, registry_factory, pulled, tmp_path, isolated_env):
    img, name, src = pulled
    r = run("push", f"{registry.host}/nothing/here:1")
    assert (r.code, r.err) == (1, f"Error: An image does not exist locally with the tag: {registry.host}/nothing/here\n")
    r = run("push", "-a", name)
    assert (r.code, r.err) == (2, "Error: tag can't be used with --all-tags/-a\n")

    htpasswd = make_htpasswd(tmp_path / "htpasswd", {"alice": "s3cret"})
    locked = registry_factory(htpasswd=htpasswd)
    target = f"{locked.host}/team/app:1"
    assert run("tag", name, target).code == 0
    r = run("push", target)
    assert r.code == 1
    assert r.err.startswith("Error: denied: requested access to the resource is denied"), r.err

    auth = isolated_env["XDG_CONFIG_HOME"] / "imgctl" / "auth.json"
    auth.parent.mkdir(parents=True, exist_ok=True)
    auth.write_text(json.dumps({"auths": {locked.host: {"auth": base64.b64encode(b"alice:s3cret").decode()}}}))
    auth.chmod(0o600)
    r = run("push", target)
    assert r.code == 0, r.err
    assert r.lines[-1] == f"1: digest: {img.manifest_digest} size: {len(img.manifest_bytes)}"
    assert sum(1 for l in r.lines if l.endswith(": Pushed")) == 2
