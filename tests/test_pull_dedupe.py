"""Issue 16: one download per blob across processes.

Two real imgctl processes pull one image from a real docker-registry through a relay that
counts every blob GET and can hold one blob's stream half-way.  The second process finds
the first fetching the layer and waits for it (docker's ``Waiting``), then uses the blob the
first committed, or takes over the first's partial when it is killed, or stops promptly on
Ctrl-C.  Every step waits for an observable event (a line printed, a request seen, a partial
on disk), never for a fixed time.
"""

from __future__ import annotations

import http.client
import os
import random
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from tests.support.images import make_image, make_layer, push_image
from tests.support.server import LoopbackServer
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids

MiB = 1024 * 1024


class HoldingRelay(LoopbackServer):
    """Relays to the registry, recording each request (method, path, Range, body bytes sent);
    the first GET of each blob in ``hold`` stops after ``hold_after`` body bytes until ``release``."""

    def __init__(self, upstream_port: int, hold: tuple[str, ...], hold_after: int) -> None:
        super().__init__()
        self.upstream_port = upstream_port
        self.hold_after = hold_after
        self.held = {d: threading.Event() for d in hold}  # that blob's stream has sent hold_after bytes
        self.release = threading.Event()
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        self._holding: set[str] = set()

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        rec = {"method": method, "path": h.path, "range": h.headers.get("Range"), "sent": 0}
        with self._lock:
            self.requests.append(rec)
            digest = h.path.rsplit("/", 1)[-1]
            hold = method == "GET" and "/blobs/" in h.path and digest in self.held and digest not in self._holding
            if hold:
                self._holding.add(digest)
        up = http.client.HTTPConnection("127.0.0.1", self.upstream_port, timeout=30)
        headers = {k: v for k, v in h.headers.items() if k.lower() in ("accept", "range", "authorization")}
        up.request(method, h.path, headers=headers)
        r = up.getresponse()
        h.send_response(r.status)
        for k, v in r.getheaders():
            if k.lower() not in ("connection", "transfer-encoding", "keep-alive"):
                h.send_header(k, v)
        h.end_headers()
        try:
            if method == "HEAD":
                return
            while chunk := r.read(64 * 1024):
                if hold and rec["sent"] + len(chunk) > self.hold_after:
                    cut = self.hold_after - rec["sent"]
                    h.wfile.write(chunk[:cut])
                    h.wfile.flush()
                    rec["sent"] += cut
                    chunk = chunk[cut:]
                    self.held[digest].set()
                    self.release.wait(120)
                    hold = False
                h.wfile.write(chunk)
                rec["sent"] += len(chunk)
        except OSError:
            h.close_connection = True  # the client went away (killed)
        finally:
            up.close()

    def blob_gets(self, digest: str) -> list[dict]:
        with self._lock:
            return [r for r in self.requests if r["method"] == "GET" and r["path"].endswith(f"/blobs/{digest}")]


