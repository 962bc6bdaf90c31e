"""Registries built to break imgctl: deadlines, endless listings, hostile JSON, URLs and HTTP (issue 13).

Classes 4 (no deadline), 6 (the "unexpected error" path, registry parts) and 7 (a native crash
at exit).  Every case runs ``imgctl`` as a measured subprocess against a server on 127.0.0.1
that misbehaves in one way, and must fail closed: exit 1, at most three lines on stderr, no
traceback and no "unexpected" error, an end within the stated time, peak RSS under 200 MiB,
no image in ``images`` and ``imgctl verify`` clean afterwards.

Budgets are tiny (``request-timeout = 0.5``, two attempts) so that a deadline costs about a
second: a trickle of one byte every 50 ms never completes a document in 0.5 s, and never
delivers ``MIN_BLOB_RATE * 0.5`` = 512 bytes of a blob in a window.
"""

from __future__ import annotations

import itertools
import json
import os
import signal
import time

import pytest
from tests.support.cli import run
from tests.support.hostile import HostileRegistry, RawServer, forever, http_answer, run_measured, trickle
from tests.support.images import OCI_MANIFEST, dumps, make_image, make_layer
from tests.support.storecheck import image_ids

from imgctl import jsonlimit
from imgctl.config import Config
from imgctl.errors import RegistryError
from imgctl.registry import Endpoint, RegistryClient
from imgctl.registry.pages import MAX_LISTING_BYTES, MAX_PAGES

MiB = 1024 * 1024
RSS_LIMIT_KIB = 200 * 1024
WITHIN = 15.0  # seconds: every failing case here (about 1-3 s each; generous for a busy machine)
REPO = "team/app"
TAGS = [f"v{i}" for i in range(5)]


@pytest.fixture(autouse=True)
def tiny_budgets(cfg_file):
    cfg_file.write_text("request-timeout = 0.5\nmax-download-attempts = 2\nretry-delay = 0.01\n")


def imgctl(*args: str, timeout: float = 60.0, env: dict | None = None):
    return run_measured(list(args), timeout=timeout, env=env)


def assert_failed_closed(m, store_root, *words: str, within: float = WITHIN) -> str:
    """Exit 1 with at most three stderr lines naming ``words``; bounded; nothing stored; verify clean."""
    assert not m.timed_out, f"still running after the test's timeout (killed): {m.err[-1000:]}"
    assert m.code == 1, f"exit {m.code}: {m.err[-2000:]}"
    assert "Traceback" not in m.err and "unexpected" not in m.err, m.err[-2000:]
    lines = m.err.strip().splitlines()
    assert 1 <= len(lines) <= 3, m.err[-2000:]
    error = next(line for line in lines if line.startswith("Error: "))
    for w in words:
        assert w.lower() in error.lower(), f"{w!r} not in {error!r}"
    assert m.seconds < within, f"took {m.seconds:.1f} s"
    assert m.maxrss_kib < RSS_LIMIT_KIB, f"peak RSS {m.maxrss_kib // 1024} MiB"
    assert image_ids(store_root) == set()
    images = run("images", "-q")
    assert (images.code, images.out) == (0, ""), images.err
    verify = run("verify")
    assert verify.code == 0, verify.out + verify.err
    return error


def tags_page(tags=TAGS, name=REPO) -> bytes:
    return json.dumps({"name": name, "tags": tags}).encode()


def routes(table: dict):
    """A RawServer route from ``{path: answer or callable(target, headers) -> answer}``; the
    path is matched without its query; anything else is an honest ping or a 404."""

    def route(method, target, headers):
        found = table.get(target.split("?", 1)[0])
        return found(target, headers) if callable(found) else found

    return RawServer(route)


def deep(n: int = 100_000, prefix: bytes = b"", suffix: bytes = b"") -> bytes:
    return prefix + b"[" * n + b"]" * n + suffix


def small_image(seed: str = "failclosed"):
    return make_image([make_layer({"etc/motd": f"hello {seed}\n" * 50}, "gzip")], labels={"seed": seed})


# -- class 4: a deadline for every exchange ----------------------------------------------------------
SLOW = 0.05  # seconds between bytes of a trickle


