#!/usr/bin/env python3
"""imgctl benchmarks: pull and list side by side with skopeo and podman (issue 8).

    python benchmarks/run.py              # N=5 runs each, realistic images (~10-15 min)
    python benchmarks/run.py --quick      # N=2, smaller images: a smoke run (~2-3 min)
    python benchmarks/run.py --runs 9     # more runs for a quieter median
    python benchmarks/run.py --profile    # also record py-spy / pyinstrument profiles

Installs nothing.  Needs Debian's ``docker-registry``; compares with ``skopeo`` and
``podman`` when they are installed (their columns are skipped with a note when not);
builds the base image with ``debootstrap`` when it is installed and the Debian
mirror configured for apt answers, else from files on this machine.  Everything
it builds is cached under ``benchmarks/.cache/`` (gitignored); scratch stores go
to a temporary directory that is removed at the end.

Writes ``BENCHMARKS.md`` at the repository root (``--output`` to change) and the
raw samples to ``benchmarks/.cache/last-results.json``.

Every measurement is the wall time of a fresh process (what a user waits for),
taken with ``os.wait4`` so the same call gives the peak RSS of the process and
the children it waited for.  Tools alternate within each run (the order rotates
from run to run) so that background load hits all of them alike.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import random
import re
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
sys.path.insert(0, str(REPO / "tests"))

APT_LINE = "apt-get install -y docker-registry skopeo podman debootstrap time curl"
MiB = 1024 * 1024

# Modules that a command which does not talk to a registry must never import (issue 8).
HEAVY_MODULES = ("httpx", "httpcore", "h11", "h2", "anyio", "rich", "urllib3", "requests", "imgctl.registry", "imgctl.pull")

# Text below this line in BENCHMARKS.md is hand-written analysis: a new run keeps it.
KEEP_MARKER = "<!-- Hand-written notes below this line are kept by benchmarks/run.py. -->"

# Tag names used for the `images` scenario (same strings for imgctl and podman).
TAG_REPOS = 100


def tag_name(i: int) -> str:
    return f"bench.local/tags/r{i % TAG_REPOS:03d}:t{i:05d}"


# --------------------------------------------------------------------------------------------
# small helpers
# --------------------------------------------------------------------------------------------
def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def loadavg() -> str:
    try:
        return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())
    except OSError:
        return "?"


def fmt_s(x: float | None) -> str:
    if x is None:
        return "–"
    if x < 10:
        return f"{x:.3f} s"
    return f"{x:.1f} s"


def fmt_mib(x: float | None) -> str:
    return "–" if x is None else f"{x:.0f} MiB"


def human(n: int) -> str:
    return f"{n / 1e6:.0f} MB"


@dataclass
class Sample:
    wall: float
    maxrss_kib: int
    rc: int


@dataclass
class Series:
    samples: list[Sample] = field(default_factory=list)
    failed: str = ""

    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.rc == 0]

    @property
    def walls(self) -> list[float]:
        return [s.wall for s in self.ok()]

    @property
    def median(self) -> float | None:
        w = self.walls
        return statistics.median(w) if w else None

    @property
    def lo(self) -> float | None:
        return min(self.walls) if self.walls else None

    @property
    def hi(self) -> float | None:
        return max(self.walls) if self.walls else None

    @property
    def rss_median(self) -> float | None:
        r = [s.maxrss_kib / 1024 for s in self.ok()]
        return statistics.median(r) if r else None

    @property
    def rss_max(self) -> float | None:
        r = [s.maxrss_kib / 1024 for s in self.ok()]
        return max(r) if r else None

    def cell(self) -> str:
        if not self.ok():
            return f"failed: {self.failed}" if self.failed else "–"
        return f"**{fmt_s(self.median)}** ({fmt_s(self.lo)} – {fmt_s(self.hi)})"

    def to_json(self) -> dict:
        return {"samples": [s.__dict__ for s in self.samples], "failed": self.failed}


# Peak RSS: the parent's own memory must not count.  Linux carries the RSS high-water mark of
# the forking process over into the child's ru_maxrss (fork copies the mm, exec records the old
# one), so a child of this (large) Python process would report at least our own RSS.  GNU time
# is a small process in between that reports its child's wait4 rusage; without it, a small
# Python wrapper does the same (and overstates by the wrapper's own ~10 MiB).
_RSS_WRAPPER = (
    "import os, sys\n"
    "pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ)\n"
    "_, status, ru = os.wait4(pid, 0)\n"
    "open(sys.argv[1], 'w').write(str(ru.ru_maxrss))\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def run_measured(cmd: list[str], *, env: dict | None = None, stdout=subprocess.DEVNULL,
                 timeout: float = 900, rss: bool = False, time_bin: str | None = None) -> tuple[Sample, str]:
    """Run ``cmd``: (wall time, peak RSS in KiB when ``rss``, exit code), and the tail of its stderr."""
    rss_file = None
    if rss:
        fd, rss_file = tempfile.mkstemp(prefix="rss-")
        os.close(fd)
        if time_bin:
            cmd = [time_bin, "-q", "-f", "%M", "-o", rss_file, *cmd]
        else:
            cmd = [sys.executable, "-I", "-S", "-c", _RSS_WRAPPER, rss_file, *cmd]
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env)
        # a blocking wait (Popen.wait(timeout=...) polls with sleeps of up to 50 ms)
        killer = threading.Timer(timeout, p.kill)
        killer.start()
        try:
            p.wait()
        finally:
            killer.cancel()
        wall = time.perf_counter() - t0
        err.seek(0)
        tail = err.read()[-2000:].decode(errors="replace")
    maxrss = 0
    if rss_file:
        try:
            text = Path(rss_file).read_text().strip().splitlines()
            maxrss = int(text[-1]) if text else 0
        except (OSError, ValueError):
            maxrss = 0
        os.unlink(rss_file)
    return Sample(wall, maxrss, p.returncode), tail


def run_quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kw)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def rotate(seq: list, i: int) -> list:
    i %= max(1, len(seq))
    return seq[i:] + seq[:i]


# --------------------------------------------------------------------------------------------
# peers
# --------------------------------------------------------------------------------------------
@dataclass
class Peers:
    registry: str | None
    skopeo: str | None
    podman: str | None
    debootstrap: str | None
    curl: str | None
    pyspy: str | None
    pyinstrument: str | None
    notes: list[str] = field(default_factory=list)


def find_peers(args) -> Peers:
    def which(name: str) -> str | None:
        return shutil.which(name)

    p = Peers(which("docker-registry"), which("skopeo"), which("podman"), which("debootstrap"),
              which("curl"), which("py-spy"), which("pyinstrument"))
    missing = [n for n, v in (("docker-registry", p.registry), ("skopeo", p.skopeo), ("podman", p.podman),
                              ("debootstrap", p.debootstrap)) if v is None]
    if args.no_skopeo:
        p.skopeo = None
        p.notes.append("skopeo skipped (--no-skopeo).")
    if args.no_podman:
        p.podman = None
        p.notes.append("podman skipped (--no-podman).")
    if missing:
        print(f"missing peers: {', '.join(missing)}\n  to install them (Debian, as root):\n    apt-get update && {APT_LINE}",
              file=sys.stderr)
    if p.registry is None:
        print("docker-registry is required: nothing to measure against. Stopping.", file=sys.stderr)
        sys.exit(2)
    if p.skopeo is None and not args.no_skopeo:
        p.notes.append("skopeo is not installed: its columns are skipped (`apt-get install -y skopeo`).")
    if p.podman is None and not args.no_podman:
        p.notes.append("podman is not installed: its columns are skipped (`apt-get install -y podman`).")
    if not (shutil.which("time") or Path("/usr/bin/time").exists()):
        p.notes.append("GNU time is not installed: peak memory is measured through a small Python wrapper "
                       "and overstated by its ~10 MiB (`apt-get install -y time`).")
    if p.debootstrap is None:
        p.notes.append("debootstrap is not installed: the base image is built from files on this machine "
                       "(`apt-get install -y debootstrap` for a Debian root filesystem).")
    return p


def imgctl_exe() -> list[str]:
    """The installed console script next to this interpreter (not a pyenv shim: that adds ~70 ms)."""
    beside = Path(sys.executable).parent / "imgctl"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("imgctl")
    if found:
        return [found]
    return [sys.executable, "-m", "imgctl"]


def tool_version(cmd: list[str]) -> str:
    try:
        r = run_quiet(cmd, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


# --------------------------------------------------------------------------------------------
# images to push
# --------------------------------------------------------------------------------------------
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
    from images import build_tar, file, make_random_layer  # tests/images.py

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
    from images import OCI_LAYER_GZIP, Layer, make_image, push_image

    objs = [Layer(data=l.path.read_bytes(), digest=l.digest, diff_id=l.diff_id, size=l.size,
                  uncompressed_size=l.uncompressed_size, media_type=OCI_LAYER_GZIP, compression="gzip")
            for l in layers]
    img = make_image(objs, created="2024-06-01T00:00:00Z", labels={"org.opencontainers.image.title": repo})
    return push_image(reg.url, repo, img, tag=tag)


# --------------------------------------------------------------------------------------------
# the tools, as commands
# --------------------------------------------------------------------------------------------
class Tools:
    def __init__(self, peers: Peers, work: Path, host: str) -> None:
        self.peers = peers
        self.work = work
        self.host = host
        self.imgctl = imgctl_exe()
        cfg = work / "imgctl-config.toml"  # absent: defaults, whatever the user's config says
        self.env = dict(os.environ, IMGCTL_CONFIG=str(cfg))
        self.env.pop("IMGCTL_ROOT", None)
        # An installed package has its .pyc files; an editable checkout run with
        # PYTHONDONTWRITEBYTECODE=1 would compile imgctl's sources on every start (~40 ms).
        # Keep bytecode, but in the cache rather than in the source tree.
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env["PYTHONPYCACHEPREFIX"] = str(CACHE / "pycache")
        self.podman_tmp = work / "podman-tmp"
        self.podman_tmp.mkdir(exist_ok=True)
        # podman refuses a --runroot longer than 50 characters: keep them short, elsewhere
        self.runbase = Path(tempfile.mkdtemp(prefix="ib-", dir="/tmp"))
        self._runroots: dict[Path, Path] = {}
        self.time = shutil.which("time") or ("/usr/bin/time" if Path("/usr/bin/time").exists() else None)

    def names(self) -> list[str]:
        out = ["imgctl"]
        if self.peers.skopeo:
            out.append("skopeo")
        if self.peers.podman:
            out.append("podman")
        return out

    def runroot(self, store: Path) -> Path:
        if store not in self._runroots:
            self._runroots[store] = self.runbase / str(len(self._runroots))
        return self._runroots[store]

    def podman_base(self, root: Path) -> list[str]:
        return [self.peers.podman, "--root", str(root / "root"), "--runroot", str(self.runroot(root)),
                "--tmpdir", str(self.podman_tmp), "--events-backend", "none", "--cgroup-manager", "cgroupfs"]

    def pull_cmd(self, tool: str, store: Path, ref: str) -> list[str]:
        if tool == "imgctl":
            return [*self.imgctl, "--root", str(store), "pull", ref]
        if tool == "skopeo":
            return [self.peers.skopeo, "--insecure-policy", "copy", "-q", "--src-tls-verify=false",
                    f"docker://{ref}", f"oci:{store}:x"]
        if tool == "podman":
            return [*self.podman_base(store), "pull", "-q", "--tls-verify=false", ref]
        raise ValueError(tool)

    def images_cmd(self, tool: str, store: Path) -> list[str]:
        if tool == "imgctl":
            return [*self.imgctl, "--root", str(store), "images"]
        return [*self.podman_base(store), "images"]

    def clean(self, tool: str, store: Path) -> None:
        if tool == "podman" and store.exists():
            # overlay may leave mounts behind; ask podman to drop its storage first
            run_quiet([*self.podman_base(store), "system", "reset", "-f"], timeout=300)
            for sub in (store / "root" / "overlay",):
                if sub.exists():
                    run_quiet(["umount", "-l", str(sub)])
            rmtree(self.runroot(store))
        rmtree(store)

    def close(self) -> None:
        rmtree(self.runbase)


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
def check(sample: Sample, err: str, what: str, series: Series) -> None:
    series.samples.append(sample)
    if sample.rc != 0:
        series.failed = f"exit {sample.rc}"
        log(f"    {what} FAILED (exit {sample.rc}): {err.strip()[-600:]}")


FLOOR = "Python floor"  # benchmarks/floor_pull.py: the blobs alone, with diff_ids, no CLI/HTTP library/store


def floor_cmd(tools: Tools, store: Path, ref: str, layers: list[CachedLayer]) -> list[str]:
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    return [sys.executable, str(REPO / "benchmarks" / "floor_pull.py"), tools.host, repo, str(store),
            *(f"{l.digest}:{l.size}:{l.diff_id}" for l in layers)]


def scenario_pulls(tools: Tools, refs: dict[str, str], n: int, res: dict,
                   layers: dict[str, list[CachedLayer]]) -> dict[str, dict[str, Path]]:
    """(1) cold pulls into empty stores, alternating; keeps the last store of each tool for (2).
    The Python floor (floor_pull.py) takes its turn in the rotation too."""
    kept: dict[str, dict[str, Path]] = {}
    for label, ref in refs.items():
        res["cold"][label] = {t: Series() for t in tools.names()}
        res.setdefault("floor", {})[label] = Series()
        kept[label] = {}
        log(f"(1) cold pull {label}: {n} runs x {', '.join(tools.names())}  [load {loadavg()}]")
        for tool in tools.names():  # untimed warm-up: binaries, .pyc files and the registry's page cache
            store = tools.work / f"warmup-{tool}"
            if tool == "skopeo":
                store.mkdir(parents=True, exist_ok=True)
            s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env)
            if s.rc != 0:
                log(f"    warm-up {tool} failed (exit {s.rc}): {err.strip()[-600:]}")
            tools.clean(tool, store)
        for i in range(n):
            for tool in rotate([*tools.names(), FLOOR], i):
                if tool == FLOOR:
                    store = tools.work / f"floor-{i}"
                    store.mkdir(parents=True)
                    s, err = run_measured(floor_cmd(tools, store, ref, layers[label]), env=tools.env)
                    check(s, err, f"floor_pull.py {ref}", res["floor"][label])
                    log(f"    run {i + 1} floor   {fmt_s(s.wall):>9s}")
                    rmtree(store)
                    continue
                store = tools.work / f"cold-{slug(label)}-{tool}-{i}"
                rmtree(store)
                if tool == "skopeo":
                    store.mkdir(parents=True)
                s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env, rss=True,
                                      time_bin=tools.time)
                check(s, err, f"{tool} pull {ref}", res["cold"][label][tool])
                log(f"    run {i + 1} {tool:7s} {fmt_s(s.wall):>9s}  rss {s.maxrss_kib / 1024:.0f} MiB")
                if i == n - 1:
                    kept[label][tool] = store
                else:
                    tools.clean(tool, store)
    return kept


def scenario_uptodate(tools: Tools, refs: dict[str, str], kept, n: int, res: dict) -> None:
    """(2) pull again when everything is present."""
    for label, ref in refs.items():
        res["warm"][label] = {t: Series() for t in tools.names()}
        log(f"(2) up-to-date pull {label}  [load {loadavg()}]")
        for i in range(n):
            for tool in rotate(tools.names(), i):
                store = kept[label].get(tool)
                if store is None:
                    continue
                s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env)
                check(s, err, f"{tool} re-pull {ref}", res["warm"][label][tool])
        for tool in tools.names():
            log(f"    {tool:7s} {res['warm'][label][tool].cell()}")


def grow_imgctl_tags(store_root: Path, source: str, upto: int, have: int) -> float:
    """Add tags have..upto-1 to the imgctl store in-process through imgctl's own API."""
    from imgctl.lifecycle import tag_image
    from imgctl.store import Store

    t0 = time.monotonic()
    st = Store(store_root)
    try:
        for i in range(have, upto):
            tag_image(st, source, tag_name(i))
    finally:
        st.close()
    return time.monotonic() - t0


