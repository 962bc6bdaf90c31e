"""``search`` (Docker Hub, its mirrors, any registry) and ``tags``."""

import sys
from typing import Annotated, Optional

import typer

from imgctl.cli import state, talks_to_registries
from imgctl.cli.authfile import AuthFile, credentials

SEARCH_HEADERS = {"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"}
SEARCH_TABLE = "table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}"
TAGS_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG"}
TAGS_TABLE = "table {{.Repository}}\t{{.Tag}}"
DESCRIPTION_WIDTH = 45
AUTOMATED_WARNING = (
    'WARNING: the "is-automated" filter is deprecated, and searching for "is-automated=true" '
    "will not yield any results in future."
)


def _client(authfile=None):
    from imgctl.registry import RegistryClient

    # credentials: --authfile, else docker's and imgctl's auth files
    return RegistryClient(state.config(), credentials=credentials(authfile), log=state.log)


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
    authfile: AuthFile = None,
) -> None:
    """Search Docker Hub (or any registry) for images."""
    talks_to_registries()
    from imgctl.cli.format.tables import rows_output
    from imgctl.cli.format.width import terminal_safe, truncate_display
    from imgctl.search import parse_filters, search

    filters = parse_filters(filter_ or [])
    if filters.is_automated is not None:
        print(AUTOMATED_WARNING, file=sys.stderr)
    with _client(authfile) as client:
        results = search(
            term, client=client, config=state.config(), limit=limit, filters=filters, log=state.log,
            on_fallback=lambda message: print(f"WARNING: {terminal_safe(message)}", file=sys.stderr),
        )
    results = [r for page in _valid_pages([results], lambda r: _valid_repository(r.name), "search result(s)") for r in page]
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
    sys.stdout.write(rows_output(format_, rows, default_table=SEARCH_TABLE, headers=SEARCH_HEADERS, type_name="*registry.searchContext"))


def tags_cmd(
    name: Annotated[str, typer.Argument(help="Repository: NAME (Docker Hub) or HOST[:PORT]/NAME.", show_default=False)],
    limit: Annotated[Optional[int], typer.Option("--limit", help="List at most N tags.", show_default=False)] = None,
    format_: Annotated[
        Optional[str],
        typer.Option("--format", help="'json', 'table', or a Go template such as '{{.Repository}}:{{.Tag}}' (default: one tag per line).", show_default=False),
    ] = None,
    authfile: AuthFile = None,
) -> None:
    """List the tags of a repository in a registry."""
    talks_to_registries()
    from imgctl.cli.format.executor import Template
    from imgctl.cli.format.tables import rows_output
    from imgctl.reference import is_valid_tag
    from imgctl.search import tag_pages

    # Tags are printed as their pages arrive (memory: one page), except in a table, which is
    # aligned over all of its rows.
    table = format_ is not None and (format_ in ("", "table") or Template(format_).is_table)
    kw = {"default_table": TAGS_TABLE, "headers": TAGS_HEADERS, "type_name": "*formatter.tagContext"}
    rows: list[dict] = []
    with _client(authfile) as client:
        repository, pages = tag_pages(name, client=client, limit=limit)
        for page in _valid_pages(pages, is_valid_tag, "tag(s)"):
            if format_ is None:
                text = "".join(t + "\n" for t in page)
            else:
                page_rows = [{"Repository": repository, "Tag": t} for t in page]
                if table:
                    rows.extend(page_rows)
                    continue
                text = rows_output(format_, page_rows, **kw)
            sys.stdout.write(text)
            sys.stdout.flush()
    if table:
        sys.stdout.write(rows_output(format_, rows, **kw))


def _valid_repository(name: str) -> bool:
    from imgctl.errors import InvalidReference
    from imgctl.reference import parse_repository

    try:
        parse_repository(name)
    except InvalidReference:
        return False
    return True


def _valid_pages(pages, valid, what: str):
    """Each page's items whose name the reference grammar accepts, as the pages come (a stream
    stays a stream); the others are never printed as if they were names: at the end, one line
    on stderr says how many were skipped."""
    skipped = 0
    for page in pages:
        kept = [x for x in page if valid(x)]
        skipped += len(page) - len(kept)
        yield kept
    if skipped:
        print(f"WARNING: skipped {skipped} {what} from the registry: not valid names", file=sys.stderr)