def trickled(answer: bytes):
    return lambda target, headers: trickle(answer, SLOW)


def serve_with_token(table: dict, token_answer) -> RawServer:
    """``table`` behind bearer auth (``Bearer good``), its token at /token answering ``token_answer``."""

    def guard(inner):
        def answer(target, headers):
            if headers.get("authorization") != "Bearer good":
                challenge = f'Bearer realm="http://{headers["host"]}/token",service="s"'
                return http_answer(401, b'{"errors":[]}', {"WWW-Authenticate": challenge})
            return inner(target, headers) if callable(inner) else inner

        return answer

    return routes({**{path: guard(a) for path, a in table.items()}, "/token": token_answer})


@pytest.mark.parametrize("what", ["tags page", "token answer", "ping", "error body", "100 continue", "endless headers"])
def test_trickled_document_meets_the_deadline(store_root, what):
    page = http_answer(200, tags_page())
    path = f"/v2/{REPO}/tags/list"
    if what == "tags page":
        srv = routes({path: trickled(page)})
    elif what == "token answer":
        srv = serve_with_token({path: page}, trickled(http_answer(200, b'{"token":"good"}')))
    elif what == "ping":
        srv = routes({"/v2/": trickled(http_answer(200, b"{}" + b" " * 100))})
    elif what == "error body":
        body = json.dumps({"errors": [{"code": "UNKNOWN", "message": "x" * 200}]}).encode()
        head = b"HTTP/1.1 503 X\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
        srv = routes({path: lambda t, h: itertools.chain([head], trickle(body, SLOW))})
    elif what == "100 continue":
        srv = routes({path: lambda t, h: forever(b"HTTP/1.1 100 Continue\r\n\r\n", 0.01)})
    else:
        srv = routes({path: lambda t, h: itertools.chain([b"HTTP/1.1 200 OK\r\n"], forever(b"X-Pad: 0123456789\r\n", 0.01))})
    with srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    error = assert_failed_closed(m, store_root)
    if what != "error body":  # (a 503 whose body never ends: the deadline cuts it, the status is reported)
        assert "no complete answer within 0.5 seconds (request-timeout)" in error, error
    assert m.out == ""


@pytest.mark.parametrize("where", ["/v1/search", "/v2/_catalog"])
def test_trickled_search_and_catalog_meet_the_deadline(store_root, where):
    other = "/v2/_catalog" if where == "/v1/search" else "/v1/search"
    srv = routes({where: trickled(http_answer(200, b'{"results":[],"repositories":[]}')), other: http_answer(404, b"{}")})
    with srv:
        m = imgctl("search", f"{srv.host}/app")
    error = assert_failed_closed(m, store_root, "cannot search")
    assert "no complete answer within 0.5 seconds" in error


def test_trickled_manifest_meets_the_deadline(store_root):
    img = small_image()

    def slow():
        for i in range(len(img.manifest_bytes)):
            yield img.manifest_bytes[i:i + 1]
            time.sleep(SLOW)

    with HostileRegistry(img, manifest_stream=slow) as reg:
        m = imgctl("pull", reg.name)
    error = assert_failed_closed(m, store_root, "no complete answer within 0.5 seconds")
    assert "manifest" in error.lower() or "/manifests/" in error


def test_trickled_blob_is_a_stall_retried_then_refused(store_root):
    """A blob below the minimum rate is a stall: shown as a retry, then refused; nothing stored."""
    img = small_image("stall")
    layer = img.layers[0]

    def slow():
        for i in range(len(layer.data)):
            yield layer.data[i:i + 1]
            time.sleep(SLOW)

    with HostileRegistry(img, blob_stream={layer.digest: slow}) as reg:
        m = imgctl("pull", reg.name)
        gets = [r for r in reg.seen(layer.digest) if r["method"] == "GET"]
    error = assert_failed_closed(m, store_root, "stalled", layer.digest)
    assert "fewer than 512 bytes in 0.5 seconds (request-timeout)" in error
    assert len(gets) == 2  # max-download-attempts: the stall was retried once, not resumed at once
    assert "Retrying in" in m.out + m.err  # the stall is shown as pull's retry event


