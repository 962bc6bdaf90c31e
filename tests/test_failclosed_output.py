"""Issue 13, class 5: text from registries, archives and image configs never reaches the
terminal raw.  Control characters become visible escapes (cli.format.width.terminal_safe) in every
human-readable output; JSON stays exact JSON; names the reference grammar rejects are
skipped with one warning line."""

from __future__ import annotations

import json
import re
from urllib.parse import urlsplit

import pytest
from tests.support.cli import run
from tests.support.hubsearch import HubSearchServer, hub_result
from tests.support.images import make_image, make_layer, push_image
from tests.support.server import LoopbackServer, reply_json

from imgctl.cli.format.executor import Template
from imgctl.cli.format.tables import format_rows
from imgctl.cli.format.width import safe_data, terminal_safe

# What the worst sender puts in a string: OSC title + BEL, clear screen, CR overwrite,
# backspaces, NUL, one-byte C1 CSI, other C1, bidi override and isolates, line and
# paragraph separators, DEL, a newline that would forge a line and a TAB that would shift
# a column.
HOSTILE = [
    "\x1b]0;pwned\x07",
    "\x1b[2J\x1b[H",
    "ok\rEVIL",
    "abc\b\b\bxyz",
    "nul\x00byte",
    "\x9b31mred",
    "c1\x85next\x8d",
    "left\u202eright\u2066iso\u2069",
    "line\u2028sep\u2029para",
    "del\x7f",
    "forged\nREPOSITORY   TAG",
    "tab\tshift",
    "\u061c\u200e\u200f",
]
# Characters none of the output may contain (LF and TAB are checked by line/column shape).
RAW = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def clean(text: str) -> bool:
    return RAW.search(text) is None


# -- the shared function ------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw, shown",
    [
        ("\x1b]0;pwned\x07", "\\x1b]0;pwned\\x07"),
        ("ok\rEVIL", "ok\\rEVIL"),
        ("a\nb\tc", "a\\nb\\tc"),
        ("nul\x00", "nul\\x00"),
        ("\x9b31m", "\\x9b31m"),
        ("x\u202ey", "x\\u202ey"),
        ("\ud800", "\\ud800"),
        ("del\x7f", "del\\x7f"),
        ("plain ünïcödé 中文 \\x1b", "plain ünïcödé 中文 \\x1b"),  # a backslash stays as it is
    ],
)
def test_terminal_safe_escapes_visibly(raw, shown):
    assert terminal_safe(raw) == shown


def test_terminal_safe_keeps_a_templates_own_layout_only_when_asked():
    assert terminal_safe("a\nb\tc\x1b[2J", keep_lf_tab=True) == "a\nb\tc\\x1b[2J"
    assert all(clean(terminal_safe(h)) and "\n" not in terminal_safe(h) for h in HOSTILE)


def test_safe_data_escapes_nested_values_and_keys_without_recursion_limits():
    deep: object = "\x1b"
    for _ in range(5000):
        deep = [deep]
    out = safe_data({"k\x1b": {"v": ["x\r", ("\x9b",)]}, "deep": deep})
    assert out["k\\x1b"] == {"v": ["x\\r", ["\\x9b"]]}
    inner = out["deep"]
    for _ in range(5000):
        inner = inner[0]
    assert inner == "\\x1b"


# -- templates and tables -----------------------------------------------------------------------
ROW_HEADERS = {"Repository": "REPOSITORY", "Tag": "TAG"}


@pytest.mark.parametrize("hostile", HOSTILE)
def test_table_cells_cannot_forge_lines_or_columns(hostile):
    rows = [{"Repository": hostile, "Tag": "1"}, {"Repository": "ok", "Tag": hostile}]
    out = format_rows(None, rows, default_table="table {{.Repository}}\t{{.Tag}}", headers=ROW_HEADERS)
    lines = out.split("\n")
    assert len(lines) == 3 and clean(out)
    assert lines[0].startswith("REPOSITORY")
    assert lines[1].rstrip().endswith("   1")  # the TAG column is where the header says
    # a custom table, and a template through the engine (not the fast path), too
    out = format_rows("table {{.Repository}}:{{upper .Tag}}", rows, default_table="", headers=ROW_HEADERS)
    assert len(out.split("\n")) == 3 and clean(out)
    out = format_rows("{{.Repository}} {{printf \"%s|%q\" .Tag .Tag}}", rows, default_table="", headers=ROW_HEADERS)
    assert len(out.split("\n")) == 2 and clean(out)


