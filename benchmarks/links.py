#!/usr/bin/env python3
"""Cold pulls through an emulated link (issue 16): imgctl, skopeo and podman side by side.

    python benchmarks/links.py                  # 30 ms round trip, 20 MB/s per connection
    python benchmarks/links.py --runs 1 --big-mib 1024 --rtt 0.03 --rate 20

The registry (Debian's ``docker-registry``) sits behind :mod:`linkemu` (a loopback reverse
proxy adding ``rtt / 2`` each way and capping each connection's throughput) and every tool
pulls from the emulator's address.  Images: the base image of ``run.py`` (one ~90 MB gzip
layer), its five-layer image, and a single-layer image of ``--big-mib`` MiB of incompressible
bytes.  Layers are cached under ``benchmarks/.cache/layers`` and the registry's storage under
``benchmarks/.cache/links-registry`` (so the big image is pushed once).  Tools rotate within
each run as in ``run.py``; wall time and peak RSS are measured the same way (``run_measured``).

Also counts the HTTP requests each tool makes before its first layer byte on a cold pull of
the five-layer image (from the emulator's request log).

The registry stores blobs on its filesystem and serves them itself (no redirects).  A
registry that redirects blob GETs to another host needs a second :class:`LinkEmulator` in
front of that host (see linkemu's docstring).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import run  # noqa: E402  (benchmarks/run.py: tools, images, measuring)
from linkemu import LinkEmulator  # noqa: E402
from run import (  # noqa: E402
    CACHE,
    MiB,
    CachedLayer,
    Sample,
    Series,
    Tools,
    base_layer,
    check,
    find_peers,
    fmt_mib,
    fmt_s,
    five_layers,
    loadavg,
    log,
    ratio,
    rmtree,
    rotate,
    run_measured,
    slug,
)

# Targets of issue 16 (imgctl / peer, through the emulated link): the big image, the base image.
TARGETS = {"big": 0.35, "base": 0.5}


def target_for(label: str) -> float | None:
    if label.startswith("big"):
        return TARGETS["big"]
    if label.endswith("-rootfs"):
        return TARGETS["base"]
    return None


def big_layer(mib: int) -> CachedLayer:
    """One layer of ``mib`` MiB of incompressible bytes (64 MiB files from a seeded PRNG), cached."""
    from images import build_tar, file  # tests/images.py

    def build() -> bytes:
        rng = random.Random(16)
        parts, left, i = [], mib * MiB, 0
        while left > 0:
            n = min(left, 64 * MiB)
            parts.append(file(f"opt/model/shard{i:03d}.bin", rng.randbytes(n)))
            left -= n
            i += 1
        return build_tar(parts)

    return run._cache_layer(f"big-{mib}MiB", build, f"{mib} MiB of random bytes in 64 MiB files")


def registry_has(reg, repo: str, tag: str, layers: list[CachedLayer]) -> bool:
    from images import get_manifest  # tests/images.py

    try:
        m = json.loads(get_manifest(reg.url, repo, tag).content)
    except Exception:  # noqa: BLE001  (absent or unreadable: push again)
        return False
    return [x.get("digest") for x in m.get("layers", [])] == [l.digest for l in layers]


def push_cached(reg, repo: str, tag: str, layers: list[CachedLayer]) -> None:
    if registry_has(reg, repo, tag, layers):
        log(f"  {repo}:{tag} already in the cached registry storage")
        return
    t0 = time.monotonic()
    run.push(reg, repo, tag, layers)
    log(f"  pushed {repo}:{tag} ({time.monotonic() - t0:.0f} s)")


# --------------------------------------------------------------------------------------------
# scenarios
# --------------------------------------------------------------------------------------------
def scenario_links(tools: Tools, link: LinkEmulator, images: dict[str, tuple[str, int]], res: dict) -> None:
    """Cold pulls through ``link``: ``images`` maps label -> (ref through the link, runs).
    Fills ``res["links"][label][tool]`` with Series."""
    out = res.setdefault("links", {})
    first = next(iter(images.values()))[0]
    for tool in tools.names():  # untimed warm-up on the first image: binaries, .pyc, page cache
        store = tools.work / f"links-warmup-{tool}"
        store.mkdir(parents=True, exist_ok=True)
        s, err = run_measured(tools.pull_cmd(tool, store, first), env=tools.env)
        if s.rc != 0:
            log(f"    warm-up {tool} failed (exit {s.rc}): {err.strip()[-600:]}")
        tools.clean(tool, store)
    for label, (ref, n) in images.items():
        out[label] = {t: Series() for t in tools.names()}
        log(f"(link) cold pull {label} through {link.rtt * 1000:.0f} ms / {link.rate / 1e6:.0f} MB/s: "
            f"{n} runs x {', '.join(tools.names())}  [load {loadavg()}]")
        for i in range(n):
            for tool in rotate(tools.names(), i):
                store = tools.work / f"link-{slug(label)}-{tool}-{i}"
                rmtree(store)
                store.mkdir(parents=True)
                s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env, rss=True,
                                      time_bin=tools.time, timeout=1800)
                check(s, err, f"{tool} pull {ref}", out[label][tool])
                log(f"    run {i + 1} {tool:7s} {fmt_s(s.wall):>9s}  rss {s.maxrss_kib / 1024:.0f} MiB")
                tools.clean(tool, store)


ONE_CONN = "one connection (raw GET)"


def scenario_link_floor(link: LinkEmulator, images: dict[str, tuple[str, list[CachedLayer]]], res: dict) -> None:
    """What one connection can carry: a plain streaming GET of each layer blob in turn through
    ``link`` (no tool, no hashing, bytes discarded), once per image; in ``res["link_floor"]``."""
    import httpx

    out = res.setdefault("link_floor", {})
    for label, (ref, layers) in images.items():
        repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
        t0 = time.perf_counter()
        n = 0
        with httpx.Client(base_url=f"http://{link.host}", trust_env=False, timeout=60) as c:
            for layer in layers:
                with c.stream("GET", f"/v2/{repo}/blobs/{layer.digest}") as r:
                    r.raise_for_status()
                    for chunk in r.iter_raw(1 << 20):
                        n += len(chunk)
        out[label] = time.perf_counter() - t0
        log(f"    {ONE_CONN} {label}: {n / 1e6:.0f} MB in {out[label]:.2f} s "
            f"(the cap alone: {n / link.rate:.2f} s)" if link.rate else "")


def scenario_round_trips(tools: Tools, link: LinkEmulator, ref: str, layers: list[CachedLayer],
                         res: dict) -> None:
    """One cold pull per tool through ``link``: the requests (and connections) before the first
    GET of a layer blob.  Fills ``res["round_trips"][tool]``."""
    digests = {l.digest for l in layers}
    out = res.setdefault("round_trips", {})
    for tool in tools.names():
        store = tools.work / f"rt-{tool}"
        rmtree(store)
        store.mkdir(parents=True)
        link.reset_log()
        t0 = time.monotonic()
        s, err = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env)
        reqs = list(link.requests)
        conns = list(link.connections)
        tools.clean(tool, store)
        if s.rc != 0:
            log(f"    round trips: {tool} failed (exit {s.rc}): {err.strip()[-400:]}")
            out[tool] = {"failed": f"exit {s.rc}"}
            continue
        first_layer = next((r for r in reqs if "/blobs/" in r.path and r.path.rsplit("/", 1)[-1] in digests), None)
        t_first = first_layer.t if first_layer else float("inf")
        before = [r for r in reqs if r.t <= t_first]
        opened = [c for c in conns if c.accepted <= t_first]
        events = [(c.accepted, f"conn {c.id}: connect" + (
            " (TLS ClientHello: an HTTPS attempt)" if c.tls else
            "" if c.first_up is not None else " (no bytes sent)")) for c in opened]
        events += [(r.t, f"conn {r.conn}: `{r.method} {r.path}`") for r in before]
        events.sort(key=lambda e: e[0])
        t_net = events[0][0] if events else t0
        out[tool] = {
            "wall": s.wall,
            "first_network_s": t_net - t0,
            "first_layer_request_s": (t_first - t0) if first_layer else None,
            # the first layer byte arrives one RTT after its request left the client
            "round_trips_est": ((t_first - t_net) / link.rtt + 1) if first_layer and link.rtt else None,
            "requests_before": len(before) - (1 if first_layer else 0),
            "connections_before": len(opened),
            "tls_probes": sum(1 for c in opened if c.tls),
            "events": [{"t_ms": round((t - t0) * 1000), "what": w} for t, w in events],
            "requests_all": [{"t_ms": round((r.t - t0) * 1000), "conn": r.conn, "method": r.method,
                              "path": r.path} for r in reqs],
        }
        d = out[tool]
        log(f"    {tool}: {d['requests_before']} requests, {d['connections_before']} connection(s) "
            f"({d['tls_probes']} TLS probes) before the first layer request at "
            f"{d['first_layer_request_s'] or 0:.3f} s, ~{d['round_trips_est'] or 0:.1f} round trips")


def counted_round_trips(d: dict, rtt: float) -> int:
    """Round trips on the way to the first layer byte, counted from the event log: events (connects,
    requests) less than 0.75 RTT after the start of a group were sent together (parallel
    connections); a dependent one comes at least one RTT later.  Each group costs a round trip,
    and so does each HTTPS attempt's ClientHello on a plain-HTTP registry."""
    groups, start = 0, None
    for e in d["events"]:
        t = e["t_ms"] / 1000
        if start is None or t - start >= 0.75 * rtt:
            groups, start = groups + 1, t
    return groups + d["tls_probes"]


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def _verdict(r: float | None, target: float | None) -> str:
    if r is None or target is None:
        return ""
    return "met" if r <= target else "**not met**"


