"""Reading an answer's body: capped, never inflated, JSON parsed with a depth limit."""

from __future__ import annotations

import httpx

from imgctl import jsonlimit
from imgctl.errors import RegistryError, TransportError, VerificationError
from imgctl.registry.transport import reason

MAX_ERROR_SIZE = 1024 * 1024


def refuse_encoding(resp: httpx.Response, what: str) -> None:
    """We ask for ``identity``: an encoded body anyway is refused, never inflated."""
    encoding = resp.headers.get("content-encoding", "").strip().lower()
    if encoding not in ("", "identity"):
        raise VerificationError(f"{what}: the server sent a {encoding}-encoded body although none was accepted")


def read_capped(resp: httpx.Response, limit: int, *, what: str, truncate: bool = False) -> bytes:
    """Read at most ``limit`` bytes; a longer body is an error (or cut, for error bodies)."""
    if truncate and resp.headers.get("content-encoding", "").strip().lower() not in ("", "identity"):
        return b""  # an error body we did not ask to have compressed: not worth inflating
    refuse_encoding(resp, what)
    declared = resp.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit and not truncate:
        raise VerificationError(f"{what} is too large ({declared} bytes, limit {limit})")
    buf = bytearray()
    try:
        for chunk in resp.iter_bytes():
            buf += chunk
            if len(buf) > limit:
                if truncate:
                    return bytes(buf[:limit])
                raise VerificationError(f"{what} is too large (more than {limit} bytes)")
    except httpx.HTTPError as e:
        raise TransportError(f"reading {what}: {reason(e)}") from e
    return bytes(buf)



def json_answer(body: bytes, what: str) -> object:
    """A registry answer's JSON; RegistryError naming ``what`` when it is not JSON or nests too deep."""
    try:
        return jsonlimit.loads(body)
    except jsonlimit.TooDeep as e:
        raise RegistryError(f"{what} is {e}") from None
    except ValueError:
        raise RegistryError(f"{what} is not valid JSON") from None
