"""Authentication: token and Basic auth against real registries, docker's config, login/logout,
and credential containment (no credential ever leaves its host)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import sys
import time

import pytest
from tests.support.cli import run
from tests.support.faultyserver import FaultyServer
from tests.support.images import make_image, make_layer, push_blob, push_image, push_raw_manifest
from tests.support.registry import make_htpasswd
from tests.support.storecheck import assert_store_verifies, image_ids
from tests.support.tokenserver import TokenServer

from imgctl import auth
from imgctl.config import Config
from imgctl.registry import RegistryClient

USER, PASSWORD = "alice", "correct horse battery staple"


def small_image(seed: str, n: int = 2):
    layers = [make_layer({f"data/{seed}/{i}": (f"{seed}-{i} " * 2000).encode()}, "gzip") for i in range(n)]
    return make_image(layers, labels={"seed": seed})


def b64(user: str, password: str) -> str:
    return base64.b64encode(f"{user}:{password}".encode()).decode()


@pytest.fixture
def docker_config(isolated_env, monkeypatch):
    """``docker_config(doc)`` writes $DOCKER_CONFIG/config.json (a directory under the test's HOME)."""
    d = isolated_env["HOME"] / "dockercfg"
    d.mkdir(exist_ok=True)
    monkeypatch.setenv("DOCKER_CONFIG", str(d))

    def write(doc: dict) -> None:
        (d / "config.json").write_text(json.dumps(doc))

    return write


@pytest.fixture
def tokens(tmp_path):
    with TokenServer(tmp_path / "tokens", users={USER: PASSWORD}) as ts:
        yield ts


@pytest.fixture
def token_registry(registry_factory, tokens):
    return registry_factory(extra=tokens.registry_config())


@pytest.fixture
def basic_registry(registry_factory, tmp_path):
    return registry_factory(htpasswd=make_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD}))


def login(*args: str, stdin: str | None = None):
    old = sys.stdin
    sys.stdin = io.StringIO(stdin if stdin is not None else "")
    try:
        return run("login", *args)
    finally:
        sys.stdin = old


def assert_no_secret(text: str, *secrets: str) -> None:
    for s in (PASSWORD, b64(USER, PASSWORD), *secrets):
        assert s not in text
    assert "Bearer " not in text and "Basic " not in text and "eyJ" not in text


# -- token auth --------------------------------------------------------------------------------
def test_token_auth_with_docker_config(token_registry, tokens, docker_config, store_root):
    img = small_image("token")
    push_image(token_registry.url, "team/app", img, tag="v1", auth=tokens.auth("team/app"))
    docker_config({"auths": {token_registry.host: {"auth": b64(USER, PASSWORD)}}})

    name = f"{token_registry.host}/team/app:v1"
    r = run("--debug", "pull", name)
    assert r.code == 0, r.err
    assert r.lines[-1] == name
    assert_store_verifies(store_root)
    assert image_ids(store_root) == {img.config_digest}
    # One token for the whole pull: reused for the manifest, the config and every layer.
    reqs = tokens.token_requests()
    assert [(q["user"], q["scopes"]) for q in reqs] == [(USER, ["repository:team/app:pull"])]
    assert_no_secret(r.out + r.err)


def test_token_auth_access_token_field_and_expiry(registry_factory, tmp_path, monkeypatch):
    with TokenServer(tmp_path / "t", users={USER: PASSWORD}, token_field="access_token", expires_in=None) as ts:
        reg = registry_factory(extra=ts.registry_config())
        img = small_image("expiry")
        push_image(reg.url, "team/exp", img, tag="v1", auth=ts.auth("team/exp"))
        creds = lambda host: (USER, PASSWORD) if host == reg.host else None  # noqa: E731
        with RegistryClient(Config(), credentials=creds) as client:
            for _ in range(2):
                assert client.get_manifest(reg.host, "team/exp", "v1", display="x").digest == img.manifest_digest
            assert len(ts.token_requests()) == 1  # reused within its lifetime (default 60 s)
            later = time.monotonic() + 61
            monkeypatch.setattr("imgctl.registry.tokens.time.monotonic", lambda: later)
            assert client.get_manifest(reg.host, "team/exp", "v1", display="x").digest == img.manifest_digest
            assert len(ts.token_requests()) == 2  # expired: a new one


