"""Tests for imgctl.cli.format: docker-exact sizes, durations, tables, templates."""

from __future__ import annotations

import random

import pytest

from imgctl.errors import UsageError
from imgctl.cli.format.executor import Template
from imgctl.cli.format.tables import format_rows, render_table, _tabwrite
from imgctl.cli.format.units import created_since, human_duration, human_size
from imgctl.cli.format.values import go_json, GoMap, RowContext
from imgctl.cli.format.width import cell_width, display_width, truncate_display

KB, MB, GB, TB, PB = 10**3, 10**6, 10**9, 10**12, 10**15

# ---------------------------------------------------------------------------
# human_size: docker/go-units size_test.go (TestHumanSize, precision 4) and
# the precision-3 values docker prints in `docker images`.


@pytest.mark.parametrize(
    "size, expected",
    [
        (1000, "1kB"),
        (1024, "1.024kB"),
        (1000000, "1MB"),
        (1048576, "1.049MB"),
        (2 * MB, "2MB"),
        (3_420_000_000, "3.42GB"),
        (5_372_000_000_000, "5.372TB"),
        (2_220_000_000_000_000, "2.22PB"),
        (10**28, "1e+04YB"),
    ],
)
def test_human_size_go_units_vectors(size, expected):
    assert human_size(size, 4) == expected


@pytest.mark.parametrize(
    "size, expected",
    [
        (0, "0B"),
        (1, "1B"),
        (999, "999B"),
        (1000, "1kB"),
        (1500, "1.5kB"),
        (1024, "1.02kB"),
        (814_000, "814kB"),
        (1_990_000, "1.99MB"),
        (5_610_000, "5.61MB"),
        (5_614_999, "5.61MB"),
        (5_615_001, "5.62MB"),
        (204_000_000, "204MB"),
        (72_800_000, "72.8MB"),
        (1_048_576, "1.05MB"),
        (999_499, "999kB"),
        (999_999, "1e+03kB"),  # docker prints this too (%.3g after one division)
        (1_000_000, "1MB"),
        (10**27, "1e+03YB"),
        (1.5, "1.5B"),
    ],
)
def test_human_size_precision_3(size, expected):
    assert human_size(size) == expected


# ---------------------------------------------------------------------------
# human_duration: docker/go-units duration_test.go

S = 1
MIN = 60
HOUR = 3600
DAY = 24 * HOUR
WEEK = 7 * DAY
MONTH = 30 * DAY
YEAR = 365 * DAY


@pytest.mark.parametrize(
    "seconds, expected",
    [
        (0.45, "Less than a second"),
        (1 * S, "1 second"),
        (45 * S, "45 seconds"),
        (46 * S, "46 seconds"),
        (59 * S, "59 seconds"),
        (60 * S, "About a minute"),
        (1 * MIN, "About a minute"),
        (3 * MIN, "3 minutes"),
        (35 * MIN, "35 minutes"),
        (35 * MIN + 40 * S, "35 minutes"),
        (45 * MIN, "45 minutes"),
        (45 * MIN + 40 * S, "45 minutes"),
        (46 * MIN, "46 minutes"),
        (59 * MIN, "59 minutes"),
        (1 * HOUR, "About an hour"),
        (1 * HOUR + 29 * MIN, "About an hour"),
        (1 * HOUR + 31 * MIN, "2 hours"),
        (1 * HOUR + 59 * MIN, "2 hours"),
        (3 * HOUR, "3 hours"),
        (3 * HOUR + 29 * MIN, "3 hours"),
        (3 * HOUR + 31 * MIN, "4 hours"),
        (3 * HOUR + 59 * MIN, "4 hours"),
        (3 * HOUR + 60 * MIN, "4 hours"),
        (24 * HOUR, "24 hours"),
        (1 * DAY + 12 * HOUR, "36 hours"),
        (2 * DAY, "2 days"),
        (7 * DAY, "7 days"),
        (13 * DAY + 5 * HOUR, "13 days"),
        (2 * WEEK, "2 weeks"),
        (2 * WEEK + 4 * DAY, "2 weeks"),
        (3 * WEEK, "3 weeks"),
        (4 * WEEK, "4 weeks"),
        (4 * WEEK + 3 * DAY, "4 weeks"),
        (1 * MONTH, "4 weeks"),
        (1 * MONTH + 2 * WEEK, "6 weeks"),
        (2 * MONTH, "2 months"),
        (2 * MONTH + 2 * WEEK, "2 months"),
        (3 * MONTH, "3 months"),
        (3 * MONTH + 1 * WEEK, "3 months"),
        (5 * MONTH + 2 * WEEK, "5 months"),
        (13 * MONTH, "13 months"),
        (23 * MONTH, "23 months"),
        (24 * MONTH, "24 months"),
        (24 * MONTH + 2 * WEEK, "2 years"),
        (3 * YEAR + 2 * MONTH, "3 years"),
        # from ExampleHumanDuration
        (47 * S, "47 seconds"),
        (1 * HOUR + 45 * MIN, "2 hours"),
        (1 * MONTH + 2 * WEEK, "6 weeks"),
        (3 * MONTH + 1 * WEEK, "3 months"),
        # edges
        (0, "Less than a second"),
        (-5, "Less than a second"),
        (0.999999, "Less than a second"),
        (1.999, "1 second"),
        (119, "About a minute"),
        (120, "2 minutes"),
        (1 * HOUR + 30 * MIN, "2 hours"),  # hours round half up
        (47 * HOUR + 29 * MIN, "47 hours"),
        (47 * HOUR + 30 * MIN, "2 days"),
    ],
)
def test_human_duration_go_units_vectors(seconds, expected):
    assert human_duration(seconds) == expected


