"""The soak's invariants, checked after every step; violations are recorded, never raised.

1. ``stuck_run``: no run stays non-terminal past its lease + :data:`LEASE_GRACE_SECONDS`,
   nor past a cancel request + :data:`CANCEL_GRACE_SECONDS` (and a finished run has no
   unfinished instance).
2. ``record_vs_disk``: once no run holds an instance, its record equals its disk: the
   ``current`` symlink and ``.floy/state.json`` (after the read paths floy offers ran:
   the status read, which recovers lost runs, and ``refresh_versions``, which probes).
3. ``leftover_process``: no process of a finished run survives it.
4. ``half_written_release``: every ``releases/<v>`` but the ``.floy-*`` temps has its
   ``.floy/releases/<v>.json`` record and all its files; ``current`` names a complete one.
5. ``store_integrity``: SQLite's ``PRAGMA integrity_check`` (PostgreSQL: amcheck of every
   index and table), and the run, instance and lock rows agree with each other; a finished
   run never changes again.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from orchestrator.ansible import runner
from orchestrator.ansible.processes import STOP_GRACE_SECONDS
from orchestrator.engine.reaper import UNCLAIMED_GRACE_SECONDS
from orchestrator.store import schema as t
from orchestrator.timefmt import parse_time, utcnow
from tests.helpers.floyenv import FloyEnv
from tests.soak.procs import installation_parts

# A run whose lease expired is closed by the next floy call (the driver makes one every
# step, at most a few seconds apart), within recovery's own bounds: SIGTERM to the orphaned
# ansible-playbook and STOP_GRACE_SECONDS for it, as long again for the modules to finish
# switching back, then one probe run (2-5 s on this loaded 2-core machine). 30 s covers it.
LEASE_GRACE_SECONDS = 2 * STOP_GRACE_SECONDS + 10.0
# A worker or ansible process of a finished run is gone before the run is marked finished
# (runner's sweep, recovery's stop_orphans); 5 s allows for a process that is exiting and
# for the scan itself on a loaded machine. A worker may linger a little longer legitimately
# (closing its store, or recovering another run at start-up, which shows as a lease).
LEFTOVER_GRACE_SECONDS = 5.0
# A cancelled run stops within runner's grace (CANCEL_GRACE_SECONDS, 15 s: SIGTERM, then
# SIGKILL), then probes its in-flight instances (a few seconds): 30 s after the request.
CANCEL_GRACE_SECONDS = runner.CANCEL_GRACE_SECONDS + 15.0
WORKER_GRACE_SECONDS = 10.0
TERMINAL = ("completed", "failed", "cancelled")
RELEASE_FILES = ("VERSION", "app.py", "bin/restart")  # what every sample package holds


@dataclass
class Violation:
    step: int
    kind: str
    detail: str


@dataclass(frozen=True)
class Disk:
    """What one instance directory says."""

    current_link: str | None
    current_version: str
    state_version: str
    problems: tuple[str, ...]  # invariant 4


def read_disk(instance_dir: Path) -> Disk:
    """Read ``current``, state.json and every release of an instance (never raises)."""
    problems = []
    try:
        link: str | None = os.readlink(instance_dir / "current")
    except OSError:
        link = None
    releases = instance_dir / "releases"
    records = instance_dir / ".floy" / "releases"
    complete = set()
    names = sorted(os.listdir(releases)) if releases.is_dir() else []
    for name in names:
        if name.startswith(".floy-"):
            continue  # a temp of a release in flight or of a killed one (cleared at the next)
        record = _json(records / f"{name}.json")
        missing = [f for f in RELEASE_FILES if not (releases / name / f).is_file()]
        if record is None:
            problems.append(f"releases/{name} has no record .floy/releases/{name}.json")
        elif record.get("version") != name:
            problems.append(f"record of releases/{name} names version {record.get('version')!r}")
        elif missing or (releases / name).is_symlink():
            problems.append(f"releases/{name} is recorded complete but lacks {missing}")
        else:
            complete.add(name)
    version = ""
    if link is not None:
        parts = link.rstrip("/").split("/")
        if len(parts) == 2 and parts[0] == "releases" and parts[1] in complete:
            version = parts[1]
        else:
            problems.append(f"current -> {link!r}, which is not a complete release")
            version = parts[-1] if (instance_dir / link).is_dir() else ""
    state = _json(instance_dir / ".floy" / "state.json") or {}
    return Disk(link, version, str(state.get("version", "")), tuple(problems))


def _json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


@dataclass
class Rows:
    """One consistent read of the store."""

    runs: dict[str, Any]
    members: dict[str, list[Any]]
    locks: dict[str, str]  # instance -> run
    versions: dict[str, tuple[str, str | None]]  # instance -> (version, observed_version)


def load(env: FloyEnv) -> Rows:
    with env.store.read() as conn:
        runs = {r.run_id: r for r in conn.execute(sa.select(t.runs))}
        members: dict[str, list[Any]] = {}
        for m in conn.execute(sa.select(t.run_instances).order_by(t.run_instances.c.position)):
            members.setdefault(m.run_id, []).append(m)
        locks = {r.instance_id: r.run_id for r in conn.execute(sa.select(t.instance_locks))}
        versions = {r.instance_id: (r.version, r.observed_version)
                    for r in conn.execute(sa.select(t.instances))}
    return Rows(runs, members, locks, versions)


def _t(value: str | None) -> datetime | None:
    return None if value is None else parse_time(value)


@dataclass
class Checker:
    """Checks the invariants; keeps each violation once (keyed by what was seen)."""

    env: FloyEnv
    services: dict[str, list[str]]
    lease_seconds: float
    run_prefix: str
    log: Callable[[str], None]
    postgres: bool = False
    violations: list[Violation] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    _seen: set[tuple[Any, ...]] = field(default_factory=set)
    _first_seen: dict[tuple[int, int], float] = field(default_factory=dict)
    _confirmed: set[tuple[str, ...]] = field(default_factory=set)
    _unlocked: dict[tuple[str, str], float] = field(default_factory=dict)
    _ended: dict[str, tuple[Any, ...]] = field(default_factory=dict)

    def record(self, step: int, kind: str, detail: str, key: tuple[Any, ...]) -> None:
        if (kind, *key) in self._seen:
            return
        self._seen.add((kind, *key))
        self.violations.append(Violation(step, kind, detail))
        self.log(f"VIOLATION {kind}: {detail}")

    def check(self, step: int, *, final: bool = False, integrity: bool = True) -> None:
        """Check all five invariants now (``integrity``: the database engine's own check
        too, which on PostgreSQL reads every index and table)."""
        rows = load(self.env)
        self.check_runs(step, rows, final)
        self.check_instances(step, rows, final)
        self.check_processes(step, final)
        self.check_store(step, load(self.env), engine=integrity)

    # -- 1 ------------------------------------------------------------------------------
    def check_runs(self, step: int, rows: Rows, final: bool) -> None:
        now = utcnow()
        grace = timedelta(seconds=LEASE_GRACE_SECONDS)
        for run_id, r in rows.runs.items():
            members = rows.members.get(run_id, [])
            if r.finished_at is not None:
                for m in members:
                    if m.status not in TERMINAL:
                        self.record(step, "stuck_run", f"run {run_id} finished {r.status} but "
                                    f"instance {m.instance_id} is still {m.status}",
                                    (run_id, m.instance_id))
                continue
            expires, created = _t(r.lease_expires_at), parse_time(r.created_at)
            requested = _t(r.cancel_requested_at)
            why = ""
            if expires is not None and now > expires + grace:
                why = (f"lease (owner {r.lease_owner}, pid {r.worker_pid}) expired at "
                       f"{r.lease_expires_at}, more than {LEASE_GRACE_SECONDS:.0f} s ago")
            elif r.lease_owner is None and now > created + timedelta(
                    seconds=UNCLAIMED_GRACE_SECONDS) + grace:
                why = "never claimed by a worker"
            elif requested is not None and now > requested + timedelta(
                    seconds=CANCEL_GRACE_SECONDS):
                why = (f"cancel requested at {r.cancel_requested_at}, more than "
                       f"{CANCEL_GRACE_SECONDS:.0f} s ago")
            elif final:
                self.notes.append(f"run {run_id} was still {r.status} (within its grace) at "
                                  "the end of the drain")
            if why:
                states = ", ".join(f"{m.instance_id}={m.status}" for m in members)
                self.record(step, "stuck_run", f"run {run_id} ({r.kind}) still {r.status}: "
                            f"{why} [{states}]", (run_id,))

    # -- 2 and 4 --------------------------------------------------------------------------
    def check_instances(self, step: int, rows: Rows, final: bool) -> None:
        refreshed: set[str] = set()
        for service, ids in self.services.items():
            for instance_id in ids:
                if instance_id in rows.locks:
                    continue
                disk = read_disk(self.env.root / service / instance_id)
                for problem in disk.problems:
                    self.record(step, "half_written_release", f"{instance_id}: {problem}",
                                (instance_id, problem))
                recorded = rows.versions[instance_id][0]
                if recorded == disk.current_version == disk.state_version or (
                        recorded == disk.current_version == "" and not disk.current_link):
                    continue
                key = (instance_id, recorded, disk.current_version, disk.state_version)
                if key in self._confirmed:
                    continue
                self._confirmed.add(key)
                self._confirm(step, service, instance_id, refreshed, rows)

    def _confirm(self, step: int, service: str, instance_id: str, refreshed: set[str],
                 rows: Rows) -> None:
        """Run floy's read paths, then compare again and describe what still disagrees."""
        last = _last_run(rows, instance_id)
        probed = ""
        try:
            if last is not None:
                self.env.service.get_deployment_status(last[0])  # recovers lost runs
            # A probe waits (up to 45 s) for releases in flight on the service's other
            # instances: probe only a quiet service; the record is judged either way.
            busy = set(self.services[service]) & set(load(self.env).locks)
            if busy:
                probed = " (not probed: the service had runs in flight)"
            elif service not in refreshed:
                refreshed.add(service)
                self.env.service.refresh_versions(service)  # probes: records observed
        except Exception as exc:
            self.notes.append(f"step {step}: read path for {instance_id} raised {exc!r}")
        again = load(self.env)
        if instance_id in again.locks:
            return  # a new run took it meanwhile
        disk = read_disk(self.env.root / service / instance_id)
        recorded, observed = again.versions[instance_id]
        found = []
        if recorded != disk.current_version:
            seen = ("floy reports it as drift (its probe observed the disk's version)"
                    if observed == disk.current_version else f"its probe observed {observed!r}")
            found.append(f"record says {recorded!r} but current -> {disk.current_version!r}; "
                         f"{seen}{probed}")
        if disk.state_version != disk.current_version:
            found.append(f"state.json says {disk.state_version!r} but current -> "
                         f"{disk.current_version!r}")
        if not found:
            return
        about = ""
        if last is not None:
            run, member = last
            about = (f" (last run {run}: instance {member.status}, target "
                     f"{member.target_version}, {member.error_message[:300]!r})")
        self.record(step, "record_vs_disk", f"{instance_id}: {'; '.join(found)}{about}",
                    (instance_id, recorded, disk.current_version, disk.state_version))

    # -- 3 ------------------------------------------------------------------------------
    def check_processes(self, step: int, final: bool) -> None:
        deadline = time.monotonic() + (LEFTOVER_GRACE_SECONDS if final else 0.0)
        while True:
            candidates = self._leftover_candidates()
            if not final or not candidates or time.monotonic() >= deadline:
                break
            time.sleep(0.5)
        now = time.monotonic()
        alive = {part.key for part, _ in candidates}
        self._first_seen = {k: v for k, v in self._first_seen.items() if k in alive}
        for part, why in candidates:
            first = self._first_seen.setdefault(part.key, now)
            grace = WORKER_GRACE_SECONDS if part.kind == "worker" else LEFTOVER_GRACE_SECONDS
            if final or now - first >= grace:
                self.record(step, "leftover_process",
                            f"{part.kind} pid {part.proc.pid} {why}, alive {now - first:.0f} s "
                            f"after it was first seen: {part.proc.command}", part.key)

    def _leftover_candidates(self) -> list[tuple[Any, str]]:
        rows = load(self.env)
        unfinished = {r for r, row in rows.runs.items() if row.finished_at is None}
        holders = {row.worker_pid for r, row in rows.runs.items() if r in unfinished}
        dirs = {str(self.env.root / s / i): i for s, ids in self.services.items() for i in ids}
        found = []
        for part in installation_parts(self.env.home, self.env.root, self.run_prefix):
            if part.kind in ("worker", "ansible_playbook", "fork", "module", "module_shell"):
                run = rows.runs.get(part.owner)
                if run is None or part.owner in unfinished:
                    continue
                if part.kind == "worker" and (run.rollback_run_id in unfinished
                                              or part.proc.pid in holders):
                    continue
                found.append((part, f"of run {part.owner}, which finished {run.status} at "
                              f"{run.finished_at}"))
            elif part.kind == "restart_command":
                instance_id = dirs.get(part.owner)
                if instance_id is None or instance_id in rows.locks:
                    continue
                last = _last_run(rows, instance_id)
                found.append((part, f"restart command on {instance_id}, which no run holds "
                              f"(last run {last[0] if last else '?'})"))
        return found

    # -- 5 ------------------------------------------------------------------------------
    def check_store(self, step: int, rows: Rows, engine: bool = True) -> None:
        for problem in self._engine_check() if engine else []:
            self.record(step, "store_integrity", problem, (problem,))
        for instance_id, run_id in rows.locks.items():
            run = rows.runs.get(run_id)
            if run is None:
                self.record(step, "store_integrity", f"lock on {instance_id} held by unknown "
                            f"run {run_id}", ("lock", instance_id, run_id))
            elif run.finished_at is not None:
                self.record(step, "store_integrity", f"lock on {instance_id} held by run "
                            f"{run_id}, which finished {run.status}", ("lock", instance_id,
                                                                       run_id))
            elif instance_id not in {m.instance_id for m in rows.members.get(run_id, [])}:
                self.record(step, "store_integrity", f"lock on {instance_id} held by run "
                            f"{run_id}, which does not include it", ("lock", instance_id, run_id))
        now = time.monotonic()
        for run_id, r in rows.runs.items():
            members = rows.members.get(run_id, [])
            if r.finished_at is not None:  # a finished run never changes again
                ended = (r.status, r.finished_at, tuple((m.instance_id, m.status,
                                                         m.current_version) for m in members))
                before = self._ended.setdefault(run_id, ended)
                if before != ended:
                    self.record(step, "store_integrity", f"run {run_id} changed after it "
                                f"finished: {before} -> {ended}", ("changed", run_id, ended))
            wanted = len(json.loads(r.params_json).get("instances", []))
            if len(members) != wanted:
                self.record(step, "store_integrity", f"run {run_id} has {len(members)} "
                            f"instance rows for {wanted} instances", ("count", run_id))
            if (r.status in TERMINAL) != (r.finished_at is not None):
                self.record(step, "store_integrity", f"run {run_id} is {r.status} with "
                            f"finished_at {r.finished_at}", ("finished", run_id))
            if r.status == "completed" and any(m.status != "completed" for m in members):
                self.record(step, "store_integrity", f"run {run_id} completed with instances "
                            f"{[(m.instance_id, m.status) for m in members]}", ("done", run_id))
            for m in members:
                if r.finished_at is None and m.status not in TERMINAL \
                        and rows.locks.get(m.instance_id) != run_id:
                    # must persist: an automatic rollback takes locks over in a moment
                    first = self._unlocked.setdefault((run_id, m.instance_id), now)
                    if now - first >= 2.0:
                        self.record(step, "store_integrity", f"run {run_id} is {r.status} "
                                    f"with {m.instance_id} {m.status} but does not hold its "
                                    f"lock (held by {rows.locks.get(m.instance_id)})",
                                    ("unlocked", run_id, m.instance_id))

    def _engine_check(self) -> list[str]:
        with self.env.store.read() as conn:
            if not self.postgres:
                result = [r[0] for r in conn.exec_driver_sql("PRAGMA integrity_check")]
                keys = list(conn.exec_driver_sql("PRAGMA foreign_key_check"))
                bad = [] if result == ["ok"] else [f"integrity_check: {result}"]
                return bad + ([f"foreign_key_check: {keys}"] if keys else [])
        with self.env.store.write() as conn:
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS amcheck")
            indexes = [r[0] for r in conn.exec_driver_sql(
                "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                "JOIN pg_am a ON a.oid = c.relam JOIN pg_namespace n ON n.oid = "
                "c.relnamespace WHERE n.nspname = 'public' AND a.amname = 'btree'")]
        bad = []
        for name in indexes:  # bt_index_check raises on corruption: one transaction each
            try:
                with self.env.store.read() as conn:
                    conn.exec_driver_sql(f"SELECT bt_index_check('public.\"{name}\"', true)")
            except sa.exc.DBAPIError as exc:
                bad.append(f"bt_index_check({name}): {exc.orig}")
        with self.env.store.read() as conn:
            for table in t.metadata.tables:
                for row in conn.exec_driver_sql(f"SELECT * FROM verify_heapam('{table}')"):
                    bad.append(f"verify_heapam({table}): {tuple(row)}")
        return bad


def _last_run(rows: Rows, instance_id: str) -> tuple[str, Any] | None:
    """The newest run that included ``instance_id``, with its row for it."""
    best = None
    for run_id, members in rows.members.items():
        for m in members:
            if m.instance_id == instance_id and (
                    best is None or rows.runs[run_id].created_at > rows.runs[best[0]].created_at):
                best = (run_id, m)
    return best