def test_slow_but_steady_blob_is_not_a_stall(store_root):
    """Slow is not stalled: 2 KiB/s (more than 512 bytes per 0.5 s window) over several windows."""
    img = make_image([make_layer({"data.bin": os.urandom(5000)}, "gzip")])
    layer = img.layers[0]

    def steady():
        for i in range(0, len(layer.data), 200):
            yield layer.data[i:i + 200]
            time.sleep(0.1)

    with HostileRegistry(img, blob_stream={layer.digest: steady}) as reg:
        m = imgctl("pull", reg.name)
    assert m.code == 0, m.err
    assert m.seconds > 2.0  # it did take several windows
    assert len(image_ids(store_root)) == 1


@pytest.mark.parametrize("what", ["manifest", "blob"])
def test_trickling_mirror_is_left_for_the_registry(store_root, cfg_file, what):
    """A mirror that trickles (a manifest past its deadline, a blob below the rate) is a failure
    of that mirror: the pull goes on at the registry and succeeds."""
    img = small_image("mirror")
    layer = img.layers[0]
    data = img.manifest_bytes if what == "manifest" else layer.data

    def slow():
        for i in range(len(data)):
            yield data[i:i + 1]
            time.sleep(SLOW)

    switch = {"manifest_stream": slow} if what == "manifest" else {"blob_stream": {layer.digest: slow}}
    with HostileRegistry(img, **switch) as mirror, HostileRegistry(img) as upstream:
        cfg_file.write_text(cfg_file.read_text() + f'[registries."{upstream.host}"]\nmirrors = ["{mirror.url}"]\n')
        m = imgctl("pull", upstream.name)
        assert mirror.seen("/manifests/" if what == "manifest" else layer.digest)
    assert m.code == 0, m.err
    assert m.seconds < WITHIN
    assert len(image_ids(store_root)) == 1
    assert run("verify").code == 0


@pytest.mark.parametrize("value", ['"30"', "0", "-1", "nan", "inf", "true", "100000"])
def test_request_timeout_must_be_sensible(cfg_file, value):
    cfg_file.write_text(f"request-timeout = {value}\n")
    r = run("tags", "127.0.0.1:1/x")  # (the configuration is read once a command needs it)
    assert r.code == 1 and r.err.count("\n") == 1, r.err
    assert "request-timeout must be a number of seconds from 0.05 to 3600" in r.err


# -- class 4: listings that never end --------------------------------------------------------------
def linked(body: bytes, link: str) -> bytes:
    return http_answer(200, body, {"Link": f'<{link}>; rel="next"'})


