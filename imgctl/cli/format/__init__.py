"""Human-readable output exactly like docker's CLI, one module per concern.

``units`` (go-units sizes and durations), ``width`` (display width, ``terminal_safe``),
``values`` (Go's ``%v`` and encoding/json), ``lexer``, ``parser``, ``functions`` and
``executor`` (a Go ``text/template`` for ``--format``; ``executor.Template`` is the entry
point) and ``tables`` (docker's tabwriter layout, ``format_rows``/``rows_output``).  Pure
functions only; they depend on the standard library and ``tabulate`` (imported lazily).

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
