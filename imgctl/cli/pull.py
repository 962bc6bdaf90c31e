"""``pull`` (and ``image pull``): parse the arguments; pull_progress.py runs it."""

from typing import Annotated, Optional

import typer

from imgctl.cli import talks_to_registries
from imgctl.cli.authfile import AuthFile


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
    from imgctl.cli.pull_progress import run_pull

    run_pull(name, platform=platform, all_tags=all_tags, quiet=quiet, mirrors=registry_mirror or [], authfile=authfile,
             all_platforms=all_platforms, attestations=attestations, per_layer=per_layer, chunk_size=chunk_size)
