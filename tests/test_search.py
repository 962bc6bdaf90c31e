"""`imgctl search` (Hub-shaped server, mirrors, real registries) and `imgctl tags`."""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from tests.support.cli import run
from tests.support.faultyserver import dead_url
from tests.support.hubsearch import HubSearchServer, hub_result
from tests.support.images import make_image, make_layer, push_image
from tests.support.registry import free_port
from tests.support.server import LoopbackServer, reply_json

import imgctl.search
from imgctl.errors import RegistryError, TransportError, UsageError
from imgctl.search import SearchFilters, SearchResult, parse_filters, split_search_term


@pytest.fixture
def hub(cfg_file):
    """A Hub-shaped /v1/search server configured as the index server."""
    server = HubSearchServer().start()
    cfg_file.write_text(f'index-server = "{server.url}"\n')
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def tiny_image():
    return make_image([make_layer({"hello.txt": "hello\n"})])


def table(*rows: str) -> str:
    return "\n".join(rows) + "\n"


EMPTY_CELLS = " " * len("DESCRIPTION   STARS     ")  # catalog rows: empty DESCRIPTION and STARS, padded


# -- Docker Hub: the table ------------------------------------------------------------------------
HTTPD_TABLE = table(
    "NAME                      DESCRIPTION                                     STARS     OFFICIAL",
    "httpd                     The Apache HTTP Server Project                  4951      [OK]",
    "clearlinux/httpd          httpd HyperText Transfer Protocol (HTTP) ser…   5         ",
    "paketobuildpacks/httpd                                                    0         ",
    "centos/httpd-24-centos7   Platform for running Apache httpd 2.4 or bui…   47        ",
    "manageiq/httpd            Container with httpd, built on CentOS for Ma…   1         ",
    "centos/httpd                                                              37        ",
    "dockerpinata/httpd                                                        2         ",
    "jitesoft/httpd            Apache httpd on Alpine linux. Built for amd6…   0         ",
    "yeasy/httpd-cn            轻量级 Apache httpd 镜像，中文文档，支持 HTT…   3         ",
    "tokyo/httpd-ja            日本語の説明：軽量な httpd コンテナイメージ…    1         ",
    "bitnami/apache            Bitnami container image for Apache (httpd)      123       ",
    "vulhub/httpd                                                              0         ",
    "openquantumsafe/httpd     Demo of post-quantum cryptography in Apache …   12        ",
    "e2eteam/httpd                                                             0         ",
    "hypoport/httpd-cgi        httpd-cgi                                       2         ",
    "solsson/httpd-openidc     mod_auth_openidc on official httpd image, ve…   5         ",
    "ulsmith/alpine-httpd      Simple httpd image on alpine                    0         ",
    "lolhens/httpd             Apache httpd 2 Server                           2         ",
    "sergeyzh/httpd                                                            0         ",
    "publici/httpd             httpd:latest                                    1         ",
    "interlutions/httpd                                                        0         ",
    "pinterb/httpd             Apache httpd (1.4.x) compiled from source       0         ",
    "amd64/httpd               The Apache HTTP Server Project                  3         ",
    "arm64v8/httpd             The Apache HTTP Server Project                  6         ",
    "ppc64le/httpd             The Apache HTTP Server Project                  0         ",
)


def test_search_prints_dockers_table_in_hub_order(hub):
    r = run("search", "httpd")
    assert (r.code, r.err) == (0, "")
    assert r.out == HTTPD_TABLE
    # exactly what docker's daemon asks: q and n, no page for the first page
    assert hub.requests == [{"path": "/v1/search", "q": "httpd", "n": "25"}]


def test_dockers_own_golden_output(cfg_file):
    # docker/cli cli/command/registry/testdata/search-context-write-table.golden, byte for byte
    results = [hub_result("result1", "Official build", 5000, official=True), hub_result("result2", "Not official", 5)]
    with HubSearchServer(results) as server:
        cfg_file.write_text(f'index-server = "{server.url}"\n')
        r = run("search", "result")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        "NAME      DESCRIPTION      STARS     OFFICIAL\n"
        "result1   Official build   5000      [OK]\n"
        "result2   Not official     5         \n"
    )


