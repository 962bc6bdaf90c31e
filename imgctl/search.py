"""Search Docker Hub or any registry, and list a repository's tags.  Returns data, never prints.

``search("httpd")`` asks the index server (config ``index-server``) at
``/v1/search`` the way docker's daemon does, keeping Hub's order.  When it fails,
the Docker Hub mirrors are tried in order: their ``/v1/search``, then their
``/v2/_catalog``.  ``search("HOST[:PORT]/TERM")`` asks that registry the same way
(its ``/v1/search`` if it has one, else its catalog), then its mirrors.  A catalog
is matched by substring, exact match first, names fully qualified with the
registry (canonical, whichever endpoint answered).  Which endpoints are tried, in
which order, is ``imgctl.registry.search``'s business; this module says what a search
finds there.

Filters (``stars=N``, ``is-official=BOOL``, docker's deprecated ``is-automated``)
are applied before ``limit`` is counted: further pages are asked for until
``limit`` results pass or the answer ends.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from imgctl.errors import UsageError
from imgctl.reference import DEFAULT_DOMAIN, LEGACY_DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX, parse

__all__ = [
    "SearchResult",
    "SearchFilters",
    "parse_filters",
    "split_search_term",
    "search",
    "list_tags",
    "tag_pages",
    "TagList",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
]

DEFAULT_LIMIT = 25
MAX_LIMIT = 100
V1_PAGE_MAX = 100  # Hub's largest page; asked for when filters may drop results
V1_MAX_PAGES = 20  # at most this many /v1/search pages per endpoint
CATALOG_PAGE_SIZE = 100  # distribution's default; read at call time (tests lower it)
CATALOG_MAX_ENTRIES = 100_000  # catalog names looked at, at most

_FILTER_KEYS = ("is-automated", "is-official", "stars")


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One repository found.  ``star_count`` is None when the source has no stars (a catalog)."""

    name: str
    description: str = ""
    star_count: int | None = None
    is_official: bool = False
    is_automated: bool = False


@dataclass(frozen=True, slots=True)
class SearchFilters:
    stars: int | None = None
    is_official: bool | None = None
    is_automated: bool | None = None

    @property
    def active(self) -> bool:
        return self != SearchFilters()

    def match(self, r: SearchResult) -> bool:
        if self.is_automated:  # deprecated in docker: "true" finds nothing
            return False
        if self.is_official is not None and r.is_official != self.is_official:
            return False
        if self.stars is not None and (r.star_count or 0) < self.stars:
            return False
        return True


def parse_filters(values: list[str]) -> SearchFilters:
    """docker's ``--filter`` values for search; bad ones are a usage error with docker's wording."""
    seen: dict[str, list[str]] = {}
    for v in values:
        if v == "":
            continue
        key, sep, value = v.partition("=")
        if not sep:
            raise UsageError("bad format of filter (expected name=value)")
        key, value = key.strip().lower(), value.strip()
        if key not in _FILTER_KEYS:
            raise UsageError(f"invalid filter '{key}'")
        seen.setdefault(key, []).append(value)
    kw: dict = {}
    for key in ("is-official", "is-automated"):
        if key in seen:
            vals = set(seen[key])
            truthy, falsy = bool(vals & {"1", "true"}), bool(vals & {"0", "false"})
            if truthy == falsy or vals - {"1", "true", "0", "false"}:
                raise UsageError(f"invalid filter '{key}={','.join(seen[key])}'")
            kw[key.replace("-", "_")] = truthy
    for value in seen.get("stars", []):
        try:
            n = int(value)
        except ValueError:
            raise UsageError(f"invalid filter 'stars={value}'") from None
        kw["stars"] = max(n, kw.get("stars", n))
    return SearchFilters(**kw)


def split_search_term(term: str) -> tuple[str, str]:
    """docker's splitReposSearchTerm: ``(domain, remote term)``; Hub is ``docker.io``."""
    first, sep, rest = term.partition("/")
    if not sep or ("." not in first and ":" not in first and first != "localhost"):
        return DEFAULT_DOMAIN, term
    if first == LEGACY_DEFAULT_DOMAIN:
        return DEFAULT_DOMAIN, rest
    return first, rest


# -- search -------------------------------------------------------------------------------------
def search(
    term: str,
    *,
    client,
    config,
    limit: int = DEFAULT_LIMIT,
    filters: SearchFilters = SearchFilters(),
    log: Callable[[str], None] | None = None,
    on_fallback: Callable[[str], None] | None = None,
) -> list[SearchResult]:
    """Up to ``limit`` results for ``term`` (``TERM`` on Docker Hub, or ``HOST[:PORT]/TERM``).

    ``on_fallback(message)`` is called once when the answer comes from a mirror because the
    index server (or the registry) could not be searched; the message says which and why.

    Raises ``UsageError`` for a bad limit or term, else ``RegistryError`` naming every
    endpoint tried and why each failed.
    """
    log = log or (lambda msg: None)
    if not 1 <= limit <= MAX_LIMIT:
        raise UsageError(f"limit {limit} is outside the range of [1, {MAX_LIMIT}]")
    if "://" in term:
        raise UsageError(f"invalid repository name: repository name ({term}) should not have a scheme")
    domain, remote = split_search_term(term)
    hub = domain == DEFAULT_DOMAIN
    if hub:
        remote = remote.removeprefix(OFFICIAL_REPO_PREFIX)
        name_of, prefix = _hub_name, None
    else:
        prefix = f"{domain}/"
        name_of = lambda path: prefix + path  # noqa: E731
    found = client.search(
        domain, remote, index_server=config.index_server,
        v1=lambda ep: _search_v1(client, ep, remote, limit, filters, prefix),
        catalog=lambda ep: _search_catalog(client, ep, remote, limit, filters, name_of, hub),
    )
    log(f"search: {found.endpoint.url} answered {found.api}")
    if found.fallback is not None and on_fallback is not None:
        source = "the index server" if hub else f"registry {domain}"
        what = "the catalog of mirror" if found.api == "/v2/_catalog" else "mirror"
        on_fallback(f"{source} could not be searched ({found.fallback}); results from {what} {found.endpoint.url}")
    return found.results