def grow_podman_tags(tools: Tools, store: Path, image_id: str, upto: int, have: int, via_cli: int,
                     notes: list[str], res_cli: dict) -> float:
    """Add names have..upto-1 to podman's image.

    The first ``via_cli`` names go through ``podman tag`` (batches of 100 names per call);
    ``podman tag`` rewrites images.json once per name, so its cost grows with the square
    of the tag count (200 names take a few seconds, 10,000 would take hours).  The
    rest are appended to the image's ``names`` in containers/storage's images.json
    directly, which is the same record ``podman tag`` writes.
    """
    t0 = time.monotonic()
    i = have
    cli_start = i
    while i < min(upto, via_cli):
        batch = [tag_name(k) for k in range(i, min(upto, via_cli, i + 100))]
        r = run_quiet([*tools.podman_base(store), "tag", image_id, *batch], timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"podman tag failed: {r.stderr.strip()[-400:]}")
        i += len(batch)
    if i > cli_start:
        prev = res_cli.get("names", 0), res_cli.get("s", 0.0)
        res_cli["names"] = prev[0] + (i - cli_start)
        res_cli["s"] = prev[1] + (time.monotonic() - t0)
    if i < upto:
        files = list((store / "root").glob("*-images/images.json"))
        if len(files) != 1:
            raise RuntimeError(f"cannot find podman's images.json under {store}")
        path = files[0]
        data = json.loads(path.read_text())
        rec = next(r for r in data if r["id"].startswith(image_id.removeprefix("sha256:")))
        names = rec.setdefault("names", [])
        seen = set(names)
        for k in range(i, upto):
            nm = tag_name(k)
            if nm not in seen:
                names.append(nm)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.chmod(tmp, 0o600)
        tmp.replace(path)
        notes[:] = [n for n in notes if not n.startswith("podman: tags ")]
        msg = (f"podman: tags {via_cli + 1:,}..{upto:,} were written into containers/storage's images.json "
               f"directly (`podman tag` rewrites images.json once per name, so tagging 10,000 names through it would take hours).")
        if msg not in notes:
            notes.append(msg)
    return time.monotonic() - t0


