"""`winnow keys ...`: create, list and revoke the service's API keys (docs/HARDENING.md)."""

from __future__ import annotations

import datetime as dt

import typer

from winnow.cli.app import app, config

keys_app = typer.Typer(help="API keys of the HTTP service (scopes: read, write, admin).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")


def _file():
    from winnow.serving.auth import KeyFile, keys_path

    return KeyFile(keys_path(config()))


def _when(ts: int | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@keys_app.command("create")
def create(scope: str = typer.Option(..., "--scope", help="comma-separated: read, write, admin"),
           name: str = typer.Option("", "--name", help="a label, e.g. the client that uses the key")) -> None:
    """Create a key and print its token ONCE (only its SHA-256 is stored)."""
    from winnow.serving.auth import parse_scopes

    key, token = _file().create(parse_scopes(scope), name=name)
    typer.echo(f"created key {key.id} (scopes: {','.join(key.scopes)}; name: {key.name or '-'})", err=True)
    typer.echo("the token is shown only now; send it as 'Authorization: Bearer <token>':", err=True)
    typer.echo(token)


@keys_app.command("list")
def list_keys() -> None:
    """Every key: id, name, scopes, created, revoked (never the token or its hash)."""
    keys = _file().list()
    if not keys:
        typer.echo("no API keys (create one with `winnow keys create --scope read`)")
        return
    typer.echo(f"{'id':<9} {'scopes':<17} {'created':<21} {'revoked':<21} name")
    for k in keys:
        typer.echo(f"{k.id:<9} {','.join(k.scopes):<17} {_when(k.created_at):<21} {_when(k.revoked_at):<21} {k.name}")


@keys_app.command("revoke")
def revoke(key_id: str = typer.Argument(..., help="the id shown by `winnow keys list`")) -> None:
    """Revoke a key: running servers refuse it within about a second."""
    key = _file().revoke(key_id)
    typer.echo(f"revoked key {key.id} at {_when(key.revoked_at)}")
