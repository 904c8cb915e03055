"""The contract types: JSON keys, round trips and type errors in from_dict."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrator.errors import ValidationError
from orchestrator.models import (
    DEFAULT_LIMIT,
    DEFAULT_OFFSET,
    DEFAULT_RETRY_COUNT,
    DEFAULT_TIMEOUT,
    EXTENSION_KEYS,
    SPEC_KEYS,
    BatchRollbackParams,
    BatchRollbackResult,
    CancelResult,
    DeployParams,
    DeployResult,
    DeployStatus,
    InstanceInfo,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceSpec,
    InstanceStatus,
    InstanceVersion,
    Progress,
    RollbackResult,
    ServiceInstances,
    ServiceVersions,
    Status,
)
from orchestrator.timefmt import format_optional, format_time, parse_time, utcnow

T0 = datetime(2026, 11, 24, 0, 41, 40, 123456, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)

# The extension keys written by hand here, independently of the module.
EXPECTED_EXTENSIONS: dict[str, set[str]] = {
    "DeployParams": {"batch_size", "max_failures", "package_sha256", "auto_rollback", "node",
                     "steps", "analysis"},
    "DeployStatus": {
        "kind",
        "error_message",
        "batch_size",
        "max_failures",
        "rollback_id",
        "finished_at",
        "canary",
    },
    "DeployStatus.progress": {"in_progress", "cancelled"},
    "DeployStatus.instances[]": {"status", "attempts", "phase", "batch", "previous_version"},
    "InstanceRollbackParams": {"rollback_id"},
    "BatchRollbackParams": {"batch_size", "max_failures", "rollback_id"},
}

INST_DONE = InstanceStatus(
    instance_id="instance-1",
    current_version="v1.2.3",
    target_version="v1.2.3",
    started_at=T0,
    completed_at=T1,
    error_message="",
    status=Status.COMPLETED,
    attempts=1,
    phase="done",
    batch=1,
    previous_version="v1.2.2",
)
INST_WAITING = InstanceStatus(
    instance_id="instance-2",
    current_version="v1.2.2",
    target_version="v1.2.3",
    started_at=None,
    completed_at=None,
    error_message="",
)
DEPLOY_STATUS = DeployStatus(
    deploy_id="deploy-12345",
    service="user-service",
    version="v1.2.3",
    status=Status.IN_PROGRESS,
    progress=DeployStatus.progress_from([INST_DONE, INST_WAITING]),
    instances=(INST_DONE, INST_WAITING),
    started_at=T0,
    updated_at=T1,
)
SERVICE_VERSIONS = ServiceVersions(
    service="user-service",
    instances=(
        InstanceVersion("instance-1", "v1.2.3", T1),
        InstanceVersion("instance-2", "v1.2.2", None),
    ),
    version_summary={"v1.2.3": 1, "v1.2.2": 1},
    total_instances=2,
    updated_at=T1,
)
SERVICE_INSTANCES = ServiceInstances(
    service="user-service",
    instances=(
        InstanceInfo("instance-1", "10.0.0.1", 8080, "v1.2.3", T0, {"zone": "a"}),
        InstanceInfo("instance-2", "web-2.example.com", 8080, "", None, {}),
    ),
    total=2,
    limit=100,
    offset=0,
)

# (spec type name, value)
SAMPLES: list[tuple[str, Any]] = [
    (
        "DeployParams",
        DeployParams(
            service="user-service",
            version="v1.2.3",
            instances=("instance-1", "instance-2"),
            package_url="https://packages.example.com/user-service/v1.2.3.tar.gz",
            deploy_id="deploy-12345",
            batch_size="50%",
            package_sha256="ab" * 32,
        ),
    ),
    ("DeployResult", DeployResult("deploy-1", "svc", "v1", Status.PENDING, 2, T0)),
    ("DeployStatus", DEPLOY_STATUS),
    ("CancelResult", CancelResult("deploy-1", Status.CANCELLED, T1)),
    ("ServiceVersions", SERVICE_VERSIONS),
    ("InstanceQueryParams", InstanceQueryParams("user-service", "v1.2.3", 10, 20)),
    ("ServiceInstances", SERVICE_INSTANCES),
    ("InstanceRollbackParams", InstanceRollbackParams("instance-1", "v1.2.2", force=True)),
    ("RollbackResult", RollbackResult("rb-1", "instance-1", "v1.2.2", Status.PENDING, T0)),
    (
        "BatchRollbackParams",
        BatchRollbackParams("user-service", "v1.2.2", ("instance-1", "instance-2")),
    ),
    (
        "BatchRollbackResult",
        BatchRollbackResult(
            "rb-2", "user-service", "v1.2.2", Status.PENDING, ("instance-1",), 1, T0
        ),
    ),
]

NESTED: list[tuple[str, Any]] = [
    ("DeployStatus.progress", DEPLOY_STATUS.progress),
    ("DeployStatus.instances[]", INST_DONE),
    ("ServiceVersions.instances[]", SERVICE_VERSIONS.instances[0]),
    ("ServiceInstances.instances[]", SERVICE_INSTANCES.instances[0]),
]


def _ids(samples: list[tuple[str, Any]]) -> list[str]:
    return [name for name, _ in samples]


def test_spec_keys_cover_every_spec_type() -> None:
    assert set(SPEC_KEYS) == set(_ids(SAMPLES)) | set(_ids(NESTED))
    assert set(EXTENSION_KEYS) == set(SPEC_KEYS)
    for name, keys in EXTENSION_KEYS.items():
        assert keys == frozenset(EXPECTED_EXTENSIONS.get(name, set())), name
        assert not keys & SPEC_KEYS[name], name


@pytest.mark.parametrize(("name", "value"), SAMPLES + NESTED, ids=_ids(SAMPLES + NESTED))
def test_to_dict_keys_are_exactly_spec_plus_extensions(name: str, value: Any) -> None:
    expected = SPEC_KEYS[name] | EXPECTED_EXTENSIONS.get(name, set())
    assert set(value.to_dict()) == expected


def test_nested_keys_inside_parents() -> None:
    d = DEPLOY_STATUS.to_dict()
    assert set(d["progress"]) == SPEC_KEYS["DeployStatus.progress"] | {"in_progress", "cancelled"}
    for inst in d["instances"]:
        assert set(inst) == (
            SPEC_KEYS["DeployStatus.instances[]"] | EXPECTED_EXTENSIONS["DeployStatus.instances[]"]
        )
    for inst in SERVICE_VERSIONS.to_dict()["instances"]:
        assert set(inst) == SPEC_KEYS["ServiceVersions.instances[]"]
    for inst in SERVICE_INSTANCES.to_dict()["instances"]:
        assert set(inst) == SPEC_KEYS["ServiceInstances.instances[]"]


@pytest.mark.parametrize(("name", "value"), SAMPLES + NESTED, ids=_ids(SAMPLES + NESTED))
def test_round_trip_through_json(name: str, value: Any) -> None:
    data = value.to_dict()
    text = json.dumps(data)  # plain JSON types only
    back = type(value).from_dict(json.loads(text))
    assert back == value
    assert back.to_dict() == data


def test_instance_spec_round_trip_and_default_metadata() -> None:
    spec = InstanceSpec("instance-1", "user-service", "10.0.0.1", 22, {"zone": "a"})
    assert InstanceSpec.from_dict(spec.to_dict()) == spec
    assert set(spec.to_dict()) == {"instance_id", "service", "host", "port", "metadata"}
    bare = InstanceSpec.from_dict({"instance_id": "i", "service": "s", "host": "h", "port": 1})
    assert bare.metadata == {}
    with pytest.raises(ValidationError) as exc:
        InstanceSpec.from_dict({**spec.to_dict(), "ansible_host": "x"})
    assert exc.value.field == "ansible_host"


def test_times_are_utc_with_z_and_null_when_unset() -> None:
    d = DEPLOY_STATUS.to_dict()
    assert d["started_at"] == "2026-11-24T00:41:40.123456Z"
    assert d["updated_at"].endswith("Z")
    assert d["finished_at"] is None
    done, waiting = d["instances"]
    assert done["completed_at"].endswith("Z")
    assert waiting["completed_at"] is None
    assert waiting["started_at"] is None
    assert SERVICE_VERSIONS.to_dict()["instances"][1]["last_updated"] is None
    assert CancelResult("d", Status.COMPLETED, None).to_dict()["cancelled_at"] is None


def test_status_values_and_terminality() -> None:
    assert [s.value for s in Status] == [
        "pending",
        "in_progress",
        "completed",
        "failed",
        "cancelled",
    ]
    assert {s for s in Status if s.is_terminal} == {
        Status.COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
    }
    assert isinstance(Status.PENDING, str)
    assert json.dumps(DeployResult("d", "s", "v", Status.FAILED, 1, T0).to_dict()["status"]) == (
        '"failed"'
    )


def test_progress_from_counts_unfinished_as_pending() -> None:
    def inst(i: int, status: Status) -> InstanceStatus:
        return InstanceStatus(f"i-{i}", "", "v2", None, None, "", status=status)

    statuses = [
        Status.COMPLETED,
        Status.COMPLETED,
        Status.FAILED,
        Status.CANCELLED,
        Status.IN_PROGRESS,
        Status.PENDING,
        Status.PENDING,
    ]
    p = DeployStatus.progress_from(inst(i, s) for i, s in enumerate(statuses))
    assert p == Progress(total=7, completed=2, failed=1, pending=3, in_progress=1, cancelled=1)
    assert p.total == p.completed + p.failed + p.cancelled + p.pending
    assert DeployStatus.progress_from([]) == Progress(0, 0, 0, 0)


def test_defaults_from_the_spec() -> None:
    assert (DEFAULT_TIMEOUT, DEFAULT_RETRY_COUNT, DEFAULT_LIMIT, DEFAULT_OFFSET) == (300, 3, 100, 0)
    p = DeployParams.from_dict(
        {
            "service": "s",
            "version": "v",
            "instances": ["i"],
            "package_url": "https://x/p.tgz",
            "deploy_id": "d",
        }
    )
    assert (p.timeout, p.retry_count, p.batch_size, p.max_failures) == (300, 3, "1", 0)
    assert (p.package_sha256, p.auto_rollback) == ("", False)
    q = InstanceQueryParams.from_dict({"service_name": "s"})
    assert q == InstanceQueryParams("s", "", 100, 0)
    r = InstanceRollbackParams.from_dict({"instance_id": "i", "target_version": "v"})
    assert r == InstanceRollbackParams("i", "v", "", False, 300, "")
    b = BatchRollbackParams.from_dict({"service": "s", "target_version": "v", "instances": []})
    assert (b.package_url, b.force, b.timeout, b.batch_size) == ("", False, 300, "1")
    # No target version: the previous one, resolved by the service (a floy extension).
    assert InstanceRollbackParams.from_dict({"instance_id": "i"}) == InstanceRollbackParams("i")
    assert BatchRollbackParams.from_dict({"service": "s", "instances": ["a"]}).target_version == ""


def test_batch_size_accepts_int_and_stores_str() -> None:
    base = SAMPLES[0][1].to_dict()
    assert DeployParams.from_dict({**base, "batch_size": 5}).batch_size == "5"
    assert DeployParams.from_dict({**base, "batch_size": "25%"}).batch_size == "25%"


def test_lists_are_stored_as_tuples() -> None:
    p = DeployParams.from_dict(SAMPLES[0][1].to_dict())
    assert isinstance(p.instances, tuple)
    assert isinstance(DeployStatus.from_dict(DEPLOY_STATUS.to_dict()).instances, tuple)
    built = BatchRollbackParams("s", "v", ["a", "b"])  # type: ignore[arg-type]
    assert built.instances == ("a", "b")


def test_results_ignore_unknown_keys() -> None:
    data = {**DEPLOY_STATUS.to_dict(), "future_field": 1}
    data["progress"] = {**data["progress"], "skipped": 0}
    assert DeployStatus.from_dict(data) == DEPLOY_STATUS


def test_extension_keys_are_optional_for_results() -> None:
    data = DEPLOY_STATUS.to_dict()
    for key in EXPECTED_EXTENSIONS["DeployStatus"]:
        del data[key]
    data["progress"] = {k: data["progress"][k] for k in SPEC_KEYS["DeployStatus.progress"]}
    data["instances"] = [
        {k: i[k] for k in SPEC_KEYS["DeployStatus.instances[]"]} for i in data["instances"]
    ]
    status = DeployStatus.from_dict(data)
    assert status.kind == "deploy"
    assert status.finished_at is None
    assert status.instances[0].status is Status.PENDING
    assert status.progress.in_progress == 0


@pytest.mark.parametrize(
    "cls",
    [DeployParams, InstanceQueryParams, InstanceRollbackParams, BatchRollbackParams],
)
def test_params_reject_unknown_keys(cls: Any) -> None:
    value = next(v for _, v in SAMPLES if type(v) is cls)
    with pytest.raises(ValidationError) as exc:
        cls.from_dict({**value.to_dict(), "extra_vars": {"x": 1}})
    assert exc.value.field == "extra_vars"
    assert "unknown field" in exc.value.reason


def _deploy_params() -> dict[str, Any]:
    data: dict[str, Any] = SAMPLES[0][1].to_dict()
    return data


def _status() -> dict[str, Any]:
    data: dict[str, Any] = DEPLOY_STATUS.to_dict()
    return data


def _with(data: dict[str, Any], path: list[Any], value: Any) -> dict[str, Any]:
    """Return a deep-ish copy of data with the value at path replaced (or removed)."""
    copy = json.loads(json.dumps(data))
    target = copy
    for step in path[:-1]:
        target = target[step]
    if value is _DELETE:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    result: dict[str, Any] = copy
    return result


_DELETE = object()

BAD_DICTS: list[tuple[Any, dict[str, Any], str, str]] = [
    # (class, data, field named, message keyword)
    (DeployParams, _with(_deploy_params(), ["service"], _DELETE), "service", "missing"),
    (DeployParams, _with(_deploy_params(), ["deploy_id"], _DELETE), "deploy_id", "missing"),
    (DeployParams, _with(_deploy_params(), ["service"], 5), "service", "string"),
    (DeployParams, _with(_deploy_params(), ["timeout"], True), "timeout", "integer"),
    (DeployParams, _with(_deploy_params(), ["timeout"], "300"), "timeout", "integer"),
    (DeployParams, _with(_deploy_params(), ["retry_count"], 1.5), "retry_count", "integer"),
    (DeployParams, _with(_deploy_params(), ["instances"], "i-1"), "instances", "array"),
    (DeployParams, _with(_deploy_params(), ["instances", 1], 7), "instances[1]", "string"),
    (DeployParams, _with(_deploy_params(), ["batch_size"], True), "batch_size", "integer"),
    (DeployParams, _with(_deploy_params(), ["auto_rollback"], "yes"), "auto_rollback", "boolean"),
    (DeployParams, _with(_deploy_params(), ["package_url"], None), "package_url", "null"),
    (DeployStatus, _with(_status(), ["progress"], _DELETE), "progress", "missing"),
    (DeployStatus, _with(_status(), ["progress"], [1]), "progress", "object"),
    (DeployStatus, _with(_status(), ["progress", "total"], "2"), "progress.total", "integer"),
    (DeployStatus, _with(_status(), ["progress", "failed"], _DELETE), "progress.failed", "missing"),
    (
        DeployStatus,
        _with(_status(), ["instances", 1, "instance_id"], None),
        "instances[1].instance_id",
        "string",
    ),
    (
        DeployStatus,
        _with(_status(), ["instances", 0, "completed_at"], _DELETE),
        "instances[0].completed_at",
        "missing",
    ),
    (
        DeployStatus,
        _with(_status(), ["instances", 0, "started_at"], "yesterday"),
        "instances[0].started_at",
        "RFC 3339",
    ),
    (
        DeployStatus,
        _with(_status(), ["instances", 0, "status"], "running"),
        "instances[0].status",
        "one of",
    ),
    (DeployStatus, _with(_status(), ["instances", 0], "x"), "instances[0]", "object"),
    (DeployStatus, _with(_status(), ["status"], "done"), "status", "one of"),
    (DeployStatus, _with(_status(), ["started_at"], None), "started_at", "timestamp"),
    (
        DeployStatus,
        _with(_status(), ["updated_at"], "2026-11-24T00:41:40"),
        "updated_at",
        "RFC 3339",
    ),
    (DeployStatus, _with(_status(), ["finished_at"], 0), "finished_at", "timestamp"),
    (
        ServiceVersions,
        _with(SERVICE_VERSIONS.to_dict(), ["version_summary", "v1.2.3"], "1"),
        "version_summary.v1.2.3",
        "integer",
    ),
    (
        ServiceVersions,
        _with(SERVICE_VERSIONS.to_dict(), ["version_summary"], [["v1", 1]]),
        "version_summary",
        "object",
    ),
    (
        ServiceInstances,
        _with(SERVICE_INSTANCES.to_dict(), ["instances", 0, "metadata", "zone"], 1),
        "instances[0].metadata.zone",
        "string",
    ),
    (
        ServiceInstances,
        _with(SERVICE_INSTANCES.to_dict(), ["instances", 1, "port"], "8080"),
        "instances[1].port",
        "integer",
    ),
    (
        InstanceRollbackParams,
        {"instance_id": "i", "target_version": "v", "force": 1},
        "force",
        "boolean",
    ),
    (InstanceRollbackParams, {"target_version": "v"}, "instance_id", "missing"),
    (InstanceQueryParams, {"service_name": "s", "limit": None}, "limit", "integer"),
    (CancelResult, {"deploy_id": "d", "status": "cancelled"}, "cancelled_at", "missing"),
    (
        BatchRollbackResult,
        {**SAMPLES[-1][1].to_dict(), "total_instances": False},
        "total_instances",
        "integer",
    ),
    (DeployResult, [], "DeployResult", "object"),  # type: ignore[list-item]
]


@pytest.mark.parametrize(
    ("cls", "data", "field", "keyword"),
    BAD_DICTS,
    ids=[f"{case[0].__name__}:{case[2]}" for case in BAD_DICTS],
)
def test_from_dict_names_the_bad_field(
    cls: Any, data: dict[str, Any], field: str, keyword: str
) -> None:
    with pytest.raises(ValidationError) as exc:
        cls.from_dict(data)
    assert exc.value.field == field
    assert keyword in exc.value.reason


# --- timefmt ----------------------------------------------------------------


def test_format_time_is_rfc3339_utc_with_micros() -> None:
    assert format_time(T0) == "2026-11-24T00:41:40.123456Z"
    assert format_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)) == ("2026-01-02T03:04:05.000000Z")
    plus8 = timezone(timedelta(hours=8))
    assert format_time(datetime(2026, 11, 24, 8, 41, 40, 123456, tzinfo=plus8)) == (
        "2026-11-24T00:41:40.123456Z"
    )
    with pytest.raises(ValueError, match="naive"):
        format_time(datetime(2026, 1, 1))
    assert format_optional(None) is None
    assert format_optional(T0) == format_time(T0)


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-24T00:41:40.123456Z",
        "2026-11-24T00:41:40.123456+00:00",
        "2026-11-24T08:41:40.123456+08:00",
        "2026-11-23T23:41:40.123456-01:00",
        "2026-11-24T00:41:40.123456789Z",
        "2026-11-24t00:41:40.123456z",
    ],
)
def test_parse_time_accepts_offsets(text: str) -> None:
    parsed = parse_time(text)
    assert parsed == T0
    assert parsed.tzinfo is UTC


def test_parse_time_without_fraction() -> None:
    assert parse_time("2026-11-24T00:41:40Z") == T0.replace(microsecond=0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "2026-11-24T00:41:40",  # no offset: the instant is unknown
        "2026-11-24",
        "2026-13-01T00:00:00Z",
        "2026-02-30T00:00:00Z",
        "2026-11-24T00:41:40+24:00",
        "20261124T004140Z",
        "2026-11-24T00:41:40Z\n",
    ],
)
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time(text)


def test_utcnow_is_aware_utc() -> None:
    now = utcnow()
    assert now.utcoffset() == timedelta(0)
    assert parse_time(format_time(now)) == now
