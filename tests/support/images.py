"""Build real OCI / Docker images in memory and push them to a registry.

Everything here is deterministic: the same arguments give the same bytes and
therefore the same digests.

Layers::

    make_layer({"etc/hostname": b"box\\n", "bin": ("dir",), "bin/sh": ("symlink", "busybox")})
    make_layer([file("a", b"x", mode=0o755), directory("d"), whiteout("old"), opaque("d")],
               compression="zstd")
    make_random_layer(2000, 8192, seed=1)       # ~16 MB, 2000 files

Images / indexes::

    img = make_image([layer1, layer2], architecture="arm64", variant="v8")
    idx = make_index([img_amd64, img_arm64], attestation_for=True)

Push::

    digest = push_image(registry.url, "test/foo", idx, tag="latest")
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import ssl
import tarfile
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping, Sequence, Union

import httpx
import zstandard

# --------------------------------------------------------------------------
# media types
# --------------------------------------------------------------------------
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

IN_TOTO = "application/vnd.in-toto+json"

MANIFEST_ACCEPT = ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST])

LAYER_MEDIA_TYPES = {
    (False, "gzip"): OCI_LAYER_GZIP,
    (False, "zstd"): OCI_LAYER_ZSTD,
    (False, "none"): OCI_LAYER,
    (True, "gzip"): DOCKER_LAYER_GZIP,
    (True, "none"): DOCKER_LAYER,
}

FIXED_MTIME = 0


def sha256_digest(data: bytes) -> str:
    """``"sha256:<hex>"`` of *data*."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj: Any) -> bytes:
    """Compact, deterministic (insertion-ordered) JSON bytes."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


# --------------------------------------------------------------------------
# tar entries
# --------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One tar member. ``type`` is file | dir | symlink | hardlink | fifo | chardev | blockdev."""

    path: str
    type: str = "file"
    data: bytes = b""
    mode: int | None = None            # default 0o644 files, 0o755 dirs, 0o777 links
    target: str | None = None          # symlink / hardlink target
    uid: int = 0
    gid: int = 0
    mtime: int = FIXED_MTIME
    uname: str = ""
    gname: str = ""
    devmajor: int = 0
    devminor: int = 0
    xattrs: Mapping[str, str] | None = None  # written as PAX "SCHILY.xattr.<name>"


def file(path: str, data: bytes | str = b"", mode: int = 0o644, **kw) -> Entry:
    if isinstance(data, str):
        data = data.encode()
    return Entry(path, "file", data=data, mode=mode, **kw)


def directory(path: str, mode: int = 0o755, **kw) -> Entry:
    return Entry(path, "dir", mode=mode, **kw)


def symlink(path: str, target: str, **kw) -> Entry:
    return Entry(path, "symlink", target=target, mode=0o777, **kw)


def hardlink(path: str, target: str, **kw) -> Entry:
    return Entry(path, "hardlink", target=target, **kw)


def whiteout(path: str) -> Entry:
    """Whiteout for *path*: an empty file ``<dir>/.wh.<name>``."""
    head, _, name = path.rstrip("/").rpartition("/")
    return Entry(f"{head}/.wh.{name}" if head else f".wh.{name}", "file", mode=0o644)


def opaque(dirpath: str) -> Entry:
    """Opaque-directory marker ``<dir>/.wh..wh..opq``."""
    dirpath = dirpath.rstrip("/")
    return Entry(f"{dirpath}/.wh..wh..opq" if dirpath else ".wh..wh..opq", "file", mode=0o644)


FileSpec = Union[bytes, str, tuple, Entry, None]


