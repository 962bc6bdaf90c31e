"""Table-driven tests for imgctl.reference.

Many vectors are translated from distribution/reference's reference_test.go and
normalize_test.go (through ParseNormalizedNamed, i.e. with Docker Hub
normalisation); messages are the ones docker prints.
"""

from __future__ import annotations

import dataclasses

import pytest

from imgctl.errors import ImgctlError, InvalidReference
from imgctl.reference import (
    DEFAULT_DOMAIN,
    DEFAULT_TAG,
    DIGEST_RE,
    LEGACY_DEFAULT_DOMAIN,
    OFFICIAL_REPO_PREFIX,
    Reference,
    is_valid_digest,
    is_valid_tag,
    looks_like_image_id,
    parse,
    parse_repository,
    validate_digest,
)

F64 = "f" * 64
D = "sha256:" + F64
D2 = "sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa"
D3 = "sha256:e6693c20186f837fc393390135d8a598a96a833917917789d63766cab6c59582"
D512 = "sha512:" + "0123456789abcdef" * 8
HEX64 = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a"
SONG = "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev"  # 64, not hex
LONGNS = (
    "this_is_not_a_valid_namespace_because_its_lenth_is_greater_than_255_" * 4
).rstrip("_") + "/docker"

MSG_FORMAT = "invalid reference format"
MSG_LONG = "repository name must not be more than 255 characters"


def lower_msg(name: str) -> str:
    return f"invalid reference format: repository name ({name}) must be lowercase"


def hex_msg(name: str) -> str:
    return f"invalid repository name ({name}), cannot specify 64-byte hexadecimal strings"


