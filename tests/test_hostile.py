"""Hostile and broken registries: every pull fails closed (issue 6), one test per case.

The registry is :class:`hostile.HostileRegistry`, honest except for one scripted
misbehaviour per test.  Each failing pull must exit 1 with one ``Error: ...`` line,
commit no image, leave no blob under ``blobs/`` that does not hash to its name, and not
hold the bad blob.  The oversized and endless cases run ``imgctl pull`` as a subprocess
and check its peak RSS and wall time while the server offers far more than that.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.hostile import HostileRegistry, bomb, endless, run_measured
from tests.support.images import OCI_MANIFEST, dumps, make_image, make_index, make_layer, sha256_digest
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

MiB = 1024 * 1024
RSS_LIMIT_KIB = 150 * 1024  # the server offers 200 MiB or an endless body
TIME_LIMIT = 30.0  # seconds for one measured pull (it normally takes about one)
HUGE = 200 * MiB
FIVE_MIB = 5 * MiB


@pytest.fixture(autouse=True)
def fast_retries(cfg_file):
    """Retries (5xx, broken streams) stay on but cost nothing."""
    cfg_file.write_text("max-download-attempts = 3\nretry-delay = 0.01\n")


def sample_image(seed: str = "hostile", label: str = "good"):
    """Two layers, the second ~300 kB of incompressible bytes so that a body can break mid-way."""
    rng = random.Random(seed)
    noise = rng.randbytes(300_000)
    layers = [
        make_layer({"etc/motd": f"hello {seed}\n"}, "gzip"),
        make_layer({"opt/blob.bin": noise}, "gzip"),
    ]
    return make_image(layers, labels={"seed": seed, "mood": label})


def flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1:]


def error_line(err: str) -> str:
    """The single ``Error:`` line of stderr (and no traceback)."""
    assert "Traceback" not in err, err
    lines = [l for l in err.splitlines() if l.startswith("Error:")]
    assert len(lines) == 1, f"expected one Error: line, got {lines!r}\n{err}"
    return lines[0]


def assert_failed_closed(code: int, err: str, store_root, *words: str, absent=()) -> str:
    """Exit 1, one clear error naming ``words``, no image, a store that verifies, ``absent`` blobs absent."""
    line = error_line(err)
    assert code == 1, f"exit {code}: {err}"
    for w in words:
        assert w.lower() in line.lower(), f"{w!r} not in {line!r}"
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root, allow_partials=True)
    if (store_root / "blobs").is_dir():
        assert {p.name for p in (store_root / "blobs").iterdir()} <= {"sha256"}
    for digest in absent:
        assert digest not in blob_files(store_root), f"{digest} was committed"
    return line


def assert_bounded(m) -> None:
    assert not m.timed_out, f"pull still running after {TIME_LIMIT} s (killed): {m.err[-2000:]}"
    assert m.seconds < TIME_LIMIT
    assert m.maxrss_kib < RSS_LIMIT_KIB, f"peak RSS {m.maxrss_kib // 1024} MiB"


def measured_pull(name: str):
    m = run_measured(["pull", name], timeout=TIME_LIMIT)
    assert_bounded(m)
    return m


def assert_pulled(code: int, err: str, store_root, img) -> None:
    assert code == 0, err
    assert_store_verifies(store_root)
    assert image_ids(store_root) == {img.config_digest}
    assert {img.manifest_digest, img.config_digest, *(l.digest for l in img.layers)} <= set(blob_files(store_root))


# -- the control: the server is a correct registry when no switch is on --------------------------
@pytest.mark.parametrize("token", [None, "ok"])
def test_honest_server_pull_succeeds(store_root, token):
    img = sample_image()
    with HostileRegistry(img, token=token) as reg:
        r = run("pull", reg.name)
    assert_pulled(r.code, r.err, store_root, img)
    assert r.lines[-1] == reg.name


# -- wrong bytes under a digest -----------------------------------------------------------------
def test_wrong_digest_manifest_by_digest(store_root):
    img, other = sample_image(), sample_image(label="evil")
    with HostileRegistry(img, manifest_body=other.manifest_bytes) as reg:
        r = run("pull", reg.by_digest(img.manifest_digest))
    assert_failed_closed(r.code, r.err, store_root, "does not match", img.manifest_digest,
                         absent=[img.manifest_digest, other.manifest_digest])


def test_wrong_digest_config(store_root):
    img, other = sample_image(), sample_image(label="evil")
    assert len(other.config_bytes) == len(img.config_bytes) and other.config_bytes != img.config_bytes
    with HostileRegistry(img, blob_bytes={img.config_digest: other.config_bytes}) as reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "digest mismatch", img.config_digest,
                         absent=[img.config_digest, other.config_digest])


def test_flipped_byte_in_layer(store_root):
    img = sample_image()
    layer = img.layers[1]
    with HostileRegistry(img, blob_bytes={layer.digest: flip(layer.data)}) as reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "digest mismatch", layer.digest, absent=[layer.digest])


# -- lengths ------------------------------------------------------------------------------------
@pytest.mark.parametrize("change", [+1000, -1000, +1])
def test_content_length_differs_from_descriptor(store_root, change):
    img = sample_image()
    layer = img.layers[1]
    data = layer.data + b"\0" * change if change > 0 else layer.data[:change]
    with HostileRegistry(img, blob_bytes={layer.digest: data}) as reg:
        r = run("pull", reg.name)
    line = assert_failed_closed(r.code, r.err, store_root, layer.digest, absent=[layer.digest])
    assert str(len(data)) in line and str(layer.size) in line  # what was announced, what the descriptor says


@pytest.mark.parametrize("which", ["layer", "config"])
def test_more_bytes_than_declared_endless(store_root, which):
    """True bytes, then junk forever, chunked (no Content-Length): the client stops at size + 1."""
    img = sample_image()
    if which == "layer":
        digest, data = img.layers[1].digest, img.layers[1].data
    else:
        digest, data = img.config_digest, img.config_bytes
    with HostileRegistry(img, blob_stream={digest: endless(data, b"\0")}) as reg:
        m = measured_pull(reg.name)
    assert_failed_closed(m.code, m.err, store_root, digest, "more than", absent=[digest])


def test_truncated_body_fails_closed(store_root):
    """The server's copy ends mid-way: every answer stops at the same byte."""
    img = sample_image()
    layer = img.layers[1]
    with HostileRegistry(img, cut_digest=layer.digest, cut_at=layer.size // 2) as reg:
        r = run("pull", reg.name)
        resumed = [q for q in reg.seen(layer.digest) if q["range"]]
    assert_failed_closed(r.code, r.err, store_root, layer.digest, absent=[layer.digest])
    assert resumed and all(q["range"] == f"bytes={layer.size // 2}-" for q in resumed)  # resumed where it broke


def test_truncated_once_resumes_with_range(store_root):
    """A body cut once: the client may resume with Range; it then has exactly the right bytes."""
    img = sample_image()
    layer = img.layers[1]
    cut = layer.size // 2
    with HostileRegistry(img, cut_digest=layer.digest, cut_at=cut, cut_times=1) as reg:
        r = run("pull", reg.name)
        gets = reg.seen(layer.digest)
    assert_pulled(r.code, r.err, store_root, img)
    assert gets[0]["range"] is None and gets[0]["sent"] == cut
    assert gets[1]["range"] == f"bytes={cut}-" and gets[1]["status"] == 206
    assert sum(q["sent"] for q in gets) == layer.size  # no byte fetched twice


def test_200_answer_to_range_restarts(store_root):
    """The first answer breaks mid-way, the Range request gets a 200 with the whole blob:
    appending it would make a wrong blob; restarting from it makes the right one."""
    img = sample_image()
    layer = img.layers[1]
    with HostileRegistry(img, cut_digest=layer.digest, cut_at=layer.size // 2, range_mode="ignore") as reg:
        r = run("pull", reg.name)
        gets = reg.seen(layer.digest)
    assert any(q["range"] and q["status"] == 200 for q in gets), gets  # the case really happened
    assert_pulled(r.code, r.err, store_root, img)


def test_wrong_content_range(store_root):
    """The Range request gets a 206 whose Content-Range (and bytes) start elsewhere."""
    img = sample_image()
    layer = img.layers[1]
    with HostileRegistry(img, cut_digest=layer.digest, cut_at=layer.size // 2, range_mode="shift") as reg:
        r = run("pull", reg.name)
        gets = reg.seen(layer.digest)
    assert any(q["status"] == 206 for q in gets), gets
    assert_failed_closed(r.code, r.err, store_root, "Content-Range", absent=[layer.digest])


# -- oversized documents ------------------------------------------------------------------------
def padded_manifest(img, size: int) -> bytes:
    doc = dict(img.manifest)
    base = len(dumps({**doc, "annotations": {"pad": ""}}))
    doc["annotations"] = {"pad": "x" * (size - base)}
    data = dumps(doc)
    assert len(data) == size
    return data


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
def test_manifest_over_4mib(store_root, framing):
    img = sample_image()
    big = padded_manifest(img, FIVE_MIB)
    if framing == "content-length":
        reg = HostileRegistry(None)
        reg.add_manifest(big, OCI_MANIFEST, tag="latest")
    else:
        reg = HostileRegistry(None, manifest_stream=lambda: iter([big[i:i + 65536] for i in range(0, len(big), 65536)]))
    with reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "manifest", "too large", absent=[sha256_digest(big)])


def test_config_over_4mib(store_root):
    layer = make_layer({"etc/motd": b"hi\n"})
    img = make_image([layer], config_extra={"config": {"Labels": {"pad": "p" * FIVE_MIB}}})
    assert img.manifest["config"]["size"] > 4 * MiB
    with HostileRegistry(img) as reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "config", "too large", absent=[img.config_digest])


def test_config_over_4mib_behind_a_small_descriptor(store_root):
    """The descriptor says a small size; the server sends 5 MiB (Content-Length honest)."""
    img = sample_image()
    big = img.config_bytes + b" " * FIVE_MIB
    with HostileRegistry(img, blob_bytes={img.config_digest: big}) as reg:
        m = measured_pull(reg.name)
    assert_failed_closed(m.code, m.err, store_root, img.config_digest, absent=[img.config_digest])


def test_endless_chunked_manifest(store_root):
    prefix = b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","annotations":{"pad":"'
    with HostileRegistry(None, manifest_stream=endless(prefix)) as reg:
        m = measured_pull(reg.name)
    assert_failed_closed(m.code, m.err, store_root, "manifest", "too large")


# -- ambiguous, obsolete and malformed documents --------------------------------------------------
@pytest.mark.parametrize("served_as", ["manifest", "index"])
def test_document_with_manifests_and_layers(store_root, served_as):
    img = sample_image()
    idx = make_index([img])
    doc = dict(img.manifest) if served_as == "manifest" else dict(idx.index)
    doc["manifests"] = idx.index["manifests"]
    doc["layers"] = img.manifest["layers"]
    doc.setdefault("config", img.manifest["config"])
    data = dumps(doc)
    reg = HostileRegistry(img, tag="other")
    reg.add_manifest(data, doc["mediaType"], tag="latest")
    reg.tag = "latest"
    with reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "manifests", "layers",
                         absent=[sha256_digest(data), img.config_digest, *(l.digest for l in img.layers)])