def test_tags_link_to_the_same_page_stops(store_root):
    path = f"/v2/{REPO}/tags/list"
    with routes({path: lambda t, h: linked(tags_page(), t)}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
        asked = len(srv.requests)
    assert_failed_closed(m, store_root, "back to an earlier page")
    assert m.out.splitlines() == TAGS  # the first page, once
    assert asked <= 3  # (a ping or two, then one page)


def test_tags_cyclic_links_stop(store_root):
    path = f"/v2/{REPO}/tags/list"

    def page(target, headers):
        n = int(target.rsplit("p=", 1)[1]) if "p=" in target else 0
        return linked(tags_page([f"p{n}"]), f"{path}?p={n + 1}" if n < 2 else target.replace("p=2", "n=1000"))  # first -> 1 -> 2 -> first

    with routes({path: page}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    assert_failed_closed(m, store_root, "back to an earlier page")
    assert m.out.splitlines() == ["p0", "p1", "p2"]


def test_tags_endless_big_pages_stop_at_the_byte_cap(store_root):
    """Distinct 4 MiB pages for ever: stopped at MAX_LISTING_BYTES, memory one page, output streamed."""
    path = f"/v2/{REPO}/tags/list"
    body = tags_page([f"t{i:07d}" for i in range((4 * MiB - 1000) // 12)])
    assert 3 * MiB < len(body) < 4 * MiB

    def page(target, headers):
        n = int(target.rsplit("p=", 1)[1]) if "p=" in target else 0
        return linked(body, f"{path}?p={n + 1}")

    with routes({path: page}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}", timeout=120)
        asked = len([r for r in srv.requests if r[1].startswith(path)])
    assert_failed_closed(m, store_root, "stopped", f"{MAX_LISTING_BYTES} bytes", within=60)
    assert asked == MAX_LISTING_BYTES // len(body) + 1


def test_tags_endless_small_pages_stop_at_the_page_cap(store_root):
    path = f"/v2/{REPO}/tags/list"

    def page(target, headers):
        n = int(target.rsplit("p=", 1)[1]) if "p=" in target else 0
        return linked(tags_page([f"p{n}"]), f"{path}?p={n + 1}")

    with routes({path: page}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}", timeout=120)
    assert_failed_closed(m, store_root, "stopped", f"{MAX_PAGES} pages", within=60)
    assert m.out.splitlines() == [f"p{n}" for n in range(MAX_PAGES)]


def test_tags_stream_as_pages_arrive(store_root):
    """The first page is printed although the second never completes."""
    path = f"/v2/{REPO}/tags/list"

    def page(target, headers):
        if "p=2" in target:
            return trickle(http_answer(200, tags_page(["never"])), SLOW)
        return linked(tags_page(), f"{path}?p=2")

    with routes({path: page}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    assert_failed_closed(m, store_root, "no complete answer")
    assert m.out.splitlines() == TAGS


def test_tags_limit_stops_reading(store_root):
    path = f"/v2/{REPO}/tags/list"
    with routes({path: lambda t, h: linked(tags_page(), f"{path}?p={time.monotonic_ns()}")}) as srv:
        m = imgctl("tags", "--limit", "7", f"{srv.host}/{REPO}")
        asked = len([r for r in srv.requests if r[1].startswith(path)])
    assert (m.code, m.out.splitlines()) == (0, (TAGS + TAGS)[:7]), m.err
    assert asked == 2


@pytest.mark.parametrize("how", ["same page", "cycle"])
def test_catalog_search_with_looping_links_stops(store_root, how):
    def page(target, headers):
        n = int(target.rsplit("p=", 1)[1]) if "p=" in target else 0
        nxt = target if how == "same page" else f"/v2/_catalog?p={(n + 1) % 2}"
        return linked(json.dumps({"repositories": [f"other/x{n}"]}).encode(), nxt)

    with routes({"/v2/_catalog": page, "/v1/search": http_answer(404, b"{}")}) as srv:
        m = imgctl("search", f"{srv.host}/app")
    assert_failed_closed(m, store_root, "cannot search", "back to an earlier page")


def test_catalog_search_stops_reading_once_the_answer_is_known(store_root):
    """An endless catalog whose every page matches: the search ends after the pages it needs."""

    def page(target, headers):
        n = int(target.rsplit("p=", 1)[1]) if "p=" in target else 0
        names = ["app"] + [f"app-{n}-{i}" for i in range(10)]
        return linked(json.dumps({"repositories": names}).encode(), f"/v2/_catalog?p={n + 1}")

    with routes({"/v2/_catalog": page, "/v1/search": http_answer(404, b"{}")}) as srv:
        m = imgctl("search", "--limit", "25", "--format", "{{.Name}}", f"{srv.host}/app")
        asked = len([r for r in srv.requests if r[1].startswith("/v2/_catalog")])
    assert m.code == 0, m.err
    names = m.out.splitlines()
    assert len(names) == 25 and names[:3] == [f"{srv.host}/app"] * 3
    assert asked == 3


# -- class 6: JSON nested without end ----------------------------------------------------------------
def test_jsonlimit_bounds_depth_cheaply():
    assert jsonlimit.loads(b'{"a": [1, {"b": "[[[[[[[["}]}') == {"a": [1, {"b": "[[[[[[[["}]}
    assert isinstance(jsonlimit.loads(deep(jsonlimit.MAX_DEPTH)), list)
    for bad in (deep(jsonlimit.MAX_DEPTH + 1), b"[" * 10_000_000, b'{"a":' * 5000 + b"1" + b"}" * 5000):
        start = time.monotonic()
        with pytest.raises(jsonlimit.TooDeep):
            jsonlimit.loads(bad)
        assert time.monotonic() - start < 5
    assert not jsonlimit.too_deep(b"[" + b"{}," * 100_000 + b"{}]")
    assert not jsonlimit.too_deep(b'["' + b"[" * 1000 + b'"]')


@pytest.mark.parametrize("what", ["tags page", "token answer", "error body", "search", "catalog"])
def test_deep_json_in_registry_answers(store_root, what):
    path = f"/v2/{REPO}/tags/list"
    body = deep()
    args = ("tags", None)
    if what == "tags page":
        srv = routes({path: http_answer(200, body)})
    elif what == "token answer":
        srv = serve_with_token({path: http_answer(200, tags_page())}, http_answer(200, body))
    elif what == "error body":
        srv = routes({path: http_answer(404, deep(prefix=b'{"errors":', suffix=b"}"))})
    else:
        search_body = body if what == "search" else b"{}"
        catalog_body = body if what == "catalog" else b"{}"
        srv = routes({"/v1/search": http_answer(200, search_body), "/v2/_catalog": http_answer(200, catalog_body)})
        args = ("search", None)
    with srv:
        target = f"{srv.host}/{REPO}" if args[0] == "tags" else f"{srv.host}/app"
        m = imgctl(args[0], target)
    error = assert_failed_closed(m, store_root)
    if what != "error body":
        assert "nested deeper than 100 levels" in error, error


@pytest.mark.parametrize("what", ["manifest", "config"])
def test_deep_json_in_manifest_and_config(store_root, what):
    img = small_image("deep")
    with HostileRegistry(img) as reg:
        if what == "manifest":
            reg.add_manifest(deep(prefix=b'{"schemaVersion":2,"x":', suffix=b"}"), OCI_MANIFEST, tag="latest")
        else:
            config = deep(prefix=b'{"rootfs":{"type":"layers","diff_ids":[]},"x":', suffix=b"}")
            cfg_digest = reg.add_blob(config)
            manifest = {
                "schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg_digest, "size": len(config)},
                "layers": [],
            }
            reg.add_manifest(dumps(manifest), OCI_MANIFEST, tag="latest")
        m = imgctl("pull", reg.name)
    assert_failed_closed(m, store_root, "nested deeper than 100 levels")


# -- class 6: URLs that are not URLs -----------------------------------------------------------------
BAD_URLS = [
    "http://127.0.0.1:99999/token",
    "http://127.0.0.1:port/token",
    "http://exa mple.com/token",
    "http://[::1/token",
    "http://[zz::1]/token",
    "http:///token",
    "file:///etc/passwd",
    "data:text/plain,token",
    "javascript:alert(1)",
    "http://user:secret@127.0.0.1/token",
    "http://h\u00e9\u0000llo/token",
    "http://\u2603.example\u3002com:80\u00b9/token",
    "ftp://127.0.0.1/token",
]


@pytest.mark.parametrize("realm", BAD_URLS)
def test_malformed_token_realm(store_root, realm):
    challenge = f'Bearer realm="{realm}",service="s"'.encode("utf-8")
    raw = b"HTTP/1.1 401 X\r\nWWW-Authenticate: " + challenge + b"\r\nContent-Length: 2\r\n\r\n{}"
    with routes({f"/v2/{REPO}/tags/list": raw}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    # (a NUL is refused by the HTTP parser already: a broken answer rather than a bad realm)
    words = ("token realm", "not a valid http(s) URL") if "\0" not in realm else ()
    assert_failed_closed(m, store_root, *words)


@pytest.mark.parametrize("link", BAD_URLS + ["/v2/team/app/tags/list?\tp=2"])
def test_malformed_link(store_root, link):
    path = f"/v2/{REPO}/tags/list"
    raw = http_answer(200, tags_page())
    raw = raw.replace(b"\r\n\r\n", b'\r\nLink: <' + link.encode("utf-8") + b'>; rel="next"\r\n\r\n', 1)
    with routes({path: raw}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    # (urljoin reads ``http:///x`` as a path on the same host, as browsers do: then that path is a 404)
    words = ("page link", "not a valid http(s) URL") if "\0" not in link and not link.startswith("http:///") else ()
    assert_failed_closed(m, store_root, *words)


@pytest.mark.parametrize("location", BAD_URLS + ["data:,x", "http://127.0.0.1:1:2/"])
def test_malformed_redirect(store_root, location):
    raw = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: " + location.encode("utf-8") + b"\r\nContent-Length: 0\r\n\r\n"
    with routes({f"/v2/{REPO}/tags/list": raw}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    lenient = "\0" in location or location.startswith("http:///")  # (see test_malformed_link)
    words = ("redirected to a URL that is not a valid http(s) URL",) if not lenient else ()
    assert_failed_closed(m, store_root, *words)


def test_redirect_loop(store_root):
    path = f"/v2/{REPO}/tags/list"

    def hop(target, headers):
        nxt = f"{path}?hop=b" if target.endswith("hop=a") else f"{path}?hop=a"
        return b"HTTP/1.1 302 Found\r\nLocation: " + nxt.encode() + b"\r\nContent-Length: 0\r\n\r\n"

    with routes({path: hop}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    assert_failed_closed(m, store_root, "redirected in a loop")


def test_redirect_from_https_to_http_is_refused():
    client = RegistryClient(Config())
    ep = Endpoint("https://registry.example", "registry.example")
    with client, pytest.raises(RegistryError, match="from https to plain http"):
        client._check_redirect(ep, "https://registry.example/v2/a/tags/list", "http://storage.example/x", set())
    with RegistryClient(Config(insecure_registries=("storage.example",))) as insecure:
        insecure._check_redirect(ep, "https://registry.example/v2/", "http://storage.example/x", set())  # allowed


def test_foreign_layer_with_malformed_urls_is_not_fetched_from_them(store_root):
    img = small_image("foreign")
    layer = img.layers[0]
    manifest = json.loads(img.manifest_bytes)
    manifest["layers"][0]["urls"] = [u.replace("/token", "/blob") for u in BAD_URLS]
    with HostileRegistry(img) as reg:
        reg.blobs.pop(layer.digest)
        reg.add_manifest(dumps(manifest), OCI_MANIFEST, tag="latest")
        m = imgctl("pull", reg.name)
    assert_failed_closed(m, store_root, layer.digest)


# -- class 6: token answers ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "answer",
    [
        b'{"token":"good","expires_in":1e1000}',
        b'{"token":"good","expires_in":' + b"1" + b"0" * 1000 + b"}",
        b'{"token":"good","expires_in":NaN}',
        b'{"token":"good","expires_in":-Infinity}',
        b'{"token":"good","expires_in":-5}',
        b'{"token":"good","expires_in":"300"}',
        b'{"token":"good","expires_in":null,"issued_at":"yesterday"}',
        b'{"token":"good","issued_at":1e999}',
    ],
)
def test_strange_token_lifetimes_are_clamped(store_root, answer):
    with serve_with_token({f"/v2/{REPO}/tags/list": http_answer(200, tags_page())}, http_answer(200, answer)) as srv:
        m = imgctl("--debug", "tags", f"{srv.host}/{REPO}")
    assert (m.code, m.out.splitlines()) == (0, TAGS), m.err[-2000:]
    assert "Traceback" not in m.err


@pytest.mark.parametrize(
    "token",
    ["good\r\nX-Injected: 1", "g\u00f6\u00f6d", "good\u0000", "\tgood", "", "x" * (1024 * 1024 + 10), 42, None, ["good"]],
    ids=["crlf", "non-ascii", "nul", "tab", "empty", "huge", "number", "null", "list"],
)
def test_bad_tokens_are_refused(store_root, token):
    body = json.dumps({"token": token}).encode()
    with serve_with_token({f"/v2/{REPO}/tags/list": http_answer(200, tags_page())}, http_answer(200, body)) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
        sent = [h.get("authorization") for _, _, h in srv.requests]
    assert_failed_closed(m, store_root, "token")
    assert all(a is None for a in sent)


# -- class 6: broken HTTP -----------------------------------------------------------------------------
def _len(body: bytes, extra: int = 0) -> bytes:
    return b"%d" % (len(body) + extra)


OK = b"HTTP/1.1 200 OK\r\n"
BROKEN_HTTP = {  # name -> body -> the whole raw answer
    "negative length": lambda b: OK + b"Content-Length: -5\r\n\r\n" + b,
    "length not a number": lambda b: OK + b"Content-Length: 12abc\r\n\r\n" + b,
    "two lengths": lambda b: OK + b"Content-Length: 3\r\nContent-Length: " + _len(b) + b"\r\n\r\n" + b,
    "short body": lambda b: OK + b"Content-Length: " + _len(b, 100) + b"\r\n\r\n" + b,
    "chunk size garbage": lambda b: OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n" + b + b"\r\n0\r\n\r\n",
    "chunk longer than said": lambda b: OK + b"Transfer-Encoding: chunked\r\n\r\n3\r\n" + b + b"\r\n0\r\n\r\n",
    "chunked without end": lambda b: OK + b"Transfer-Encoding: chunked\r\n\r\n%x\r\n" % len(b) + b + b"\r\n",
    "huge header": lambda b: OK + b"X-Big: " + b"a" * (300 * 1024) + b"\r\nContent-Length: " + _len(b) + b"\r\n\r\n" + b,
    "many headers": lambda b: OK + b"X-A: b\r\n" * 50_000 + b"Content-Length: " + _len(b) + b"\r\n\r\n" + b,
    "status line garbage": lambda b: b"HTTP/1.1 2000000 OK\r\nContent-Length: " + _len(b) + b"\r\n\r\n" + b,
    "not http": lambda b: b"\x00\x01\x02 hello\r\n\r\n" + b,
    "nul in header": lambda b: OK + b"X-A: \x00\r\nContent-Length: " + _len(b) + b"\r\n\r\n" + b,
}


@pytest.mark.parametrize("case", sorted(BROKEN_HTTP))
def test_broken_http_in_a_tags_answer(store_root, case):
    with routes({f"/v2/{REPO}/tags/list": BROKEN_HTTP[case](tags_page())}) as srv:
        m = imgctl("tags", f"{srv.host}/{REPO}")
    assert_failed_closed(m, store_root)
    assert m.out == ""


@pytest.mark.parametrize("case", ["negative length", "chunk size garbage", "short body", "huge header", "two lengths"])
def test_broken_http_in_a_manifest_answer(store_root, case):
    img = small_image("broken")
    raw = BROKEN_HTTP[case](img.manifest_bytes).replace(OK, OK + b"Content-Type: " + OCI_MANIFEST.encode() + b"\r\n", 1)
    with routes({f"/v2/{REPO}/manifests/latest": raw}) as srv:
        m = imgctl("pull", f"{srv.host}/{REPO}:latest")
    assert_failed_closed(m, store_root)


# -- class 7: no exit while OpenSSL is loading the trust store ------------------------------------------
@pytest.fixture(scope="module")
def big_cert_file(tmp_path_factory):
    """~5 MiB of CA certificates (the system bundle again and again): loading takes a while."""
    import ssl

    paths = ssl.get_default_verify_paths()
    source = paths.cafile or paths.openssl_cafile
    if not source or not os.path.isfile(source):
        pytest.skip("no system CA bundle file")
    data = open(source, "rb").read()
    out = tmp_path_factory.mktemp("certs") / "big.pem"
    out.write_bytes(data * (5 * MiB // len(data) + 1))
    return out


@pytest.mark.parametrize(
    "args, runs",
    [(("pull", "BAD::ref"), 4), (("tags", "BAD::ref"), 4), (("pull", "127.0.0.1:1/x"), 1)],
    ids=["pull-bad-reference", "tags-bad-reference", "pull-unreachable"],
)
def test_early_failure_with_a_large_trust_store_never_crashes(store_root, big_cert_file, args, runs):
    """The CA bundle loads on a thread; an error before it is needed must not end the process
    while OpenSSL is still parsing it (before: SIGSEGV in about two runs of three)."""
    env = dict(os.environ, SSL_CERT_FILE=str(big_cert_file))
    for _ in range(runs):
        m = imgctl(*args, env=env)
        assert m.code not in (-signal.SIGSEGV, 128 + signal.SIGSEGV), f"crashed: {m.err[-1000:]}"
        assert_failed_closed(m, store_root, within=30)
