"""``inspect`` and ``history`` (and their ``image`` forms)."""

import sys
from typing import Annotated, Optional

import typer

from imgctl.cli import state
from imgctl.cli.platformopt import PlatformOpt, platform_arg
from imgctl.errors import PartialFailure


def _indented_json(value: object) -> str:
    """docker's ``json.MarshalIndent(v, "", "    ")`` over the API's HTML-escaping encoder."""
    import json

    text = json.dumps(value, indent=4, ensure_ascii=False)
    for ch, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(ch, esc)  # these characters can only occur inside JSON strings
    from imgctl.cli.format.values import json_text_safe

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
    from imgctl.cli.format.executor import Template
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

    from imgctl.cli.format.tables import rows_output
    from imgctl.cli.format.units import created_since, human_size
    from imgctl.cli.format.width import truncate_display
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
