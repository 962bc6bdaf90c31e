"""A local stand-in for Docker Hub's search endpoint, ``GET /v1/search``.

Docker Hub is not reachable from the tests, so this small server answers exactly
the way Hub's ``/v1/search`` does::

    GET /v1/search?q=httpd&n=25[&page=2]
    200 {"num_pages": 2, "num_results": 31, "results": [{"name": "httpd",
         "description": "...", "star_count": 4951, "is_official": true,
         "is_automated": false}, ...], "page_size": 25, "query": "httpd", "page": 1}

* ``q`` matches case-insensitively anywhere in a name or description; results
  come in the order of the data (Hub's relevance order, not by stars).
* ``n`` is the page size (default 25, at most ``max_page_size``, 100 like Hub);
  ``page`` counts from 1; a page past the end has no results.  Official names
  come without ``library/``.
* A missing ``q`` or a bad ``n``/``page`` is a 400 with a JSON message.

For failure paths, set ``server.fail_status`` (e.g. 503): every request then
gets that status and a plain body.  Every request's query is recorded in
``server.requests`` (a list of dicts) so tests can check ``n`` and ``page``.

Usage::

    with HubSearchServer(HTTPD_RESULTS) as hub:
        hub.url   # "http://127.0.0.1:PORT"
"""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from .server import LoopbackServer, reply, reply_json

__all__ = ["HubSearchServer", "HTTPD_RESULTS", "hub_result"]


def hub_result(name: str, description: str | None, stars: int, official: bool = False, automated: bool = False) -> dict:
    """One entry of Hub's ``results`` list, in Hub's field order."""
    return {
        "name": name,
        "description": description,
        "star_count": stars,
        "is_official": official,
        "is_automated": automated,
    }


# Realistic answers for "httpd", in Hub's relevance order (stars are not sorted).
HTTPD_RESULTS: list[dict] = [
    hub_result("httpd", "The Apache HTTP Server Project", 4951, official=True),
    hub_result("clearlinux/httpd", "httpd HyperText Transfer Protocol (HTTP) server program with the benefits of Clear Linux OS.", 5),
    hub_result("paketobuildpacks/httpd", "", 0),
    hub_result("centos/httpd-24-centos7", "Platform for running Apache httpd 2.4 or building httpd-based application", 47, automated=True),
    hub_result("manageiq/httpd", "Container with httpd, built on CentOS for ManageIQ", 1, automated=True),
    hub_result("centos/httpd", "", 37, automated=True),
    hub_result("dockerpinata/httpd", "", 2),
    hub_result("jitesoft/httpd", "Apache httpd on Alpine linux.\nBuilt for amd64 and arm64,\r\nrebuilt weekly.", 0),
    hub_result("ubuntu/apache2", "Apache, a secure & extensible open-source HTTP server. Long-term tracks maintained by Canonical.", 86),
    hub_result("yeasy/httpd-cn", "轻量级 Apache httpd 镜像，中文文档，支持 HTTP/2 和 TLS 1.3，适用于生产环境", 3),
    hub_result("tokyo/httpd-ja", "日本語の説明：軽量な httpd コンテナイメージです", 1),
    hub_result("bitnami/apache", "Bitnami container image for Apache (httpd)", 123),
    hub_result("vulhub/httpd", "", 0),
    hub_result("openquantumsafe/httpd", "Demo of post-quantum cryptography in Apache HTTPD", 12),
    hub_result("e2eteam/httpd", "", 0),
    hub_result("hypoport/httpd-cgi", "httpd-cgi", 2, automated=True),
    hub_result("solsson/httpd-openidc", "mod_auth_openidc on official httpd image, version tags as in httpd", 5, automated=True),
    hub_result("ulsmith/alpine-httpd", "Simple httpd image on alpine", 0),
    hub_result("lolhens/httpd", "Apache httpd 2 Server", 2, automated=True),
    hub_result("sergeyzh/httpd", "", 0),
    hub_result("publici/httpd", "httpd:latest", 1, automated=True),
    hub_result("interlutions/httpd", "", 0),
    hub_result("pinterb/httpd", "Apache httpd (1.4.x) compiled from source", 0),
    hub_result("amd64/httpd", "The Apache HTTP Server Project", 3),
    hub_result("arm64v8/httpd", "The Apache HTTP Server Project", 6),
    hub_result("ppc64le/httpd", "The Apache HTTP Server Project", 0),
    hub_result("s390x/httpd", "The Apache HTTP Server Project", 0),
    hub_result("i386/httpd", "The Apache HTTP Server Project", 0),
    hub_result("arm32v7/httpd", "The Apache HTTP Server Project", 10),
    hub_result("rhscl/httpd-24-rhel7", "Apache HTTP 2.4 Server", 31, automated=True),
    hub_result("wodby/httpd", "Apache HTTP Server (httpd) container image for Drupal, WordPress and other PHP apps", 9),
]


class HubSearchServer(LoopbackServer):
    """``/v1/search`` over ``results`` on 127.0.0.1, served from a thread of the test process."""

    methods = ("GET",)

    def __init__(self, results: list[dict] | None = None, *, max_page_size: int = 100) -> None:
        super().__init__()
        self.results = list(HTTPD_RESULTS if results is None else results)
        self.max_page_size = max_page_size
        self.fail_status: int | None = None
        self.requests: list[dict] = []

    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        self.requests.append({"path": parts.path, **query})
        if self.fail_status:
            reply(h, self.fail_status, b"upstream unavailable\n", content_type="text/plain")
            return
        if parts.path not in ("/v1/search", "/v1/search/"):
            reply_json(h, 404, {"message": "page not found"})
            return
        if "q" not in query:
            reply_json(h, 400, {"message": "query parameter q is required"})
            return
        try:
            n = int(query.get("n", "25"))
            page = int(query.get("page", "1"))
            if n < 1 or page < 1:
                raise ValueError
        except ValueError:
            reply_json(h, 400, {"message": "invalid n or page"})
            return
        n = min(n, self.max_page_size)
        q = query["q"].lower()
        hits = [r for r in self.results if q in str(r.get("name")).lower() or q in str(r.get("description") or "").lower()]
        num_pages = (len(hits) + n - 1) // n
        doc = {
            "num_pages": num_pages,
            "num_results": len(hits),
            "results": hits[(page - 1) * n : page * n],
            "page_size": n,
            "query": query["q"],
            "page": page,
        }
        reply_json(h, 200, doc)
