"""Transient failures are retried with backoff (each retry visible); permanent ones are not."""

from __future__ import annotations

import pytest
from tests.support.cli import run
from tests.support.flakyrelay import FlakyRelay
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, image_ids


@pytest.fixture
def image(registry, unique_repo):
    img = make_image([make_layer({"f": b"retry me" * 5000}, "gzip")])
    push_image(registry.url, unique_repo, img, tag="t")
    return unique_repo, img


def relay_for(registry, **kw) -> FlakyRelay:
    return FlakyRelay(registry.url, **kw)


@pytest.mark.parametrize("how,retry_after", [("503", None), ("429", "0"), ("502", None), ("drop", None)])
def test_blob_retried_then_succeeds(registry, image, store_root, cfg_file, how, retry_after):
    cfg_file.write_text("retry-delay = 0.01\n")
    repo, img = image
    relay = relay_for(registry, match=img.layers[0].digest, failures=2, how=how, retry_after=retry_after)
    try:
        r = run("pull", f"{relay.host}/{repo}:t")
    finally:
        relay.close()
    assert r.code == 0, r.err
    short = img.layers[0].digest[7:19]
    retries = [l for l in r.lines if "Retrying in" in l]
    assert len(retries) == 2 and all(l.startswith(f"{short}: Retrying in ") for l in retries)
    if retry_after == "0":
        assert retries[0] == f"{short}: Retrying in 0 seconds"  # Retry-After is honoured
    assert image_ids(store_root) == {img.config_digest}
    assert_store_verifies(store_root)


def test_manifest_503_retried(registry, image, store_root, cfg_file):
    cfg_file.write_text("retry-delay = 0.01\n")
    repo, img = image
    relay = relay_for(registry, match="/manifests/", failures=1, how="503", retry_after="0")
    try:
        r = run("pull", f"{relay.host}/{repo}:t")
    finally:
        relay.close()
    assert r.code == 0, r.err
    assert "Retrying in 0 seconds" in r.lines


def test_attempts_are_bounded(registry, image, store_root, cfg_file):
    cfg_file.write_text("retry-delay = 0.01\nmax-download-attempts = 3\n")
    repo, img = image
    relay = relay_for(registry, match=img.layers[0].digest, failures=100, how="503")
    try:
        r = run("pull", f"{relay.host}/{repo}:t")
        tries = [x for x in relay.requests if img.layers[0].digest in x[1]]
    finally:
        relay.close()
    assert r.code == 1
    assert len(tries) == 3
    assert r.err.startswith("Error: blob ") and "HTTP 503" in r.err, r.err
    assert image_ids(store_root) == set()
    assert_store_verifies(store_root)


@pytest.mark.parametrize("status", ["404", "401", "403"])
def test_permanent_errors_are_not_retried(registry, image, store_root, cfg_file, status):
    cfg_file.write_text("retry-delay = 0.01\n")
    repo, img = image
    relay = relay_for(registry, match=img.layers[0].digest, failures=100, how=status)
    try:
        r = run("pull", f"{relay.host}/{repo}:t")
        tries = [x for x in relay.requests if img.layers[0].digest in x[1]]
    finally:
        relay.close()
    assert r.code == 1
    assert len(tries) == 1
    assert not any("Retrying" in l for l in r.lines)
