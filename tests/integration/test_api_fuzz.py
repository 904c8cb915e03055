"""schemathesis against a real ``floy serve``, from orchestrator/http/openapi.yaml.

Every operation of the document is fuzzed (positive and negative cases, bounded) with the
deployer token, and again, fewer cases, with a read token and with no token. Each answer
must be documented: no 5xx, a documented status code and content type, documented headers,
a body that matches its schema. Every refused call (status >= 400) must leave the store
exactly as it was: every row of every table of orchestrator.store.schema, compared before
and after. Accepted calls may change it (a generated registration is real).

A deterministic test adds what random IDs rarely reach: a real deployment, its status,
events, cancel, rollbacks and the extension endpoints, each answer checked against the
document.

The servers are module-scoped ``floy serve`` processes with hello-1..3 registered, built
with the helpers behind the ``floy_server`` fixture: one for the token passes, one for the
no-token pass (``floy serve`` refuses a client with 429 for a minute after ten failed
authentications) and one for the deterministic tests (untouched by generated
registrations). Checks of docs/http-api.md that the document cannot express (400 for a JSON
body that is not an object, 404 for an unknown service) are asserted here too.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
import sqlalchemy as sa
import yaml
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from orchestrator.store import Store
from orchestrator.store.schema import metadata
from sample.packages import stop_apps
from tests.helpers.floyenv import FloyEnv, make_env
from tests.helpers.httpserver import FloyServer, start_server
from tests.helpers.wait import wait_until
from tests.unit.test_openapi import errors_of

pytestmark = pytest.mark.integration

DOCUMENT = Path(__file__).resolve().parents[2] / "orchestrator" / "http" / "openapi.yaml"
HEARTBEAT_INSTANCE = "hello-1"
HEARTBEAT_PATH = "/v1/instances/{id}/heartbeat"
REQUEST_TIMEOUT = 20.0

#: Operations whose bodies hold arrays of up to 10,000 distinct instance IDs: schemathesis's
#: coverage phase builds its boundary cases for them at collection time, half a minute each.
BIG_BODIES = ["executeDeployment", "rollbackBatch"]


def load_schema(coverage: bool) -> Any:
    return schemathesis.openapi.from_path(DOCUMENT, config=schemathesis.Config.from_dict({
        # Authorization is the test's to set: a generated or stripped one would fail
        # authentication, and ten failures get this client refused (429) for a minute.
        "generation": {"database": "none", "mode": "all", "with-security-parameters": False},
        # A query parameter sent twice is read once (the last value), as most servers do.
        "phases": {"stateful": {"enabled": False},
                   "coverage": {"enabled": coverage,
                                "generate-duplicate-query-parameters": False}},
    }))


SCHEMA = load_schema(coverage=False)
V1 = SCHEMA.include(path_regex="^/v1/")
#: The deployer pass adds schemathesis's coverage phase (boundary values, missing and
#: unexpected parameters, other methods), except for BIG_BODIES.
V1_COVERED = load_schema(coverage=True).include(path_regex="^/v1/").exclude(
    operation_id=BIG_BODIES)
V1_BIG = SCHEMA.include(operation_id=BIG_BODIES)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,  # what the document calls invalid, the server refuses
]
FUZZ_SETTINGS = settings(
    deadline=timedelta(seconds=90),  # a call (20 s at most), after waiting for runs (45 s)
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                           HealthCheck.filter_too_much, HealthCheck.data_too_large],
    database=None,  # nothing written under the work tree
)


# --- servers -----------------------------------------------------------------------------------


def _server(tmp_path: Path, pki: object, packages: dict[str, tuple[str, str]]
            ) -> Iterator[FloyServer]:
    env = make_env(tmp_path, pki, packages, inline=False, lease_seconds=3.0)
    env.register(3)
    server = start_server(env, pki)
    server.heartbeat_token(HEARTBEAT_INSTANCE)
    try:
        yield server
    finally:
        server.stop()
        stop_apps(env.root)
        env.store.close()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory, pki: object,
        packages: dict[str, tuple[str, str]]) -> Iterator[FloyServer]:
    """``floy serve`` over an installation with hello-1..3 registered (deployer, read and
    hello-1's heartbeat tokens)."""
    yield from _server(tmp_path_factory.mktemp("api"), pki, packages)


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory, pki: object,
         packages: dict[str, tuple[str, str]]) -> Iterator[FloyServer]:
    """A server for the deterministic tests, untouched by generated registrations."""
    yield from _server(tmp_path_factory.mktemp("real"), pki, packages)


