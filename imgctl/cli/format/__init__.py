"""Human-readable output exactly like docker's CLI.

Pure functions only: sizes, durations, display-width truncation, tabwriter
tables, and a Go ``text/template`` subset for ``--format``.  Depends on the
standard library and ``tabulate`` (imported lazily, inside the table code) so
that importing this module stays cheap.

Behaviour notes, checked against the Go sources (docker/cli, docker/go-units,
mattn/go-runewidth, golang text/template); the code here is a reimplementation:

* ``human_size`` is go-units ``HumanSizeWithPrecision(size, 3)``: divide by
  1000 while ``>= 1000`` (up to YB), then Go ``%.3g`` + unit.  So ``999999``
  bytes prints ``1e+03kB`` -- docker prints exactly that too.
* ``human_duration`` is go-units ``HumanDuration`` (seconds and minutes
  truncate, hours round half up; days < 14, weeks < 60 days, months < 2 years).
* ``truncate_display`` is docker/cli ``formatter.Ellipsis``: width counts
  East Asian Wide/Fullwidth as 2, *everything else* as 1 (combining marks and
  control characters included).
* Tables: docker does **not** use Go's ``text/tabwriter`` but its own copy
  (``cli/command/formatter/tabwriter``) whose only change is that a cell's
  width is ``runewidth.StringWidth`` (mattn/go-runewidth, grapheme clusters,
  wide = 2, combining/zero-width = 0), not the rune count.  ``cell_width``
  reproduces that (non-CJK locale, i.e. East Asian *ambiguous* = 1).
  Settings ``NewWriter(out, 10, 1, 3, ' ', 0)``: a column's width is
  ``max(10, widest cell + 3)`` per *column block* (a run of consecutive lines
  that all have a tab-terminated cell in that column); the last cell of a line
  is never padded.  A tab-terminated *empty* last column still gets padded, so
  docker's ``search`` prints trailing spaces after ``STARS`` for unofficial
  images; we print them too (byte-for-byte with docker's golden files).
* ``--format`` (``formatter.Format``): ``json`` means ``{{json .}}``; a format
  starting with ``table`` gets a header row and goes through the tabwriter,
  anything else is printed as rendered (no tabwriter).  The text after
  ``table`` is stripped of spaces (only ``' '``) and the two-character
  sequences ``\\t`` / ``\\n`` become TAB / LF.  Errors read
  ``template parsing error: template: :1: ...``.
* ``{{json .}}`` on a list row is docker's ``MarshalJSON``: a Go map, so the
  keys come out **sorted**, and ``json.Marshal`` HTML-escapes ``<>&`` (docker
  prints ``"Tag":"\\u003cnone\\u003e"``).  ``{{json .Field}}`` uses an encoder
  with ``SetEscapeHTML(false)``.
"""

from __future__ import annotations

import dataclasses
import inspect
import operator
import re
import unicodedata
from typing import Any, Callable

from imgctl.errors import UsageError

__all__ = [
    "human_size",
    "bytes_size",
    "human_duration",
    "created_since",
    "display_width",
    "cell_width",
    "truncate_display",
    "render_table",
    "Template",
    "RowContext",
    "GoMap",
    "format_rows",
    "go_json",
    "terminal_safe",
    "safe_data",
    "rows_output",
    "json_text_safe",
]


# ---------------------------------------------------------------------------
# Terminal safety
#
# Text from registries, archives and image configs reaches the terminal only through
# ``terminal_safe``: every control character (C0 including NUL, ESC, CR, BS, LF and TAB;
# DEL; C1 U+0080-U+009F including the one-byte CSI U+009B), the bidirectional and line
# controls (U+061C, U+200E/F, U+2028/9, U+202A-E, U+2066-9) and lone surrogates (which
# cannot even be encoded) become visible escapes: ``\n``, ``\r``, ``\t``, ``\xHH``
# (below U+0100) or ``\uHHHH``.  The escapes are for display, not reversible (a
# backslash is left as it is).  Values are escaped before they go into a template or a
# table (so a tag with a newline cannot forge a line, nor a TAB shift a column); the
# template's own output then keeps LF and TAB (they come from the format the user wrote)
# and loses every other control (a ``printf "%c" 27`` included).  JSON output is left to
# the JSON encoders, which escape all of these as ``\uXXXX``.

_UNSAFE_OTHER = "\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff"
_UNSAFE_RE = re.compile("[\x00-\x1f" + _UNSAFE_OTHER + "]")
_UNSAFE_KEEP_LF_TAB_RE = re.compile("[\x00-\x08\x0b-\x1f" + _UNSAFE_OTHER + "]")
_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible_escape(m: re.Match) -> str:
    ch = m.group(0)
    named = _NAMED_ESCAPES.get(ch)
    if named is not None:
        return named
    cp = ord(ch)
    return "\\x%02x" % cp if cp < 0x100 else "\\u%04x" % cp


class _Escaped(str):
    """A value that :func:`safe_data` escaped: prints as the escaped text, while the JSON
    encoders (which escape every control themselves) still see the original in ``raw``."""

    def __new__(cls, escaped: str, raw: str) -> "_Escaped":
        self = super().__new__(cls, escaped)
        self.raw = raw
        return self


def _escape_value(text: str) -> str:
    if text.isprintable() or _UNSAFE_RE.search(text) is None:
        return text
    return _Escaped(_UNSAFE_RE.sub(_visible_escape, text), text)


def terminal_safe(text: str, *, keep_lf_tab: bool = False) -> str:
    """``text`` with every terminal control escaped visibly (see above); ``keep_lf_tab``
    leaves LF and TAB alone (a template's own layout)."""
    if text.isprintable():
        return text
    rx = _UNSAFE_KEEP_LF_TAB_RE if keep_lf_tab else _UNSAFE_RE
    if rx.search(text) is None:
        return text
    return rx.sub(_visible_escape, text)


def safe_data(v: Any) -> Any:
    """A copy of decoded JSON-like data (dicts, lists, strings) with every string, keys
    included, escaped as :func:`terminal_safe` does (the JSON encoders still see the
    original text); dict types are kept (a :class:`GoMap`
    stays a GoMap), tuples become lists (both are Go slices to the template engine).
    Iterative, so depth is no problem."""
    if isinstance(v, str):
        return _escape_value(v)
    if not isinstance(v, (dict, list, tuple)):
        return v
    root: list[Any] = [None]
    stack: list[tuple[Any, Any, Any]] = [(v, root, 0)]
    while stack:
        src, parent, key = stack.pop()
        if isinstance(src, str):
            parent[key] = _escape_value(src)
        elif isinstance(src, dict):
            dst = src.__class__.__new__(src.__class__)
            dict.__init__(dst)
            if isinstance(src, RowContext):
                dst.type_name = src.type_name
            parent[key] = dst
            for k, x in src.items():
                nk = _escape_value(k) if isinstance(k, str) else k
                dst[nk] = None
                stack.append((x, dst, nk))
        elif isinstance(src, (list, tuple)):
            dst_list: list[Any] = [None] * len(src)
            parent[key] = dst_list
            for i, x in enumerate(src):
                stack.append((x, dst_list, i))
        else:
            parent[key] = src
    return root[0]


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


# ---------------------------------------------------------------------------
# Display widths


def _ellipsis_char_width(ch: str) -> int:
    # docker/cli formatter.charWidth (golang.org/x/text/width): W and F are 2,
    # every other kind (N, Na, A, H) is 1.
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def display_width(s: str) -> int:
    """Width as docker's ``formatter.Ellipsis`` counts it (East Asian W/F = 2, else 1)."""
    if s.isascii():
        return len(s)
    return sum(_ellipsis_char_width(c) for c in s)


def truncate_id(image_id: str) -> str:
    """docker/cli ``formatter.TruncateID``: drop an ``algorithm:`` prefix, keep 12 characters."""
    return image_id.partition(":")[2][:12] if ":" in image_id else image_id[:12]


def truncate_display(s: str, width: int) -> str:
    """docker/cli ``formatter.Ellipsis(s, width)``, quirks included.

    * ``width <= 0`` -> ``""``; ``width == 1`` -> the first character, whatever
      its width, and no ellipsis.
    * pure ASCII: ``s[:width-1] + "…"`` when longer than ``width``.
    * otherwise cut after the last character whose cumulative width is
      ``<= width-1`` and add ``…``; if even the first character is wider than
      ``width-1`` nothing qualifies and docker returns ``s`` unchanged.
    """
    if width <= 0:
        return ""
    if width == 1:
        return s[:1]
    if s.isascii():
        if len(s) <= width:
            return s
        return s[: width - 1] + "…"
    cum: list[int] = []
    total = 0
    for c in s:
        total += _ellipsis_char_width(c)
        cum.append(total)
    if total <= width:
        return s
    limit = width - 1
    for i in range(len(cum) - 1):
        if cum[i] <= limit < cum[i + 1]:
            return s[: i + 1] + "…"
    return s


# go-runewidth (as vendored by docker/cli), non-East-Asian locale.  Zero-width
# runes outside the grapheme-cluster path: C0/C1 controls and soft hyphen,
# the "nonprint" set, and the combining-mark blocks of its "combining" table.
_ZERO_WIDTH_RANGES = (
    (0x0300, 0x036F), (0x0483, 0x0489), (0x070F, 0x070F), (0x07EB, 0x07F3),
    (0x135D, 0x135F), (0x180B, 0x180F), (0x1AB0, 0x1AFF), (0x1DC0, 0x1DFF),
    (0x200B, 0x200F), (0x2028, 0x202E), (0x206A, 0x206F), (0x20D0, 0x20F0),
    (0x2CEF, 0x2CF1), (0x2DE0, 0x2DFF), (0x3099, 0x309A), (0xA66F, 0xA672),
    (0xA674, 0xA67D), (0xA69E, 0xA69F), (0xA6F0, 0xA6F1), (0xA8E0, 0xA8F1),
    (0xD800, 0xDFFF), (0xFE00, 0xFE0F), (0xFE20, 0xFE2F), (0xFEFF, 0xFEFF),
    (0xFFF9, 0xFFFB), (0xFFFE, 0xFFFF), (0x1D165, 0x1D169), (0x1D16D, 0x1D172),
    (0x1D17B, 0x1D182), (0x1D185, 0x1D18B), (0x1D1AA, 0x1D1AD),
    (0x1D242, 0x1D244), (0x1E000, 0x1E02A), (0xE0100, 0xE01EF),
)


def _rune_width(cp: int) -> int:
    if cp < 0x20 or 0x7F <= cp <= 0x9F or cp == 0xAD:
        return 0
    if cp < 0x300:
        return 1
    for lo, hi in _ZERO_WIDTH_RANGES:
        if lo <= cp <= hi:
            return 0
        if cp < lo:
            break
    if unicodedata.east_asian_width(chr(cp)) in ("W", "F"):
        return 2
    return 1


def _is_extend(ch: str) -> bool:
    # Grapheme_Extend / SpacingMark / ZWJ approximated by general category.
    cp = ord(ch)
    if cp == 0x200C or cp == 0x200D or 0xFF9E <= cp <= 0xFF9F:
        return True
    if 0x1F3FB <= cp <= 0x1F3FF or 0xE0020 <= cp <= 0xE007F:
        return True
    return unicodedata.category(ch) in ("Mn", "Me", "Mc")


def _is_control(ch: str) -> bool:
    cp = ord(ch)
    if cp in (0x200C, 0x200D):
        return False
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp") or (
        unicodedata.category(ch) == "Cf" and not (0xE0020 <= cp <= 0xE007F)
    )


def _graphemes(s: str):
    """Simplified UAX #29 extended grapheme clusters (GB3-GB9a, GB11-GB13, Hangul)."""
    i, n = 0, len(s)
    while i < n:
        start = i
        ch = s[i]
        i += 1
        if ch == "\r" and i < n and s[i] == "\n":
            yield s[start : i + 1]
            i += 1
            continue
        if _is_control(ch):
            yield ch
            continue
        cp = ord(ch)
        if 0x1F1E6 <= cp <= 0x1F1FF and i < n and 0x1F1E6 <= ord(s[i]) <= 0x1F1FF:
            i += 1  # regional-indicator pair
        elif 0x1100 <= cp <= 0x115F or 0xA960 <= cp <= 0xA97C or 0xAC00 <= cp <= 0xD7A3:
            # Hangul: L* (LV|LVT|V*) T*
            while i < n and (0x1100 <= ord(s[i]) <= 0x11FF or 0xD7B0 <= ord(s[i]) <= 0xD7FB):
                i += 1
        while i < n:
            nxt = s[i]
            if _is_control(nxt):
                break
            if _is_extend(nxt):
                i += 1
                if ord(nxt) == 0x200D and i < n and unicodedata.category(s[i]) == "So":
                    i += 1  # emoji ZWJ sequence
                continue
            break
        yield s[start:i]


def cell_width(s: str) -> int:
    """Width of a table cell as docker's tabwriter measures it (go-runewidth ``StringWidth``).

    Finding: Go's own text/tabwriter counts runes, but docker/cli has used its
    fork ``cli/command/formatter/tabwriter`` since commit fd2bc1fa (2022),
    whose ``updateWidth`` calls ``runewidth.StringWidth`` -- display width.
    So CJK cells are aligned by display columns in ``docker images/search``.
    """
    if s.isascii():
        return len(s) if s.isprintable() else sum(1 for c in s if " " <= c <= "~")
    width = 0
    for g in _graphemes(s):
        for c in g:
            w = _rune_width(ord(c))
            if w:
                width += w
                break
    return width


# ---------------------------------------------------------------------------
# Tables (docker's tabwriter, NewWriter(out, 10, 1, 3, ' ', 0))

_MINWIDTH = 10
_PADDING = 3


# Writer flags, as text/tabwriter numbers them
TW_FILTER_HTML, TW_STRIP_ESCAPE, TW_ALIGN_RIGHT, TW_DISCARD_EMPTY_COLUMNS, TW_TAB_INDENT, TW_DEBUG = (
    1, 2, 4, 8, 16, 32
)
# The tabwriter's escape byte 0xff never occurs in UTF-8 text; as str it is the
# surrogateescape'd byte.
TW_ESCAPE = "\udcff"