def test_json_output_stays_exact_json():
    rows = [{"Repository": h, "Tag": "1"} for h in HOSTILE]
    out = format_rows("json", rows, default_table="", headers=ROW_HEADERS)
    assert clean(out) and len(out.split("\n")) == len(HOSTILE)
    assert [json.loads(line)["Repository"] for line in out.split("\n")] == HOSTILE
    # and json inside a template encodes the original value, not its display form
    out = format_rows("{{json .Repository}}", rows, default_table="", headers=ROW_HEADERS)
    assert [json.loads(line) for line in out.split("\n")] == HOSTILE


def test_templates_own_text_keeps_lf_tab_but_no_other_control():
    t = Template('{{.}}\t{{printf "%c%c" 27 155}}{{"\\r"}}\n', raw=True)
    assert t.render("x\x1b\n") == "x\\x1b\\n\t\\x1b\\x9b\\r\n"


# -- search: Hub-shaped server ------------------------------------------------------------------
@pytest.fixture
def hostile_hub(cfg_file):
    results = [hub_result(f"user/app{i}", h, i) for i, h in enumerate(HOSTILE)]
    results += [
        hub_result("evil\nname", "forged", 1),
        hub_result("Evil/UPPER", "", 1),
        hub_result("x/\x1b[2J", "", 1),
        hub_result("a/b:tag", "", 1),
        hub_result("ok/" + "a" * 300, "", 1),
    ]
    server = HubSearchServer(results).start()
    cfg_file.write_text(f'index-server = "{server.url}"\n')
    try:
        yield server
    finally:
        server.stop()


def test_search_table_escapes_descriptions_and_skips_invalid_names(hostile_hub):
    r = run("search", "--limit", "100", "--no-trunc", "")
    assert r.code == 0, r.err
    assert clean(r.out) and clean(r.err)
    lines = r.out.splitlines()
    assert len(lines) == 1 + len(HOSTILE)  # header + one line per valid result, none forged
    assert [line.split()[0] for line in lines[1:]] == [f"user/app{i}" for i in range(len(HOSTILE))]
    assert "\\x1b]0;pwned\\x07" in r.out and "forged REPOSITORY" in r.out  # docker folds LF to a space
    assert r.err == "WARNING: skipped 5 search result(s) from the registry: not valid names\n"


def test_search_truncated_table_and_templates_stay_clean(hostile_hub):
    r = run("search", "--limit", "100", "")
    assert r.code == 0 and clean(r.out) and len(r.out.splitlines()) == 1 + len(HOSTILE)
    r = run("search", "--limit", "100", "--format", "{{.Name}}|{{.Description}}", "")
    assert r.code == 0 and clean(r.out) and len(r.out.splitlines()) == len(HOSTILE)
    r = run("search", "--limit", "100", "--format", "json", "")
    assert r.code == 0 and clean(r.out)
    assert [json.loads(line)["Name"] for line in r.out.splitlines()] == [f"user/app{i}" for i in range(len(HOSTILE))]


# -- tags, catalog and error messages: a registry that lies in its text ---------------------------
class TextRegistry(LoopbackServer):
    """/v2/ (200), /v2/_catalog, /v2/<name>/tags/list with the given names, and a 404 with
    ``error_message`` for every manifest."""

    methods = ("GET",)

    def __init__(self, *, tags=(), repositories=(), error_message="manifest unknown") -> None:
        super().__init__()
        self.tags, self.repositories, self.error_message = tags, repositories, error_message
        self.start()

    def handle(self, h, method) -> None:
        path = urlsplit(h.path).path
        if path == "/v2/":
            reply_json(h, 200, {})
        elif path == "/v2/_catalog":
            reply_json(h, 200, {"repositories": list(self.repositories)})
        elif path.endswith("/tags/list"):
            reply_json(h, 200, {"name": path[4:-10], "tags": list(self.tags)})
        else:
            reply_json(h, 404, {"errors": [{"code": "MANIFEST_UNKNOWN", "message": self.error_message}]})


