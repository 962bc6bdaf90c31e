"""Mirrors for every registry: real pull-through caches, broken mirrors, resume across endpoints.

The "registry" is always a real docker-registry; mirrors are a real docker-registry in
proxy mode or the scripted relays of ``faultyserver`` (broken on purpose, in one way each).
"""

from __future__ import annotations

import random
import re

import pytest
from tests.support.cli import run
from tests.support.faultyserver import FaultyServer, dead_url
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

from imgctl.config import Config, load_config
from imgctl.errors import ConfigError, ManifestUnknown
from imgctl.registry import RegistryClient


def sample_image(seed: str):
    """Three layers, one of them ~300 kB of incompressible bytes so that streams can break mid-way."""
    rng = random.Random(seed)
    noise = bytes(rng.getrandbits(8) for _ in range(300_000))
    layers = [
        make_layer({"etc/motd": f"hello {seed}\n"}, "gzip"),
        make_layer({"opt/blob.bin": noise}, "gzip"),
        make_layer({"usr/share/doc": (seed.encode() + b" docs ") * 5000}, "zstd"),
    ]
    return make_image(layers, labels={"seed": seed})


def all_digests(img) -> set[str]:
    return {img.manifest_digest, img.config_digest, *(l.digest for l in img.layers)}


def mirrors_for(cfg_file, host: str, *urls: str) -> None:
    quoted = ", ".join(f'"{u}"' for u in urls)
    cfg_file.write_text(f'[registries."{host}"]\nmirrors = [{quoted}]\n')


def assert_pulled(r, store_root, img, name: str) -> None:
    assert r.code == 0, r.err
    assert r.out.splitlines()[-1] == name
    assert_store_verifies(store_root)
    assert set(blob_files(store_root)) == all_digests(img)  # one verified copy of every blob
    assert image_ids(store_root) == {img.config_digest}


def served_lines(err: str) -> list[str]:
    return [l for l in err.splitlines() if "served by" in l]


