"""Where a listing (tags, catalog, search) goes next after each page."""

from __future__ import annotations

import hashlib
import re
from urllib.parse import urlsplit

from imgctl.errors import RegistryError
from imgctl.registry.endpoints import joined_url

MAX_PAGES = 1000  # pages of one listing (tags, catalog) before it is stopped as endless
MAX_LISTING_BYTES = 64 * 1024 * 1024  # bytes of one listing, all pages together
_LINK_RE = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class Pages:
    """Where a listing (tags, catalog) goes next after each page.

    It follows ``Link: <...>; rel="next"`` on the same origin only, and stops with an error
    at a link back to a page already read, after MAX_PAGES pages or MAX_LISTING_BYTES bytes.
    """

    def __init__(self, url: str, label: str, what: str) -> None:
        self.origin, self.label, self.what = urlsplit(url)[:2], label, what
        self.seen = {hashlib.sha256(url.encode()).digest()}  # 32 bytes a page, whatever the URL
        self.pages = self.bytes = 0

    def next(self, url: str, link: str | None, size: int) -> str | None:
        """The next page's URL after ``url`` (``size`` bytes, ``link`` its Link header), or None."""
        self.pages += 1
        self.bytes += size
        m = _LINK_RE.search(link or "")
        if not m:
            return None
        nxt = joined_url(url, m.group(1), f"{self.label}: the {self.what} page link")
        if urlsplit(nxt)[:2] != self.origin:
            raise RegistryError(f"{self.label} sent a {self.what} page link to another host")
        key = hashlib.sha256(nxt.encode()).digest()
        if key in self.seen:
            raise RegistryError(f"{self.label} sent a {self.what} page link back to an earlier page (after {self.pages} pages)")
        if self.pages >= MAX_PAGES or self.bytes >= MAX_LISTING_BYTES:
            raise RegistryError(
                f"{self.label}: the {self.what} goes on for more than {self.pages} pages ({self.bytes} bytes); "
                f"stopped (limits: {MAX_PAGES} pages, {MAX_LISTING_BYTES} bytes)"
            )
        self.seen.add(key)
        return nxt
