"""``images`` (and ``image ls``): list the store's images as a table, JSON, raw or a Go template."""

from typing import Annotated, Optional

import typer

from imgctl.cli import state


IMAGES_HEADERS = {
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "ID": "IMAGE ID",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}


def images_cmd(
    repository: Annotated[Optional[str], typer.Argument(help="Only images of REPOSITORY[:TAG].", show_default=False)] = None,
    all_images: Annotated[bool, typer.Option("--all", "-a", help="Show all images (default hides intermediate images, which imgctl never has).")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only show image IDs.")] = False,
    digests: Annotated[bool, typer.Option("--digests", help="Show digests.")] = False,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    filter_: Annotated[
        Optional[list[str]],
        typer.Option("--filter", "-f", help="Filter: dangling=true|false, label=KEY[=VALUE], label!=KEY[=VALUE], before=IMAGE, since=IMAGE, until=TIMESTAMP|DURATION, reference=PATTERN.", show_default=False),
    ] = None,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", help="'table', 'json', 'raw', or a Go template such as '{{.Repository}}:{{.Tag}}'.", show_default=False),
    ] = None,
    tree: Annotated[bool, typer.Option("--tree", help="List multi-platform images as a tree: one line per platform.")] = False,
) -> None:
    """List images in the local store."""
    import sys
    import time

    from imgctl.cli.format.tables import rows_output, simple_table_fields
    from imgctl.cli.format.units import created_since, human_size
    from imgctl.images import list_images, parse_filters

    filters = parse_filters(filter_ or [])
    rows = list_images(state.store(), name=repository, all_images=all_images, filters=filters)
    if tree:
        from imgctl.cli.images_tree import print_tree

        return print_tree(state.store(), rows, quiet=quiet, no_trunc=no_trunc, digests=digests, format_=format_)
    format_ = _images_format(format_, quiet=quiet, digests=digests)
    if format_ == "{{.ID}}":  # -q: one ID per row, repeated for each tag as docker prints it
        sys.stdout.write("".join((r.id if no_trunc else r.id[7:19]) + "\n" for r in rows))
        return
    now = time.time()
    # Per-image values are computed once per image, not per row: a store of 10,000 tags may
    # hold only a handful of images.  CreatedAt only when the format can show it.
    simple = simple_table_fields(format_) if format_ not in (None, "", "table") else []
    want_created_at = simple is None or "CreatedAt" in simple
    per_image: dict[str, tuple[str, str, str]] = {}
    out = []
    for r in rows:
        cached = per_image.get(r.id)
        if cached is None:
            cached = per_image[r.id] = (
                _go_time(r.created_ts) if want_created_at else "",
                created_since(r.created_ts, now),
                human_size(r.size),
            )
        created_at, since, size = cached
        out.append(
            {
                "Containers": "N/A",
                "CreatedAt": created_at,
                "CreatedSince": since,
                "Digest": r.digest or "<none>",
                "ID": r.id if no_trunc else r.id[7:19],
                "Repository": r.repository or "<none>",
                "SharedSize": "N/A",
                "Size": size,
                "Tag": r.tag or "<none>",
                "UniqueSize": "N/A",
            }
        )
    if "Manifests" in (format_ or "") or format_ == "json":  # multi-platform images: docker's manifests list
        from imgctl.cli.images_tree import with_manifests

        out = with_manifests(state.store(), rows, out)
    sys.stdout.write(rows_output(format_, out, default_table=format_, headers=IMAGES_HEADERS))


IMAGES_TABLE = "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
IMAGES_TABLE_DIGESTS = "table {{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
# docker/cli formatter.NewImageFormat's "raw" formats (the spacing inside the actions is docker's)
IMAGES_RAW = "repository: {{ .Repository }}\ntag: {{.Tag}}\nimage_id: {{.ID}}\ncreated_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
IMAGES_RAW_DIGESTS = (
    "repository: {{ .Repository }}\ntag: {{.Tag}}\ndigest: {{.Digest}}\nimage_id: {{.ID}}\n"
    "created_at: {{.CreatedAt}}\nvirtual_size: {{.Size}}\n"
)


def _images_format(format_: str | None, *, quiet: bool, digests: bool) -> str:
    """docker's ``NewImageFormat``: the template for ``images``.

    ``table`` (also no ``--format``) and ``raw`` have quiet and digest variants; any other
    format ignores ``-q``, and a custom ``table ...`` with ``--digests`` gets a DIGEST column
    at the end unless it already shows ``{{.Digest}}``.
    """
    if not format_ or format_ == "table":
        if quiet:
            return "{{.ID}}"  # docker's DefaultQuietFormat
        return IMAGES_TABLE_DIGESTS if digests else IMAGES_TABLE
    if format_ == "raw":
        if quiet:
            return "image_id: {{.ID}}"
        return IMAGES_RAW_DIGESTS if digests else IMAGES_RAW
    if format_.startswith("table") and digests and "{{.Digest}}" not in format_:
        return format_ + "\t{{.Digest}}"
    return format_


def _go_time(ts: float | None) -> str:
    """Go's time.Time.String() in the local zone, as docker's CreatedAt: 2024-01-02 03:04:05 +0000 UTC."""
    if not ts:
        return ""
    import time as _t

    lt = _t.localtime(ts)
    return _t.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + (lt.tm_zone or "")
