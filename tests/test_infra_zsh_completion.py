"""The zsh completion script at work, not only parsed: zsh's completion system (compinit)
runs on a pseudo-terminal, TAB is pressed after each case, and what the script offers is
captured by wrapping ``compadd``.  Nothing is ever executed: the line is cleared after TAB.

scripts/run-tests installs zsh; without it these tests fail, as a missing docker-registry does.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.test_completions import FILES, _all_commands, _global_names, _option_names, _subcommands

# A zsh program: start an interactive `zsh -f` on a pty with the script's directory on $fpath,
# bind TAB to a widget that completes and then empties the line, and report every match
# as `@@hit WORD` between `@@case N` markers.
_DRIVER = r"""
zmodload zsh/zpty || exit 3
fndir=$1; shift
zpty z zsh -f -i
zpty -w z "PS1='' RPS1='' PROMPT_EOL_MARK=''; fpath=(${(q)fndir} \$fpath); autoload -Uz compinit; compinit -u -D"
zpty -w z "zstyle ':completion:*' list-grouped false; zstyle ':completion:*' insert-tab false"
zpty -w z 'compadd () {
  if [[ ${@[1,(i)(-|--)]} == *-(O|A|D)\ * ]]; then builtin compadd "$@"; return $?; fi
  local -a __hits
  builtin compadd -A __hits "$@"
  local -A __o
  zparseopts -E -A __o P: S: p: s:
  local h
  for h in $__hits; do print -r -- "@@hit ${__o[-P]}$h${__o[-S]}"; done
}'
zpty -w z '_capture() { print -r -- "@@begin"; zle complete-word; print -r -- "@@end"; BUFFER=; CURSOR=0; }'
zpty -w z 'zle -N _capture; bindkey "^I" _capture; print -r -- @@ready'
zpty -r z line '*@@ready*'
zpty -r z line '*@@ready*'
n=0
for l in "$@"; do
  zpty -w -n z "$l"$'\t'
  zpty -r z out '*@@end*'
  print -r -- "@@case $n"
  print -r -- "$out"
  n=$((n+1))
done
zpty -d z
"""


def zsh_complete(script: Path, lines: list[str], cwd: Path) -> list[set[str]]:
    """What zsh offers after TAB at the end of each line (a set of words per line)."""
    zsh = shutil.which("zsh")
    if zsh is None:
        pytest.fail("zsh is not installed; `bash scripts/run-tests` installs it (see README)", pytrace=False)
    fndir = cwd / "zsh-functions"
    fndir.mkdir()
    shutil.copy(script, fndir / "_imgctl")
    proc = subprocess.run(
        [zsh, "-f", "-c", _DRIVER, "zsh", str(fndir), *lines],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
    )
    assert proc.returncode == 0, proc.stderr
    results: list[set[str]] = []
    for raw in proc.stdout.splitlines():
        line = raw.rstrip("\r")
        if re.fullmatch(r"@@case \d+", line):
            results.append(set())
        elif line.startswith("@@hit ") and results:
            results[-1].add(line[len("@@hit "):])
    assert len(results) == len(lines), proc.stdout[-2000:]
    return results


def test_zsh_examples(tmp_path):
    (tmp_path / "rootdir").mkdir()
    (tmp_path / "rootfile.toml").touch()
    cases = {
        "imgctl ": ({"pull", "images", "image"}, None),
        "imgctl ima": (None, {"image", "images"}),
        "imgctl image ": ({"ls", "pull"}, None),
        "imgctl image pu": (None, {"pull", "push"}),
        "imgctl --root somewhere image ": ({"ls", "pull"}, None),
        "imgctl images --": ({"--all", "--digests", "--filter", "--format", "--no-trunc", "--quiet", "--root"}, None),
        "imgctl pull --pl": (None, {"--platform"}),
        "imgctl image ls --d": (None, {"--digests", "--debug"}),
        "imgctl --root root": (None, {"rootdir", "rootfile.toml"}),
        "imgctl --root=root": (None, {"rootdir", "rootfile.toml"}),
        "imgctl images --root ro": (None, {"rootdir", "rootfile.toml"}),
        "imgctl pull --platform ": (None, set()),  # a free-form value: nothing offered
        "imgctl images -- --": (None, set()),  # no options after --
    }
    results = zsh_complete(FILES["zsh"], list(cases), tmp_path)
    for (line, (subset, exact)), got in zip(cases.items(), results):
        if exact is not None:
            assert got == exact, f"{line!r}: {sorted(got)}"
        else:
            assert subset <= got, f"{line!r}: {sorted(got)} lacks {subset - got}"
    assert "list" not in results[2]  # hidden alias of `image ls`
    assert not any(w.startswith("-") for w in results[0])  # options only once a dash is typed


def test_zsh_every_command_of_the_tree(tmp_path):
    """Every group offers exactly its visible subcommands, every command exactly its options."""
    globals_ = _global_names()
    lines, expected = [], []
    for path, cmd, ctx in _all_commands():
        own = _option_names(cmd, ctx)
        lines.append(" ".join(path) + " -")
        expected.append(own if len(path) == 1 else own | globals_)
        subs = _subcommands(cmd, ctx)
        if subs:
            lines.append(" ".join(path) + " ")
            expected.append(subs)
    results = zsh_complete(FILES["zsh"], lines, tmp_path)
    for line, want, got in zip(lines, expected, results):
        assert got == want, f"{line!r}: got {sorted(got)}, want {sorted(want)}"
