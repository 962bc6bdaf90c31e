"""Static shell completion scripts generated from the command table.

``generate(shell)`` walks the commands of ``cli.COMMANDS`` through click's public API
(groups, subcommands, options, arguments and their click types; hidden ones are skipped)
and renders a self-contained completion script for bash, zsh or fish.  Arguments listed in
``IMAGE_ARGUMENTS`` complete the store's image names: the script runs
``imgctl images --format '{{.Repository}}:{{.Tag}}'`` once for that TAB, as podman's do.  The scripts run no
Python on TAB: they are plain shell code, so they must be regenerated whenever a
command or option changes (``tests/test_completions.py`` enforces it)::

    python -m imgctl completion bash > completions/imgctl.bash
    python -m imgctl completion zsh  > completions/_imgctl
    python -m imgctl completion fish > completions/imgctl.fish

The walk reads only click's own attributes (``param.type`` is a Choice or a Path), so it
works with classic click and with typer's vendored copy alike.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any

import typer

from imgctl.cli import app
from imgctl.errors import UsageError

__all__ = ["SHELLS", "generate", "command_tree", "CommandInfo", "OptionInfo", "ArgumentInfo"]

PROG = "imgctl"
SHELLS = ("bash", "fish", "zsh")

# Value kinds of an option or argument.
NONE, FILE, DIR, CHOICE, IMAGE = "none", "file", "dir", "choice", "image"

# The arguments that name local images, by the function of the command that takes them
# (``image rm`` is ``rmi``'s function, so it needs no entry of its own).
IMAGE_ARGUMENTS = {
    "images_cmd": ("repository",),
    "tag_cmd": ("source", "target"),
    "rmi_cmd": ("images",),
    "inspect_cmd": ("images",),
    "history_cmd": ("image",),
    "save_cmd": ("images",),
    "export_cmd": ("image",),
    "push_cmd": ("name",),
}


# == the model ============================================================================
@dataclass(frozen=True)
class OptionInfo:
    names: tuple[str, ...]  # short names first, then long ones; includes secondary (--no-x) names
    takes_value: bool
    help: str
    kind: str = NONE  # for options taking a value: NONE, FILE, DIR or CHOICE
    choices: tuple[str, ...] = ()
    multiple: bool = False
    eager_exit: bool = False  # --help / --version: nothing else makes sense after it

    @property
    def primary(self) -> str:
        longs = [n for n in self.names if n.startswith("--")]
        return (longs or list(self.names))[0]

    @property
    def message(self) -> str:
        return self.primary.lstrip("-") or "value"


@dataclass(frozen=True)
class ArgumentInfo:
    name: str
    kind: str
    choices: tuple[str, ...]
    required: bool
    variadic: bool


@dataclass(frozen=True)
class CommandInfo:
    path: tuple[str, ...]  # ("imgctl", "image", "ls")
    help: str
    options: tuple[OptionInfo, ...]
    arguments: tuple[ArgumentInfo, ...]
    subcommands: tuple["CommandInfo", ...]
    is_group: bool

    @property
    def name(self) -> str:
        return self.path[-1]

    @property
    def key(self) -> str:
        return " ".join(self.path)

    def walk(self):
        yield self
        for sub in self.subcommands:
            yield from sub.walk()


# == walking the click tree ===============================================================
def _short_help(text: str | None, limit: int = 100) -> str:
    """First sentence of the first paragraph, on one line, without the final period."""
    if not text:
        return ""
    para = re.split(r"\n\s*\n", text.strip(), maxsplit=1)[0]
    para = " ".join(line for line in para.splitlines() if line.strip() != "\b")
    para = " ".join(para.split())
    m = re.search(r"\.(?=\s+[A-Z]|$)", para)
    if m:
        para = para[: m.start()]
    if len(para) > limit:
        para = para[: limit - 3].rsplit(" ", 1)[0].rstrip(",;:") + "..."
    return para


def _choice_str(c: Any) -> str:
    return str(c.value) if isinstance(c, Enum) else str(c)


def _value_kind(param: Any) -> tuple[str, tuple[str, ...]]:
    """(kind, choices) for the values of an option or argument."""
    ptype = getattr(param, "type", None)
    choices = getattr(ptype, "choices", None)
    if choices is not None:
        return CHOICE, tuple(_choice_str(c) for c in choices)
    tname = getattr(ptype, "name", "")
    if tname == "directory":  # click's Path(file_okay=False) names itself so
        return DIR, ()
    if tname in ("path", "filename", "file"):
        if getattr(ptype, "dir_okay", False) and not getattr(ptype, "file_okay", True):
            return DIR, ()
        return FILE, ()
    return NONE, ()


def _option_info(param: Any) -> OptionInfo:
    names = list(param.opts) + list(getattr(param, "secondary_opts", ()) or ())
    names = sorted(set(names), key=lambda n: (n.startswith("--"), n))
    takes_value = not (getattr(param, "is_flag", False) or getattr(param, "count", False))
    kind, choices = _value_kind(param) if takes_value else (NONE, ())
    return OptionInfo(
        names=tuple(names),
        takes_value=takes_value,
        help=_short_help(getattr(param, "help", None)),
        kind=kind,
        choices=choices,
        multiple=bool(getattr(param, "multiple", False) or getattr(param, "count", False)),
        eager_exit=bool(param.is_eager and not takes_value),
    )


def _argument_info(param: Any, command: Any) -> list[ArgumentInfo]:
    kind, choices = _value_kind(param)
    if param.name in IMAGE_ARGUMENTS.get(getattr(getattr(command, "callback", None), "__name__", ""), ()):
        kind = IMAGE
    nargs = param.nargs if param.nargs is not None else 1
    name = (param.name or "arg").lower()
    if nargs < 0:
        return [ArgumentInfo(name, kind, choices, bool(param.required), True)]
    return [ArgumentInfo(name, kind, choices, bool(param.required), False) for _ in range(max(nargs, 1))]


def _is_group(cmd: Any) -> bool:
    return hasattr(cmd, "list_commands") and hasattr(cmd, "get_command")


def _make_ctx(cmd: Any, name: str, parent: Any) -> Any:
    settings = dict(getattr(cmd, "context_settings", None) or {})
    settings.setdefault("resilient_parsing", True)
    return cmd.context_class(cmd, info_name=name, parent=parent, **settings)


def _walk(cmd: Any, path: tuple[str, ...], parent_ctx: Any) -> CommandInfo:
    ctx = _make_ctx(cmd, path[-1], parent_ctx)
    options: list[OptionInfo] = []
    arguments: list[ArgumentInfo] = []
    for param in cmd.get_params(ctx):
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "option":
            options.append(_option_info(param))
        elif param.param_type_name == "argument":
            arguments.extend(_argument_info(param, cmd))
    subs: list[CommandInfo] = []
    group = _is_group(cmd)
    if group:
        for name in sorted(cmd.list_commands(ctx)):
            sub = cmd.get_command(ctx, name)
            if sub is None or getattr(sub, "hidden", False):
                continue
            subs.append(_walk(sub, (*path, name), ctx))
    help_text = getattr(cmd, "short_help", None) or getattr(cmd, "help", None)
    return CommandInfo(
        path=path,
        help=_short_help(help_text),
        options=tuple(sorted(options, key=lambda o: (o.primary.lstrip("-").lower(), o.primary))),
        arguments=tuple(arguments),
        subcommands=tuple(subs),
        is_group=group,
    )


def command_tree(typer_app: typer.Typer | None = None) -> CommandInfo:
    """The visible command tree of ``app`` (or of ``typer_app``) as it is now."""
    return _walk(typer.main.get_command(typer_app if typer_app is not None else app), (PROG,), None)


def _hoisted_names(root: CommandInfo) -> set[str]:
    """Root options accepted after a subcommand too (the root group hoists them: ``_hoist_global_options``)."""
    import imgctl.cli as cli

    hoisted = set(getattr(cli, "_GLOBAL_WITH_VALUE", ())) | set(getattr(cli, "_GLOBAL_FLAGS", ()))
    if not hoisted and not hasattr(cli, "_GLOBAL_WITH_VALUE"):  # fallback: non-eager root options
        hoisted = {n for o in root.options if not o.eager_exit for n in o.names}
    return hoisted


def _global_options(root: CommandInfo) -> tuple[OptionInfo, ...]:
    hoisted = _hoisted_names(root)
    return tuple(o for o in root.options if any(n in hoisted for n in o.names))


def _options_for(cmd: CommandInfo, globals_: tuple[OptionInfo, ...]) -> tuple[OptionInfo, ...]:
    """A command's own options plus the global ones (not repeated on the root, own names win)."""
    if len(cmd.path) == 1:
        return cmd.options
    own = {n for o in cmd.options for n in o.names}
    extra = tuple(o for o in globals_ if not any(n in own for n in o.names))
    return tuple(sorted(cmd.options + extra, key=lambda o: (o.primary.lstrip("-").lower(), o.primary)))


