"""The static shell completion scripts: up to date, complete, and working.

The scripts in completions/ are generated from the live command tree; when a
command or an option changes they must be regenerated:

    python -m imgctl completion bash > completions/imgctl.bash
    python -m imgctl completion zsh  > completions/_imgctl
    python -m imgctl completion fish > completions/imgctl.fish

No network: bash (and zsh/fish when installed) run locally on the scripts.
"""

from __future__ import annotations

import enum
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Optional

import pytest
import typer

import imgctl.cli as cli
from imgctl.cli import app
from imgctl.cli.completion import SHELLS, command_tree, generate
from imgctl.errors import UsageError

from tests.support.cli import run

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "bash": ROOT / "completions" / "imgctl.bash",
    "zsh": ROOT / "completions" / "_imgctl",
    "fish": ROOT / "completions" / "imgctl.fish",
}
REGENERATE = "\n".join(
    f"    python -m imgctl completion {shell} > completions/{FILES[shell].name}" for shell in ("bash", "zsh", "fish")
)
HAVE_BASH = shutil.which("bash") is not None


# -- the live click tree, walked independently of the generator ---------------------------
def _ctx(cmd, name, parent):
    settings = dict(getattr(cmd, "context_settings", None) or {})
    settings.setdefault("resilient_parsing", True)
    return cmd.context_class(cmd, info_name=name, parent=parent, **settings)


def _all_commands(include_hidden: bool = False):
    """(path, command, ctx) for every command of the tree, the root first."""
    out = []

    def walk(cmd, path, parent):
        ctx = _ctx(cmd, path[-1], parent)
        out.append((path, cmd, ctx))
        if hasattr(cmd, "list_commands"):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                if sub is None or (getattr(sub, "hidden", False) and not include_hidden):
                    continue
                walk(sub, (*path, name), ctx)

    walk(typer.main.get_command(app), ("imgctl",), None)
    return out


def _visible_options(cmd, ctx):
    return [p for p in cmd.get_params(ctx) if p.param_type_name == "option" and not getattr(p, "hidden", False)]


def _option_names(cmd, ctx) -> set[str]:
    return {n for p in _visible_options(cmd, ctx) for n in (*p.opts, *(getattr(p, "secondary_opts", ()) or ()))}


def _subcommands(cmd, ctx) -> set[str]:
    if not hasattr(cmd, "list_commands"):
        return set()
    return {n for n in cmd.list_commands(ctx) if not getattr(cmd.get_command(ctx, n), "hidden", False)}


def _global_names() -> set[str]:
    """Root options that main() also accepts after a subcommand."""
    return set(getattr(cli, "_GLOBAL_WITH_VALUE", ())) | set(getattr(cli, "_GLOBAL_FLAGS", ()))


def _committed(shell: str) -> str:
    path = FILES[shell]
    if not path.exists():
        pytest.fail(f"{path.relative_to(ROOT)} is missing; generate the completion scripts:\n{REGENERATE}", pytrace=False)
    return path.read_text(encoding="utf-8")


# -- bash driver --------------------------------------------------------------------------
def bash_complete(script: Path, cases: list[list[str]], cwd: Path | None = None) -> list[list[str]]:
    """Run ``_imgctl`` for each COMP_WORDS in CASES (the last word is the one completed)."""
    lines = ["set -u +e", f"source {shlex.quote(str(script))}"]
    for i, words in enumerate(cases):
        lines += [
            f"COMP_WORDS=({' '.join(shlex.quote(w) for w in words)})",
            f"COMP_CWORD={len(words) - 1}",
            "COMPREPLY=()",
            "_imgctl",
            f"printf '@@case {i}\\n'",
            "for c in \"${COMPREPLY[@]}\"; do printf '%s\\n' \"$c\"; done",
        ]
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", "\n".join(lines)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == "", proc.stderr
    results: list[list[str]] = []
    for line in proc.stdout.splitlines():
        if line.startswith("@@case "):
            results.append([])
        else:
            results[-1].append(line)
    assert len(results) == len(cases)
    return results


