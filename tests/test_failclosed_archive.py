"""Issue 13 for save, load and export: hostile archives and layers fail closed.

Each case builds its input by hand (a docker-archive or a layer tar byte by byte, where
``tarfile`` cannot write what an attacker would), runs imgctl as a measured child where
memory or time is at stake, and checks the fail-closed promise: exit 1, at most three lines
on stderr and no traceback, nothing new in ``images``, the store verifies, nothing is left
behind (no scratch directory, no partial ``-o`` file, no spool in ``ingest/``), peak RSS
under 200 MiB and a stated time bound.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.hostile import run_measured
from tests.support.storecheck import assert_store_verifies, image_ids

MIB = 1024 * 1024
RSS_LIMIT = 200 * MIB


# -- building blocks ------------------------------------------------------------------------------
def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _pad(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 512)


def _octal(value: int, width: int) -> bytes:
    if value >= 8 ** (width - 1):  # GNU base-256: a high bit, then the big-endian number
        return b"\x80" + value.to_bytes(width - 1, "big")
    return b"%0*o\0" % (width - 1, value)


def raw_header(name: bytes, size: int, kind: bytes, *, extra: dict[int, bytes] | None = None, gnu: bool = False) -> bytes:
    """One 512-byte tar header with a correct checksum; EXTRA writes raw bytes at offsets."""
    h = bytearray(512)
    h[0 : len(name)] = name
    h[100:108] = _octal(0o644, 8)
    h[108:116] = _octal(0, 8)
    h[116:124] = _octal(0, 8)
    h[124:136] = _octal(size, 12)
    h[136:148] = _octal(0, 12)
    h[156:157] = kind
    h[257:265] = b"ustar  \0" if gnu else b"ustar\x0000"
    for offset, data in (extra or {}).items():
        h[offset : offset + len(data)] = data
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h)


def pax_records(pairs: list[tuple[str, str | bytes]]) -> bytes:
    out = b""
    for key, value in pairs:
        body = b" " + key.encode() + b"=" + (value if isinstance(value, bytes) else value.encode()) + b"\n"
        n = len(body) + 1
        while len(str(n).encode()) + len(body) != n:
            n = len(str(n).encode()) + len(body)
        out += str(n).encode() + body
    return out


def pax_member(pairs: list[tuple[str, str | bytes]]) -> bytes:
    data = pax_records(pairs)
    return raw_header(b"PaxHeader", len(data), b"x") + _pad(data)


def tar_body(archive: bytes) -> bytes:
    """A tar without its end-of-archive blocks (its last member must not end in NUL bytes)."""
    return _pad(archive.rstrip(b"\0"))


def end_of_tar() -> bytes:
    return b"\0" * 1024


def tar_of(entries: list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for e in entries:
            info, data = e if isinstance(e, tuple) else (e, None)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def info(name: str, kind: bytes = tarfile.REGTYPE, size: int = 0, **kw) -> tarfile.TarInfo:
    i = tarfile.TarInfo(name)
    i.type, i.size, i.mode = kind, size, 0o755 if kind == tarfile.DIRTYPE else 0o644
    for k, v in kw.items():
        setattr(i, k, v)
    return i


def gnu_sparse_layer(realsize: int, data: bytes = b"x") -> bytes:
    """An old-GNU sparse member ('S'): DATA at offset 0, then a hole up to REALSIZE."""
    sparse = _octal(0, 12) + _octal(len(data), 12)
    header = raw_header(b"big", len(data), b"S", extra={386: sparse, 482: b"\0", 483: _octal(realsize, 12)}, gnu=True)
    return header + _pad(data) + end_of_tar()


def pax10_sparse_layer(realsize: int, data: bytes = b"x") -> bytes:
    """PAX sparse 1.0: the map opens the member's data."""
    pax = pax_member([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "big"), ("GNU.sparse.realsize", str(realsize))])
    body = _pad(b"1\n0\n%d\n" % len(data)) + data
    return pax + raw_header(b"GNUSparseFile.0/big", len(body), b"0") + _pad(body) + end_of_tar()


def pax01_sparse_layer(realsize: int, data: bytes = b"x") -> bytes:
    pax = pax_member([("GNU.sparse.size", str(realsize)), ("GNU.sparse.numblocks", "1"), ("GNU.sparse.map", f"0,{len(data)}"), ("GNU.sparse.name", "big")])
    return pax + raw_header(b"GNUSparseFile.0/big", len(data), b"0") + _pad(data) + end_of_tar()


