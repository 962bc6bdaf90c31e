"""Listings of a registry: a repository's tags (``/v2/<name>/tags/list``) and the catalog."""

from __future__ import annotations

from collections.abc import Iterator

from imgctl.errors import RegistryError
from imgctl.registry.check import LISTING, check
from imgctl.registry.endpoints import Endpoint, redact

MAX_TAGS = 100_000  # tags list_tags() collects (``iter_tags`` streams them instead)


class Tags:
    """Part of RegistryClient: tag lists and catalog pages (an Engine's ``first`` and ``pages``)."""

    def list_tags(self, domain: str, path: str, *, display: str) -> list[str]:
        """Every tag of a repository (at most MAX_TAGS), from the first endpoint that answers."""
        tags: list[str] = []
        for page in self.iter_tags(domain, path, display=display):
            tags.extend(page)
            if len(tags) > MAX_TAGS:
                raise RegistryError(f"{display} has more than {MAX_TAGS} tags; stopped")
        return tags

    def iter_tags(self, domain: str, path: str, *, display: str) -> Iterator[list[str]]:
        """The tags of a repository page by page, as they arrive (memory: one page).

        The first endpoint (mirrors, then the registry) that answers the first page serves the
        rest: what was already given out cannot be taken back, so a later failure is final.
        """
        first, rest = self.first(domain, f"tags of {path}", lambda ep, base: self._tags_from(ep, base, path, display))
        yield first
        yield from rest

    def _tags_from(self, ep: Endpoint, base: str, path: str, display: str) -> tuple[list[str], Iterator[list[str]]]:
        """(the first page, an iterator of the pages after it) of ``ep``'s tag list."""
        docs = self.pages(
            ep, f"{base}/v2/{path}/tags/list?n=1000", f"repository:{path}:pull", "tag list", retry=True,
            failed=lambda resp, url: check(resp, ok=(), what="tags", display=display, path=path),
            body_what=lambda url: f"tag list of {display}",
            json_what=lambda url: f"the tag list of {display} from {ep.label}",
        )
        pages = (_tag_page(doc, display) for doc in docs)
        return next(pages), pages

    def catalog_pages(self, ep: Endpoint, *, page_size: int = 100) -> Iterator[list[str]]:
        """Pages of repository names of ``GET /v2/_catalog`` (scope ``registry:catalog:*``), as they arrive."""
        url = f"{self.resolve(ep)}/v2/_catalog?n={page_size}"
        for doc in self.listing(ep, url, "registry:catalog:*", "catalog"):
            page = doc.get("repositories") if isinstance(doc, dict) else None
            if not isinstance(page, list):
                raise RegistryError(f"GET {redact(url)}: not a catalog answer")
            yield [r for r in page if isinstance(r, str)]
            if not page:
                return

    def listing(self, ep: Endpoint, url: str, scope: str, what: str) -> Iterator[object]:
        """The JSON pages of a listing at one endpoint (search, catalog): not retried, the caller
        falls back to the next endpoint instead of waiting."""
        return self.pages(
            ep, url, scope, what, retry=False,
            failed=lambda resp, url: check(resp, ok=(), op=LISTING, url=url),
            body_what=lambda url: f"{what} from {redact(url)}",
            json_what=lambda url: f"GET {redact(url)}: the answer",
        )


def _tag_page(doc: object, display: str) -> list[str]:
    page = doc.get("tags") if isinstance(doc, dict) else None
    if page is not None and not isinstance(page, list):
        raise RegistryError(f"registry answered an invalid tag list for {display}")
    return [t for t in page or () if isinstance(t, str)]