def test_created_since():
    now = 1_700_000_000.0
    assert created_since(now - 24 * HOUR, now) == "24 hours ago"
    assert created_since(now - 3, now) == "3 seconds ago"
    assert created_since(now + 10, now) == "Less than a second ago"
    assert created_since(None, now) == "N/A"
    assert created_since(0, now) == "N/A"


# ---------------------------------------------------------------------------
# truncate_display / display_width: docker/cli formatter.Ellipsis


@pytest.mark.parametrize(
    "source, width, expected",
    [
        # displayutils_test.go TestEllipsis
        ("t🐳ststring", 0, ""),
        ("t🐳ststring", 1, "t"),
        ("t🐳ststring", 2, "t…"),
        ("t🐳ststring", 6, "t🐳st…"),
        ("t🐳ststring", 20, "t🐳ststring"),
        ("你好世界teststring", 0, ""),
        ("你好世界teststring", 1, "你"),
        ("你好世界teststring", 3, "你…"),
        ("你好世界teststring", 6, "你好…"),
        ("你好世界teststring", 20, "你好世界teststring"),
        # ASCII
        ("", 5, ""),
        ("", 1, ""),
        ("abc", 3, "abc"),
        ("abcd", 3, "ab…"),
        ("abcdef", 2, "a…"),
        ("a" * 45, 45, "a" * 45),
        ("a" * 46, 45, "a" * 44 + "…"),
        # exactly fitting wide text is kept whole
        ("你好", 4, "你好"),
        ("你好世", 5, "你好…"),
        ("你好世", 4, "你…"),
        # quirk: the first char is wider than width-1 -> returned unchanged
        ("你好世界", 2, "你好世界"),
        # combining marks count 1 each in Ellipsis (x/text/width: not W/F)
        ("e\u0301e\u0301e\u0301", 6, "e\u0301e\u0301e\u0301"),
        ("e\u0301e\u0301e\u0301", 5, "e\u0301e\u0301…"),
        ("ée", 2, "ée"),
        ("éeé", 2, "é…"),
    ],
)
def test_truncate_display(source, width, expected):
    assert truncate_display(source, width) == expected


def test_truncate_display_search_width():
    desc = "这是一个非常长的中文描述用于测试截断是否正确处理宽字符的情况"
    out = truncate_display(desc, 45)
    assert out == desc[:22] + "…"
    assert display_width(out) == 45
    long_ascii = "Ubuntu is a Debian-based Linux operating system based on free software."
    assert truncate_display(long_ascii, 45) == long_ascii[:44] + "…"


def test_display_width():
    assert display_width("") == 0
    assert display_width("abc") == 3
    assert display_width("你好") == 4
    assert display_width("ｈｉ") == 4  # fullwidth
    assert display_width("ｶ") == 1  # halfwidth
    assert display_width("e\u0301") == 2
    assert display_width("…") == 1


def test_cell_width_is_go_runewidth():
    assert cell_width("abc") == 3
    assert cell_width("a\tb") == 2  # control chars are zero width
    assert cell_width("你好") == 4
    assert cell_width("e\u0301") == 1  # combining mark joins its base
    assert cell_width("\u0301") == 0
    assert cell_width("🐳") == 2
    assert cell_width("…") == 1  # ambiguous = narrow (non-CJK locale)
    assert cell_width("🇩🇪") == 1  # regional indicators are neutral
    assert cell_width("ｈｉ") == 4


# ---------------------------------------------------------------------------
# render_table / tabwriter