def _entry_from_spec(path: str, spec: FileSpec) -> Entry:
    """Dict-value forms accepted by :func:`make_layer`.

    ``bytes``/``str``            regular file 0o644
    ``None``                     directory 0o755
    ``Entry``                    used as is (its path is replaced by the key)
    ``("file", data[, mode])``   regular file
    ``("dir"[, mode])``          directory
    ``("symlink", target)``      symlink
    ``("hardlink", target)``     hard link (target must precede it in the tar)
    ``("whiteout",)``            ``.wh.<name>`` for this path
    ``("opaque",)``              ``<path>/.wh..wh..opq``
    ``("fifo",)``                named pipe
    ``(data, mode)``             regular file with mode
    """
    if isinstance(spec, (bytes, str)):
        return file(path, spec)
    if spec is None:
        return directory(path)
    if isinstance(spec, Entry):
        return Entry(**{**spec.__dict__, "path": path})
    if isinstance(spec, tuple):
        if not spec:
            raise ValueError(f"{path}: empty tuple")
        kind, *rest = spec
        if isinstance(kind, (bytes, bytearray)):
            return file(path, bytes(kind), *rest)
        if kind == "file":
            return file(path, *rest)
        if kind == "dir":
            return directory(path, *rest)
        if kind == "symlink":
            return symlink(path, *rest)
        if kind == "hardlink":
            return hardlink(path, *rest)
        if kind == "whiteout":
            return whiteout(path)
        if kind == "opaque":
            return opaque(path)
        if kind == "fifo":
            return Entry(path, "fifo", mode=rest[0] if rest else 0o644)
        raise ValueError(f"{path}: unknown entry kind {kind!r}")
    raise TypeError(f"{path}: unsupported file spec {spec!r}")


_KINDS = ("file", "dir", "symlink", "hardlink", "whiteout", "opaque", "fifo")


def _normalise_entries(files: Mapping[str, FileSpec] | Iterable[Entry | tuple]) -> list[Entry]:
    if isinstance(files, Mapping):
        return [_entry_from_spec(p, s) for p, s in files.items()]
    out = []
    for item in files:
        if isinstance(item, Entry):
            out.append(item)
        elif isinstance(item, tuple) and len(item) >= 2 and isinstance(item[0], str):
            # (path, spec) with a dict-value spec, or (path, kind, *args) shorthand
            path, *rest = item
            if isinstance(rest[0], str) and rest[0] in _KINDS:
                out.append(_entry_from_spec(path, tuple(rest)))
            elif len(rest) == 1:
                out.append(_entry_from_spec(path, rest[0]))
            else:
                out.append(_entry_from_spec(path, tuple(rest)))
        else:
            raise TypeError(f"unsupported layer entry {item!r}")
    return out


_TAR_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "fifo": tarfile.FIFOTYPE,
    "chardev": tarfile.CHRTYPE,
    "blockdev": tarfile.BLKTYPE,
}


def build_tar(entries: Iterable[Entry], *, sort: bool = True) -> bytes:
    """Deterministic uncompressed tar (PAX format) of *entries*."""
    entries = list(entries)
    if sort:
        entries.sort(key=lambda e: e.path.strip("/"))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for e in entries:
            name = e.path.lstrip("/")
            if e.type == "dir":
                name = name.rstrip("/")
            info = tarfile.TarInfo(name)
            info.type = _TAR_TYPES[e.type]
            info.mtime = e.mtime
            info.uid, info.gid = e.uid, e.gid
            info.uname, info.gname = e.uname, e.gname
            if e.mode is not None:
                info.mode = e.mode
            elif e.type == "dir":
                info.mode = 0o755
            elif e.type == "symlink":
                info.mode = 0o777
            else:
                info.mode = 0o644
            if e.type in ("symlink", "hardlink"):
                if e.target is None:
                    raise ValueError(f"{e.path}: {e.type} needs a target")
                info.linkname = e.target
            if e.type in ("chardev", "blockdev"):
                info.devmajor, info.devminor = e.devmajor, e.devminor
            if e.xattrs:
                info.pax_headers = {f"SCHILY.xattr.{k}": v for k, v in e.xattrs.items()}
            if e.type == "file":
                info.size = len(e.data)
                tar.addfile(info, io.BytesIO(e.data))
            else:
                tar.addfile(info)
    return buf.getvalue()