class _TwCell:
    __slots__ = ("text", "width", "htab")

    def __init__(self, text: str, width: int, htab: bool) -> None:
        self.text, self.width, self.htab = text, width, htab


def _tw_parse(text: str, flags: int) -> list[list[list[_TwCell]] | None]:
    """Cut ``text`` into lines of cells as the tabwriter does: TAB or VT ends a cell (a
    VT-terminated one is "soft": may be discarded when empty), LF or FF ends a line, FF
    also ends the section (``None`` marks it).  Between two 0xff escapes everything is
    literal text of the cell (the escapes are dropped with ``TW_STRIP_ESCAPE`` and never
    counted); with ``TW_FILTER_HTML`` a ``<tag>`` has width 0 and an ``&entity;`` width 1.
    A cell's width is ``cell_width`` (docker's tabwriter: display width).  The last line
    is the text after the last line break (its unterminated cell only when non-empty)."""
    out: list[Any] = []
    line: list[_TwCell] = []
    buf: list[str] = []
    width = 0
    seg = 0  # start in buf of the text not yet measured
    end_char = ""  # inside an escape / tag / entity: the character that ends it
    html = flags & TW_FILTER_HTML
    strip = flags & TW_STRIP_ESCAPE

    def measure() -> None:
        nonlocal width, seg
        width += cell_width("".join(buf[seg:]))
        seg = len(buf)

    def end_escape() -> None:
        nonlocal width, seg, end_char
        if end_char == TW_ESCAPE:
            measure()
            if not strip:
                width -= 2  # the escape characters are not counted
        elif end_char == ";":
            width += 1  # an entity counts as one character
        seg = len(buf)
        end_char = ""

    def terminate(htab: bool) -> None:
        nonlocal buf, width, seg
        line.append(_TwCell("".join(buf), width, htab))
        buf, width, seg = [], 0, 0

    for ch in text:
        if end_char:
            if ch == end_char:
                if not (ch == TW_ESCAPE and strip):
                    buf.append(ch)
                end_escape()
            else:
                buf.append(ch)
            continue
        if ch in "\t\v":
            measure()
            terminate(ch == "\t")
        elif ch in "\n\f":
            measure()
            terminate(False)
            out.append(line)
            line = []
            if ch == "\f":
                out.append(None)
        elif ch == TW_ESCAPE:
            measure()
            if not strip:
                buf.append(ch)
            seg = len(buf)
            end_char = TW_ESCAPE
        elif html and ch in "<&":
            measure()
            buf.append(ch)
            end_char = ">" if ch == "<" else ";"
        else:
            buf.append(ch)
    if buf or end_char:
        if end_char:
            end_escape()
        measure()
        terminate(False)
    out.append(line)
    return out


def _tw_widths(lines: list[list[_TwCell]], minwidth: int, padding: int, flags: int) -> list[list[int]]:
    """Each line's column widths (its tab-terminated cells; the last cell of a line is no
    column): a column block is a run of consecutive lines that have a cell in that column,
    its width ``max(minwidth, widest cell + padding)``, or 0 for a block of empty soft
    cells under ``TW_DISCARD_EMPTY_COLUMNS``."""
    result: list[list[int]] = [[] for _ in lines]

    def assign(line0: int, line1: int, column: int, widths: list[int]) -> None:
        i = line0
        while i < line1:
            if column >= len(lines[i]) - 1:
                result[i] = widths
                i += 1
                continue
            j = i
            width = minwidth
            discardable = True
            while j < line1 and column < len(lines[j]) - 1:
                c = lines[j][column]
                width = max(width, c.width + padding)
                if c.width > 0 or c.htab:
                    discardable = False
                j += 1
            if discardable and flags & TW_DISCARD_EMPTY_COLUMNS:
                width = 0
            assign(i, j, column + 1, widths + [width])
            i = j

    assign(0, len(lines), 0, [])
    return result


