"""`imgctl inspect` and `imgctl history` on images pulled from a real registry."""

from __future__ import annotations

import json

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image

from imgctl.cli.format.units import human_size


def short(d: str) -> str:
    return d.split(":", 1)[1][:12]


HISTORY = [
    {"created": "2024-01-02T03:04:05Z", "created_by": "/bin/sh -c #(nop) ADD file:0123456789abcdef in / ", "comment": ""},
    {"created": "2024-01-02T03:04:06Z", "created_by": "/bin/sh -c #(nop)  ENV GREETING=<hello & bye>", "empty_layer": True},
    {"created": "2024-01-02T03:04:07Z", "created_by": "RUN /bin/sh -c apk add --no-cache curl\tca-certificates # buildkit", "comment": "buildkit.dockerfile.v0"},
]


@pytest.fixture
def pulled(registry, unique_repo):
    layers = [
        make_layer({"etc": None, "etc/os-release": "NAME=test\n"}, "gzip"),
        make_layer({"usr": None, "usr/bin": None, "usr/bin/curl": b"\x7fELF" + bytes(5000)}, "zstd"),
    ]
    img = make_image(
        layers,
        history=HISTORY,
        labels={"org.example.team": "a<b"},
        env=["PATH=/usr/bin:/bin", "GREETING=<hello & bye>"],
        variant=None,
    )
    push_image(registry.url, unique_repo, img, tag="v1")
    name = f"{registry.host}/{unique_repo}:v1"
    assert run("pull", "-q", name).code == 0
    assert run("tag", name, f"{registry.host}/{unique_repo}:also").code == 0
    return img, name, f"{registry.host}/{unique_repo}"


def test_inspect_json_document(pulled):
    img, name, repo = pulled
    r = run("inspect", name)
    assert r.code == 0, r.err
    assert r.err == ""
    docs = json.loads(r.out)
    assert len(docs) == 1
    d = docs[0]
    assert list(d) == [
        "Id", "RepoTags", "RepoDigests", "Parent", "Comment", "Created", "DockerVersion", "Author",
        "Config", "Architecture", "Os", "Size", "RootFS", "Descriptor", "Manifest",
    ]
    assert d["Id"] == img.config_digest
    assert d["RepoTags"] == [f"{repo}:also", f"{repo}:v1"]
    assert d["RepoDigests"] == [f"{repo}@{img.manifest_digest}"]
    assert d["Created"] == "2024-01-02T03:04:05Z"
    assert (d["Architecture"], d["Os"]) == ("amd64", "linux")
    assert d["Config"] == img.config["config"]
    assert d["Size"] == sum(l.uncompressed_size for l in img.layers)
    assert d["RootFS"] == {"Type": "layers", "Layers": [l.diff_id for l in img.layers]}
    assert d["Descriptor"] == {"mediaType": img.manifest_media_type, "digest": img.manifest_digest, "size": len(img.manifest_bytes)}
    assert d["Manifest"]["Layers"] == [
        {"MediaType": l.media_type, "Digest": l.digest, "Size": l.size, "DiffID": l.diff_id, "UncompressedSize": l.uncompressed_size}
        for l in img.layers
    ]
    assert d["Manifest"]["Config"] == {"MediaType": img.config_media_type, "Digest": img.config_digest, "Size": len(img.config_bytes)}
    # docker's encoder: 4-space indent, HTML characters escaped
    assert r.out.startswith('[\n    {\n        "Id": "sha256:')
    assert "\\u003chello \\u0026 bye\\u003e" in r.out and "<hello" not in r.out
    # the same through `image inspect`, by ID prefix and by digest
    for ref in (short(img.config_digest), img.config_digest, f"{repo}@{img.manifest_digest}"):
        again = run("image", "inspect", ref)
        assert again.code == 0, again.err
        assert again.out == r.out


