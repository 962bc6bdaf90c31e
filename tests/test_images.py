"""`imgctl images`: docker's table, filters and formats, on images pulled from a real registry."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image

from imgctl.cli.format.units import human_size


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def short(d: str) -> str:
    return d.split(":", 1)[1][:12]


@pytest.fixture
def store_with_images(registry, repo_factory, store_root):
    now = time.time()
    web_repo, db_repo = repo_factory("web"), repo_factory("db")
    web1 = make_image([make_layer({"www/index.html": "v1" * 5000}, "gzip")], created=rfc3339(now - 3 * 3600 - 60), labels={"tier": "web", "v": "1"})
    web2 = make_image([make_layer({"www/index.html": "v2" * 9000}, "zstd")], created=rfc3339(now - 90), labels={"tier": "web", "v": "2"})
    db = make_image([make_layer({"db/data": b"\0" * 2_500_000}, "gzip")], created=rfc3339(now - 3 * 86400), labels={"tier": "db"})
    push_image(registry.url, web_repo, web1, tag="1")
    push_image(registry.url, web_repo, web2, tag="2")
    push_image(registry.url, db_repo, db, tag="15")
    web, dbn = f"{registry.host}/{web_repo}", f"{registry.host}/{db_repo}"
    for name in (f"{web}:1", f"{web}:2", f"{dbn}:15"):
        assert run("pull", "-q", name).code == 0
    return {"web": web, "db": dbn, "web1": web1, "web2": web2, "dbimg": db}


def size_of(img) -> str:
    return human_size(sum(l.uncompressed_size for l in img.layers))


def table(rows: list[list[str]]) -> str:
    """docker's tabwriter: min width 10, padding 3, last column not padded."""
    widths = [max(max(len(r[i]) for r in rows) + 3, 10) for i in range(len(rows[0]) - 1)]
    return "\n".join("".join(c.ljust(w) for c, w in zip(r, widths)) + r[-1] for r in rows) + "\n"


def test_table_exact(store_with_images):
    s = store_with_images
    r = run("images")
    assert r.code == 0, r.err
    assert r.out == table(
        [
            ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
            [s["web"], "2", short(s["web2"].config_digest), "About a minute ago", size_of(s["web2"])],
            [s["web"], "1", short(s["web1"].config_digest), "3 hours ago", size_of(s["web1"])],
            [s["db"], "15", short(s["dbimg"].config_digest), "3 days ago", size_of(s["dbimg"])],
        ]
    )


def test_quiet_and_no_trunc(store_with_images):
    s = store_with_images
    assert run("images", "-q").lines == [short(s[k].config_digest) for k in ("web2", "web1", "dbimg")]
    assert run("images", "-q", "--no-trunc").lines == [s[k].config_digest for k in ("web2", "web1", "dbimg")]
    r = run("images", "--no-trunc", "--format", "{{.ID}}")
    assert r.lines[0] == s["web2"].config_digest


def test_digests_column(store_with_images):
    s = store_with_images
    r = run("images", "--digests", s["db"])
    assert r.out == table(
        [
            ["REPOSITORY", "TAG", "DIGEST", "IMAGE ID", "CREATED", "SIZE"],
            [s["db"], "15", s["dbimg"].manifest_digest, short(s["dbimg"].config_digest), "3 days ago", size_of(s["dbimg"])],
        ]
    )


def test_repository_argument_and_reference_filter(store_with_images):
    s = store_with_images
    fmt = ["--format", "{{.Repository}}:{{.Tag}}"]
    assert run("images", *fmt, s["web"]).lines == [f"{s['web']}:2", f"{s['web']}:1"]
    assert run("images", *fmt, f"{s['web']}:1").lines == [f"{s['web']}:1"]
    host = s["web"].split("/")[0]
    # Go path.Match: '*' does not cross '/'.
    assert run("images", *fmt, "-f", f"reference={host}/*").lines == []
    assert sorted(run("images", *fmt, "-f", f"reference={host}/test/*").lines) == sorted(
        [f"{s['web']}:2", f"{s['web']}:1", f"{s['db']}:15"]
    )
    assert run("images", *fmt, "-f", f"reference={s['web']}:[1]").lines == [f"{s['web']}:1"]
    # Repeated reference filters OR together.
    assert run("images", *fmt, "-f", f"reference={s['db']}", "-f", f"reference={s['web']}:1").lines == [
        f"{s['web']}:1",
        f"{s['db']}:15",
    ]


def test_label_before_since_filters(store_with_images):
    s = store_with_images
    fmt = ["--format", "{{.Tag}}"]
    assert run("images", *fmt, "-f", "label=tier=web").lines == ["2", "1"]
    assert run("images", *fmt, "-f", "label=tier").lines == ["2", "1", "15"]
    assert run("images", *fmt, "-f", "label=tier=web", "-f", "label=v=1").lines == ["1"]
    assert run("images", *fmt, "-f", f"before={s['web']}:1").lines == ["15"]
    assert run("images", *fmt, "-f", f"since={s['web']}:1").lines == ["2"]
    assert run("images", *fmt, "-f", f"since={short(s['dbimg'].config_digest)}").lines == ["2", "1"]


