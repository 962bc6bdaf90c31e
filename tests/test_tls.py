"""Transport security: TLS registries with a CA made in the test, certs.d, client certificates,
plain HTTP only where allowed, proxies from the environment."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

import pytest
from tests.support.cli import run
from tests.support.faultyserver import FaultyServer
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, image_ids

from imgctl.config import Config
from imgctl.errors import ConfigError
from imgctl.registry.transport import _Transport, tls_files

pytest.importorskip("cryptography.x509")
from tests.support.pki import CA  # noqa: E402


def small_image(seed: str):
    return make_image([make_layer({f"tls/{seed}": (seed * 1000).encode()}, "gzip")], labels={"seed": seed})


def certs_d(isolated_env) -> Path:
    return isolated_env["XDG_CONFIG_HOME"] / "imgctl" / "certs.d"


@pytest.fixture
def ca(tmp_path) -> CA:
    return CA(tmp_path / "pki")


@pytest.fixture
def tls_registry(registry_factory, ca):
    return registry_factory(tls=ca.issue("server", server=True))


def test_tls_registry_needs_its_ca_in_certs_d(tls_registry, ca, isolated_env, store_root):
    img = small_image("certsd")
    push_image(tls_registry.url, "team/tls", img, tag="v1", verify=ca.path)
    name = f"{tls_registry.host}/team/tls:v1"

    r = run("pull", name)
    assert r.code == 1
    hint = certs_d(isolated_env) / tls_registry.host / "ca.crt"
    assert r.err == (
        f"Error: cannot reach registry {tls_registry.host} (GET https://{tls_registry.host}/v2/): "
        f"TLS certificate verification failed: unable to get local issuer certificate "
        f"(to trust a private CA, put its certificate in {hint})\n"
    )
    assert not (store_root / "index.db").exists() or image_ids(store_root) == set()

    hint.parent.mkdir(parents=True)
    hint.write_bytes(ca.path.read_bytes())
    r = run("pull", name)
    assert r.code == 0, r.err
    assert r.lines[-1] == name
    assert_store_verifies(store_root)
    assert image_ids(store_root) == {img.config_digest}


def test_insecure_registry_is_reached_over_https_without_verification(tls_registry, ca, cfg_file, store_root):
    """docker's insecure-registries: a registry with a certificate nobody trusts (here: issued
    by a CA the client has never seen) is used over HTTPS without verification when listed;
    it only speaks TLS, so success means HTTPS, not the plain-HTTP fallback."""
    img = small_image("insecure-tls")
    push_image(tls_registry.url, "team/tls", img, tag="v1", verify=ca.path)
    name = f"{tls_registry.host}/team/tls:v1"
    r = run("pull", "-q", name)
    assert r.code == 1 and "TLS certificate verification failed" in r.err

    cfg_file.write_text(f'insecure-registries = ["{tls_registry.host}"]\n')
    r = run("--debug", "pull", "-q", name)
    assert r.code == 0, r.err
    assert r.out == f"{name}\n"
    assert f"using http://{tls_registry.host}" not in r.err
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)

    cfg_file.write_text('insecure-registries = ["10.0.0.0/8"]\n')  # listed by CIDR elsewhere: verified again
    assert run("pull", "-q", name).code == 1


def test_certs_dir_setting(tls_registry, ca, cfg_file, store_root):
    push_image(tls_registry.url, "team/tls", small_image("certsdir"), tag="v1", verify=ca.path)
    d = cfg_file.parent / "my-certs" / tls_registry.host
    d.mkdir(parents=True)
    (d / "corp-root.crt").write_bytes(ca.path.read_bytes())
    cfg_file.write_text('certs-dir = "my-certs"\n')
    assert run("pull", "-q", f"{tls_registry.host}/team/tls:v1").code == 0
    assert_store_verifies(store_root)


def test_system_trust_store_is_used(tls_registry, ca, monkeypatch, store_root):
    push_image(tls_registry.url, "team/tls", small_image("system"), tag="v1", verify=ca.path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))  # what the system trust store is, for OpenSSL
    r = run("pull", "-q", f"{tls_registry.host}/team/tls:v1")
    assert r.code == 0, r.err


def test_client_certificate_from_certs_d(registry, unique_repo, ca, isolated_env, store_root):
    """distribution 2.8 cannot make client certificates optional (and the test harness polls it
    without one), so a scripted TLS relay that demands one fronts a real registry here."""
    push_image(registry.url, unique_repo, small_image("mtls"), tag="v1")
    client_cert, client_key = ca.issue("client", server=False)
    with FaultyServer("pass", upstream=registry.url, tls=ca.issue("server", server=True), client_ca=ca.path) as front:
        d = certs_d(isolated_env) / front.host
        d.mkdir(parents=True)
        (d / "ca.crt").write_bytes(ca.path.read_bytes())
        r = run("pull", "-q", f"{front.host}/{unique_repo}:v1")
        assert r.code == 1  # it wants a client certificate
        assert f"cannot reach registry {front.host}" in r.err
        assert front.requests == []

        (d / "client.cert").write_bytes(client_cert.read_bytes())
        (d / "client.key").write_bytes(client_key.read_bytes())
        r = run("pull", "-q", f"{front.host}/{unique_repo}:v1")
        assert r.code == 0, r.err
        assert front.seen("/manifests/v1")
    assert_store_verifies(store_root)


def test_certs_d_key_without_certificate_is_an_error(tmp_path):
    d = tmp_path / "certs.d" / "reg.example:5000"
    d.mkdir(parents=True)
    (d / "client.key").write_text("x")
    with pytest.raises(ConfigError, match="client.key has no matching certificate client.cert"):
        tls_files("reg.example:5000", [tmp_path / "certs.d"])
    (d / "client.cert").write_text("x")
    (d / "ca.crt").write_text("x")
    assert tls_files("reg.example:5000", [tmp_path / "nothing", tmp_path / "certs.d"]) == (
        (d / "ca.crt",),
        (d / "client.cert", d / "client.key"),
    )


def _loopback_hostname() -> str | None:
    """This machine's name when it resolves to a loopback address (a non-literal name imgctl must not trust)."""
    name = socket.gethostname()
    try:
        ip = ipaddress.ip_address(socket.gethostbyname(name))
    except (OSError, ValueError):
        return None
    return name if ip.is_loopback and name != "localhost" and "." not in name else None