def _hub_name(path: str) -> str:
    """Docker Hub names as Hub shows them: ``library/httpd`` -> ``httpd``."""
    rest = path.removeprefix(OFFICIAL_REPO_PREFIX)
    return rest if "/" not in rest else path


def _search_v1(client, ep, term: str, limit: int, filters: SearchFilters, prefix: str | None) -> list[SearchResult]:
    """Hub-style results, ``prefix`` (``host/``) put before names of another registry."""
    # docker asks for exactly ``limit``; with filters, full pages leave fewer pages to fetch.
    n = V1_PAGE_MAX if filters.active else limit
    out: list[SearchResult] = []
    seen: set[str] = set()
    for page in range(1, V1_MAX_PAGES + 1):
        doc = client.search_v1(ep, term, n=n, page=page)
        items = [_result(x) for x in doc["results"]]
        for r in items:
            if r is None or r.name in seen:
                continue
            seen.add(r.name)
            if prefix is not None and not r.name.startswith(prefix):
                r = replace(r, name=prefix + r.name)
            if filters.match(r):
                out.append(r)
        if len(out) >= limit or not items:
            break
        num_pages = doc.get("num_pages")
        if isinstance(num_pages, str) and num_pages.isdigit():
            num_pages = int(num_pages)
        if isinstance(num_pages, int) and not isinstance(num_pages, bool):
            if page >= num_pages:
                break
        elif len(items) < n:
            break
    return out[:limit]


def _result(x: object) -> SearchResult | None:
    """A Hub result object; malformed entries are skipped rather than trusted."""
    if not isinstance(x, dict) or not isinstance(x.get("name"), str) or not x["name"]:
        return None
    stars = x.get("star_count")
    desc = x.get("description")
    return SearchResult(
        name=x["name"],
        description=desc if isinstance(desc, str) else "",
        star_count=stars if isinstance(stars, int) and not isinstance(stars, bool) else 0,
        is_official=x.get("is_official") is True,
        is_automated=x.get("is_automated") is True,
    )


def _search_catalog(client, ep, term, limit, filters, name_of, hub: bool) -> list[SearchResult]:
    """Catalog names containing ``term``, exact matches first, read page by page: only what can
    still be shown is kept, and the reading stops once nothing later can change the answer."""
    term = term.lower()
    exact = {term, OFFICIAL_REPO_PREFIX + term} if hub else {term}
    first: list[SearchResult] = []  # exact matches
    rest: list[SearchResult] = []
    exact_seen: set[str] = set()
    entries = 0
    for page in client.catalog_pages(ep, page_size=CATALOG_PAGE_SIZE):
        for r in page[: CATALOG_MAX_ENTRIES - entries]:
            if term not in r:
                continue
            # On a Docker Hub mirror, ``library/NAME`` is an official image, as on Hub.
            result = SearchResult(name_of(r), is_official=hub and _hub_name(r) != r)
            if r in exact:
                exact_seen.add(r)
            if not filters.match(result):
                continue
            if r in exact:
                first.append(result)
            elif len(rest) < limit:
                rest.append(result)
        entries += len(page)
        if entries >= CATALOG_MAX_ENTRIES or len(first) >= limit or (len(rest) >= limit and exact_seen == exact):
            break
    return (first + rest)[:limit]


# -- tags ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TagList:
    repository: str  # familiar: ``ubuntu``, ``127.0.0.1:5000/team/app``
    tags: list[str]


def list_tags(name: str, *, client, limit: int | None = None) -> TagList:
    """Tags of repository ``name`` in the registry's order: its mirrors in turn, then the registry."""
    repository, pages = tag_pages(name, client=client, limit=limit)
    return TagList(repository, [t for page in pages for t in page])


def tag_pages(name: str, *, client, limit: int | None = None) -> tuple[str, Iterator[list[str]]]:
    """(familiar repository name, its tags page by page as the registry sends them, ``limit`` at most).

    Nothing is asked before the first page is wanted; reading stops once ``limit`` tags came.
    """
    if limit is not None and limit < 1:
        raise UsageError(f"limit {limit} must be at least 1")
    ref = parse(name, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise UsageError(f"{name}: give a repository without a tag or digest, e.g. {ref.familiar_repository}")
    return ref.familiar_repository, _at_most(client.iter_tags(ref.domain, ref.path, display=ref.familiar_repository), limit)


def _at_most(pages: Iterator[list[str]], limit: int | None) -> Iterator[list[str]]:
    left = limit
    for page in pages:
        if left is not None:
            page = page[:left]
            left -= len(page)
        yield page
        if left == 0:
            return