# --------------------------------------------------------------------------
# layers
# --------------------------------------------------------------------------
@dataclass(frozen=True, eq=False)
class Layer:
    data: bytes                 # the blob as stored in the registry (compressed)
    digest: str                 # sha256 of data
    diff_id: str                # sha256 of the uncompressed tar
    size: int                   # len(data)
    uncompressed_size: int      # len(tar)
    media_type: str
    compression: str            # gzip | zstd | none
    tar: bytes = field(repr=False, default=b"")   # the uncompressed tar
    annotations: dict[str, str] | None = None

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {"mediaType": self.media_type, "digest": self.digest, "size": self.size}
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def members(self) -> list[tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.tar), mode="r:") as t:
            return t.getmembers()


def compress(data: bytes, compression: str, level: int | None = None) -> bytes:
    if compression == "gzip":
        return gzip.compress(data, compresslevel=6 if level is None else level, mtime=0)
    if compression == "zstd":
        return zstandard.ZstdCompressor(level=3 if level is None else level).compress(data)
    if compression == "none":
        return data
    raise ValueError(f"unknown compression {compression!r} (gzip | zstd | none)")


def layer_from_tar(
    tar: bytes,
    compression: str = "gzip",
    *,
    docker: bool = False,
    media_type: str | None = None,
    level: int | None = None,
    annotations: dict[str, str] | None = None,
) -> Layer:
    """Wrap an existing uncompressed tar as a :class:`Layer`."""
    if media_type is None:
        try:
            media_type = LAYER_MEDIA_TYPES[(docker, compression)]
        except KeyError:
            raise ValueError(
                f"no {'Docker' if docker else 'OCI'} layer media type for {compression!r}; "
                "pass media_type= explicitly"
            ) from None
    data = compress(tar, compression, level)
    return Layer(
        data=data,
        digest=sha256_digest(data),
        diff_id=sha256_digest(tar),
        size=len(data),
        uncompressed_size=len(tar),
        media_type=media_type,
        compression=compression,
        tar=tar,
        annotations=annotations,
    )


def make_layer(
    files: Mapping[str, FileSpec] | Iterable[Entry | tuple],
    compression: str = "gzip",
    *,
    docker: bool = False,
    media_type: str | None = None,
    sort: bool = True,
    level: int | None = None,
    annotations: dict[str, str] | None = None,
) -> Layer:
    """Build a layer from a dict ``{path: spec}`` or a list of :class:`Entry`.

    See :func:`_entry_from_spec` for the spec forms. Entries are sorted by
    path unless ``sort=False`` (then the given order is kept, e.g. for hard
    links or deliberately odd orders).
    """
    tar = build_tar(_normalise_entries(files), sort=sort)
    return layer_from_tar(
        tar, compression, docker=docker, media_type=media_type, level=level, annotations=annotations
    )


_WORDS = (
    b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor "
    b"incididunt ut labore et dolore magna aliqua import def class return self none "
    b"true false usr lib bin etc share include python3 libc so version config"
).split()


