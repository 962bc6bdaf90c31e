"""What a failed answer means: ``check(response)`` raises the one typed error for it.

Also the private failure kinds the engine decides by (unreachable, skipped, stalled) and
``with_context``, which adds context to an error by wrapping it in a new one of its kind.
"""

from __future__ import annotations

from typing import NoReturn

import httpx

from imgctl import jsonlimit
from imgctl.errors import (
    AccessDenied,
    ImgctlError,
    ManifestUnknown,
    RegistryError,
    TransportError,
    Unauthorized,
    UnsupportedManifest,
)
from imgctl.registry.bodies import MAX_ERROR_SIZE, read_capped
from imgctl.registry.endpoints import redact
from imgctl.registry.tokens import parse_challenge


class _Unreachable(TransportError):
    """No connection could be made (refused, timeout, TLS): the endpoint is skipped for the rest of the run."""


class _Skipped(_Unreachable):
    """An endpoint found unreachable earlier in this run (not logged again)."""


class _Stalled(TransportError):
    """A blob stream slower than MIN_BLOB_RATE: a stall (backoff, shown), never progress to resume at once."""


def transient(error: BaseException) -> bool:
    """A failure worth retrying: a broken or stalled stream (not an answer, not a refusal)."""
    return isinstance(error, TransportError) and not isinstance(error, _Unreachable)


def with_context(error: ImgctlError, context: str) -> ImgctlError:
    """A new error of ``error``'s kind (status and code kept), its message followed by ``context``,
    caused by ``error``: raise it ``from error``."""
    message = f"{error.message} ({context})"
    if isinstance(error, RegistryError):
        return type(error)(message, status=error.status, code=error.code)
    return type(error)(message)


# -- checking an answer ---------------------------------------------------------------------------
# What was asked, for the wording of the error: a read of an image's content (``manifest``,
# ``tags``, ``blob``, ``registry``), a listing at one endpoint (search, catalog: ``listing``),
# or a write (push: ``write``).
READ, LISTING, WRITE = "read", "listing", "write"


def check(
    resp: httpx.Response,
    *,
    ok: tuple[int, ...] = (200,),
    op: str = READ,
    what: str = "",
    display: str = "",
    path: str = "",
    url: str = "",
    body: bytes | None = None,
) -> None:
    """Nothing when ``resp``'s status is one of ``ok``; else the typed error its status, error
    code and message mean, worded for ``op`` (see above).  ``body``: the answer's body when it
    was read already (a write), else the error body is read here (capped)."""
    if resp.status_code not in ok:
        _raise(resp, op, what, display, path, url, body)


