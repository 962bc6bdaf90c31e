"""Registry credentials: where they come from and where ``login`` keeps them.  No HTTP.

An auth file chosen by the user (``--authfile PATH``, else ``$REGISTRY_AUTH_FILE``, as
podman has them) is the only place credentials are read from and written to.  Without one,
sources, first match wins for a registry host:

1. imgctl's own auth file, ``auth.json`` in the user config dir (written by
   ``imgctl login``);
2. docker's ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``):
   ``credHelpers[host]``, then ``credsStore`` (``docker-credential-NAME get``),
   then the ``auths`` entry;
3. podman's auth files: ``$XDG_RUNTIME_DIR/containers/auth.json``,
   ``~/.config/containers/auth.json``.

Docker Hub is keyed ``https://index.docker.io/v1/`` everywhere.  Secrets never
appear in an exception message or a log line.  The auth file is written
atomically, 0600, in a 0700 directory.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlsplit

from imgctl.errors import ConfigError, UsageError

__all__ = [
    "HUB_KEY",
    "Credential",
    "chosen_file",
    "auth_file",
    "docker_config_path",
    "server_key",
    "lookup",
    "save",
    "remove",
]

HUB_KEY = "https://index.docker.io/v1/"
HUB_HOSTS = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
IDENTITY_TOKEN_USER = "<token>"  # credential helpers' marker for an identity (refresh) token
HELPER_TIMEOUT = 30.0
MAX_FILE_SIZE = 4 * 1024 * 1024

Credential = tuple[str, str]  # (username, secret); username "<token>" means an identity token


def chosen_file(authfile: Path | str | None = None) -> Path | None:
    """The auth file the user chose: ``--authfile``, else ``$REGISTRY_AUTH_FILE`` (podman's order)."""
    if authfile:
        return Path(authfile)
    env = os.environ.get("REGISTRY_AUTH_FILE")
    return Path(env) if env else None


def auth_file(authfile: Path | str | None = None) -> Path:
    """Where ``login`` writes: the chosen auth file (see :func:`chosen_file`), else imgctl's own."""
    chosen = chosen_file(authfile)
    if chosen is not None:
        return chosen
    from imgctl.config import default_config_dir

    return default_config_dir() / "auth.json"


def docker_config_path() -> Path:
    base = os.environ.get("DOCKER_CONFIG")
    return Path(base) / "config.json" if base else Path.home() / ".docker" / "config.json"


def _podman_auth_files() -> list[Path]:
    out = []
    if os.environ.get("XDG_RUNTIME_DIR"):
        out.append(Path(os.environ["XDG_RUNTIME_DIR"]) / "containers" / "auth.json")
    xdg = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    out.append(Path(xdg) / "containers" / "auth.json")
    return out


def _hostname(key: str) -> str:
    """docker's ConvertToHostname: ``https://host:5000/v2/`` -> ``host:5000``; Hub names -> ``docker.io``."""
    key = key.strip()
    if "://" in key:
        key = urlsplit(key).netloc
    host = key.split("/", 1)[0].lower()
    return "docker.io" if host in HUB_HOSTS else host


def server_key(server: str | None) -> str:
    """The key ``login``/``logout`` store a server under: Hub's URL, else ``host[:port]``."""
    if not server:
        return HUB_KEY
    host = _hostname(server)
    if not host:
        raise UsageError(f"invalid registry address {server!r}")
    return HUB_KEY if host == "docker.io" else host


def key_domain(key: str) -> str:
    """The registry domain a stored key stands for (``docker.io`` for Hub)."""
    return _hostname(key)


# -- reading ----------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            raw = f.read(MAX_FILE_SIZE + 1)
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"cannot read {path}: {e.strerror}") from e
    if len(raw) > MAX_FILE_SIZE:
        raise ConfigError(f"{path} is too large")
    if not raw.strip():
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ConfigError(f"{path}: invalid JSON") from None
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}: invalid JSON (expected an object)")
    return doc


def _auths(doc: dict) -> dict[str, dict]:
    auths = doc.get("auths")
    if not isinstance(auths, dict):
        return {}
    return {k: v for k, v in auths.items() if isinstance(k, str) and isinstance(v, dict)}


def _entry_credential(entry: dict, where: Path, key: str) -> Credential | None:
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return (IDENTITY_TOKEN_USER, token)
    encoded = entry.get("auth")
    if isinstance(encoded, str) and encoded:
        try:
            user, sep, secret = base64.b64decode(encoded, validate=False).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise ConfigError(f"{where}: the 'auth' entry for {key} is not valid base64 of user:password") from None
        if not sep:
            raise ConfigError(f"{where}: the 'auth' entry for {key} is not valid base64 of user:password")
        return (user, secret)
    user, secret = entry.get("username"), entry.get("password")
    if isinstance(user, str) and isinstance(secret, str) and user:
        return (user, secret)
    return None


