"""``images --tree`` and the manifests list of ``images --format json``."""

import os
import shutil
import sys

from imgctl.errors import UsageError


def print_tree(store, rows, *, quiet: bool, no_trunc: bool, digests: bool, format_: str | None) -> None:
    from imgctl.tree import render_tree, tree_images

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
