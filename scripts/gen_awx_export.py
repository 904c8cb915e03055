"""Write awx/export/floy.json: floy's AWX objects in the format of ``awx export``.

``awx import < awx/export/floy.json`` (awxkit's CLI) creates the same objects as
``awx/configure.yml``: the organization, the "floy store" credential type and credential,
the Machine credential, the project, the inventory and its source, and the job templates
deploy, rollback, probe and promote with their surveys. Nothing is written by hand twice: the names
and settings come from awx/vars.example.yml, the job templates from awx/job_templates/,
the surveys from awx/surveys/, and the credential type from configure.yml's own task.
References are awxkit natural keys (``{"name": ..., "organization": {...}, "type": ...}``),
which ``awx import`` resolves inside the organization. Secret inputs are ``$encrypted$``, as
``awx export`` writes them: the importer leaves them out, and the admin sets them afterwards.

    python scripts/gen_awx_export.py          # rewrite awx/export/floy.json
    python scripts/gen_awx_export.py --check  # fail if it is out of date (tests/ecosystem)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
AWX = REPO / "awx"
EXPORT = AWX / "export" / "floy.json"
TEMPLATES = ("deploy", "rollback", "probe", "promote")
#: What ``awx export`` writes in place of a secret input.
ENCRYPTED = "$encrypted$"
#: AWX's managed credential types the objects refer to: (name, kind).
MACHINE = ("Machine", "ssh")
SOURCE_CONTROL = ("Source Control", "scm")


class _Loader(yaml.SafeLoader):
    """YAML of a playbook: ``!unsafe`` strings read as the plain strings they are."""


_Loader.add_constructor("!unsafe", lambda loader, node: loader.construct_scalar(node))


def configure_tasks() -> list[dict[str, Any]]:
    """The tasks of awx/configure.yml, parsed (templates left as they are)."""
    (play,) = yaml.load((AWX / "configure.yml").read_text(encoding="utf-8"), Loader=_Loader)
    tasks: list[dict[str, Any]] = play["tasks"]
    return tasks


def _task_args(module: str) -> dict[str, Any]:
    """The arguments of configure.yml's one task of ``awx.awx.<module>``."""
    (args,) = [t[f"awx.awx.{module}"] for t in configure_tasks() if f"awx.awx.{module}" in t]
    return dict(args)


def _key(type_: str, **fields: Any) -> dict[str, Any]:
    """An awxkit natural key: the object's identifying fields and its type."""
    return {**fields, "type": type_}


def _credential_type_key(name: str, kind: str) -> dict[str, Any]:
    return _key("credential_type", name=name, kind=kind)