def random_layer_entries(n_files: int, file_size: int, seed: int) -> list[Entry]:
    """Entries of :func:`make_random_layer` (directories + *n_files* files)."""
    rng = random.Random(seed)
    # A compressible corpus (text-like) to slice from: cheap to build, reused.
    corpus_len = max(64 * 1024, min(4 * 1024 * 1024, file_size * 8))
    words = [rng.choice(_WORDS) for _ in range(corpus_len // 5 + 1)]
    corpus = b" ".join(words)[:corpus_len]
    lo, hi = max(0, file_size // 2), max(1, file_size + file_size // 2)
    per_dir = 100
    entries: list[Entry] = []
    for d in range((n_files + per_dir - 1) // per_dir):
        entries.append(directory(f"data/d{d:04d}"))
    entries.append(directory("data"))
    for i in range(n_files):
        size = rng.randint(lo, hi) if file_size > 0 else 0
        kind = rng.random()
        if kind < 0.4:  # incompressible
            data = rng.randbytes(size)
        elif kind < 0.9:  # text-like
            start = rng.randrange(0, max(1, len(corpus) - size)) if size < len(corpus) else 0
            chunk = corpus[start:start + size]
            while len(chunk) < size:
                chunk += corpus[: size - len(chunk)]
            data = chunk
        else:  # mostly zeros with a random head (sparse-ish binaries)
            head = rng.randbytes(min(size, 64))
            data = head + bytes(size - len(head))
        mode = 0o755 if rng.random() < 0.1 else 0o644
        entries.append(file(f"data/d{i // per_dir:04d}/f{i:06d}.bin", data, mode=mode))
    return entries


def make_random_layer(
    n_files: int,
    file_size: int,
    seed: int = 0,
    compression: str = "gzip",
    *,
    docker: bool = False,
    level: int | None = None,
) -> Layer:
    """A realistic layer: *n_files* regular files under ``data/dNNNN/`` (100 per dir).

    File sizes are uniform in ``[file_size/2, 1.5*file_size]`` (mean ~file_size);
    ~40 % random (incompressible), ~50 % text-like, ~10 % mostly zeros; ~10 %
    are executable.  Fully determined by *seed*.  ~35 MB / 4000 files builds
    in well under a second (pass ``level=1`` to make gzip even faster).
    """
    return make_layer(
        random_layer_entries(n_files, file_size, seed), compression, docker=docker, level=level
    )


# --------------------------------------------------------------------------
# images and indexes
# --------------------------------------------------------------------------
@dataclass(eq=False)
class Image:
    config: dict[str, Any]
    config_bytes: bytes
    config_digest: str
    config_media_type: str
    manifest: dict[str, Any]
    manifest_bytes: bytes
    manifest_digest: str
    manifest_media_type: str
    layers: list[Layer]
    docker: bool
    platform: dict[str, Any] | None = None     # for index entries
    annotations: dict[str, str] | None = None  # index-entry annotations

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mediaType": self.manifest_media_type,
            "digest": self.manifest_digest,
            "size": self.size,
        }
        if self.platform is not None:
            d["platform"] = dict(self.platform)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def blobs(self) -> list[tuple[str, bytes]]:
        """``(digest, bytes)`` of config and layers (deduplicated, in order)."""
        seen: dict[str, bytes] = {self.config_digest: self.config_bytes}
        for layer in self.layers:
            seen.setdefault(layer.digest, layer.data)
        return list(seen.items())


@dataclass(eq=False)
class Index:
    index: dict[str, Any]
    manifest_bytes: bytes
    manifest_digest: str
    manifest_media_type: str
    manifests: list[Union[Image, "Index"]]   # every child, in index order
    images: list[Image]                       # the platform images only
    attestations: list[Image]                 # attestation manifests only
    docker: bool
    platform: dict[str, Any] | None = None
    annotations: dict[str, str] | None = None

    @property
    def size(self) -> int:
        return len(self.manifest_bytes)

    def descriptor(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "mediaType": self.manifest_media_type,
            "digest": self.manifest_digest,
            "size": self.size,
        }
        if self.platform is not None:
            d["platform"] = dict(self.platform)
        if self.annotations:
            d["annotations"] = dict(self.annotations)
        return d

    def blobs(self) -> list[tuple[str, bytes]]:
        seen: dict[str, bytes] = {}
        for child in self.manifests:
            for dg, data in child.blobs():
                seen.setdefault(dg, data)
        return list(seen.items())

    def image_for(self, os: str = "linux", architecture: str = "amd64", variant: str | None = None) -> Image:
        for img in self.images:
            p = img.platform or {}
            if p.get("os") == os and p.get("architecture") == architecture and (
                variant is None or p.get("variant") == variant
            ):
                return img
        raise KeyError(f"{os}/{architecture}/{variant}")


def _merge(base: dict, extra: Mapping) -> dict:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _merge(base[k], v)
        else:
            base[k] = v
    return base


def make_image(
    layers: Sequence[Layer],
    *,
    os: str = "linux",
    architecture: str = "amd64",
    variant: str | None = None,
    docker: bool = False,
    created: str | None = "2024-01-02T03:04:05Z",
    labels: Mapping[str, str] | None = None,
    history: list[dict[str, Any]] | None = None,
    config_extra: Mapping[str, Any] | None = None,
    env: Sequence[str] | None = None,
    cmd: Sequence[str] | None = None,
    entrypoint: Sequence[str] | None = None,
    manifest_annotations: Mapping[str, str] | None = None,
    manifest_extra: Mapping[str, Any] | None = None,
    config_media_type: str | None = None,
    index_annotations: Mapping[str, str] | None = None,
) -> Image:
    """Build an image manifest + config over *layers*.

    ``config_extra`` is deep-merged into the config JSON (e.g.
    ``{"os.version": "10.0.17763.1", "config": {"WorkingDir": "/app"}}``);
    ``manifest_extra`` into the manifest (e.g. ``{"subject": {...}}``).
    The platform used in an index entry is derived from the final config
    (architecture, os, variant, os.version, os.features).
    ``index_annotations`` are put on this image's entry in a later index.
    """
    layers = list(layers)
    inner: dict[str, Any] = {
        "Env": list(env) if env is not None else ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
        "Cmd": list(cmd) if cmd is not None else ["/bin/sh"],
    }
    if entrypoint is not None:
        inner["Entrypoint"] = list(entrypoint)
    inner["Labels"] = dict(labels) if labels else None
    if inner["Labels"] is None:
        del inner["Labels"]
    config: dict[str, Any] = {}
    if created is not None:
        config["created"] = created
    config["architecture"] = architecture
    if variant is not None:
        config["variant"] = variant
    config["os"] = os
    config["config"] = inner
    config["rootfs"] = {"type": "layers", "diff_ids": [l.diff_id for l in layers]}
    if history is None:
        history = [
            {**({"created": created} if created else {}), "created_by": f"/bin/sh -c #(nop) layer {i}"}
            for i in range(len(layers))
        ]
    config["history"] = history
    if config_extra:
        _merge(config, config_extra)

    config_bytes = dumps(config)
    config_digest = sha256_digest(config_bytes)
    if config_media_type is None:
        config_media_type = DOCKER_CONFIG if docker else OCI_CONFIG
    manifest_media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": manifest_media_type,
        "config": {"mediaType": config_media_type, "digest": config_digest, "size": len(config_bytes)},
        "layers": [l.descriptor() for l in layers],
    }
    if manifest_annotations:
        manifest["annotations"] = dict(manifest_annotations)
    if manifest_extra:
        _merge(manifest, manifest_extra)
    manifest_bytes = dumps(manifest)

    platform: dict[str, Any] = {"architecture": config.get("architecture"), "os": config.get("os")}
    if config.get("os.version"):
        platform["os.version"] = config["os.version"]
    if config.get("os.features"):
        platform["os.features"] = list(config["os.features"])
    if config.get("variant"):
        platform["variant"] = config["variant"]

    return Image(
        config=config,
        config_bytes=config_bytes,
        config_digest=config_digest,
        config_media_type=config_media_type,
        manifest=manifest,
        manifest_bytes=manifest_bytes,
        manifest_digest=sha256_digest(manifest_bytes),
        manifest_media_type=manifest_media_type,
        layers=layers,
        docker=docker,
        platform=platform,
        annotations=dict(index_annotations) if index_annotations else None,
    )


def make_attestation(image: Image, *, created: str = "2024-01-02T03:04:05Z") -> Image:
    """A buildx-style attestation manifest for *image* (platform unknown/unknown)."""
    statement = {
        "_type": "https://in-toto.io/Statement/v0.1",
        "predicateType": "https://slsa.dev/provenance/v0.2",
        "subject": [
            {"name": "pkg:docker/imgctl-test@latest", "digest": {"sha256": image.manifest_digest.split(":", 1)[1]}}
        ],
        "predicate": {"builder": {"id": ""}, "buildType": "https://mobyproject.org/buildkit@v1", "metadata": {"buildStartedOn": created}},
    }
    data = dumps(statement)
    layer = Layer(
        data=data,
        digest=sha256_digest(data),
        diff_id=sha256_digest(data),
        size=len(data),
        uncompressed_size=len(data),
        media_type=IN_TOTO,
        compression="none",
        tar=b"",
        annotations={"in-toto.io/predicate-type": "https://slsa.dev/provenance/v0.2"},
    )
    att = make_image(
        [layer],
        os="unknown",
        architecture="unknown",
        created=None,
        history=[],
        env=[],
        cmd=[],
        index_annotations={
            "vnd.docker.reference.type": "attestation-manifest",
            "vnd.docker.reference.digest": image.manifest_digest,
        },
    )
    # buildx's attestation config is minimal: no "config" or history content.
    return att


def make_index(
    images: Sequence[Image | Index],
    *,
    docker: bool = False,
    attestation_for: Image | Sequence[Image] | bool | None = None,
    annotations: Mapping[str, str] | None = None,
    index_extra: Mapping[str, Any] | None = None,
) -> Index:
    """OCI image index (or Docker manifest list with ``docker=True``).

    ``attestation_for``: ``True`` (every image), one :class:`Image` or a list
    of them; an attestation manifest (platform ``unknown/unknown``) is added
    after the images for each.
    """
    images = list(images)
    if attestation_for is True:
        targets = [i for i in images if isinstance(i, Image)]
    elif attestation_for in (None, False):
        targets = []
    elif isinstance(attestation_for, Image):
        targets = [attestation_for]
    else:
        targets = list(attestation_for)
    attestations = [make_attestation(t) for t in targets]
    children: list[Image | Index] = images + attestations

    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    index: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [c.descriptor() for c in children],
    }
    if annotations:
        index["annotations"] = dict(annotations)
    if index_extra:
        _merge(index, index_extra)
    data = dumps(index)
    return Index(
        index=index,
        manifest_bytes=data,
        manifest_digest=sha256_digest(data),
        manifest_media_type=media_type,
        manifests=children,
        images=[c for c in images if isinstance(c, Image)],
        attestations=attestations,
        docker=docker,
    )


# --------------------------------------------------------------------------
# pushing (registry HTTP API v2)
# --------------------------------------------------------------------------
def _base_url(registry: Any) -> str:
    url = getattr(registry, "url", registry)
    url = str(url).rstrip("/")
    if "://" not in url:
        url = "http://" + url
    return url


def _client(registry: Any, auth=None, verify: Any = True) -> httpx.Client:
    if isinstance(verify, (str, os.PathLike)):  # a CA bundle path
        verify = ssl.create_default_context(cafile=os.fspath(verify))
    return httpx.Client(
        base_url=_base_url(registry),
        auth=auth,
        verify=verify,
        trust_env=False,
        timeout=httpx.Timeout(60.0, connect=10.0),
        follow_redirects=True,
    )


def _blob_exists(client: httpx.Client, repo: str, digest: str) -> bool:
    r = client.head(f"/v2/{repo}/blobs/{digest}")
    if r.status_code == 200:
        return True
    if r.status_code == 404:
        return False
    r.raise_for_status()
    return False


def _upload_blob(client: httpx.Client, repo: str, data: bytes, digest: str, chunk_size: int | None) -> None:
    r = client.post(f"/v2/{repo}/blobs/uploads/")
    if r.status_code != 202:
        raise httpx.HTTPStatusError(f"start upload: {r.status_code} {r.text}", request=r.request, response=r)
    location = r.headers["Location"]
    if chunk_size:
        offset = 0
        while offset < len(data):
            chunk = data[offset:offset + chunk_size]
            url = r.url.join(location)
            r = client.patch(
                url,
                content=chunk,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                },
            )
            if r.status_code != 202:
                raise httpx.HTTPStatusError(f"upload chunk: {r.status_code} {r.text}", request=r.request, response=r)
            location = r.headers["Location"]
            offset += len(chunk)
        body = b""
    else:
        body = data
    url = r.url.join(location).copy_merge_params({"digest": digest})
    r = client.put(url, content=body, headers={"Content-Type": "application/octet-stream"})
    if r.status_code != 201:
        raise httpx.HTTPStatusError(f"finish upload {digest}: {r.status_code} {r.text}", request=r.request, response=r)


