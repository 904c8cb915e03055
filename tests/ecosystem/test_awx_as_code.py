"""AWX as code, checked offline with AWX's own tools and rules.

1. ``awx/configure.yml`` against the awx.awx modules' own argument specs. How: the real
   playbook runs under real ``ansible-playbook`` (so Ansible renders every argument: vars,
   lookups, ``from_json``, ``!unsafe``, loops) against a copy of awx.awx 24.6.1 (from the
   ``ansible`` wheel on PyPI, tests/ecosystem/_awx.py) in which one thing differs: the
   constructor of ``ControllerAPIModule``. Each module's ``main()`` builds its
   ``argument_spec`` as usual and hands it, with the collection's AUTH_ARGSPEC and the
   module's mutually-exclusive/required-if rules, to ansible-core's ``AnsibleModule``, which
   validates the arguments exactly as on a controller (unknown options, types, choices,
   aliases, required ones); the stub then records the validated parameters and exits before
   any HTTP request. The same idea as ansible-test validate-modules, which patches
   ``AnsibleModule.__init__`` to capture the spec ``main()`` builds, but with the values
   Ansible actually passes, not only the option names. A deliberately wrong task fails.
2. ``awx/export/floy.json`` read by awxkit's own ``awx import`` (the CLI, in-process), its
   HTTP requests answered by an in-memory AWX behind a requests transport adapter
   (tests/ecosystem/_fake_awx.py, whose fields and checks are AWX's serializers').
3. The surveys against AWX's survey rules, ported below from AWX's source (commit e21dd0a):
   ``JobTemplateSurveySpec._validate_spec_data`` (awx/api/views/__init__.py), the rules a
   survey spec must pass to be saved, and
   ``SurveyJobTemplateMixin._survey_element_validation`` (awx/main/models/mixins.py), the
   rules an answer (and a default, in ``_update_unified_job_kwargs``) must pass at launch;
   ``SURVEY_TYPE_MAPPING`` is awx/main/constants.py's.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from scripts.gen_awx_export import configure_tasks
from tests.ecosystem._fake_awx import POST_FIELDS, FakeAwx, project_files, session_factory
from tests.ecosystem._paths import REPO, VENV_BIN

AWX = REPO / "awx"
TEMPLATES = ("deploy", "rollback", "probe", "promote")
EXPORT = AWX / "export" / "floy.json"
SETTINGS: dict[str, Any] = yaml.safe_load((AWX / "vars.example.yml").read_text())
ORG = SETTINGS["floy_awx_organization"]

# -- 1. configure.yml against the awx.awx modules' argument specs ----------------------

#: Appended to the copy of awx.awx's plugins/module_utils/controller_api.py.
STUB = '''

# --- tests/ecosystem/test_awx_as_code.py: validate the arguments, record them, never connect.
def _floy_validate_and_record(self, argument_spec=None, direct_params=None,
                              error_callback=None, warn_callback=None, **kwargs):
    import json as _json
    full_argspec = dict(ControllerModule.AUTH_ARGSPEC)
    full_argspec.update(argument_spec)
    kwargs['supports_check_mode'] = True
    AnsibleModule.__init__(self, argument_spec=full_argspec, **kwargs)
    with open(environ['FLOY_AWX_RECORD'], 'a') as record:
        record.write(_json.dumps({'module': self._name, 'params': self.params}) + '\\n')
    self.exit_json(changed=False)


ControllerAPIModule.__init__ = _floy_validate_and_record
'''


@pytest.fixture(scope="module")
def stub_collections(awx_collections: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("awx-stub")
    shutil.copytree(awx_collections / "ansible_collections", root / "ansible_collections")
    api = root / "ansible_collections/awx/awx/plugins/module_utils/controller_api.py"
    source = api.read_text()
    assert "class ControllerAPIModule(ControllerModule):" in source
    api.write_text(source + STUB)
    return root


def _play(stub: Path, workdir: Path, playbook: Path, *args: str) -> tuple[
        subprocess.CompletedProcess[str], list[dict[str, Any]]]:
    """Run ``playbook`` with the stubbed awx.awx; the output and each module's parameters."""
    key = workdir / "id_ed25519"
    if not key.exists():
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)],
                       check=True, timeout=30)
    record = workdir / "record.jsonl"
    record.unlink(missing_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ANSIBLE_", "CONTROLLER_"))}
    env.update({
        "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
        "ANSIBLE_COLLECTIONS_PATH": str(stub),
        "ANSIBLE_COLLECTIONS_SCAN_SYS_PATH": "false",
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(workdir / "tmp"),
        "CONTROLLER_HOST": "https://awx.example.invalid",
        "CONTROLLER_OAUTH_TOKEN": "not-a-token",
        "FLOY_AWX_SSH_KEY_FILE": str(key),
        "FLOY_DB_URL": "sqlite:////var/lib/floy/floy.db",
        "FLOY_AWX_RECORD": str(record),
    })
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", "localhost,", str(playbook), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=180,
    )
    calls = [json.loads(line) for line in record.read_text().splitlines()] \
        if record.exists() else []
    return proc, calls


