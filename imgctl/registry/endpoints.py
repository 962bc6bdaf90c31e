"""Endpoints (a mirror, the registry, a layer's own URL, a token server) and the URL checks
every URL from an answer (Location, Link, a token realm) passes before it is used."""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from imgctl.errors import RegistryError

MAX_URL_LENGTH = 8192


def api_host(domain: str) -> str:
    """The host that serves the registry API for a reference's domain."""
    return "registry-1.docker.io" if domain == "docker.io" else domain


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One place a request goes to: a mirror, the registry itself, a layer's own URL, or a token server."""

    url: str  # scheme://host[:port][/prefix] (a foreign layer: the whole blob URL)
    host: str  # host[:port]: what credentials, tokens and TLS settings belong to
    mirror: bool = False
    foreign: bool = False  # a layer's ``urls`` entry: never sent credentials
    token: bool = False  # a registry's token server: asked with its own answer, never marked unreachable

    @property
    def label(self) -> str:
        if self.mirror:
            return f"mirror {self.url}"
        if self.foreign:
            return f"layer URL {redact(self.url)}"
        if self.token:
            return f"token server {self.host}"
        return f"registry {self.host}"


_URL_BAD_CHARS = re.compile(r"[\x00-\x20\x7f]")


def checked_url(url: str, what: str) -> str:
    """``url`` when it is an absolute http(s) URL with a host that httpx can send, else RegistryError.

    Whitespace and control characters are refused rather than stripped (``urlsplit`` drops
    some silently), so is a user name or password in the URL, a bad port or IPv6 literal.
    """
    bad = RegistryError(f"{what} is not a valid http(s) URL: {ascii(url[:100])}")
    if len(url) > MAX_URL_LENGTH or _URL_BAD_CHARS.search(url):
        raise bad
    try:
        parts = urlsplit(url)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname) and parts.username is None
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number from 0 to 65535
        if ok:
            httpx.URL(url).host  # noqa: B018 - and httpx's own parser (IDNA, IPv6) accepts it
    except (ValueError, UnicodeError, httpx.InvalidURL):
        ok = False
    if not ok:
        raise bad
    return url


def bad_location(e: Exception) -> bool:
    """httpx builds the request a redirect leads to even when not following it: its error for a
    ``Location`` that is not a URL (a redirect answer, not a transport failure)."""
    return isinstance(e, httpx.InvalidURL) or str(e).startswith("Invalid URL in location header")


def usable_url(url: str) -> bool:
    """A foreign layer's URL worth trying (others are skipped, as docker skips non-http ones)."""
    try:
        return bool(checked_url(url, "URL"))
    except RegistryError:
        return False


def joined_url(base: str, ref: str, what: str) -> str:
    """``ref`` (a Link or Location value) resolved against ``base``, checked like checked_url."""
    try:
        url = ref if _URL_BAD_CHARS.search(ref) else urljoin(base, ref)  # (urljoin drops some silently)
    except ValueError:
        url = ref
    return checked_url(url, what)


def redact(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"
