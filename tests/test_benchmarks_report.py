"""The benchmark harness's own helpers (issue 16): targets, the report's new sections, /proc CPU.

No registry, no tools run: synthetic results only, so the report code that runs once at the end
of a 25-minute benchmark is checked in a second.
"""

from __future__ import annotations

import os

from benchmarks.links import counted_round_trips, link_targets, links_markdown, target_for
from benchmarks.measuring import Sample, Series, ratio
from benchmarks.report import images_split_markdown, issue16_targets, many_layers_markdown
from benchmarks.scale import proc_cpu


def series(*walls: float, rss_mib: int = 40, rc: int = 0) -> Series:
    return Series([Sample(w, rss_mib * 1024, rc) for w in walls])


def test_target_for_applies_the_big_target_only_from_one_gib():
    assert target_for("big (1024 MiB)") == 0.35
    assert target_for("big (2048 MiB)") == 0.35
    assert target_for("big (32 MiB)") is None
    assert target_for("debian-rootfs") == 0.5
    assert target_for("files-rootfs") == 0.5
    assert target_for("five-layers") is None


def test_ratio_is_none_without_both_numbers():
    assert ratio(1.0, 4.0) == 0.25
    assert ratio(None, 4.0) is None
    assert ratio(1.0, 0) is None


def test_proc_cpu_reads_this_process():
    busy = sum(i * i for i in range(200_000))
    assert busy > 0
    cpu = proc_cpu(os.getpid())
    assert cpu is not None and cpu > 0
    assert proc_cpu(2**22 + 12345) is None  # no such process


def test_counted_round_trips_groups_events_sent_together():
    d = {"tls_probes": 1, "events": [{"t_ms": 0, "what": "connect"}, {"t_ms": 31, "what": "connect"},
                                     {"t_ms": 62, "what": "GET /v2/"}, {"t_ms": 70, "what": "connect"},
                                     {"t_ms": 93, "what": "GET manifest"}]}
    # groups start at 0, 31, 62, 93 ms (70 ms is within 0.75 RTT of 62): 4, plus the TLS probe
    assert counted_round_trips(d, 0.030) == 5


def link_res() -> dict:
    return {
        "link_params": {"rtt": 0.03, "rate": 20e6, "runs": 3, "big_runs": 2,
                        "images_info": {"files-rootfs": "1 layer", "big (1024 MiB)": "1 layer"}},
        "links": {
            "files-rootfs": {"imgctl": series(2.0, 2.2, 2.4), "skopeo": series(4.0, 4.4, 4.8),
                             "podman": series(6.0, 6.0, 6.0)},
            "big (1024 MiB)": {"imgctl": series(20.0, 21.0), "skopeo": series(54.0, 55.0),
                               "podman": series(60.0, 60.0)},
        },
        "link_floor": {"big (1024 MiB)": 53.9},
        "concurrent": {"image": "files-rootfs", "layer_bytes": 100_000_000, "tools": {
            "imgctl": {"runs": [{"walls": [2.5, 2.6], "rcs": [0, 0], "rss_kib": [40000, 41000], "both_s": 2.6,
                                 "bytes_down": 100_020_000, "layer_gets": 1, "layers_fetched": 1}]},
            "podman": {"runs": [{"walls": [7.0, 7.1], "rcs": [0, 0], "rss_kib": [50000, 50000], "both_s": 7.1,
                                 "bytes_down": 200_040_000, "layer_gets": 2, "layers_fetched": 1}]},
        }},
    }


def test_link_targets_and_markdown():
    res = link_res()
    got = {name: ok for name, _, ok in link_targets(res)}
    assert got["link: cold pull `files-rootfs` ≤ 0.5× skopeo"] is True  # 2.2 / 4.4
    assert got["link: cold pull `files-rootfs` ≤ 0.5× podman"] is True
    assert got["link: cold pull `big (1024 MiB)` ≤ 0.35× skopeo"] is False  # 20.5 / 54.5 = 0.376
    assert got["link: cold pull `big (1024 MiB)` ≤ 0.35× podman"] is True  # 20.5 / 60
    assert got["two concurrent pulls of one image transfer each blob once"] is True
    md = links_markdown(res)
    assert "## 7. Through an emulated link (30 ms round trip, 20 MB/s per connection)" in md
    assert "2 for `big (1024 MiB)`" in md
    assert "| imgctl | 1 | 2.500 s / 2.600 s | 2.600 s | 2.200 s | 100 MB (1.00x) | 1 (1 distinct) | met |" in md
    assert "| podman | 1 | 7.000 s / 7.100 s | 7.100 s | 6.000 s | 200 MB (2.00x) | 2 (1 distinct) | **not met** |" in md


