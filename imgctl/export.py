"""``export``: an image's flattened root filesystem, as a directory or a tar.  Never prints.

Layers are applied in order the way overlay filesystems see them: ``.wh.NAME`` deletes
NAME from the layers below, ``.wh..wh..opq`` hides a directory's lower contents,
hardlinks and symlinks are kept as links.

Layers are hostile input.  Every path is resolved component by component inside the
target (``openat`` with ``O_NOFOLLOW`` and a directory descriptor at each step; a symlink
met on the way is followed *inside* the target, as a chroot would, never outside it):

* names are cleaned lexically; a name that climbs above the root (``../x``) aborts the
  export, absolute names are taken relative to the root;
* parent directories that are symlinks, symlinks to absolute paths or to ``../..``, a
  symlink and then a file "through" it: all land inside the target;
* a hardlink's target is resolved the same way and must be an existing non-directory;
  the link is made to the entry itself (never following a final symlink);
* a whiteout must name one plain entry (``.wh..``, ``.wh.`` and ``.wh..wh.`` others are
  refused or ignored) and removes it without following symlinks;
* device nodes are created only when running as root (otherwise listed as skipped);
* a layer whose uncompressed size is more than ``max_ratio`` times its compressed size
  (beyond a small floor) or more than ``max_layer_size`` is refused before it is read,
  and no layer may inflate beyond the size recorded when it was verified;
* sparse members (old GNU, PAX 0.0/0.1/1.0) are written with holes (seek and truncate);
  the export as a whole has a budget: ``max_size`` bytes of file content (default: the
  image's uncompressed layer size plus ``SPARSE_ALLOWANCE``, so only sparse holes can
  reach it) and ``max_entries`` tar members; past either it stops with an error that
  names the limit and the flag that raises it;
* tar headers are bounded (imgctl.tario.BoundedTarInfo), paths are at most ``MAX_DEPTH``
  directories deep, names with NUL, uids/gids beyond 2^32-2 are refused, non-finite or out-of-range mtimes become 0;
  every walk (removal, opaque directories) is iterative, and a failed export removes
  everything it wrote.

Python's ``tarfile`` only parses headers here; it never writes to the filesystem.
"""

from __future__ import annotations

import os
import posixpath
import shutil
import stat
import tarfile
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from imgctl.errors import ImgctlError, UsageError, VerificationError
from imgctl.localimage import LayerReader, open_image, resolve_image
from imgctl.platforms import platform_record
from imgctl.store import LayerRecord, Store
from imgctl.tario import BoundedTarInfo, output_file

__all__ = [
    "ExportResult",
    "export_to_dir",
    "export_to_tar",
    "export_to_file",
    "MAX_RATIO",
    "RATIO_FLOOR",
    "MAX_LAYER_SIZE",
    "MAX_ENTRIES",
    "SPARSE_ALLOWANCE",
    "Limits",
    "remove_tree",
]

MAX_RATIO = 2000  # uncompressed / compressed; gzip peaks near 1030:1 on zeros
RATIO_FLOOR = 64 * 1024 * 1024  # layers smaller than this are never refused for their ratio
MAX_LAYER_SIZE = 64 * 1024**3
MAX_SYMLINKS = 40  # as Linux's path resolution
MAX_ENTRIES = 250_000  # tar members over all layers (each costs about 0.5 KiB of memory while exporting)
SPARSE_ALLOWANCE = 1024**3  # bytes of sparse holes an export may expand by default
MAX_DEPTH = 1024  # directories deep, after following symlinks
MAX_ID = 2**32 - 2  # the largest uid/gid Linux takes ((uid_t)-1 means "unchanged")
MAX_MTIME = 8**11 - 1  # what a ustar header holds (year 2242)
COPY_CHUNK = 1024 * 1024

_WH = ".wh."
_OPAQUE = ".wh..wh..opq"
_WH_META = ".wh..wh."


@dataclass(slots=True)
class ExportResult:
    image_id: str
    skipped: list[str] = field(default_factory=list)  # device nodes not created (not root)


