"""Sizes and durations as docker/go-units prints and parses them."""

from __future__ import annotations

import re

from imgctl.errors import UsageError


# ---------------------------------------------------------------------------
# Sizes and durations (docker/go-units)

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def _custom_size(precision: int, n: int | float, base: float, units: tuple[str, ...]) -> str:
    """go-units ``CustomSize("%.<precision>g%s", n, base, units)``: divide by ``base`` while
    ``>= base`` (up to the last unit), then Go's ``%.*g``.  Python's ``%g`` with a precision
    is Go's (correct decimal rounding, ties to even, trailing zeros dropped, two-digit
    exponent); only the special values are spelled differently (Go: ``+Inf``, ``NaN``)."""
    size = float(n)
    i = 0
    while size >= base and i < len(units) - 1:
        size /= base
        i += 1
    if size != size:
        return "NaN" + units[i]
    if size in (float("inf"), float("-inf")):
        return ("+Inf" if size > 0 else "-Inf") + units[i]
    return "%.*g%s" % (precision, size, units[i])


def human_size(n: int | float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision(n, precision)``: ``204MB``, ``5.61MB``, ``0B``
    (``HumanSize`` is precision 4).  Negative sizes are never divided: ``-1e+03B``."""
    return _custom_size(precision, n, 1000.0, _DECIMAL_UNITS)


def bytes_size(n: int | float) -> str:
    """go-units ``BytesSize``: binary units, four significant digits (``1.049e+06YiB``)."""
    return _custom_size(4, n, 1024.0, _BINARY_UNITS)


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


_NS_SECOND = 1_000_000_000
_NS_MINUTE = 60 * _NS_SECOND
_NS_HOUR = 60 * _NS_MINUTE


def _go_div_float(ns: int, unit: int) -> float:
    # time.Duration.Seconds/Minutes/Hours: whole units + remainder/unit (Go's
    # integer division truncates toward zero; so does this).
    q = abs(ns) // unit
    r = abs(ns) % unit
    if ns < 0:
        q, r = -q, -r
    return float(q) + float(r) / float(unit)


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration`` for a duration given in seconds."""
    ns = int(round(seconds * 1e9))
    secs = int(_go_div_float(ns, _NS_SECOND))
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(_go_div_float(ns, _NS_MINUTE))
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    hours = int(_go_div_float(ns, _NS_HOUR) + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(_go_div_float(ns, _NS_HOUR)) // 24 // 365} years"


def created_since(created_ts: float | None, now: float) -> str:
    """``human_duration(now - created) + " ago"``; unknown (None or 0) -> ``N/A``.

    (docker itself maps only the Go zero time to "" and its default template
    turns "" into ``N/A``; an epoch-0 timestamp would print "56 years ago".)
    """
    if not created_ts:
        return "N/A"
    return human_duration(now - created_ts) + " ago"