def count_lines(cmd: list[str], env=None) -> int:
    r = run_quiet(cmd, env=env, timeout=300)
    if r.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {r.stderr.strip()[-400:]}")
    return max(0, len(r.stdout.splitlines()) - 1)  # minus the header


def scenario_images(tools: Tools, kept_base: dict[str, Path], base_ref: str, sizes: list[int], n: int,
                    res: dict, notes: list[str], podman_cli_tags: int) -> None:
    """(3) `images` on stores of 1, 1,000, 10,000 tags (all on the base image)."""
    im_store = kept_base["imgctl"]
    pm_store = kept_base.get("podman")
    pm_id = None
    if pm_store is not None:
        r = run_quiet([*tools.podman_base(pm_store), "images", "-q", "--no-trunc"], timeout=120)
        pm_id = r.stdout.split()[0] if r.returncode == 0 and r.stdout.split() else None
        if pm_id is None:
            notes.append(f"podman store unusable for `images`: {r.stderr.strip()[-200:]}")
            pm_store = None
    have_i = have_p = 0  # tag_name(k) added so far (the pulled reference is the 1st tag)
    res["tag_setup"] = {}
    for size in sizes:
        extra = size - 1
        t_i = grow_imgctl_tags(im_store, base_ref, extra, have_i)
        have_i = max(have_i, extra)
        rows_i = count_lines(tools.images_cmd("imgctl", im_store), env=tools.env)
        setup = {"imgctl_s": round(t_i, 2), "imgctl_rows": rows_i}
        if pm_store is not None:
            t_p = grow_podman_tags(tools, pm_store, pm_id, extra, have_p, podman_cli_tags, notes,
                                   res.setdefault("podman_tag_cli", {}))
            have_p = max(have_p, extra)
            setup.update(podman_s=round(t_p, 2), podman_rows=count_lines(tools.images_cmd("podman", pm_store)))
        res["tag_setup"][str(size)] = setup
        names = ["imgctl"] + (["podman"] if pm_store is not None else [])
        res["images"][str(size)] = {t: Series() for t in names}
        log(f"(3) images @ {size:,} tags (rows: {setup})  [load {loadavg()}]")
        # one untimed warm-up each: page cache and (for imgctl) the WAL checkpoint
        for tool in names:
            run_measured(tools.images_cmd(tool, im_store if tool == "imgctl" else pm_store), env=tools.env)
        for i in range(n):
            for tool in rotate(names, i):
                s, err = run_measured(tools.images_cmd(tool, im_store if tool == "imgctl" else pm_store),
                                      env=tools.env)
                check(s, err, f"{tool} images", res["images"][str(size)][tool])
        for tool in names:
            log(f"    {tool:7s} {res['images'][str(size)][tool].cell()}")


