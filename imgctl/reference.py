"""Image references: ``NAME[:TAG][@DIGEST]``, parsed the way docker does.

The grammar and the Docker Hub normalisation follow distribution's
``reference`` package (``ParseNormalizedNamed``), and the error messages are
the ones docker prints::

    reference     := name [ ":" tag ] [ "@" digest ]
    name          := [domain "/"] path
    domain        := host [":" port]
    host          := domain-name | "[" IPv6 "]"
    domain-name   := component ("." component)*   component: [a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?
    path          := path-component ("/" path-component)*
    path-component:= [a-z0-9]+ ((?:[._]|__|-+) [a-z0-9]+)*
    tag           := [A-Za-z0-9_][A-Za-z0-9_.-]{0,127}
    digest        := algorithm ":" hex    (only sha256/64 and sha512/128 lowercase hex accepted)

The first ``/``-separated component is a domain when it contains ``.`` or
``:``, is ``localhost``, or has an uppercase letter; otherwise the image lives
on Docker Hub (``docker.io``) and a one-component name gets ``library/``.
``index.docker.io`` is normalised to ``docker.io``.  Domains keep the case they
were written in.  The 255-character limit applies to the path (after
normalisation), not to the domain, as in distribution/reference >= v0.6.0.

Note that ``parse("sha256:<64 hex>")`` is, as in docker, the Hub repository
``library/sha256`` with a 64-hex tag: callers that accept image IDs must ask
:func:`looks_like_image_id` first.

Pure and stdlib-only; every parse error is an :class:`InvalidReference`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

from imgctl.errors import InvalidReference

__all__ = [
    "DEFAULT_DOMAIN",
    "LEGACY_DEFAULT_DOMAIN",
    "OFFICIAL_REPO_PREFIX",
    "DEFAULT_TAG",
    "REPOSITORY_NAME_MAX",
    "DIGEST_RE",
    "Reference",
    "parse",
    "parse_repository",
    "is_valid_tag",
    "validate_digest",
    "is_valid_digest",
    "looks_like_image_id",
    "familiar_repository",
    "familiar_name",
]

DEFAULT_DOMAIN = "docker.io"
LEGACY_DEFAULT_DOMAIN = "index.docker.io"
OFFICIAL_REPO_PREFIX = "library/"
DEFAULT_TAG = "latest"
LOCALHOST = "localhost"
REPOSITORY_NAME_MAX = 255

# docker's messages (distribution/reference and opencontainers/go-digest).
MSG_INVALID_FORMAT = "invalid reference format"
MSG_NAME_UPPERCASE = "repository name must be lowercase"
MSG_NAME_TOO_LONG = f"repository name must not be more than {REPOSITORY_NAME_MAX} characters"
MSG_TAG_INVALID = "invalid tag format"
MSG_DIGEST_FORMAT = "invalid checksum digest format"
MSG_DIGEST_LENGTH = "invalid checksum digest length"
MSG_DIGEST_UNSUPPORTED = "unsupported digest algorithm"

# --------------------------------------------------------------------------
# Grammar.  Every class is spelled out in ASCII (and re.ASCII is set) so that
# Python's Unicode-aware \w / \d never widen what Go's regexp accepts.

_ALNUM = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|[-]+)"
_PATH_COMPONENT = _ALNUM + r"(?:" + _SEPARATOR + _ALNUM + r")*"
_REMOTE_NAME = _PATH_COMPONENT + r"(?:/" + _PATH_COMPONENT + r")*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN_NAME = _DOMAIN_COMPONENT + r"(?:\." + _DOMAIN_COMPONENT + r")*"
_IPV6 = r"\[(?:[a-fA-F0-9:]+)\]"
_HOST = r"(?:" + _DOMAIN_NAME + r"|" + _IPV6 + r")"
_DOMAIN_AND_PORT = _HOST + r"(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
# distribution's (loose) digest syntax; the strict check comes afterwards.
_DIGEST_LOOSE = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_NAME = r"(?:" + _DOMAIN_AND_PORT + r"/)?" + _REMOTE_NAME

_REFERENCE_RE = re.compile(
    r"(" + _NAME + r")(?::(" + _TAG + r"))?(?:@(" + _DIGEST_LOOSE + r"))?", re.ASCII
)
_ANCHORED_NAME_RE = re.compile(r"(?:(" + _DOMAIN_AND_PORT + r")/)?(" + _REMOTE_NAME + r")", re.ASCII)
_DOMAIN_RE = re.compile(_DOMAIN_AND_PORT, re.ASCII)
_REMOTE_NAME_RE = re.compile(_REMOTE_NAME, re.ASCII)
_TAG_RE = re.compile(_TAG, re.ASCII)
_IDENTIFIER_RE = re.compile(r"[a-f0-9]{64}", re.ASCII)
# go-digest's DigestRegexp, used only to choose between two of its messages.
_GO_DIGEST_RE = re.compile(r"[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+", re.ASCII)

# Algorithms we accept, with the length of their lowercase hex encoding.
_DIGEST_ALGORITHMS = {"sha256": 64, "sha512": 128}

#: The strict digest form (anchored with \A...\Z, so .match() and .search()
#: are as safe as .fullmatch(): no trailing newline slips through).
DIGEST_RE = re.compile(r"\A(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})\Z", re.ASCII)


# --------------------------------------------------------------------------
# Digests, tags, IDs


def _digest_problem(s: object) -> str | None:
    """go-digest's verdict on ``s`` (None when valid), restricted to sha256/sha512."""
    if not isinstance(s, str):
        return MSG_DIGEST_FORMAT
    alg, sep, encoded = s.partition(":")
    if not sep or not encoded:
        return MSG_DIGEST_FORMAT
    size = _DIGEST_ALGORITHMS.get(alg)
    if size is None:
        if not _GO_DIGEST_RE.fullmatch(s):
            return MSG_DIGEST_FORMAT
        return MSG_DIGEST_UNSUPPORTED
    if len(encoded) != size:
        return MSG_DIGEST_LENGTH
    if DIGEST_RE.match(s) is None:
        return MSG_DIGEST_FORMAT
    return None


