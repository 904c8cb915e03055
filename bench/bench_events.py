"""Event ingestion: how many runner events per second floy folds and persists.

``bench_events.py [--events 200000] [--instances 1000]`` replays the recorded events of real
runs (``tests/fixtures/events/*.jsonl``, every case in turn) with host names rewritten to
cover ``--instances`` instances per run and counters renumbered, as a stream of runs of
that many instances, through

- **gen**: the replay generator alone (its cost is inside the two figures below);
- **fold**: ``orchestrator.domain.events.fold_event``;
- **fold+store**: the fold and ``Store.apply_updates`` of the updates it emits, on a real
  SQLite file, exactly as the worker's event handler does (recording and closing each run
  is outside the timed part).

Each mode runs in its own process, so its peak RSS (``ru_maxrss``), read at 1/4, 1/2 and all
of the events, is its own: a flat peak means memory does not grow with the events. The goal
is >= 20,000 events/s persisted; when it is missed, a cProfile of fold+store over a part of
the events shows where the time goes.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _measure import REPO, banner, current_rss_mib, peak_rss_mib

sys.path.insert(0, str(REPO))

from orchestrator.domain.events import FoldState, fold_event
from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.engine.ingest import EventSink
from orchestrator.models import InstanceSpec, Status
from orchestrator.store import Store
from orchestrator.timefmt import utcnow

FIXTURES = REPO / "tests" / "fixtures" / "events"
GOAL = 20_000.0
#: ``--db-url`` (a fresh database for each child), or None: a SQLite file of its own.
DB_URL: str | None = None
POSTGRES: Any = None  # the private server of --postgres
SERVICE = "hello"


def load_cases() -> list[tuple[list[dict[str, Any]], list[str]]]:
    """Every recorded run: its events and the hosts they name, in order of appearance."""
    cases = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        events = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        hosts: list[str] = []
        for e in events:
            host = (e.get("event_data") or {}).get("host")
            if host and host != "localhost" and host not in hosts:
                hosts.append(host)
        cases.append((events, hosts))
    return cases


def instance_ids(count: int) -> list[str]:
    """IDs of the replay's instances."""
    return [f"inst-{n:05d}" for n in range(1, count + 1)]


def replay(total: int, instances: int) -> Iterator[tuple[str, dict[str, Any]]]:
    """``total`` events, as (run ID, event); a new run starts when every instance is used."""
    cases = load_cases()
    ids = instance_ids(instances)
    emitted = 0
    run_no = 0
    case_no = 0
    while emitted < total:
        run_no += 1
        run_id = f"replay-{run_no}"
        counter = 0
        next_id = 0
        while next_id < len(ids) and emitted < total:
            events, hosts = cases[case_no % len(cases)]
            case_no += 1
            if next_id + len(hosts) > len(ids):
                break
            mapping = {h: ids[next_id + k] for k, h in enumerate(hosts)}
            next_id += len(hosts)
            for template in events:
                if emitted >= total:
                    break
                counter += 1
                emitted += 1
                event = dict(template, counter=counter, runner_ident=run_id)
                data = template.get("event_data")
                if data and data.get("host") in mapping:
                    event["event_data"] = dict(data, host=mapping[data["host"]])
                yield run_id, event


def _members(run_id: str, ids: list[str]) -> list[RunInstanceRecord]:
    return [RunInstanceRecord(run_id, i, n, 1, Status.PENDING, "1.0.0")
            for n, i in enumerate(ids)]


