"""refs.journal: an append-only, fsynced record of every tag and repo digest change, one
checksummed line each, so ``verify --repair`` can restore them if index.db is lost."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from imgctl.errors import IndexCorrupt
from imgctl.store.blobs import fsync_dir

JOURNAL = "refs.journal"
REBUILDING = "index.db.rebuilding"  # exists (flock'ed) while verify --repair rebuilds the index
JOURNAL_COMPACT_AT = 1 << 20  # bytes: past this, the journal is rewritten as a snapshot of the references


def journal_line(record: tuple | list) -> bytes:
    payload = json.dumps(list(record), separators=(",", ":"))
    return f"{hashlib.sha256(payload.encode()).hexdigest()[:16]} {payload}\n".encode()


def append_journal(root: Path, records: list[tuple]) -> None:
    """Append records and fsync; a failed append is cut off again, so no torn line stays."""
    path = root / JOURNAL
    data = b"".join(journal_line(r) for r in records)
    new = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError:
            try:
                os.ftruncate(fd, start)
            except OSError:
                pass
            raise
    finally:
        os.close(fd)
    if new:
        fsync_dir(root)


def write_journal_snapshot(root: Path, tags: Iterable[tuple], pins: Iterable[tuple]) -> None:
    """Replace the journal by the references the index holds now (atomically): ``tags`` are
    (repository, tag, image_id, digest) rows, ``pins`` (repository, digest, image_id)."""
    path = root / JOURNAL
    tmp = root / f"{JOURNAL}.{os.getpid()}.tmp"
    lines = [journal_line(("snapshot", time.time()))]
    lines += [journal_line(("tag", *r)) for r in tags]
    lines += [journal_line(("pin", *r)) for r in pins]
    try:
        with open(tmp, "wb") as f:
            f.write(b"".join(lines))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_dir(root)
    except OSError:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_ref_journal(root: Path) -> tuple[dict, dict, int]:
    """Replay the journal: ({(repository, tag): (image_id, digest)}, {(repository, digest): image_id},
    number of damaged lines skipped).  Only lines whose checksum holds are believed."""
    tags: dict[tuple[str, str], tuple[str, str | None]] = {}
    pins: dict[tuple[str, str], str] = {}
    bad = 0
    try:
        f = open(Path(root) / JOURNAL, "rb")
    except FileNotFoundError:
        return tags, pins, 0
    except OSError as e:  # a directory, a FIFO's permissions, EIO: nothing here can be believed
        raise IndexCorrupt(
            f"the reference journal {Path(root) / JOURNAL} cannot be read ({e.strerror or e}): run imgctl verify"
        ) from None
    with f:
        for line in f:
            try:
                check, _, payload = line.rstrip(b"\n").partition(b" ")
                if hashlib.sha256(payload).hexdigest()[:16].encode() != check:
                    raise ValueError
                rec = json.loads(payload)
                op, args = rec[0], rec[1:]
                if op == "snapshot":
                    tags.clear()
                    pins.clear()
                elif op == "tag":
                    tags[(args[0], args[1])] = (args[2], args[3])
                elif op == "untag":
                    tags.pop((args[0], args[1]), None)
                elif op == "pin":
                    pins[(args[0], args[1])] = args[2]
                elif op == "unpin":
                    pins.pop((args[0], args[1]), None)
                else:
                    raise ValueError
            except (ValueError, TypeError, IndexError, UnicodeDecodeError):
                bad += 1
    return tags, pins, bad


def journal_outgrown(root: Path, live_references: Callable[[], int]) -> bool:
    """Past JOURNAL_COMPACT_AT and several times what a snapshot of the live references takes
    (a store with very many tags does not rewrite its journal at every change).
    ``live_references`` counts them (asked only past JOURNAL_COMPACT_AT)."""
    try:
        size = (root / JOURNAL).stat().st_size
    except FileNotFoundError:
        return False
    if size <= JOURNAL_COMPACT_AT:
        return False
    return size > 4 * 256 * live_references()
