"""The image model: documents imgctl refuses, and platform matching."""

from __future__ import annotations

import json

import pytest

from imgctl.errors import PlatformNotFound, UnsupportedManifest, UsageError
from imgctl.oci import Descriptor, Index, Platform, choose_manifest, parse_document, parse_platform

D = "sha256:" + "a" * 64


def doc(**kw) -> bytes:
    return json.dumps({"schemaVersion": 2, **kw}).encode()


def test_schema1_refused_by_content_type_and_by_body():
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_document(b"{}", "application/vnd.docker.distribution.manifest.v1+prettyjws")
    with pytest.raises(UnsupportedManifest, match="schema 1"):
        parse_document(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), "application/json")


def test_ambiguous_document_refused():
    body = doc(
        manifests=[{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": D, "size": 1}],
        layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": D, "size": 1}],
    )
    with pytest.raises(UnsupportedManifest, match="both 'manifests' and 'layers'"):
        parse_document(body)


@pytest.mark.parametrize("bad", ["sha256:../../etc/passwd", "sha256:" + "A" * 64, "md5:abc", 42])
def test_invalid_descriptor_digests(bad):
    body = doc(
        mediaType="application/vnd.oci.image.manifest.v1+json",
        config={"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D, "size": 2},
        layers=[{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": bad, "size": 1}],
    )
    with pytest.raises(UnsupportedManifest, match="invalid digest"):
        parse_document(body)


def test_media_type_must_agree_with_content_type():
    body = doc(mediaType="application/vnd.oci.image.index.v1+json", manifests=[])
    with pytest.raises(UnsupportedManifest, match="does not match Content-Type"):
        parse_document(body, "application/vnd.oci.image.manifest.v1+json")
    assert isinstance(parse_document(body, "application/vnd.oci.image.index.v1+json"), Index)


def test_not_json():
    with pytest.raises(UnsupportedManifest, match="not valid JSON"):
        parse_document(b"\xff\xfe garbage")


@pytest.mark.parametrize(
    "text,expected",
    [
        ("linux/amd64", Platform("linux", "amd64")),
        ("linux/arm64", Platform("linux", "arm64", "v8")),
        ("linux/arm", Platform("linux", "arm", "v7")),
        ("linux/arm/6", Platform("linux", "arm", "v6")),
        ("linux/x86_64", Platform("linux", "amd64")),
        ("windows/amd64", Platform("windows", "amd64")),
    ],
)
def test_parse_platform(text, expected):
    assert parse_platform(text) == expected


@pytest.mark.parametrize("text", ["linux", "linux/", "/amd64", "a/b/c/d", ""])
def test_parse_platform_errors(text):
    with pytest.raises(UsageError):
        parse_platform(text)


def _index(*plats):
    return Index(
        "application/vnd.oci.image.index.v1+json",
        tuple(
            Descriptor("application/vnd.oci.image.manifest.v1+json", "sha256:" + f"{i:064x}", 10, p)
            for i, p in enumerate(plats)
        ),
    )


def test_choose_manifest_variants_and_attestations():
    idx = _index(
        Platform("linux", "amd64"),
        Platform("linux", "arm", "v6"),
        Platform("linux", "arm", "v7"),
        Platform("linux", "arm64"),
        Platform("unknown", "unknown"),
    )
    assert choose_manifest(idx, parse_platform("linux/arm64")).platform.architecture == "arm64"
    assert choose_manifest(idx, parse_platform("linux/arm/v6")).platform.variant == "v6"
    assert choose_manifest(idx, parse_platform("linux/arm")).platform.variant == "v7"
    with pytest.raises(PlatformNotFound, match=r"^no matching manifest for linux/s390x in the manifest list entries$"):
        choose_manifest(idx, parse_platform("linux/s390x"))
    with pytest.raises(PlatformNotFound):
        choose_manifest(idx, Platform("unknown", "unknown"))