# == quoting ==============================================================================
def _sq(s: str) -> str:
    """POSIX single quotes (bash, zsh)."""
    return "'" + s.replace("'", "'\\''") + "'"


def _fq(s: str) -> str:
    """fish single quotes."""
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _words(items) -> str:
    return " ".join(sorted(set(items)))


def _ident(path: tuple[str, ...]) -> str:
    return "_" + "__".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in path)


# == bash =================================================================================
_BASH_HEADER = """\
# bash completion for {prog}                                   -*- shell-script -*-
#
# Generated by `{prog} completion bash`; do not edit, regenerate it instead.
# Static: no Python runs when you press TAB.
#
# Install: source this file from ~/.bashrc, or copy it to
#   /usr/share/bash-completion/completions/{prog}             (system-wide), or
#   ~/.local/share/bash-completion/completions/{prog}         (per user).
"""

_BASH_BODY = r"""
# __{prog}_spec PATH: subcommands and option names of the (sub)command PATH.
__{prog}_spec()
{{
    case "$1" in
{spec_cases}
        *)
            subs='' opts=''
            ;;
    esac
}}

# __{prog}_optval PATH OPTION: succeeds if OPTION takes a value; sets kind and words.
__{prog}_optval()
{{
    case "$1|$2" in
{optval_cases}
        *)
            return 1
            ;;
    esac
    return 0
}}

# __{prog}_argkind PATH INDEX: kind and words of the INDEX-th (from 0) positional argument.
__{prog}_argkind()
{{
    kind=none words=''
    case "$1|$2" in
{argkind_cases}
    esac
}}

# __{prog}_images: the store's image names (NAME:TAG), from `{prog} images`; the command
# line's --root and --config apply.
__{prog}_images()
{{
    local i args=()
    for (( i = 1; i < COMP_CWORD; i++ )); do
        case ${{COMP_WORDS[i]}} in
            --root|--config)
                if [[ ${{COMP_WORDS[i+1]-}} == = ]]; then
                    args+=("${{COMP_WORDS[i]}}=${{COMP_WORDS[i+2]-}}")
                else
                    args+=("${{COMP_WORDS[i]}}" "${{COMP_WORDS[i+1]-}}")
                fi
                ;;
        esac
    done
    command {prog} "${{args[@]}}" images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' 2>/dev/null | command grep -v '<none>'
}}

__{prog}_reply()
{{
    local candidate full prefix n
    case "$1" in
        image)
            # bash splits NAME:TAG at the colon (COMP_WORDBREAKS): match the whole word,
            # offer what follows the part bash keeps
            full=$4 n=$COMP_CWORD
            while (( n > 1 )) && [[ ${{COMP_WORDS[n]}} == : || ${{COMP_WORDS[n-1]}} == : ]]; do
                n=$(( n - 1 ))
                full=${{COMP_WORDS[n]}}$full
            done
            prefix=${{full%"$4"}}
            while IFS= read -r candidate; do COMPREPLY+=("${{candidate#"$prefix"}}"); done < <(compgen -W "$(__{prog}_images)" -- "$full")
            ;;
        choice) while IFS= read -r candidate; do COMPREPLY+=("$3$candidate"); done < <(compgen -W "$2" -- "$4") ;;
        file|dir)
            type compopt >/dev/null 2>&1 && compopt -o filenames 2>/dev/null
            if [[ $1 == dir ]]; then
                while IFS= read -r candidate; do COMPREPLY+=("$3$candidate"); done < <(compgen -d -- "$4")
            else
                while IFS= read -r candidate; do COMPREPLY+=("$3$candidate"); done < <(compgen -f -- "$4")
            fi
            ;;
    esac
}}

_{prog}()
{{
    local cur path word i j kind words subs opts npos=0 dashdash=0 candidate
    COMPREPLY=()
    cur=${{COMP_WORDS[COMP_CWORD]}}
    path={prog}
    __{prog}_spec "$path"
    for (( i = 1; i < COMP_CWORD; i++ )); do
        word=${{COMP_WORDS[i]}}
        if (( ! dashdash )); then
            case $word in
                --)
                    dashdash=1
                    continue
                    ;;
                -*=*)
                    continue
                    ;;
                -*)
                    if __{prog}_optval "$path" "$word"; then
                        j=$(( i + 1 ))
                        if [[ ${{COMP_WORDS[j]}} == = ]]; then
                            if (( j == COMP_CWORD )); then
                                __{prog}_reply "$kind" "$words" "" ""
                                return 0
                            fi
                            j=$(( j + 1 ))
                        fi
                        if (( j == COMP_CWORD )); then
                            __{prog}_reply "$kind" "$words" "" "$cur"
                            return 0
                        fi
                        i=$j
                    fi
                    continue
                    ;;
            esac
        fi
        # NAME:TAG split at its colon by bash is one argument
        if (( i > 1 )) && [[ $word == : || ${{COMP_WORDS[i-1]}} == : ]]; then
            continue
        fi
        # a group's `--` only ends the group's own options: the subcommand parses the rest
        if (( npos == 0 )) && [[ " $subs " == *" $word "* ]]; then
            path="$path $word"
            dashdash=0
            __{prog}_spec "$path"
            continue
        fi
        npos=$(( npos + 1 ))
    done

    if (( ! dashdash )) && [[ $cur == -* ]]; then
        if [[ $cur == -*=* ]]; then
            if __{prog}_optval "$path" "${{cur%%=*}}"; then
                __{prog}_reply "$kind" "$words" "${{cur%%=*}}=" "${{cur#*=}}"
            fi
            return 0
        fi
        while IFS= read -r candidate; do COMPREPLY+=("$candidate"); done < <(compgen -W "$opts" -- "$cur")
        return 0
    fi
    if [[ -n $subs ]]; then
        (( npos == 0 )) && while IFS= read -r candidate; do COMPREPLY+=("$candidate"); done < <(compgen -W "$subs" -- "$cur")
        return 0
    fi
    __{prog}_argkind "$path" "$npos"
    __{prog}_reply "$kind" "$words" "" "$cur"
    return 0
}}

complete -F _{prog} {prog}
"""


