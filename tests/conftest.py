"""Shared fixtures: a real registry, unique repo names, an isolated environment.

Fixtures
--------
registry           session-scoped running :class:`registry.Registry` (shared; use unique_repo)
registry_factory   function-scoped callable ``(**Registry kwargs) -> started Registry``;
                   everything it started is stopped at teardown
unique_repo        fresh repository name per test, e.g. ``test/test-pull-gzip-3``
repo_factory       callable ``(suffix="") -> str`` for more fresh names in one test
store_root         ``tmp_path / "root"`` (not created); exported as IMGCTL_ROOT
cfg_file           ``tmp_path / "config.toml"`` (created, empty); exported as IMGCTL_CONFIG
isolated_env       autouse: HOME / XDG_* / DOCKER_CONFIG point into tmp_path, other IMGCTL_*
                   and proxy variables are removed.  Returns a dict of the paths.

Helpers live in the package :mod:`tests.support` (``from tests.support.images import ...``);
``tests`` is a package, so pytest puts the repository root on sys.path.
"""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import pytest

from tests.support.registry import Registry, RegistryBinaryMissing, RegistryError

_repo_counter = itertools.count(1)

_PROXY_VARS = (
    "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY",
    "http_proxy", "https_proxy", "all_proxy", "no_proxy",
)
_XDG_VARS = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_STATE_HOME", "XDG_RUNTIME_DIR")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: big-image tests (tens of MB, thousands of files)")


def _start_registry(**kwargs) -> Registry:
    try:
        return Registry(**kwargs).start()
    except RegistryBinaryMissing as exc:
        pytest.fail(str(exc), pytrace=False)
    except RegistryError as exc:
        pytest.fail(f"could not start docker-registry: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def registry():
    """One real registry for the whole session (plain HTTP, delete enabled)."""
    reg = _start_registry()
    try:
        yield reg
    finally:
        reg.stop()


@pytest.fixture
def registry_factory():
    """``registry_factory(proxy_remoteurl=..., htpasswd=..., tls=(cert, key), extra={...})``."""
    started: list[Registry] = []

    def factory(**kwargs) -> Registry:
        reg = _start_registry(**kwargs)
        started.append(reg)
        return reg

    try:
        yield factory
    finally:
        for reg in reversed(started):
            reg.stop()


def _sanitise(name: str) -> str:
    # distribution path component: [a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*
    s = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return s[:80].strip("-") or "t"


@pytest.fixture
def repo_factory(request):
    base = _sanitise(request.node.name)

    def make(suffix: str = "") -> str:
        tail = f"-{_sanitise(suffix)}" if suffix else ""
        return f"test/{base}{tail}-{next(_repo_counter)}"

    return make


@pytest.fixture
def unique_repo(repo_factory) -> str:
    return repo_factory()


@pytest.fixture
def store_root(tmp_path: Path) -> Path:
    return tmp_path / "root"


@pytest.fixture
def cfg_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.toml"
    path.touch()
    return path


@pytest.fixture(autouse=True)
def isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, store_root: Path, cfg_file: Path) -> dict:
    """Keep every test away from the real user's dirs and environment."""
    for key in list(os.environ):
        if key.startswith("IMGCTL_") or key in _PROXY_VARS or key.startswith("REGISTRY_"):
            monkeypatch.delenv(key, raising=False)
    for key in ("DOCKER_CONFIG", "REGISTRY_AUTH_FILE", "CONTAINERS_REGISTRIES_CONF", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(key, raising=False)
    home = tmp_path / "home"
    paths = {"HOME": home}
    for var, sub in zip(_XDG_VARS, (".config", ".local/share", ".cache", ".local/state", "run")):
        paths[var] = home / sub
    for var, path in paths.items():
        path.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(var, str(path))
    (paths["XDG_RUNTIME_DIR"]).chmod(0o700)
    monkeypatch.setenv("IMGCTL_ROOT", str(store_root))
    monkeypatch.setenv("IMGCTL_CONFIG", str(cfg_file))
    return {**paths, "IMGCTL_ROOT": store_root, "IMGCTL_CONFIG": cfg_file}