def test_token_auth_without_credentials_is_denied(token_registry, tokens, store_root):
    push_image(token_registry.url, "team/private", small_image("denied"), tag="v1", auth=tokens.auth("team/private"))
    r = run("pull", f"{token_registry.host}/team/private:v1")
    assert r.code == 1
    assert r.err == (
        f"Error: pull access denied for {token_registry.host}/team/private, repository does not exist "
        "or may require 'docker login': denied: requested access to the resource is denied\n"
    )  # docker's words: the challenge's insufficient_scope, ahead of the body's UNAUTHORIZED
    assert [q["user"] for q in tokens.token_requests()] == [None]


def test_token_auth_with_a_wrong_password(token_registry, tokens, docker_config):
    push_image(token_registry.url, "team/app", small_image("wrong"), tag="v1", auth=tokens.auth("team/app"))
    docker_config({"auths": {f"https://{token_registry.host}/v1/": {"auth": b64(USER, "nope")}}})
    r = run("--debug", "pull", f"{token_registry.host}/team/app:v1")
    assert r.code == 1
    assert f"Error: authentication to {token_registry.host} failed: unauthorized: incorrect username or password" in r.err
    assert "nope" not in r.err


def test_identity_token_from_docker_config(registry_factory, tmp_path, docker_config, store_root):
    with TokenServer(tmp_path / "t", refresh_tokens={"refresh-4f2a": USER}) as ts:
        reg = registry_factory(extra=ts.registry_config())
        img = small_image("identity")
        push_image(reg.url, "team/id", img, tag="v1", auth=ts.auth("team/id"))
        docker_config({"auths": {reg.host: {"auth": "", "identitytoken": "refresh-4f2a"}}})
        r = run("pull", "-q", f"{reg.host}/team/id:v1")
        assert r.code == 0, r.err
        [req] = ts.token_requests()
        assert (req["method"], req["grant"], req["user"]) == ("POST", "refresh_token", USER)
        assert req["authorization"] is None
    assert_store_verifies(store_root)