def _match(auths: dict[str, dict], domain: str) -> tuple[str, dict] | None:
    """The entry for ``domain``: an exact key first, then any key naming the same host."""
    exact = HUB_KEY if domain == "docker.io" else domain
    if exact in auths:
        return exact, auths[exact]
    for key, entry in auths.items():
        if _hostname(key) == domain:
            return key, entry
    return None


def _from_file(path: Path, domain: str) -> Credential | None:
    found = _match(_auths(_read_json(path)), domain)
    return _entry_credential(found[1], path, found[0]) if found else None


def _helper(name: str, server: str) -> Credential | None:
    """``docker-credential-NAME get``: server URL on stdin, JSON on stdout.  None when it has nothing."""
    exe = shutil.which(f"docker-credential-{name}")
    if exe is None:
        return None
    try:
        proc = subprocess.run(
            [exe, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if proc.returncode != 0:
        return None  # "credentials not found in native keychain" and the like; never echo its output
    try:
        doc = json.loads(proc.stdout)
        user, secret = doc.get("Username"), doc.get("Secret")
    except (ValueError, AttributeError):
        return None
    if not isinstance(user, str) or not isinstance(secret, str) or not secret:
        return None
    return (user, secret)


def _from_docker(domain: str) -> Credential | None:
    path = docker_config_path()
    doc = _read_json(path)
    server = HUB_KEY if domain == "docker.io" else domain
    helpers = doc.get("credHelpers")
    if isinstance(helpers, dict):
        for key, name in helpers.items():
            if isinstance(name, str) and name and _hostname(key) == domain:
                found = _helper(name, key if domain != "docker.io" else HUB_KEY)
                if found:
                    return found
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        found = _helper(store, server)
        if found:
            return found
    found_entry = _match(_auths(doc), domain)
    return _entry_credential(found_entry[1], path, found_entry[0]) if found_entry else None


def lookup(host: str, authfile: Path | str | None = None) -> Credential | None:
    """Credentials for a registry host (``registry-1.docker.io``, ``docker.io``, ``host:5000``);
    ``authfile`` is the command line's ``--authfile``."""
    domain = _hostname(host)
    chosen = chosen_file(authfile)
    if chosen is not None:  # the user's choice is the only source (podman: no fallback then)
        return _from_file(chosen, domain)
    found = _from_file(auth_file(), domain)
    if found:
        return found
    found = _from_docker(domain)
    if found:
        return found
    for path in _podman_auth_files():
        found = _from_file(path, domain)
        if found:
            return found
    return None


def stored_in_docker_config(key: str, authfile: Path | str | None = None) -> bool:
    """Whether docker's config.json has an ``auths`` entry for this server (logout's hint).
    Never with a chosen auth file: docker's is not consulted then."""
    if chosen_file(authfile) is not None:
        return False
    return _match(_auths(_read_json(docker_config_path())), key_domain(key)) is not None


# -- writing ------------------------------------------------------------------------------
@contextlib.contextmanager
def _locked(path: Path):
    import fcntl

    fd = os.open(path.parent / f".{path.stem}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _private_dir(directory: Path) -> None:
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if directory.stat().st_mode & 0o077:
            directory.chmod(0o700)
    except OSError as e:
        raise ConfigError(f"cannot prepare {directory} for credentials: {e.strerror}") from e


def _write_atomic(path: Path, doc: dict) -> None:
    data = (json.dumps(doc, indent="\t", sort_keys=True) + "\n").encode()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")  # mode 0600
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def save(key: str, username: str, secret: str, authfile: Path | str | None = None) -> Path:
    """Store credentials for ``key`` (see :func:`server_key`) in the auth file (:func:`auth_file`)."""
    path = auth_file(authfile)
    if chosen_file(authfile) is None:
        _private_dir(path.parent)
    else:  # the user's directory: created if missing, never re-moded
        try:
            path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as e:
            raise ConfigError(f"cannot prepare {path.parent} for credentials: {e.strerror}") from e
    with _locked(path):
        doc = _read_json(path)
        auths = doc.get("auths") if isinstance(doc.get("auths"), dict) else {}
        auths[key] = {"auth": base64.b64encode(f"{username}:{secret}".encode()).decode()}
        doc["auths"] = auths
        try:
            _write_atomic(path, doc)
        except OSError as e:
            raise ConfigError(f"cannot write {path}: {e.strerror}") from e
    return path


def remove(key: str, authfile: Path | str | None = None) -> bool:
    """Forget ``key`` in the auth file (:func:`auth_file`); False when it was not there."""
    path = auth_file(authfile)
    if not path.exists():
        return False
    with _locked(path):
        doc = _read_json(path)
        auths = _auths(doc)
        domain = key_domain(key)
        gone = [k for k in auths if _hostname(k) == domain]
        if not gone:
            return False
        for k in gone:
            del doc["auths"][k]
        try:
            _write_atomic(path, doc)
        except OSError as e:
            raise ConfigError(f"cannot write {path}: {e.strerror}") from e
    return True
