"""The image model: media types, manifests, indexes, configs, platforms.

Pure functions over bytes that were already fetched (and whose digest was
already checked).  No I/O, no HTTP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from imgctl import jsonlimit
from imgctl.errors import ImgctlError, PlatformNotFound, UnsupportedManifest, UsageError, VerificationError
from imgctl.reference import is_valid_digest

__all__ = [
    "MAX_MANIFEST_SIZE",
    "MANIFEST_ACCEPT",
    "Descriptor",
    "Manifest",
    "Index",
    "ImageConfig",
    "Platform",
    "parse_document",
    "parse_config",
    "host_platform",
    "parse_platform",
    "choose_manifest",
    "best_match",
    "layer_compression",
    "load_json",
]

MAX_MANIFEST_SIZE = 4 * 1024 * 1024  # manifests and configs, as containers/image

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"

INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
MANIFEST_TYPES = (OCI_MANIFEST, DOCKER_MANIFEST)
MANIFEST_ACCEPT = ", ".join([OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST])

_LAYER_COMPRESSION = {
    "application/vnd.oci.image.layer.v1.tar": "none",
    "application/vnd.oci.image.layer.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd": "zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar": "none",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip": "gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd": "zstd",
    "application/vnd.docker.image.rootfs.diff.tar": "none",
    "application/vnd.docker.image.rootfs.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": "gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd": "zstd",
}

SCHEMA1_MESSAGE = (
    "support for Docker Image Format v1 (schema 1) has been removed; "
    "the image must be pushed again with a current client"
)


def layer_compression(media_type: str) -> str:
    """'gzip', 'zstd' or 'none' for a layer media type; UnsupportedManifest otherwise."""
    try:
        return _LAYER_COMPRESSION[media_type]
    except KeyError:
        raise UnsupportedManifest(f"unsupported layer media type {media_type!r}") from None


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str | None = None

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s

    def normalized(self) -> "Platform":
        arch, variant = self.architecture.lower(), (self.variant or None)
        arch = {"x86_64": "amd64", "x86-64": "amd64", "aarch64": "arm64", "armhf": "arm", "armel": "arm"}.get(arch, arch)
        if arch == "arm64" and variant in (None, "8"):
            variant = "v8"
        elif arch == "arm" and variant is None:
            variant = "v7"
        elif arch == "arm" and variant and variant.isdigit():
            variant = "v" + variant
        elif arch == "amd64" and variant == "v1":
            variant = None
        return Platform(self.os.lower(), arch, variant)

    def matches(self, other: "Platform") -> bool:
        a, b = self.normalized(), other.normalized()
        return a.os == b.os and a.architecture == b.architecture and (a.variant == b.variant)


def parse_platform(text: str) -> Platform:
    parts = text.strip().split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise UsageError(f"invalid platform {text!r}: expected os/arch[/variant], e.g. linux/arm64")
    return Platform(parts[0], parts[1], parts[2] if len(parts) == 3 else None).normalized()


def host_platform() -> Platform:
    """This machine's platform: linux and its CPU (``uname -m``, as ``platform.machine()`` reads it,
    without importing ``platform``: 1.3 ms of every pull's start)."""
    return Platform("linux", os.uname().machine or "amd64").normalized()


@dataclass(frozen=True, slots=True)
class Descriptor:
    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    urls: tuple[str, ...] = ()
    annotations: dict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True, slots=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]


def _descriptor(obj: object, what: str, *, with_platform: bool = False) -> Descriptor:
    if not isinstance(obj, dict):
        raise UnsupportedManifest(f"invalid manifest: {what} is not an object")
    mt, dg, size = obj.get("mediaType"), obj.get("digest"), obj.get("size")
    if not isinstance(mt, str) or not mt:
        raise UnsupportedManifest(f"invalid manifest: {what} has no mediaType")
    if not isinstance(dg, str) or not is_valid_digest(dg) or not dg.startswith("sha256:"):
        raise UnsupportedManifest(f"invalid manifest: {what} has an invalid digest {str(dg)[:80]!r}")
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise UnsupportedManifest(f"invalid manifest: {what} has an invalid size")
    plat = None
    if with_platform and isinstance(obj.get("platform"), dict):
        p = obj["platform"]
        if isinstance(p.get("os"), str) and isinstance(p.get("architecture"), str):
            plat = Platform(p["os"], p["architecture"], p.get("variant") if isinstance(p.get("variant"), str) else None)
    urls = obj.get("urls") or ()
    if not isinstance(urls, list | tuple) or not all(isinstance(u, str) for u in urls):
        raise UnsupportedManifest(f"invalid manifest: {what} has invalid urls")
    ann = obj.get("annotations") if isinstance(obj.get("annotations"), dict) else {}
    return Descriptor(mt, dg, size, plat, tuple(urls), ann)