def _raise(resp: httpx.Response, op: str, what: str, display: str, path: str, url: str, body: bytes | None) -> NoReturn:
    status = resp.status_code
    if body is None:
        try:
            body = read_capped(resp, MAX_ERROR_SIZE, what="error body", truncate=True)
        except RegistryError:
            body = b""
    if op == LISTING:
        code, message = _error_detail(body)
        detail = _detail_text(code, message)
        cls = AccessDenied if status in (401, 403) else RegistryError
        raise cls(f"GET {redact(url)}: HTTP {status}" + (f": {detail}" if detail else ""), status=status, code=code)
    if op == WRITE:
        code, message = _error_detail(body)
        detail = _detail_text(code, message) or f"HTTP {status}"
        if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
            cls = Unauthorized if status == 401 else AccessDenied
            raise cls(f"denied: requested access to the resource is denied ({path}: {detail})", status=status, code=code)
        if code == "NAME_UNKNOWN":
            raise AccessDenied(f"{what}: repository {path} is unknown to the registry: {detail}", status=status, code=code)
        if code in ("MANIFEST_INVALID", "MANIFEST_BLOB_UNKNOWN", "BLOB_UNKNOWN") or status == 415:
            raise UnsupportedManifest(f"{what}: the registry refused it: {detail}")
        raise RegistryError(f"{what}: {_answered(status, detail)}", status=status, code=code)
    # distribution's client reads an OAuth error in the challenge before the body's errors,
    # and docker reports the first error only.
    code, message = _challenge_error(resp) or _error_detail(body)
    detail = _detail_text(code, message) or f"HTTP {status}"
    name = display.split("@")[0]
    familiar_repo = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name  # a port is not a tag
    if code == "NAME_UNKNOWN" and what in ("manifest", "tags"):
        raise AccessDenied(f"repository {familiar_repo} not found: {detail}", status=status, code=code)
    if status in (401, 403) or code in ("UNAUTHORIZED", "DENIED"):
        cls = Unauthorized if status == 401 and code != "DENIED" else AccessDenied
        if what in ("manifest", "tags"):
            raise cls(
                f"pull access denied for {familiar_repo}, repository does not exist or may require "
                f"'docker login': {detail}",
                status=status,
                code=code,
            )
        raise cls(f"access to {what} {display} denied: {detail}", status=status, code=code)
    if status == 404 and what == "manifest":
        raise ManifestUnknown(f"manifest for {display} not found: {detail}", status=status, code=code)
    if status == 404:
        raise RegistryError(f"{what} {display} not found: {detail}", status=status, code=code)
    if code == "UNSUPPORTED" or status == 415:
        raise UnsupportedManifest(f"{what} {display}: {detail}")
    if status == 429 and code:  # docker prints the registry's error as it is (Hub's pull rate limit)
        raise RegistryError(detail, status=status, code=code)
    raise RegistryError(f"{what} {display}: {_answered(status, detail)}", status=status, code=code)


def _answered(status: int, detail: str) -> str:
    return f"registry answered HTTP {status}" + ("" if detail == f"HTTP {status}" else f": {detail}")


# distribution's messages for its error codes, used when an error carries none (errcode's
# Errors.UnmarshalJSON does the same).
_CODE_MESSAGES = {
    "BLOB_UNKNOWN": "blob unknown to registry",
    "DENIED": "requested access to the resource is denied",
    "MANIFEST_UNKNOWN": "manifest unknown",
    "NAME_UNKNOWN": "repository name not known to registry",
    "TOOMANYREQUESTS": "too many requests",
    "UNAUTHORIZED": "authentication required",
}


def _detail_text(code: str | None, message: str | None) -> str:
    """An error as docker prints it: errcode's ``code: message`` (``manifest unknown: manifest unknown``)."""
    text = (code or "").lower().replace("_", " ")
    message = message or _CODE_MESSAGES.get(code or "")
    if message:
        return f"{text}: {message}" if text else message
    return text


def _challenge_error(resp: httpx.Response) -> tuple[str, str] | None:
    """A Bearer challenge's OAuth error as (code, message), as distribution's client maps it:
    ``insufficient_scope`` is DENIED, ``invalid_token`` UNAUTHORIZED; its error_description wins."""
    if not 400 <= resp.status_code < 500:
        return None
    scheme, params = parse_challenge(resp.headers.get("www-authenticate", ""))
    code = {"insufficient_scope": "DENIED", "invalid_token": "UNAUTHORIZED"}.get(params.get("error", ""))
    if scheme != "bearer" or code is None:
        return None
    description = " ".join((params.get("error_description") or "").split())[:300]
    return code, description or _CODE_MESSAGES[code]


def _error_detail(body: bytes) -> tuple[str | None, str | None]:
    try:
        doc = jsonlimit.loads(body)  # an error body nested too deep has no detail
        err = doc["errors"][0]
        code = err.get("code") if isinstance(err.get("code"), str) else None
        msg = err.get("message") if isinstance(err.get("message"), str) else None
        if msg:
            msg = " ".join(msg.split())[:300]
        return code, msg
    except (ValueError, KeyError, IndexError, TypeError, AttributeError):
        return None, None
