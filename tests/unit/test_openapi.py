"""orchestrator/http/openapi.yaml against the contract types and the validation rules.

The document is what `floy serve` publishes and what schemathesis fuzzes the server with
(tests/integration/test_api_fuzz.py), so it must say exactly what the code does:

- every spec struct has a component schema whose properties are exactly its JSON tags
  (``SPEC_KEYS``) plus floy's extension keys (``EXTENSION_KEYS``), the extension keys and
  only they marked ``x-floy-extension: true``;
- required fields are those ``from_dict`` insists on (params) or the spec's tags (results),
  defaults are the dataclasses' defaults, params refuse unknown keys as ``from_dict`` does;
- real ``to_dict()`` outputs validate against the schemas, and the schemas' constraints on
  names, numbers, batch sizes and metadata agree with orchestrator.domain.validation;
- every operation documents the errors docs/http-api.md lists for it, and the document is
  valid OpenAPI 3.1.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import referencing
import referencing.jsonschema
import yaml

from orchestrator.domain import validation
from orchestrator.errors import ValidationError
from orchestrator.models import (
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
from orchestrator.timefmt import parse_time

ROOT = Path(__file__).resolve().parents[2]
DOCUMENT = ROOT / "orchestrator" / "http" / "openapi.yaml"
HTTP_API_DOC = ROOT / "docs" / "http-api.md"
BASE_URI = "urn:floy:openapi"

#: Spec struct (a key of SPEC_KEYS) -> its component schema. Nested structs are also
#: reached from their parent (checked in test_nested_structs_are_referenced_by_parent).
COMPONENTS: dict[str, str] = {
    "DeployParams": "DeployParams",
    "DeployResult": "DeployResult",
    "DeployStatus": "DeployStatus",
    "DeployStatus.progress": "Progress",
    "DeployStatus.instances[]": "InstanceStatus",
    "CancelResult": "CancelResult",
    "ServiceVersions": "ServiceVersions",
    "ServiceVersions.instances[]": "InstanceVersion",
    "ServiceInstances": "ServiceInstances",
    "ServiceInstances.instances[]": "InstanceInfo",
    "InstanceRollbackParams": "InstanceRollbackParams",
    "RollbackResult": "RollbackResult",
    "BatchRollbackParams": "BatchRollbackParams",
    "BatchRollbackResult": "BatchRollbackResult",
}
#: InstanceQueryParams is no body: it is the path and query of GET .../instances.
QUERY_STRUCT = "InstanceQueryParams"
INSTANCES_PATH = "/v1/services/{service}/instances"
QUERY_PARAMETER_OF = {"service_name": "service", "version": "version", "limit": "limit",
                      "offset": "offset"}

PARAMS_TYPES: dict[str, type[Any]] = {
    "DeployParams": DeployParams,
    "InstanceRollbackParams": InstanceRollbackParams,
    "BatchRollbackParams": BatchRollbackParams,
}

#: The spec's seven methods; every other /v1 operation is an extension.
SPEC_OPERATIONS = {
    "executeDeployment", "getDeploymentStatus", "cancelDeployment",
    "getServiceInstanceVersions", "getServiceInstances", "rollbackInstance", "rollbackBatch",
}
#: Operations that may clash with existing state (docs/http-api.md, 409).
CONFLICT_OPERATIONS = {"executeDeployment", "cancelDeployment", "rollbackInstance",
                       "rollbackBatch", "registerInstances", "promoteDeployment",
                       "abortDeployment"}
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
STATUS_WORDS = [s.value for s in Status]

T0 = datetime(2026, 11, 24, 0, 41, 40, 123456, tzinfo=UTC)
T1 = T0 + timedelta(seconds=5)


# --- loading and validating ------------------------------------------------------------------


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with DOCUMENT.open(encoding="utf-8") as f:
        loaded = yaml.safe_load(f)
    assert isinstance(loaded, dict)
    return loaded


def schemas(doc: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = doc["components"]["schemas"]
    return result


_RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})", re.ASCII
)
FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _is_date_time(value: object) -> bool:
    # jsonschema checks date-time only with an optional package; this is RFC 3339's form,
    # and the calendar is checked by floy's own parser.
    if not isinstance(value, str):
        return True
    if not _RFC3339.fullmatch(value):
        return False
    parse_time(value)
    return True


def _ecma_pattern(validator: Any, pattern: str, instance: object,
                  schema: dict[str, Any]) -> Iterator[jsonschema.ValidationError]:
    """``pattern`` as JSON Schema means it (ECMA-262): ``$`` is the end of the input.

    Python's ``re`` also lets ``$`` match before a final newline, so jsonschema alone would
    call ``"web-1\\n"`` a valid name (the server refuses it; so does jsonschema_rs, which
    schemathesis validates with). The document's patterns use ``$`` only as an anchor.
    """
    if isinstance(instance, str) and not re.search(re.sub(r"(?<!\\)\$", r"\\Z", pattern),
                                                   instance):
        yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")


EcmaValidator = jsonschema.validators.extend(jsonschema.Draft202012Validator,
                                             {"pattern": _ecma_pattern})


def validator(doc: dict[str, Any], component: str) -> Any:
    """A JSON Schema 2020-12 validator (OpenAPI 3.1's dialect) for one component schema,
    resolving ``$ref``s inside the document and checking ``format``."""
    resource = referencing.Resource.from_contents(
        doc, default_specification=referencing.jsonschema.DRAFT202012
    )
    registry: referencing.Registry[Any] = referencing.Registry().with_resource(BASE_URI,
                                                                            resource)
    return EcmaValidator(
        {"$ref": f"{BASE_URI}#/components/schemas/{component}"},
        registry=registry,
        format_checker=FORMATS,
    )


def errors_of(doc: dict[str, Any], component: str, value: object) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
            for e in validator(doc, component).iter_errors(value)]


def resolve(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow a local ``$ref`` (once or more)."""
    while "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/"), ref
        target: Any = doc
        for part in ref[2:].split("/"):
            target = target[part]
        node = {**target, **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def iter_refs(node: object) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield value
            else:
                yield from iter_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from iter_refs(item)


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                yield path, method, item[method]


# --- the document is valid OpenAPI -----------------------------------------------------------


def test_document_is_valid_openapi_3_1(doc: dict[str, Any]) -> None:
    import schemathesis

    assert str(doc["openapi"]).startswith("3.1.")
    # schemathesis checks the document against the official OpenAPI 3.1 meta-schema.
    schemathesis.openapi.from_dict(copy.deepcopy(doc)).validate()


def test_every_schema_is_valid_json_schema_2020_12(doc: dict[str, Any]) -> None:
    # The OpenAPI meta-schema does not look inside Schema Objects; this does.
    for name, schema in schemas(doc).items():
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as exc:
            pytest.fail(f"components/schemas/{name}: {exc.message}")


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    for ref in set(iter_refs(doc)):
        assert ref.startswith("#/"), f"non-local $ref {ref}"
        target: Any = doc
        for part in ref[2:].split("/"):
            assert isinstance(target, dict) and part in target, f"dangling $ref {ref}"
            target = target[part]


# --- spec structs: keys, extension markers, nesting ------------------------------------------


def test_every_spec_struct_has_a_schema() -> None:
    assert set(COMPONENTS) | {QUERY_STRUCT} == set(SPEC_KEYS)
    assert set(EXTENSION_KEYS) == set(SPEC_KEYS)


@pytest.mark.parametrize("struct", sorted(COMPONENTS))
def test_properties_are_exactly_spec_and_extension_keys(doc: dict[str, Any],
                                                        struct: str) -> None:
    schema = schemas(doc)[COMPONENTS[struct]]
    assert schema.get("type") == "object"
    assert set(schema["properties"]) == SPEC_KEYS[struct] | EXTENSION_KEYS[struct]


@pytest.mark.parametrize("struct", sorted(COMPONENTS))
def test_exactly_extension_keys_are_marked(doc: dict[str, Any], struct: str) -> None:
    properties = schemas(doc)[COMPONENTS[struct]]["properties"]
    marked = {k for k, v in properties.items() if v.get("x-floy-extension") is True}
    assert marked == EXTENSION_KEYS[struct]
    for key in marked:
        description = str(properties[key].get("description", ""))
        assert "beyond the spec" in description.lower(), f"{struct}.{key}: {description!r}"
    for key in SPEC_KEYS[struct]:
        assert "x-floy-extension" not in properties[key], f"{struct}.{key} is in the spec"


def test_nested_structs_are_referenced_by_parent(doc: dict[str, Any]) -> None:
    for struct, component in COMPONENTS.items():
        if "." not in struct:
            continue
        parent, _, key = struct.partition(".")
        prop = schemas(doc)[COMPONENTS[parent]]["properties"][key.removesuffix("[]")]
        if key.endswith("[]"):
            assert prop.get("type") == "array", struct
            prop = prop["items"]
        assert prop.get("$ref") == f"#/components/schemas/{component}", struct


def test_instance_query_params_are_the_instances_query(doc: dict[str, Any]) -> None:
    operation = doc["paths"][INSTANCES_PATH]["get"]
    params = {p["name"]: p for p in (resolve(doc, p) for p in operation["parameters"])}
    assert set(QUERY_PARAMETER_OF) == SPEC_KEYS[QUERY_STRUCT] | EXTENSION_KEYS[QUERY_STRUCT]
    assert set(params) == set(QUERY_PARAMETER_OF.values())
    assert params["service"]["in"] == "path"
    defaults = InstanceQueryParams(service_name="web")
    for key, name in QUERY_PARAMETER_OF.items():
        if key == "service_name":
            continue
        assert params[name]["in"] == "query" and not params[name].get("required", False)
        assert params[name]["schema"]["default"] == getattr(defaults, key), name


# --- required fields, defaults, unknown keys -------------------------------------------------


#: Fields without a default in Python that JSON may leave out: a batch rollback's
#: ``target_version`` stays positional in the Python API (``BatchRollbackParams("web", "",
#: ids)``; ``instances`` after it has no default), and empty or absent means the previous version.
OPTIONAL_IN_JSON = {("BatchRollbackParams", "target_version")}


def _minimal(cls: type[Any]) -> dict[str, Any]:
    """Values for the fields a params type's JSON must hold (valid ones)."""
    values = {"service": "web", "version": "1.0.0", "target_version": "1.0.0",
              "instances": ["web-1"], "package_url": "https://pkgs.example/web.tgz",
              "deploy_id": "d-1", "instance_id": "web-1"}
    return {f.name: values[f.name] for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            and (cls.__name__, f.name) not in OPTIONAL_IN_JSON}


@pytest.mark.parametrize("name", sorted(PARAMS_TYPES))
def test_params_required_are_the_fields_from_dict_insists_on(doc: dict[str, Any],
                                                             name: str) -> None:
    cls = PARAMS_TYPES[name]
    minimal = _minimal(cls)
    cls.from_dict(minimal)  # enough
    for key in minimal:
        with pytest.raises(ValidationError):
            cls.from_dict({k: v for k, v in minimal.items() if k != key})
    assert set(schemas(doc)[name]["required"]) == set(minimal)


@pytest.mark.parametrize("name", sorted(PARAMS_TYPES))
def test_params_defaults_are_from_dicts(doc: dict[str, Any], name: str) -> None:
    cls = PARAMS_TYPES[name]
    minimal = _minimal(cls)
    filled = cls.from_dict(minimal).to_dict()
    properties = schemas(doc)[name]["properties"]
    for key, value in filled.items():
        if key in minimal:
            assert "default" not in properties[key], f"{name}.{key} is required"
        else:
            assert "default" in properties[key], f"{name}.{key} has no default"
            assert properties[key]["default"] == value, f"{name}.{key}"
    # The spec's own words: timeout 300, retry_count 3.
    assert properties["timeout"]["default"] == 300
    if name == "DeployParams":
        assert properties["retry_count"]["default"] == 3


@pytest.mark.parametrize("name", sorted(PARAMS_TYPES))
def test_params_refuse_unknown_keys(doc: dict[str, Any], name: str) -> None:
    cls = PARAMS_TYPES[name]
    with pytest.raises(ValidationError):
        cls.from_dict({**_minimal(cls), "surprise": 1})
    assert schemas(doc)[name]["additionalProperties"] is False
    assert errors_of(doc, name, {**_minimal(cls), "surprise": 1})


@pytest.mark.parametrize("struct", sorted(s for s in COMPONENTS if s not in PARAMS_TYPES))
def test_results_require_the_spec_keys(doc: dict[str, Any], struct: str) -> None:
    assert set(schemas(doc)[COMPONENTS[struct]]["required"]) == SPEC_KEYS[struct]


# --- JSON types --------------------------------------------------------------------------------


def _types(doc: dict[str, Any], node: dict[str, Any]) -> set[str]:
    node = resolve(doc, node)
    declared = node.get("type")
    return {declared} if isinstance(declared, str) else set(declared or ())


def test_times_are_date_time_strings(doc: dict[str, Any]) -> None:
    nullable = {("DeployStatus.instances[]", "completed_at"), ("CancelResult", "cancelled_at")}
    seen = set()
    for struct, component in COMPONENTS.items():
        for key, prop in schemas(doc)[component]["properties"].items():
            if key.endswith("_at") or key in ("last_updated", "last_heartbeat"):
                resolved = resolve(doc, prop)
                assert "string" in _types(doc, prop), f"{struct}.{key}"
                assert resolved.get("format") == "date-time", f"{struct}.{key}"
                if "null" in _types(doc, prop):
                    seen.add((struct, key))
    assert nullable <= seen


def test_status_words_are_an_enum(doc: dict[str, Any]) -> None:
    assert schemas(doc)["Status"]["enum"] == STATUS_WORDS
    for struct, component in COMPONENTS.items():
        prop = schemas(doc)[component]["properties"].get("status")
        if prop is not None:
            assert prop["$ref"] == "#/components/schemas/Status", struct


def test_maps_are_typed(doc: dict[str, Any]) -> None:
    metadata = schemas(doc)["InstanceInfo"]["properties"]["metadata"]
    assert metadata["type"] == "object"
    assert metadata["additionalProperties"] == {"type": "string"}
    summary = schemas(doc)["ServiceVersions"]["properties"]["version_summary"]
    assert summary["type"] == "object"
    assert summary["additionalProperties"]["type"] == "integer"


# --- real to_dict() outputs validate ---------------------------------------------------------


def _instance(status: Status, started: datetime | None, done: datetime | None,
              error: str = "") -> InstanceStatus:
    return InstanceStatus("web-1", "1.0.0", "2.0.0", started, done, error, status, 1,
                          "fetch", 1, "1.0.0")


def _samples() -> dict[str, list[Any]]:
    running = _instance(Status.IN_PROGRESS, T0, None)
    waiting = _instance(Status.PENDING, None, None)
    failed = _instance(Status.FAILED, T0, T1, "health check failed")
    status = DeployStatus("d-1", "web", "2.0.0", Status.IN_PROGRESS,
                          DeployStatus.progress_from([running, waiting, failed]),
                          (running, waiting, failed), T0, T1, batch_size="25%",
                          max_failures=1)
    return {
        "DeployResult": [DeployResult("d-1", "web", "2.0.0", Status.PENDING, 3, T0)],
        "DeployStatus": [
            status,
            dataclasses.replace(status, status=Status.FAILED, kind="rollback",
                                error_message="stopped", rollback_id="r-1", finished_at=T1),
            DeployStatus("d-2", "web", "2.0.0", Status.PENDING, Progress(0, 0, 0, 0), (),
                         T0, T0),
        ],
        "CancelResult": [CancelResult("d-1", Status.CANCELLED, T1),
                         CancelResult("d-1", Status.IN_PROGRESS, None)],
        "ServiceVersions": [
            ServiceVersions("web", (InstanceVersion("web-1", "1.0.0", T0),
                                    InstanceVersion("web-2", "", None)),
                            {"1.0.0": 1, "": 1}, 2, T0),
        ],
        "ServiceInstances": [
            ServiceInstances("web", (InstanceInfo("web-1", "10.0.0.5", 8080, "1.0.0", T0,
                                                  {"rack": "r1"}),
                                     InstanceInfo("web-2", "::1", 65535, "", None, {})),
                             2, 100, 0),
            ServiceInstances("web", (), 2, 1, 5),
        ],
        "RollbackResult": [RollbackResult("r-1", "web-1", "1.0.0", Status.PENDING, T0)],
        "BatchRollbackResult": [
            BatchRollbackResult("r-2", "web", "1.0.0", Status.PENDING, ("web-1", "web-2"), 2,
                                T0),
        ],
        "DeployParams": [
            DeployParams("web", "2.0.0", ("web-1", "web-2"), "https://pkgs.example/w.tgz",
                         "d-1"),
            DeployParams("web", "2.0.0", ("web-1",), "https://pkgs.example/w.tgz", "d-1",
                         timeout=86400, retry_count=0, batch_size="100%", max_failures=2,
                         package_sha256="ab" * 32, auto_rollback=True),
        ],
        "InstanceRollbackParams": [
            InstanceRollbackParams("web-1", "1.0.0"),
            InstanceRollbackParams("web-1", "1.0.0", "https://pkgs.example/w.tgz", True, 1,
                                   "r-1"),
        ],
        "BatchRollbackParams": [
            BatchRollbackParams("web", "1.0.0", ("web-1",)),
            BatchRollbackParams("web", "1.0.0", ("web-1", "web-2"), "https://p.example/x",
                                True, 60, "2", 1, "r-9"),
        ],
    }


@pytest.mark.parametrize("name", sorted(_samples()))
def test_to_dict_validates(doc: dict[str, Any], name: str) -> None:
    for sample in _samples()[name]:
        data = sample.to_dict()
        assert errors_of(doc, name, data) == [], data


def test_nested_to_dicts_validate(doc: dict[str, Any]) -> None:
    progress = Progress(3, 1, 1, 1, 0, 0)
    assert errors_of(doc, "Progress", progress.to_dict()) == []
    waiting = _instance(Status.PENDING, None, None)
    assert errors_of(doc, "InstanceStatus", waiting.to_dict()) == []
    assert errors_of(doc, "InstanceVersion", InstanceVersion("a", "", None).to_dict()) == []
    info = InstanceInfo("a", "h", 1, "", None, {})
    assert errors_of(doc, "InstanceInfo", info.to_dict()) == []
    spec = InstanceSpec("web-1", "web", "10.0.0.5", 8080, {"rack": "r1"})
    assert errors_of(doc, "InstanceSpec", spec.to_dict()) == []


def test_extension_records_validate(doc: dict[str, Any]) -> None:
    """The JSON of floy's own records, as the extension endpoints send it."""
    from orchestrator.domain.records import (
        ActionRecord,
        HeartbeatRecord,
        InstanceRecord,
        RunSummary,
        ServiceOverview,
    )

    summary = RunSummary("d-1", "deploy", "2.0.0", Status.FAILED, "token:ci", T0, T1, 3, 1, 1,
                         1, None, "r-1", "health check failed", service="web")
    running = dataclasses.replace(summary, status=Status.IN_PROGRESS, finished_at=None,
                                  kind="rollback", parent_run_id="d-0", rollback_run_id=None)
    for run in (summary, running):
        assert errors_of(doc, "RunSummary", run.to_dict()) == []
    assert errors_of(doc, "RunList", {"runs": [summary.to_dict()]}) == []
    action = ActionRecord(T0, "token:ci", "deploy", "web", "d-1", "2.0.0 to 3 instance(s)")
    history = {"service": "web", "runs": [summary.to_dict()], "actions": [action.to_dict()]}
    assert errors_of(doc, "ServiceHistory", history) == []
    beat = HeartbeatRecord("web-1", "web", "2.0.0", "1.0.0", T1, True)
    assert errors_of(doc, "HeartbeatResult", beat.to_dict()) == []
    drifting = InstanceRecord("web-1", "web", "h", 1, "1.0.0", T0, T0, {}, "2.0.0", T1)
    never_probed = InstanceRecord("web-2", "web", "h", 1, "", None, None)
    for overview in (ServiceOverview("web", {"1.0.0": 1, "": 1}, (drifting,), T1),
                     ServiceOverview("web", {}, (never_probed,), None)):
        assert errors_of(doc, "ServiceOverview", overview.to_dict()) == []
    spec = InstanceSpec("web-1", "web", "10.0.0.5", 8080, {"rack": "r1"})
    assert errors_of(doc, "RegisteredInstances", {"instances": [spec.to_dict()]}) == []
    assert errors_of(doc, "InstanceRegistration", {"instances": [spec.to_dict()]}) == []


@pytest.mark.parametrize("name", sorted(n for n in _samples() if n not in PARAMS_TYPES))
def test_schema_refuses_what_the_server_never_sends(doc: dict[str, Any], name: str) -> None:
    """The checker can fail: an extra key, a wrong type, a status word not in the enum, a
    missing spec key and a malformed time are each refused."""
    data = _samples()[name][0].to_dict()
    assert errors_of(doc, name, {**data, "surprise": 1})
    key = sorted(SPEC_KEYS[name])[0]
    assert errors_of(doc, name, {k: v for k, v in data.items() if k != key})
    assert errors_of(doc, name, {**data, key: [data[key]]})
    if "status" in data:
        assert errors_of(doc, name, {**data, "status": "running"})
    for time_key in ("started_at", "updated_at", "cancelled_at"):
        if time_key in data:
            assert errors_of(doc, name, {**data, time_key: "yesterday"})
            assert errors_of(doc, name, {**data, time_key: "2026-02-30T00:00:00Z"})


# --- constraints agree with orchestrator.domain.validation -----------------------------------


def _agrees(doc: dict[str, Any], component: str, check: Any, values: list[object],
            exact: bool = True) -> None:
    """Schema-valid <=> the validator accepts (``exact``), or at least schema-invalid =>
    refused (the schema is looser than the server, never stricter)."""
    for value in values:
        try:
            check(value)
            accepted = True
        except ValidationError:
            accepted = False
        valid = not errors_of(doc, component, value)
        if exact:
            assert valid == accepted, f"{component}: {value!r} schema {valid}, server {accepted}"
        else:
            assert accepted <= valid, f"{component}: {value!r} accepted but schema-invalid"


NAMES: list[object] = [
    "a", "web-1", "1.2.3", "v1.2.3+build.5", "A_b", "a" * 128, "a" * 129, "", ".a", "-a",
    "_a", "+a", "a..b", "a.", "a b", "a/b", "a\n", "a\nb", "é", "all", "ALL", "Localhost",
    "ungrouped", "allx", "local-host", "{{x}}", "a{{", 5, None,
]


def test_name_schemas_agree_with_validation(doc: dict[str, Any]) -> None:
    _agrees(doc, "Name", lambda v: validation.validate_name("f", v), NAMES)
    _agrees(doc, "InventoryName", lambda v: validation.validate_inventory_name("f", v), NAMES)
    _agrees(doc, "OptionalName",
            lambda v: "" if v == "" else validation.validate_id("f", v), NAMES)


def test_batch_size_schema_agrees_with_validation(doc: dict[str, Any]) -> None:
    values: list[object] = [
        1, 0, -1, 1_000_000, 1_000_001, True, 2.5, "1", "0", "05", "0000001", "00000001",
        "1000000", "1000001", "9999999", "1%", "0%", "100%", "101%", "0100%", "05%", "%",
        "", "1 ", "a", "1%%", "1.5", None,
    ]
    _agrees(doc, "BatchSize", lambda v: validation.validate_batch_size("b", v), values)


@pytest.mark.parametrize(
    ("component", "key", "check", "low", "high"),
    [
        ("DeployParams", "timeout", validation.validate_timeout, 1, 86_400),
        ("DeployParams", "retry_count", validation.validate_retry_count, 0, 10),
        ("DeployParams", "max_failures", validation.validate_max_failures, 0, 1_000_000),
        ("BatchRollbackParams", "timeout", validation.validate_timeout, 1, 86_400),
        ("InstanceRollbackParams", "timeout", validation.validate_timeout, 1, 86_400),
        ("InstanceSpec", "port", validation.validate_port, 1, 65_535),
    ],
)
def test_integer_ranges_agree_with_validation(doc: dict[str, Any], component: str, key: str,
                                              check: Any, low: int, high: int) -> None:
    prop = resolve(doc, schemas(doc)[component]["properties"][key])
    assert (prop["type"], prop["minimum"], prop["maximum"]) == ("integer", low, high)
    for value in (low - 1, low, high, high + 1):
        refused = not low <= value <= high
        with pytest.raises(ValidationError) if refused else contextlib.nullcontext():
            check(key, value)


def test_query_ranges_agree_with_validation(doc: dict[str, Any]) -> None:
    def query_schema(path: str, name: str) -> dict[str, Any]:
        operation = doc["paths"][path]["get"]
        found = [resolve(doc, p) for p in operation["parameters"]]
        return next(p["schema"] for p in found if p["name"] == name)

    for path in (INSTANCES_PATH, "/v1/services/{service}/history", "/v1/deployments"):
        limit = query_schema(path, "limit")
        assert (limit["minimum"], limit["maximum"]) == (1, validation.MAX_LIMIT)
        with pytest.raises(ValidationError):
            validation.validate_limit(validation.MAX_LIMIT + 1)
        with pytest.raises(ValidationError):
            validation.validate_limit(0)
    offset = query_schema(INSTANCES_PATH, "offset")
    assert (offset["minimum"], offset["maximum"]) == (0, validation.MAX_OFFSET)
    validation.validate_offset(validation.MAX_OFFSET)
    with pytest.raises(ValidationError):
        validation.validate_offset(validation.MAX_OFFSET + 1)


def test_metadata_schema_agrees_with_validation(doc: dict[str, Any]) -> None:
    values: list[object] = [
        {}, {"rack": "r1"}, {"a.b-c_d": ""}, {"k" * 64: "v"}, {"k" * 65: "v"}, {"": "v"},
        {"ansible_host": "x"}, {"ANSIBLE_user": "x"}, {"become": "x"}, {"becomes": "x"},
        {"Become_user": "x"}, {"ansible": "x"}, {"ansiblex": "x"}, {"a b": "x"},
        {"k": "v" * 1024}, {"k": "v" * 1025}, {"k": 1}, {"k": None},
        {f"k{i}": "v" for i in range(64)}, {f"k{i}": "v" for i in range(65)}, [], "x",
    ]

    def check(value: object) -> None:
        validation.validate_metadata("metadata", value)

    metadata = {"$ref": "#/components/schemas/InstanceSpec/properties/metadata"}
    doc = {**doc, "components": {**doc["components"],
                                 "schemas": {**schemas(doc), "_Metadata": metadata}}}
    values += [{"k": "{{ x }}"}, {"k": "a {% if %}"}, {"k": "#}"}, {"k": "{ {"},
               {"k": "a\tb"}, {"k": "a\nb"}, {"k": "\x7f"}, {"k": "\x85"}, {"k": "\u2028"},
               {"k": "\u202e"}, {"k": "\u2066"}, {"k": "é ✓ 東京"}]
    _agrees(doc, "_Metadata", check, values)
    # A lone surrogate (JSON can carry one) is refused by the server only.
    _agrees(doc, "_Metadata", check, [{"k": "\ud800"}], exact=False)


def test_looser_string_schemas_never_refuse_what_the_server_accepts(
        doc: dict[str, Any]) -> None:
    urls: list[object] = [
        "https://pkgs.example/web-1.0.0.tar.gz", "HTTPS://pkgs.example/x", "https://[::1]:8443/x",
        "http://pkgs.example/x", "ftp://x", "", "https://", "https://u:p@h/x",
        "https://h/a b", "https://h/" + "a" * 2040, "https://h/" + "a" * 2050, 5,
        "https://h/%zz", "https://h:0/x", "https://h/{{x}}",
    ]
    _agrees(doc, "PackageUrl", lambda v: validation.validate_package_url("u", v), urls,
            exact=False)
    _agrees(doc, "OptionalPackageUrl",
            lambda v: "" if v == "" else validation.validate_package_url("u", v), urls,
            exact=False)
    names: list[object] = [
        "h", "web-1.example.com", "example.com.", "10.0.0.5", "255.255.255.255", "256.1.1.1",
        "010.0.0.1", "1.2.3", "1.2.3.4.", "0", "a.0", "0.a", "a..b", ".a", "-a", "a-",
        "x" * 63, "x" * 64, ("x" * 63 + ".") * 4, "", "a" * 254, "a b", "é", "a_b", 5,
    ]
    host = {"$ref": "#/components/schemas/InstanceSpec/properties/host"}
    doc = {**doc, "components": {**doc["components"],
                                 "schemas": {**schemas(doc), "_Host": host}}}
    # DNS names and IPv4 addresses exactly; IPv6 literals loosely.
    _agrees(doc, "_Host", lambda v: validation.validate_host("host", v), names)
    ipv6: list[object] = ["::1", "fe80::1%eth0", "::ffff:1.2.3.4", ":::", "fe80::1%",
                          "fe80::1%a b", "1:2", "%eth0", "::1%" + "e" * 16]
    _agrees(doc, "_Host", lambda v: validation.validate_host("host", v), ipv6, exact=False)
    sha: list[object] = ["", "ab" * 32, "AB" * 32, "ab" * 31, "g" * 64, "ab" * 33]
    sha_doc = {**doc, "components": {**doc["components"], "schemas": {
        **schemas(doc),
        "_Sha": {"$ref": "#/components/schemas/DeployParams/properties/package_sha256"}}}}
    _agrees(sha_doc, "_Sha", lambda v: validation.validate_sha256("s", v), sha)


# --- operations: errors, security, extensions ------------------------------------------------


def test_operations_are_those_of_the_http_api_doc(doc: dict[str, Any]) -> None:
    documented = set()
    for line in HTTP_API_DOC.read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`(GET|POST|PUT|DELETE|PATCH) (/v1/[^`?]*)", line)
        if m:
            documented.add((m[1].lower(), m[2]))
    assert documented, "no endpoint table found in docs/http-api.md"
    described = {(method, path) for path, method, _ in operations(doc)
                 if path.startswith("/v1/")}
    assert described == documented
    assert {(m, p) for p, m, _ in operations(doc) if not p.startswith("/v1/")} == {
        ("get", "/healthz"), ("get", "/openapi.json")}