def pax00_sparse_layer(realsize: int, data: bytes = b"x") -> bytes:
    pax = pax_member([("GNU.sparse.size", str(realsize)), ("GNU.sparse.numblocks", "1"), ("GNU.sparse.offset", "0"), ("GNU.sparse.numbytes", str(len(data))), ("GNU.sparse.name", "big")])
    return pax + raw_header(b"GNUSparseFile.0/big", len(data), b"0") + _pad(data) + end_of_tar()


def config_for(layers: list[bytes]) -> bytes:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [sha(l) for l in layers]},
    }
    return json.dumps(doc).encode()


def docker_archive(layers: list[bytes], tags: list[str] | None = None, *, manifest: bytes | None = None, config: bytes | None = None) -> bytes:
    """A docker-archive of uncompressed LAYERS (or with MANIFEST/CONFIG given as raw bytes)."""
    config = config if config is not None else config_for(layers)
    cname = sha(config)[7:] + ".json"
    lnames = [sha(l)[7:] + ".tar" for l in layers]
    if manifest is None:
        manifest = json.dumps([{"Config": cname, "RepoTags": tags or [], "Layers": lnames}]).encode()
    entries = [(info(cname, size=len(config)), config)]
    entries += [(info(n, size=len(l)), l) for n, l in zip(lnames, layers)]
    entries.append((info("manifest.json", size=len(manifest)), manifest))
    return tar_of(entries)


def load(tmp_path: Path, archive: bytes, name: str = "in.tar"):
    path = tmp_path / name
    path.write_bytes(archive)
    return run("load", "-i", path)


def load_layers(tmp_path: Path, layers: list[bytes], tag: str) -> str:
    r = load(tmp_path, docker_archive(layers, [tag]))
    assert r.code == 0, r.err
    return tag


def assert_failed_closed(m, store_root: Path, before: set[str], *, seconds: float, rss: int = RSS_LIMIT) -> None:
    assert not m.timed_out, f"still running after {seconds} s"
    assert m.code == 1, (m.code, m.err)
    lines = m.err.splitlines()
    assert 1 <= len(lines) <= 3 and "Traceback" not in m.err, m.err
    assert lines[-1].startswith("Error: "), m.err
    assert m.seconds < seconds, f"took {m.seconds:.1f} s"
    assert m.maxrss_kib * 1024 < rss, f"peaked at {m.maxrss_kib // 1024} MiB"
    assert image_ids(store_root) == before
    assert_store_verifies(store_root)
    v = run("verify")
    assert v.code == 0, v.out + v.err


def assert_export_fails_closed(tmp_path: Path, store_root: Path, name: str, message: str, *, seconds: float = 30) -> None:
    """``export -o`` and ``export --dir`` of NAME both fail closed with MESSAGE and leave nothing
    next to the output: no -o file, no scratch directory, no --dir directory."""
    before = image_ids(store_root)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["export", "-o", str(out / "fs.tar"), name], ["export", "--dir", str(out / "fs"), name]):
        m = run_measured(args, timeout=2 * seconds)
        assert_failed_closed(m, store_root, before, seconds=seconds)
        assert message in m.err, m.err
        assert leftovers(out, set()) == []


def leftovers(directory: Path, keep: set[str]) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name not in keep)


def disk_usage(path: Path) -> int:
    return os.stat(path).st_blocks * 512


# -- class 2: export of sparse members ----------------------------------------------------------
SPARSE_KINDS = {"gnu": gnu_sparse_layer, "pax0.0": pax00_sparse_layer, "pax0.1": pax01_sparse_layer, "pax1.0": pax10_sparse_layer}


@pytest.mark.parametrize("kind", sorted(SPARSE_KINDS))
def test_export_of_a_sparse_bomb_is_refused_and_leaves_nothing(kind, tmp_path, store_root):
    """A tiny layer whose sparse member claims 1 TiB: refused before a byte of it is written."""
    layer = SPARSE_KINDS[kind](1 << 40)
    assert len(layer) <= 4096  # a few tar blocks
    name = load_layers(tmp_path, [layer], f"sparse/{kind.replace('.', '')}:bomb")
    message = "sparse file 'big' expands to 1099511627776 bytes; the export would write more than its limit of"
    assert_export_fails_closed(tmp_path, store_root, name, message)
    assert "raise it with --max-size SIZE" in run("export", "--dir", tmp_path / "again", name).err


