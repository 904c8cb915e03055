"""Progressive delivery end to end: canary steps, gates with analysis from a real metrics
endpoint, pauses promoted from another process and over HTTP, aborts with rollback, a
worker killed during a pause; real ansible-runner, real instances on loopback."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.errors import ConflictError, ValidationError
from orchestrator.models import DeployParams, DeployStatus, Status
from orchestrator.store import schema as t
from sample.pkgserver import Pki
from tests.helpers.floyenv import SERVICE, FloyEnv
from tests.helpers.httpserver import FLOY, FloyServer, server_environ
from tests.helpers.metrics import MetricsServer
from tests.helpers.wait import wait_until


@pytest.fixture
def metrics(pki: Pki) -> Iterator[MetricsServer]:
    """A metrics endpoint whose error rate is low for two answers, then high."""
    server = MetricsServer.start(pki, [0.01, 0.02, 0.3])
    yield server
    server.stop()


def _analysis(url: str, **extra: object) -> dict[str, object]:
    return {"url": url, "query": "data.result[0].value[1]", "max": 0.05, "count": 1,
            "interval": 0, **extra}


def _kinds(status: DeployStatus) -> list[str]:
    assert status.canary is not None
    return [d.kind for d in status.canary.decisions]


def _on(env: FloyEnv, version: str, ids: list[str]) -> None:
    versions = {i.instance_id: i.version for i in
                env.service.get_service_instance_versions(SERVICE).instances}
    assert {i: versions[i] for i in ids} == dict.fromkeys(ids, version)


def _paused(env: FloyEnv, run_id: str, batch: int = 1) -> DeployStatus:
    def paused() -> DeployStatus | None:
        status = env.service.get_deployment_status(run_id)
        assert not status.status.is_terminal, status.error_message
        ok = (status.canary is not None and status.canary.state == "paused"
              and status.canary.batch == batch)
        return status if ok else None
    return wait_until(paused, 120, f"{run_id} to pause after batch {batch}", interval=0.2)


def test_a_canary_passing_analysis_promotes_itself(floy_env: FloyEnv,
                                                   metrics: MetricsServer) -> None:
    ids = floy_env.register(3)
    floy_env.deploy("1.0.0", ids, "base")
    status = floy_env.deploy("2.0.0", ids, "canary-ok", steps=("1", "pause 1s", "100%"),
                             analysis=_analysis(metrics.url, count=2))
    assert status.status is Status.COMPLETED, status.error_message
    assert status.canary is not None
    assert status.canary.batches == (1, 2)
    assert [i.batch for i in status.instances] == [1, 2, 2]
    assert _kinds(status) == ["batch", "analysis_passed", "paused", "continued", "batch"]
    assert status.canary.decisions[3].message == "pause of 1s elapsed"
    assert [m.value for m in status.canary.measurements] == [0.01, 0.02]
    assert all(m.ok and m.batch == 1 for m in status.canary.measurements)
    assert metrics.served == 2  # no analysis after the last batch
    _on(floy_env, "2.0.0", ids)


def test_metrics_crossing_the_threshold_abort_and_roll_back(floy_env: FloyEnv,
                                                            metrics: MetricsServer) -> None:
    ids = floy_env.register(4)
    floy_env.deploy("1.0.0", ids, "base")
    status = floy_env.deploy("2.0.0", ids, "canary-bad", steps="1,1,100%",
                             analysis=_analysis(metrics.url, count=2, failure_limit=1),
                             auto_rollback=True)
    assert status.status is Status.FAILED
    # gate 1: 0.01 and 0.02 pass; gate 2: 0.3 twice is two failures, over the limit of one
    assert status.error_message.startswith("analysis failed: 2 of 2 measurements failed")
    assert "after batch 2" in status.error_message
    assert "automatic rollback canary-bad-rollback of 2 instance(s) to 1.0.0" in \
        status.error_message
    assert [i.status for i in status.instances] == [Status.COMPLETED, Status.COMPLETED,
                                                    Status.CANCELLED, Status.CANCELLED]
    assert status.instances[2].error_message.startswith("not started: analysis failed")
    assert status.canary is not None and status.canary.state == "finished"
    assert [(m.batch, m.ok) for m in status.canary.measurements] == [
        (1, True), (1, True), (2, False), (2, False)]
    assert status.canary.measurements[-1].error == "value 0.3 is above max 0.05"
    assert _kinds(status)[-1] == "analysis_failed"
    rollback = floy_env.service.get_deployment_status(status.rollback_id)
    assert rollback.status is Status.COMPLETED
    _on(floy_env, "1.0.0", ids)


def test_bad_steps_and_analysis_are_refused_naming_the_field(floy_env: FloyEnv,
                                                             pki: Pki) -> None:
    ids = floy_env.register(2)
    url, sha = floy_env.packages["2.0.0"]
    cases: list[tuple[dict[str, object], str, str]] = [
        ({"steps": ("pause", "1")}, "steps", "item 1 ('pause'): a strategy starts with a batch"),
        ({"steps": ("1", "pause 5x", "100%")}, "steps", "item 2 ('pause 5x')"),
        ({"steps": ("0",)}, "steps", "item 1 ('0'): a batch must be from 1"),
        ({"steps": ("1", "pause", "pause", "2")}, "steps", "a pause follows a pause"),
        ({"steps": ("1", "pause")}, "steps", "a strategy ends with a batch"),
        ({"steps": ("1", "pause 200h", "2")}, "steps", "from 1 s to 7 days"),
        ({"steps": ("1", "2"), "batch_size": "2"}, "steps", "not both"),
        ({"analysis": {"url": "http://127.0.0.1/q", "max": 1}}, "analysis.url", "https"),
        ({"analysis": {"url": "https://127.0.0.1/q", "query": "a[", "max": 1}},
         "analysis.query", ""),
        ({"analysis": {"url": "https://127.0.0.1/q", "query": "a"}}, "analysis.query", ""),
        ({"analysis": {"url": "https://127.0.0.1/q", "count": 0}}, "analysis.count", ""),
        ({"analysis": {"url": "https://127.0.0.1/q", "colour": 1}}, "analysis.colour", ""),
    ]
    for number, (extra, field, words) in enumerate(cases):
        params = DeployParams(service=SERVICE, version="2.0.0", instances=tuple(ids),
                              package_url=url, deploy_id=f"bad-{number}", package_sha256=sha,
                              **extra)  # type: ignore[arg-type]
        with pytest.raises(ValidationError) as err:
            floy_env.service.execute_deployment(params)
        assert err.value.field == field, (extra, str(err.value))
        assert words in str(err.value), (extra, str(err.value))
    with floy_env.store.read() as conn:
        assert conn.execute(t.runs.select()).first() is None  # nothing stored, nothing run


def test_an_indefinite_pause_promoted_from_another_process(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(3)
    env.deploy("1.0.0", ids, "base")
    env.wait("base")
    env.deploy("2.0.0", ids, "canary-wait", steps="1,pause,100%")
    status = _paused(env, "canary-wait")
    assert status.canary is not None and status.canary.pause_until is None
    assert [i.status for i in status.instances] == [Status.COMPLETED, Status.PENDING,
                                                    Status.PENDING]
    with pytest.raises(ConflictError, match="already finished"):
        env.service.promote_deployment("base")
    done = subprocess.run([str(FLOY), "promote", "canary-wait"], env=server_environ(env),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "canary-wait: promoted" in done.stdout
    final = env.wait("canary-wait")
    assert final.status is Status.COMPLETED, final.error_message
    assert final.canary is not None
    promoted = [d for d in final.canary.decisions if d.kind == "promoted"]
    assert [d.actor for d in promoted] == [env.service.ctx.who()]
    assert final.canary.promoted_by == env.service.ctx.who()
    with pytest.raises(ConflictError, match="already finished"):
        env.service.promote_deployment("canary-wait")
    actions = [(a.action, a.subject) for a in env.service.actions(SERVICE)]
    assert ("promote", "canary-wait") in actions
    _on(env, "2.0.0", ids)


def test_an_indefinite_pause_promoted_over_http(floy_server: FloyServer) -> None:
    env = floy_server.env
    ids = env.register(2)
    url, sha = env.packages["2.0.0"]
    body = {"service": SERVICE, "version": "2.0.0", "instances": ids, "package_url": url,
            "package_sha256": sha, "deploy_id": "canary-http", "steps": "1,pause,1"}
    with floy_server.client() as c, floy_server.client("read") as reader:
        assert c.post("/v1/deployments", json=body).status_code == 202
        early = c.post("/v1/deployments/canary-http/promote")
        if early.status_code == 409:  # not paused yet: a conflict, not a promotion
            assert "is not paused" in early.json()["message"]
        _paused(env, "canary-http")
        seen = reader.get("/v1/deployments/canary-http").json()
        assert seen["canary"]["state"] == "paused"
        assert seen["canary"]["pause_until"] is None
        assert reader.post("/v1/deployments/canary-http/promote").status_code == 403
        bad = c.post("/v1/deployments/canary-http/promote", json={"full": "yes"})
        assert bad.status_code == 422 and bad.json()["field"] == "full"
        answer = c.post("/v1/deployments/canary-http/promote", json={})
        assert answer.status_code == 200, answer.text
        final = env.wait("canary-http")
    assert final.status is Status.COMPLETED, final.error_message
    assert final.canary is not None
    assert final.canary.promoted_by == "token:test-deployer"
    _on(env, "2.0.0", ids)


def test_a_paused_canary_cancelled(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(3)
    env.deploy("2.0.0", ids, "canary-cancel", steps="1,pause 10m,100%")
    status = _paused(env, "canary-cancel")
    assert status.canary is not None and status.canary.pause_until is not None
    result = env.service.cancel_deployment("canary-cancel")
    assert result.status is Status.CANCELLED
    final = env.service.get_deployment_status("canary-cancel")
    assert [i.status for i in final.instances] == [Status.COMPLETED, Status.CANCELLED,
                                                   Status.CANCELLED]
    assert final.instances[1].error_message == "not started: cancelled on request"
    assert final.rollback_id == ""


def test_an_abort_rolls_back_what_the_canary_switched(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(3)
    env.deploy("1.0.0", ids, "base")
    env.wait("base")
    env.deploy("2.0.0", ids, "canary-abort", steps="1,pause,100%")
    _paused(env, "canary-abort")
    status = env.service.abort_deployment("canary-abort", rollback=True)
    assert status.status is Status.CANCELLED
    assert status.error_message.startswith("aborted by ")
    assert "automatic rollback canary-abort-rollback of 1 instance(s) to 1.0.0" in \
        status.error_message
    assert status.instances[1].error_message.startswith("not started: aborted by ")
    assert _kinds(status)[-1] == "aborted"
    rollback = env.wait(status.rollback_id)
    assert rollback.status is Status.COMPLETED, rollback.error_message
    _on(env, "1.0.0", ids)


def test_a_worker_killed_during_a_pause_is_resumed_there(floy_async_env: FloyEnv) -> None:
    env = floy_async_env
    ids = env.register(2)
    env.deploy("2.0.0", ids, "canary-kill", steps="1,pause,1")
    _paused(env, "canary-kill")
    pid = env.service.worker_pid("canary-kill")
    assert pid
    os.kill(pid, signal.SIGKILL)
    # the lease (3 s here) expires; the next reaper hands the run back at its gate and
    # starts a worker there, which waits on at the same pause
    wait_until(lambda: env.service.reap_stale_runs() or None, 60, "the lease to expire",
               interval=0.5)
    resumed = wait_until(
        lambda: (env.service.worker_pid("canary-kill") or 0) not in (0, pid) or None,
        60, "a new worker to resume the run")
    assert resumed
    status = _paused(env, "canary-kill")
    assert _kinds(status).count("paused") == 1  # the same pause, not a new one
    env.service.promote_deployment("canary-kill")
    final = env.wait("canary-kill")
    assert final.status is Status.COMPLETED, final.error_message
    _on(env, "2.0.0", ids)


def test_bad_promote_abort_bodies_and_analysis_files_are_refused(floy_server: FloyServer,
                                                                  tmp_path: Path) -> None:
    env = floy_server.env
    ids = env.register(1)
    with floy_server.client() as c:
        bad = c.post("/v1/deployments/nope/abort", json={"rollback": "yes"})
        assert bad.status_code == 422 and bad.json()["field"] == "rollback"
        unknown = c.post("/v1/deployments/nope/promote", json={"fully": True})
        assert unknown.status_code == 422 and unknown.json()["field"] == "fully"
        assert c.post("/v1/deployments/nope/promote").status_code == 404
    url, _ = env.packages["2.0.0"]
    listed = tmp_path / "analysis.yml"
    listed.write_text("- url: https://127.0.0.1/q\n")
    for path in (listed, tmp_path / "missing.yml"):
        done = subprocess.run([str(FLOY), "deploy", SERVICE, "2.0.0", "--url", url,
                               "-i", ids[0], "--steps", "1", "--analysis", str(path)],
                              env=server_environ(env), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        assert "invalid analysis" in done.stderr, done.stderr
    with env.store.read() as conn:
        assert conn.execute(t.runs.select()).first() is None  # nothing stored, nothing run
