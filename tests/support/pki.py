"""Certificates made in the test: a CA that issues server and client certificates.

By default everything is as a public CA would issue it, so strict X.509 verification
(Python 3.13's default, ``ssl.VERIFY_X509_STRICT``) accepts it:

* CA:   basicConstraints CA:true (critical), keyUsage keyCertSign+cRLSign (critical),
        subjectKeyIdentifier;
* leaf: basicConstraints CA:false (critical), keyUsage digitalSignature (critical),
        subjectKeyIdentifier, authorityKeyIdentifier, extendedKeyUsage serverAuth or
        clientAuth, and for a server subjectAltName (IP 127.0.0.1, DNS localhost).

``legacy=True`` makes the kind many private registries still use (old ``openssl req``
recipes, home-made CAs): a CA without keyUsage or subjectKeyIdentifier and a leaf with
only a subjectAltName.  docker (Go's crypto/x509) and OpenSSL's default verification
accept those; strict verification refuses them ("Missing Authority Key Identifier").
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("127.0.0.1", "localhost")


def _key_usage(*, digital_signature: bool = False, cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _san(hosts) -> x509.SubjectAlternativeName:
    names = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return x509.SubjectAlternativeName(names)


def _write_pem(path: Path, cert: x509.Certificate) -> Path:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return path


class CA:
    """A certificate authority made for one test; issues server and client certificates.

    ``issuer=`` makes it an intermediate CA signed by that CA; ``path`` is its certificate
    (what a client trusts), ``chain`` its certificate followed by its issuers' up to the root
    (what a server sends after its own).  ``is_ca=False`` makes a certificate that is not a
    CA's (basicConstraints CA:false) but signs others anyway, which verification must refuse.
    """

    def __init__(
        self,
        directory: Path,
        name: str = "imgctl test CA",
        *,
        legacy: bool = False,
        issuer: CA | None = None,
        is_ca: bool = True,
    ) -> None:
        self.dir = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        now = dt.datetime.now(dt.timezone.utc)
        builder = (
            x509.CertificateBuilder()
            .subject_name(self.name)
            .issuer_name(issuer.name if issuer else self.name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=2))
        )
        if legacy:
            builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
        else:
            builder = (
                builder.add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=not is_ca, cert_sign=is_ca), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            )
            if issuer is not None:
                builder = builder.add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
                )
        self.cert = builder.sign(issuer.key if issuer else self.key, hashes.SHA256())
        self.issuer = issuer
        self.legacy = legacy
        stem = "ca" if issuer is None else "intermediate"
        self.path = _write_pem(directory / f"{stem}.pem", self.cert)
        chain = [self.cert]
        while issuer is not None:
            chain.append(issuer.cert)
            issuer = issuer.issuer
        self.chain = chain

    def intermediate(self, name: str = "imgctl test intermediate CA", *, is_ca: bool = True) -> CA:
        return CA(self.dir / "intermediate", name, issuer=self, is_ca=is_ca)

    def issue(
        self,
        stem: str,
        *,
        server: bool,
        hosts=LOOPBACK_NAMES,
        legacy: bool | None = None,
        valid_days: float = 1,
    ) -> tuple[Path, Path]:
        """Write ``<stem>.pem`` (the certificate, then the CA chain up to the root, as a
        server sends it) and ``<stem>-key.pem``; return both paths.  ``valid_days`` < 0
        makes a certificate that has already expired; ``legacy`` defaults to the CA's."""
        legacy = self.legacy if legacy is None else legacy
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.timezone.utc)
        not_after = now + dt.timedelta(days=valid_days)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, stem)]))
            .issuer_name(self.name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(min(now - dt.timedelta(hours=1), not_after - dt.timedelta(hours=1)))
            .not_valid_after(not_after)
        )
        if server:
            builder = builder.add_extension(_san(hosts), critical=False)
        if not legacy:
            usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
            builder = (
                builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(_key_usage(digital_signature=True), critical=True)
                .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
                )
            )
        cert = builder.sign(self.key, hashes.SHA256())
        cert_path, key_path = self.dir / f"{stem}.pem", self.dir / f"{stem}-key.pem"
        chain = [cert] + (self.chain[:-1] if self.issuer is not None else [])  # never the root itself
        cert_path.write_bytes(b"".join(c.public_bytes(serialization.Encoding.PEM) for c in chain))
        key_path.write_bytes(
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
        )
        return cert_path, key_path