@pytest.mark.parametrize("kind", sorted(SPARSE_KINDS))
def test_export_writes_sparse_holes_as_holes(kind, tmp_path, store_root):
    """Under the limit, --dir keeps the holes (the file takes a few KiB on disk) and -o writes
    the expanded bytes once; the content is the data followed by zeros."""
    size = 64 * MIB
    name = load_layers(tmp_path, [SPARSE_KINDS[kind](size, b"head")], f"sparse/{kind.replace('.', '')}:ok")
    out = tmp_path / "out"
    out.mkdir()
    r = run("export", "--dir", out / "fs", name)
    assert r.code == 0, r.err
    big = out / "fs" / "big"
    assert big.stat().st_size == size and disk_usage(big) < MIB
    with open(big, "rb") as f:
        assert f.read(8) == b"head\0\0\0\0"
    r = run("export", "-o", out / "fs.tar", name)
    assert r.code == 0, r.err
    with tarfile.open(out / "fs.tar") as tf:
        m = tf.getmember("big")
        assert m.size == size and tf.extractfile(m).read(5) == b"head\0"
    assert leftovers(out, set()) == ["fs", "fs.tar"]


def test_export_limits_can_be_raised_and_lowered(tmp_path, store_root):
    name = load_layers(tmp_path, [gnu_sparse_layer(3 * 1024**3)], "sparse/limits:1")
    r = run("export", "-o", tmp_path / "a.tar", name)
    assert r.code == 1 and "--max-size" in r.err
    r = run("export", "--max-size", "4GiB", "--dir", tmp_path / "fs", name)
    assert r.code == 0, r.err
    assert (tmp_path / "fs" / "big").stat().st_size == 3 * 1024**3
    r = run("export", "--max-entries", "0", "--dir", tmp_path / "fs2", name)
    assert r.code == 1 and r.err.startswith("Error: the image has more than 0 entries") and "--max-entries" in r.err
    assert not (tmp_path / "fs2").exists()


# -- class 6: export of layers with hostile headers ---------------------------------------------
def deep_tree(levels: int) -> bytes:
    path, entries = "", []
    for _ in range(levels):
        path = f"{path}d/" if path else "d/"
        entries.append(info(path.rstrip("/"), tarfile.DIRTYPE))
    entries.append((info(path + "leaf", size=2), b"ok"))
    return tar_of(entries)


def test_export_of_a_1100_level_tree_fails_closed(tmp_path, store_root):
    name = load_layers(tmp_path, [deep_tree(1100)], "deep/tree:1100")
    assert_export_fails_closed(tmp_path, store_root, name, "directories deep, more than the limit of 1024", seconds=60)


def test_export_of_a_1000_level_tree_works_without_recursion(tmp_path, store_root):
    """Just under the depth limit: every walker (build, opaque directories, tar, cleanup) is iterative."""
    layer2 = tar_of([info("d/.wh..wh..opq"), info("d/new", size=0)])  # the opaque walk goes down the tree
    name = load_layers(tmp_path, [deep_tree(1000), deep_tree(1000), layer2], "deep/tree:1000")
    out = tmp_path / "out"
    out.mkdir()
    m = run_measured(["export", "-o", str(out / "fs.tar"), name], timeout=120)
    assert m.code == 0, m.err
    with tarfile.open(out / "fs.tar") as tf:
        assert sorted(tf.getnames()) == ["d", "d/new"]
    assert leftovers(out, set()) == ["fs.tar"]
    name = load_layers(tmp_path, [deep_tree(1000)], "deep/tree:plain")
    m = run_measured(["export", "-o", str(out / "fs2.tar"), name], timeout=120)
    assert m.code == 0, m.err
    with tarfile.open(out / "fs2.tar") as tf:
        names = tf.getnames()
    assert len(names) == 1001 and names[-1].count("/") == 1000
    assert leftovers(out, set()) == ["fs.tar", "fs2.tar"]


def _pax_file(name: bytes, pairs: list[tuple[str, str | bytes]], data: bytes = b"x") -> bytes:
    return pax_member(pairs) + raw_header(name, len(data), b"0") + _pad(data) + end_of_tar()


