"""Issue 13, store classes: a damaged index (1), a full disk (3), stray entries among the
blobs (6) and read-only stores (8) all fail closed: exit 1, at most 3 lines on stderr, no
traceback, nothing referenced deleted, and ``imgctl verify`` clean after ``--repair``.

Mounts (tmpfs, read-only remounts, bind mounts) need root, as CI runs; a test that needs
one is skipped when mounting is impossible.
"""

from __future__ import annotations

import gzip
import io
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files

FORMAT = "{{.Repository}}:{{.Tag}} {{.Digest}} {{.ID}}"


def fails_closed(r, *, names: str | None = None) -> None:
    """Exit 1, one to three lines on stderr, no traceback, no "unexpected" error."""
    lines = r.err.splitlines()
    assert r.code == 1, (r.code, r.out, r.err)
    assert 1 <= len(lines) <= 3, r.err
    assert "Traceback" not in r.err and "Error: unexpected " not in r.err, r.err
    if names:
        assert names in r.err, r.err


def listing() -> list[str]:
    r = run("images", "--digests", "--format", FORMAT)
    assert r.code == 0, r.err
    return sorted(r.lines)


def verify_clean() -> None:
    r = run("verify")
    assert r.code == 0, (r.out, r.err)


@pytest.fixture
def store(registry, repo_factory, store_root):
    """Two pulled images: A as repo:a and other:x, B as repo:b and pinned by digest."""
    a = make_image([make_layer({"a": b"A" * 3000}, "gzip"), make_layer({"s": b"S" * 2000}, "zstd")])
    b = make_image([make_layer({"b": b"B" * 4000}, "gzip")], config_extra={"config": {"Labels": {"k": "v"}}})
    repo, other = repo_factory("r"), repo_factory("o")
    push_image(registry.url, repo, a, tag="a")
    push_image(registry.url, repo, b, tag="b")
    push_image(registry.url, other, a, tag="x")
    for name in (f"{repo}:a", f"{repo}:b", f"{other}:x", f"{repo}@{b.manifest_digest}"):
        r = run("pull", "-q", f"{registry.host}/{name}")
        assert r.code == 0, r.err
    before = listing()
    assert len(before) == 3
    return {"root": store_root, "a": a, "b": b, "repo": f"{registry.host}/{repo}", "listing": before,
            "blobs": set(blob_files(store_root))}


