"""tag, rmi, image prune and system df: docker's behaviour and messages, on real pulls."""

from __future__ import annotations


import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image
from tests.support.storecheck import assert_store_verifies, blob_files, image_ids


def short(d: str) -> str:
    return d.split(":", 1)[1][:12]


@pytest.fixture
def two_images(registry, unique_repo, store_root):
    """Two images sharing a base layer, pulled as REPO:a and REPO:b."""
    base = make_layer({"bin/sh": b"shell" * 2000}, "gzip")
    a = make_image([base, make_layer({"a": "only a"}, "gzip")], labels={"which": "a"}, created="2024-01-02T03:04:05Z")
    b = make_image([base, make_layer({"b": "only b"}, "zstd")], labels={"which": "b"}, created="2024-02-02T03:04:05Z")
    push_image(registry.url, unique_repo, a, tag="a")
    push_image(registry.url, unique_repo, b, tag="b")
    repo = f"{registry.host}/{unique_repo}"
    assert run("pull", "-q", f"{repo}:a").code == 0
    assert run("pull", "-q", f"{repo}:b").code == 0
    return repo, a, b, base


def test_tag_and_untag(two_images, store_root):
    repo, a, b, base = two_images
    r = run("tag", f"{repo}:a", "myapp:1.0")
    assert (r.code, r.out, r.err) == (0, "", "")
    r = run("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "myapp")
    assert r.out == f"myapp:1.0 {short(a.config_digest)}\n"
    # By ID prefix and by full ID; a tag without :TAG means latest.
    assert run("tag", short(b.config_digest), "myapp").code == 0
    assert run("tag", b.config_digest, "example.com/team/myapp:x").code == 0
    r = run("images", "--format", "{{.Repository}}:{{.Tag}}", "myapp")
    assert sorted(r.lines) == ["myapp:1.0", "myapp:latest"]

    r = run("rmi", "myapp:1.0")
    assert (r.code, r.out) == (0, "Untagged: myapp:1.0\n")
    assert a.config_digest in image_ids(store_root)  # still tagged as REPO:a


def test_tag_errors(two_images):
    repo, a, *_ = two_images
    r = run("tag", f"{repo}:a", f"myapp@sha256:{'a' * 64}")
    assert (r.code, r.err) == (2, "Error: refusing to create a tag with a digest reference\n")
    r = run("tag", f"{repo}:a", "myapp/Bad")
    assert (r.code, r.err) == (1, "Error: invalid reference format: repository name (myapp/Bad) must be lowercase\n")
    r = run("tag", "nothere:1", "x")
    assert (r.code, r.err) == (1, "Error: No such image: nothere:1\n")


def test_retag_moves_and_leaves_dangling(two_images, store_root):
    repo, a, b, base = two_images
    assert run("tag", f"{repo}:b", f"{repo}:a").code == 0  # a's only tag moves to b
    r = run("images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert sorted(r.lines) == sorted(  # the old image is listed as <none> without -a, as in docker
        [f"{repo}:a {short(b.config_digest)}", f"{repo}:b {short(b.config_digest)}", f"<none>:<none> {short(a.config_digest)}"]
    )
    r = run("images", "-f", "dangling=true", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}")
    assert r.lines == [f"<none>:<none> {short(a.config_digest)}"]


def test_rmi_last_tag_deletes_image_and_unshared_blobs(two_images, store_root):
    repo, a, b, base = two_images
    unique_a = a.layers[1].digest
    r = run("rmi", f"{repo}:a")
    assert r.code == 0, r.err
    assert r.lines == [
        f"Untagged: {repo}:a",
        f"Untagged: {repo}@{a.manifest_digest}",  # the repo digest it was pulled as, as docker prints
        f"Deleted: {a.config_digest}",
        f"Deleted: {unique_a}",
        f"Deleted: {a.manifest_digest}",
    ]
    blobs = set(blob_files(store_root))
    assert base.digest in blobs  # shared with b
    assert unique_a not in blobs and a.config_digest not in blobs and a.manifest_digest not in blobs
    assert image_ids(store_root) == {b.config_digest}
    assert_store_verifies(store_root)

    r = run("rmi", f"{repo}:b")
    assert r.code == 0
    assert blob_files(store_root) == {}
    assert list((store_root / "ingest").iterdir()) == []
    assert image_ids(store_root) == set()


def test_rmi_no_prune_keeps_blobs(two_images, store_root):
    repo, a, b, base = two_images
    before = set(blob_files(store_root))
    r = run("rmi", "--no-prune", f"{repo}:a")
    assert r.lines == [f"Untagged: {repo}:a", f"Untagged: {repo}@{a.manifest_digest}", f"Deleted: {a.config_digest}"]
    assert set(blob_files(store_root)) == before
    assert image_ids(store_root) == {b.config_digest}


def test_rmi_by_id_referenced_in_several_repositories(two_images, store_root):
    repo, a, b, base = two_images
    assert run("tag", f"{repo}:a", "other/name:1").code == 0
    r = run("rmi", short(a.config_digest))
    assert r.code == 1
    assert r.err == (
        f"Error: conflict: unable to delete {short(a.config_digest)} (must be forced) - "
        "image is referenced in multiple repositories\n"
    )
    assert a.config_digest in image_ids(store_root)
    r = run("rmi", "-f", short(a.config_digest))
    assert r.code == 0
    assert r.lines[:4] == [
        f"Untagged: {repo}:a", "Untagged: other/name:1", f"Untagged: {repo}@{a.manifest_digest}", f"Deleted: {a.config_digest}"
    ]
    assert a.config_digest not in image_ids(store_root)
    assert_store_verifies(store_root)


def test_rmi_by_id_single_reference(two_images, store_root):
    repo, a, b, base = two_images
    r = run("rmi", short(b.config_digest))
    assert r.code == 0
    assert r.lines[:3] == [f"Untagged: {repo}:b", f"Untagged: {repo}@{b.manifest_digest}", f"Deleted: {b.config_digest}"]


def test_rmi_several_arguments_continue_after_failure(two_images, store_root):
    repo, a, b, base = two_images
    r = run("rmi", "foo", f"{repo}:a", "sha256:" + "f" * 64)
    assert r.code == 1
    assert r.err == f"Error: No such image: foo:latest\nError: No such image: sha256:{'f' * 64}\n"
    assert r.lines[0] == f"Untagged: {repo}:a"
    assert image_ids(store_root) == {b.config_digest}


def test_rmi_digest_reference(registry, unique_repo, store_root):
    img = make_image([make_layer({"d": "digest"}, "gzip")])
    push_image(registry.url, unique_repo, img, tag="t")
    repo = f"{registry.host}/{unique_repo}"
    assert run("pull", "-q", f"{repo}@{img.manifest_digest}").code == 0
    assert run("pull", "-q", f"{repo}:t").code == 0
    # Removing the last tag of the repository also removes its digest reference, as docker does.
    r = run("rmi", f"{repo}:t")
    assert r.lines == [
        f"Untagged: {repo}:t",
        f"Untagged: {repo}@{img.manifest_digest}",
        f"Deleted: {img.config_digest}",
        f"Deleted: {img.layers[0].digest}",
        f"Deleted: {img.manifest_digest}",
    ]
    assert blob_files(store_root) == {}


def test_prune_dangling_and_all(two_images, registry, store_root):
    repo, a, b, base = two_images
    assert run("tag", f"{repo}:b", f"{repo}:a").code == 0  # a becomes dangling
    r = run("image", "prune", "-f")
    assert r.code == 0
    freed = a.layers[1].size + len(a.config_bytes) + len(a.manifest_bytes)
    from imgctl.cli.format.units import human_size

    assert r.lines == ["Deleted Images:", f"deleted: {a.config_digest}", "", f"Total reclaimed space: {human_size(freed, 4)}"]
    assert image_ids(store_root) == {b.config_digest}
    r = run("image", "prune", "-f")
    assert r.lines == ["Total reclaimed space: 0B"]
    # -a removes images that have no tag, even when a digest names them.
    img = make_image([make_layer({"p": "pinned"}, "gzip")])
    push_image(registry.url, "prune/pinned", img, tag="t")
    assert run("pull", "-q", f"{registry.host}/prune/pinned@{img.manifest_digest}").code == 0
    assert run("image", "prune", "-f").lines == ["Total reclaimed space: 0B"]
    r = run("image", "prune", "-a", "-f")
    assert r.lines[:3] == [
        "Deleted Images:",
        f"untagged: {registry.host}/prune/pinned@{img.manifest_digest}",
        f"deleted: {img.config_digest}",
    ]
    assert image_ids(store_root) == {b.config_digest}
    assert_store_verifies(store_root)


def test_prune_asks_for_confirmation(two_images, store_root, monkeypatch):
    import io

    repo, a, b, base = two_images
    assert run("tag", f"{repo}:b", f"{repo}:a").code == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    r = run("image", "prune")
    assert r.out == "WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] "
    assert a.config_digest in image_ids(store_root)
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    r = run("image", "prune")
    assert f"deleted: {a.config_digest}" in r.lines
    assert a.config_digest not in image_ids(store_root)


def test_system_df(two_images, store_root):
    repo, a, b, base = two_images
    from imgctl.cli.format.units import human_size

    sizes = {d: p.stat().st_size for d, p in blob_files(store_root).items()}
    total = sum(sizes.values())
    r = run("system", "df")
    assert r.code == 0
    assert r.lines[0].split() == ["TYPE", "TOTAL", "ACTIVE", "SIZE", "RECLAIMABLE"]
    assert r.lines[1].split() == ["Images", "2", "2", human_size(total, 4), "0B", "(0%)"]

    assert run("tag", f"{repo}:b", f"{repo}:a").code == 0  # a dangles: its unshared blobs are reclaimable
    reclaim = sizes[a.layers[1].digest] + sizes[a.config_digest] + sizes[a.manifest_digest]
    r = run("system", "df")
    assert r.lines[1].split() == ["Images", "2", "1", human_size(total, 4), human_size(reclaim, 4), f"({reclaim * 100 // total}%)"]

    r = run("system", "df", "-v")
    assert r.lines[0] == "Images space usage:"
    rows = {l.split()[2]: l.split() for l in r.lines[3:]}
    b_row = rows[short(b.config_digest)]
    shared = sizes[base.digest]
    unique_b = sizes[b.layers[1].digest] + sizes[b.config_digest] + sizes[b.manifest_digest]
    assert b_row[-3:] == [human_size(shared + unique_b, 4), human_size(shared, 4), human_size(unique_b, 4)]


def test_same_config_through_two_manifests_stays_consistent(registry, repo_factory, store_root):
    """One image ID (config digest) reached through manifests that differ (gzip vs zstd layers)."""
    files = {"etc/same": "same content " * 500}
    gz = make_image([make_layer(files, "gzip")], created="2024-05-05T00:00:00Z")
    zs = make_image([make_layer(files, "zstd")], created="2024-05-05T00:00:00Z")
    assert gz.config_digest == zs.config_digest and gz.manifest_digest != zs.manifest_digest
    a, b = repo_factory("gz"), repo_factory("zs")
    push_image(registry.url, a, gz, tag="v")
    push_image(registry.url, b, zs, tag="v")
    assert run("pull", "-q", f"{registry.host}/{a}:v").code == 0
    assert run("pull", "-q", f"{registry.host}/{b}:v").code == 0
    assert run("verify").code == 0
    assert run("rmi", f"{registry.host}/{b}:v").lines == [
        f"Untagged: {registry.host}/{b}:v", f"Untagged: {registry.host}/{b}@{zs.manifest_digest}"
    ]
    assert run("verify").code == 0
    r = run("image", "prune", "-f")  # nothing dangling, but the unused manifest's blobs go
    assert r.code == 0
    assert_store_verifies(store_root)
    assert run("verify").code == 0
    assert image_ids(store_root) == {gz.config_digest}
