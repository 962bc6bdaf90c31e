"""Configuration: ``config.toml`` and where things live.

A missing file means defaults.  A broken file is a ``ConfigError`` that names
the file, the key and the line (syntax errors: line and column).  Every command
loads it (``imgctl.cli``), so a mistake shows whatever the command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

from imgctl.errors import ConfigError, UsageError

__all__ = ["Config", "load_config", "default_root", "default_config_path", "default_config_dir", "parse_mirror_url"]

APP = "imgctl"
MAX_LAYERS_LIMIT = 100_000  # the highest max-layers accepts (a 4 MiB manifest holds fewer anyway)
MIB = 1024 * 1024
PER_LAYER_LIMIT = 64  # the highest max-concurrent-downloads-per-layer accepts
CHUNK_SIZE_RANGE = (MIB, 1024 * MIB)  # what download-chunk-size accepts


def parse_size(value: int | str) -> int:
    """A size in bytes: an integer, or go-units ``RAMInBytes`` text (``"16MiB"``, ``"16m"``,
    ``"1.5 GB"``: powers of 1024).  ValueError when it is neither."""
    from imgctl.units import ram_in_bytes

    if isinstance(value, bool) or not isinstance(value, int | str) or (isinstance(value, int) and value < 0):
        raise ValueError(f"invalid size {value!r}")
    if isinstance(value, int):
        return value
    try:
        return ram_in_bytes(value)
    except UsageError as e:
        raise ValueError(str(e)) from e


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
    max_concurrent_downloads_per_layer: int = 8  # connections one large blob is fetched over (multipart)
    download_chunk_size: int = 16 * MIB  # bytes per range of a multipart fetch
    # "auto": one stream first, split into ranges once its first bytes show the link sets the pace;
    # "always": split from the first byte (containerd's way)
    download_split: str = "auto"
    max_download_attempts: int = 5  # docker's key: tries per request or blob on transient failures
    max_layers: int = 10_000  # layers per image manifest a pull accepts (``max-layers``)
    retry_delay: float = 1.0  # seconds before the first retry; doubles each time (Retry-After wins)
    request_timeout: float = 30.0  # seconds for a whole document answer; a blob's stall window
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


class _Bad(Exception):
    """A value that does not validate: where it is (key path, and the bad value) and why."""

    def __init__(self, path: tuple[str, ...], message: str, value: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.value = value


@cache
def _hostname_re():
    """Compiled on first use: a run without a configuration file never needs it."""
    import re

    label = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    return re.compile(rf"{label}(?:\.{label})*\.?")


def valid_host(value: str) -> bool:
    """``host[:port]``: a DNS name, an IPv4 address or a bracketed IPv6 address; port 1-65535."""
    import ipaddress

    host, port = value, None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            return False
        port = rest[1:] if rest else None
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
    else:
        if ":" in value:
            host, port = value.rsplit(":", 1)
        if not _hostname_re().fullmatch(host) or len(host) > 253:
            return False
    if port is not None:
        return port.isascii() and port.isdigit() and 1 <= int(port) <= 65535
    return True


def _url_list(value: object, path: tuple[str, ...]) -> tuple[str, ...]:
    key = ".".join(path)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(path, f"{key} must be a list of URLs")
    out = []
    for v in value:
        try:
            url = parse_mirror_url(v)
            if not valid_host(urlsplit(url).netloc):
                raise ValueError(f"invalid mirror URL {v!r} (not a valid host[:port])")
        except ValueError as e:
            raise _Bad(path, f"{key}: {e}", v) from None
        out.append(url)
    return tuple(out)


def _host_list(value: object, path: tuple[str, ...]) -> tuple[str, ...]:
    """insecure-registries: ``host[:port]`` or a CIDR (``10.0.0.0/8``); a scheme is tolerated."""
    import ipaddress

    key = ".".join(path)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise _Bad(path, f"{key} must be a list of host[:port] or CIDR strings")
    out = []
    for v in value:
        entry = urlsplit(v).netloc if "://" in v else v.rstrip("/")
        if "/" in entry:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise _Bad(path, f"{key}: {v!r} is not a CIDR network such as 10.0.0.0/8", v) from None
        elif not valid_host(entry):
            raise _Bad(path, f"{key}: {v!r} is not a host[:port] or a CIDR network", v)
        out.append(entry)
    return tuple(out)


def _int(data: dict, key: str, low: int, high: int) -> int:
    n = data[key]
    if isinstance(n, bool) or not isinstance(n, int) or not low <= n <= high:
        raise _Bad((key,), f"{key} must be an integer from {low} to {high:,}")
    return n


def chunk_size_problem(value: int | str) -> tuple[int | None, str | None]:
    """(bytes, None) for a valid download-chunk-size, else (None, what is wrong with it)."""
    low, high = CHUNK_SIZE_RANGE
    try:
        n = parse_size(value)
    except ValueError:
        n = None
    if n is None or not low <= n <= high:
        return None, 'must be a size from 1MiB to 1GiB (bytes, or a string such as "16MiB")'
    return n, None


def _chunk_size(value: object, key: str) -> int:
    n, problem = chunk_size_problem(value)  # type: ignore[arg-type]
    if problem is not None:
        raise _Bad((key,), f"{key} {problem}")
    return n


_KNOWN = {
    "registry-mirrors", "insecure-registries", "max-concurrent-downloads", "max-download-attempts",
    "retry-delay", "index-server", "registries", "certs-dir", "request-timeout", "max-layers",
    "max-concurrent-downloads-per-layer", "download-chunk-size", "download-split",
}
SPLIT_MODES = ("auto", "always")  # what download-split accepts


def load_config(path: Path | None = None) -> Config:
    """The configuration in ``path`` (default: ``default_config_path()``), validated whole.

    Every command loads it, so that a broken file is reported whatever the command; without
    a file this costs one failed open.  Errors name the file and the line:
    ``FILE: KEY must be ... (at line N)``; syntax errors also the column.
    """
    path = path if path is not None else default_config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return Config(path=path)
    except IsADirectoryError:
        raise ConfigError(f"cannot read configuration file {path}: it is a directory") from None
    except OSError as e:
        raise ConfigError(f"cannot read configuration file {path}: {e.strerror}") from e
    where = str(path)
    import tomllib  # here: most runs have no configuration file to parse

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise ConfigError(f"{where}: not valid UTF-8 (at line {line})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        if msg.endswith("(at end of document)"):
            msg = msg[: -len("(at end of document)")] + f"(at line {text.count(chr(10)) + 1}, end of document)"
        raise ConfigError(f"{where}: invalid TOML: {msg}") from None
    except RecursionError:
        raise ConfigError(f"{where}: invalid TOML: nested too deeply") from None
    try:
        return _validate(data, path)
    except _Bad as e:
        line = _locate(text, e.path, e.value)
        at = f" (at line {line})" if line else ""
        raise ConfigError(f"{where}: {e}{at}") from None


def _validate(data: dict, path: Path) -> Config:
    unknown = sorted(set(data) - _KNOWN)
    if unknown:
        raise _Bad((unknown[0],), f"unknown configuration key {unknown[0]!r}")
    kw: dict = {"path": path}
    if "registry-mirrors" in data:
        kw["registry_mirrors"] = _url_list(data["registry-mirrors"], ("registry-mirrors",))
    if "insecure-registries" in data:
        kw["insecure_registries"] = _host_list(data["insecure-registries"], ("insecure-registries",))
    if "max-concurrent-downloads" in data:
        kw["max_concurrent_downloads"] = _int(data, "max-concurrent-downloads", 1, 64)
    if "max-concurrent-downloads-per-layer" in data:
        kw["max_concurrent_downloads_per_layer"] = _int(data, "max-concurrent-downloads-per-layer", 1, PER_LAYER_LIMIT)
    if "download-chunk-size" in data:
        kw["download_chunk_size"] = _chunk_size(data["download-chunk-size"], "download-chunk-size")
    if "download-split" in data:
        if data["download-split"] not in SPLIT_MODES:
            raise _Bad(("download-split",), 'download-split must be "auto" or "always"')
        kw["download_split"] = data["download-split"]
    if "max-download-attempts" in data:
        kw["max_download_attempts"] = _int(data, "max-download-attempts", 1, 100)
    if "max-layers" in data:
        kw["max_layers"] = _int(data, "max-layers", 1, MAX_LAYERS_LIMIT)
    if "retry-delay" in data:
        d = data["retry-delay"]
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0 <= d <= 300:
            raise _Bad(("retry-delay",), "retry-delay must be a number of seconds from 0 to 300")
        kw["retry_delay"] = float(d)
    if "request-timeout" in data:
        d = data["request-timeout"]
        if isinstance(d, bool) or not isinstance(d, int | float) or not 0.05 <= d <= 3600:
            raise _Bad(("request-timeout",), "request-timeout must be a number of seconds from 0.05 to 3600")
        kw["request_timeout"] = float(d)
    if "index-server" in data:
        v = data["index-server"]
        parts = urlsplit(v) if isinstance(v, str) else None
        try:
            ok = parts is not None and parts.scheme in ("http", "https") and valid_host(parts.netloc) and parts.port != 0
        except ValueError:
            ok = False
        if not ok:
            raise _Bad(("index-server",), "index-server must be a URL such as https://index.docker.io")
        kw["index_server"] = v.rstrip("/")
    if "certs-dir" in data:
        v = data["certs-dir"]
        if not isinstance(v, str) or not v or "\0" in v:
            raise _Bad(("certs-dir",), "certs-dir must be a directory path")
        d = (path.parent / Path(v).expanduser()).absolute()
        if d.exists() and not d.is_dir():
            raise _Bad(("certs-dir",), f"certs-dir {str(d)!r} is not a directory")
        kw["certs_dir"] = d
    if "registries" in data:
        regs = data["registries"]
        if not isinstance(regs, dict):
            raise _Bad(("registries",), 'registries must be a table of [registries."HOST"] sections')
        out: dict[str, tuple[str, ...]] = {}
        for host, section in regs.items():
            if not valid_host(host):
                raise _Bad(("registries", host), f"registries.{host!r}: {host!r} is not a registry host[:port]")
            if not isinstance(section, dict):
                raise _Bad(("registries", host), f"registries.{host!r} must be a table")
            extra = sorted(set(section) - {"mirrors"})
            if extra:
                raise _Bad(("registries", host, extra[0]), f"unknown key {extra[0]!r} in registries.{host!r}")
            name = "docker.io" if host in ("index.docker.io", "registry-1.docker.io") else host
            out[name] = _url_list(section.get("mirrors", []), ("registries", host, "mirrors"))
        kw["registries"] = out
    return Config(**kw)


# -- where a key is: a line-oriented reading of TOML keys and table headers ----------------------
@cache
def _key_part_re():
    import re

    return re.compile(r"""\s*(?:([A-Za-z0-9_-]+)|"((?:[^"\\]|\\.)*)"|'([^']*)')\s*""")


