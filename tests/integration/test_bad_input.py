"""Malformed requests to all seven methods, through Python and through the ``floy`` CLI.

Every case is one bad value in an otherwise valid request. Each must give exactly one
clear error naming the field (``ValidationError.field`` in Python, the field in the CLI's
stderr with its documented exit code), leave the store unchanged and start nothing: no
``runs/`` or ``logs/`` directory under the floy home, no process mentioning the home.

A real worker executor is used on purpose: if a bad request slipped through, a worker
would really start and the "nothing ran" checks would see it.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from orchestrator.domain.validation import MAX_INSTANCES_PER_RUN, validate_instance_spec
from orchestrator.engine.executors import ProcessExecutor
from orchestrator.errors import FloyError, NotFoundError, ValidationError
from orchestrator.models import (
    BatchRollbackParams,
    DeployParams,
    InstanceQueryParams,
    InstanceRollbackParams,
    InstanceSpec,
    Status,
)
from orchestrator.service import FloyDeployService, new_deploy_service
from orchestrator.settings import load_settings
from orchestrator.store import Store
from sample.packages import free_port, stop_apps
from tests.helpers.floyenv import FloyEnv, make_env, reconfigured, write_inventory
from tests.helpers.store import table_counts

pytestmark = pytest.mark.integration
FLOY = str(Path(sys.executable).with_name("floy"))
OK_URL = "https://127.0.0.1:8443/pkgs/hello-1.0.0.tar.gz"
ALLOWED = "127.0.0.1"
CYRILLIC_E = "\u0435"  # looks like 'e'
LONG = "v" + "1" * 128  # 129 characters

Call = Callable[[FloyDeployService], object]


@dataclass(frozen=True)
class Case:
    """One bad request: the Python call, the CLI argv and what both must answer."""

    name: str
    call: Call
    cli: tuple[str, ...] | None  # None: not expressible on a command line (see why)
    field: str = ""  # ValidationError.field; "" for a not-found outcome
    code: int = 2
    needle: str = ""  # text the CLI's stderr must hold (default "invalid <field>")
    allow_list: bool = False
    why: str = ""

    @property
    def error(self) -> type[FloyError]:
        return ValidationError if self.code == 2 else NotFoundError

    @property
    def cli_needle(self) -> str:
        return self.needle or f"invalid {self.field}"


# -- request builders: one valid request, one field changed -----------------------------------
def _deploy_kw(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"service": "hello", "version": "1.0.0", "instances": ("hello-1",),
                            "package_url": OK_URL, "deploy_id": "bad-1"}
    base.update(kw)
    return base


def deploy(name: str, field: str, *, cli: bool = True, code: int = 2, needle: str = "",
           allow_list: bool = False, why: str = "", **kw: Any) -> Case:
    params = _deploy_kw(**kw)
    argv: tuple[str, ...] | None = None
    if cli:
        argv = ("deploy", params["service"], params["version"],
                "-i", ",".join(params["instances"]), "--url", params["package_url"],
                "--deploy-id", params["deploy_id"], "--detach",
                "--timeout", str(params.get("timeout", 300)),
                "--retries", str(params.get("retry_count", 3)),
                "--batch-size", str(params.get("batch_size", "1")),
                "--max-failures", str(params.get("max_failures", 0)),
                "--sha256", params.get("package_sha256", ""))
    return Case(name, lambda s: s.execute_deployment(DeployParams(**params)), argv, field, code,
                needle, allow_list, why)


def deploy_json(name: str, field: str, data: dict[str, Any], argv: tuple[str, ...] | None,
                needle: str, why: str = "") -> Case:
    """Wrong JSON types go through ``from_dict``; the CLI twin is click's own type check."""
    return Case(name, lambda s: s.execute_deployment(DeployParams.from_dict(data)), argv, field,
                2, needle, why=why)


def _deploy_json(**kw: Any) -> dict[str, Any]:
    base = {**_deploy_kw(), "instances": ["hello-1"]}
    base.update(kw)
    return {k: v for k, v in base.items() if v is not _MISSING}


_MISSING: Any = object()


def status(name: str, deploy_id: str, field: str = "deploy_id", code: int = 2,
           needle: str = "") -> Case:
    return Case(name, lambda s: s.get_deployment_status(deploy_id), ("status", deploy_id),
                field, code, needle)