def _short_repr(s: object) -> str:
    text = repr(s)
    return text if len(text) <= 200 else text[:197] + "..."


def validate_digest(s: str) -> str:
    """Return ``s`` if it is ``sha256:`` + 64 or ``sha512:`` + 128 lowercase hex.

    Anything else (other algorithms, uppercase hex, wrong length, path
    separators, surrounding whitespace, non-strings) raises
    :class:`InvalidReference`.  Safe to call before a digest becomes a file name.
    """
    problem = _digest_problem(s)
    if problem is not None:
        raise InvalidReference(f"invalid digest {_short_repr(s)}: {problem}")
    return s


def is_valid_digest(s: object) -> bool:
    """True if :func:`validate_digest` would accept ``s``."""
    return isinstance(s, str) and DIGEST_RE.match(s) is not None


def is_valid_tag(s: object) -> bool:
    """True if ``s`` is a valid tag: ``[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}``."""
    return isinstance(s, str) and _TAG_RE.fullmatch(s) is not None


def looks_like_image_id(s: object) -> bool:
    """True for a full image ID: 64 lowercase hex, with or without ``sha256:``."""
    if not isinstance(s, str):
        return False
    if s.startswith("sha256:"):
        s = s[len("sha256:"):]
    return _IDENTIFIER_RE.fullmatch(s) is not None


# --------------------------------------------------------------------------
# The reference value


@lru_cache(maxsize=4096)  # a big store lists many tags of few repositories
def familiar_repository(repository: str) -> str:
    """A fully qualified repository as docker shows it: docker.io/library/ubuntu -> ubuntu;
    docker.io/bitnami/redis -> bitnami/redis; host:5000/x stays as it is."""
    prefix = DEFAULT_DOMAIN + "/"
    if repository.startswith(prefix):
        path = repository[len(prefix):]
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            return path[len(OFFICIAL_REPO_PREFIX):]
        return path
    return repository


def familiar_name(repository: str, tag: str | None = None, digest: str | None = None) -> str:
    """``ubuntu:18.04`` for a tag, else ``ubuntu@sha256:...`` for a digest, else the familiar repository."""
    name = familiar_repository(repository)
    if tag:
        return f"{name}:{tag}"
    if digest:
        return f"{name}@{digest}"
    return name