def _dotted_key(text: str) -> tuple[tuple[str, ...], str] | None:
    """The dotted key at the start of ``text`` and what follows it, or None."""
    import json

    parts = []
    pos = 0
    while True:
        m = _key_part_re().match(text, pos)
        if not m or m.end() == pos:
            return None
        bare, basic, literal = m.groups()
        if basic is not None:
            try:
                basic = json.loads(f'"{basic}"')
            except ValueError:
                pass
        parts.append(bare if bare is not None else basic if basic is not None else literal)
        pos = m.end()
        if text.startswith(".", pos):
            pos += 1
            continue
        return tuple(parts), text[pos:]


def _locate(text: str, path: tuple[str, ...], value: str | None = None) -> int | None:
    """The line that defines ``path`` (or the longest known prefix of it), and when ``value``
    is given the first line from there that contains it (a list entry on a line of its own)."""
    table: tuple[str, ...] = ()
    best, best_len = None, 0
    lines = text.split("\n")
    for n, line in enumerate(lines, 1):
        stripped = line.lstrip()
        if stripped.startswith("["):
            inner = stripped[2:] if stripped.startswith("[[") else stripped[1:]
            parsed = _dotted_key(inner)
            if parsed is None or not parsed[1].startswith("]"):
                continue
            table = parsed[0]
            full = table
        else:
            parsed = _dotted_key(stripped)
            if parsed is None or not parsed[1].startswith("="):
                continue
            full = table + parsed[0]
        k = len(full)
        if k > best_len and path[:k] == full:
            best, best_len = n, k
            if k == len(path):
                break
    if best is not None and value is not None:
        for n in range(best, len(lines) + 1):
            if value in lines[n - 1]:
                return n
    return best
