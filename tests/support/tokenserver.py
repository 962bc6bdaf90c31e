"""A small token server for distribution's ``auth.token`` mode (tests only).

It makes an EC P-256 key and a self-signed certificate when it starts, signs ES256 JWTs
the way docker's token servers do (``x5c`` header, ``access`` claim), and listens on
loopback only.  The registry trusts it through ``rootcertbundle``::

    with TokenServer(tmp_path, users={"alice": "s3cret"}) as ts:
        reg = registry_factory(extra=ts.registry_config())
        push_image(reg.url, "team/app", img, tag="v1", auth=ts.auth("team/app"))

``GET /token?service=S&scope=repository:NAME:pull`` with Basic credentials grants the
requested actions; anonymous requests get a token with no access (as Docker Hub's do);
wrong credentials get 401.  ``POST /token`` answers the OAuth2 refresh-token grant for
the tokens in ``refresh_tokens``.  Every request is recorded in ``requests``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

from .server import LoopbackServer, basic_user, reply_json


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenServer(LoopbackServer):
    methods = ("GET", "POST")

    def __init__(
        self,
        directory: str | Path,
        *,
        users: dict[str, str] | None = None,
        service: str = "imgctl-test-registry",
        issuer: str = "imgctl-test-issuer",
        expires_in: int | None = 300,
        token_field: str = "token",  # "token", "access_token" or "both"
        refresh_tokens: dict[str, str] | None = None,  # refresh token -> user
    ) -> None:
        self.users = dict(users or {})
        self.service = service
        self.issuer = issuer
        self.expires_in = expires_in
        self.token_field = token_field
        self.refresh_tokens = dict(refresh_tokens or {})
        self.requests: list[dict] = []  # {"method", "scopes", "user", "authorization", "grant"}
        self._lock = threading.Lock()
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imgctl test token signer")])
        now = dt.datetime.now(dt.timezone.utc)
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.cert_path = self.dir / "token-signer.pem"
        self.cert_path.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        super().__init__()
        self.start()
        self.realm = f"{self.url}/token"

    def registry_config(self) -> dict:
        """``extra=`` for :class:`registry.Registry`: token auth trusting this server."""
        return {
            "auth": {
                "token": {
                    "realm": self.realm,
                    "service": self.service,
                    "issuer": self.issuer,
                    "rootcertbundle": str(self.cert_path),
                }
            }
        }

    # -- tokens ----------------------------------------------------------------------------
    def mint(self, scopes: list[str], subject: str = "") -> str:
        """A signed JWT granting ``scopes`` (``repository:NAME:pull,push``)."""
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        header = {
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [base64.b64encode(self._cert.public_bytes(serialization.Encoding.DER)).decode()],
        }
        claims = {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": now + 3600,
            "nbf": now - 60,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}".encode()
        r, s = decode_dss_signature(self._key.sign(signing_input, ec.ECDSA(hashes.SHA256())))
        return signing_input.decode() + "." + _b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    def auth(self, repo: str, actions: str = "pull,push") -> "BearerAuth":
        """An httpx auth for the test's own pushes (bypasses the token endpoint)."""
        return BearerAuth(self.mint([f"repository:{repo}:{actions}"], subject="test-pusher"))

    def token_requests(self) -> list[dict]:
        with self._lock:
            return list(self.requests)

    # -- HTTP ------------------------------------------------------------------------------
    def handle(self, h: BaseHTTPRequestHandler, method: str) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("Content-Length") or 0)
        form = parse_qs(h.rfile.read(length).decode()) if length else {}
        query = parse_qs(url.query)
        rec = {"method": method, "scopes": [], "user": None, "authorization": h.headers.get("Authorization"), "grant": None}
        with self._lock:
            self.requests.append(rec)
        if url.path != "/token":
            return reply_json(h, 404, {"error": "not found"})
        if method == "POST":
            rec["grant"] = (form.get("grant_type") or [""])[0]
            scopes = " ".join(form.get("scope", [])).split()
            refresh = (form.get("refresh_token") or [""])[0]
            user = self.refresh_tokens.get(refresh)
            if rec["grant"] != "refresh_token" or user is None:
                return reply_json(h, 401, {"error": "invalid_grant"})
        else:
            scopes = query.get("scope", [])
            user = None
            header = h.headers.get("Authorization")
            if header:
                user = basic_user(header, self.users)
                if user is None:
                    return reply_json(h, 401, {"details": "incorrect username or password"})
        if (query.get("service") or form.get("service") or [self.service])[0] != self.service:
            return reply_json(h, 400, {"details": "unknown service"})
        rec["scopes"], rec["user"] = scopes, user
        token = self.mint(scopes if user else [], subject=user or "")
        doc: dict = {}
        if self.token_field in ("token", "both"):
            doc["token"] = token
        if self.token_field in ("access_token", "both"):
            doc["access_token"] = token
        if self.expires_in is not None:
            doc["expires_in"] = self.expires_in
        doc["issued_at"] = dt.datetime.now(dt.timezone.utc).isoformat()
        reply_json(h, 200, doc)


class BearerAuth(httpx.Auth):
    def __init__(self, token: str) -> None:
        self.token = token

    def auth_flow(self, request):
        request.headers["Authorization"] = f"Bearer {token}" if (token := self.token) else ""
        yield request
