"""Docker Hub's pull path as users meet it (issue 14), against the Hub-shaped fixture in
hubfixture.py: registry-1.docker.io with tokens from auth.docker.io, blobs redirected to a CDN,
rate limits, insufficient_scope challenges; on the real host names, over TLS with a test CA."""

from __future__ import annotations

import base64
import json
import random
import time

import httpx
import pytest
from tests.support.cli import run
from tests.support.hubfixture import AUTH, CDN, RATE_LIMIT_TEXT, REGISTRY, Hub
from tests.support.images import make_image, make_index, make_layer
from tests.support.storecheck import assert_store_verifies, image_ids

from imgctl.config import Config
from imgctl.events import Retry
from imgctl.registry import RegistryClient
from imgctl.registry.check import _challenge_error

USER, PASSWORD = "hubuser", "hub-s3cret"


def _layer(seed: int, size: int = 300_000):
    return make_layer({f"f{seed}": random.Random(seed).randbytes(size)}, "gzip")


@pytest.fixture
def hub(tmp_path, monkeypatch, cfg_file):
    """Hub with ``ubuntu:18.04`` (a manifest list), a private ``team/private:v1``; imgctl pointed at it."""
    cfg_file.write_text("retry-delay = 0.01\n")
    with Hub(tmp_path / "hub", users={USER: PASSWORD}) as h:
        img = make_image([_layer(1), _layer(2, 1000)], docker=True)
        arm = make_image([_layer(3, 1000)], docker=True, architecture="arm64", variant="v8")
        h.ubuntu = img
        h.add("library/ubuntu", "18.04", make_index([img, arm], docker=True))
        h.private = make_image([_layer(4, 1000)])
        h.add("team/private", "v1", h.private, private=True)
        h.environ(monkeypatch)
        yield h


def _short(digest: str) -> str:
    return digest.split(":", 1)[1][:12]


def _no_authorization_at_cdn(hub: Hub) -> None:
    cdn = hub.of(CDN)
    assert cdn and all("authorization" not in r.headers for r in cdn)


def test_pull_from_hub_as_docker_prints_it(hub, store_root):
    r = run("pull", "--platform", "linux/amd64", "ubuntu:18.04")
    assert r.code == 0, r.err
    top = hub.repos["library/ubuntu"].tags["18.04"]
    l1, l2 = (_short(x.digest) for x in hub.ubuntu.layers)
    lines = r.out.splitlines()
    assert lines[:3] == ["18.04: Pulling from library/ubuntu", f"{l1}: Pulling fs layer", f"{l2}: Pulling fs layer"]
    assert lines[-3:] == [f"Digest: {top}", "Status: Downloaded newer image for ubuntu:18.04", "docker.io/library/ubuntu:18.04"]
    # the two layers download at once: each one's lines in docker's order, interleaved as they happen
    for short in (l1, l2):
        assert [x for x in lines[3:-3] if x.startswith(short)] == [
            f"{short}: Verifying Checksum", f"{short}: Download complete", f"{short}: Pull complete"]
    assert len(lines) == 12
    assert r.err == ""
    assert image_ids(store_root) == {hub.ubuntu.config_digest}
    assert_store_verifies(store_root)
    # every blob came from the CDN (307 with a signed query), which never saw the registry's token
    assert {r.status for r in hub.of(REGISTRY, "/blobs/")} == {307}
    assert len(hub.of(CDN)) == 3
    _no_authorization_at_cdn(hub)
    # one token for the whole pull, asked anonymously for the challenge's scope, reused
    assert hub.token_scopes() == [["repository:library/ubuntu:pull"]]
    assert all("authorization" not in r.headers for r in hub.of(AUTH))
    assert set(hub.proxy.connects) == {f"{REGISTRY}:443", f"{AUTH}:443", f"{CDN}:443"}


