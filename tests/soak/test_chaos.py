"""A bounded chaos soak, on SQLite and on PostgreSQL: zero invariant violations.

The tier takes at most FLOY_SOAK_SECONDS (default 180; ``make soak`` gives it 600), shared
equally by the two backends. FLOY_SOAK_SEED replays a run's choices (default: random,
printed); real processes decide the interleaving, so what a seed hits can differ from run
to run: ``python -m tests.soak.repro`` replays each defect found so far deterministically.
Each soak writes ``soak-summary.txt`` and ``timeline.log`` into its tmp dir and prints its
summary line whether or not output is captured (also under pytest-xdist).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from orchestrator.domain.records import RunInstanceRecord, RunRecord
from orchestrator.domain.request import RunRequest
from orchestrator.models import Status
from orchestrator.store import schema
from orchestrator.timefmt import utcnow
from sample.packages import stop_apps
from tests.helpers.floyenv import make_env
from tests.soak import invariants
from tests.soak.chaos import Soak
from tests.soak.conftest import DEFAULT_SECONDS, Budget
from tests.soak.invariants import Checker

pytestmark = [pytest.mark.soak, pytest.mark.integration]

# No single soak may outlive the tier's whole budget (plus its teardown).
TIMEOUT = int(float(os.environ.get("FLOY_SOAK_SECONDS") or DEFAULT_SECONDS)) + 120


def _release(instance_dir: Path, version: str, record: bool = True) -> None:
    """A release directory as floy_release leaves it (the sample package's files)."""
    release = instance_dir / "releases" / version
    (release / "bin").mkdir(parents=True)
    for name in ("VERSION", "app.py", "bin/restart"):
        (release / name).write_text(f"{version}\n")
    if record:
        records = instance_dir / ".floy" / "releases"
        records.mkdir(parents=True, exist_ok=True)
        (records / f"{version}.json").write_text(json.dumps({"version": version}))


def _switch(instance_dir: Path, version: str, state: str) -> None:
    (instance_dir / "current").unlink(missing_ok=True)
    (instance_dir / "current").symlink_to(f"releases/{version}")
    (instance_dir / ".floy" / "state.json").write_text(json.dumps({"version": state}))


def test_the_checker_sees_every_kind_of_violation(
        soak_budget: Budget, tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The oracle first: a clean fleet passes, and each planted fault is reported once.
    (It uses soak_budget, so the tier's time budget counts it.)"""
    env = make_env(tmp_path, pki, packages, inline=True)
    ids = env.register(3)
    others = env.register(2, service="hola")
    for instance_id in ids:
        _release(env.root / "hello" / instance_id, "1.0.0")
        _switch(env.root / "hello" / instance_id, "1.0.0", "1.0.0")
    env.store.instances.record_observations(dict.fromkeys(ids, "1.0.0"), authoritative=True)
    found: list[str] = []
    checker = Checker(env, {"hello": ids, "hola": others}, 3.0, "x-", found.append)
    monkeypatch.setattr(invariants, "LEFTOVER_GRACE_SECONDS", 0.5)
    checker.check(1)
    assert checker.violations == [], checker.violations
    # 2: hello-1 switched to 2.0.0 behind floy's back (and state.json not written)
    _release(env.root / "hello" / ids[0], "2.0.0")
    _switch(env.root / "hello" / ids[0], "2.0.0", "1.0.0")
    # 4: hello-2 has a release without its record
    _release(env.root / "hello" / ids[1], "3.0.0", record=False)
    # 3: a restart command lives on hello-1, which no run holds
    sleeper = subprocess.Popen(["sleep", "60"], env={
        "PATH": os.environ["PATH"], "FLOY_INSTANCE_DIR": str(env.root / "hello" / ids[0])})
    # 1 and 5: a run whose lease expired long ago; a lock held by a finished run
    now = utcnow()
    for run_id, instance_id in (("x-stuck", others[0]), ("x-done", others[1])):
        env.store.runs.create(
            RunRecord(run_id, "deploy", "hola", "2.0.0", Status.PENDING,
                      RunRequest((instance_id,)), "t", now, now),
            [RunInstanceRecord(run_id, instance_id, 0, 1, Status.PENDING, "2.0.0")])
    assert env.store.leases.acquire("x-stuck", "gone", -100.0, 1)
    env.store.runs.finish_members("x-done", Status.FAILED, "failed", [Status.PENDING])
    env.store.runs.set_status("x-done", Status.FAILED, finished=True)
    with env.store.write() as conn:
        conn.execute(schema.instance_locks.insert().values(
            instance_id=others[1], run_id="x-done", locked_at="2026-01-01T00:00:00Z"))
    try:
        checker.check(2)
        time.sleep(0.6)
        checker.check(3)
    finally:
        sleeper.kill()
        sleeper.wait(timeout=10)
        stop_apps(env.root)
        env.store.close()
    by_kind = {v.kind: v.detail for v in checker.violations}
    assert sorted(by_kind) == ["half_written_release", "leftover_process", "record_vs_disk",
                               "store_integrity", "stuck_run"], checker.violations
    assert len(checker.violations) == 5, checker.violations  # each once, not once a check
    assert by_kind["record_vs_disk"].startswith(
        f"{ids[0]}: record says '1.0.0' but current -> '2.0.0'; floy reports it as drift")
    assert "state.json says '1.0.0'" in by_kind["record_vs_disk"]
    assert by_kind["half_written_release"] == (
        f"{ids[1]}: releases/3.0.0 has no record .floy/releases/3.0.0.json")
    assert by_kind["leftover_process"].startswith("restart_command pid")
    assert by_kind["stuck_run"].startswith("run x-stuck (deploy) still pending: lease")
    assert "held by run x-done, which finished failed" in by_kind["store_integrity"]


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_chaos_soak(backend: str, request: pytest.FixtureRequest, tmp_path: Path, pki: object,
                    packages: dict[str, tuple[str, str]], soak_budget: Budget,
                    capsys: pytest.CaptureFixture[str]) -> None:
    deadline = soak_budget.deadline(request.node.nodeid)
    db = request.getfixturevalue("soak_postgres") if backend == "postgresql" else None
    env = make_env(tmp_path, pki, packages, inline=False, lease_seconds=3.0,
                   db_url=db.new_database() if db is not None else None)
    soak = Soak(env, backend, soak_budget.seed, deadline, tmp_path, db=db)
    try:
        summary = soak.run()
    finally:
        soak.close()
        env.store.close()
        report = soak.summary.report()
        (tmp_path / "soak-summary.txt").write_text(report)
        with capsys.disabled():  # stderr reaches the terminal, also from an xdist worker
            sys.stderr.write(f"\n{soak.summary.line()}\n  details: {tmp_path}/soak-summary.txt"
                             "\n")
    assert not summary.violations, report