@pytest.fixture(scope="module")
def anon_api(tmp_path_factory: pytest.TempPathFactory, pki: object,
             packages: dict[str, tuple[str, str]]) -> Iterator[FloyServer]:
    """Another server, for calls without a token (they end up rate-limited)."""
    yield from _server(tmp_path_factory.mktemp("anon"), pki, packages)


# --- the store ---------------------------------------------------------------------------------


def snapshot(store: Store) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table floy knows, in primary-key order."""
    rows = {}
    with store.read() as conn:
        present = set(sa.inspect(conn).get_table_names())
        for name, table in metadata.tables.items():
            if name not in present:
                continue
            order = list(table.primary_key.columns) or list(table.columns)
            rows[name] = [tuple(r) for r in conn.execute(sa.select(table).order_by(*order))]
    return rows


def unfinished_runs(store: Store) -> list[str]:
    runs = metadata.tables["runs"]
    with store.read() as conn:
        query = sa.select(runs.c.run_id).where(runs.c.finished_at.is_(None))
        return [r.run_id for r in conn.execute(query)]


def quiesce(env: FloyEnv) -> None:
    """Wait until no run is going (an accepted generated deployment or rollback runs in a
    worker, which writes to the store while later calls are compared)."""
    wait_until(lambda: not unfinished_runs(env.store), 45, "every run to end")


# --- calls -------------------------------------------------------------------------------------


_SESSIONS: dict[str, requests.Session] = {}


def session(server: FloyServer) -> requests.Session:
    """One keep-alive session per server (a TLS handshake per call would dominate)."""
    if server.url not in _SESSIONS:
        _SESSIONS[server.url] = requests.Session()
        _SESSIONS[server.url].verify = str(server.ca_file)
    return _SESSIONS[server.url]


def call(server: FloyServer, case: Any, token: str) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = case.call(base_url=server.url, session=session(server), headers=headers,
                         verify=str(server.ca_file), timeout=REQUEST_TIMEOUT)
    case.validate_response(response, checks=CHECKS, headers=headers)
    return response


def checked_call(server: FloyServer, case: Any, token: str) -> Any:
    """Make the call; a refused one must have left the store unchanged."""
    quiesce(server.env)
    before = snapshot(server.env.store)
    response = call(server, case, token)
    if response.status_code >= 400:
        after = snapshot(server.env.store)
        changed = {t for t in before if before[t] != after.get(t)}
        assert not changed, (
            f"{case.method} {case.formatted_path} answered {response.status_code} "
            f"but changed {sorted(changed)}: {response.text[:300]}")
    return response


def _is_name(value: object) -> bool:
    return isinstance(value, str) and bool(
        re.fullmatch(r"(?!.*\.\.)[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", value))


def _documented_method(case: Any) -> bool:
    """False for the coverage phase's calls with a method the path does not have (405)."""
    return bool(case.method.upper() == case.operation.method.upper())


# --- the passes --------------------------------------------------------------------------------


def deployer_pass(case: Any, api: FloyServer) -> None:
    """Every operation with the token that may call it: the deployer's, and hello-1's
    heartbeat token for its heartbeat (a valid generated ID is replaced by hello-1, so the
    body reaches a real instance)."""
    token = api.tokens["deployer"]
    if case.operation.path == HEARTBEAT_PATH:
        token = api.heartbeat_token(HEARTBEAT_INSTANCE)
        if _is_name(case.path_parameters.get("id")):
            case.path_parameters["id"] = HEARTBEAT_INSTANCE
    checked_call(api, case, token)