@pytest.fixture(scope="module")
def configure_calls(stub_collections: Path, tmp_path_factory: pytest.TempPathFactory
                    ) -> list[dict[str, Any]]:
    """The validated parameters of every awx.awx task of configure.yml, in order."""
    proc, calls = _play(stub_collections, tmp_path_factory.mktemp("configure"),
                        AWX / "configure.yml", "-e", f"@{AWX / 'vars.example.yml'}")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return calls


def _params(calls: list[dict[str, Any]], module: str) -> list[dict[str, Any]]:
    return [c["params"] for c in calls if c["module"] == f"awx.awx.{module}"]


def test_every_task_passes_its_modules_argument_spec(configure_calls: list[dict[str, Any]]
                                                     ) -> None:
    """Every awx.awx task ran (none skipped) and its arguments were accepted."""
    expected = []
    for task in configure_tasks():
        module = next((k for k in task if k.startswith("awx.awx.")), None)
        if module:  # the job template task loops over the three templates
            expected += [module] * (len(TEMPLATES) if "loop" in task else 1)
    assert [c["module"] for c in configure_calls] == expected
    assert all(c["params"]["state"] == "present" for c in configure_calls)


def test_a_wrong_argument_is_refused(stub_collections: Path, tmp_path: Path) -> None:
    """The check has teeth: what the issue found in awx/job_templates/*.json (extra_vars as a
    YAML string, a playbook option the module does not have) fails, and nothing records."""
    playbook = tmp_path / "wrong.yml"
    playbook.write_text(yaml.safe_dump([{
        "name": "Wrong", "hosts": "localhost", "connection": "local", "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "tasks": [
            {"name": "Extra vars as a string", "ignore_errors": True, "awx.awx.job_template": {
                "name": "x", "extra_vars": "---\nfloy_deploy_id: awx\n"}},
            {"name": "Unknown option", "ignore_errors": True, "awx.awx.inventory": {
                "name": "x", "organization": "o", "sources": []}},
            {"name": "Choice", "ignore_errors": True, "awx.awx.inventory_source": {
                "name": "x", "inventory": "i", "source": "file"}},
        ]}]))
    proc, calls = _play(stub_collections, tmp_path, playbook)
    out = proc.stdout
    assert calls == [], calls
    assert "dictionary requested, could not parse JSON or key=value" in out, out
    assert "Unsupported parameters for (awx.awx.inventory) module: sources" in out, out
    assert "value of source must be one of" in out, out