def _bash_kind(kind: str, choices: tuple[str, ...]) -> str:
    if kind == CHOICE:
        return f"kind=choice words={_sq(' '.join(choices))}"
    return f"kind={kind} words=''"


def generate_bash(root: CommandInfo) -> str:
    globals_ = _global_options(root)
    global_ids = {id(o) for o in globals_}
    spec, optval, optval_global, argkind = [], [], [], []
    for cmd in root.walk():
        opts = _options_for(cmd, globals_)
        subs = _words(s.name for s in cmd.subcommands)
        names = _words(n for o in opts for n in o.names)
        spec.append(f"        {_sq(cmd.key)})\n            subs={_sq(subs)}\n            opts={_sq(names)}\n            ;;")
        for o in cmd.options:
            if o.takes_value and id(o) not in global_ids:
                pats = "|".join(_sq(f"{cmd.key}|{n}") for n in o.names)
                optval.append(f"        {pats})\n            {_bash_kind(o.kind, o.choices)}\n            ;;")
        for idx, a in enumerate(cmd.arguments):
            if a.kind == NONE:
                continue
            pat = _sq(f"{cmd.key}|") + "*" if a.variadic else _sq(f"{cmd.key}|{idx}")
            argkind.append(f"        {pat})\n            {_bash_kind(a.kind, a.choices)}\n            ;;")
    for o in globals_:  # accepted after any subcommand; specific entries above take precedence
        if o.takes_value:
            pats = "|".join(_sq(f"{PROG}") + "*" + _sq(f"|{n}") for n in o.names)
            optval_global.append(f"        {pats})\n            {_bash_kind(o.kind, o.choices)}\n            ;;")
    body = _BASH_BODY.format(
        prog=PROG,
        spec_cases="\n".join(spec),
        optval_cases="\n".join(optval + optval_global),
        argkind_cases="\n".join(argkind) if argkind else "        *) ;;",
    )
    return _BASH_HEADER.format(prog=PROG) + body


