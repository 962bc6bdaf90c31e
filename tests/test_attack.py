"""Red-team regressions for issue 13: cases found by attacking the merged code that did not
fail closed.  Each builds its hostile input by hand and checks the whole promise (exit 1, at
most three stderr lines, no traceback, nothing partial in ``images``, ``verify`` clean, nothing
left behind), with the helpers of ``test_failclosed_archive``.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import sqlite3
import tarfile

import pytest
from tests.support.cli import run
from tests.support.hostile import run_measured
from tests.support.storecheck import assert_store_verifies, image_ids
from tests.test_failclosed_archive import (
    assert_failed_closed,
    config_for,
    docker_archive,
    info,
    leftovers,
    load,
    sha,
    small_layer,
    tar_of,
)

LAYOUT = '{"imageLayoutVersion":"1.0.0"}'.encode()


def _with_manifest(manifest: bytes) -> bytes:
    layer = small_layer()
    return docker_archive([layer], manifest=manifest)


def _oci(index: bytes, blobs: list[bytes]) -> bytes:
    members = [(info("oci-layout", size=len(LAYOUT)), LAYOUT)]
    members += [(info(f"blobs/sha256/{sha(b)[7:]}", size=len(b)), b) for b in blobs]
    members.append((info("index.json", size=len(index)), index))
    return tar_of(members)


def _oci_image(annotations: dict) -> bytes:
    layer = small_layer()
    config = config_for([layer])
    manifest = json.dumps({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}],
    }).encode()
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(manifest), "size": len(manifest), "annotations": annotations}
    index = json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode()
    return _oci(index, [config, layer, manifest])


def _load_fails_closed(tmp_path, store_root, archive: bytes, message: str, *, pipe_too: bool = True) -> None:
    before = image_ids(store_root)
    path = tmp_path / "in.tar"
    for data in (archive, gzip.compress(archive, 1)) if pipe_too else (archive,):
        path.write_bytes(data)
        m = run_measured(["load", "-i", str(path)], timeout=60)
        assert_failed_closed(m, store_root, before, seconds=30)
        assert message in m.err, m.err
        assert "unexpected" not in m.err.lower(), m.err
        assert not (store_root / "ingest").exists() or leftovers(store_root / "ingest", set()) == []


# -- load: JSON documents that are not containers -----------------------------------------------
SCALAR_DOCUMENTS = {
    "manifest.json-null": (lambda: _with_manifest(b"null"), "manifest.json is not a list of images"),
    "manifest.json-1e999": (lambda: _with_manifest(b"1e999"), "manifest.json is not a list of images"),
    "manifest.json-true": (lambda: _with_manifest(b"true"), "manifest.json is not a list of images"),
    "index.json-null": (lambda: _oci(b"null", []), "invalid manifest: not a JSON object"),
    "index.json-number": (lambda: _oci(b"-0", []), "invalid manifest: not a JSON object"),
    "config-null": (lambda: docker_archive([], ["evil/app:1"], config=b"null"), "invalid image config: not a JSON object"),
    "config-string": (lambda: docker_archive([], ["evil/app:1"], config=b'"x"'), "invalid image config: not a JSON object"),
}


@pytest.mark.parametrize("case", sorted(SCALAR_DOCUMENTS))
def test_load_of_scalar_json_documents_fails_closed(case, tmp_path, store_root):
    """``null`` or a number as a whole document once ended in "unexpected TypeError"."""
    build, message = SCALAR_DOCUMENTS[case]
    _load_fails_closed(tmp_path, store_root, build(), message)


# -- load: what follows the last member -----------------------------------------------------------
def test_load_of_an_archive_followed_by_garbage_fails_closed(tmp_path, store_root):
    """tarfile stops quietly at the first block that is not a header: members, then garbage
    instead of the end-of-archive blocks, once loaded the image and exited 0."""
    archive = docker_archive([small_layer()], ["evil/app:1"])
    body = archive.rstrip(b"\0")
    body += b"\0" * (-len(body) % 512)
    _load_fails_closed(tmp_path, store_root, body + os.urandom(4096), "no valid tar header at offset")
    # the end-of-archive blocks, then anything: docker's reader stops there too, and so do we
    r = load(tmp_path, archive + os.urandom(4096))
    assert r.code == 0, r.err


@pytest.mark.parametrize("cut", [512, 513, 1536, 2048, -2048])
def test_load_of_a_truncated_archive_says_so_plainly(cut, tmp_path, store_root):
    archive = docker_archive([small_layer() * 3], ["evil/app:1"])
    body = archive.rstrip(b"\0")
    _load_fails_closed(tmp_path, store_root, body[:cut] if cut > 0 else body[: len(body) + cut], "truncated")


def test_load_of_a_truncated_gzip_says_so_plainly(tmp_path, store_root):
    data = gzip.compress(docker_archive([small_layer()], ["evil/app:1"]))
    for bad in (data[:-10], data + b"junk"):
        before = image_ids(store_root)
        (tmp_path / "in.tar.gz").write_bytes(bad)
        m = run_measured(["load", "-i", str(tmp_path / "in.tar.gz")], timeout=60)
        assert_failed_closed(m, store_root, before, seconds=30)
        assert "invalid gzip data: truncated" in m.err and "unexpected" not in m.err, m.err


# -- load: names in an oci-archive ----------------------------------------------------------------
@pytest.mark.parametrize("name", ["Evil:1\n", "evil/app:" + "t" * 200, "a\x1b[2J:1"])
def test_load_refuses_an_oci_image_name_that_is_not_a_reference(name, tmp_path, store_root):
    """It was loaded untagged and exit 0; a bad RepoTags entry of a docker-archive fails."""
    _load_fails_closed(tmp_path, store_root, _oci_image({"io.containerd.image.name": name}), "is not a valid reference")


def test_load_of_an_oci_image_named_by_digest_loads_it_untagged(tmp_path, store_root):
    r = load(tmp_path, _oci_image({"io.containerd.image.name": "docker.io/evil/app@sha256:" + "a" * 64}))
    assert r.code == 0, r.err
    assert len(image_ids(store_root)) == 1
    assert run("images", "--format", "{{.Repository}}:{{.Tag}}").out.split() == ["<none>:<none>"]


# -- damaged stores -------------------------------------------------------------------------------
@pytest.fixture
def two_images(tmp_path, store_root):
    for tag, data in (("a", b"A"), ("b", b"B")):
        r = load(tmp_path, docker_archive([tar_of([(info(tag, size=1), data)])], [f"team/{tag}:1"]), f"{tag}.tar")
        assert r.code == 0, r.err
    return store_root


def _one_line_error(r, *needles: str) -> None:
    assert r.code == 1, (r.out, r.err)
    lines = r.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "unexpected" not in r.err, r.err
    for n in needles:
        assert n in r.err, r.err


def test_verify_reports_an_image_whose_blob_list_lost_its_config(two_images):
    """rmi and prune refuse such an index and name verify: verify must not call it clean."""
    con = sqlite3.connect(two_images / "index.db")
    con.execute("DELETE FROM image_blobs WHERE kind = 'config'")
    con.commit()
    con.close()
    _one_line_error(run("rmi", "team/b:1"), "run imgctl verify")
    v = run("verify")
    assert v.code == 1 and "the index does not list its manifest and config blobs" in v.out, (v.out, v.err)
    r = run("verify", "--repair")
    assert r.code == 1 and "its blob list was rebuilt" in r.out, (r.out, r.err)
    assert run("verify").code == 0
    assert run("rmi", "team/b:1").code == 0
    assert_store_verifies(two_images)


def test_load_completes_an_image_whose_blob_list_lost_its_config(two_images, tmp_path):
    con = sqlite3.connect(two_images / "index.db")
    con.execute("DELETE FROM image_blobs WHERE kind = 'config'")
    con.commit()
    con.close()
    r = load(tmp_path, docker_archive([tar_of([(info("a", size=1), b"A")])], ["team/a:1"]), "again.tar")
    assert r.code == 0, r.err  # it was "cannot record image ...: its manifest and config must be given"
    con = sqlite3.connect(two_images / "index.db")
    assert con.execute("SELECT COUNT(*) FROM image_blobs WHERE kind = 'config'").fetchone() == (1,)
    con.close()


def test_a_reference_journal_that_is_a_directory(two_images):
    (two_images / "refs.journal").unlink()
    (two_images / "refs.journal").mkdir()
    for args in (["rmi", "team/b:1"], ["image", "prune", "-f"]):
        _one_line_error(run(*args), "refs.journal cannot be read", "run imgctl verify")
    v = run("verify")
    assert v.code == 1 and "refs.journal cannot be read" in v.out and "Traceback" not in v.err, (v.out, v.err)
    r = run("verify", "--repair")
    assert r.code == 1 and "wrote it again from the index" in r.out, (r.out, r.err)
    assert (two_images / "refs.journal").is_file()
    assert [p.name.split(".")[0] for p in (two_images / "lost+found").iterdir()] == ["refs"]
    assert run("verify").code == 0
    assert run("rmi", "team/b:1").code == 0
    assert run("images", "--format", "{{.Repository}}:{{.Tag}}").out.split() == ["team/a:1"]


@pytest.mark.parametrize("where", ["ingest", "leases", "lost+found", "blobs/sha256"])
def test_a_store_directory_that_is_a_file(where, two_images, tmp_path):
    """A file where the store keeps a directory: reads still work (where they can), writes are one
    line naming ``verify --repair``, verify reports it and --repair moves it aside."""
    path = two_images / where
    if path.is_dir():
        shutil.rmtree(path)
    path.write_bytes(b"not a directory")
    before = run("images", "--format", "{{.Repository}}:{{.Tag}}").out
    assert before.split() == ["team/a:1", "team/b:1"]
    if where != "blobs/sha256":
        r = run("save", "-o", tmp_path / "s.tar", "team/a:1")
        assert r.code == 0, r.err
    for args in (["tag", "team/a:1", "team/c:1"], ["rmi", "team/b:1"], ["load", "-i", tmp_path / "a.tar"]):
        r = run(*args)
        if where == "blobs/sha256" and args[0] == "rmi":  # refused first for the blobs it cannot see
            _one_line_error(r, "which is not in the store (run imgctl verify)")
        else:
            _one_line_error(r, f"{path} is not a directory", "imgctl verify --repair")
    v = run("verify")
    assert v.code == 1 and f"{path} is not a directory" in v.out, (v.out, v.err)
    r = run("verify", "--repair")
    assert r.code == 1 and f"Moved {path}" in r.out, (r.out, r.err)
    assert path.is_dir()
    if where != "blobs/sha256":  # the blobs went with the file: those images need a pull
        assert run("verify").code == 0
        assert run("tag", "team/a:1", "team/c:1").code == 0
        assert run("rmi", "team/b:1").code == 0


# -- export ---------------------------------------------------------------------------------------
def test_export_error_on_a_4096_byte_name_is_one_short_line(tmp_path, store_root):
    r = load(tmp_path, docker_archive([tar_of([(info("n" * 4096, size=1), b"x")])], ["evil/long:1"]))
    assert r.code == 0, r.err
    out = tmp_path / "out"
    out.mkdir()
    for args in (["export", "-o", out / "fs.tar", "evil/long:1"], ["export", "--dir", out / "fs", "evil/long:1"]):
        r = run(*args)
        _one_line_error(r, "File name too long")
        assert len(r.err) < 600, len(r.err)
        assert leftovers(out, set()) == []


# -- verify --repair's rebuild against concurrent removals ----------------------------------------
def test_removals_wait_out_an_index_rebuild_and_refuse_after_an_interrupted_one(two_images):
    """While ``verify --repair`` rebuilds the index, the new index lacks the images it has not
    recorded yet: a concurrent ``image prune -a`` would collect their blobs.  The rebuild holds a
    locked marker; removals refuse while it is held, and after a rebuild that died."""
    import fcntl

    blobs = sorted(os.listdir(two_images / "blobs" / "sha256"))
    marker = two_images / "index.db.rebuilding"
    fd = os.open(marker, os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # what a running rebuild holds
        for args in (["image", "prune", "-f", "-a"], ["rmi", "team/b:1"]):
            _one_line_error(run_child(*args), "verify --repair is rebuilding the index")
    finally:
        os.close(fd)
    # the holder died: the marker outlives it
    _one_line_error(run_child("image", "prune", "-f", "-a"), "rebuild of the index was interrupted", "verify --repair")
    v = run("verify")
    assert v.code == 1 and "a rebuild of it was interrupted" in v.out, (v.out, v.err)
    assert sorted(os.listdir(two_images / "blobs" / "sha256")) == blobs
    r = run("verify", "--repair")
    assert r.code == 1 and "Rebuilt the index from the blobs: 2 images, 2 tags" in r.out, (r.out, r.err)
    assert not marker.exists()
    assert run("verify").code == 0
    assert run("rmi", "team/b:1").code == 0
    assert run("images", "--format", "{{.Repository}}:{{.Tag}}").out.split() == ["team/a:1"]


def run_child(*args: str):
    """imgctl in a process of its own (a Store caches its checks per process)."""
    m = run_measured([str(a) for a in args], timeout=60)
    assert not m.timed_out
    return m


# -- load: shapes that cost time ------------------------------------------------------------------
def _gzip_of_zeros(mib: int) -> bytes:
    import zlib

    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    return b"".join(c.compress(b"\0" * (1 << 20)) for _ in range(mib)) + c.flush()


def test_load_of_a_gzip_layer_bomb_stops_at_the_ratio_limit(tmp_path, store_root):
    """A docker-archive's gzip layer (1 MiB that inflates to 1 GiB) was inflated whole to check
    its diff_id; it now stops at ``--max-ratio`` (beyond 256 MiB), naming the option."""
    bomb = _gzip_of_zeros(1024)
    config = config_for([b"anything"])
    manifest = json.dumps([{"Config": sha(config)[7:] + ".json", "RepoTags": ["evil/bomb:1"], "Layers": ["bomb.tar"]}]).encode()
    archive = tar_of([
        (info(sha(config)[7:] + ".json", size=len(config)), config),
        (info("bomb.tar", size=len(bomb)), bomb),
        (info("manifest.json", size=len(manifest)), manifest),
    ])
    before = image_ids(store_root)
    path = tmp_path / "bomb.tar"
    path.write_bytes(archive)
    m = run_measured(["load", "-i", str(path)], timeout=60)
    assert_failed_closed(m, store_root, before, seconds=10)
    assert "layer bomb.tar expands more than 100 times" in m.err and "--max-ratio" in m.err, m.err
    # an oci-archive's layer goes through the same check while it is stored
    layer_config = config_for([b"anything"])
    mdoc = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(layer_config), "size": len(layer_config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": sha(bomb), "size": len(bomb)}],
    }).encode()
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sha(mdoc), "size": len(mdoc)}
    path.write_bytes(_oci(json.dumps({"schemaVersion": 2, "manifests": [entry]}).encode(), [layer_config, bomb, mdoc]))
    m = run_measured(["load", "-i", str(path)], timeout=60)
    assert_failed_closed(m, store_root, before, seconds=10)
    assert "expands more than 100 times" in m.err, m.err


def test_load_of_one_image_listed_10000_times_is_one_commit(tmp_path, store_root):
    layer = small_layer()
    config = config_for([layer])
    entry = {"Config": sha(config)[7:] + ".json", "RepoTags": ["evil/app:1"], "Layers": [sha(layer)[7:] + ".tar"]}
    entries = [entry] * 10_000 + [{**entry, "RepoTags": ["evil/app:2"]}]
    path = tmp_path / "many.tar"
    path.write_bytes(docker_archive([layer], manifest=json.dumps(entries).encode()))
    m = run_measured(["load", "-i", str(path)], timeout=60)
    assert m.code == 0 and m.seconds < 10, (m.err, m.seconds)
    assert m.out.splitlines() == ["Loaded image: evil/app:1", "Loaded image: evil/app:2"]
    assert run("verify").code == 0


def test_a_name_claimed_by_two_images_of_one_archive_goes_to_the_last(tmp_path, store_root):
    one, two = tar_of([(info("one", size=1), b"1")]), tar_of([(info("two", size=1), b"2")])
    c1, c2 = config_for([one]), config_for([two])
    entries = [
        {"Config": sha(c1)[7:] + ".json", "RepoTags": ["team/x:1", "team/x:a"], "Layers": [sha(one)[7:] + ".tar"]},
        {"Config": sha(c2)[7:] + ".json", "RepoTags": ["team/x:1"], "Layers": [sha(two)[7:] + ".tar"]},
        {"Config": sha(c1)[7:] + ".json", "RepoTags": ["team/x:b"], "Layers": [sha(one)[7:] + ".tar"]},
    ]
    members = [(info(sha(c)[7:] + ".json", size=len(c)), c) for c in (c1, c2)]
    members += [(info(sha(l)[7:] + ".tar", size=len(l)), l) for l in (one, two)]
    manifest = json.dumps(entries).encode()
    members.append((info("manifest.json", size=len(manifest)), manifest))
    r = load(tmp_path, tar_of(members))
    assert r.code == 0, r.err
    rows = run("images", "--no-trunc", "--format", "{{.Tag}} {{.ID}}").out.split("\n")
    assert sorted(x for x in rows if x) == sorted([f"1 {sha(c2)}", f"a {sha(c1)}", f"b {sha(c1)}"])


# -- save -o / export -o onto what is not a regular file ------------------------------------------
@pytest.mark.parametrize("command", ["save", "export"])
def test_output_onto_a_device_is_written_in_place_never_replaced(command, tmp_path, store_root):
    """``save -o /dev/null`` (as root) renamed a regular file over the device node: /dev/null,
    /dev/full were destroyed.  A device or FIFO is written in place; ENOSPC is one line."""
    if os.geteuid() != 0:
        pytest.skip("mknod needs root")
    assert load(tmp_path, docker_archive([small_layer()], ["team/dev:1"])).code == 0
    out = tmp_path / "out"
    out.mkdir()
    null, full = out / "null", out / "full"
    os.mknod(null, 0o666 | 0o020000, os.makedev(1, 3))
    os.mknod(full, 0o666 | 0o020000, os.makedev(1, 7))
    r = run(command, "-o", null, "team/dev:1")
    assert r.code == 0, r.err
    _one_line_error(run(command, "-o", full, "team/dev:1"), "No space left on device")
    assert os.stat(null).st_rdev == os.makedev(1, 3) and os.stat(full).st_rdev == os.makedev(1, 7)
    assert leftovers(out, set()) == ["full", "null"]


@pytest.mark.parametrize("command", ["save", "export"])
def test_output_onto_a_fifo_a_symlink_or_nothing(command, tmp_path, store_root):
    import threading

    assert load(tmp_path, docker_archive([small_layer()], ["team/out:1"])).code == 0
    out = tmp_path / "out"
    out.mkdir()
    fifo = out / "fifo"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    reader.start()
    m = run_measured([command, "-o", str(fifo), "team/out:1"], timeout=60)
    reader.join(30)
    if reader.is_alive():  # nothing ever opened the FIFO for writing: release the reader
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        reader.join(10)
    assert m.code == 0 and fifo.is_fifo() and got and len(got[0]) >= 10240, m.err
    # a symlink is followed: the file it names gets the archive, the link stays a link
    (out / "link.tar").symlink_to(out / "target.tar")
    assert run(command, "-o", out / "link.tar", "team/out:1").code == 0
    assert (out / "link.tar").is_symlink() and tarfile.is_tarfile(out / "target.tar")
    # no file name at all: one line, not "unexpected ValueError"
    for where in ("", str(out)):
        _one_line_error(run(command, "-o", where, "team/out:1"), "Is a directory")
    assert leftovers(out, set()) == ["fifo", "link.tar", "target.tar"]
