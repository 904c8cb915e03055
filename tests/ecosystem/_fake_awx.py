"""An in-memory AWX API (v2) behind a requests transport adapter, for running awxkit's own
``awx import`` with no network: every request awxkit sends goes to :class:`FakeAwx`, which
records it and answers what the importer reads (the API root, OPTIONS with the POST fields,
filtered lists, details, creation, sub-list attachment, survey specs).

What it checks is AWX's, from its source (github.com/ansible/awx, devel, commit e21dd0a):

- the POST fields of each resource, as ``OPTIONS`` reports them (awx/api/metadata.py), are
  the writable fields of the serializers in awx/api/serializers.py: OrganizationSerializer,
  CredentialTypeSerializer, CredentialSerializerCreate, ProjectSerializer (+
  ProjectOptionsSerializer), InventorySerializer, InventorySourceSerializer (+
  InventorySourceOptionsSerializer, whose ``credential`` is an IntegerField), and
  JobTemplateSerializer (+ JobOptionsSerializer, UnifiedJobTemplateSerializer);
- the required fields and choices of those serializers and models; a credential's inputs
  are fields of its type; a credential has an owner (CredentialSerializerCreate.validate);
- a job template's playbook and an SCM inventory source's path are files of the project
  (JobOptionsSerializer.validate, InventorySource.clean_source_path);
- a survey spec passes JobTemplateSurveySpec._validate_spec_data (awx/api/views/__init__.py),
  passed in as ``survey_check``.

Pre-seeded like a fresh AWX: the managed credential types Machine and Source Control, and
an organization "Default" that already holds an inventory and a project of the names floy
uses, so that an import binding references by bare name, not inside its organization, shows.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
import yaml
from requests.adapters import BaseAdapter

API = "/api/v2/"

#: resource (URL segment) -> the ``type`` of its objects, for the resources modelled here.
TYPES = {
    "organizations": "organization",
    "credential_types": "credential_type",
    "credentials": "credential",
    "projects": "project",
    "inventories": "inventory",
    "inventory_sources": "inventory_source",
    "job_templates": "job_template",
    "execution_environments": "execution_environment",
    "users": "user",
    "teams": "team",
}
#: The API root's keys and their list endpoints (ApiVersionRootView.get in
#: awx/api/views/root.py); the ones not in TYPES answer empty lists.
ROOT = {
    **{key: key for key in (
        "ping", "instances", "instance_groups", "receptor_addresses", "config", "settings",
        "me", "dashboard", "organizations", "users", "execution_environments", "projects",
        "project_updates", "teams", "credentials", "credential_types",
        "credential_input_sources", "applications", "tokens", "metrics", "inventory_sources",
        "inventory_updates", "groups", "hosts",
        "host_metrics", "host_metric_summary_monthly", "job_templates", "jobs",
        "ad_hoc_commands", "system_job_templates", "system_jobs", "schedules", "roles",
        "notification_templates", "notifications", "labels", "unified_job_templates",
        "unified_jobs", "activity_stream", "workflow_job_templates", "workflow_jobs",
        "workflow_approvals", "workflow_job_template_nodes", "workflow_job_nodes",
        "mesh_visualizer", "bulk", "analytics")},
    "inventory": "inventories",
    "constructed_inventory": "constructed_inventories",
}


def _f(kind: str, target: str | None = None, required: bool = False,
       choices: tuple[Any, ...] | None = None) -> dict[str, Any]:
    info: dict[str, Any] = {"type": kind, "required": required}
    if target:
        info["target"] = target
    if choices is not None:
        info["choices"] = [[c, str(c)] for c in choices]
    return info


_NAME = {"name": _f("string", required=True), "description": _f("string")}
_NOTIFY = ("notification_templates_started", "notification_templates_success",
           "notification_templates_error")
#: POST fields per resource, with their OPTIONS type ("id" for a foreign key, whose target
#: resource is kept here as "target"); from the serializers named in the module docstring.
POST_FIELDS: dict[str, dict[str, dict[str, Any]]] = {
    "organizations": {**_NAME, "max_hosts": _f("integer"),
                      "default_environment": _f("id", "execution_environments")},
    "credential_types": {**_NAME, "kind": _f("choice", choices=("net", "cloud")),
                         "inputs": _f("json"), "injectors": _f("json")},
    "credentials": {**_NAME, "organization": _f("id", "organizations"),
                    "credential_type": _f("id", "credential_types", required=True),
                    "inputs": _f("json"), "user": _f("id", "users"), "team": _f("id", "teams")},
    "projects": {
        **_NAME, "local_path": _f("choice"),
        "scm_type": _f("choice", choices=("", "git", "svn", "insights", "archive")),
        "scm_url": _f("string"), "scm_branch": _f("string"), "scm_refspec": _f("string"),
        "scm_clean": _f("boolean"), "scm_track_submodules": _f("boolean"),
        "scm_delete_on_update": _f("boolean"), "credential": _f("id", "credentials"),
        "timeout": _f("integer"), "organization": _f("id", "organizations"),
        "scm_update_on_launch": _f("boolean"), "scm_update_cache_timeout": _f("integer"),
        "allow_override": _f("boolean"),
        "default_environment": _f("id", "execution_environments"),
        "signature_validation_credential": _f("id", "credentials"),
    },
    "inventories": {
        **_NAME, "organization": _f("id", "organizations", required=True),
        "kind": _f("choice", choices=("", "smart", "constructed")),
        "host_filter": _f("string"), "variables": _f("json"),
        "prevent_instance_group_fallback": _f("boolean"),
    },
    "inventory_sources": {
        **_NAME,
        "source": _f("choice", choices=("file", "constructed", "scm", "ec2", "gce", "azure_rm",
                                        "vmware", "satellite6", "openstack", "rhv",
                                        "controller", "insights", "terraform",
                                        "openshift_virtualization")),
        "source_path": _f("string"), "source_vars": _f("json"), "scm_branch": _f("string"),
        "credential": _f("integer", "credentials"), "enabled_var": _f("string"),
        "enabled_value": _f("string"), "host_filter": _f("string"),
        "overwrite": _f("boolean"), "overwrite_vars": _f("boolean"), "timeout": _f("integer"),
        "verbosity": _f("choice", choices=(0, 1, 2)), "limit": _f("string"),
        "inventory": _f("id", "inventories", required=True),
        "update_on_launch": _f("boolean"), "update_cache_timeout": _f("integer"),
        "source_project": _f("id", "projects"),
        "execution_environment": _f("id", "execution_environments"),
    },
    "job_templates": {
        **_NAME, "job_type": _f("choice", choices=("run", "check")),
        "inventory": _f("id", "inventories"), "project": _f("id", "projects"),
        "playbook": _f("string"), "scm_branch": _f("string"), "forks": _f("integer"),
        "limit": _f("string"), "verbosity": _f("choice", choices=(0, 1, 2, 3, 4, 5)),
        "extra_vars": _f("json"), "job_tags": _f("string"), "force_handlers": _f("boolean"),
        "skip_tags": _f("string"), "start_at_task": _f("string"), "timeout": _f("integer"),
        "use_fact_cache": _f("boolean"),
        "execution_environment": _f("id", "execution_environments"),
        "host_config_key": _f("string"),
        **{f"ask_{a}_on_launch": _f("boolean") for a in (
            "scm_branch", "diff_mode", "variables", "limit", "tags", "skip_tags", "job_type",
            "verbosity", "inventory", "credential", "execution_environment", "labels", "forks",
            "job_slice_count", "timeout", "instance_groups")},
        "survey_enabled": _f("boolean"), "become_enabled": _f("boolean"),
        "diff_mode": _f("boolean"), "allow_simultaneous": _f("boolean"),
        "job_slice_count": _f("integer"),
        "webhook_service": _f("choice", choices=("", "github", "gitlab", "bitbucket_dc")),
        "webhook_credential": _f("id", "credentials"),
        "prevent_instance_group_fallback": _f("boolean"),
    },
}
#: Sub-lists a job template exposes (``related``), and which of them take {"id": n}.
JT_SUBLISTS = ("credentials", "labels", "instance_groups", "schedules", *_NOTIFY)
#: Managed credential types (awx/main/models/credential/__init__.py): their input fields.
MANAGED_TYPES = {
    ("Machine", "ssh"): ("username", "password", "ssh_key_data", "ssh_public_key_data",
                         "ssh_key_unlock", "become_method", "become_username",
                         "become_password"),
    ("Source Control", "scm"): ("username", "password", "ssh_key_data", "ssh_key_unlock"),
}


@dataclass
class Recorded:
    """One request as awxkit sent it."""

    method: str
    path: str
    query: dict[str, str]
    body: Any


@dataclass
class FakeAwx:
    """AWX's API, in memory. ``project_files``: paths of the project's checkout."""

    project_files: set[str]
    survey_check: Callable[[dict[str, Any]], str | None]
    requests: list[Recorded] = field(default_factory=list)
    objects: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    attached: dict[tuple[str, int, str], list[int]] = field(default_factory=dict)
    surveys: dict[int, dict[str, Any]] = field(default_factory=dict)
    ignored: list[tuple[str, str]] = field(default_factory=list)
    _next_id: int = 1

    def __post_init__(self) -> None:
        for resource in TYPES:
            self.objects.setdefault(resource, {})
        for (name, kind), inputs in MANAGED_TYPES.items():
            self._store("credential_types", {
                "name": name, "description": "", "kind": kind, "managed": True,
                "inputs": {"fields": [{"id": i, "type": "string"} for i in inputs]},
                "injectors": {}})
        default = self._store("organizations", {"name": "Default", "description": ""})
        self._store("inventories", {"name": "floy registry", "organization": default["id"],
                                    "kind": "", "variables": ""})
        self._store("projects", {"name": "floy", "organization": default["id"],
                                 "scm_type": "git", "status": "successful"})

    # -- objects ----------------------------------------------------------------------

    def named(self, resource: str, name: str, organization: str | None = None) -> dict[str, Any]:
        """The one object of ``resource`` with that name (and organization name)."""
        found = [o for o in self.objects[resource].values() if o["name"] == name and (
            organization is None or self._org_name(o) == organization)]
        assert len(found) == 1, (resource, name, organization, found)
        return found[0]

    def _org_name(self, obj: dict[str, Any]) -> str | None:
        org = obj.get("organization")
        return None if org is None else str(self.objects["organizations"][org]["name"])

    def _store(self, resource: str, data: dict[str, Any]) -> dict[str, Any]:
        obj = {**data, "id": self._next_id}
        self._next_id += 1
        self.objects[resource][obj["id"]] = obj
        return obj

    def _render(self, resource: str, obj: dict[str, Any]) -> dict[str, Any]:
        url = f"{API}{resource}/{obj['id']}/"
        related: dict[str, str] = {}
        for name, info in POST_FIELDS.get(resource, {}).items():
            if info.get("target") and obj.get(name) is not None:
                related[name] = f"{API}{info['target']}/{obj[name]}/"
        if obj.get("organization") is not None:  # read-only for job templates, still related
            related["organization"] = f"{API}organizations/{obj['organization']}/"
        if resource == "job_templates":
            related["survey_spec"] = f"{url}survey_spec/"
            related.update({name: f"{url}{name}/" for name in JT_SUBLISTS})
        if resource == "organizations":
            related.update({name: f"{url}{name}/" for name in (*_NOTIFY, "galaxy_credentials")})
        rendered = {k: v for k, v in obj.items() if k not in ("user", "team")}
        if resource == "credentials":  # secrets are never shown (Credential.display_inputs)
            rendered["inputs"] = {k: "$encrypted$" if k in ("ssh_key_data", "db_url") else v
                                  for k, v in obj.get("inputs", {}).items()}
        if resource == "projects":
            rendered.setdefault("status", "successful")
        return {**rendered, "type": TYPES[resource], "url": url, "related": related,
                "summary_fields": {}}

    # -- requests ---------------------------------------------------------------------

    def answer(self, method: str, url: str, body: Any) -> tuple[int, Any, dict[str, str]]:
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        self.requests.append(Recorded(method, parts.path, query, body))
        path = parts.path
        if path == "/api/":
            return 200, {"available_versions": {"v2": API}, "current_version": API}, {}
        if path == API:
            return 200, {k: f"{API}{r}/" for k, r in ROOT.items()}, {}
        match = re.fullmatch(rf"{API}(\w+)/(?:(\d+)/)?(?:(\w+)/)?", path)
        if not match or match.group(1) not in ROOT.values():
            return 404, {"detail": "Not found."}, {}
        resource, ident, sub = match.group(1), match.group(2), match.group(3)
        if resource not in TYPES:  # not modelled: nothing there, nothing to create
            if ident is None and method == "OPTIONS":
                return 200, {"actions": {"POST": {"name": _f("string")}}}, {
                    "Allow": "GET, POST, HEAD, OPTIONS"}
            if ident is None and method == "GET":
                return 200, {"count": 0, "next": None, "previous": None, "results": []}, {}
            return 404, {"detail": "Not found."}, {}
        if ident is None:
            return self._list(method, resource, query, body)
        obj = self.objects[resource].get(int(ident))
        if obj is None:
            return 404, {"detail": "Not found."}, {}
        if sub is None:
            return self._detail(method, resource, obj, body)
        return self._sub(method, resource, obj, sub, body)

    def _list(self, method: str, resource: str, query: dict[str, str],
              body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "OPTIONS":
            fields = {k: {kk: vv for kk, vv in v.items() if kk != "target"}
                      for k, v in POST_FIELDS.get(resource, {"name": _f("string")}).items()}
            return 200, {"actions": {"POST": fields}}, {"Allow": "GET, POST, HEAD, OPTIONS"}
        if method == "GET":
            results = [self._render(resource, o) for o in self.objects[resource].values()
                       if all(str(o.get(k)) == v for k, v in query.items()
                              if k not in ("page_size", "page"))]
            return 200, {"count": len(results), "next": None, "previous": None,
                         "results": results}, {}
        if method == "POST":
            error = self._validate(resource, body, None)
            if error:
                return 400, {"error": error}, {}
            return 201, self._render(resource, self._store(resource, self._clean(resource,
                                                                                  body))), {}
        return 405, {"detail": f"Method {method} not allowed."}, {}

    def _detail(self, method: str, resource: str, obj: dict[str, Any],
                body: Any) -> tuple[int, Any, dict[str, str]]:
        if method == "GET":
            return 200, self._render(resource, obj), {}
        if method in ("PUT", "PATCH"):
            error = self._validate(resource, body, obj)
            if error:
                return 400, {"error": error}, {}
            obj.update(self._clean(resource, body))
            return 200, self._render(resource, obj), {}
        return 405, {"detail": f"Method {method} not allowed."}, {}

    def _sub(self, method: str, resource: str, obj: dict[str, Any], sub: str,
             body: Any) -> tuple[int, Any, dict[str, str]]:
        if resource == "job_templates" and sub == "survey_spec":
            if method == "GET":
                return 200, self.surveys.get(obj["id"], {}), {}
            if method == "POST":
                error = self.survey_check(body)
                if error:
                    return 400, {"error": error}, {}
                self.surveys[obj["id"]] = body
                return 200, {}, {}
        elif (resource, sub) in {("job_templates", s) for s in JT_SUBLISTS} | {
                ("organizations", s) for s in (*_NOTIFY, "galaxy_credentials")}:
            key = (resource, obj["id"], sub)
            target = "credentials" if "credentials" in sub else sub
            if method == "GET":
                results = [self._render(target, self.objects[target][i])
                           for i in self.attached.get(key, [])]
                return 200, {"count": len(results), "next": None, "previous": None,
                             "results": results}, {}
            if method == "POST" and set(body) == {"id"}:
                if body["id"] not in self.objects.get(target, {}):
                    return 400, {"msg": f"no {target} {body['id']}"}, {}
                if sub == "credentials":
                    kind = self._credential_kind(body["id"])
                    if any(self._credential_kind(i) == kind
                           for i in self.attached.get(key, [])):
                        return 400, {"error": f"cannot assign multiple {kind} credentials"}, {}
                self.attached.setdefault(key, []).append(body["id"])
                return 204, None, {}
        return 404, {"detail": "Not found."}, {}

    def _credential_kind(self, ident: int) -> str:
        type_id = self.objects["credentials"][ident]["credential_type"]
        return str(self.objects["credential_types"][type_id]["kind"])

    # -- validation (AWX's serializers, as listed in the module docstring) ------------

    def _clean(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        fields = POST_FIELDS[resource]
        for key in body:
            if key not in fields:
                self.ignored.append((resource, key))
        clean = {k: v for k, v in body.items() if k in fields}
        if resource == "job_templates" and clean.get("project"):  # JobTemplate.save()
            clean["organization"] = self.objects["projects"][clean["project"]]["organization"]
        return clean

    def _validate(self, resource: str, body: Any, existing: dict[str, Any] | None) -> str | None:
        if resource not in POST_FIELDS or not isinstance(body, dict):
            return f"cannot create {resource} here"
        fields = POST_FIELDS[resource]
        merged = {**(existing or {}), **body}
        for name, info in fields.items():
            value = body.get(name)
            if info["required"] and merged.get(name) in (None, ""):
                return f"{resource}: {name}: This field is required."
            if value is None:
                continue
            if info.get("target") and value not in self.objects[info["target"]]:
                return f"{resource}: {name}: no {info['target']} with id {value!r}"
            if "choices" in info and value not in [c for c, _ in info["choices"]]:
                return f"{resource}: {name}: {value!r} is not a valid choice."
            if info["type"] == "json" and isinstance(value, str) and value.strip():
                try:
                    yaml.safe_load(value)
                except yaml.YAMLError as exc:
                    return f"{resource}: {name}: not YAML or JSON: {exc}"
        duplicate = [o for o in self.objects[resource].values()
                     if o["name"] == merged["name"] and o is not existing
                     and o.get("organization") == merged.get("organization")
                     and o.get("inventory") == merged.get("inventory")]
        if duplicate:
            return f"{resource}: {merged['name']!r} already exists."
        check = getattr(self, f"_check_{resource}", None)
        return check(merged) if check else None

    def _check_credentials(self, cred: dict[str, Any]) -> str | None:
        if not any(cred.get(k) for k in ("organization", "user", "team")):
            return "Missing 'user', 'team', or 'organization'."
        ctype = self.objects["credential_types"][cred["credential_type"]]
        allowed = {f["id"] for f in ctype["inputs"].get("fields", [])}
        inputs = cred.get("inputs") or {}
        unknown = set(inputs) - allowed
        if unknown:  # CredentialInputField's schema: additionalProperties false
            return f"inputs: unknown fields {sorted(unknown)}"
        if "$encrypted$" in inputs.values():
            return "inputs: $encrypted$ is a reserved keyword"
        return None

    def _check_job_templates(self, jt: dict[str, Any]) -> str | None:
        if not jt.get("project"):
            return "project: This field is required."
        if jt.get("playbook") not in self.project_files:
            return f"playbook: Playbook not found for project: {jt.get('playbook')!r}"
        extra = jt.get("extra_vars") or ""
        parsed = yaml.safe_load(extra) if isinstance(extra, str) else extra
        if parsed is not None and not isinstance(parsed, dict):
            return "extra_vars: must be a mapping"
        return None

    def _check_inventory_sources(self, src: dict[str, Any]) -> str | None:
        if src.get("source") == "scm":
            if not src.get("source_project"):
                return "source_project: Project required for scm type sources."
            if src.get("source_path") not in self.project_files:
                return f"source_path: not a file of the project: {src.get('source_path')!r}"
        return None


class FakeTransport(BaseAdapter):
    """A requests transport adapter answering from a :class:`FakeAwx`."""

    def __init__(self, awx: FakeAwx) -> None:
        super().__init__()
        self.awx = awx

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        body = json.loads(request.body) if request.body else None
        status, data, headers = self.awx.answer(str(request.method), str(request.url), body)
        response = requests.Response()
        response.status_code = status
        response.headers.update({"Content-Type": "application/json", **headers})
        response._content = b"" if data is None else json.dumps(data).encode()
        response.encoding = "utf-8"
        response.url = str(request.url)
        response.request = request
        response.elapsed = timedelta(0)
        return response

    def close(self) -> None:
        pass


def session_factory(awx: FakeAwx) -> Callable[[], requests.Session]:
    """A stand-in for ``requests.Session`` whose sessions reach only ``awx``."""
    real = requests.Session

    def make() -> requests.Session:
        session = real()
        session.mount("http://", FakeTransport(awx))
        session.mount("https://", FakeTransport(awx))
        return session

    return make


def project_files(root: Path, folders: tuple[str, ...] = ("playbooks", "inventories")) -> set[str]:
    """Paths of the files under ``folders`` of a checkout, as AWX names a project's
    playbooks and inventory files (relative to the project root, POSIX)."""
    return {p.relative_to(root).as_posix() for folder in folders
            for p in (root / folder).rglob("*") if p.is_file()}
