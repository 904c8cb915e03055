"""``floy worker``: the daemon that carries queued runs; ``floy workers``: who serves."""

from __future__ import annotations

import logging
import signal
from types import FrameType

import click

from orchestrator.cli.app import EXIT_CODES_HELP, Context, emit_json, pass_ctx
from orchestrator.timefmt import format_time


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--max-runs", type=click.IntRange(1, 256), default=4, show_default=True,
              help="Runs carried at once (each is one ansible-playbook with its forks).")
@click.option("--grace", "grace_seconds", type=click.FloatRange(0, 86400), default=60.0,
              show_default=True,
              help="Seconds a stopping worker lets its runs go on before it hands them back.")
@click.option("--poll", "poll_seconds", type=click.FloatRange(0.05, 60), default=0.5,
              show_default=True,
              help="Seconds between looks at the queue when idle (while listening: this or 5 s, "
                   "whichever is longer).")
@click.option("--listen/--no-listen", default=True, show_default=True,
              help="On PostgreSQL, LISTEN for queued runs and cancels (NOTIFY) instead of "
                   "relying on the polls; --no-listen behind a pooler that cannot carry "
                   "LISTEN (PgBouncer in transaction mode).")
@pass_ctx
def worker(c: Context, max_runs: int, grace_seconds: float, poll_seconds: float,
           listen: bool) -> None:
    """Serve the queue until stopped: claim queued runs (executor: queue), carry up to
    --max-runs at once, renew their leases, and reap runs whose worker died. Start one or
    more on every machine that shares the database. SIGTERM or Ctrl-C stops claiming and
    lets the runs go on for --grace seconds; the ones still going are then stopped, their
    in-flight instances probed, and handed back unfinished for another worker to resume. A
    second signal ends the grace at once."""
    logging.getLogger("orchestrator").setLevel(logging.INFO)
    logging.getLogger("orchestrator.ansible.runner").setLevel(logging.WARNING)
    daemon = c.service.worker_daemon(max_runs=max_runs, grace_seconds=grace_seconds,
                                     poll_seconds=poll_seconds, listen=listen)

    def stop(signum: int, _frame: FrameType | None) -> None:
        daemon.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"floy worker {daemon.name}: serving (max {max_runs} run(s); SIGTERM or "
               f"Ctrl-C stops it)", err=True)
    carried = daemon.serve()
    click.echo(f"floy worker {daemon.name}: stopped after carrying {carried} run(s)",
               err=True)


@click.command(epilog=EXIT_CODES_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def workers(c: Context, as_json: bool) -> None:
    """List the worker daemons that share this database: node, state, runs carried, last
    heartbeat."""
    rows = c.service.workers()
    if as_json:
        emit_json([{"name": w.name, "node": w.node, "pid": w.pid, "state": w.state.value,
                    "running": w.running, "max_runs": w.max_runs,
                    "started_at": format_time(w.started_at),
                    "heartbeat_at": format_time(w.heartbeat_at),
                    "stopped_at": format_time(w.stopped_at) if w.stopped_at else None}
                   for w in rows])
        return
    if not rows:
        click.echo("no worker daemon has registered (executor: process needs none)")
        return
    from orchestrator.cli import display

    for w in rows:
        click.echo(f"{display.safe_text(w.name)}  {w.state.value:<8}  "
                   f"{w.running}/{w.max_runs} run(s)  last beat {format_time(w.heartbeat_at)}")
