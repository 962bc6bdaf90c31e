"""Cold pulls through an emulated link (issue 16): imgctl, skopeo and podman side by side.

Run by ``run.py`` (its link section; ``--no-links`` skips it, ``--links-runs``, ``--big-runs``,
``--big-mib``, ``--rtt``, ``--rate`` tune it).  The registry (Debian's ``docker-registry``) sits
behind :mod:`benchmarks.linkemu` (a loopback reverse proxy adding ``rtt / 2`` each way and
capping each connection's throughput) and every tool pulls from the emulator's address.
Images: the base image of ``run.py`` (one ~90 MB gzip layer), its five-layer image, and a
single-layer image of ``big_mib`` MiB of incompressible bytes.  Layers are cached under
``benchmarks/.cache/layers`` and this registry's storage under ``benchmarks/.cache/links-registry``
(so the big image is pushed once).  Tools rotate within each run as in ``run.py``; wall time
and peak RSS are measured the same way (``run_measured``).

Also: the requests each tool makes before its first layer byte on a cold pull of the five-layer
image (from the emulator's request log), what one connection carries (a raw GET), and two
concurrent cold pulls of one image into one store, with the bytes the registry sent (the
emulator's byte counts).

The registry stores blobs on its filesystem and serves them itself (no redirects).  A
registry that redirects blob GETs to another host needs a second :class:`LinkEmulator` in
front of that host (see linkemu's docstring).
"""

from __future__ import annotations

import json
import random
import re
import threading
import time

from tests.support.images import build_tar, file, get_manifest
from tests.support.registry import Registry

from . import CACHE
from .fixtures import CachedLayer, _cache_layer, push
from .linkemu import LinkEmulator
from .measuring import MiB, Series, fmt_mib, fmt_s, human, loadavg, log, ratio, rmtree, rotate, run_measured, slug
from .scenarios import check
from .tools import Tools


# Targets of issue 16 (imgctl / peer, through the emulated link): the big image, the base image.
TARGETS = {"big": 0.35, "base": 0.5}


def target_for(label: str) -> float | None:
    """The target ratio for an image label; the big image's only when it is at least 1 GiB."""
    if label.startswith("big"):
        m = re.search(r"(\d+) MiB", label)
        return TARGETS["big"] if m and int(m.group(1)) >= 1024 else None
    if label.endswith("-rootfs"):
        return TARGETS["base"]
    return None


def big_layer(mib: int) -> CachedLayer:
    """One layer of ``mib`` MiB of incompressible bytes (64 MiB files from a seeded PRNG), cached."""
    def build() -> bytes:
        rng = random.Random(16)
        parts, left, i = [], mib * MiB, 0
        while left > 0:
            n = min(left, 64 * MiB)
            parts.append(file(f"opt/model/shard{i:03d}.bin", rng.randbytes(n)))
            left -= n
            i += 1
        return build_tar(parts)

    return _cache_layer(f"big-{mib}MiB", build, f"{mib} MiB of random bytes in 64 MiB files")


def registry_has(reg, repo: str, tag: str, layers: list[CachedLayer]) -> bool:
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
    push(reg, repo, tag, layers)
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
        log(f"    {ONE_CONN} {label}: {n / 1e6:.0f} MB in {out[label]:.2f} s"
            + (f" (the cap alone: {n / link.rate:.2f} s)" if link.rate else ""))


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


CONCURRENT_TOOLS = ("imgctl", "podman")  # skopeo copies into an OCI layout: no shared store to race on