# == zsh ==================================================================================
_ZSH_HEADER = """\
#compdef {prog}
#
# zsh completion for {prog}.
#
# Generated by `{prog} completion zsh`; do not edit, regenerate it instead.
# Static: no Python runs when you press TAB.
#
# Install: save it as `_{prog}` in a directory on $fpath, e.g.
#   {prog} completion zsh > ~/.zsh/completions/_{prog}
# with `fpath=(~/.zsh/completions $fpath)` before `compinit` in ~/.zshrc
# (system-wide: /usr/local/share/zsh/site-functions/_{prog}).
# Or source it after `compinit`.
"""


_ZSH_IMAGES = r"""
# __{prog}_images: the store's image names (NAME:TAG), from `{prog} images`; the command
# line's --root and --config apply.
__{prog}_images() {{
    [[ $PREFIX == -* ]] && return 1  # an option is being typed, not an image
    local -a line args names expl
    local i
    line=(${{(z)LBUFFER}})  # the whole command line: $words starts at the subcommand
    for (( i = 2; i < $#line; i++ )); do
        case $line[i] in
            --root|--config) args+=($line[i] $line[i+1]) ;;
            --root=*|--config=*) args+=($line[i]) ;;
        esac
    done
    names=(${{(f)"$(_call_program images {prog} $args images --format "'{{{{.Repository}}}}:{{{{.Tag}}}}'" 2>/dev/null)"}})
    names=(${{names:#*<none>*}})
    _wanted images expl 'local image' compadd -a names
}}
"""