def tabwriter(text: str, minwidth: int, tabwidth: int, padding: int, padchar: str = " ", flags: int = 0) -> str:
    """What Go's ``text/tabwriter`` (docker's copy: cells measured by display width)
    writes for ``text`` with ``NewWriter(out, minwidth, tabwidth, padding, padchar,
    flags)`` and a final ``Flush``.  Padding with TAB pads to multiples of ``tabwidth``
    and aligns left; ``TW_DEBUG`` writes ``|`` between columns and ``---`` at a FF."""
    if padchar == "\t":
        flags &= ~TW_ALIGN_RIGHT  # tab padding enforces left alignment
    out: list[str] = []

    def pad(textw: int, cellw: int, use_tabs: bool) -> None:
        if padchar == "\t" or use_tabs:
            if tabwidth == 0:
                return
            cellw = (cellw + tabwidth - 1) // tabwidth * tabwidth
            out.append("\t" * ((cellw - textw + tabwidth - 1) // tabwidth))
        else:
            out.append(padchar * (cellw - textw))

    parsed = _tw_parse(text, flags)
    sections: list[list[list[_TwCell]]] = [[]]
    for item in parsed:
        if item is None:
            sections.append([])
        else:
            sections[-1].append(item)
    for k, lines in enumerate(sections):
        if k and flags & TW_DEBUG:
            out.append("---\n")
        widths = _tw_widths(lines, minwidth, padding, flags)
        for i, (line, ws) in enumerate(zip(lines, widths)):
            use_tabs = bool(flags & TW_TAB_INDENT)
            for j, c in enumerate(line):
                if j and flags & TW_DEBUG:
                    out.append("|")
                if not c.text:
                    if j < len(ws):
                        pad(c.width, ws[j], use_tabs)
                    continue
                use_tabs = False
                if flags & TW_ALIGN_RIGHT:
                    if j < len(ws):
                        pad(c.width, ws[j], False)
                    out.append(c.text)
                else:
                    out.append(c.text)
                    if j < len(ws):
                        pad(c.width, ws[j], False)
            if i + 1 < len(lines) or k + 1 < len(sections):  # a FF ended the section's last line
                out.append("\n")
    return "".join(out)


def _pad_lines(text: str) -> list[list[str]]:
    """Each output line as a list of already padded cells (docker's tabwriter layout:
    ``NewWriter(out, 10, 1, 3, ' ', 0)``); the text after the last line break is the last
    line (empty when ``text`` ends with one)."""
    out: list[list[str]] = []
    section: list[list[_TwCell]] = []
    for line in _tw_parse(text, 0) + [None]:
        if line is not None:
            section.append(line)
            continue
        for cells, ws in zip(section, _tw_widths(section, _MINWIDTH, _PADDING, 0)):
            out.append([c.text + " " * (ws[j] - c.width) if j < len(ws) else c.text for j, c in enumerate(cells)])
        section = []
    return out


def _pad_lines_simple(text: str) -> list[str] | None:
    """``_pad_lines`` for the common case, in one pass: printable ASCII, every line with the
    same number of cells (so one column block), ending with a newline.  The padded lines,
    joined (without the terminator); None otherwise."""
    if not text.endswith("\n"):
        return None
    body = text[:-1]
    if not body.isascii() or not body.replace("\t", "").replace("\n", "").isprintable():
        return None
    rows = [line.split("\t") for line in body.split("\n")]
    n = len(rows[0])
    if any(len(cells) != n for cells in rows):
        return None
    if n == 1:
        return [cells[0] for cells in rows]
    columns = list(zip(*rows))
    widths = [max(_MINWIDTH, max(map(len, col)) + _PADDING) for col in columns[:-1]]
    line = "".join(f"%-{w}s" for w in widths) + "%s"
    return [line % cells for cells in map(tuple, rows)]


def _unused_char(text: str, start: int) -> str:
    cp = start
    while chr(cp) in text:
        cp += 1
    return chr(cp)


def _tabwrite(text: str) -> str:
    """Docker's tabwriter over ``text``; output as Go writes it (LF after every
    terminated line, nothing after the final unterminated one).

    The layout (column blocks, widths) is computed here; the rows are then
    assembled with tabulate (project rule: tables use tabulate) using a
    borderless format whose columns are not re-aligned (``stralign=None``),
    so tabulate's own width measure cannot disturb docker's.  The padded rows
    go in as the lines of a single cell: the same bytes, and tabulate's
    per-cell work (type sniffing, width measuring) runs once, not once per row
    (about 35 ms at 10,000 rows).  tabulate strips trailing whitespace, so each
    line ends with a sentinel.  Its other special cases do not apply to this
    cell: a separating line is a row that is exactly \x01 (never, with the
    sentinel), and multi-line cells are split only in its own multi-line formats.
    """
    from tabulate import DataRow, TableFormat, tabulate

    lines = _pad_lines_simple(text)
    last_empty = True  # text ended with a line terminator
    if lines is None:
        rows = _pad_lines(text)
        if not rows:
            return ""
        last_empty = not rows[-1]
        lines = ["".join(row) for row in (rows[:-1] if last_empty else rows)]
    if not lines:
        return ""
    end = _unused_char(text, 0xE000)

    fmt = TableFormat(
        lineabove=None,
        linebelowheader=None,
        linebetweenrows=None,
        linebelow=None,
        headerrow=DataRow("", "", ""),
        datarow=DataRow("", "", ""),
        padding=0,
        with_header_hide=None,
    )
    cell = (end + "\n").join(lines) + end
    table = tabulate(
        [[cell]],
        tablefmt=fmt,
        stralign=None,
        disable_numparse=True,
        missingval="",
    )
    joined = table.replace(end, "")  # ``end`` occurs nowhere in ``text``
    return joined + "\n" if last_empty else joined


def render_table(headers: list[str], rows: list[list[str]]) -> str:
    """Cells through docker's tabwriter (min width 10, padding 3, spaces).

    The header row is omitted when ``headers`` is empty.  Cells are joined with
    TAB and lines with LF first, exactly like docker feeds its tabwriter, so a
    TAB or LF inside a cell behaves as it does in docker.  Lines are joined
    with "\\n", no trailing newline.  The last column is never padded, but an
    empty last column still pads the column before it (as docker does).
    """
    lines = ([headers] if headers else []) + list(rows)
    if not lines:
        return ""
    text = "".join("\t".join(str(c) for c in line) + "\n" for line in lines)
    out = _tabwrite(text)
    return out[:-1] if out.endswith("\n") else out


# ---------------------------------------------------------------------------
# Go value formatting helpers (fmt %v, encoding/json)


class RowContext(dict):
    """A list row as docker's ``*formatter.xxxContext``: a struct pointer.

    Unknown fields are an error (``can't evaluate field X in type T``), it is
    always "true" in ``{{if}}``, and ``{{json .}}`` marshals it like docker's
    ``MarshalJSON`` (keys sorted, ``<>&`` escaped).
    """

    __slots__ = ("type_name",)

    def __init__(self, data=(), type_name: str = "*formatter.context") -> None:
        super().__init__(data)
        self.type_name = type_name


class GoMap(dict):
    """A Go map (e.g. labels): a missing key reads as ``<no value>`` rather than
    an error, and ``json`` sorts its keys."""

    __slots__ = ()


class _HeaderMap(dict):
    """docker's SubHeaderContext (map[string]string) used to render a table header."""

    __slots__ = ()


def _go_type(v: Any) -> str:
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, complex):
        return "complex128"
    if isinstance(v, str):
        return "string"
    if isinstance(v, RowContext):
        return v.type_name
    if isinstance(v, _HeaderMap):
        return "formatter.SubHeaderContext"
    if isinstance(v, dict):
        return "map[string]interface {}"
    if isinstance(v, (list, tuple)):
        return "[]interface {}"
    if isinstance(v, bytes):
        return "[]uint8"
    return type(v).__name__


def _float_digits(f: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of abs(f) and the decimal point position."""
    r = repr(abs(f))
    mant, _, exp = r.partition("e")
    e = int(exp) if exp else 0
    ip, _, fp = mant.partition(".")
    digits = (ip + fp).lstrip("0")
    lead = len(ip + fp) - len((ip + fp).lstrip("0"))
    dp = len(ip) + e - lead
    digits = digits.rstrip("0")
    if not digits:
        return "0", 1
    return digits, dp


def _fmt_e(neg: bool, digits: str, dp: int, upper: bool = False) -> str:
    exp = dp - 1
    mant = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    sign = "-" if exp < 0 else "+"
    return ("-" if neg else "") + mant + ("E" if upper else "e") + sign + "%02d" % abs(exp)


def _fmt_f(neg: bool, digits: str, dp: int) -> str:
    if dp <= 0:
        s = "0." + "0" * (-dp) + digits
    elif dp >= len(digits):
        s = digits + "0" * (dp - len(digits))
    else:
        s = digits[:dp] + "." + digits[dp:]
    return ("-" if neg else "") + s


def _go_float_v(f: float) -> str:
    """fmt %v of a float64 (strconv 'g', shortest): 1.5, 100000, 1e+06, 1e-05."""
    if f != f:
        return "NaN"
    if f in (float("inf"), float("-inf")):
        return "+Inf" if f > 0 else "-Inf"
    neg = str(f).startswith("-")
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _float_digits(f)
    exp = dp - 1
    if exp < -4 or exp >= 6:  # shortest 'g' decides with precision 6
        return _fmt_e(neg, digits, dp)
    return _fmt_f(neg, digits, dp)


def _go_sprint_value(v: Any) -> str:
    """fmt.Sprint of one operand (%v)."""
    if v is None:
        return "<nil>"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float_v(v)
    if isinstance(v, complex):  # fmt's %v of a complex128: (1+2i)
        imag = _go_float_v(v.imag)
        return f"({_go_float_v(v.real)}{'' if imag[0] in '+-' else '+'}{imag}i)"
    if isinstance(v, dict):
        items = sorted(v.items(), key=lambda kv: _json_key(kv[0]))
        return "map[" + " ".join(
            f"{_go_sprint_value(k)}:{_go_sprint_value(x)}" for k, x in items
        ) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_go_sprint_value(x) for x in v) + "]"
    if isinstance(v, bytes):
        return "[" + " ".join(str(b) for b in v) + "]"
    if dataclasses.is_dataclass(v) and type(v).__str__ is object.__str__:
        return "{" + " ".join(_go_sprint_value(getattr(v, f.name)) for f in dataclasses.fields(v)) + "}"
    return str(v)


def _go_sprint(args: list[Any]) -> str:
    """fmt.Sprint: a space between operands when neither is a string."""
    out = []
    prev_str = True
    for i, a in enumerate(args):
        is_str = isinstance(a, str)
        if i > 0 and not is_str and not prev_str:
            out.append(" ")
        out.append(_go_sprint_value(a))
        prev_str = is_str
    return "".join(out)


_JSON_ALSO_ESCAPED = frozenset(range(0x7F, 0xA0)) | {0x061C, 0x200E, 0x200F, 0x2028, 0x2029} | frozenset(
    range(0x202A, 0x202F)
) | frozenset(range(0x2066, 0x206A))


def _json_string(s: str, escape_html: bool) -> str:
    """Go's encoding/json string, and more: DEL, C1 controls and the bidirectional
    controls are escaped too (Go writes them raw; the same JSON value either way)."""
    s = getattr(s, "raw", s)
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if cp < 0x80:
            if ch == '"':
                out.append('\\"')
            elif ch == "\\":
                out.append("\\\\")
            elif cp < 0x20:
                out.append(
                    {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(
                        ch, "\\u%04x" % cp
                    )
                )
            elif escape_html and ch in "<>&":
                out.append("\\u%04x" % cp)
            elif cp == 0x7F:
                out.append("\\u007f")
            else:
                out.append(ch)
        elif cp in _JSON_ALSO_ESCAPED:
            out.append("\\u%04x" % cp)
        elif 0xD800 <= cp <= 0xDFFF:
            out.append("\\ufffd")  # invalid UTF-8 becomes U+FFFD in Go
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def _json_float(f: float) -> str:
    if f != f or f in (float("inf"), float("-inf")):
        raise _CallError("json: unsupported value: " + _go_float_v(f))
    neg = str(f).startswith("-")
    if f == 0:
        return "-0" if neg else "0"
    digits, dp = _float_digits(f)
    a = abs(f)
    if a < 1e-6 or a >= 1e21:
        s = _fmt_e(neg, digits, dp)
        # encoding/json turns e-07 into e-7
        m = re.search(r"e([+-])0(\d)$", s)
        if m and m.group(1) == "-":
            s = s[: m.start()] + "e-" + m.group(2)
        return s
    return _fmt_f(neg, digits, dp)


_JSON_TEXT_UNSAFE_RE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text_safe(text: str) -> str:
    """JSON text from ``json.dumps(..., ensure_ascii=False)`` escaped as :func:`go_json`
    escapes it: DEL, C1 and bidirectional controls as ``\\uXXXX``, a lone surrogate as
    ``\\ufffd`` (Go's replacement for invalid UTF-8).  These characters can only occur
    inside JSON strings, so the value stays the same."""
    return _JSON_TEXT_UNSAFE_RE.sub(
        lambda m: "\\ufffd" if 0xD800 <= ord(m.group(0)) <= 0xDFFF else "\\u%04x" % ord(m.group(0)), text
    )


def _json_key(k: Any) -> str:
    return getattr(k, "raw", k) if isinstance(k, str) else str(k)


def _json_encode(v: Any, escape_html: bool) -> str:
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return _json_string(v, escape_html)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _json_float(v)
    if isinstance(v, complex):
        raise _CallError("json: unsupported type: complex128")
    if isinstance(v, RowContext):
        # docker's MarshalJSON: json.Marshal of a map -> sorted, HTML-escaped
        items = sorted(v.items(), key=lambda kv: _json_key(kv[0]))
        return "{" + ",".join(
            _json_string(_json_key(k), True) + ":" + _json_encode(x, True) for k, x in items
        ) + "}"
    if isinstance(v, dict):
        items = list(v.items())
        if isinstance(v, (GoMap, _HeaderMap)):
            items.sort(key=lambda kv: _json_key(kv[0]))
        return "{" + ",".join(
            _json_string(_json_key(k), escape_html) + ":" + _json_encode(x, escape_html)
            for k, x in items
        ) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_json_encode(x, escape_html) for x in v) + "]"
    if isinstance(v, bytes):
        import base64

        return '"' + base64.b64encode(v).decode("ascii") + '"'
    return _json_string(str(v), escape_html)


def go_json(v: Any) -> str:
    """docker's template ``json`` function (compact, no HTML escaping except
    inside a :class:`RowContext`, which marshals like docker's contexts)."""
    return _json_encode(v, False)


# ---------------------------------------------------------------------------
# Go text/template: lexer

_MISSING = object()

(
    T_ERROR, T_BOOL, T_CHAR, T_CHARCONST, T_COMPLEX, T_ASSIGN, T_DECLARE, T_EOF,
    T_FIELD, T_IDENT, T_LEFT, T_LPAREN, T_NUMBER, T_PIPE, T_RAWSTRING, T_RIGHT,
    T_RPAREN, T_SPACE, T_STRING, T_TEXT, T_VARIABLE,
    T_KEYWORD,  # keywords after this
    T_BLOCK, T_BREAK, T_CONTINUE, T_DOT, T_DEFINE, T_ELSE, T_END, T_IF, T_NIL,
    T_RANGE, T_TEMPLATE, T_WITH,
) = range(34)

_KEYWORDS = {
    ".": T_DOT, "block": T_BLOCK, "break": T_BREAK, "continue": T_CONTINUE,
    "define": T_DEFINE, "else": T_ELSE, "end": T_END, "if": T_IF,
    "range": T_RANGE, "nil": T_NIL, "template": T_TEMPLATE, "with": T_WITH,
}

_SPACE = " \t\r\n"


class _Tok:
    __slots__ = ("typ", "val", "pos", "line")

    def __init__(self, typ: int, val: str, pos: int, line: int) -> None:
        self.typ, self.val, self.pos, self.line = typ, val, pos, line

    def __str__(self) -> str:
        if self.typ == T_EOF:
            return "EOF"
        if self.typ == T_ERROR:
            return self.val
        if self.typ > T_KEYWORD:
            return f"<{self.val}>"
        if len(self.val) > 10:
            return _go_quote(self.val[:10]) + "..."
        return _go_quote(self.val)


def _go_quote(s: str) -> str:
    """strconv.Quote."""
    out = ['"']
    for ch in s:
        cp = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
                        "\r": "\\r", "\t": "\\t", "\v": "\\v"}[ch])
        elif cp < 0x20 or cp == 0x7F:
            out.append("\\x%02x" % cp)
        elif cp < 0x80 or (ch.isprintable() and ch != "\u00a0") or ch == " ":
            if 0xD800 <= cp <= 0xDFFF:
                out.append("\\ufffd")
            else:
                out.append(ch)
        elif cp < 0x10000:
            out.append("\\u%04x" % cp)
        else:
            out.append("\\U%08x" % cp)
    out.append('"')
    return "".join(out)


def _fmt_U(ch: str) -> str:
    """fmt %#U: U+0023 '#'."""
    cp = ord(ch)
    if ch.isprintable():
        return "U+%04X '%s'" % (cp, ch)
    return "U+%04X" % cp


def _is_alnum(ch: str) -> bool:
    return ch == "_" or ch.isalpha() or unicodedata.category(ch) == "Nd"


class _Lexer:
    """Go's text/template lexer (delimiters, trim markers, comments)."""

    def __init__(self, text: str, left: str = "{{", right: str = "}}") -> None:
        self.s = text
        self.left, self.right = left, right
        self.pos = 0
        self.start = 0
        self.paren = 0
        self.items: list[_Tok] = []
        self.state: Callable[[], Any] | None = self.lex_text
        self.line = 1
        self.start_line = 1

    # -- plumbing
    def next_item(self) -> _Tok:
        while not self.items:
            if self.state is None:
                return _Tok(T_EOF, "", len(self.s), self.line)
            self.state = self.state()
        return self.items.pop(0)

    def nxt(self) -> str:
        if self.pos >= len(self.s):
            self.pos += 1  # so that backup() is symmetric
            return ""
        ch = self.s[self.pos]
        self.pos += 1
        if ch == "\n":
            self.line += 1
        return ch

    def backup(self) -> None:
        self.pos -= 1
        if self.pos < len(self.s) and self.s[self.pos] == "\n":
            self.line -= 1

    def peek(self) -> str:
        return self.s[self.pos] if self.pos < len(self.s) else ""

    def emit(self, typ: int) -> None:
        self.items.append(_Tok(typ, self.s[self.start : self.pos], self.start, self.start_line))
        self.start = self.pos
        self.start_line = self.line

    def ignore(self) -> None:
        self.line += self.s.count("\n", self.start, self.pos)
        self.start = self.pos
        self.start_line = self.line

    def error(self, msg: str) -> None:
        self.items.append(_Tok(T_ERROR, msg, self.start, self.start_line))
        return None

    def at_right_delim(self) -> tuple[bool, bool]:
        rest = self.s[self.pos :]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and rest[2:].startswith(self.right):
            return True, True
        if rest.startswith(self.right):
            return True, False
        return False, False

    # -- states
    def lex_text(self):
        x = self.s.find(self.left, self.pos)
        if x >= 0:
            end = x
            after = self.s[x + len(self.left) :]
            if len(after) >= 2 and after[0] == "-" and after[1] in _SPACE:
                end = len(self.s[:x].rstrip(_SPACE))
                if end < self.start:
                    end = self.start
            if end > self.start:
                self.line += self.s.count("\n", self.pos, end)
                self.pos = end
                self.emit(T_TEXT)
            self.pos = x
            self.ignore()
            return self.lex_left_delim
        self.line += self.s.count("\n", self.pos)
        self.pos = len(self.s)
        if self.pos > self.start:
            self.emit(T_TEXT)
        self.items.append(_Tok(T_EOF, "", self.pos, self.line))
        return None

    def lex_left_delim(self):
        self.pos += len(self.left)
        rest = self.s[self.pos :]
        trim = len(rest) >= 2 and rest[0] == "-" and rest[1] in _SPACE
        after = 2 if trim else 0
        if self.s.startswith("/*", self.pos + after):
            self.pos += after
            self.ignore()
            return self.lex_comment
        self.emit(T_LEFT)
        self.pos += after
        self.ignore()
        self.paren = 0
        return self.lex_inside

    def lex_comment(self):
        self.pos += 2
        i = self.s.find("*/", self.pos)
        if i < 0:
            return self.error("unclosed comment")
        self.pos = i + 2
        delim, trim = self.at_right_delim()
        if not delim:
            return self.error("comment ends before closing delimiter")
        if trim:
            self.pos += 2
        self.pos += len(self.right)
        if trim:
            self.pos = len(self.s) - len(self.s[self.pos :].lstrip(_SPACE))
        self.ignore()
        return self.lex_text

    def lex_right_delim(self):
        _, trim = self.at_right_delim()
        if trim:
            self.pos += 2
            self.ignore()
        self.pos += len(self.right)
        self.emit(T_RIGHT)
        if trim:
            self.pos = len(self.s) - len(self.s[self.pos :].lstrip(_SPACE))
            self.ignore()
        return self.lex_text

    def lex_inside(self):
        delim, _ = self.at_right_delim()
        if delim:
            if self.paren == 0:
                return self.lex_right_delim
            return self.error("unclosed left paren")
        r = self.nxt()
        if r == "":
            return self.error("unclosed action")
        if r in _SPACE:
            self.backup()
            return self.lex_space
        if r == "=":
            self.emit(T_ASSIGN)
        elif r == ":":
            if self.nxt() != "=":
                return self.error("expected :=")
            self.emit(T_DECLARE)
        elif r == "|":
            self.emit(T_PIPE)
        elif r == '"':
            return self.lex_quote
        elif r == "`":
            return self.lex_raw_quote
        elif r == "$":
            return self.lex_variable
        elif r == "'":
            return self.lex_char
        elif r == "." and not ("0" <= self.peek() <= "9" and self.peek() != ""):
            return self.lex_field
        elif r in "+-." or "0" <= r <= "9":
            self.backup()
            return self.lex_number
        elif _is_alnum(r):
            self.backup()
            return self.lex_identifier
        elif r == "(":
            self.emit(T_LPAREN)
            self.paren += 1
        elif r == ")":
            self.paren -= 1
            if self.paren < 0:  # the error in place of the ")" (Go's lexer)
                return self.error("unexpected right paren")
            self.emit(T_RPAREN)
        elif ord(r) < 0x80 and r.isprintable():
            self.emit(T_CHAR)
        else:
            return self.error("unrecognized character in action: " + _fmt_U(r))
        return self.lex_inside

    def lex_space(self):
        num = 0
        while self.peek() and self.peek() in _SPACE:
            self.nxt()
            num += 1
        rest = self.s[self.pos - 1 :]
        if len(rest) >= 2 and rest[0] in _SPACE and rest[1] == "-" and rest[2:].startswith(self.right):
            self.backup()
            if num == 1:
                return self.lex_inside
        self.emit(T_SPACE)
        return self.lex_inside

    def lex_identifier(self):
        while True:
            r = self.nxt()
            if r and _is_alnum(r):
                continue
            self.backup()
            word = self.s[self.start : self.pos]
            if not self.at_terminator():
                return self.error("bad character " + _fmt_U(r) if r else "bad character")
            if word in _KEYWORDS and _KEYWORDS[word] > T_KEYWORD:
                self.emit(_KEYWORDS[word])
            elif word[0] == ".":
                self.emit(T_FIELD)
            elif word in ("true", "false"):
                self.emit(T_BOOL)
            else:
                self.emit(T_IDENT)
            return self.lex_inside

    def lex_field(self):
        return self.lex_field_or_variable(T_FIELD)

    def lex_variable(self):
        if self.at_terminator():
            self.emit(T_VARIABLE)
            return self.lex_inside
        return self.lex_field_or_variable(T_VARIABLE)

    def lex_field_or_variable(self, typ: int):
        if self.at_terminator():
            self.emit(T_VARIABLE if typ == T_VARIABLE else T_DOT)
            return self.lex_inside
        r = ""
        while True:
            r = self.nxt()
            if not (r and _is_alnum(r)):
                self.backup()
                break
        if not self.at_terminator():
            return self.error("bad character " + _fmt_U(r))
        self.emit(typ)
        return self.lex_inside

    def at_terminator(self) -> bool:
        r = self.peek()
        if r == "" or r in _SPACE or r in ".,|:()":
            return True
        return self.s.startswith(self.right, self.pos)

    def lex_char(self):
        return self._lex_escaped("'", "character constant", T_CHARCONST)

    def _lex_escaped(self, close: str, what: str, typ):
        """The rest of a '...' or "..." literal, backslash escapes included (Go's lexChar/lexQuote)."""
        while True:
            r = self.nxt()
            if r == "\\":
                r2 = self.nxt()
                if r2 and r2 != "\n":
                    continue
                return self.error(f"unterminated {what}")
            if r in ("", "\n"):
                return self.error(f"unterminated {what}")
            if r == close:
                break
        self.emit(typ)
        return self.lex_inside

    _NUM_RE = re.compile(
        r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?"
        r"|0[oO][0-7_]*|0[bB][01_]*"
        r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?"
    )

    def lex_number(self):
        m = self._NUM_RE.match(self.s, self.pos)
        end = m.end() if m else self.pos
        self.pos = end
        if self.peek() and _is_alnum(self.peek()):
            self.pos += 1
            return self.error("bad number syntax: " + _go_quote(self.s[self.start : self.pos]))
        if self.peek() in ("+", "-") and self.peek():
            m2 = self._NUM_RE.match(self.s, self.pos)
            self.pos = m2.end() if m2 else self.pos
            if not self.s[: self.pos].endswith("i"):
                return self.error("bad number syntax: " + _go_quote(self.s[self.start : self.pos]))
            self.emit(T_COMPLEX)
            return self.lex_inside
        self.emit(T_NUMBER)
        return self.lex_inside

    def lex_quote(self):
        return self._lex_escaped('"', "quoted string", T_STRING)

    def lex_raw_quote(self):
        while True:
            r = self.nxt()
            if r == "":
                return self.error("unterminated raw quoted string")
            if r == "`":
                break
        self.emit(T_RAWSTRING)
        return self.lex_inside


_TOKEN_NAMES = {
    T_ERROR: "error", T_BOOL: "bool", T_CHAR: "char", T_CHARCONST: "charconst",
    T_COMPLEX: "complex", T_ASSIGN: "=", T_DECLARE: ":=", T_EOF: "EOF", T_FIELD: "field",
    T_IDENT: "identifier", T_LEFT: "left delim", T_LPAREN: "(", T_NUMBER: "number",
    T_PIPE: "pipe", T_RAWSTRING: "raw string", T_RIGHT: "right delim", T_RPAREN: ")",
    T_SPACE: "space", T_STRING: "string", T_TEXT: "text", T_VARIABLE: "variable",
    **{typ: word for word, typ in _KEYWORDS.items()},
}


def template_tokens(text: str, delims: tuple[str, str] = ("{{", "}}")) -> list[tuple[str, int, str, int]]:
    """The lexer's items for ``text`` as Go's parse.lex emits them (comments are skipped,
    as the parser's lexer does): ``(kind, byte offset, value, line)`` up to and including
    the EOF or the first error, kinds named as Go's lex_test.go names them."""
    lex = _Lexer(text, *delims)
    out = []
    while True:
        tok = lex.next_item()
        pos = len(text[: tok.pos].encode("utf-8", "surrogatepass"))
        out.append((_TOKEN_NAMES[tok.typ], pos, tok.val, tok.line))
        if tok.typ in (T_EOF, T_ERROR):
            return out


def _go_unquote(lit: str) -> str:
    """strconv.Unquote for "..." and `...` literals (and '.' for char constants)."""
    q = lit[0]
    body = lit[1:-1]
    if q == "`":
        if "`" in body:
            raise ValueError("invalid syntax")
        return body.replace("\r", "")
    out = []
    i = 0
    n = len(body)
    simple = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t",
              "v": "\v", "\\": "\\", "'": "'", '"': '"'}
    while i < n:
        ch = body[i]
        if ch == q or ch == "\n":
            raise ValueError("invalid syntax")
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            raise ValueError("invalid syntax")
        e = body[i]
        i += 1
        if e in simple:
            if (e == "'" and q == '"') or (e == '"' and q == "'"):
                raise ValueError("invalid syntax")
            out.append(simple[e])
        elif e in "xuU":
            size = {"x": 2, "u": 4, "U": 8}[e]
            hexs = body[i : i + size]
            if len(hexs) != size or not all(c in "0123456789abcdefABCDEF" for c in hexs):
                raise ValueError("invalid syntax")
            i += size
            v = int(hexs, 16)
            if e == "x":
                out.append(chr(v))  # a byte; fine for ASCII
            else:
                if v > 0x10FFFF or 0xD800 <= v <= 0xDFFF:
                    raise ValueError("invalid syntax")
                out.append(chr(v))
        elif e in "01234567":
            octs = body[i - 1 : i + 2]
            if len(octs) != 3 or not all(c in "01234567" for c in octs):
                raise ValueError("invalid syntax")
            i += 2
            v = int(octs, 8)
            if v > 255:
                raise ValueError("invalid syntax")
            out.append(chr(v))
        else:
            raise ValueError("invalid syntax")
    res = "".join(out)
    if q == "'" and len(res) != 1:
        raise ValueError("invalid syntax")
    return res


