"""``floy serve``: the HTTP API and the live dashboard over the same service as the CLI."""

from __future__ import annotations

import logging
from pathlib import Path

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, pass_ctx


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; without --cert only a loopback address, unless "
                   "--allow-remote-plaintext.")
@click.option("--port", type=int, default=8080, show_default=True,
              help="TCP port (0: a free one, announced on start).")
@click.option("--cert", "certfile", type=click.Path(path_type=Path),
              help="TLS certificate chain (PEM); serve HTTPS.")
@click.option("--key", "keyfile", type=click.Path(path_type=Path),
              help="TLS private key (PEM) of --cert.")
@click.option("--tokens", "tokens_file", type=click.Path(path_type=Path),
              help="Tokens file (default <home>/tokens.yml; see floy token).")
@click.option("--allow-remote-plaintext", is_flag=True,
              help="Listen on a non-loopback address without TLS (tokens cross the network "
                   "in clear: only behind a TLS-terminating proxy).")
@pass_ctx
def serve(c: Context, host: str, port: int, certfile: Path | None, keyfile: Path | None,
          tokens_file: Path | None, allow_remote_plaintext: bool) -> None:
    """Serve the HTTP API (/v1/...), its OpenAPI document (/openapi.json) and the live
    dashboard (/) until SIGINT or SIGTERM. Every /v1 call needs a bearer token made with
    'floy token add'; runs are carried as the CLI's are (a worker per run, or the queue)."""
    from orchestrator.http.server import ServeOptions
    from orchestrator.http.server import serve as run_server

    logging.getLogger("floy.http").setLevel(logging.INFO)
    opts = ServeOptions(host=host, port=port, certfile=certfile, keyfile=keyfile,
                        tokens_file=tokens_file, allow_remote_plaintext=allow_remote_plaintext)
    run_server(c.service, opts, announce=lambda line: click.echo(line, err=True))
