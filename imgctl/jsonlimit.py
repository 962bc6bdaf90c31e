"""JSON from outside, parsed with a bound on how deeply it nests.

Python's json parser recurses once per level of ``[`` or ``{``: a document a few thousand levels
deep raises RecursionError (and with a raised recursion limit can overflow the C stack).  The
documents imgctl reads (manifests, configs, registry answers) nest a handful of levels, so
``loads`` refuses anything deeper than MAX_DEPTH before parsing, with ``TooDeep``, a ValueError
like any other invalid JSON.  The check costs nothing for documents with few brackets and a few
C-speed passes over the bytes otherwise.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

__all__ = ["MAX_DEPTH", "TooDeep", "loads", "too_deep"]

MAX_DEPTH = 100

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"')
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and -1 as signed bytes
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")


class TooDeep(ValueError):
    """A JSON document nested deeper than allowed."""


def too_deep(data: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether ``data`` nests (or opens without closing) more than ``limit`` levels of ``[``/``{``."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False
    # The depth after each bracket outside strings is a running sum of +1 (open) and -1 (close).
    steps = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKETS)
    return max(accumulate(memoryview(steps).cast("b")), default=0) > limit


def loads(data: bytes | str, limit: int = MAX_DEPTH) -> object:
    """``json.loads(data)`` for a document nested at most ``limit`` levels; TooDeep otherwise."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    if too_deep(raw, limit):
        raise TooDeep(f"nested deeper than {limit} levels")
    try:
        return json.loads(data)
    except RecursionError:
        raise TooDeep(f"nested deeper than {limit} levels") from None