BAD_TAGS = ["v1\n2.0", "\x1b]0;x\x07", "latest\r", "-dash", ".dot", "a" * 129, "", "t\u202e", "ok:colon", "ta\tb"]


def test_tags_skips_names_the_grammar_rejects_with_one_warning():
    with TextRegistry(tags=["1.0", *BAD_TAGS, "latest", "A_b.c-D"]) as reg:
        r = run("tags", f"{reg.host}/team/app")
        assert (r.code, r.out) == (0, "1.0\nlatest\nA_b.c-D\n")
        assert r.err == f"WARNING: skipped {len(BAD_TAGS)} tag(s) from the registry: not valid names\n"
        r = run("tags", "--format", "table", f"{reg.host}/team/app")
        assert r.code == 0 and clean(r.out) and len(r.out.splitlines()) == 4
        r = run("tags", "--format", "{{.Tag}}", f"{reg.host}/team/app")
        assert r.out == "1.0\nlatest\nA_b.c-D\n"


def test_tags_only_invalid_names_prints_nothing_but_the_warning():
    with TextRegistry(tags=BAD_TAGS[:3]) as reg:
        r = run("tags", f"{reg.host}/team/app")
        assert (r.code, r.out) == (0, "")
        assert r.err.count("\n") == 1 and clean(r.err)


def test_catalog_search_skips_invalid_repository_names():
    repos = ["app", "team/app", "app\x1b[2J", "app\nforged", "APP/upper", "app/../x", "app\u202e"]
    with TextRegistry(repositories=repos) as reg:
        r = run("search", "--format", "{{.Name}}", f"{reg.host}/app")
        assert r.code == 0, r.err
        assert r.out == f"{reg.host}/app\n{reg.host}/team/app\n"
        assert r.err == "WARNING: skipped 4 search result(s) from the registry: not valid names\n"


@pytest.mark.parametrize(
    "message",
    [
        "manifest unknown\x1b]0;pwned\x07",
        "line one\nError: forged second line",
        "\x1b[2J\x1b[Hcleared",
        "overwrite\rOK",
        "\x9b2Jc1",
        "bidi\u202eoverride",
        "nul\x00byte",
    ],
)
def test_registry_error_messages_are_one_clean_line(message):
    with TextRegistry(error_message=message) as reg:
        r = run("pull", f"{reg.host}/team/app:1")
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("Error: ") and clean(r.err)
    assert "Traceback" not in r.err


# -- history, inspect, images: hostile image configs ---------------------------------------------
@pytest.fixture(scope="module")
def hostile_image():
    layer = make_layer({"f": "x"})
    history = [
        {"created": "2024-01-02T03:04:05Z", "created_by": h, "comment": h}
        for h in ("/bin/sh -c echo \x1b]0;pwned\x07", "RUN a\nb\tc", "\x9b2J\u202e")
    ]
    history[-1]["empty_layer"] = False
    for h in history[:-1]:
        h["empty_layer"] = True
    labels = {"title\x1b]0;x\x07": "v\x1b[2J", "multi": "a\nb", "bidi": "\u202eevil", "nul": "\x00"}
    return make_image([layer], labels=labels, history=history)


@pytest.fixture
def pulled_hostile(registry, unique_repo, hostile_image):
    push_image(registry.url, unique_repo, hostile_image, tag="1")
    name = f"{registry.host}/{unique_repo}:1"
    assert run("pull", "-q", name).code == 0
    return name


def test_history_escapes_created_by_and_comment(pulled_hostile):
    for args in ((), ("--no-trunc",), ("--format", "{{.CreatedBy}}|{{.Comment}}"), ("--format", "table {{.CreatedBy}}\t{{.Comment}}")):
        r = run("history", *args, pulled_hostile)
        assert r.code == 0, r.err
        assert clean(r.out), (args, r.out)
        body = r.out.splitlines()
        assert len(body) == 3 + (0 if args and not args[-1].startswith("table") and args[0] == "--format" else 1)
    r = run("history", "--no-trunc", "--format", "{{.CreatedBy}}", pulled_hostile)
    assert "RUN a\\nb c" in r.out.splitlines()  # docker's history turns TAB into a space
    r = run("history", "--format", "json", pulled_hostile)
    assert clean(r.out)
    assert {json.loads(line)["Comment"] for line in r.out.splitlines()} == {"/bin/sh -c echo \x1b]0;pwned\x07", "RUN a\nb\tc", "\x9b2J\u202e"}