def test_render_table_search_golden():
    # docker/cli cli/command/registry/testdata/search-context-write-table.golden
    out = render_table(
        ["NAME", "DESCRIPTION", "STARS", "OFFICIAL"],
        [["result1", "Official build", "5000", "[OK]"], ["result2", "Not official", "5", ""]],
    )
    assert out == (
        "NAME      DESCRIPTION      STARS     OFFICIAL\n"
        "result1   Official build   5000      [OK]\n"
        "result2   Not official     5         "
    )


def test_render_table_images_golden():
    # docker/cli cli/command/formatter/image_test.go (table format)
    out = render_table(
        ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"],
        [
            ["image", "tag1", "imageID1", "24 hours ago", "0B"],
            ["image", "tag2", "imageID2", "N/A", "0B"],
            ["<none>", "<none>", "imageID3", "24 hours ago", "0B"],
        ],
    )
    assert out == (
        "REPOSITORY   TAG       IMAGE ID   CREATED        SIZE\n"
        "image        tag1      imageID1   24 hours ago   0B\n"
        "image        tag2      imageID2   N/A            0B\n"
        "<none>       <none>    imageID3   24 hours ago   0B"
    )


def test_render_table_minwidth_and_padding():
    assert render_table(["A", "B"], [["x", "y"]]) == "A         B\nx         y"
    # 7 chars + 3 padding == minwidth exactly; 8 chars -> 11
    assert render_table(["1234567", "B"], []) == "1234567   B"
    assert render_table(["12345678", "B"], []) == "12345678   B"
    # last column never padded, single column untouched
    assert render_table(["ONLY"], [["a"], ["bbbbbbbbbbbbbbbb"]]) == "ONLY\na\nbbbbbbbbbbbbbbbb"
    assert render_table([], []) == ""
    assert render_table([], [["a", "b"]]) == "a         b"


def test_render_table_numbers_stay_text():
    out = render_table(["ID", "N"], [["0123", "1e3"], ["007", "  4 "]])
    assert out == "ID        N\n0123      1e3\n007         4 "


def test_render_table_wide_chars_use_display_width():
    # docker's tabwriter fork measures cells with go-runewidth (display width),
    # not rune counts: a 2-column CJK name pads like 4 ASCII chars.
    out = render_table(["NAME", "X"], [["中文", "1"], ["abcd", "2"], ["中文中文中文", "3"]])
    assert out == (
        "NAME           X\n"
        "中文           1\n"
        "abcd           2\n"
        "中文中文中文   3"
    )
    out = render_table(["N", "X"], [["e\u0301", "1"]])
    assert out == "N         X\ne\u0301         1"


def test_render_table_column_blocks():
    # A line with fewer cells ends the column block: widths restart after it.
    text = "aaaaaaaaaaaa\tb\nc\nd\te\n"
    assert _tabwrite(text) == "aaaaaaaaaaaa   b\nc\nd         e\n"
    # inner column blocks are independent too
    text = "a\tbbbbbbbbbbbbbbb\tc\nd\te\nf\tg\th\n"
    assert _tabwrite(text) == (
        "a         bbbbbbbbbbbbbbb   c\n"
        "d         e\n"
        "f         g         h\n"
    )


def test_render_table_embedded_tab_and_newline_in_cells():
    out = render_table(["A", "B"], [["x\ty", "z"]])
    assert out == "A         B\nx         y         z"
    out = render_table(["A", "B"], [["x\ny", "z"]])
    assert out == "A         B\nx\ny         z"


def test_tabwrite_final_unterminated_line_and_specials():
    assert _tabwrite("a\tb") == "a         b"
    assert _tabwrite("a\t") == "a"  # a trailing empty cell is dropped on Flush
    assert _tabwrite("") == ""
    assert _tabwrite("a\tb\fc\td\n") == "a         b\nc         d\n"
    # CR and \x01 go through untouched; trailing whitespace is preserved
    assert _tabwrite("a\r\tb \n\x01\tc\n") == "a\r" + " " * 9 + "b \n\x01" + " " * 10 + "c\n"