def hub(path: str, tag: str | None = "latest", digest: str | None = None, familiar: str | None = None):
    """Expected tuple for a Docker Hub reference."""
    suffix = (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")
    if familiar is None:
        rest = path[len("library/"):] if path.startswith("library/") else None
        familiar = rest if rest is not None and "/" not in rest else path
    return ("docker.io", path, tag, digest, f"docker.io/{path}{suffix}", familiar + suffix)


def other(domain: str, path: str, tag: str | None = "latest", digest: str | None = None):
    """Expected tuple for a reference on any registry but Docker Hub."""
    suffix = (f":{tag}" if tag is not None else "") + (f"@{digest}" if digest is not None else "")
    full = f"{domain}/{path}{suffix}"
    return (domain, path, tag, digest, full, full)


# input -> (domain, path, tag, digest, str(), familiar())
VALID: list[tuple[str, tuple]] = [
    # --- plain Hub names, explicit expectations first
    ("ubuntu", ("docker.io", "library/ubuntu", "latest", None,
                "docker.io/library/ubuntu:latest", "ubuntu:latest")),
    ("ubuntu:18.04", ("docker.io", "library/ubuntu", "18.04", None,
                      "docker.io/library/ubuntu:18.04", "ubuntu:18.04")),
    ("ubuntu@" + D, ("docker.io", "library/ubuntu", None, D,
                     "docker.io/library/ubuntu@" + D, "ubuntu@" + D)),
    ("ubuntu:18.04@" + D, ("docker.io", "library/ubuntu", "18.04", D,
                           "docker.io/library/ubuntu:18.04@" + D, "ubuntu:18.04@" + D)),
    ("bitnami/redis", ("docker.io", "bitnami/redis", "latest", None,
                       "docker.io/bitnami/redis:latest", "bitnami/redis:latest")),
    ("127.0.0.1:5000/x", ("127.0.0.1:5000", "x", "latest", None,
                          "127.0.0.1:5000/x:latest", "127.0.0.1:5000/x:latest")),
    # "host" has no "." or ":": it is a Hub namespace, not a registry.
    ("host/x:t@" + D, ("docker.io", "host/x", "t", D, "docker.io/host/x:t@" + D, "host/x:t@" + D)),
    ("host.example/x:t@" + D, other("host.example", "x", "t", D)),
    # --- normalize_test.go: TestValidateReferenceName (valid)
    ("docker/docker", hub("docker/docker")),
    ("library/debian", hub("library/debian")),
    ("debian", hub("library/debian")),
    ("localhost/library/debian", other("localhost", "library/debian")),
    ("localhost/debian", other("localhost", "debian")),
    ("LOCALDOMAIN/library/debian", other("LOCALDOMAIN", "library/debian")),
    ("LOCALDOMAIN/debian", other("LOCALDOMAIN", "debian")),
    ("docker.io/docker/docker", hub("docker/docker")),
    ("docker.io/library/debian", hub("library/debian")),
    ("docker.io/debian", hub("library/debian")),
    ("index.docker.io/docker/docker", hub("docker/docker")),
    ("index.docker.io/library/debian", hub("library/debian")),
    ("index.docker.io/debian", hub("library/debian")),
    ("127.0.0.1:5000/docker/docker", other("127.0.0.1:5000", "docker/docker")),
    ("127.0.0.1:5000/library/debian", other("127.0.0.1:5000", "library/debian")),
    ("127.0.0.1:5000/debian", other("127.0.0.1:5000", "debian")),
    ("192.168.0.1", hub("library/192.168.0.1")),
    ("192.168.0.1:80", hub("library/192.168.0.1", "80")),
    ("192.168.0.1:8/debian", other("192.168.0.1:8", "debian")),
    ("192.168.0.2:25000/debian", other("192.168.0.2:25000", "debian")),
    (SONG, hub("library/" + SONG)),
    ("[fc00::1]:5000/docker", other("[fc00::1]:5000", "docker")),
    ("[fc00::1]:5000/docker/docker", other("[fc00::1]:5000", "docker/docker")),
    ("[fc00:1:2:3:4:5:6:7]:5000/library/debian", other("[fc00:1:2:3:4:5:6:7]:5000", "library/debian")),
    ("docker.io/" + HEX64, hub("library/" + HEX64)),
    ("Docker/docker", other("Docker", "docker")),
    ("DOCKER/docker", other("DOCKER", "docker")),
    # --- normalize_test.go: TestValidateRemoteName (valid)
    ("docker-rules/docker", hub("docker-rules/docker")),
    ("docker---rules/docker", hub("docker---rules/docker")),
    ("doc/docker", hub("doc/docker")),
    ("d/docker", hub("d/docker")),
    ("jess/t", hub("jess/t")),
    ("dock__er/docker", hub("dock__er/docker")),
    # --- normalize_test.go: TestParseRepositoryInfo
    ("localhost/fooo", other("localhost", "fooo")),
    ("localhost/fooo/bar", other("localhost", "fooo/bar")),
    ("LOCALDOMAIN/fooo/bar", other("LOCALDOMAIN", "fooo/bar")),
    ("fooo/bar", hub("fooo/bar")),
    ("index.docker.io/fooo/bar", hub("fooo/bar")),
    ("library/ubuntu", hub("library/ubuntu")),
    ("nonlibrary/ubuntu", hub("nonlibrary/ubuntu")),
    ("other/library", hub("other/library")),
    ("127.0.0.1:8000/private/moonbase", other("127.0.0.1:8000", "private/moonbase")),
    ("127.0.0.1:8000/privatebase", other("127.0.0.1:8000", "privatebase")),
    ("example.com/private/moonbase", other("example.com", "private/moonbase")),
    ("example.com/privatebase", other("example.com", "privatebase")),
    ("example.com:8000/private/moonbase", other("example.com:8000", "private/moonbase")),
    ("example.com:8000/privatebasee", other("example.com:8000", "privatebasee")),
    ("ubuntu-12.04-base", hub("library/ubuntu-12.04-base")),
    ("index.docker.io/library/ubuntu-12.04-base", hub("library/ubuntu-12.04-base")),
    ("docker.io/foo", hub("library/foo")),
    ("library/foo/bar", hub("library/foo/bar", familiar="library/foo/bar")),
    ("docker.io/library/foo/bar", hub("library/foo/bar", familiar="library/foo/bar")),
    ("store/foo/bar", hub("store/foo/bar")),
    ("Foo/bar", other("Foo", "bar")),
    ("FOO/bar", other("FOO", "bar")),
    # --- normalize_test.go: TestParseReferenceWithTagAndDigest / ParseAnyReference / ParseDockerRef
    ("busybox:latest@" + D2, hub("library/busybox", "latest", D2)),
    ("redis", hub("library/redis")),
    ("redis:latest", hub("library/redis")),
    ("docker.io/library/redis:latest", hub("library/redis")),
    ("redis@" + D3, hub("library/redis", None, D3)),
    ("docker.io/library/redis@" + D3, hub("library/redis", None, D3)),
    ("dmcgowan/myapp", hub("dmcgowan/myapp")),
    ("dmcgowan/myapp@" + D3, hub("dmcgowan/myapp", None, D3)),
    ("docker.io/mcgowan/myapp:latest", hub("mcgowan/myapp")),
    (HEX64[:-1], hub("library/" + HEX64[:-1])),  # 63 hex: just a name
    ("dbcc1", hub("library/dbcc1")),
    ("gcr.io/library/busybox", other("gcr.io", "library/busybox")),
    ("gcr.io/library/busybox:latest@" + D3, other("gcr.io", "library/busybox", "latest", D3)),
    ("test_com/foo", hub("test_com/foo")),
    ("docker/migrator", hub("docker/migrator")),
    ("test-com:8080/foo", other("test-com:8080", "foo")),
    ("xn--n3h.com:18080/foo", other("xn--n3h.com:18080", "foo")),
    # --- reference_test.go: TestReferenceParse (valid), normalised
    ("test_com", hub("library/test_com")),
    ("test.com:tag", hub("library/test.com", "tag")),
    ("test.com:5000", hub("library/test.com", "5000")),
    ("test.com/repo:tag", other("test.com", "repo", "tag")),
    ("test:5000/repo", other("test:5000", "repo")),
    ("test:5000/repo:tag", other("test:5000", "repo", "tag")),
    ("test:5000/repo@" + D, other("test:5000", "repo", None, D)),
    ("test:5000/repo:tag@" + D, other("test:5000", "repo", "tag", D)),
    ("lowercase:Uppercase", hub("library/lowercase", "Uppercase")),
    ("a/" * 127 + "a:tag-puts-this-over-max", hub("a/" * 127 + "a", "tag-puts-this-over-max")),
    ("sub-dom1.foo.com/bar/baz/quux", other("sub-dom1.foo.com", "bar/baz/quux")),
    ("sub-dom1.foo.com/bar/baz/quux:some-long-tag", other("sub-dom1.foo.com", "bar/baz/quux", "some-long-tag")),
    ("b.gcr.io/test.example.com/my-app:test.example.com",
     other("b.gcr.io", "test.example.com/my-app", "test.example.com")),
    ("xn--n3h.com/myimage:xn--n3h.com", other("xn--n3h.com", "myimage", "xn--n3h.com")),
    ("xn--7o8h.com/myimage:xn--7o8h.com@" + D, other("xn--7o8h.com", "myimage", "xn--7o8h.com", D)),
    ("foo_bar.com:8080", hub("library/foo_bar.com", "8080")),
    ("foo/foo_bar.com:8080", hub("foo/foo_bar.com", "8080")),
    ("192.168.1.1", hub("library/192.168.1.1")),
    ("192.168.1.1:tag", hub("library/192.168.1.1", "tag")),
    ("192.168.1.1:5000", hub("library/192.168.1.1", "5000")),
    ("192.168.1.1/repo", other("192.168.1.1", "repo")),
    ("192.168.1.1:5000/repo", other("192.168.1.1:5000", "repo")),
    ("192.168.1.1:5000/repo:5050", other("192.168.1.1:5000", "repo", "5050")),
    ("[2001:db8::1]/repo", other("[2001:db8::1]", "repo")),
    ("[2001:db8:1:2:3:4:5:6]/repo:tag", other("[2001:db8:1:2:3:4:5:6]", "repo", "tag")),
    ("[2001:db8::1]:5000/repo", other("[2001:db8::1]:5000", "repo")),
    ("[2001:db8::1]:5000/repo:tag", other("[2001:db8::1]:5000", "repo", "tag")),
    ("[2001:db8::1]:5000/repo@" + D, other("[2001:db8::1]:5000", "repo", None, D)),
    ("[2001:db8::1]:5000/repo:tag@" + D, other("[2001:db8::1]:5000", "repo", "tag", D)),
    ("[2001:db8::]:5000/repo", other("[2001:db8::]:5000", "repo")),
    ("[::1]:5000/repo", other("[::1]:5000", "repo")),
    ("[::1]/x", other("[::1]", "x")),
    ("[::1]:5000/x", other("[::1]:5000", "x")),
    ("example.com/" + "a" * 255 + ":tag", other("example.com", "a" * 255, "tag")),
    # --- more: localhost, ports, Hub hosts, separators, limits
    ("localhost/x", other("localhost", "x")),
    ("localhost:5000/x", other("localhost:5000", "x")),
    ("localhost:5000/team/app:v1", other("localhost:5000", "team/app", "v1")),
    ("localhost", hub("library/localhost")),  # bare name: Hub, as docker does
    ("localhost:5000", hub("library/localhost", "5000")),
    ("docker.io", hub("library/docker.io")),
    ("ghcr.io/team/app:v1.2.3", other("ghcr.io", "team/app", "v1.2.3")),
    ("registry-1.docker.io/library/ubuntu", other("registry-1.docker.io", "library/ubuntu")),
    ("Docker.io/foo", other("Docker.io", "foo")),  # domains keep their case, no Hub magic
    ("EXAMPLE.COM:443/x", other("EXAMPLE.COM:443", "x")),
    ("a__b", hub("library/a__b")),
    ("a-----b", hub("library/a-----b")),
    ("a.b_c-d", hub("library/a.b_c-d")),
    ("a_b/c.d/e__f/g--h", hub("a_b/c.d/e__f/g--h")),
    ("0", hub("library/0")),
    ("a" * 247, hub("library/" + "a" * 247)),  # path is exactly 255
    ("x.io/" + "a" * 255, other("x.io", "a" * 255)),
    ("x.io/" + "/".join(["ab"] * 85), other("x.io", "/".join(["ab"] * 85))),  # 254 chars
    ("ubuntu:" + "a" * 128, hub("library/ubuntu", "a" * 128)),
    ("ubuntu:_", hub("library/ubuntu", "_")),
    ("ubuntu:A.b-C_d", hub("library/ubuntu", "A.b-C_d")),
    ("ubuntu@" + D512, hub("library/ubuntu", None, D512)),
    ("ubuntu:t@" + D512, hub("library/ubuntu", "t", D512)),
    (HEX64 + ":tag", hub("library/" + HEX64, "tag")),  # only the bare 64-hex name is refused
    ("sha256:" + HEX64, hub("library/sha256", HEX64)),  # docker reads it as name:tag
    ("1.2.3.4:5/a/b/c:d", other("1.2.3.4:5", "a/b/c", "d")),
]

# input -> exact message
INVALID: list[tuple[str, str]] = [
    # --- empty and punctuation
    ("", MSG_FORMAT),
    (":", MSG_FORMAT),
    ("::", MSG_FORMAT),
    ("/", MSG_FORMAT),
    ("@", MSG_FORMAT),
    (":justtag", MSG_FORMAT),
    ("@" + D, MSG_FORMAT),
    ("ubuntu:", MSG_FORMAT),
    ("ubuntu@", MSG_FORMAT),
    ("ubuntu:@" + D, MSG_FORMAT),
    ("ubuntu:tag@", MSG_FORMAT),
    ("ubuntu::tag", MSG_FORMAT),
    ("ubuntu:tag:tag", MSG_FORMAT),
    ("ubuntu@" + D + "@" + D, MSG_FORMAT),
    ("ubuntu@" + D + ":tag", MSG_FORMAT),
    # --- slashes and separators
    ("docker///docker", MSG_FORMAT),
    ("docker//docker", MSG_FORMAT),
    ("docker.io/docker///docker", MSG_FORMAT),
    ("/docker", MSG_FORMAT),
    ("docker/", MSG_FORMAT),
    ("x.io/", MSG_FORMAT),
    ("x.io//a", MSG_FORMAT),
    ("a/b/", MSG_FORMAT),
    ("-docker", MSG_FORMAT),
    ("-docker/docker", MSG_FORMAT),
    ("-docker.io/docker/docker", MSG_FORMAT),
    ("docker-/docker", MSG_FORMAT),
    ("-docker-/docker", MSG_FORMAT),
    ("docker.io/-x", MSG_FORMAT),
    ("____/____", MSG_FORMAT),
    ("_docker/_docker", MSG_FORMAT),
    ("dock..er/docker", MSG_FORMAT),
    ("dock_.er/docker", MSG_FORMAT),
    ("dock-.er/docker", MSG_FORMAT),
    ("a___b", MSG_FORMAT),
    ("a..b", MSG_FORMAT),
    ("a.", MSG_FORMAT),
    (".a", MSG_FORMAT),
    ("a_", MSG_FORMAT),
    ("_a", MSG_FORMAT),
    ("a-", MSG_FORMAT),
    ("aa/asdf$$^/aa", MSG_FORMAT),
    ("https://github.com/docker/docker", MSG_FORMAT),
    ("ubuntu latest", MSG_FORMAT),
    (" ubuntu", MSG_FORMAT),
    ("ubuntu ", MSG_FORMAT),
    ("ubuntu\n", MSG_FORMAT),
    ("ubuntu:latest\n", MSG_FORMAT),
    ("ub\u00fcntu", MSG_FORMAT),
    ("ubuntu:lat\u0435st", MSG_FORMAT),  # Cyrillic e in the tag
    ("ubuntu:\u0661\u0662", MSG_FORMAT),  # Arabic-Indic digits are not \w here
    # --- tags
    ("ubuntu:-tag", MSG_FORMAT),
    ("ubuntu:.tag", MSG_FORMAT),
    ("ubuntu:" + "a" * 129, MSG_FORMAT),
    ("ubuntu:a/b", MSG_FORMAT),
    ("ubuntu:a+b", MSG_FORMAT),
    # --- domains and IPv6
    ("[2001:db8::1]", MSG_FORMAT),
    ("[2001:db8::1]:5000", MSG_FORMAT),
    ("[2001:db8::1]:tag", MSG_FORMAT),
    ("[fc00::1]", MSG_FORMAT),
    ("[fc00::1]:5000", MSG_FORMAT),
    ("[::1]", MSG_FORMAT),
    ("fc00::1:5000/debian", MSG_FORMAT),
    ("[fe80::1%eth0]:5000/debian", MSG_FORMAT),
    ("[fe80::1%@invalidzone]:5000/repo", MSG_FORMAT),
    ("[2001:db8:3:4::192.0.2.33]:5000/debian", MSG_FORMAT),
    ("[::1/x", MSG_FORMAT),
    ("localhost:abc/x", MSG_FORMAT),
    ("localhost:/x", MSG_FORMAT),
    ("a.b:5000:6000/x", MSG_FORMAT),
    ("-a.com/x", MSG_FORMAT),
    ("a-.com/x", MSG_FORMAT),
    ("a..com/x", MSG_FORMAT),
    ("foo_bar:5000/x", MSG_FORMAT),
    # distribution would give these an *empty* domain; imgctl refuses them.
    ("foo_bar.com/x", MSG_FORMAT),
    ("a_b.c/d:e", MSG_FORMAT),
    # --- uppercase (docker's message names the normalised path)
    ("Foo", lower_msg("library/Foo")),
    ("Uppercase:tag", lower_msg("library/Uppercase")),
    ("UBUNTU:18.04", lower_msg("library/UBUNTU")),
    ("docker/Docker", lower_msg("docker/Docker")),
    ("docker.io/docker/Docker", lower_msg("docker/Docker")),
    ("docker.io/Foo", lower_msg("library/Foo")),
    ("index.docker.io/Foo/bar", lower_msg("Foo/bar")),
    ("test:5000/Uppercase/lowercase:tag", lower_msg("Uppercase/lowercase")),
    ("localhost/Foo", lower_msg("Foo")),
    ("Foo/Bar", lower_msg("Bar")),
    ("\u00dcBUNTU", lower_msg("library/\u00dcBUNTU")),
    ("ubuntu@SHA256:" + F64, lower_msg("library/ubuntu@SHA256")),  # docker's quirk, kept
    ("Foo_bar/baz", "repository name must be lowercase"),  # from distribution's Parse
    (HEX64.upper(), lower_msg("library/" + HEX64.upper())),
    # --- 64-byte hex names
    (HEX64, hex_msg(HEX64)),
    (F64, hex_msg(F64)),
    # --- length (the path, after normalisation, at most 255)
    ("domain/" + "a" * 256 + ":tag", MSG_LONG),
    ("example.com/" + "a" * 256, MSG_LONG),
    ("example.com/" + "a" * 256 + ":tag", MSG_LONG),
    ("a" * 248, MSG_LONG),  # library/ + 248 = 256
    ("docker.io/" + "a" * 248, MSG_LONG),
    ("a/" * 127 + "aa", MSG_LONG),
    (LONGNS, MSG_LONG),
    # --- digests
    ("ubuntu@sha256:abc", MSG_FORMAT),  # fewer than 32 hex: grammar error
    ("ubuntu@sha256:" + "f" * 31, MSG_FORMAT),
    ("ubuntu@sha256:../../etc/passwd", MSG_FORMAT),
    ("ubuntu@sha256:" + "g" * 64, MSG_FORMAT),
    ("ubuntu@" + F64, MSG_FORMAT),
    ("ubuntu@sha256" + F64, MSG_FORMAT),
    ("ubuntu@:" + F64, MSG_FORMAT),
    ("repo@sha256:" + "f" * 34, "invalid checksum digest length"),
    ("ubuntu@sha256:" + "f" * 63, "invalid checksum digest length"),
    ("ubuntu@sha256:" + "f" * 65, "invalid checksum digest length"),
    ("ubuntu@sha512:" + F64, "invalid checksum digest length"),
    ("ubuntu@sha256:" + "F" * 64, "invalid checksum digest format"),
    ("ubuntu:t@sha256:" + "A" + "f" * 63, "invalid checksum digest format"),
    ("ubuntu:t@INVALID:" + F64, "invalid checksum digest format"),
    ("validname@invaliddigest:" + F64, "unsupported digest algorithm"),
    ("ubuntu@sha384:" + "f" * 96, "unsupported digest algorithm"),
    ("ubuntu@md5:" + "f" * 32, "unsupported digest algorithm"),
    ("ubuntu@sha256+b64:" + F64, "unsupported digest algorithm"),
]


def _id(value: str) -> str:
    return value if len(value) <= 60 else value[:40] + f"...({len(value)})"


@pytest.mark.parametrize(("text", "expected"), VALID, ids=[_id(v[0]) for v in VALID])
def test_parse_valid(text, expected):
    domain, path, tag, digest, full, familiar = expected
    ref = parse(text)
    assert (ref.domain, ref.path, ref.tag, ref.digest) == (domain, path, tag, digest)
    assert str(ref) == full
    assert ref.familiar() == familiar
    assert ref.repository == f"{domain}/{path}"
    # The fully qualified and the familiar forms both parse back to the same value.
    assert parse(str(ref)) == ref
    assert parse(ref.familiar()) == ref


@pytest.mark.parametrize(("text", "message"), INVALID, ids=[_id(v[0]) for v in INVALID])
def test_parse_invalid(text, message):
    with pytest.raises(InvalidReference) as info:
        parse(text)
    assert str(info.value) == message
    assert info.value.message == message
    assert isinstance(info.value, ImgctlError)


def test_tables_are_big_and_unique():
    assert len(VALID) >= 100 and len(INVALID) >= 100
    assert len({v[0] for v in VALID}) == len(VALID)
    assert len({v[0] for v in INVALID}) == len(INVALID)


@pytest.mark.parametrize("value", [None, 5, b"ubuntu", ["ubuntu"]])
def test_parse_non_string(value):
    with pytest.raises(InvalidReference, match="^invalid reference format$"):
        parse(value)


def test_constants():
    assert DEFAULT_DOMAIN == "docker.io"
    assert LEGACY_DEFAULT_DOMAIN == "index.docker.io"
    assert OFFICIAL_REPO_PREFIX == "library/"
    assert DEFAULT_TAG == "latest"


# --------------------------------------------------------------------------
# default_tag, parse_repository


@pytest.mark.parametrize(
    ("text", "tag"),
    [
        ("ubuntu", None),
        ("ubuntu:18.04", "18.04"),
        ("ubuntu@" + D, None),
        ("ubuntu:latest@" + D, "latest"),
        ("localhost:5000/x", None),
    ],
)
def test_parse_without_default_tag(text, tag):
    assert parse(text, default_tag=False).tag == tag


def test_digest_only_gets_no_default_tag():
    ref = parse("ubuntu@" + D)
    assert ref.tag is None and ref.digest == D
    assert str(ref) == "docker.io/library/ubuntu@" + D


@pytest.mark.parametrize(
    ("text", "domain", "path", "familiar"),
    [
        ("ubuntu", "docker.io", "library/ubuntu", "ubuntu"),
        ("library/ubuntu", "docker.io", "library/ubuntu", "ubuntu"),
        ("index.docker.io/ubuntu", "docker.io", "library/ubuntu", "ubuntu"),
        ("bitnami/redis", "docker.io", "bitnami/redis", "bitnami/redis"),
        ("127.0.0.1:5000/team/app", "127.0.0.1:5000", "team/app", "127.0.0.1:5000/team/app"),
        ("[::1]:5000/x", "[::1]:5000", "x", "[::1]:5000/x"),
        ("localhost/x", "localhost", "x", "localhost/x"),
        ("docker.io/" + HEX64, "docker.io", "library/" + HEX64, HEX64),
    ],
)
def test_parse_repository_valid(text, domain, path, familiar):
    ref = parse_repository(text)
    assert ref == Reference(domain, path)
    assert ref.tag is None and ref.digest is None
    assert ref.familiar() == familiar == ref.familiar_repository
    assert str(ref) == f"{domain}/{path}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("ubuntu:18.04", MSG_FORMAT),
        ("ubuntu:latest", MSG_FORMAT),
        ("ubuntu@" + D, MSG_FORMAT),
        ("ubuntu:t@" + D, MSG_FORMAT),
        ("localhost:5000", MSG_FORMAT),  # a Hub name with tag 5000
        ("", MSG_FORMAT),
        ("Foo", lower_msg("library/Foo")),
        (HEX64, hex_msg(HEX64)),
        ("a" * 248, MSG_LONG),
    ],
)
def test_parse_repository_invalid(text, message):
    with pytest.raises(InvalidReference) as info:
        parse_repository(text)
    assert str(info.value) == message