# -- class 1: a damaged index ------------------------------------------------------------------
def _zero_pages(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[4096:] = bytes(len(data) - 4096)
    db.write_bytes(bytes(data))


def _truncate(db: Path) -> None:
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size // 2)


def _not_sqlite(db: Path) -> None:
    db.write_bytes(b"this is not an SQLite database\n" * 100)


def _header_flip(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[100 + 5] ^= 0xFF  # the first b-tree page's header (sqlite_master's root)
    db.write_bytes(bytes(data))


def _sql(statement: str):
    """Damage by a valid SQL change that a damaged disk or a stray tool could make."""

    def damage(db: Path) -> None:
        con = sqlite3.connect(db)
        con.execute(statement)
        con.commit()
        con.close()

    return damage


def _foreign_db(db: Path) -> None:
    db.unlink()
    _sql("CREATE TABLE something (x)")(db)


_drop_table = _sql("DROP TABLE tags")
# Rows that survive but name an image the index lost: prune would call that image dangling.
_dangling_tags = _sql("UPDATE images SET id = 'sha256:0000' || substr(id, 12) WHERE id IN (SELECT id FROM images LIMIT 1)")
# A layer row names another digest: collection would remove the layer actually in use.
_garbled_blob_row = _sql(
    "UPDATE image_blobs SET digest = 'sha256:' || substr('ffff' || substr(digest, 8), 1, 64) WHERE kind = 'layer'"
)


def _emptied(db: Path) -> None:
    db.write_bytes(b"")


def _wal_lost(db: Path) -> None:
    """Only the header page on disk, the rest was in a WAL that is gone: a valid, empty database."""
    db.write_bytes(db.read_bytes()[:4096])
    con = sqlite3.connect(db)
    con.execute("PRAGMA writable_schema = ON")
    con.execute("DELETE FROM sqlite_master")
    con.execute("PRAGMA user_version = 0")
    con.commit()
    con.close()


def _index_is_a_directory(db: Path) -> None:
    db.unlink()
    db.mkdir()
    (db / "x").write_bytes(b"x")


def _wal_is_a_directory(db: Path) -> None:
    Path(f"{db}-wal").mkdir()


DAMAGE = {
    "emptied": _emptied,
    "index-is-a-directory": _index_is_a_directory,
    "wal-is-a-directory": _wal_is_a_directory,
    "only-the-header-page": _wal_lost,
    "zeroed-pages": _zero_pages,
    "truncated": _truncate,
    "not-sqlite": _not_sqlite,
    "header-byte-flipped": _header_flip,
    "table-missing": _drop_table,
    "foreign-schema": _foreign_db,
    "rows-naming-lost-image": _dangling_tags,
    "rows-naming-wrong-blobs": _garbled_blob_row,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damaged_index_removes_nothing_and_repair_rebuilds_it(store, damage):
    root = store["root"]
    DAMAGE[damage](root / "index.db")

    for args in (["image", "prune", "-f"], ["image", "prune", "-f", "-a"], ["rmi", f"{store['repo']}:a"]):
        r = run(*args)
        fails_closed(r, names="imgctl verify")
        assert set(blob_files(root)) == store["blobs"], f"{args} removed blobs on the word of a damaged index"

    r = run("verify")
    fails_closed(r)
    if damage != "rows-naming-wrong-blobs":  # that index is sound as SQLite sees it: its rows are wrong
        assert "is damaged" in r.out and "run imgctl verify --repair" in r.out, r.out

    r = run("verify", "--repair")
    assert r.code in (0, 1) and "Traceback" not in r.err, r.err
    assert set(blob_files(root)) == store["blobs"]
    verify_clean()
    assert listing() == store["listing"]  # every tag came back from the journal
    assert_store_verifies(root)
    # The rebuilt index is a working one: remove, prune, pull.
    assert run("rmi", f"{store['repo']}:b").code == 0
    r = run("image", "prune", "-f")
    assert r.code == 0, r.err
    verify_clean()


@pytest.mark.parametrize("command", [["images"], ["system", "df"], ["inspect", "IMAGE"], ["history", "IMAGE"],
                                     ["save", "-o", "OUT", "IMAGE"], ["export", "-o", "OUT", "IMAGE"]])
@pytest.mark.parametrize("damage", ["zeroed-pages", "not-sqlite", "table-missing", "truncated"])
def test_reads_on_a_damaged_index_are_one_line_errors(store, damage, command, tmp_path):
    DAMAGE[damage](store["root"] / "index.db")
    args = [f"{store['repo']}:a" if a == "IMAGE" else str(tmp_path / "out.tar") if a == "OUT" else a for a in command]
    r = run(*args)
    fails_closed(r, names="imgctl verify")
    assert r.err.startswith("Error: the store index ")
    assert [p.name for p in tmp_path.iterdir() if "out" in p.name] == []  # no archive, no scratch next to -o


@pytest.mark.parametrize("seed", [0, 1, 2, 3, 134, 216, 326, 371])  # 134.. once got through
def test_random_byte_flips_never_cost_a_referenced_blob(store, seed):
    """A byte flipped anywhere: whatever SQLite still believes, prune either refuses or keeps
    every blob an image needs, and repair gets back to a clean store."""
    root = store["root"]
    db = root / "index.db"
    data = bytearray(db.read_bytes())
    rng = random.Random(seed)
    for _ in range(4):
        data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    db.write_bytes(bytes(data))
    for args in (["image", "prune", "-f"], ["image", "prune", "-af"]):
        r = run(*args)
        assert "Traceback" not in r.err and "Error: unexpected " not in r.err, r.err
        assert r.code in (0, 1) and len(r.err.splitlines()) <= 3
        assert set(blob_files(root)) == store["blobs"], (args, r.out, r.err)
    run("verify", "--repair")
    verify_clean()
    assert listing() == store["listing"]


def test_garbage_wal_is_ignored(store):
    root = store["root"]
    (root / "index.db-wal").write_bytes(os.urandom(64 * 1024))
    assert listing() == store["listing"]
    r = run("image", "prune", "-f")
    assert r.code == 0, r.err
    assert set(blob_files(root)) == store["blobs"]
    verify_clean()


def test_index_lost_entirely_is_not_taken_for_a_new_store(store):
    """Without index.db the store is not empty: nothing is removed, and repair restores it all."""
    root = store["root"]
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        if (root / name).exists():
            (root / name).unlink()
    for args in (["image", "prune", "-af"], ["images"], ["system", "df"]):
        fails_closed(run(*args), names="imgctl verify")
    assert set(blob_files(root)) == store["blobs"]
    r = run("verify", "--repair")
    assert "Rebuilt the index from the blobs: 2 images, 3 tags and 1 repo digests restored" in r.lines, r.out
    verify_clean()
    assert listing() == store["listing"]
    r = run("images", "--digests", "--format", "{{.Repository}} {{.Digest}}")
    assert f"{store['repo']} {store['b'].manifest_digest}" in r.lines, r.out


def test_blob_missing_under_an_image_blocks_removal_until_repair(store):
    root = store["root"]
    blob_files(root)[store["a"].layers[1].digest].unlink()
    kept = set(blob_files(root))
    for args in (["image", "prune", "-af"], ["rmi", f"{store['repo']}:b"]):
        r = run(*args)
        fails_closed(r, names="imgctl verify")
        assert set(blob_files(root)) == kept
    r = run("verify", "--repair")
    assert r.code == 1
    assert any(line.startswith(f"Image {store['a'].config_digest[7:19]} needs a pull") for line in r.lines), r.out
    assert run("rmi", f"{store['repo']}:b").code == 0  # a repaired index is trusted again
    assert store["a"].manifest_digest in blob_files(root)


def test_journal_damage_is_survived(store):
    """A torn or flipped journal line is skipped, not believed; the other tags come back."""
    root = store["root"]
    journal = root / "refs.journal"
    lines = journal.read_bytes().splitlines(keepends=True)
    assert lines, "the journal records the tags"
    with open(journal, "ab") as f:
        f.write(b"0123456789abcdef [\"tag\",\"evil\",\"x\",\"sha256:")  # torn, checksum wrong
    _zero_pages(root / "index.db")
    r = run("verify", "--repair")
    assert "Skipped 1 damaged lines" in r.out, r.out
    verify_clean()
    assert listing() == store["listing"]


# -- class 8: read-only stores -----------------------------------------------------------------
def _mount(*args: str) -> bool:
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", *args], capture_output=True).returncode == 0


@pytest.fixture
def tmpfs(tmp_path):
    mnt = tmp_path / "fs"
    mnt.mkdir()
    if not _mount("-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)):
        pytest.skip("cannot mount a tmpfs (needs root, as CI runs)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def _pulled_into(root: Path, registry, repo: str, monkeypatch) -> dict:
    monkeypatch.setenv("IMGCTL_ROOT", str(root))
    img = make_image([make_layer({"etc/x": b"X" * 3000}, "gzip"), make_layer({"y": b"Y" * 100}, "zstd")])
    push_image(registry.url, repo, img, tag="v")
    name = f"{registry.host}/{repo}:v"
    assert run("pull", "-q", name).code == 0
    return {"name": name, "img": img, "listing": listing()}


READS = [
    ["images"],
    ["images", "-a", "--digests"],
    ["inspect", "NAME"],
    ["history", "NAME"],
    ["system", "df", "-v"],
    ["verify"],
    ["save", "-o", "OUT/a.tar", "NAME"],
    ["save", "--format", "oci-archive", "-o", "OUT/b.tar", "NAME"],
    ["export", "-o", "OUT/c.tar", "NAME"],
]

WRITES = [
    ["tag", "NAME", "other:t"],
    ["rmi", "NAME"],
    ["image", "prune", "-af"],
    ["verify", "--repair"],
]


def _args(args: list[str], name: str, out: Path) -> list[str]:
    return [name if a == "NAME" else a.replace("OUT", str(out)) for a in args]


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_mtime_ns, p.stat().st_size)
            for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("wal", [False, True], ids=["checkpointed", "wal-left-by-a-crash"])
def test_read_only_mount(tmpfs, registry, unique_repo, monkeypatch, tmp_path, wal):
    root = tmpfs / "root"
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    if wal:  # a WAL that still holds the last commit, as a killed process leaves it
        con = sqlite3.connect(root / "index.db")
        con.execute("PRAGMA wal_autocheckpoint = 0")
        con.execute("INSERT INTO tags SELECT repository, 'walonly', image_id, NULL FROM tags")
        con.commit()
        from imgctl.store.journal import journal_line as _journal_line  # as imgctl journals it before committing

        with open(root / "refs.journal", "ab") as f:
            for repo, image in con.execute("SELECT repository, image_id FROM tags WHERE tag = 'walonly'"):
                f.write(_journal_line(("tag", repo, "walonly", image, None)))
        shutil.copy(root / "index.db-wal", tmp_path / "wal")
        shutil.copy(root / "index.db-shm", tmp_path / "shm")
        con.close()
        shutil.copy(tmp_path / "wal", root / "index.db-wal")
        shutil.copy(tmp_path / "shm", root / "index.db-shm")
        ref, _, image = s["listing"][0].split()
        s["listing"] = sorted([*s["listing"], f"{ref[:-2]}:walonly <none> {image}"])
    assert _mount("-o", "remount,ro", str(tmpfs))
    before = _files(root)
    out = tmp_path / "out"
    out.mkdir()
    for args in READS:
        r = run(*_args(args, s["name"], out))
        assert r.code == 0, (args, r.err)
        assert r.err == "", (args, r.err)
    assert listing() == s["listing"]
    for args in WRITES:
        r = run(*_args(args, s["name"], out))
        fails_closed(r, names="read-only")
    assert _files(root) == before  # not one byte written
    assert _mount("-o", "remount,rw", str(tmpfs))
    assert run("load", "-i", str(out / "a.tar")).code == 0  # what save wrote there is whole
    verify_clean()


def test_store_without_write_permission(registry, unique_repo, monkeypatch, tmp_path):
    """Permission bits, not a mount: the store is mode 555/444 and the commands run without the
    capabilities that let root ignore them (setpriv drops them from the bounding set)."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run a command that permission bits apply to")
    root = tmp_path / "root"
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    for p in [*root.rglob("*"), root]:
        os.chmod(p, 0o555 if p.is_dir() else 0o444)
    out = tmp_path / "out"
    out.mkdir()
    before = _files(root)
    drop = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner", sys.executable, "-m", "imgctl"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    try:
        for args in READS:
            p = subprocess.run([*drop, *_args(args, s["name"], out)], env=env, capture_output=True, text=True, timeout=60)
            assert (p.returncode, p.stderr) == (0, ""), args
        for args in WRITES:
            p = subprocess.run([*drop, *_args(args, s["name"], out)], env=env, capture_output=True, text=True, timeout=60)
            assert p.returncode == 1, (args, p.stdout, p.stderr)
            assert len(p.stderr.splitlines()) == 1 and "read-only" in p.stderr and "Traceback" not in p.stderr, p.stderr
        assert _files(root) == before
    finally:
        for p in [root, *root.rglob("*")]:
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
    verify_clean()


# -- class 3: a full disk ----------------------------------------------------------------------
def _gzip_tar_of_zeros(path: Path, size: int) -> None:
    """A small file that a spool inflates to SIZE bytes (more than the disk has)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("blobs/sha256/" + "0" * 64)
        info.size = size
        tar.addfile(info, io.BytesIO(bytes(size)))
    path.write_bytes(gzip.compress(buf.getvalue(), 9))


def _fill(filler: Path) -> Path:
    """Take every free byte of the filesystem with FILLER."""
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(b"\xff" * 65536)
                f.flush()
        except OSError:
            pass
    return filler


def _reads_work(s: dict) -> None:
    assert listing() == s["listing"]
    for args in (["inspect", s["name"]], ["system", "df"], ["verify"]):
        r = run(*args)
        assert (r.code, r.err) == (0, ""), (args, r.err)


@pytest.mark.parametrize("how", ["file", "stdin"])
def test_load_on_a_full_disk_removes_its_spool(tmpfs, registry, unique_repo, monkeypatch, tmp_path, how):
    root = tmpfs / "root"
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    big = tmp_path / "big.tar.gz"
    _gzip_tar_of_zeros(big, 40 << 20)  # 40 MiB inflated, 16 MiB of disk
    if how == "file":
        r = run("load", "-i", str(big))
        fails_closed(r, names="No space left on device")
    else:
        with open(big, "rb") as f:
            m = subprocess.run([sys.executable, "-m", "imgctl", "load"], stdin=f, capture_output=True, text=True,
                               timeout=120, env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
        assert m.returncode == 1 and len(m.stderr.splitlines()) == 1, m.stderr
        assert "No space left on device" in m.stderr and "Traceback" not in m.stderr
    assert list((root / "ingest").iterdir()) == []  # the spool went with the failure
    _reads_work(s)
    assert run("tag", s["name"], "again:t").code == 0  # the space is back: writes work too
    assert run("rmi", "again:t").code == 0
    assert run("image", "prune", "-af").code == 0
    assert_store_verifies(root)


def test_a_full_disk_leaves_reads_working_and_writes_one_line(tmpfs, registry, unique_repo, monkeypatch):
    root = tmpfs / "root"
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    journal = (root / "refs.journal").read_bytes()
    filler = _fill(tmpfs / "filler")  # outside the store
    _reads_work(s)
    for args in (["tag", s["name"], "again:t"], ["rmi", s["name"]], ["image", "prune", "-af"], ["verify", "--repair"]):
        r = run(*args)
        fails_closed(r, names=f"cannot write to the store at {root}: No space left on device")
    assert listing() == s["listing"]
    assert (root / "refs.journal").read_bytes().startswith(journal)  # appended to, or left alone: never torn
    filler.unlink()
    verify_clean()
    assert_store_verifies(root)


def test_a_dead_loads_spool_filling_the_disk_is_collected(tmpfs, registry, unique_repo, monkeypatch):
    """The disk is full of a killed load's spool: reads work, and the next write removes it."""
    root = tmpfs / "root"
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    dead = subprocess.Popen(["true"])
    dead.wait()
    spool = _fill(root / "ingest" / f"load.{dead.pid}.0badcafe.tar")
    _reads_work(s)
    r = run("rmi", s["name"])
    assert r.code == 0, r.err
    assert not spool.exists()
    assert listing() == []
    verify_clean()


# -- class 6 (store): things where a blob should be ------------------------------------------
def _readme(root, s):
    (root / "blobs/sha256/README").write_text("not a blob\n")


def _dir_like_digest(root, s):
    d = root / "blobs/sha256" / ("ab" * 32)
    d.mkdir()
    (d / "inner").write_bytes(b"x")


def _dir_instead_of_layer(root, s):
    path = blob_files(root)[s["img"].layers[0].digest]
    path.unlink()
    path.mkdir()


def _symlink_instead_of_layer(root, s):
    path = blob_files(root)[s["img"].layers[0].digest]
    outside = root.parent / "outside-blob"
    outside.write_bytes(path.read_bytes())  # even the right content: a symlink is not a blob
    path.unlink()
    path.symlink_to(outside)


def _dangling_symlink(root, s):
    (root / "blobs/sha256" / ("cd" * 32)).symlink_to("/nonexistent/blob")


def _fifo_instead_of_config(root, s):
    path = blob_files(root)[s["img"].config_digest]
    path.unlink()
    os.mkfifo(path)


def _wrong_content(root, s):
    blob_files(root)[s["img"].layers[1].digest].write_bytes(b"other content")


def _zero_length_layer(root, s):
    blob_files(root)[s["img"].layers[0].digest].write_bytes(b"")


def _zero_length_stray(root, s):
    (root / "blobs/sha256" / ("ef" * 32)).write_bytes(b"")


def _uppercase_copy(root, s):
    path = blob_files(root)[s["img"].layers[1].digest]
    shutil.copy(path, path.with_name(path.name.upper()))


def _escape_named_stray(root, s):
    (root / "blobs/sha256" / "\x1b]0;owned\x07\x1b[2J\rREADME").write_text("a terminal-escape name\n")


STRAYS = {
    "readme": _readme,
    "escape-named-stray": _escape_named_stray,
    "dir-named-like-a-digest": _dir_like_digest,
    "dir-instead-of-a-layer": _dir_instead_of_layer,
    "symlink-instead-of-a-layer": _symlink_instead_of_layer,
    "dangling-symlink": _dangling_symlink,
    "fifo-instead-of-the-config": _fifo_instead_of_config,
    "wrong-content": _wrong_content,
    "zero-length-layer": _zero_length_layer,
    "zero-length-stray": _zero_length_stray,
    "uppercase-copy": _uppercase_copy,
}


@pytest.mark.parametrize("kind", sorted(STRAYS))
def test_stray_entries_fail_closed_and_repair_clears_them(registry, unique_repo, monkeypatch, store_root, tmp_path, kind):
    root = store_root
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    STRAYS[kind](root, s)
    entries = set(os.listdir(root / "blobs/sha256"))
    needed = {d[7:] for d in [s["img"].manifest_digest, s["img"].config_digest, *(l.digest for l in s["img"].layers)]}
    r = run("verify")
    fails_closed(r)
    assert not any(c in r.out + r.err for c in "\x1b\x07\r"), "a name found on disk reached the terminal raw"

    for args in (["images"], ["system", "df", "-v"], ["inspect", s["name"]], ["history", s["name"]],
                 ["save", "-o", str(tmp_path / "a.tar"), s["name"]], ["export", "-o", str(tmp_path / "c.tar"), s["name"]],
                 ["image", "prune", "-f"]):
        r = run(*args)
        if r.code:
            fails_closed(r)
        assert "Traceback" not in r.err
    assert needed & entries <= set(os.listdir(root / "blobs/sha256")), "a referenced blob was removed"

    r = run("verify", "--repair")
    assert r.code in (0, 1) and "Traceback" not in r.err, r.err
    assert not any(c in r.out + r.err for c in "\x1b\x07\r")
    left = os.listdir(root / "blobs/sha256")
    assert all(len(n) == 64 and n == n.lower() and (root / "blobs/sha256" / n).is_file()
               and not (root / "blobs/sha256" / n).is_symlink() for n in left), left
    r = run("pull", "-q", s["name"])  # whatever was lost comes back from the registry
    assert r.code == 0, r.err
    verify_clean()
    assert listing() == s["listing"]
    assert_store_verifies(root)


def test_read_only_blobs_dir(registry, unique_repo, monkeypatch, store_root):
    root = store_root
    s = _pulled_into(root, registry, unique_repo, monkeypatch)
    blobs = root / "blobs/sha256"
    if not (_mount("--bind", str(blobs), str(blobs)) and _mount("-o", "remount,ro,bind", str(blobs))):
        pytest.skip("cannot bind-mount (needs root, as CI runs)")
    try:
        _reads_work(s)
        other = make_image([make_layer({"n": b"N" * 500}, "gzip")])
        push_image(registry.url, unique_repo, other, tag="w")
        for args in (["pull", "-q", s["name"].replace(":v", ":w")], ["rmi", s["name"]]):
            r = run(*args)
            fails_closed(r, names=f"cannot write to the store at {root}: ")
        assert listing() == []  # the rmi was recorded; its blobs wait for the next prune
        assert len(blob_files(root)) == 4
        r = run("verify")
        assert r.code == 0, r.err
    finally:
        subprocess.run(["umount", str(blobs)], check=False)
    r = run("image", "prune", "-f")
    assert r.code == 0, r.err
    assert blob_files(root) == {}
    verify_clean()
    assert_store_verifies(root)


# -- the reference journal ---------------------------------------------------------------------
def _lose_index_and_repair(root: Path) -> None:
    for name in ("index.db", "index.db-wal", "index.db-shm"):
        if (root / name).exists():
            (root / name).unlink()
    r = run("verify", "--repair")
    assert r.code == 0 or "Rebuilt the index" in r.out, (r.out, r.err)
    verify_clean()


def test_journal_follows_every_kind_of_reference_change(store, monkeypatch):
    """Tags made, moved and removed, digests dropped, images pruned: after the index is lost,
    repair gives back exactly the references there were (the journal is compacted on the way)."""
    import imgctl.store.journal

    monkeypatch.setattr(imgctl.store.journal, "JOURNAL_COMPACT_AT", 2048)
    repo, a, b = store["repo"], store["a"], store["b"]
    steps = [
        ["tag", f"{repo}:a", "local/one:1"],
        ["tag", f"{repo}:a", "local/one:2"],
        ["tag", f"{repo}:b", "local/one:1"],  # moves
        ["rmi", "local/one:2"],
        ["rmi", f"{repo}@{b.manifest_digest}"],
        ["tag", a.config_digest[7:19], "local/two"],
    ] + [["tag", f"{repo}:b", f"local/many:{i}"] for i in range(30)] + [
        ["rmi", *[f"local/many:{i}" for i in range(29)]],
    ]
    for args in steps:
        r = run(*args)
        assert r.code == 0, (args, r.err)
    journal = (store["root"] / "refs.journal").read_text().splitlines()
    assert '["snapshot",' in journal[0] and len(journal) < 45, len(journal)  # 66 changes: it was compacted
    before = listing()
    _lose_index_and_repair(store["root"])
    assert listing() == before


def test_store_from_before_the_journal_gets_one(store):
    root = store["root"]
    (root / "refs.journal").unlink()
    assert listing() == store["listing"]  # the first open writes the journal...
    assert (root / "refs.journal").stat().st_size > 0
    _lose_index_and_repair(root)  # ...which is enough to survive the index
    assert listing() == store["listing"]


def test_tag_pointing_at_an_image_the_blobs_cannot_prove_is_not_restored(store):
    """A journal line naming an image whose blobs are gone (or never were) is not believed."""
    root = store["root"]
    b = store["b"]
    blob_files(root)[b.layers[0].digest].unlink()
    _zero_pages(root / "index.db")
    r = run("verify", "--repair")
    assert f"Could not restore {store['repo']}:b: its image is not complete in the store (pull it again)" in r.lines, r.out
    verify_clean()
    assert [l for l in listing() if l.startswith(f"{store['repo']}:b ")] == []
    assert run("pull", "-q", f"{store['repo']}:b").code == 0
    verify_clean()


# -- measured: memory and time -----------------------------------------------------------------
def test_measured_damaged_index_and_full_disk(store, tmpfs, tmp_path, registry, unique_repo, monkeypatch):
    """As separate processes: refusing, repairing and failing on a full disk stay under 200 MiB
    and end within 30 s each."""
    from tests.support.hostile import run_measured

    env = {**os.environ, "IMGCTL_ROOT": str(store["root"])}
    _zero_pages(store["root"] / "index.db")
    for args, code in ((["image", "prune", "-af"], 1), (["images"], 1), (["verify", "--repair"], 1), (["verify"], 0)):
        m = run_measured(args, timeout=30, env=env)
        assert not m.timed_out and m.code == code, (args, m.code, m.err)
        assert m.maxrss_kib < 200 * 1024, (args, m.maxrss_kib)
        assert "Traceback" not in m.err and len(m.err.splitlines()) <= 3
    assert set(blob_files(store["root"])) == store["blobs"]

    root = tmpfs / "root"
    _pulled_into(root, registry, unique_repo, monkeypatch)
    big = tmp_path / "big.tar.gz"
    _gzip_tar_of_zeros(big, 40 << 20)
    m = run_measured(["load", "-i", str(big)], timeout=30, env={**os.environ, "IMGCTL_ROOT": str(root)})
    assert not m.timed_out and m.code == 1 and m.maxrss_kib < 200 * 1024, (m.code, m.maxrss_kib, m.err)
    assert m.err == f"Error: cannot write to the store at {root}: No space left on device\n"
    assert list((root / "ingest").iterdir()) == []


def _move_tag_to_other_image(db: Path) -> None:
    """The worst a damaged row can be: still valid SQL, an existing image, the wrong one. Image A
    keeps one tag fewer; with its last tag moved it would look dangling to prune."""
    con = sqlite3.connect(db)
    (b,) = con.execute("SELECT image_id FROM tags WHERE tag = 'b'").fetchone()
    con.execute("UPDATE tags SET image_id = ? WHERE tag IN ('a', 'x')", (b,))
    con.commit()
    con.close()


@pytest.mark.parametrize("damage", [
    _move_tag_to_other_image,
    _sql("UPDATE tags SET digest = replace(digest, 'a', 'b') WHERE tag = 'b'"),
    _sql("DELETE FROM tags WHERE tag = 'x'"),
    _sql("DELETE FROM digests"),
], ids=["tag-moved-to-another-image", "tag-digest-garbled", "tag-row-lost", "digest-row-lost"])
def test_index_rows_that_disagree_with_the_journal_are_caught(store, damage):
    root = store["root"]
    damage(root / "index.db")
    for args in (["image", "prune", "-af"], ["rmi", store["b"].config_digest[7:19]]):
        r = run(*args)
        fails_closed(r, names="disagree")
        assert set(blob_files(root)) == store["blobs"]
    r = run("verify")
    fails_closed(r)
    assert "reference journal" in r.out, r.out
    r = run("verify", "--repair")
    assert "Made" in r.out and "agree again" in r.out, r.out
    verify_clean()
    assert listing() == store["listing"]


def test_journal_ahead_of_the_index_is_settled(store):
    """A journal line whose transaction did not commit (an image the index never got)."""
    from imgctl.store.journal import journal_line as _journal_line

    root = store["root"]
    with open(root / "refs.journal", "ab") as f:
        f.write(_journal_line(("tag", "docker.io/library/ghost", "latest", "sha256:" + "9" * 64, None)))
    r = run("verify")
    fails_closed(r)
    assert "tag ghost:latest: the reference journal names image 999999999999, which the index does not hold" in r.lines
    r = run("verify", "--repair")
    verify_clean()
    assert listing() == store["listing"]
    assert run("image", "prune", "-af").code == 0


def test_journal_append_cut_short_by_a_full_disk_leaves_no_torn_line(store, monkeypatch):
    """Half a record reaches the disk, then ENOSPC: the record is cut off again, the index change
    rolled back, one line said; the next tag appends cleanly."""
    import errno

    import imgctl.store.journal

    journal = store["root"] / "refs.journal"
    before = journal.read_bytes()
    real_write = os.write

    def half_then_full(fd, data):
        if os.fstat(fd).st_ino == journal.stat().st_ino:
            real_write(fd, bytes(data[: len(data) // 2]))
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(imgctl.store.journal.os, "write", half_then_full)
    r = run("tag", f"{store['repo']}:a", "local/new:1")
    monkeypatch.setattr(imgctl.store.journal.os, "write", real_write)
    fails_closed(r, names="No space left on device")
    assert journal.read_bytes() == before
    assert listing() == store["listing"]
    assert run("tag", f"{store['repo']}:a", "local/new:1").code == 0
    _lose_index_and_repair(store["root"])
    assert "local/new:1" in " ".join(listing())


def test_concurrent_reference_changes_keep_journal_and_index_in_step(store):
    """Four processes tag, move and untag at once: the journal's order is the commit order,
    so after the index is lost, repair gives back exactly what the index held."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    a, b = f"{store['repo']}:a", f"{store['repo']}:b"
    script = (
        "import sys\nfrom imgctl.cli import main\n"
        "w = sys.argv[1]\n"
        "for i in range(8):\n"
        "    for args in (['tag', sys.argv[2], f'race/t:{i}'], ['tag', sys.argv[3], f'race/{w}:{i}'],\n"
        "                 ['rmi', f'race/{w}:{i // 2}']):\n"
        "        try:\n"
        "            main(args)\n"
        "        except SystemExit:\n"
        "            pass\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", script, f"w{n}", a if n % 2 else b, b if n % 2 else a],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for n in range(4)]
    for p in procs:
        assert p.wait(120) in (0, 1)
    from imgctl.store import Store

    s = Store(store["root"])
    try:
        assert s.ref_differences() == []
    finally:
        s.close()
    before = listing()
    assert any(line.startswith("race/t:") for line in before)
    _lose_index_and_repair(store["root"])
    assert listing() == before
