"""``save``, ``load`` and ``export`` (and the ``image`` forms of save and load)."""

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from imgctl.cli import state
from imgctl.cli.platformopt import PlatformOpt, platform_arg
from imgctl.errors import UsageError


class ArchiveFormat(str, Enum):
    docker_archive = "docker-archive"
    oci_archive = "oci-archive"



def _binary_stdout(on_terminal: str):
    """Standard output as a binary stream for an archive: refused on a terminal (``on_terminal``
    says what to do instead), flushed so text written before cannot land inside the archive."""
    if sys.stdout.isatty():
        raise UsageError(on_terminal)
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        raise UsageError("standard output cannot take binary data; use -o FILE")
    sys.stdout.flush()
    return out

def save_cmd(
    images: Annotated[list[str], typer.Argument(help="Images to save: NAME[:TAG] (a bare NAME saves all its tags), NAME@DIGEST or IDs.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write to FILE instead of standard output.", metavar="FILE", show_default=False),
    ] = None,
    format_: Annotated[
        ArchiveFormat,
        typer.Option("--format", help="Archive format: docker-archive (docker load, podman load) or oci-archive (an OCI layout)."),
    ] = ArchiveFormat.docker_archive,
    platform: PlatformOpt = None,
) -> None:
    """Save one or more images to a tar archive (streamed to standard output by default)."""
    from imgctl.archive import save, save_to_file

    plat = platform_arg(platform)
    if output is not None and str(output) != "-":
        save_to_file(state.store(), images, output, format=format_.value, platform=plat)
        return
    out = _binary_stdout("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    save(state.store(), images, out, format=format_.value, platform=plat)
    out.flush()




def load_cmd(
    input_: Annotated[
        Optional[Path],
        typer.Option("--input", "-i", help="Read from a tar archive FILE (plain, gzip or zstd) instead of standard input.", metavar="FILE", show_default=False),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Accepted for docker compatibility (load shows no progress).")] = False,
    max_ratio: Annotated[
        Optional[float],
        typer.Option(
            "--max-ratio",
            help="Most bytes a gzip or zstd archive may expand to per compressed byte, beyond 256 MiB (default: 100).",
            metavar="N",
            min=1,
            show_default=False,
        ),
    ] = None,
) -> None:
    """Load images from a docker-archive or oci-archive tar, verifying every digest."""
    from imgctl.archive import load

    if input_ is not None and str(input_) != "-":
        source = input_
    else:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("requested load from stdin, but stdin is empty")
        source = getattr(sys.stdin, "buffer", sys.stdin)
    for loaded in load(state.store(), source, **({} if max_ratio is None else {"max_ratio": max_ratio})):
        for name, old in loaded.replaced:
            print(f"The image {name} already exists, renaming the old one with ID {old} to empty string")
        if loaded.names:
            for name in loaded.names:
                print(f"Loaded image: {name}")
        else:
            print(f"Loaded image ID: {loaded.image_id}")




# -- export -------------------------------------------------------------------------------
def parse_size(text: str, option: str) -> int:
    """A size as docker's ``--shm-size`` takes it: go-units ``RAMInBytes`` (powers of 1024)."""
    from imgctl.units import ram_in_bytes

    try:
        return ram_in_bytes(text)
    except UsageError:
        raise UsageError(f"invalid size {text!r} for {option}: use a number with an optional unit (b, k, m, g, t), e.g. 20g") from None


def export_cmd(
    image: Annotated[str, typer.Argument(help="Image: NAME[:TAG], NAME@DIGEST or an ID.", show_default=False)],
    output: Annotated[
        Optional[Path],
        typer.Option("--output", "-o", help="Write a tar archive to FILE (default: standard output).", metavar="FILE", show_default=False),
    ] = None,
    directory: Annotated[
        Optional[Path],
        typer.Option("--dir", help="Unpack into DIR (new or empty) instead of writing a tar.", metavar="DIR", file_okay=False, show_default=False),
    ] = None,
    max_size: Annotated[
        Optional[str],
        typer.Option(
            "--max-size",
            help="Most bytes of file content to write, sparse files expanded (default: the image's size plus 1 GiB), e.g. 50g.",
            metavar="SIZE",
            show_default=False,
        ),
    ] = None,
    max_entries: Annotated[
        Optional[int],
        typer.Option("--max-entries", help="Most files, directories and links over all layers (default: 250000).", metavar="N", min=0, show_default=False),
    ] = None,
    platform: PlatformOpt = None,
) -> None:
    """Export an image's flattened root filesystem as a tar archive or into a directory."""
    from imgctl.export import Limits, export_to_dir, export_to_file, export_to_tar

    if output is not None and directory is not None:
        raise UsageError("--output and --dir cannot be used together")
    from imgctl.cli.format.width import terminal_safe

    given = {"max_size": None if max_size is None else parse_size(max_size, "--max-size"), "max_entries": max_entries}
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    store = state.store()
    plat = platform_arg(platform)
    if directory is not None:
        result = export_to_dir(store, image, directory, limits=limits, platform=plat)
        if result.skipped:
            print(
                f"WARNING: {len(result.skipped)} device node(s) not created (only root can, and only the standard character devices such as /dev/null): "
                + ", ".join("/" + terminal_safe(p) for p in result.skipped[:5])
                + (" ..." if len(result.skipped) > 5 else ""),
                file=sys.stderr,
            )
        return
    if output is not None and str(output) != "-":
        export_to_file(store, image, output, limits=limits, platform=plat)
        return
    out = _binary_stdout("cowardly refusing to write a tar archive to a terminal. Use -o FILE, --dir DIR or redirect")
    export_to_tar(store, image, out, limits=limits, platform=plat)
    out.flush()
