"""RegistryClient: the engine with every API of the package on it (what use cases hold)."""

from __future__ import annotations

from imgctl.errors import Unauthorized
from imgctl.registry.blobs import Blobs
from imgctl.registry.check import check
from imgctl.registry.engine import Engine
from imgctl.registry.manifests import Manifests
from imgctl.registry.push import Push
from imgctl.registry.search import Search
from imgctl.registry.tags import Tags


class RegistryClient(Engine, Manifests, Blobs, Tags, Search, Push):
    """One client per command run: connections and tokens are reused within it.

    Reads (manifests, blobs, tags) go to each mirror of the registry in order, then to the
    registry itself; any failure of a mirror moves on to the next endpoint.  Credentials and
    tokens are looked up and kept per host, so they never reach another one.
    """

    def check_login(self, domain: str) -> None:
        """Verify the credentials for ``domain``'s registry (never a mirror) with ``GET /v2/``."""
        ep = self.registry(domain)
        with self.send("GET", ep, self.resolve(ep) + "/v2/") as resp:
            if resp.status_code in (401, 403):
                raise Unauthorized(
                    f"login to {ep.host} failed: unauthorized: incorrect username or password", status=resp.status_code
                )
            check(resp, what="registry", display=ep.host)