class _GoTabwriter:
    """Independent literal port of text/tabwriter's Write/Flush/format, fed
    one character at a time (minwidth 10, padding 3, padchar ' ', flags 0)."""

    def __init__(self):
        self.out = []
        self.lines = [[]]
        self.cell = ""
        self.widths = []

    def write(self, s):
        for ch in s:
            if ch in "\t\v\n\f":
                ncells = self.terminate_cell()
                if ch in "\n\f":
                    self.lines.append([])
                    if ch == "\f" or ncells == 1:
                        self.flush()
            else:
                self.cell += ch

    def terminate_cell(self):
        self.lines[-1].append(self.cell)
        self.cell = ""
        return len(self.lines[-1])

    def flush(self):
        if self.cell:
            self.terminate_cell()
        self.format(0, len(self.lines))
        self.lines = [[]]

    def write_lines(self, line0, line1):
        for i in range(line0, line1):
            for j, c in enumerate(self.lines[i]):
                self.out.append(c)
                if j < len(self.widths):
                    self.out.append(" " * (self.widths[j] - cell_width(c)))
            if i + 1 < len(self.lines):
                self.out.append("\n")

    def format(self, line0, line1):
        column = len(self.widths)
        this = line0
        while this < line1:
            line = self.lines[this]
            if column >= len(line) - 1:
                this += 1
                continue
            self.write_lines(line0, this)
            line0 = this
            width = 10
            while this < line1:
                line = self.lines[this]
                if column >= len(line) - 1:
                    break
                width = max(width, cell_width(line[column]) + 3)
                this += 1
            self.widths.append(width)
            self.format(line0, this)
            self.widths.pop()
            line0 = this
        self.write_lines(line0, line1)

    def result(self):
        return "".join(self.out)


def _go_tabwrite(text):
    w = _GoTabwriter()
    w.write(text)
    w.flush()
    return w.result()


def test_tabwrite_matches_go_algorithm_fuzz():
    rng = random.Random(1234)
    alphabet = ["a", "bb", "ccccccccccccc", "中", "文字", "e\u0301", "", " ", "🐳", "x y", "0123"]
    seps = ["\t", "\t", "\t", "\n", "\n", "\f", "\v"]
    for _ in range(400):
        parts = []
        for _ in range(rng.randint(0, 30)):
            parts.append(rng.choice(alphabet))
            parts.append(rng.choice(seps))
        if rng.random() < 0.5 and parts:
            parts.pop()
        text = "".join(parts)
        assert _tabwrite(text) == _go_tabwrite(text), repr(text)


# ---------------------------------------------------------------------------
# Template


def render(text, obj, raw=True):
    return Template(text, raw=raw).render(obj)


DATA = {
    "Name": "alpine",
    "Empty": "",
    "List": ["a", "b", "c"],
    "Nested": {"Sub": "deep", "More": {"X": "y"}},
    "Labels": GoMap({"b": "2", "a": "1", "com.example.x": "dot"}),
    "Num": 3,
    "Flt": 1.5,
    "Yes": True,
    "Nil": None,
    "Html": "<none>&",
}