def import_check(tools: Tools, argv: list[str]) -> list[str]:
    """Which of HEAVY_MODULES a CLI invocation imports (run in a fresh interpreter)."""
    code = (
        "import sys, json\n"
        "from imgctl.cli import main\n"
        f"sys.argv = ['imgctl'] + {argv!r}\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"heavy = {HEAVY_MODULES!r}\n"
        "# a None entry is a module blocked on purpose (import fails fast), not an import\n"
        "found = sorted({m for m, mod in sys.modules.items() if mod is not None\n"
        "                for h in heavy if m == h or m.startswith(h + '.')})\n"
        "sys.stderr.write('IMPORTS=' + json.dumps(sorted({m.split('.')[0] if not m.startswith('imgctl') else m for m in found})) + '\\n')\n"
    )
    r = run_quiet([sys.executable, "-c", code], env=tools.env, timeout=60)
    for line in r.stderr.splitlines():
        if line.startswith("IMPORTS="):
            return json.loads(line[8:])
    return [f"? (check failed: {r.stderr.strip()[-200:]})"]


def importtime_top(tools: Tools, argv: list[str], k: int = 8) -> list[tuple[str, float]]:
    """The ``-X importtime`` top-level packages with the largest cumulative import time."""
    r = run_quiet([sys.executable, "-X", "importtime", "-c",
                   (f"import sys; from imgctl.cli import main; sys.argv=['imgctl']+{argv!r}\n"
                   "try:\n    main()\nexcept SystemExit:\n    pass")], env=tools.env, timeout=60)
    tops: dict[str, float] = {}
    for line in r.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|(\s*)(\S+)", line)
        if not m:
            continue
        cum, indent, name = int(m.group(2)), len(m.group(3)), m.group(4)
        if indent == 1:  # a top-level import
            root = name.split(".")[0]
            tops[root] = tops.get(root, 0) + cum / 1e6
    return [kv for kv in sorted(tops.items(), key=lambda kv: -kv[1]) if kv[1] >= 0.001][:k]


def scenario_startup(tools: Tools, n: int, res: dict) -> None:
    """(4) start-up: --version, images on an empty store, and what they import."""
    empty = tools.work / "empty-store"
    cmds = {
        "python -c pass (interpreter floor)": [sys.executable, "-c", "pass"],
        "imgctl --version": [*tools.imgctl, "--version"],
        "imgctl images (empty store)": [*tools.imgctl, "--root", str(empty), "images"],
    }
    if tools.peers.podman:
        cmds["podman --version"] = [tools.peers.podman, "--version"]
    for cmd in cmds.values():  # warm-up
        run_measured(cmd, env=tools.env)
    res["startup"] = {k: Series() for k in cmds}
    log(f"(4) start-up  [load {loadavg()}]")
    reps = max(n, 10)  # cheap: take more samples
    for i in range(reps):
        for name in rotate(list(cmds), i):
            s, err = run_measured(cmds[name], env=tools.env)
            check(s, err, name, res["startup"][name])
    for name in cmds:
        log(f"    {name:36s} {res['startup'][name].cell()}")
    res["imports"] = {
        "imgctl --version": import_check(tools, ["--version"]),
        "imgctl images": import_check(tools, ["--root", str(empty), "images"]),
    }
    res["importtime"] = {"imgctl images": importtime_top(tools, ["--root", str(empty), "images"])}
    log(f"    heavy imports: {res['imports']}")


