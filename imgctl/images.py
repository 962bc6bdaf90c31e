"""Listing images: the rows of ``imgctl images``, filtered and sorted.  Never prints.

Imports only the store side of imgctl (no HTTP, no progress library) so that
listing stays fast.
"""

from __future__ import annotations

import json
import re
import time
from functools import lru_cache
from typing import NamedTuple

from imgctl.errors import UsageError
from imgctl.reference import familiar_repository
from imgctl.store import Store

__all__ = ["ImageRow", "list_images", "parse_filters"]

FILTER_KEYS = ("dangling", "label", "label!", "before", "since", "until", "reference")


class ImageRow(NamedTuple):  # a tuple: 10,000 of them are built per `images` on a big store
    id: str  # sha256:<hex>
    repository: str | None  # familiar: ubuntu, bitnami/redis, 127.0.0.1:5000/x; None for <none>
    tag: str | None
    digest: str | None
    created_ts: float | None
    size: int
    labels: dict

    @property
    def dangling(self) -> bool:
        return self.repository is None


def parse_filters(values: list[str]) -> dict[str, list[str]]:
    """``key=value`` strings into {key: [values]}; unknown keys are a usage error as in docker."""
    out: dict[str, list[str]] = {}
    for v in values:
        key, sep, value = v.partition("=")
        key = key.strip().lower()
        if not sep:
            raise UsageError(f"bad format of filter (expected name=value): {v}")
        if key not in FILTER_KEYS:
            raise UsageError(f"invalid filter '{key}'")
        out.setdefault(key, []).append(value)
    for value in out.get("dangling", []):
        if value.lower() not in ("true", "false", "1", "0"):
            raise UsageError(f"invalid filter 'dangling={value}'")
    for value in out.get("reference", []):
        _match_re(value)  # a malformed pattern is an error, whether or not anything is listed
    now = time.time()
    for value in out.get("until", []):
        until_timestamp(value, now)
    return out


# -- until=: moby's timetypes.GetTimestamp ------------------------------------------------------
_GO_DURATION_UNITS = {"ns": 1, "us": 10**3, "µs": 10**3, "μs": 10**3, "ms": 10**6, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9}
_GO_DURATION_PART = re.compile(r"(\d*)(?:\.(\d*))?([^\d.]*)")


def _go_duration(s: str) -> float | None:
    """Go's ``time.ParseDuration`` in seconds (``1h30m``, ``-1.5h``, ``300ms``, ``.5s``), or
    None when Go refuses the text."""
    neg = s[:1] == "-"
    if s[:1] in "+-" and s:
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        return None
    total = 0.0
    while s:
        m = _GO_DURATION_PART.match(s)
        whole, frac, unit = m.group(1), m.group(2), m.group(3)
        if not whole and not frac:  # "." or a unit with no number
            return None
        if unit not in _GO_DURATION_UNITS:
            return None
        total += (int(whole or 0) + (int(frac) / 10 ** len(frac) if frac else 0.0)) * _GO_DURATION_UNITS[unit]
        s = s[m.end():]
    return -total / 1e9 if neg else total / 1e9


_GO_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{1,2})(?::(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?)?"
    r"(Z|[+-]\d{2}:\d{2})?"
)


def until_timestamp(value: str, now: float) -> float:
    """The Unix time ``until=value`` means, as moby's ``timetypes.GetTimestamp``: a Go
    duration before ``now`` (``10m``, ``1h30m``; ``0`` is a timestamp), a date or RFC 3339
    time (``2024-01-02``, ``2024-01-02T15``, ``2024-01-02T15:04``,
    ``2024-01-02T15:04:05.5``; local time unless it ends with ``Z`` or an offset such as
    ``+02:00``), or a Unix timestamp (``1700000000``, ``1700000000.5``)."""
    from datetime import datetime, timedelta, timezone

    if value != "0":
        d = _go_duration(value)
        if d is not None:
            return now - d
    m = _GO_TIME.fullmatch(value)
    if m is not None:
        y, mo, d_, hh, mi, ss, frac, zone = m.groups()
        if "T" not in value and (mi or ss or frac):
            m = None
    if m is not None:
        if zone is None:
            tz = datetime.fromtimestamp(now).astimezone().tzinfo  # the reference time's zone
        elif zone == "Z":
            tz = timezone.utc
        else:
            sign = -1 if zone[0] == "-" else 1
            tz = timezone(sign * timedelta(hours=int(zone[1:3]), minutes=int(zone[4:6])))
        try:
            t = datetime(int(y), int(mo), int(d_), int(hh or 0), int(mi or 0), int(ss or 0), tzinfo=tz)
        except (ValueError, OverflowError):
            t = None
        if t is not None:
            return t.timestamp() + (int(frac[:9].ljust(9, "0")) / 1e9 if frac else 0.0)
    if "-" not in value and re.fullmatch(r"\d+(?:\.\d+)?", value):
        return float(value)
    raise UsageError(f"invalid filter 'until={value}': failed to parse value as time or duration: {json.dumps(value)}")


BAD_PATTERN = "syntax error in pattern"  # Go's path.ErrBadPattern