# == (a) the committed scripts are what the generator makes now ===========================
@pytest.mark.parametrize("shell", SHELLS)
def test_committed_script_is_current(shell):
    expected = generate(shell)
    actual = _committed(shell)
    if actual != expected:
        import difflib

        diff = "".join(
            list(
                difflib.unified_diff(
                    actual.splitlines(True), expected.splitlines(True), f"committed/{FILES[shell].name}", "generated"
                )
            )[:40]
        )
        pytest.fail(
            f"completions/{FILES[shell].name} is out of date with the command tree; regenerate the scripts:\n"
            f"{REGENERATE}\n\nfirst lines of the difference:\n{diff}",
            pytrace=False,
        )


@pytest.mark.parametrize("shell", SHELLS)
def test_generate_is_deterministic_and_has_header(shell):
    script = generate(shell)
    assert script == generate(shell)
    assert script.endswith("\n")
    assert f"imgctl completion {shell}" in script  # says how it was made
    assert "Install" in script
    if shell == "zsh":
        assert script.startswith("#compdef imgctl\n")
    if shell == "bash":
        assert "complete -F _imgctl imgctl" in script


def test_completion_command_prints_the_script():
    for shell in SHELLS:
        res = run("completion", shell)
        assert res.code == 0, res.err
        assert res.out == generate(shell)


def test_completion_command_rejects_unknown_shell():
    res = run("completion", "tcsh")
    assert res.code == 2
    assert res.err.startswith("Error: ")
    assert "tcsh" in res.err
    with pytest.raises(UsageError):
        generate("powershell")


# == (b) every visible command and option of the live tree is in every script ============
def _present(token: str, text: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(token) + r"(?![\w-])", text) is not None


@pytest.mark.parametrize("shell", SHELLS)
def test_every_command_and_option_is_in_the_script(shell):
    script = _committed(shell)
    missing = []
    for path, cmd, ctx in _all_commands():
        if len(path) > 1 and not _present(path[-1], script):
            missing.append(f"command {' '.join(path)}")
        for name in sorted(_option_names(cmd, ctx)):
            if shell == "fish":
                token = f"-l '{name[2:]}'" if name.startswith("--") else (f"-s '{name[1:]}'" if len(name) == 2 else f"-o '{name[1:]}'")
                found = token in script
            else:
                found = _present(name, script)
            if not found:
                missing.append(f"option {name} of {' '.join(path)}")
        # each (sub)command has its own place in the script
        if shell == "bash":
            placed = f"'{' '.join(path)}')" in script
        elif shell == "zsh":
            placed = re.sub(r"[^A-Za-z0-9_]", "_", "_" + "__".join(path)) + "() {" in script
        else:
            placed = len(path) == 1 or f"__imgctl_needs_command {' '.join(path[:-1])}' -f -a '{path[-1]}'" in script
        if not placed:
            missing.append(f"section for {' '.join(path)}")
    assert not missing, (
        f"completions/{FILES[shell].name} lacks {', '.join(missing)}; regenerate the scripts:\n{REGENERATE}"
    )


def test_hidden_commands_are_not_offered():
    hidden = [p for p, cmd, _ in _all_commands(include_hidden=True) if getattr(cmd, "hidden", False)]
    tree_paths = {c.path for c in command_tree().walk()}
    for path in hidden:
        assert path not in tree_paths


# == (c) the bash script works ============================================================
pytestmark_bash = pytest.mark.skipif(not HAVE_BASH, reason="bash not installed")