#: Module options naming another object, and how each module looks the name up
#: (awx.awx 24.6.1, plugins/modules/<module>.py): "org" when the module searches inside the
#: ``organization`` option's organization; "global" when it calls resolve_name_to_id(),
#: which searches all of AWX unless the value is a named URL (``get_one`` in
#: plugins/module_utils/controller_api.py tries ``<endpoint>/<named URL>/`` first).
REFERENCES = {
    ("credential", "organization"): "org-itself",
    ("credential", "credential_type"): "global-type",
    ("project", "organization"): "org-itself",
    ("project", "credential"): "global",
    ("inventory", "organization"): "org-itself",
    ("inventory_source", "organization"): "org-itself",
    ("inventory_source", "inventory"): "org",
    ("inventory_source", "source_project"): "org",
    ("inventory_source", "credential"): "global",
    ("job_template", "organization"): "org-itself",
    ("job_template", "project"): "org",
    ("job_template", "inventory"): "global",
    ("job_template", "credentials"): "global",
}
#: AWX's NAMED_URL_FORMATS (docs/named_url.md) for the globally looked-up references.
NAMED_URL = {
    "inventory": "{name}++{org}",
    "credentials": "{name}++{type}+{kind}++{org}",
    "credential": "{name}++{type}+{kind}++{org}",
}


def test_every_reference_is_looked_up_in_the_organization(
        configure_calls: list[dict[str, Any]]) -> None:
    for call in configure_calls:
        module = call["module"].removeprefix("awx.awx.")
        params = call["params"]
        for (mod, option), how in REFERENCES.items():
            value = params.get(option) if mod == module else None
            if value is None:
                continue
            if how == "org-itself":
                assert value == ORG, (module, option, value)
            elif how == "org":
                assert params["organization"] == ORG, (module, option)
            elif how == "global-type":  # credential types are global: name and kind unique
                assert value in ("Machine", SETTINGS["floy_awx_store_credential_type"])
            else:
                for ref in value if isinstance(value, list) else [value]:
                    parts = ref.split("++")
                    assert len(parts) >= 2 and parts[-1] == ORG, (module, option, ref)
    jts = _params(configure_calls, "job_template")
    machine = NAMED_URL["credentials"].format(
        name=SETTINGS["floy_awx_machine_credential"], type="Machine", kind="ssh", org=ORG)
    inventory = NAMED_URL["inventory"].format(name=SETTINGS["floy_awx_inventory"], org=ORG)
    assert all(jt["credentials"] == [machine] and jt["inventory"] == inventory for jt in jts)
    (source,) = _params(configure_calls, "inventory_source")
    assert source["credential"] == NAMED_URL["credential"].format(
        name=SETTINGS["floy_awx_store_credential"],
        type=SETTINGS["floy_awx_store_credential_type"], kind="cloud", org=ORG)


def test_job_templates_are_the_json_ones_with_their_surveys(
        configure_calls: list[dict[str, Any]]) -> None:
    jts = {jt["playbook"]: jt for jt in _params(configure_calls, "job_template")}
    for name in TEMPLATES:
        expected = json.loads((AWX / "job_templates" / f"{name}.json").read_text())
        jt = jts[expected["playbook"]]
        for key, value in expected.items():
            if key == "extra_vars":
                assert jt[key] == (yaml.safe_load(value) or {}), name
            elif key == "inventory":
                assert jt[key] == f"{value}++{ORG}", name
            else:
                assert jt[key] == value, (name, key)
        assert jt["survey_spec"] == json.loads((AWX / "surveys" / f"{name}.json").read_text())
        # AWX fills in awx_job_id when the job runs: configure.yml must pass it unrendered.
        if "floy_deploy_id" in expected["extra_vars"]:
            assert jt["extra_vars"]["floy_deploy_id"] == "awx-{{ awx_job_id }}"
        if name == "promote":
            assert jt["extra_vars"]["floy_promote_by"] == (
                "{{ awx_user_name | default('AWX') }}, AWX job {{ awx_job_id }}")


