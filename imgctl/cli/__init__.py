"""The command line: a thin layer over the library.

This module owns the only mapping from exceptions to exit codes and one-line
messages: 0 ok, 1 failure, 2 usage, 130 interrupted.  Tracebacks only with
``--debug``.  ``COMMANDS`` lists every command and the module that defines it; the lazy
group imports a command's module only when that command runs, so that a command that does
not talk to a registry never imports the HTTP stack or the progress library.
"""

import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from typer.core import TyperGroup

from imgctl import __version__
from imgctl.errors import ImgctlError, UsageError

__all__ = ["COMMANDS", "app", "main", "state"]


class _State:
    """Per-invocation settings from the global options (reset by every ``main`` call)."""

    def __init__(self) -> None:
        self.root: Path | None = None
        self.config_path: Path | None = None
        self.debug = False
        self.wants_help = False  # -h/--help: help is shown whatever the configuration says
        self._config = None
        self._store = None

    def config(self):
        if self._config is None:
            from imgctl.config import load_config

            self._config = load_config(self.config_path)
        return self._config

    def store(self):
        if self._store is None:
            from imgctl.config import default_root
            from imgctl.store import Store

            self._store = Store(self.root or default_root())
        return self._store

    def log(self, message: str) -> None:
        if self.debug:  # messages quote registries' errors: one clean line each
            from imgctl.cli.format.width import terminal_safe

            print(f"DEBU[imgctl] {terminal_safe(message)}", file=sys.stderr)


state = _State()

# == the command table ====================================================================
# Every command, in the order ``imgctl --help`` lists them: (name, module under imgctl/cli/,
# function in it, hidden).  A group's entry names a table of its own instead of a module.
# Nothing registers itself on import: the lazy group below imports a command's module only
# when that command runs (or help lists it), so ``imgctl images`` never imports the HTTP stack.
IMAGE_COMMANDS = (
    ("pull", "pull", "pull_cmd", False),
    ("ls", "images", "images_cmd", False),
    ("list", "images", "images_cmd", True),
    ("tag", "tag_rmi", "tag_cmd", False),
    ("rm", "tag_rmi", "rmi_cmd", False),
    ("remove", "tag_rmi", "rmi_cmd", True),
    ("prune", "tag_rmi", "prune_cmd", False),
    ("inspect", "inspect", "inspect_cmd", False),
    ("history", "inspect", "history_cmd", False),
    ("save", "save", "save_cmd", False),
    ("load", "save", "load_cmd", False),
    ("push", "push", "push_cmd", False),
)
SYSTEM_COMMANDS = (("df", "tag_rmi", "df_cmd", False),)
COMMANDS = (
    ("pull", "pull", "pull_cmd", False),
    ("images", "images", "images_cmd", False),
    ("tag", "tag_rmi", "tag_cmd", False),
    ("rmi", "tag_rmi", "rmi_cmd", False),
    ("verify", "tag_rmi", "verify_cmd", False),
    ("search", "search", "search_cmd", False),
    ("tags", "search", "tags_cmd", False),
    ("login", "login", "login_cmd", False),
    ("logout", "login", "logout_cmd", False),
    ("inspect", "inspect", "inspect_cmd", False),
    ("history", "inspect", "history_cmd", False),
    ("save", "save", "save_cmd", False),
    ("load", "save", "load_cmd", False),
    ("export", "save", "export_cmd", False),
    ("push", "push", "push_cmd", False),
    ("completion", "completion", "completion_cmd", False),
    ("image", IMAGE_COMMANDS, "Manage images (docker-style `image` subcommands).", False),
    ("system", SYSTEM_COMMANDS, "Manage the store (docker-style `system` subcommands).", False),
)


class LazyGroup(TyperGroup):
    """A click group whose subcommands come from a command table and are built on first use
    (click's documented "lazily loading subcommands" pattern).  ``list_commands`` is the
    table's order, so help lists the commands the same way whatever ran before."""

    def __init__(self, *args, table=COMMANDS, **kwargs) -> None:
        kwargs.setdefault("rich_markup_mode", None)
        super().__init__(*args, **kwargs)
        self.table = {entry[0]: entry for entry in table}

    def list_commands(self, ctx) -> list[str]:
        return list(self.table)

    def parse_args(self, ctx, args: list[str]) -> list[str]:
        if ctx.parent is None:  # the root: its options may come after the command too
            _missing_global_value(args)
            args = _hoist_global_options(args)
        return super().parse_args(ctx, args)

    def get_command(self, ctx, name: str):
        if name not in self.commands and name in self.table:
            command = _build_command(self.table[name])
            docker_placeholders(command, name)
            self.commands[name] = command
        return self.commands.get(name)