def test_no_trunc_folds_newlines_and_keeps_whole_descriptions(hub):
    r = run("search", "--no-trunc", "--limit", "10", "httpd")
    assert r.code == 0, r.err
    lines = r.out.splitlines()
    assert len(lines) == 11
    cells = {c[0]: c[1:] for c in (re.split(r" {3,}", l.rstrip()) for l in lines[1:])}
    # "\n" and "\r" each become one space, as docker does; nothing is cut
    assert cells["jitesoft/httpd"] == ["Apache httpd on Alpine linux. Built for amd64 and arm64,  rebuilt weekly.", "0"]
    assert cells["yeasy/httpd-cn"] == ["轻量级 Apache httpd 镜像，中文文档，支持 HTTP/2 和 TLS 1.3，适用于生产环境", "3"]
    assert cells["clearlinux/httpd"][0].endswith("with the benefits of Clear Linux OS.")
    assert cells["httpd"] == ["The Apache HTTP Server Project", "4951", "[OK]"]


def test_no_results_prints_only_the_header(hub):
    r = run("search", "no-such-thing-anywhere")
    assert (r.code, r.out, r.err) == (0, "NAME      DESCRIPTION   STARS     OFFICIAL\n", "")


def test_limit_and_several_pages(hub):
    hub.max_page_size = 10  # the server answers at most 10 per page: 25 takes three pages
    r = run("search", "httpd")
    assert r.code == 0, r.err
    assert r.out == HTTPD_TABLE
    assert [(q["n"], q.get("page")) for q in hub.requests] == [("25", None), ("25", "2"), ("25", "3")]

    r = run("search", "--limit", "3", "httpd")
    assert r.out == table(
        "NAME                     DESCRIPTION                                     STARS     OFFICIAL",
        "httpd                    The Apache HTTP Server Project                  4951      [OK]",
        "clearlinux/httpd         httpd HyperText Transfer Protocol (HTTP) ser…   5         ",
        "paketobuildpacks/httpd                                                   0         ",
    )


@pytest.mark.parametrize("limit", ["0", "101", "-1"])
def test_limit_out_of_range(hub, limit):
    r = run("search", "--limit", limit, "httpd")
    assert (r.code, r.out) == (2, "")
    assert r.err == f"Error: limit {limit} is outside the range of [1, 100]\n"
    assert hub.requests == []


def test_filters_apply_before_the_limit(hub):
    hub.max_page_size = 4
    r = run("search", "-f", "stars=10", "--limit", "4", "httpd")
    assert r.code == 0, r.err
    assert r.out == table(
        "NAME                      DESCRIPTION                                     STARS     OFFICIAL",
        "httpd                     The Apache HTTP Server Project                  4951      [OK]",
        "centos/httpd-24-centos7   Platform for running Apache httpd 2.4 or bui…   47        ",
        "centos/httpd                                                              37        ",
        "bitnami/apache            Bitnami container image for Apache (httpd)      123       ",
    )
    # pages were fetched until four results passed the filter
    assert [q.get("page") for q in hub.requests] == [None, "2", "3"]

    r = run("search", "--filter", "is-official=false", "--limit", "2", "--format", "{{.Name}}", "httpd")
    assert r.out == "clearlinux/httpd\npaketobuildpacks/httpd\n"
    r = run("search", "-f", "is-official=true", "-f", "stars=3", "--format", "{{.Name}} {{.IsOfficial}}", "httpd")
    assert r.out == "httpd [OK]\n"
    r = run("search", "-f", "stars=100000", "--format", "{{.Name}}", "httpd")
    assert (r.code, r.out) == (0, "")


def test_deprecated_is_automated_filter_warns_like_docker(hub):
    r = run("search", "-f", "is-automated=true", "httpd")
    assert r.code == 0
    assert r.out == "NAME      DESCRIPTION   STARS     OFFICIAL\n"
    assert r.err.startswith('WARNING: the "is-automated" filter is deprecated')


@pytest.mark.parametrize(
    "flt, message",
    [
        ("foo=bar", "invalid filter 'foo'"),
        ("stars=many", "invalid filter 'stars=many'"),
        ("is-official=maybe", "invalid filter 'is-official=maybe'"),
        ("stars", "bad format of filter (expected name=value)"),
    ],
)
def test_bad_filters(hub, flt, message):
    r = run("search", "-f", flt, "httpd")
    assert (r.code, r.out, r.err) == (2, "", f"Error: {message}\n")


