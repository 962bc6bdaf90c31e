"""Files the archive use cases (save/load, export) share: tar headers parsed with limits
(:class:`BoundedTarInfo`) and an ``-o`` file written atomically (:func:`output_file`)."""

from __future__ import annotations

import errno
import os
import stat
import tarfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from imgctl.errors import ImgctlError

__all__ = ["BoundedTarInfo", "output_file", "MAX_EXT_HEADER", "MAX_SPARSE_ENTRIES"]

MAX_EXT_HEADER = 1024 * 1024  # a PAX or GNU long-name header's data
MAX_SPARSE_ENTRIES = 65536  # (offset, size) pairs in one sparse member's map


class BoundedTarInfo(tarfile.TarInfo):
    """``tarfile``'s header parser with limits: it would otherwise read an extended header or
    a sparse map of any size into memory, and fail with IndexError/ValueError on a truncated one.
    A violation is a ``tarfile.ReadError`` (via ``SubsequentHeaderError``) naming the limit."""

    _EXTENDED = (tarfile.XHDTYPE, tarfile.XGLTYPE, tarfile.SOLARIS_XHDTYPE, tarfile.GNUTYPE_LONGNAME, tarfile.GNUTYPE_LONGLINK)

    def _proc_member(self, tf):
        if self.type in self._EXTENDED and self.size > MAX_EXT_HEADER:
            raise tarfile.SubsequentHeaderError(
                f"an extended header of {self.size} bytes, more than the limit of {MAX_EXT_HEADER}"
            )
        return super()._proc_member(tf)

    @staticmethod
    def _too_many(n: int) -> None:
        if n > MAX_SPARSE_ENTRIES:
            raise tarfile.SubsequentHeaderError(f"a sparse map of more than {MAX_SPARSE_ENTRIES} entries")

    def _proc_sparse(self, tf):
        """Old GNU sparse: the map continues in extension blocks while their flag byte is set."""
        structs, isextended, origsize = self._sparse_structs
        del self._sparse_structs
        while isextended:
            block = tf.fileobj.read(tarfile.BLOCKSIZE)
            if len(block) != tarfile.BLOCKSIZE:
                raise tarfile.SubsequentHeaderError("a truncated sparse header")
            for pos in range(0, 21 * 24, 24):
                try:
                    offset, numbytes = tarfile.nti(block[pos : pos + 12]), tarfile.nti(block[pos + 12 : pos + 24])
                except tarfile.InvalidHeaderError:
                    break
                if offset and numbytes:
                    structs.append((offset, numbytes))
            self._too_many(len(structs))
            isextended = bool(block[504])
        self.sparse = structs
        self.offset_data = tf.fileobj.tell()
        tf.offset = self.offset_data + self._block(self.size)
        self.size = origsize
        return self

    def _proc_gnusparse_01(self, next, pax_headers):
        self._too_many(pax_headers["GNU.sparse.map"].count(",") // 2)
        try:
            super()._proc_gnusparse_01(next, pax_headers)
        except ValueError:
            raise tarfile.SubsequentHeaderError("an invalid sparse map") from None

    def _proc_gnusparse_10(self, next, pax_headers, tf):
        """PAX 1.0 sparse: the map is at the start of the member's data, one number per line."""
        buf = b""
        numbers: list[int] = []
        want = None
        while want is None or len(numbers) < want:
            while b"\n" not in buf:
                if len(buf) > 64:
                    raise tarfile.SubsequentHeaderError("an invalid sparse map")
                block = tf.fileobj.read(tarfile.BLOCKSIZE)
                if not block:
                    raise tarfile.SubsequentHeaderError("a truncated sparse map")
                buf += block
            line, buf = buf.split(b"\n", 1)
            if not line.isdigit():
                raise tarfile.SubsequentHeaderError("an invalid sparse map")
            if want is None:
                self._too_many(int(line))
                want = 2 * int(line)
            else:
                numbers.append(int(line))
        next.offset_data = tf.fileobj.tell()
        next.sparse = list(zip(numbers[::2], numbers[1::2]))


@contextmanager
def output_file(path: Path, on_error: Callable[[OSError, Path], ImgctlError]) -> Iterator[BinaryIO]:
    """An ``-o`` file, written atomically: a temporary file next to it is renamed over it once
    complete, so a failure leaves nothing.  An existing device or FIFO (``-o /dev/null``) is
    written in place, never replaced by a regular file; a symlink is followed (the file it names
    is replaced, not the link).  OSErrors, also the caller's, become ``on_error(e, path)``."""
    path = Path(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        raise on_error(e, path) from e
    if not path.name or (st is not None and stat.S_ISDIR(st.st_mode)):
        raise on_error(IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR)), path)
    if st is not None and not stat.S_ISREG(st.st_mode):
        try:
            with open(path, "wb") as f:
                yield f
                f.flush()
        except OSError as e:
            raise on_error(e, path) from e
        return
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except OSError as e:
        raise on_error(e, path) from e
    finally:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