def cancel(name: str, deploy_id: str, field: str = "deploy_id", code: int = 2,
           needle: str = "") -> Case:
    return Case(name, lambda s: s.cancel_deployment(deploy_id), ("cancel", deploy_id),
                field, code, needle)


def versions(name: str, service: str, field: str = "service", code: int = 2,
             needle: str = "") -> Case:
    return Case(name, lambda s: s.get_service_instance_versions(service), ("versions", service),
                field, code, needle)


def listing(name: str, field: str, code: int = 2, needle: str = "", **kw: Any) -> Case:
    params: dict[str, Any] = {"service_name": "hello", "version": "", "limit": 100,
                              "offset": 0, **kw}
    argv = ("instances", "list", params["service_name"], "--version", params["version"],
            "--limit", str(params["limit"]), "--offset", str(params["offset"]))
    return Case(name, lambda s: s.get_service_instances(InstanceQueryParams(**params)), argv,
                field, code, needle)


def rb_instance(name: str, field: str, code: int = 2, needle: str = "",
                allow_list: bool = False, **kw: Any) -> Case:
    params: dict[str, Any] = {"instance_id": "hello-1", "target_version": "1.0.0",
                              "package_url": OK_URL, "timeout": 300, "rollback_id": "rb-1",
                              **kw}
    argv = ("rollback", "instance", params["instance_id"], params["target_version"],
            "--url", params["package_url"], "--timeout", str(params["timeout"]),
            "--rollback-id", params["rollback_id"], "--detach")
    return Case(name, lambda s: s.rollback_instance(InstanceRollbackParams(**params)), argv,
                field, code, needle, allow_list)


def rb_batch(name: str, field: str, code: int = 2, needle: str = "",
             allow_list: bool = False, **kw: Any) -> Case:
    params: dict[str, Any] = {"service": "hello", "target_version": "1.0.0",
                              "instances": ("hello-1", "hello-2"), "package_url": OK_URL,
                              "timeout": 300, "batch_size": "1", "max_failures": 0,
                              "rollback_id": "rb-2", **kw}
    argv = ("rollback", "batch", params["service"], params["target_version"],
            "-i", ",".join(params["instances"]), "--url", params["package_url"],
            "--timeout", str(params["timeout"]), "--batch-size", str(params["batch_size"]),
            "--max-failures", str(params["max_failures"]),
            "--rollback-id", params["rollback_id"], "--detach")
    return Case(name, lambda s: s.rollback_batch(BatchRollbackParams(**params)), argv, field,
                code, needle, allow_list)


def add(name: str, field: str, *, meta: dict[str, str] | None = None, **kw: Any) -> Case:
    """Registration (``floy instances add``), where instance metadata comes in."""
    spec: dict[str, Any] = {"instance_id": "new-1", "service": "hello", "host": "127.0.0.1",
                            "port": 8080, **kw}
    metadata = meta or {}
    argv: tuple[str, ...] = ("instances", "add", spec["instance_id"], "--service",
                             spec["service"], "--host", spec["host"], "--port",
                             str(spec["port"]))
    for key, value in metadata.items():
        argv += ("--meta", f"{key}={value}")

    def call(s: FloyDeployService) -> object:
        checked = validate_instance_spec(InstanceSpec(**spec, metadata=metadata))
        return s.store.instances.add([checked])

    return Case(name, call, argv, field)


MANY = tuple(f"i{n}" for n in range(MAX_INSTANCES_PER_RUN + 1))
UNKNOWN_10K = tuple(f"u{n}" for n in range(MAX_INSTANCES_PER_RUN))