@pytest.mark.parametrize(
    "tmpl, expected",
    [
        ("plain text", "plain text"),
        ("{{.Name}}", "alpine"),
        ("{{ .Name }}", "alpine"),
        ("{{.Nested.Sub}}/{{.Nested.More.X}}", "deep/y"),
        ("{{.Labels.a}}{{.Labels.zz}}", "1<no value>"),
        ('{{index .Labels "com.example.x"}}|{{index .Labels "nope"}}|', "dot||"),
        ("{{.Num}} {{.Flt}} {{.Yes}} {{.Nil}} {{.List}}", "3 1.5 true <no value> [a b c]"),
        ("{{.Labels}}", "map[a:1 b:2 com.example.x:dot]"),
        ('{{"literal"}} {{`raw`}} {{42}} {{1e6}} {{0.5}} {{true}}', "literal raw 42 1e+06 0.5 true"),
        ("{{json .Name}}", '"alpine"'),
        ("{{json .Html}}", '"<none>&"'),
        ("{{json .List}}", '["a","b","c"]'),
        ("{{json .Labels}}", '{"a":"1","b":"2","com.example.x":"dot"}'),
        ("{{json .Nested}}", '{"Sub":"deep","More":{"X":"y"}}'),
        ("{{json .Num}} {{json .Flt}} {{json .Nil}} {{json .Yes}}", "3 1.5 null true"),
        ('{{join .List ", "}}', "a, b, c"),
        ('{{join .Labels ","}}', "1,2,dot"),
        ("{{upper .Name}} {{lower \"ABC\"}} {{title \"hello wide-world\"}}", "ALPINE abc Hello Wide-World"),
        ('{{split "a:b:c" ":"}}', "[a b c]"),
        ('{{join (split "text:with:colon" ":") "/"}}', "text/with/colon"),
        ("{{truncate .Name 3}}|{{truncate .Name 6}}|{{truncate .Name 30}}", "alp|alpine|alpine"),
        ("[{{pad .Name 2 1}}][{{pad .Empty 2 1}}]", "[  alpine ][]"),
        ("{{.Name | upper}}", "ALPINE"),
        ("{{.Name | upper | lower}}", "alpine"),
        ('{{.Name | printf "%s:%s" "x"}}', "x:alpine"),
        ('{{printf "%-8s|%5d|%.2f|%q|%v|%x" .Name .Num .Flt .Name .List 255}}', 'alpine  |    3|1.50|"alpine"|[a b c]|ff'),
        ("{{if .Name}}yes{{else}}no{{end}}", "yes"),
        ("{{if .Empty}}yes{{else}}no{{end}}", "no"),
        ("{{if .Empty}}1{{else if .Nil}}2{{else if .Num}}3{{end}}", "3"),
        ("{{if not .Empty}}ok{{end}}", "ok"),
        ('{{if eq .Name "alpine"}}A{{end}}{{if ne .Num 3}}B{{end}}{{if lt .Num 4}}C{{end}}', "AC"),
        ("{{if and .Name .Num}}both{{end}}{{if or .Empty .Nil}}x{{else}}none{{end}}", "bothnone"),
        ("{{with .Nested}}{{.Sub}}{{end}}{{with .Empty}}x{{else}}e{{end}}", "deepe"),
        ("{{range .List}}[{{.}}]{{end}}", "[a][b][c]"),
        ("{{range $i, $e := .List}}{{$i}}{{$e}} {{end}}", "0a 1b 2c "),
        ("{{range $k, $v := .Labels}}{{$k}}={{$v}};{{end}}", "a=1;b=2;com.example.x=dot;"),
        ("{{range .Nil}}x{{else}}empty{{end}}", "empty"),
        ('{{range .List}}{{if eq . "b"}}{{continue}}{{end}}{{.}}{{end}}', "ac"),
        ('{{range .List}}{{if eq . "b"}}{{break}}{{end}}{{.}}{{end}}', "a"),
        ("{{range .List}}{{$.Name}}{{end}}", "alpinealpinealpine"),
        ("{{$n := .Name}}{{$n}}{{$n = \"x\"}}{{$n}}", "alpinex"),
        ("{{len .List}} {{len .Name}} {{index .List 2}}", "3 6 c"),
        ("a  {{- .Name -}}  b", "aalpineb"),
        ("a\n  {{- .Name}}\n  b", "aalpine\n  b"),
        ("{{.Name -}}\n\t x", "alpinex"),
        ("{{/* a comment */}}x{{- /* trimmed */ -}} y", "xy"),
        ("{{print .Name .Num .Num}}|{{println .Name}}", "alpine3 3|alpine\n"),
        ("{{(index .List 0) | upper}}", "A"),
        ("{{(.Nested).Sub}}", "deep"),
        ('{{html "<a&>"}}', "&lt;a&amp;&gt;"),
    ],
)
def test_template_render(tmpl, expected):
    assert render(tmpl, DATA) == expected


@pytest.mark.parametrize(
    "tmpl, message",
    [
        ("{{InvalidFunction}}", 'template parsing error: template: :1: function "InvalidFunction" not defined'),
        ("{{.Name", "template parsing error: template: :1: unclosed action"),
        ("{{if .Name}}x", "template parsing error: template: :1: unexpected EOF"),
        ("{{end}}", "template parsing error: template: :1: unexpected {{end}}"),
        ("{{else}}", "template parsing error: template: :1: unexpected {{else}}"),
        ("{{if}}{{end}}", "template parsing error: template: :1: missing value for if"),
        ("{{}}", "template parsing error: template: :1: missing value for command"),
        ('{{"abc}}', "template parsing error: template: :1: unterminated quoted string"),
        ('{{"a\nb"}}', "template parsing error: template: :1: unterminated quoted string"),
        ("{{'a}}", "template parsing error: template: :1: unterminated character constant"),
        ("{{$x}}", 'template parsing error: template: :1: undefined variable "$x"'),
        ("{{break}}", "template parsing error: template: :1: {{break}} outside {{range}}"),
        ('{{.Name | "x"}}', "template parsing error: template: :1: non executable command in pipeline stage 2"),
        ("{{.Name)}}", "template parsing error: template: :1: unexpected right paren"),  # Go >= 1.20 lexer: the error replaces the ")"
        ("{{/* x */ }}", "template parsing error: template: :1: comment ends before closing delimiter"),
        ("a\nb\n{{.X | nope}}", 'template parsing error: template: :3: function "nope" not defined'),
        ("{{range .List}}{{else}}{{else}}{{end}}", "template parsing error: template: :1: expected end; found {{else}}"),
    ],
)
def test_template_parse_errors(tmpl, message):
    with pytest.raises(UsageError) as exc:
        Template(tmpl, raw=True)
    assert str(exc.value) == message
    assert exc.value.exit_code == 2


