"""``push`` (and ``image push``)."""

from typing import Annotated, Optional

import typer

from imgctl.cli import image_argument, state, talks_to_registries
from imgctl.cli.authfile import AuthFile, credentials
from imgctl.cli.platformopt import PlatformOpt, platform_arg
from imgctl.errors import UsageError


class _PushLines:
    """docker's push lines (the state changes; byte counts are left out)."""

    _TEXT = {"preparing": "Preparing", "exists": "Layer already exists", "pushed": "Pushed"}

    def __call__(self, e) -> None:
        if e.kind in ("pushing_to", "pushed_manifest"):
            line = e.text
        elif e.kind in ("mounted", "skipped"):
            line = f"{e.id}: {e.text}"
        elif e.kind in self._TEXT:
            line = f"{e.id}: {self._TEXT[e.kind]}"
        else:
            return
        print(line, flush=True)


def push_cmd(
    name: Annotated[str, typer.Argument(help="Image to push: NAME[:TAG] (default tag: latest).", show_default=False)],
    all_tags: Annotated[bool, typer.Option("--all-tags", "-a", help="Push every tag of the repository.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the pushed name.")] = False,
    authfile: AuthFile = None,
    platform: PlatformOpt = None,
) -> None:
    """Push an image to its registry: blobs it lacks, then the manifest (mirrors are never used)."""
    talks_to_registries()
    from imgctl.push import push, push_all_tags
    from imgctl.registry import RegistryClient

    ref, default_tag = image_argument(name, all_tags=all_tags)
    plat = platform_arg(platform)
    if plat is not None and all_tags:
        raise UsageError("--platform cannot be used with --all-tags")
    show = None if quiet else _PushLines()
    if show is not None and default_tag:
        print("Using default tag: latest")
    with RegistryClient(state.config(), credentials=credentials(authfile), log=state.log) as client:
        if all_tags:
            results = push_all_tags(ref, store=state.store(), client=client, progress=show)
        else:
            results = [push(ref, store=state.store(), client=client, progress=show, platform=plat)]
    if quiet:
        for r in results:
            print(str(r.reference))