# -- a real pull-through cache ------------------------------------------------------------
def test_proxy_registry_as_mirror_of_another_registry(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    cache = registry_factory(proxy_remoteurl=upstream.url)
    img = sample_image("proxy")
    push_image(upstream.url, "team/app", img, tag="v1")
    mirrors_for(cfg_file, upstream.host, cache.url)

    name = f"{upstream.host}/team/app:v1"
    r = run("--debug", "pull", name)
    assert_pulled(r, store_root, img, name)
    lines = served_lines(r.err)
    assert lines and all(f"mirror {cache.url}" in l for l in lines), r.err
    assert len([l for l in lines if l.startswith("DEBU[imgctl] blob ")]) == 4  # config + 3 layers
    # The cache really cached what it served: the blobs reach its storage (it commits them
    # in the background, after serving them), and it serves the image on its own.
    cache.wait_for_blobs([img.config_digest, *(l.digest for l in img.layers)])
    upstream.stop()
    r = run("--root", store_root.parent / "second-root", "pull", "-q", name)
    assert r.code == 0, r.err
    assert_store_verifies(store_root.parent / "second-root")
    assert image_ids(store_root.parent / "second-root") == {img.config_digest}


def test_docker_hub_mirror_with_path_prefix_keeps_the_canonical_name(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    img = sample_image("hub")
    push_image(upstream.url, "library/hubimage", img, tag="3.1")
    with FaultyServer("pass", upstream=upstream.url, prefix="/hub") as mirror:
        cfg_file.write_text(f'registry-mirrors = ["{dead_url()}", "{mirror.url}"]\n')
        r = run("--debug", "pull", "hubimage:3.1")
        assert_pulled(r, store_root, img, "docker.io/library/hubimage:3.1")
        assert "registry-1.docker.io" not in r.err  # the mirror served everything
        assert all(p["path"].startswith("/hub/v2/") for p in mirror.requests)
        assert mirror.seen("/hub/v2/library/hubimage/manifests/3.1")
    r = run("images", "--format", "{{.Repository}}:{{.Tag}}")
    assert r.out == "hubimage:3.1\n"


def test_registry_mirror_option_for_one_pull(registry_factory, store_root):
    upstream = registry_factory()
    img = sample_image("option")
    push_image(upstream.url, "team/opt", img, tag="v1")
    with FaultyServer("error500") as broken, FaultyServer("pass", upstream=upstream.url) as good:
        name = f"{upstream.host}/team/opt:v1"
        r = run("--debug", "pull", "--registry-mirror", broken.url, "--registry-mirror", good.url, name)
        assert_pulled(r, store_root, img, name)
        assert broken.requests and good.seen("/blobs/")
        assert all(f"mirror {good.url}" in l for l in served_lines(r.err))


def test_registry_mirror_option_rejects_a_bad_url():
    r = run("pull", "--registry-mirror", "ftp://cache.example", "busybox")
    assert r.code == 2
    assert "--registry-mirror: invalid mirror URL 'ftp://cache.example'" in r.err


# -- broken mirrors -------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["dead", "error500", "truncate", "corrupt", "norange"])
def test_a_broken_mirror_falls_through_to_the_registry(fault, registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    img = sample_image(fault)
    push_image(upstream.url, "team/fault", img, tag="v1")
    server = None if fault == "dead" else FaultyServer(fault, upstream=upstream.url)
    try:
        mirror = dead_url() if server is None else server.url
        mirrors_for(cfg_file, upstream.host, mirror)
        name = f"{upstream.host}/team/fault:v1"
        r = run("--debug", "pull", name)
        assert_pulled(r, store_root, img, name)
        if fault in ("dead", "error500", "corrupt"):
            # Nothing that mirror sent was usable: the registry served every blob.
            assert f"mirror {mirror} failed" in r.err
            blobs = [l for l in served_lines(r.err) if " blob " in l]
            assert len(blobs) == 4 and all(l.endswith(f"served by registry {upstream.host} (bytes 0-{l.split()[-1][:-1].split('-')[1]})") for l in blobs), r.err
    finally:
        if server is not None:
            server.stop()


def test_chain_of_broken_mirrors_then_a_working_one(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    img = sample_image("chain")
    push_image(upstream.url, "team/chain", img, tag="v1")
    with FaultyServer("error500") as e500, FaultyServer("truncate", upstream=upstream.url) as cut, \
            FaultyServer("corrupt", upstream=upstream.url) as wrong, \
            FaultyServer("pass", upstream=upstream.url, prefix="/cache") as good:
        mirrors_for(cfg_file, upstream.host, dead_url(), e500.url, wrong.url, cut.url, good.url)
        name = f"{upstream.host}/team/chain:v1"
        r = run("--debug", "pull", name)
        assert_pulled(r, store_root, img, name)
        assert "Status: Downloaded newer image" in r.out
        # The corrupt mirror's manifest was refused (digest announced by its upstream).
        assert re.search(rf"mirror {re.escape(wrong.url)} failed: manifest .* does not match the digest", r.err)


def test_all_endpoints_failing_reports_the_registry_error_and_the_mirrors(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    dead = dead_url()
    with FaultyServer("error500") as e500:
        mirrors_for(cfg_file, upstream.host, dead, e500.url)
        r = run("pull", f"{upstream.host}/team/nothing:v1")
    assert r.code == 1
    err = r.err.strip()
    assert err.startswith(f"Error: manifest for {upstream.host}/team/nothing:v1 not found: manifest unknown")
    assert f"(mirrors failed too: {dead}: " in err and f"{e500.url}: manifest " in err
    assert "HTTP 500" in err
    assert_store_verifies(store_root)


# -- resume ------------------------------------------------------------------------------------
def layer_requests(server: FaultyServer, digest: str) -> list[dict]:
    return server.seen(f"/blobs/{digest}")


def test_broken_stream_resumes_with_range_and_continues_at_the_next_endpoint(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    img = sample_image("resume")
    push_image(upstream.url, "team/resume", img, tag="v1")
    big = img.layers[1]
    with FaultyServer("truncate", upstream=upstream.url) as cut, FaultyServer("pass", upstream=upstream.url) as good:
        mirrors_for(cfg_file, upstream.host, cut.url, good.url)
        name = f"{upstream.host}/team/resume:v1"
        r = run("--debug", "pull", name)
        assert_pulled(r, store_root, img, name)

        tries = layer_requests(cut, big.digest)
        assert [t["headers"].get("range") for t in tries][:1] == [None]
        assert len(tries) == 3  # resumed twice at the same mirror while it made progress
        offsets = [0]
        for t in tries[1:]:
            m = re.fullmatch(r"bytes=(\d+)-", t["headers"]["range"])
            assert m, t
            offsets.append(int(m.group(1)))
        assert offsets == sorted(set(offsets)) and offsets[1] == tries[0]["sent"]
        received_at_cut = sum(t["sent"] for t in tries)

        rest = layer_requests(good, big.digest)
        assert len(rest) == 1
        assert rest[0]["headers"]["range"] == f"bytes={received_at_cut}-"
        assert rest[0]["status"] == 206
        # Not one byte fetched twice.
        assert received_at_cut + rest[0]["sent"] == big.size
        assert f"mirror {good.url} (bytes {received_at_cut}-{big.size - 1})" in r.err


def test_range_ignored_means_start_over(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    img = sample_image("norange")
    push_image(upstream.url, "team/norange", img, tag="v1")
    big = img.layers[1]
    with FaultyServer("truncate", upstream=upstream.url) as cut, FaultyServer("norange", upstream=upstream.url) as full:
        mirrors_for(cfg_file, upstream.host, cut.url, full.url)
        name = f"{upstream.host}/team/norange:v1"
        r = run("--debug", "pull", name)
        assert_pulled(r, store_root, img, name)
        [req] = layer_requests(full, big.digest)
        assert req["headers"]["range"].startswith("bytes=") and req["status"] == 200
        assert req["sent"] == big.size
        assert f"mirror {full.url} ignored the Range request; starting over" in r.err


def test_a_hanging_mirror_times_out_and_moves_on(registry_factory):
    upstream = registry_factory()
    img = sample_image("hang")
    push_image(upstream.url, "team/hang", img, tag="v1")
    logs: list[str] = []
    with FaultyServer("hang") as hang:
        cfg = Config(registries={upstream.host: (hang.url,)})
        with RegistryClient(cfg, timeout=0.5, log=logs.append) as client:
            fm = client.get_manifest(upstream.host, "team/hang", "v1", display="team/hang:v1")
            assert fm.digest == img.manifest_digest
            # Once unreachable, the mirror is not asked again in this run.
            n = len(hang.requests)
            assert client.get_blob(upstream.host, "team/hang", img.config_digest, len(img.config_bytes)) == img.config_bytes
            assert len(hang.requests) == n
    assert any("timed out" in l for l in logs), logs


def test_tags_come_from_the_mirror(registry_factory, store_root, cfg_file):
    upstream = registry_factory()
    for tag in ("a", "b"):
        push_image(upstream.url, "team/tags", sample_image(f"tags-{tag}"), tag=tag)
    with FaultyServer("pass", upstream=upstream.url, prefix="/p") as mirror:
        cfg = Config(registries={upstream.host: (mirror.url,)})
        with RegistryClient(cfg) as client:
            assert sorted(client.list_tags(upstream.host, "team/tags", display="team/tags")) == ["a", "b"]
        assert mirror.seen("/p/v2/team/tags/tags/list")


def test_manifest_unknown_at_a_mirror_moves_on(registry_factory):
    upstream = registry_factory()
    empty = registry_factory()  # a mirror that knows nothing
    img = sample_image("unknown")
    push_image(upstream.url, "team/unknown", img, tag="v1")
    logs: list[str] = []
    with RegistryClient(Config(registries={upstream.host: (empty.url,)}), log=logs.append) as client:
        assert client.get_manifest(upstream.host, "team/unknown", "v1", display="x").digest == img.manifest_digest
        with pytest.raises(ManifestUnknown):
            client.get_manifest(upstream.host, "team/unknown", "nope", display="x")
    assert any(f"mirror {empty.url} failed: manifest for x not found" in l for l in logs)


# -- rules ------------------------------------------------------------------------------------------
def test_mirrors_are_never_used_for_writes(registry_factory):
    upstream = registry_factory()
    with FaultyServer("challenge") as mirror:
        cfg = Config(registries={upstream.host: (mirror.url,)}, registry_mirrors=(mirror.url,))
        with RegistryClient(cfg, mirrors=(mirror.url,)) as client:
            assert [e.url for e in client.endpoints(upstream.host)] == [mirror.url, f"https://{upstream.host}"]
            assert [e.url for e in client.endpoints(upstream.host, mirrors=False)] == [f"https://{upstream.host}"]
            with client._request("POST", upstream.host, "/v2/team/push/blobs/uploads/", "repository:team/push:pull,push") as resp:
                assert resp.status_code == 202
        assert mirror.requests == []


def test_plain_http_mirror_is_refused_unless_loopback_or_insecure(registry_factory):
    upstream = registry_factory()
    img = sample_image("plain")
    push_image(upstream.url, "team/plain", img, tag="v1")
    logs: list[str] = []
    cfg = Config(registries={upstream.host: ("http://mirror.example.invalid/x",)})
    with RegistryClient(cfg, log=logs.append) as client:
        assert client.get_manifest(upstream.host, "team/plain", "v1", display="x").digest == img.manifest_digest
    assert any("plain HTTP is only used for loopback addresses and insecure-registries" in l for l in logs), logs


def test_mirror_configuration(cfg_file, tmp_path):
    cfg_file.write_text(
        'registry-mirrors = ["https://hub.example/cache/"]\n'
        'certs-dir = "certs"\n'
        '[registries."quay.io"]\nmirrors = ["https://q1.example", "http://127.0.0.1:5000/quay"]\n'
        '[registries."index.docker.io"]\nmirrors = ["https://hub2.example"]\n'
    )
    cfg = load_config(cfg_file)
    assert cfg.mirrors_for("docker.io") == ("https://hub.example/cache", "https://hub2.example")
    assert cfg.mirrors_for("quay.io") == ("https://q1.example", "http://127.0.0.1:5000/quay")
    assert cfg.mirrors_for("ghcr.io") == ()
    assert cfg.certs_dirs()[0] == tmp_path / "certs"
    cfg_file.write_text('registry-mirrors = ["cache.example"]\n')
    with pytest.raises(ConfigError, match="invalid mirror URL 'cache.example'"):
        load_config(cfg_file)
