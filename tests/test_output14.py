"""Issue 14, everyday output: `images` as docker prints it (dangling rows, raw format, -q with
--format, --digests with a custom table, empty rows), its filters (reference patterns,
label!=, until=), usage lines with docker's placeholders."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import pytest
from tests.support.cli import run
from tests.support.images import make_image, make_layer, push_image

from imgctl.cli.format.units import human_size


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def short(d: str) -> str:
    return d.split(":", 1)[1][:12]


def go_time(ts: float) -> str:
    """Go's time.Time.String() in the local zone, what docker's CreatedAt prints."""
    lt = time.localtime(ts)
    return time.strftime("%Y-%m-%d %H:%M:%S %z ", lt) + lt.tm_zone


NOW = int(time.time())
OLD_TS, NEW_TS = NOW - 5 * 86400, NOW - 3600


@pytest.fixture
def store(registry, repo_factory):
    """app:1 (old, labels tier=web v=1), app:2 and app:latest (new image, tier=db), and the
    image app:1 pointed to before it moved (dangling)."""
    repo = repo_factory("app")
    old = make_image([make_layer({"a": "old"})], created=rfc3339(OLD_TS), labels={"tier": "web", "v": "1"})
    new = make_image([make_layer({"a": "new" * 1000})], created=rfc3339(NEW_TS), labels={"tier": "db"})
    moved = make_image([make_layer({"a": "gone"})], created=rfc3339(OLD_TS - 86400))
    name = f"{registry.host}/{repo}"
    push_image(registry.url, repo, moved, tag="1")
    assert run("pull", "-q", f"{name}:1").code == 0
    push_image(registry.url, repo, old, tag="1")  # tag 1 moves: `moved` is dangling now
    push_image(registry.url, repo, new, tag="2")
    push_image(registry.url, repo, new, tag="latest")
    for tag in ("1", "2", "latest"):
        assert run("pull", "-q", f"{name}:{tag}").code == 0
    return {"name": name, "old": old, "new": new, "moved": moved}


def size(img) -> str:
    return human_size(sum(l.uncompressed_size for l in img.layers))


# -- dangling images ----------------------------------------------------------------------------
def test_images_lists_a_dangling_image_without_a(store):
    s = store
    r = run("images")
    assert r.code == 0, r.err
    rows = [line.split()[:3] for line in r.lines[1:]]
    assert rows == [
        [s["name"], "2", short(s["new"].config_digest)],
        [s["name"], "latest", short(s["new"].config_digest)],
        [s["name"], "1", short(s["old"].config_digest)],
        ["<none>", "<none>", short(s["moved"].config_digest)],
    ]
    assert run("images", "-a").out == r.out
    # a reference (or the NAME argument) never matches an untagged image, as in moby
    assert "<none>" not in run("images", s["name"]).out
    assert run("images", "-f", "dangling=false", "--format", "{{.Tag}}").lines == ["2", "latest", "1"]


# -- --format raw ---------------------------------------------------------------------------------
def test_raw_format_is_dockers_byte_for_byte(store):
    s = store
    r = run("images", "--format", "raw", f"{s['name']}:1")
    assert (r.code, r.err) == (0, "")
    assert r.out == (
        f"repository: {s['name']}\n"
        "tag: 1\n"
        f"image_id: {short(s['old'].config_digest)}\n"
        f"created_at: {go_time(OLD_TS)}\n"
        f"virtual_size: {size(s['old'])}\n"
        "\n"
    )
    r = run("images", "--format", "raw", "--digests", "--no-trunc", f"{s['name']}:1")
    assert r.out == (
        f"repository: {s['name']}\n"
        "tag: 1\n"
        f"digest: {s['old'].manifest_digest}\n"
        f"image_id: {s['old'].config_digest}\n"
        f"created_at: {go_time(OLD_TS)}\n"
        f"virtual_size: {size(s['old'])}\n"
        "\n"
    )
    r = run("images", "--format", "raw", "-q", s["name"])
    assert r.out == "".join(f"image_id: {short(s[k].config_digest)}\n" for k in ("new", "new", "old"))


def test_raw_format_with_several_rows_separates_them_by_an_empty_line(store):
    r = run("images", "--format", "raw", store["name"])
    blocks = r.out.split("\n\n")
    assert len(blocks) == 4 and blocks[-1] == ""
    assert [b.splitlines()[1] for b in blocks[:3]] == ["tag: 2", "tag: latest", "tag: 1"]


# -- -q and --format --------------------------------------------------------------------------------
def test_quiet_is_ignored_when_a_format_is_given(store):
    s = store
    assert run("images", "-q", "--format", "{{.Tag}}", s["name"]).out == "2\nlatest\n1\n"
    r = run("images", "-q", "--format", "table {{.Tag}}", s["name"])
    assert r.out == "TAG\n2\nlatest\n1\n"
    r = run("images", "-q", "--format", "json", f"{s['name']}:1")
    assert r.out.startswith('{"Containers":"N/A"') and r.out.count("\n") == 1
    # `--format table` is the table format: -q applies to it, one ID per row (per tag) as in docker
    ids = [short(s[k].config_digest) for k in ("new", "new", "old")]
    assert run("images", "-q", "--format", "table", s["name"]).lines == ids
    assert run("images", "-q", s["name"]).lines == ids
    assert run("images", "-q", "--format", "{{.ID}}", s["name"]).lines == ids


# -- --digests with a custom table ---------------------------------------------------------------------
def test_digests_adds_the_digest_column_to_a_custom_table(store):
    s = store
    r = run("images", "--digests", "--format", "table {{.Repository}}:{{.Tag}}", f"{s['name']}:1")
    w = len(f"{s['name']}:1") + 3
    assert r.out == f"{'REPOSITORY:TAG':<{w}}DIGEST\n{s['name'] + ':1':<{w}}{s['old'].manifest_digest}\n"
    # a table that shows {{.Digest}} already keeps its columns; a plain template is left alone
    r = run("images", "--digests", "--format", "table {{.Digest}}\t{{.Tag}}", f"{s['name']}:1")
    assert r.out == f"{'DIGEST':<74}TAG\n{s['old'].manifest_digest:<74}1\n"
    assert run("images", "--digests", "--format", "{{.Tag}}", f"{s['name']}:1").out == "1\n"


# -- rows that render empty ------------------------------------------------------------------------
def test_a_single_row_that_renders_empty_still_prints_its_newline(store):
    s = store
    assert run("images", "--format", "{{if false}}x{{end}}", f"{s['name']}:1").out == "\n"
    assert run("images", "--format", "{{if false}}x{{end}}", s["name"]).out == "\n\n\n"
    assert run("images", "--format", "{{.Tag}}", "nothing/here").out == ""  # no rows: nothing
    assert run("images", "--format", "table {{if false}}x{{end}}", "nothing/here").out == "\n"


# -- filters ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("pattern", ["[", "app[", "[]", "[^]", "a\\", "[-a]", "[a-]", "x[a-b-c]", "[z"])
def test_malformed_reference_pattern_is_an_error(store, pattern):
    r = run("images", "-f", f"reference={pattern}")
    assert (r.code, r.out) == (2, "")
    assert r.err == f"Error: invalid filter 'reference={pattern}': syntax error in pattern\n"
    r = run("images", pattern)  # the NAME argument is a reference pattern too
    assert r.code == 2 and "syntax error in pattern" in r.err


def test_malformed_reference_pattern_is_an_error_on_an_empty_store():
    r = run("images", "-f", "reference=[")
    assert (r.code, r.err) == (2, "Error: invalid filter 'reference=[': syntax error in pattern\n")


def test_reference_patterns_follow_go_path_match(store):
    s = store
    host, path = s["name"].split("/", 1)
    fmt = ["--format", "{{.Tag}}"]
    assert run("images", *fmt, "-f", f"reference={s['name']}:[12]").lines == ["2", "1"]
    assert run("images", *fmt, "-f", f"reference={s['name']}:[^1]*").lines == ["2", "latest"]
    assert run("images", *fmt, "-f", f"reference={s['name']}:[!2]").lines == ["2"]  # '!' is a literal in Go
    assert run("images", *fmt, "-f", f"reference={s['name']}:\\1").lines == ["1"]
    assert run("images", *fmt, "-f", f"reference={s['name']}:[a-z]atest").lines == ["latest"]
    assert run("images", *fmt, "-f", f"reference={host}/*").lines == []  # '*' does not cross '/'


def test_label_not_equal_filters(store):
    fmt = ["--format", "{{.Tag}}"]
    assert run("images", *fmt, "-f", "label!=tier=web").lines == ["2", "latest"]  # tier exists, other value
    assert run("images", *fmt, "-f", "label!=v").lines == ["2", "latest", "<none>"]  # no v label at all
    assert run("images", *fmt, "-f", "label!=tier").lines == ["<none>"]
    assert run("images", *fmt, "-f", "label=tier", "-f", "label!=tier=db").lines == ["1"]
    assert run("images", *fmt, "-f", "label=tier!=db").lines == ["1"]  # KEY! flips, as moby does
    assert run("images", *fmt, "-f", "label!=nosuch=x").lines == []  # a value test needs the key


@pytest.mark.parametrize(
    "value, tags",
    [
        ("90m", ["1", "<none>"]),  # a Go duration before now
        ("30m", ["2", "latest", "1", "<none>"]),
        ("2h30m", ["1", "<none>"]),
        ("-1.5h", ["2", "latest", "1", "<none>"]),
        (str(NOW - 2 * 86400), ["1", "<none>"]),  # a Unix timestamp
        (f"{NOW - 2 * 86400}.5", ["1", "<none>"]),
        (rfc3339(NOW - 2 * 86400), ["1", "<none>"]),
        (rfc3339(OLD_TS), ["<none>"]),  # strictly before
        (datetime.fromtimestamp(OLD_TS + 60).strftime("%Y-%m-%dT%H:%M:%S"), ["1", "<none>"]),  # local time
        (datetime.fromtimestamp(OLD_TS + 60, timezone.utc).strftime("%Y-%m-%dT%H:%M+00:00"), ["1", "<none>"]),
        ("1970-01-02", []),
        ("0", []),
    ],
)
def test_until_filter_accepts_mobys_timestamp_forms(store, value, tags):
    r = run("images", "--format", "{{.Tag}}", "-f", f"until={value}")
    assert (r.code, r.err) == (0, "")
    assert r.lines == tags


@pytest.mark.parametrize("value", ["yesterday", "1x", "", ".", "2024-13-01", "2024-01-02T25:00", "-5", "1h-"])
def test_until_filter_rejects_what_moby_rejects(value):
    r = run("images", "-f", f"until={value}")
    assert r.code == 2
    assert r.err == f'Error: invalid filter \'until={value}\': failed to parse value as time or duration: "{value}"\n'


# -- usage lines ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, usage",
    [
        (["pull"], "Usage: imgctl pull [OPTIONS] NAME[:TAG|@DIGEST]"),
        (["image", "pull"], "Usage: imgctl image pull [OPTIONS] NAME[:TAG|@DIGEST]"),
        (["push"], "Usage: imgctl push [OPTIONS] NAME[:TAG]"),
        (["tag"], "Usage: imgctl tag [OPTIONS] SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]"),
        (["rmi"], "Usage: imgctl rmi [OPTIONS] IMAGE [IMAGE...]"),
        (["inspect"], "Usage: imgctl inspect [OPTIONS] IMAGE [IMAGE...]"),
        (["history"], "Usage: imgctl history [OPTIONS] IMAGE"),
        (["search"], "Usage: imgctl search [OPTIONS] TERM"),
        (["tags"], "Usage: imgctl tags [OPTIONS] NAME"),
    ],
)
def test_usage_lines_show_dockers_placeholders(args, usage):
    r = run(*args)
    assert r.code == 2
    assert r.err.splitlines()[0] == usage
    assert "{" not in r.err and "<str>" not in r.err


def test_help_shows_dockers_option_types():
    out = run("images", "--help").out
    assert "Usage: imgctl images [OPTIONS] [REPOSITORY[:TAG]]" in out
    assert "-f, --filter filter" in out and "--format string" in out
    assert "--limit int" in run("search", "--help").out
    assert "<str>" not in out and "{" not in out.split("Options:")[0]


@pytest.mark.parametrize("args", [["images", "--root"], ["image", "ls", "--root"], ["--config"], ["images", "--config"]])
def test_global_option_without_a_value_says_the_value_is_missing(args):
    r = run(*args)
    assert (r.code, r.out) == (2, "")
    assert r.err == f"Error: Option '{args[-1]}' requires an argument.\n"


# -- go-units -----------------------------------------------------------------------------------------
from imgctl.cli.format.executor import Template  # noqa: E402
from imgctl.cli.format.units import bytes_size, human_duration
from imgctl.errors import UsageError  # noqa: E402

KiB, MiB, GiB, TiB, PiB = 1024, 1024**2, 1024**3, 1024**4, 1024**5


@pytest.mark.parametrize(
    "size, precision, expected",
    [
        (999_500, 4, "999.5kB"),
        (999_500, 3, "1e+03kB"),  # %.3g rounds 999.5 (ties to even) up to 1e+03
        (998_500, 3, "998kB"),  # ... and 998.5 down
        (999_950, 4, "1000kB"),
        (1000, 4, "1kB"),
        (1000, 3, "1kB"),
        (999, 3, "999B"),
        (-1, 3, "-1B"),
        (-1000, 3, "-1e+03B"),  # negative sizes are never divided
        (-5_000_000, 4, "-5e+06B"),
        (10**30, 3, "1e+06YB"),  # past YB the number grows
        (10**40, 4, "1e+16YB"),
        (float("inf"), 3, "+InfYB"),
        (float("-inf"), 3, "-InfB"),
        (float("nan"), 3, "NaNB"),
        (0.5, 3, "0.5B"),
        (123_456_789, 1, "1e+02MB"),
        (123_456_789, 0, "1e+02MB"),  # Go's %.0g is %.1g
    ],
)
def test_human_size_corners(size, precision, expected):
    assert human_size(size, precision) == expected


@pytest.mark.parametrize(
    "size, expected",
    [
        (1024, "1KiB"),
        (1024 * 1024, "1MiB"),
        (1048576, "1MiB"),
        (2 * MiB, "2MiB"),
        (3.42 * GiB, "3.42GiB"),
        (5.372 * TiB, "5.372TiB"),
        (2.22 * PiB, "2.22PiB"),
        (KiB * KiB * KiB * KiB * KiB * PiB, "1.049e+06YiB"),  # go-units' own vectors, above
        (0, "0B"),
        (1023, "1023B"),
        (1023.95, "1024B"),
        (-2048, "-2048B"),
        (1536, "1.5KiB"),
    ],
)
def test_bytes_size(size, expected):
    assert bytes_size(size) == expected


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (-3600, "Less than a second"),
        (0.999_999_999, "Less than a second"),
        (1.000_000_001, "1 second"),
        (59.999, "59 seconds"),
        (3599.999, "59 minutes"),
        (89 * 60 + 59, "About an hour"),
        (90 * 60, "2 hours"),
        (14 * 86400 - 1, "2 weeks"),  # hours round half up before the day/week choice
        (14 * 86400 - 1801, "13 days"),
        (60 * 86400 - 1, "2 months"),
        (2 * 365 * 86400 - 1, "1 years"),  # go-units: rounded hours pick "years", truncated hours count them
        (2 * 365 * 86400 - 1801, "24 months"),
        (2 * 365 * 86400, "2 years"),
        (100 * 365 * 86400, "100 years"),
    ],
)
def test_human_duration_corners(seconds, expected):
    assert human_duration(seconds) == expected


# -- the template engine in Go's corners (exec_test.go, parse_test.go, lex_test.go) --------------------
def render(text: str, data=None) -> str:
    return Template(text, raw=True).render(data, safe=False)


@pytest.mark.parametrize(
    "text, expected",
    [
        # number literals: parse_test.go numberTests, printed by print / %T
        ("{{print 073}}", "59"),  # a leading 0 is octal
        ("{{print 0o73 0O73}}", "59 59"),
        ("{{print 0b10_010_01 0B10_010_01}}", "73 73"),
        ("{{print 7_3 0x7_3 0X73}}", "73 115 115"),
        ("{{print 0_1}}", "1"),
        ("{{print -0x0 -0}}", "0 0"),
        ("{{print 0xdeadbeef 0xef}}", "3735928559 239"),
        ("{{print 1e9 -1.2}}", "1e+09 -1.2"),
        ("{{print 1e1_9}}", "1e+19"),
        ("{{print 0x_1p4 0X_1P4 0x_1p-4}}", "16 16 0.0625"),
        ("{{print 4i}}", "(0+4i)"),
        ("{{print -1.2+4.2i}}", "(-1.2+4.2i)"),
        ("{{print 073i}}", "(0+73i)"),  # not octal
        ("{{print 0i}}", "(0+0i)"),
        ("{{print 13+0i}}", "(13+0i)"),
        ("{{print 'a' '\\n' '\\\\' '\\'' '\\xFF' 'パ' '\\u30d1' '\\U000030d1'}}", "97 10 92 39 255 12497 12497 12497"),
        ("{{printf `%T %T %T %T %T` 0xef 0XEE 1e9 'a' 1i}}", "int int float64 int complex128"),
        ("{{printf `%T %T` 0x1p2 073}}", "float64 int"),
        ("{{printf `%g` 1+7i}}", "(1+7i)"),
        ("{{printf `%d %s %g` 127 `hello` 7-3i}}", "127 hello (7-3i)"),
        ("{{printf `%.2f` 1.5i}}", "(0.00+1.50i)"),
        ("{{1+2i|printf `%v`}}", "(1+2i)"),
        ("{{if 1.5i}}NON-ZERO{{else}}ZERO{{end}}", "NON-ZERO"),
        ("{{with 1.5i}}{{.}}{{else}}ZERO{{end}}", "(0+1.5i)"),
        ("{{eq 1+2i 1+2i}}", "true"),
        # three-index slice (funcs.go slice)
        ("{{slice .S 1 2 3}}", "[2]"),
        ("{{slice .S 0 4 4}}", "[1 2 3 4]"),
        ("{{slice .S}}", "[1 2 3 4]"),
        ("{{slice `hello` 1 3}}", "el"),
        # html / js / urlquery of a missing value: evalArgs' printableValue
        ("{{html .Missing}}", "&lt;no value&gt;"),
        ("{{.Missing | html}}", "&lt;no value&gt;"),
        ("{{html nil}}", "&lt;no value&gt;"),
        ("{{js .Missing}}", "\\u003Cno value\\u003E"),
        ("{{urlquery .Missing}}", "%3Cno+value%3E"),
        ("{{print .Missing}}", "<nil>"),
        ("{{.Missing}}", "<no value>"),
        # docker/cli's template functions
        ("{{pad `` 1 1}}|{{pad `a` 1 2}}|", "|" + " a  |"),
        ("{{truncate `abcdef` 3}}|{{truncate `ab` 5}}", "abc|ab"),
        ("{{join (split `a,b,,c` `,`) `+`}}", "a+b++c"),
        ("{{title `hello wORLD-foo_bar`}}", "Hello WORLD-Foo_bar"),
        ("{{upper `abc`}} {{lower `ÀB`}}", "ABC àb"),
        ("{{json `a<b>&`}}", '"a<b>&"'),
        ("{{println}}", "\n"),
        ("{{println `a` 1 2}}", "a 1 2\n"),
    ],
)
def test_template_go_corners(text, expected):
    data = {"S": [1, 2, 3, 4]}
    from imgctl.cli.format.values import GoMap

    assert render(text, GoMap(data)) == expected


@pytest.mark.parametrize(
    "text, error",
    [
        # parse_test.go errorTests and numberTests' broken syntax
        ("line1\n{{", "template: :2: unclosed action"),
        ('line1\n{{"x"\n"y"\n', "template: :4: unclosed action started at :2"),
        ("{{\n\n\n\n\n", "template: :6: unclosed action started at :1"),
        ("{{.X\n|", "template: :2: unclosed action started at :1"),
        ('{{\n"abc\n', "template: :2: unterminated quoted string in action started at :1"),
        ("{{ $v := `\n` }} {{", "template: :2: unclosed action"),
        ("{{/*\nhello\n}}", "template: :1: unclosed comment"),
        ("{{.X (1 2 3}}", "template: :1: unclosed left paren"),
        ("{{.X 1 2 3 ) }}", "template: :1: unexpected right paren"),
        ("{{(.X 1 2 3", "template: :1: unclosed action"),
        ("{{0xi}}", 'template: :1: illegal number syntax: "0xi"'),
        ("{{print 09}}", 'template: :1: integer overflow: "09"'),
        ("{{print 99999999999999999999}}", 'template: :1: integer overflow: "99999999999999999999"'),
        ("{{print 1__0}}", 'template: :1: illegal number syntax: "1__0"'),
        ("{{print 0x123.}}", 'template: :1: illegal number syntax: "0x123."'),
        ("{{print 0x1.8}}", 'template: :1: illegal number syntax: "0x1.8"'),  # a hex float needs p
        ("{{print +-2}}", 'template: :1: bad number syntax: "+-2"'),
        ("{{print 'xx'}}", "template: :1: malformed character constant: 'xx'"),
        ("{{ ( ) }}", "template: :1: missing value for parenthesized pipeline"),
        # execution: three-index slice validation, int overflow
        ("{{slice .S 1 3 2}}", 'template: :1:2: executing "" at <slice .S 1 3 2>: error calling slice: invalid slice index: 3 > 2'),
        ("{{slice .S 0 1 9}}", 'template: :1:2: executing "" at <slice .S 0 1 9>: error calling slice: index out of range: 9'),
        ("{{slice .S 2 1}}", 'template: :1:2: executing "" at <slice .S 2 1>: error calling slice: invalid slice index: 2 > 1'),
        ("{{slice .S 1 2 3 4}}", 'template: :1:2: executing "" at <slice .S 1 2 3 4>: error calling slice: too many slice indexes: 4'),
        ("{{slice `abc` 1 2 3}}", 'template: :1:2: executing "" at <slice `abc` 1 2 3>: error calling slice: cannot 3-index slice a string'),
        ("{{slice .S nil}}", 'template: :1:2: executing "" at <slice .S nil>: error calling slice: cannot index slice/array with nil'),
        ("{{print 18446744073709551615}}", 'template: :1:8: executing "" at <18446744073709551615>: 18446744073709551615 overflows int'),
        ("{{json 1i}}", 'template: :1:2: executing "" at <json 1i>: error calling json: json: unsupported type: complex128'),
        ("{{lt 1i 2i}}", 'template: :1:2: executing "" at <lt 1i 2i>: error calling lt: invalid type for comparison'),
    ],
)
def test_template_go_errors(text, error):
    with pytest.raises(UsageError) as info:
        render(text, {"S": [1, 2, 3, 4]})
    assert str(info.value) == f"template parsing error: {error}"


def test_unclosed_action_through_the_cli_is_one_line():
    r = run("images", "--format", "{{.Repository\n|")
    assert (r.code, r.out) == (2, "")
    assert r.err == "Error: template parsing error: template: :2: unclosed action started at :1\n"


def test_history_rows_that_render_empty_still_print_their_lines(store):
    r = run("history", "--format", "{{if false}}x{{end}}", f"{store['name']}:1")
    assert (r.code, r.out) == (0, "\n")  # one layer, one history entry: one empty line


# parse_test.go parseTests: what Go parses and what it refuses (funcs: the builtins)
GO_PARSES = ["", "{{/*\n\n\n*/}}", " \t\n", "some text", "{{.X}}", "{{printf}}", "{{$}}", "{{with $x := 3}}{{$x 23}}{{end}}", "{{$.I}}", "{{printf `%d` 23}}", "{{.X|.Y}}", "{{$x := .X|.Y}}",
 "{{.X (.Y .Z) (.A | .B .C) (.E)}}", "{{(.Y .Z).Field}}", "{{if .X}}hello{{end}}", "{{if .X}}true{{else}}false{{end}}", "{{if .X}}true{{else if .Y}}false{{end}}",
 "+{{if .X}}X{{else if .Y}}Y{{else if .Z}}Z{{end}}+", "{{range .X}}hello{{end}}", "{{range .X.Y.Z}}hello{{end}}", "{{range .X}}hello{{range .Y}}goodbye{{end}}{{end}}",
 "{{range .X}}true{{else}}false{{end}}", "{{range .X|.M}}true{{else}}false{{end}}", "{{range .SI}}{{.}}{{end}}", "{{range $x := .SI}}{{.}}{{end}}", "{{range $x, $y := .SI}}{{.}}{{end}}",
 "{{range .SI}}{{.}}{{break}}{{end}}", "{{range .SI}}{{.}}{{continue}}{{end}}", "{{range .SI 1 -3.2i true false 'a' nil}}{{end}}", "{{with .X}}hello{{end}}",
 "{{with .X}}hello{{else}}goodbye{{end}}", "{{with .X}}hello{{else with .Y}}goodbye{{end}}", "{{with .X}}X{{else with .Y}}Y{{else with .Z}}Z{{end}}",
 "x \r\n\t{{- 3}}", "{{3 -}}\n\n\ty", "x \r\n\t{{- 3 -}}\n\n\ty", "x\n{{-  3   -}}\ny", "x \r\n\t{{- /* hi */}}", "{{/* hi */ -}}\n\n\ty", "x \r\n\t{{- /* */ -}}\n\n\ty",
 "{{ $x \n := \n 1 \n }}", "{{\n\"x\"\n|\nprintf\n}}", "{{/*\nhello\n*/}}", "{{-\n/*\nhello\n*/\n-}}", "{{range .SI}}{{.}}{{ continue }}{{end}}", "{{range .SI}}{{.}}{{ break }}{{end}}",
 "{{$x := 0}}{{$x}}", "{{$x:=.}}{{$x +2}}", "{{range $x := 0}}{{$x}}{{end}}", "{{range $x = 0}}{{$x}}{{end}}", "{{ (( 1 )) }}", "{{ ((( 1 ))) }}", "{{ ((( 1 ))) | printf }}", "{{ if ((( true ))) }}YES{{ end }}"]
GO_REJECTS = ["{{}}", "{{\n}}", "hello{{range", "{{end}}", "{{else}}", "{{if .X}}hello{{end}}{{else}}", "{{if .X}}1{{else}}2{{else}}3{{end}}", "hello{{range .x}}", "hello{{range .x}}{{else}}",
 "hello{{undefined}}", "{{$x}}", "{{with $x := 4}}{{end}}{{$x}}", "{{with $x.Y := 4}}{{end}}", "{{printf 3, 4}}", "{{with $v, $u := 3}}{{end}}", "{{range $u, $v, $w := 3}}{{end}}",
 "{{printf (printf .).}}", "{{printf 3`x`}}", "{{printf `x`.}}", "{{if .X}}a{{else if .Y}}b{{end}}{{end}}", "{{range .}}{{end}} {{break}}", "{{range .}}{{end}} {{continue}}",
 "{{range .}}{{else}}{{break}}{{end}}", "{{range .}}{{else}}{{continue}}{{end}}", "{{$x += 1}}{{$x}}", "{{$x ! 2}}{{$x}}", "{{$x % 3}}{{$x}}", "{{range $x := $y := 3}}{{end}}",
 "{{$x:=.}}{{$x!2}}", "{{$x:=.}}{{$x+2}}", "{{1.E}}", "{{0.1.E}}", "{{true.E}}", "{{'a'.any}}", "{{\"hello\".guys}}", "{{..E}}", "{{nil.E}}", "{{12|.}}", "{{.|12|printf}}",
 "{{.|printf|\"error\"}}", "{{12|printf|'e'}}", "{{.|true}}", "{{'c'|nil}}", "{{printf \"%d\" ( ) }}", "{{range $k}}{{end}}", "{{range $k, $v}}{{end}}", "{{range $k,}}{{end}}",
 "{{range $k, $v := }}{{end}}", "{{range $k, .}}{{end}}", "{{range $k, 123 := .}}{{end}}", "{{$a,$b,$c := 23}}"]


@pytest.mark.parametrize("text", GO_PARSES)
def test_template_parses_what_go_parses(text):
    Template(text, raw=True)


@pytest.mark.parametrize("text", GO_REJECTS)
def test_template_refuses_what_go_refuses(text):
    with pytest.raises(UsageError) as info:
        Template(text, raw=True)
    assert re.match(r"template parsing error: template: :\d+: \S", str(info.value))