CASES: list[Case] = [
    # -- execute_deployment: missing / empty --------------------------------------------
    deploy_json("deploy-missing-service", "service", _deploy_json(service=_MISSING),
                ("deploy",), "Missing argument 'SERVICE'"),
    deploy_json("deploy-missing-url", "package_url", _deploy_json(package_url=_MISSING),
                ("deploy", "hello", "1.0.0", "-i", "hello-1"), "Missing option '--url'"),
    deploy_json("deploy-missing-deploy-id", "deploy_id", _deploy_json(deploy_id=_MISSING),
                None, "", why="the CLI generates a deploy ID when none is given"),
    deploy("deploy-empty-service", "service", service=""),
    deploy("deploy-empty-version", "version", version=""),
    deploy("deploy-empty-url", "package_url", package_url=""),
    deploy("deploy-empty-instances", "instances", instances=()),  # the CLI: -i ""
    Case("deploy-cli-empty-selection", lambda s: s.execute_deployment(DeployParams(
        **_deploy_kw(instances=()))),
         ("deploy", "hello", "1.0.0", "-i", ",", "-i", " , ", "--url", OK_URL, "--detach"),
         "instances", needle="-i names no instance"),
    deploy("deploy-empty-deploy-id", "deploy_id", deploy_id="", cli=False,
           why="an empty --deploy-id means a generated one"),
    deploy("deploy-instance-of-other-service", "instances[0]", service="ghost",
           instances=("hello-1",), needle="belongs to service 'hello', not 'ghost'"),
    Case("deploy-cli-unknown-service", lambda s: s.execute_deployment(DeployParams(
        **_deploy_kw(service="ghost", instances=()))),
         ("deploy", "ghost", "1.0.0", "--url", OK_URL, "--detach"), "instances",
         needle="none registered for service 'ghost'"),
    # -- execute_deployment: wrong types (JSON) -------------------------------------------
    deploy_json("deploy-timeout-string", "timeout", _deploy_json(timeout="300"),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url", OK_URL,
                 "--timeout", "300s"), "Invalid value for '--timeout'"),
    deploy_json("deploy-timeout-bool", "timeout", _deploy_json(timeout=True),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url", OK_URL,
                 "--timeout", "true"), "Invalid value for '--timeout'"),
    deploy_json("deploy-retry-float", "retry_count", _deploy_json(retry_count=1.5),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url", OK_URL,
                 "--retries", "1.5"), "Invalid value for '--retries'"),
    deploy_json("deploy-instances-string", "instances", _deploy_json(instances="hello-1"),
                None, "", why="argv has no types: -i values are always a list of strings"),
    deploy_json("deploy-instance-number", "instances[0]", _deploy_json(instances=[1]),
                None, "", why="argv has no types"),
    deploy_json("deploy-auto-rollback-string", "auto_rollback",
                _deploy_json(auto_rollback="yes"),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url", OK_URL,
                 "--auto-rollback=yes"), "--auto-rollback"),
    deploy_json("deploy-unknown-field", "services", _deploy_json(services="hello"),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url", OK_URL,
                 "--services", "hello"), "No such option '--services'"),
    deploy_json("deploy-url-null", "package_url", _deploy_json(package_url=None),
                ("deploy", "hello", "1.0.0", "-i", "hello-1", "--url"),
                "'--url' requires an argument"),
    # -- package URLs ------------------------------------------------------------------
    deploy("url-http", "package_url", package_url="http://127.0.0.1/p.tgz"),
    deploy("url-file", "package_url", package_url="file:///etc/passwd"),
    deploy("url-ftp", "package_url", package_url="ftp://127.0.0.1/p.tgz"),
    deploy("url-data", "package_url", package_url="data:application/gzip;base64,H4sIAAAA"),
    deploy("url-schemeless", "package_url", package_url="127.0.0.1/pkgs/p.tgz"),
    deploy("url-scheme-relative", "package_url", package_url="//127.0.0.1/pkgs/p.tgz"),
    deploy("url-userinfo", "package_url", package_url="https://user:pw@127.0.0.1/p.tgz"),
    deploy("url-user-only", "package_url", package_url="https://token@127.0.0.1/p.tgz"),
    deploy("url-backslash-trick", "package_url",
           package_url="https://evil.example\\@127.0.0.1/p.tgz"),
    deploy("url-space", "package_url", package_url="https://127.0.0.1/p 1.tgz"),
    deploy("url-bad-port", "package_url", package_url="https://127.0.0.1:99999/p.tgz"),
    deploy("url-too-long", "package_url", package_url="https://127.0.0.1/" + "a" * 2100),
    deploy("url-host-not-allowed", "package_url", allow_list=True,
           package_url="https://pkgs.evil.example/p.tgz"),
    deploy("url-host-suffix-not-allowed", "package_url", allow_list=True,
           package_url="https://127.0.0.1.evil.example/p.tgz"),
    deploy("url-fragment-at-not-allowed", "package_url", allow_list=True,
           package_url="https://evil.example/p.tgz#@127.0.0.1"),
    deploy("url-localhost-not-allowed", "package_url", allow_list=True,
           package_url="https://localhost/p.tgz"),
    deploy("url-non-ascii-path", "package_url", needle="percent-encode it",
           package_url="https://127.0.0.1:8443/pkgs/hello-\u00e9.tar.gz"),
    deploy("url-non-ascii-host", "package_url", needle="xn--",
           package_url="https://pkgs.b\u00fccher.example/p.tgz"),
    deploy("url-port-zero", "package_url", needle="invalid port",
           package_url="https://127.0.0.1:0/pkgs/p.tgz"),
    deploy("url-bad-percent", "package_url", needle="%25",
           package_url="https://127.0.0.1:8443/pkgs/p%zz.tgz"),
    deploy("url-ipv6-zone", "package_url", needle="zone",
           package_url="https://[fe80::1%25eth0]:8443/pkgs/p.tgz"),
    # -- names: version, service, instances, deploy_id --------------------------------
    deploy("version-slash", "version", version="1.0/../../etc"),
    deploy("version-dotdot", "version", version="..", needle="'..' is not allowed"),
    deploy("version-dotdot-inner", "version", version="1..0"),
    deploy("version-space", "version", version="1.0 beta"),
    deploy("version-newline", "version", version="1.0\nx"),
    deploy("version-nul", "version", version="1.0\x00", cli=False,
           why="argv cannot carry NUL"),
    deploy("version-cyrillic", "version", version=f"1.0.0-r{CYRILLIC_E}lease",
           needle="U+0435"),
    deploy("version-fullwidth-dot", "version", version="1\uff0e0", needle="U+FF0E"),
    deploy("version-bidi", "version", version="1.0\u202e0.1"),
    deploy("version-too-long", "version", version=LONG, needle="too long"),
    deploy("version-leading-dash", "version", version="-rf", cli=False,
           why="click reads a leading '-' as an option"),
    deploy("version-leading-dot", "version", version=".hidden"),
    deploy("service-slash", "service", service="hel/lo"),
    deploy("service-cyrillic", "service", service=f"h{CYRILLIC_E}llo"),
    deploy("service-too-long", "service", service="s" * 129),
    deploy("service-all", "service", service="all", needle="reserved by Ansible"),
    deploy("service-ungrouped", "service", service="UNGROUPED", needle="reserved by Ansible"),
    deploy("instance-localhost", "instances[1]", instances=("hello-1", "localhost"),
           needle="reserved by Ansible"),
    deploy("instance-slash", "instances[0]", instances=("../hello-1",)),
    deploy("instance-space", "instances[1]", instances=("hello-1", "hello 2")),
    deploy("instance-newline", "instances[0]", instances=("hel\nlo-1",)),
    deploy("instance-nul", "instances[0]", instances=("hello-1\x00",), cli=False,
           why="argv cannot carry NUL"),
    deploy("instance-cyrillic", "instances[0]", instances=(f"h{CYRILLIC_E}llo-1",)),
    deploy("instance-too-long", "instances[0]", instances=("h" * 129,)),
    deploy("deploy-id-slash", "deploy_id", deploy_id="../../tmp/x"),
    deploy("deploy-id-space", "deploy_id", deploy_id="my deploy"),
    deploy("deploy-id-too-long", "deploy_id", deploy_id="d" * 129),
    # -- Jinja in every string field -----------------------------------------------------
    deploy("jinja-service", "service", service="{{ 7*7 }}"),
    deploy("jinja-version", "version", version="{{lookup('pipe','id')}}"),
    deploy("jinja-version-stmt", "version", version="{% if 1 %}1{% endif %}"),
    deploy("jinja-version-comment", "version", version="1.0{# c #}"),
    deploy("jinja-instance", "instances[0]", instances=("{{ x }}",)),
    deploy("jinja-url", "package_url", package_url="https://127.0.0.1/{{ x }}.tgz"),
    deploy("jinja-url-stmt", "package_url", package_url="https://127.0.0.1/{%x%}.tgz"),
    deploy("jinja-deploy-id", "deploy_id", deploy_id="{# x #}"),
    deploy("jinja-sha256", "package_sha256", package_sha256="{{ x }}" + "a" * 57),
    deploy("jinja-batch-size", "batch_size", batch_size="{{ 1 }}"),
    # -- numbers -----------------------------------------------------------------------
    deploy("timeout-negative", "timeout", timeout=-1),
    deploy("timeout-zero", "timeout", timeout=0),
    deploy("timeout-huge", "timeout", timeout=10**12),
    deploy("retry-negative", "retry_count", retry_count=-1),
    deploy("retry-huge", "retry_count", retry_count=10**9),
    deploy("batch-size-zero-percent", "batch_size", batch_size="0%"),
    deploy("batch-size-over-100-percent", "batch_size", batch_size="101%"),
    deploy("batch-size-word", "batch_size", batch_size="all"),
    deploy("max-failures-negative", "max_failures", max_failures=-1),
    deploy("sha256-short", "package_sha256", package_sha256="abc"),
    # -- instance sets -------------------------------------------------------------------
    deploy("instances-duplicate", "instances[1]", instances=("hello-1", "hello-1")),
    deploy("instances-unknown", "instances[0]", instances=("nope-1",),
           needle="unknown instance"),
    deploy("instances-unknown-second", "instances[1]", instances=("hello-1", "nope-2"),
           needle="unknown instance"),
    deploy("instances-foreign-service", "instances[1]", instances=("hello-1", "hola-1"),
           needle="belongs to service 'hola'"),
    deploy("instances-over-max", "instances", instances=MANY, needle="too many instances"),
    deploy("instances-10k-unknown", "instances[0]", instances=UNKNOWN_10K,
           needle="unknown instance"),
    # -- get_deployment_status -----------------------------------------------------------
    status("status-empty", ""),
    status("status-slash", "../runs/x"),
    status("status-jinja", "{{ x }}"),
    status("status-newline", "run\n1"),
    status("status-too-long", "r" * 129),
    status("status-unknown", "no-such-run", field="", code=3,
           needle="deployment not found: no-such-run"),
    # -- cancel_deployment ---------------------------------------------------------------
    cancel("cancel-space", "a b"),
    cancel("cancel-jinja", "{% x %}"),
    cancel("cancel-cyrillic", f"d{CYRILLIC_E}ploy-1"),
    cancel("cancel-unknown", "no-such-run", field="", code=3,
           needle="deployment not found: no-such-run"),
    # -- get_service_instance_versions ---------------------------------------------------
    versions("versions-empty", ""),
    versions("versions-slash", "hel/lo"),
    versions("versions-jinja", "{# x #}"),
    versions("versions-dotdot", "hello..x"),
    versions("versions-unknown", "ghost", field="", code=3, needle="service not found: ghost"),
    # -- get_service_instances -----------------------------------------------------------
    listing("list-service-slash", "service_name", service_name="a/b"),
    listing("list-service-empty", "service_name", service_name=""),
    listing("list-version-jinja", "version", version="{{ x }}"),
    listing("list-version-space", "version", version="1 0"),
    listing("list-limit-zero", "limit", limit=0),
    listing("list-limit-negative", "limit", limit=-5),
    listing("list-limit-huge", "limit", limit=1001),
    listing("list-offset-negative", "offset", offset=-1),
    listing("list-offset-huge", "offset", offset=10**7 + 1),
    Case("list-limit-string", lambda s: s.get_service_instances(
        InstanceQueryParams.from_dict({"service_name": "hello", "limit": "10"})),
         ("instances", "list", "hello", "--limit", "ten"), "limit",
         needle="Invalid value for '--limit'"),
    Case("list-offset-null", lambda s: s.get_service_instances(
        InstanceQueryParams.from_dict({"service_name": "hello", "offset": None})),
         ("instances", "list", "hello", "--offset", ""), "offset",
         needle="Invalid value for '--offset'"),
    listing("list-unknown-service", "", code=3, needle="service not found: ghost",
            service_name="ghost"),
    listing("list-service-all", "service_name", service_name="All"),
    # -- rollback_instance ---------------------------------------------------------------
    rb_instance("rb-instance-slash", "instance_id", instance_id="a/b"),
    rb_instance("rb-instance-jinja", "instance_id", instance_id="{{ x }}"),
    rb_instance("rb-target-dotdot", "target_version", target_version="../1.0"),
    rb_instance("rb-target-empty", "target_version", target_version="",
                needle="package_url needs the version it holds"),
    rb_instance("rb-target-empty-no-previous", "target_version", target_version="",
                package_url="", needle="no previous version of 'hello-1' is known"),
    rb_instance("rb-url-ftp", "package_url", package_url="ftp://127.0.0.1/p.tgz"),
    rb_instance("rb-url-userinfo", "package_url", package_url="https://a:b@127.0.0.1/p"),
    rb_instance("rb-url-not-allowed", "package_url", allow_list=True,
                package_url="https://evil.example/p.tgz"),
    rb_instance("rb-timeout-zero", "timeout", timeout=0),
    rb_instance("rb-instance-localhost", "instance_id", instance_id="localhost"),
    rb_instance("rb-url-non-ascii", "package_url",
                package_url="https://127.0.0.1:8443/pkgs/hello-\u00e9.tar.gz"),
    rb_instance("rb-url-port-zero", "package_url", package_url="https://127.0.0.1:0/p.tgz"),
    rb_instance("rb-id-jinja", "rollback_id", rollback_id="{# x #}"),
    rb_instance("rb-unknown-instance", "", code=3, needle="instance not found: ghost-1",
                instance_id="ghost-1"),
    Case("rb-force-string", lambda s: s.rollback_instance(InstanceRollbackParams.from_dict(
        {"instance_id": "hello-1", "target_version": "1.0.0", "force": "true"})),
         ("rollback", "instance", "hello-1", "1.0.0", "--force=true"), "force",
         needle="--force"),
    # -- rollback_batch ------------------------------------------------------------------
    rb_batch("rb-batch-service-space", "service", service="hel lo"),
    rb_batch("rb-batch-target-jinja", "target_version", target_version="{{ x }}"),
    rb_batch("rb-batch-target-empty", "target_version", target_version="", package_url="",
             needle="no previous version of 'hello-1' is known"),
    rb_batch("rb-batch-target-cyrillic", "target_version", target_version=f"1.0.{CYRILLIC_E}"),
    rb_batch("rb-batch-url-data", "package_url", package_url="data:,x"),
    rb_batch("rb-batch-url-not-allowed", "package_url", allow_list=True,
             package_url="https://other.example/p.tgz"),
    rb_batch("rb-batch-duplicate", "instances[1]", instances=("hello-1", "hello-1")),
    rb_batch("rb-batch-unknown", "instances[1]", instances=("hello-1", "nope-1"),
             needle="unknown instance"),
    rb_batch("rb-batch-foreign", "instances[0]", instances=("hola-1",),
             needle="belongs to service 'hola'"),
    rb_batch("rb-batch-over-max", "instances", instances=MANY, needle="too many instances"),
    rb_batch("rb-batch-timeout-huge", "timeout", timeout=86_401),
    rb_batch("rb-batch-max-failures-negative", "max_failures", max_failures=-3),
    rb_batch("rb-batch-size-zero", "batch_size", batch_size="0"),
    Case("rb-batch-instances-null", lambda s: s.rollback_batch(BatchRollbackParams.from_dict(
        {"service": "hello", "target_version": "1.0.0", "instances": None})),
         ("rollback", "batch", "hello", "1.0.0", "-i"), "instances",
         needle="'-i' requires an argument"),
    Case("rb-batch-empty-instances", lambda s: s.rollback_batch(BatchRollbackParams(
        service="ghost", target_version="1.0.0", instances=())),
         ("rollback", "batch", "ghost", "1.0.0", "--detach"), "instances",
         why="the CLI fills an absent -i with the service's instances: none for ghost"),
    rb_batch("rb-batch-empty-selection", "instances", instances=(),  # the CLI: -i ""
             needle="-i names no instance"),
    rb_batch("rb-batch-service-all", "service", service="all", needle="reserved by Ansible"),
    # -- registration and metadata (floy instances add) ----------------------------------
    add("meta-jinja-value", "metadata.owner", meta={"owner": "{{ lookup('pipe','id') }}"}),
    add("meta-jinja-stmt-value", "metadata.note", meta={"note": "{% raw %}x"}),
    add("meta-jinja-comment-value", "metadata.note", meta={"note": "a {# b #}"}),
    add("meta-jinja-key", "metadata", meta={"{{k}}": "v"}),
    add("meta-newline-value", "metadata.note", meta={"note": "a\nb"}),
    add("meta-ansible-connection", "metadata.ansible_connection",
        meta={"ansible_connection": "ssh"}),
    add("meta-ansible-port", "metadata.ansible_port", meta={"ansible_port": "2222"}),
    add("meta-become", "metadata.become", meta={"become": "true"}),
    add("meta-become-user", "metadata.become_user", meta={"become_user": "root"}),
    add("meta-ansible-upper", "metadata.ANSIBLE_HOST", meta={"ANSIBLE_HOST": "10.0.0.1"}),
    add("meta-value-too-long", "metadata.note", meta={"note": "x" * 1025}),
    add("add-instance-jinja", "instance_id", instance_id="{{ x }}"),
    add("add-service-slash", "service", service="a/b"),
    add("add-host-jinja", "host", host="{{ x }}"),
    add("add-host-space", "host", host="bad host"),
    add("add-host-zone-proxycommand", "host", host="::1%x -oProxyCommand=touch${IFS}pwned"),
    add("add-host-zone-zero-width", "host", host="::1%\u200b"),
    add("add-host-zero-width", "host", host="127.0.0.1\u200b"),
    add("add-host-bom", "host", host="\ufeffweb.example.com"),
    add("add-host-word-joiner", "host", host="web\u2060.example.com"),
    add("add-instance-all", "instance_id", instance_id="all"),
    add("add-instance-localhost", "instance_id", instance_id="LOCALHOST"),
    add("add-service-ungrouped", "service", service="ungrouped"),
]


