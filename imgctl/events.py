"""Progress events of pull and push, and the retries the registry client announces.

Use cases report through a callback taking an ``Event``; the CLI decides how to show it.
Nothing here imports anything else of imgctl.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["Kind", "Event", "Progress", "Retry", "seconds_text"]


class Kind(enum.StrEnum):
    """What an event says (a str: ``Kind.PULLING == "pulling"``)."""

    # pull
    PULLING_FROM = "pulling_from"  # text: "TAG: Pulling from PATH"
    PULLING = "pulling"  # a layer to fetch (total: its size)
    WAITING = "waiting"
    RESUMING = "resuming"  # text: how much a partial download on disk holds
    DOWNLOADING = "downloading"  # current/total bytes
    RETRYING = "retrying"  # text: "Retrying in ..." (see Retry)
    VERIFYING = "verifying"
    DOWNLOADED = "downloaded"
    COMPLETE = "complete"
    EXISTS = "exists"  # (push too: the registry has the layer)
    DIGEST = "digest"  # text: the digest the reference resolved to
    # push
    PUSHING_TO = "pushing_to"  # text: "The push refers to repository [...]"
    PREPARING = "preparing"
    SKIPPED = "skipped"  # a foreign layer (text)
    MOUNTED = "mounted"  # text: "Mounted from ..."
    PUSHING = "pushing"  # current/total bytes
    PUSHED = "pushed"
    PUSHED_MANIFEST = "pushed_manifest"  # text: "TAG: digest: ... size: ..."


@dataclass(frozen=True, slots=True)
class Event:
    """A progress event.  ``id`` is the 12-hex short layer digest (or '' for image-wide events)."""

    kind: Kind
    id: str = ""
    current: int = 0
    total: int = 0
    text: str = ""


Progress = Callable[[Event], None]  # what pull and push report through


def seconds_text(delay: float) -> str:
    """``1 second``, ``5 seconds``, ``0.25 seconds`` (docker's wording for whole seconds)."""
    if delay == int(delay):
        n = int(delay)
        return f"{n} second" + ("" if n == 1 else "s")
    return f"{delay:.2g} seconds"


@dataclass(frozen=True, slots=True)
class Retry:
    """A retry about to happen (the registry client's ``on_retry``): what is retried, the wait in
    seconds, the blob it is for (also when its bytes come from a redirect target), which retry."""

    what: str
    delay: float
    digest: str | None = None
    attempt: int = field(default=0, compare=False)  # 1 for the first retry

    @property
    def layer(self) -> str:
        """The blob's 12-hex short digest, as progress shows layers ('' when not for a blob)."""
        return self.digest.split(":", 1)[1][:12] if self.digest else ""

    def event(self) -> Event:
        """The progress event that shows this retry (docker's ``Retrying in N seconds``)."""
        return Event(Kind.RETRYING, self.layer, text=f"Retrying in {seconds_text(self.delay)}")