def test_plain_http_only_for_loopback_and_insecure_registries(registry, unique_repo, cfg_file, store_root):
    name = _loopback_hostname()
    if name is None:
        pytest.skip("this machine's hostname does not resolve to a loopback address")
    push_image(registry.url, unique_repo, small_image("insecure"), tag="v1")
    ref = f"{name}:{registry.port}/{unique_repo}:v1"
    r = run("pull", "-q", ref)
    assert r.code == 1
    assert f"Error: GET https://{name}:{registry.port}/v2/{unique_repo}/manifests/v1: TLS handshake failed" in r.err

    cfg_file.write_text(f'insecure-registries = ["{name}:{registry.port}"]\n')
    r = run("pull", "-q", ref)
    assert r.code == 0, r.err
    assert r.out == f"{ref}\n"
    assert_store_verifies(store_root)


def test_proxies_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example,.corp.example")
    t = _Transport(Config().certs_dirs(), limits=None)
    assert t._proxy("https", "registry.example") == "http://proxy.example:3128"
    assert t._proxy("https", "registry.example:5000") == "http://proxy.example:3128"
    assert t._proxy("https", "internal.example:443") is None
    assert t._proxy("https", "reg.corp.example") is None
    assert t._proxy("https", "127.0.0.1:5000") is None  # loopback is never proxied
    assert t._proxy("https", "localhost:5000") is None
    assert t._proxy("http", "registry.example") is None  # no HTTP_PROXY set


def test_trust_store_is_loaded_once_and_again_when_the_environment_changes(monkeypatch, ca):
    """The CA bundle is parsed once per process (on a thread, while imports run), and again
    only when SSL_CERT_FILE/SSL_CERT_DIR name another one."""
    from imgctl import trust

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    trust.prefetch()
    first = trust.system_context()
    assert trust.system_context() is first
    monkeypatch.setenv("SSL_CERT_FILE", str(ca.path))
    second = trust.system_context()
    assert second is not first

    def names(ctx):
        return {v for c in ctx.get_ca_certs() for rdn in c["subject"] for k, v in rdn if k == "commonName"}

    assert "imgctl test CA" in names(second) and "imgctl test CA" not in names(first)
    assert trust.new_context() is not second  # callers that add CAs get their own


# ---------------------------------------------------------------- how strictly certificates are verified
def _handshake(host: str, ctx: ssl.SSLContext) -> None:
    name, port = host.rsplit(":", 1)
    with socket.create_connection((name, int(port)), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname=name):
            pass