def test_up_to_date_pull_shows_rate_limit_headers_with_debug(hub):
    assert run("pull", "-q", "ubuntu:18.04").code == 0
    r = run("--debug", "pull", "ubuntu:18.04")
    assert r.code == 0, r.err
    assert "Status: Image is up to date for ubuntu:18.04" in r.out
    lines = [line for line in r.err.splitlines() if "ratelimit-limit" in line]
    assert lines and all(
        "ratelimit-limit: 100;w=21600, ratelimit-remaining: " in line and "docker-ratelimit-source: 192.0.2.7" in line
        for line in lines
    )
    assert f"GET https://{REGISTRY}/v2/library/ubuntu/manifests/18.04: HTTP 200; " in lines[0]


@pytest.mark.parametrize("retry_after", [None, "3600", "61"])
def test_rate_limit_fails_at_once_with_hubs_words(hub, store_root, retry_after):
    hub.rate_limited = True
    hub.rate_limit_retry_after = retry_after
    started = time.monotonic()
    r = run("pull", "ubuntu:18.04")
    assert time.monotonic() - started < 5
    assert (r.code, r.err) == (1, f"Error: toomanyrequests: {RATE_LIMIT_TEXT}\n")
    assert "Retrying" not in r.out
    assert len(hub.of(REGISTRY, "/manifests/")) == 2  # the anonymous try, then once with the token
    assert image_ids(store_root) == set()


def test_rate_limit_headers_of_the_refusal_in_debug(hub):
    hub.rate_limited = True
    r = run("--debug", "pull", "ubuntu:18.04")
    assert r.code == 1
    assert r.err.endswith(f"Error: toomanyrequests: {RATE_LIMIT_TEXT}\n")
    assert "HTTP 429; ratelimit-limit: 100;w=21600, ratelimit-remaining: 0;w=21600, docker-ratelimit-source: 192.0.2.7" in r.err


def test_rate_limit_with_a_short_retry_after_is_waited_for(hub):
    hub.rate_limited = True
    hub.rate_limit_retry_after = "0"
    r = run("pull", "ubuntu:18.04")
    assert r.code == 1
    assert r.out.count("Retrying in 0 seconds\n") == 4  # max-download-attempts (5) tries in all
    assert r.err == f"Error: toomanyrequests: {RATE_LIMIT_TEXT}\n"


def test_token_service_5xx_is_retried_like_the_registry(hub, store_root):
    hub.token_faults = ["503", "500"]
    r = run("pull", "ubuntu:18.04")
    assert r.code == 0, r.err
    assert r.out.startswith("Retrying in 0.01 seconds\nRetrying in 0.02 seconds\n18.04: Pulling from library/ubuntu\n")
    assert [r.status for r in hub.of(AUTH)] == [503, 500, 200]
    assert_store_verifies(store_root)


def test_token_service_that_keeps_failing(hub, cfg_file):
    cfg_file.write_text("retry-delay = 0.01\nmax-download-attempts = 3\n")
    hub.token_faults = ["503"] * 10
    r = run("pull", "ubuntu:18.04")
    assert (r.code, r.err) == (1, f"Error: token server {AUTH} answered HTTP 503\n")
    assert len(hub.of(AUTH)) == 3


def test_token_service_timeout_is_retried(hub):
    hub.token_faults = ["hang"]
    hub.hang_seconds = 3
    retries: list[Retry] = []
    with RegistryClient(Config(retry_delay=0.01), timeout=0.5, on_retry=retries.append) as client:
        fm = client.get_manifest("docker.io", "library/ubuntu", "18.04", display="ubuntu:18.04")
    assert fm.digest == hub.repos["library/ubuntu"].tags["18.04"]
    assert retries == [Retry(f"token from {AUTH}", 0.01, None)]
    assert len(hub.of(AUTH)) == 2


@pytest.mark.parametrize("name,shown", [("nosuch/repo", "nosuch/repo"), ("team/private:v1", "team/private"),
                                        ("docker.io/library/nosuch", "nosuch")])
def test_missing_or_private_repository_is_denied_as_docker_says(hub, name, shown, store_root):
    r = run("pull", name)
    assert r.code == 1
    assert r.err == (
        f"Error: pull access denied for {shown}, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied\n"
    )
    challenge = hub.of(REGISTRY, "/manifests/")[-1]
    assert challenge.status == 401


