"""``floy token``: make, list and revoke the API's bearer tokens (kept hashed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.timefmt import format_time

if TYPE_CHECKING:
    from orchestrator.service.tokens import TokenFile


def _file(c: Context, path: Path | None) -> TokenFile:
    from orchestrator.service.tokens import TokenFile
    from orchestrator.settings import load_settings

    if path is None:  # the home only: no database is opened for token work
        path = load_settings(c.home, c.db_url, c.inventory_dir).home / "tokens.yml"
    return TokenFile(path)


_TOKENS_OPTION = click.option("--tokens", "tokens_file", type=click.Path(path_type=Path),
                              help="Tokens file (default <home>/tokens.yml).")


@click.group(epilog=EXIT_CODES_HELP)
def token() -> None:
    """API tokens of 'floy serve': only each secret's SHA-256 is kept."""


@token.command("add", epilog=EXIT_CODES_HELP)
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(["read", "deployer", "heartbeat"]),
              help="read: status, versions, instances, history; deployer: also deploy, "
                   "cancel, rollback, register; heartbeat: one instance's heartbeats.")
@click.option("--instance", default="", help="The instance a heartbeat token speaks for.")
@click.option("--expires-in", default="", help="Lifetime such as 90s, 15m, 12h, 30d "
                                               "(default: until revoked).")
@_TOKENS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the entry and secret as JSON.")
@pass_ctx
def add(c: Context, name: str, role: str, instance: str, expires_in: str,
        tokens_file: Path | None, as_json: bool) -> None:
    """Make a token NAME and print its secret, once: it is not stored, only its hash."""
    from orchestrator.service.tokens import parse_duration

    file = _file(c, tokens_file)
    lifetime = parse_duration("--expires-in", expires_in) if expires_in else None
    entry, secret = file.add(name, role, instance, lifetime)
    if as_json:
        emit_json({**entry.to_dict(), "token": secret})
        return
    click.echo(secret)
    until = format_time(entry.expires_at) if entry.expires_at else "until revoked"
    click.echo(f"token {entry.name!r} (role {entry.role.value}; {until}) added to {file.path}; "
               f"the secret above is shown only now", err=True)


@token.command("list", epilog=EXIT_CODES_HELP)
@_TOKENS_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print the entries as JSON.")
@pass_ctx
def list_tokens(c: Context, tokens_file: Path | None, as_json: bool) -> None:
    """The tokens: name, role, instance, expiry (never a secret)."""
    file = _file(c, tokens_file)
    entries = file.load()
    if as_json:
        emit_json([{k: v for k, v in e.to_dict().items() if k != "sha256"} for e in entries])
        return
    click.echo(f"{'NAME':<24} {'ROLE':<10} {'INSTANCE':<16} EXPIRES")
    for e in entries:
        until = format_time(e.expires_at) if e.expires_at else "-"
        click.echo(f"{e.name:<24} {e.role.value:<10} {e.instance or '-':<16} {until}")


@token.command("revoke", epilog=EXIT_CODES_HELP)
@click.argument("name")
@_TOKENS_OPTION
@pass_ctx
def revoke(c: Context, name: str, tokens_file: Path | None) -> None:
    """Remove token NAME; a running server refuses it from its next call on."""
    file = _file(c, tokens_file)
    file.revoke(name)
    click.echo(f"token {name!r} revoked in {file.path}", err=True)