def test_inspect_format_and_missing(pulled):
    img, name, repo = pulled
    r = run("inspect", "-f", "{{.Id}} {{.Os}}/{{.Architecture}} {{.Config.Env}} {{json .RepoTags}} {{index .Config.Labels \"org.example.team\"}}", name, name)
    assert r.code == 0, r.err
    line = f'{img.config_digest} linux/amd64 [PATH=/usr/bin:/bin GREETING=<hello & bye>] ["{repo}:also","{repo}:v1"] a<b'
    assert r.out == f"{line}\n{line}\n"

    r = run("inspect", "--format", "{{len .RootFS.Layers}} {{(index .Manifest.Layers 1).MediaType}}", name)
    assert r.out == "2 application/vnd.oci.image.layer.v1.tar+zstd\n"

    # docker: the images that exist are printed, every missing one is an error, exit 1
    r = run("inspect", name, "nosuch", "other:tag")
    assert r.code == 1
    assert json.loads(r.out)[0]["Id"] == img.config_digest
    assert r.err == "Error: No such image: nosuch\nError: No such image: other:tag\n"

    r = run("inspect", "nosuch")
    assert (r.code, r.out, r.err) == (1, "[]\n", "Error: No such image: nosuch\n")

    r = run("inspect", "-f", "{{.Nope}}", name)
    assert r.code == 2
    assert 'map has no entry for key "Nope"' in r.err
    r = run("inspect", "-f", "{{.Id", name)
    assert r.code == 2 and r.err.startswith("Error: template parsing error:")


def table(rows: list[list[str]]) -> str:
    widths = [max(max(len(r[i]) for r in rows) + 3, 10) for i in range(len(rows[0]) - 1)]
    return "\n".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] for r in rows) + "\n"


def test_history_table(pulled):
    img, name, repo = pulled
    sizes = [human_size(l.uncompressed_size) for l in img.layers]
    r = run("history", name)
    assert r.code == 0, r.err
    assert r.out == table(
        [
            ["IMAGE", "CREATED", "CREATED BY", "SIZE", "COMMENT"],
            [short(img.config_digest), "2 years ago", "RUN /bin/sh -c apk add --no-cache curl ca-certificates # buildkit"[:44] + "…", sizes[1], "buildkit.dockerfile.v0"],
            ["<missing>", "2 years ago", "/bin/sh -c #(nop)  ENV GREETING=<hello & bye>", "0B", ""],
            ["<missing>", "2 years ago", "/bin/sh -c #(nop) ADD file:0123456789abcdef in / "[:44] + "…", sizes[0], ""],
        ]
    ).replace("2 years ago", r.lines[1].split("   ")[1].strip())  # the age moves with the calendar

    r = run("image", "history", "--no-trunc", name)
    assert r.code == 0
    assert r.lines[1].startswith(img.config_digest + "   ")
    assert "apk add --no-cache curl ca-certificates # buildkit" in r.lines[1]

    r = run("history", "-q", name)
    assert r.out == f"{short(img.config_digest)}\n<missing>\n<missing>\n"
    r = run("history", "-q", "--no-trunc", name)
    assert r.out == f"{img.config_digest}\n<missing>\n<missing>\n"

    r = run("history", "--format", "{{.ID}}|{{.Size}}|{{.CreatedAt}}|{{.Comment}}", name)
    assert r.lines[0].startswith(f"{short(img.config_digest)}|{sizes[1]}|2024-01-0")
    assert r.lines[1].split("|")[:2] == ["<missing>", "0B"]
    r = run("history", "--format", "json", name)
    rows = [json.loads(l) for l in r.lines]
    assert [x["ID"] for x in rows] == [short(img.config_digest), "<missing>", "<missing>"]
    assert rows[1]["CreatedBy"] == "/bin/sh -c #(nop)  ENV GREETING=<hello & bye>"
    assert set(rows[0]) == {"Comment", "CreatedAt", "CreatedBy", "CreatedSince", "ID", "Size"}

    r = run("history", "--format", "table {{.ID}}\t{{.CreatedBy}}", "nosuch")
    assert (r.code, r.err) == (1, "Error: No such image: nosuch:latest\n")


def test_history_without_config_history(registry, unique_repo):
    layers = [make_layer({"a": "1"}), make_layer({"b": "22"})]
    img = make_image(layers, history=[])
    push_image(registry.url, unique_repo, img, tag="x")
    name = f"{registry.host}/{unique_repo}:x"
    assert run("pull", "-q", name).code == 0
    r = run("history", "--format", "{{.ID}} {{.CreatedSince}} {{.Size}}", name)
    size = human_size(layers[0].uncompressed_size)
    assert r.out == f"{short(img.config_digest)} N/A {size}\n<missing> N/A {size}\n"