SCHEMA1 = {
    "schemaVersion": 1,
    "name": "hostile/app",
    "tag": "latest",
    "architecture": "amd64",
    "fsLayers": [{"blobSum": sha256_digest(b"")}],
    "history": [{"v1Compatibility": json.dumps({"id": "a" * 64, "architecture": "amd64", "os": "linux"})}],
    "signatures": [],
}


@pytest.mark.parametrize(
    "content_type",
    [
        "application/vnd.docker.distribution.manifest.v1+prettyjws",
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",  # schemaVersion 1 in the body is enough
        "application/json",
    ],
)
def test_schema1_refused(store_root, content_type):
    data = dumps(SCHEMA1)
    reg = HostileRegistry(None)
    reg.add_manifest(data, content_type, tag="latest")
    with reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "schema 1", absent=[sha256_digest(data)])


BAD_DIGESTS = [
    "sha256:../../etc/passwd",
    "sha256:../../../../../../../../tmp/imgctl-hostile-escape",
    "sha256:" + "AB" * 32,
    "md5:" + "0" * 32,
    "sha256:" + "0" * 63,
    "sha256:/etc/passwd",
]


def tree(path) -> set[str]:
    return {str(p.relative_to(path)) for p in path.rglob("*")} if path.exists() else set()


def outside(tmp_path, store_root) -> set[str]:
    """Every path under ``tmp_path`` that is not in the store root."""
    name = store_root.name
    return {p for p in tree(tmp_path) if p != name and not p.startswith(name + "/")}