def read_pass(case: Any, api: FloyServer) -> None:
    """A read token: GETs behave as for the deployer, every POST is forbidden (403) before
    its body is even read."""
    response = checked_call(api, case, api.tokens["read"])
    if _documented_method(case) and case.method.upper() != "GET":
        assert response.status_code == 403, response.text[:300]


def anonymous_pass(case: Any, anon_api: FloyServer) -> None:
    """No token: every /v1 call is refused (401, then 429 once this client has failed ten
    times); /healthz and /openapi.json answer."""
    response = checked_call(anon_api, case, "")
    if not _documented_method(case):
        assert response.status_code == 405
    elif case.operation.path.startswith("/v1/"):
        assert response.status_code in (401, 429), response.text[:300]
    else:
        assert response.status_code == 200


def _fuzz(schema: Any, function: Any, max_examples: int) -> Any:
    """A pytest test per operation of ``schema``, running ``function`` on each case."""

    @functools.wraps(function)
    def test(*args: Any, **kwargs: Any) -> None:
        function(*args, **kwargs)

    return schema.parametrize()(settings(FUZZ_SETTINGS, max_examples=max_examples)(test))


test_deployer_fuzz = _fuzz(V1_COVERED, deployer_pass, 25)
test_deployer_fuzz_big_bodies = _fuzz(V1_BIG, deployer_pass, 25)
test_read_token_fuzz = _fuzz(V1, read_pass, 8)
test_no_token_fuzz = _fuzz(SCHEMA, anonymous_pass, 5)


# --- hostile query strings ---------------------------------------------------------------------


INTEGER_QUERIES = [
    ("/v1/deployments", "limit"),
    ("/v1/services/hello/instances", "limit"),
    ("/v1/services/hello/instances", "offset"),
    ("/v1/services/hello/history", "limit"),
]
ODD_INTEGERS = ["--5", "-", "+5", "5-", " 5", "5 ", "1e3", "0x10", "5.0", "٣", "¹", "",
                "99999999999999", "-0", "0", "1", "007", "1000", "1001", "10000000", "10000001"]
BOUNDS = {"limit": (1, 1000), "offset": (0, 10_000_000)}


@pytest.mark.parametrize(("path", "name"), INTEGER_QUERIES)
def test_integer_query_values(api: FloyServer, path: str, name: str) -> None:
    """Query integers the generator rarely tries: a decimal integer in range is read, anything
    else (an empty value too: the document says integer) is refused with 422 naming the
    parameter; never a 5xx."""
    low, high = BOUNDS[name]
    with api.client("read") as client:
        for raw in ODD_INTEGERS:
            valid = bool(re.fullmatch(r"-?[0-9]+", raw)) and low <= int(raw) <= high
            response = client.get(path, params={name: raw})
            assert response.status_code == (200 if valid else 422), (
                raw, response.status_code, response.text[:300])
            if not valid:
                assert response.json()["field"] == name, raw


# --- real answers ------------------------------------------------------------------------------


def conforms(response: httpx.Response, path: str, method: str) -> Any:
    """The answer is documented (status, content type) and its body matches the schema."""
    operation = SCHEMA[path][method.upper()]
    documented = operation.definition.raw["responses"]
    assert str(response.status_code) in documented, (path, response.status_code,
                                                     response.text[:300])
    content = documented[str(response.status_code)]
    if "$ref" in content:
        content = SCHEMA.raw_schema["components"]["responses"][content["$ref"].split("/")[-1]]
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media in content.get("content", {}), (path, media)
    operation.validate_response(response)
    return response.json() if media == "application/json" else response.text


def check_events(text: str) -> None:
    """``event: status`` messages, then one ``event: end``; each data a DeployStatus."""
    names = []
    for message in text.replace("\r\n", "\n").split("\n\n"):
        fields = [line.partition(":")[::2] for line in message.split("\n")
                  if line and not line.startswith(":")]
        if not fields:
            continue  # a keep-alive comment
        event = next(v.strip() for k, v in fields if k == "event")
        data = "\n".join(v.removeprefix(" ") for k, v in fields if k == "data")
        assert errors_of(SCHEMA.raw_schema, "DeployStatus", json.loads(data)) == [], data
        names.append(event)
    assert names and names[-1] == "end" and set(names[:-1]) <= {"status"}, names