def test_formats(hub):
    r = run("search", "--limit", "2", "--format", "json", "httpd")
    assert r.code == 0, r.err
    assert [json.loads(l) for l in r.out.splitlines()] == [
        {"Description": "The Apache HTTP Server Project", "IsOfficial": "true", "Name": "httpd", "StarCount": "4951"},
        {
            "Description": "httpd HyperText Transfer Protocol (HTTP) ser…",
            "IsOfficial": "false",
            "Name": "clearlinux/httpd",
            "StarCount": "5",
        },
    ]
    r = run("search", "--limit", "3", "--format", "{{.Name}}: {{.StarCount}}", "httpd")
    assert r.out == "httpd: 4951\nclearlinux/httpd: 5\npaketobuildpacks/httpd: 0\n"
    r = run("search", "--limit", "2", "--format", "table {{.Name}}\t{{.IsOfficial}}", "httpd")
    assert r.out == table("NAME               OFFICIAL", "httpd              [OK]", "clearlinux/httpd   ")
    r = run("search", "--format", "{{.Nope}}", "httpd")
    assert r.code == 2 and r.err.startswith("Error: template") and r.out == ""


@pytest.mark.parametrize("term", ["library/httpd", "docker.io/httpd", "index.docker.io/library/httpd"])
def test_hub_spellings_ask_hub_for_the_short_name(hub, term):
    r = run("search", "--limit", "1", "--format", "{{.Name}}", term)
    assert (r.code, r.out) == (0, "httpd\n")
    assert hub.requests[-1]["q"] == "httpd"


def test_index_server_in_dockers_spelling(hub, cfg_file):
    cfg_file.write_text(f'index-server = "{hub.url}/v1/"\n')
    r = run("search", "--limit", "1", "--format", "{{.Name}}", "httpd")
    assert (r.code, r.out) == (0, "httpd\n")
    assert hub.requests[-1]["path"] == "/v1/search"


def test_term_with_a_scheme_is_refused(hub):
    r = run("search", "https://example.com/foo")
    assert r.code == 2
    assert r.err == "Error: invalid repository name: repository name (https://example.com/foo) should not have a scheme\n"


# -- Docker Hub: failures and mirrors -------------------------------------------------------------
def test_unreachable_index_server_without_mirrors(cfg_file):
    dead = dead_url()
    cfg_file.write_text(f'index-server = "{dead}"\n')
    r = run("search", "httpd")
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: cannot search Docker Hub for 'httpd': GET {dead}/v1/search: connection refused\n"


def test_index_server_5xx_falls_back_to_a_mirrors_search(hub, cfg_file):
    hub.fail_status = 503
    with HubSearchServer() as mirror:  # a mirror with a search endpoint (Nexus, Harbor proxies)
        cfg_file.write_text(f'index-server = "{hub.url}"\nregistry-mirrors = ["{dead_url()}", "{mirror.url}"]\n')
        r = run("search", "--limit", "2", "httpd")
        assert (r.code, r.err) == (0, (
            f"WARNING: the index server could not be searched (GET {hub.url}/v1/search: HTTP 503); "
            f"results from mirror {mirror.url}\n"
        ))  # said on stderr: the table on stdout stays what a script reads
        assert r.out == table(
            "NAME               DESCRIPTION                                     STARS     OFFICIAL",
            "httpd              The Apache HTTP Server Project                  4951      [OK]",
            "clearlinux/httpd   httpd HyperText Transfer Protocol (HTTP) ser…   5         ",
        )
        assert mirror.requests == [{"path": "/v1/search", "q": "httpd", "n": "2"}]


def test_index_and_every_mirror_failing_names_each_endpoint(hub, cfg_file):
    hub.fail_status = 500
    dead = dead_url()
    with HubSearchServer() as broken:
        broken.fail_status = 502
        cfg_file.write_text(f'index-server = "{hub.url}"\nregistry-mirrors = ["{dead}", "{broken.url}/hub"]\n')
        r = run("search", "httpd")
        assert (r.code, r.out) == (1, "")
        assert r.err == (
            "Error: cannot search Docker Hub for 'httpd': "
            f"GET {hub.url}/v1/search: HTTP 500; "
            f"GET {dead}/v1/search: connection refused; "
            f"GET {broken.url}/hub/v1/search: HTTP 502; "
            f"GET {broken.url}/hub/v2/_catalog: HTTP 502\n"
        )
    # the mirror's path prefix is kept for both endpoints
    assert [q["path"] for q in broken.requests] == ["/hub/v1/search", "/hub/v2/_catalog"]