def load_json(data: bytes | str, what: str, error: type[ImgctlError] = UnsupportedManifest) -> object:
    """``json.loads`` for untrusted documents: ``error(f"{what}: ...")`` (one line) for text that is
    not JSON or nests more than ``jsonlimit.MAX_DEPTH`` levels (checked before parsing, so never
    RecursionError); later code may walk the result recursively."""
    try:
        return jsonlimit.loads(data)
    except jsonlimit.TooDeep as e:
        raise error(f"{what}: {e}") from None
    except (ValueError, UnicodeDecodeError):
        raise error(f"{what}: not valid JSON") from None


def parse_document(data: bytes, content_type: str | None = None) -> Manifest | Index:
    """Parse a manifest or index.  Refuses schema 1 and ambiguous documents."""
    ct = (content_type or "").split(";")[0].strip()
    if ct in (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED):
        raise UnsupportedManifest(SCHEMA1_MESSAGE)
    doc = load_json(data, "invalid manifest")
    if not isinstance(doc, dict):
        raise UnsupportedManifest("invalid manifest: not a JSON object")
    if doc.get("schemaVersion") == 1:
        raise UnsupportedManifest(SCHEMA1_MESSAGE)
    if doc.get("schemaVersion") != 2:
        raise UnsupportedManifest("invalid manifest: unsupported schemaVersion")
    mt = doc.get("mediaType") if isinstance(doc.get("mediaType"), str) else ""
    has_manifests, has_layers = "manifests" in doc, ("layers" in doc or "config" in doc)
    if has_manifests and has_layers:
        raise UnsupportedManifest("invalid manifest: document has both 'manifests' and 'layers'/'config'")
    if mt and ct and ct not in ("application/json", "application/octet-stream", "text/plain") and mt != ct:
        raise UnsupportedManifest(f"invalid manifest: mediaType {mt!r} does not match Content-Type {ct!r}")
    kind = mt or ct
    if has_manifests:
        if kind and kind not in INDEX_TYPES:
            raise UnsupportedManifest(f"invalid manifest: index with mediaType {kind!r}")
        entries = doc["manifests"]
        if not isinstance(entries, list):
            raise UnsupportedManifest("invalid manifest: 'manifests' is not a list")
        descs = tuple(_descriptor(e, f"manifests[{i}]", with_platform=True) for i, e in enumerate(entries))
        return Index(kind or OCI_INDEX, descs)
    if has_layers:
        if kind and kind not in MANIFEST_TYPES:
            raise UnsupportedManifest(f"unsupported manifest media type {kind!r}")
        layers = doc.get("layers")
        if not isinstance(layers, list):
            raise UnsupportedManifest("invalid manifest: 'layers' is not a list")
        config = _descriptor(doc.get("config"), "config")
        return Manifest(kind or OCI_MANIFEST, config, tuple(_descriptor(e, f"layers[{i}]") for i, e in enumerate(layers)))
    raise UnsupportedManifest(f"unsupported manifest media type {kind or 'unknown'!r}")


@dataclass(frozen=True, slots=True)
class ImageConfig:
    os: str
    architecture: str
    variant: str | None
    created: str | None
    diff_ids: tuple[str, ...]
    labels: dict
    raw: dict


def parse_config(data: bytes) -> ImageConfig:
    doc = load_json(data, "invalid image config", VerificationError)
    if not isinstance(doc, dict):
        raise VerificationError("invalid image config: not a JSON object")
    rootfs = doc.get("rootfs")
    if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids"), list):
        raise VerificationError("invalid image config: no rootfs.diff_ids")
    diff_ids = rootfs["diff_ids"]
    for d in diff_ids:
        if not isinstance(d, str) or not is_valid_digest(d):
            raise VerificationError(f"invalid image config: bad diff_id {str(d)[:80]!r}")
    cfg = doc.get("config") if isinstance(doc.get("config"), dict) else {}
    labels = cfg.get("Labels") if isinstance(cfg.get("Labels"), dict) else {}
    created = doc.get("created") if isinstance(doc.get("created"), str) else None

    def s(key: str) -> str:
        v = doc.get(key)
        return v if isinstance(v, str) else ""

    return ImageConfig(s("os"), s("architecture"), s("variant") or None, created, tuple(diff_ids), labels, doc)


def choose_manifest(index: Index, want: Platform) -> Descriptor:
    """The index entry for platform ``want``; attestations (unknown/unknown) never match."""
    candidates = [
        d
        for d in index.manifests
        if d.media_type in MANIFEST_TYPES or d.media_type in INDEX_TYPES
        if d.platform is not None and d.platform.os != "unknown"
    ]
    found = best_match([(d.platform, d) for d in candidates], want)
    if found is None:
        raise PlatformNotFound(f"no matching manifest for {want.normalized()} in the manifest list entries")
    return found


def best_match(candidates, want: Platform):
    """The item of (platform, item) pairs for ``want``: an exact match first; like containerd,
    a request without variant accepts the arch's first variant.  None when nothing matches."""
    want_n = want.normalized()
    for plat, item in candidates:
        if plat.matches(want_n):
            return item
    if want.variant is None or (want_n.architecture == "arm64" and want_n.variant == "v8"):
        for plat, item in candidates:
            p = plat.normalized()
            if p.os == want_n.os and p.architecture == want_n.architecture:
                return item
    return None
