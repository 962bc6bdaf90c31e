"""``search`` (Docker Hub, its mirrors, any registry) and ``tags``."""

import sys
from typing import Annotated, Optional

import typer

from imgctl.cli import app, state, talks_to_registries
from imgctl.cli import lifecycle as _before  # noqa: F401  (its commands are listed first)

SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"}
SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
TAGS_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG"}
TAGS_TABLE = "table {{.Repository}}\t{{.Tag}}"
DESCRIPTION_WIDTH = 45
AUTOMATED_WARNING = (
    'WARNING: the "is-automated" filter is deprecated, and searching for "is-automated=true" '
    "will not yield any results in future."
)


def _client():
    from imgctl.registry import RegistryClient

    return RegistryClient(state.config(), log=state.log)  # credentials: docker's and imgctl's auth files


@app.command("search")
def search_cmd(
    term: Annotated[str, typer.Argument(help="TERM for Docker Hub, or HOST[:PORT]/TERM for another registry.", show_default=False)],
    limit: Annotated[int, typer.Option("--limit", help="Max number of search results (1-100).")] = 25,
    filter_: Annotated[
        Optional[list[str]],
        typer.Option("--filter", "-f", help="Filter: stars=N, is-official=true|false.", show_default=False),
    ] = None,
    no_trunc: Annotated[bool, typer.Option("--no-trunc", help="Don't truncate output.")] = False,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", help="'table', 'json', or a Go template such as '{{.Name}}: {{.StarCount}}'.", show_default=False),
    ] = None,
) -> None:
    """Search Docker Hub (or any registry) for images."""
    talks_to_registries()
    from imgctl.formatting import format_rows, truncate_display
    from imgctl.search import parse_filters, search

    filters = parse_filters(filter_ or [])
    if filters.is_automated is not None:
        print(AUTOMATED_WARNING, file=sys.stderr)
    with _client() as client:
        results = search(term, client=client, config=state.config(), limit=limit, filters=filters, log=state.log)
    # docker's searchContext: IsOfficial is "[OK]"/"" in text, "true"/"false" when marshalled to JSON.
    as_json = format_ is not None and format_.strip() in ("json", "{{json .}}")
    rows = []
    for r in results:
        desc = r.description.replace("\n", " ").replace("\r", " ")
        rows.append(
            {
                "Name": r.name,
                "Description": desc if no_trunc else truncate_display(desc, DESCRIPTION_WIDTH),
                "StarCount": "" if r.star_count is None else str(r.star_count),
                "IsOfficial": ("true" if r.is_official else "false") if as_json else ("[OK]" if r.is_official else ""),
            }
        )
    text = format_rows(format_, rows, default_table=SEARCH_TABLE, headers=SEARCH_HEADERS, type_name="*registry.searchContext")
    if text:
        print(text)


@app.command("tags")
def tags_cmd(
    name: Annotated[str, typer.Argument(help="Repository: NAME (Docker Hub) or HOST[:PORT]/NAME.", show_default=False)],
    limit: Annotated[Optional[int], typer.Option("--limit", help="List at most N tags.", show_default=False)] = None,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", help="'json', 'table', or a Go template such as '{{.Repository}}:{{.Tag}}' (default: one tag per line).", show_default=False),
    ] = None,
) -> None:
    """List the tags of a repository in a registry."""
    talks_to_registries()
    from imgctl.formatting import Template, format_rows
    from imgctl.search import tag_pages

    # Tags are printed as their pages arrive (memory: one page), except in a table, which is
    # aligned over all of its rows.
    table = format_ is not None and (format_ in ("", "table") or Template(format_).is_table)
    rows: list[dict] = []
    with _client() as client:
        repository, pages = tag_pages(name, client=client, limit=limit)
        for page in pages:
            if format_ is None:
                text = "\n".join(page)
            else:
                page_rows = [{"Repository": repository, "Tag": t} for t in page]
                if table:
                    rows.extend(page_rows)
                    continue
                text = format_rows(format_, page_rows, default_table=TAGS_TABLE, headers=TAGS_HEADERS, type_name="*formatter.tagContext")
            if text:
                print(text, flush=True)
    if table:
        print(format_rows(format_, rows, default_table=TAGS_TABLE, headers=TAGS_HEADERS, type_name="*formatter.tagContext"))
