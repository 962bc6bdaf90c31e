"""Listing images: the rows of ``imgctl images``, filtered and sorted.  Never prints.

Imports only the store side of imgctl (no HTTP, no progress library) so that
listing stays fast.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import NamedTuple

from imgctl.errors import ImageNotFound, InvalidReference, UsageError
from imgctl.reference import DEFAULT_DOMAIN, OFFICIAL_REPO_PREFIX
from imgctl.store import Store

__all__ = ["ImageRow", "list_images", "familiar_repository", "parse_filters", "resolve_image", "resolve_image_id"]

FILTER_KEYS = ("dangling", "label", "before", "since", "reference")


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


@lru_cache(maxsize=4096)  # a big store lists many tags of few repositories
def familiar_repository(repository: str) -> str:
    """docker.io/library/ubuntu -> ubuntu; docker.io/bitnami/redis -> bitnami/redis."""
    prefix = DEFAULT_DOMAIN + "/"
    if repository.startswith(prefix):
        path = repository[len(prefix):]
        if path.startswith(OFFICIAL_REPO_PREFIX) and path.count("/") == 1:
            return path[len(OFFICIAL_REPO_PREFIX):]
        return path
    return repository


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
    return out


@lru_cache(maxsize=256)
def _match_re(pattern: str) -> re.Pattern:
    """Go's path.Match: '*' and '?' do not cross '/'; [...] classes with '^' negation."""
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1 : i + 2] in ("^", "!") else i + 1)
            if j < 0:
                raise UsageError(f"invalid reference filter pattern {pattern!r}")
            body = pattern[i + 1 : j]
            if body[:1] in ("^", "!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = j
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out) + r"\Z")


def _reference_match(patterns: list[str], repository: str, tag: str | None) -> bool:
    for pat in patterns:
        rx = _match_re(pat)
        if rx.match(repository) or (tag is not None and rx.match(f"{repository}:{tag}")):
            return True
    return False


def _label_match(filters: list[str], labels: dict) -> bool:
    for f in filters:  # every label filter must hold (docker ANDs label filters)
        key, sep, value = f.partition("=")
        if key not in labels or (sep and labels[key] != value):
            return False
    return True


def resolve_image(store: Store, name: str) -> tuple[str, bool]:
    """(full image ID, named by ID) for an ID, a unique ID prefix, NAME[:TAG] or NAME@DIGEST.

    As docker: a full ID first, then a name in the index, then an ID prefix.
    """
    from imgctl.reference import looks_like_image_id, parse

    if looks_like_image_id(name):
        image_id = name if name.startswith("sha256:") else f"sha256:{name}"
        if store.image(image_id) is None:
            raise ImageNotFound(f"No such image: {name}")
        return image_id, True
    shown = name
    try:
        ref = parse(name)
    except InvalidReference:
        ref = None
    if ref is not None:
        shown = ref.familiar()
        found = (
            store.digest_target(ref.repository, ref.digest)
            if ref.digest
            else store.tag_target(ref.repository, ref.tag or "latest")
        )
        if found:
            return found, False
    text = name[7:] if name.startswith("sha256:") else name
    if re.fullmatch(r"[0-9a-f]{1,63}", text):
        rows = store.db.execute(
            "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT 2", (f"sha256:{text}", f"sha256:{text}g")
        ).fetchall()
        if len(rows) == 1:
            return rows[0][0], True
        if len(rows) > 1:
            raise UsageError(f"ambiguous image ID prefix {text!r}: it matches several images")
        shown = name
    raise ImageNotFound(f"No such image: {shown}")


def resolve_image_id(store: Store, name: str) -> str:
    return resolve_image(store, name)[0]


def list_images(
    store: Store,
    *,
    name: str | None = None,
    all_images: bool = False,
    filters: dict[str, list[str]] | None = None,
) -> list[ImageRow]:
    """Rows of ``imgctl images``, newest first."""
    filters = dict(filters or {})
    patterns = list(filters.get("reference", []))
    if name:
        patterns.append(name)
    dangling = None
    if filters.get("dangling"):
        dangling = filters["dangling"][-1].lower() in ("true", "1")
    before = min((_created(store, v) for v in filters.get("before", [])), default=None)
    since = max((_created(store, v) for v in filters.get("since", [])), default=None)

    raw = store.list_rows()
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
        if is_dangling and not (all_images or dangling is True):
            continue
        if before is not None and (created_ts is None or created_ts >= before):
            continue
        if since is not None and (created_ts is None or created_ts <= since):
            continue
        fam = familiar_repository(repository) if repository else None
        if patterns:
            if fam is None or not _reference_match(patterns, fam, tag):
                continue
        if "label" in filters:
            labels = label_cache.get(image_id)
            if labels is None:
                labels = label_cache[image_id] = json.loads(labels_json or "{}")
            if not _label_match(filters["label"], labels):
                continue
        else:
            labels = {}
        rows.append(ImageRow(image_id, fam, tag, digest, created_ts, size, labels))
    rows.sort(key=lambda r: (-(r.created_ts or 0), r.repository or "\uffff", r.tag or "\uffff", r.id))
    return rows


def _created(store: Store, name: str) -> float:
    image_id = resolve_image_id(store, name)
    row = store.db.execute("SELECT created_ts FROM images WHERE id = ?", (image_id,)).fetchone()
    return row[0] or 0.0