def raw_limits(tools: Tools, base: CachedLayer, host: str, repo: str, res: dict) -> None:
    """The floors the issue quotes, measured here: loopback GET, sha256, inflate (one core each)."""
    import zlib

    out: dict[str, float] = {}
    data = base.path.read_bytes()
    if tools.peers.curl:
        url = f"http://{host}/v2/{repo}/blobs/{base.digest}"
        walls = []
        for _ in range(3):
            s, _ = run_measured([tools.peers.curl, "-sf", "-o", "/dev/null", url])
            if s.rc == 0:
                walls.append(s.wall)
        if walls:
            out["curl GET blob (loopback), MB/s of compressed"] = len(data) / min(walls) / 1e6
    t = []
    for _ in range(2):
        t0 = time.perf_counter()
        hashlib.sha256(data).hexdigest()
        t.append(time.perf_counter() - t0)
    out["sha256, MB/s"] = len(data) / min(t) / 1e6
    t = []
    for _ in range(2):
        z = zlib.decompressobj(wbits=31)
        t0 = time.perf_counter()
        mv = memoryview(data)
        total = 0
        for off in range(0, len(data), 4 * MiB):
            total += len(z.decompress(mv[off:off + 4 * MiB]))
        t.append(time.perf_counter() - t0)
    out["gzip inflate, MB/s of output"] = base.uncompressed_size / min(t) / 1e6
    # faster inflaters, if this interpreter happens to have them (nothing is installed for this)
    for label, modname, attr in (("isal", "isal", "isal_zlib"), ("zlib-ng", "zlib_ng", "zlib_ng")):
        try:
            zmod = getattr(__import__(modname, fromlist=[attr]), attr)
        except ImportError:
            continue
        t = []
        for _ in range(2):
            z = zmod.decompressobj(wbits=31)
            t0 = time.perf_counter()
            for off in range(0, len(data), 4 * MiB):
                z.decompress(data[off:off + 4 * MiB])
            t.append(time.perf_counter() - t0)
        out[f"gzip inflate with {label}, MB/s of output"] = base.uncompressed_size / min(t) / 1e6
    t = []
    for _ in range(2):
        z = zlib.decompressobj(wbits=31)
        h1, h2 = hashlib.sha256(), hashlib.sha256()
        t0 = time.perf_counter()
        for off in range(0, len(data), 4 * MiB):
            chunk = data[off:off + 4 * MiB]
            h1.update(chunk)
            h2.update(z.decompress(chunk))
        t.append(time.perf_counter() - t0)
    single = min(t)
    out["one thread: sha256(blob) + inflate + sha256(tar), s"] = single
    res["raw"] = out
    log("raw limits: " + ", ".join(f"{k} = {v:.3g}" for k, v in out.items()))


# (category, substrings of a frame) — the first frame from the leaf up that matches decides
PROFILE_CATEGORIES = [
    ("inflate (zlib / isal / zlib-ng)", ("zlib_Decompress", "inflate (libz", "libz.so", "isal", "igzip",
                                        "zlib_ng", "libz-ng")),
    ("sha256", ("EVP_", "_hashopenssl", "SHA256", "libcrypto")),
    ("socket recv", ("sock_recv", "recv (libc", "SyncStream.read")),
    ("file write / fsync", ("BlobWriter.write", "fsync", "fdatasync", "write (libc")),
    ("SQLite", ("sqlite3", "libsqlite")),
    ("waiting (locks, queues, futures)", ("PyThread_acquire_lock", "SimpleQueue_get", "Condition.wait", "Event.wait",
                                         "select", "poll")),
    ("garbage collector", ("gc_collect",)),
    ("imports", ("_find_and_load", "exec_module", "_compile_bytecode")),
    ("typer / click", ("typer/", "click/")),
    ("HTTP client (httpx/httpcore/h11)", ("httpx/", "httpcore/", "h11/")),
    ("table formatting", ("formatting.py", "tabulate")),
]


def summarize_profile(path: Path) -> dict[str, dict[str, float]]:
    """Share of samples per category, per thread group, from a py-spy ``raw`` (collapsed) profile.

    Threads are grouped by name with a trailing ``_N`` removed (``layer_0``, ``layer_1`` -> ``layer``);
    samples taken before a thread's name was known are put with the named samples of the same id.
    """
    lines = []
    names: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if " " not in line:
            continue
        stack, _, n = line.rpartition(" ")
        frames = stack.split(";")
        m = re.match(r"thread \((\w+)\)(?:: (.+))?$", frames[0].strip())
        if m is None:  # recorded without --threads: one thread, no thread frame
            lines.append(("main", frames, int(n)))
            names["main"] = "MainThread"
            continue
        tid, name = m.group(1), m.group(2)
        if name:
            names[tid] = name
        lines.append((tid, frames[1:], int(n)))
    per: dict[str, dict[str, int]] = {}
    for tid, frames, n in lines:
        name = names.get(tid, "unnamed")
        group = "main" if name == "MainThread" else re.sub(r"_\d+$", "", name)
        cat = "other"
        for f in reversed(frames):
            hit = next((c for c, pats in PROFILE_CATEGORIES if any(p in f for p in pats)), None)
            if hit:
                cat = hit
                break
        d = per.setdefault(group, {})
        d[cat] = d.get(cat, 0) + n
    out = {}
    for name, d in per.items():
        total = sum(d.values())
        out[name] = {k: v / total for k, v in sorted(d.items(), key=lambda kv: -kv[1])}
        out[name]["_samples"] = total
    return out


