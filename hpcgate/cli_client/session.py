"""``hpcgate login`` and ``hpcgate logout``."""

from __future__ import annotations

import sys
import time
from typing import Annotated

import typer

from hpcgate.cli_client.common import one_line_errors
from hpcgate.client import Client


@one_line_errors
def login(
    url: Annotated[
        str | None, typer.Option(help="Server URL (default: HPCGATE_URL, else the last one).")
    ] = None,
    email: Annotated[str | None, typer.Option(help="Your login e-mail.")] = None,
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input.")
    ] = False,
    refresh: Annotated[
        bool, typer.Option("--refresh", help="Renew the stored login's access token now.")
    ] = False,
) -> None:
    """Log in and store the token in ~/.config/hpcgate/credentials.json (mode 0600).

    The access token is renewed automatically with the stored refresh token; --refresh does
    it now.
    """
    with Client(url) as client:
        if refresh:
            renewed = client.refresh()
            left = int(renewed.expires_at - time.time())
            typer.echo(f"refreshed the login to {client.url} (valid {left} s)", err=True)
            return
        if not email:
            email = typer.prompt("E-mail")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = typer.prompt("Password", hide_input=True)
        token = client.login(email, password)
        typer.echo(f"logged in to {client.url} as {token.user.email} ({token.user.role})", err=True)


@one_line_errors
def logout() -> None:
    """Revoke the stored login on the server and delete it here."""
    with Client() as client:
        client.logout()
        typer.echo(f"logged out of {client.url}", err=True)
