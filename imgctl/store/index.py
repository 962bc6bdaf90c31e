"""The index: the SQLite database of images, their blobs, layers, tags, repo digests and leases.

Every SQL statement of imgctl is here: the schema and its migrations, opening the database
(read-write, or read-only when the store cannot be written), the integrity checks made before
anything is removed, the triggers that collect reference changes for the journal, and each
query as a named method of :class:`Index`.  A use case that changes several rows at once
does so inside ``with store.index.transaction():`` (BEGIN IMMEDIATE ... COMMIT on this
thread's connection), calling the named methods in it."""

from __future__ import annotations

import errno
import json
import os
import sqlite3
import stat
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from imgctl.errors import IndexCorrupt, ReadOnlyStore, StoreError
from imgctl.store.blobs import clean_ingest, disk_error_at, is_blob_name
from imgctl.store.journal import append_journal, journal_outgrown, read_ref_journal, write_journal_snapshot

if TYPE_CHECKING:
    from imgctl.store import Store

SCHEMA_VERSION = 3

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY,                 -- sha256:<config digest>
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    created TEXT,
    created_ts REAL,
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    variant TEXT,
    size INTEGER NOT NULL,               -- sum of uncompressed layer sizes
    compressed_size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    added_ts REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS images_created ON images(created_ts);
