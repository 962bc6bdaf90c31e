"""Sizes and durations as docker/go-units prints and parses them."""

from __future__ import annotations




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