# --------------------------------------------------------------------------
# The Reference value


def test_reference_properties_and_str():
    ref = Reference("docker.io", "library/ubuntu", "18.04")
    assert ref.repository == "docker.io/library/ubuntu"
    assert ref.familiar_repository == "ubuntu"
    assert str(ref) == "docker.io/library/ubuntu:18.04"
    assert ref.familiar() == "ubuntu:18.04"
    assert Reference("docker.io", "bitnami/redis").familiar_repository == "bitnami/redis"
    assert Reference("docker.io", "library/a/b").familiar_repository == "library/a/b"
    assert Reference("docker.io", "ubuntu").familiar_repository == "ubuntu"
    assert Reference("127.0.0.1:5000", "x").familiar_repository == "127.0.0.1:5000/x"
    assert Reference("ghcr.io", "library/x").familiar_repository == "ghcr.io/library/x"
    both = Reference("host.io", "x", "t", D)
    assert str(both) == "host.io/x:t@" + D == both.familiar()


def test_reference_is_frozen_hashable_slotted():
    ref = parse("ubuntu:18.04")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ref.tag = "x"  # type: ignore[misc]
    assert not hasattr(ref, "__dict__")
    assert hash(ref) == hash(parse("docker.io/library/ubuntu:18.04"))
    assert {ref, parse("index.docker.io/ubuntu:18.04")} == {ref}
    assert ref != parse("ubuntu:18.10")