def test_hub_mirror_without_search_is_searched_through_its_catalog(registry_factory, cfg_file, tiny_image, monkeypatch):
    mirror = registry_factory()  # a pull-through cache has no /v1/search, only what it has cached
    for repo in ("bitnami/httpd-exporter", "library/alpine", "library/httpd", "library/httpd-alpine", "team/web"):
        push_image(mirror.url, repo, tiny_image, tag="latest")
    monkeypatch.setattr(imgctl.search, "CATALOG_PAGE_SIZE", 2)
    dead = dead_url()
    cfg_file.write_text(f'index-server = "{dead}"\nregistry-mirrors = ["{mirror.url}"]\n')
    r = run("search", "httpd")
    assert (r.code, r.err) == (0, (
        f"WARNING: the index server could not be searched (GET {dead}/v1/search: connection refused); "
        f"results from the catalog of mirror {mirror.url}\n"
    ))
    # exact match first, then catalog order; Hub's familiar names, library/ is official; no description or stars
    assert r.out == table(
        "NAME                     DESCRIPTION   STARS     OFFICIAL",
        "httpd                    " + EMPTY_CELLS + "[OK]",
        "bitnami/httpd-exporter   " + EMPTY_CELLS,
        "httpd-alpine             " + EMPTY_CELLS + "[OK]",
    )


# -- any registry ---------------------------------------------------------------------------------
CATALOG_REPOS = (
    "app",
    "apps/legacy",
    "base/alpine",
    "team/app",
    "team/app-api",
    "team/web",
    "tools/mapper",
    "web",
    "zzz/app-last",
)


@pytest.fixture
def catalog_registry(registry_factory, tiny_image, monkeypatch):
    """A registry of its own with nine repositories; the catalog is read three at a time."""
    reg = registry_factory()
    for repo in CATALOG_REPOS:
        push_image(reg.url, repo, tiny_image, tag="v1")
    monkeypatch.setattr(imgctl.search, "CATALOG_PAGE_SIZE", 3)
    return reg


def test_registry_search_via_catalog(catalog_registry):
    h = catalog_registry.host
    r = run("search", f"{h}/app")
    assert (r.code, r.err) == (0, "")
    w = len(f"{h}/zzz/app-last") + 3
    assert r.out == table(
        f"{'NAME':<{w}}DESCRIPTION   STARS     OFFICIAL",
        *(f"{h + '/' + n:<{w}}" + EMPTY_CELLS for n in ("app", "apps/legacy", "team/app", "team/app-api", "tools/mapper", "zzz/app-last")),
    )
    # the exact match first, though the catalog lists team/web before it
    r = run("search", "--format", "{{.Name}}", f"{h}/web")
    assert r.out == f"{h}/web\n{h}/team/web\n"
    r = run("search", "--format", "{{.Name}}", f"{h}/team/app")
    assert r.out == f"{h}/team/app\n{h}/team/app-api\n"
    r = run("search", "--limit", "2", "--format", "json", f"{h}/app")
    assert [json.loads(l) for l in r.out.splitlines()] == [
        {"Description": "", "IsOfficial": "false", "Name": f"{h}/app", "StarCount": ""},
        {"Description": "", "IsOfficial": "false", "Name": f"{h}/apps/legacy", "StarCount": ""},
    ]
    # an empty term lists the whole catalog, in order; stars filter drops catalog entries
    r = run("search", "--format", "{{.Name}}", f"{h}/")
    assert r.out == "".join(f"{h}/{n}\n" for n in sorted(CATALOG_REPOS))
    r = run("search", "-f", "stars=1", "--format", "{{.Name}}", f"{h}/app")
    assert (r.code, r.out) == (0, "")


