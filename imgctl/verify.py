"""``imgctl verify``: re-hash every blob and check every image against the index.

Blobs are hashed in parallel (hashlib releases the GIL on large updates), each
streamed in 1 MiB reads so memory stays flat whatever the blob size.  The index
itself is checked first (``Index.check``); a damaged one is reported, and
``--repair`` rebuilds it from what the blobs prove: every image whose manifest,
config and layers are present and verify, and the tags and repo digests the
reference journal (``refs.journal``) records for those images.  Entries in
``blobs/sha256`` that are not blobs are reported and moved to ``lost+found``.
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from imgctl.errors import ImgctlError, IndexCorrupt, StoreError
from imgctl.store import Store, is_blob_name, read_ref_journal

__all__ = ["Problem", "VerifyReport", "verify_store"]

READ = 1024 * 1024


@dataclass(frozen=True, slots=True)
class Problem:
    kind: str  # corrupt-blob | missing-blob | bad-manifest | bad-config | damaged | stray | damaged-index | incomplete
    digest: str
    detail: str
    images: tuple[str, ...] = ()

    def __str__(self) -> str:
        return self.detail


@dataclass
class VerifyReport:
    blobs: int = 0
    images: int = 0
    problems: list[Problem] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    repairs: list[str] = field(default_factory=list)  # what --repair did besides removing blobs, one line each


def _hash_file(path: str) -> tuple[str, int] | None:
    h = hashlib.sha256()
    n = 0
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None  # removed meanwhile by a concurrent prune: not a problem
    except OSError:
        return "", 0  # replaced meanwhile by something that is not a blob: it does not hash to its name
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return "", 0
    os.set_blocking(fd, True)
    with open(fd, "rb", buffering=0) as f:
        while chunk := f.read(READ):
            h.update(chunk)
            n += len(chunk)
    return f"sha256:{h.hexdigest()}", n


def _scan(store: Store) -> tuple[list[str], list[tuple[str, str]]]:
    """Names of blob files, and (name, what it is) of every other entry in blobs/sha256."""
    names: list[str] = []
    strays: list[tuple[str, str]] = []
    try:
        entries = sorted(os.listdir(store.blobs_dir))
    except FileNotFoundError:
        return names, strays
    except OSError as e:
        raise StoreError(f"cannot read {store.blobs_dir}: {e.strerror}") from None
    for name in entries:
        try:
            mode = os.lstat(store.blobs_dir / name).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            strays.append((name, "a symlink"))
        elif stat.S_ISDIR(mode):
            strays.append((name, "a directory"))
        elif not stat.S_ISREG(mode):
            strays.append((name, "not a regular file"))
        elif not is_blob_name(name):
            strays.append((name, "its name is not a sha256 digest"))
        else:
            names.append(name)
    return names, strays


def verify_store(store: Store, *, repair: bool = False, jobs: int | None = None) -> VerifyReport:
    report = VerifyReport()
    bad_dirs = store.layout_problems()
    for path in bad_dirs:
        report.problems.append(Problem("layout", "", f"{path} is not a directory: run imgctl verify --repair to move it aside"))
    if repair and bad_dirs:
        _repair_layout(store, bad_dirs, report)
        bad_dirs = store.layout_problems()
    if repair:
        try:
            store.refuse_if_read_only()
        except IndexCorrupt:
            pass  # judged below; a damaged index is what --repair is for
    names, strays = _scan(store) if store.blobs_dir not in bad_dirs and store.blobs_dir.parent not in bad_dirs else ([], [])
    for name, what in strays:
        report.problems.append(Problem("stray", name, f"{store.blobs_dir / name} is not a blob: {what}"))

    index_error: IndexCorrupt | None = None
    users: dict[str, list[str]] = {}
    try:
        if store.rebuild_state() is not None:  # a rebuild that died half-way: its index lacks images
            raise IndexCorrupt(f"the store index {store.index_path} is incomplete (a rebuild of it was interrupted): run imgctl verify")
        store.index.check()
        for image_id, digest in store.index.blob_users():
            users.setdefault(digest, []).append(image_id)
    except IndexCorrupt as e:
        index_error = e
        detail = str(e) + (" --repair to rebuild it from the blobs" if str(e).endswith("run imgctl verify") else "")
        report.problems.append(Problem("damaged-index", "", detail))

    corrupt: set[str] = set()
    workers = jobs or min(8, (os.cpu_count() or 2))
    with cf.ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda n: (n, _hash_file(str(store.blobs_dir / n))), names)
        for name, res in results:
            if res is None:
                continue
            report.blobs += 1
            digest = f"sha256:{name}"
            actual, _ = res
            if actual != digest:
                corrupt.add(digest)
                report.problems.append(
                    Problem("corrupt-blob", digest, f"blob {digest} is corrupt: its content hashes to {actual}",
                            tuple(users.get(digest, ())))
                )

    present = {f"sha256:{n}" for n in names}
    fixes: list[tuple] | None = []
    if index_error is None:
        _check_images(store, report, present, corrupt, repair)
        try:
            fixes = _check_refs(store, report)
        except IndexCorrupt as e:  # the journal itself cannot be read
            report.problems.append(Problem("journal", "", str(e) + " --repair to write it again from the index"))
            fixes = None

    if repair:
        for p in report.problems:
            if p.kind == "corrupt-blob":
                try:
                    os.unlink(store.blob_path(p.digest))
                    report.removed.append(p.digest)
                except FileNotFoundError:
                    pass
                except OSError as e:
                    report.repairs.append(f"Cannot remove corrupt blob {p.digest}: {e.strerror}")
        _move_strays(store, strays, report)
        if index_error is not None:
            _rebuild_index(store, present - corrupt, report)
        else:
            damaged: set[str] = set()
            for p in report.problems:
                damaged.update(p.images)
            good = present - corrupt
            for image_id in sorted(damaged):
                if _reprove(store, image_id, good):
                    damaged.discard(image_id)
                    report.repairs.append(f"Image {image_id[7:19]}: its blob list was rebuilt from its manifest")
            if report.removed:
                with store.index.transaction():
                    store.index.forget_layers(report.removed)
            store.index.mark_damaged(sorted(damaged))
            report.damaged = sorted(damaged)
            if fixes is None:
                _rewrite_journal(store, report)
            else:
                _fix_refs(store, fixes, report)
    return report


def _rewrite_journal(store: Store, report: VerifyReport) -> None:
    """An unreadable reference journal goes to lost+found and is written again from the index
    (whose integrity was checked above): what the index holds is all that can be proven."""
    path = store.journal_path
    try:
        dest = _move_aside(store, path, time.strftime("%Y%m%dT%H%M%S"))
        store.index.rewrite_journal()
    except OSError as e:
        report.repairs.append(f"Cannot write the reference journal {path} again: {e.strerror or e}")
        return
    report.repairs.append(f"Moved the unreadable reference journal to {dest} and wrote it again from the index")


def _check_refs(store: Store, report: VerifyReport) -> list[tuple]:
    """The index's references against the reference journal; returns what ``--repair`` does
    about each difference."""
    from imgctl.reference import familiar_name

    images = store.index.image_ids()
    fixes: list[tuple] = []
    for kind, key, have, want in store.index.ref_differences():
        name = familiar_name(key[0], key[1]) if kind == "tag" else familiar_name(key[0], digest=key[1])
        want_id = want[0] if kind == "tag" and want else want
        if want is None:
            detail = "is in the index but not in the reference journal"
            fixes.append(("journal", kind, key, have))
        elif want_id not in images:
            detail = f"the reference journal names image {want_id[7:19]}, which the index does not hold"
            fixes.append(("journal", kind, key, have))  # have may be None: the journal drops it
        else:
            detail = f"the index says {_ref_text(kind, have)}, the reference journal {_ref_text(kind, want)}"
            fixes.append(("index", kind, key, want))
        report.problems.append(Problem("reference", name, f"{'tag' if kind == 'tag' else 'digest'} {name}: {detail}"))
    return fixes


def _ref_text(kind: str, value) -> str:
    if value is None:
        return "nothing"
    if kind == "tag":
        return f"image {value[0][7:19]}" + (f" pulled as {value[1]}" if value[1] else "")
    return f"image {value[7:19]}"


def _fix_refs(store: Store, fixes: list[tuple], report: VerifyReport) -> None:
    """Index and journal agree again: the journal's value where its image is in the index,
    else the index's value is written to the journal."""
    records: list[tuple] = []
    with store.index.transaction():
        for side, kind, (repo, name), value in fixes:
            if side == "index" and kind == "tag":
                store.index.set_tag(repo, name, *value)
            elif side == "index":
                store.index.set_pin(repo, name, value)
            elif value is None:
                records.append(("untag" if kind == "tag" else "unpin", repo, name))
            else:
                records.append((kind, repo, name, *value) if kind == "tag" else (kind, repo, name, value))
    store.index.journal_refs(records)
    if fixes:
        report.repairs.append(f"Made {len(fixes)} references of the index and the reference journal agree again")