def test_with_tag_and_with_digest():
    ref = parse("ubuntu:18.04")
    assert ref.with_tag("20.04") == Reference("docker.io", "library/ubuntu", "20.04")
    with_d = ref.with_digest(D)
    assert with_d == Reference("docker.io", "library/ubuntu", "18.04", D)
    assert str(with_d) == "docker.io/library/ubuntu:18.04@" + D
    assert with_d.with_tag("x") == Reference("docker.io", "library/ubuntu", "x", D)
    assert with_d.with_digest(D512).digest == D512
    assert parse("ubuntu@" + D).with_tag("t").digest == D
    assert ref.tag == "18.04"  # original untouched


@pytest.mark.parametrize("tag", ["", "-x", ".x", "a" * 129, "a/b", "a:b", "a@b", "\u00e9", None, 1])
def test_with_tag_invalid(tag):
    with pytest.raises(InvalidReference, match="^invalid tag format$"):
        parse("ubuntu").with_tag(tag)


@pytest.mark.parametrize(
    "digest", ["", "foo", "sha256:../../etc/passwd", "sha256:" + "F" * 64, "sha384:" + "f" * 96, None]
)
def test_with_digest_invalid(digest):
    with pytest.raises(InvalidReference, match="^invalid digest "):
        parse("ubuntu").with_digest(digest)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"domain": "", "path": "x"}, MSG_FORMAT),
        ({"domain": "a/b", "path": "x"}, MSG_FORMAT),
        ({"domain": "a_b", "path": "x"}, MSG_FORMAT),
        ({"domain": "docker.io", "path": ""}, MSG_FORMAT),
        ({"domain": "docker.io", "path": "a//b"}, MSG_FORMAT),
        ({"domain": "docker.io", "path": "../x"}, MSG_FORMAT),
        ({"domain": "docker.io", "path": "Foo"}, "repository name must be lowercase"),
        ({"domain": "docker.io", "path": "a" * 256}, MSG_LONG),
        ({"domain": "docker.io", "path": "x", "tag": "-x"}, "invalid tag format"),
        ({"domain": "docker.io", "path": "x", "tag": ""}, "invalid tag format"),
        ({"domain": "docker.io", "path": "x", "digest": "sha256:../../etc/passwd"},
         "invalid digest 'sha256:../../etc/passwd': invalid checksum digest length"),
        ({"domain": None, "path": "x"}, MSG_FORMAT),
    ],
)
def test_reference_constructor_validates(kwargs, message):
    with pytest.raises(InvalidReference) as info:
        Reference(**kwargs)
    assert str(info.value) == message