class Lines:
    """A process's stdout read on a thread, so the test can wait for a line."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list[str] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, f) -> None:
        for line in f:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.lines.append(None)  # EOF
            self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 60) -> None:
        with self._cond:
            ok = self._cond.wait_for(lambda: text in self.lines or None in self.lines, timeout)
        assert ok and text in self.lines, (text, self.lines)


def start_pull(name: str, env: dict | None = None) -> tuple[subprocess.Popen, Lines]:
    p = subprocess.Popen([sys.executable, "-m", "imgctl", "pull", name], env=env or dict(os.environ),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, Lines(p)


@pytest.fixture
def image(registry, unique_repo):
    big = make_layer({"data": random.Random(16).randbytes(3 * MiB)}, "gzip")
    small = make_layer({"etc/hostname": "dedupe\n"}, "gzip")
    img = make_image([big, small])
    push_image(registry.url, unique_repo, img, tag="v1")
    return img, big


@contextmanager
def second_waiting(registry, repo: str, store_root, big, *, after_bytes_on_disk: bool = False):
    """A relay holding the big layer's stream after 1 MiB, a first pull held there, and a second
    pull of the same image that has printed ``Waiting`` for that layer: (relay, name, first, second, its lines)."""
    relay = HoldingRelay(int(registry.host.rsplit(":", 1)[1]), (big.digest,), MiB).start()
    try:
        name = f"{relay.host}/{repo}:v1"
        first, _ = start_pull(name)
        assert relay.held[big.digest].wait(60)  # the first process is half-way through the big layer
        if after_bytes_on_disk:
            partial = Path(store_root) / "ingest" / f"{big.digest[7:]}.partial"
            deadline = time.monotonic() + 60
            while not (partial.exists() and partial.stat().st_size > 0):  # the first process wrote some bytes
                assert time.monotonic() < deadline and first.poll() is None
                time.sleep(0.01)
        second, out2 = start_pull(name)
        out2.wait_for(f"{big.digest[7:19]}: Waiting")  # it found the first one fetching the layer
        yield relay, name, first, second, out2
    finally:
        relay.release.set()
        relay.stop()


def test_two_concurrent_pulls_fetch_each_blob_once(registry, unique_repo, store_root, image):
    img, big = image
    with second_waiting(registry, unique_repo, store_root, big) as (relay, name, first, second, out2):
        relay.release.set()
        assert first.wait(60) == 0, first.stderr.read()
        assert second.wait(60) == 0, second.stderr.read()
    for digest, _ in img.blobs():
        if digest != img.manifest_digest:
            assert len(relay.blob_gets(digest)) == 1, (digest, relay.requests)
    assert out2.lines[-3:] == [f"Status: Downloaded newer image for {name}", name, None]
    short = big.digest[7:19]
    assert [l for l in out2.lines if l and l.startswith(short)] == [
        f"{short}: Pulling fs layer", f"{short}: Waiting", f"{short}: Download complete", f"{short}: Pull complete"]
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_the_waiting_pull_takes_over_when_the_first_is_killed(registry, unique_repo, store_root, image):
    img, big = image
    with second_waiting(registry, unique_repo, store_root, big, after_bytes_on_disk=True) as (relay, _, first, second, out2):
        first.send_signal(signal.SIGKILL)
        first.wait(30)
        assert second.wait(60) == 0, second.stderr.read()
    gets = relay.blob_gets(big.digest)
    assert len(gets) == 2, gets
    start = int(gets[1]["range"].removeprefix("bytes=").split("-")[0])
    assert 0 < start <= MiB, gets[1]  # resumed where the killed process's partial ended
    assert gets[1]["sent"] == big.size - start  # only the remainder crossed the wire
    assert f"{big.digest[7:19]}: Resuming after {start} bytes already downloaded" in out2.lines
    assert image_ids(store_root) == {img.config_digest}
    assert big.digest in blob_files(store_root)
    assert_store_verifies(store_root)


def test_ctrl_c_while_waiting_exits_promptly(registry, unique_repo, store_root, image):
    img, big = image
    with second_waiting(registry, unique_repo, store_root, big) as (relay, _, first, second, out2):
        t0 = time.monotonic()
        second.send_signal(signal.SIGINT)
        assert second.wait(30) == 130, second.stderr.read()
        assert time.monotonic() - t0 < 5
        assert "interrupted" in second.stderr.read()
        relay.release.set()
        assert first.wait(60) == 0, first.stderr.read()  # the one fetching it finishes untroubled
    assert len(relay.blob_gets(big.digest)) == 1
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_two_pulls_each_waiting_for_a_blob_the_other_holds_do_not_deadlock(registry, repo_factory, store_root, tmp_path):
    """One layer at a time each; A = [x, y], B = [y, x]; A's x and B's y are held until both
    are in flight, so each process then holds a checked (unpublished) blob the other wants
    next.  A holder never waits while holding: checked blobs are published on the main
    thread's timer, so both pulls finish, and each blob crossed the wire once."""
    x = make_layer({"x": random.Random(1).randbytes(100_000)}, "gzip")
    y = make_layer({"y": random.Random(2).randbytes(100_000)}, "gzip")
    a, b = make_image([x, y]), make_image([y, x])
    repo_a, repo_b = repo_factory("a"), repo_factory("b")
    push_image(registry.url, repo_a, a, tag="v1")
    push_image(registry.url, repo_b, b, tag="v1")
    cfg = tmp_path / "one.toml"
    cfg.write_text("max-concurrent-downloads = 1\n")
    env = dict(os.environ, IMGCTL_CONFIG=str(cfg))
    relay = HoldingRelay(int(registry.host.rsplit(":", 1)[1]), (x.digest, y.digest), 10_000).start()
    try:
        pa, _ = start_pull(f"{relay.host}/{repo_a}:v1", env)
        assert relay.held[x.digest].wait(60)
        pb, out_b = start_pull(f"{relay.host}/{repo_b}:v1", env)
        assert relay.held[y.digest].wait(60)
        relay.release.set()
        assert pa.wait(60) == 0, pa.stderr.read()
        assert pb.wait(60) == 0, pb.stderr.read()
    finally:
        relay.release.set()
        relay.stop()
    for layer in (x, y):
        assert len(relay.blob_gets(layer.digest)) == 1, relay.requests
    assert image_ids(store_root) == {a.config_digest, b.config_digest}
    assert_store_verifies(store_root)