@pytest.mark.parametrize("where", ["layer", "config", "index entry"])
@pytest.mark.parametrize("bad", BAD_DIGESTS)
def test_invalid_digest_strings(store_root, tmp_path, where, bad):
    img = sample_image()
    if where == "index entry":
        idx = make_index([img])
        doc = json.loads(idx.manifest_bytes)
        doc["manifests"][0]["digest"] = bad
    else:
        doc = json.loads(img.manifest_bytes)
        (doc["layers"][0] if where == "layer" else doc["config"])["digest"] = bad
    data = dumps(doc)
    # A registry that serves content under any name, so a client that used the name would write it.
    reg = HostileRegistry(img, tag="honest", any_blob=b"root:x:0:0:root:/root:/bin/sh\n")
    reg.add_manifest(data, doc["mediaType"], tag="latest")
    reg.tag = "latest"
    outside_before = outside(tmp_path, store_root)
    with reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "invalid", "digest", absent=[sha256_digest(data)])
    assert outside(tmp_path, store_root) == outside_before, "files were written outside the store root"
    assert [p for p in tree(tmp_path) if "passwd" in p or "escape" in p] == []
    assert not Path("/tmp/imgctl-hostile-escape").exists()
    for p in tree(store_root):  # only the store's own layout
        assert (
            p in ("blobs", "blobs/sha256", "ingest")
            or re.fullmatch(r"blobs/sha256/[0-9a-f]{64}", p)
            or re.fullmatch(r"ingest/[^/]+", p)
            or re.fullmatch(r"index\.db[^/]*|[^/]*lock[^/]*", p)
        ), f"unexpected path {p} in the store root"


