"""``images --tree`` (docker 29's layout) and the manifests list of ``images --format json``."""

import os
import shutil
import sys

from imgctl.cli.format.units import human_size
from imgctl.errors import UsageError

COLUMN_SPACING = 3
_COLUMNS = (("ID", 12, "left"), ("DISK USAGE", 10, "right"), ("CONTENT SIZE", 12, "right"), ("EXTRA", 5, "left"))


def _cut(s: str, width: int) -> str:
    return s if len(s) <= width else s[: max(0, width - 3)] + "..."


def render_tree(images: list, *, width: int = 80, faint: bool = False) -> str:
    """docker 29's ``image ls --tree``: a header, then per image its names (the last one with
    the image's details) and one ``├─``/``└─`` line per platform; a blank line between images.
    Absent platforms show 0B (dimmed on a terminal when ``faint``)."""
    width = max(width, 20)
    columns = list(_COLUMNS)
    name_width = width
    for i, (_, w, _) in enumerate(columns):
        if name_width - (w + COLUMN_SPACING) < 12:
            columns = columns[:i]
            break
        name_width -= w + COLUMN_SPACING
    widest = len("IMAGE")
    for img in images:
        widest = max([widest, *(len(n) for n in img.names or ["<untagged>"]), *(len(p.platform) + 3 for p in img.platforms)])
    name_width = min(name_width, widest)

    def details(id_: str, disk: int, content: int) -> str:
        values = {"ID": id_.split(":", 1)[-1][:12], "DISK USAGE": human_size(disk), "CONTENT SIZE": human_size(content), "EXTRA": ""}
        parts = []
        for title, w, align in columns:
            v = _cut(values[title], w)
            parts.append(" " * COLUMN_SPACING + (v.rjust(w) if align == "right" else v.ljust(w)))
        return "".join(parts)

    lines = ["".join(["IMAGE".ljust(name_width)] + [" " * COLUMN_SPACING + (t.rjust(w) if a == "right" else t.ljust(w)) for t, w, a in columns]).rstrip()]
    for n, img in enumerate(images):
        if n:
            lines.append("")
        names = img.names or ["<untagged>"]
        for name in names[:-1]:
            lines.append(_cut(name, name_width))
        lines.append((_cut(names[-1], name_width).ljust(name_width) + details(img.id, img.disk_usage, img.content_size)).rstrip())
        for i, p in enumerate(img.platforms):
            branch = "└─ " if i == len(img.platforms) - 1 else "├─ "
            line = (_cut(branch + p.platform, name_width).ljust(name_width) + details(p.id, p.disk_usage, p.content_size)).rstrip()
            if faint and not p.available:
                line = f"\x1b[2m{line}\x1b[0m"
            lines.append(line)
    return "\n".join(lines) + "\n"


def print_tree(store, rows, *, quiet: bool, no_trunc: bool, digests: bool, format_: str | None) -> None:
    from imgctl.tree import tree_images

    for flag, given in (("--quiet", quiet), ("--no-trunc", no_trunc), ("--digests", digests), ("--format", bool(format_))):
        if given:
            raise UsageError(f"{flag} is not supported with --tree")
    terminal = sys.stdout.isatty()
    # As docker: the terminal's width, else 80 columns (COLUMNS overrides both).
    width = int(os.environ["COLUMNS"]) if os.environ.get("COLUMNS", "").isdigit() else (
        shutil.get_terminal_size().columns if terminal else 80
    )
    sys.stdout.write(render_tree(tree_images(store, rows), width=width, faint=terminal))


def with_manifests(store, rows, out: list[dict]) -> list[dict]:
    """Rows of multi-platform images gain docker's ``Manifests`` (keys stay in docker's order)."""
    from imgctl.tree import has_index, manifest_summaries

    multi = has_index(store)
    if not multi:
        return out
    cache: dict[str, list] = {}
    result = []
    for r, row in zip(rows, out):
        if r.id in multi:
            if r.id not in cache:
                cache[r.id] = manifest_summaries(store, r.id)
            row = dict(sorted({**row, "Manifests": cache[r.id]}.items()))
        result.append(row)
    return result
