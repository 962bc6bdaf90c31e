"""The registry client: HTTP, mirrors, authentication, TLS, manifests, blobs, tags.  No disk.

Endpoint choice and authentication live here so that use cases never think about which URL
served them: reads try each mirror, then the registry; a blob stream that breaks resumes with
``Range`` there or at the next endpoint.  Every document fetched is size-capped, every
manifest and blob is checked against its digest, so a mirror can make a pull faster, never
different.

Credentials and tokens are kept per host and sent only to it: never across a redirect to
another origin, to a mirror on another host, or to a layer's own URL, and never into a log
line.  Plain HTTP is used only for loopback and insecure registries.

Modules, bottom up: ``transport`` (one httpx client, TLS per host, proxies, deadlines),
``endpoints`` (Endpoint, URL checks), ``bodies`` (capped reads), ``tokens`` (challenges,
token service, credentials per host), ``check`` (an answer's typed error), ``pages`` (Link
pagination), ``engine`` (``send()``, the retry policy, endpoint fallback), then one module
per API: ``manifests``, ``blobs``, ``tags``, ``search``, ``push``; ``client`` puts them together.
"""

from imgctl.registry.client import RegistryClient
from imgctl.registry.endpoints import Endpoint, api_host
from imgctl.registry.manifests import FetchedManifest

__all__ = ["RegistryClient", "Endpoint", "FetchedManifest", "api_host"]