@pytest.mark.parametrize(
    "tmpl, obj, message",
    [
        (
            "{{.Foo}}",
            RowContext({"ID": "x"}, "*formatter.imageContext"),
            'template parsing error: template: :1:2: executing "" at <.Foo>: '
            "can't evaluate field Foo in type *formatter.imageContext",
        ),
        (
            "{{nil}}",
            {},
            'template parsing error: template: :1:2: executing "" at <nil>: nil is not a command',
        ),
        (
            "{{.Missing}}",
            {"A": 1},
            'template parsing error: template: :1:2: executing "" at <.Missing>: map has no entry for key "Missing"',
        ),
        (
            "x\n  {{.Name.Sub}}",
            DATA,
            # Go positions a field chain at its last element (parse.newChain(t.peek().pos))
            'template parsing error: template: :2:9: executing "" at <.Name.Sub>: '
            "can't evaluate field Sub in type string",
        ),
        (
            '{{join .Name ", "}}',
            DATA,
            'template parsing error: template: :1:2: executing "" at <join .Name ", ">: '
            "error calling join: expected slice, got string",
        ),
        (
            "{{upper .Num}}",
            DATA,
            'template parsing error: template: :1:8: executing "" at <.Num>: '
            "wrong type for value; expected string; got int",
        ),
        (
            "{{json}}",
            DATA,
            'template parsing error: template: :1:2: executing "" at <json>: '
            "wrong number of args for json: want 1 got 0",
        ),
        (
            '{{truncate .Name "3"}}',
            DATA,
            'template parsing error: template: :1:17: executing "" at <"3">: expected integer; found "3"',
        ),
        (
            "{{range .Name}}{{end}}",
            DATA,
            'template parsing error: template: :1:8: executing "" at <.Name>: range can\'t iterate over alpine',
        ),
        (
            '{{eq .Num "3"}}',
            DATA,
            'template parsing error: template: :1:2: executing "" at <eq .Num "3">: '
            "error calling eq: incompatible types for comparison",
        ),
    ],
)
def test_template_exec_errors(tmpl, obj, message):
    t = Template(tmpl, raw=True)
    with pytest.raises(UsageError) as exc:
        t.render(obj)
    assert str(exc.value) == message


def test_template_docker_preprocessing():
    # docker/cli formatter_test.go TestFormat
    assert Template("json").source == "{{json .}}"
    t = Template("table")
    assert t.is_table and t.source == ""
    t = Template("table {{.Field}}\\t{{.Field2}}")
    assert t.is_table and t.source == "{{.Field}}\t{{.Field2}}"
    t = Template("table {{.Field}}\t{{.Field2}}")
    assert t.source == "{{.Field}}\t{{.Field2}}"
    t = Template("other")
    assert not t.is_table and t.source == "other"
    assert Template("   other   ").source == "other"
    assert Template("   other\n   ").source == "other\n"
    assert Template("{{.A}}\\n{{.B}}").source == "{{.A}}\n{{.B}}"
    assert Template("tablefoo").is_table
    # raw mode (inspect -f): no pre-processing at all
    t = Template("table {{.A}}\\t", raw=True)
    assert not t.is_table and t.source == "table {{.A}}\\t"


def test_template_render_is_reusable():
    t = Template("{{.Name}}:{{.Tag}}")
    assert t.render({"Name": "a", "Tag": "1"}) == "a:1"
    assert t.render({"Name": "b", "Tag": "2"}) == "b:2"


def test_row_context_semantics():
    row = RowContext({"Repository": "<none>", "Tag": "<none>", "Empty": ""})
    assert render("{{json .}}", row) == '{"Empty":"","Repository":"\\u003cnone\\u003e","Tag":"\\u003cnone\\u003e"}'
    assert render("{{json .Tag}}", row) == '"<none>"'
    assert render("{{if .}}struct is true{{end}}", RowContext({})) == "struct is true"


def test_go_json_details():
    assert go_json("a\u2028b\x01\t\"\\") == '"a\\u2028b\\u0001\\t\\"\\\\"'
    assert go_json("中文") == '"中文"'
    assert go_json([1, 2.0, 1e21, 1e-7, 0.000001, None]) == "[1,2,1e+21,1e-7,0.000001,null]"
    assert go_json({"b": 1, "a": [True]}) == '{"b":1,"a":[true]}'
    assert go_json(GoMap({"b": 1, "a": 2})) == '{"a":2,"b":1}'