def push_blob(
    registry_url: Any,
    repo: str,
    data: bytes,
    digest: str | None = None,
    *,
    skip_existing: bool = True,
    chunk_size: int | None = None,
    auth=None,
    verify: Any = True,
) -> str:
    """Upload *data* as a blob; returns its digest (``digest`` may be forced, e.g. wrong)."""
    digest = digest or sha256_digest(data)
    with _client(registry_url, auth, verify) as client:
        if not (skip_existing and _blob_exists(client, repo, digest)):
            _upload_blob(client, repo, data, digest, chunk_size)
    return digest


def _put_manifest(client: httpx.Client, repo: str, ref: str, data: bytes, media_type: str) -> str:
    r = client.put(f"/v2/{repo}/manifests/{ref}", content=data, headers={"Content-Type": media_type})
    if r.status_code != 201:
        raise httpx.HTTPStatusError(f"put manifest {repo}:{ref}: {r.status_code} {r.text}", request=r.request, response=r)
    return r.headers.get("Docker-Content-Digest") or sha256_digest(data)


def push_raw_manifest(
    registry_url: Any, repo: str, ref: str, data: bytes, media_type: str, *, auth=None, verify: Any = True
) -> str:
    """PUT exact manifest bytes at ``ref`` (tag or digest); returns the registry's digest."""
    with _client(registry_url, auth, verify) as client:
        return _put_manifest(client, repo, ref, data, media_type)