def _zsh_desc(text: str) -> str:
    return text.replace("\\", "\\\\").replace("[", "\\[").replace("]", "\\]")


def _zsh_action(kind: str, choices: tuple[str, ...]) -> str:
    if kind == FILE:
        return "_files"
    if kind == DIR:
        return "_files -/"
    if kind == CHOICE:
        return "(" + " ".join(re.sub(r"([\\\s():'\"])", r"\\\1", c) for c in choices) + ")"
    if kind == IMAGE:
        return f"__{PROG}_images"
    return " "


def _zsh_option(o: OptionInfo) -> str:
    names = []
    for n in o.names:
        if o.takes_value:
            n += "=" if n.startswith("--") else "+"
        names.append(n)
    if o.eager_exit:
        excl = "(- *)"
    elif o.multiple:
        excl = "*"
    elif len(o.names) > 1:
        excl = "(" + " ".join(o.names) + ")"
    else:
        excl = ""
    desc = f"[{_zsh_desc(o.help)}]" if o.help else ""
    tail = f"{desc}:{o.message.replace(':', '-')}:{_zsh_action(o.kind, o.choices)}" if o.takes_value else desc
    if len(names) > 1:
        return _sq(excl) + "{" + ",".join(names) + "}" + _sq(tail)
    return _sq(excl + names[0] + tail)


def _zsh_function(cmd: CommandInfo, globals_: tuple[OptionInfo, ...]) -> str:
    fn = _ident(cmd.path)
    specs = [_zsh_option(o) for o in _options_for(cmd, globals_)]
    lines = [f"{fn}() {{"]
    if cmd.is_group:
        specs += [_sq(": :->command"), _sq("*:: :->argument")]
        lines += [
            '    local curcontext="$curcontext" state line ret=1',
            "    typeset -A opt_args",
            "    _arguments -s -S -C \\",
            *[f"        {s} \\" for s in specs[:-1]],
            f"        {specs[-1]} && ret=0",
            "    case $state in",
            "        command)",
            "            local -a commands",
            "            commands=(",
            *[f"                {_sq(s.name.replace(':', chr(92) + ':') + ':' + s.help)}" for s in cmd.subcommands],
            "            )",
            f"            _describe -t commands {_sq(cmd.key + ' command')} commands && ret=0",
            "            ;;",
            "        argument)",
            f'            curcontext="${{curcontext%:*:*}}:{"-".join(cmd.path)}-$words[1]:"',
            "            case $words[1] in",
            *[f"                {_sq(s.name)}) {_ident(s.path)} && ret=0 ;;" for s in cmd.subcommands],
            "            esac",
            "            ;;",
            "    esac",
            "    return ret",
        ]
    else:
        for a in cmd.arguments:
            msg = a.name.replace(":", "-")
            action = _zsh_action(a.kind, a.choices)
            if a.variadic:
                specs.append(_sq(f"*:{msg}:{action}"))
            elif a.required:
                specs.append(_sq(f":{msg}:{action}"))
            else:
                specs.append(_sq(f"::{msg}:{action}"))
        lines += ["    _arguments -s -S \\", *[f"        {s} \\" for s in specs[:-1]], f"        {specs[-1]}"]
    lines.append("}")
    return "\n".join(lines)