def test_registry_mirror_serves_search_with_canonical_names(catalog_registry, cfg_file):
    dead_host = f"127.0.0.1:{free_port()}"
    cfg_file.write_text(f'[registries."{dead_host}"]\nmirrors = ["{catalog_registry.url}"]\n')
    r = run("search", "--format", "{{.Name}}", f"{dead_host}/mapper")
    assert (r.code, r.err) == (0, (
        f"WARNING: registry {dead_host} could not be searched (cannot reach registry {dead_host} "
        f"(GET http://{dead_host}/v2/): connection refused); results from the catalog of mirror {catalog_registry.url}\n"
    ))
    assert r.out == f"{dead_host}/tools/mapper\n"


def test_registry_with_a_search_endpoint_uses_it(cfg_file):
    results = [hub_result("team/httpd", "Team build of httpd", 3), hub_result("httpd", "", 0)]
    with HubSearchServer(results) as server:
        host = server.url.removeprefix("http://")
        r = run("search", f"{host}/httpd")
        assert r.code == 0, r.err
        assert r.out.splitlines()[1:] == [
            f"{host}/team/httpd   Team build of httpd   3         ",
            f"{host}/httpd                              0         ",
        ]
        assert server.requests[-1] == {"path": "/v1/search", "q": "httpd", "n": "25"}


def test_unreachable_registry_search(cfg_file):
    host = f"127.0.0.1:{free_port()}"
    r = run("search", f"{host}/app")
    assert (r.code, r.out) == (1, "")
    assert r.err == f"Error: cannot search {host} for 'app': cannot reach registry {host} (GET http://{host}/v2/): connection refused\n"


def test_catalog_with_basic_auth(registry_factory, tmp_path, tiny_image, cfg_file):
    from tests.support.registry import make_htpasswd

    from imgctl.config import load_config
    from imgctl.registry import RegistryClient

    reg = registry_factory(htpasswd=make_htpasswd(tmp_path / "htpasswd", {"ann": "s3cret"}))
    push_image(reg.url, "private/app", tiny_image, tag="v1", auth=("ann", "s3cret"))
    config = load_config(cfg_file)
    with RegistryClient(config, credentials=lambda host: ("ann", "s3cret") if host == reg.host else None) as client:
        found = imgctl.search.search(f"{reg.host}/app", client=client, config=config)
    assert found == [SearchResult(f"{reg.host}/private/app")]
    with RegistryClient(config, credentials=lambda host: None) as client, pytest.raises(RegistryError) as info:
        imgctl.search.search(f"{reg.host}/app", client=client, config=config)
    assert str(info.value) == (
        f"cannot search {reg.host} for 'app': GET {reg.url}/v1/search: HTTP 404; "
        f"GET {reg.url}/v2/_catalog: HTTP 401: unauthorized: authentication required"
    )


def test_catalog_with_token_auth_asks_for_the_catalog_scope(registry_factory, tmp_path, tiny_image, cfg_file, monkeypatch):
    from tests.support.tokenserver import TokenServer

    from imgctl.config import load_config
    from imgctl.registry import RegistryClient

    monkeypatch.setattr(imgctl.search, "CATALOG_PAGE_SIZE", 1)  # one repository per page
    with TokenServer(tmp_path / "tokens", users={"ann": "s3cret"}) as ts:
        reg = registry_factory(extra=ts.registry_config())
        for repo in ("team/app", "team/db", "web/app-ui"):
            push_image(reg.url, repo, tiny_image, tag="v1", auth=ts.auth(repo))
        config = load_config(cfg_file)
        with RegistryClient(config, credentials=lambda host: ("ann", "s3cret") if host == reg.host else None) as client:
            found = imgctl.search.search(f"{reg.host}/app", client=client, config=config)
        assert [r.name for r in found] == [f"{reg.host}/team/app", f"{reg.host}/web/app-ui"]
        asked = [(q["user"], q["scopes"]) for q in ts.token_requests()]
    assert ("ann", ["registry:catalog:*"]) in asked


# -- tags -----------------------------------------------------------------------------------------
TAGS = ["1.0", "1.1", "2.0", "2.0-alpine", "latest", "stable", "v3"]


@pytest.fixture
def tagged_repo(registry, unique_repo, tiny_image):
    for tag in TAGS:
        push_image(registry.url, unique_repo, tiny_image, tag=tag)
    return f"{registry.host}/{unique_repo}"


