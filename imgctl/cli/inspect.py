"""``inspect``, ``history``, ``save``, ``load``, ``export`` and ``push`` (and their ``image`` forms)."""

import sys
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from imgctl.cli import app, image_argument, state, talks_to_registries
from imgctl.cli import auth_cmd as _before  # noqa: F401  (its commands are listed first)
from imgctl.cli.authfile import AuthFile, credentials
from imgctl.cli.commands import image_app
from imgctl.cli.platformopt import PlatformOpt, platform_arg
from imgctl.errors import PartialFailure, UsageError


# -- inspect ------------------------------------------------------------------------------
def _indented_json(value: object) -> str:
    """docker's ``json.MarshalIndent(v, "", "    ")`` over the API's HTML-escaping encoder."""
    import json

    text = json.dumps(value, indent=4, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)  # these characters can only occur inside JSON strings
    from imgctl.formatting import json_text_safe

    return json_text_safe(text)  # no raw C1 or bidi control on the terminal


def inspect_cmd(
    images: Annotated[list[str], typer.Argument(help="Images to inspect: names, NAME@DIGEST or IDs.", show_default=False)],
    format_: Annotated[
        Optional[str],
        typer.Option("--format", "-f", help="Go template applied to each image, e.g. '{{.Id}}' or '{{json .Config}}'.", show_default=False),
    ] = None,
    platform: PlatformOpt = None,
) -> None:
    """Show detailed information on one or more images as JSON."""
    from imgctl.formatting import Template
    from imgctl.inspect import inspect_images

    tmpl = Template(format_, raw=True) if format_ else None
    docs, errors = inspect_images(state.store(), images, platform_arg(platform))
    if tmpl is None:
        print(_indented_json(docs))
    else:
        for doc in docs:
            print(tmpl.render(doc))
    if errors:
        raise PartialFailure(errors)


app.command("inspect")(inspect_cmd)
image_app.command("inspect")(inspect_cmd)


# -- history ------------------------------------------------------------------------------
HISTORY_HEADERS = {
    "ID": "IMAGE",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "CreatedBy": "CREATED BY",
    "Size": "SIZE",
    "Comment": "COMMENT",
}


def _rfc3339_local(ts: float | None) -> str:
    if not ts:
        return ""
    from datetime import datetime

    return datetime.fromtimestamp(int(ts)).astimezone().isoformat().replace("+00:00", "Z")


def history_cmd(
    image: Annotated[str, typer.Argument(help="Image: NAME[:TAG], NAME@DIGEST or an ID.", show_default=False)],
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only show image IDs.")] = False,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", help="'table', 'json', or a Go template such as '{{.CreatedBy}}'.", show_default=False),
    ] = None,
    platform: PlatformOpt = None,
) -> None:
    """Show the history of an image: one row per step that built it, newest first."""
    import time

    from imgctl.formatting import created_since, human_size, rows_output, truncate_display
    from imgctl.inspect import image_history

    entries = image_history(state.store(), image, platform_arg(platform))

    def shown_id(entry_id: str) -> str:
        if entry_id.startswith("sha256:") and not no_trunc:
            return entry_id[7:19]
        return entry_id

    if quiet:
        for e in entries:
            print(shown_id(e.id))
        return
    now = time.time()
    rows = []
    for e in entries:
        created_by = e.created_by.replace("\t", " ")
        rows.append(
            {
                "Comment": e.comment,
                "CreatedAt": _rfc3339_local(e.created_ts),
                "CreatedBy": created_by if no_trunc else truncate_display(created_by, 45),
                "CreatedSince": created_since(e.created_ts, now),
                "ID": shown_id(e.id),
                "Size": human_size(e.size),
            }
        )
    default = "table {{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}"
    sys.stdout.write(rows_output(format_, rows, default_table=default, headers=HISTORY_HEADERS))


app.command("history")(history_cmd)
image_app.command("history")(history_cmd)


# -- save / load --------------------------------------------------------------------------
class ArchiveFormat(str, Enum):
    docker_archive = "docker-archive"
    oci_archive = "oci-archive"


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
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to save to a terminal. Use the -o flag or redirect")
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        raise UsageError("standard output cannot take binary data; use -o FILE")
    sys.stdout.flush()
    save(state.store(), images, out, format=format_.value, platform=plat)
    out.flush()


app.command("save")(save_cmd)
image_app.command("save")(save_cmd)


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


app.command("load")(load_cmd)
image_app.command("load")(load_cmd)


# -- export -------------------------------------------------------------------------------
_UNITS = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str, option: str) -> int:
    """A size as docker's ``--shm-size`` takes it (go-units RAMInBytes): a number and an optional
    unit b, k, m, g or t (``kb``/``kib`` and so on are the same), powers of 1024."""
    import re

    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([bkmgt]?)(?:i?b)?\s*", text.lower())
    if not m:
        raise UsageError(f"invalid size {text!r} for {option}: use a number with an optional unit (b, k, m, g, t), e.g. 20g")
    return int(float(m.group(1)) * _UNITS[m.group(2)])


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
    from imgctl.formatting import terminal_safe

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
    if sys.stdout.isatty():
        raise UsageError("cowardly refusing to write a tar archive to a terminal. Use -o FILE, --dir DIR or redirect")
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        raise UsageError("standard output cannot take binary data; use -o FILE")
    sys.stdout.flush()
    export_to_tar(store, image, out, limits=limits, platform=plat)
    out.flush()


app.command("export")(export_cmd)


# -- push ---------------------------------------------------------------------------------
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


app.command("push")(push_cmd)
image_app.command("push")(push_cmd)
