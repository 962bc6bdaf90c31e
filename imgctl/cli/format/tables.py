"""Tables: docker's tabwriter layout and ``--format`` applied to rows (``table``, ``json``, templates)."""

from __future__ import annotations

import functools
import operator
import re
from typing import Any

from imgctl.cli.format.executor import Template
from imgctl.cli.format.values import RowContext
from imgctl.cli.format.width import cell_width, safe_data, terminal_safe, _UNSAFE_RE


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


def _regular_rows(text: str) -> list[list[str]] | None:
    """The lines of ``text`` as cells when tabulate lays them out exactly as docker's
    tabwriter would: printable ASCII (display width = length), every line ending in LF and
    holding the same number of cells (one column block per column).  None otherwise."""
    if not text.endswith("\n"):
        return None
    body = text[:-1]
    if not body.isascii() or not body.replace("\t", "").replace("\n", "").isprintable():
        return None
    rows = [line.split("\t") for line in body.split("\n")]
    n = len(rows[0])
    return rows if all(len(cells) == n for cells in rows) else None


def _tabwriter_row(cells: list[str], widths: list[int], _aligns) -> str:
    """tabulate's row for docker's tabwriter: each cell but the last (already left-aligned to
    its column's widest cell by tabulate) padded to ``max(10, width + 3)``."""
    return "".join(map(str.__add__, cells, _tabwriter_pads(tuple(widths))))


@functools.lru_cache(maxsize=8)
def _tabwriter_pads(widths: tuple[int, ...]) -> tuple[str, ...]:
    """The spaces after each cell of a row whose columns are ``widths`` wide (none after the
    last): the same for every row of a table, so worked out once per table."""
    return tuple(" " * (max(_MINWIDTH, w + _PADDING) - w) for w in widths[:-1]) + ("",)


def _docker_table_format():
    """A tabulate ``TableFormat`` for ``NewWriter(out, 10, 1, 3, ' ', 0)``: no rules, no
    borders; rows are built by :func:`_tabwriter_row` (a callable row is not right-stripped,
    so an empty last column still pads the column before it, as docker does)."""
    from tabulate import TableFormat

    return TableFormat(
        lineabove=None,
        linebelowheader=None,
        linebetweenrows=None,
        linebelow=None,
        headerrow=_tabwriter_row,
        datarow=_tabwriter_row,
        padding=0,
        with_header_hide=None,
    )


def _text_column(strings, has_invisible=True, numparse=True) -> type:
    """tabulate's column type for the columns :func:`_tabulate_rows` gives it: ``str``.

    Every cell is a str and number parsing is off, and then tabulate formats and aligns a
    column the same whatever type it finds (``bool`` for "True", ``NoneType`` for "", both
    printed as the str they are; the alignments are all given).  But tabulate 0.9's own
    ``_column_type`` still strips ANSI codes from every cell and tries ``int()`` and ``float()``
    on it before it looks at ``numparse``: 1.3 s of its 2.6 s for 100,000 rows of
    ``imgctl images`` here.  ``test_text_column_type_changes_nothing`` holds the output to
    tabulate's own.
    """
    return str


def _tabulate_rows(rows: list[list[str]]) -> str:
    """tabulate lays out ``rows`` (see :func:`_regular_rows`): columns left-aligned with
    their whitespace kept, the last column not padded; lines joined by LF, no final LF."""
    import tabulate as tabulate_module

    preserve, wide = tabulate_module.PRESERVE_WHITESPACE, tabulate_module.WIDE_CHARS_MODE
    column_type = getattr(tabulate_module, "_column_type", None)
    tabulate_module.PRESERVE_WHITESPACE = True  # a cell's own leading/trailing spaces are docker's output too
    tabulate_module.WIDE_CHARS_MODE = False  # printable ASCII only (_regular_rows): width is length
    if column_type is not None:
        tabulate_module._column_type = _text_column
    try:
        return tabulate_module.tabulate(
            rows,
            tablefmt=_docker_table_format(),
            stralign="left",
            colalign=("left",) * (len(rows[0]) - 1) + (None,),
            disable_numparse=True,
            missingval="",
        )
    finally:
        tabulate_module.PRESERVE_WHITESPACE, tabulate_module.WIDE_CHARS_MODE = preserve, wide
        if column_type is not None:
            tabulate_module._column_type = column_type


def _tabwrite(text: str) -> str:
    """Docker's tabwriter over ``text``; output as Go writes it (LF after every
    terminated line, nothing after the final unterminated one).

    tabulate lays out the tables docker's list commands print (:func:`_regular_rows`).
    Everything else goes through :func:`tabwriter`, the Go algorithm, because tabulate
    cannot reproduce it: a TAB or LF inside a ``--format 'table ...'`` field gives lines
    with different numbers of cells, where Go sizes each *column block* (a run of lines
    with a cell in that column) on its own, while tabulate pads every row to one width per
    column; and tabulate measures wide and zero-width characters with wcwidth (or
    ``len``), not go-runewidth's grapheme clusters as docker does.
    """
    rows = _regular_rows(text)
    if rows is None:
        return tabwriter(text, _MINWIDTH, 1, _PADDING)
    return _tabulate_rows(rows) + "\n"


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
