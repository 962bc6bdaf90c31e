"""Terminal safety and display widths: ``terminal_safe``, docker's ``Ellipsis`` truncation and
mattn/go-runewidth cell widths (grapheme clusters, wide = 2, zero-width = 0)."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

from imgctl.cli.format.values import RowContext


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