def test_unknown_tag(hub):
    r = run("pull", "ubuntu:nope")
    assert (r.code, r.err) == (1, "Error: manifest for ubuntu:nope not found: manifest unknown: manifest unknown\n")
    r = run("pull", "docker.io/library/ubuntu:nope")
    assert r.err == "Error: manifest for ubuntu:nope not found: manifest unknown: manifest unknown\n"


def test_tags_of_a_missing_repository(hub):
    r = run("tags", "nosuch/repo")
    assert r.err == (
        "Error: pull access denied for nosuch/repo, repository does not exist or may require 'docker login': "
        "denied: requested access to the resource is denied\n"
    )
    assert run("tags", "ubuntu").out == "18.04\n"


def test_challenge_errors_come_before_the_body():
    def resp(challenge: str) -> httpx.Response:
        body = {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]}
        return httpx.Response(401, headers={"WWW-Authenticate": challenge}, json=body)

    realm = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io"'
    assert _challenge_error(resp(realm + ',error="insufficient_scope"')) == (
        "DENIED", "requested access to the resource is denied")
    assert _challenge_error(resp(realm + ',error="insufficient_scope",error_description="no  pull\tfor you"')) == (
        "DENIED", "no pull for you")
    assert _challenge_error(resp(realm + ',error="invalid_token"')) == ("UNAUTHORIZED", "authentication required")
    assert _challenge_error(resp(realm)) is None
    assert _challenge_error(resp('Basic realm="x",error="insufficient_scope"')) is None


def test_token_retry_during_a_blob_names_the_blob(hub):
    retries: list[Retry] = []
    layer = hub.ubuntu.layers[1]
    with RegistryClient(Config(retry_delay=0.01), on_retry=retries.append) as client:
        client.get_manifest("docker.io", "library/ubuntu", "18.04", display="ubuntu:18.04")
        hub.revoke_tokens()
        hub.token_faults = ["502"]
        data = client.get_blob("docker.io", "library/ubuntu", layer.digest, layer.size)
    assert data == layer.data
    assert retries == [Retry(f"token from {AUTH}", 0.01, layer.digest)]
    assert [x.status for x in hub.of(REGISTRY, "/blobs/")] == [401, 307]
    _no_authorization_at_cdn(hub)


def test_expired_token_is_renewed(hub, monkeypatch):
    with RegistryClient(Config()) as client:
        client.get_manifest("docker.io", "library/ubuntu", "18.04", display="ubuntu:18.04")
        later = time.monotonic() + 400
        monkeypatch.setattr("imgctl.registry.tokens.time.monotonic", lambda: later)
        client.get_manifest("docker.io", "library/ubuntu", "18.04", display="ubuntu:18.04")
    assert len(hub.of(AUTH)) == 2


# -- the CDN -------------------------------------------------------------------------------------
def test_retry_lines_name_the_layer_behind_a_cdn_redirect(hub, store_root):
    layer = hub.ubuntu.layers[0].digest
    hub.cdn_faults[layer] = [("status", 503), ("status", 503)]
    r = run("pull", "ubuntu:18.04")
    assert r.code == 0, r.err
    short = _short(layer)
    assert [line for line in r.lines if "Retrying" in line] == [
        f"{short}: Retrying in 0.01 seconds", f"{short}: Retrying in 0.02 seconds"]
    # each retry asked the registry for a fresh redirect: a signed URL may have expired
    assert len([x for x in hub.of(REGISTRY, "/blobs/") if layer in x.path]) == 3
    _no_authorization_at_cdn(hub)
    assert_store_verifies(store_root)


