"""imgctl benchmarks (issue 8): ``python benchmarks/run.py`` or ``python -m benchmarks.run``.

measuring  timing and peak RSS of fresh processes, samples and series, rotation
tools      the peers found (skopeo, podman, GNU time ...) and the commands each tool runs
fixtures   the images pushed: cached layers (debootstrap or files), the five-layer image
scenarios  each benchmark: cold and warm pulls, `images` by tag count, start-up, profiles
scale      the many-layer image and its cold pulls, with the registry's own CPU
linkemu    LinkEmulator: a loopback reverse proxy adding latency and a per-connection rate cap
links      the link section: round trips, one-connection floor, cold and concurrent pulls through it
report     BENCHMARKS.md: machine, tables, targets (issues 8 and 16)
run        the command line
"""

from __future__ import annotations

from pathlib import Path


HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CACHE = HERE / ".cache"