@dataclass(frozen=True, slots=True)
class Reference:
    """A normalised image reference; always fully qualified (has a domain).

    Constructing one directly validates every field (``InvalidReference``), so
    a ``Reference`` never carries a digest that is unsafe as a file name.
    """

    domain: str
    path: str
    tag: str | None = None
    digest: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.domain, str) or _DOMAIN_RE.fullmatch(self.domain) is None:
            raise InvalidReference(MSG_INVALID_FORMAT)
        if not isinstance(self.path, str) or _REMOTE_NAME_RE.fullmatch(self.path) is None:
            if isinstance(self.path, str) and _REMOTE_NAME_RE.fullmatch(self.path.lower()):
                raise InvalidReference(MSG_NAME_UPPERCASE)
            raise InvalidReference(MSG_INVALID_FORMAT)
        if len(self.path) > REPOSITORY_NAME_MAX:
            raise InvalidReference(MSG_NAME_TOO_LONG)
        if self.tag is not None and not is_valid_tag(self.tag):
            raise InvalidReference(MSG_TAG_INVALID)
        if self.digest is not None:
            validate_digest(self.digest)

    @property
    def repository(self) -> str:
        """Fully qualified repository: ``docker.io/library/ubuntu``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """Repository as docker shows it: ``ubuntu``, ``bitnami/redis``, ``host:5000/x``."""
        return familiar_repository(self.repository)

    def _suffix(self) -> str:
        out = ""
        if self.tag is not None:
            out += ":" + self.tag
        if self.digest is not None:
            out += "@" + self.digest
        return out

    def __str__(self) -> str:
        return self.repository + self._suffix()

    def familiar(self) -> str:
        """``str(self)`` with the familiar repository: ``ubuntu:18.04``."""
        return self.familiar_repository + self._suffix()

    def with_tag(self, tag: str) -> Reference:
        """A copy with ``tag`` (validated); domain, path and digest are kept."""
        if not is_valid_tag(tag):
            raise InvalidReference(MSG_TAG_INVALID)
        return replace(self, tag=tag)

    def with_digest(self, digest: str) -> Reference:
        """A copy with ``digest`` (strictly validated); domain, path and tag are kept."""
        validate_digest(digest)
        return replace(self, digest=digest)


# --------------------------------------------------------------------------
# Parsing


def _split_docker_domain(name: str) -> tuple[str, str]:
    """distribution's splitDockerDomain: (domain, remainder incl. tag/digest)."""
    maybe_domain, sep, maybe_remote = name.partition("/")
    if not sep:
        # One component ("ubuntu", "ubuntu:18.04", even "localhost:5000"): Hub.
        return DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX + name
    if maybe_domain == LOCALHOST:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain == LEGACY_DEFAULT_DOMAIN:
        domain, remote = DEFAULT_DOMAIN, maybe_remote
    elif "." in maybe_domain or ":" in maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    elif maybe_domain.lower() != maybe_domain:
        domain, remote = maybe_domain, maybe_remote
    else:
        domain, remote = DEFAULT_DOMAIN, name
    if domain == DEFAULT_DOMAIN and "/" not in remote:
        remote = OFFICIAL_REPO_PREFIX + remote
    return domain, remote


def parse(s: str, *, default_tag: bool = True) -> Reference:
    """Parse ``NAME[:TAG][@DIGEST]`` with Docker Hub normalisation.

    ``ubuntu`` -> ``docker.io/library/ubuntu:latest`` (the ``latest`` only when
    ``default_tag`` and there is neither tag nor digest).  ``name:tag@digest``
    keeps both.  Raises :class:`InvalidReference` with docker's messages.
    """
    if not isinstance(s, str):
        raise InvalidReference(MSG_INVALID_FORMAT)
    if _IDENTIFIER_RE.fullmatch(s):
        raise InvalidReference(
            f"invalid repository name ({s}), cannot specify 64-byte hexadecimal strings"
        )
    domain, remainder = _split_docker_domain(s)
    # Like docker: the "remote" is everything up to the first ':' (so for a
    # digest-only reference it includes "@algorithm").
    remote = remainder.split(":", 1)[0]
    if remote.lower() != remote:
        raise InvalidReference(f"{MSG_INVALID_FORMAT}: repository name ({remote}) must be lowercase")

    full = domain + "/" + remainder
    match = _REFERENCE_RE.fullmatch(full)
    if match is None:
        lowered = full.lower()
        if lowered != full and _REFERENCE_RE.fullmatch(lowered):
            raise InvalidReference(MSG_NAME_UPPERCASE)
        raise InvalidReference(MSG_INVALID_FORMAT)
    name, tag, digest = match.group(1), match.group(2), match.group(3)

    name_match = _ANCHORED_NAME_RE.fullmatch(name)
    if name_match is None or name_match.group(1) is None:
        # distribution would return a reference with an empty domain here
        # (e.g. "foo_bar.com/x"); imgctl needs a registry, so refuse it.
        raise InvalidReference(MSG_INVALID_FORMAT)
    ref_domain, path = name_match.group(1), name_match.group(2)
    if len(path) > REPOSITORY_NAME_MAX:
        raise InvalidReference(MSG_NAME_TOO_LONG)
    if digest is not None:
        problem = _digest_problem(digest)
        if problem is not None:
            raise InvalidReference(problem)
    if tag is None and digest is None and default_tag:
        tag = DEFAULT_TAG
    return Reference(ref_domain, path, tag, digest)


def parse_repository(s: str) -> Reference:
    """Parse a repository name that must carry neither tag nor digest.

    ``ubuntu`` -> ``Reference("docker.io", "library/ubuntu")`` with ``tag=None``.
    ``ubuntu:18.04`` or ``ubuntu@sha256:...`` raise ``invalid reference format``
    (what distribution's ``WithName`` says for a name with a tag).
    """
    ref = parse(s, default_tag=False)
    if ref.tag is not None or ref.digest is not None:
        raise InvalidReference(MSG_INVALID_FORMAT)
    return ref