def test_header_rendering():
    t = Template("table {{.Name | upper}}\\t{{json .Stars}}\\t{{truncate .Name 2}}\\t{{pad .Name 1 1}}|")
    assert t.render_header({"Name": "NAME", "Stars": "STARS"}) == "NAME\tSTARS\tNAME\t NAME |"
    # unknown fields fall back to the upper-cased field name
    assert Template("table {{.Foo}}").render_header({}) == "FOO"
    # an error while rendering the header is ignored, like docker does
    assert Template("table A{{.Name.X}}B").render_header({"Name": "N"}) == "A"


# ---------------------------------------------------------------------------
# format_rows

IMAGE_TABLE = (
    "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t"
    "{{if .CreatedSince }}{{.CreatedSince}}{{else}}N/A{{end}}\t{{.Size}}"
)
IMAGE_HEADERS = {
    "ID": "IMAGE ID",
    "Repository": "REPOSITORY",
    "Tag": "TAG",
    "Digest": "DIGEST",
    "CreatedSince": "CREATED",
    "CreatedAt": "CREATED AT",
    "Size": "SIZE",
    "Containers": "CONTAINERS",
    "SharedSize": "SHARED SIZE",
    "UniqueSize": "UNIQUE SIZE",
}
IMAGE_ROWS = [
    {"Repository": "image", "Tag": "tag1", "ID": "imageID1", "CreatedSince": "24 hours ago", "Size": "0B"},
    {"Repository": "image", "Tag": "tag2", "ID": "imageID2", "CreatedSince": "", "Size": "0B"},
    {"Repository": "<none>", "Tag": "<none>", "ID": "imageID3", "CreatedSince": "24 hours ago", "Size": "0B"},
]


def fr(fmt, rows=IMAGE_ROWS):
    return format_rows(fmt, rows, default_table=IMAGE_TABLE, headers=IMAGE_HEADERS)


def test_format_rows_default_table():
    expected = (
        "REPOSITORY   TAG       IMAGE ID   CREATED        SIZE\n"
        "image        tag1      imageID1   24 hours ago   0B\n"
        "image        tag2      imageID2   N/A            0B\n"
        "<none>       <none>    imageID3   24 hours ago   0B"
    )
    assert fr(None) == expected
    assert fr("table") == expected
    assert fr("") == expected


def test_format_rows_custom_table():
    assert fr("table {{.Repository}}") == "REPOSITORY\nimage\nimage\n<none>"
    assert fr("table {{.Repository}}:{{.Tag}}\\t{{.ID}}") == (
        "REPOSITORY:TAG   IMAGE ID\n"
        "image:tag1       imageID1\n"
        "image:tag2       imageID2\n"
        "<none>:<none>    imageID3"
    )
    assert fr("table {{.ID}}\t{{.Size}}", []) == "IMAGE ID   SIZE"


def test_format_rows_json():
    assert fr("json") == (
        '{"CreatedSince":"24 hours ago","ID":"imageID1","Repository":"image","Size":"0B","Tag":"tag1"}\n'
        '{"CreatedSince":"","ID":"imageID2","Repository":"image","Size":"0B","Tag":"tag2"}\n'
        '{"CreatedSince":"24 hours ago","ID":"imageID3","Repository":"\\u003cnone\\u003e",'
        '"Size":"0B","Tag":"\\u003cnone\\u003e"}'
    )
    assert fr("json", []) == ""
    assert fr("{{json .}}", IMAGE_ROWS[:1]) == fr("json", IMAGE_ROWS[:1])


def test_format_rows_plain_template_is_not_aligned():
    assert fr("{{.Repository}}") == "image\nimage\n<none>"
    assert fr("{{.Repository}}\\t{{.ID}}") == "image\timageID1\nimage\timageID2\n<none>\timageID3"
    assert fr("{{.Repository}}", []) == ""
    assert fr("{{.Tag}}\\n", IMAGE_ROWS[:2]) == "tag1\n\ntag2\n"


def test_format_rows_search_table():
    rows = [
        {"Name": "result1", "Description": "Official build", "StarCount": "5000", "IsOfficial": "[OK]"},
        {"Name": "result2", "Description": "Not official", "StarCount": "5", "IsOfficial": ""},
    ]
    out = format_rows(
        None,
        rows,
        default_table="table {{.Name}}\t{{.Description}}\t{{.StarCount}}\t{{.IsOfficial}}",
        headers={"Name": "NAME", "Description": "DESCRIPTION", "StarCount": "STARS", "IsOfficial": "OFFICIAL"},
    )
    assert out == (
        "NAME      DESCRIPTION      STARS     OFFICIAL\n"
        "result1   Official build   5000      [OK]\n"
        "result2   Not official     5         "
    )