def test_real_answers_match_the_document(real: FloyServer) -> None:
    """A real deployment and everything around it, through the API: every answer is
    documented and matches its schema (the fuzz passes mostly see refusals)."""
    env = real.env
    url, sha = env.packages["1.0.0"]
    deploy = {"service": "hello", "version": "1.0.0", "instances": ["hello-2", "hello-3"],
              "package_url": url, "deploy_id": "api-real-1", "package_sha256": sha,
              "batch_size": 1}
    with real.client("deployer") as client, real.client("read") as reader:
        conforms(client.post("/v1/instances", json={"instances": [
            {"instance_id": "hello-9", "service": "other", "host": "127.0.0.1", "port": 9,
             "metadata": {"rack": "r1"}}]}), "/v1/instances", "post")
        started = conforms(client.post("/v1/deployments", json=deploy), "/v1/deployments",
                           "post")
        assert started["deploy_id"] == "api-real-1"
        again = client.post("/v1/deployments", json=deploy)
        conforms(again, "/v1/deployments", "post")
        with reader.stream("GET", "/v1/deployments/api-real-1/events",
                           timeout=120) as events:
            assert events.status_code == 200
            assert events.headers["content-type"].startswith("text/event-stream")
            text = "".join(events.iter_text())
        check_events(text)
        status = conforms(reader.get("/v1/deployments/api-real-1"),
                          "/v1/deployments/{id}", "get")
        assert status["status"] == "completed", status
        conforms(client.post("/v1/deployments/api-real-1/cancel"),
                 "/v1/deployments/{id}/cancel", "post")  # finished: 409
        conforms(reader.get("/v1/deployments", params={"service": "hello"}),
                 "/v1/deployments", "get")
        conforms(reader.get("/v1/deployments", params={"active": "true"}),
                 "/v1/deployments", "get")
        conforms(reader.get("/v1/services"), "/v1/services", "get")
        conforms(reader.get("/v1/services/hello/versions"), "/v1/services/{service}/versions",
                 "get")
        conforms(reader.get("/v1/services/hello/instances", params={"version": "1.0.0"}),
                 "/v1/services/{service}/instances", "get")
        conforms(reader.get("/v1/services/hello/history"), "/v1/services/{service}/history",
                 "get")
        beat = real.heartbeat_token(HEARTBEAT_INSTANCE)
        conforms(client.post(f"/v1/instances/{HEARTBEAT_INSTANCE}/heartbeat",
                             json={"version": "0.9.0"},
                             headers={"Authorization": f"Bearer {beat}"}),
                 HEARTBEAT_PATH, "post")
        conforms(reader.get("/v1/services"), "/v1/services", "get")  # now with drift
        rolled = conforms(client.post("/v1/rollbacks/batch", json={
            "service": "hello", "target_version": "1.0.0", "instances": ["hello-2"],
            "rollback_id": "api-rb-1"}), "/v1/rollbacks/batch", "post")
        quiesce(env)
        conforms(reader.get(f"/v1/deployments/{rolled['rollback_id']}"),
                 "/v1/deployments/{id}", "get")
        single = conforms(client.post("/v1/rollbacks/instance", json={
            "instance_id": "hello-3", "target_version": "1.0.0", "rollback_id": "api-rb-2"}),
            "/v1/rollbacks/instance", "post")
        quiesce(env)
        conforms(reader.get(f"/v1/deployments/{single['rollback_id']}"),
                 "/v1/deployments/{id}", "get")
        conforms(reader.get("/healthz"), "/healthz", "get")
        conforms(reader.get("/openapi.json"), "/openapi.json", "get")


