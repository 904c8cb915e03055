"""The ``floy`` command line: thin click commands over the service, one verb a module.

Each command parses options, builds a params value, calls one service method and renders
the result; ``--json`` prints exactly the spec's JSON object. Errors are turned into a
message and an exit code in one place (:func:`main`). Heavy imports (SQLAlchemy,
ansible-runner) happen only in commands that need them, so ``floy --help`` stays fast.
"""

from __future__ import annotations

import io
import json
import sys

import click

from orchestrator.cli import (
    canary,
    cancel,
    deploy,
    history,
    instances,
    reap,
    refresh,
    rollback,
    serve,
    status,
    token,
    versions,
    worker,
)
from orchestrator.cli.app import cli, log
from orchestrator.errors import ExitCode, FloyError

for _verb in (deploy.deploy, status.status, cancel.cancel, rollback.rollback,
              history.history, refresh.refresh, versions.versions, instances.instances,
              reap.reap, worker.worker, worker.workers, serve.serve, token.token,
              canary.promote, canary.abort):
    cli.add_command(_verb)

__all__ = ["cli", "main"]


def main(argv: list[str] | None = None) -> None:
    """Console entry point: the one place errors become messages and exit codes.

    Messages may quote stored or user-supplied text, so they are printed through
    :func:`~orchestrator.cli.display.safe_text` (``--json`` errors are JSON-escaped instead).
    """
    from orchestrator.cli.display import safe_text

    as_json = "--json" in (argv if argv is not None else sys.argv[1:])
    try:
        cli.main(args=argv, prog_name="floy", standalone_mode=False)
    except FloyError as exc:
        if as_json:
            click.echo(json.dumps(exc.to_dict()), err=True)
        else:
            click.echo(f"floy: {safe_text(str(exc))}", err=True)
        sys.exit(int(exc.exit_code))
    except click.exceptions.Abort:
        click.echo("floy: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        shown = io.StringIO()
        exc.show(file=shown)  # usage and hint lines are click's own: keep their newlines
        click.echo(safe_text(shown.getvalue(), keep_newlines=True), err=True, nl=False)
        sys.exit(int(ExitCode.BAD_INPUT))
    except KeyboardInterrupt:
        click.echo("floy: interrupted", err=True)
        sys.exit(int(ExitCode.INTERRUPTED))
    except Exception:
        log.debug("internal error", exc_info=True)
        import traceback

        click.echo("floy: internal error (run with -v for the traceback):\n"
                   + safe_text(traceback.format_exc().splitlines()[-1]), err=True)
        sys.exit(int(ExitCode.INTERNAL))