CREATE TABLE IF NOT EXISTS image_blobs (
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    kind TEXT NOT NULL,                  -- index | manifest | config | layer | platform (another platform's blob)
    position INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (image_id, kind, position, digest)
);
CREATE INDEX IF NOT EXISTS image_blobs_digest ON image_blobs(digest);
CREATE TABLE IF NOT EXISTS layers (
    digest TEXT PRIMARY KEY,             -- compressed digest (blob name)
    diff_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    uncompressed_size INTEGER NOT NULL,
    media_type TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tags (
    repository TEXT NOT NULL,            -- fully qualified: docker.io/library/ubuntu
    tag TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT,                         -- the manifest (or index) digest it was pulled as
    PRIMARY KEY (repository, tag)
);
CREATE INDEX IF NOT EXISTS tags_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS digests (
    repository TEXT NOT NULL,
    digest TEXT NOT NULL,
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    PRIMARY KEY (repository, digest)
);
CREATE INDEX IF NOT EXISTS digests_image ON digests(image_id);
CREATE TABLE IF NOT EXISTS leases (
    lease_id TEXT NOT NULL,
    pid INTEGER NOT NULL,
    digest TEXT NOT NULL,
    created_ts REAL NOT NULL,
    PRIMARY KEY (lease_id, digest)
);
CREATE INDEX IF NOT EXISTS leases_digest ON leases(digest);
CREATE TABLE IF NOT EXISTS damaged (
    image_id TEXT PRIMARY KEY REFERENCES images(id) ON DELETE CASCADE  -- found broken by verify --repair
);
CREATE TABLE IF NOT EXISTS image_indexes (  -- schema 3: the index (manifest list) an image was pulled or loaded as
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    digest TEXT NOT NULL,
    media_type TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (image_id, digest)
);
CREATE INDEX IF NOT EXISTS image_indexes_digest ON image_indexes(digest);
CREATE TABLE IF NOT EXISTS image_platforms (  -- schema 3: an index image's other available platforms
    image_id TEXT NOT NULL REFERENCES images(id) ON DELETE CASCADE,
    manifest_digest TEXT NOT NULL,
    manifest_media_type TEXT NOT NULL,
    config_digest TEXT NOT NULL,
    created TEXT,
    created_ts REAL,
    os TEXT NOT NULL DEFAULT '',
    architecture TEXT NOT NULL DEFAULT '',
    variant TEXT,
    size INTEGER NOT NULL,
    compressed_size INTEGER NOT NULL,
    labels TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (image_id, manifest_digest)
);
"""


def parse_created(value: str | None) -> float | None:
    """RFC 3339 (with up to nanoseconds) to a Unix timestamp; None when absent or invalid."""
    if not value:
        return None
    s = value.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    if "." in s:
        head, _, rest = s.partition(".")
        frac = ""
        i = 0
        while i < len(rest) and rest[i].isdigit():
            i += 1
        frac, tz = rest[:i], rest[i:]
        s = f"{head}.{(frac + '000000')[:6]}{tz}"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None
    if dt.tzinfo is None:
        return None
    ts = dt.timestamp()
    return ts if ts > 0 else None


@dataclass(frozen=True, slots=True)
class LayerRecord:
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    media_type: str


@dataclass(frozen=True, slots=True)
class ImageRecord:
    id: str
    manifest_digest: str
    manifest_media_type: str
    created: str | None
    created_ts: float | None
    os: str
    architecture: str
    variant: str | None
    size: int
    compressed_size: int
    labels: dict
    added_ts: float


_IMAGE_COLS = (
    "id, manifest_digest, manifest_media_type, created, created_ts, os, architecture, variant, "
    "size, compressed_size, labels, added_ts"
)
_IMAGE_COLS_N = 12


def _image(row: tuple) -> ImageRecord:
    vals = list(row)
    vals[10] = json.loads(vals[10] or "{}")
    return ImageRecord(*vals)


def _translated(name: str):
    """Cursor method NAME, with any SQLite failure raised as the StoreError of its kind."""
    base = getattr(sqlite3.Cursor, name)

    def method(self, *args):
        try:
            return base(self, *args)
        except (sqlite3.Error, UnicodeDecodeError) as e:  # a damaged text value is not UTF-8
            raise _index_error(e, self.connection.store_root) from e

    method.__name__ = name
    return method


class _Cursor(sqlite3.Cursor):
    """Every SQLite failure leaves the store as a StoreError of its kind (never a bare DatabaseError)."""

    execute = _translated("execute")
    executemany = _translated("executemany")
    executescript = _translated("executescript")
    fetchone = _translated("fetchone")
    fetchall = _translated("fetchall")
    fetchmany = _translated("fetchmany")
    __next__ = _translated("__next__")


class _Connection(sqlite3.Connection):
    store_root: Path = Path(".")
    ref_changes: list | None = None  # tag and digest changes of the open transaction (see _collect_ref_changes)

    def cursor(self, factory=None):
        return super().cursor(factory or _Cursor)

    # sqlite3's own execute() makes a plain cursor: go through ours, whose fetches translate too.
    def execute(self, *args):
        return self.cursor().execute(*args)

    def executemany(self, *args):
        return self.cursor().executemany(*args)

    def executescript(self, *args):
        return self.cursor().executescript(*args)


_REF_TRIGGERS = """
CREATE TEMP TRIGGER imgctl_tags_ins AFTER INSERT ON main.tags BEGIN
  SELECT imgctl_ref('tag', NEW.repository, NEW.tag, NEW.image_id, NEW.digest); END;
CREATE TEMP TRIGGER imgctl_tags_upd AFTER UPDATE ON main.tags BEGIN
  SELECT imgctl_ref('untag', OLD.repository, OLD.tag);
  SELECT imgctl_ref('tag', NEW.repository, NEW.tag, NEW.image_id, NEW.digest); END;
CREATE TEMP TRIGGER imgctl_tags_del AFTER DELETE ON main.tags BEGIN
  SELECT imgctl_ref('untag', OLD.repository, OLD.tag); END;
CREATE TEMP TRIGGER imgctl_digests_ins AFTER INSERT ON main.digests BEGIN
  SELECT imgctl_ref('pin', NEW.repository, NEW.digest, NEW.image_id); END;
CREATE TEMP TRIGGER imgctl_digests_upd AFTER UPDATE ON main.digests BEGIN
  SELECT imgctl_ref('unpin', OLD.repository, OLD.digest);
  SELECT imgctl_ref('pin', NEW.repository, NEW.digest, NEW.image_id); END;
CREATE TEMP TRIGGER imgctl_digests_del AFTER DELETE ON main.digests BEGIN
  SELECT imgctl_ref('unpin', OLD.repository, OLD.digest); END;
"""


def _collect_ref_changes(con: _Connection) -> None:
    """Collect every change to tags and repo digests, however made (cascades included), so
    the transaction can append them to the journal before it commits."""
    con.ref_changes = []
    con.create_function("imgctl_ref", -1, lambda *a: con.ref_changes.append(a))
    for stmt in _REF_TRIGGERS.split("END;"):
        if stmt.strip():
            con.execute(stmt + "END;")


@contextmanager
def _transaction(con: sqlite3.Connection, root: Path) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: writers queue on the busy timeout instead of failing.

    Reference changes reach the journal under the write lock, before COMMIT: the journal's
    order is the commit order of every process."""
    changes = getattr(con, "ref_changes", None)
    con.execute("BEGIN IMMEDIATE")
    try:
        yield con
        if changes:
            try:
                if journal_outgrown(root, lambda: _live_references(con)):
                    _snapshot_journal(con, root)
                else:
                    append_journal(root, changes)
            except OSError as e:
                raise disk_error_at(root, e) from e
        con.execute("COMMIT")
    except BaseException:
        _rollback(con)
        raise
    finally:
        if changes:
            changes.clear()


def _live_references(con: sqlite3.Connection) -> int:
    return con.execute("SELECT (SELECT count(*) FROM tags) + (SELECT count(*) FROM digests)").fetchone()[0]


def _snapshot_journal(con: sqlite3.Connection, root: Path) -> None:
    """Rewrite the journal as the references the index holds now."""
    write_journal_snapshot(
        root,
        con.execute("SELECT repository, tag, image_id, digest FROM tags").fetchall(),
        con.execute("SELECT repository, digest, image_id FROM digests").fetchall(),
    )


_PRIMARY = {"CORRUPT": 11, "NOTADB": 26, "FULL": 13, "READONLY": 8, "IOERR": 10, "CANTOPEN": 14, "PERM": 3, "BUSY": 5}


def _index_error(e: sqlite3.Error | UnicodeDecodeError, root: Path) -> StoreError:
    """A failed index read or update as a StoreError of its kind; a full disk reads the same as
    when a blob write hits it."""
    code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
    text = "a text value is not valid UTF-8" if isinstance(e, UnicodeDecodeError) else _one_line(str(e))
    if isinstance(e, UnicodeDecodeError) or code in (_PRIMARY["CORRUPT"], _PRIMARY["NOTADB"]) or text.startswith(("no such table", "no such column", "malformed database schema")):
        return IndexCorrupt(f"the store index {root / 'index.db'} is damaged ({text}): run imgctl verify")
    if code == _PRIMARY["FULL"]:
        return StoreError(f"cannot write to the store at {root}: {os.strerror(errno.ENOSPC)}")
    if code == _PRIMARY["READONLY"]:
        return ReadOnlyStore(f"cannot write to the store at {root}: {text}")
    if code == _PRIMARY["BUSY"]:
        return StoreError(f"cannot lock the store index: {text}")
    return StoreError(f"cannot update the store index: {text}")


def _one_line(text: str, limit: int = 200) -> str:
    """SQLite's messages can quote a damaged schema: one line, bounded, as the CLI promises."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _damaged(store: "Store", why: str) -> str:
    return f"the store index {store.index_path} is damaged ({_one_line(why)}): run imgctl verify"


def _cannot_write(e: BaseException | None) -> bool:
    """A failure that means "this process cannot write here", not "the index is wrong"."""
    if isinstance(e, OSError):
        return e.errno in (errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, sqlite3.Error):
        code = (getattr(e, "sqlite_errorcode", None) or 0) & 0xFF
        return code in (_PRIMARY["READONLY"], _PRIMARY["CANTOPEN"], _PRIMARY["IOERR"], _PRIMARY["FULL"], _PRIMARY["PERM"])
    return False


def _reason(e: BaseException | None) -> str:
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e) if e is not None else "not writable"


def _disk_full(path: Path) -> bool:
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024 or st.f_favail == 0


def _on_read_only_fs(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _tables(con: sqlite3.Connection) -> set[str]:
    return {r[0] for r in con.execute("SELECT name FROM main.sqlite_master WHERE type = 'table'")}


_EXPECTED_COLUMNS: dict[str, set[str]] = {}


def _check_schema(store: "Store", con: sqlite3.Connection) -> None:
    """Every table and column this version uses is there (a valid SQLite file with another
    schema is a damaged index, not an "unexpected OperationalError" later)."""
    if not _EXPECTED_COLUMNS:
        mem = sqlite3.connect(":memory:")
        mem.executescript(_SCHEMA)
        for (t,) in mem.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            _EXPECTED_COLUMNS[t] = {r[1] for r in mem.execute(f"PRAGMA table_info({t})")}
        mem.close()
    have = _tables(con)
    for table, cols in _EXPECTED_COLUMNS.items():
        if table not in have:
            raise IndexCorrupt(_damaged(store, f"table {table} is missing"))
        got = {r[1] for r in con.execute(f"PRAGMA main.table_info({table})")}
        if not cols <= got:
            raise IndexCorrupt(_damaged(store, f"table {table} lacks column {sorted(cols - got)[0]}"))


def _rollback(con: sqlite3.Connection) -> None:
    """Roll back if SQLite has not already done so (it does by itself on SQLITE_FULL and others)."""
    if con.in_transaction:
        try:
            con.execute("ROLLBACK")
        except sqlite3.Error:
            pass


# -- schema migrations ------------------------------------------------------------------------
def _migrate(con: sqlite3.Connection, version: int) -> None:
    """Bring an index written by an earlier imgctl (schema ``version``; 0: a new store) up to
    date, inside the transaction that created the new tables."""
    if 0 < version < 3:
        # Schema 3 keeps the index an image was pulled as (its identity) in image_indexes;
        # schema 2 only listed the index blob among the image's blobs.  Its media type is
        # read from the blob when needed.
        con.execute(
            "INSERT OR IGNORE INTO image_indexes (image_id, digest, media_type) "
            "SELECT image_id, digest, '' FROM image_blobs WHERE kind = 'index'"
        )


def _refuse_unless_complete(store: "Store", con: sqlite3.Connection) -> None:
    """Every image the index holds has its manifest and config and every blob it names is a
    present, well-named file, unless ``verify --repair`` marked the image damaged: an index
    that lost or garbled rows would otherwise have garbage collection remove what is in use."""
    damaged = {r[0] for r in con.execute("SELECT image_id FROM damaged")}
    for image_id, digest in con.execute("SELECT image_id, digest FROM image_blobs"):
        if image_id in damaged:
            continue
        algo, _, hexd = str(digest).partition(":")
        if algo != "sha256" or not is_blob_name(hexd) or not store.has_blob(digest):
            raise IndexCorrupt(
                f"refusing to remove anything: image {str(image_id)[7:19]} needs blob {digest}, "
                "which is not in the store (run imgctl verify)"
            )
    row = con.execute(
        "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM image_blobs b WHERE b.image_id = i.id "
        "AND b.kind = 'config' AND b.digest = i.id) AND id NOT IN (SELECT image_id FROM damaged) LIMIT 1"
    ).fetchone()
    if row is not None:
        raise IndexCorrupt(
            f"refusing to remove anything: the store index does not list the blobs of image {str(row[0])[7:19]} "
            "(run imgctl verify)"
        )



class Index:
    """The store's index.db: one connection per thread, opened on first use, and every query
    of imgctl as a named method.  Methods run on this thread's connection, so inside
    ``with index.transaction():`` they are part of that transaction."""

    def __init__(self, store: "Store") -> None:
        self._store = store
        self._local = threading.local()
        self._lock = threading.Lock()
        self._connections: list[sqlite3.Connection] = []
        self._checked = False  # check() passed in this process
        self._removable_checked = False  # and check_removable()
        self._rebuilding = False  # verify --repair creates a new index for blobs it found

    # -- connections ------------------------------------------------------------------
    @property
    def db(self) -> sqlite3.Connection:
        """This thread's connection to the index (one per thread; SQLite serialises writers)."""
        con = getattr(self._local, "con", None)
        if con is None:
            con = self._connect()
            self._local.con = con
            with self._lock:
                self._connections.append(con)
        return con

    def close(self) -> None:
        with self._lock:
            for con in self._connections:
                con.close()
            self._connections.clear()
        self._local = threading.local()

    def start_rebuild(self) -> None:
        """``verify --repair`` moved the damaged index aside (after ``close``): the next use
        creates a new one, which may lack images the blobs hold until they are recorded."""
        self._checked = self._removable_checked = False
        self._store.read_only = None
        self._rebuilding = True

    def _connect(self) -> sqlite3.Connection:
        store = self._store
        for suffix in ("", "-wal", "-shm"):
            try:
                mode = os.stat(f"{store.index_path}{suffix}").st_mode
            except OSError:
                continue
            if not stat.S_ISREG(mode):
                raise IndexCorrupt(_damaged(store, f"index.db{suffix} is not a regular file"))
        if store.read_only is None:
            store.read_only = not self._writable()
        if not store.read_only:
            for attempt in (1, 2):
                try:
                    return self._connect_rw()
                except StoreError as e:
                    if isinstance(e, IndexCorrupt) or not _cannot_write(e.__cause__):
                        raise
                    store._ro_reason = _reason(e.__cause__)
                    if _disk_full(store.root):
                        store._ro_reason = os.strerror(errno.ENOSPC)
                        # Scratch files of processes that died (a killed load's spool) are
                        # what most often fills the disk: they go, and the index opens again.
                        if attempt == 1 and clean_ingest(store, set()):
                            continue
                    break
            # A read-only filesystem, a full disk: what is there can still be read.
            store.read_only = True
        return self._connect_ro()

    def _writable(self) -> bool:
        """False when the store exists but this process cannot write it (read-only mount, permissions,
        a file where one of its directories should be)."""
        store = self._store
        bad = store.layout_problems()
        if bad:
            store._ro_reason = f"{bad[0]} is not a directory; run imgctl verify --repair"
            return False
        for path in (store.root, store.index_path):
            if path.exists() and not os.access(path, os.W_OK):
                store._ro_reason = os.strerror(errno.EROFS if _on_read_only_fs(path) else errno.EACCES)
                return False
        return True

    def _lost_index(self) -> bool:
        """The index is gone (or empty) but the store holds blobs or recorded references: the
        index was lost, this is not a new store (an empty index would have garbage collection
        remove everything)."""
        if self._rebuilding:
            return False
        try:
            if self._store.journal_path.stat().st_size > 0:
                return True
        except FileNotFoundError:
            pass
        try:
            with os.scandir(self._store.blobs_dir) as it:
                return any(True for _ in it)
        except OSError:
            return False

    def _connect_rw(self) -> sqlite3.Connection:
        store = self._store
        store.ensure_dirs()
        path = store.index_path
        if not path.exists() and self._lost_index():
            raise IndexCorrupt(_damaged(store, "index.db is missing but the store holds blobs"))
        try:
            con = sqlite3.connect(path, timeout=600, isolation_level=None, check_same_thread=False, factory=_Connection)
        except sqlite3.Error as e:
            raise _index_error(e, store.root) from e
        con.store_root = store.root
        try:
            con.execute("PRAGMA busy_timeout = 600000")
            con.execute("PRAGMA journal_mode = WAL")
            # FULL: a committed removal is on disk before garbage collection unlinks anything.
            con.execute("PRAGMA synchronous = FULL")
            con.execute("PRAGMA foreign_keys = ON")
            con.execute("PRAGMA temp_store = MEMORY")
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                with _transaction(con, store.root):
                    version = con.execute("PRAGMA user_version").fetchone()[0]
                    if version == 0 and _tables(con):
                        raise IndexCorrupt(_damaged(store, "it is not an imgctl index"))
                    if version == 0 and self._lost_index():
                        raise IndexCorrupt(_damaged(store, "index.db is empty but the store holds blobs"))
                    if version < SCHEMA_VERSION:
                        for stmt in _SCHEMA.split(";"):
                            if stmt.strip():
                                con.execute(stmt)
                        _migrate(con, con.execute("PRAGMA user_version").fetchone()[0])
                        con.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            _check_schema(store, con)
            _collect_ref_changes(con)
            if not store.journal_path.exists():
                self._start_journal(con)
        except BaseException:
            con.close()
            raise
        return con

    def _connect_ro(self) -> sqlite3.Connection:
        """Open the index without writing anything: no WAL, no -shm, no schema changes."""
        import urllib.parse

        store = self._store
        path = store.index_path
        try:
            empty = path.stat().st_size == 0
        except FileNotFoundError:
            empty = True
        if empty and self._lost_index():
            raise IndexCorrupt(_damaged(store, "index.db is missing but the store holds blobs"))
        if empty:  # nothing was ever stored: an empty index in memory
            con = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False, factory=_Connection)
            con.store_root = store.root
            con.executescript(_SCHEMA)
            return con
        uri = "file:" + urllib.parse.quote(str(path))
        con = None
        for mode in ("mode=ro", "immutable=1"):
            if mode == "immutable=1":
                wal = Path(f"{path}-wal")
                if wal.exists() and wal.stat().st_size > 0:
                    raise ReadOnlyStore(
                        f"cannot read the store index {path}: the store is read-only ({store._ro_reason}) and "
                        f"{wal.name} holds changes that need write access to be read"
                    )
            try:
                con = sqlite3.connect(f"{uri}?{mode}", uri=True, isolation_level=None, check_same_thread=False, factory=_Connection)
                con.store_root = store.root
                con.execute("PRAGMA user_version").fetchone()
                break
            except StoreError as e:
                if con is not None:
                    con.close()
                    con = None
                if isinstance(e, IndexCorrupt):
                    raise
            except sqlite3.Error:
                con = None
        if con is None:
            raise ReadOnlyStore(f"cannot read the store index {path} ({store._ro_reason})")
        try:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"store {store.root} was written by a newer imgctl (schema {version})")
            if version < SCHEMA_VERSION:
                raise ReadOnlyStore(
                    f"store {store.root} needs an upgrade of its index, which needs write access ({store._ro_reason})"
                    if version else _damaged(store, "it is not an imgctl index")
                )
            _check_schema(store, con)
        except BaseException:
            con.close()
            raise
        return con

    def _start_journal(self, con: sqlite3.Connection) -> None:
        """The first writable open of a store without a journal records its references (a store
        from before the journal, or a new one); a damaged index is left for verify to judge."""
        root = self._store.root
        try:
            with _transaction(con, root):
                if self._store.journal_path.exists():
                    return
                if con.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                    return
                _snapshot_journal(con, root)
        except IndexCorrupt:
            return

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT on this thread's connection (its reference changes
        journalled before COMMIT); the methods called inside take part in it."""
        con = self.db
        self._store.refuse_if_read_only()
        with _transaction(con, self._store.root) as tx:
            yield tx

    # -- checks -------------------------------------------------------------------------
    def check(self) -> None:
        """Prove the index sound before anything is removed on its word (once per process):
        SQLite's integrity check and no row naming an image the index does not hold."""
        if self._checked:
            return
        con = self.db
        # integrity_check, not quick_check: an index b-tree that disagrees with its table would
        # have "which images have no tag" answered wrong.
        rows = con.execute("PRAGMA integrity_check(1)").fetchall()
        if rows != [("ok",)]:
            raise IndexCorrupt(_damaged(self._store, str(rows[0][0]) if rows else "its integrity check failed"))
        if con.execute("PRAGMA foreign_key_check").fetchone() is not None:
            raise IndexCorrupt(_damaged(self._store, "some of its rows name images it does not hold"))
        for table in _EXPECTED_COLUMNS:  # every value decodes (a flipped byte in a text is not UTF-8)
            for _ in con.execute(f"SELECT * FROM {table}"):
                pass
        self._checked = True

    def check_removable(self) -> None:
        """``check`` and, in addition, every image the index holds has each blob it names
        (unless marked damaged by ``verify --repair``) and the journal agrees with the
        references: what removals check first (the store checks for a rebuild before)."""
        if self._removable_checked:
            return
        self.check()
        _refuse_unless_complete(self._store, self.db)
        diff = self.ref_differences()
        if diff:
            kind, (repo, name), _, _ = diff[0]
            raise IndexCorrupt(
                f"refusing to remove anything: the index and the reference journal disagree about "
                f"{repo}{':' if kind == 'tag' else '@'}{name} (run imgctl verify)"
            )
        self._removable_checked = True  # later images were checked by add_image as they came

    def ref_differences(self) -> list[tuple]:
        """Where the index's tags and repo digests differ from the reference journal (whose lines
        carry checksums, unlike the index's rows): (kind 'tag' | 'pin', (repository, tag or
        digest), index value, journal value), a value None where one side lacks the reference.
        Empty when there is no journal (a read-only store from before it)."""
        store = self._store
        if not store.journal_path.exists():
            return []
        if store.read_only is None:
            self.db  # noqa: B018 - opening the index decides
        if store.read_only:
            return self._ref_differences(self.db)
        # Under the write lock: every journal append is made under it, before its COMMIT, so
        # nothing can be half-way between the two while they are compared.
        with self.transaction() as con:
            return self._ref_differences(con)

    def _ref_differences(self, con: sqlite3.Connection) -> list[tuple]:
        jtags, jpins, _ = read_ref_journal(self._store.root)
        itags = {(r, t): (i, d) for r, t, i, d in con.execute("SELECT repository, tag, image_id, digest FROM tags")}
        ipins = {(r, d): i for r, d, i in con.execute("SELECT repository, digest, image_id FROM digests")}
        out = []
        for kind, have, want in (("tag", itags, jtags), ("pin", ipins, jpins)):
            for key in sorted(set(have) | set(want)):
                if have.get(key) != want.get(key):
                    out.append((kind, key, have.get(key), want.get(key)))
        return out

    def journal_refs(self, records: list[tuple]) -> None:
        """Append reference records to the journal under the write lock (``verify --repair``
        makes the journal follow the index where the journal names an image the index lacks)."""
        if records:
            with self.transaction() as con:
                con.ref_changes.extend(records)

    def rewrite_journal(self) -> None:
        """Write the journal again from the index's references, under the write lock."""
        with self.transaction() as con:
            _snapshot_journal(con, self._store.root)

    # -- layers -------------------------------------------------------------------------
    def layer(self, digest: str) -> LayerRecord | None:
        row = self.db.execute(
            "SELECT digest, diff_id, size, uncompressed_size, media_type FROM layers WHERE digest = ?", (digest,)
        ).fetchone()
        return LayerRecord(*row) if row else None

    def record_layers(self, recs: Iterable[LayerRecord]) -> None:
        """Record verified layers in one transaction (a pull of many small layers batches them)."""
        with self.transaction() as con:
            con.executemany(
                "INSERT OR REPLACE INTO layers (digest, diff_id, size, uncompressed_size, media_type) VALUES (?,?,?,?,?)",
                [(r.digest, r.diff_id, r.size, r.uncompressed_size, r.media_type) for r in recs],
            )

    def forget_layers(self, digests: list[str]) -> None:
        """Drop the layer records of blobs that were removed."""
        self.db.executemany("DELETE FROM layers WHERE digest = ?", [(d,) for d in digests])

    # -- leases -------------------------------------------------------------------------
    def add_leases(self, lease_id: str, pid: int, digests: list[str], now: float) -> None:
        with self.transaction() as con:
            con.executemany(
                "INSERT OR IGNORE INTO leases (lease_id, pid, digest, created_ts) VALUES (?,?,?,?)",
                [(lease_id, pid, d, now) for d in digests],
            )

    def release_lease(self, lease_id: str) -> None:
        """Drop a lease's rows in their own transaction; a failure is ignored (a stale lease
        only keeps blobs alive; garbage collection drops it once its lock is free)."""
        try:
            with self.transaction() as con:
                con.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))
        except (sqlite3.Error, StoreError):
            pass

    def lease_ids(self) -> list[str]:
        return [r[0] for r in self.db.execute("SELECT DISTINCT lease_id FROM leases")]

    def drop_lease(self, lease_id: str) -> None:
        self.db.execute("DELETE FROM leases WHERE lease_id = ?", (lease_id,))

    def digests_in_use(self) -> set[str]:
        """Every digest an image names or a lease holds: what garbage collection keeps."""
        return {r[0] for r in self.db.execute("SELECT digest FROM image_blobs UNION SELECT digest FROM leases")}

    def leased_digests(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT digest FROM leases")}

    # -- images -------------------------------------------------------------------------
    def image(self, image_id: str) -> ImageRecord | None:
        row = self.db.execute(f"SELECT {_IMAGE_COLS} FROM images WHERE id = ?", (image_id,)).fetchone()
        return _image(row) if row else None

    def has_image(self, image_id: str) -> bool:
        return self.db.execute("SELECT 1 FROM images WHERE id = ?", (image_id,)).fetchone() is not None

    def image_ids(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT id FROM images")}

    def image_manifests(self) -> list[tuple[str, str]]:
        """(image id, manifest digest) of every image, by id."""
        return self.db.execute("SELECT id, manifest_digest FROM images ORDER BY id").fetchall()

    def image_ids_with_prefix(self, hexprefix: str, limit: int = 2) -> list[str]:
        """IDs of images whose hex digest starts with ``hexprefix`` (at most ``limit``)."""
        rows = self.db.execute(
            "SELECT id FROM images WHERE id >= ? AND id < ? LIMIT ?", (f"sha256:{hexprefix}", f"sha256:{hexprefix}g", limit)
        ).fetchall()
        return [r[0] for r in rows]

    def created_ts(self, image_id: str) -> float | None:
        row = self.db.execute("SELECT created_ts FROM images WHERE id = ?", (image_id,)).fetchone()
        return row[0]

    def delete_image(self, image_id: str) -> None:
        """Drop an image row; its blobs, references, indexes and platforms go with it (cascade)."""
        self.db.execute("DELETE FROM images WHERE id = ?", (image_id,))

    def image_digests(self, image_id: str) -> list[str]:
        """Every blob an image needs (index, manifest, config, layers)."""
        return [r[0] for r in self.db.execute("SELECT DISTINCT digest FROM image_blobs WHERE image_id = ?", (image_id,))]

    def blob_rows(self, image_id: str, *, by_kind: bool = False) -> list[tuple[str, str, int]]:
        """(kind, digest, position) of each blob the image names (``by_kind``: ordered by kind, position)."""
        order = " ORDER BY kind, position" if by_kind else ""
        return [tuple(r) for r in self.db.execute(
            f"SELECT kind, digest, position FROM image_blobs WHERE image_id = ?{order}", (image_id,)
        )]

    def index_blob_rows(self, image_id: str) -> list[tuple[str, str, int]]:
        """(kind, digest, position) of the image's ``index`` blobs."""
        return [tuple(r) for r in self.db.execute(
            "SELECT kind, digest, position FROM image_blobs WHERE image_id = ? AND kind = 'index'", (image_id,)
        )]

    def forget_blob_rows(self, image_id: str) -> None:
        """Drop an image's blob list (an incomplete leftover is recorded again)."""
        self.db.execute("DELETE FROM image_blobs WHERE image_id = ?", (image_id,))

    def blob_users(self) -> list[tuple[str, str]]:
        """(image id, digest) of every blob every image names, by image id."""
        return self.db.execute("SELECT image_id, digest FROM image_blobs ORDER BY image_id").fetchall()

    def image_is_complete(self, image_id: str) -> bool:
        """The image is indexed and every blob it needs is present."""
        if self.image(image_id) is None:
            return False
        rows = self.db.execute("SELECT kind, digest FROM image_blobs WHERE image_id = ?", (image_id,)).fetchall()
        kinds = {k for k, _ in rows}  # a blob list without its manifest or config is not complete
        return {"manifest", "config"} <= kinds and all(self._store.has_blob(d) for _, d in rows)

    def mark_damaged(self, image_ids: list[str]) -> None:
        """Remember images that ``verify --repair`` found broken; a pull of them clears the mark."""
        if not image_ids:
            return
        with self.transaction() as con:
            con.executemany("INSERT OR IGNORE INTO damaged (image_id) VALUES (?)", [(i,) for i in image_ids])

    def damaged(self) -> set[str]:
        return {r[0] for r in self.db.execute("SELECT image_id FROM damaged")}

    def add_image(
        self,
        rec: ImageRecord,
        blobs: Iterable[tuple[str, str, int]],
        *,
        repository: str | None = None,
        tag: str | None = None,
        digest: str | None = None,
        pinned: bool = False,
    ) -> bool:
        """Record an image (whose blobs are all committed) and point ``repository:tag`` at it.

        ``blobs`` are (kind, digest, position).  ``digest`` is the manifest/index digest
        the image was pulled as; with ``pinned`` (pulled by digest) it is recorded as a
        repo digest of its own.  Returns True when the tag (or digest) was new or moved.
        """
        blobs = list(blobs)
        kinds = {kind for kind, _, _ in blobs}
        if not {"manifest", "config"} <= kinds:
            raise StoreError(f"cannot record image {rec.id}: its manifest and config must be given")
        changed = False
        with self.transaction() as con:
            # Inside the write lock: garbage collection cannot remove a blob between check and record.
            missing = [d for _, d, _ in blobs if not self._store.has_blob(d)]
            if missing:
                raise StoreError(f"cannot record image {rec.id}: blob {missing[0]} is missing")
            con.execute(
                f"INSERT INTO images ({_IMAGE_COLS}) VALUES ({','.join('?' * _IMAGE_COLS_N)}) "
                "ON CONFLICT(id) DO UPDATE SET manifest_digest=excluded.manifest_digest, "
                "manifest_media_type=excluded.manifest_media_type",
                (
                    rec.id, rec.manifest_digest, rec.manifest_media_type, rec.created, rec.created_ts, rec.os,
                    rec.architecture, rec.variant, rec.size, rec.compressed_size,
                    json.dumps(rec.labels, sort_keys=True), rec.added_ts,
                ),
            )
            con.execute("DELETE FROM damaged WHERE image_id = ?", (rec.id,))
            # One manifest per image: the same config reached through another manifest (other
            # compression, another registry) replaces the blob list; unshared old blobs become garbage.
            # (An index image's indexes and other platforms are kept: see imgctl.platforms.)
            con.execute("DELETE FROM image_blobs WHERE image_id = ? AND kind NOT IN ('index', 'platform')", (rec.id,))
            con.executemany(
                "INSERT OR IGNORE INTO image_blobs (image_id, digest, kind, position) VALUES (?,?,?,?)",
                [(rec.id, d, kind, pos) for kind, d, pos in blobs],
            )
            if repository and tag:
                row = self.tag_row(repository, tag)
                changed = row is None or row[0] != rec.id
                self.set_tag(repository, tag, rec.id, digest)
            if repository and digest and pinned:
                found = self.pin_target(repository, digest)
                changed = changed or found is None or found != rec.id
                self.set_pin(repository, digest, rec.id)
        return changed

    # -- references ---------------------------------------------------------------------
    def tag_row(self, repository: str, tag: str) -> tuple[str, str | None] | None:
        """(image id, digest it was pulled as) of ``repository:tag``, None when there is no such tag."""
        row = self.db.execute(
            "SELECT image_id, digest FROM tags WHERE repository = ? AND tag = ?", (repository, tag)
        ).fetchone()
        return tuple(row) if row else None

    def tag_target(self, repository: str, tag: str) -> str | None:
        row = self.db.execute("SELECT image_id FROM tags WHERE repository = ? AND tag = ?", (repository, tag)).fetchone()
        return row[0] if row else None

    def pin_target(self, repository: str, digest: str) -> str | None:
        """The image a pinned repo digest (``repository@digest`` pulled by digest) names."""
        row = self.db.execute(
            "SELECT image_id FROM digests WHERE repository = ? AND digest = ?", (repository, digest)
        ).fetchone()
        return row[0] if row else None

    def digest_target(self, repository: str, digest: str) -> str | None:
        """The image ``repository@digest`` names: a pinned digest, or a tag pulled as it."""
        row = self.db.execute(
            "SELECT image_id FROM digests WHERE repository = ? AND digest = ? "
            "UNION SELECT image_id FROM tags WHERE repository = ? AND digest = ? LIMIT 1",
            (repository, digest, repository, digest),
        ).fetchone()
        return row[0] if row else None

    def set_tag(self, repository: str, tag: str, image_id: str, digest: str | None) -> None:
        """Point ``repository:tag`` at an image, pulled as ``digest``."""
        self.db.execute(
            "INSERT INTO tags (repository, tag, image_id, digest) VALUES (?,?,?,?) "
            "ON CONFLICT(repository, tag) DO UPDATE SET image_id=excluded.image_id, digest=excluded.digest",
            (repository, tag, image_id, digest),
        )

    def tag(self, repository: str, tag: str, image_id: str) -> None:
        """``imgctl tag``: point ``repository:tag`` at an image; the digest it was pulled as
        stays only when the tag already named that image."""
        self.db.execute(
            "INSERT INTO tags (repository, tag, image_id, digest) VALUES (?,?,?,NULL) "
            "ON CONFLICT(repository, tag) DO UPDATE SET image_id=excluded.image_id, "
            "digest=CASE WHEN tags.image_id = excluded.image_id THEN tags.digest ELSE NULL END",
            (repository, tag, image_id),
        )

    def set_tag_digest(self, repository: str, tag: str, image_id: str, digest: str) -> None:
        """Record the repo digest a tag was pushed as, if the tag still names ``image_id``."""
        with self.transaction() as con:
            con.execute(
                "UPDATE tags SET digest = ? WHERE repository = ? AND tag = ? AND image_id = ?",
                (digest, repository, tag, image_id),
            )

    def clear_tag_digest(self, repository: str, tag: str) -> None:
        self.db.execute("UPDATE tags SET digest = NULL WHERE repository = ? AND tag = ?", (repository, tag))

    def untag(self, repository: str, tag: str) -> None:
        self.db.execute("DELETE FROM tags WHERE repository = ? AND tag = ?", (repository, tag))

    def set_pin(self, repository: str, digest: str, image_id: str) -> None:
        """Record ``repository@digest`` (pulled by digest) as naming an image."""
        self.db.execute(
            "INSERT OR REPLACE INTO digests (repository, digest, image_id) VALUES (?,?,?)", (repository, digest, image_id)
        )

    def unpin(self, repository: str, digest: str) -> None:
        self.db.execute("DELETE FROM digests WHERE repository = ? AND digest = ?", (repository, digest))

    def tags_of(self, image_id: str) -> list[tuple[str, str]]:
        """(repository, tag) of each tag of an image, sorted."""
        return self.db.execute(
            "SELECT repository, tag FROM tags WHERE image_id = ? ORDER BY repository, tag", (image_id,)
        ).fetchall()

    def pins_of(self, image_id: str) -> list[tuple[str, str]]:
        """(repository, digest) of each pinned digest of an image, sorted."""
        return self.db.execute(
            "SELECT repository, digest FROM digests WHERE image_id = ? ORDER BY repository, digest", (image_id,)
        ).fetchall()

    def pins_in(self, image_id: str, repository: str | None) -> list[tuple[str, str]]:
        """(repository, digest) of the image's pinned digests of ``repository`` (None: of every one)."""
        return self.db.execute(
            "SELECT repository, digest FROM digests WHERE image_id = ? AND (? IS NULL OR repository = ?)",
            (image_id, repository, repository),
        ).fetchall()

    def tagged_in(self, image_id: str, repository: str) -> bool:
        """Whether some tag of ``repository`` names the image."""
        return self.db.execute(
            "SELECT 1 FROM tags WHERE image_id = ? AND repository = ?", (image_id, repository)
        ).fetchone() is not None

    def referenced(self, image_id: str) -> bool:
        """Whether a tag or a pinned digest names the image."""
        return self.db.execute(
            "SELECT 1 FROM tags WHERE image_id = ? UNION ALL SELECT 1 FROM digests WHERE image_id = ?", (image_id, image_id)
        ).fetchone() is not None

    def tag_digests(self, image_id: str, repository: str | None = None, tag: str | None = None) -> set[tuple[str, str]]:
        """(repository, digest) each tag of the image (or just ``repository:tag``) was pulled as."""
        return set(self.db.execute(
            "SELECT repository, digest FROM tags WHERE image_id = ? AND digest IS NOT NULL "
            "AND (? IS NULL OR (repository = ? AND tag = ?))",
            (image_id, repository, repository, tag),
        ).fetchall())

    def tags_pulled_as(self, repository: str, digest: str) -> list[tuple[str, str]]:
        """(tag, image id) of the tags of ``repository`` pulled as ``digest``."""
        return self.db.execute(
            "SELECT tag, image_id FROM tags WHERE repository = ? AND digest = ?", (repository, digest)
        ).fetchall()

    def repo_digests(self, image_id: str) -> set[tuple[str, str]]:
        """(repository, digest) of the image's pinned digests and of the digests its tags were pulled as."""
        return set(self.db.execute(
            "SELECT repository, digest FROM tags WHERE image_id = ? AND digest IS NOT NULL "
            "UNION SELECT repository, digest FROM digests WHERE image_id = ?",
            (image_id, image_id),
        ).fetchall())

    def named_digests(self, image_id: str) -> list[str]:
        """The digests the image's tags were pulled as and its pinned digests, sorted (repeats kept)."""
        return [d for (d,) in self.db.execute(
            "SELECT digest FROM tags WHERE image_id = ? AND digest IS NOT NULL "
            "UNION ALL SELECT digest FROM digests WHERE image_id = ? ORDER BY 1",
            (image_id, image_id),
        )]

    def repository_tags(self, repository: str) -> list[tuple[str, str]]:
        """(tag, image id) of every tag of a repository, by tag."""
        return self.db.execute(
            "SELECT tag, image_id FROM tags WHERE repository = ? ORDER BY tag", (repository,)
        ).fetchall()

    def all_tags(self) -> list[tuple[str, str, str]]:
        """(repository, tag, image id) of every tag, by repository and tag."""
        return self.db.execute("SELECT repository, tag, image_id FROM tags ORDER BY repository, tag").fetchall()

    def all_pins(self) -> list[tuple[str, str, str]]:
        """(repository, digest, image id) of every pinned digest, by repository."""
        return self.db.execute("SELECT repository, digest, image_id FROM digests ORDER BY repository").fetchall()

    def digest_references(self) -> list[tuple[str, str | None, str, str, int]]:
        """(repository, tag or None, image id, digest, pinned 0/1) of every reference that names a
        digest: tags pulled as one, and pinned digests; by repository and tag."""
        return self.db.execute(
            "SELECT repository, tag, image_id, digest, 0 FROM tags WHERE digest IS NOT NULL "
            "UNION ALL SELECT repository, NULL, image_id, digest, 1 FROM digests ORDER BY 1, 2"
        ).fetchall()

    def move_references(self, old_id: str, new_id: str) -> None:
        """Every tag and pinned digest of ``old_id`` names ``new_id`` instead."""
        for table in ("tags", "digests"):
            self.db.execute(f"UPDATE {table} SET image_id = ? WHERE image_id = ?", (new_id, old_id))

    def repositories_holding(self, digest: str) -> list[str]:
        """Repositories whose images (tagged or pinned) name the blob ``digest``."""
        return [r for (r,) in self.db.execute(
            "SELECT DISTINCT t.repository FROM image_blobs b JOIN tags t ON t.image_id = b.image_id WHERE b.digest = ? "
            "UNION SELECT DISTINCT d.repository FROM image_blobs b JOIN digests d ON d.image_id = b.image_id WHERE b.digest = ?",
            (digest, digest),
        )]

    # -- listing, pruning, disk usage ------------------------------------------------------
    def list_rows(self) -> list[tuple]:
        """Everything ``images`` needs in one query: one row per (image, tag or digest).

        Columns: id, created_ts, size, labels, repository, tag, digest, kind
        (kind 't' tag, 'd' digest-only, 'n' no reference).
        """
        return self.db.execute(
            """
            SELECT i.id, i.created_ts, i.size, i.labels, t.repository, t.tag, t.digest, 't'
              FROM images i JOIN tags t ON t.image_id = i.id
            UNION ALL
            SELECT i.id, i.created_ts, i.size, i.labels, d.repository, NULL, d.digest, 'd'
              FROM images i JOIN digests d ON d.image_id = i.id
            UNION ALL
            SELECT i.id, i.created_ts, i.size, i.labels, NULL, NULL, NULL, 'n'
              FROM images i
             WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id)
               AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id)
            """
        ).fetchall()

    def prune_candidates(self, *, all_untagged: bool = False) -> list[str]:
        """IDs of dangling images (no tag, no pinned digest; ``all_untagged``: no tag), by id."""
        if all_untagged:
            sql = "SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) ORDER BY id"
        else:
            sql = ("SELECT id FROM images i WHERE NOT EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) "
                   "AND NOT EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id) ORDER BY id")
        return [r[0] for r in self.db.execute(sql)]

    def image_activity(self) -> list[tuple[str, float | None, int]]:
        """(image id, created_ts, 1 when a tag or pinned digest names it else 0) of every image."""
        return self.db.execute(
            "SELECT i.id, i.created_ts, "
            "EXISTS (SELECT 1 FROM tags t WHERE t.image_id = i.id) OR EXISTS (SELECT 1 FROM digests d WHERE d.image_id = i.id) "
            "FROM images i"
        ).fetchall()

    # -- multi-platform images --------------------------------------------------------------
    def indexes_of(self, image_id: str) -> list[tuple[str, str]]:
        """(digest, media type) of the indexes the image was pulled or loaded as, latest first."""
        return self.db.execute(
            "SELECT digest, media_type FROM image_indexes WHERE image_id = ? ORDER BY rowid DESC", (image_id,)
        ).fetchall()

    def index_image_ids(self) -> set[str]:
        """IDs of the images that stand for an index (multi-platform images)."""
        return {r[0] for r in self.db.execute("SELECT DISTINCT image_id FROM image_indexes")}

    def put_index(self, image_id: str, digest: str, media_type: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO image_indexes (image_id, digest, media_type) VALUES (?,?,?)", (image_id, digest, media_type)
        )

    def add_index_blob(self, image_id: str, digest: str) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO image_blobs (image_id, digest, kind, position) VALUES (?,?,'index',0)", (image_id, digest)
        )

    def drop_index(self, image_id: str, digest: str) -> None:
        """The image no longer stands for that index (nor keeps its blob)."""
        self.db.execute("DELETE FROM image_indexes WHERE image_id = ? AND digest = ?", (image_id, digest))
        self.db.execute("DELETE FROM image_blobs WHERE image_id = ? AND kind = 'index' AND digest = ?", (image_id, digest))

    def platform_records(self, image_id: str) -> list[ImageRecord]:
        """The image's other platforms (not its own row), in the order they were recorded; the
        record's ``id`` is the platform's config digest."""
        rows = self.db.execute(
            f"SELECT {_PLATFORM_COLS} FROM image_platforms WHERE image_id = ? ORDER BY rowid", (image_id,)
        ).fetchall()
        return [_platform_row(r) for r in rows]

    def platform_manifests(self, image_id: str) -> list[str]:
        return [m for (m,) in self.db.execute("SELECT manifest_digest FROM image_platforms WHERE image_id = ?", (image_id,))]

    def put_platform(self, image_id: str, r: ImageRecord) -> None:
        self.db.execute(
            f"INSERT OR REPLACE INTO image_platforms (image_id, {_PLATFORM_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (
                image_id, r.id, r.manifest_digest, r.manifest_media_type, r.created, r.created_ts, r.os,
                r.architecture, r.variant, r.size, r.compressed_size, json.dumps(r.labels, sort_keys=True),
            ),
        )

    def drop_platform(self, image_id: str, manifest_digest: str) -> None:
        self.db.execute(
            "DELETE FROM image_platforms WHERE image_id = ? AND manifest_digest = ?", (image_id, manifest_digest)
        )

    def clear_platform_blobs(self, image_id: str) -> None:
        self.db.execute("DELETE FROM image_blobs WHERE image_id = ? AND kind = 'platform'", (image_id,))

    def add_platform_blobs(self, image_id: str, digests: Iterable[str]) -> None:
        self.db.executemany(
            "INSERT OR IGNORE INTO image_blobs (image_id, digest, kind, position) VALUES (?,?,'platform',0)",
            [(image_id, d) for d in digests],
        )


_PLATFORM_COLS = (
    "config_digest, manifest_digest, manifest_media_type, created, created_ts, os, architecture, variant, "
    "size, compressed_size, labels"
)


def _platform_row(row: tuple) -> ImageRecord:
    (cfg, md, mt, created, cts, os_, arch, variant, size, csize, labels) = row
    return ImageRecord(cfg, md, mt, created, cts, os_, arch, variant, size, csize, json.loads(labels or "{}"), 0.0)
