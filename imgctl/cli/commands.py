"""Command definitions: parse arguments, call one library function, render the result.

Heavy modules (httpx, rich, the pull machinery) are imported inside the
commands that need them.
"""

from typing import Annotated, Optional

import typer

from imgctl.cli import app, state, talks_to_registries
from imgctl.cli.authfile import AuthFile

image_app = typer.Typer(help="Manage images (docker-style `image` subcommands).", no_args_is_help=True)
app.add_typer(image_app, name="image")


# -- pull ---------------------------------------------------------------------------------
def pull_cmd(
    name: Annotated[str, typer.Argument(help="Image to pull: NAME[:TAG|@DIGEST].", show_default=False)],
    platform: Annotated[
        Optional[str],
        typer.Option("--platform", envvar="DOCKER_DEFAULT_PLATFORM", help="Platform os/arch[/variant] (default: this host's).", show_default=False),
    ] = None,
    all_tags: Annotated[bool, typer.Option("--all-tags", "-a", help="Pull every tag of the repository.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the image name.")] = False,
    all_platforms: Annotated[
        bool, typer.Option("--all-platforms", help="Pull every platform of a multi-platform image (attestations excepted).")
    ] = False,
    attestations: Annotated[
        bool, typer.Option("--attestations", help="With --all-platforms: also pull the index's attestations (a complete copy to push elsewhere).")
    ] = False,
    registry_mirror: Annotated[
        Optional[list[str]],
        typer.Option("--registry-mirror", metavar="URL", help="Try this mirror first (repeatable; any registry; reads only).", show_default=False),
    ] = None,
    authfile: AuthFile = None,
    per_layer: Annotated[
        Optional[int],
        typer.Option("--max-concurrent-downloads-per-layer", metavar="N", help="Connections one large layer is fetched over at once, as ranges (1-64; 1: one stream).", show_default=False),
    ] = None,
    chunk_size: Annotated[
        Optional[str],
        typer.Option("--download-chunk-size", metavar="SIZE", help="Bytes per range of a layer fetched over several connections (1MiB-1GiB, e.g. 16MiB).", show_default=False),
    ] = None,
) -> None:
    """Pull an image from a registry into the local store."""
    talks_to_registries()
    from imgctl.cli.pullcmd import run_pull

    run_pull(name, platform=platform, all_tags=all_tags, quiet=quiet, mirrors=registry_mirror or [], authfile=authfile,
             all_platforms=all_platforms, attestations=attestations, per_layer=per_layer, chunk_size=chunk_size)


app.command("pull")(pull_cmd)
image_app.command("pull")(pull_cmd)


# -- images -------------------------------------------------------------------------------
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

    from imgctl.formatting import simple_table_fields, created_since, human_size, rows_output
    from imgctl.images import list_images, parse_filters

    filters = parse_filters(filter_ or [])
    rows = list_images(state.store(), name=repository, all_images=all_images, filters=filters)
    if tree:
        from imgctl.cli.treecmd import print_tree

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
        from imgctl.cli.treecmd import with_manifests

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


app.command("images")(images_cmd)
image_app.command("ls")(images_cmd)
image_app.command("list", hidden=True)(images_cmd)
