"""Configuration: ``config.toml`` and where things live.

A missing file means defaults.  A broken file is a ``ConfigError`` that names
the file and, for syntax errors, the line.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from imgctl.errors import ConfigError

__all__ = ["Config", "load_config", "default_root", "default_config_path", "default_config_dir", "parse_mirror_url"]

APP = "imgctl"


def default_root() -> Path:
    env = os.environ.get("IMGCTL_ROOT")
    if env:
        return Path(env)
    import platformdirs

    return Path(platformdirs.user_data_dir(APP))


def default_config_dir() -> Path:
    """imgctl's own configuration directory (``auth.json``, ``certs.d``); not moved by ``--config``."""
    import platformdirs

    return Path(platformdirs.user_config_dir(APP))


def default_config_path() -> Path:
    env = os.environ.get("IMGCTL_CONFIG")
    if env:
        return Path(env)
    return default_config_dir() / "config.toml"


def parse_mirror_url(value: str) -> str:
    """A mirror URL ``http(s)://host[:port][/path]`` without its trailing slash; ValueError otherwise."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise ValueError(f"invalid mirror URL {value!r} (expected https://host[:port][/path])")
    if "@" in parts.netloc:
        raise ValueError(f"mirror URL {parts.scheme}://...@{parts.hostname}: credentials do not belong in a URL; use 'imgctl login'")
    return value.rstrip("/")


@dataclass(frozen=True)
class Config:
    registry_mirrors: tuple[str, ...] = ()
    insecure_registries: tuple[str, ...] = ()
    max_concurrent_downloads: int = 3
    max_download_attempts: int = 5  # docker's key: tries per request or blob on transient failures
    max_layers: int = 10_000  # layers per image manifest a pull accepts (``max-layers``)
    retry_delay: float = 1.0  # seconds before the first retry; doubles each time (Retry-After wins)
    index_server: str = "https://index.docker.io"
    registries: dict[str, tuple[str, ...]] = field(default_factory=dict)  # host -> mirrors
    certs_dir: Path | None = None  # certs.d for HOST[:PORT]/ca.crt, client.cert, client.key
    path: Path | None = None

    def certs_dirs(self) -> tuple[Path, ...]:
        """Where per-registry TLS material is looked up, first match per host wins (docker's convention)."""
        own = self.certs_dir if self.certs_dir is not None else default_config_dir() / "certs.d"
        return (own, Path("/etc/docker/certs.d"), Path("/etc/containers/certs.d"))

    def mirrors_for(self, domain: str) -> tuple[str, ...]:
        """Mirrors configured for a registry domain (docker.io: ``registry-mirrors`` first)."""
        mirrors = list(self.registries.get(domain, ()))
        if domain == "docker.io":
            mirrors = list(self.registry_mirrors) + [m for m in mirrors if m not in self.registry_mirrors]
        return tuple(mirrors)

    def is_insecure(self, host: str) -> bool:
        """Whether plain HTTP may be used for ``host`` (``name[:port]``); entries may be CIDRs (``10.0.0.0/8``)."""
        if host.startswith("["):
            name = host[1:].split("]", 1)[0]
        else:
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        if {host, name, f"[{name}]"} & set(self.insecure_registries):
            return True
        import ipaddress

        try:
            ip = ipaddress.ip_address(name)
        except ValueError:
            return False
        for entry in self.insecure_registries:
            if "/" in entry:
                try:
                    if ip in ipaddress.ip_network(entry, strict=False):
                        return True
                except ValueError:
                    continue
        return False


def _url_list(value: object, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: {key} must be a list of URLs")
    out = []
    for v in value:
        try:
            out.append(parse_mirror_url(v))
        except ValueError as e:
            raise ConfigError(f"{where}: {key}: {e}") from None
    return tuple(out)


def _host_list(value: object, key: str, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where}: {key} must be a list of host[:port] strings")
    out = []
    for v in value:
        if "://" in v:
            v = urlsplit(v).netloc
        out.append(v.rstrip("/"))
    return tuple(out)


_KNOWN = {
    "registry-mirrors", "insecure-registries", "max-concurrent-downloads", "max-download-attempts",
    "retry-delay", "index-server", "registries", "certs-dir",
}


def load_config(path: Path | None = None) -> Config:
    path = path if path is not None else default_config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from e
    where = str(path)
    import tomllib  # here: most runs have no configuration file to parse

    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{where}: not valid UTF-8") from e
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{where}: invalid TOML: {e}") from e
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise ConfigError(f"{where}: unknown configuration key {unknown[0]!r}")
    kw: dict = {"path": path}
    if "registry-mirrors" in data:
        kw["registry_mirrors"] = _url_list(data["registry-mirrors"], "registry-mirrors", where)
    if "insecure-registries" in data:
        kw["insecure_registries"] = _host_list(data["insecure-registries"], "insecure-registries", where)
    if "max-concurrent-downloads" in data:
        n = data["max-concurrent-downloads"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise ConfigError(f"{where}: max-concurrent-downloads must be an integer from 1 to 64")
        kw["max_concurrent_downloads"] = n
    if "max-download-attempts" in data:
        n = data["max-download-attempts"]
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 100:
            raise ConfigError(f"{where}: max-download-attempts must be an integer from 1 to 100")
        kw["max_download_attempts"] = n
    if "retry-delay" in data:
        d = data["retry-delay"]
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d <= 300:
            raise ConfigError(f"{where}: retry-delay must be a number of seconds from 0 to 300")
        kw["retry_delay"] = float(d)
    if "index-server" in data:
        v = data["index-server"]
        parts = urlsplit(v) if isinstance(v, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"{where}: index-server must be a URL such as https://index.docker.io")
        kw["index_server"] = v.rstrip("/")
    if "certs-dir" in data:
        v = data["certs-dir"]
        if not isinstance(v, str) or not v:
            raise ConfigError(f"{where}: certs-dir must be a directory path")
        kw["certs_dir"] = (path.parent / Path(v).expanduser()).absolute()
    if "registries" in data:
        regs = data["registries"]
        if not isinstance(regs, dict):
            raise ConfigError(f"{where}: registries must be a table of [registries.\"HOST\"] sections")
        out: dict[str, tuple[str, ...]] = {}
        for host, section in regs.items():
            if not isinstance(section, dict):
                raise ConfigError(f"{where}: registries.{host!r} must be a table")
            extra = sorted(set(section) - {"mirrors"})
            if extra:
                raise ConfigError(f"{where}: unknown key {extra[0]!r} in registries.{host!r}")
            name = "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
            out[name] = _url_list(section.get("mirrors", []), f"registries.{host!r}.mirrors", where)
        kw["registries"] = out
    return Config(**kw)