def test_errors_documented_per_operation(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        label = f"{method.upper()} {path}"
        codes = set(operation["responses"])
        if not path.startswith("/v1/"):
            assert operation.get("security") == [], label
            continue
        assert operation.get("security") == [{"bearerAuth": []}], label
        assert {"401", "403", "429", "503"} <= codes, label
        parameters = [resolve(doc, p) for p in operation.get("parameters", [])]
        has_body = "requestBody" in operation
        if parameters or has_body:
            assert "422" in codes, label
        assert ("400" in codes) == has_body, label
        assert ("413" in codes) == has_body, label
        if any(p["in"] == "path" for p in parameters):
            assert "404" in codes, label
        assert ("409" in codes) == (operation["operationId"] in CONFLICT_OPERATIONS), label
        assert not any(c.startswith("5") and c != "503" for c in codes), label
        for code in codes - {"200", "201", "202"}:
            response = resolve(doc, operation["responses"][code])
            schema = response["content"]["application/json"]["schema"]
            assert {"$ref": "#/components/schemas/Error"} in schema["allOf"], f"{label} {code}"


def test_auth_error_headers(doc: dict[str, Any]) -> None:
    responses = doc["components"]["responses"]
    assert responses["Unauthenticated"]["headers"]["WWW-Authenticate"]["required"] is True
    assert responses["RateLimited"]["headers"]["Retry-After"]["required"] is True
    error = schemas(doc)["Error"]
    assert set(error["required"]) == {"error", "message"}
    assert error["additionalProperties"] is True  # kind, key, table, column
    not_found = {"error": "not_found", "message": "deployment not found: x",
                 "kind": "deployment", "key": "x"}
    assert errors_of(doc, "Error", not_found) == []


def test_extension_operations_are_marked(doc: dict[str, Any]) -> None:
    for path, method, operation in operations(doc):
        if not path.startswith("/v1/"):
            continue
        extension = operation["operationId"] not in SPEC_OPERATIONS
        assert operation.get("x-floy-extension", False) is extension, f"{method} {path}"
        if extension:
            assert "beyond the spec" in operation.get("description", "").lower(), path
    ids = {op["operationId"] for _, _, op in operations(doc)}
    assert ids >= SPEC_OPERATIONS


def test_extension_only_schemas_are_marked(doc: dict[str, Any]) -> None:
    """Schemas used only by extension operations are marked as a whole."""
    spec_components = set(COMPONENTS.values())
    shared = spec_components | {"Error", "Status", "Name", "InventoryName", "Timestamp",
                                "PackageUrl", "OptionalPackageUrl", "OptionalName", "Health"}
    for name, schema in schemas(doc).items():
        if name in shared:
            assert "x-floy-extension" not in schema, name
        else:
            assert schema.get("x-floy-extension") is True, name
            assert "beyond the spec" in schema.get("description", "").lower(), name