def consume(mode: str, total: int, instances: int) -> dict[str, Any]:
    """Process ``total`` events in ``mode``; the seconds count event processing only."""
    ids = instance_ids(instances)
    checkpoints = {total // 4: "1/4", total // 2: "1/2", total: "all"}
    marks: list[dict[str, Any]] = []
    store = None
    tmp = Path(tempfile.mkdtemp(prefix="floy-bench-events-"))
    if mode == "store":
        store = Store.open(DB_URL or f"sqlite:///{tmp / 'floy.db'}")
        store.instances.add([InstanceSpec(i, SERVICE, "127.0.0.1", 9000, {}) for i in ids])
    state = FoldState.start(ids)
    sink: EventSink | None = None
    current = ""
    done = updates = 0
    busy = 0.0
    began = time.perf_counter()
    for run_id, event in replay(total, instances):
        if run_id != current:  # a new run: close the previous one, record this one (untimed)
            if sink is not None:
                sink.flush()  # the end of a run's writes is part of the timed work
            busy += time.perf_counter() - began
            if store is not None:
                if current:
                    store.runs.set_status(current, Status.COMPLETED, finished=True)
                now = utcnow()
                store.runs.create(RunRecord(run_id, "deploy", SERVICE, "1.0.0",
                                           Status.IN_PROGRESS, RunRequest(tuple(ids)),
                                           "bench", now, now),
                                 _members(run_id, ids))
            state = FoldState.start(ids)
            if store is not None:  # the worker's own ingestion: fold + batched writes
                sink = EventSink(store.runs, run_id, None, state)
            current = run_id
            began = time.perf_counter()
        if sink is not None:
            before = len(sink.pending) + sink.flushes
            sink(event)  # type: ignore[arg-type]
            updates += int(len(sink.pending) + sink.flushes != before)
        elif mode != "gen":
            state, ups = fold_event(state, event)  # type: ignore[arg-type]
            updates += len(ups)
        done += 1
        if done in checkpoints:
            marks.append({"at": checkpoints[done], "events": done,
                          "peak_mib": round(peak_rss_mib(), 1),
                          "rss_mib": round(current_rss_mib(), 1)})
    if sink is not None:
        sink.flush()
    busy += time.perf_counter() - began
    if store is not None:
        store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {"mode": mode, "events": done, "updates": updates, "seconds": busy,
            "rate": done / busy if busy else 0.0, "marks": marks}


def run_child(mode: str, total: int, instances: int) -> dict[str, Any]:
    """``consume`` in a fresh process (its own peak RSS)."""
    extra = ["--db-url", _fresh_database()] if POSTGRES is not None else []
    out = subprocess.run([sys.executable, __file__, "--child", mode, "--events", str(total),
                          "--instances", str(instances), *extra], check=True,
                         capture_output=True, text=True)
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def profile(total: int, instances: int) -> str:
    """Where fold+store spends its time over ``total`` events: a breakdown and the top
    functions by own time."""
    prof = cProfile.Profile()
    began = time.perf_counter()
    prof.enable()
    consume("store", total, instances)
    prof.disable()
    wall = time.perf_counter() - began
    stats = pstats.Stats(prof)
    raw: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]

    def own(match: str) -> tuple[float, int]:
        rows = [v for k, v in raw.items() if match in k[2]]
        return sum(v[2] for v in rows), sum(v[1] for v in rows)

    def cumulative(func: str, filename: str) -> tuple[float, int]:
        rows = [v for k, v in raw.items() if k[2] == func and k[0].endswith(filename)]
        return sum(v[3] for v in rows), sum(v[1] for v in rows)

    apply_s, apply_n = cumulative("apply_updates", "store.py")
    fold_s, fold_n = cumulative("fold_event", "events.py")
    commit_s, commit_n = own("'commit' of 'sqlite3.Connection'")
    sql_s, sql_n = own("'execute' of 'sqlite3.Cursor'")
    library = apply_s - commit_s - sql_s
    lines = [
        f"  profiled wall {wall:.2f} s (cProfile slows it down; shares matter, not seconds)",
        f"  Store.apply_updates  {apply_s:6.2f} s cumulative, {apply_n:,} calls = "
        f"{apply_n:,} transactions for {total:,} events ({apply_s / max(apply_n, 1) * 1e3:.2f} "
        "ms each)",
        f"    sqlite3 commit     {commit_s:6.2f} s ({commit_n:,} commits)",
        f"    sqlite3 execute    {sql_s:6.2f} s ({sql_n:,} statements, "
        f"{sql_n / max(apply_n, 1):.1f} per transaction)",
        f"    SQLAlchemy Core    {library:6.2f} s (building, compiling, caching statements; "
        "connection checkout and BEGIN per call)",
        f"  fold_event           {fold_s:6.2f} s cumulative ({fold_n:,} calls)",
        "  top functions by own time:",
    ]
    text = io.StringIO()
    pstats.Stats(prof, stream=text).strip_dirs().sort_stats("tottime").print_stats(10)
    table = text.getvalue().splitlines()
    head = next((n for n, ln in enumerate(table) if "ncalls" in ln), 0)
    lines += ["  " + ln for ln in table[head:] if ln.strip()]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--instances", type=int, default=1000, help="instances per run")
    parser.add_argument("--quick", action="store_true", help="20,000 events, 1,000 instances")
    parser.add_argument("--child", choices=("gen", "fold", "store"), help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    parser.add_argument("--postgres", action="store_true",
                        help="persist into a private PostgreSQL server on loopback "
                             "(tests/integration/pg.py) instead of a SQLite file")
    parser.add_argument("--profile-events", type=int, default=20_000,
                        help="events profiled when the goal is missed")
    args = parser.parse_args()
    total = 20_000 if args.quick else args.events
    global DB_URL, POSTGRES
    DB_URL = args.db_url
    if args.postgres and not args.child:
        from tests.integration.pg import Postgres

        POSTGRES = Postgres().start()
        try:
            return _main(args, total, "PostgreSQL 15 on loopback")
        finally:
            POSTGRES.stop()
    if args.child:
        print(json.dumps(consume(args.child, total, args.instances)))
        return 0
    return _main(args, total, "a SQLite file")


def _fresh_database() -> str:
    assert POSTGRES is not None
    return str(POSTGRES.new_database())


def _main(args: argparse.Namespace, total: int, where: str) -> int:
    banner(f"events: {total:,} replayed runner events, runs of {args.instances:,} instances, "
           f"persisted into {where}")
    results = {mode: run_child(mode, total, args.instances) for mode in ("gen", "fold", "store")}
    labels = {"gen": "replay only", "fold": "fold", "store": "fold+store"}
    for mode, res in results.items():
        marks = "  ".join(f"{m['at']}: peak {m['peak_mib']:.1f} MiB (rss {m['rss_mib']:.1f})"
                          for m in res["marks"])
        print(f"  {labels[mode]:<12} {res['rate']:>10,.0f} events/s  {res['seconds']:6.2f} s  "
              f"{res['updates']:>7,} updates   {marks}")
    rate = results["store"]["rate"]
    marks = results["store"]["marks"]
    growth = marks[-1]["peak_mib"] - marks[0]["peak_mib"] if marks else float("nan")
    verdict = ("met" if rate >= GOAL
               else f"MISSED by {GOAL - rate:,.0f} events/s (x{GOAL / rate:.1f} needed)")
    if rate < GOAL:
        part = min(total, args.profile_events)
        print(f"profile of fold+store over {part:,} events (top functions by own time):")
        print(profile(part, args.instances))
    print(f"summary: fold {results['fold']['rate']:,.0f} events/s, fold+store {rate:,.0f} "
          f"events/s (goal >= {GOAL:,.0f}: {verdict}); peak RSS 1/4 -> all "
          f"{marks[0]['peak_mib']:.1f} -> {marks[-1]['peak_mib']:.1f} MiB ({growth:+.1f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