# --------------------------------------------------------------------------
# Digests, tags, image IDs

VALID_DIGESTS = [
    D,
    D2,
    D3,
    D512,
    "sha256:" + "0" * 64,
    "sha512:" + "a" * 128,
]

INVALID_DIGESTS = [
    ("sha256:../../etc/passwd", "invalid checksum digest length"),
    ("sha256:../../" + "a" * 58, "invalid checksum digest format"),
    ("sha256:" + "a" * 60 + "/../", "invalid checksum digest format"),
    ("sha256:" + "F" * 64, "invalid checksum digest format"),
    ("sha256:" + "A" + "f" * 63, "invalid checksum digest format"),
    ("sha256:" + "f" * 63, "invalid checksum digest length"),
    ("sha256:" + "f" * 65, "invalid checksum digest length"),
    ("sha256:" + "f" * 128, "invalid checksum digest length"),
    ("sha512:" + "f" * 64, "invalid checksum digest length"),
    ("sha256:" + "g" * 64, "invalid checksum digest format"),
    ("sha256:" + "f" * 63 + "\n", "invalid checksum digest format"),
    (D + "\n", "invalid checksum digest length"),
    (" " + D, "invalid checksum digest format"),
    ("sha256:" + "\uff10" * 64, "invalid checksum digest format"),  # fullwidth digits
    ("SHA256:" + F64, "invalid checksum digest format"),
    ("sha384:" + "f" * 96, "unsupported digest algorithm"),
    ("md5:" + "f" * 32, "unsupported digest algorithm"),
    ("sha256+b64:" + F64, "unsupported digest algorithm"),
    ("sha256", "invalid checksum digest format"),
    ("sha256:", "invalid checksum digest format"),
    (":" + F64, "invalid checksum digest format"),
    ("", "invalid checksum digest format"),
    (F64, "invalid checksum digest format"),
    ("sha256:" + F64 + ":x", "invalid checksum digest length"),
]


