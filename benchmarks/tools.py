"""The tools compared (imgctl, skopeo, podman, GNU time ...), found on this machine, and the
commands each runs against the benchmark's registry and scratch stores."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from . import CACHE
from .measuring import rmtree, run_quiet


APT_LINE = "apt-get install -y docker-registry skopeo podman debootstrap time curl"


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


def install_imgctl(notes: list[str]) -> Path | None:
    """imgctl as the README installs it (``pip install .``), in a venv of this Python under
    ``benchmarks/.cache/``: the venv's interpreter, or None (with a note) when it cannot be made.

    What users run is a regular install, with its ``.pyc`` files compiled by pip, not this
    checkout's editable install: that one loads a finder at every start, and a development
    machine's interpreter may carry ``.pth`` files of its own (this sandbox's imports certifi).
    The dependencies are installed once (from the package index or pip's cache); imgctl itself
    is reinstalled from the checkout on every run, so the figures are the checkout's.
    """
    from . import REPO

    venv = CACHE / f"venv-py{sys.version_info.major}.{sys.version_info.minor}"
    python = venv / "bin" / "python"
    quiet = ["--quiet", "--disable-pip-version-check", "--no-input"]
    def step(cmd: list[str]) -> None:
        r = run_quiet(cmd, timeout=900)
        if r.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd[:4])} ... exit {r.returncode}: {r.stderr.strip()[-300:]}")

    try:
        if not python.is_file():
            step([sys.executable, "-m", "venv", "--clear", str(venv)])
        # Dependencies first (a no-op once they are there), then the checkout over the old copy.
        step([str(python), "-m", "pip", "install", *quiet, str(REPO)])
        step([str(python), "-m", "pip", "install", *quiet, "--no-deps", "--force-reinstall", str(REPO)])
    except Exception as e:  # noqa: BLE001 - measured as the checkout is installed instead
        notes.append(f"imgctl could not be installed into {venv} ({e}); the imgctl next to {sys.executable} "
                     "was measured instead, with its bytecode cached under benchmarks/.cache/pycache.")
        return None
    return python


def imgctl_exe(python: Path | None = None) -> list[str]:
    """The console script of ``python``'s environment (default: the running one; never a pyenv
    shim: that adds ~70 ms)."""
    beside = Path(python or sys.executable).parent / "imgctl"
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("imgctl")
    if found and python is None:
        return [found]
    return [str(python or sys.executable), "-m", "imgctl"]


def tool_version(cmd: list[str]) -> str:
    try:
        r = run_quiet(cmd, timeout=30)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception as e:  # noqa: BLE001
        return f"? ({e})"


class Tools:
    def __init__(self, peers: Peers, work: Path, host: str, python: Path | None = None) -> None:
        """``python``: the interpreter of the venv imgctl is installed in (install_imgctl); it
        also runs the Python floor and the start-up rows.  None: the running interpreter."""
        self.peers = peers
        self.work = work
        self.host = host
        self.python = str(python or sys.executable)
        self.imgctl = imgctl_exe(python)
        cfg = work / "imgctl-config.toml"  # absent: defaults, whatever the user's config says
        self.env = dict(os.environ, IMGCTL_CONFIG=str(cfg))
        self.env.pop("IMGCTL_ROOT", None)
        self.env.pop("PYTHONDONTWRITEBYTECODE", None)
        self.env.pop("PYTHONPYCACHEPREFIX", None)
        if python is None:
            # The checkout's own (editable) install: keep its bytecode, as an installed package
            # has its .pyc files; with PYTHONDONTWRITEBYTECODE=1 every start would compile
            # imgctl's sources (~40 ms).  In the cache rather than in the source tree.
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