# -- login / logout ------------------------------------------------------------------------------
def test_login_pull_logout_with_token_auth(token_registry, tokens, store_root):
    push_image(token_registry.url, "team/app", small_image("login"), tag="v1", auth=tokens.auth("team/app"))
    host = token_registry.host

    r = login("-u", USER, "--password-stdin", host, stdin=PASSWORD + "\n")
    assert r.code == 0, r.err
    assert r.out == "Login Succeeded\n"
    path = auth.auth_file()
    assert r.err == f"WARNING! Your password will be stored unencrypted in {path}.\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert json.loads(path.read_text())["auths"][host] == {"auth": b64(USER, PASSWORD)}
    assert [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")] == []

    r = run("pull", "-q", f"{host}/team/app:v1")
    assert r.code == 0, r.err

    r = run("logout", host)
    assert (r.code, r.out) == (0, f"Removing login credentials for {host}\n")
    assert json.loads(path.read_text())["auths"] == {}
    r = run("logout", host)
    assert (r.code, r.out) == (0, f"Not logged in to {host}\n")
    r = run("pull", "-q", f"{host}/team/app:v1")
    assert r.code == 1 and "pull access denied" in r.err


def test_login_with_basic_auth_and_wrong_password(basic_registry, store_root):
    host = basic_registry.host
    r = login("-u", USER, "--password-stdin", host, stdin="wrong\n")
    assert r.code == 1
    assert r.err == f"Error: login to {host} failed: unauthorized: incorrect username or password\n"
    assert not auth.auth_file().exists()

    r = login("-u", USER, "--password-stdin", f"https://{host}/v2/", stdin=PASSWORD)
    assert (r.code, r.out) == (0, "Login Succeeded\n"), r.err
    assert list(json.loads(auth.auth_file().read_text())["auths"]) == [host]


def test_login_keeps_other_entries_and_uses_docker_hub_key(basic_registry, monkeypatch):
    auth.save(auth.HUB_KEY, "hubuser", "hubpw")
    r = login("-u", USER, "--password-stdin", basic_registry.host, stdin=PASSWORD)
    assert r.code == 0, r.err
    doc = json.loads(auth.auth_file().read_text())
    assert sorted(doc["auths"]) == sorted([auth.HUB_KEY, basic_registry.host])
    assert auth.lookup("registry-1.docker.io") == ("hubuser", "hubpw")
    assert auth.lookup("docker.io") == ("hubuser", "hubpw")
    assert auth.server_key(None) == auth.server_key("docker.io") == auth.server_key("index.docker.io") == auth.HUB_KEY
    r = run("logout")
    assert r.out == "Removing login credentials for https://index.docker.io/v1/\n"


def test_login_usage_errors(basic_registry):
    r = login("--password-stdin", basic_registry.host, stdin=PASSWORD)
    assert (r.code, r.err) == (2, "Error: Must provide --username with --password-stdin\n")
    r = login("-u", USER, basic_registry.host)  # stdin is not a terminal
    assert (r.code, r.err) == (2, "Error: Cannot perform an interactive login from a non TTY device\n")


def test_login_prompts_on_a_terminal(basic_registry, monkeypatch):
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("getpass.getpass", lambda prompt="": PASSWORD)
    old = sys.stdin
    sys.stdin = Tty(USER + "\n")
    try:
        r = run("login", basic_registry.host)
    finally:
        sys.stdin = old
    assert (r.code, r.out) == (0, "Username: Login Succeeded\n"), r.err
    assert auth.lookup(basic_registry.host) == (USER, PASSWORD)


# -- Basic auth and docker's credential sources ------------------------------------------------------
def test_basic_auth_with_docker_config_auths(basic_registry, docker_config, store_root):
    img = small_image("basic")
    push_image(basic_registry.url, "team/basic", img, tag="v1", auth=(USER, PASSWORD))
    name = f"{basic_registry.host}/team/basic:v1"
    r = run("pull", name)
    assert r.code == 1 and "pull access denied" in r.err

    docker_config({"auths": {f"http://{basic_registry.host}": {"auth": b64(USER, PASSWORD)}}})
    r = run("--debug", "pull", name)
    assert r.code == 0, r.err
    assert_store_verifies(store_root)
    assert_no_secret(r.out + r.err)


@pytest.mark.parametrize("how", ["credsStore", "credHelpers"])
def test_credential_helper(how, basic_registry, docker_config, store_root, tmp_path, monkeypatch):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log = tmp_path / "helper.log"
    helper = bindir / "docker-credential-imgctltest"
    helper.write_text(
        "#!/bin/sh\n"
        f'[ "$1" = get ] || exit 2\n'
        "read server\n"
        f'echo "$server" >> {log}\n'
        f'if [ "$server" = "{basic_registry.host}" ]; then\n'
        f'  printf \'{{"ServerURL":"%s","Username":"{USER}","Secret":"{PASSWORD}"}}\' "$server"\n'
        "else\n  echo 'credentials not found in native keychain'; exit 1\nfi\n"
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    doc = {"credsStore": "imgctltest"} if how == "credsStore" else {"credHelpers": {basic_registry.host: "imgctltest"}}
    docker_config(doc)
    push_image(basic_registry.url, "team/helper", small_image("helper"), tag="v1", auth=(USER, PASSWORD))
    r = run("--debug", "pull", f"{basic_registry.host}/team/helper:v1")
    assert r.code == 0, r.err
    assert log.read_text().splitlines() == [basic_registry.host]  # asked once per run
    assert_no_secret(r.out + r.err)


def test_podman_auth_file(basic_registry, monkeypatch, tmp_path, store_root):
    path = tmp_path / "podman-auth.json"
    path.write_text(json.dumps({"auths": {basic_registry.host: {"auth": b64(USER, PASSWORD)}}}))
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(path))
    push_image(basic_registry.url, "team/podman", small_image("podman"), tag="v1", auth=(USER, PASSWORD))
    assert run("pull", "-q", f"{basic_registry.host}/team/podman:v1").code == 0


# -- containment --------------------------------------------------------------------------------
@pytest.mark.parametrize("target_ip", ["127.0.0.2", "127.0.0.1"])
@pytest.mark.parametrize("scheme", ["basic", "token"])
def test_no_credentials_to_a_redirect_target_on_another_host(
    scheme, target_ip, registry_factory, tmp_path, docker_config, store_root
):
    """The registry answers blob GETs with 307 to a blob store on another host (or port)."""
    with FaultyServer("files", host=target_ip) as store, TokenServer(tmp_path / "t", users={USER: PASSWORD}) as ts:
        extra = {"middleware": {"storage": [{"name": "redirect", "options": {"baseurl": f"http://{store.host}/"}}]}}
        if scheme == "token":
            reg = registry_factory(extra={**extra, **ts.registry_config()})
            push_auth = ts.auth("team/redirect")
        else:
            reg = registry_factory(htpasswd=make_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD}), extra=extra)
            push_auth = (USER, PASSWORD)
        store.root = reg.storage
        img = small_image(f"redirect-{scheme}")
        push_image(reg.url, "team/redirect", img, tag="v1", auth=push_auth)
        docker_config({"auths": {reg.host: {"auth": b64(USER, PASSWORD)}}})

        r = run("--debug", "pull", f"{reg.host}/team/redirect:v1")
        assert r.code == 0, r.err
        assert len(store.seen("/blobs/sha256/")) == 3  # config + 2 layers came from the blob store
        assert store.authorization_headers() == []
        assert f"redirected to {store.host}" in r.err
        assert_no_secret(r.out + r.err)
    assert_store_verifies(store_root)


