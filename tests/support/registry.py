"""A real OCI distribution registry (Debian's ``docker-registry``) for tests.

Usage::

    with Registry() as reg:          # starts the server, waits for GET /v2/
        reg.url                      # "http://127.0.0.1:PORT"
        reg.host                     # "127.0.0.1:PORT"

Extra modes (all optional, combinable):

* ``proxy_remoteurl="http://..."``  pull-through cache of another registry
  (``proxy_username`` / ``proxy_password`` for an authenticated upstream);
* ``htpasswd=PATH``                 basic auth (see :func:`make_htpasswd`);
* ``tls=(CERT, KEY)``               HTTPS (see :func:`make_self_signed_cert`);
* ``extra={...}``                   dict deep-merged into the generated config.

The configuration is written as JSON, which is valid YAML, so PyYAML is not
needed.  Nothing listens anywhere but 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

REGISTRY_BIN = "docker-registry"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
START_ATTEMPTS = 3

MISSING_BINARY_MESSAGE = (
    "the `docker-registry` binary (Debian package docker-registry, distribution v2.8) "
    "is not installed, but the integration tests need a real registry. Install the "
    "test dependencies with the test command from the README (CI installs them); "
    "e.g. `apt-get install -y docker-registry apache2-utils`."
)


class RegistryError(RuntimeError):
    """The registry could not be started (message includes its stderr)."""


class RegistryBinaryMissing(RegistryError):
    """``docker-registry`` is not on PATH."""


def registry_binary() -> str:
    """Absolute path of ``docker-registry``; raises RegistryBinaryMissing."""
    path = shutil.which(REGISTRY_BIN)
    if path is None:
        raise RegistryBinaryMissing(MISSING_BINARY_MESSAGE)
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A currently free TCP port on ``host`` (racy by nature; callers retry)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _deep_merge(base: dict, extra: dict) -> dict:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _deep_merge(base[key], value)
        else:
            base[key] = value
    return base


def make_htpasswd(path: str | os.PathLike, users: dict[str, str]) -> Path:
    """Write a bcrypt htpasswd file (the only scheme distribution accepts).

    Uses the ``htpasswd`` binary from apache2-utils.
    """
    exe = shutil.which("htpasswd")
    if exe is None:
        raise RegistryError("htpasswd (apache2-utils) is not installed")
    lines = []
    for user, password in users.items():
        out = subprocess.run(
            [exe, "-nbB", "-C", "4", user, password],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        lines.append(out)
    path = Path(path)
    path.write_text("\n".join(lines) + "\n")
    return path


def make_self_signed_cert(directory: str | os.PathLike, cn: str = "127.0.0.1") -> tuple[Path, Path]:
    """Create a self-signed EC certificate valid for IP 127.0.0.1 and localhost.

    Returns ``(cert_path, key_path)``; the cert doubles as the CA bundle for
    clients (``verify=str(cert_path)``).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    cert = directory / "cert.pem"
    key = directory / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-nodes", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-keyout", str(key), "-out", str(cert), "-days", "2",
            "-subj", f"/CN={cn}",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-addext", "basicConstraints=critical,CA:TRUE",
            # what strict X.509 verification (Python 3.13's default) wants of a CA; `req -x509`
            # adds the subject and authority key identifiers itself
            "-addext", "keyUsage=critical,digitalSignature,keyCertSign",
            "-addext", "extendedKeyUsage=serverAuth",
        ],
        check=True,
        capture_output=True,
    )
    return cert, key


