"""``--authfile PATH`` (podman's option) for the commands that use credentials:
login, logout, pull, push, search and tags."""

from pathlib import Path
from typing import Annotated, Optional

import typer

AuthFile = Annotated[
    Optional[Path],
    typer.Option(
        "--authfile",
        metavar="PATH",
        help="Credentials file to read (login/logout: to write) instead of the default ones "
        "(default: $REGISTRY_AUTH_FILE).",
        show_default=False,
        dir_okay=False,
    ),
]


def credentials(path: Optional[Path]):
    """``RegistryClient(credentials=...)`` for ``--authfile``: None (the default lookup) when not given."""
    if path is None:
        return None
    from imgctl import auth

    return lambda host: auth.lookup(host, path)