@pytest.mark.parametrize("digest", VALID_DIGESTS)
def test_validate_digest_valid(digest):
    assert validate_digest(digest) is digest
    assert is_valid_digest(digest)
    assert DIGEST_RE.match(digest)
    assert DIGEST_RE.fullmatch(digest)


@pytest.mark.parametrize(("digest", "reason"), INVALID_DIGESTS, ids=[repr(v[0])[:50] for v in INVALID_DIGESTS])
def test_validate_digest_invalid(digest, reason):
    with pytest.raises(InvalidReference) as info:
        validate_digest(digest)
    assert str(info.value) == f"invalid digest {digest!r}: {reason}"
    assert not is_valid_digest(digest)
    assert DIGEST_RE.match(digest) is None
    assert DIGEST_RE.search(digest) is None


@pytest.mark.parametrize("value", [None, 1, b"sha256:" + F64.encode(), ["sha256", F64]])
def test_validate_digest_non_string(value):
    with pytest.raises(InvalidReference, match="^invalid digest "):
        validate_digest(value)
    assert not is_valid_digest(value)


def test_validate_digest_long_input_message_is_bounded():
    with pytest.raises(InvalidReference) as info:
        validate_digest("sha256:" + "f" * 100_000)
    assert len(str(info.value)) < 300


