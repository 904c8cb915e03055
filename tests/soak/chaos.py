"""The chaos driver: deployments, cancels and rollbacks over a fleet while faults strike.

One :class:`Soak` drives one floy installation (a ``FloyEnv`` with detached worker
processes and a short lease) over three services and 20 local instances, step by step until
its deadline: an action (deploy, cancel, rollback an instance or a batch), maybe a fault
(:mod:`tests.soak.faults`), then floy's read path and every invariant
(:mod:`tests.soak.invariants`). It then stops the faults, drains (runs end or are
cancelled), checks once more with every instance quiet, and summarises.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import yaml

from orchestrator.errors import ConflictError, NotFoundError, ValidationError
from orchestrator.models import BatchRollbackParams, DeployParams, InstanceRollbackParams
from sample.packages import stop_apps
from tests.helpers.floyenv import FloyEnv
from tests.soak.faults import FILL_NAME, Faults, SmallDisk, SoakPostgres
from tests.soak.invariants import Checker, Violation, load
from tests.soak.procs import installation_parts, kill

FLEET = {"hello": 8, "hola": 6, "ciao": 6}
OK_PACKAGES = ("1.0.0", "2.0.0", "3.0.0")
BROKEN_PACKAGES = ("9.0.0-crash", "9.0.0-unhealthy", "9.0.0-hang")
MAX_ACTIVE_RUNS = 3  # two cores, shared with the rest of the test suite
FAULT_RATE = 0.5
RELEASE_TIMEOUT = 12  # s per instance: a release takes 1-3 s here, a hanging one times out
# Kept free at the end of the chaos phase: the drain (recovering a lost run can take
# 2 x STOP_GRACE_SECONDS plus a probe), the final probes and checks, and the teardown.
DRAIN_RESERVE_SECONDS = 35.0
TEARDOWN_RESERVE_SECONDS = 15.0
# An API error while PostgreSQL is down, or this soon after it is back (each pooled
# connection fails once), is the outage's, not floy's.
DB_OUTAGE_TOLERANCE_SECONDS = 15.0
EXPECTED_REFUSALS = (ConflictError, ValidationError, NotFoundError)


@dataclass
class Summary:
    """What one soak did and found."""

    backend: str
    seed: int
    steps: int = 0
    wall: float = 0.0
    faults: Counter[str] = field(default_factory=Counter)
    missed: Counter[str] = field(default_factory=Counter)
    violations: list[Violation] = field(default_factory=list)
    runs: Counter[str] = field(default_factory=Counter)
    calls: Counter[str] = field(default_factory=Counter)
    notes: list[str] = field(default_factory=list)
    timeline: str = ""

    def line(self) -> str:
        """The one summary line."""
        kinds = Counter(v.kind for v in self.violations)
        return (f"soak[{self.backend}] seed={self.seed} steps={self.steps} "
                f"wall={self.wall:.0f}s faults={_counts(self.faults)} "
                f"(no target: {_counts(self.missed)}) runs={_counts(self.runs)} "
                f"violations={_counts(kinds) if kinds else 0}")

    def report(self) -> str:
        """The summary line, every violation, the API outcomes and notes."""
        lines = [self.line(), f"reproduce: FLOY_SOAK_SEED={self.seed}", ""]
        lines += [f"violation step {v.step} {v.kind}: {v.detail}" for v in self.violations]
        lines += ["", f"api calls: {_counts(self.calls)}"]
        lines += [f"note: {n}" for n in self.notes]
        lines += [f"timeline: {self.timeline}"]
        return "\n".join(lines) + "\n"


def _counts(counter: Counter[str]) -> str:
    return "{" + ", ".join(f"{k}: {n}" for k, n in sorted(counter.items())) + "}"


class Soak:
    """Drives one installation until ``deadline`` (time.monotonic()); see the module doc."""

    def __init__(self, env: FloyEnv, backend: str, seed: int, deadline: float, out_dir: Path,
                 db: SoakPostgres | None = None) -> None:
        self.env = env
        self.backend = backend
        self.seed = seed
        self.deadline = deadline
        self.db = db
        self.out_dir = out_dir
        self.rng = random.Random(f"{seed}:{backend}")
        self.prefix = f"soak{seed}{backend[:2]}-"
        self.began = time.monotonic()
        self.step_no = 0
        self.services: dict[str, list[str]] = {}
        self.disk: SmallDisk | None = None
        self.summary = Summary(backend, seed, timeline=str(out_dir / "timeline.log"))
        self._timeline: TextIO = open(out_dir / "timeline.log", "w")  # noqa: SIM115
        self.faults = Faults(self.rng, env.home, env.root, self.prefix, self.log, db=db)
        self.checker = Checker(env, self.services, env.settings.lease_seconds, self.prefix,
                               self.log, postgres=db is not None)
        env.service.cancel_wait_seconds = 3.0

    def log(self, message: str) -> None:
        """One timeline line (the file is the soak's own record; never captured)."""
        self._timeline.write(f"{time.monotonic() - self.began:7.2f} step {self.step_no:3d} "
                             f"{message}\n")
        self._timeline.flush()

    # -- the whole soak -------------------------------------------------------------------
    def run(self) -> Summary:
        """Set up, run steps until the chaos phase ends, drain, check; returns the summary."""
        try:
            self._setup()
            chaos_end = self.deadline - DRAIN_RESERVE_SECONDS
            while time.monotonic() < chaos_end:
                self.step_no += 1
                self._step()
            self.step_no += 1
            self._drain()
        finally:
            self._summarise()
        return self.summary

    def _setup(self) -> None:
        group_vars = self.env.settings.inventory_dir / "group_vars"
        hello = yaml.safe_load((group_vars / "hello.yml").read_text())
        for service, count in FLEET.items():
            if service != "hello":
                (group_vars / f"{service}.yml").write_text(yaml.safe_dump(hello))
            self.services[service] = self.env.register(count, service=service)
        service = self.rng.choice(sorted(self.services))
        instance = self.rng.choice(self.services[service])
        disk = SmallDisk(self.env.root / service / instance)
        try:
            disk.mount()
            self.disk = self.faults.disk = disk
            self.log(f"setup: {instance}'s directory is a 1 MiB tmpfs")
        except Exception as exc:  # not root, or no tmpfs here: the soak goes on without it
            self.summary.notes.append(f"no small disk: {exc}")
        self.log(f"setup: {sum(FLEET.values())} instances of {sorted(FLEET)}, "
                 f"backend {self.backend}, seed {self.seed}")

    def _step(self) -> None:
        self.faults.tick(self.step_no)
        try:
            if self.step_no <= len(FLEET):  # first of all, every instance gets a release
                service = sorted(FLEET)[self.step_no - 1]
                self._deploy(service, self.services[service], "1.0.0", batch_size="50%")
            else:
                self._act()
        except Exception as exc:  # the store read that picks an action failed
            self._unexpected("choosing an action", exc)
        time.sleep(self.rng.uniform(0.2, 1.2))
        if self.rng.random() < FAULT_RATE:
            self.faults.inject(self.faults.pick(), self.step_no)
        self._observe()
        self._check(integrity=self.db is None or self.step_no % 5 == 0)

    def _check(self, **options: bool) -> None:
        try:
            self.checker.check(self.step_no, **options)
        except Exception as exc:
            if self.faults.db_recently_down(DB_OUTAGE_TOLERANCE_SECONDS):
                self.log(f"check skipped during a database restart: {exc!r:.200}")
            else:
                self.checker.record(self.step_no, "store_integrity", f"the store could not "
                                    f"be read: {exc!r:.300}", ("read", type(exc).__name__))

    def _drain(self) -> None:
        self.log("drain: no more faults; waiting for every run to end")
        self.faults.stop()
        end = self.deadline - TEARDOWN_RESERVE_SECONDS
        cancel_from = time.monotonic() + 5.0
        while time.monotonic() < end:
            active = self._unfinished()
            if not active:
                break
            self._observe()
            if time.monotonic() >= cancel_from:
                for run_id in active:
                    self.env.service.cancel_wait_seconds = max(0.5, min(5.0, end -
                                                                        time.monotonic()))
                    self._call("cancel", self.env.service.cancel_deployment, run_id)
            time.sleep(0.5)
        self.log("final check")
        self._check(final=True)

    def _summarise(self) -> None:
        s = self.summary
        s.steps = self.step_no
        s.wall = time.monotonic() - self.began
        s.faults, s.missed = self.faults.injected, self.faults.missed
        s.violations = self.checker.violations
        s.notes += self.checker.notes
        with contextlib.suppress(Exception):
            s.runs = Counter(f"{r.kind}_{r.status}" for r in self._runs())
        self.log(s.line())

    def _runs(self) -> list[Any]:
        return list(load(self.env).runs.values())

    def close(self) -> None:
        """Kill whatever of this installation still runs, free and unmount the disk."""
        for _ in range(3):
            parts = [p for p in installation_parts(self.env.home, self.env.root, self.prefix)
                     if p.kind != "app"]
            for part in parts:
                kill(part)
            if not parts:
                break
            time.sleep(0.2)
        stop_apps(self.env.root)
        for part in installation_parts(self.env.home, self.env.root, self.prefix):
            kill(part)  # an app whose pid file was lost
        if self.disk is not None:
            with contextlib.suppress(OSError):
                self.faults.stop()
            with contextlib.suppress(OSError):  # kept for the post-mortem: tmpfs goes away
                shutil.copytree(self.disk.path, self.out_dir / "small-disk" /
                                self.disk.path.name, symlinks=True,
                                ignore=shutil.ignore_patterns(FILL_NAME))
            self.disk.unmount()
        self._timeline.close()

    # -- actions ----------------------------------------------------------------------------
    def _act(self) -> None:
        active = self._unfinished()
        room = len(active) < MAX_ACTIVE_RUNS
        actions = {"deploy": 4.0 if room else 0.0, "cancel": 2.0 if active else 0.0,
                   "rollback_instance": 1.5 if room else 0.0,
                   "rollback_batch": 1.0 if room else 0.0, "idle": 0.7}
        action = self.rng.choices(list(actions), weights=list(actions.values()))[0]
        if action == "deploy":
            service = self.rng.choice(sorted(self.services))
            free = self._free(service)
            if free:
                chosen = self.rng.sample(free, self.rng.randint(1, len(free)))
                package = self.rng.choices(OK_PACKAGES + BROKEN_PACKAGES,
                                           weights=(3, 3, 3, 0.5, 0.5, 0.7))[0]
                self._deploy(service, chosen, package,
                             batch_size=self.rng.choice(["1", "2", "3", "50%"]))
        elif action == "cancel":
            run_id = self.rng.choice(active)
            self.env.service.cancel_wait_seconds = self.rng.uniform(0.5, 4.0)
            self.log(f"cancel {run_id} (waits {self.env.service.cancel_wait_seconds:.1f} s)")
            self._call("cancel", self.env.service.cancel_deployment, run_id)
        elif action == "rollback_instance":
            self._rollback_instance()
        elif action == "rollback_batch":
            self._rollback_batch()
        else:
            self.log("idle")

    def _deploy(self, service: str, instances: list[str], package: str,
                batch_size: str) -> None:
        url, sha = self.env.packages[package]
        if self.rng.random() < 0.25:  # a slow download widens the window of a kill
            url = url.replace("/pkgs/", f"/slow/{self.rng.choice([1, 2])}/pkgs/")
        params = DeployParams(
            service=service, version=package.split("-")[0], instances=tuple(instances),
            package_url=url, deploy_id=f"{self.prefix}{self.step_no:04d}-deploy",
            timeout=RELEASE_TIMEOUT, retry_count=self.rng.choice([0, 0, 1]),
            batch_size=batch_size, max_failures=self.rng.choice([0, 1, len(instances)]),
            package_sha256=sha, auto_rollback=self.rng.random() < 0.3)
        self.log(f"deploy {params.deploy_id}: {package} to {list(instances)} batch "
                 f"{batch_size} retries {params.retry_count} max_failures "
                 f"{params.max_failures} auto_rollback {params.auto_rollback}"
                 f"{' (slow)' if '/slow/' in url else ''}")
        self._call("deploy", self.env.service.execute_deployment, params)

    def _rollback_instance(self) -> None:
        force = self.rng.random() < 0.15
        pool = [i for ids in self.services.values() for i in ids] if force else [
            i for s in sorted(self.services) for i in self._free(s)]
        if not pool:
            return
        instance = self.rng.choice(sorted(pool))
        target, url = self._target([instance])
        params = InstanceRollbackParams(instance_id=instance, target_version=target,
                                        package_url=url, force=force, timeout=RELEASE_TIMEOUT,
                                        rollback_id=f"{self.prefix}{self.step_no:04d}-rb1")
        self.env.service.cancel_wait_seconds = 5.0
        self.log(f"rollback {params.rollback_id}: {instance} to {target} force {force}"
                 f"{' url' if url else ''}")
        self._call("rollback_instance", self.env.service.rollback_instance, params)

    def _rollback_batch(self) -> None:
        service = self.rng.choice(sorted(self.services))
        free = self._free(service)
        if not free:
            return
        chosen = sorted(self.rng.sample(free, self.rng.randint(1, len(free))))
        target, url = self._target(chosen)
        params = BatchRollbackParams(
            service=service, target_version=target, instances=tuple(chosen), package_url=url,
            timeout=RELEASE_TIMEOUT, batch_size=self.rng.choice(["1", "2"]),
            max_failures=self.rng.choice([0, len(chosen)]),
            rollback_id=f"{self.prefix}{self.step_no:04d}-rbn")
        self.log(f"rollback {params.rollback_id}: {chosen} to {target}{' url' if url else ''}")
        self._call("rollback_batch", self.env.service.rollback_batch, params)

    def _target(self, instances: list[str]) -> tuple[str, str]:
        """A version every one of ``instances`` once completed (no URL needed), else a
        package URL; now and then a version never installed, which must be refused."""
        common: set[str] | None = None
        for instance in instances:
            done = {e["version"] for e in self.env.store.history.releases(instance)}
            common = done if common is None else common & done
        choices = sorted(common or ())
        if choices and self.rng.random() < 0.85:
            return self.rng.choice(choices), ""
        version = self.rng.choice(OK_PACKAGES)
        return version, ("" if self.rng.random() < 0.3 else self.env.packages[version][0])

    # -- reading ----------------------------------------------------------------------------
    def _observe(self) -> None:
        """floy's read path for every unfinished run, then the reaper (what every worker
        runs at its start, and ``floy reap``): reads never close a lost run."""
        for run_id in self._unfinished():
            self._call("status", self.env.service.get_deployment_status, run_id)
        if self._unfinished():
            self._call("reap", lambda _: self.env.service.reap_stale_runs(), None)

    def _unfinished(self) -> list[str]:
        try:
            return sorted(r.run_id for r in self._runs() if r.finished_at is None)
        except Exception as exc:
            self._unexpected("store read", exc)
            return []

    def _free(self, service: str) -> list[str]:
        busy = self.env.store.leases.lock_holders(self.services[service])
        return [i for i in self.services[service] if i not in busy]

    def _call(self, what: str, fn: Callable[[Any], Any], arg: Any) -> Any:
        try:
            result = fn(arg)
        except EXPECTED_REFUSALS as exc:
            self.summary.calls[f"{what}:{type(exc).__name__}"] += 1
            self.log(f"{what}: refused: {exc}")
            return None
        except Exception as exc:
            self._unexpected(what, exc)
            return None
        self.summary.calls[f"{what}:ok"] += 1
        return result

    def _unexpected(self, what: str, exc: Exception) -> None:
        name = type(exc).__name__
        if self.faults.db_recently_down(DB_OUTAGE_TOLERANCE_SECONDS):
            self.summary.calls[f"{what}:{name} (database restart)"] += 1
            self.log(f"{what}: {name} during a database restart: {str(exc)[:200]}")
            return
        self.checker.record(self.step_no, "api_error", f"{what} raised {name}: "
                            f"{str(exc)[:500]}", (what, name, str(exc)[:80]))
