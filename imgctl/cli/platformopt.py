"""The ``--platform`` option of the commands that act on one platform of an image."""

from typing import Annotated, Optional

import typer

PlatformOpt = Annotated[
    Optional[str],
    typer.Option(
        "--platform",
        metavar="OS/ARCH[/VARIANT]",
        help="Act on this platform of a multi-platform image (default: the host's, or the whole image for save, push and rmi).",
        show_default=False,
    ),
]


def platform_arg(text: str | None):
    """The parsed platform, or None when the option was not given."""
    if not text:
        return None
    from imgctl.oci import parse_platform

    return parse_platform(text)
