"""Round trips of a cold pull: every request before the first layer byte is one whose answer is
needed, and they share one connection (issue 16, "Round trips").

A counting proxy (``benchmarks.linkemu.LinkEmulator`` with no delay and no rate cap) sits in front
of the registry and logs each connection (and whether it opened with a TLS ClientHello: the https
attempt at a plain-HTTP loopback registry) and each request line.  A scripted registry shows the
config is fetched alongside the layers, not before them, and that a refused config arriving after
the layers still leaves nothing in the store.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time

import pytest

from benchmarks.linkemu import LinkEmulator
from tests.support.cli import run
from tests.support.images import make_image, make_index, make_layer, push_image
from tests.support.server import LoopbackServer, reply
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids
from tests.support.tokenserver import TokenServer

USER, PASSWORD = "alice", "correct horse battery staple"


def five_layer_image(seed: str, architecture: str = "amd64"):
    layers = [make_layer({f"d/{seed}/{i}": (f"{seed}-{i} " * 3000).encode()}, "gzip") for i in range(5)]
    return make_image(layers, architecture=architecture, labels={"seed": seed})


@pytest.fixture
def link(registry):
    with LinkEmulator(("127.0.0.1", registry.port), rtt=0, rate=None) as emu:
        yield emu


def is_layer(req, img) -> bool:
    return "/blobs/" in req.path and req.path.rsplit("/", 1)[-1] in {layer.digest for layer in img.layers}


def before_first_layer(link: LinkEmulator, img):
    """(connections opened, requests sent) up to the first GET of one of ``img``'s layers, and that request."""
    reqs = list(link.requests)
    first = next(r for r in reqs if is_layer(r, img))
    conns = [c for c in link.connections if c.accepted <= first.t]
    return conns, [r for r in reqs if r.t < first.t and not r.path.endswith(img.config_digest)], first


def paths(reqs) -> list[str]:
    return [f"{r.method} {r.path}" for r in reqs]


def assert_layer_next(link: LinkEmulator, conn: int, n: int, img) -> None:
    """After its ``n`` requests before the layers, connection ``conn`` carries a layer's GET (it
    is not left idle while the layers connect, nor taken by the config: that one is needed only
    once a layer is done, so it may pay for a connection of its own)."""
    on_conn = [r for r in link.requests if r.conn == conn]
    assert len(on_conn) > n and is_layer(on_conn[n], img), paths(on_conn)


def test_cold_pull_one_connection_until_the_first_layer(registry, link, unique_repo, store_root):
    img = five_layer_image("single")
    push_image(registry.url, unique_repo, img, tag="v1")
    r = run("pull", f"{link.host}/{unique_repo}:v1")
    assert r.code == 0, r.err
    conns, before, first = before_first_layer(link, img)
    # The https attempt (a ClientHello a plain-HTTP registry refuses), then one connection:
    # the ping, the manifest, and the first layer on it.
    assert [c.tls for c in conns[:2]] == [True, False]
    assert paths(before) == ["GET /v2/", f"GET /v2/{unique_repo}/manifests/v1"]
    plain = conns[1].id
    assert {r.conn for r in before} == {plain}
    assert_layer_next(link, plain, 2, img)
    # Nothing asked twice: every blob once, the manifest once, one ping.
    every = paths(link.requests)
    assert len(every) == len(set(every)) == 2 + 1 + len(img.layers)
    assert f"GET /v2/{unique_repo}/blobs/{img.config_digest}" in every
    assert sum(c.tls for c in link.connections) == 1
    assert_store_verifies(store_root)


def test_index_pull_counts_index_and_manifest_on_one_connection(registry, link, unique_repo, store_root):
    amd, arm = five_layer_image("amd"), five_layer_image("arm", "arm64")
    idx = make_index([amd, arm])
    push_image(registry.url, unique_repo, idx, tag="multi")
    r = run("pull", "--platform", "linux/amd64", f"{link.host}/{unique_repo}:multi")
    assert r.code == 0, r.err
    conns, before, first = before_first_layer(link, amd)
    assert paths(before) == [
        "GET /v2/",
        f"GET /v2/{unique_repo}/manifests/multi",
        f"GET /v2/{unique_repo}/manifests/{amd.manifest_digest}",
    ]
    assert [c.tls for c in conns[:2]] == [True, False]
    assert {r.conn for r in before} == {conns[1].id}
    assert_layer_next(link, conns[1].id, 3, amd)


