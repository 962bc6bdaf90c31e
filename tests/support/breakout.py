"""A layer-extraction breakout corpus, after containerd's and moby's extraction tests.

``cases(outside)`` returns hostile images as lists of layers (each a list of tar
entries, kept in the given order).  ``outside`` is the absolute path of a directory
next to the export target that holds ``victim`` (a file) and ``dir/`` (a directory):
the cases aim at it with ``../`` names, absolute names, symlinks (relative, absolute,
as parent directories, in chains and loops), hardlinks and whiteouts.

Each case says what must happen: ``"error"`` (the export refuses the image) or
``"ok"`` (it succeeds, every entry inside the target), plus an optional ``check``
of the exported tree.  In every case nothing outside the target may change:
:func:`snapshot` the surroundings before and compare after.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import io
import tarfile

from .images import Entry, Layer, directory, file, hardlink, layer_from_tar, opaque, symlink, whiteout


@dataclass(frozen=True)
class Case:
    name: str
    layers: list[list[Entry]]
    expect: str  # "error" | "ok"
    check: Callable[[Path], None] | None = None
    error: str = ""  # a fragment of the error message when expect == "error"


def _is_file(rel: str, data: bytes) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        p = root / rel
        assert not p.is_symlink() and p.is_file(), f"{rel} is not a regular file inside the target"
        assert p.read_bytes() == data

    return check


def _is_link(rel: str, target: str) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        p = root / rel
        assert p.is_symlink() and os.readlink(p) == target

    return check


def _absent(rel: str) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        assert not os.path.lexists(root / rel), f"{rel} should not exist"

    return check


def _all(*checks: Callable[[Path], None]) -> Callable[[Path], None]:
    def check(root: Path) -> None:
        for c in checks:
            c(root)

    return check


def cases(outside: str) -> list[Case]:
    """The corpus; ``outside`` is absolute (``/tmp/.../outside``)."""
    o = outside.lstrip("/")  # where absolute names land inside the target
    evil = b"pwned\n"
    return [
        # -- names ------------------------------------------------------------------------
        Case("dotdot-file", [[file("../outside/victim", evil)]], "error", error="outside the root"),
        Case("dotdot-deep", [[file("../../../../../../../../tmp/imgctl-breakout", evil)]], "error", error="outside the root"),
        Case("dotdot-inner", [[directory("a"), file("a/../../outside/victim", evil)]], "error", error="outside the root"),
        Case("dotdot-dir", [[directory("../outside/newdir")]], "error", error="outside the root"),
        Case("absolute-file", [[file(f"{outside}/victim", evil)]], "ok", _is_file(f"{o}/victim", evil)),
        Case("harmless-dotdot", [[directory("a"), file("a/../b", b"b")]], "ok", _is_file("b", b"b")),
        # -- symlinks ---------------------------------------------------------------------
        Case(
            "symlink-relative-then-file",
            [[symlink("escape", "../outside"), file("escape/victim", evil)]],
            "ok",
            _all(_is_link("escape", "../outside"), _is_file("outside/victim", evil)),
        ),
        Case(
            "symlink-absolute-then-file",
            [[symlink("escape", outside), file("escape/victim", evil)]],
            "ok",
            _is_file(f"{o}/victim", evil),
        ),
        Case(
            "symlink-then-file-next-layer",
            [[symlink("escape", "../../../../../../../..")], [file(f"escape/{o}/victim", evil)]],
            "ok",
            _is_file(f"{o}/victim", evil),
        ),
        Case(
            "symlink-chain",
            [[symlink("a", "b/../.."), symlink("b", "c"), directory("c"), file("a/outside/victim", evil)]],
            "ok",
            _is_file("outside/victim", evil),
        ),
        Case(
            "symlinked-parent-dir",
            [[directory("usr"), symlink("usr/lib", "../../../outside")], [file("usr/lib/victim", evil), directory("usr/lib/x")]],
            "ok",
            _all(_is_file("outside/victim", evil), _is_link("usr/lib", "../../../outside")),
        ),
        Case(
            "symlink-to-file-then-overwrite",
            [[symlink("victim-link", f"{outside}/victim")], [file("victim-link", evil)]],
            "ok",
            _is_file("victim-link", evil),
        ),
        Case(
            "symlink-then-file-same-name",
            [[symlink("x", "../outside/victim"), file("x", evil)]],
            "ok",
            _is_file("x", evil),
        ),
        Case(
            "symlink-dir-then-dir-entry",
            [[symlink("d", outside), directory("d", mode=0o777), file("d/f", evil)]],
            "ok",
            _all(_is_file("d/f", evil), lambda root: (root / "d").is_dir() and not (root / "d").is_symlink()),
        ),
        Case("symlink-loop", [[symlink("a", "b"), symlink("b", "a"), file("a/x", evil)]], "error", error="symbolic links"),
        Case(
            "dangling-symlink-kept",
            [[symlink("etc-passwd", "/etc/passwd"), symlink("up", "../../..")]],
            "ok",
            _all(_is_link("etc-passwd", "/etc/passwd"), _is_link("up", "../../..")),
        ),
        # -- hardlinks --------------------------------------------------------------------
        Case("hardlink-dotdot", [[hardlink("hl", "../outside/victim")]], "error", error="outside the root"),
        Case("hardlink-absolute", [[hardlink("hl", f"{outside}/victim")]], "error", error="missing"),
        Case(
            "hardlink-through-symlink-dir",
            [[symlink("d", outside), hardlink("hl", "d/victim")]],
            "error",
            error="missing",
        ),
        Case(
            "hardlink-through-symlink-next-layer",
            [[symlink("d", "../outside")], [hardlink("hl", "d/victim")]],
            "error",
            error="missing",
        ),
        Case(
            "hardlink-to-symlink",
            [[symlink("s", f"{outside}/victim"), hardlink("h", "s")]],
            "ok",
            _all(_is_link("s", f"{outside}/victim"), _is_link("h", f"{outside}/victim")),
        ),
        Case(
            "hardlink-then-write-through-symlink",
            [[file("real", b"inside"), symlink("s", f"{outside}/victim"), hardlink("h", "real")], [file("s", evil)]],
            "ok",
            _all(_is_file("s", evil), _is_file("h", b"inside")),
        ),
        Case("hardlink-to-dir", [[directory("d"), hardlink("h", "d")]], "error", error="directory"),
        # -- whiteouts --------------------------------------------------------------------
        Case("whiteout-dot", [[file("keep", b"k")], [Entry(".wh..", "file")]], "error", error="malformed whiteout"),
        Case("whiteout-dotdot", [[file("keep", b"k")], [Entry(".wh...", "file")]], "error", error="malformed whiteout"),
        Case("whiteout-dotdot-nested", [[directory("a")], [Entry("a/.wh...", "file")]], "error", error="malformed whiteout"),
        Case("whiteout-empty", [[directory("a")], [Entry("a/.wh.", "file")]], "error", error="malformed whiteout"),
        Case("whiteout-name-dotdot", [[file("keep", b"k")], [whiteout("../outside/victim")]], "error", error="outside the root"),
        Case("whiteout-absolute", [[file("keep", b"k")], [whiteout(f"{outside}/victim")]], "ok", _is_file("keep", b"k")),
        Case(
            "whiteout-through-symlink",
            [[symlink("link", outside), symlink("rel", "../outside")], [whiteout("link/victim"), whiteout("rel/victim"), whiteout("rel/dir")]],
            "ok",
            _all(_is_link("link", outside), _is_link("rel", "../outside")),
        ),
        Case(
            "whiteout-of-symlink-removes-link-only",
            [[symlink("link", outside)], [whiteout("link")]],
            "ok",
            _absent("link"),
        ),
        Case(
            "opaque-through-symlink",
            [[symlink("link", outside), symlink("rel", "../outside/dir")], [opaque("link"), opaque("rel")]],
            "ok",
            _all(_is_link("link", outside), _is_link("rel", "../outside/dir")),
        ),
        Case(
            "opaque-root",
            [[file("a", b"a"), directory("d"), file("d/x", b"x")], [opaque(""), file("b", b"b")]],
            "ok",
            _all(_absent("a"), _absent("d"), _is_file("b", b"b")),
        ),
        # -- special files ----------------------------------------------------------------
        Case("fifo", [[Entry("pipe", "fifo", mode=0o644)]], "ok", lambda root: stat.S_ISFIFO(os.lstat(root / "pipe").st_mode)),
        Case(
            "device-through-symlink",
            [[symlink("dev", outside), Entry("dev/null2", "chardev", mode=0o666, devmajor=1, devminor=3)]],
            "ok",
            lambda root: os.geteuid() != 0 or stat.S_ISCHR(os.lstat(root / o / "null2").st_mode),
        ),
        Case("root-entry", [[directory(".", mode=0o700), directory("./x/", mode=0o755), file("./x/y", b"y")]], "ok", _is_file("x/y", b"y")),
    ]


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chardev": tarfile.CHRTYPE,
    "blockdev": tarfile.BLKTYPE,
}


def build_layer(entries: list[Entry], compression: str = "gzip") -> Layer:
    """A layer whose tar keeps every name exactly as given (absolute, ``./``, ``..``) and in order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            info = tarfile.TarInfo(e.path)
            info.type = _TYPES[e.type]
            info.mode = e.mode if e.mode is not None else (0o755 if e.type == "dir" else 0o644)
            info.uid, info.gid, info.mtime = e.uid, e.gid, e.mtime
            if e.target is not None:
                info.linkname = e.target
            info.devmajor, info.devminor = e.devmajor, e.devminor
            if e.type == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return layer_from_tar(buf.getvalue(), compression)


def snapshot(top: Path, skip: Path | None = None) -> dict[str, tuple]:
    """Everything under TOP (except SKIP): type, mode, owner, size, times, content hash, link target."""
    out: dict[str, tuple] = {}
    for dirpath, dirnames, filenames in os.walk(top, followlinks=False):
        d = Path(dirpath)
        if skip is not None and (d == skip or skip in d.parents):
            dirnames[:] = []
            continue
        for name in [*dirnames, *filenames]:
            p = d / name
            if skip is not None and p == skip:
                continue
            st = os.lstat(p)
            digest = ""
            if stat.S_ISREG(st.st_mode):
                digest = hashlib.sha256(p.read_bytes()).hexdigest()
            link = os.readlink(p) if stat.S_ISLNK(st.st_mode) else ""
            out[str(p.relative_to(top))] = (st.st_mode, st.st_uid, st.st_gid, st.st_size, st.st_nlink, st.st_mtime_ns, digest, link)
    return out
