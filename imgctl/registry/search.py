"""Search at a registry's endpoints: Docker Hub's ``/v1/search`` at its index server, a
registry's own ``/v1/search`` or ``/v2/_catalog``, and the mirrors when those fail.

What a search finds (filters, limits, names) is ``imgctl.search``'s business: it hands in one
function per API, this module decides where they are tried and in which order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar
from urllib.parse import urlencode, urlsplit

from imgctl.errors import RegistryError, TransportError, VerificationError
from imgctl.reference import DEFAULT_DOMAIN
from imgctl.registry.endpoints import Endpoint, redact

T = TypeVar("T")

V1_SEARCH, CATALOG = "/v1/search", "/v2/_catalog"


@dataclass(frozen=True, slots=True)
class Searched(Generic[T]):
    """What answered a search: the results, the endpoint and the API (V1_SEARCH or CATALOG)."""

    results: T
    endpoint: Endpoint
    api: str
    fallback: str | None = None  # not the first choice: why that could not be searched (its error)


class Search:
    """Part of RegistryClient: search APIs at one endpoint, and the fallback over endpoints."""

    def search_v1(self, ep: Endpoint, term: str, *, n: int, page: int = 1) -> dict:
        """One page of a Docker Hub style answer to ``GET /v1/search?q=TERM&n=N[&page=P]``."""
        query = {"q": term, "n": str(n)} | ({"page": str(page)} if page > 1 else {})
        url = f"{self.resolve(ep)}/v1/search?{urlencode(query)}"
        doc = next(self.listing(ep, url, "registry:catalog:search", "search answer"))
        if not isinstance(doc, dict) or not isinstance(doc.get("results"), list):
            raise RegistryError(f"GET {redact(url)}: not a search answer")
        return doc

    def search(
        self, domain: str, term: str, *, index_server: str,
        v1: Callable[[Endpoint], T], catalog: Callable[[Endpoint], T],
    ) -> Searched[T]:
        """``v1(endpoint)`` at the first choice, then ``v1`` and ``catalog`` at each mirror in turn.

        For Docker Hub (``docker.io``) the first choice is the index server (config
        ``index-server``: Hub's search API, not its registry), which has no catalog; for another
        registry it is the registry itself, whose catalog is tried after its ``/v1/search``.
        An unreachable endpoint has no catalog either.  When all fail, the error names every
        endpoint tried and why (a TransportError when every failure was one).
        """
        *mirrors, registry = self.endpoints(domain)
        hub = domain == DEFAULT_DOMAIN
        if hub:
            # docker spells the index server https://index.docker.io/v1/: accept that spelling too
            index = index_server.rstrip("/").removesuffix("/v1")
            first = Endpoint(index, urlsplit(index).netloc)
        else:
            first = registry
        failures: list[RegistryError | VerificationError] = []

        def answered(ep: Endpoint, results: T, api: str) -> Searched[T]:
            return Searched(results, ep, api, None if ep is first else str(failures[0]))

        for ep in (first, *mirrors):
            try:
                return answered(ep, v1(ep), V1_SEARCH)
            except (RegistryError, VerificationError) as e:
                failures.append(e)
                if (hub and not ep.mirror) or isinstance(e, TransportError):
                    continue  # Hub's index has no catalog; an unreachable host has none either
            try:
                return answered(ep, catalog(ep), CATALOG)
            except (RegistryError, VerificationError) as e:
                failures.append(e)
        cls = TransportError if all(isinstance(e, TransportError) for e in failures) else RegistryError
        where = "Docker Hub" if hub else domain
        raise cls(f"cannot search {where} for {term!r}: " + "; ".join(str(e) for e in failures))