# ---------------------------------------------------------------------------
# Go text/template: parse tree


class _Node:
    __slots__ = ("pos",)
    kind = ""

    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.kind


class _Text(_Node):
    __slots__ = ("text",)
    kind = "text"

    def __init__(self, pos, text):
        self.pos, self.text = pos, text


class _Field(_Node):
    __slots__ = ("idents",)
    kind = "field"

    def __init__(self, pos, ident: str):
        self.pos = pos
        self.idents = ident[1:].split(".")

    def __str__(self):
        return "".join("." + i for i in self.idents)


class _Variable(_Node):
    __slots__ = ("idents",)
    kind = "variable"

    def __init__(self, pos, ident: str):
        self.pos = pos
        self.idents = ident.split(".")

    def __str__(self):
        return ".".join(self.idents)


class _Dot(_Node):
    __slots__ = ()
    kind = "dot"

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "."


class _Nil(_Node):
    __slots__ = ()
    kind = "nil"

    def __init__(self, pos):
        self.pos = pos

    def __str__(self):
        return "nil"


class _Bool(_Node):
    __slots__ = ("value",)
    kind = "bool"

    def __init__(self, pos, value):
        self.pos, self.value = pos, value

    def __str__(self):
        return "true" if self.value else "false"


class _String(_Node):
    __slots__ = ("quoted", "value")
    kind = "string"

    def __init__(self, pos, quoted, value):
        self.pos, self.quoted, self.value = pos, quoted, value

    def __str__(self):
        return self.quoted


def _underscore_ok(s: str) -> bool:
    """strconv's underscoreOK: ``_`` only between digits, or between a base prefix and a digit."""
    saw = "^"
    if s[:1] in ("+", "-"):
        s = s[1:]
    i, hexa = 0, False
    if len(s) >= 2 and s[0] == "0" and s[1] in "bBoOxX":
        i, saw, hexa = 2, "0", s[1] in "xX"
    for c in s[i:]:
        if c.isdigit() and c.isascii() or hexa and c in "abcdefABCDEF":
            saw = "0"
        elif c == "_":
            if saw != "0":
                return False
            saw = "_"
        elif saw == "_":
            return False
        else:
            saw = "!"
    return saw != "_"


def _go_parse_uint(s: str) -> int | None:
    """strconv.ParseUint(s, 0, 64): base prefixes 0b 0o 0x and a bare leading 0 (octal)."""
    if not s:
        return None
    body, base = s, 10
    if s[0] == "0":
        if len(s) >= 3 and s[1] in "bB":
            body, base = s[2:], 2
        elif len(s) >= 3 and s[1] in "oO":
            body, base = s[2:], 8
        elif len(s) >= 3 and s[1] in "xX":
            body, base = s[2:], 16
        else:
            body, base = s[1:], 8
    n = 0
    underscores = False
    for c in body:
        if c == "_":
            underscores = True
            continue
        d = int(c, 16) if c in "0123456789abcdefABCDEF" else 99
        if d >= base:
            return None
        n = n * base + d
    if underscores and not _underscore_ok(s):
        return None
    return n if n < 1 << 64 else None


def _go_parse_int(s: str) -> int | None:
    """strconv.ParseInt(s, 0, 64)."""
    neg = s[:1] == "-"
    u = _go_parse_uint(s[1:] if s[:1] in "+-" else s)
    if u is None:
        return None
    if neg:
        return -u if u <= 1 << 63 else None
    return u if u < 1 << 63 else None


_GO_DEC_FLOAT = re.compile(r"[+-]?(?:[0-9_]+\.?[0-9_]*|\.[0-9_]+)(?:[eE][+-]?[0-9_]+)?")
_GO_HEX_FLOAT = re.compile(r"[+-]?0[xX](?:[0-9a-fA-F_]+\.?[0-9a-fA-F_]*|\.[0-9a-fA-F_]+)[pP][+-]?[0-9_]+")


def _go_parse_float(s: str) -> float | None:
    """strconv.ParseFloat(s, 64) for the literal forms the lexer produces (decimal, or hex
    with its mandatory ``p`` exponent; ``_`` as strconv allows it); None when Go refuses."""
    if "_" in s and not _underscore_ok(s):
        return None
    t = s.replace("_", "")
    try:
        if _GO_HEX_FLOAT.fullmatch(s):
            return float.fromhex(t)
        if _GO_DEC_FLOAT.fullmatch(s) and any(c.isdigit() for c in t):
            return float(t)
    except (ValueError, OverflowError):
        return None
    return None


def _int64_of(f: float) -> int | None:
    return int(f) if f == f and -(2**63) <= f < 2**63 and int(f) == f else None


class _Number(_Node):
    """A number or character constant as Go's parse.NumberNode: which of int, uint, float
    and complex it can be (several at once), decided as ``newNumber`` decides."""

    __slots__ = ("text", "is_int", "is_uint", "is_float", "is_complex", "int_val", "float_val", "complex_val", "is_char")
    kind = "number"

    def __init__(self, pos, text: str, is_char: bool, is_complex_item: bool = False):
        self.pos, self.text, self.is_char = pos, text, is_char
        self.is_int = self.is_uint = self.is_float = self.is_complex = False
        self.int_val, self.float_val, self.complex_val = 0, 0.0, 0j
        if is_char:
            try:
                ch = _go_unquote(text)
            except ValueError:
                raise _ParseFail(f"malformed character constant: {text}")
            self.is_int = self.is_uint = self.is_float = True
            self.int_val = ord(ch)
            self.float_val = float(self.int_val)
            return
        if is_complex_item:  # "1+2i": fmt.Sscan parses the pair
            m = re.fullmatch(r"([+-]?[^+-]+(?:[eEpP][+-][^+-]+)?)([+-][^+-]+(?:[eEpP][+-][^+-]+)?)i", text)
            re_, im = (_go_parse_float(m.group(1)), _go_parse_float(m.group(2))) if m else (None, None)
            if re_ is None or im is None:
                raise _ParseFail(f"illegal number syntax: {_go_quote(text)}")
            self._set_complex(complex(re_, im))
            return
        if text.endswith("i"):  # imaginary: complex unless zero ("073i" is 73i: not octal)
            f = _go_parse_float(text[:-1])
            if f is not None:
                self._set_complex(complex(0, f))
                return
        u = _go_parse_uint(text)
        if u is not None:
            self.is_uint = True
        i = _go_parse_int(text)
        if i is not None:
            self.is_int, self.int_val = True, i
            if i == 0:
                self.is_uint = True  # -0 is a uint too
        if self.is_int:
            self.is_float, self.float_val = True, float(self.int_val)
        elif self.is_uint:
            self.is_float, self.float_val = True, float(u)
        else:
            f = _go_parse_float(text)
            if f is not None:
                if not any(c in text for c in ".eEpP"):
                    raise _ParseFail(f"integer overflow: {_go_quote(text)}")
                self.is_float, self.float_val = True, f
                n = _int64_of(f)
                if n is not None:
                    self.is_int, self.int_val = True, n
                if f == f and 0 <= f < 2**64 and int(f) == f:
                    self.is_uint = True
        if not (self.is_int or self.is_uint or self.is_float):
            raise _ParseFail(f"illegal number syntax: {_go_quote(text)}")

    def _set_complex(self, c: complex) -> None:
        self.is_complex, self.complex_val = True, c
        if c.imag == 0:  # simplifyComplex
            self.is_float, self.float_val = True, c.real
            n = _int64_of(c.real)
            if n is not None:
                self.is_int, self.int_val = True, n
            self.is_uint = c.real == c.real and 0 <= c.real < 2**64 and int(c.real) == c.real

    def ideal(self):
        """exec.go idealConstant: complex, else float when the text looks like one (not a
        hex integer, not a character), else int; a uint beyond int64 does not fit."""
        if self.is_complex:
            return self.complex_val
        t = self.text
        hex_int = len(t) > 2 and t[0] == "0" and t[1] in "xX" and not any(c in t for c in "pP")
        if self.is_float and not hex_int and not self.is_char and any(c in t for c in ".eEpP"):
            return self.float_val
        if self.is_int:
            return self.int_val
        if self.is_uint:
            raise ValueError(f"{t} overflows int")
        return self.float_val

    def __str__(self):
        return self.text


class _Identifier(_Node):
    __slots__ = ("ident",)
    kind = "identifier"

    def __init__(self, pos, ident):
        self.pos, self.ident = pos, ident

    def __str__(self):
        return self.ident


class _Chain(_Node):
    __slots__ = ("node", "fields")
    kind = "chain"

    def __init__(self, pos, node):
        self.pos, self.node, self.fields = pos, node, []

    def __str__(self):
        s = str(self.node)
        if isinstance(self.node, _Pipe):
            s = "(" + s + ")"
        return s + "".join("." + f for f in self.fields)


class _Command(_Node):
    __slots__ = ("args",)
    kind = "command"

    def __init__(self, pos):
        self.pos, self.args = pos, []

    def __str__(self):
        parts = []
        for a in self.args:
            parts.append("(" + str(a) + ")" if isinstance(a, _Pipe) else str(a))
        return " ".join(parts)


