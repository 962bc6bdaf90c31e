"""``imgctl pull``: run a pull and show its progress the way docker does."""

from __future__ import annotations

import sys
import threading

from imgctl.cli import image_argument, state
from imgctl.errors import UsageError
from imgctl.events import Event, Kind, Retry


# docker's per-layer state words, by event kind (byte progress is shown on a terminal only)
STATE_TEXT = {
    Kind.PULLING: "Pulling fs layer",
    Kind.WAITING: "Waiting",
    Kind.VERIFYING: "Verifying Checksum",
    Kind.DOWNLOADED: "Download complete",
    Kind.COMPLETE: "Pull complete",
    Kind.EXISTS: "Already exists",
}


class PlainProgress:
    """Off a terminal: docker's state lines, no byte counts."""

    def __init__(self, out=None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def __call__(self, e: Event) -> None:
        if e.kind == Kind.PULLING_FROM:
            line = e.text
        elif e.kind == Kind.DIGEST:
            line = f"Digest: {e.text}"
        elif e.kind in (Kind.RETRYING, Kind.RESUMING):
            line = f"{e.id}: {e.text}" if e.id else e.text
        elif e.kind in STATE_TEXT:
            line = f"{e.id}: {STATE_TEXT[e.kind]}"
        else:
            return
        with self._lock:
            print(line, file=self.out, flush=True)

    def line(self, text: str) -> None:
        with self._lock:
            print(text, file=self.out, flush=True)

    def stop(self) -> None:
        pass


class _Row:
    __slots__ = ("label", "status", "current", "total", "final", "line", "height")

    def __init__(self, label: str, status: str, final: bool = False) -> None:
        self.label = label
        self.status = status
        self.current = 0
        self.total = 0
        self.final = final  # never changes again: no need to stay within the cursor's reach
        self.line = -1  # physical line on screen (from the region's first line), -1 until printed
        self.height = 1


def _terminal_size(out) -> tuple[int, int]:
    import os

    try:
        size = os.get_terminal_size(out.fileno())
        return size.columns or 80, size.lines or 24
    except (AttributeError, ValueError, OSError):
        return 80, 24


class TerminalProgress:
    """On a terminal: one row per layer, redrawn in place with cursor moves, as docker does.

    Rows never wrap (a row is cut to the width, the bar shrinking first), the status column
    has a fixed width and the byte counts a fixed place, so nothing jumps as states change.
    Lines of text (``Digest:``, ``Status:``, ...) are written whole: the terminal may fold a
    line too long for it, but no newline is ever inserted into one.  Only rows within the
    cursor's reach are redrawn: while the live rows would not fit on the screen, further
    rows wait (finished rows are final, and layers finish in order), so every row ends
    showing its last state however many layers there are.  A ``Total`` row (all layers'
    bytes) stays at the bottom.
    """

    STATUS_WIDTH = 11  # "Downloading": the one state followed by a bar and byte counts
    BAR_MAX = 50  # docker's bar: 50 steps
    NUMBERS_WIDTH = 17  # "%8s/%s" of two go-units sizes (at most 8 characters each)
    TOTAL_EVERY = 0.1  # seconds between redraws of the Total row

    def __init__(self, out=None, size: tuple[int, int] | None = None) -> None:
        self.out = out or sys.stdout
        cols, lines = size or _terminal_size(self.out)
        self.width = max(cols, 20)
        self.height = max(lines, 3)
        self._lock = threading.Lock()
        self._reset()

    def _reset(self) -> None:
        self._rows: dict[str, _Row] = {}
        self._order: list[_Row] = []  # rows in the order they appeared (printed or waiting)
        self._printed = 0  # how many of _order are on screen
        self._first_live = 0  # rows before this index in _order are final
        self._lines = 0  # physical lines of the printed rows
        self._total: _Row | None = None
        self._total_drawn = 0.0
        self._layers_done = 0
        self._layer_count = 0

    # -- text ---------------------------------------------------------------------------
    def _text(self, row: _Row) -> str:
        """One row, cut to the width: ``ID: Downloading [===>   ]  1.2MB/3.4MB``.  Narrower
        terminals lose the bar first, then the byte counts (a percentage instead); the
        layout depends on the width only, so columns stay put while the bytes grow."""
        from imgctl.cli.format.units import human_size

        limit = self.width - 1  # never the last column: no pending wrap, no surprise scroll
        if row is self._total:
            status = f"{self._layers_done}/{self._layer_count}"
        elif row.status == "Downloading":
            status = row.status
        else:
            return f"{row.label}: {row.status}"[:limit]
        head = f"{row.label:<12}: {status:<{self.STATUS_WIDTH}}"
        if not row.total:
            return head[:limit].rstrip()
        room = limit - len(head) - 1
        numbers = f"{human_size(row.current, 4):>8}/{human_size(row.total, 4)}"
        if room >= 2 + 6 + 1 + self.NUMBERS_WIDTH:
            steps = min(self.BAR_MAX, room - 2 - 1 - 1 - self.NUMBERS_WIDTH)
            done = min(steps, row.current * steps // row.total)
            text = f"{head} [{'=' * done}>{' ' * (steps - done)}] {numbers}"
        elif room >= self.NUMBERS_WIDTH:
            text = f"{head} {numbers}"
        else:
            text = f"{head} {min(100, row.current * 100 // row.total):>3}%"
        return text[:limit].rstrip()

    # -- screen -------------------------------------------------------------------------
    def _write(self, s: str) -> None:
        self.out.write(s)
        self.out.flush()

    def _below(self) -> int:
        return self._lines + (1 if self._total is not None else 0)

    def _redraw(self, row: _Row) -> None:
        if row.line < 0:
            return  # not on screen yet: printed with its state when its turn comes
        up = self._below() - row.line
        self._write(f"\x1b[{up}A\r\x1b[2K{self._text(row)}\x1b[{up}B\r")

    def _redraw_total(self, force: bool = False) -> None:
        import time

        if self._total is None:
            return
        now = time.monotonic()
        if not force and now - self._total_drawn < self.TOTAL_EVERY:
            return
        self._total_drawn = now
        self._write(f"\x1b[1A\r\x1b[2K{self._text(self._total)}\n")

    def _print_waiting(self) -> None:
        """Put rows on screen in order while every live row stays within the cursor's reach."""
        while self._printed < len(self._order):
            while self._first_live < self._printed and self._order[self._first_live].final:
                self._first_live += 1
            row = self._order[self._printed]
            live_top = self._order[self._first_live].line if self._first_live < self._printed else self._lines
            if self._below() + row.height - live_top > self.height - 1 and self._first_live < self._printed:
                return
            text = row.label if row.status == "text" else self._text(row)
            if self._total is not None:
                self._write("\x1b[1A\r\x1b[2K")  # the Total row moves down under the new row
            self._write(text + "\n")
            row.line = self._lines
            self._lines += row.height
            self._printed += 1
            if self._total is not None:
                self._write(self._text(self._total) + "\n")

    def _row(self, id: str) -> _Row:
        row = self._rows.get(id)
        if row is None:
            row = self._rows[id] = _Row(id, STATE_TEXT[Kind.PULLING])
            self._order.append(row)
            self._layer_count += 1
        return row

    def _text_row(self, text: str) -> None:
        row = _Row(text, "text", final=True)
        row.height = max(1, -(-len(text) // self.width))
        self._order.append(row)
        self._print_waiting()

    # -- events -------------------------------------------------------------------------
    def __call__(self, e: Event) -> None:
        with self._lock:
            if e.kind == Kind.PULLING_FROM:
                self._reset()
                self._text_row(e.text)
                return
            if e.kind == Kind.DIGEST:
                self._freeze_total()
                self._text_row(f"Digest: {e.text}")
                return
            if not e.id:
                if e.text:
                    self._text_row(e.text)
                return
            row = self._row(e.id)
            if e.kind in (Kind.RETRYING, Kind.RESUMING):
                row.status = e.text
            elif e.kind == Kind.DOWNLOADING:
                self._add_total(e.current - row.current, (e.total or row.total) - row.total)
                row.status, row.current, row.total = "Downloading", e.current, e.total or row.total
            elif e.kind in STATE_TEXT:
                row.status = STATE_TEXT[e.kind]
                if e.kind == Kind.PULLING and e.total:
                    self._add_total(0, e.total - row.total)
                    row.total = e.total
                elif e.kind in (Kind.DOWNLOADED, Kind.COMPLETE):
                    self._add_total(row.total - row.current, 0)
                    row.current = row.total
                if e.kind in (Kind.COMPLETE, Kind.EXISTS):
                    row.final = True
                    self._layers_done += 1
            else:
                return
            self._redraw(row)
            self._print_waiting()
            self._redraw_total(force=row.final)

    def _add_total(self, current: int, total: int) -> None:
        if self._total is None:
            if not total:
                return
            self._total = _Row("Total", "Total")
            self._total.current, self._total.total = current, total
            self._write(self._text(self._total) + "\n")
            return
        self._total.current += current
        self._total.total += total

    def line(self, text: str) -> None:
        with self._lock:
            self._text_row(text)

    def _freeze_total(self) -> None:
        """The pull is over: the Total row shows its last state and stays where it is."""
        if self._total is not None:
            self._redraw_total(force=True)
            self._total = None
            self._lines += 1

    def stop(self) -> None:
        with self._lock:
            self._freeze_total()


def _download_options(config, per_layer: int | None, chunk_size: str | None):
    """The configuration with ``--max-concurrent-downloads-per-layer`` and ``--download-chunk-size`` applied."""
    from dataclasses import replace

    from imgctl.config import PER_LAYER_LIMIT, chunk_size_problem

    if per_layer is not None:
        if not 1 <= per_layer <= PER_LAYER_LIMIT:
            raise UsageError(f"--max-concurrent-downloads-per-layer must be an integer from 1 to {PER_LAYER_LIMIT}")
        config = replace(config, max_concurrent_downloads_per_layer=per_layer)
    if chunk_size is not None:
        n, problem = chunk_size_problem(chunk_size)
        if problem is not None:
            raise UsageError(f"--download-chunk-size {problem}")
        config = replace(config, download_chunk_size=n)
    return config


def run_pull(
    name: str, *, platform: str | None, all_tags: bool, quiet: bool, mirrors: list[str] = (), authfile=None,
    all_platforms: bool = False, attestations: bool = False, per_layer: int | None = None, chunk_size: str | None = None,
) -> None:
    from imgctl.cli.authfile import credentials
    from imgctl.config import parse_mirror_url
    from imgctl.oci import parse_platform
    from imgctl.pull import pull, pull_all_tags
    from imgctl.registry import RegistryClient

    ref, default_tag = image_argument(name, all_tags=all_tags)
    plat = parse_platform(platform) if platform else None
    if attestations and not all_platforms:
        raise UsageError("--attestations needs --all-platforms")
    if all_platforms:
        plat = None  # every platform (DOCKER_DEFAULT_PLATFORM does not narrow it)
    try:
        extra_mirrors = tuple(parse_mirror_url(m) for m in mirrors)
    except ValueError as e:
        raise UsageError(f"--registry-mirror: {e}") from None
    config = _download_options(state.config(), per_layer, chunk_size)
    store = state.store()

    if quiet:
        show = None
    elif sys.stdout.isatty():
        show = TerminalProgress()
    else:
        show = PlainProgress()
    if show and default_tag:
        show.line("Using default tag: latest")
    def on_retry(retry: Retry) -> None:
        if show is not None:
            show(retry.event())

    try:
        with RegistryClient(
            config, credentials=credentials(authfile), log=state.log, mirrors=extra_mirrors, on_retry=on_retry
        ) as client:
            kw = dict(store=store, client=client, config=config, platform=plat, progress=show, all_platforms=all_platforms,
                      attestations=attestations)
            if all_tags:
                results = pull_all_tags(ref, **kw)
            else:
                results = [pull(ref, **kw)]
    finally:
        if show:
            show.stop()
    changed = any(r.changed for r in results)
    if all_tags:
        shown, full = ref.familiar_repository, ref.repository
    else:
        shown, full = ref.familiar(), str(ref)
    if show:
        status = "Downloaded newer image" if changed else "Image is up to date"
        show.line(f"Status: {status} for {shown}")
    print(full, flush=True)
