"""Multipart fetch of large blobs in a real pull: ranges over several connections at once, the
single stream when Range is ignored (by the registry or a redirect target), chunk retries,
resume, mirror failover, credential containment and Ctrl-C, against a real docker-registry."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import httpx
import pytest
from tests.support.cli import run
from tests.support.faultyserver import FaultyServer
from tests.support.images import make_image, make_layer, make_random_layer, push_image
from tests.support.registry import make_htpasswd
from tests.support.server import LoopbackServer
from tests.support.storecheck import assert_store_verifies, image_ids

MIB = 1024 * 1024
USER, PASSWORD = "alice", "correct horse battery staple"


class RangeRelay(LoopbackServer):
    """Streams blob answers from ``upstream`` (a registry URL) or from files under ``root`` (a blob
    store behind redirects; Range honoured), recording every request and how many blob answers
    were in flight at once.  ``ignore_range``: Range is dropped (whole 200 answers); ``fail``:
    {n: "drop" | "cut" | "hang"} for the n-th (0-based) ranged blob request: closed without an
    answer, or after half its body, or silent after half its body (until ``stop()``); ``die_after``: once that many blob bytes were sent, every blob request is
    dropped; ``pace``: seconds to sleep per 64 KiB sent (keeps answers in flight for a while)."""

    request_timeout = 30

    def __init__(self, upstream: str | None = None, *, root: Path | None = None, host: str = "127.0.0.1",
                 ignore_range: bool = False, fail: dict[int, str] | None = None, die_after: int | None = None,
                 pace: float = 0.0) -> None:
        self.upstream = upstream.rstrip("/") if upstream else None
        self.root = root
        self.ignore_range, self.fail, self.die_after, self.pace = ignore_range, dict(fail or {}), die_after, pace
        self.requests: list[dict] = []
        self.active = self.peak = 0
        self.sent = 0  # blob body bytes
        self._ranged = 0
        self.hanging = threading.Event()  # set: "hang" answers end
        self._lock = threading.Lock()
        self._client = httpx.Client(trust_env=False, timeout=30.0) if upstream else None
        super().__init__(host=host)
        self.start()

    def stop(self) -> None:
        self.hanging.set()
        super().stop()
        if self._client is not None:
            self._client.close()

    def blob_requests(self, digest: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if digest[7:] in r["path"]]

    def ranges(self, digest: str) -> list[tuple[int, int]]:
        out = []
        for r in self.blob_requests(digest):
            if r["range"]:
                a, _, b = r["range"].removeprefix("bytes=").partition("-")
                out.append((int(a), int(b) if b else -1))
        return sorted(out)

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        rng = h.headers.get("Range")
        blob = "/blobs/" in h.path or self.root is not None
        rec = {"path": h.path, "range": rng, "auth": h.headers.get("Authorization"), "status": None}
        with self._lock:
            self.requests.append(rec)
            how = None
            if blob and rng:
                how = self.fail.pop(self._ranged, None)
                self._ranged += 1
            if blob and self.die_after is not None and self.sent >= self.die_after:
                how = "drop"
        if how == "drop":
            h.close_connection = True
            h.connection.shutdown(socket.SHUT_RDWR)
            return
        fwd = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "authorization")}
        if rng and not self.ignore_range:
            fwd["Range"] = rng
        if self.root is not None:
            self._files(h, method, rec, rng if not self.ignore_range else None, how)
            return
        with self._client.stream(method, self.upstream + h.path, headers=fwd) as up:
            headers = {k: v for k, v in up.headers.items()
                       if k.lower() in ("content-type", "content-length", "content-range", "docker-content-digest",
                                        "www-authenticate", "location")}
            self._answer(h, method, rec, up.status_code, headers, up.iter_raw(65536), blob, how)

    def _files(self, h, method, rec, rng, how) -> None:
        target = (self.root / h.path.split("?", 1)[0].lstrip("/")).resolve()
        if not target.is_file():
            return self._answer(h, method, rec, 404, {"Content-Length": "0"}, iter(()), False, None)
        data = target.read_bytes()
        status, headers = 200, {}
        if rng:
            a, _, b = rng.removeprefix("bytes=").partition("-")
            first, last = int(a), min(int(b) if b else len(data) - 1, len(data) - 1)
            status, headers = 206, {"Content-Range": f"bytes {first}-{last}/{len(data)}"}
            data = data[first:last + 1]
        headers["Content-Length"] = str(len(data))
        self._answer(h, method, rec, status, headers, (data[i:i + 65536] for i in range(0, len(data), 65536)), True, how)

    def _answer(self, h, method, rec, status, headers, body, blob, how) -> None:
        rec["status"] = status
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.end_headers()
        if method == "HEAD":
            return
        total = int(headers.get("content-length") or headers.get("Content-Length") or 0)
        with self._lock:
            self.active += blob
            self.peak = max(self.peak, self.active)
        try:
            sent = 0
            for piece in body:
                if how == "hang" and sent + len(piece) > total // 2:
                    h.wfile.flush()
                    self.hanging.wait(60)  # stops sending, keeps the connection open
                    h.close_connection = True
                    return
                if how == "cut" and sent + len(piece) > total // 2:
                    h.close_connection = True
                    h.connection.shutdown(socket.SHUT_RDWR)
                    return
                h.wfile.write(piece)
                sent += len(piece)
                if blob:
                    with self._lock:
                        self.sent += len(piece)
                if self.pace:
                    time.sleep(self.pace)
        except OSError:
            h.close_connection = True
        finally:
            with self._lock:
                self.active -= blob


@pytest.fixture
def big(registry, unique_repo):
    """An image with one layer of about 5 MiB (several 1 MiB ranges) and a small one."""
    layer = make_random_layer(700, 7000, seed=1601, compression="none")
    small = make_layer({"etc/small": b"small " * 100}, "gzip")
    img = make_image([layer, small])
    push_image(registry.url, unique_repo, img, tag="t")
    assert layer.size > 4 * MIB
    return unique_repo, img, layer


def multipart_config(cfg_file, extra: str = "", per_layer: int = 4, split: str = "always") -> None:
    """1 MiB ranges over ``per_layer`` connections; ``split``: download-split ("always": from the
    first byte, whatever the link: over loopback "auto" would keep one stream)."""
    cfg_file.write_text(
        f'download-chunk-size = "1MiB"\nmax-concurrent-downloads-per-layer = {per_layer}\nretry-delay = 0.01\n'
        f'download-split = "{split}"\n{extra}'
    )


def assert_pulled(r, store_root, img) -> None:
    assert r.code == 0, r.err
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)
    v = run("verify")
    assert v.code == 0, v.out + v.err


def pull_via(relay: RangeRelay, repo: str, digest: str, *args: str):
    """``imgctl ARGS... RELAY/REPO:t`` through ``relay``, which is stopped afterwards: (the result,
    the ranges asked for blob ``digest``)."""
    try:
        r = run(*args, f"{relay.host}/{repo}:t")
        return r, relay.ranges(digest)
    finally:
        relay.stop()


def test_cold_pull_fetches_ranges_concurrently(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    relay = RangeRelay(registry.url, pace=0.002)
    r, ranges = pull_via(relay, repo, layer.digest, "--debug", "pull")
    assert_pulled(r, store_root, img)
    chunks = -(-layer.size // MIB)
    assert ranges == [(i * MIB, min((i + 1) * MIB, layer.size) - 1) for i in range(chunks)]
    assert relay.peak > 1  # ranges were in flight at once
    assert f"blob {layer.digest}: {chunks} ranges from" in r.err
    # The small layer is one stream, as before.
    assert [x["range"] for x in relay.blob_requests(img.layers[1].digest)] == [None]


def test_flags_override_the_configuration(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    relay = RangeRelay(registry.url)
    r, ranges = pull_via(relay, repo, layer.digest, "pull", "--max-concurrent-downloads-per-layer", "1")
    assert [x["range"] for x in relay.blob_requests(layer.digest)] == [None]  # one stream
    assert_pulled(r, store_root, img)


def contiguous(ranges: list[tuple[int, int]], start: int, size: int) -> bool:
    """Whether ``ranges`` cover bytes ``start`` to the end of a ``size``-byte blob, each once."""
    at = start
    for a, b in ranges:
        if a != at:
            return False
        at = b + 1
    return at == size


def test_auto_split_when_the_link_sets_the_pace(registry, unique_repo, store_root, cfg_file):
    """download-split "auto" over a slow link (a relay sending 64 KiB per 5 ms, 13 MB/s): the first
    layer starts as one stream, which waits far longer for bytes than the store takes to consume
    them, so after its first chunk it gives way to ranges for the rest; the second layer (one
    download at a time) is split from its first byte, the endpoint being known as link-bound."""
    multipart_config(cfg_file, "max-concurrent-downloads = 1\n", split="auto")
    layers = [make_random_layer(700, 7000, seed=1620 + i, compression="none") for i in range(2)]
    img = make_image(layers)
    push_image(registry.url, unique_repo, img, tag="t")
    relay = RangeRelay(registry.url, pace=0.005)
    try:
        r = run("--debug", "pull", f"{relay.host}/{unique_repo}:t")
        first = [x["range"] for x in relay.blob_requests(layers[0].digest)]
        ranges = [relay.ranges(l.digest) for l in layers]
    finally:
        relay.stop()
    assert_pulled(r, store_root, img)
    assert first[0] is None and all(first[1:])  # one stream, then ranges only
    stopped = ranges[0][0][0]
    assert MIB <= stopped < 2 * MIB, stopped  # the stream was watched for one chunk
    assert contiguous(ranges[0], stopped, layers[0].size)
    assert f"blob {layers[0].digest}: first {stopped} bytes from registry {relay.host}" in r.err
    assert "the link sets the pace" in r.err
    assert contiguous(ranges[1], 0, layers[1].size) and ranges[1][0] == (0, MIB - 1)


def test_auto_split_then_range_ignored_ends_as_one_stream(registry, big, store_root, cfg_file):
    """download-split "auto" over a slow link whose server ignores Range: the stream gives way to
    ranges after its first chunk, the first range comes back whole (200), and the blob is then
    fetched as one stream once more, from byte 0 (the server cannot resume either): a few
    requests, never a loop, and a store that verifies."""
    multipart_config(cfg_file, split="auto")
    repo, img, layer = big
    relay = RangeRelay(registry.url, pace=0.005, ignore_range=True)
    r, _ = pull_via(relay, repo, layer.digest, "--debug", "pull")
    asked = [x["range"] for x in relay.blob_requests(layer.digest)]
    assert_pulled(r, store_root, img)
    assert "the link sets the pace" in r.err and "ignored Range" in r.err
    assert asked[0] is None and len(asked) <= 4, asked
    assert all(x["status"] == 200 for x in relay.blob_requests(layer.digest))


def test_auto_keeps_one_stream_when_imgctl_sets_the_pace(registry, big):
    """download-split "auto" when consuming the bytes is what takes the time (here a sink that
    keeps the CPU busy for 3 ms per write, as inflating and hashing do on a fast link): more
    connections would not help, and the blob stays one stream."""
    from imgctl.config import Config
    from imgctl.oci import Descriptor
    from imgctl.registry import RegistryClient
    from imgctl.registry.blobs import _Memory

    class BusySink(_Memory):
        def write(self, data: bytes) -> None:
            until = time.thread_time() + 0.003
            while time.thread_time() < until:
                pass
            super().write(data)

    repo, img, layer = big
    relay = RangeRelay(registry.url)
    config = Config(download_chunk_size=MIB, max_concurrent_downloads_per_layer=4, download_split="auto")
    sink = BusySink("sha256")
    try:
        with RegistryClient(config) as client:
            client.fetch_blob(relay.host, repo, Descriptor("", layer.digest, layer.size), sink)
        asked = [x["range"] for x in relay.blob_requests(layer.digest)]
    finally:
        relay.stop()
    assert asked == [None]
    assert bytes(sink.data) == layer.data


def test_download_chunk_size_flag(registry, big, store_root, cfg_file):
    cfg_file.write_text('download-split = "always"\n')
    repo, img, layer = big
    relay = RangeRelay(registry.url)
    r, ranges = pull_via(relay, repo, layer.digest, "pull", "--download-chunk-size", "2MiB",
                         "--max-concurrent-downloads-per-layer", "2")
    assert_pulled(r, store_root, img)
    assert ranges[:2] == [(0, 2 * MIB - 1), (2 * MIB, 4 * MIB - 1)]


@pytest.mark.parametrize("args,message", [
    (("--max-concurrent-downloads-per-layer", "0"), "--max-concurrent-downloads-per-layer must be an integer from 1 to 64"),
    (("--download-chunk-size", "512k"), '--download-chunk-size must be a size from 1MiB to 1GiB (bytes, or a string such as "16MiB")'),
    (("--download-chunk-size", "lots"), "--download-chunk-size must be a size from 1MiB to 1GiB"),
])
def test_bad_flags(args, message, store_root):
    r = run("pull", *args, "127.0.0.1:1/x:t")
    assert r.code != 0 and message in r.err, r.err


def test_registry_ignoring_range_falls_back_to_one_stream(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    relay = RangeRelay(registry.url, ignore_range=True)
    r, _ = pull_via(relay, repo, layer.digest, "--debug", "pull")
    asked = [x["range"] for x in relay.blob_requests(layer.digest)]
    assert_pulled(r, store_root, img)
    assert asked == [f"bytes=0-{MIB - 1}", None]  # the first range, then the whole blob as one stream
    assert "ignored Range" in r.err and "fetching the rest as one stream from byte 0" in r.err


def test_a_chunk_failing_once_is_retried(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    relay = RangeRelay(registry.url, fail={2: "drop", 3: "cut"})
    r, ranges = pull_via(relay, repo, layer.digest, "pull")
    assert_pulled(r, store_root, img)
    short = layer.digest[7:19]
    assert [l for l in r.lines if "Retrying in" in l] == [f"{short}: Retrying in 0.01 seconds"]
    chunks = -(-layer.size // MIB)
    # One range asked again whole (dropped without an answer), one resumed from where it was cut.
    assert len(ranges) == chunks + 2
    assert sum(1 for a, b in ranges if a % MIB) == 1


def test_resume_from_a_partial_on_disk(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    assert run("images").code == 0  # creates the store
    kept = MIB + 12345
    (store_root / "ingest" / f"{layer.digest[7:]}.partial").write_bytes(layer.data[:kept])
    relay = RangeRelay(registry.url)
    r, ranges = pull_via(relay, repo, layer.digest, "pull")
    assert_pulled(r, store_root, img)
    assert f"{layer.digest[7:19]}: Resuming after {kept} bytes already downloaded" in r.lines
    assert ranges[0] == (kept, kept + MIB - 1) and all(a >= kept for a, _ in ranges)
    assert sum(b - a + 1 for a, b in ranges) == layer.size - kept  # no byte fetched twice


def test_a_mirror_failing_mid_multipart_then_the_registry_completes(registry, big, store_root, cfg_file):
    repo, img, layer = big
    reg = RangeRelay(registry.url)
    mirror = RangeRelay(registry.url, die_after=2 * MIB + 5000)
    try:
        multipart_config(cfg_file, f'[registries."{reg.host}"]\nmirrors = ["{mirror.url}"]\n', per_layer=2)
        r = run("--debug", "pull", f"{reg.host}/{repo}:t")
        from_registry = reg.ranges(layer.digest)
        from_mirror = [x for x in mirror.blob_requests(layer.digest) if x["status"] == 206]
    finally:
        reg.stop()
        mirror.stop()
    assert_pulled(r, store_root, img)
    assert len(from_mirror) >= 2
    start = from_registry[0][0]
    assert start > 0  # the registry continued from the bytes the mirror delivered, none twice
    # (ranges, or one stream with bytes=START- when fewer than two chunks were left)
    assert sum((b if b >= 0 else layer.size - 1) - a + 1 for a, b in from_registry) == layer.size - start
    served = [l for l in r.err.splitlines() if f"blob {layer.digest}: served by mirror" in l]
    assert len(served) == 1 and f"(bytes 0-{start - 1}), registry" in served[0], r.err


@pytest.mark.parametrize("honours_range", [True, False])
def test_redirect_target_ranges_without_credentials(honours_range, registry_factory, tmp_path, isolated_env,
                                                    monkeypatch, store_root, cfg_file):
    """The registry (Basic auth) answers blob GETs with 307 to a blob store on another host: ranged
    requests go there chunk by chunk without credentials; one that ignores Range gets one stream."""
    import base64
    import json

    multipart_config(cfg_file)
    d = isolated_env["HOME"] / "dockercfg"
    d.mkdir(exist_ok=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    target = RangeRelay(root=tmp_path, host="127.0.0.2", ignore_range=not honours_range, pace=0.002)
    try:
        extra = {"middleware": {"storage": [{"name": "redirect", "options": {"baseurl": f"http://{target.host}/"}}]}}
        reg = registry_factory(htpasswd=make_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD}), extra=extra)
        target.root = Path(reg.storage)
        layer = make_random_layer(500, 7000, seed=1602, compression="none")
        img = make_image([layer])
        push_image(reg.url, "team/ranged", img, tag="v1", auth=(USER, PASSWORD))
        auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        (d / "config.json").write_text(json.dumps({"auths": {reg.host: {"auth": auth}}}))
        r = run("--debug", "pull", f"{reg.host}/team/ranged:v1")
        requests = list(target.requests)
    finally:
        target.stop()
    assert_pulled(r, store_root, img)
    assert [x for x in requests if x["auth"]] == []
    ranged = [x for x in requests if x["range"]]
    if honours_range:
        assert len(ranged) == -(-layer.size // MIB) and target.peak > 1
    else:
        assert "ignored Range" in r.err
        assert [x["range"] for x in requests if x["status"] == 200][-1] is None  # then one stream
    assert PASSWORD not in r.err and "Basic " not in r.err


def interrupted_pull(relay: RangeRelay, repo: str, ready, settle: float = 0.0) -> tuple[int, str, float]:
    """``imgctl pull`` in a process, Ctrl-C (SIGINT) once ``ready()``: (exit code, stderr, seconds
    from the signal to its exit)."""
    proc = subprocess.Popen([sys.executable, "-m", "imgctl", "pull", "-q", f"{relay.host}/{repo}:t"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
    try:
        deadline = time.monotonic() + 60
        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready()
        time.sleep(settle)
        proc.send_signal(signal.SIGINT)
        sent = time.monotonic()
        _, err = proc.communicate(timeout=60)
        return proc.returncode, err, time.monotonic() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_ctrl_c_stops_at_once_and_the_next_pull_completes(registry, big, store_root, cfg_file):
    multipart_config(cfg_file)
    repo, img, layer = big
    relay = RangeRelay(registry.url, pace=0.05)  # about 1.3 MB/s per connection
    try:
        code, err, took = interrupted_pull(relay, repo, lambda: relay.peak >= 2 and relay.sent >= MIB)
    finally:
        relay.stop()
    assert code == 130, err
    assert err == "Error: interrupted: pull stopped; the next pull resumes where it left off\n"
    assert took < 3, took
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root, allow_partials=True)
    assert not list((store_root / "ingest").glob(".multipart-*"))

    r = run("pull", f"{registry.host}/{repo}:t")
    assert_pulled(r, store_root, img)


@pytest.mark.parametrize("text,message", [
    ("max-concurrent-downloads-per-layer = 0\n", "max-concurrent-downloads-per-layer must be an integer from 1 to 64 (at line 1)"),
    ("max-concurrent-downloads-per-layer = true\n", "max-concurrent-downloads-per-layer must be an integer from 1 to 64 (at line 1)"),
    ('\ndownload-chunk-size = "1KiB"\n', 'download-chunk-size must be a size from 1MiB to 1GiB (bytes, or a string such as "16MiB") (at line 2)'),
    ("download-chunk-size = 2147483648\n", "download-chunk-size must be a size from 1MiB to 1GiB"),
    ('download-chunk-size = "big"\n', "download-chunk-size must be a size from 1MiB to 1GiB"),
    ("download-chunk-size = 1.5\n", "download-chunk-size must be a size from 1MiB to 1GiB"),
    ('download-split = "sometimes"\n', 'download-split must be "auto" or "always" (at line 1)'),
    ("download-split = true\n", 'download-split must be "auto" or "always" (at line 1)'),
])
def test_bad_configuration(text, message, cfg_file, store_root):
    cfg_file.write_text(text)
    r = run("pull", "x")
    assert r.code != 0 and r.err.startswith(f"Error: {cfg_file}: {message}"), r.err


@pytest.mark.parametrize("value,expected", [
    ('"16MiB"', 16 * MIB), ('"16m"', 16 * MIB), ('"1.5 GB"', None), ("1048576", MIB), ('"1g"', 1024 * MIB),
    ('"2mb"', 2 * MIB), ('"1.5MiB"', MIB + MIB // 2),
])
def test_chunk_size_values(value, expected, cfg_file):
    from imgctl.config import load_config

    cfg_file.write_text(f"download-chunk-size = {value}\n")
    if expected is None:
        with pytest.raises(Exception, match="download-chunk-size must be a size"):
            load_config(cfg_file)
    else:
        assert load_config(cfg_file).download_chunk_size == expected


def test_defaults():
    from imgctl.config import Config

    c = Config()
    assert (c.max_concurrent_downloads_per_layer, c.download_chunk_size, c.download_split) == (8, 16 * MIB, "auto")


def test_cancel_breaks_reads_that_wait_for_bytes(registry, big, store_root, cfg_file):
    """Ranges stuck mid-body (the server went silent) do not hold Ctrl-C up: the worker threads'
    sockets are shut down at once, long before request-timeout would end the reads."""
    multipart_config(cfg_file, "request-timeout = 60\n")
    repo, img, layer = big
    relay = RangeRelay(registry.url, fail={1: "hang", 2: "hang", 3: "hang"})
    try:
        code, err, took = interrupted_pull(relay, repo, lambda: relay.peak >= 3, settle=0.3)
    finally:
        relay.stop()
    assert code == 130, err
    assert took < 3, took
    assert_store_verifies(store_root, allow_partials=True)