HOSTILE_HEADERS = {
    "nul-in-name": (_pax_file(b"a", [("path", b"etc/pass\0wd")]), "NUL byte in its name"),
    "nul-in-link": (pax_member([("linkpath", b"x\0y")]) + raw_header(b"l", 0, b"2") + end_of_tar(), "NUL byte in its link target"),
    "uid-2^40": (_pax_file(b"a", [("uid", str(1 << 40))]), "uid 1099511627776, outside 0..4294967294"),
    "gid-negative": (_pax_file(b"a", [("gid", "-5")]), "gid -5, outside"),
    "huge-ext-header": (pax_member([("comment", "x" * (2 * MIB))]) + raw_header(b"a", 0, b"0") + end_of_tar(), "extended header of"),
    "sparse-map-too-long": (
        pax_member([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "big"), ("GNU.sparse.realsize", "10")])
        + raw_header(b"GNUSparseFile.0/big", 512, b"0") + _pad(b"99999999\n0\n"),
        "sparse map of more than",
    ),
    "sparse-map-truncated": (
        pax_member([("GNU.sparse.major", "1"), ("GNU.sparse.minor", "0"), ("GNU.sparse.name", "big"), ("GNU.sparse.realsize", "10")])
        + raw_header(b"GNUSparseFile.0/big", 512, b"0") + _pad(b"3\n0\n"),
        "invalid sparse map",
    ),
    "sparse-beyond-size": (pax10_sparse_layer(10, b"x" * 20), "invalid map"),
    "parent-escape": (_pax_file(b"a", [("path", "../../etc/x")]), "points outside the root filesystem"),
    "member-claims-1tib": (raw_header(b"a", 1 << 40, b"0") + b"x" * 512 + end_of_tar(), "'a' has 1099511627776 bytes; the export would write more"),
    "hardlink-to-itself-chain": (
        tar_of([info("h0", tarfile.LNKTYPE, linkname="h1"), info("h1", tarfile.LNKTYPE, linkname="h0")]),
        "hardlink 'h0' to missing 'h1'",
    ),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_HEADERS))
def test_export_of_hostile_headers_fails_closed(case, tmp_path, store_root):
    layer, message = HOSTILE_HEADERS[case]
    name = load_layers(tmp_path, [layer], f"hostile/{case.replace('^', '')}:1")
    assert_export_fails_closed(tmp_path, store_root, name, message)


def test_export_normalises_times_and_keeps_names_that_are_not_utf8(tmp_path, store_root):
    """mtime NaN, inf, negative or past 2242 becomes 0 (as a tar header can hold it); a name in
    Latin-1 survives byte for byte."""
    layer = b"".join(
        _pax_file(f"t-{label}".encode(), [("mtime", value)])[:-1024]
        for label, value in (("nan", "nan"), ("inf", "inf"), ("neg", "-100"), ("huge", "1e30"), ("ok", "1700000000"))
    ) + raw_header(b"caf\xe9", 0, b"0") + end_of_tar()
    name = load_layers(tmp_path, [layer], "hostile/times:1")
    out = tmp_path / "out"
    out.mkdir()
    r = run("export", "-o", out / "fs.tar", name)
    assert r.code == 0, r.err
    with tarfile.open(out / "fs.tar", encoding="utf-8", errors="surrogateescape") as tf:
        times = {m.name: m.mtime for m in tf.getmembers()}
    assert times.pop("caf\udce9") == 0
    assert times == {"t-nan": 0, "t-inf": 0, "t-neg": 0, "t-huge": 0, "t-ok": 1700000000}
    r = run("export", "--dir", out / "fs", name)
    assert r.code == 0, r.err
    assert sorted(os.listdir(os.fsencode(out / "fs"))) == [b"caf\xe9", b"t-huge", b"t-inf", b"t-nan", b"t-neg", b"t-ok"]


# -- class 6: load of hostile archives ----------------------------------------------------------
def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def small_layer() -> bytes:
    return tar_of([(info("hello", size=5), b"hello")])