def _build_command(entry):
    """The click command for one table entry (a group for an entry that holds a table)."""
    name, where, what, hidden = entry
    if not isinstance(where, str):
        return LazyGroup(name=name, table=where, help=what, no_args_is_help=True, hidden=hidden)
    import importlib

    one = typer.Typer(add_completion=False, rich_markup_mode=None, pretty_exceptions_enable=False)
    one.command(name, hidden=hidden)(getattr(importlib.import_module(f"imgctl.cli.{where}"), what))
    return typer.main.get_command(one)  # one command and no callback: that command itself


app = typer.Typer(
    name="imgctl",
    help="A daemonless image store manager: pull, list, tag and remove container images.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        print(f"imgctl version {__version__}")
        raise typer.Exit()


@app.callback()
def _global(
    root: Annotated[
        Optional[Path],
        typer.Option("--root", envvar="IMGCTL_ROOT", help="Store directory (default: the user data dir).", show_default=False),
    ] = None,
    config: Annotated[
        Optional[Path],
        typer.Option("--config", envvar="IMGCTL_CONFIG", help="Configuration file (default: config.toml in the user config dir).", show_default=False),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show debug output and tracebacks.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """A daemonless image store manager: pull, list, tag and remove container images."""
    state.root = root
    state.config_path = config
    state.debug = debug or state.debug
    if not state.wants_help:
        state.config()  # every command refuses a broken config.toml (no file: one failed open)


def talks_to_registries() -> None:
    """First thing in a command that will talk to a registry: the CA bundle starts loading on
    another thread (OpenSSL parses it without the GIL) while the rest of imgctl is imported."""
    from imgctl import trust

    trust.prefetch()


def image_argument(name: str, *, all_tags: bool):
    """pull/push's NAME: (reference, whether docker's "Using default tag: latest" applies).

    A tag or digest together with ``-a`` is refused, as docker does; without ``-a`` a bare
    name means ``:latest``.
    """
    from imgctl.reference import parse

    ref = parse(name, default_tag=False)
    if all_tags and (ref.tag or ref.digest):
        raise UsageError("tag can't be used with --all-tags/-a")
    if all_tags or ref.tag or ref.digest:
        return ref, False
    return ref.with_tag("latest"), True


_GLOBAL_WITH_VALUE = ("--root", "--config")
_GLOBAL_FLAGS = ("--debug",)


def _missing_global_value(args: list[str]) -> None:
    """``imgctl images --root`` (nothing after it): the value is missing, as click says it
    for a command's own options (rather than "No such option" from the command)."""
    end = args.index("--") if "--" in args else len(args)
    for i, a in enumerate(args[:end]):
        if a in _GLOBAL_WITH_VALUE and i + 1 >= end:
            raise UsageError(f"Option '{a}' requires an argument.")


def _hoist_global_options(argv: list[str]) -> list[str]:
    """Let global options appear anywhere before ``--``: ``imgctl pull --root X ubuntu``."""
    front: list[str] = []
    rest: list[str] = []
    i = 0
    while i < len(argv):
        a = argv[i]
        if a == "--":
            rest.extend(argv[i:])
            break
        if a in _GLOBAL_FLAGS:
            front.append(a)
        elif a in _GLOBAL_WITH_VALUE and i + 1 < len(argv):
            front.extend(argv[i : i + 2])
            i += 1
        elif a.startswith(tuple(f"{o}=" for o in _GLOBAL_WITH_VALUE)):
            front.append(a)
        else:
            rest.append(a)
        i += 1
    return front + rest


# Usage lines with docker's placeholders (``Usage: imgctl pull [OPTIONS] NAME[:TAG|@DIGEST]``)
# rather than typer's ``{name}`` and ``<str>``.  Arguments not listed get their name in
# capitals (``[NAME]`` when optional, ``NAME [NAME...]`` when repeatable); option values are
# docker's type words (``string``, ``int``, ``filter``, ``stringArray``) unless the option
# names its own placeholder (``FILE``, ``URL``).
_ARGUMENT_PLACEHOLDERS = {
    "pull": {"name": "NAME[:TAG|@DIGEST]"},
    "push": {"name": "NAME[:TAG]"},
    "images": {"repository": "[REPOSITORY[:TAG]]"},
    "tag": {"source": "SOURCE_IMAGE[:TAG]", "target": "TARGET_IMAGE[:TAG]"},
    "tags": {"name": "NAME"},
    "search": {"term": "TERM"},
}
_SAME_COMMAND = {"ls": "images", "list": "images", "rm": "rmi", "remove": "rmi"}


def _argument_placeholder(command: str, param) -> str:
    known = _ARGUMENT_PLACEHOLDERS.get(_SAME_COMMAND.get(command, command), {}).get(param.name or "")
    if known:
        return known
    word = (param.name or "arg").upper()
    if word.endswith("S") and param.nargs != 1:
        word = word[:-1]  # images -> IMAGE [IMAGE...]
    if param.nargs != 1:
        return f"{word} [{word}...]" if param.required else f"[{word}...]"
    return word if param.required else f"[{word}]"


def _option_placeholder(param) -> str | None:
    if getattr(param, "is_flag", False) or getattr(param, "count", False):
        return None
    if param.metavar is not None or "Choice" in type(param.type).__name__:
        return param.metavar
    if param.multiple:
        return "filter" if param.name == "filter_" else "stringArray"
    return {"INT": "int", "FLOAT": "float"}.get(param.type.name.upper(), "string")


def docker_placeholders(command, name: str = "imgctl") -> None:
    """Set docker's placeholders on every parameter of the click ``command`` tree."""
    import types

    for param in getattr(command, "params", ()):
        if param.param_type_name == "argument":
            meta = _argument_placeholder(name, param)
            param.metavar = meta
            param.make_metavar = types.MethodType(lambda self, ctx=None, *, usage=False, m=meta: m, param)
        elif param.param_type_name == "option":
            param.metavar = _option_placeholder(param)
    for sub_name, sub in (getattr(command, "commands", None) or {}).items():
        docker_placeholders(sub, sub_name)


def _cli_exceptions():
    """(Exit, Abort, ClickException, UsageError) of the click that typer runs on.

    typer >= 0.2x carries its own copy of click; older releases use click itself.
    """
    try:
        from typer._click import exceptions as ce
    except ImportError:  # pragma: no cover - older typer
        from click import exceptions as ce
    return (typer.Exit, ce.Exit) if hasattr(ce, "Exit") else (typer.Exit,), (typer.Abort, ce.Abort) if hasattr(ce, "Abort") else (typer.Abort,), ce.ClickException, ce.UsageError


_NOT_NEEDED = ("trio", "anyio", "httpx._main", "wcwidth")


def _skip_unneeded_imports() -> None:
    """Start-up: mark optional modules our dependencies probe for as absent, unless already loaded.

    httpcore imports trio and anyio when installed (for async locks imgctl never uses: its
    client is synchronous), and httpx imports its own command line (click, rich, pygments)
    when those are installed.  Together that is ~80 ms of every registry command, and rich
    must not load off a terminal.  tabulate imports wcwidth to measure wide characters, but
    imgctl hands it only printable-ASCII tables (cli/format/tables.py; the others go through
    the Go tabwriter with docker's width rules).
    Only the CLI process does this; the library does not.
    """
    for name in _NOT_NEEDED:
        sys.modules.setdefault(name, None)


def _one_line(error: BaseException) -> str:
    """An error's text for the terminal: one line, whatever a registry, an archive or a
    file name put in it (cli.format.width.terminal_safe escapes LF, CR, ESC and the rest)."""
    from imgctl.cli.format.width import terminal_safe

    return terminal_safe(str(error))


def _print_traceback() -> None:
    """--debug: the traceback, its quoted messages neutralised like every other output."""
    import traceback

    from imgctl.cli.format.width import terminal_safe

    print(terminal_safe(traceback.format_exc(), keep_lf_tab=True), end="", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the CLI and turn every outcome into an exit status."""
    import gc

    _skip_unneeded_imports()
    gc.set_threshold(50_000, 50, 50)  # a short-lived process: collect cycles rarely (start-up spends ~10% in gc)
    exit_types, abort_types, click_exception, click_usage = _cli_exceptions()
    args = list(sys.argv[1:] if argv is None else argv)
    state.__init__()
    state.debug = "--debug" in args[: args.index("--")] if "--" in args else "--debug" in args
    state.wants_help = bool({"-h", "--help"} & set(args[: args.index("--")] if "--" in args else args))
    code = 0
    try:
        command = typer.main.get_command(app)
        docker_placeholders(command)
        result = command.main(args=args, prog_name="imgctl", standalone_mode=False)
        if isinstance(result, int):
            code = result
    except exit_types as e:
        code = e.exit_code
    except abort_types:
        print("Error: aborted", file=sys.stderr)
        code = 130
    except click_exception as e:
        if type(e).__name__ == "NoArgsIsHelpError" and getattr(e, "ctx", None) is not None:
            print(e.ctx.get_help())  # `imgctl` or `imgctl image` alone: help, as docker does
        else:
            e.show()
            code = 2 if isinstance(e, click_usage) else 1
    except ImgctlError as e:
        if state.debug:
            _print_traceback()
        for err in getattr(e, "errors", None) or [e]:
            print(f"Error: {_one_line(err)}", file=sys.stderr)
        code = e.exit_code
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except Exception as e:  # a bug: say so in one line, the traceback with --debug
        if state.debug:
            _print_traceback()
        print(f"Error: unexpected {e.__class__.__name__}: {_one_line(e)} (run with --debug for details)", file=sys.stderr)
        code = 1
    finally:
        if state._store is not None:
            state._store.close()
    if argv is None:
        # The process ends here (the console script; tests pass argv and run on).  Whatever is
        # still alive dies with it: frozen, the interpreter's final collection does not walk its
        # ~40,000 objects (about 20 ms of an up-to-date pull here).  Files and the store are closed
        # explicitly above and in the commands; nothing relies on a collection at exit.
        gc.freeze()
    sys.exit(code)