def _push(client: httpx.Client, repo: str, obj: Image | Index, chunk_size: int | None, pushed: set[str]) -> None:
    if isinstance(obj, Index):
        for child in obj.manifests:
            _push(client, repo, child, chunk_size, pushed)
            if child.manifest_digest not in pushed:
                _put_manifest(client, repo, child.manifest_digest, child.manifest_bytes, child.manifest_media_type)
                pushed.add(child.manifest_digest)
        return
    for digest, data in obj.blobs():
        if digest in pushed:
            continue
        if not _blob_exists(client, repo, digest):
            _upload_blob(client, repo, data, digest, chunk_size)
        pushed.add(digest)


def push_image(
    registry_url: Any,
    repo: str,
    image_or_index: Image | Index,
    tag: str | None = None,
    *,
    chunk_size: int | None = None,
    auth=None,
    verify: Any = True,
) -> str:
    """Push blobs, child manifests (by digest), then the top manifest.

    The top manifest goes to ``tag`` if given, else by digest. Returns the
    top-level manifest digest (children's digests are on the objects:
    ``index.manifests[i].manifest_digest``). *registry_url* may be a URL,
    ``host:port`` or a :class:`Registry`.
    """
    with _client(registry_url, auth, verify) as client:
        _push(client, repo, image_or_index, chunk_size, set())
        ref = tag if tag is not None else image_or_index.manifest_digest
        return _put_manifest(
            client, repo, ref, image_or_index.manifest_bytes, image_or_index.manifest_media_type
        )


# --------------------------------------------------------------------------
# reading back (for assertions)
# --------------------------------------------------------------------------
def get_manifest(
    registry_url: Any, repo: str, ref: str, *, accept: str = MANIFEST_ACCEPT, auth=None, verify: Any = True
) -> httpx.Response:
    """GET a manifest; raises on HTTP errors. ``.content``, ``.headers['Content-Type']``."""
    with _client(registry_url, auth, verify) as client:
        r = client.get(f"/v2/{repo}/manifests/{ref}", headers={"Accept": accept})
        r.raise_for_status()
        return r


def get_blob(registry_url: Any, repo: str, digest: str, *, auth=None, verify: Any = True) -> bytes:
    with _client(registry_url, auth, verify) as client:
        r = client.get(f"/v2/{repo}/blobs/{digest}")
        r.raise_for_status()
        return r.content


def delete_manifest(registry_url: Any, repo: str, digest: str, *, auth=None, verify: Any = True) -> None:
    """DELETE a manifest by digest (the registry has delete enabled)."""
    with _client(registry_url, auth, verify) as client:
        r = client.delete(f"/v2/{repo}/manifests/{digest}")
        r.raise_for_status()