def test_bad_filters(store_with_images):
    r = run("images", "-f", "color=red")
    assert (r.code, r.err) == (2, "Error: invalid filter 'color'\n")
    r = run("images", "-f", "dangling")
    assert (r.code, r.err) == (2, "Error: bad format of filter (expected name=value): dangling\n")
    r = run("images", "-f", "before=nothere:1")
    assert (r.code, r.err) == (1, "Error: No such image: nothere:1\n")


def test_json_format(store_with_images):
    s = store_with_images
    r = run("images", "--format", "json", s["db"])
    row = json.loads(r.out)
    assert list(row) == [
        "Containers", "CreatedAt", "CreatedSince", "Digest", "ID", "Repository", "SharedSize", "Size", "Tag", "UniqueSize",
    ]
    assert row["ID"] == short(s["dbimg"].config_digest)
    assert row["Repository"] == s["db"] and row["Tag"] == "15"
    assert row["Digest"] == s["dbimg"].manifest_digest
    assert row["Size"] == size_of(s["dbimg"])
    assert row["CreatedSince"] == "3 days ago"


def test_table_template(store_with_images):
    s = store_with_images
    r = run("images", "--format", "table {{.Repository}}\t{{.Tag}}", s["db"])
    assert r.out == table([["REPOSITORY", "TAG"], [s["db"], "15"]])


def test_dangling_listed_by_default_as_dockers_classic_store(store_with_images, registry):
    """Issue 14: after a tag moves, the old image shows up as <none> without -a (docker's
    classic store hides only intermediate images, which imgctl never has)."""
    s = store_with_images
    web_repo = s["web"].split("/", 1)[1]
    web3 = make_image([make_layer({"www/index.html": "v3"}, "gzip")], created=rfc3339(time.time() - 30))
    push_image(registry.url, web_repo, web3, tag="1")  # tag 1 moves to a new image
    assert run("pull", "-q", f"{s['web']}:1").code == 0
    fmt = ["--format", "{{.Repository}}:{{.Tag}}:{{.ID}}"]
    assert f"<none>:<none>:{short(s['web1'].config_digest)}" in run("images", *fmt).lines
    assert run("images", *fmt).lines == run("images", "-a", *fmt).lines
    assert run("images", "-f", "dangling=true", *fmt).lines == [f"<none>:<none>:{short(s['web1'].config_digest)}"]
    assert len(run("images", "-f", "dangling=false", *fmt).lines) == 3


def test_empty_store_prints_header(store_root):
    r = run("images")
    assert (r.code, r.out) == (0, "REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n")


def test_images_does_not_import_http_or_progress(store_with_images, store_root):
    code = (
        "import sys\n"
        "from imgctl.cli import main\n"
        "try:\n"
        "    main(['images'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "bad = sorted(m for m, mod in sys.modules.items() if mod is not None\n"
        "             and m.split('.')[0] in ('httpx', 'httpcore', 'rich', 'zstandard', 'ssl'))\n"
        "print('IMPORTED', bad, file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "IMPORTED []" in r.stderr, r.stderr
    assert store_with_images["db"] in r.stdout


def test_global_options_anywhere(store_with_images, store_root, tmp_path):
    other = tmp_path / "other-root"
    assert run("--root", str(other), "images", "-q").out == ""
    assert run("images", "-q", "--root", str(other)).out == ""
    assert run("images", "-q", f"--root={store_root}").lines != []


def test_broken_config_is_a_clear_error(cfg_file):
    cfg_file.write_text("max-concurrent-downloads = 3\nregistry-mirrors = [\n  'https://ok.example',\n  oops\n]\n")
    r = run("pull", "x")
    assert r.code == 1
    assert r.err.startswith(f"Error: {cfg_file}: invalid TOML: ")
    assert "line 4" in r.err
    cfg_file.write_text("max-concurrent-downloads = 0\n")
    assert run("pull", "x").err == f"Error: {cfg_file}: max-concurrent-downloads must be an integer from 1 to 64 (at line 1)\n"
    cfg_file.write_text("registry-mirror = ['https://x']\n")
    assert run("pull", "x").err == f"Error: {cfg_file}: unknown configuration key 'registry-mirror' (at line 1)\n"


def test_version():
    from imgctl import __version__

    assert run("--version").out == f"imgctl version {__version__}\n"


def test_created_at_in_formats(store_with_images):
    s = store_with_images
    r = run("images", "--format", "{{.CreatedAt}}", s["db"])
    assert r.out.strip() and r.out[:4].isdigit()  # "2026-11-25 10:00:00 +0000 UTC"
    r = run("images", "--format", "table {{.Tag}}\t{{.CreatedAt}}", s["db"])
    assert r.lines[0].split() == ["TAG", "CREATED", "AT"] and r.lines[1].split()[0] == "15"
    assert r.lines[1].split()[1][:4].isdigit()
    assert json.loads(run("images", "--format", "json", s["db"]).out)["CreatedAt"][:4].isdigit()