class _Pipe(_Node):
    __slots__ = ("line", "decl", "is_assign", "cmds")
    kind = "pipe"

    def __init__(self, pos, line):
        self.pos, self.line = pos, line
        self.decl: list[_Variable] = []
        self.is_assign = False
        self.cmds: list[_Command] = []

    def __str__(self):
        s = ""
        if self.decl:
            s = ", ".join(str(v) for v in self.decl) + (" = " if self.is_assign else " := ")
        return s + " | ".join(str(c) for c in self.cmds)


class _Action(_Node):
    __slots__ = ("pipe",)
    kind = "action"

    def __init__(self, pos, pipe):
        self.pos, self.pipe = pos, pipe

    def __str__(self):
        return "{{" + str(self.pipe) + "}}"


class _Branch(_Node):
    __slots__ = ("pipe", "list", "else_list")

    def __init__(self, kind, pos, pipe, lst, else_list):
        self.kind = kind  # type: ignore[misc]
        self.pos, self.pipe, self.list, self.else_list = pos, pipe, lst, else_list


class _If(_Branch):
    __slots__ = ("kind",)


class _Marker(_Node):
    """{{end}}, {{else}}, {{break}}, {{continue}}."""

    __slots__ = ("kind",)

    def __init__(self, kind, pos):
        self.kind, self.pos = kind, pos  # type: ignore[misc]

    def __str__(self):
        return "{{" + self.kind + "}}"


class _TemplateCall(_Node):
    """{{template "name" pipeline}} (also what {{block}} leaves in its place)."""

    __slots__ = ("name", "pipe", "line")
    kind = "template"

    def __init__(self, pos, line, name, pipe):
        self.pos, self.line, self.name, self.pipe = pos, line, name, pipe

    def __str__(self):
        if self.pipe is None:
            return "{{template %s}}" % _go_quote(self.name)
        return "{{template %s %s}}" % (_go_quote(self.name), self.pipe)


def _is_empty_tree(nodes: list[_Node]) -> bool:
    """parse.IsEmptyTree: nothing but white space (comments are already dropped)."""
    return all(isinstance(n, _Text) and not n.text.strip(_SPACE) for n in nodes)


class _ParseFail(Exception):
    pass


_ARG_START = {
    T_BOOL, T_CHARCONST, T_COMPLEX, T_DOT, T_FIELD, T_IDENT, T_NUMBER, T_NIL,
    T_RAWSTRING, T_STRING, T_VARIABLE, T_LPAREN,
}


class _Parser:
    def __init__(self, text: str, funcs: set[str], delims: tuple[str, str] = ("{{", "}}")) -> None:
        self.lex = _Lexer(text, *delims)
        self.back: list[_Tok] = []
        self.funcs = funcs
        self.defs: dict[str, list[_Node]] = {}  # {{define}}d and {{block}} templates
        self.vars = ["$"]
        self.range_depth = 0
        self.line = 1
        self.action_line = 0  # line of the {{ of the action being parsed (Go's actionLine)

    # token plumbing (Go's three-token lookahead as a push-back stack)
    def next(self) -> _Tok:
        if self.back:
            return self.back.pop()
        tok = self.lex.next_item()
        self.line = tok.line
        return tok

    def backup(self, tok: _Tok) -> None:
        self.back.append(tok)

    def peek(self) -> _Tok:
        tok = self.next()
        self.backup(tok)
        return tok

    def next_non_space(self) -> _Tok:
        tok = self.next()
        while tok.typ == T_SPACE:
            tok = self.next()
        return tok

    def peek_non_space(self) -> _Tok:
        tok = self.next_non_space()
        self.backup(tok)
        return tok

    def errorf(self, msg: str):
        raise _ParseFail(f"template: :{self.line}: {msg}")

    def expect(self, typ: int, context: str) -> _Tok:
        tok = self.next_non_space()
        if tok.typ != typ:
            self.unexpected(tok, context)
        return tok

    def unexpected(self, tok: _Tok, context: str):
        if tok.typ == T_ERROR:
            # Go names the line where an action started when the lexer failed on another
            # one: "unclosed action started at :2", "unterminated quoted string in action
            # started at :1".
            extra = ""
            if self.action_line and self.action_line != tok.line:
                extra = f" in action started at :{self.action_line}"
                if tok.val.endswith(" action"):
                    extra = extra[len(" in action") :]
            self.errorf(tok.val + extra)
        self.errorf(f"unexpected {tok} in {context}")

    # grammar
    def parse(self) -> list[_Node]:
        root: list[_Node] = []
        while self.peek().typ != T_EOF:
            if self.peek().typ == T_LEFT:
                delim = self.next()
                tok = self.next_non_space()
                if tok.typ == T_DEFINE:
                    self.parse_definition()
                    continue
                self.backup(tok)
                self.backup(delim)
            n = self.text_or_action()
            if isinstance(n, _Marker) and n.kind in ("end", "else"):
                self.errorf(f"unexpected {n}")
            root.append(n)
        return root

    def add_definition(self, name: str, nodes: list[_Node]) -> None:
        """parse's Tree.add: a template may be defined twice only if one of the two
        definitions is empty (then the non-empty one wins)."""
        old = self.defs.get(name)
        if old is None or _is_empty_tree(old):
            self.defs[name] = nodes
        elif not _is_empty_tree(nodes):
            self.errorf(f"template: multiple definition of template {_go_quote(name)}")

    def parse_definition(self) -> None:
        """{{define "name"}} ... {{end}} (the {{define has been read); top level only."""
        name = self.template_name("define clause")
        self.expect(T_RIGHT, "define clause")
        self.definition_body(name, "define clause")

    def definition_body(self, name: str, context: str) -> None:
        """The body of a {{define}} or {{block}} up to its {{end}}: a template of its own
        (only ``$`` is defined in it)."""
        saved, self.vars = self.vars, ["$"]
        try:
            body, end = self.item_list()
        finally:
            self.vars = saved
        if not (isinstance(end, _Marker) and end.kind == "end"):
            self.errorf(f"unexpected {end} in {context}")
        self.add_definition(name, body)

    def template_name(self, context: str) -> str:
        tok = self.next_non_space()
        if tok.typ not in (T_STRING, T_RAWSTRING):
            self.unexpected(tok, context)
        try:
            return _go_unquote(tok.val)
        except ValueError:
            self.errorf("invalid syntax")
            raise AssertionError

    def template_control(self, tok: _Tok) -> _Node:
        """{{template "name" [pipeline]}} and {{block "name" pipeline}} ... {{end}}."""
        context = "block clause" if tok.typ == T_BLOCK else "template clause"
        name = self.template_name(context)
        pipe = None
        if self.peek_non_space().typ != T_RIGHT:
            pipe = self.pipeline(context)
        else:
            self.next_non_space()
        if tok.typ == T_BLOCK:
            if pipe is None:
                self.errorf("missing value for block clause")
            self.definition_body(name, context)
        return _TemplateCall(tok.pos, tok.line, name, pipe)

    def item_list(self) -> tuple[list[_Node], _Node]:
        lst: list[_Node] = []
        while self.peek_non_space().typ != T_EOF:
            n = self.text_or_action()
            if isinstance(n, _Marker) and n.kind in ("end", "else"):
                return lst, n
            lst.append(n)
        self.errorf("unexpected EOF")
        raise AssertionError  # unreachable

    def text_or_action(self) -> _Node:
        tok = self.next_non_space()
        if tok.typ == T_TEXT:
            return _Text(tok.pos, tok.val)
        if tok.typ == T_LEFT:
            self.action_line = tok.line
            try:
                return self.action()
            finally:
                self.action_line = 0
        self.unexpected(tok, "input")
        raise AssertionError

    def action(self) -> _Node:
        tok = self.next_non_space()
        t = tok.typ
        if t in (T_BLOCK, T_TEMPLATE):
            return self.template_control(tok)
        if t == T_ELSE:
            return self.else_control()
        if t == T_END:
            return _Marker("end", self.expect(T_RIGHT, "end").pos)
        if t == T_IF:
            return _If("if", *self.parse_control(True, "if"))
        if t == T_RANGE:
            return _If("range", *self.parse_control(False, "range"))
        if t == T_WITH:
            return _If("with", *self.parse_control(True, "with"))
        if t in (T_BREAK, T_CONTINUE):
            word = tok.val
            nt = self.next_non_space()
            if nt.typ != T_RIGHT:
                self.unexpected(nt, "{{%s}}" % word)
            if self.range_depth == 0:
                self.errorf("{{%s}} outside {{range}}" % word)
            return _Marker(word, tok.pos)
        self.backup(tok)
        tok = self.peek()
        return _Action(tok.pos, self.pipeline("command"))

    def else_control(self) -> _Node:
        peek = self.peek_non_space()
        if peek.typ in (T_IF, T_WITH):
            return _Marker("else", peek.pos)
        tok = self.expect(T_RIGHT, "else")
        return _Marker("else", tok.pos)

    def parse_control(self, allow_else_if: bool, context: str):
        nvars = len(self.vars)
        try:
            pipe = self.pipeline(context)
            if context == "range":
                self.range_depth += 1
            lst, nxt = self.item_list()
            if context == "range":
                self.range_depth -= 1
            else_list = None
            if isinstance(nxt, _Marker) and nxt.kind == "else":
                want = T_IF if context == "if" else T_WITH
                if allow_else_if and self.peek().typ == want:
                    self.next()
                    else_list = [_If(context, *self.parse_control(True, context))]
                else:
                    else_list, nxt = self.item_list()
                    if not (isinstance(nxt, _Marker) and nxt.kind == "end"):
                        self.errorf(f"expected end; found {nxt}")
            return pipe.pos, pipe, lst, else_list
        finally:
            del self.vars[nvars:]

    def pipeline(self, context: str) -> _Pipe:
        tok = self.peek_non_space()
        pipe = _Pipe(tok.pos, tok.line)
        while True:  # declarations
            v = self.peek_non_space()
            if v.typ != T_VARIABLE:
                break
            self.next()
            after = self.peek()
            nxt = self.peek_non_space()
            if nxt.typ in (T_ASSIGN, T_DECLARE):
                pipe.is_assign = nxt.typ == T_ASSIGN
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, v.val))
                self.vars.append(v.val)
                break
            if nxt.typ == T_CHAR and nxt.val == ",":
                self.next_non_space()
                pipe.decl.append(_Variable(v.pos, v.val))
                self.vars.append(v.val)
                if context == "range" and len(pipe.decl) < 2:
                    if self.peek_non_space().typ in (T_VARIABLE, T_RIGHT, T_RPAREN):
                        continue
                    self.errorf("range can only initialize variables")
                self.errorf(f"too many declarations in {context}")
            if after.typ == T_SPACE:
                self.backup(after)
                self.backup(v)
            else:
                self.backup(v)
            break
        while True:
            tok = self.next_non_space()
            if tok.typ in (T_RIGHT, T_RPAREN):
                self.check_pipeline(pipe, context)
                if tok.typ == T_RPAREN:
                    self.backup(tok)
                return pipe
            if tok.typ in _ARG_START:
                self.backup(tok)
                pipe.cmds.append(self.command())
            else:
                self.unexpected(tok, context)

    def check_pipeline(self, pipe: _Pipe, context: str) -> None:
        if not pipe.cmds:
            self.errorf(f"missing value for {context}")
        for i, c in enumerate(pipe.cmds[1:]):
            if isinstance(c.args[0], (_Bool, _Dot, _Nil, _Number, _String)):
                self.errorf(f"non executable command in pipeline stage {i + 2}")

    def command(self) -> _Command:
        cmd = _Command(self.peek_non_space().pos)
        while True:
            self.peek_non_space()
            operand = self.operand()
            if operand is not None:
                cmd.args.append(operand)
            tok = self.next()
            if tok.typ == T_SPACE:
                continue
            if tok.typ in (T_RIGHT, T_RPAREN):
                self.backup(tok)
            elif tok.typ == T_PIPE:
                pass
            else:
                self.unexpected(tok, "operand")
            break
        if not cmd.args:
            self.errorf("empty command")
        return cmd

    def operand(self) -> _Node | None:
        node = self.term()
        if node is None:
            return None
        if self.peek().typ == T_FIELD:
            chain = _Chain(self.peek().pos, node)
            while self.peek().typ == T_FIELD:
                chain.fields.append(self.next().val[1:])
            if isinstance(node, _Field):
                return _Field(chain.pos, str(chain))
            if isinstance(node, _Variable):
                return _Variable(chain.pos, str(chain))
            if isinstance(node, (_Bool, _String, _Number, _Nil, _Dot)):
                self.errorf(f"unexpected . after term {_go_quote(str(node))}")
            return chain
        return node

    def term(self) -> _Node | None:
        tok = self.next_non_space()
        t = tok.typ
        if t == T_ERROR:
            self.unexpected(tok, "operand")
        if t == T_IDENT:
            if tok.val not in self.funcs:
                self.errorf(f"function {_go_quote(tok.val)} not defined")
            return _Identifier(tok.pos, tok.val)
        if t == T_DOT:
            return _Dot(tok.pos)
        if t == T_NIL:
            return _Nil(tok.pos)
        if t == T_VARIABLE:
            name = tok.val.split(".")[0]
            if name not in self.vars:
                self.errorf(f"undefined variable {_go_quote(name)}")
            return _Variable(tok.pos, tok.val)
        if t == T_FIELD:
            return _Field(tok.pos, tok.val)
        if t == T_BOOL:
            return _Bool(tok.pos, tok.val == "true")
        if t in (T_CHARCONST, T_COMPLEX, T_NUMBER):
            try:
                return _Number(tok.pos, tok.val, t == T_CHARCONST, t == T_COMPLEX)
            except _ParseFail as e:
                self.errorf(str(e))
        if t == T_LPAREN:
            pipe = self.pipeline("parenthesized pipeline")
            nt = self.next()
            if nt.typ != T_RPAREN:
                self.errorf(f"unclosed right paren: unexpected {nt}")
            return pipe
        if t in (T_STRING, T_RAWSTRING):
            try:
                value = _go_unquote(tok.val)
            except ValueError:
                self.errorf("invalid syntax")
            return _String(tok.pos, tok.val, value)
        self.backup(tok)
        return None


# ---------------------------------------------------------------------------
# Go text/template: functions