@dataclass(slots=True)
class _Meta:
    """What the tar header said about an entry that exists in the tree (keyed by resolved path)."""

    type: bytes
    mode: int
    uid: int
    gid: int
    uname: str
    gname: str
    mtime: float
    linkname: str = ""
    devmajor: int = 0
    devminor: int = 0
    virtual: bool = False  # recorded but not created on disk (a device node when not root)


class _NotDir(Exception):
    pass


class _Missing(Exception):
    pass


def remove_tree(parent_fd: int, name: str) -> None:
    """Remove entry NAME of directory PARENT_FD and all it holds, without recursion and without
    following a symlink; one directory descriptor is open at a time, whatever the depth."""
    try:
        st = os.stat(name, dir_fd=parent_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(name, dir_fd=parent_fd)
        return
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(name, flags, dir_fd=parent_fd)
    stack: list[tuple[str, list[str]]] = [(name, os.listdir(fd))]
    try:
        while stack:
            here, todo = stack[-1]
            if todo:
                child = todo.pop()
                try:
                    st = os.stat(child, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    sub = os.open(child, flags, dir_fd=fd)
                    os.close(fd)
                    fd = sub
                    stack.append((child, os.listdir(fd)))
                else:
                    os.unlink(child, dir_fd=fd)
                continue
            stack.pop()
            if stack:  # up through "..": each directory was entered with O_NOFOLLOW, so it is the real parent
                up = os.open("..", flags, dir_fd=fd)
                os.close(fd)
                fd = up
                os.rmdir(here, dir_fd=fd)
            else:
                os.close(fd)
                fd = -1
                os.rmdir(here, dir_fd=parent_fd)
    finally:
        if fd >= 0:
            os.close(fd)


def _remove_path(path: Path) -> None:
    """``remove_tree`` for a path (best effort: used when cleaning up after a failure)."""
    try:
        pfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        remove_tree(pfd, path.name)
    except OSError:
        pass
    finally:
        os.close(pfd)


class ExportLimitError(VerificationError):
    """The export would write more than its budget allows."""


def _clean(name: str, layer: str) -> list[str]:
    """Lexically cleaned components of a member name; [] for the root itself."""
    if "\0" in name:
        raise VerificationError(f"layer {layer}: entry {name!r} has a NUL byte in its name")
    n = posixpath.normpath(name.lstrip("/"))
    if n == "..":
        raise VerificationError(f"layer {layer}: entry {name!r} points outside the root filesystem")
    if n.startswith("../"):
        raise VerificationError(f"layer {layer}: entry {name!r} points outside the root filesystem")
    if n in (".", ""):
        return []
    parts = n.split("/")
    if len(parts) > MAX_DEPTH:
        raise VerificationError(f"layer {layer}: entry {name[:60]!r}... is {len(parts)} directories deep, more than the limit of {MAX_DEPTH}")
    return parts


class _Tree:
    """A root filesystem being built in a directory this process owns."""

    def __init__(self, root: Path, *, scratch: bool = False, max_size: int | None = None, max_entries: int = MAX_ENTRIES) -> None:
        self.root = root
        self.max_size = max_size  # bytes of file content (sparse holes included); None: no limit
        self.max_entries = max_entries
        self.written = 0
        self.entries = 0
        # scratch: the tree only feeds a tar (whose modes come from ``meta``); as a normal user it
        # must stay readable and removable, so on-disk modes keep u+rw and directories keep theirs.
        self.scratch = scratch
        self.root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        self._last: tuple[list[str], int, list[str]] | None = None  # lexical parts, descriptor, real path
        self.meta: dict[str, _Meta] = {}
        self.skipped: list[str] = []
        self.is_root = os.geteuid() == 0
        self.layer_paths: set[str] = set()  # created by the layer being applied
        self.layer = ""

    def close(self) -> None:
        self._forget_last()
        os.close(self.root_fd)

    # -- resolution ----------------------------------------------------------------------
    def resolve_dir(self, parts: list[str], create: bool) -> tuple[int, list[str]]:
        """A new descriptor for directory PARTS resolved inside the root, and its real path.

        Symlinks met on the way are followed within the root; ``..`` stops at the root.
        Missing directories are created (0755) when ``create``, else ``_Missing``.
        """
        flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
        cached = self._last
        if cached is not None and len(parts) >= len(cached[0]) and parts[: len(cached[0])] == cached[0]:
            # Members come parent first: start from the directory the last call resolved.
            cur, stack, todo = os.dup(cached[1]), list(cached[2]), parts[len(cached[0]) :][::-1]
        else:
            cur, stack, todo = os.dup(self.root_fd), [], parts[::-1]  # todo is reversed: pop() takes the next
        links = 0
        try:
            while todo:
                c = todo.pop()
                if c in ("", "."):
                    continue
                if c == "..":
                    if stack:  # each directory was entered with O_NOFOLLOW: ".." is its real parent
                        stack.pop()
                        up = os.open("..", flags, dir_fd=cur)
                        os.close(cur)
                        cur = up
                    continue
                try:
                    st = os.stat(c, dir_fd=cur, follow_symlinks=False)
                except FileNotFoundError:
                    if not create:
                        raise _Missing() from None
                    os.mkdir(c, 0o700, dir_fd=cur)
                    path = "/".join([*stack, c])
                    self.meta[path] = _Meta(tarfile.DIRTYPE, 0o755, 0, 0, "", "", 0)
                    self.layer_paths.add(path)
                    st = os.stat(c, dir_fd=cur, follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    links += 1
                    if links > MAX_SYMLINKS:
                        raise VerificationError(f"layer {self.layer}: too many levels of symbolic links in {'/'.join(parts)[:200]!r}")
                    target = os.readlink(c, dir_fd=cur)
                    if target.startswith("/"):
                        os.close(cur)
                        cur = os.dup(self.root_fd)
                        stack.clear()
                    todo += target.split("/")[::-1]
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    raise _NotDir("/".join([*stack, c]))
                if len(stack) >= MAX_DEPTH:
                    raise VerificationError(
                        f"layer {self.layer}: {'/'.join(parts)[:60]!r}... lies more than {MAX_DEPTH} directories deep"
                    )
                sub = os.open(c, flags, dir_fd=cur)
                os.close(cur)
                cur = sub
                stack.append(c)
        except BaseException:
            os.close(cur)
            raise
        self._forget_last()
        self._last = (list(parts), os.dup(cur), list(stack))
        return cur, stack

    def _forget_last(self) -> None:
        """Drop the cached resolution (whenever an entry is removed, a path may resolve differently)."""
        if self._last is not None:
            os.close(self._last[1])
            self._last = None

    def parent(self, parts: list[str], create: bool, name: str) -> tuple[int, str] | None:
        """(descriptor of the real parent directory, real relative path of the entry)."""
        try:
            fd, real = self.resolve_dir(parts[:-1], create)
        except _Missing:
            return None
        except _NotDir as e:
            raise VerificationError(f"layer {self.layer}: cannot place {name!r}: {str(e)!r} is not a directory") from None
        return fd, "/".join([*real, parts[-1]])

    # -- removal -------------------------------------------------------------------------
    def _forget(self, path: str) -> None:
        prefix = path + "/"
        for key in [k for k in self.meta if k == path or k.startswith(prefix)]:
            del self.meta[key]

    def remove(self, dir_fd: int, name: str, path: str) -> None:
        """Remove entry NAME of DIR_FD (a directory with all it holds), never following a symlink."""
        self._forget_last()
        try:
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            self._forget(path)
            return
        if stat.S_ISDIR(st.st_mode):
            remove_tree(dir_fd, name)  # fd-based and iterative: never leaves the directory it was given
        else:
            os.unlink(name, dir_fd=dir_fd)
        self._forget(path)

    def hide_lower(self, dir_fd: int, path: str) -> None:
        """Opaque directory: remove everything below it that this layer did not create.

        Iterative: directories this layer created are visited from a work list, each opened
        by its real path (no symlinks on it) from the root."""
        todo: list[tuple[int | None, str]] = [(dir_fd, path)]
        while todo:
            given, here = todo.pop()
            fd = given if given is not None else self.resolve_dir(here.split("/"), False)[0]
            try:
                for name in os.listdir(fd):
                    child = f"{here}/{name}" if here else name
                    if child not in self.layer_paths:
                        self.remove(fd, name, child)
                    elif stat.S_ISDIR(os.stat(name, dir_fd=fd, follow_symlinks=False).st_mode):
                        todo.append((None, child))
            finally:
                if given is None:
                    os.close(fd)

    # -- one layer -----------------------------------------------------------------------
    def apply(self, tf: tarfile.TarFile) -> None:
        self.layer_paths = set()
        while (member := tf.next()) is not None:
            tf.members.clear()  # tarfile keeps every header it read; this walk needs none of them
            self.entries += 1
            if self.entries > self.max_entries:
                raise ExportLimitError(
                    f"the image has more than {self.max_entries} entries in its layers, the limit for an export; "
                    "raise it with --max-entries N"
                )
            self.entry(tf, member)

    def _check_header(self, m: tarfile.TarInfo) -> None:
        if "\0" in m.linkname:
            raise VerificationError(f"layer {self.layer}: entry {m.name!r} has a NUL byte in its link target")
        for what, value in (("uid", m.uid), ("gid", m.gid)):
            if not isinstance(value, int) or not 0 <= value <= MAX_ID:
                raise VerificationError(f"layer {self.layer}: entry {m.name!r} has {what} {value}, outside 0..{MAX_ID}")
        try:
            ok = 0 <= m.mtime <= MAX_MTIME  # NaN compares False
        except TypeError:
            ok = False
        m.mtime = int(m.mtime) if ok else 0

    def entry(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        parts = _clean(m.name, self.layer)
        if not parts:
            return  # the root directory itself: its metadata is the target's own
        base = parts[-1]
        self._check_header(m)
        if base.startswith(_WH):
            self.whiteout(parts, m.name)
            return
        if m.isdir():
            kind = tarfile.DIRTYPE
        elif m.issym():
            kind = tarfile.SYMTYPE
        elif m.islnk():
            kind = tarfile.LNKTYPE
        elif m.ischr() or m.isblk():
            kind = m.type
        elif m.isfifo():
            kind = tarfile.FIFOTYPE
        elif m.isreg():
            kind = tarfile.REGTYPE
        else:
            return  # unknown member types carry nothing a root filesystem needs
        link_src: tuple[int, str, str] | None = None
        if kind == tarfile.LNKTYPE:
            link_src = self._link_source(m)  # before anything is removed, as tar does
        where = self.parent(parts, True, m.name)
        assert where is not None
        pfd, path = where
        try:
            if link_src is not None and link_src[2] == path:
                return  # a hardlink to itself
            try:
                existing = os.stat(base, dir_fd=pfd, follow_symlinks=False)
            except FileNotFoundError:
                existing = None
            if existing is not None and not (kind == tarfile.DIRTYPE and stat.S_ISDIR(existing.st_mode)):
                self.remove(pfd, base, path)
                existing = None
            meta = _Meta(kind, m.mode & 0o7777, m.uid, m.gid, m.uname, m.gname, m.mtime, m.linkname, m.devmajor, m.devminor)
            if kind == tarfile.DIRTYPE:
                if existing is None:
                    os.mkdir(base, 0o700, dir_fd=pfd)
                self._own(pfd, base, m)
            elif kind == tarfile.REGTYPE:
                self._file(tf, m, pfd, base)
            elif kind == tarfile.SYMTYPE:
                os.symlink(m.linkname, base, dir_fd=pfd)
                self._own(pfd, base, m)
                self._times(pfd, base, m)
            elif kind == tarfile.LNKTYPE:
                sfd, sname, spath = link_src
                os.link(sname, base, src_dir_fd=sfd, dst_dir_fd=pfd, follow_symlinks=False)
                meta = replace(self.meta.get(spath) or meta, linkname="")
                if meta.type == tarfile.LNKTYPE:
                    meta = replace(meta, type=tarfile.REGTYPE)
            elif kind == tarfile.FIFOTYPE:
                os.mkfifo(base, 0o600, dir_fd=pfd)
                self._own(pfd, base, m)
                self._chmod(pfd, base, m.mode)
                self._times(pfd, base, m)
            else:  # character or block device
                safe = kind == tarfile.CHRTYPE and (m.devmajor, m.devminor) in SAFE_CHAR_DEVICES
                if not self.is_root or not safe:
                    # Not root: mknod is not allowed.  Root: an image must not hand out raw access to
                    # this host's disks or memory (a block device, /dev/mem, ...): only the harmless
                    # standard character devices are created; the rest stay in -o tar output only.
                    self.skipped.append(path)
                    meta.virtual = True
                else:
                    fmt = stat.S_IFCHR if kind == tarfile.CHRTYPE else stat.S_IFBLK
                    os.mknod(base, fmt | 0o600, os.makedev(m.devmajor, m.devminor), dir_fd=pfd)
                    self._own(pfd, base, m)
                    self._chmod(pfd, base, m.mode)
                    self._times(pfd, base, m)
            self.meta[path] = meta
            self.layer_paths.add(path)
        finally:
            os.close(pfd)
            if link_src is not None:
                os.close(link_src[0])

    def _link_source(self, m: tarfile.TarInfo) -> tuple[int, str, str]:
        target = _clean(m.linkname, self.layer)
        if not target:
            raise VerificationError(f"layer {self.layer}: hardlink {m.name!r} to the root directory")
        where = self.parent(target, False, m.linkname)
        if where is None:
            raise VerificationError(f"layer {self.layer}: hardlink {m.name!r} to missing {m.linkname!r}")
        fd, spath = where
        try:
            st = os.stat(target[-1], dir_fd=fd, follow_symlinks=False)
        except FileNotFoundError:
            virtual = self.meta.get(spath)
            os.close(fd)
            if virtual is not None and virtual.virtual:
                raise VerificationError(f"layer {self.layer}: hardlink {m.name!r} to a device node that was not created")
            raise VerificationError(f"layer {self.layer}: hardlink {m.name!r} to missing {m.linkname!r}") from None
        if stat.S_ISDIR(st.st_mode):
            os.close(fd)
            raise VerificationError(f"layer {self.layer}: hardlink {m.name!r} to a directory")
        return fd, target[-1], spath

    def _charge(self, m: tarfile.TarInfo) -> None:
        """Count a regular file's (apparent) size against the export's budget, before writing it."""
        self.written += m.size
        if self.max_size is not None and self.written > self.max_size:
            what = f"sparse file {m.name!r} expands to {m.size} bytes" if m.sparse is not None else f"{m.name!r} has {m.size} bytes"
            raise ExportLimitError(
                f"layer {self.layer}: {what}; the export would write more than its limit of {self.max_size} bytes "
                "(the image's size plus 1 GiB for sparse files); raise it with --max-size SIZE"
            )

    def _file(self, tf: tarfile.TarFile, m: tarfile.TarInfo, pfd: int, base: str) -> None:
        sparse = None if m.sparse is None else [(o, n) for o, n in m.sparse if n]
        if sparse is not None:
            end = 0
            for offset, numbytes in sparse:
                if offset < end or numbytes < 0 or offset + numbytes > m.size:
                    raise VerificationError(f"layer {self.layer}: sparse file {m.name!r} has an invalid map")
                end = offset + numbytes
        self._charge(m)
        fd = os.open(base, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=pfd)
        with open(fd, "wb", closefd=True) as out:
            if self.is_root:
                os.fchown(fd, m.uid, m.gid)
            src = tf.extractfile(m)
            if src is not None and sparse is None:
                shutil.copyfileobj(src, out, COPY_CHUNK)
            elif src is not None:
                # Only the data segments are read (stored one after the other from offset_data)
                # and written at their offsets; the holes stay holes on disk.
                if sum(n for _, n in sparse) > tf.offset - m.offset_data:
                    raise VerificationError(f"layer {self.layer}: sparse file {m.name!r} has an invalid map")
                raw = tf.fileobj
                raw.seek(m.offset_data)
                for offset, numbytes in sparse:
                    out.seek(offset)
                    while numbytes:
                        chunk = raw.read(min(numbytes, COPY_CHUNK))
                        if not chunk:
                            raise VerificationError(f"layer {self.layer}: sparse file {m.name!r} is truncated")
                        out.write(chunk)
                        numbytes -= len(chunk)
                out.truncate(m.size)
            out.flush()
            os.fchmod(fd, self._disk_mode(m.mode))
            try:
                os.utime(fd, (m.mtime, m.mtime))
            except (OverflowError, ValueError, OSError):
                pass

    def _own(self, pfd: int, base: str, m: tarfile.TarInfo) -> None:
        if self.is_root:
            os.chown(base, m.uid, m.gid, dir_fd=pfd, follow_symlinks=False)

    def _disk_mode(self, mode: int) -> int:
        """The mode to give a file on disk: the image's, except that a scratch tree of a normal
        user keeps u+rw, so a mode-0000 file (e.g. /etc/shadow) can still be read into the tar."""
        mode &= 0o7777
        return mode | 0o600 if self.scratch and not self.is_root else mode

    def _chmod(self, pfd: int, base: str, mode: int) -> None:
        os.chmod(base, self._disk_mode(mode), dir_fd=pfd)  # not a symlink: created just now by us

    def _times(self, pfd: int, base: str, m: tarfile.TarInfo) -> None:
        try:
            os.utime(base, (m.mtime, m.mtime), dir_fd=pfd, follow_symlinks=False)
        except (OverflowError, ValueError, OSError):
            pass

    def whiteout(self, parts: list[str], name: str) -> None:
        base = parts[-1]
        if base == _OPAQUE:
            try:
                fd, real = self.resolve_dir(parts[:-1], False)
            except (_Missing, _NotDir):
                return
            try:
                self.hide_lower(fd, "/".join(real))
            finally:
                os.close(fd)
            return
        if base.startswith(_WH_META):
            return  # aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): nothing to apply
        victim = base[len(_WH):]
        if victim in ("", ".", ".."):
            raise VerificationError(f"layer {self.layer}: malformed whiteout {name!r}")
        where = self.parent([*parts[:-1], victim], False, name)
        if where is None:
            return
        pfd, path = where
        try:
            self.remove(pfd, victim, path)
        finally:
            os.close(pfd)

    # -- the end ---------------------------------------------------------------------------
    def finish(self) -> None:
        """Directory modes and times last: creating children changes them (and may need write access)."""
        if self.scratch:
            return  # the tar takes modes and times from ``meta``; a 0555 directory would block cleanup
        dirs = [p for p, m in self.meta.items() if m.type == tarfile.DIRTYPE]
        for path in sorted(dirs, key=lambda p: -p.count("/")):
            m = self.meta[path]
            parts = path.split("/")
            where = self.parent(parts, False, path)
            if where is None:
                continue
            pfd, _ = where
            try:
                st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode):
                    dfd = os.open(parts[-1], os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                    try:
                        os.fchmod(dfd, m.mode)
                        try:
                            os.utime(dfd, (m.mtime, m.mtime))
                        except (OverflowError, ValueError, OSError):
                            pass
                    finally:
                        os.close(dfd)
            finally:
                os.close(pfd)


def _check_ratio(lr: LayerRecord, max_ratio: float, max_layer_size: int) -> None:
    if lr.uncompressed_size > max_layer_size:
        raise VerificationError(
            f"layer {lr.digest} is {lr.uncompressed_size} bytes uncompressed, more than the limit of {max_layer_size}"
        )
    if lr.uncompressed_size > RATIO_FLOOR and lr.uncompressed_size > max_ratio * max(lr.size, 1):
        raise VerificationError(
            f"layer {lr.digest} inflates {lr.uncompressed_size // max(lr.size, 1)} times "
            f"({lr.size} to {lr.uncompressed_size} bytes), more than the limit of {max_ratio:g}; refusing to export it"
        )


@dataclass(frozen=True, slots=True)
class Limits:
    """An export's budget (see the module text); ``max_size`` None: the image's size + ``SPARSE_ALLOWANCE``."""

    max_ratio: float = MAX_RATIO
    max_layer_size: int = MAX_LAYER_SIZE
    max_size: int | None = None
    max_entries: int = MAX_ENTRIES


def _build(store: Store, image_id: str, root: Path, limits: Limits, *, scratch: bool = False, record=None) -> _Tree:
    with store.lease() as lease:  # a concurrent rmi or prune cannot take layers away mid-export
        lease.add(*store.index.image_digests(image_id))
        return _build_leased(store, image_id, root, limits, scratch, record)


def _build_leased(store: Store, image_id: str, root: Path, limits: Limits, scratch: bool, record=None) -> _Tree:
    img = open_image(store, image_id, record)  # record: one platform of a multi-platform image
    for lr in img.layers:  # refuse before writing anything
        _check_ratio(lr, limits.max_ratio, limits.max_layer_size)
    max_size = limits.max_size
    if max_size is None:
        max_size = sum(lr.uncompressed_size for lr in img.layers) + SPARSE_ALLOWANCE
    tree = _Tree(root, scratch=scratch, max_size=max_size, max_entries=limits.max_entries)
    try:
        for lr in img.layers:
            tree.layer = lr.digest
            with LayerReader(store, lr) as reader:
                try:
                    with tarfile.open(fileobj=reader, mode="r|", errorlevel=2, tarinfo=BoundedTarInfo) as tf:
                        tree.apply(tf)
                except (tarfile.TarError, EOFError, UnicodeError) as e:
                    raise VerificationError(f"layer {lr.digest} is not a valid tar: {e}") from None
                while reader.read(COPY_CHUNK):
                    pass  # the rest (padding): the diff_id is checked at the end of the stream
        tree.finish()
    except BaseException:
        tree.close()
        raise
    return tree


# (major, minor) of /dev/null, zero, full, random, urandom, tty, console, ptmx: the only
# device nodes an export creates (as root); anything else would give the image's author
# raw access to this host's hardware.
SAFE_CHAR_DEVICES = frozenset({(1, 3), (1, 5), (1, 7), (1, 8), (1, 9), (5, 0), (5, 1), (5, 2)})


def _os_error(e: OSError, where: Path) -> ImgctlError:
    """One line: the layer's own file name (4096 bytes, say) is cut to its first 200 characters."""
    name = os.fsdecode(e.filename) if isinstance(e.filename, (str, bytes)) else ""
    if len(name) > 200:
        name = name[:200] + "..."
    return ImgctlError(f"export to {where} failed: {e.strerror or e}" + (f": {name}" if name else ""))


def _limits(limits: Limits | None, max_ratio: float, max_layer_size: int) -> Limits:
    return limits if limits is not None else Limits(max_ratio, max_layer_size)


def export_to_dir(
    store: Store,
    name: str,
    target: Path,
    *,
    max_ratio: float = MAX_RATIO,
    max_layer_size: int = MAX_LAYER_SIZE,
    limits: Limits | None = None,
    platform=None,
) -> ExportResult:
    """Write the flattened root filesystem of image NAME into TARGET (absent or empty);
    ``platform``: that platform of a multi-platform image."""
    image_id, _ = resolve_image(store, name)
    record = platform_record(store, image_id, platform, name)
    target = Path(target)
    created = False
    try:
        if target.is_symlink() or (target.exists() and not target.is_dir()):
            raise UsageError(f"{target} exists and is not a directory")
        if target.exists():
            if any(target.iterdir()):
                raise UsageError(f"{target} is not empty; export needs a new or empty directory")
        else:
            target.mkdir(mode=0o755)
            created = True
    except OSError as e:
        raise _os_error(e, target) from e
    try:
        tree = _build(store, image_id, target, _limits(limits, max_ratio, max_layer_size), record=record)
        tree.close()
        return ExportResult(image_id, tree.skipped)
    except BaseException as e:
        _discard(target, keep_dir=not created)
        if isinstance(e, OSError):
            raise _os_error(e, target) from e
        raise


def _discard(target: Path, *, keep_dir: bool) -> None:
    if keep_dir:
        fd = os.open(target, os.O_RDONLY | os.O_DIRECTORY)
        try:
            for entry in os.listdir(fd):
                try:
                    remove_tree(fd, entry)
                except OSError:
                    pass
        finally:
            os.close(fd)
    else:
        _remove_path(target)


def _tar_tree(tree: _Tree, out: BinaryIO) -> None:
    """The tree as a tar stream: owners, modes and times from the layers, hardlinks kept."""
    seen_inodes: dict[tuple[int, int], str] = {}
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
        for path in sorted(tree.meta):  # a parent sorts before its children (a prefix sorts first)
            tf.members.clear()  # tarfile keeps every header it wrote; nothing here needs them
            m = tree.meta[path]
            info = tarfile.TarInfo(path)
            info.mode, info.uid, info.gid, info.uname, info.gname = m.mode, m.uid, m.gid, m.uname, m.gname
            info.mtime = m.mtime
            if m.virtual:
                info.type, info.devmajor, info.devminor = m.type, m.devmajor, m.devminor
                tf.addfile(info)
                continue
            parts = path.split("/")
            where = tree.parent(parts, False, path)
            if where is None:
                continue
            pfd, _ = where
            try:
                try:
                    st = os.stat(parts[-1], dir_fd=pfd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if stat.S_ISREG(st.st_mode):
                    key = (st.st_dev, st.st_ino)
                    if st.st_nlink > 1 and key in seen_inodes:
                        info.type, info.linkname = tarfile.LNKTYPE, seen_inodes[key]
                        tf.addfile(info)
                        continue
                    seen_inodes[key] = path
                    info.type, info.size = tarfile.REGTYPE, st.st_size
                    fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=pfd)
                    with open(fd, "rb") as f:
                        tf.addfile(info, f)
                elif stat.S_ISDIR(st.st_mode):
                    info.type = tarfile.DIRTYPE
                    tf.addfile(info)
                elif stat.S_ISLNK(st.st_mode):
                    info.type, info.linkname = tarfile.SYMTYPE, os.readlink(parts[-1], dir_fd=pfd)
                    info.mode = 0o777
                    tf.addfile(info)
                elif stat.S_ISFIFO(st.st_mode):
                    info.type = tarfile.FIFOTYPE
                    tf.addfile(info)
                elif stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
                    info.type = tarfile.CHRTYPE if stat.S_ISCHR(st.st_mode) else tarfile.BLKTYPE
                    info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
                    tf.addfile(info)
            finally:
                os.close(pfd)


def export_to_tar(
    store: Store,
    name: str,
    out: BinaryIO,
    *,
    workdir: Path | None = None,
    max_ratio: float = MAX_RATIO,
    max_layer_size: int = MAX_LAYER_SIZE,
    limits: Limits | None = None,
    platform=None,
) -> ExportResult:
    """Write the flattened root filesystem of image NAME to OUT as a tar stream.

    The layers are applied in a scratch directory under WORKDIR (same rules as
    ``export_to_dir``), which is removed afterwards.
    """
    import tempfile

    image_id, _ = resolve_image(store, name)
    record = platform_record(store, image_id, platform, name)
    scratch = Path(tempfile.mkdtemp(prefix=".imgctl-export-", dir=workdir))
    try:
        try:
            tree = _build(store, image_id, scratch, _limits(limits, max_ratio, max_layer_size), scratch=True, record=record)
            try:
                _tar_tree(tree, out)
            finally:
                tree.close()
        except OSError as e:
            raise _os_error(e, scratch) from e
        return ExportResult(image_id, [])
    finally:
        _remove_path(scratch)


def export_to_file(
    store: Store,
    name: str,
    path: Path,
    *,
    max_ratio: float = MAX_RATIO,
    max_layer_size: int = MAX_LAYER_SIZE,
    limits: Limits | None = None,
    platform=None,
) -> ExportResult:
    """``export_to_tar`` into PATH, atomically (nothing is left behind on failure; see ``output_file``)."""
    path = Path(path)
    # The scratch tree goes next to the output (same filesystem), unless that is a device (/dev).
    workdir = None if path.exists() and not path.is_file() else Path(os.path.realpath(path)).parent
    with output_file(path, _os_error) as f:
        return export_to_tar(store, name, f, workdir=workdir, max_ratio=max_ratio, max_layer_size=max_layer_size, limits=limits,
                             platform=platform)
