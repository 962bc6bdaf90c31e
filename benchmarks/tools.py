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