@pytestmark_bash
def test_bash_examples(tmp_path):
    (tmp_path / "rootdir").mkdir()
    (tmp_path / "rootfile.toml").touch()
    (tmp_path / "other").touch()
    cases = {
        ("imgctl", ""): ({"pull", "images", "image"}, None),
        ("imgctl", "ima"): (None, {"images", "image"}),
        ("imgctl", "image", ""): ({"ls", "pull"}, None),
        ("imgctl", "image", "pu"): (None, {"pull", "push"}),
        ("imgctl", "images", "--"): ({"--all", "--digests", "--filter", "--format", "--no-trunc", "--quiet"}, None),
        ("imgctl", "pull", "--pl"): (None, {"--platform"}),
        ("imgctl", "image", "ls", "--d"): (None, {"--digests", "--debug"}),
        ("imgctl", "pull", "-"): ({"-a", "-q", "--all-tags", "--quiet", "--platform", "--root", "--config", "--debug"}, None),
        # value-taking options are skipped while walking the words
        ("imgctl", "--root", "somewhere", "image", ""): ({"ls", "pull"}, None),
        ("imgctl", "--config", "image", ""): ({"image", "images", "pull"}, None),
        ("imgctl", "--root=x", "image", ""): ({"ls", "pull"}, None),
        ("imgctl", "image", "ls", "-f", "dangling=true", "--no-"): (None, {"--no-trunc"}),
        ("imgctl", "--", "image", "ls", "--a"): (None, {"--all"}),
        # PATH values: files and directories
        ("imgctl", "--root", "root"): (None, {"rootdir", "rootfile.toml"}),
        ("imgctl", "--config", "root"): (None, {"rootdir", "rootfile.toml"}),
        ("imgctl", "images", "--root", "ro"): (None, {"rootdir", "rootfile.toml"}),
        ("imgctl", "--root", "=", "root"): (None, {"rootdir", "rootfile.toml"}),
        ("imgctl", "--root=root"): (None, {"--root=rootdir", "--root=rootfile.toml"}),
        # no value completion for free-form values, no options after --
        ("imgctl", "pull", "--platform", ""): (None, set()),
        ("imgctl", "images", "--", "--"): (None, set()),
    }
    results = bash_complete(FILES["bash"], [list(k) for k in cases], cwd=tmp_path)
    for (words, (subset, exact)), got in zip(cases.items(), results):
        if exact is not None:
            assert set(got) == exact, f"{' '.join(words)!r}: {got}"
        else:
            assert subset <= set(got), f"{' '.join(words)!r}: {got} lacks {subset - set(got)}"
    assert "list" not in results[2]  # hidden alias of `image ls`
    assert not any(w.startswith("-") for w in results[0])  # options only once a dash is typed


@pytestmark_bash
def test_bash_every_command_of_the_tree(tmp_path):
    """Every group offers exactly its visible subcommands, every command exactly its options."""
    globals_ = _global_names()
    commands = _all_commands()
    cases, expected = [], []
    for path, cmd, ctx in commands:
        own = _option_names(cmd, ctx)
        opts = own if len(path) == 1 else own | globals_
        cases.append([*path, "-"])
        expected.append(opts)
        subs = _subcommands(cmd, ctx)
        if subs:
            cases.append([*path, ""])
            expected.append(subs)
    results = bash_complete(FILES["bash"], cases, cwd=tmp_path)
    for words, want, got in zip(cases, expected, results):
        assert set(got) == want, f"{' '.join(words)!r}: got {sorted(got)}, want {sorted(want)}"