class _CallError(Exception):
    """An error returned by a template function (``error calling X: ...``)."""


def _truth(v: Any) -> bool:
    if v is None:
        return False
    if isinstance(v, RowContext):
        return True  # a non-nil struct pointer
    return bool(v)


def _basic_kind(v: Any) -> str:
    if v is None:
        return "invalid"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, complex):
        return "complex"
    if isinstance(v, str):
        return "string"
    return "other"


def _fn_eq(arg1, *others):
    if not others:
        raise _CallError("missing argument for comparison")
    k1 = _basic_kind(arg1)
    for arg in others:
        k2 = _basic_kind(arg)
        truth = False
        if k1 != k2:
            if arg1 is not None and arg is not None:
                raise _CallError("incompatible types for comparison")
        elif k1 == "other":
            if isinstance(arg1, (list, tuple, dict)) or isinstance(arg, (list, tuple, dict)):
                raise _CallError(
                    f"non-comparable type {_go_sprint_value(arg)}: {_go_type(arg)}"
                )
            truth = arg1 == arg
        else:
            truth = arg1 == arg
        if truth:
            return True
    return False


def _fn_ne(a, b):
    return not _fn_eq(a, b)


def _fn_lt(a, b):
    k1, k2 = _basic_kind(a), _basic_kind(b)
    if k1 in ("invalid", "other") or k2 in ("invalid", "other"):
        raise _CallError("invalid type for comparison")
    if k1 != k2:
        raise _CallError("incompatible types for comparison")
    if k1 in ("bool", "complex"):
        raise _CallError("invalid type for comparison")
    return a < b


def _fn_le(a, b):
    return _fn_lt(a, b) or _fn_eq(a, b)


def _fn_gt(a, b):
    return not _fn_le(a, b)


def _fn_ge(a, b):
    return not _fn_lt(a, b)


def _fn_not(a):
    return not _truth(a)


def _fn_len(a):
    if a is None:
        raise _CallError("len of nil pointer")
    if isinstance(a, str):
        return len(a.encode("utf-8", "surrogatepass"))
    if isinstance(a, (list, tuple, dict, bytes)):
        return len(a)
    raise _CallError(f"len of type {_go_type(a)}")


def _fn_index(item, *indexes):
    if item is None:
        raise _CallError("index of untyped nil")
    for idx in indexes:
        if item is None:
            raise _CallError("index of nil pointer")
        if isinstance(item, (list, tuple, str, bytes)):
            if idx is None:
                raise _CallError("cannot index slice/array with nil")
            if isinstance(idx, bool) or not isinstance(idx, int):
                raise _CallError(f"cannot index slice/array with type {_go_type(idx)}")
            seq = item.encode() if isinstance(item, str) else item
            if idx < 0 or idx >= len(seq):
                raise _CallError(f"index out of range: {idx}")
            item = seq[idx]
        elif isinstance(item, dict) and not isinstance(item, RowContext):
            if idx is None:
                raise _CallError("value is nil; should be of type " + _map_key_type(item))
            key_type = _map_key_type(item)
            if _go_type(idx) != key_type and key_type != "interface {}":
                raise _CallError(f"value has type {_go_type(idx)}; should be {key_type}")
            if idx in item:
                item = item[idx]
            else:
                item = _zero_of(item.values())
        else:
            raise _CallError(f"can't index item of type {_go_type(item)}")
    return item


def _map_key_type(m: dict) -> str:
    """A Go map's key type as its keys show it: ``string`` when empty or all strings."""
    types = {_go_type(k) for k in m}
    if not types or types == {"string"}:
        return "string"
    return types.pop() if len(types) == 1 else "interface {}"


def _zero_of(values) -> Any:
    """The zero value of a Go map's element type, guessed from its values: "" for strings,
    0 for ints, false for bools, else nil."""
    types = {type(x) for x in values}
    if len(types) == 1:
        t = types.pop()
        if t in (str, int, float, bool):
            return t()
    return None


def _fn_slice(item, *indexes):
    if item is None:
        raise _CallError("slice of untyped nil")
    if len(indexes) > 3:
        raise _CallError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise _CallError("cannot 3-index slice a string")
        seq: Any = item.encode("utf-8", "surrogatepass")
    elif isinstance(item, (list, tuple)):
        seq = list(item)
    else:
        raise _CallError(f"can't slice item of type {_go_type(item)}")
    idx = [0, len(seq), len(seq)]
    for i, x in enumerate(indexes):  # Go's indexArg against the capacity (= length here)
        if x is None:
            raise _CallError("cannot index slice/array with nil")
        if isinstance(x, bool) or not isinstance(x, int):
            raise _CallError(f"cannot index slice/array with type {_go_type(x)}")
        if x < 0 or x > len(seq):
            raise _CallError(f"index out of range: {x}")
        idx[i] = x
    if idx[0] > idx[1]:
        raise _CallError(f"invalid slice index: {idx[0]} > {idx[1]}")
    if len(indexes) == 3 and idx[1] > idx[2]:  # item[i:j:k] needs i <= j <= k
        raise _CallError(f"invalid slice index: {idx[1]} > {idx[2]}")
    res = seq[idx[0] : idx[1]]
    if isinstance(item, str):
        return res.decode("utf-8", "replace")
    return res


def _fn_print(*args):
    return _go_sprint(list(args))


def _fn_println(*args):
    return " ".join(_go_sprint_value(a) for a in args) + "\n"


def _fn_printf(fmt, *args):
    return _go_sprintf(fmt, list(args))


def _eval_args_str(args) -> str:
    """text/template's evalArgs (html, js, urlquery): fmt.Sprint of the arguments, where a
    missing or nil value reads ``<no value>`` (printableValue), not ``<nil>``."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return _go_sprint(["<no value>" if a is None else a for a in args])


def _fn_html(*args):
    s = _eval_args_str(args)
    return (
        s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;")
        .replace(">", "&gt;").replace('"', "&#34;").replace("\x00", "\ufffd")
    )


def _fn_js(*args):
    s = _eval_args_str(args)
    out = []
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("\\'")
        elif ch == '"':
            out.append('\\"')
        elif ch in "<>&=":
            out.append("\\u%04X" % ord(ch))
        elif ord(ch) < 0x20 or (ord(ch) >= 0x80 and not ch.isprintable()):
            out.append("\\u%04X" % ord(ch))
        else:
            out.append(ch)
    return "".join(out)


def _fn_urlquery(*args):
    from urllib.parse import quote_plus

    return quote_plus(_eval_args_str(args), safe="")


def _per_rune(s: str, conv) -> str:
    out = []
    for c in s:
        m = conv(c)
        out.append(m if len(m) == 1 else c)
    return "".join(out)


def _fn_upper(s):
    return s.upper() if s.isascii() else _per_rune(s, str.upper)


def _fn_lower(s):
    return s.lower() if s.isascii() else _per_rune(s, str.lower)


def _title_sep(c: str) -> bool:
    if ord(c) <= 0x7F:
        return not (c.isalnum() or c == "_")
    if c.isalpha() or unicodedata.category(c) == "Nd":
        return False
    return c.isspace()


def _fn_title(s):
    # strings.Title: upper-case the first letter of each word.
    out = []
    prev = " "
    for c in s:
        if _title_sep(prev):
            t = c.title()
            out.append(t if len(t) == 1 else c)
        else:
            out.append(c)
        prev = c
    return "".join(out)


def _fn_split(s, sep):
    if sep == "":
        return list(s)
    return s.split(sep)


def _fn_join(elems, sep):
    if elems is None:
        return ""
    if isinstance(elems, (list, tuple)):
        return sep.join(x if isinstance(x, str) else _go_sprint_value(x) for x in elems)
    if isinstance(elems, dict) and not isinstance(elems, RowContext):
        return sep.join(sorted(_go_sprint_value(x) for x in elems.values()))
    raise _CallError(f"expected slice, got {_go_type(elems)}")


def _fn_pad(source, prefix, suffix):
    if source == "":
        return source
    if prefix < 0 or suffix < 0:
        raise _CallError("strings: negative Repeat count")
    return " " * prefix + source + " " * suffix


def _fn_truncate(source, length):
    b = source.encode("utf-8", "surrogatepass")
    if len(b) < length:
        return source
    if length < 0:
        raise _CallError(f"runtime error: slice bounds out of range [:{length}]")
    return b[:length].decode("utf-8", "replace")


def _fn_json(v):
    return go_json(v)


# name -> (parameter kinds, variadic kind or None, implementation)
# kinds: "any", "str", "int"
_BASIC_FUNCS: dict[str, tuple[tuple[str, ...], str | None, Callable[..., Any]]] = {
    # docker/cli templates.basicFunctions
    "json": (("any",), None, _fn_json),
    "split": (("str", "str"), None, _fn_split),
    "join": (("any", "str"), None, _fn_join),
    "title": (("str",), None, _fn_title),
    "lower": (("str",), None, _fn_lower),
    "upper": (("str",), None, _fn_upper),
    "pad": (("str", "int", "int"), None, _fn_pad),
    "truncate": (("str", "int"), None, _fn_truncate),
    # Go text/template builtins
    "and": (("any",), "any", None),  # special-cased (short circuit)
    "or": (("any",), "any", None),
    "not": (("any",), None, _fn_not),
    "len": (("any",), None, _fn_len),
    "index": (("any",), "any", _fn_index),
    "slice": (("any",), "any", _fn_slice),
    "print": ((), "any", _fn_print),
    "printf": (("str",), "any", _fn_printf),
    "println": ((), "any", _fn_println),
    "eq": (("any",), "any", _fn_eq),
    "ne": (("any", "any"), None, _fn_ne),
    "lt": (("any", "any"), None, _fn_lt),
    "le": (("any", "any"), None, _fn_le),
    "gt": (("any", "any"), None, _fn_gt),
    "ge": (("any", "any"), None, _fn_ge),
    "html": ((), "any", _fn_html),
    "js": ((), "any", _fn_js),
    "urlquery": ((), "any", _fn_urlquery),
    "call": (("any",), "any", None),  # special-cased: calls its first argument
}


_ANNOTATION_KINDS = {str: "str", "str": "str", int: "int", "int": "int"}


def _py_func_spec(fn: Callable[..., Any]) -> tuple[tuple[str, ...], str | None, Callable[..., Any]]:
    """A Python callable as a template function (Go ``FuncMap`` entry or func value):
    positional parameters are its arguments, ``*args`` makes it variadic, and a ``str`` /
    ``int`` annotation type-checks the argument as Go's parameter type would (anything
    else takes any value).  An exception it raises is the call's error."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return ((), "any", fn)
    params: list[str] = []
    variadic = None
    for p in sig.parameters.values():
        kind = _ANNOTATION_KINDS.get(p.annotation, "any")
        if p.kind == p.VAR_POSITIONAL:
            variadic = kind
        elif p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty:
            params.append(kind)

    def call(*args):
        try:
            return fn(*args)
        except _CallError:
            raise
        except Exception as e:  # the Go function's error result (or a recovered panic)
            raise _CallError(str(e)) from None

    return tuple(params), variadic, call


def _is_func(v: Any) -> bool:
    """A Go func value: a Python function, builtin or bound method (not a callable object)."""
    return inspect.isfunction(v) or inspect.ismethod(v) or inspect.isbuiltin(v)


def _ident(v, *_):
    return v


# docker/cli templates.HeaderFunctions: used to render the header row of a
# table so the column names come out untouched ("pad" is deliberately real).
_HEADER_FUNCS = dict(_BASIC_FUNCS)
_HEADER_FUNCS.update(
    {
        "json": (("str",), None, _ident),
        "split": (("str", "str"), None, _ident),
        "join": (("str", "str"), None, _ident),
        "title": (("str",), None, _ident),
        "lower": (("str",), None, _ident),
        "upper": (("str",), None, _ident),
        "truncate": (("str", "int"), None, _ident),
    }
)


# ---------------------------------------------------------------------------
# printf (a practical subset of Go's fmt)

_VERB_RE = re.compile(r"%([+\-# 0]*)(\*|\d+)?(?:\.(\*|\d*))?(.?)", re.S)


def _bad_verb(verb: str, v: Any) -> str:
    if v is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({_go_type(v)}={_go_sprint_value(v)})"


def _pad_str(s: str, width: int | None, flags: str, zero_ok: bool = False) -> str:
    if width is None:
        return s
    n = width - len(s)
    if n <= 0:
        return s
    if "-" in flags:
        return s + " " * n
    if "0" in flags and zero_ok:
        if s[:1] in "+-":
            return s[0] + "0" * n + s[1:]
        return "0" * n + s
    return " " * n + s