class Registry:
    """A ``docker-registry serve`` subprocess with its own temp storage."""

    def __init__(
        self,
        *,
        proxy_remoteurl: str | None = None,
        proxy_username: str | None = None,
        proxy_password: str | None = None,
        htpasswd: str | os.PathLike | None = None,
        htpasswd_realm: str = "imgctl-test-realm",
        tls: tuple[str | os.PathLike, str | os.PathLike] | None = None,
        extra: dict[str, Any] | None = None,
        start_timeout: float = START_TIMEOUT,
    ) -> None:
        self.proxy_remoteurl = proxy_remoteurl
        self.proxy_username = proxy_username
        self.proxy_password = proxy_password
        self.htpasswd = Path(htpasswd) if htpasswd is not None else None
        self.htpasswd_realm = htpasswd_realm
        self.tls = (Path(tls[0]), Path(tls[1])) if tls is not None else None
        self.extra = extra or {}
        self.start_timeout = start_timeout

        self._tmp: tempfile.TemporaryDirectory | None = None
        self.dir: Path | None = None          # temp dir (config, storage, logs)
        self.storage: Path | None = None      # filesystem storage root
        self.config_path: Path | None = None
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self._stderr_path: Path | None = None
        self._stderr_file = None

    # -- addresses ---------------------------------------------------------
    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT`` (what goes in an image reference)."""
        if self.port is None:
            raise RegistryError("registry not started")
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (``https://`` in TLS mode)."""
        return f"{self.scheme}://{self.host}"

    def ref(self, repo: str, tag_or_digest: str | None = None) -> str:
        """Image reference ``HOST/REPO[:tag|@digest]``."""
        base = f"{self.host}/{repo}"
        if tag_or_digest is None:
            return base
        sep = "@" if ":" in tag_or_digest else ":"
        return f"{base}{sep}{tag_or_digest}"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    # -- config ------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The configuration dict that is written (JSON == YAML)."""
        assert self.storage is not None and self.port is not None
        cfg: dict[str, Any] = {
            "version": 0.1,
            "log": {
                "level": "error",
                "formatter": "text",
                "accesslog": {"disabled": True},
            },
            "storage": {
                "filesystem": {"rootdirectory": str(self.storage)},
                "delete": {"enabled": True},
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {
                "addr": f"127.0.0.1:{self.port}",
                "secret": secrets.token_hex(16),
                "headers": {"X-Content-Type-Options": ["nosniff"]},
            },
        }
        if self.proxy_remoteurl is not None:
            proxy: dict[str, Any] = {"remoteurl": self.proxy_remoteurl}
            if self.proxy_username is not None:
                proxy["username"] = self.proxy_username
            if self.proxy_password is not None:
                proxy["password"] = self.proxy_password
            cfg["proxy"] = proxy
        if self.htpasswd is not None:
            cfg["auth"] = {"htpasswd": {"realm": self.htpasswd_realm, "path": str(self.htpasswd)}}
        if self.tls is not None:
            cfg["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}
        return _deep_merge(cfg, json.loads(json.dumps(self.extra)))

    # -- lifecycle ---------------------------------------------------------
    def start(self) -> "Registry":
        if self.running:
            return self
        exe = registry_binary()
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="imgctl-registry-")
            self.dir = Path(self._tmp.name)
            self.storage = self.dir / "storage"
            self.storage.mkdir()
            self.config_path = self.dir / "config.yml"
        last_error = ""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.port = free_port()
            self.config_path.write_text(json.dumps(self.config(), indent=2) + "\n")
            self._stderr_path = self.dir / f"stderr-{attempt}.log"
            self._stderr_file = open(self._stderr_path, "wb")
            env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}
            env.pop("OTEL_TRACES_EXPORTER", None)
            self.proc = subprocess.Popen(
                [exe, "serve", str(self.config_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._stderr_file,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                env=env,
            )
            try:
                self._wait_ready()
                return self
            except _Died:
                last_error = self.logs()
                self._reap()
                if "address already in use" in last_error.lower() and attempt < START_ATTEMPTS:
                    continue
                self._cleanup_dir()
                raise RegistryError(
                    f"docker-registry exited during startup (code {self._last_rc}); "
                    f"config {json.dumps(self.config())}\n--- registry output ---\n{last_error}"
                ) from None
            except _Timeout:
                last_error = self.logs()
                self._reap()
                self._cleanup_dir()
                raise RegistryError(
                    f"docker-registry did not answer GET /v2/ within {self.start_timeout:.0f} s"
                    f"\n--- registry output ---\n{last_error}"
                ) from None
        raise RegistryError(f"docker-registry could not bind a port:\n{last_error}")  # pragma: no cover

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        delay = 0.01
        with httpx.Client(verify=False, trust_env=False, timeout=1.0) as client:
            while True:
                rc = self.proc.poll()
                if rc is not None:
                    self._last_rc = rc
                    raise _Died()
                try:
                    with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                        pass
                except OSError:
                    pass
                else:
                    try:
                        resp = client.get(f"{self.url}/v2/")
                    except httpx.HTTPError:
                        pass
                    else:
                        if resp.status_code in (200, 401):
                            return
                if time.monotonic() > deadline:
                    raise _Timeout()
                time.sleep(delay)
                delay = min(delay * 1.5, 0.1)

    def logs(self) -> str:
        """Everything the server has written to stdout/stderr so far."""
        if self._stderr_path is None or not self._stderr_path.exists():
            return ""
        if self._stderr_file is not None and not self._stderr_file.closed:
            self._stderr_file.flush()
        return self._stderr_path.read_text(errors="replace")

    _last_rc: int | None = None

    def _reap(self) -> None:
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=STOP_TIMEOUT)
            self._last_rc = proc.returncode
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None

    def _cleanup_dir(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    # -- storage ---------------------------------------------------------------
    def blob_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a committed blob's bytes."""
        assert self.storage is not None
        algorithm, hex_ = digest.split(":", 1)
        return self.storage / "docker/registry/v2/blobs" / algorithm / hex_[:2] / hex_ / "data"

    def wait_for_blobs(self, digests, timeout: float = 10.0) -> None:
        """Return once every blob is committed to storage; fail after ``timeout`` seconds.

        A pull-through cache serves a blob while it fetches it again for itself in the
        background (distribution's proxy blob store commits asynchronously), so a blob it has
        served is in its storage only a moment later."""
        deadline = time.monotonic() + timeout
        while True:
            missing = sorted(d for d in digests if not self.blob_path(d).is_file())
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"blobs not in the storage of {self.url} after {timeout} s: {missing}")
            time.sleep(0.02)

    def stop(self) -> None:
        """Terminate the server (SIGKILL after 5 s) and delete its storage."""
        self._reap()
        self._cleanup_dir()

    def restart(self) -> "Registry":
        """Stop the process and start it again on the same storage (new port)."""
        self._reap()
        return self.start()

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        port = self.port if self.port is not None else "-"
        return f"<Registry {self.scheme}://127.0.0.1:{port} {state}>"


class _Died(Exception):
    pass


class _Timeout(Exception):
    pass


def seed_storage(reg: Registry, repo: str, blobs) -> None:
    """Put blobs straight into a docker-registry's filesystem storage, linked into ``repo``:
    5,000 uploads over HTTP (two requests each) would take longer than the pull under test."""
    base = Path(reg.storage) / "docker" / "registry" / "v2"
    for digest, data in blobs:
        hexd = digest.split(":", 1)[1]
        blob_dir = base / "blobs" / "sha256" / hexd[:2] / hexd
        blob_dir.mkdir(parents=True, exist_ok=True)
        (blob_dir / "data").write_bytes(data)
        link = base / "repositories" / repo / "_layers" / "sha256" / hexd
        link.mkdir(parents=True, exist_ok=True)
        (link / "link").write_text(digest)