def test_bracket_in_package_url_host_is_refused(real: FloyServer) -> None:
    """A ']' or '[' in a package URL's host is invalid input (422 naming package_url), not
    an internal error: urlsplit raises ValueError("Invalid IPv6 URL") for it."""
    requests: list[tuple[str, dict[str, Any]]] = [
        ("/v1/deployments", {"service": "hello", "version": "1.0.0", "instances": ["hello-1"],
                             "deploy_id": "bracket-1"}),
        ("/v1/rollbacks/instance", {"instance_id": "hello-1", "target_version": "1.0.0"}),
        ("/v1/rollbacks/batch", {"service": "hello", "target_version": "1.0.0",
                                 "instances": ["hello-1"]}),
    ]
    before = snapshot(real.env.store)
    with real.client("deployer") as client:
        for path, body in requests:
            for url in ("https://a]b/x.tgz", "https://[::1/x.tgz", "https://a[b]/x.tgz"):
                response = client.post(path, json={**body, "package_url": url})
                assert (response.status_code, response.json().get("field")) == (
                    422, "package_url"), (path, url, response.status_code, response.text)
    assert snapshot(real.env.store) == before


def test_duplicate_instance_in_one_registration_is_refused(real: FloyServer) -> None:
    """Two entries with one instance ID in one registration: refused as input (not a 500
    from the database's unique constraint), nothing stored."""
    entry = {"instance_id": "dup-1", "service": "dup", "host": "127.0.0.1", "port": 1}
    before = snapshot(real.env.store)
    with real.client("deployer") as client:
        for replace in (False, True):
            response = client.post("/v1/instances", json={
                "instances": [entry, {**entry, "port": 2}], "replace": replace})
            assert response.status_code in (409, 422), (replace, response.status_code,
                                                        response.text)
            conforms(response, "/v1/instances", "post")
    assert snapshot(real.env.store) == before


def test_snapshot_sees_every_table_and_change(real: FloyServer) -> None:
    """The store comparison the fuzz passes rely on covers every table floy has, and sees a
    change (an accepted registration)."""
    before = snapshot(real.env.store)
    assert set(before) == set(metadata.tables)
    with real.client("deployer") as client:
        response = client.post("/v1/instances", json={"instances": [
            {"instance_id": "snap-1", "service": "snap", "host": "127.0.0.1", "port": 1}]})
    assert response.status_code == 201, response.text
    after = snapshot(real.env.store)
    assert {t for t in before if before[t] != after[t]} == {"instances", "actions"}


def test_served_document_is_the_file(real: FloyServer) -> None:
    """GET /openapi.json serves orchestrator/http/openapi.yaml, unchanged."""
    with real.client("") as client:
        served = client.get("/openapi.json").json()
    assert served == yaml.safe_load(DOCUMENT.read_text(encoding="utf-8"))


BODY_OPERATIONS = ["/v1/deployments", "/v1/rollbacks/instance", "/v1/rollbacks/batch",
                   "/v1/instances", f"/v1/instances/{HEARTBEAT_INSTANCE}/heartbeat"]


@pytest.mark.parametrize("path", BODY_OPERATIONS)
def test_body_that_is_not_an_object_is_bad_request(real: FloyServer, path: str) -> None:
    """docs/http-api.md and the document's 400: "the body is not JSON / not an object"."""
    token = (real.heartbeat_token(HEARTBEAT_INSTANCE) if path.endswith("/heartbeat")
             else real.tokens["deployer"])
    before = snapshot(real.env.store)
    with real.client(token=token) as client:
        for body in (b"[]", b'"x"', b"1", b"null", b"true", b"{", b"\xff"):
            response = client.post(path, content=body,
                                   headers={"Content-Type": "application/json"})
            assert (response.status_code, response.json()["error"]) == (400, "bad_request"), (
                body, response.status_code, response.text)
    assert snapshot(real.env.store) == before


def test_unknown_service_history_is_not_found(real: FloyServer) -> None:
    """docs/http-api.md: 404 for an unknown service, as versions and instances answer."""
    with real.client("read") as client:
        for path in ("versions", "instances", "history"):
            response = client.get(f"/v1/services/no-such-service/{path}")
            assert response.status_code == 404, (path, response.status_code, response.text)
