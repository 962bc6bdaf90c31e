"""Each benchmark: cold and warm pulls, `images` over stores of growing tag counts, start-up
and what it imports, raw limits of the machine, and optional profiles."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from pathlib import Path

from . import CACHE, REPO
from .measuring import MiB, Sample, Series, fmt_s, loadavg, log, rmtree, rotate, run_measured, run_quiet, slug
from .tools import Tools
from .fixtures import CachedLayer


# Modules that a command which does not talk to a registry must never import (issue 8).
HEAVY_MODULES = ("httpx", "httpcore", "h11", "h2", "anyio", "rich", "urllib3", "requests", "imgctl.registry", "imgctl.pull")

# Tag names used for the `images` scenario (same strings for imgctl and podman).
TAG_REPOS = 100


# `imgctl images` variants timed beside the table, to split its cost (see the report's section 3)
IMAGES_SPLIT = {
    "template": ["--format", "{{.Repository}}:{{.Tag}} {{.ID}}"],
    "quiet": ["-q"],
}


def tag_name(i: int) -> str:
    return f"bench.local/tags/r{i % TAG_REPOS:03d}:t{i:05d}"


def check(sample: Sample, err: str, what: str, series: Series) -> None:
    series.samples.append(sample)
    if sample.rc != 0:
        series.failed = f"exit {sample.rc}"
        log(f"    {what} FAILED (exit {sample.rc}): {err.strip()[-600:]}")


FLOOR = "Python floor"  # benchmarks/floor_pull.py: the blobs alone, with diff_ids, no CLI/HTTP library/store
PYTHON_START = "python -c pass (interpreter floor)"
# What any program of imgctl's fixed shape imports before it can pull: the CLI library, the HTTP
# library with its transport, SQLite, platformdirs (no imgctl code, no work), with the optional
# modules imgctl's CLI keeps out (httpcore would import trio when installed: 60 ms here).
DEPS_FLOOR = "python -c 'import typer, httpx, httpcore, sqlite3, platformdirs' (dependencies' floor)"
DEPS_IMPORT = (
    "import sys\n"
    "for _m in ('trio', 'anyio', 'httpx._main', 'wcwidth'):  # imgctl.cli._NOT_NEEDED\n"
    "    sys.modules.setdefault(_m, None)\n"
    "import typer, httpx, httpcore, sqlite3, platformdirs"
)


def floor_cmd(tools: Tools, store: Path, ref: str, layers: list[CachedLayer]) -> list[str]:
    repo = ref.split("/", 1)[1].rsplit(":", 1)[0]
    return [tools.python, str(REPO / "benchmarks" / "floor_pull.py"), tools.host, repo, str(store),
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
    """Add tags have..upto-1 to the imgctl store in-process through imgctl's own API.

    The first through ``tag_image`` (what ``imgctl tag`` runs); the rest with the index's ``tag``,
    1,000 per transaction: one transaction per tag (a commit, journalled) made 100,000 tags take
    10 minutes on a loaded machine, and the rows are the same.  Without those index methods
    (older code), every tag goes through ``tag_image``.
    """
    from imgctl.lifecycle import tag_image
    from imgctl.reference import parse
    from imgctl.store import Store

    t0 = time.monotonic()
    st = Store(store_root)
    try:
        i = have
        if i < upto:
            tag_image(st, source, tag_name(i))
            i += 1
        index = getattr(st, "index", None)
        bulk = index is not None and hasattr(index, "transaction") and hasattr(index, "tag")
        if bulk and i < upto:
            from imgctl.localimage import resolve_image_id

            image_id = resolve_image_id(st, source)
        while i < upto:
            if not bulk:
                tag_image(st, source, tag_name(i))
                i += 1
                continue
            end = min(upto, i + 1000)
            with index.transaction():
                for k in range(i, end):
                    ref = parse(tag_name(k), default_tag=False)
                    index.tag(ref.repository, ref.tag, image_id)
            i = end
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
        # the split of `imgctl images`: the same listing without the table (a template: the index
        # read and one line per tag) and the image IDs alone (-q)
        split = {k: [*tools.images_cmd("imgctl", im_store), *extra_args] for k, extra_args in IMAGES_SPLIT.items()}
        res.setdefault("images_split", {})[str(size)] = {k: Series() for k in split}
        cmds = {t: tools.images_cmd(t, im_store if t == "imgctl" else pm_store) for t in names} | split
        log(f"(3) images @ {size:,} tags (rows: {setup})  [load {loadavg()}]")
        # one untimed warm-up each: page cache and (for imgctl) the WAL checkpoint
        for cmd in cmds.values():
            run_measured(cmd, env=tools.env)
        for i in range(n):
            for key in rotate(list(cmds), i):
                s, err = run_measured(cmds[key], env=tools.env)
                into = res["images"][str(size)][key] if key in names else res["images_split"][str(size)][key]
                check(s, err, f"{key} images", into)
        for tool in names:
            log(f"    {tool:7s} {res['images'][str(size)][tool].cell()}")
        for key in split:
            log(f"    {key:7s} {res['images_split'][str(size)][key].cell()}")
        res.setdefault("tabulate_ref", {})[str(size)] = tabulate_reference(size)


def tabulate_reference(rows: int, k: int = 3) -> float | None:
    """Seconds tabulate alone takes to lay out ``rows`` rows shaped like `imgctl images` (five
    short string columns, plain format), in this process: the best of ``k``."""
    try:
        from tabulate import tabulate
    except ImportError:
        return None
    data = [[f"bench.local/tags/r{i % 100:03d}", f"t{i:05d}", "0123456789ab", "2 years ago", "201MB"]
            for i in range(rows)]
    best = None
    for _ in range(k):
        t0 = time.perf_counter()
        tabulate(data, headers=["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"], tablefmt="plain",
                 disable_numparse=True)
        dt = time.perf_counter() - t0
        best = dt if best is None else min(best, dt)
    return best


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
    r = run_quiet([tools.python, "-c", code], env=tools.env, timeout=60)
    for line in r.stderr.splitlines():
        if line.startswith("IMPORTS="):
            return json.loads(line[8:])
    return [f"? (check failed: {r.stderr.strip()[-200:]})"]


def importtime_top(tools: Tools, argv: list[str], k: int = 8) -> list[tuple[str, float]]:
    """The ``-X importtime`` top-level packages with the largest cumulative import time."""
    r = run_quiet([tools.python, "-X", "importtime", "-c",
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
        PYTHON_START: [tools.python, "-c", "pass"],
        DEPS_FLOOR: [tools.python, "-c", DEPS_IMPORT],
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
    ("table formatting", ("cli/format/", "tabulate")),
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
