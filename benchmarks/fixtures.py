"""The images the benchmarks pull: layers built once and cached under benchmarks/.cache/
(a debootstrap root filesystem or a tar of files on this machine, the five-layer image),
pushed to the throwaway registry."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

from tests.support.images import OCI_LAYER_GZIP, Layer, build_tar, file, make_image, make_random_layer, push_image

from . import CACHE
from .measuring import MiB, human, log, rmtree, run_quiet
from .tools import Peers


@dataclass
class CachedLayer:
    name: str
    path: Path  # .tar.gz
    digest: str
    diff_id: str
    size: int
    uncompressed_size: int
    files: int
    source: str


def _cache_layer(name: str, build_tar, source: str) -> CachedLayer:
    """Build (once) a gzip layer from an uncompressed tar and cache it under benchmarks/.cache/layers."""
    d = CACHE / "layers"
    d.mkdir(parents=True, exist_ok=True)
    meta_p, gz_p = d / f"{name}.json", d / f"{name}.tar.gz"
    if meta_p.is_file() and gz_p.is_file():
        m = json.loads(meta_p.read_text())
        if gz_p.stat().st_size == m["size"]:
            return CachedLayer(name, gz_p, m["digest"], m["diff_id"], m["size"], m["uncompressed_size"],
                               m.get("files", 0), m.get("source", source))
    t0 = time.monotonic()
    tar = build_tar()
    if isinstance(tar, Path):
        tar_bytes = tar.read_bytes()
        tar.unlink()
    else:
        tar_bytes = tar
    with tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:") as t:
        files = sum(1 for m in t if m.isfile())
    gz = gzip.compress(tar_bytes, compresslevel=6, mtime=0)
    m = {
        "digest": "sha256:" + hashlib.sha256(gz).hexdigest(),
        "diff_id": "sha256:" + hashlib.sha256(tar_bytes).hexdigest(),
        "size": len(gz),
        "uncompressed_size": len(tar_bytes),
        "files": files,
        "source": source,
    }
    tmp = gz_p.with_suffix(".part")
    tmp.write_bytes(gz)
    tmp.replace(gz_p)
    meta_p.write_text(json.dumps(m, indent=1) + "\n")
    log(f"  built layer {name}: {human(m['uncompressed_size'])} tar, {human(m['size'])} gzip, "
        f"{files} files ({time.monotonic() - t0:.0f} s)")
    return CachedLayer(name, gz_p, m["digest"], m["diff_id"], m["size"], m["uncompressed_size"], files, source)


def apt_mirror() -> tuple[str | None, str]:
    """The Debian mirror apt uses here and this machine's suite (e.g. bookworm)."""
    suite = "bookworm"
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("VERSION_CODENAME="):
                suite = line.split("=", 1)[1].strip().strip('"') or suite
    except OSError:
        pass
    candidates: list[str] = []
    src_dir = Path("/etc/apt/sources.list.d")
    for f in sorted(src_dir.glob("*.sources")) if src_dir.is_dir() else []:
        block: dict[str, str] = {}
        for line in f.read_text().splitlines() + [""]:
            if not line.strip():
                if "debian" in block.get("URIs", "") and "security" not in block.get("URIs", "") \
                        and suite in block.get("Suites", "").split():
                    candidates.append(block["URIs"].split()[0])
                block = {}
            elif not line.startswith("#") and ":" in line:
                k, v = line.split(":", 1)
                block[k.strip()] = v.strip()
    lists = [Path("/etc/apt/sources.list")] + (sorted(src_dir.glob("*.list")) if src_dir.is_dir() else [])
    for f in lists:
        try:
            for line in f.read_text().splitlines():
                parts = line.split()
                if len(parts) >= 3 and parts[0] == "deb" and "security" not in parts[1]:
                    url = next((x for x in parts[1:] if "://" in x), None)
                    if url and "debian" in url:
                        candidates.append(url)
        except OSError:
            pass
    return (candidates[0] if candidates else None), suite


def debootstrap_tar(peers: Peers) -> Path:
    """A Debian minbase root filesystem as an uncompressed tar (raises on failure)."""
    mirror, suite = apt_mirror()
    if mirror is None:
        raise RuntimeError("no Debian mirror configured for apt")
    if os.geteuid() != 0:
        raise RuntimeError("debootstrap needs root")
    work = CACHE / "debootstrap-tmp"
    rmtree(work)
    work.mkdir(parents=True)
    target = work / "rootfs"
    log(f"  debootstrap --variant=minbase {suite} (mirror from apt's sources) ...")
    r = run_quiet([peers.debootstrap, "--variant=minbase", suite, str(target), mirror], timeout=900)
    if r.returncode != 0:
        tail = (r.stdout + r.stderr).strip().splitlines()[-5:]
        rmtree(work)
        raise RuntimeError("debootstrap failed: " + " | ".join(tail))
    out = CACHE / f"debian-{suite}.tar"
    # /dev, /proc, /sys stay as empty directories, as in published Debian images.
    r = run_quiet(["tar", "--sort=name", "--numeric-owner", "--exclude=./dev/*", "--exclude=./proc/*",
                   "--exclude=./sys/*", "-C", str(target), "-cf", str(out), "."], timeout=600)
    rmtree(work)
    if r.returncode != 0:
        raise RuntimeError("tar of the root filesystem failed: " + r.stderr.strip()[-300:])
    return out