@pytestmark_bash
def test_bash_script_has_valid_syntax():
    proc = subprocess.run(["bash", "-n", str(FILES["bash"])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


# == (d) zsh and fish parse the scripts (each sub-check skipped when its shell is absent) =
def test_zsh_script_parses():
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.skip("zsh not installed: `zsh -n completions/_imgctl` not checked")
    proc = subprocess.run([zsh, "-n", str(FILES["zsh"])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_fish_script_parses():
    fish = shutil.which("fish")
    if fish is None:
        pytest.skip("fish not installed: `fish --no-execute completions/imgctl.fish` not checked")
    proc = subprocess.run([fish, "--no-execute", str(FILES["fish"])], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def fish_complete(script: Path, lines: list[str], cwd: Path) -> list[list[str]]:
    body = [f"source {shlex.quote(str(script))}"]
    for i, line in enumerate(lines):
        body += [f"echo '@@case {i}'", f"complete -C {shlex.quote(line)}"]
    proc = subprocess.run(
        [shutil.which("fish"), "--no-config", "-c", "\n".join(body)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    results: list[list[str]] = []
    for out in proc.stdout.splitlines():
        if out.startswith("@@case "):
            results.append([])
        else:
            results[-1].append(out.split("\t", 1)[0])
    return results


def test_fish_script_works(tmp_path):
    if shutil.which("fish") is None:
        pytest.skip("fish not installed: fish completions not exercised")
    (tmp_path / "rootdir").mkdir()
    cases = {
        "imgctl ": {"pull", "images", "image"},
        "imgctl ima": {"image", "images"},
        "imgctl image ": {"ls", "pull"},
        "imgctl --root somewhere image ": {"ls", "pull"},
        "imgctl images --": {"--all", "--digests", "--filter", "--root"},
        "imgctl pull --pl": {"--platform"},
        "imgctl --root root": {"rootdir/"},
    }
    results = fish_complete(FILES["fish"], list(cases), tmp_path)
    for (line, want), got in zip(cases.items(), results):
        assert want <= set(got), f"{line!r}: {got}"
    assert "list" not in results[2]


# == (e) every command has help text (it is the description in zsh and fish) =============
def test_every_command_has_help_text():
    missing = [
        " ".join(path)
        for path, cmd, _ in _all_commands(include_hidden=True)
        if not ((getattr(cmd, "short_help", None) or getattr(cmd, "help", None) or "").strip())
    ]
    assert not missing, f"commands without help text (add a docstring or help=...): {missing}"


# == the generator on a tree with choices, directories, hidden things and variadic args ===
class Color(str, enum.Enum):
    red = "red"
    green = "green"
    blue = "blue"


def _synthetic_app() -> typer.Typer:
    demo = typer.Typer(no_args_is_help=True, add_completion=False, help="Demo.")
    nested = typer.Typer(help="Nested group.")
    demo.add_typer(nested, name="grp")

    @demo.callback()
    def _root(debug: Annotated[bool, typer.Option("--debug", help="Debug.")] = False) -> None:
        """Demo."""

    @demo.command("paint")
    def paint(
        files: Annotated[list[Path], typer.Argument(help="Files to paint.")],
        color: Annotated[Color, typer.Option("--color", "-c", help="The [main] color.")] = Color.red,
        out: Annotated[Optional[Path], typer.Option("--out-dir", file_okay=False, dir_okay=True, help="Where.")] = None,
        secret: Annotated[bool, typer.Option("--secret", hidden=True)] = False,
    ) -> None:
        """Paint files: it's fun."""

    @demo.command("ghost", hidden=True)
    def ghost() -> None:
        """Hidden."""

    @nested.command("deep")
    def deep(mode: Annotated[Color, typer.Argument(help="Mode.")]) -> None:
        """Deep command."""

    return demo


def test_generator_handles_choices_paths_and_hidden(tmp_path):
    tree = command_tree(_synthetic_app())
    paths = {c.path for c in tree.walk()}
    assert paths == {("imgctl",), ("imgctl", "paint"), ("imgctl", "grp"), ("imgctl", "grp", "deep")}
    paint = next(c for c in tree.walk() if c.path == ("imgctl", "paint"))
    by_name = {o.primary: o for o in paint.options}
    assert "--secret" not in by_name
    assert by_name["--color"].kind == "choice" and by_name["--color"].choices == ("red", "green", "blue")
    assert by_name["--out-dir"].kind == "dir"
    assert paint.arguments[0].variadic and paint.arguments[0].kind == "file"
    assert paint.help == "Paint files: it's fun"

    scripts = {shell: generate(shell, root=tree) for shell in SHELLS}
    for shell, text in scripts.items():
        assert "ghost" not in text and "secret" not in text, shell
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").touch()
    script = tmp_path / "demo.bash"
    script.write_text(scripts["bash"])
    cases = [
        ["imgctl", "paint", "--color", ""],
        ["imgctl", "paint", "-c", "g"],
        ["imgctl", "paint", "--color=b"],
        ["imgctl", "paint", "--out-dir", "a"],
        ["imgctl", "paint", "a"],
        ["imgctl", "paint", "afile", "a"],
        ["imgctl", "grp", "deep", ""],
        ["imgctl", "grp", "deep", "red", ""],
        ["imgctl", ""],
    ]
    got = bash_complete(script, cases, cwd=tmp_path)
    assert set(got[0]) == {"red", "green", "blue"}
    assert got[1] == ["green"]
    assert got[2] == ["--color=blue"]
    assert got[3] == ["adir"]
    assert set(got[4]) == {"adir", "afile"}
    assert set(got[5]) == {"adir", "afile"}  # variadic
    assert set(got[6]) == {"red", "green", "blue"}
    assert got[7] == []  # only one argument
    assert set(got[8]) == {"grp", "paint"}

    for shell, checker in (("zsh", ["-n"]), ("fish", ["--no-execute"])):
        exe = shutil.which(shell)
        if exe is None:
            continue  # parse check of this shell skipped: not installed
        f = tmp_path / f"demo.{shell}"
        f.write_text(scripts[shell])
        proc = subprocess.run([exe, *checker, str(f)], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, (shell, proc.stderr)
    if shutil.which("fish"):
        f = tmp_path / "demo.fish"
        res = fish_complete(f, ["imgctl paint --color ", "imgctl grp deep ", "imgctl paint --out-dir a"], tmp_path)
        assert {"red", "green", "blue"} <= set(res[0])
        assert {"red", "green", "blue"} <= set(res[1])
        assert res[2] == ["adir/"]


# -- lazy registration: main() imports only the command modules a command line needs ---------
def test_command_table_names_where_each_command_lives():
    """Every entry of cli.COMMANDS (and of its groups' tables) names the module and function
    that define the command, and the built tree has exactly the table's commands, in order."""
    tables = [((), cli.COMMANDS)]
    checked = 0
    while tables:
        prefix, table = tables.pop()
        for name, where, what, _hidden in table:
            if isinstance(where, str):
                module = importlib.import_module(f"imgctl.cli.{where}")
                assert callable(getattr(module, what)), (name, where, what)
                checked += 1
            else:
                tables.append(((*prefix, name), where))
    tree = {path: cmd for path, cmd, _ctx in _all_commands(include_hidden=True)}
    assert [p[1] for p in tree if len(p) == 2] == [entry[0] for entry in cli.COMMANDS]
    assert tree[("imgctl", "image", "ls")].callback.__module__ == "imgctl.cli.images"
    assert checked == len([p for p, c in tree.items() if not hasattr(c, "list_commands")])


@pytest.mark.parametrize(
    ("argv", "loaded", "absent"),
    [
        (["images", "-q"], {"images"}, {"tag_rmi", "inspect", "push", "completion"}),
        (["--debug", "tag", "nothing:here", "x:y"], {"tag_rmi"}, {"search", "inspect", "images"}),
        (["--version"], set(), {"images", "completion"}),
        (["--help"], {"images", "inspect", "push", "completion"}, set()),
        (["image", "ls", "-q"], {"images"}, {"push", "completion"}),
    ],
)
def test_main_imports_only_the_command_modules_it_needs(argv, loaded, absent, store_root):
    code = (
        "import json, sys\n"
        "from imgctl.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "print('LOADED', json.dumps([m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('imgctl.cli.')]), file=sys.stderr)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    line = next(x for x in r.stderr.splitlines() if x.startswith("LOADED"))
    got = set(json.loads(line.split(" ", 1)[1]))
    assert loaded <= got and not (absent & got), (argv, got, r.stderr)


def test_listing_order_does_not_depend_on_what_ran_first():
    """A process that ran `push` before `--help` lists the commands in the usual order."""
    code = (
        "import sys\n"
        "from imgctl.cli import main\n"
        "for argv in (['push', '--help'], ['--help']):\n"
        "    try:\n        main(argv)\n    except SystemExit:\n        pass\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    listed = [ln.split()[0] for ln in r.stdout.split("Commands:")[-1].splitlines() if ln.startswith("  ")]
    assert listed[:4] == ["pull", "images", "tag", "rmi"], r.stdout
    assert listed.index("push") > listed.index("search")


# -- local image names: the scripts run `imgctl images --format ...` once for an image argument --
_FAKE_IMGCTL = """#!/bin/sh
printf '%s\\n' "$*" >> "$IMGCTL_FAKE_LOG"
case " $* " in
    *" images --format "*) printf 'web:1\\nweb:2\\ndb:15\\n<none>:<none>\\n' ;;
esac
"""


@pytest.fixture
def fake_imgctl(tmp_path, monkeypatch):
    """An `imgctl` first on PATH that lists three images (and a dangling one) and logs its
    arguments: what the completion scripts run, and what they make of the output."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    exe = bindir / "imgctl"
    exe.write_text(_FAKE_IMGCTL)
    exe.chmod(0o755)
    log = tmp_path / "calls.log"
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    monkeypatch.setenv("IMGCTL_FAKE_LOG", str(log))
    return log


IMAGES = {"web:1", "web:2", "db:15"}


@pytestmark_bash
def test_bash_completes_local_image_names(tmp_path, fake_imgctl):
    cases = [
        ["imgctl", "rmi", ""],
        ["imgctl", "image", "inspect", "web:1", "w"],
        ["imgctl", "tag", "d"],
        ["imgctl", "rmi", "web", ":"],  # bash split "web:" at the colon
        ["imgctl", "rmi", "web", ":", "2"],
        ["imgctl", "tag", "web", ":", "1", ""],  # TARGET: NAME:TAG before it is one argument
        ["imgctl", "--root", "/some/store", "history", ""],
        ["imgctl", "pull", ""],  # a remote name: no local listing
        ["imgctl", "rmi", "--"],  # options, not images
    ]
    got = bash_complete(FILES["bash"], cases, tmp_path)
    assert set(got[0]) == IMAGES
    assert set(got[1]) == {"web:1", "web:2"}
    assert got[2] == ["db:15"]
    assert set(got[3]) == {":1", ":2"}
    assert got[4] == ["2"]
    assert set(got[5]) == IMAGES
    assert set(got[6]) == IMAGES
    assert got[7] == [] and "--force" in got[8]
    calls = fake_imgctl.read_text().splitlines()
    assert calls[0] == "images --format {{.Repository}}:{{.Tag}}"
    assert "--root /some/store images --format {{.Repository}}:{{.Tag}}" in calls
    assert len(calls) == 7  # once per image TAB, never for pull or an option


def test_zsh_completes_local_image_names(tmp_path, fake_imgctl):
    from tests.test_infra_zsh_completion import zsh_complete

    got = zsh_complete(FILES["zsh"], ["imgctl rmi ", "imgctl image rm we", "imgctl --root /st tag web:1 ", "imgctl pull "], tmp_path)
    assert got[0] == IMAGES
    assert got[1] == {"web:1", "web:2"}
    assert got[2] == IMAGES
    assert not got[3] & IMAGES
    assert "--root /st images --format {{.Repository}}:{{.Tag}}" in fake_imgctl.read_text().splitlines()


def test_fish_completes_local_image_names(tmp_path, fake_imgctl):
    if shutil.which("fish") is None:
        pytest.fail("fish is not installed", pytrace=False)
    got = fish_complete(FILES["fish"], ["imgctl rmi ", "imgctl image history we", "imgctl --root /st save ", "imgctl pull "], tmp_path)
    assert set(got[0]) == IMAGES
    assert set(got[1]) == {"web:1", "web:2"}
    assert set(got[2]) == IMAGES
    assert not set(got[3]) & IMAGES
    assert "--root /st images --format {{.Repository}}:{{.Tag}}" in fake_imgctl.read_text().splitlines()


@pytestmark_bash
def test_bash_lists_the_images_of_a_real_store(tmp_path, registry, unique_repo, store_root, monkeypatch):
    """End to end: the bash script's listing through the real CLI and a store with one image."""
    from tests.support.images import make_image, make_layer, push_image

    push_image(registry.url, unique_repo, make_image([make_layer({"f": "x"}, "gzip")]), tag="v1")
    name = f"{registry.host}/{unique_repo}:v1"
    assert run("pull", "-q", name).code == 0
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "imgctl").write_text(f'#!/bin/sh\nPYTHONPATH={shlex.quote(str(ROOT))} exec {shlex.quote(sys.executable)} -m imgctl "$@"\n')
    (bindir / "imgctl").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    got = bash_complete(FILES["bash"], [["imgctl", "--root", str(store_root), "rmi", ""]], tmp_path)
    assert got == [[name]]
