"""Manifests and indexes by tag or digest, verified over their exact bytes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from imgctl.errors import VerificationError
from imgctl.oci import MANIFEST_ACCEPT, MAX_MANIFEST_SIZE
from imgctl.reference import validate_digest
from imgctl.registry.bodies import read_capped
from imgctl.registry.check import check
from imgctl.registry.endpoints import Endpoint


@dataclass(frozen=True, slots=True)
class FetchedManifest:
    data: bytes
    media_type: str
    digest: str


class Manifests:
    """Part of RegistryClient: reads of manifests (an Engine's ``first`` and ``send``)."""

    def get_manifest(self, domain: str, path: str, ref: str, *, display: str) -> FetchedManifest:
        """Fetch a manifest or index by tag or digest; its digest is verified over the exact bytes.

        ``display`` names the image in error messages (``ubuntu:nope``).
        """
        want = validate_digest(ref) if ":" in ref else None
        sep = "@" if want else ":"
        return self.first(
            domain,
            f"manifest {path}{sep}{ref}",
            lambda ep, base: self._manifest_at(ep, base, path, ref, want, display),
        )

    def _manifest_at(self, ep: Endpoint, base: str, path: str, ref: str, want: str | None, display: str) -> FetchedManifest:
        scope = f"repository:{path}:pull"
        url = f"{base}/v2/{path}/manifests/{ref}"
        with self.send("GET", ep, url, scope, {"Accept": MANIFEST_ACCEPT}) as resp:
            check(resp, what="manifest", display=display, path=path)
            data = read_capped(resp, MAX_MANIFEST_SIZE, what=f"manifest for {display}")
            media_type = resp.headers.get("content-type", "").split(";")[0].strip()
            header_digest = resp.headers.get("docker-content-digest")
        algo = want.split(":", 1)[0] if want else "sha256"
        actual = f"{algo}:{hashlib.new(algo, data).hexdigest()}"
        if want and actual != want:
            raise VerificationError(f"manifest for {display} does not match its digest: expected {want}, got {actual}")
        if header_digest and header_digest.startswith(algo + ":") and header_digest != actual:
            raise VerificationError(
                f"manifest for {display} does not match the digest the registry announced ({header_digest})"
            )
        return FetchedManifest(data, media_type, actual)