def test_token_pull_answers_the_ping_challenge_once(registry_factory, tmp_path, isolated_env, unique_repo, store_root):
    """With token auth: the ping's 401 challenge is answered before the manifest is asked for
    (no manifest GET refused with a 401 first), one token serves manifest, config and layers,
    and the registry's connection is kept across the token request."""
    with TokenServer(tmp_path / "tokens", users={USER: PASSWORD}) as ts:
        reg = registry_factory(extra=ts.registry_config())
        img = five_layer_image("token")
        push_image(reg.url, unique_repo, img, tag="v1", auth=ts.auth(unique_repo))
        ts.requests.clear()
        with LinkEmulator(("127.0.0.1", reg.port), rtt=0, rate=None) as emu:
            cfg = isolated_env["HOME"] / ".docker"
            cfg.mkdir(exist_ok=True)
            secret = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
            (cfg / "config.json").write_text(json.dumps({"auths": {emu.host: {"auth": secret}}}))
            r = run("pull", f"{emu.host}/{unique_repo}:v1")
            assert r.code == 0, r.err
            conns, before, first = before_first_layer(emu, img)
            every = paths(emu.requests)
        assert paths(before) == ["GET /v2/", f"GET /v2/{unique_repo}/manifests/v1"]
        assert {r.conn for r in before} == {conns[1].id}
        assert_layer_next(emu, conns[1].id, 2, img)
        assert len(every) == len(set(every))  # no request repeated after a 401
        assert len(ts.requests) == 1
        assert ts.requests[0]["scopes"] == [f"repository:{unique_repo}:pull"]
        assert_store_verifies(store_root)


class HoldingRegistry(LoopbackServer):
    """A registry serving one image; the config's answer waits until ``until`` layers have been
    asked for (at most ``hold`` seconds; layers beyond max-concurrent-downloads wait for a slot,
    and a downloaded layer waits for the config).  ``log``: (time, path) of each request."""

    def __init__(self, img, repo: str, until: int = 3, hold: float = 10.0) -> None:
        super().__init__()
        self.img, self.repo, self.until, self.hold = img, repo, until, hold
        self.blobs = dict(img.blobs())
        self.log: list[tuple[float, str]] = []
        self._layers_asked: set[str] = set()
        self._all_layers = threading.Event()
        self._lock = threading.Lock()

    def handle(self, h, method: str) -> None:
        with self._lock:
            self.log.append((time.monotonic(), h.path))
        if h.path == "/v2/":
            reply(h, 200, b"{}")
            return
        if h.path == f"/v2/{self.repo}/manifests/v1":
            reply(h, 200, self.img.manifest_bytes, content_type=self.img.manifest_media_type,
                  headers={"Docker-Content-Digest": self.img.manifest_digest})
            return
        m = re.fullmatch(rf"/v2/{re.escape(self.repo)}/blobs/(sha256:[0-9a-f]{{64}})", h.path)
        if m and m.group(1) in self.blobs:
            digest = m.group(1)
            if digest == self.img.config_digest:
                self._all_layers.wait(self.hold)
            else:
                with self._lock:
                    self._layers_asked.add(digest)
                    if len(self._layers_asked) >= self.until:
                        self._all_layers.set()
            reply(h, 200, self.blobs[digest], content_type="application/octet-stream",
                  headers={"Docker-Content-Digest": digest})
            return
        reply(h, 404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}')


def test_config_is_fetched_alongside_the_layers(unique_repo, store_root):
    img = five_layer_image("alongside")
    with HoldingRegistry(img, unique_repo) as srv:
        t0 = time.monotonic()
        r = run("pull", f"127.0.0.1:{srv.port}/{unique_repo}:v1")
        took = time.monotonic() - t0
        log = list(srv.log)
    assert r.code == 0, r.err
    assert took < srv.hold  # the layers were asked for while the config's answer was held back
    assert sum(p.endswith(img.config_digest) for _, p in log) == 1
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_config_refused_after_the_layers_leaves_no_layer(unique_repo, store_root):
    """The platform check of a single-manifest image: the config arrives after every layer was
    asked for; its refusal is the same error as before, and no layer (nor partial) is kept."""
    img = five_layer_image("refused")  # linux/amd64
    name = f"127.0.0.1:{{port}}/{unique_repo}:v1"
    with HoldingRegistry(img, unique_repo) as srv:
        ref = name.format(port=srv.port)
        r = run("pull", "--platform", "linux/arm64", ref)
    assert r.code == 1
    assert r.err == (
        f"Error: image with reference {ref} was found but does not match the specified platform: "
        "wanted linux/arm64/v8, actual: linux/amd64\n"
    )
    assert image_ids(store_root) == set()
    assert not {layer.digest for layer in img.layers} & set(blob_files(store_root))
    assert_store_verifies(store_root)