def test_a_failed_concurrent_pull_does_not_meet_the_target():
    res = link_res()
    res["concurrent"]["tools"]["imgctl"]["runs"][0]["rcs"] = [0, 1]
    got = {name: ok for name, _, ok in link_targets(res)}
    assert got["two concurrent pulls of one image transfer each blob once"] is False


def test_issue16_targets_for_scale_and_memory():
    res = link_res()
    res["images"] = {"100000": {"imgctl": series(2.5, 2.7, 2.9)}}
    res["many_layers"] = {"layers": 5000, "blob_bytes": 700_000, "timeout": 180, "runs": 2, "peer_runs": 1,
                          "tools": {"imgctl": {"series": series(9.5, 11.5, rss_mib=120), "tool_cpu": [5.0, 6.0],
                                               "registry_cpu": [20.0, 22.0]},
                                    "podman": {"series": Series([Sample(180.0, 0, -9)], "killed after 180 s"),
                                               "tool_cpu": [90.0], "registry_cpu": [3.0]}}}
    got = {name: (value, ok) for name, value, ok in issue16_targets(res)}
    assert got["cold pull of 5,000 layers ≤ 10 s"] == ("10.5 s", False)
    assert got["`imgctl images` at 100,000 tags ≤ 3 s"] == ("2.700 s", True)
    value, ok = got["peak memory of any pull ≤ 100 MiB (loopback, link, many layers, concurrent)"]
    assert (value, ok) == ("120 MiB (max)", False)
    md = "\n".join(many_layers_markdown(res))
    assert "| imgctl | **10.5 s** (9.500 s – 11.5 s) | 120 MiB | 5.500 s | 21.0 s |" in md
    assert "| podman | failed: killed after 180 s | – | 90.0 s (until killed) | 3.000 s (until killed) |" in md


def test_images_split_is_differences_of_medians():
    res = {"startup": {"imgctl images (empty store)": series(0.1, 0.1, 0.1)},
           "images": {"100000": {"imgctl": series(2.0, 2.0, 2.0)}},
           "images_split": {"100000": {"template": series(1.5, 1.5, 1.5), "quiet": series(0.3, 0.3, 0.3)}},
           "tabulate_ref": {"100000": 0.45}}
    md = "\n".join(images_split_markdown(res))
    assert "| 100,000 | **0.300 s** (0.300 s – 0.300 s) | **1.500 s** (1.500 s – 1.500 s) | " \
           "**2.000 s** (2.000 s – 2.000 s) | 1.400 s | 0.500 s | 0.450 s |" in md


def test_cold_pull_gap_against_the_floor_plus_the_fixed_cost():
    """The loopback target's explanation: a cold pull's fixed part is the up-to-date pull of the
    same image minus Python's start, and the floor plus it is what imgctl's layer work is held to."""
    from benchmarks.report import fixed_cost
    from benchmarks.scenarios import DEPS_FLOOR, PYTHON_START

    label = "five-layers"
    res = {"cold": {label: {"imgctl": series(0.55, 0.55, 0.55)}},
           "floor": {label: series(0.35, 0.35, 0.35)},
           "warm": {label: {"imgctl": series(0.17, 0.17, 0.17)}},
           "startup": {PYTHON_START: series(0.02, 0.02, 0.02), DEPS_FLOOR: series(0.1, 0.1, 0.1)}}
    assert abs(fixed_cost(res, label) - 0.15) < 1e-9
    assert fixed_cost({"cold": res["cold"], "floor": res["floor"]}, label) is None
    got = {name: (value, ok) for name, value, ok in issue16_targets(res)}
    value, ok = got[f"loopback cold pull `{label}` ≤ 1.25× the Python floor"]
    assert ok is False and value == "1.57× (0.550 s vs 0.350 s); 1.10× the floor + imgctl's fixed cost (0.150 s)"
    assert got[f"up-to-date pull `{label}` ≤ 0.15 s"] == ("0.170 s (the dependencies' imports alone: 0.100 s)", False)


def test_the_dependencies_floor_keeps_out_what_imgctl_keeps_out():
    """The start-up row that stands for "typer and httpx alone" must block the optional modules
    imgctl's CLI blocks, or it measures trio's import instead (60 ms here)."""
    from benchmarks.scenarios import DEPS_IMPORT

    from imgctl.cli import _NOT_NEEDED

    for name in _NOT_NEEDED:
        assert repr(name) in DEPS_IMPORT