@pytest.mark.parametrize(
    "tag",
    ["latest", "18.04", "_", "A", "0", "a" * 128, "v1.0-rc_1", "x--y..z__", "UPPER"],
)
def test_is_valid_tag_true(tag):
    assert is_valid_tag(tag)


@pytest.mark.parametrize(
    "tag",
    ["", "-a", ".a", "a" * 129, "a/b", "a:b", "a@b", "a b", "a\n", "\u00e9", "lat\u0435st", "\u0661", None, 5, b"latest"],
)
def test_is_valid_tag_false(tag):
    assert not is_valid_tag(tag)


@pytest.mark.parametrize("value", [HEX64, F64, "sha256:" + HEX64, "0" * 64])
def test_looks_like_image_id_true(value):
    assert looks_like_image_id(value)


@pytest.mark.parametrize(
    "value",
    [
        HEX64.upper(),
        HEX64[:-1],
        HEX64 + "0",
        HEX64[:12],
        "sha256:" + HEX64[:-1],
        "sha512:" + "f" * 128,
        "sha256:" + HEX64.upper(),
        HEX64 + "\n",
        "ubuntu",
        "",
        "sha256:",
        None,
        64,
    ],
)
def test_looks_like_image_id_false(value):
    assert not looks_like_image_id(value)


# --------------------------------------------------------------------------
# Robustness: pathological inputs fail fast (no catastrophic backtracking).


@pytest.mark.parametrize(
    "text",
    [
        "a" * 50_000 + "!",
        "a-" * 25_000 + "!",
        "a/" * 25_000 + "!",
        "a.b/" + "a1-" * 20_000 + "a:!",
        "a.b/x@" + "a." * 20_000 + ":" + "f" * 40,
        "[" + ":" * 50_000,
    ],
    ids=lambda t: f"len{len(t)}",
)
def test_pathological_inputs_fail(text):
    with pytest.raises(InvalidReference):
        parse(text)
