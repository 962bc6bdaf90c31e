"""Layer codecs: gzip (ISA-L when installed, else zlib), zstd and uncompressed layers,
decoded while they stream (:class:`Decoder`, fed pieces) or read back from a file
(:func:`decompressed_steps`, pulled piece by piece).  Both bound the output of one step,
whatever the compression ratio, and both read gzip's multi-member streams with the one
loop of :class:`GzipStream`.  Bad data is a :class:`~imgctl.errors.VerificationError`.
"""

from __future__ import annotations

import hashlib
import zlib

from imgctl.errors import VerificationError

__all__ = ["OUT_CHUNK", "READ_CHUNK", "inflate_module", "GzipStream", "Decoder", "decompressed_steps"]

OUT_CHUNK = 1024 * 1024  # bound on decompressed output produced per step
READ_CHUNK = 64 * 1024  # compressed bytes per step: bounds the memory a step can inflate to


def inflate_module():
    """ISA-L's inflate (python-isal: about twice zlib's speed, same API) when installed, else zlib."""
    try:
        from isal import isal_zlib

        return isal_zlib, (zlib.error, isal_zlib.error)
    except ImportError:  # pragma: no cover - platforms without isal wheels
        return zlib, (zlib.error,)


class GzipStream:
    """A gzip stream of one or more members (zero padding after a member is ignored)."""

    def __init__(self) -> None:
        self._zmod, self._errors = inflate_module()
        self._z = self._zmod.decompressobj(wbits=31)

    def pieces(self, data: bytes, out_step: int):
        """The uncompressed bytes ``data`` holds, in pieces of at most ``out_step`` bytes."""
        try:
            while data:
                z = self._z
                if z.eof:  # another gzip member follows (or zero padding, which is ignored)
                    if not data.strip(b"\0"):
                        return
                    self._z = z = self._zmod.decompressobj(wbits=31)
                out = z.decompress(data, out_step)
                data = z.unused_data if z.eof else z.unconsumed_tail
                if out:
                    yield out
        except self._errors as e:
            raise VerificationError(f"invalid gzip data: {e}") from None

    def finish(self) -> None:
        if not self._z.eof:
            raise VerificationError("invalid gzip data: unexpected end of stream")


class Decoder:
    """Decompresses a layer while it streams, hashing and counting the uncompressed bytes."""

    def __init__(self, compression: str, sink=None) -> None:
        self.compression = compression
        self.hash = hashlib.sha256()
        self.size = 0
        self._sink = sink  # where uncompressed bytes go instead of being hashed here
        if compression == "gzip":
            self._gz = GzipStream()
        elif compression == "zstd":
            import zstandard

            self._zw = zstandard.ZstdDecompressor().stream_writer(self, write_size=OUT_CHUNK, closefd=False)

    def write(self, data: bytes) -> int:  # sink of the zstd stream writer
        if self._sink is not None:
            self._sink(data)
        else:
            self.hash.update(data)
        self.size += len(data)
        return len(data)

    def feed(self, data: bytes) -> None:
        if self.compression == "none":
            self.write(data)
        elif self.compression == "zstd":
            try:
                self._zw.write(data)
            except Exception as e:  # zstandard.ZstdError
                raise VerificationError(f"invalid zstd data: {e}") from None
        else:
            for piece in self._gz.pieces(data, OUT_CHUNK):
                self.write(piece)

    def close(self) -> None:
        pass

    def finish(self) -> str:
        if self.compression == "zstd":
            self._zw.flush()
        elif self.compression == "gzip":
            self._gz.finish()
        return "sha256:" + self.hash.hexdigest()


def decompressed_steps(f, compression: str, out_step: int):
    """Pull-based decompression of a file: yields pieces of at most ``out_step`` bytes."""
    if compression == "none":
        while chunk := f.read(out_step):
            yield chunk
        return
    if compression == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(f, read_across_frames=True, closefd=False)
        try:
            while chunk := reader.read(out_step):
                yield chunk
        except zstandard.ZstdError as e:
            raise VerificationError(f"invalid zstd data: {e}") from None
        return
    gz = GzipStream()
    while chunk := f.read(READ_CHUNK):
        yield from gz.pieces(chunk, out_step)
    gz.finish()
