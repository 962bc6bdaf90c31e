"""``imgctl login`` and ``imgctl logout``: credentials in imgctl's own auth file."""

import sys
from typing import Annotated, Optional

import typer

from imgctl.cli import state, talks_to_registries
from imgctl.cli.authfile import AuthFile
from imgctl.errors import UsageError


def login_cmd(
    server: Annotated[
        Optional[str],
        typer.Argument(help="Registry to log in to (default: Docker Hub).", show_default=False),
    ] = None,
    username: Annotated[Optional[str], typer.Option("--username", "-u", help="Username.", show_default=False)] = None,
    password: Annotated[
        Optional[str],
        typer.Option("--password", "-p", help="Password (insecure: prefer --password-stdin).", show_default=False),
    ] = None,
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
    authfile: AuthFile = None,
) -> None:
    """Log in to a registry; the credentials are checked before they are saved."""
    talks_to_registries()
    from imgctl import auth
    from imgctl.registry import RegistryClient

    key = auth.server_key(server)
    domain = auth.key_domain(key)
    if password is not None and password_stdin:
        raise UsageError("--password and --password-stdin are mutually exclusive")
    if password_stdin:
        if not username:
            raise UsageError("Must provide --username with --password-stdin")
        password = sys.stdin.read()
        password = password.removesuffix("\n").removesuffix("\r")
    elif password is not None:
        print("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", file=sys.stderr)
    if password is None or not username:
        if not sys.stdin.isatty():
            raise UsageError("Cannot perform an interactive login from a non TTY device")
        if not username:
            username = input("Username: ").strip()
        if password is None:
            import getpass

            password = getpass.getpass("Password: ")
    if not username:
        raise UsageError("Username is required")
    if not password:
        raise UsageError("Password is required")

    def only_this(host: str) -> tuple[str, str] | None:
        return (username, password) if auth.key_domain(host) == domain else None

    with RegistryClient(state.config(), credentials=only_this, log=state.log) as client:
        client.check_login(domain)
    path = auth.save(key, username, password, authfile)
    state.log(f"credentials for {key} saved in {path}")
    print(f"WARNING! Your password will be stored unencrypted in {path}.", file=sys.stderr)
    print("Login Succeeded")


def logout_cmd(
    server: Annotated[
        Optional[str],
        typer.Argument(help="Registry to log out from (default: Docker Hub).", show_default=False),
    ] = None,
    authfile: AuthFile = None,
) -> None:
    """Remove the saved credentials for a registry."""
    from imgctl import auth

    key = auth.server_key(server)
    if auth.remove(key, authfile):
        print(f"Removing login credentials for {key}")
        return
    print(f"Not logged in to {key}")
    if auth.stored_in_docker_config(key, authfile):
        print(
            f"Credentials for {key} come from docker's {auth.docker_config_path()}; imgctl does not change that file.",
            file=sys.stderr,
        )


