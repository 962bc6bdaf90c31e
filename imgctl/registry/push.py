"""The upload API (push, issue 7): writes go to the registry itself, never to a mirror.

Each request carries the registry host's auth only while it stays on the registry's own
origin (an upload Location on a storage host gets none) and follows no redirect and is not
retried.  A 401 is answered once and the request sent again with a fresh body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from urllib.parse import urlencode

import httpx

from imgctl.errors import RegistryError, VerificationError
from imgctl.oci import MANIFEST_ACCEPT
from imgctl.reference import validate_digest
from imgctl.registry.bodies import MAX_ERROR_SIZE, read_capped
from imgctl.registry.check import WRITE, check
from imgctl.registry.endpoints import joined_url


class Push:
    """Part of RegistryClient: existence checks, mounts, uploads and manifest PUTs."""

    def _write(
        self, method: str, domain: str, url: str, path: str, *, ok: tuple[int, ...], what: str,
        headers: dict[str, str] | None = None, body: Callable[[], object] | None = None,
    ) -> httpx.Response:
        """One write request to ``domain``'s registry (``url``: absolute, or a path on it); its
        answer (body read, capped) when its status is one of ``ok``, else the typed error."""
        ep = self.registry(domain)
        if not url.startswith(("http://", "https://")):
            url = self.resolve(ep) + url
        scope = f"repository:{path}:pull,push"
        with self.send(
            method, ep, url, scope, headers, content=body, retry=False, redirects=False, deadline=None, write=True
        ) as resp:
            data = read_capped(resp, MAX_ERROR_SIZE, what="registry answer", truncate=True)
        check(resp, ok=ok, op=WRITE, what=what, path=path, body=data)
        return resp

    def _upload_url(self, request_url: str, resp: httpx.Response, *, what: str) -> str:
        location = resp.headers.get("location")
        if not location:
            raise RegistryError(f"{what}: the registry started an upload without a Location")
        return joined_url(request_url, location, f"{what}: the registry's upload URL")

    def blob_exists(self, domain: str, path: str, digest: str) -> bool:
        """``HEAD /v2/<path>/blobs/<digest>`` at the registry: does the repository have the blob?"""
        digest = validate_digest(digest)
        resp = self._write("HEAD", domain, f"/v2/{path}/blobs/{digest}", path, ok=(200, 404), what=f"blob {digest}")
        return resp.status_code == 200

    def manifest_exists(self, domain: str, path: str, digest: str) -> bool:
        """``HEAD /v2/<path>/manifests/<digest>`` at the registry (push: an index's absent platforms)."""
        digest = validate_digest(digest)
        resp = self._write(
            "HEAD", domain, f"/v2/{path}/manifests/{digest}", path, ok=(200, 404), what=f"manifest {digest}",
            headers={"Accept": MANIFEST_ACCEPT},
        )
        return resp.status_code == 200

    def mount_blob(self, domain: str, path: str, digest: str, from_path: str) -> str | None:
        """Cross-mount a blob from another repository of the same registry.

        None when mounted (201); otherwise the URL of the upload the registry started instead (202).
        """
        digest = validate_digest(digest)
        query = urlencode({"mount": digest, "from": from_path})
        url = f"{self.base_url(domain)}/v2/{path}/blobs/uploads/?{query}"
        resp = self._write("POST", domain, url, path, ok=(201, 202), what=f"blob {digest}")
        if resp.status_code == 201:
            return None
        return self._upload_url(url, resp, what=f"blob {digest}")

    def start_upload(self, domain: str, path: str) -> str:
        """``POST /v2/<path>/blobs/uploads/``: the URL to upload one blob to."""
        url = f"{self.base_url(domain)}/v2/{path}/blobs/uploads/"
        resp = self._write("POST", domain, url, path, ok=(202,), what="blob upload")
        return self._upload_url(url, resp, what="blob upload")

    def upload_blob(
        self, domain: str, path: str, location: str, digest: str, size: int, chunks: Callable[[], object]
    ) -> None:
        """Finish an upload with one ``PUT <location>?digest=...`` carrying the whole blob.

        ``chunks()`` returns a fresh iterable of the blob's bytes (called again after a 401).
        """
        digest = validate_digest(digest)
        url = location + ("&" if "?" in location else "?") + urlencode({"digest": digest})
        headers = {"Content-Type": "application/octet-stream", "Content-Length": str(size)}
        resp = self._write("PUT", domain, url, path, ok=(201, 204), what=f"blob {digest}", headers=headers, body=chunks)
        announced = resp.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise VerificationError(f"blob {digest}: the registry stored it as {announced}")

    def put_manifest(self, domain: str, path: str, ref: str, data: bytes, media_type: str) -> str:
        """``PUT /v2/<path>/manifests/<tag or digest>``; returns the digest of the exact bytes sent."""
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        resp = self._write(
            "PUT", domain, f"/v2/{path}/manifests/{ref}", path, ok=(200, 201), what=f"manifest {path}:{ref}",
            headers={"Content-Type": media_type}, body=lambda: data,
        )
        announced = resp.headers.get("docker-content-digest")
        if announced and announced != digest:
            raise VerificationError(f"manifest {path}:{ref}: the registry stored it as {announced}, not {digest}")
        return digest