def links_markdown(res: dict, rtt: float, rate: float, images_info: dict[str, str]) -> str:
    """The link section: a table per image and tool, ratios against the targets, round trips."""
    lines = [
        f"## Through an emulated link ({rtt * 1000:.0f} ms round trip, {rate / 1e6:.0f} MB/s per connection)",
        "",
        "Cold pulls through `benchmarks/linkemu.py` (a loopback reverse proxy in front of the registry: "
        "each chunk is delivered RTT/2 after it is sent in each direction, a new connection's first byte "
        "waits one RTT for the handshake, and each connection is capped at the rate in each direction). "
        "Median wall time (min – max) and peak RSS (max over runs). *One connection (raw GET)* is a "
        "plain streaming GET of the layer blob through the link, once, bytes discarded: what a "
        "single connection allows.",
        "",
        "| image | tool | wall | peak RSS |",
        "|---|---|---|---|",
    ]
    links = res.get("links", {})
    for label, per_tool in links.items():
        for tool, series in per_tool.items():
            info = f" ({images_info[label]})" if images_info.get(label) else ""
            lines.append(f"| {label}{info} | {tool} | {series.cell()} | {fmt_mib(series.rss_max)} |")
        if label in res.get("link_floor", {}):
            lines.append(f"| {label} | {ONE_CONN} | {fmt_s(res['link_floor'][label])} | |")
    lines += ["", "| image | imgctl / skopeo | imgctl / podman | target |", "|---|---|---|---|"]
    for label, per_tool in links.items():
        me = per_tool.get("imgctl")
        target = target_for(label)
        cells = []
        for peer in ("skopeo", "podman"):
            r = ratio(me.median if me else None, per_tool[peer].median if peer in per_tool else None)
            cells.append("–" if r is None else f"{r:.2f}x {_verdict(r, target)}".strip())
        lines.append(f"| {label} | {cells[0]} | {cells[1]} | {'≤ %.2fx' % target if target else '–'} |")
    rt = res.get("round_trips", {})
    if rt:
        lines += ["", "### Round trips before the first layer byte (cold pull of the five-layer image)", "",
                  "Times from the start of the process. *Round trips* are counted from the events below "
                  "(`counted_round_trips`: connects and requests sent together count once, an HTTPS "
                  "attempt's ClientHello counts one more); *time / RTT* is (first layer request − first "
                  "connect) / RTT + 1 and includes the tool's own work between round trips.", "",
                  "| tool | first connect | requests before | connections (TLS probes) | first layer request "
                  "| round trips | time / RTT |", "|---|---|---|---|---|---|---|"]
        for tool, d in rt.items():
            if "failed" in d:
                lines.append(f"| {tool} | failed: {d['failed']} | | | | | |")
                continue
            at, est = d["first_layer_request_s"], d["round_trips_est"]
            lines.append(f"| {tool} | {d['first_network_s'] * 1000:.0f} ms | {d['requests_before']} | "
                         f"{d['connections_before']} ({d['tls_probes']}) | "
                         f"{'–' if at is None else f'{at * 1000:.0f} ms'} | {counted_round_trips(d, rtt)} | "
                         f"{'–' if est is None else f'{est:.1f}'} |")
        for tool, d in rt.items():
            if "failed" in d:
                continue
            lines += ["", f"{tool}:", ""]
            lines += [f"- +{e['t_ms']} ms {e['what']}" for e in d["events"]]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", "-n", type=int, default=3, help="runs per cell for the base and five-layer images")
    ap.add_argument("--big-runs", type=int, default=2, help="runs per cell for the big image")
    ap.add_argument("--big-mib", type=int, default=1024, help="size of the big single layer in MiB (>= 1024)")
    ap.add_argument("--rtt", type=float, default=0.030, help="round trip in seconds (default 0.030)")
    ap.add_argument("--rate", type=float, default=20.0, help="MB/s per connection and direction (default 20)")
    ap.add_argument("--base", choices=("auto", "debootstrap", "files"), default="auto")
    ap.add_argument("--no-podman", action="store_true")
    ap.add_argument("--no-skopeo", action="store_true")
    ap.add_argument("--round-trips-only", action="store_true", help="only count the requests before the first layer")
    ap.add_argument("--report-from", type=Path, default=None,
                    help="only rewrite the markdown from a links-results.json of an earlier run")
    ap.add_argument("--output", "-o", type=Path, default=CACHE / "links.md")
    args = ap.parse_args()
    args.quick = False
    rate = args.rate * 1e6

    if args.report_from:
        saved = json.loads(args.report_from.read_text())
        for per_tool in saved.get("links", {}).values():
            for tool, sj in per_tool.items():
                per_tool[tool] = Series([Sample(**x) for x in sj["samples"]], sj["failed"])
        md = links_markdown(saved, saved.get("rtt", args.rtt), saved.get("rate", rate), saved.get("images_info", {}))
        args.output.write_text(md)
        print(md)
        return 0

    peers = find_peers(args)
    CACHE.mkdir(parents=True, exist_ok=True)
    log("preparing images (cached under benchmarks/.cache/) ...")
    base = base_layer(args, peers)
    multi = five_layers(args)
    big = big_layer(args.big_mib)
    base_label = "debian-rootfs" if base.name.startswith("debian") else "files-rootfs"
    big_label = f"big ({args.big_mib} MiB)"
    images_info = {
        base_label: f"1 layer, {base.size / 1e6:.0f} MB gzip",
        "five-layers": f"{sum(l.size for l in multi) / 1e6:.0f} MB gzip",
        big_label: f"1 layer, {big.size / 1e6:.0f} MB gzip",
    }

    from registry import Registry  # tests/registry.py

    storage = CACHE / "links-registry"
    storage.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="imgctl-links-"))
    tools = None
    res: dict = {"load": {"start": loadavg()}}
    t0 = time.monotonic()
    try:
        with Registry(extra={"storage": {"filesystem": {"rootdirectory": str(storage)}}}) as reg:
            log(f"registry at {reg.url}; pushing (once) ...")
            push_cached(reg, "bench/base", "v1", [base])
            push_cached(reg, "bench/five", "v1", multi)
            push_cached(reg, "bench/big", "v1", [big])
            host, port = reg.host.split(":")
            with LinkEmulator((host, int(port)), rtt=args.rtt, rate=rate) as link:
                tools = Tools(peers, work, link.host)
                scenario_round_trips(tools, link, f"{link.host}/bench/five:v1", multi, res)
                if not args.round_trips_only:
                    scenario_link_floor(link, {base_label: (f"{link.host}/bench/base:v1", [base]),
                                               big_label: (f"{link.host}/bench/big:v1", [big])}, res)
                    scenario_links(tools, link, {
                        base_label: (f"{link.host}/bench/base:v1", args.runs),
                        "five-layers": (f"{link.host}/bench/five:v1", args.runs),
                        big_label: (f"{link.host}/bench/big:v1", args.big_runs),
                    }, res)
    finally:
        rmtree(work)
        if tools is not None:
            tools.close()
    res["load"]["end"] = loadavg()
    res.update(rtt=args.rtt, rate=rate, images_info=images_info)
    md = links_markdown(res, args.rtt, rate, images_info)
    md += f"\nLoad average {res['load']['start']} → {res['load']['end']}; {(time.monotonic() - t0) / 60:.1f} min.\n"
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(md)
    (CACHE / "links-results.json").write_text(json.dumps(
        res, default=lambda o: o.to_json() if isinstance(o, Series) else str(o), indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
