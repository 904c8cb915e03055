"""Input validation: each bad input names its field and says why."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from orchestrator.ansible.probe import observe
from orchestrator.domain.events import FoldState, InstanceUpdate, RunnerEvent, fold_event
from orchestrator.domain.validation import (
    NAME_PATTERN,
    reject_control_characters,
    reject_template_syntax,
    validate_batch_rollback_params,
    validate_batch_size,
    validate_deploy_params,
    validate_host,
    validate_id,
    validate_instance_ids,
    validate_instance_query,
    validate_instance_rollback_params,
    validate_instance_spec,
    validate_inventory_name,
    validate_limit,
    validate_max_failures,
    validate_metadata,
    validate_name,
    validate_offset,
    validate_package_url,
    validate_port,
    validate_retry_count,
    validate_sha256,
    validate_timeout,
)
from orchestrator.errors import ValidationError
from orchestrator.models import (
    BatchRollbackParams,
    DeployParams,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceSpec,
    Status,
)

URL = "https://packages.example.com/user-service/v1.2.3.tar.gz"
GOOD_DEPLOY = DeployParams(
    service="user-service",
    version="v1.2.3",
    instances=("instance-1", "instance-2"),
    package_url=URL,
    deploy_id="deploy-12345",
)
GOOD_ROLLBACK = InstanceRollbackParams(instance_id="instance-1", target_version="v1.2.2")
GOOD_BATCH = BatchRollbackParams("user-service", "v1.2.2", ("instance-1", "instance-2"))
GOOD_SPEC = InstanceSpec("instance-1", "user-service", "10.0.0.1", 22, {"zone": "eu-1a"})
ALLOWED = frozenset({"Packages.Example.com"})


def deploy(**changes: Any) -> Callable[[], object]:
    """A deferred validate_deploy_params call on GOOD_DEPLOY with some fields changed."""
    return lambda: validate_deploy_params(replace(GOOD_DEPLOY, **changes))


def call(fn: Callable[..., object], *args: Any) -> Callable[[], object]:
    return lambda: fn(*args)


# (case id, deferred call, field named, keyword in the reason)
BAD: list[tuple[str, Callable[[], object], str, str]] = [
    # names
    ("service empty", deploy(service=""), "service", "empty"),
    ("service slash", deploy(service="a/b"), "service", "'/'"),
    ("service space", deploy(service="user service"), "service", "' '"),
    ("service newline", deploy(service="svc\n"), "service", "control character"),
    ("service NUL", deploy(service="svc\x00x"), "service", "control character"),
    ("service cyrillic e", deploy(service="us\u0435r"), "service", "U+0435"),
    ("service dash start", deploy(service="-rf"), "service", "start with"),
    ("service dot start", deploy(service=".hidden"), "service", "start with"),
    ("service too long", deploy(service="s" * 129), "service", "too long"),
    ("service not str", deploy(service=5), "service", "string"),
    ("version dotdot", deploy(version="1..2"), "version", "'..'"),
    ("version traversal", deploy(version="../../etc"), "version", "'..'"),
    ("version jinja", deploy(version="{{ lookup('pipe','id') }}"), "version", "template"),
    ("version jinja stmt", deploy(version="{% raw %}"), "version", "template"),
    ("version jinja comment", deploy(version="a{#b"), "version", "template"),
    ("version brace", deploy(version="v{1}"), "version", "'{'"),
    ("version tab", deploy(version="v1\t"), "version", "control character"),
    ("deploy_id colon", deploy(deploy_id="d:1"), "deploy_id", "':'"),
    ("deploy_id too long", deploy(deploy_id="d" * 200), "deploy_id", "too long"),
    # instances
    ("instances empty", deploy(instances=()), "instances", "empty"),
    ("instances str", deploy(instances="instance-1"), "instances", "list"),
    ("instance bad", deploy(instances=("a", "b", "c", "x/y")), "instances[3]", "'/'"),
    ("instance not str", deploy(instances=("a", 3)), "instances[1]", "string"),
    (
        "instance duplicate",
        deploy(instances=("a", "x", "b", "c", "x")),
        "instances[4]",
        "duplicate of instances[1] 'x'",
    ),
    (
        "too many instances",
        call(validate_instance_ids, "instances", ["a", "b"], 1),
        "instances",
        "too many",
    ),
    # package url
    ("url http", deploy(package_url="http://x.example.com/p.tgz"), "package_url", "https://"),
    ("url file", deploy(package_url="file:///etc/passwd"), "package_url", "https://"),
    ("url ftp", deploy(package_url="ftp://x.example.com/p"), "package_url", "https://"),
    ("url data", deploy(package_url="data:text/plain,hi"), "package_url", "https://"),
    ("url schemeless", deploy(package_url="x.example.com/p.tgz"), "package_url", "https://"),
    ("url empty", deploy(package_url=""), "package_url", "empty"),
    ("url no host", deploy(package_url="https:///p.tgz"), "package_url", "host"),
    (
        "url credentials",
        deploy(package_url="https://user:pass@x.example.com/p.tgz"),
        "package_url",
        "credentials in the URL are not allowed",
    ),
    ("url space", deploy(package_url="https://x.example.com/a b"), "package_url", "whitespace"),
    ("url newline", deploy(package_url="https://x.example.com/a\n"), "package_url", "control"),
    ("url template", deploy(package_url="https://x/{{ x }}"), "package_url", "template"),
    ("url too long", deploy(package_url="https://x.com/" + "a" * 2048), "package_url", "too long"),
    ("url backslash", deploy(package_url="https://a.com\\@b.com/p"), "package_url", "backslash"),
    ("url bad port", deploy(package_url="https://x.com:99999/p"), "package_url", "port"),
    ("url port zero", deploy(package_url="https://x.com:0/p"), "package_url", "port"),
    ("url port empty", deploy(package_url="https://x.com:/p"), "package_url", "port"),
    ("url port sign", deploy(package_url="https://x.com:+443/p"), "package_url", "port"),
    (
        "url non-ascii path",
        deploy(package_url="https://x.com/pkg-é.tar.gz"),
        "package_url",
        "percent-encode it (as UTF-8: %C3%A9)",
    ),
    ("url non-ascii query", deploy(package_url="https://x.com/p?v=ü"), "package_url", "query"),
    ("url zero-width path", deploy(package_url="https://x.com/p\u200b.tgz"), "package_url",
     "U+200B"),
    ("url bad percent", deploy(package_url="https://x.com/p%zz.tgz"), "package_url", "%25"),
    ("url cut percent", deploy(package_url="https://x.com/p.tgz%4"), "package_url", "%25"),
    ("url lone percent", deploy(package_url="https://x.com/100%"), "package_url", "%25"),
    ("url angle bracket", deploy(package_url="https://x.com/<p>.tgz"), "package_url", "%3C"),
    ("url quote", deploy(package_url='https://x.com/p".tgz'), "package_url", "%22"),
    (
        "url non-ascii host",
        deploy(package_url="https://bücher.example/p.tgz"),
        "package_url",
        "'xn--bcher-kva.example'",
    ),
    (
        "url look-alike host",
        call(validate_package_url, "package_url", "https://p\u0430ckages.example.com/p",
             ALLOWED),
        "package_url",
        "IDNA",
    ),
    ("url ipv6 zone", deploy(package_url="https://[fe80::1%25eth0]/p"), "package_url", "zone"),
    ("url host zone trick", deploy(package_url="https://[::1%x]/p"), "package_url", "zone"),
    (
        "url host not allowed",
        call(validate_package_url, "package_url", "https://evil.example.org/p", ALLOWED),
        "package_url",
        "not in the allowed",
    ),
    # numbers
    ("timeout zero", deploy(timeout=0), "timeout", "between"),
    ("timeout huge", deploy(timeout=86_401), "timeout", "between"),
    ("timeout bool", deploy(timeout=True), "timeout", "integer"),
    ("timeout str", deploy(timeout="300"), "timeout", "integer"),
    ("retry negative", deploy(retry_count=-1), "retry_count", "between"),
    ("retry too many", deploy(retry_count=11), "retry_count", "between"),
    ("batch zero", deploy(batch_size="0"), "batch_size", "between"),
    ("batch 0%", deploy(batch_size="0%"), "batch_size", "percentage"),
    ("batch 101%", deploy(batch_size="101%"), "batch_size", "percentage"),
    ("batch words", deploy(batch_size="half"), "batch_size", "percentage"),
    ("batch negative", deploy(batch_size="-1"), "batch_size", "'N%'"),
    ("batch float", deploy(batch_size=1.5), "batch_size", "integer"),
    ("batch bool", call(validate_batch_size, "batch_size", True), "batch_size", "integer"),
    ("max_failures negative", deploy(max_failures=-1), "max_failures", "between"),
    ("sha256 short", deploy(package_sha256="abc"), "package_sha256", "64 hexadecimal"),
    ("sha256 non-hex", deploy(package_sha256="g" * 64), "package_sha256", "64 hexadecimal"),
    ("auto_rollback str", deploy(auto_rollback="yes"), "auto_rollback", "boolean"),
    ("limit zero", call(validate_limit, 0), "limit", "between"),
    ("limit huge", call(validate_limit, 1001), "limit", "between"),
    ("offset negative", call(validate_offset, -1), "offset", "between"),
    ("port zero", call(validate_port, "port", 0), "port", "between"),
    ("port huge", call(validate_port, "port", 65_536), "port", "between"),
    # hosts
    ("host empty", call(validate_host, "host", ""), "host", "empty"),
    ("host underscore", call(validate_host, "host", "web_1.example.com"), "host", "label"),
    ("host dash edge", call(validate_host, "host", "-web.example.com"), "host", "label"),
    ("host bad ipv4", call(validate_host, "host", "256.1.1.1"), "host", "IPv4"),
    ("host bad ipv6", call(validate_host, "host", "fe80::zz"), "host", "IPv6"),
    ("host long", call(validate_host, "host", "a." * 127 + "com"), "host", "too long"),
    ("host empty label", call(validate_host, "host", "a..b"), "host", "label"),
    # Python's ipaddress takes any text as an IPv6 zone, spaces and options included
    (
        "host zone proxycommand",
        call(validate_host, "host", "::1%x -oProxyCommand=touch${IFS}pwned"),
        "host",
        "zone",
    ),
    ("host zone slash", call(validate_host, "host", "fe80::1%eth0/x"), "host", "zone"),
    ("host zone empty", call(validate_host, "host", "fe80::1%"), "host", "zone"),
    ("host zone too long", call(validate_host, "host", "fe80::1%" + "e" * 16), "host", "zone"),
    ("host zone dotdot", call(validate_host, "host", "fe80::1%.."), "host", "zone"),
    ("host zone zero-width", call(validate_host, "host", "::1%\u200b"), "host", "U+200B"),
    ("host percent no ipv6", call(validate_host, "host", "web%eth0"), "host", "IPv6"),
    ("host zero-width space", call(validate_host, "host", "web\u200b.example.com"), "host",
     "ASCII"),
    ("host BOM", call(validate_host, "host", "\ufeff10.0.0.1"), "host", "U+FEFF"),
    ("host word joiner", call(validate_host, "host", "10.0.0.1\u2060"), "host", "U+2060"),
    ("host non-ascii", call(validate_host, "host", "bücher.example"), "host", "IDNA"),
    ("host leading dash", call(validate_host, "host", "-oProxyCommand=x"), "host", "label"),
    # Ansible's own names: implicit groups all/ungrouped and implicit host localhost
    ("service all", deploy(service="all"), "service", "reserved by Ansible"),
    ("service ALL", deploy(service="ALL"), "service", "reserved by Ansible"),
    ("service ungrouped", deploy(service="Ungrouped"), "service", "reserved by Ansible"),
    ("instance localhost", deploy(instances=("a", "LocalHost")), "instances[1]",
     "reserved by Ansible"),
    (
        "spec instance all",
        lambda: validate_instance_spec(replace(GOOD_SPEC, instance_id="all")),
        "instance_id",
        "reserved by Ansible",
    ),
    (
        "spec service localhost",
        lambda: validate_instance_spec(replace(GOOD_SPEC, service="localhost")),
        "service",
        "reserved by Ansible",
    ),
    (
        "rollback instance ungrouped",
        lambda: validate_instance_rollback_params(replace(GOOD_ROLLBACK, instance_id="ungrouped")),
        "instance_id",
        "reserved by Ansible",
    ),
    (
        "batch rollback service all",
        lambda: validate_batch_rollback_params(replace(GOOD_BATCH, service="all")),
        "service",
        "reserved by Ansible",
    ),
    (
        "query service all",
        lambda: validate_instance_query(InstanceQueryParams("all")),
        "service_name",
        "reserved by Ansible",
    ),
    # metadata
    ("metadata list", call(validate_metadata, "metadata", [("a", "b")]), "metadata", "object"),
    (
        "metadata ansible_host",
        call(validate_metadata, "metadata", {"ansible_host": "10.0.0.9"}),
        "metadata.ansible_host",
        "connection variables come only from operator inventory files",
    ),
    (
        "metadata ANSIBLE_user",
        call(validate_metadata, "metadata", {"ANSIBLE_user": "root"}),
        "metadata.ANSIBLE_user",
        "connection variables",
    ),
    (
        "metadata become",
        call(validate_metadata, "metadata", {"become_method": "su"}),
        "metadata.become_method",
        "connection variables",
    ),
    (
        "metadata value template",
        call(validate_metadata, "metadata", {"owner": "{{ lookup('env','HOME') }}"}),
        "metadata.owner",
        "template",
    ),
    (
        "metadata closing delimiter",
        call(validate_metadata, "metadata", {"owner": "x }}"}),
        "metadata.owner",
        "template",
    ),
    (
        "metadata value newline",
        call(validate_metadata, "metadata", {"owner": "a\nb"}),
        "metadata.owner",
        "control character",
    ),
    (
        "metadata value long",
        call(validate_metadata, "metadata", {"owner": "x" * 1025}),
        "metadata.owner",
        "too long",
    ),
    (
        "metadata value int",
        call(validate_metadata, "metadata", {"owner": 1}),
        "metadata.owner",
        "string",
    ),
    (
        "metadata key template",
        call(validate_metadata, "metadata", {"{{x}}": "y"}),
        "metadata",
        "template",
    ),
    (
        "metadata key space",
        call(validate_metadata, "metadata", {"a b": "y"}),
        "metadata",
        "key 'a b'",
    ),
    (
        "metadata too many",
        call(validate_metadata, "metadata", {f"k{i}": "v" for i in range(65)}),
        "metadata",
        "too many",
    ),
    # whole objects
    (
        "rollback bad url",
        lambda: validate_instance_rollback_params(replace(GOOD_ROLLBACK, package_url="http://x/")),
        "package_url",
        "https://",
    ),
    (
        "rollback bad id",
        lambda: validate_instance_rollback_params(replace(GOOD_ROLLBACK, rollback_id="r b")),
        "rollback_id",
        "' '",
    ),
    (
        "rollback force str",
        lambda: validate_instance_rollback_params(
            replace(GOOD_ROLLBACK, force="true")  # type: ignore[arg-type]
        ),
        "force",
        "boolean",
    ),
    (
        "batch rollback target",
        lambda: validate_batch_rollback_params(replace(GOOD_BATCH, target_version="..")),
        "target_version",
        "'..'",
    ),
    (
        "rollback target",
        lambda: validate_instance_rollback_params(replace(GOOD_ROLLBACK, target_version="a/b")),
        "target_version",
        "'/'",
    ),
    (
        "rollback url without target",
        lambda: validate_instance_rollback_params(
            replace(GOOD_ROLLBACK, target_version="", package_url=URL), ALLOWED),
        "target_version",
        "package_url needs the version",
    ),
    (
        "batch rollback url without target",
        lambda: validate_batch_rollback_params(
            replace(GOOD_BATCH, target_version="", package_url=URL), ALLOWED),
        "target_version",
        "give target_version too",
    ),
    (
        "batch rollback instances",
        lambda: validate_batch_rollback_params(replace(GOOD_BATCH, instances=("a", "a"))),
        "instances[1]",
        "duplicate",
    ),
    (
        "query service",
        lambda: validate_instance_query(InstanceQueryParams("")),
        "service_name",
        "empty",
    ),
    (
        "query version",
        lambda: validate_instance_query(InstanceQueryParams("svc", version="v/1")),
        "version",
        "'/'",
    ),
    (
        "spec host",
        lambda: validate_instance_spec(replace(GOOD_SPEC, host="bad host")),
        "host",
        "label",
    ),
    (
        "spec metadata",
        lambda: validate_instance_spec(replace(GOOD_SPEC, metadata={"ansible_port": "22"})),
        "metadata.ansible_port",
        "connection variables",
    ),
    ("id empty", call(validate_id, "rollback_id", ""), "rollback_id", "empty"),
]


@pytest.mark.parametrize(
    ("fn", "field", "keyword"), [case[1:] for case in BAD], ids=[case[0] for case in BAD]
)
def test_bad_input_names_field(fn: Callable[[], object], field: str, keyword: str) -> None:
    with pytest.raises(ValidationError) as exc:
        fn()
    assert exc.value.field == field
    assert keyword in exc.value.reason
    assert str(exc.value).startswith(f"invalid {field}: ")


def test_table_is_large_enough() -> None:
    assert len(BAD) >= 40


@pytest.mark.parametrize(
    "name",
    ["user-service", "v1.2.3", "1.0.0+build.5", "instance_1", "A", "x" * 128, "deploy-12345"],
)
def test_good_names(name: str) -> None:
    assert validate_name("service", name) == name
    assert NAME_PATTERN.fullmatch(name)


# (deferred call, expected return value)
GOOD: list[tuple[str, Callable[[], object], object]] = [
    ("batch int", call(validate_batch_size, "batch_size", 5), "5"),
    ("batch str", call(validate_batch_size, "batch_size", "10"), "10"),
    ("batch percent", call(validate_batch_size, "batch_size", "25%"), "25%"),
    ("batch 100%", call(validate_batch_size, "batch_size", "100%"), "100%"),
    ("batch leading zero", call(validate_batch_size, "batch_size", "05%"), "5%"),
    ("sha256 upper", call(validate_sha256, "package_sha256", "AB" * 32), "ab" * 32),
    ("sha256 empty", call(validate_sha256, "package_sha256", ""), ""),
    ("timeout min", call(validate_timeout, "timeout", 1), 1),
    ("timeout max", call(validate_timeout, "timeout", 86_400), 86_400),
    ("retry zero", call(validate_retry_count, "retry_count", 0), 0),
    ("retry max", call(validate_retry_count, "retry_count", 10), 10),
    ("max_failures zero", call(validate_max_failures, "max_failures", 0), 0),
    ("limit max", call(validate_limit, 1000), 1000),
    ("offset zero", call(validate_offset, 0), 0),
    ("port", call(validate_port, "port", 65_535), 65_535),
    ("host name", call(validate_host, "host", "web-1.example.com"), "web-1.example.com"),
    ("host fqdn dot", call(validate_host, "host", "web-1.example.com."), "web-1.example.com."),
    ("host single label", call(validate_host, "host", "localhost"), "localhost"),
    ("host ipv4", call(validate_host, "host", "127.0.0.1"), "127.0.0.1"),
    ("host ipv6", call(validate_host, "host", "::1"), "::1"),
    ("host ipv6 zone", call(validate_host, "host", "fe80::1%eth0"), "fe80::1%eth0"),
    ("host ipv6 zone vlan", call(validate_host, "host", "fe80::1%br-lan.10"), "fe80::1%br-lan.10"),
    ("host ipv6 zone max", call(validate_host, "host", "fe80::1%" + "e" * 15),
     "fe80::1%" + "e" * 15),
    ("host idna", call(validate_host, "host", "xn--bcher-kva.example"), "xn--bcher-kva.example"),
    ("version all", call(validate_name, "version", "all"), "all"),
    ("run id localhost", call(validate_id, "deploy_id", "localhost"), "localhost"),
    ("inventory name", call(validate_inventory_name, "service", "all-in-one"), "all-in-one"),
    (
        "url percent-encoded",
        call(validate_package_url, "package_url", "https://x.com/pkg-%C3%A9.tar.gz?a=b%2Fc#f"),
        "https://x.com/pkg-%C3%A9.tar.gz?a=b%2Fc#f",
    ),
    (
        "url sub-delims",
        call(validate_package_url, "package_url", "https://x.com/a;b=c/d,e(f)~g+h!$&'*@:"),
        "https://x.com/a;b=c/d,e(f)~g+h!$&'*@:",
    ),
    ("url max port", call(validate_package_url, "package_url", "https://x.com:65535/p"),
     "https://x.com:65535/p"),
    ("url", call(validate_package_url, "package_url", URL), URL),
    (
        "url query and port",
        call(validate_package_url, "package_url", "https://x.example.com:8443/p.tgz?sig=a%2Fb"),
        "https://x.example.com:8443/p.tgz?sig=a%2Fb",
    ),
    (
        "url ipv6",
        call(validate_package_url, "package_url", "https://[::1]:8443/p.tgz"),
        "https://[::1]:8443/p.tgz",
    ),
    ("url allowed host", call(validate_package_url, "package_url", URL, ALLOWED), URL),
    (
        "ids list",
        call(validate_instance_ids, "instances", ["a", "b"]),
        ("a", "b"),
    ),
    (
        "metadata",
        call(validate_metadata, "metadata", {"owner": "team-a", "zone.name": "eu 1", "x_y": ""}),
        {"owner": "team-a", "zone.name": "eu 1", "x_y": ""},
    ),
    (
        "metadata mentions ansible in value",
        call(validate_metadata, "metadata", {"tool": "ansible_host is fine as text"}),
        {"tool": "ansible_host is fine as text"},
    ),
    ("metadata empty", call(validate_metadata, "metadata", {}), {}),
    ("id", call(validate_id, "deploy_id", "deploy-2026.11.24+1"), "deploy-2026.11.24+1"),
    ("plain text", call(reject_template_syntax, "x", "a { b } c"), "a { b } c"),
    ("unicode text", call(reject_control_characters, "x", "équipe ✓"), "équipe ✓"),
]


@pytest.mark.parametrize(("fn", "expected"), [g[1:] for g in GOOD], ids=[g[0] for g in GOOD])
def test_good_input(fn: Callable[[], object], expected: object) -> None:
    assert fn() == expected


def test_deploy_params_are_normalised() -> None:
    params = replace(GOOD_DEPLOY, batch_size="05%", package_sha256="AB" * 32)
    out = validate_deploy_params(params, allowed_hosts=ALLOWED)
    assert out.batch_size == "5%"
    assert out.package_sha256 == "ab" * 32
    assert out.instances == GOOD_DEPLOY.instances
    assert validate_deploy_params(GOOD_DEPLOY) == GOOD_DEPLOY


def test_rollback_params_allow_empty_url_and_id() -> None:
    assert validate_instance_rollback_params(GOOD_ROLLBACK) == GOOD_ROLLBACK
    assert validate_batch_rollback_params(GOOD_BATCH) == GOOD_BATCH
    with_url = replace(GOOD_BATCH, package_url=URL, rollback_id="rb-1", batch_size="50%")
    assert validate_batch_rollback_params(with_url, ALLOWED) == with_url
    # No target version: the service resolves the previous one.
    previous = replace(GOOD_ROLLBACK, target_version="")
    assert validate_instance_rollback_params(previous) == previous
    batch = validate_batch_rollback_params(replace(GOOD_BATCH, target_version=""))
    assert batch.target_version == ""


def test_query_and_spec() -> None:
    q = InstanceQueryParams("user-service")
    assert validate_instance_query(q) == q
    assert validate_instance_spec(GOOD_SPEC) == GOOD_SPEC


def test_first_problem_is_reported() -> None:
    # service comes before version in the spec's field order.
    with pytest.raises(ValidationError) as exc:
        validate_deploy_params(replace(GOOD_DEPLOY, service="", version=""))
    assert exc.value.field == "service"


@pytest.mark.parametrize("delimiter", ["{{", "{%", "{#", "}}", "%}", "#}"])
def test_every_template_delimiter_is_refused(delimiter: str) -> None:
    with pytest.raises(ValidationError, match="template delimiters are not allowed"):
        reject_template_syntax("x", f"a{delimiter}b")


# -- values read back from hosts ---------------------------------------------------------------
# A restart command or a hand-made directory can leave any name under releases/; the release
# module and the probe report it. It must pass the same checks as a request before it is
# recorded (DESIGN.md section 5).
HOSTILE_VERSIONS = [
    "{{ lookup('pipe', 'id') }}",
    "releases/{{ lookup('pipe','id') }}",
    "1.0\x1b]0;pwned\x07",
    "1.0\x1b[2J",
    "../../etc",
    "1.0 beta",
    "v" * 129,
    "1.0\u202e",
]


def _release_event(kind: str, res: dict[str, Any], host: str = "hello-1") -> RunnerEvent:
    return {"event": kind, "created": "2026-11-24T01:00:00+00:00",
            "event_data": {"host": host, "resolved_action": "floy.release.floy_release",
                           "task": "Release", "res": res}}


def _fold(*events: RunnerEvent) -> tuple[FoldState, list[InstanceUpdate]]:
    state = FoldState.start(["hello-1"], package_url=URL)
    updates: list[InstanceUpdate] = []
    for event in (_release_event("runner_on_start", {}), *events):
        state, new = fold_event(state, event)
        updates.extend(new)
    return state, updates


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_fold_never_records_a_refused_current_version(version: str) -> None:
    state, updates = _fold(_release_event(
        "runner_on_ok", {"current_version": version, "previous_version": "1.0.0"}))
    final = updates[-1]
    assert state.statuses["hello-1"] is Status.FAILED, "floy cannot tell what it runs"
    assert final.current_version is None and final.release is None, "nothing recorded"
    assert final.previous_version == "1.0.0"
    assert final.error_message is not None
    assert final.error_message.startswith("invalid current_version: ")
    assert "reported by the host; not recorded" in final.error_message
    assert "floy refresh" in final.error_message


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_fold_never_records_a_refused_previous_version(version: str) -> None:
    state, updates = _fold(_release_event(
        "runner_on_ok", {"current_version": "2.0.0", "previous_version": version}))
    final = updates[-1]
    assert state.statuses["hello-1"] is Status.COMPLETED
    assert final.current_version == "2.0.0" and final.release is not None
    assert final.previous_version is None
    assert (final.error_message or "").startswith("invalid previous_version: ")


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_fold_never_records_a_refused_version_of_a_failed_release(version: str) -> None:
    _, updates = _fold(_release_event(
        "runner_on_failed",
        {"msg": "health check failed", "phase": "health", "current_version": version}))
    final = updates[-1]
    assert final.status is Status.FAILED and final.current_version is None
    assert (final.error_message or "").startswith("health check failed; invalid current_version")


def test_fold_takes_odd_attempt_counts_without_raising() -> None:
    state, updates = _fold(
        _release_event("runner_retry", {"attempts": "many", "msg": "HTTP 503"}),
        _release_event("runner_retry", {"attempts": [1], "msg": "HTTP 503"}),
        _release_event("runner_on_ok", {"current_version": "2.0.0", "attempts": True}),
    )
    assert state.statuses["hello-1"] is Status.COMPLETED
    assert updates[-1].attempts == 3


def _probe_event(res: dict[str, Any], host: str = "hello-1") -> RunnerEvent:
    return {"event": "runner_on_ok",
            "event_data": {"host": host, "resolved_action": "floy.release.floy_probe",
                           "res": res}}


@pytest.mark.parametrize("version", HOSTILE_VERSIONS)
def test_probe_never_trusts_a_refused_current_version(version: str) -> None:
    seen = observe([_probe_event({"current_version": version, "releases": ["1.0.0"]})],
                   ["hello-1"])
    obs = seen["hello-1"]
    assert obs.reachable and not obs.trusted
    assert obs.current_version == "", "nothing a caller could store"
    assert obs.refused_version == version, "reported as read"
    assert obs.error.startswith("invalid current_version: ")
    assert obs.releases == ("1.0.0",)


def test_probe_drops_refused_release_names_and_odd_shapes() -> None:
    seen = observe([
        _probe_event({"current_version": "1.0.0",
                      "releases": ["0.9.0", "{{ x }}", "1.0.0", 7]}, "hello-1"),
        _probe_event({"current_version": 2, "releases": "1.0.0", "state": ["x"]}, "hello-2"),
    ], ["hello-1", "hello-2"])
    one, two = seen["hello-1"], seen["hello-2"]
    assert one.trusted and one.current_version == "1.0.0"
    assert one.releases == ("0.9.0", "1.0.0")
    assert "invalid releases[1]" in one.error and "invalid releases[3]" in one.error
    assert not two.trusted and two.refused_version == "<int> 2"
    assert two.releases == () and two.state == {}
    assert "releases: not a list" in two.error


def test_probe_keeps_good_readings() -> None:
    seen = observe([_probe_event({"current_version": "", "releases": []})], ["hello-1"])
    assert seen["hello-1"].trusted and seen["hello-1"].current_version == ""
    assert seen["hello-1"].error == ""