def files_tar(limit: int, roots=("/usr/lib", "/usr/share")) -> bytes:
    """A tar of real files from this machine (sorted walk), stopping at ``limit`` bytes of content."""
    buf = io.BytesIO()
    total = 0
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for root in roots:
            for dirpath, dirnames, filenames in os.walk(root):
                dirnames.sort()
                if total >= limit:
                    break
                try:
                    tar.add(dirpath, arcname=dirpath.lstrip("/"), recursive=False)
                except OSError:
                    continue
                for fn in sorted(filenames):
                    p = os.path.join(dirpath, fn)
                    try:
                        st = os.lstat(p)
                    except OSError:
                        continue
                    if not (os.path.islink(p) or os.path.isfile(p)):
                        continue
                    if st.st_size > 32 * MiB:
                        continue
                    try:
                        tar.add(p, arcname=p.lstrip("/"), recursive=False)
                    except OSError:
                        continue
                    total += st.st_size if not os.path.islink(p) else 0
                    if total >= limit:
                        break
    return buf.getvalue()


def base_layer(args, peers: Peers) -> CachedLayer:
    """The ~200 MB root filesystem layer: debootstrap when possible, else files on this machine."""
    if args.quick:
        return _cache_layer("files-60MB", lambda: files_tar(60 * MiB),
                            "files from this machine (/usr/lib, /usr/share), 60 MB (--quick)")
    if args.base in ("auto", "debootstrap") and peers.debootstrap:
        _, suite = apt_mirror()
        name = f"debian-{suite}-minbase"
        try:
            return _cache_layer(name, lambda: debootstrap_tar(peers),
                                f"Debian {suite} root filesystem (debootstrap --variant=minbase)")
        except Exception as e:
            msg = f"debootstrap failed ({e}); falling back to files from this machine."
            log("  " + msg)
            peers.notes.append(msg)
            if args.base == "debootstrap":
                raise
    return _cache_layer("files-200MB", lambda: files_tar(200 * MiB),
                        "files from this machine (/usr/lib, /usr/share), 200 MB")


def five_layers(args) -> list[CachedLayer]:
    """A 5-layer image: mixed base, incompressible, many small files, mixed medium, tiny app layer."""
    q = 4 if args.quick else 1
    suffix = "-quick" if args.quick else ""

    def random_layer(n, size, seed):
        return lambda: make_random_layer(n, size, seed=seed).tar

    def incompressible():
        rng = random.Random(12)
        return build_tar([file(f"opt/blob/part{i}.bin", rng.randbytes(16 * MiB // q)) for i in range(4)])

    def app():
        rng = random.Random(15)
        return build_tar([file("etc/app.conf", b"listen = 0.0.0.0:8080\n" * 40),
                          file("usr/local/bin/app", rng.randbytes(2 * MiB // q), mode=0o755)])

    specs = [
        (f"l1-mixed-base{suffix}", random_layer(2000 // q, 4096, 11), "2,000 files ~4 KiB: 40% random, 50% text, 10% zeros"),
        (f"l2-incompressible{suffix}", incompressible, f"4 files x {16 // q} MiB of random bytes"),
        (f"l3-small-files{suffix}", random_layer(30000 // q, 512, 13), f"{30000 // q:,} files ~512 B"),
        (f"l4-mixed-medium{suffix}", random_layer(3000 // q, 12288, 14), f"{3000 // q:,} files ~12 KiB mixed"),
        (f"l5-app{suffix}", app, "config + one random 'binary'"),
    ]
    return [_cache_layer(n, b, desc) for n, b, desc in specs]


def push(reg, repo: str, tag: str, layers: list[CachedLayer]) -> str:
    objs = [Layer(data=l.path.read_bytes(), digest=l.digest, diff_id=l.diff_id, size=l.size,
                  uncompressed_size=l.uncompressed_size, media_type=OCI_LAYER_GZIP, compression="gzip")
            for l in layers]
    img = make_image(objs, created="2024-06-01T00:00:00Z", labels={"org.opencontainers.image.title": repo})
    return push_image(reg.url, repo, img, tag=tag)