def _fmt_one(verb: str, flags: str, width: int | None, prec: int | None, v: Any) -> str:
    if verb == "s" and isinstance(v, (list, tuple)):
        return _pad_str(
            "[" + " ".join(_fmt_one("s", "", None, prec, x) for x in v) + "]", width, flags
        )
    if verb == "v":
        s = _go_sprint_value(v)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and "+" in flags and not s.startswith("-"):
            s = "+" + s
        return _pad_str(s, width, flags, zero_ok=isinstance(v, (int, float)))
    if verb == "T":
        return _pad_str(_go_type(v), width, flags)
    if isinstance(v, bool):
        if verb == "t":
            return _pad_str("true" if v else "false", width, flags)
        return _bad_verb(verb, v)
    if isinstance(v, int):
        if verb in ("d", "b", "o", "x", "X"):
            base = {"d": 10, "b": 2, "o": 8, "x": 16, "X": 16}[verb]
            digits = format(abs(v), {10: "d", 2: "b", 8: "o", 16: "x"}[base])
            if verb == "X":
                digits = digits.upper()
            if prec is not None:
                digits = digits.rjust(prec, "0")
            if "#" in flags:
                digits = {2: "0b", 8: "0", 16: "0x" if verb == "x" else "0X"}.get(base, "") + digits
            sign = "-" if v < 0 else ("+" if "+" in flags else (" " if " " in flags else ""))
            return _pad_str(sign + digits, width, flags, zero_ok=prec is None)
        if verb == "c":
            return _pad_str(chr(v), width, flags)
        if verb == "q":
            return _pad_str("'" + _go_quote(chr(v))[1:-1].replace("'", "\\'") + "'", width, flags)
        if verb == "U":
            return _pad_str("U+%04X" % v, width, flags)
        return _bad_verb(verb, v)
    if isinstance(v, float):
        if verb in "eEfFgG":
            if verb in "gG" and prec is None:
                s = _go_float_v(v)
                if verb == "G":
                    s = s.upper()
            else:
                p = 6 if prec is None else prec
                s = ("%." + str(p) + verb) % v
            if "+" in flags and not s.startswith("-"):
                s = "+" + s
            return _pad_str(s, width, flags, zero_ok=True)
        return _bad_verb(verb, v)
    if isinstance(v, complex):
        # fmt's fmtComplex: "(" real imag "i)", each part formatted with the verb, width and
        # precision, the imaginary part always signed
        if verb in "veEfFgG":
            fv = "g" if verb == "v" else verb
            re_part = _fmt_one(fv, flags, width, prec, v.real)
            im_part = _fmt_one(fv, flags.replace("+", "") + "+", width, prec, v.imag)
            return f"({re_part}{im_part}i)"
        return _bad_verb(verb, v)
    if isinstance(v, str):
        if verb == "s":
            s = v if prec is None else v[:prec]
            return _pad_str(s, width, flags)
        if verb == "q":
            s = v if prec is None else v[:prec]
            if "#" in flags and "`" not in s and all(c.isprintable() or c == "\t" for c in s):
                return _pad_str("`" + s + "`", width, flags)
            return _pad_str(_go_quote(s), width, flags)
        if verb in "xX":
            h = v.encode("utf-8", "surrogatepass").hex()
            return _pad_str(h.upper() if verb == "X" else h, width, flags)
        return _bad_verb(verb, v)
    if v is None:
        return _bad_verb(verb, v)
    if verb == "s":
        return _pad_str(_go_sprint_value(v), width, flags)
    return _bad_verb(verb, v)


def _go_sprintf(fmt: str, args: list[Any]) -> str:
    out = []
    argi = 0
    i = 0
    n = len(fmt)
    while i < n:
        j = fmt.find("%", i)
        if j < 0:
            out.append(fmt[i:])
            break
        out.append(fmt[i:j])
        m = _VERB_RE.match(fmt, j)
        assert m is not None
        flags, w, p, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        i = m.end()
        if verb == "":
            out.append("%!(NOVERB)")
            break
        if verb == "%":
            out.append("%")
            continue
        width = prec = None
        if w == "*":
            if argi < len(args) and isinstance(args[argi], int):
                width = args[argi]
                argi += 1
            else:
                out.append("%!(BADWIDTH)")
        elif w:
            width = int(w)
        if p is not None:
            if p == "*":
                if argi < len(args) and isinstance(args[argi], int):
                    prec = args[argi]
                    argi += 1
                else:
                    out.append("%!(BADPREC)")
            else:
                prec = int(p) if p else 0
        if argi >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        out.append(_fmt_one(verb, flags, width, prec, args[argi]))
        argi += 1
    if argi < len(args):
        extra = ", ".join(
            "<nil>" if a is None else f"{_go_type(a)}={_go_sprint_value(a)}" for a in args[argi:]
        )
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


# ---------------------------------------------------------------------------
# Go text/template: execution


class _ExecFail(Exception):
    pass


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


_MAX_EXEC_DEPTH = 100  # nested {{template}} calls (Go allows 100000; Python's stack would not)