def test_no_registry_credentials_to_a_mirror_on_another_host(basic_registry, docker_config, cfg_file, store_root):
    push_image(basic_registry.url, "team/mirrored", small_image("mirror"), tag="v1", auth=(USER, PASSWORD))
    docker_config({"auths": {basic_registry.host: {"auth": b64(USER, PASSWORD)}}})
    with FaultyServer("challenge") as mirror:  # asks for Basic credentials: it must get none
        cfg_file.write_text(f'[registries."{basic_registry.host}"]\nmirrors = ["{mirror.url}"]\n')
        r = run("pull", "-q", f"{basic_registry.host}/team/mirrored:v1")
        assert r.code == 0, r.err
        assert mirror.requests and mirror.authorization_headers() == []
    assert_store_verifies(store_root)


def test_no_credentials_to_a_foreign_layer_url(registry_factory, docker_config, tmp_path, store_root):
    # distribution accepts foreign layer URLs only when an allow pattern is configured
    basic_registry = registry_factory(
        htpasswd=make_htpasswd(tmp_path / "htpasswd", {USER: PASSWORD}),
        extra={"validation": {"manifests": {"urls": {"allow": ["^http://127\\.0\\.0\\.2:"]}}}},
    )
    foreign = make_layer({"windows/base": b"foreign bytes " * 3000}, "gzip", docker=True,
                         media_type="application/vnd.docker.image.rootfs.foreign.diff.tar.gzip")
    local = make_layer({"app/main": b"local"}, "gzip", docker=True)
    (tmp_path / "cdn").mkdir()
    (tmp_path / "cdn" / "layer.tar.gz").write_bytes(foreign.data)
    with FaultyServer("files", root=tmp_path / "cdn", host="127.0.0.2") as cdn:
        desc = {**foreign.descriptor(), "urls": [f"http://{cdn.host}/layer.tar.gz"]}
        img = make_image([foreign, local], docker=True, manifest_extra={"layers": [desc, local.descriptor()]})
        push_blob(basic_registry.url, "team/foreign", img.config_bytes, auth=(USER, PASSWORD))
        push_blob(basic_registry.url, "team/foreign", local.data, auth=(USER, PASSWORD))
        push_raw_manifest(basic_registry.url, "team/foreign", "v1", img.manifest_bytes, img.manifest_media_type,
                          auth=(USER, PASSWORD))
        docker_config({"auths": {basic_registry.host: {"auth": b64(USER, PASSWORD)}}})
        r = run("--debug", "pull", f"{basic_registry.host}/team/foreign:v1")
        assert r.code == 0, r.err
        assert cdn.seen("/layer.tar.gz") and cdn.authorization_headers() == []
        assert f"served by layer URL http://{cdn.host}/layer.tar.gz" in r.err
    assert_store_verifies(store_root)