def build(settings: dict[str, Any]) -> dict[str, Any]:
    """The export for awx/vars.example.yml's ``settings``."""
    org = _key("organization", name=settings["floy_awx_organization"])
    ee = settings.get("floy_awx_execution_environment") or None
    store_type = _credential_type_key(settings["floy_awx_store_credential_type"], "cloud")
    store = _key("credential", organization=org, name=settings["floy_awx_store_credential"],
                 credential_type=store_type)
    machine = _key("credential", organization=org, name=settings["floy_awx_machine_credential"],
                   credential_type=_credential_type_key(*MACHINE))
    scm_name = settings.get("floy_awx_scm_credential") or None
    scm = scm_name and _key("credential", organization=org, name=scm_name,
                            credential_type=_credential_type_key(*SOURCE_CONTROL))
    project = _key("project", organization=org, name=settings["floy_awx_project"])
    inventory = _key("inventory", organization=org, name=settings["floy_awx_inventory"])
    source = _key("inventory_source", name=settings["floy_awx_inventory_source"],
                  inventory=inventory)

    type_args = _task_args("credential_type")
    variables = settings.get("floy_awx_inventory_variables") or {}

    job_templates = []
    for name in TEMPLATES:
        template = json.loads((AWX / "job_templates" / f"{name}.json").read_text("utf-8"))
        survey = json.loads((AWX / "surveys" / f"{name}.json").read_text("utf-8"))
        fields = {k: v for k, v in template.items() if k not in ("inventory", "project")}
        job_templates.append({
            **JOB_TEMPLATE_DEFAULTS, **fields, "inventory": inventory, "project": project,
            "related": {"credentials": [machine], "survey_spec": survey},
            "natural_key": _key("job_template", organization=org, name=template["name"]),
        })

    return {
        "organizations": [{
            "name": org["name"],
            "description": _task_args("organization")["description"],
            "max_hosts": 0,
            "default_environment": ee and _key("execution_environment", name=ee),
            "natural_key": org,
        }],
        "credential_types": [{
            "name": store_type["name"],
            "description": type_args["description"],
            "kind": "cloud",
            "inputs": type_args["inputs"],
            "injectors": type_args["injectors"],
            "natural_key": store_type,
        }],
        "credentials": [
            {"name": store["name"], "description": "", "organization": org,
             "credential_type": store_type, "inputs": {"db_url": ENCRYPTED},
             "natural_key": store},
            {"name": machine["name"], "description": "", "organization": org,
             "credential_type": machine["credential_type"],
             "inputs": {"username": settings["floy_awx_machine_username"],
                        "ssh_key_data": ENCRYPTED},
             "natural_key": machine},
        ],
        "projects": [{
            "name": project["name"],
            "description": _task_args("project")["description"],
            "scm_type": "git",
            "scm_url": settings["floy_awx_scm_url"],
            "scm_branch": settings["floy_awx_scm_branch"],
            "scm_refspec": "",
            "scm_clean": True,
            "scm_track_submodules": False,
            "scm_delete_on_update": False,
            "credential": scm,
            "timeout": 0,
            "organization": org,
            "scm_update_on_launch": True,
            "scm_update_cache_timeout": 0,
            "allow_override": False,
            "default_environment": None,
            "signature_validation_credential": None,
            "natural_key": project,
        }],
        "inventory": [{
            "name": inventory["name"],
            "description": _task_args("inventory")["description"],
            "organization": org,
            "kind": "",
            "host_filter": None,
            "variables": yaml.safe_dump(variables, sort_keys=False) if variables else "",
            "prevent_instance_group_fallback": False,
            "natural_key": inventory,
        }],
        "inventory_sources": [{
            "name": source["name"],
            "description": "",
            "source": "scm",
            "source_path": settings["floy_awx_inventory_source_path"],
            "source_vars": "",
            "scm_branch": "",
            "credential": store,
            "enabled_var": "",
            "enabled_value": "",
            "host_filter": "",
            "overwrite": True,
            "overwrite_vars": True,
            "timeout": 0,
            "verbosity": 1,
            "limit": "",
            "inventory": inventory,
            "update_on_launch": True,
            "update_cache_timeout": 0,
            "source_project": project,
            "execution_environment": None,
            "natural_key": source,
        }],
        "job_templates": job_templates,
    }


#: Job template fields the JSON of awx/job_templates/ leaves at AWX's defaults, written out
#: as ``awx export`` does (an import PUTs every field of an object that already exists).
JOB_TEMPLATE_DEFAULTS: dict[str, Any] = {
    "scm_branch": "",
    "limit": "",
    "job_tags": "",
    "force_handlers": False,
    "skip_tags": "",
    "start_at_task": "",
    "execution_environment": None,
    "host_config_key": "",
    "ask_scm_branch_on_launch": False,
    "ask_diff_mode_on_launch": False,
    "ask_tags_on_launch": False,
    "ask_skip_tags_on_launch": False,
    "ask_job_type_on_launch": False,
    "ask_verbosity_on_launch": False,
    "ask_inventory_on_launch": False,
    "ask_credential_on_launch": False,
    "ask_execution_environment_on_launch": False,
    "ask_labels_on_launch": False,
    "ask_forks_on_launch": False,
    "ask_job_slice_count_on_launch": False,
    "ask_timeout_on_launch": False,
    "ask_instance_groups_on_launch": False,
    "diff_mode": False,
    "job_slice_count": 1,
    "webhook_service": "",
    "webhook_credential": None,
    "prevent_instance_group_fallback": False,
}


def render() -> str:
    """The export file's text."""
    settings = yaml.safe_load((AWX / "vars.example.yml").read_text(encoding="utf-8"))
    return json.dumps(build(settings), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Rewrite or check the export; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the export is stale")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not EXPORT.is_file() or EXPORT.read_text(encoding="utf-8") != text:
            print(f"{EXPORT.relative_to(REPO)} is out of date: run "
                  "python scripts/gen_awx_export.py", file=sys.stderr)
            return 1
        return 0
    EXPORT.parent.mkdir(exist_ok=True)
    EXPORT.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