def test_tags_of_a_real_registry(tagged_repo):
    # distribution 2.8 answers tags/list in one unsorted page; imgctl keeps the registry's order
    r = run("tags", tagged_repo)
    assert (r.code, r.err) == (0, "")
    assert sorted(r.out.splitlines()) == TAGS and r.out.endswith("\n")
    first_two = r.out.splitlines()[:2]
    r = run("tags", "--limit", "2", tagged_repo)
    assert r.out.splitlines() == first_two
    r = run("tags", "--limit", "2", "--format", "json", tagged_repo)
    assert [json.loads(l) for l in r.out.splitlines()] == [{"Repository": tagged_repo, "Tag": t} for t in first_two]
    r = run("tags", "--limit", "1", "--format", "{{.Repository}}:{{.Tag}}", tagged_repo)
    assert r.out == f"{tagged_repo}:{first_two[0]}\n"


def test_tags_through_mirrors(registry, tagged_repo, cfg_file):
    repo = tagged_repo.split("/", 1)[1]
    # the registry itself is down; a dead mirror, then a working one
    dead_host = f"127.0.0.1:{free_port()}"
    cfg_file.write_text(f'[registries."{dead_host}"]\nmirrors = ["{dead_url()}", "{registry.url}"]\n')
    r = run("tags", f"{dead_host}/{repo}")
    assert (r.code, r.err) == (0, "")
    assert sorted(r.out.splitlines()) == TAGS
    # a dead mirror in front of a working registry
    cfg_file.write_text(f'[registries."{registry.host}"]\nmirrors = ["{dead_url()}"]\n')
    r = run("tags", tagged_repo)
    assert (r.code, sorted(r.out.splitlines())) == (0, TAGS)


def test_tags_errors(registry, unique_repo, cfg_file):
    name = f"{registry.host}/{unique_repo}"
    r = run("tags", name)
    assert (r.code, r.out) == (1, "")
    assert r.err == (
        f"Error: repository {name} not found: name unknown: repository name not known to registry\n"
    )
    r = run("tags", f"{name}:v1")
    assert (r.code, r.err) == (2, f"Error: {name}:v1: give a repository without a tag or digest, e.g. {name}\n")
    mirror = dead_url()
    cfg_file.write_text(f'[registries."{registry.host}"]\nmirrors = ["{mirror}"]\n')
    r = run("tags", name)
    assert r.code == 1 and r.err.count("\n") == 1
    assert r.err.rstrip().endswith(f"(mirrors failed too: {mirror}: GET {mirror}/v2/{unique_repo}/tags/list: connection refused)")


class PagedTokenRegistry(LoopbackServer):
    """What distribution 2.8 lacks: sorted, ``n``/``last`` paginated tags/list and _catalog (as
    distribution v3 and Hub answer; pages of at most 3 here), behind bearer-token auth whose
    token is only good for the one scope it was asked for."""

    methods = ("GET",)

    def __init__(self, repos: dict[str, list[str]]) -> None:
        super().__init__()
        self.repos = repos
        self.scopes: list[str] = []
        self.start()

    def handle(self, h, method) -> None:
        parts = urlsplit(h.path)
        q = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        if parts.path == "/token":
            self.scopes.append(q.get("scope", ""))
            return reply_json(h, 200, {"token": "tok " + q.get("scope", "")})
        m = re.fullmatch(r"/v2/(.+)/tags/list", parts.path)
        if parts.path == "/v2/_catalog":
            scope, key, items = "registry:catalog:*", "repositories", sorted(self.repos)
        elif m and m.group(1) in self.repos:
            scope, key, items = f"repository:{m.group(1)}:pull", "tags", sorted(self.repos[m.group(1)])
        else:
            scope, key, items = "", "", []
        if h.headers.get("Authorization") != f"Bearer tok {scope}":
            realm = f'Bearer realm="http://{h.headers["Host"]}/token",service="test",scope="{scope}"'
            return reply_json(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}, {"WWW-Authenticate": realm})
        if not key:
            return reply_json(h, 404, {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]})
        after = [i for i in items if i > q.get("last", "")]
        n = min(int(q.get("n", "100")), 3)  # like Hub, a page holds at most a few tags
        page, headers = after[:n], {}
        if len(after) > n:
            headers["Link"] = f'<{parts.path}?last={page[-1]}&n={n}>; rel="next"'
        reply_json(h, 200, {key: page} if key == "repositories" else {"name": m.group(1), key: page}, headers)