def _check_images(store: Store, report: VerifyReport, present: set[str], corrupt: set[str], repair: bool) -> None:
    images = store.index.image_manifests()
    report.images = len(images)
    damaged = store.index.damaged()
    for image_id, manifest_digest in images:
        if image_id in damaged and not repair:
            report.problems.append(
                Problem("damaged", image_id, f"image {image_id[7:19]}: repaired earlier, needs a pull to be complete again", (image_id,))
            )
        rows = [(digest, kind, pos) for kind, digest, pos in store.index.blob_rows(image_id, by_kind=True)]
        listed = {(kind, digest) for digest, kind, _ in rows}
        if image_id not in damaged and not {("manifest", manifest_digest), ("config", image_id)} <= listed:
            # gc and rmi refuse such an index (``_refuse_unless_complete``): verify must say why
            report.problems.append(
                Problem("incomplete", image_id, f"image {image_id[7:19]}: the index does not list its manifest and config blobs", (image_id,))
            )
        for digest, kind, _ in rows:
            if digest not in present:
                report.problems.append(
                    Problem("missing-blob", digest, f"image {image_id[7:19]}: {kind} blob {digest} is missing", (image_id,))
                )
        if manifest_digest in present and manifest_digest not in corrupt:
            problem = _check_manifest(store, image_id, manifest_digest, [d for d, k, _ in rows if k == "layer"])
            if problem:
                report.problems.append(problem)