def _ids() -> list[str]:
    names = [c.name for c in CASES]
    assert len(names) == len(set(names)), "case names are unique"
    return names


# -- the environment --------------------------------------------------------------------------
@dataclass
class BadEnv:
    home: Path
    root: Path
    store: Store
    service: FloyDeployService
    cli_env: dict[str, str]

    def nothing_ran(self) -> list[str]:
        """What a started run would leave behind; empty when nothing ran."""
        found = [str(p) for p in (self.home / "runs", self.home / "logs") if p.exists()]
        needle = str(self.home).encode()
        for entry in os.listdir("/proc"):
            if not entry.isdigit() or int(entry) == os.getpid():
                continue
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if needle in cmdline:
                found.append(f"pid {entry}: {cmdline[:160]!r}")
        return found


@pytest.fixture
def bad_env(tmp_path: Path, pki: Any) -> Any:
    home = tmp_path / "home"
    root = tmp_path / "root"
    root.mkdir()
    inventory = write_inventory(tmp_path / "inventory", root)
    settings = load_settings(home=home, inventory_dir=inventory,
                             environ={"FLOY_CA_BUNDLE": str(pki.ca_bundle)})
    store = Store.open(settings.db_url)
    store.instances.add([
        InstanceSpec("hello-1", "hello", "127.0.0.1", free_port(), {"zone": "a"}),
        InstanceSpec("hello-2", "hello", "127.0.0.1", free_port(), {"zone": "b"}),
        InstanceSpec("hola-1", "hola", "127.0.0.1", free_port(), {}),
    ])
    service = new_deploy_service(logging.getLogger("test"), ProcessExecutor(settings, store), store,
                                 settings)
    cli_env = dict(os.environ, PATH="/usr/local/bin:/usr/bin:/bin", FLOY_HOME=str(home),
                   FLOY_INVENTORY_DIR=str(inventory), FLOY_CA_BUNDLE=str(pki.ca_bundle))
    cli_env.pop("FLOY_ALLOWED_PACKAGE_HOSTS", None)
    env = BadEnv(home, root, store, service, cli_env)
    yield env
    store.close()
    stop_apps(root)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40
    methods = {c.cli[0] if c.cli else "" for c in CASES}
    assert {"deploy", "status", "cancel", "versions", "instances", "rollback"} <= methods
    assert sum(1 for c in CASES if c.cli is None) <= 10, "almost every case also runs the CLI"


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_bad_input_is_refused(bad_env: BadEnv, case: Case) -> None:
    env = bad_env
    if case.allow_list:
        env.service = reconfigured(env.service, allowed_package_hosts=frozenset({ALLOWED}))
        env.cli_env["FLOY_ALLOWED_PACKAGE_HOSTS"] = ALLOWED
    before = table_counts(env.store)

    # Python
    with pytest.raises(FloyError) as err:
        case.call(env.service)
    assert type(err.value) is case.error, f"{type(err.value).__name__}: {err.value}"
    if isinstance(err.value, ValidationError):
        assert err.value.field == case.field, str(err.value)
        assert str(err.value).startswith(f"invalid {case.field}: ")
    assert table_counts(env.store) == before, "nothing stored"
    assert env.nothing_ran() == []

    # CLI
    if case.cli is None:
        assert case.why, "a case without its CLI twin says why"
        return
    proc = subprocess.run([FLOY, *case.cli], env=env.cli_env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == case.code, (proc.returncode, proc.stdout, proc.stderr)
    assert case.cli_needle in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stdout == ""
    assert table_counts(env.store) == before, "nothing stored"
    assert env.nothing_ran() == []


def test_cli_json_error_names_the_field(bad_env: BadEnv) -> None:
    import json

    proc = subprocess.run([FLOY, "deploy", "hello", "1.0\n0", "-i", "hello-1", "--url", OK_URL,
                           "--json"], env=bad_env.cli_env, capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 2
    error = json.loads(proc.stderr)
    assert error["error"] == "validation" and error["field"] == "version"
    assert bad_env.nothing_ran() == []


# -- connection variables in metadata --------------------------------------------------------
CONNECTION_META = {"ansible_connection": "ssh", "ansible_port": "1",
                   "ansible_host": "203.0.113.1", "ansible_user": "nobody-here"}


@pytest.mark.parametrize("key", [*sorted(CONNECTION_META), "become", "become_method",
                                 "Ansible_Connection"])
def test_connection_variables_in_metadata_are_refused(key: str) -> None:
    with pytest.raises(ValidationError) as err:
        validate_instance_spec(InstanceSpec("x-1", "hello", "127.0.0.1", 80, {key: "x"}))
    assert err.value.field == f"metadata.{key}"
    assert "connection variables" in err.value.reason


def test_metadata_never_becomes_connection_variables(
        tmp_path: Path, pki: Any, packages: dict[str, tuple[str, str]]) -> None:
    """Validation bypassed: ssh to port 1 of a TEST-NET address would fail at once, so a
    completed deploy proves the metadata stayed data and the operator's local connection held.
    """
    env: FloyEnv = make_env(tmp_path, pki, packages, inline=True)
    try:
        port = free_port()
        env.store.instances.add([InstanceSpec("hello-1", "hello", "127.0.0.1", port,
                                              dict(CONNECTION_META))])
        env.ports["hello-1"] = port
        status = env.deploy("1.0.0", ["hello-1"], "meta-conn-1")
        assert status.status is Status.COMPLETED, status.instances[0].error_message
        assert env.current("hello-1") == "1.0.0"
        assert env.answers("hello-1") == "1.0.0"
        text = (env.settings.runs_dir / "meta-conn-1" / "inventory" / "hosts.yml").read_text()

        class Loader(yaml.SafeLoader):
            pass

        def unsafe(loader: yaml.SafeLoader, node: yaml.Node) -> str:
            assert isinstance(node, yaml.ScalarNode)
            return str(loader.construct_scalar(node))

        Loader.add_constructor("!unsafe", unsafe)
        host = yaml.load(text, Loader=Loader)["all"]["children"]["hello"]["hosts"]["hello-1"]
        # the metadata sits nested under floy_instance_metadata, never as a host variable
        assert host["floy_instance_metadata"] == CONNECTION_META
        assert host["ansible_host"] == "127.0.0.1"
        assert not {"ansible_connection", "ansible_port", "ansible_user"} & set(host), host
    finally:
        stop_apps(env.root)
        env.store.close()
