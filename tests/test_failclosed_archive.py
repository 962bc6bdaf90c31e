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
from cli import run
from hostile import run_measured
from storecheck import assert_store_verifies, image_ids

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
    before = image_ids(store_root)
    out = tmp_path / "out"
    out.mkdir()
    for args in (["export", "-o", str(out / "fs.tar"), name], ["export", "--dir", str(out / "fs"), name]):
        m = run_measured(args, timeout=60)
        assert_failed_closed(m, store_root, before, seconds=30)
        assert "sparse file 'big' expands to 1099511627776 bytes" in m.err and "--max-size" in m.err, m.err
        assert leftovers(out, set()) == []  # no -o file, no scratch directory next to it, no --dir


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