def _repair_layout(store: Store, bad: list[Path], report: VerifyReport) -> None:
    """Files where the store's directories belong go to lost+found (kept, not deleted); the
    directories are made again (a file named lost+found is moved next to itself first)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for path in bad:
        try:
            if path.name == "lost+found":
                dest = path.with_name(f"lost+found.{stamp}.{os.getpid()}")
                os.rename(path, dest)
            else:
                dest = _move_aside(store, path, stamp)
            path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            report.repairs.append(f"Cannot move {path} aside: {e.strerror or e}")
            continue
        report.repairs.append(f"Moved {path}, which is not a directory, to {dest}")


def _lost_and_found(store: Store) -> Path:
    d = store.root / "lost+found"
    d.mkdir(exist_ok=True)
    return d


def _move_aside(store: Store, path: Path, stamp: str) -> Path:
    dest = _lost_and_found(store) / f"{path.name}.{stamp}"
    n = 1
    while dest.exists() or dest.is_symlink():
        n += 1
        dest = dest.with_name(f"{path.name}.{stamp}.{n}")
    os.rename(path, dest)
    return dest


def _move_strays(store: Store, strays: list[tuple[str, str]], report: VerifyReport) -> None:
    """Nothing that is not a blob stays among the blobs: strays go to lost+found (kept, not deleted)."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for name, _ in strays:
        try:
            dest = _move_aside(store, store.blobs_dir / name, stamp)
        except FileNotFoundError:
            continue
        except OSError as e:
            report.repairs.append(f"Cannot move stray {store.blobs_dir / name} aside: {e.strerror}")
            continue
        report.repairs.append(f"Moved stray {store.blobs_dir / name} to {dest}")