def _archive_with(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    return tar_of([(i, d) if d is not None else i for i, d in members])


def _hostile_archives() -> dict[str, tuple[bytes, str]]:
    layer = small_layer()
    config = config_for([layer])
    cname, lname = sha(config)[7:] + ".json", sha(layer)[7:] + ".tar"
    good = [{"Config": cname, "RepoTags": ["evil/app:1"], "Layers": [lname]}]

    def with_manifest(doc, extra=()) -> bytes:
        manifest = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
        members = [(info(cname, size=len(config)), config), (info(lname, size=len(layer)), layer), *extra]
        return _archive_with([*members, (info("manifest.json", size=len(manifest)), manifest)])

    deep_config = b'{"rootfs":{"diff_ids":[]},"x":' + nested(5000) + b"}"
    oci_index = b'{"schemaVersion":2,"manifests":' + nested(100_000) + b"}"
    layout = b'{"imageLayoutVersion":"1.0.0"}'
    return {
        "manifest.json-nested": (with_manifest(nested(100_000)), "invalid archive: manifest.json: nested deeper than 100 levels"),
        "manifest.json-nested-250": (with_manifest(nested(250)), "nested deeper than 100 levels"),
        "index.json-nested": (
            _archive_with([(info("oci-layout", size=len(layout)), layout), (info("index.json", size=len(oci_index)), oci_index)]),
            "invalid manifest: nested deeper than 100 levels",
        ),
        "config-nested": (
            docker_archive([], ["evil/app:1"], config=deep_config),
            "invalid image config: nested deeper than 100 levels",
        ),
        "absolute-config": (with_manifest([{**good[0], "Config": "/etc/passwd"}]), "etc/passwd is missing"),
        "dotdot-layer": (with_manifest([{**good[0], "Layers": ["../../" + lname]}]), "is missing"),
        "nul-layer": (with_manifest([{**good[0], "Layers": [lname + "\0x"]}]), "is missing"),
        "symlinked-config": (
            with_manifest([{**good[0], "Config": "c.json"}], [(info("c.json", tarfile.SYMTYPE, linkname=lname), None)]),
            "invalid image config: not valid JSON",
        ),
        "symlink-loop": (
            with_manifest([{**good[0], "Layers": ["a"]}], [(info("a", tarfile.SYMTYPE, linkname="b"), None), (info("b", tarfile.SYMTYPE, linkname="a"), None)]),
            "layer a is missing",
        ),
        "hardlink-chain": (
            with_manifest(
                [{**good[0], "Layers": ["h20"]}],
                [(info(f"h{i}", tarfile.LNKTYPE, linkname=f"h{i - 1}" if i else lname), None) for i in range(21)],
            ),
            "layer h20 is missing",
        ),
        "duplicate-layer-member": (
            with_manifest(good, [(info(lname, size=len(small_layer() + b"x" * 512)), small_layer() + b"x" * 512)]),
            "filesystem layer verification failed",
        ),
        "repotag-invalid": (with_manifest([{**good[0], "RepoTags": ["evil/App:1"]}]), "invalid reference format"),
        "repotag-nul": (with_manifest([{**good[0], "RepoTags": ["a\0b:1"]}]), "invalid reference format"),
        "member-claims-huge-size": (
            tar_body(with_manifest(good)) + raw_header(b"big", 1 << 40, b"0") + b"x" * 1024,
            "invalid archive",
        ),
        "not-a-tar": (b"\x89PNG" + b"\0" * 2000, "not a tar file"),
    }


HOSTILE_ARCHIVES = _hostile_archives()


@pytest.mark.parametrize("case", sorted(HOSTILE_ARCHIVES))
def test_load_of_hostile_archives_fails_closed(case, tmp_path, store_root):
    archive, message = HOSTILE_ARCHIVES[case]
    before = image_ids(store_root)
    for compressed in (False, True):
        path = tmp_path / ("in.tar.gz" if compressed else "in.tar")
        path.write_bytes(gzip.compress(archive, 1) if compressed else archive)
        m = run_measured(["load", "-i", str(path)], timeout=60)
        assert_failed_closed(m, store_root, before, seconds=30)
        assert message in m.err, m.err
        assert not (store_root / "ingest").exists() or leftovers(store_root / "ingest", set()) == []


def test_load_of_a_multi_image_archive_adds_nothing_when_a_later_entry_fails(tmp_path, store_root):
    layer = small_layer()
    config = config_for([layer])
    bad = config_for([b"other"])
    manifest = json.dumps([
        {"Config": sha(config)[7:] + ".json", "RepoTags": ["first/ok:1"], "Layers": [sha(layer)[7:] + ".tar"]},
        {"Config": sha(bad)[7:] + ".json", "RepoTags": ["second/bad:1"], "Layers": [sha(layer)[7:] + ".tar"]},
    ]).encode()
    archive = _archive_with([
        (info(sha(config)[7:] + ".json", size=len(config)), config),
        (info(sha(bad)[7:] + ".json", size=len(bad)), bad),
        (info(sha(layer)[7:] + ".tar", size=len(layer)), layer),
        (info("manifest.json", size=len(manifest)), manifest),
    ])
    (tmp_path / "in.tar").write_bytes(archive)
    m = run_measured(["load", "-i", str(tmp_path / "in.tar")], timeout=60)
    assert_failed_closed(m, store_root, set(), seconds=30)
    assert "filesystem layer verification failed" in m.err
    assert run("images", "-q").out == ""


# -- class 2: load of compression bombs and oversized input -------------------------------------
def _fifo_load(tmp_path: Path, data: bytes, *extra: str):
    """``load`` from a pipe (a FIFO fed by a thread), as ``cat x | imgctl load`` would."""
    import threading

    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)

    def feed() -> None:
        try:
            with open(fifo, "wb") as f:
                f.write(data)
        except BrokenPipeError:
            pass

    t = threading.Thread(target=feed, daemon=True)
    t.start()
    try:
        return run_measured(["load", *extra, "-i", str(fifo)], timeout=120)
    finally:
        if t.is_alive():  # the reader gave up early: let the writer finish on a reader of our own
            with open(fifo, "rb") as f:
                while f.read(1 << 20):
                    pass
        t.join(10)


