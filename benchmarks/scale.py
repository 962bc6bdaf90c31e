"""Scale (issue 16): a cold pull of an image of thousands of tiny layers, with the registry's
own CPU time beside each tool's."""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path

from tests.support.images import make_image, make_layer, push_raw_manifest
from tests.support.registry import seed_storage

from .measuring import Series, fmt_s, loadavg, log, rmtree, rotate, run_measured, slug
from .scenarios import check
from .tools import Tools


def proc_cpu(pid: int) -> float | None:
    """User + system CPU seconds of a running process, from /proc/<pid>/stat."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state is fields[0]
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def seed_many_layers(reg, repo: str, tag: str, n: int) -> tuple[str, int]:
    """An image of ``n`` one-file gzip layers (the builder of tests/test_failclosed_pull.py's
    5,000-layer test), put straight into the registry's storage; returns (ref, blob bytes)."""
    t0 = time.monotonic()
    img = make_image([make_layer({f"l/{i}": str(i)}, "gzip") for i in range(n)])
    blobs = list(img.blobs())
    seed_storage(reg, repo, blobs)
    push_raw_manifest(reg.url, repo, tag, img.manifest_bytes, img.manifest_media_type)
    log(f"  seeded {repo}:{tag}: {n:,} layers, manifest {len(img.manifest_bytes) / 1e6:.1f} MB "
        f"({time.monotonic() - t0:.0f} s)")
    return f"{reg.host}/{repo}:{tag}", sum(len(d) for _, d in blobs)


def scenario_many_layers(tools: Tools, reg, n_layers: int, runs: int, res: dict, *, peer_runs: int,
                         timeout: float) -> None:
    """Cold pulls of an image of ``n_layers`` tiny layers: wall time, peak RSS, the tool's CPU
    (its process tree, from RUSAGE_CHILDREN) and the registry's CPU (/proc/<pid>/stat) during each
    pull.  imgctl runs ``runs`` times, skopeo and podman ``peer_runs`` times (a peer that exceeds
    ``timeout`` is killed and not run again; imgctl gets at least 600 s).  No warm-up pull: one costs as much as a run, and the
    seeded blobs are in the page cache already.  Fills ``res["many_layers"]``."""
    ref, blob_bytes = seed_many_layers(reg, "bench/many", "v1", n_layers)
    out = res.setdefault("many_layers", {"layers": n_layers, "blob_bytes": blob_bytes, "timeout": timeout,
                                         "runs": runs, "peer_runs": peer_runs, "tools": {}})
    names = tools.names()
    for t in names:
        out["tools"][t] = {"series": Series(), "registry_cpu": [], "tool_cpu": []}
    log(f"(6) cold pull of {n_layers:,} layers: {runs} runs imgctl, {peer_runs} per peer  [load {loadavg()}]")
    for i in range(max(runs, peer_runs)):
        for tool in rotate(names, i):
            d = out["tools"][tool]
            if i >= (runs if tool == "imgctl" else peer_runs) or d.get("timed_out"):
                continue
            store = tools.work / f"many-{slug(tool)}-{i}"
            rmtree(store)
            store.mkdir(parents=True)
            reg0, me0 = proc_cpu(reg.proc.pid), children_cpu()
            limit = timeout if tool != "imgctl" else max(timeout, 600)
            s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env, rss=True, time_bin=tools.time,
                                  timeout=limit)
            reg1, me1 = proc_cpu(reg.proc.pid), children_cpu()
            if s.wall >= limit * 0.99 and s.rc != 0:
                d["timed_out"] = True
                d["series"].failed = f"killed after {limit:.0f} s"
                d["series"].samples.append(s)
                log(f"    run {i + 1} {tool:7s} killed after {limit:.0f} s")
            else:
                check(s, err, f"{tool} pull {ref}", d["series"])
                log(f"    run {i + 1} {tool:7s} {fmt_s(s.wall):>9s}  rss {s.maxrss_kib / 1024:.0f} MiB  "
                    f"cpu {me1 - me0:.1f} s  registry cpu {reg1 - reg0 if reg0 is not None else float('nan'):.1f} s")
            d["tool_cpu"].append(me1 - me0)
            d["registry_cpu"].append(None if reg0 is None or reg1 is None else reg1 - reg0)
            if d.get("timed_out") and tool == "podman":
                # `podman system reset` on thousands of half-applied layers takes minutes; a pull
                # mounts nothing, so the directories can simply go
                rmtree(store)
                rmtree(tools.runroot(store))
            else:
                tools.clean(tool, store)