@pytest.fixture
def paged_registry(monkeypatch):
    monkeypatch.setattr(imgctl.search, "CATALOG_PAGE_SIZE", 2)
    reg = PagedTokenRegistry({"team/app": TAGS, "team/db": ["16"], "tools/app-cli": ["1"], "web": ["1"]})
    yield reg
    reg.stop()


def test_tags_and_catalog_follow_link_pages_with_scoped_tokens(paged_registry):
    h = paged_registry.host
    r = run("tags", f"{h}/team/app")
    assert (r.code, r.out, r.err) == (0, "".join(t + "\n" for t in TAGS), "")
    r = run("tags", "--limit", "4", f"{h}/team/app")
    assert r.out == "1.0\n1.1\n2.0\n2.0-alpine\n"
    r = run("search", "--format", "{{.Name}}", f"{h}/app")
    assert (r.code, r.out, r.err) == (0, f"{h}/team/app\n{h}/tools/app-cli\n", "")
    assert "registry:catalog:*" in paged_registry.scopes and "repository:team/app:pull" in paged_registry.scopes
    r = run("tags", f"{h}/nope")
    assert r.err == (
        f"Error: pull access denied for {h}/nope, repository does not exist or may require 'docker login': "
        "unauthorized: authentication required\n"
    )


# -- the library ----------------------------------------------------------------------------------
def test_parse_filters():
    assert parse_filters([]) == SearchFilters()
    assert parse_filters(["stars=3", "STARS = 10", "is-official=1"]) == SearchFilters(stars=10, is_official=True)
    assert parse_filters(["is-official=false", "is-official=0"]) == SearchFilters(is_official=False)
    with pytest.raises(UsageError, match="invalid filter 'is-official=true,false'"):
        parse_filters(["is-official=true", "is-official=false"])


@pytest.mark.parametrize(
    "term, split",
    [
        ("httpd", ("docker.io", "httpd")),
        ("bitnami/redis", ("docker.io", "bitnami/redis")),
        ("localhost/app", ("localhost", "app")),
        ("127.0.0.1:5000/team/app", ("127.0.0.1:5000", "team/app")),
        ("index.docker.io/library/httpd", ("docker.io", "library/httpd")),
        ("registry.example/", ("registry.example", "")),
    ],
)
def test_split_search_term(term, split):
    assert split_search_term(term) == split


def test_malformed_hub_entries_are_skipped(cfg_file):
    results = [{"name": 7}, hub_result("ok", None, 1), {"name": "odd", "star_count": "9", "is_official": "yes"}]
    with HubSearchServer(results) as server:
        cfg_file.write_text(f'index-server = "{server.url}"\n')
        r = run("search", "--format", "{{.Name}}|{{.Description}}|{{.StarCount}}|{{.IsOfficial}}", "o")
    assert (r.code, r.out) == (0, "ok||1|\nodd||0|\n")


def test_transport_error_class_when_everything_is_down(cfg_file):
    from imgctl.config import load_config
    from imgctl.registry import RegistryClient

    cfg_file.write_text(f'index-server = "{dead_url()}"\nregistry-mirrors = ["{dead_url()}"]\n')
    config = load_config(cfg_file)
    with RegistryClient(config) as client, pytest.raises(TransportError):
        imgctl.search.search("httpd", client=client, config=config)


def test_search_and_tags_have_help():
    for cmd in ("search", "tags"):
        r = run(cmd, "--help")
        assert r.code == 0 and "--limit" in r.out and "--format" in r.out


def test_cli_process_output_equals_in_process_output(hub, cfg_file):
    """The CLI process skips optional imports (wcwidth among them); the table must not change."""
    import os
    import subprocess
    import sys

    expected = run("search", "--limit", "40", "httpd")
    assert any(ord(c) > 0x2E80 for c in expected.out)  # wide characters are in the table
    r = subprocess.run([sys.executable, "-m", "imgctl", "search", "--limit", "40", "httpd"], env=dict(os.environ), capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, expected.out, "")