# -- the lock itself (one process standing in for two: flock conflicts between open files) ----
def hold(path: Path) -> int:
    import fcntl

    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def test_a_waiter_gets_the_lock_when_the_holder_lets_go(tmp_path):
    from imgctl.store.blobs import lock_partial

    path = tmp_path / "x.partial"
    fd = hold(path)
    delays = []

    def wait(delay):
        delays.append(delay)
        if len(delays) == 3:
            os.close(fd)  # the holder finishes (or dies: the kernel drops its lock)

    got = lock_partial(path, wait)
    assert got is not None and delays == [0.01, 0.02, 0.04]  # a backoff, not a busy loop
    os.close(got)


def test_a_cancelled_waiter_stops_holding_nothing(tmp_path):
    from imgctl.store.blobs import lock_partial

    path = tmp_path / "x.partial"
    fd = hold(path)

    def wait(delay):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        lock_partial(path, wait)
    os.close(fd)
    os.close(hold(path))  # nothing of the waiter's still holds it (hold() would raise BlockingIOError)


def test_a_holder_that_makes_no_progress_is_not_waited_for_forever(tmp_path, monkeypatch):
    from imgctl.store import blobs

    monkeypatch.setattr(blobs, "WAIT_STALL", 0.05)
    path = tmp_path / "x.partial"
    fd = hold(path)
    waits = []
    assert blobs.lock_partial(path, lambda d: (waits.append(d), time.sleep(d))) is None  # a file of its own then
    assert 0 < sum(waits) < 5
    os.close(fd)


def test_checked_blobs_appear_only_when_published(store_root):
    from imgctl.errors import VerificationError
    from imgctl.store import Store

    store = Store(store_root)
    good, bad = b"good bytes", b"bad bytes"
    from tests.support.images import sha256_digest

    w = store.writer(sha256_digest(good), len(good), resumable=True)
    w.write(good)
    w.check()
    assert not store.has_blob(sha256_digest(good))  # checked, not yet published
    b = store.writer(sha256_digest(good + b"!"), len(bad), resumable=True)
    b.write(bad)
    with pytest.raises(VerificationError):
        b.check()
    b.abort()
    store.publish([w])
    store.sync_blobs()
    assert store.has_blob(sha256_digest(good)) and not store.has_blob(sha256_digest(good + b"!"))
    assert_store_verifies(store_root)