class _State:
    def __init__(self, text: str, funcs, root: Any, defs: dict[str, list[_Node]] | None = None) -> None:
        self.text = text
        self.funcs = funcs
        self.defs = defs or {}
        self.name = ""  # the template being executed, for error messages
        self.depth = 0
        self.missingkey = "default"  # Go's missingkey option, for a GoMap
        self.vars: list[tuple[str, Any]] = [("$", root)]
        self.node: _Node | None = None
        self.out: list[str] = []

    # errors
    def at(self, node: _Node) -> None:
        self.node = node

    def errorf(self, msg: str):
        node = self.node
        if node is None:
            raise _ExecFail(f'template: : executing {_go_quote(self.name)} : {msg}')
        pos = node.pos
        before = self.text[:pos]
        nl = before.rfind("\n")
        line = 1 + before.count("\n")
        col = len(before[nl + 1 :].encode("utf-8", "surrogatepass"))
        raise _ExecFail(f'template: :{line}:{col}: executing {_go_quote(self.name)} at <{node}>: {msg}')

    def ideal(self, n: "_Number") -> Any:
        self.at(n)
        try:
            return n.ideal()
        except ValueError as e:
            self.errorf(str(e))

    # variables
    def mark(self) -> int:
        return len(self.vars)

    def pop(self, mark: int) -> None:
        del self.vars[mark:]

    def push(self, name: str, value: Any) -> None:
        self.vars.append((name, value))

    def set_var(self, name: str, value: Any) -> None:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                self.vars[i] = (name, value)
                return
        self.errorf(f"undefined variable: {name}")

    def var_value(self, name: str) -> Any:
        for i in range(len(self.vars) - 1, -1, -1):
            if self.vars[i][0] == name:
                return self.vars[i][1]
        self.errorf(f"undefined variable: {name}")

    # walking
    def walk(self, dot: Any, nodes: list[_Node]) -> None:
        for node in nodes:
            self.walk_node(dot, node)

    def walk_node(self, dot: Any, node: _Node) -> None:
        if isinstance(node, _Text):
            self.out.append(node.text)
        elif isinstance(node, _Action):
            val = self.eval_pipeline(dot, node.pipe)
            if not node.pipe.decl:
                self.at(node)
                if _is_func(val):
                    self.errorf(f"can't print {node.pipe} of type func")
                self.out.append("<no value>" if val is None else _go_sprint_value(val))
        elif isinstance(node, _If):
            if node.kind == "range":
                self.walk_range(dot, node)
            else:
                self.walk_if_or_with(dot, node)
        elif isinstance(node, _TemplateCall):
            self.walk_template(dot, node)
        elif isinstance(node, _Marker):
            if node.kind == "break":
                raise _Break
            if node.kind == "continue":
                raise _Continue
        else:  # pragma: no cover
            raise AssertionError(node)

    def walk_template(self, dot: Any, node: _TemplateCall) -> None:
        self.at(node)
        body = self.defs.get(node.name)
        if body is None:
            self.errorf(f"template {_go_quote(node.name)} not defined")
        if self.depth >= _MAX_EXEC_DEPTH:
            self.errorf(f"exceeded maximum template depth ({_MAX_EXEC_DEPTH})")
        new_dot = None if node.pipe is None else self.eval_pipeline(dot, node.pipe)
        saved = (self.vars, self.name)
        self.vars, self.name = [("$", new_dot)], node.name
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.depth -= 1
            self.vars, self.name = saved

    def walk_if_or_with(self, dot: Any, node: _If) -> None:
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            if _truth(val):
                self.walk(val if node.kind == "with" else dot, node.list)
            elif node.else_list is not None:
                self.walk(dot, node.else_list)
        finally:
            self.pop(mark)

    def walk_range(self, dot: Any, node: _If) -> None:
        self.at(node)
        mark = self.mark()
        try:
            val = self.eval_pipeline(dot, node.pipe)
            mark1 = self.mark()

            def one(index: Any, elem: Any) -> bool:
                if node.pipe.decl:
                    if node.pipe.is_assign:
                        if len(node.pipe.decl) > 1:
                            self.set_var(node.pipe.decl[0].idents[0], index)
                            self.set_var(node.pipe.decl[1].idents[0], elem)
                        else:
                            self.set_var(node.pipe.decl[0].idents[0], elem)
                    elif len(node.pipe.decl) > 1:
                        self.vars[mark1 - 2] = (node.pipe.decl[0].idents[0], index)
                        self.vars[mark1 - 1] = (node.pipe.decl[1].idents[0], elem)
                    else:
                        self.vars[mark1 - 1] = (node.pipe.decl[0].idents[0], elem)
                try:
                    self.walk(elem, node.list)
                except _Continue:
                    pass
                except _Break:
                    return False
                finally:
                    self.pop(mark1)
                return True

            items: list[tuple[Any, Any]]
            if val is None:
                items = []
            elif isinstance(val, (list, tuple)):
                items = list(enumerate(val))
            elif isinstance(val, dict) and not isinstance(val, RowContext):
                items = [(k, val[k]) for k in sorted(val, key=str)]
            elif isinstance(val, int) and not isinstance(val, bool):
                if len(node.pipe.decl) > 1:
                    self.errorf("can't use %s to iterate over more than one variable" % val)
                items = [(i, i) for i in range(val)]
            elif hasattr(val, "__next__"):  # an iterator: a Go channel (index, element)
                items = list(enumerate(val))
            else:
                self.errorf(f"range can't iterate over {_go_sprint_value(val)}")
                items = []
            if not items:
                if node.else_list is not None:
                    self.walk(dot, node.else_list)
                return
            for index, elem in items:
                if not one(index, elem):
                    break
        finally:
            self.pop(mark)

    def eval_pipeline(self, dot: Any, pipe: _Pipe) -> Any:
        self.at(pipe)
        value: Any = _MISSING
        for cmd in pipe.cmds:
            value = self.eval_command(dot, cmd, value)
        for var in pipe.decl:
            if pipe.is_assign:
                self.set_var(var.idents[0], value)
            else:
                self.push(var.idents[0], value)
        return value

    def not_a_function(self, args: list[_Node], final: Any) -> None:
        if len(args) > 1 or final is not _MISSING:
            self.errorf(f"can't give argument to non-function {args[0]}")

    def eval_command(self, dot: Any, cmd: _Command, final: Any) -> Any:
        first = cmd.args[0]
        if isinstance(first, _Field):
            return self.eval_field_node(dot, first, cmd.args, final)
        if isinstance(first, _Chain):
            return self.eval_chain_node(dot, first, cmd.args, final)
        if isinstance(first, _Identifier):
            return self.eval_function(dot, first, cmd, cmd.args, final)
        if isinstance(first, _Pipe):
            self.not_a_function(cmd.args, final)
            mark = self.mark()
            try:
                return self.eval_pipeline(dot, first)
            finally:
                self.pop(mark)
        if isinstance(first, _Variable):
            return self.eval_variable_node(dot, first, cmd.args, final)
        self.at(first)
        self.not_a_function(cmd.args, final)
        if isinstance(first, _Bool):
            return first.value
        if isinstance(first, _Dot):
            return dot
        if isinstance(first, _Nil):
            self.errorf("nil is not a command")
        if isinstance(first, _Number):
            return self.ideal(first)
        if isinstance(first, _String):
            return first.value
        self.errorf(f"can't evaluate command {first}")

    def eval_field_node(self, dot, field: _Field, args, final):
        self.at(field)
        return self.eval_field_chain(dot, dot, field, field.idents, args, final)

    def eval_chain_node(self, dot, chain: _Chain, args, final):
        self.at(chain)
        if isinstance(chain.node, _Nil):
            self.errorf(f"indirection through explicit nil in {chain}")
        pipe = self.eval_arg(dot, "any", chain.node)
        return self.eval_field_chain(dot, pipe, chain, chain.fields, args, final)

    def eval_variable_node(self, dot, var: _Variable, args, final):
        self.at(var)
        value = self.var_value(var.idents[0])
        if len(var.idents) == 1:
            if args is not None:
                self.not_a_function(args, final)
            return value
        return self.eval_field_chain(dot, value, var, var.idents[1:], args, final)

    def eval_field_chain(self, dot, receiver, node, idents, args, final):
        for name in idents[:-1]:
            receiver = self.eval_field(name, None, _MISSING, receiver, dot)
        return self.eval_field(idents[-1], args, final, receiver, dot)

    def eval_field(self, name: str, args, final, receiver, dot=None):
        if receiver is None:
            if self.missingkey == "error":
                self.errorf(f"nil data; no entry for key {_go_quote(name)}")
            return None  # Go: nil data, missingkey=default -> <no value>
        has_args = (args is not None and len(args) > 1) or final is not _MISSING
        if isinstance(receiver, RowContext):
            if name in receiver:
                if has_args:
                    n = (len(args) - 1 if args else 0) + (final is not _MISSING)
                    self.errorf(f"wrong number of args for {name}: want 0 got {n}")
                return receiver[name]
            self.errorf(f"can't evaluate field {name} in type {receiver.type_name}")
        if isinstance(receiver, _HeaderMap):
            return receiver.get(name, name.upper())
        if isinstance(receiver, dict):
            if has_args:
                self.errorf(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            if isinstance(receiver, GoMap):
                key_type = _map_key_type(receiver)
                if key_type not in ("string", "interface {}"):
                    self.errorf(f"value has type string; should be {key_type}")
                if self.missingkey == "zero":
                    return _zero_of(receiver.values())
                if self.missingkey == "error":
                    self.errorf(f"map has no entry for key {_go_quote(name)}")
                return None
            self.errorf(f"map has no entry for key {_go_quote(name)}")
        if type(receiver).__module__ != "builtins" and name[:1].isupper():
            # a struct (any Python object): an exported attribute is a field, a bound
            # method is a Go method, called with the arguments
            attr = getattr(receiver, name, _MISSING)
            if inspect.ismethod(attr):
                node = self.node
                return self.eval_call(dot, _py_func_spec(attr), node, name, args, final)
            if attr is not _MISSING:
                if has_args:
                    self.errorf(f"{name} has arguments but cannot be invoked as function")
                return attr
        elif name[:1].islower() and type(receiver).__module__ != "builtins" and hasattr(receiver, name):
            self.errorf(f"{name} is an unexported field of struct type {_go_type(receiver)}")
        self.errorf(f"can't evaluate field {name} in type {_go_type(receiver)}")

    def eval_function(self, dot, node: _Identifier, cmd, args, final):
        self.at(node)
        name = node.ident
        spec = self.funcs.get(name)
        if spec is None:
            self.errorf(f'{_go_quote(name)} is not a defined function')
        return self.eval_call(dot, spec, cmd, name, args, final)

    def eval_call(self, dot, spec, node, name, args, final):
        params, variadic, fn = spec
        call_args = list(args[1:]) if args else []
        num_in = len(call_args) + (final is not _MISSING)
        if variadic is not None:
            if num_in < len(params):
                self.errorf(f"wrong number of args for {name}: want at least {len(params)} got {num_in}")
        elif num_in != len(params):
            self.errorf(f"wrong number of args for {name}: want {len(params)} got {num_in}")
        if name == "call" and fn is None:
            return self.eval_builtin_call(dot, node, call_args, final)
        if name in ("and", "or") and fn is None:
            v: Any = None
            for a in call_args:
                v = self.eval_arg(dot, "any", a)
                if _truth(v) == (name == "or"):
                    return v
            if final is not _MISSING:
                v = final
            return v
        return self.invoke(dot, node, spec, call_args, final, name)

    def invoke(self, dot, node, spec, call_args, final, label: str):
        """Evaluate the arguments as the parameters want them (the pipeline's value, if
        any, last) and call; a function's error is ``error calling <label>: ...``."""
        params, variadic, fn = spec

        def kind_at(i: int) -> str:
            return params[i] if i < len(params) else (variadic or "any")

        values = [self.eval_arg(dot, kind_at(i), a) for i, a in enumerate(call_args)]
        if final is not _MISSING:
            values.append(self.validate(final, kind_at(len(values))))
        self.at(node)
        try:
            return fn(*values)
        except _CallError as e:
            self.errorf(f"error calling {label}: {e}")
        except RecursionError:
            self.errorf(f"error calling {label}: too deep")

    def eval_builtin_call(self, dot, node, call_args, final):
        """``call fn args...``: fn is a Go func value (a Python function in the data)."""
        if call_args:
            callee, rest = self.eval_arg(dot, "any", call_args[0]), call_args[1:]
            callee_name = str(call_args[0])
        else:  # {{.F | call}}
            callee, rest, final = final, [], _MISSING
            callee_name = "call"
        self.at(node)
        if callee is None:
            self.errorf("error calling call: call of nil")
        if not _is_func(callee):
            self.errorf(f"error calling call: non-function {callee_name} of type {_go_type(callee)}")
        spec = _py_func_spec(callee)
        params, variadic, _ = spec
        n = len(rest) + (final is not _MISSING)
        if variadic is None and n != len(params):
            self.errorf(f"error calling call: wrong number of args for {callee_name}: got {n} want {len(params)}")
        if variadic is not None and n < len(params):
            self.errorf(
                f"error calling call: wrong number of args for {callee_name}: got {n} want at least {len(params)}"
            )
        return self.invoke(dot, node, spec, rest, final, "call")

    def eval_arg(self, dot, kind: str, n: _Node):
        self.at(n)
        if isinstance(n, _Dot):
            return self.validate(dot, kind)
        if isinstance(n, _Nil):
            if kind == "any":
                return None
            self.errorf(f"cannot assign nil to {_KIND_NAMES[kind]}")
        if isinstance(n, _Field):
            return self.validate(self.eval_field_node(dot, n, [n], _MISSING), kind)
        if isinstance(n, _Variable):
            return self.validate(self.eval_variable_node(dot, n, None, _MISSING), kind)
        if isinstance(n, _Pipe):
            mark = self.mark()
            try:
                return self.validate(self.eval_pipeline(dot, n), kind)
            finally:
                self.pop(mark)
        if isinstance(n, _Identifier):
            return self.validate(self.eval_function(dot, n, n, None, _MISSING), kind)
        if isinstance(n, _Chain):
            return self.validate(self.eval_chain_node(dot, n, None, _MISSING), kind)
        if kind == "str":
            if isinstance(n, _String):
                return n.value
            self.errorf(f"expected string; found {n}")
        if kind == "int":
            if isinstance(n, _Number) and n.is_int:
                return n.int_val
            self.errorf(f"expected integer; found {n}")
        if isinstance(n, _Bool):
            return n.value
        if isinstance(n, _Number):
            return self.ideal(n)
        if isinstance(n, _String):
            return n.value
        self.errorf(f"can't handle {n} for arg of type {_KIND_NAMES[kind]}")

    def validate(self, value: Any, kind: str) -> Any:
        if kind == "any":
            return value
        if value is None:
            self.errorf(f"invalid value; expected {_KIND_NAMES[kind]}")
        if kind == "str" and isinstance(value, str):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        self.errorf(f"wrong type for value; expected {_KIND_NAMES[kind]}; got {_go_type(value)}")


_KIND_NAMES = {"str": "string", "int": "int", "any": "interface {}"}


# ---------------------------------------------------------------------------
# Public template API

_ESCAPES_RE = re.compile(r"\\[tn]")


_FUNC_NAME_RE = re.compile(r"[^\W\d]\w*")


def _nodes_string(nodes: list[_Node]) -> str:
    out = []
    for n in nodes:
        if isinstance(n, _Text):
            out.append(_go_quote(n.text))
        elif isinstance(n, _If):
            out.append("{{%s %s}}%s" % (n.kind, n.pipe, _nodes_string(n.list)))
            if n.else_list is not None:
                out.append("{{else}}" + _nodes_string(n.else_list))
            out.append("{{end}}")
        else:
            out.append(str(n))
    return "".join(out)


def _template_string(fmt: str) -> str:
    """docker/cli ``Format.templateString``."""
    if fmt == "table":
        return ""
    if fmt == "json":
        return "{{json .}}"
    if fmt.startswith("table"):
        fmt = fmt[len("table") :]
    fmt = fmt.strip(" ")
    return _ESCAPES_RE.sub(lambda m: "\t" if m.group(0) == "\\t" else "\n", fmt)


class Template:
    """A Go ``text/template`` as docker's ``--format`` uses it.

    ``Template(fmt)`` applies docker's pre-processing of a ``--format`` value
    (``json`` -> ``{{json .}}``, ``table`` prefix cut, spaces trimmed,
    ``\\t``/``\\n`` escapes).  ``Template(text, raw=True)`` parses ``text``
    untouched (docker ``inspect -f`` does no pre-processing).

    Supported: text, ``{{.A.B}}``, ``$``/``$var`` (``:=``, ``=``), literals,
    pipelines, parentheses, ``if``/``else if``/``with``/``range`` (with
    ``else``, ``break``, ``continue``, range over lists, maps (sorted keys)
    and ints), ``{{- -}}`` trimming, ``{{/* comments */}}``, docker's
    functions (json split join title lower upper pad truncate) and Go's
    builtins (and or not len index slice print printf println eq ne lt le gt
    ge html js urlquery call), ``define``/``template``/``block`` (nested calls up
    to 100 deep).  ``funcs`` adds Python callables as functions (Go's ``Funcs``);
    ``delims`` sets other action delimiters (Go's ``Delims``; "" keeps the default);
    ``missingkey`` is Go's ``missingkey=`` option for a :class:`GoMap` (default,
    zero, error).

    Data model: :class:`RowContext` = docker's context struct (unknown field
    is an error); :class:`GoMap` = Go map (missing key -> ``<no value>``); a
    plain ``dict`` = a Go map under ``missingkey=error`` (what docker's
    ``inspect`` ends up reporting: ``map has no entry for key "X"``); any
    other Python object = a Go struct: its capitalised attributes are fields, its
    bound methods are methods (called with the template's arguments, checked
    against ``str``/``int`` annotations; an exception is the method's error), a
    plain function in a field is a func value for ``call``, an iterator ranges
    like a channel, and ``__str__`` is its String/Error method (a dataclass
    without one prints as Go's ``{a b}``).
    """

    def __init__(
        self,
        text: str,
        *,
        raw: bool = False,
        funcs: dict[str, Callable[..., Any]] | None = None,
        delims: tuple[str, str] = ("", ""),
        missingkey: str = "default",
    ) -> None:
        if missingkey not in ("default", "invalid", "zero", "error"):
            raise UsageError(f"unrecognized option: missingkey={missingkey}")
        self.missingkey = "default" if missingkey == "invalid" else missingkey
        self.text = text
        self.is_table = (not raw) and text.startswith("table")
        self.source = text if raw else _template_string(text)
        self._funcs = _BASIC_FUNCS
        if funcs:  # Go's Template.Funcs: Python callables (see _py_func_spec)
            for name in funcs:
                if not _FUNC_NAME_RE.fullmatch(name):
                    raise UsageError(f"function name {_go_quote(name)} is not a valid identifier")
            self._funcs = dict(_BASIC_FUNCS)
            self._funcs.update({k: _py_func_spec(f) for k, f in funcs.items()})
        try:
            parser = _Parser(self.source, set(self._funcs), (delims[0] or "{{", delims[1] or "}}"))
            self._root = parser.parse()
            self._defs = parser.defs
        except _ParseFail as e:
            raise UsageError(f"template parsing error: {e}") from None
        except RecursionError:
            raise UsageError("template parsing error: template: :1: nesting too deep") from None

    def tree_string(self) -> str:
        """The parse tree written back as Go's ``Tree.Root.String()`` does (text as a Go
        quoted string): ``{{if .X}}"hello"{{else}}{{if .Y}}"x"{{end}}{{end}}``."""
        return _nodes_string(self._root)

    @property
    def defined(self) -> dict[str, str]:
        """The ``{{define}}``d (and ``{{block}}``) templates: name -> tree string."""
        return {k: _nodes_string(v) for k, v in self._defs.items()}

    def _execute(self, obj: Any, funcs) -> tuple[str, Exception | None]:
        st = _State(self.source, funcs, obj, self._defs)
        st.missingkey = self.missingkey
        try:
            st.walk(obj, self._root)
        except _ExecFail as e:
            return "".join(st.out), e
        except RecursionError:
            return "".join(st.out), _ExecFail('template: : executing "": nesting too deep')
        return "".join(st.out), None

    def render(self, obj: Any, *, safe: bool = True) -> str:
        """Execute against ``obj``; errors raise ``UsageError`` with docker's wording.

        ``safe`` (the default): for a terminal.  Every string in ``obj`` is escaped first
        (:func:`safe_data`; ``json`` still encodes the original), and the output then keeps
        no control character but the LF and TAB the template itself wrote.
        """
        out, err = self._execute(safe_data(obj) if safe else obj, self._funcs)
        if err is not None:
            raise UsageError(f"template parsing error: {err}") from None
        return terminal_safe(out, keep_lf_tab=True) if safe else out

    def render_header(self, headers: dict[str, str]) -> str:
        """The table header: the template run against the header map with
        docker's HeaderFunctions.  Like docker, an execution error is ignored
        and whatever was produced before it is kept."""
        out, _ = self._execute(_HeaderMap(headers), _HEADER_FUNCS)
        return out


_SIMPLE_TABLE = re.compile(r"table\s+(\{\{\s*\.\w+\s*\}\}(?:(?:\t|\\t)\{\{\s*\.\w+\s*\}\})*)\s*")
_SIMPLE_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")


def simple_table_fields(fmt: str) -> list[str] | None:
    """Field names of a ``table {{.A}}\\t{{.B}}`` format made only of fields and tabs, else None."""
    m = _SIMPLE_TABLE.fullmatch(fmt)
    return _SIMPLE_FIELD.findall(m.group(1)) if m else None


def _safe_rows(rows: list[dict]) -> list[dict]:
    """``rows`` with their values escaped for a terminal (:func:`safe_data`); the same list
    when nothing needs it (one scan over the string values of every row)."""
    try:
        text = " ".join(v for r in rows for v in r.values())
    except TypeError:  # a value that is not a string: look at each row
        clean = False
    else:  # every unsafe character is unprintable; isprintable() is the quicker scan
        clean = text.isprintable() or _UNSAFE_RE.search(text) is None
    if clean:
        return rows
    return [{k: safe_data(v) for k, v in r.items()} for r in rows]


def format_rows(
    fmt: str | None,
    rows: list[dict],
    *,
    default_table: str,
    headers: dict[str, str],
    type_name: str = "*formatter.context",
) -> str:
    """docker's ``formatter.Context.Write`` for list commands.

    * ``None``, ``""`` or ``"table"`` -> ``default_table``;
    * ``"json"`` -> ``{{json .}}``: one compact object per row, keys sorted and
      ``<>&`` escaped exactly like docker;
    * ``"table ..."`` -> header row (fields mapped through ``headers``, an
      unknown field shows as its upper-cased name) plus rows, aligned by the
      tabwriter (cells split on TAB);
    * anything else -> one rendered template per row, no header, no alignment.

    Output lines are joined with "\\n" and carry no final newline; with no rows
    a table still has its header, while a plain template yields "" (print
    nothing then, not an empty line).  Row values should have docker's types
    (its contexts return strings for nearly every field).
    """
    if fmt is None or fmt == "" or fmt == "table":
        fmt = default_table
    rows = _safe_rows(rows)
    fields = simple_table_fields(fmt)
    if fields is not None:
        # Fast path for the common "table {{.A}}\t{{.B}}..." over string fields: what the
        # template engine would print is the values joined by tabs (thousands of rows).
        # A row with a missing or non-string field sends the whole table the general way.
        get = operator.itemgetter(*fields) if len(fields) > 1 else (lambda r, f=fields[0]: (r[f],))
        try:
            lines = ["\t".join(get(r)) for r in rows]
        except (KeyError, TypeError):
            pass
        else:
            header = "\t".join(headers.get(f, f.upper()) for f in fields)
            out = _tabwrite(header + "\n" + "\n".join(lines) + ("\n" if lines else ""))
            return out[:-1] if out.endswith("\n") else out
    tmpl = Template(fmt)
    rendered = [terminal_safe(tmpl.render(RowContext(r, type_name), safe=False), keep_lf_tab=True) for r in rows]
    if not tmpl.is_table:
        return "\n".join(rendered)
    header = tmpl.render_header(headers)
    text = header + "\n" + "".join(r + "\n" for r in rendered)
    out = _tabwrite(text)
    return out[:-1] if out.endswith("\n") else out


def rows_output(fmt: str | None, rows: list[dict], **kw) -> str:
    """What a list command writes: :func:`format_rows`'s text and its final newline, or
    nothing when a plain template has no rows.  As docker, every row ends with a newline,
    so a single row that renders empty still prints an empty line, and a table always
    prints at least its header line."""
    text = format_rows(fmt, rows, **kw)
    if rows or fmt is None or fmt.startswith("table") or fmt == "":
        return text + "\n"
    return ""