def profile_run(tools: Tools, refs: dict[str, str], big_store: Path | None, res: dict, tags: int) -> None:
    """--profile: py-spy (sampling, all threads, native frames) of a cold pull; pyinstrument of images."""
    outdir = CACHE / ("profiles-quick" if getattr(tools, "quick", False) else "profiles")
    outdir.mkdir(parents=True, exist_ok=True)
    res["profiles"] = []
    res["profile_summary"] = {}
    rate = 100  # native unwinding pauses the process for each sample: keep the rate low
    if tools.peers.pyspy:
        for label, ref in refs.items():
            store = tools.work / f"profile-{slug(label)}"
            for fmt, ext in (("raw", "collapsed.txt"), ("speedscope", "speedscope.json")):
                rmtree(store)
                out = outdir / f"pull-{slug(label)}.{ext}"
                r = run_quiet([tools.peers.pyspy, "record", "--threads", "--idle", "--native", "-r", str(rate),
                               "-f", fmt, "-o", str(out), "--", *tools.pull_cmd("imgctl", store, ref)],
                              env=tools.env, timeout=900)
                if r.returncode == 0:
                    res["profiles"].append(str(out.relative_to(REPO)))
                    if fmt == "raw":
                        res["profile_summary"][f"imgctl pull {label}"] = summarize_profile(out)
                else:
                    log(f"    py-spy failed: {r.stderr.strip()[-300:]}")
            rmtree(store)
        if big_store is not None:
            out = outdir / f"images-{tags}.collapsed.txt"
            r = run_quiet([tools.peers.pyspy, "record", "--idle", "-r", "1000", "-f", "raw", "-o", str(out),
                           "--", *tools.images_cmd("imgctl", big_store)], env=tools.env, timeout=300)
            if r.returncode == 0:
                res["profiles"].append(str(out.relative_to(REPO)))
                res["profile_summary"][f"imgctl images ({tags:,} tags)"] = summarize_profile(out)
    if tools.peers.pyinstrument and big_store is not None:
        for name, argv in ((f"images-{tags}", ["--root", str(big_store), "images"]), ("version", ["--version"])):
            out = outdir / f"{name}.pyinstrument.txt"
            r = run_quiet([tools.peers.pyinstrument, "-r", "text", "-o", str(out), tools.imgctl[-1], *argv],
                          env=tools.env, timeout=300)
            if r.returncode == 0:
                res["profiles"].append(str(out.relative_to(REPO)))
    log(f"profiles: {res['profiles']}")


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def machine_info(tools: Tools) -> dict[str, str]:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    info = {
        "CPU": f"{cpu} ({os.cpu_count()} logical CPUs; nproc = {len(os.sched_getaffinity(0))})",
        "memory": mem,
        "kernel": f"{platform.system()} {platform.release()}",
        "OS": next((l.split("=", 1)[1].strip('"') for l in Path("/etc/os-release").read_text().splitlines()
                    if l.startswith("PRETTY_NAME=")), "?") if Path("/etc/os-release").exists() else "?",
        "Python": f"{platform.python_version()} ({sys.executable})",
        "imgctl": tool_version([*tools.imgctl, "--version"]) + f" ({tools.imgctl[-1]})",
        "docker-registry": tool_version([tools.peers.registry, "--version"]),
        "skopeo": tool_version([tools.peers.skopeo, "--version"]) if tools.peers.skopeo else "not installed",
        "podman": tool_version([tools.peers.podman, "--version"]) if tools.peers.podman else "not installed",
    }
    import ssl
    import zlib

    info["zlib"] = f"{zlib.ZLIB_RUNTIME_VERSION}; {ssl.OPENSSL_VERSION}"
    if tools.peers.podman:
        r = run_quiet([tools.peers.podman, "--root", str(tools.work / "pinfo" / "root"), "--runroot",
                       str(tools.work / "pinfo" / "run"), "info", "--format", "{{.Store.GraphDriverName}}"])
        info["podman"] += f", storage driver {r.stdout.strip() or '?'} (throwaway --root/--runroot per store)"
    return info