def test_cut_at_the_cdn_resumes_with_a_fresh_redirect(hub, store_root):
    hub.single_use_urls = True  # a signature used once has "expired"
    layer = hub.ubuntu.layers[0]
    hub.cdn_faults[layer.digest] = [("cut", 100_000)]
    r = run("pull", "ubuntu:18.04")
    assert r.code == 0, r.err
    at_registry = [x for x in hub.of(REGISTRY, "/blobs/") if layer.digest in x.path]
    at_cdn = [x for x in hub.of(CDN) if layer.digest.split(":")[1] in x.path]
    assert len(at_registry) == 2 and all(x.status == 307 for x in at_registry)
    assert [(x.status, x.headers.get("range")) for x in at_cdn] == [(200, None), (206, "bytes=100000-")]
    assert at_cdn[0].query["verify"] != at_cdn[1].query["verify"]
    _no_authorization_at_cdn(hub)
    assert image_ids(store_root) == {hub.ubuntu.config_digest}
    assert_store_verifies(store_root)


def test_stalled_cdn_retry_names_the_layer(hub, store_root):
    layer = hub.ubuntu.layers[0].digest
    hub.cdn_faults[layer] = [("cut", 0)]
    r = run("pull", "ubuntu:18.04")
    assert r.code == 0, r.err
    assert [line for line in r.lines if "Retrying" in line] == [f"{_short(layer)}: Retrying in 0.01 seconds"]
    assert_store_verifies(store_root)


# -- credentials: --authfile and REGISTRY_AUTH_FILE ------------------------------------------------
def _auth_doc(key: str = "https://index.docker.io/v1/") -> dict:
    return {"auths": {key: {"auth": base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}}}


def test_login_and_logout_with_authfile_touch_only_that_file(hub, tmp_path, isolated_env):
    path = tmp_path / "ci" / "auth.json"
    r = run("login", "--authfile", str(path), "-u", USER, "-p", PASSWORD)
    assert r.code == 0, r.err
    assert r.out == "Login Succeeded\n"
    assert f"WARNING! Your password will be stored unencrypted in {path}." in r.err
    assert json.loads(path.read_text()) == _auth_doc()
    assert path.stat().st_mode & 0o777 == 0o600
    home = isolated_env["HOME"]
    assert not [p for p in home.rglob("*.json")]  # nothing written to the user's files
    assert [x.headers.get("authorization", "").split()[0] for x in hub.of(AUTH)] == ["Basic"]
    r = run("pull", "-q", "--authfile", str(path), "team/private:v1")
    assert (r.code, r.out) == (0, "docker.io/team/private:v1\n"), r.err
    r = run("logout", "--authfile", str(path))
    assert r.out == "Removing login credentials for https://index.docker.io/v1/\n"
    assert json.loads(path.read_text()) == {"auths": {}}


def test_login_with_a_wrong_password_writes_nothing(hub, tmp_path):
    path = tmp_path / "auth.json"
    r = run("login", "--authfile", str(path), "-u", USER, "-p", "nope")
    assert r.code == 1 and not path.exists()


def test_registry_auth_file_is_the_only_source(hub, tmp_path, monkeypatch, isolated_env):
    env_file = tmp_path / "env-auth.json"
    env_file.write_text(json.dumps(_auth_doc("docker.io")))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(env_file))
    assert run("pull", "-q", "team/private:v1").code == 0
    # login writes there too (podman's order), not to imgctl's own file
    other = tmp_path / "written.json"
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(other))
    assert run("login", "-u", USER, "-p", PASSWORD).code == 0
    assert json.loads(other.read_text()) == _auth_doc()
    assert not (isolated_env["XDG_CONFIG_HOME"] / "imgctl" / "auth.json").exists()


def test_authfile_wins_over_registry_auth_file_and_docker_config(hub, tmp_path, monkeypatch, isolated_env):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(_auth_doc()))
    empty = tmp_path / "empty.json"
    empty.write_text("{}")
    docker = isolated_env["HOME"] / ".docker"
    docker.mkdir()
    (docker / "config.json").write_text(json.dumps(_auth_doc()))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(good))
    r = run("pull", "-q", "--authfile", str(empty), "team/private:v1")
    assert r.code == 1 and "pull access denied for team/private" in r.err  # the docker config is not read either
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(empty))
    assert run("pull", "-q", "--authfile", str(good), "team/private:v1").code == 0
    assert run("tags", "--authfile", str(good), "team/private").out == "v1\n"
