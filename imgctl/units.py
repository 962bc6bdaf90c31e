"""Sizes as docker's go-units parses them (``RAMInBytes``, ``FromHumanSize``): used by the
configuration, by command options and by the templates alike, so it lives below all of them
(printing sizes is the CLI's: :mod:`imgctl.cli.format.units`)."""

from __future__ import annotations

import re

from imgctl.errors import UsageError


_GO_FLOAT_RE = re.compile(
    r"[+-]?(?:(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?"
    r"|0[xX](?:[0-9a-fA-F]+(?:\.[0-9a-fA-F]*)?|\.[0-9a-fA-F]+)[pP][+-]?\d+)"
)


def _parse_size(text: str, base: int) -> int:
    """go-units ``parseSize``: a number (Go ``strconv.ParseFloat`` syntax), then either one
    space and a suffix, or the suffix right after the last digit or dot; the suffix is
    ``b``, or ``k m g t p`` optionally followed by ``b`` or ``ib`` (any case).  The result
    is truncated to an integer; negative sizes are refused."""
    num, sep, sfx = text.partition(" ")
    if not sep:
        i = max(text.rfind(c) for c in "0123456789.")
        if i < 0:
            raise UsageError(f"invalid size: '{text}'")
        num, sfx = text[: i + 1], text[i + 1 :]
    if not _GO_FLOAT_RE.fullmatch(num):
        raise UsageError(f'strconv.ParseFloat: parsing "{num}": invalid syntax')
    size = float.fromhex(num) if "x" in num.lower() else float(num)
    if size < 0:
        raise UsageError(f"invalid size: '{text}'")
    if size == float("inf"):
        raise UsageError(f'strconv.ParseFloat: parsing "{num}": value out of range')
    low = sfx.lower()
    if low:
        mul = {"k": 1, "m": 2, "g": 3, "t": 4, "p": 5}.get(low[0])
        if len(low) > 3 or (low[0] == "b" and len(low) > 1):
            raise UsageError(f"invalid suffix: '{low if len(low) <= 3 else sfx}'")
        if low[0] != "b":
            if mul is None or (len(low) == 2 and low[1] != "b") or (len(low) == 3 and low[1:] != "ib"):
                raise UsageError(f"invalid suffix: '{low}'")
            size *= float(base**mul)
    if size >= 2.0**63:
        raise UsageError(f"invalid size: '{text}' (too large)")
    return int(size)


def from_human_size(text: str) -> int:
    """go-units ``FromHumanSize``: ``"32kb"`` -> 32000 (decimal units)."""
    return _parse_size(text, 1000)


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: ``"32kb"`` -> 32768 (binary units)."""
    return _parse_size(text, 1024)
