"""Tests of the test infrastructure itself: the registry is real, images are real."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import re
import socket
import tarfile

import httpx
import pytest
import zstandard

from tests.support.images import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_LAYER_GZIP,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    IN_TOTO,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER,
    OCI_LAYER_GZIP,
    OCI_LAYER_ZSTD,
    OCI_MANIFEST,
    directory,
    file,
    get_blob,
    get_manifest,
    make_image,
    make_index,
    make_layer,
    make_random_layer,
    opaque,
    push_blob,
    push_image,
    push_raw_manifest,
    sha256_digest,
    symlink,
    whiteout,
)
from tests.support.registry import Registry, RegistryBinaryMissing, make_htpasswd, make_self_signed_cert

REPO_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*$")


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _client(reg, **kw) -> httpx.Client:
    return httpx.Client(base_url=reg.url, trust_env=False, timeout=30, **kw)


def _decompress(layer, data: bytes) -> bytes:
    if layer.media_type.endswith("gzip"):
        return gzip.decompress(data)
    if layer.media_type.endswith("zstd"):
        return zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)).read()
    return data


# ---------------------------------------------------------------- layers
def test_layer_entries_deterministic_and_typed():
    files = {
        "usr/bin/tool": (b"#!/bin/sh\necho hi\n", 0o755),
        "usr": None,
        "usr/bin": ("dir",),
        "bin": ("symlink", "usr/bin"),
        "etc/gone": ("whiteout",),
        "var/cache": ("opaque",),
        "etc/hostname": b"box\n",
    }
    a = make_layer(files)
    b = make_layer(dict(reversed(list(files.items()))))
    assert a.digest == b.digest and a.diff_id == b.diff_id
    assert a.size == len(a.data) and a.uncompressed_size == len(a.tar)
    assert a.digest == _sha(a.data) and a.diff_id == _sha(gzip.decompress(a.data))
    members = {m.name: m for m in a.members()}
    assert list(members) == sorted(members)
    assert members["usr/bin/tool"].mode == 0o755 and members["usr/bin/tool"].isfile()
    assert members["usr"].isdir() and members["usr/bin"].isdir()
    assert members["bin"].issym() and members["bin"].linkname == "usr/bin"
    assert "etc/.wh.gone" in members and "var/cache/.wh..wh..opq" in members
    assert all(m.mtime == 0 and m.uid == 0 and m.gid == 0 for m in members.values())

    listed = make_layer(
        [directory("d", mode=0o700), file("d/x", "text"), symlink("l", "/d/x"), whiteout("d/y"), opaque("e")],
        compression="zstd",
    )
    names = [m.name for m in listed.members()]
    assert names == ["d", "d/.wh.y", "d/x", "e/.wh..wh..opq", "l"]
    assert listed.media_type == OCI_LAYER_ZSTD


@pytest.mark.parametrize(
    "compression,docker,media_type",
    [
        ("gzip", False, OCI_LAYER_GZIP),
        ("zstd", False, OCI_LAYER_ZSTD),
        ("none", False, OCI_LAYER),
        ("gzip", True, DOCKER_LAYER_GZIP),
        ("none", True, DOCKER_LAYER),
    ],
)
def test_layer_media_types_and_compression(compression, docker, media_type):
    layer = make_layer({"a": b"a" * 1000}, compression, docker=docker)
    assert layer.media_type == media_type
    assert _decompress(layer, layer.data) == layer.tar
    assert layer.diff_id == _sha(layer.tar)
    if compression == "none":
        assert layer.digest == layer.diff_id
    else:
        assert layer.size < layer.uncompressed_size


def test_docker_zstd_is_rejected():
    with pytest.raises(ValueError):
        make_layer({"a": b"x"}, "zstd", docker=True)


def test_random_layer_deterministic_and_counted():
    a = make_random_layer(300, 2048, seed=7)
    b = make_random_layer(300, 2048, seed=7)
    c = make_random_layer(300, 2048, seed=8)
    assert a.data == b.data and a.digest == b.digest
    assert c.digest != a.digest
    regular = [m for m in a.members() if m.isfile()]
    assert len(regular) == 300
    assert 300 * 2048 * 0.8 < sum(m.size for m in regular) < 300 * 2048 * 1.2
    z = make_random_layer(300, 2048, seed=7, compression="zstd")
    assert z.diff_id == a.diff_id


@pytest.mark.slow
def test_random_layer_big():
    layer = make_random_layer(4000, 8192, seed=1)
    assert layer.uncompressed_size > 30_000_000
    assert sum(1 for m in layer.members() if m.isfile()) == 4000


# ---------------------------------------------------------------- pushing
def test_push_oci_image_roundtrip(registry, unique_repo):
    layers = [
        make_layer({"etc/os-release": b"ID=test\n", "bin": None}, "gzip"),
        make_layer({"usr/share/data": b"z" * 5000}, "zstd"),
        make_layer({"opt/plain": b"plain\n", "etc/.wh.os-release": b""}, "none"),
    ]
    img = make_image(layers, labels={"org.example": "yes"})
    assert img.manifest_media_type == OCI_MANIFEST
    assert json.loads(img.config_bytes)["rootfs"]["diff_ids"] == [l.diff_id for l in layers]
    digest = push_image(registry.url, unique_repo, img, tag="v1")
    assert digest == img.manifest_digest

    with _client(registry) as c:
        r = c.get(f"/v2/{unique_repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
        assert r.status_code == 200
        assert r.content == img.manifest_bytes
        assert r.headers["Docker-Content-Digest"] == img.manifest_digest
        assert r.headers["Content-Type"] == OCI_MANIFEST
        manifest = r.json()
        assert manifest["config"]["mediaType"] == OCI_CONFIG
        assert [l["mediaType"] for l in manifest["layers"]] == [OCI_LAYER_GZIP, OCI_LAYER_ZSTD, OCI_LAYER]
        config = c.get(f"/v2/{unique_repo}/blobs/{img.config_digest}").content
        assert _sha(config) == img.config_digest and config == img.config_bytes
        for layer, desc in zip(layers, manifest["layers"]):
            blob = c.get(f"/v2/{unique_repo}/blobs/{desc['digest']}").content
            assert _sha(blob) == layer.digest == desc["digest"]
            assert len(blob) == desc["size"]
            assert _sha(_decompress(layer, blob)) == layer.diff_id
        tags = c.get(f"/v2/{unique_repo}/tags/list").json()
        assert tags == {"name": unique_repo, "tags": ["v1"]}

    # pushing again is a no-op for blobs and idempotent for the manifest
    assert push_image(registry, unique_repo, img, tag="v1") == digest


def test_push_docker_image(registry, unique_repo):
    layers = [
        make_layer({"hello": b"world\n"}, "gzip", docker=True),
        make_layer({"raw": b"raw\n"}, "none", docker=True),
    ]
    img = make_image(layers, docker=True, cmd=["/hello"])
    push_image(registry.url, unique_repo, img, tag="latest")
    r = get_manifest(registry.url, unique_repo, "latest", accept=DOCKER_MANIFEST)
    assert r.headers["Content-Type"] == DOCKER_MANIFEST
    assert r.content == img.manifest_bytes
    m = r.json()
    assert m["mediaType"] == DOCKER_MANIFEST
    assert m["config"]["mediaType"] == DOCKER_CONFIG
    assert [l["mediaType"] for l in m["layers"]] == [DOCKER_LAYER_GZIP, DOCKER_LAYER]
    blob = get_blob(registry.url, unique_repo, layers[0].digest)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as t:
        assert t.extractfile("hello").read() == b"world\n"
    cfg = json.loads(get_blob(registry.url, unique_repo, img.config_digest))
    assert cfg["config"]["Cmd"] == ["/hello"] and cfg["os"] == "linux"


@pytest.mark.parametrize("docker", [False, True], ids=["oci-index", "docker-list"])
def test_push_multiarch_index_with_attestation(registry, unique_repo, docker):
    amd = make_image([make_layer({"arch": b"amd64"}, docker=docker)], docker=docker)
    arm = make_image(
        [make_layer({"arch": b"arm64"}, docker=docker)], architecture="arm64", variant="v8", docker=docker
    )
    idx = make_index([amd, arm], docker=docker, attestation_for=amd)
    digest = push_image(registry.url, unique_repo, idx, tag="multi")
    assert digest == idx.manifest_digest

    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    r = get_manifest(registry.url, unique_repo, "multi", accept=media_type)
    assert r.headers["Content-Type"] == media_type
    assert r.headers["Docker-Content-Digest"] == idx.manifest_digest
    index = r.json()
    platforms = [(e["platform"]["os"], e["platform"]["architecture"], e["platform"].get("variant")) for e in index["manifests"]]
    assert platforms == [("linux", "amd64", None), ("linux", "arm64", "v8"), ("unknown", "unknown", None)]
    att = index["manifests"][2]
    assert att["mediaType"] == OCI_MANIFEST
    assert att["annotations"] == {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": amd.manifest_digest,
    }
    assert idx.image_for("linux", "arm64") is arm and idx.attestations[0].manifest_digest == att["digest"]

    with _client(registry) as c:
        for entry, child in zip(index["manifests"], idx.manifests):
            r = c.get(f"/v2/{unique_repo}/manifests/{entry['digest']}", headers={"Accept": entry["mediaType"]})
            assert r.status_code == 200 and r.content == child.manifest_bytes
            assert _sha(r.content) == entry["digest"] and len(r.content) == entry["size"]
        att_manifest = c.get(
            f"/v2/{unique_repo}/manifests/{att['digest']}", headers={"Accept": OCI_MANIFEST}
        ).json()
        assert att_manifest["layers"][0]["mediaType"] == IN_TOTO
        statement = c.get(f"/v2/{unique_repo}/blobs/{att_manifest['layers'][0]['digest']}").json()
        assert statement["subject"][0]["digest"]["sha256"] == amd.manifest_digest.split(":")[1]


def test_push_blob_chunked_and_raw_manifest(registry, unique_repo):
    data = os.urandom(100_000)
    assert push_blob(registry.url, unique_repo, data, chunk_size=30_000) == _sha(data)
    assert get_blob(registry.url, unique_repo, _sha(data)) == data
    # a wrong digest is refused by the registry
    with pytest.raises(httpx.HTTPStatusError):
        push_blob(registry.url, unique_repo, b"abc", digest=_sha(b"abd"))
    # odd (but valid) manifest bytes are stored exactly
    img = make_image([make_layer({"a": b"1"})])
    push_image(registry.url, unique_repo, img)  # by digest, no tag
    odd = json.dumps(img.manifest, indent=7).encode()
    d = push_raw_manifest(registry.url, unique_repo, "odd", odd, OCI_MANIFEST)
    assert d == sha256_digest(odd) != img.manifest_digest
    assert get_manifest(registry, unique_repo, "odd").content == odd


# ---------------------------------------------------------------- servers
def test_two_registries_distinct_ports_and_stop():
    a, b = Registry(), Registry()
    with a, b:
        assert a.port != b.port and a.host != b.host
        assert a.url == f"http://127.0.0.1:{a.port}"
        for reg in (a, b):
            assert httpx.get(f"{reg.url}/v2/", trust_env=False).status_code == 200
        pids = [a.pid, b.pid]
        ports = [a.port, b.port]
    for reg, pid, port in zip((a, b), pids, ports):
        assert not reg.running
        assert reg.proc.returncode is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        assert reg.dir is None or not reg.dir.exists()


def test_registry_factory_htpasswd(registry_factory, tmp_path, unique_repo):
    pw = make_htpasswd(tmp_path / "htpasswd", {"alice": "s3cret"})
    reg = registry_factory(htpasswd=pw)
    assert "htpasswd" in reg.config_path.read_text()
    with _client(reg) as c:
        r = c.get("/v2/")
        assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
        assert c.get("/v2/", auth=("alice", "s3cret")).status_code == 200
        assert c.get("/v2/", auth=("alice", "nope")).status_code == 401
    img = make_image([make_layer({"a": b"auth"})])
    push_image(reg.url, unique_repo, img, tag="t", auth=("alice", "s3cret"))
    assert get_manifest(reg.url, unique_repo, "t", auth=("alice", "s3cret")).content == img.manifest_bytes


def test_registry_factory_tls(registry_factory, tmp_path, unique_repo):
    cert, key = make_self_signed_cert(tmp_path / "tls")
    reg = registry_factory(tls=(cert, key))
    assert reg.url.startswith("https://127.0.0.1:")
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{reg.url}/v2/", trust_env=False)  # untrusted cert
    img = make_image([make_layer({"a": b"tls"})])
    push_image(reg.url, unique_repo, img, tag="t", verify=str(cert))
    assert get_manifest(reg.url, unique_repo, "t", verify=str(cert)).content == img.manifest_bytes


def test_registry_factory_pull_through_proxy(registry, registry_factory, unique_repo):
    img = make_image([make_layer({"cached": b"yes"})])
    push_image(registry.url, unique_repo, img, tag="p")
    proxy = registry_factory(proxy_remoteurl=registry.url)
    assert proxy.port != registry.port
    r = get_manifest(proxy.url, unique_repo, "p")
    assert r.content == img.manifest_bytes
    assert get_blob(proxy.url, unique_repo, img.layers[0].digest) == img.layers[0].data


def test_registry_extra_config_and_restart(registry_factory, unique_repo):
    reg = registry_factory(extra={"storage": {"delete": {"enabled": False}}})
    assert json.loads(reg.config_path.read_text())["storage"]["delete"] == {"enabled": False}
    img = make_image([make_layer({"a": b"keep"})])
    push_image(reg, unique_repo, img, tag="k")
    with _client(reg) as c:
        assert c.delete(f"/v2/{unique_repo}/manifests/{img.manifest_digest}").status_code == 405
    reg.restart()  # same storage, data survives
    assert get_manifest(reg, unique_repo, "k").content == img.manifest_bytes


def test_registry_startup_failure_reports_output(tmp_path):
    reg = Registry(extra={"storage": {"filesystem": {"rootdirectory": None}, "nosuchdriver": {}}})
    with pytest.raises(Exception) as info:
        reg.start()
    assert "docker-registry" in str(info.value) and "registry output" in str(info.value)
    assert not reg.running


def test_missing_binary_fails_not_skips(monkeypatch, tmp_path):
    from tests import conftest

    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RegistryBinaryMissing, match="README"):
        Registry().start()
    with pytest.raises(pytest.fail.Exception, match="README"):
        conftest._start_registry()


# ---------------------------------------------------------------- fixtures
def test_unique_repo_valid_and_fresh(unique_repo, repo_factory):
    others = {repo_factory(), repo_factory("Second Repo!")}
    assert unique_repo not in others and len(others) == 2
    for name in {unique_repo, *others}:
        assert name == name.lower() and len(name) < 255
        assert all(REPO_COMPONENT.match(part) for part in name.split("/")), name


def test_env_isolated(store_root, cfg_file, tmp_path, isolated_env):
    assert os.environ["IMGCTL_ROOT"] == str(store_root) == str(tmp_path / "root")
    assert os.environ["IMGCTL_CONFIG"] == str(cfg_file)
    assert cfg_file.read_text() == "" and not store_root.exists()
    for var in ("HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR"):
        assert os.environ[var].startswith(str(tmp_path)), var
    assert os.path.expanduser("~") == str(tmp_path / "home")


def test_registry_retries_when_port_taken(monkeypatch):
    from tests.support import registry as registry_mod

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    ports = iter([busy.getsockname()[1]])
    real_free_port = registry_mod.free_port
    monkeypatch.setattr(registry_mod, "free_port", lambda: next(ports, None) or real_free_port())
    try:
        with Registry() as reg:
            assert reg.port != busy.getsockname()[1]
            assert "address already in use" in (reg.dir / "stderr-1.log").read_text()
    finally:
        busy.close()