@lru_cache(maxsize=256)
def _match_re(pattern: str) -> re.Pattern:
    """Go's ``path.Match`` as a regular expression; a malformed pattern is a ``UsageError``.

    ``*`` and ``?`` do not cross ``/``; ``[...]`` classes (``^`` negates, ranges ``a-z``,
    ``\\`` escapes) match any character, ``/`` included; an empty class, an unclosed ``[``,
    a bare ``-`` or ``]`` where a class character is due and a trailing ``\\`` are errors
    (Go checks the whole pattern, not only up to the first mismatch).
    """
    out, i, n = [], 0, len(pattern)

    def bad() -> UsageError:
        return UsageError(f"invalid filter 'reference={pattern}': {BAD_PATTERN}")

    def class_char(i: int) -> tuple[str, int]:  # Go's getEsc
        if i >= n or pattern[i] in "-]":
            raise bad()
        if pattern[i] == "\\":
            i += 1
            if i >= n:
                raise bad()
        return pattern[i], i + 1

    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            i += 1
            negated = i < n and pattern[i] == "^"
            if negated:
                i += 1
            ranges: list[tuple[str, str]] = []
            while True:
                if i < n and pattern[i] == "]" and ranges:
                    i += 1
                    break
                lo, i = class_char(i)
                hi = lo
                if i < n and pattern[i] == "-":
                    hi, i = class_char(i + 1)
                ranges.append((lo, hi))
            body = "".join(
                re.escape(lo) if lo == hi else f"{re.escape(lo)}-{re.escape(hi)}" for lo, hi in ranges if lo <= hi
            )
            if not body:  # only empty ranges such as z-a: nothing matches (everything, negated)
                out.append("[\\s\\S]" if negated else "(?!)")
            else:
                out.append(("[^" if negated else "[") + body + "]")
        elif c == "\\":
            if i + 1 >= n:
                raise bad()
            out.append(re.escape(pattern[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return re.compile("".join(out) + r"\Z", re.S)


def _reference_match(patterns: list[str], repository: str, tag: str | None) -> bool:
    for pat in patterns:
        rx = _match_re(pat)
        if rx.match(repository) or (tag is not None and rx.match(f"{repository}:{tag}")):
            return True
    return False


def _label_match(filters: dict[str, list[str]], labels: dict) -> bool:
    """moby's label checks: every ``label`` and ``label!`` filter must hold (AND).

    ``label=KEY`` the key exists; ``label=KEY=VALUE`` it has that value; ``label!=KEY``
    the key does not exist; ``label!=KEY=VALUE`` it exists with another value.  A key
    written ``KEY!`` (``label=KEY!=VALUE``) flips the test, as moby does.
    """
    for name in ("label", "label!"):
        for f in filters.get(name, ()):
            key, sep, value = f.partition("=")
            negate = name == "label!"
            if key.endswith("!"):
                key, negate = key[:-1], not negate
            exists = key in labels
            if not sep:
                if exists == negate:
                    return False
            elif not exists or (labels[key] == value) == negate:
                return False
    return True


def list_images(
    store: Store,
    *,
    name: str | None = None,
    all_images: bool = False,
    filters: dict[str, list[str]] | None = None,
) -> list[ImageRow]:
    """Rows of ``imgctl images``, newest first.

    Dangling (untagged) images are listed without ``all_images``, as docker's classic store
    lists them: it hides only *intermediate* images (untagged parents of other images, made
    by local builds).  The store has no parent chains (it never builds), so it has no
    intermediate images and ``all_images`` changes nothing; it is accepted for docker's
    sake.
    """
    filters = dict(filters or {})
    patterns = list(filters.get("reference", []))
    if name:
        patterns.append(name)
    for pattern in patterns:
        _match_re(pattern)  # malformed: an error even when nothing would be compared with it
    dangling = None
    if filters.get("dangling"):
        dangling = filters["dangling"][-1].lower() in ("true", "1")
    now = time.time()
    before = min(
        [_created(store, v) for v in filters.get("before", [])] + [until_timestamp(v, now) for v in filters.get("until", [])],
        default=None,
    )
    since = max((_created(store, v) for v in filters.get("since", [])), default=None)

    raw = store.index.list_rows()
    tagged_repos: dict[str, set[str]] = {}
    for image_id, _, _, _, repository, _, _, kind in raw:
        if kind == "t":
            tagged_repos.setdefault(image_id, set()).add(repository)
    digest_of: dict[tuple[str, str], str] = {}
    for image_id, _, _, _, repository, _, digest, kind in raw:
        if kind == "d" and digest:
            digest_of.setdefault((image_id, repository), digest)

    rows: list[ImageRow] = []
    label_cache: dict[str, dict] = {}
    for image_id, created_ts, size, labels_json, repository, tag, digest, kind in raw:
        if kind == "d" and repository in tagged_repos.get(image_id, ()):
            continue  # the repository already has a row through a tag
        if kind == "t" and not digest:
            digest = digest_of.get((image_id, repository))
        is_dangling = kind == "n"
        if dangling is True and not is_dangling:
            continue
        if dangling is False and is_dangling:
            continue
        if before is not None and (created_ts is None or created_ts >= before):
            continue
        if since is not None and (created_ts is None or created_ts <= since):
            continue
        fam = familiar_repository(repository) if repository else None
        if patterns:
            if fam is None or not _reference_match(patterns, fam, tag):
                continue
        if "label" in filters or "label!" in filters:
            labels = label_cache.get(image_id)
            if labels is None:
                labels = label_cache[image_id] = json.loads(labels_json or "{}")
            if not _label_match(filters, labels):
                continue
        else:
            labels = {}
        rows.append(ImageRow(image_id, fam, tag, digest, created_ts, size, labels))
    rows.sort(key=lambda r: (-(r.created_ts or 0), r.repository or "\uffff", r.tag or "\uffff", r.id))
    return rows


def _created(store: Store, name: str) -> float:
    from imgctl.localimage import resolve_image_id

    image_id = resolve_image_id(store, name)
    return store.index.created_ts(image_id) or 0.0