def scenario_concurrent(tools: Tools, link: LinkEmulator, label: str, ref: str, layers: list[CachedLayer],
                        runs: int, res: dict) -> None:
    """Two cold pulls of ``ref`` started together into one empty store, per tool (imgctl, podman):
    the wall time of each and the bytes the registry sent through ``link`` to both (the emulator's
    per-connection byte counts), against the image's layer bytes.  Fills ``res["concurrent"]``."""
    layer_bytes = sum(l.size for l in layers)
    out = res.setdefault("concurrent", {"image": label, "layer_bytes": layer_bytes, "tools": {}})
    names = [t for t in tools.names() if t in CONCURRENT_TOOLS]
    log(f"(link) two concurrent cold pulls of {label} into one store: {runs} runs x {', '.join(names)}"
        f"  [load {loadavg()}]")
    for i in range(runs):
        for tool in rotate(names, i):
            d = out["tools"].setdefault(tool, {"runs": []})
            store = tools.work / f"concurrent-{tool}-{i}"
            rmtree(store)
            store.mkdir(parents=True)
            link.reset_log()
            results: list = [None, None]

            def one(k: int) -> None:
                results[k] = run_measured(tools.pull_cmd(tool, store, ref), env=tools.env, rss=True,
                                          time_bin=tools.time, timeout=1800)

            t0 = time.perf_counter()
            threads = [threading.Thread(target=one, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            both = time.perf_counter() - t0
            digests = {l.digest for l in layers}
            blob_gets = [r for r in link.requests if r.method == "GET" and r.path.rsplit("/", 1)[-1] in digests]
            run = {
                "walls": [r[0].wall for r in results],
                "rcs": [r[0].rc for r in results],
                "rss_kib": [r[0].maxrss_kib for r in results],
                "both_s": both,
                "bytes_down": sum(c.down_bytes for c in link.connections),
                "layer_gets": len(blob_gets),
                "layers_fetched": len({r.path.rsplit("/", 1)[-1] for r in blob_gets}),
            }
            for (smp, err) in results:
                if smp.rc != 0:
                    log(f"    {tool} concurrent pull FAILED (exit {smp.rc}): {err.strip()[-600:]}")
            d["runs"].append(run)
            log(f"    run {i + 1} {tool:7s} walls {', '.join(fmt_s(w) for w in run['walls'])}; "
                f"{human(run['bytes_down'])} from the registry for {human(layer_bytes)} of layers "
                f"({run['bytes_down'] / layer_bytes:.2f}x), {run['layer_gets']} layer GETs")
            tools.clean(tool, store)


def concurrent_markdown(res: dict) -> list[str]:
    c = res.get("concurrent")
    if not c or not c.get("tools"):
        return []
    lb = c["layer_bytes"]
    single = res.get("links", {}).get(c["image"], {})
    lines = ["", f"### Two concurrent cold pulls of one image into one store (`{c['image']}`, through the link)", "",
             "Two processes of the same tool started together, pulling the same image into the same empty store "
             "(podman: the same `--root` and `--runroot`). *Bytes from the registry* is everything the registry sent "
             "through the emulator to both processes (headers, manifests and config included), against the sum of "
             f"the image's layer sizes ({human(lb)}); 1.00x means each blob crossed the link once, 2.00x twice. "
             "*Alone* is the median cold pull of the same image above. Target: each blob transferred once.", "",
             "| tool | run | wall, each process | both done | alone | bytes from the registry | layer GETs | |",
             "|---|---|---|---|---|---|---|---|"]
    for tool, d in c["tools"].items():
        alone = single.get(tool)
        for i, r in enumerate(d["runs"]):
            ok = all(rc == 0 for rc in r["rcs"])
            walls = " / ".join(fmt_s(w) + ("" if rc == 0 else f" (exit {rc})") for w, rc in zip(r["walls"], r["rcs"]))
            x = r["bytes_down"] / lb if lb else 0
            v = "–" if not ok else ("met" if x <= 1.05 else "**not met**")
            lines.append(f"| {tool} | {i + 1} | {walls} | {fmt_s(r['both_s'])} | "
                         f"{fmt_s(alone.median) if alone else '–'} | {human(r['bytes_down'])} ({x:.2f}x) | "
                         f"{r['layer_gets']} ({r['layers_fetched']} distinct) | {v} |")
    return lines


def run_links(args, tools: Tools, base: CachedLayer, base_label: str, multi: list[CachedLayer], res: dict) -> dict[str, str]:
    """The whole link section: its own registry (storage cached under benchmarks/.cache/links-registry),
    the big image, the emulator, then round trips, the one-connection floor, the cold pulls of the three
    images and the concurrent pulls.  Returns the images' descriptions for the report."""
    big = big_layer(args.big_mib)
    big_label = f"big ({args.big_mib} MiB)"
    images_info = {
        base_label: f"1 layer, {base.size / 1e6:.0f} MB gzip",
        "five-layers": f"{sum(l.size for l in multi) / 1e6:.0f} MB gzip",
        big_label: f"1 layer, {big.size / 1e6:.0f} MB gzip",
    }
    rate = args.rate * 1e6
    # --quick pushes other images under the same tags: its own storage keeps the full one's tags
    storage = CACHE / ("links-registry-quick" if args.quick else "links-registry")
    storage.mkdir(parents=True, exist_ok=True)
    with Registry(extra={"storage": {"filesystem": {"rootdirectory": str(storage)}}}) as reg:
        log(f"(link) registry at {reg.url} (storage cached in {storage}); pushing (once) ...")
        push_cached(reg, "bench/base", "v1", [base])
        push_cached(reg, "bench/five", "v1", multi)
        push_cached(reg, "bench/big", "v1", [big])
        host, port = reg.host.split(":")
        with LinkEmulator((host, int(port)), rtt=args.rtt, rate=rate) as link:
            res["link_params"] = {"rtt": args.rtt, "rate": rate, "runs": args.links_runs, "big_runs": args.big_runs,
                                  "images_info": images_info}
            scenario_round_trips(tools, link, f"{link.host}/bench/five:v1", multi, res)
            scenario_link_floor(link, {base_label: (f"{link.host}/bench/base:v1", [base]),
                                       big_label: (f"{link.host}/bench/big:v1", [big])}, res)
            images = {base_label: (f"{link.host}/bench/base:v1", args.links_runs),
                      "five-layers": (f"{link.host}/bench/five:v1", args.links_runs)}
            if args.big_runs > 0:
                images[big_label] = (f"{link.host}/bench/big:v1", args.big_runs)
            scenario_links(tools, link, images, res)
            if args.concurrent_runs > 0:
                scenario_concurrent(tools, link, "five-layers", f"{link.host}/bench/five:v1", multi,
                                    args.concurrent_runs, res)
    return images_info


# --------------------------------------------------------------------------------------------
# report
# --------------------------------------------------------------------------------------------
def _verdict(r: float | None, target: float | None) -> str:
    if r is None or target is None:
        return ""
    return "met" if r <= target else "**not met**"


def link_targets(res: dict) -> list[tuple[str, str, bool | None]]:
    """Issue 16's link targets: (what, measured, met) for the report's targets table."""
    out = []
    for label, per_tool in res.get("links", {}).items():
        target = target_for(label)
        me = per_tool.get("imgctl")
        if target is None or me is None:
            continue
        for peer in ("skopeo", "podman"):
            if peer not in per_tool:
                continue
            r = ratio(me.median, per_tool[peer].median)
            out.append((f"link: cold pull `{label}` ≤ {target}× {peer}",
                        "–" if r is None else f"{r:.2f}× ({fmt_s(me.median)} vs {fmt_s(per_tool[peer].median)})",
                        None if r is None else r <= target))
    c = res.get("concurrent", {})
    run = c.get("tools", {}).get("imgctl", {}).get("runs", [])
    if run and c.get("layer_bytes"):
        worst = max(r["bytes_down"] for r in run) / c["layer_bytes"]
        ok = all(rc == 0 for r in run for rc in r["rcs"])
        out.append(("two concurrent pulls of one image transfer each blob once",
                    f"{worst:.2f}× the layer bytes (worst of {len(run)} runs)", (worst <= 1.05) if ok else False))
    return out


def links_markdown(res: dict) -> str:
    """The link section: a table per image and tool, ratios against the targets, round trips."""
    p = res["link_params"]
    rtt, rate, images_info = p["rtt"], p["rate"], p["images_info"]
    big = [label for label in res.get("links", {}) if label.startswith("big")]
    lines = [
        f"## 7. Through an emulated link ({rtt * 1000:.0f} ms round trip, {rate / 1e6:.0f} MB/s per connection)",
        "",
        f"N = {p['runs']} runs per cell for the base and five-layer images"
        + (f", {p['big_runs']} for `{big[0]}` (one pull takes about a minute through one capped connection)"
           if big else "") + "; the tools rotate within each run, after an untimed warm-up pull each. "
        "This registry keeps its storage in `benchmarks/.cache/links-registry` (the big image is pushed once).",
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
    lines += concurrent_markdown(res)
    return "\n".join(lines) + "\n"


