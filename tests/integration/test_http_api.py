"""``floy serve`` as a caller sees it: a real server process over TLS, real runs.

The seven spec methods with the spec's JSON, errors with stable codes that name the field
and store nothing, tokens and roles, heartbeats and drift, the audit trail, the event
stream, and the server's own refusals (plaintext off loopback, a port in use).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from orchestrator.models import SPEC_KEYS, Status
from orchestrator.store import schema as t
from tests.helpers.httpserver import FLOY, FloyServer, server_environ
from tests.helpers.wait import wait_until

pytestmark = pytest.mark.integration


def _deploy_body(server: FloyServer, ids: list[str], deploy_id: str, package: str = "2.0.0",
                 **extra: object) -> dict[str, object]:
    url, sha = server.env.packages[package]
    return {"service": "hello", "version": package.split("-")[0], "instances": ids,
            "package_url": url, "deploy_id": deploy_id, "package_sha256": sha, **extra}


def _ended(c: httpx.Client, run_id: str, timeout: float = 120) -> dict[str, object]:
    def done() -> dict[str, object] | None:
        body = c.get(f"/v1/deployments/{run_id}").json()
        return body if body["finished_at"] else None
    return wait_until(done, timeout, f"{run_id} to end", interval=0.2)


def _rows(server: FloyServer) -> dict[str, list[tuple[object, ...]]]:
    with server.env.store.read() as conn:
        return {table.name: sorted(map(tuple, conn.execute(table.select())), key=repr)
                for table in t.metadata.sorted_tables}


def test_the_seven_spec_methods_over_http(floy_server: FloyServer) -> None:
    ids = floy_server.env.register(3)
    with floy_server.client() as c:
        started = c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "web-v2",
                                                                batch_size="2"))
        assert started.status_code == 202, started.text
        assert set(started.json()) == SPEC_KEYS["DeployResult"]
        status = _ended(c, "web-v2")
        assert status["status"] == "completed"
        assert SPEC_KEYS["DeployStatus"] <= set(status)
        assert all(i["current_version"] == "2.0.0" for i in status["instances"])

        versions = c.get("/v1/services/hello/versions").json()
        assert set(versions) == SPEC_KEYS["ServiceVersions"]
        assert versions["version_summary"] == {"2.0.0": 3}

        page = c.get("/v1/services/hello/instances",
                     params={"version": "2.0.0", "limit": 2, "offset": 1}).json()
        assert set(page) == SPEC_KEYS["ServiceInstances"]
        assert (page["total"], page["limit"], page["offset"]) == (3, 2, 1)
        assert [i["instance_id"] for i in page["instances"]] == ids[1:]
        assert page["instances"][0]["port"] == floy_server.env.ports[ids[1]]

        back = c.post("/v1/rollbacks/instance", json={"instance_id": ids[0],
                                                      "target_version": "2.0.0",
                                                      "force": True})
        assert back.status_code == 202, back.text
        assert set(back.json()) == SPEC_KEYS["RollbackResult"]
        assert _ended(c, back.json()["rollback_id"])["status"] == "completed"

        url, _ = floy_server.env.packages["3.0.0"]
        batch = c.post("/v1/rollbacks/batch", json={"service": "hello",
                                                    "target_version": "3.0.0",
                                                    "package_url": url, "instances": ids[1:]})
        assert batch.status_code == 202, batch.text
        assert set(batch.json()) == SPEC_KEYS["BatchRollbackResult"]
        assert _ended(c, batch.json()["rollback_id"])["status"] == "completed"
        assert c.get("/v1/services/hello/versions").json()["version_summary"] == {
            "2.0.0": 1, "3.0.0": 2}
        # Beyond the spec: no target_version, the version before the current one.
        previous = c.post("/v1/rollbacks/instance", json={"instance_id": ids[1]})
        assert previous.status_code == 202, previous.text
        assert previous.json()["target_version"] == "2.0.0", "the version before 3.0.0"
        assert _ended(c, previous.json()["rollback_id"])["status"] == "completed"

        slow = c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "web-v1",
                                                             package="1.0.0"))
        assert slow.status_code == 202
        floy_server.env.wait_in_flight("web-v1")
        cancelled = c.post("/v1/deployments/web-v1/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert set(cancelled.json()) == SPEC_KEYS["CancelResult"]
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["cancelled_at"]
        again = c.post("/v1/deployments/web-v1/cancel")
        assert again.status_code == 409 and again.json()["error"] == "conflict"


def test_every_mutating_call_is_recorded_with_the_token_name(floy_server: FloyServer) -> None:
    floy_server.env.register(1)  # through the Python API: the OS user
    with floy_server.client() as c:
        made = c.post("/v1/instances", json={"instances": [
            {"instance_id": "hello-9", "service": "hello", "host": "127.0.0.1",
             "port": 1, "metadata": {"rack": "r9"}}]})
        assert made.status_code == 201, made.text
        assert c.post("/v1/deployments",
                      json=_deploy_body(floy_server, ["hello-1"], "audited")).status_code == 202
        _ended(c, "audited")
        history = c.get("/v1/services/hello/history").json()
    run = next(r for r in history["runs"] if r["run_id"] == "audited")
    assert run["created_by"] == "token:test-deployer"
    actors = {(a["action"], a["subject"]): a["actor"] for a in history["actions"]}
    assert actors[("register", "hello-9")] == "token:test-deployer"
    assert actors[("deploy", "audited")] == "token:test-deployer"
    assert actors[("register", "hello-1")] not in ("", "token:test-deployer")
    shown = subprocess.run([str(FLOY), "history", "hello", "--actions", "--json"],
                           env=server_environ(floy_server.env), capture_output=True, text=True,
                           check=True)
    assert json.loads(shown.stdout) == history["actions"], "the CLI shows the same trail"


def test_refused_requests_name_the_field_and_store_nothing(floy_server: FloyServer) -> None:
    ids = floy_server.env.register(2)
    before = _rows(floy_server)
    with floy_server.client() as c:
        cases = [
            ("post", "/v1/deployments", {**_deploy_body(floy_server, ids, "x"),
                                         "package_url": "http://127.0.0.1/p.tgz"},
             422, "package_url"),
            ("post", "/v1/deployments", {**_deploy_body(floy_server, ids, "x"),
                                         "instances": [ids[0], "nope-1"]},
             422, "instances[1]"),
            ("post", "/v1/deployments", {**_deploy_body(floy_server, ids, "x"),
                                         "version": "{{ lookup('pipe', 'id') }}"},
             422, "version"),
            ("post", "/v1/deployments", {**_deploy_body(floy_server, ids, "x"), "extra": 1},
             422, "extra"),
            ("post", "/v1/deployments", {**_deploy_body(floy_server, ids, "x"), "timeout": "9"},
             422, "timeout"),
            ("post", "/v1/rollbacks/instance", {"instance_id": ids[0]}, 422, "target_version"),
            ("post", "/v1/rollbacks/batch", {"service": "hello", "instances": ids}, 422,
             "target_version"),
            ("post", "/v1/rollbacks/batch", {"service": "hello", "target_version": "0.1.0",
                                             "instances": ids}, 422, None),
            ("post", "/v1/instances", {"instances": [{"instance_id": "a", "service": "hello",
                                                      "host": "h", "port": 99999}]},
             422, "instances[0].port"),
            ("get", "/v1/services/hello/instances?limit=abc", None, 422, "limit"),
            ("get", "/v1/services/hello/instances?limit=0", None, 422, "limit"),
        ]
        for method, path, body, code, field in cases:
            answer = c.request(method, path, json=body)
            assert answer.status_code == code, (path, body, answer.text)
            assert answer.json()["error"] == "validation"
            if field:
                assert answer.json()["field"] == field, answer.text
        raw = c.post("/v1/deployments", content=b"{not json",
                     headers={"Content-Type": "application/json"})
        assert raw.status_code == 400 and raw.json()["error"] == "bad_request"
        assert c.get("/v1/deployments/none-such").status_code == 404
        assert c.get("/v1/services/none-such/versions").json()["error"] == "not_found"
        assert c.delete("/v1/deployments").status_code == 405
    assert _rows(floy_server) == before


def test_reused_deploy_id_with_other_params_is_409(floy_server: FloyServer) -> None:
    ids = floy_server.env.register(1)
    with floy_server.client() as c:
        first = c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "same"))
        again = c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "same"))
        assert first.status_code == again.status_code == 202
        assert again.json()["deploy_id"] == "same"
        other = c.post("/v1/deployments",
                       json=_deploy_body(floy_server, ids, "same", package="3.0.0"))
        assert other.status_code == 409 and other.json()["error"] == "conflict"
        _ended(c, "same")


def test_auth_refusals(floy_server: FloyServer) -> None:
    floy_server.env.register(1)
    with floy_server.client("") as anonymous:
        answer = anonymous.get("/v1/services")
        assert answer.status_code == 401 and answer.headers["www-authenticate"].startswith(
            "Bearer")
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/openapi.json").status_code == 200
    with floy_server.client("read") as reader:
        assert reader.get("/v1/services").status_code == 200
        refused = reader.post("/v1/deployments", json={})
        assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    floy_server.token_file.revoke("test-read")
    with floy_server.client("read") as revoked:
        assert revoked.get("/v1/services").status_code == 401
    log = floy_server.log_text()
    assert "refused GET /v1/services from 127.0.0.1: unknown token" in log
    assert floy_server.tokens["read"] not in log and floy_server.tokens["deployer"] not in log


def test_failed_authentications_are_rate_limited(floy_server: FloyServer) -> None:
    with floy_server.client("", token="floy_wrong") as wrong:
        codes = [wrong.get("/v1/services").status_code for _ in range(11)]
    assert codes[:10] == [401] * 10 and codes[10] == 429
    with floy_server.client() as good:
        limited = good.get("/v1/services")  # same client address: limited too
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0


def test_heartbeats_update_last_heartbeat_and_raise_drift(floy_server: FloyServer) -> None:
    ids = floy_server.env.register(2)
    with floy_server.client() as c:
        c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "beat-v2"))
        _ended(c, "beat-v2")
        before = c.get("/v1/services/hello/instances").json()["instances"][0]["last_heartbeat"]
    time.sleep(0.01)
    with floy_server.client("", token=floy_server.heartbeat_token(ids[0])) as beat:
        same = beat.post(f"/v1/instances/{ids[0]}/heartbeat", json={"version": "2.0.0"})
        assert same.status_code == 200 and same.json()["drift"] is False
        drifted = beat.post(f"/v1/instances/{ids[0]}/heartbeat", json={"version": "2.0.1"})
        assert drifted.json() | {"last_heartbeat": ""} == {
            "instance_id": ids[0], "version": "2.0.1", "recorded_version": "2.0.0",
            "last_heartbeat": "", "drift": True}
        other = beat.post(f"/v1/instances/{ids[1]}/heartbeat", json={"version": "2.0.0"})
        assert other.status_code == 403
        bad = beat.post(f"/v1/instances/{ids[0]}/heartbeat", json={"version": "../x"})
        assert bad.status_code == 422 and bad.json()["field"] == "version"
    with floy_server.client("read") as c:
        listed = c.get("/v1/services/hello/instances").json()["instances"][0]
        assert listed["last_heartbeat"] > before and listed["version"] == "2.0.0"
        services = c.get("/v1/services").json()["services"]
        assert services[0]["drift"] == [{"instance_id": ids[0], "version": "2.0.0",
                                         "observed_version": "2.0.1",
                                         "observed_at": services[0]["drift"][0]["observed_at"]}]
        actions = c.get("/v1/services/hello/history").json()["actions"]
        assert [a["actor"] for a in actions if a["action"] == "drift"] == [
            f"token:beat-{ids[0]}"]
    with floy_server.client() as deployer:  # a deployer token does not speak for instances
        assert deployer.post(f"/v1/instances/{ids[0]}/heartbeat",
                             json={"version": "2.0.0"}).status_code == 403


def test_the_event_stream_follows_a_run_to_its_end(floy_server: FloyServer) -> None:
    ids = floy_server.env.register(2)
    events: list[tuple[str, dict[str, object]]] = []
    with floy_server.client() as c:
        c.post("/v1/deployments", json=_deploy_body(floy_server, ids, "streamed"))
        with c.stream("GET", "/v1/deployments/streamed/events") as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            kind = ""
            for line in stream.iter_lines():
                if line.startswith("event:"):
                    kind = line.partition(":")[2].strip()
                elif line.startswith("data:"):
                    events.append((kind, json.loads(line.partition(":")[2])))
        assert c.get("/v1/deployments/nope/events").status_code == 404
    kinds = [k for k, _ in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1 and set(kinds[:-1]) == {"status"}
    seen = {i["status"] for _, e in events for i in e["instances"]}  # type: ignore[attr-defined]
    assert Status.IN_PROGRESS.value in seen, "the stream showed instances while they ran"
    assert events[-1][1]["status"] == "completed"


def test_the_token_commands(floy_server: FloyServer) -> None:
    environ = server_environ(floy_server.env)
    made = subprocess.run([str(FLOY), "token", "add", "ops", "--role", "read",
                           "--expires-in", "1h"], env=environ, capture_output=True, text=True,
                          check=True)
    secret = made.stdout.strip()
    assert secret.startswith("floy_") and "shown only now" in made.stderr
    listed = subprocess.run([str(FLOY), "token", "list", "--json"], env=environ,
                            capture_output=True, text=True, check=True).stdout
    assert secret not in listed and "sha256" not in listed and '"ops"' in listed
    with floy_server.client("", token=secret) as c:
        assert c.get("/v1/services").status_code == 200
    bad = subprocess.run([str(FLOY), "token", "add", "x", "--role", "read", "--expires-in",
                          "soon"], env=environ, capture_output=True, text=True)
    assert bad.returncode == 2 and "--expires-in" in bad.stderr


@pytest.mark.parametrize(("args", "code", "needle"), [
    (["--host", "0.0.0.0"], 2, "--host"),
    (["--cert", "/nonexistent.pem", "--key", "/nonexistent.key"], 6, "--cert"),
    (["--cert", "/etc/hostname"], 2, "--key"),
])
def test_serve_refuses_unsafe_or_impossible_settings(floy_async_env: object, args: list[str],
                                                     code: int, needle: str) -> None:
    environ = server_environ(floy_async_env)  # type: ignore[arg-type]
    done = subprocess.run([str(FLOY), "serve", "--port", "0", *args], env=environ,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == code, done.stderr
    assert needle in done.stderr


def test_serve_on_a_port_in_use_is_a_config_error(floy_server: FloyServer) -> None:
    port = floy_server.url.rsplit(":", 1)[1]
    done = subprocess.run([str(FLOY), "serve", "--port", port],
                          env=server_environ(floy_server.env), capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 6 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def test_the_dashboard_and_openapi_are_served(floy_server: FloyServer) -> None:
    with floy_server.client("") as c:
        page = c.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        doc = c.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.") and "/v1/deployments" in doc["paths"]
    assert Path(floy_server.log).exists()