def generate_zsh(root: CommandInfo) -> str:
    globals_ = _global_options(root)
    funcs = [_zsh_function(cmd, globals_) for cmd in root.walk()]
    tail = f"""
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
    # autoloaded from $fpath
    _{PROG} "$@"
else
    # sourced
    compdef _{PROG} {PROG}
fi
"""
    return _ZSH_HEADER.format(prog=PROG) + _ZSH_IMAGES.format(prog=PROG) + "\n" + "\n\n".join(funcs) + "\n" + tail


# == fish =================================================================================
_FISH_HEADER = """\
# fish completion for {prog}.
#
# Generated by `{prog} completion fish`; do not edit, regenerate it instead.
# Static: no Python runs when you press TAB.
#
# Install: copy it to ~/.config/fish/completions/{prog}.fish
#   {prog} completion fish > ~/.config/fish/completions/{prog}.fish
# (system-wide: /usr/share/fish/vendor_completions.d/{prog}.fish).
"""

_FISH_FUNCS = r"""
# __{prog}_subcommands PATH: the subcommands of the command group PATH.
function __{prog}_subcommands
    switch "$argv"
{subs_cases}
    end
end

# __{prog}_takes_value PATH OPTION: succeeds if OPTION of PATH takes a value.
function __{prog}_takes_value
    switch "$argv[1]|$argv[2]"
{value_cases}
    end
    return 1
end

# __{prog}_state: the (sub)command path on the command line, then the number of
# positional arguments after it.
function __{prog}_state
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l path {prog}
    set -l npos 0
    set -l skip 0
    set -l dashdash 0
    for tok in $tokens
        if test $skip -eq 1
            set skip 0
            continue
        end
        if test $dashdash -eq 0
            switch $tok
                case --
                    set dashdash 1
                    continue
                case '-*=*'
                    continue
                case '-*'
                    if __{prog}_takes_value $path $tok
                        set skip 1
                    end
                    continue
            end
        end
        if test $npos -eq 0; and contains -- $tok (__{prog}_subcommands $path)
            set path "$path $tok"
            set dashdash 0
        else
            set npos (math $npos + 1)
        end
    end
    printf '%s\n' $path $npos
end

# __{prog}_using PATH...: the command line is in (sub)command PATH.
function __{prog}_using
    set -l state (__{prog}_state)
    test "$state[1]" = "$argv"
end

# __{prog}_needs_command PATH...: a subcommand of group PATH is expected next.
function __{prog}_needs_command
    set -l state (__{prog}_state)
    test "$state[1]" = "$argv"; and test "$state[2]" -eq 0
end

# __{prog}_images: the store's image names (NAME:TAG), from `{prog} images`; the command
# line's --root and --config apply.
function __{prog}_images
    string match -q -- '-*' (commandline -ct); and return  # an option is being typed
    set -l tokens (commandline -opc)
    set -l args
    for i in (seq 2 (count $tokens))
        switch $tokens[$i]
            case --root --config
                set -l j (math $i + 1)
                test $j -le (count $tokens); and set args $args $tokens[$i] $tokens[$j]
            case '--root=*' '--config=*'
                set args $args $tokens[$i]
        end
    end
    command {prog} $args images --format '{{{{.Repository}}}}:{{{{.Tag}}}}' 2>/dev/null | string match -v -- '*<none>*'
end

complete -c {prog} -f
"""


def _fish_names(o: OptionInfo) -> str:
    parts = []
    for n in o.names:
        if n.startswith("--"):
            parts.append(f"-l {_fq(n[2:])}")
        elif len(n) == 2:
            parts.append(f"-s {_fq(n[1:])}")
        else:
            parts.append(f"-o {_fq(n[1:])}")
    return " ".join(parts)


