#!/usr/bin/env python3
"""imgctl benchmarks: pull and list side by side with skopeo and podman (issue 8).

    python benchmarks/run.py              # N=5 runs each, realistic images, every section (~25 min)
    python benchmarks/run.py --quick      # N=2, smaller images and sizes: a smoke run (~5 min)
    python benchmarks/run.py --no-links --no-layers   # the loopback sections only (~5 min)
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

The code: measuring.py (timing, peak RSS, rotation), tools.py (the peers and their
commands), fixtures.py (the images, pushed to a throwaway registry), scenarios.py (each
benchmark), scale.py (the many-layer pull), links.py and linkemu.py (the emulated link),
report.py (BENCHMARKS.md); this file is the command line.  It also runs as
``python -m benchmarks.run`` from the repository root.

Every measurement is the wall time of a fresh process (what a user waits for),
taken with ``os.wait4`` so the same call gives the peak RSS of the process and
the children it waited for.  Tools alternate within each run (the order rotates
from run to run) so that background load hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

if not __package__:
    # `python benchmarks/run.py`: Python put benchmarks/ on sys.path, not the repository root.
    # The two packages this needs, `benchmarks` and `tests` (tests/support: the registry and
    # the image builder), are loaded from where they are; their modules then resolve through
    # the packages, and sys.path stays as it is.
    import importlib.util

    for _name in ("benchmarks", "tests"):
        if _name not in sys.modules:
            _spec = importlib.util.spec_from_file_location(_name, Path(__file__).resolve().parent.parent / _name / "__init__.py")
            sys.modules[_name] = importlib.util.module_from_spec(_spec)
            _spec.loader.exec_module(sys.modules[_name])

from benchmarks import CACHE, REPO  # noqa: E402
from benchmarks.fixtures import base_layer, five_layers, push  # noqa: E402
from benchmarks.links import run_links  # noqa: E402
from benchmarks.measuring import Series, loadavg, log, rmtree  # noqa: E402
from benchmarks.report import machine_info, write_report  # noqa: E402
from benchmarks.scenarios import (  # noqa: E402
    profile_run,
    raw_limits,
    scenario_images,
    scenario_pulls,
    scenario_startup,
    scenario_uptodate,
)
from benchmarks.scale import scenario_many_layers  # noqa: E402
from benchmarks.tools import Tools, find_peers, install_imgctl  # noqa: E402
from tests.support.registry import Registry  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", "-n", type=int, default=None, help="runs per cell (default 5; 2 with --quick)")
    ap.add_argument("--quick", action="store_true", help="smaller images, N=2: a smoke run")
    ap.add_argument("--base", choices=("auto", "debootstrap", "files"), default="auto",
                    help="how to build the ~200 MB root filesystem layer (default: debootstrap, else files)")
    ap.add_argument("--sizes", default=None,
                    help="tag counts for `images` (default 1,1000,10000,100000; 1,1000 with --quick)")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--no-skopeo", action="store_true")
    ap.add_argument("--profile", action="store_true", help="also record py-spy / pyinstrument profiles of imgctl")
    ap.add_argument("--podman-cli-tags", type=int, default=200,
                    help="tags added with `podman tag` before writing images.json directly (default 200)")
    g = ap.add_argument_group("many layers (section 6)")
    g.add_argument("--no-layers", action="store_true", help="skip the cold pull of the many-layer image")
    g.add_argument("--layers", type=int, default=None, help="layers of that image (default 5000; 500 with --quick)")
    g.add_argument("--layers-runs", type=int, default=2, help="imgctl's runs on it (default 2)")
    g.add_argument("--layers-peer-runs", type=int, default=1, help="skopeo's and podman's runs on it (default 1)")
    g.add_argument("--layers-timeout", type=float, default=120,
                   help="seconds before a peer's pull of it is killed and that peer not run again (default 120; "
                        "skopeo took 8 s for 500 layers and over 180 s for 5,000 here, podman 77 s for 500); "
                        "imgctl gets at least 600 s")
    g = ap.add_argument_group("emulated link (section 7)")
    g.add_argument("--no-links", action="store_true", help="skip the link section")
    g.add_argument("--rtt", type=float, default=0.030, help="round trip in seconds (default 0.030)")
    g.add_argument("--rate", type=float, default=20.0, help="MB/s per connection and direction (default 20)")
    g.add_argument("--links-runs", type=int, default=None,
                   help="runs per cell for the base and five-layer images (default 3; 1 with --quick)")
    g.add_argument("--big-mib", type=int, default=None,
                   help="size of the big single-layer image in MiB (default 1024; 32 with --quick)")
    g.add_argument("--big-runs", type=int, default=None,
                   help="runs per cell for the big image, about a minute per pull (default 2; 1 with --quick; 0 skips it)")
    g.add_argument("--concurrent-runs", type=int, default=None,
                   help="runs of two concurrent pulls into one store (default 2; 1 with --quick; 0 skips them)")
    ap.add_argument("--output", "-o", type=Path, default=REPO / "BENCHMARKS.md")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 2 if args.quick else 5
    q = args.quick
    sizes = [int(x) for x in (args.sizes or ("1,1000" if q else "1,1000,10000,100000")).split(",")]
    args.layers = args.layers or (500 if q else 5000)
    args.links_runs = args.links_runs if args.links_runs is not None else (1 if q else 3)
    args.big_mib = args.big_mib or (32 if q else 1024)
    args.big_runs = args.big_runs if args.big_runs is not None else (1 if q else 2)
    args.concurrent_runs = args.concurrent_runs if args.concurrent_runs is not None else (1 if q else 2)

    started = datetime.now(UTC)
    t_start = time.monotonic()
    peers = find_peers(args)
    notes = list(peers.notes)
    CACHE.mkdir(parents=True, exist_ok=True)

    log("installing imgctl from this checkout into a venv (benchmarks/.cache/) ...")
    venv_python = install_imgctl(notes)
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
            tools = Tools(peers, work, reg.host, venv_python)
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
            if not args.no_layers:
                scenario_many_layers(tools, reg, args.layers, args.layers_runs, res,
                                     peer_runs=args.layers_peer_runs, timeout=args.layers_timeout)
            if args.profile:
                profile_run(tools, refs, base_kept.get("imgctl"), res, sizes[-1])
            for label in list(kept):
                for tool, store in kept[label].items():
                    tools.clean(tool, store)
        if not args.no_links:
            run_links(args, tools, base, base_label, multi, res)
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