def test_inspect_format_escapes_labels_and_keeps_json_exact(pulled_hostile, hostile_image):
    r = run("inspect", "-f", "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}}\n{{end}}", pulled_hostile)
    assert r.code == 0 and clean(r.out)
    assert r.out == "bidi=\\u202eevil\nmulti=a\\nb\nnul=\\x00\ntitle\\x1b]0;x\\x07=v\\x1b[2J\n\n"
    r = run("inspect", "-f", "{{index .Config.Labels \"multi\"}}", pulled_hostile)
    assert r.out == "a\\nb\n"
    r = run("inspect", "-f", "{{json .Config.Labels}}", pulled_hostile)
    assert clean(r.out) and json.loads(r.out) == json.loads(hostile_image.config_bytes)["config"]["Labels"]
    r = run("inspect", pulled_hostile)  # the default: indented JSON, C1 and bidi escaped too
    assert r.code == 0 and clean(r.out)
    assert json.loads(r.out)[0]["Config"]["Labels"]["bidi"] == "\u202eevil"


def test_images_templates_cannot_write_controls(pulled_hostile):
    r = run("images", "--format", '{{printf "%c" 27}}[2J{{.Tag}}{{"\\u009b"}}')
    assert r.code == 0 and clean(r.out) and r.out == "\\x1b[2J1\\x9b\n"


# -- export warnings and load errors: file names from layers and archives ------------------------
def test_export_warning_names_hostile_device_paths_on_one_clean_line(registry, unique_repo, tmp_path):
    from tests.support.images import Entry

    names = ["dev/\x1b]0;pwned\x07", "dev/a\nWARNING: forged", "dev/\x9b2J\u202e", "dev/cr\rx"]
    layer = make_layer([Entry(n, "blockdev", devmajor=8, devminor=0) for n in names])
    push_image(registry.url, unique_repo, make_image([layer]), tag="1")
    name = f"{registry.host}/{unique_repo}:1"
    assert run("pull", "-q", name).code == 0
    r = run("export", "--dir", tmp_path / "out", name)
    assert r.code == 0, r.err
    assert r.err.count("\n") == 1 and clean(r.err) and r.err.startswith("WARNING: 4 device node(s) not created")
    assert "/dev/a\\nWARNING: forged" in r.err and "/dev/\\x1b]0;pwned\\x07" in r.err


def _docker_archive(path, manifest: list) -> None:
    import io
    import tarfile

    with tarfile.open(path, "w") as tar:
        data = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "manifest",
    [
        [{"Config": "evil\x1b]0;pwned\x07.json", "RepoTags": [], "Layers": []}],
        [{"Config": "a\nError: forged.json", "RepoTags": [], "Layers": []}],
        [{"Config": "c.json", "RepoTags": ["app:\x1b[2J"], "Layers": []}],
        [{"Config": "c.json", "RepoTags": ["app\u202e:1"], "Layers": ["l\x9b.tar"]}],
    ],
)
def test_load_errors_naming_hostile_files_are_one_clean_line(tmp_path, manifest):
    archive = tmp_path / "evil.tar"
    _docker_archive(archive, manifest)
    r = run("load", "-i", archive)
    assert r.code == 1
    assert r.err.count("\n") == 1 and r.err.startswith("Error: ") and clean(r.err)
    assert run("images", "-q").out == ""


def test_debug_lines_quoting_registry_errors_stay_clean():
    with TextRegistry(error_message="x\x1b]0;pwned\x07\nDEBU[imgctl] forged") as reg:
        r = run("--debug", "pull", f"{reg.host}/team/app:1")
    assert r.code == 1 and clean(r.err)
    assert not any(line.startswith("DEBU[imgctl] forged") for line in r.err.splitlines())