def verdict(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def write_report(path: Path, args, tools: Tools, res: dict, images_info: dict, started: datetime,
                 elapsed: float, notes: list[str]) -> list[tuple[str, str, str]]:
    L: list[str] = []
    a = L.append
    info = res["machine"]
    cmdline = "python benchmarks/run.py" + "".join(f" {x}" for x in sys.argv[1:])
    a("# imgctl benchmarks\n")
    a(f"Generated by `{cmdline}` on {started.strftime('%Y-%m-%d %H:%M UTC')} "
      f"({elapsed / 60:.1f} min, N = {args.runs} runs per cell{', --quick: smaller images' if args.quick else ''}). "
      "Re-run with the same command; see `benchmarks/README.md`.\n")
    a("Every number is the wall time of a fresh process, as a user waits for it: "
      "**median** (min – max) over N runs, tools alternating within each run (order rotated per run). "
      "The registry is Debian's `docker-registry` on 127.0.0.1 (plain HTTP), serving from the page cache. "
      "imgctl runs with its bytecode cached (`PYTHONPYCACHEPREFIX`, as an installed package has its `.pyc`) "
      "and no user configuration; an untimed warm-up pull of each tool precedes the runs.\n")
    a("## Machine\n")
    a("| | |\n|---|---|")
    for k, v in info.items():
        a(f"| {k} | {v} |")
    a(f"| load average | start {res['load']['start']}; end {res['load']['end']} (1, 5, 15 min) |")
    a("")
    if notes:
        a("Notes:\n")
        for nt in notes:
            a(f"- {nt}")
        a("")

    a("## Images\n")
    a("| image | layer | content | tar | gzip |\n|---|---|---|---|---|")
    for label, d in images_info.items():
        for l in d["layers"]:
            a(f"| `{label}` | {l['name']} | {l['source']} ({l['files']:,} files) | {human(l['uncompressed_size'])} "
              f"| {human(l['size'])} |")
    a("")

    if "raw" in res:
        a("## Raw limits on this machine (the floor)\n")
        a("| what | value |\n|---|---|")
        for k, v in res["raw"].items():
            a(f"| {k} | {v:.3g} |")
        a("")
        a("The last row is the cost of verifying the base image on a single thread (skopeo needs only the "
          "sha256 of the blob); only spreading inflate and the tar's sha256 over threads gets a pull below it.\n")

    tool_names = tools.names()
    a("## 1. Cold pull into an empty store\n")
    a("imgctl verifies the compressed digest and every layer's `diff_id` (inflate + sha256 of the tar); "
      "`skopeo copy docker://… oci:DIR:x` only checks the compressed digest; `podman pull` also extracts "
      "the layers into its storage.\n")
    floors = res.get("floor", {})
    a("| image | " + " | ".join(tool_names) + " | imgctl ÷ skopeo | imgctl ÷ podman |"
      + (f" {FLOOR} | floor ÷ skopeo |" if floors else ""))
    a("|---|" + "---|" * (len(tool_names) + 2) + ("---|---|" if floors else ""))
    for label, by_tool in res["cold"].items():
        cells = [by_tool[t].cell() for t in tool_names]
        rs = ratio(by_tool["imgctl"].median, by_tool["skopeo"].median) if "skopeo" in by_tool else None
        rp = ratio(by_tool["imgctl"].median, by_tool["podman"].median) if "podman" in by_tool else None
        line = (f"| `{label}` | " + " | ".join(cells) + f" | {'–' if rs is None else f'{rs:.2f}×'} | "
                f"{'–' if rp is None else f'{rp:.2f}×'} |")
        if label in floors:
            fs = ratio(floors[label].median, by_tool["skopeo"].median) if "skopeo" in by_tool else None
            line += f" {floors[label].cell()} | {'–' if fs is None else f'{fs:.2f}×'} |"
        a(line)
    a("")
    if floors:
        a(f"**{FLOOR}** is `benchmarks/floor_pull.py`, timed as a fresh process in the same rotation: the least a "
          "Python program must do here to pull these layers with their `diff_id`s verified — raw HTTP/1.1 "
          "GETs on plain sockets, 1 MiB reads into a reused buffer, each blob hashed and written on its "
          "receiving thread, inflated (ISA-L) on a second whose output the first hashes, three blobs at once — "
          "with no command line, HTTP library, manifest, store or index. imgctl cannot be faster than it "
          "on this machine; the gap between the two is what imgctl itself costs.\n")

    a("## 2. Pull when the image is already present\n")
    a("| image | " + " | ".join(tool_names) + " |")
    a("|---|" + "---|" * len(tool_names))
    for label, by_tool in res["warm"].items():
        a(f"| `{label}` | " + " | ".join(by_tool[t].cell() for t in tool_names) + " |")
    a("")

    a("## 3. `images` by number of tags\n")
    a("All tags name the base image (`bench.local/tags/rNNN:tNNNNN`, 100 repositories); the imgctl tags were "
      "added in-process with `imgctl.lifecycle.tag_image`, one call per tag.\n")
    im_names = ["imgctl"] + (["podman"] if any("podman" in v for v in res["images"].values()) else [])
    a("| tags | rows listed (imgctl / podman) | " + " | ".join(f"`{t} images`" for t in im_names)
      + (" | imgctl ÷ podman |" if "podman" in im_names else " |"))
    a("|---|---|" + "---|" * len(im_names) + ("---|" if "podman" in im_names else ""))
    for size, by_tool in res["images"].items():
        st = res["tag_setup"][size]
        rows = f"{st['imgctl_rows']:,} / {st.get('podman_rows', '–') if 'podman_rows' not in st else format(st['podman_rows'], ',')}"
        line = f"| {int(size):,} | {rows} | " + " | ".join(by_tool[t].cell() for t in im_names)
        if "podman" in im_names:
            r = ratio(by_tool["imgctl"].median, by_tool["podman"].median)
            line += f" | {'–' if r is None else f'{r:.2f}×'}"
        a(line + " |")
    a("")
    setup = res.get("tag_setup", {})
    if setup:
        a("Building the stores (not timed above): " + "; ".join(
            f"{int(k):,} tag{'s' if int(k) != 1 else ''}: imgctl {v['imgctl_s']} s" + (f", podman {v['podman_s']} s" if "podman_s" in v else "")
            for k, v in setup.items()) + ". " + (
            f"`podman tag` (100 names per call) took {res['podman_tag_cli']['s']:.1f} s for the first "
            f"{res['podman_tag_cli']['names']:,} names; it rewrites images.json once per name, so the cost "
            f"per name grows with the number of names already there."
            if res.get("podman_tag_cli", {}).get("names") else "") + "\n")

    a("## 4. Start-up\n")
    a("| command | wall |\n|---|---|")
    for name, s in res["startup"].items():
        a(f"| `{name}` | {s.cell()} |")
    a("")
    a("HTTP stack / progress library imported (" + ", ".join(f"`{m}`" for m in HEAVY_MODULES) + "):\n")
    for k, v in res["imports"].items():
        a(f"- `{k}`: {', '.join(f'`{m}`' for m in v) if v else 'none'}")
    a("")
    if res.get("importtime"):
        for k, v in res["importtime"].items():
            a(f"Largest imports of `{k}` (`python -X importtime`, cumulative): "
              + ", ".join(f"{n} {t * 1000:.0f} ms" for n, t in v) + ".\n")

    a("## 5. Peak memory of a pull\n")
    a("Maximum resident set size of the process (and the children it waited for), from `wait4`, "
      "over the cold pulls of section 1: median (max).\n")
    a("| image | " + " | ".join(tool_names) + " |")
    a("|---|" + "---|" * len(tool_names))
    for label, by_tool in res["cold"].items():
        a(f"| `{label}` | " + " | ".join(
            f"{fmt_mib(by_tool[t].rss_median)} ({fmt_mib(by_tool[t].rss_max)})" for t in tool_names) + " |")
    a("")

    # targets
    targets: list[tuple[str, str, str]] = []
    for label, by_tool in res["cold"].items():
        im = by_tool["imgctl"].median
        if "skopeo" in by_tool:
            r = ratio(im, by_tool["skopeo"].median)
            targets.append((f"cold pull `{label}` ≤ 1.0× skopeo", "–" if r is None else
                            f"{r:.2f}× ({fmt_s(im)} vs {fmt_s(by_tool['skopeo'].median)})",
                            verdict(None if r is None else r <= 1.0)))
        if "podman" in by_tool:
            r = ratio(im, by_tool["podman"].median)
            targets.append((f"cold pull `{label}` ≤ 0.25× podman", "–" if r is None else
                            f"{r:.2f}× ({fmt_s(im)} vs {fmt_s(by_tool['podman'].median)})",
                            verdict(None if r is None else r <= 0.25)))
    for label, by_tool in res["warm"].items():
        m = by_tool["imgctl"].median
        targets.append((f"up-to-date pull `{label}` ≤ 0.25 s", fmt_s(m), verdict(None if m is None else m <= 0.25)))
    lim = {"1000": 0.15, "10000": 0.3}
    for size, by_tool in res["images"].items():
        m = by_tool["imgctl"].median
        if size in lim:
            targets.append((f"`imgctl images` at {int(size):,} tags ≤ {lim[size]} s", fmt_s(m),
                            verdict(None if m is None else m <= lim[size])))
        if size == "10000" and "podman" in by_tool:
            pm = by_tool["podman"].median
            targets.append(("`imgctl images` at 10,000 tags ≤ `podman images`", f"{fmt_s(m)} vs {fmt_s(pm)}",
                            verdict(None if m is None or pm is None else m <= pm)))
    peak = max((by_tool["imgctl"].rss_max or 0) for by_tool in res["cold"].values()) if res["cold"] else None
    targets.append(("peak memory of a pull ≤ 100 MiB", f"{fmt_mib(peak)} (max over all runs and images)",
                    verdict(None if peak is None else peak <= 100)))
    for k, v in res["imports"].items():
        targets.append((f"`{k}` imports no HTTP stack / progress library", ", ".join(v) if v else "none",
                        verdict(not v)))
    a("## Targets (issue 8)\n")
    a("| target | measured (medians, this run) | |\n|---|---|---|")
    for t in targets:
        a(f"| {t[0]} | {t[1]} | {t[2]} |")
    a("")
    if res.get("profile_summary"):
        a("## Profiles (`--profile`)\n")
        a("py-spy samples (all threads, idle included; native frames for the pulls, at 100 Hz because native "
          "unwinding pauses the process), each sample put in the first category that matches from the innermost "
          "frame out. Shares are of each thread group's samples; `main` includes start-up (imports) and, "
          "during the download, waiting for the layer threads.\n")
        for what, per in res["profile_summary"].items():
            for thread, d in per.items():
                n = d.get("_samples", 0)
                parts = [f"{k} {v * 100:.0f}%" for k, v in d.items() if k != "_samples" and v >= 0.02]
                a(f"- `{what}`, thread `{thread}` ({n} samples): " + ", ".join(parts))
        a("")
    if res.get("profiles"):
        a("Profile files (in the gitignored cache): " + ", ".join(f"`{p}`" for p in res["profiles"]) + ".\n")
    kept = ""
    if path.is_file():
        old = path.read_text()
        if KEEP_MARKER in old:
            kept = old[old.index(KEEP_MARKER):]
    path.write_text("\n".join(L) + "\n" + (kept or KEEP_MARKER + "\n"))
    return targets


# --------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", "-n", type=int, default=None, help="runs per cell (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smaller images, N=2: a smoke run")
    ap.add_argument("--base", choices=("auto", "debootstrap", "files"), default="auto",
                    help="how to build the ~200 MB root filesystem layer (default: debootstrap, else files)")
    ap.add_argument("--sizes", default=None, help="tag counts for `images` (default 1,1000,10000)")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--no-skopeo", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also record py-spy / pyinstrument profiles of imgctl")
    ap.add_argument("--podman-cli-tags", type=int, default=200,
                    help="tags added with `podman tag` before writing images.json directly (default 200)")
    ap.add_argument("--output", "-o", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    sizes = [int(x) for x in (args.sizes or "1,1000,10000").split(",")]

    started = datetime.now(UTC)
    t_start = time.monotonic()
    peers = find_peers(args)
    notes = list(peers.notes)
    CACHE.mkdir(parents=True, exist_ok=True)

    log("preparing images (cached under benchmarks/.cache/) ...")
    base = base_layer(args, peers)
    multi = five_layers(args)
    base_label = "debian-rootfs" if base.name.startswith("debian") else "files-rootfs"
    if base_label == "files-rootfs" and not args.quick and args.base != "files":
        notes.append("The base image was built from files on this machine, not with debootstrap.")
    images_info = {
        f"{base_label} (1 layer)": {"layers": [{"name": base.name, "source": base.source, "files": base.files,
                                                     "uncompressed_size": base.uncompressed_size, "size": base.size}]},
        "five-layers": {"layers": [{"name": l.name, "source": l.source, "files": l.files,
                                        "uncompressed_size": l.uncompressed_size, "size": l.size} for l in multi]},
    }

    from registry import Registry  # tests/registry.py

    work = Path(tempfile.mkdtemp(prefix="imgctl-bench-"))
    tools = None
    res: dict = {"cold": {}, "warm": {}, "images": {}, "load": {"start": loadavg()}}
    try:
        with Registry() as reg:
            log(f"registry at {reg.url}; pushing ...")
            push(reg, "bench/base", "v1", [base])
            push(reg, "bench/five", "v1", multi)
            refs = {f"{base_label} (1 layer)": f"{reg.host}/bench/base:v1",
                    "five-layers": f"{reg.host}/bench/five:v1"}
            tools = Tools(peers, work, reg.host)
            tools.quick = args.quick
            res["machine"] = machine_info(tools)
            raw_limits(tools, base, reg.host, "bench/base", res)

            kept = scenario_pulls(tools, refs, args.runs, res,
                                  {f"{base_label} (1 layer)": [base], "five-layers": multi})
            scenario_uptodate(tools, refs, kept, args.runs, res)
            base_kept = kept[f"{base_label} (1 layer)"]
            scenario_images(tools, base_kept, refs[f"{base_label} (1 layer)"], sizes, args.runs, res, notes,
                            args.podman_cli_tags)
            scenario_startup(tools, args.runs, res)
            if args.profile:
                profile_run(tools, refs, base_kept.get("imgctl"), res, sizes[-1])
            for label in list(kept):
                for tool, store in kept[label].items():
                    tools.clean(tool, store)
    finally:
        if not args.keep:
            rmtree(work)
            if tools is not None:
                tools.close()
        else:
            log(f"scratch kept in {work}")
    res["load"]["end"] = loadavg()
    elapsed = time.monotonic() - t_start

    def enc(o):
        if isinstance(o, Series):
            return o.to_json()
        if isinstance(o, Path):
            return str(o)
        raise TypeError(type(o))

    (CACHE / "last-results.json").write_text(json.dumps({"args": vars(args), "res": res, "notes": notes},
                                                         default=enc, indent=1))
    targets = write_report(args.output, args, tools, res, images_info, started, elapsed, notes)
    log(f"wrote {args.output} ({elapsed / 60:.1f} min)")
    for name, value, v in targets:
        print(f"  {v.strip('*'):8s} {name.replace('`', '')}: {value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