def _context(cafile: Path, *, strict: bool = False, partial_chain: bool = False) -> ssl.SSLContext:
    """OpenSSL's verification as Python sets it up, with the two flags that differ between versions set explicitly."""
    ctx = ssl.create_default_context(cafile=str(cafile))
    flags = ctx.verify_flags & ~(ssl.VERIFY_X509_STRICT | ssl.VERIFY_X509_PARTIAL_CHAIN)
    ctx.verify_flags = flags | (ssl.VERIFY_X509_STRICT if strict else 0) | (ssl.VERIFY_X509_PARTIAL_CHAIN if partial_chain else 0)
    return ctx


@pytest.mark.parametrize("trusted_by", ["certs.d", "SSL_CERT_FILE"])
def test_private_ca_without_key_identifiers_is_trusted_as_docker_trusts_it(
    registry_factory, tmp_path, isolated_env, monkeypatch, store_root, trusted_by
):
    """A home-made CA without keyUsage or subject key identifier, and a server certificate with
    only a subjectAltName: docker (Go) accepts them, so imgctl does on every Python, although
    strict X.509 verification (Python 3.13's default) refuses them."""
    old = CA(tmp_path / "old-pki", "old-style CA", legacy=True)
    reg = registry_factory(tls=old.issue("server", server=True))
    with pytest.raises(ssl.SSLCertVerificationError, match="Missing Authority Key Identifier"):
        _handshake(reg.host, _context(old.path, strict=True))
    img = small_image(f"legacy-{trusted_by}")
    push_image(reg.url, "team/legacy", img, tag="v1", verify=_context(old.path))
    if trusted_by == "certs.d":
        d = certs_d(isolated_env) / reg.host
        d.mkdir(parents=True)
        (d / "ca.crt").write_bytes(old.path.read_bytes())
    else:
        monkeypatch.setenv("SSL_CERT_FILE", str(old.path))
    r = run("pull", "-q", f"{reg.host}/team/legacy:v1")
    assert r.code == 0, r.err
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_trusted_intermediate_ca_is_an_anchor(registry, unique_repo, tmp_path, isolated_env, store_root):
    """certs.d holding only an intermediate CA (not its root) is enough, as for docker and for
    Python 3.13's defaults; without that, OpenSSL wants the root too."""
    root = CA(tmp_path / "pki", "imgctl test root CA")
    sub = root.intermediate()
    img = small_image("intermediate")
    push_image(registry.url, unique_repo, img, tag="v1")
    with FaultyServer("pass", upstream=registry.url, tls=sub.issue("server", server=True)) as front:
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get issuer certificate"):
            _handshake(front.host, _context(sub.path))
        d = certs_d(isolated_env) / front.host
        d.mkdir(parents=True)
        (d / "ca.crt").write_bytes(sub.path.read_bytes())
        r = run("pull", "-q", f"{front.host}/{unique_repo}:v1")
        assert r.code == 0, r.err
        assert front.seen("/manifests/v1")
    assert image_ids(store_root) == {img.config_digest}


@pytest.mark.parametrize(
    "case,reason",
    [
        ("expired", "certificate has expired"),
        ("other-host", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
        ("unknown-ca", "unable to get local issuer certificate"),
        ("legacy-expired", "certificate has expired"),
        ("legacy-other-host", "IP address mismatch, certificate is not valid for '127.0.0.1'"),
        ("issued-by-a-leaf", "invalid CA certificate"),
    ],
)
def test_invalid_certificates_are_still_refused(registry_factory, tmp_path, isolated_env, store_root, case, reason):
    """Leaving the strict profile out changes nothing else: expiry, host name and chain are
    checked (a real registry, as the plain-HTTP fallback for loopback needs its answer)."""
    legacy = case.startswith("legacy-")
    ca = CA(tmp_path / "pki", legacy=legacy)
    trusted = ca
    if case.endswith("expired"):
        tls = ca.issue("server", server=True, valid_days=-1)
    elif case.endswith("other-host"):
        tls = ca.issue("server", server=True, hosts=("registry.example", "127.0.0.2"))
    elif case == "unknown-ca":
        tls = ca.issue("server", server=True)
        trusted = CA(tmp_path / "other-pki", "another test CA")
    else:  # a certificate that is not a CA's signs the server's
        tls = ca.intermediate("not a CA", is_ca=False).issue("server", server=True)
    reg = registry_factory(tls=tls)
    d = certs_d(isolated_env) / reg.host
    d.mkdir(parents=True)
    (d / "ca.crt").write_bytes(trusted.path.read_bytes())
    r = run("pull", "-q", f"{reg.host}/team/tls:v1")
    assert r.code == 1
    assert f"TLS certificate verification failed: {reason}" in r.err
    assert len(r.err.splitlines()) == 1
    assert not (store_root / "index.db").exists() or image_ids(store_root) == set()