# -- the config against the layers -----------------------------------------------------------------
@pytest.mark.parametrize("how", ["wrong diff_id", "one diff_id too many", "one diff_id missing"])
def test_config_diff_ids_do_not_match_layers(store_root, how):
    base = sample_image()
    ids = [l.diff_id for l in base.layers]
    if how == "wrong diff_id":
        ids[1] = sha256_digest(b"not the layer")
    elif how == "one diff_id too many":
        ids.append(sha256_digest(b"extra"))
    else:
        ids = ids[:1]
    img = make_image(base.layers, labels=base.config["config"]["Labels"], config_extra={"rootfs": {"diff_ids": ids}})
    assert img.config["rootfs"]["diff_ids"] == ids
    with HostileRegistry(img) as reg:
        r = run("pull", reg.name)
    words = ("verification failed", img.layers[1].digest) if how == "wrong diff_id" else ("layers",)
    assert_failed_closed(r.code, r.err, store_root, *words)


# -- huge error bodies ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "error_on, status, words",
    [
        (("manifest",), 404, ["not found"]),
        (("blob",), 500, ["500"]),
        (("ping", "manifest", "blob"), 500, ["500"]),
    ],
    ids=["manifest-404", "blob-500", "everything-500"],
)
def test_huge_error_body(store_root, error_on, status, words):
    img = sample_image()
    with HostileRegistry(img, error_on=error_on, error_status=status, error_size=HUGE) as reg:
        m = measured_pull(reg.name)
    assert_failed_closed(m.code, m.err, store_root, *words)


def test_huge_ping_answer_is_not_read(store_root):
    """Only ``GET /v2/`` misbehaves (500 with 200 MiB): the pull may go on, but never reads it all."""
    img = sample_image()
    with HostileRegistry(img, error_on=("ping",), error_status=500, error_size=HUGE) as reg:
        m = measured_pull(reg.name)
    if m.code == 0:
        assert_pulled(m.code, m.err, store_root, img)
    else:
        assert_failed_closed(m.code, m.err, store_root)


# -- compressed bodies (not in the list; same rule: memory stays bounded) -----------------
@pytest.mark.parametrize(
    "what, encoding", [("manifest", "gzip"), ("manifest", "zstd"), ("blob", "gzip"), ("blob", "zstd")]
)
def test_compression_bomb(store_root, what, encoding):
    """A ``Content-Encoding`` answer of a few KiB that decodes to 512 MiB: a manifest is capped at
    4 MiB and a blob at its descriptor size, so neither may be decoded far past that in memory."""
    img = sample_image()
    layer = img.layers[1]
    if what == "manifest":
        prefix = b'{"schemaVersion":2,"mediaType":"' + OCI_MANIFEST.encode() + b'","annotations":{"pad":"'
        kw = dict(manifest_stream=bomb(encoding, 512 * MiB, prefix, b"a"), manifest_encoding=encoding)
    else:
        kw = dict(blob_stream={layer.digest: bomb(encoding, 512 * MiB, layer.data)}, blob_encoding=encoding)
    with HostileRegistry(img, **kw) as reg:
        m = measured_pull(reg.name)
    assert_failed_closed(m.code, m.err, store_root, absent=[layer.digest])


# -- tokens ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["notjson", "notoken", "crlf", "endless"])
def test_token_endpoint_returns_garbage(store_root, mode):
    img = sample_image()
    with HostileRegistry(img, token=mode) as reg:
        if mode == "endless":
            m = measured_pull(reg.name)
            code, err = m.code, m.err
        else:
            r = run("pull", reg.name)
            code, err = r.code, r.err
        asked = reg.seen("/token")
        leaked = [q for q in reg.requests if q["authorization"] and q["path"] != "/token"]
    assert asked, "the token endpoint was never asked"
    assert leaked == [], "a garbage token was sent to the registry"
    assert_failed_closed(code, err, store_root, "token")


# -- the registry's own digest header --------------------------------------------------------------
def test_docker_content_digest_disagrees_with_manifest(store_root):
    img = sample_image()
    lie = sha256_digest(b"some other manifest")
    with HostileRegistry(img, digest_header=lie) as reg:
        r = run("pull", reg.name)
    assert_failed_closed(r.code, r.err, store_root, "manifest", "announced", lie, absent=[img.manifest_digest])