# -- rebuilding a damaged index -------------------------------------------------------------
def _rebuild_index(store: Store, good: set[str], report: VerifyReport) -> None:
    """Move the damaged index to lost+found and record again what the blobs prove."""
    import fcntl

    from imgctl.store import REBUILDING

    # Until every proven image is recorded again, the new index lacks some: the marker (locked
    # while this runs, left behind if it dies) makes removals elsewhere refuse meanwhile.
    marker = store.root / REBUILDING
    try:
        fd = os.open(marker, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise StoreError(f"cannot rebuild the index: {marker}: {e.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise StoreError("another imgctl verify --repair is rebuilding the index") from None
        _rebuild_index_locked(store, good, report)
        os.unlink(marker)
    finally:
        os.close(fd)


def _rebuild_index_locked(store: Store, good: set[str], report: VerifyReport) -> None:
    from imgctl.reference import familiar_name
    from imgctl.oci import MAX_MANIFEST_SIZE, Index, Manifest, parse_config, parse_document

    stamp = time.strftime("%Y%m%dT%H%M%S")
    store.close()
    try:
        for suffix in ("", "-wal", "-shm"):
            path = Path(f"{store.index_path}{suffix}")
            if path.exists():
                dest = _move_aside(store, path, stamp)
                if not suffix:
                    report.repairs.append(f"Moved the damaged index to {dest}")
    except OSError as e:
        raise StoreError(f"cannot move the damaged index aside: {e.strerror}") from None
    store.index.start_rebuild()

    docs: dict[str, Manifest | Index] = {}
    for digest in sorted(good):
        data = _small_json(store, digest, MAX_MANIFEST_SIZE)
        if data is None:
            continue
        try:
            docs[digest] = parse_document(data)
        except (ImgctlError, RecursionError, ValueError):
            continue
    tags, pins, bad_lines = read_ref_journal(store.root)
    wanted = {d for _, d in tags.values() if d} | {d for (_, d) in pins}

    layers: dict[str, object] = {}
    images: dict[str, tuple] = {}  # image id -> (ImageRecord, blobs)
    for mdigest in sorted(docs, key=lambda d: (d not in wanted, d)):  # the digest a tag names wins
        doc = docs[mdigest]
        if not isinstance(doc, Manifest) or doc.config.digest in images or doc.config.digest not in good:
            continue
        built = _prove_image(store, mdigest, doc, good, layers, parse_config)
        if built is not None:
            images[doc.config.digest] = built

    by_manifest = {rec.manifest_digest: image_id for image_id, (rec, _) in images.items()}
    for idigest in sorted(docs, key=lambda d: (d not in wanted, d)):
        doc = docs[idigest]
        if isinstance(doc, Index):
            for entry in doc.manifests:
                image_id = by_manifest.get(entry.digest)
                if image_id and not any(k == "index" for k, _, _ in images[image_id][1]):
                    images[image_id][1].append(("index", idigest, 0))

    def names(image_id: str, digest: str | None) -> bool:
        """DIGEST is what the image was pulled as: its manifest, or an index listing that manifest."""
        if not digest or image_id not in images:
            return False
        rec, blobs = images[image_id]
        return digest == rec.manifest_digest or ("index", digest, 0) in blobs

    for rec in layers.values():
        if rec is not None:
            store.index.record_layers([rec])
    for image_id, (rec, blobs) in sorted(images.items()):
        store.index.add_image(rec, blobs)
    restored_tags = restored_pins = 0
    lost: list[str] = []
    forget: list[tuple] = []  # the journal follows the index for what the blobs cannot prove
    for (repo, tag), (image_id, digest) in sorted(tags.items()):
        if image_id in images:
            rec, blobs = images[image_id]
            store.index.add_image(rec, blobs, repository=repo, tag=tag, digest=digest if names(image_id, digest) else None)
            restored_tags += 1
        else:
            lost.append(familiar_name(repo, tag))
            forget.append(("untag", repo, tag))
    for (repo, digest), image_id in sorted(pins.items()):
        if names(image_id, digest):
            rec, blobs = images[image_id]
            store.index.add_image(rec, blobs, repository=repo, digest=digest, pinned=True)
            restored_pins += 1
        else:
            lost.append(familiar_name(repo, digest=digest))
            forget.append(("unpin", repo, digest))
    store.index.journal_refs(forget)
    from imgctl.platforms import regroup

    regroup(store)  # an image pulled through an index is one image again, with all its platforms
    report.repairs.append(
        f"Rebuilt the index from the blobs: {len(images)} images, {restored_tags} tags and "
        f"{restored_pins} repo digests restored"
    )
    for name in lost:
        report.repairs.append(f"Could not restore {name}: its image is not complete in the store (pull it again)")
    if bad_lines:
        report.repairs.append(f"Skipped {bad_lines} damaged lines of {store.journal_path}")


def _reprove(store: Store, image_id: str, good: set[str]) -> bool:
    """Rewrite an image's blob list from its manifest when the manifest, config and every
    layer are present and verify (rows that named wrong or missing blobs); False if not."""
    from imgctl.oci import MAX_MANIFEST_SIZE, Manifest, parse_config, parse_document

    rec = store.index.image(image_id)
    if rec is None or rec.manifest_digest not in good:
        return False
    data = _small_json(store, rec.manifest_digest, MAX_MANIFEST_SIZE)
    try:
        doc = parse_document(data) if data is not None else None
    except (ImgctlError, RecursionError, ValueError):
        return False
    if not isinstance(doc, Manifest) or doc.config.digest != image_id or image_id not in good:
        return False
    layers: dict = {}
    built = _prove_image(store, rec.manifest_digest, doc, good, layers, parse_config)
    if built is None:
        return False
    _, blobs = built
    blobs += [(k, d, p) for k, d, p in store.index.index_blob_rows(image_id) if d in good]
    for layer in layers.values():
        store.index.record_layers([layer])
    store.index.add_image(rec, blobs)
    return True


def _small_json(store: Store, digest: str, limit: int) -> bytes | None:
    """A blob that could be a manifest or index (small, a JSON object), else None."""
    try:
        with store.open_blob(digest) as f:
            head = f.read(1)
            if head != b"{":
                return None
            data = head + f.read(limit)
    except (OSError, StoreError):
        return None
    return data if len(data) <= limit else None


def _prove_image(store: Store, mdigest: str, doc, good: set[str], layers: dict, parse_config) -> tuple | None:
    """(ImageRecord, blobs) when the manifest's config and every layer are present and verify."""
    from imgctl.oci import MAX_MANIFEST_SIZE, layer_compression
    from imgctl.localimage import image_record

    try:
        config = parse_config(store.read_blob(doc.config.digest, MAX_MANIFEST_SIZE))
    except (ImgctlError, RecursionError, ValueError):
        return None
    if len(config.diff_ids) != len(doc.layers) or not all(l.digest in good for l in doc.layers):
        return None
    records = []
    for desc, diff_id in zip(doc.layers, config.diff_ids):
        if desc.digest not in layers:
            layers[desc.digest] = _layer_record(store, desc, layer_compression)
        rec = layers[desc.digest]
        if rec is None or rec.diff_id != diff_id:
            return None
        records.append(rec)
    blobs = [("manifest", mdigest, 0), ("config", doc.config.digest, 0)]
    blobs += [("layer", r.digest, i) for i, r in enumerate(records)]
    return image_record(mdigest, doc, config, records), blobs


def _layer_record(store: Store, desc, layer_compression):
    """Decompress a layer blob to learn (and so prove) its diff_id and size; None if it cannot be."""
    from imgctl.codecs import Decoder
    from imgctl.store import LayerRecord

    try:
        dec = Decoder(layer_compression(desc.media_type))
        with store.open_blob(desc.digest) as f:
            n = 0
            while chunk := f.read(READ):
                dec.feed(chunk)
                n += len(chunk)
        if n != desc.size:
            return None
        return LayerRecord(desc.digest, dec.finish(), desc.size, dec.size, desc.media_type)
    except (ImgctlError, OSError):
        return None


def _check_manifest(store: Store, image_id: str, manifest_digest: str, layers: list[str]) -> Problem | None:
    try:
        doc = json.loads(store.read_blob(manifest_digest))
        config = doc["config"]["digest"]
        listed = [l["digest"] for l in doc["layers"]]
    except (ValueError, KeyError, TypeError, RecursionError, StoreError):
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: manifest {manifest_digest} is not an image manifest", (image_id,))
    if config != image_id:
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: manifest {manifest_digest} names config {config}", (image_id,))
    if listed != layers:
        return Problem("bad-manifest", manifest_digest, f"image {image_id[7:19]}: the index's layers differ from manifest {manifest_digest}", (image_id,))
    return None