def _zstd_bomb(size: int) -> bytes:
    import zstandard

    c = zstandard.ZstdCompressor(level=19).compressobj()
    zeros = bytes(MIB)
    return b"".join(c.compress(zeros) for _ in range(size // MIB)) + c.flush()


@pytest.mark.parametrize("kind", ["gzip-file", "gzip-pipe", "zstd-file", "zstd-pipe"])
def test_load_of_a_compression_bomb_stops_at_the_ratio_limit(kind, tmp_path, store_root):
    """Zeros compressed to a few hundred KiB that expand to 1 GiB (zstd) or 400 MiB (gzip): the
    spool stops past 256 MiB + 100 x the input, names --max-ratio, and leaves nothing in ingest/."""
    codec, via = kind.split("-")
    if codec == "zstd":
        body = _zstd_bomb(1024 * MIB)
    else:
        c = __import__("zlib").compressobj(9, wbits=31)
        zeros = bytes(MIB)
        body = b"".join(c.compress(zeros) for _ in range(400)) + c.flush()
    assert len(body) < 2 * MIB
    before = image_ids(store_root)
    if via == "pipe":
        m = _fifo_load(tmp_path, body)
    else:
        (tmp_path / "bomb").write_bytes(body)
        m = run_measured(["load", "-i", str(tmp_path / "bomb")], timeout=120)
    assert_failed_closed(m, store_root, before, seconds=90)
    assert f"the {codec} input expands more than 100 times" in m.err and "--max-ratio" in m.err, m.err
    assert leftovers(store_root / "ingest", set()) == []


def test_load_max_ratio_can_be_raised(tmp_path, store_root):
    """--max-ratio lets a legitimately well-compressed archive through: 64 MiB of zeros in a layer,
    compressed to ~60 KiB by gzip, with the floor lowered so the default ratio of 100 bites."""
    layer = tar_of([(info("zeros", size=64 * MIB), bytes(64 * MIB))])
    archive = gzip.compress(docker_archive([layer], ["zeros/app:1"]), 9)
    (tmp_path / "z.tar.gz").write_bytes(archive)
    import imgctl.archive
    from imgctl.errors import VerificationError
    from imgctl.store import Store

    store = Store(store_root)
    try:
        old = imgctl.archive.SPOOL_FLOOR
        imgctl.archive.SPOOL_FLOOR = MIB
        try:
            with pytest.raises(VerificationError, match="expands more than 100 times"):
                imgctl.archive.load(store, tmp_path / "z.tar.gz")
            assert leftovers(store_root / "ingest", set()) == []
            loaded = imgctl.archive.load(store, tmp_path / "z.tar.gz", max_ratio=2000)
        finally:
            imgctl.archive.SPOOL_FLOOR = old
        assert loaded[0].names == ["zeros/app:1"]
    finally:
        store.close()
    assert_store_verifies(store_root)


# -- class 10: memory and time that grow with the archive's shape ----------------------------------
def test_load_of_300000_empty_members_stays_small(tmp_path, store_root):
    """An archive padded with 300,000 empty members (before a valid image) loads in < 80 MiB."""
    layer = small_layer()
    image = tar_body(docker_archive([layer], ["many/members:1"]))
    empty = b"".join(raw_header(b"e%06d" % i, 0, b"0") for i in range(300_000))
    (tmp_path / "in.tar").write_bytes(empty + image + end_of_tar())
    m = run_measured(["load", "-i", str(tmp_path / "in.tar")], timeout=120)
    assert m.code == 0, m.err
    assert m.out == "Loaded image: many/members:1\n"
    assert m.maxrss_kib * 1024 < 80 * MIB, f"peaked at {m.maxrss_kib // 1024} MiB"
    assert m.seconds < 60


def test_load_hashes_a_layer_shared_by_200_images_once(tmp_path, store_root):
    """200 images (configs differ by a label) over one 32 MiB layer: the layer is read once."""
    layer = tar_of([(info("blob", size=32 * MIB), os.urandom(32 * MIB))])
    lname = sha(layer)[7:] + ".tar"
    members, manifest = [(info(lname, size=len(layer)), layer)], []
    for i in range(200):
        cfg = json.loads(config_for([layer]))
        cfg["config"] = {"Labels": {"n": str(i)}}
        data = json.dumps(cfg).encode()
        members.append((info(sha(data)[7:] + ".json", size=len(data)), data))
        manifest.append({"Config": sha(data)[7:] + ".json", "RepoTags": [f"shared/layer:{i}"], "Layers": [lname]})
    data = json.dumps(manifest).encode()
    (tmp_path / "in.tar").write_bytes(_archive_with([*members, (info("manifest.json", size=len(data)), data)]))
    del layer, members
    m = run_measured(["load", "-i", str(tmp_path / "in.tar")], timeout=120)
    assert m.code == 0, m.err
    assert len(m.out.splitlines()) == 200
    # Once: ~0.2 s of hashing; once per image it was 200 x 32 MiB = 6.4 GiB (tens of seconds).
    assert m.seconds < 15, f"took {m.seconds:.1f} s"
    assert len(image_ids(store_root)) == 200
    assert_store_verifies(store_root)


# -- class 9: save verifies what it reads ---------------------------------------------------------
def _stored_image(tmp_path: Path, store_root: Path) -> tuple[str, dict]:
    layer = tar_of([(info("a", size=1000), os.urandom(1000))])
    load_layers(tmp_path, [layer], "damaged/app:1")
    config = config_for([layer])
    return "damaged/app:1", {"config": store_root / "blobs" / "sha256" / sha(config)[7:], "layer": store_root / "blobs" / "sha256" / sha(layer)[7:]}


def _same_size_json(original: bytes) -> bytes:
    doc = json.loads(original)
    doc["architecture"] = "arm64"  # other valid JSON of the same size ("amd64" -> "arm64")
    data = json.dumps(doc).encode()
    assert len(data) == len(original) and data != original
    return data


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive"])
@pytest.mark.parametrize("damage", ["config-same-size", "layer-flipped", "layer-missing"])
def test_save_of_a_damaged_store_fails_and_writes_nothing(fmt, damage, tmp_path, store_root):
    name, paths = _stored_image(tmp_path, store_root)
    if damage == "config-same-size":
        paths["config"].write_bytes(_same_size_json(paths["config"].read_bytes()))
    elif damage == "layer-flipped":
        data = bytearray(paths["layer"].read_bytes())
        data[700] ^= 0xFF  # inside the file's content
        paths["layer"].write_bytes(bytes(data))
    else:
        paths["layer"].unlink()
    out = tmp_path / "out"
    out.mkdir()
    m = run_measured(["save", "--format", fmt, "-o", str(out / "img.tar"), name], timeout=60)
    assert m.code == 1, m.err
    assert len(m.err.splitlines()) == 1 and "Traceback" not in m.err
    assert m.err.startswith("Error: cannot save: ") and m.err.rstrip().endswith("the store is damaged, run 'imgctl verify'"), m.err
    assert leftovers(out, set()) == []
    m = run_measured(["save", "--format", fmt, name], timeout=60)  # to a pipe: fails the same way
    assert m.code == 1 and "run 'imgctl verify'" in m.err, m.err


# -- issue 14: familiar names in RepoTags ---------------------------------------------------------
def test_save_writes_familiar_repotags_and_load_reads_every_form(tmp_path, store_root):
    layer = small_layer()
    tags = ["ubuntu:18.04", "docker.io/team/app:1.0", "index.docker.io/library/busybox:1", "127.0.0.1:5000/x/y:2"]
    r = load(tmp_path, docker_archive([layer], tags))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        "Loaded image: ubuntu:18.04", "Loaded image: team/app:1.0", "Loaded image: busybox:1", "Loaded image: 127.0.0.1:5000/x/y:2"
    ]
    out = tmp_path / "saved.tar"
    r = run("save", "-o", out, "ubuntu:18.04", "team/app:1.0", "docker.io/library/busybox:1", "127.0.0.1:5000/x/y:2")
    assert r.code == 0, r.err
    with tarfile.open(out) as tf:
        manifest = json.loads(tf.extractfile("manifest.json").read())
        repositories = json.loads(tf.extractfile("repositories").read())
    assert manifest[0]["RepoTags"] == ["ubuntu:18.04", "team/app:1.0", "busybox:1", "127.0.0.1:5000/x/y:2"]
    assert sorted(repositories) == ["127.0.0.1:5000/x/y", "busybox", "team/app", "ubuntu"]
    # and back: into an empty store, the familiar names map to the same fully qualified ones
    r = run("--root", tmp_path / "other", "load", "-i", out)
    assert r.code == 0, r.err
    r = run("--root", tmp_path / "other", "images", "--format", "{{.Repository}}:{{.Tag}}")
    assert sorted(r.out.split()) == ["127.0.0.1:5000/x/y:2", "busybox:1", "team/app:1.0", "ubuntu:18.04"]
    r = run("--root", tmp_path / "other", "inspect", "-f", "{{.Id}}", "docker.io/library/ubuntu:18.04")
    assert r.code == 0 and r.out.strip() == sha(config_for([layer]))


# -- class 3 (load's part): a full disk ------------------------------------------------------------
from tests.test_diskfull import small_fs  # noqa: E402,F401  (the 3 MiB tmpfs fixture)


@pytest.mark.parametrize("via", ["gzip-file", "pipe"])
def test_load_on_a_full_disk_removes_its_spool_and_leaves_the_store_usable(via, small_fs, tmp_path, monkeypatch):
    import subprocess

    root = small_fs / "root"
    monkeypatch.setenv("IMGCTL_ROOT", str(root))
    layer = tar_of([(info("random", size=6 * MIB), os.urandom(6 * MIB))])  # does not fit in 3 MiB
    archive = docker_archive([layer], ["full/disk:1"])
    assert load(tmp_path, docker_archive([small_layer()], ["small/one:1"]), "small.tar").code == 0
    before = image_ids(root)
    if via == "pipe":
        m = _fifo_load(tmp_path, archive)
    else:
        (tmp_path / "big.tar.gz").write_bytes(gzip.compress(archive, 1))
        m = run_measured(["load", "-i", str(tmp_path / "big.tar.gz")], timeout=60)
    assert m.code == 1 and len(m.err.splitlines()) == 1 and "Traceback" not in m.err, m.err
    assert m.err == f"Error: cannot write to the store at {root}: No space left on device\n", m.err
    assert leftovers(root / "ingest", set()) == []
    assert image_ids(root) == before
    for args in (["images", "-q"], ["verify"], ["image", "prune", "-f"]):
        r = run(*args)
        assert r.code == 0, (args, r.err)
    assert_store_verifies(root)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_fs)], check=True)
    r = load(tmp_path, archive) if via == "pipe" else run("load", "-i", tmp_path / "big.tar.gz")
    assert r.code == 0, r.err
    assert_store_verifies(root)


def test_load_keeps_a_reserve_of_free_space(tmp_path, store_root, monkeypatch):
    """Past the reserve (5% of the filesystem, at most 1 GiB; here: all of it) the spool stops
    with a line that says how much is free, and is removed."""
    import imgctl.archive
    from imgctl.errors import StoreError
    from imgctl.store import Store

    (tmp_path / "a.tar.gz").write_bytes(gzip.compress(docker_archive([small_layer()], ["reserve/app:1"])))
    monkeypatch.setattr(imgctl.archive, "_reserve", lambda st: st.f_blocks * st.f_frsize)
    store = Store(store_root)
    try:
        with pytest.raises(StoreError, match=r"^cannot load: the archive needs more room than .* bytes free, .* of them kept free\)$"):
            imgctl.archive.load(store, tmp_path / "a.tar.gz")
    finally:
        store.close()
    assert leftovers(store_root / "ingest", set()) == []
    assert image_ids(store_root) == set()
