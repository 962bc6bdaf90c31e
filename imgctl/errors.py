"""The one exception tree of imgctl.

Every error the library raises on purpose is an ``ImgctlError``.  The CLI turns
it into ``Error: <message>`` on stderr and the ``exit_code`` of its class; no
other module decides exit codes.  Nothing here imports anything from imgctl.
"""

from __future__ import annotations

__all__ = [
    "ImgctlError",
    "UsageError",
    "ReferenceError_",
    "InvalidReference",
    "ConfigError",
    "StoreError",
    "ImageNotFound",
    "ConflictError",
    "RegistryError",
    "ManifestUnknown",
    "AccessDenied",
    "Unauthorized",
    "TransportError",
    "VerificationError",
    "UnsupportedManifest",
    "PlatformNotFound",
    "Interrupted",
    "PartialFailure",
    "IndexCorrupt",
    "ReadOnlyStore",
    "StrayEntry",
]


class ImgctlError(Exception):
    """Base of every error imgctl reports to a user."""

    exit_code = 1

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class UsageError(ImgctlError):
    """The command line itself is wrong (exit status 2)."""

    exit_code = 2


class ReferenceError_(ImgctlError):
    """Base for image reference problems (named to avoid shadowing the builtin)."""


class InvalidReference(ReferenceError_):
    """A string is not a valid image reference; message is docker's wording."""


class ConfigError(ImgctlError):
    """The configuration file is unreadable or invalid."""


class StoreError(ImgctlError):
    """The local store cannot do what was asked."""


class ImageNotFound(StoreError):
    """No image in the store matches a name or ID."""


class ConflictError(StoreError):
    """An operation would break another reference (docker's `conflict: ...`)."""


class RegistryError(ImgctlError):
    """A registry answered with an error, or could not be used."""

    def __init__(self, message: str = "", *, status: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ManifestUnknown(RegistryError):
    """The registry does not know this manifest (tag or digest)."""


class AccessDenied(RegistryError):
    """The registry refused access (401 after auth, 403, or repository unknown)."""


class Unauthorized(AccessDenied):
    """The registry asked for credentials we do not have or that were refused."""


class TransportError(RegistryError):
    """The network failed: connection refused, TLS failure, timeout, reset."""


class VerificationError(ImgctlError):
    """Content did not match its digest, size or diff_id.  Never committed."""


class UnsupportedManifest(ImgctlError):
    """A manifest of a kind imgctl refuses (schema 1, ambiguous, unknown)."""


class PlatformNotFound(ImgctlError):
    """An index has no entry for the requested platform."""


class Interrupted(ImgctlError):
    """The user pressed Ctrl-C; the store is left consistent."""

    exit_code = 130


class PartialFailure(ImgctlError):
    """Some of several independent operations failed (e.g. ``rmi a b c``); one line each."""

    def __init__(self, errors: list[ImgctlError]) -> None:
        super().__init__("; ".join(str(e) for e in errors))
        self.errors = errors
        self.exit_code = max((e.exit_code for e in errors), default=1)


class IndexCorrupt(StoreError):
    """The store's index (index.db) is damaged or is not an imgctl index: nothing is removed
    on its word; ``imgctl verify --repair`` rebuilds it from the blobs."""


class ReadOnlyStore(StoreError):
    """The store is on a read-only filesystem or not writable by this user: reads work, writes do not."""


class StrayEntry(StoreError):
    """Something that is not a verified blob sits where a blob should be (a directory, a symlink,
    a file with a name that is not a digest); ``imgctl verify --repair`` moves it aside."""


class PushRefused(ImgctlError):
    """A push that would leave the registry with an incomplete image (an index naming content
    neither the store nor the repository holds); nothing was pushed."""
