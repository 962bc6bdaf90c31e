"""Measuring: the wall time and peak RSS of a fresh process, samples and series of them,
the rotation of tools within a run, and the small formatting of the figures."""

from __future__ import annotations

import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


MiB = 1024 * 1024


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


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


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
        # its own session, so that a timeout kills the tool and not only GNU time in front of it
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=stdout, stderr=err, env=env,
                             start_new_session=True)
        # a blocking wait (Popen.wait(timeout=...) polls with sleeps of up to 50 ms)
        killer = threading.Timer(timeout, _kill_group, (p,))
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


def _kill_group(p: subprocess.Popen) -> None:
    try:
        os.killpg(p.pid, signal.SIGKILL)
    except OSError:
        pass


def run_quiet(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, **kw)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def rmtree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def rotate(seq: list, i: int) -> list:
    i %= max(1, len(seq))
    return seq[i:] + seq[:i]