def _fish_value(kind: str, choices: tuple[str, ...], requires: bool) -> str:
    r = "-x" if requires else "-f"
    if kind == FILE:
        return "-r -F" if requires else "-F"
    if kind == DIR:
        return f"{r} -a {_fq('(__fish_complete_directories (commandline -ct))')}"
    if kind == CHOICE:
        return f"{r} -a {_fq(' '.join(choices))}"
    if kind == IMAGE:
        return f"{r} -a {_fq(f'(__{PROG}_images)')}"
    return r if requires else ""


def _fish_option(o: OptionInfo, cond: str | None) -> str:
    parts = ["complete -c", PROG]
    if cond:
        parts += ["-n", _fq(cond)]
    parts.append(_fish_names(o))
    if o.takes_value:
        parts.append(_fish_value(o.kind, o.choices, True))
    if o.help:
        parts += ["-d", _fq(o.help)]
    return " ".join(p for p in parts if p)


def generate_fish(root: CommandInfo) -> str:
    globals_ = _global_options(root)
    global_ids = {id(o) for o in globals_}
    subs_cases, value_cases, value_global = [], [], []
    lines: list[str] = []
    for o in globals_:
        lines.append(_fish_option(o, None))
    for cmd in root.walk():
        words = " ".join(cmd.path)
        if cmd.subcommands:
            subs_cases.append(f"        case {_fq(cmd.key)}\n            printf '%s\\n' {' '.join(_fq(s.name) for s in cmd.subcommands)}")
        for o in cmd.options:
            if o.takes_value and id(o) not in global_ids:
                value_cases.append(f"        case {' '.join(_fq(cmd.key + '|' + n) for n in o.names)}\n            return 0")
        for o in cmd.options:
            if id(o) not in global_ids:
                lines.append(_fish_option(o, f"__{PROG}_using {words}"))
        for s in cmd.subcommands:
            lines.append(
                f"complete -c {PROG} -n {_fq(f'__{PROG}_needs_command {words}')} -f -a {_fq(s.name)}"
                + (f" -d {_fq(s.help)}" if s.help else "")
            )
        if not cmd.is_group:
            seen: set[tuple[str, tuple[str, ...]]] = set()
            for a in cmd.arguments:
                if a.kind == NONE or (a.kind, a.choices) in seen:
                    continue
                seen.add((a.kind, a.choices))
                lines.append(f"complete -c {PROG} -n {_fq(f'__{PROG}_using {words}')} {_fish_value(a.kind, a.choices, False)}")
    for o in globals_:
        if o.takes_value:
            value_global.append(
                f"        case {' '.join(_fq(PROG + '*|' + n) for n in o.names)}\n            return 0"
            )
    funcs = _FISH_FUNCS.format(
        prog=PROG,
        subs_cases="\n".join(subs_cases),
        value_cases="\n".join(value_cases + value_global),
    )
    return _FISH_HEADER.format(prog=PROG) + funcs + "\n" + "\n".join(lines) + "\n"


# == entry points =========================================================================
_GENERATORS = {"bash": generate_bash, "fish": generate_fish, "zsh": generate_zsh}


def generate(shell: str, *, root: CommandInfo | None = None) -> str:
    """The completion script for SHELL (bash, zsh or fish) of the current command tree.

    ``root`` replaces the tree of ``app`` (tests build one from another typer app).
    """
    gen = _GENERATORS.get(shell)
    if gen is None:
        raise UsageError(f"unsupported shell {shell!r}: choose one of {', '.join(SHELLS)}")
    return gen(root if root is not None else command_tree())


def completion_cmd(
    shell: Annotated[str, typer.Argument(help="One of: bash, zsh, fish.", show_default=False)],
) -> None:
    """Print a shell completion script for bash, zsh or fish.

    The script is static: no Python runs on TAB, so regenerate it after an upgrade.

    \b
    Examples:
      imgctl completion bash > ~/.local/share/bash-completion/completions/imgctl
      imgctl completion zsh > ~/.zsh/completions/_imgctl
      imgctl completion fish > ~/.config/fish/completions/imgctl.fish
    """
    sys.stdout.write(generate(shell))