def test_inventory_source_reads_floys_registry(configure_calls: list[dict[str, Any]]) -> None:
    (source,) = _params(configure_calls, "inventory_source")
    assert source["source"] == "scm" and source["source_project"] == SETTINGS["floy_awx_project"]
    path = REPO / source["source_path"]
    assert path.name.endswith("floy.yml")  # the plugin's verify_file
    assert yaml.safe_load(path.read_text()) == {"plugin": "floy.release.floy"}
    (ctype,) = _params(configure_calls, "credential_type")
    assert ctype["kind"] == "cloud"  # AWX lets an scm inventory source take a cloud credential
    assert ctype["injectors"] == {"env": {"FLOY_DB_URL": "{{ db_url }}"}}
    store = next(c for c in _params(configure_calls, "credential")
                 if c["credential_type"] == ctype["name"])
    assert store["inputs"] == {"db_url": "sqlite:////var/lib/floy/floy.db"}
    (project,) = _params(configure_calls, "project")
    assert project["scm_type"] == "git" and project["scm_update_on_launch"] is True


# -- 2. the export, read by awxkit's `awx import` --------------------------------------


def test_export_is_generated_from_the_sources() -> None:
    proc = subprocess.run([str(VENV_BIN / "python"), "scripts/gen_awx_export.py", "--check"],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def _import(awx: FakeAwx, monkeypatch: pytest.MonkeyPatch) -> int:
    """``awx --conf.host … --conf.token … import < awx/export/floy.json``, in-process."""
    import awxkit.api.client
    from awxkit.cli.client import CLI

    monkeypatch.setattr(awxkit.api.client.requests, "Session", session_factory(awx))
    argv = ["awx", "--conf.host", "https://awx.example.invalid", "--conf.token", "t", "import"]
    monkeypatch.setattr(sys, "argv", argv)  # awxkit's resource parser reads sys.argv
    out, err = io.StringIO(), io.StringIO()
    with EXPORT.open() as stdin:
        cli = CLI(stdout=out, stderr=err, stdin=stdin)
        cli.parse_args(argv)
        cli.connect()
        with pytest.raises(SystemExit) as exited:
            cli.parse_resource()
    assert not getattr(cli.v2, "_has_error", False), out.getvalue() + err.getvalue()
    return int(exited.value.code or 0)


@pytest.fixture
def fake_awx() -> FakeAwx:
    return FakeAwx(project_files=project_files(REPO), survey_check=survey_spec_error)


def test_awx_import_creates_the_objects_and_their_relations(
        fake_awx: FakeAwx, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    assert _import(fake_awx, monkeypatch) == 0
    assert not [r for r in caplog.records if r.levelname == "ERROR"], caplog.text
    assert fake_awx.ignored == []
    awx = fake_awx
    org = awx.named("organizations", ORG)
    store_type = awx.named("credential_types", SETTINGS["floy_awx_store_credential_type"])
    assert store_type["kind"] == "cloud"
    assert store_type["injectors"] == {"env": {"FLOY_DB_URL": "{{ db_url }}"}}
    machine_type = awx.named("credential_types", "Machine")
    store = awx.named("credentials", SETTINGS["floy_awx_store_credential"])
    machine = awx.named("credentials", SETTINGS["floy_awx_machine_credential"])
    assert (store["organization"], store["credential_type"]) == (org["id"], store_type["id"])
    assert (machine["organization"], machine["credential_type"]) == (
        org["id"], machine_type["id"])
    # secrets are not in the export ("$encrypted$"): awxkit sends them empty, the admin sets them
    assert store["inputs"] == {"db_url": ""}
    assert machine["inputs"] == {"username": SETTINGS["floy_awx_machine_username"],
                                 "ssh_key_data": ""}
    project = awx.named("projects", SETTINGS["floy_awx_project"], ORG)
    assert project["scm_url"] == SETTINGS["floy_awx_scm_url"] and project["scm_type"] == "git"
    inventory = awx.named("inventories", SETTINGS["floy_awx_inventory"], ORG)
    (source,) = awx.objects["inventory_sources"].values()
    assert (source["inventory"], source["source_project"], source["credential"]) == (
        inventory["id"], project["id"], store["id"])
    assert source["source_path"] == SETTINGS["floy_awx_inventory_source_path"]
    jts = {jt["playbook"]: jt for jt in awx.objects["job_templates"].values()}
    assert sorted(jts) == [f"playbooks/{n}.yml" for n in sorted(TEMPLATES)]
    for name in TEMPLATES:
        jt = jts[f"playbooks/{name}.yml"]
        # bound to floy's organization's objects, not Default's of the same names
        assert (jt["inventory"], jt["project"]) == (inventory["id"], project["id"])
        assert awx.attached[("job_templates", jt["id"], "credentials")] == [machine["id"]]
        assert awx.surveys[jt["id"]] == json.loads((AWX / "surveys" / f"{name}.json").read_text())
        expected = json.loads((AWX / "job_templates" / f"{name}.json").read_text())
        assert jt["extra_vars"] == expected["extra_vars"]
        assert jt["survey_enabled"] is True
        # a limit could leave promote.yml no instance to read floy_promote_host from
        assert jt["ask_limit_on_launch"] is (name != "promote")


def test_awx_import_twice_changes_nothing_more(fake_awx: FakeAwx,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    assert _import(fake_awx, monkeypatch) == 0
    first = json.dumps(fake_awx.objects, sort_keys=True), dict(fake_awx.attached)
    start = len(fake_awx.requests)
    assert _import(fake_awx, monkeypatch) == 0
    assert (json.dumps(fake_awx.objects, sort_keys=True), dict(fake_awx.attached)) == first
    again = fake_awx.requests[start:]
    # updated in place, nothing created again
    assert {r.path for r in again if r.method == "PUT"} >= {
        f"/api/v2/job_templates/{i}/" for i in fake_awx.objects["job_templates"]}
    assert not [r.path for r in again if r.method == "POST" and r.path.count("/") == 4]


def test_export_fields_are_all_post_fields() -> None:
    """awx import silently drops a field the API does not take: none may be misspelt."""
    data = json.loads(EXPORT.read_text())
    resources = {"inventory": "inventories"}
    for key, assets in data.items():
        fields = POST_FIELDS[resources.get(key, key)]
        for asset in assets:
            assert set(asset) - {"related", "natural_key"} <= set(fields), (key, asset["name"])
            for name, info in fields.items():
                if info.get("target") and isinstance(asset.get(name), dict):
                    assert asset[name]["type"] in ("organization", "credential_type",
                                                   "credential", "project", "inventory",
                                                   "execution_environment"), name


def test_export_and_configure_describe_the_same_objects(
        configure_calls: list[dict[str, Any]]) -> None:
    data = json.loads(EXPORT.read_text())
    pairs = [("organizations", "organization"), ("credential_types", "credential_type"),
             ("projects", "project"), ("inventory", "inventory"),
             ("inventory_sources", "inventory_source"), ("job_templates", "job_template")]
    for key, module in pairs:
        exported = {a["name"]: a for a in data[key]}
        for params in _params(configure_calls, module):
            asset = exported[params["name"]]
            for field, value in asset.items():
                if field in params and params[field] is not None and field not in (
                        "organization", "inventory", "project", "source_project",
                        "credential", "extra_vars", "variables"):
                    assert params[field] == value, (module, params["name"], field)
            if module == "job_template":
                assert params["survey_spec"] == asset["related"]["survey_spec"]
                assert params["extra_vars"] == (yaml.safe_load(asset["extra_vars"]) or {})


# -- 3. the surveys against AWX's survey rules ------------------------------------------

#: awx/main/constants.py
SURVEY_TYPE_MAPPING: dict[str, type | tuple[type, ...]] = {
    "text": str, "textarea": str, "password": str, "multiplechoice": str, "multiselect": str,
    "integer": int, "float": (float, int)}


def _choices(item: dict[str, Any]) -> list[str]:
    choices = item["choices"]
    if isinstance(choices, str):
        return [c for c in choices.splitlines() if c.strip() != ""]
    return list(choices)


def survey_spec_error(spec: Any) -> str | None:
    """``JobTemplateSurveySpec._validate_spec_data`` for a new spec (no old one): None when
    AWX saves it, else the reason it answers 400. One deliberate difference: a default must
    be one of the choices, not a substring of their newline-joined text as AWX checks it."""
    if not isinstance(spec, dict):
        return "spec is not an object"
    for key, kind in (("name", str), ("description", str), ("spec", list)):
        if key not in spec:
            return f"Field '{key}' is missing from survey spec."
        if not isinstance(spec[key], kind):
            return f"Expected {kind.__name__} for field '{key}'."
    if len(spec["spec"]) < 1:
        return "'spec' doesn't contain any items."
    variables: set[str] = set()
    for idx, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            return f"Survey question {idx} is not a json object."
        for key in ("type", "question_name", "variable", "required"):
            if key not in item:
                return f"'{key}' missing from survey question {idx}"
            if not isinstance(item[key], bool if key == "required" else str):
                return f"'{key}' in survey question {idx} has the wrong type."
        if item["variable"] in variables:
            return f"'variable' '{item['variable']}' duplicated in survey question {idx}."
        variables.add(item["variable"])
        qtype = item["type"]
        if qtype not in SURVEY_TYPE_MAPPING:
            return f"'{qtype}' in survey question {idx} is not an allowed question type."
        if "default" in item and item["default"] != "" and \
                not isinstance(item["default"], SURVEY_TYPE_MAPPING[qtype]):
            return f"Default value {item['default']!r} in survey question {idx} has the wrong type."
        for key in ("min", "max"):
            if key in item and item[key] is not None and not isinstance(item[key], int):
                return f"The {key} limit in survey question {idx} expected to be integer."
        if qtype in ("multiselect", "multiplechoice"):
            if "choices" not in item:
                return f"Survey question {idx} of type {qtype} must specify choices."
            if "default" in item:
                default = item["default"]
                defaults = [d for d in default.splitlines() if d.strip() != ""] \
                    if isinstance(default, str) else default
                if qtype == "multiplechoice" and len(defaults) > 1:
                    return "Multiple Choice (Single Select) can only have one default value."
                if any(d not in _choices(item) for d in defaults):
                    return "Default choice must be answered from the choices listed."
        default = item.get("default")
        if isinstance(default, str) and default.startswith("$encrypted$"):
            return "$encrypted$ is a reserved keyword (no old spec to take it from)."
    return None


def answer_errors(item: dict[str, Any], data: dict[str, Any]) -> list[str]:
    """``SurveyJobTemplateMixin._survey_element_validation`` (validate_required=True)."""
    var, qtype = item["variable"], item["type"]
    if var not in data:
        return [f"'{var}' value missing"] if item["required"] else []
    value, errors = data[var], []

    def bound(key: str) -> Any:
        return item.get(key) if item.get(key) not in ("", None) else None

    if qtype in ("textarea", "text", "password"):
        if not isinstance(value, str):
            return [f"Value {value} for '{var}' expected to be a string."]
        if bound("min") is not None and len(value) < int(item["min"]):
            errors.append(f"'{var}' value {value} is too small")
        if bound("max") is not None and len(value) > int(item["max"]):
            errors.append(f"'{var}' value {value} is too large")
    elif qtype == "integer":
        if type(value) is not int:
            return [f"Value {value} for '{var}' expected to be an integer."]
        if bound("min") is not None and value < int(item["min"]):
            errors.append(f"'{var}' value {value} is too small")
        if bound("max") is not None and value > int(item["max"]):
            errors.append(f"'{var}' value {value} is too large")
    elif qtype == "float":
        if type(value) not in (float, int):
            return [f"Value {value} for '{var}' expected to be a numeric type."]
        if bound("min") is not None and value < float(item["min"]):
            errors.append(f"'{var}' value {value} is too small")
        if bound("max") is not None and value > float(item["max"]):
            errors.append(f"'{var}' value {value} is too large")
    elif qtype == "multiselect":
        if not isinstance(value, list):
            return [f"'{var}' value is expected to be a list."]
        errors += [f"Value {v} for '{var}' expected to be one of {_choices(item)}."
                   for v in value if v not in _choices(item)]
    elif qtype == "multiplechoice" and value not in _choices(item):
        errors.append(f"Value {value} for '{var}' expected to be one of {_choices(item)}.")
    return errors


def _survey(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AWX / "surveys" / f"{name}.json").read_text())
    return data


@pytest.mark.parametrize("name", TEMPLATES)
def test_survey_is_saved_by_awx(name: str) -> None:
    assert survey_spec_error(_survey(name)) is None


@pytest.mark.parametrize("name", TEMPLATES)
def test_survey_defaults_pass_awxs_launch_rules(name: str) -> None:
    """An unanswered question gets its default only if the default passes the answer rules
    (``_update_unified_job_kwargs`` silently drops one that does not), so every optional
    question's default must; a required question may have no default ("") but no other."""
    for item in _survey(name)["spec"]:
        var = item["variable"]
        if item["required"] and item.get("default", "") == "":
            assert answer_errors(item, {}) == [f"'{var}' value missing"]
            continue
        assert "default" in item, var
        assert answer_errors(item, {var: item["default"]}) == [], var
        if item["type"] in ("integer", "float"):
            assert isinstance(item.get("min"), int) and isinstance(item.get("max"), int), var
            assert item["min"] <= item["default"] <= item["max"], var


@pytest.mark.parametrize("name", TEMPLATES)
def test_survey_is_stored_as_written(name: str) -> None:
    """AWX rewrites choices and defaults of choice questions without blank lines before
    storing them: written that way already, what AWX stores is the file."""
    for item in _survey(name)["spec"]:
        if item["type"] in ("multiplechoice", "multiselect"):
            choices = item["choices"]
            if isinstance(choices, str):
                assert choices == "\n".join(_choices(item)), item["variable"]
            if isinstance(item.get("default"), str):
                assert item["default"] == item["default"].strip(), item["variable"]


def test_the_survey_rules_refuse_what_awx_refuses() -> None:
    """The ported rules are not vacuous: each breaks one rule of AWX's."""
    good: dict[str, Any] = {"type": "integer", "question_name": "N", "variable": "n",
                            "required": False, "default": 1, "min": 0, "max": 5}
    choice: dict[str, Any] = {"type": "multiplechoice", "question_name": "C", "variable": "c",
                              "required": False, "default": "1", "choices": "1\n2"}

    def spec(*items: dict[str, Any]) -> dict[str, Any]:
        return {"name": "s", "description": "", "spec": list(items)}

    assert survey_spec_error(spec(good, choice)) is None
    assert survey_spec_error({"name": "s", "spec": [good]}) is not None
    assert survey_spec_error(spec()) is not None
    assert survey_spec_error(spec({**good, "type": "number"})) is not None
    assert survey_spec_error(spec({**good, "default": "1"})) is not None
    assert survey_spec_error(spec({**good, "required": "false"})) is not None
    assert survey_spec_error(spec({**good, "max": "5"})) is not None
    assert survey_spec_error(spec(good, good)) is not None
    assert survey_spec_error(spec({k: v for k, v in choice.items() if k != "choices"}))
    assert survey_spec_error(spec({**choice, "default": "3"})) is not None
    assert survey_spec_error(spec({**choice, "default": "1\n2"})) is not None
    assert answer_errors(good, {"n": 6}) and answer_errors(good, {"n": "1"})
    assert answer_errors({**choice, "choices": "10%\n2"}, {"c": "1"})
    assert answer_errors({"type": "text", "variable": "t", "required": True, "min": 1}, {"t": ""})
