"""The registry package's seams (issue 12): a blob fetch writes into a sink, retries and
progress are typed events."""

from __future__ import annotations

from tests.support.images import make_image, make_layer, push_image

from imgctl.config import Config
from imgctl.events import Event, Kind, Retry
from imgctl.oci import Descriptor
from imgctl.registry import RegistryClient
from imgctl.store import Store


def test_store_blob_writer_is_a_blob_sink(registry, unique_repo, tmp_path):
    layer = make_layer({"etc/motd": b"sink\n" * 1000}, "gzip")
    img = make_image([layer])
    push_image(registry.url, unique_repo, img, tag="v1")
    store = Store(tmp_path / "root")
    writer = store.writer(layer.digest, layer.size)
    with RegistryClient(Config()) as client:
        client.fetch_blob(registry.host, unique_repo, Descriptor("", layer.digest, layer.size), writer)
    assert writer.written == layer.size and f"sha256:{writer.hexdigest()}" == layer.digest
    writer.commit()
    assert store.read_blob(layer.digest, layer.size) == layer.data


def test_retry_event_names_its_layer_and_attempt():
    digest = "sha256:" + "ab" * 32
    retry = Retry(f"blob {digest}", 0.5, digest, attempt=2)
    assert (retry.layer, retry.attempt, retry.delay) == ("abababababab", 2, 0.5)
    assert retry.event() == Event(Kind.RETRYING, "abababababab", text="Retrying in 0.5 seconds")
    assert Retry("token from auth.example", 1.0).event() == Event(Kind.RETRYING, "", text="Retrying in 1 second")
    assert retry == Retry(f"blob {digest}", 0.5, digest)  # which attempt does not make another retry


def test_event_kinds_are_their_names():
    assert Kind.PULLING == "pulling" and Kind("pushed_manifest") is Kind.PUSHED_MANIFEST