def test_format_rows_errors():
    with pytest.raises(UsageError, match="can't evaluate field Foo in type"):
        fr("{{.Foo}}")
    with pytest.raises(UsageError, match='function "nope" not defined'):
        fr("table {{nope}}")
    # like docker, no rows means the row template is never executed
    assert fr("table {{.Foo}}", []) == "FOO"


def test_simple_table_fast_path_matches_the_template_engine():
    """format_rows skips the template engine for plain 'table {{.A}}\\t{{.B}}' formats;
    the output must be exactly what the engine and tabwriter produce."""
    import random

    from imgctl.cli.format.executor import Template
    from imgctl.cli.format.tables import format_rows, _tabwrite
    from imgctl.cli.format.values import RowContext

    rng = random.Random(7)
    alphabet = ["a", "Z", "0", " ", "-", "é", "漢", "字", "<none>", "\u0301", ""]
    rows = [
        {k: "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30))) for k in ("A", "B", "C")}
        for _ in range(200)
    ]
    headers = {"A": "FIRST", "B": "SECOND"}
    for fmt in ("table {{.A}}\t{{.B}}\t{{.C}}", r"table {{.C}}\t{{ .A }}", "table {{.B}}"):
        tmpl = Template(fmt)
        rendered = [tmpl.render(RowContext(r, "*formatter.context")) for r in rows]
        slow = _tabwrite(tmpl.render_header(headers) + "\n" + "".join(x + "\n" for x in rendered)).rstrip("\n")
        assert format_rows(fmt, rows, default_table="", headers=headers) == slow


def test_simple_padding_fast_path_matches_general_tabwriter():
    """The tables tabulate lays out (regular, printable ASCII) match the Go tabwriter."""
    import random

    from imgctl.cli.format.tables import _regular_rows, _tabwrite, tabwriter

    rng = random.Random(3)
    for _ in range(300):
        ncol = rng.randrange(1, 6)
        lines = [
            "\t".join("".join(rng.choice("ab c-<>:") for _ in range(rng.randrange(0, 25))) for _ in range(ncol))
            for _ in range(rng.randrange(1, 30))
        ]
        text = "".join(line + "\n" for line in lines)
        assert _regular_rows(text) is not None
        assert _tabwrite(text) == tabwriter(text, 10, 1, 3)
    assert _regular_rows("a\tb\nc\n") is None  # ragged lines: several column blocks
    assert _regular_rows("漢\tb\n") is None  # wide characters: the Go tabwriter measures them
    assert _regular_rows("a\tb") is None  # no final newline


def test_text_column_type_changes_nothing(monkeypatch):
    """imgctl tells tabulate its columns are text (tabulate's own type detection parses every
    cell as a number even with number parsing off): the output is what tabulate's detection
    gives, for cells that look like numbers, booleans, blanks and padded values."""
    import tabulate as tabulate_module

    from imgctl.cli.format.tables import _tabulate_rows

    rng = random.Random(16)
    tricky = ["True", "False", "", "1", "-2", "1.5", "1e5", "nan", "inf", "0x1f", "1_000", " 12 ", "007",
              "3.0MB", "abc", "  ", "None", "+1", ".5"]
    for _ in range(200):
        ncol = rng.randrange(1, 6)
        rows = [[rng.choice(tricky) for _ in range(ncol)] for _ in range(rng.randrange(1, 12))]
        ours = _tabulate_rows(rows)
        assert tabulate_module._column_type is not None and tabulate_module._column_type.__name__ == "_column_type"
        monkeypatch.setattr("imgctl.cli.format.tables._text_column", tabulate_module._column_type)
        assert _tabulate_rows(rows) == ours, rows
        monkeypatch.undo()


@pytest.mark.parametrize("special", list("\r\x01\x0b\x1c\x1d\x1e\x85\u2028\u2029"))
def test_tabwrite_line_boundaries_tabulate_knows_go_through_untouched(special):
    """The rows reach tabulate as the lines of one cell, which it splits with str.splitlines:
    characters that splitlines (or tabulate) treats specially must come out as they went in."""
    text = f"NAME\tTAG\nx{special}y\tz \n{special}\t{special}\nlast\t\n"
    assert _tabwrite(text) == _go_tabwrite(text)
    many = "".join(f"r{i}{special}\tt{i}\n" for i in range(50))
    assert _tabwrite(many) == _go_tabwrite(many)
