"""AWX job templates and surveys (awx/) agree with the role's meta/argument_specs.yml:
every survey variable is a documented option, of a matching type, with the same required
flag and default, and every required option without a default is asked."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.ecosystem._paths import REPO, argument_specs

AWX = REPO / "awx"
TEMPLATES = ("deploy", "rollback", "probe")
ENTRY_POINT = {"deploy": "main", "rollback": "main", "probe": "probe"}
SURVEY_TYPES = {"text", "textarea", "password", "integer", "float", "multiplechoice",
                "multiselect"}
# Survey question types that can carry each argument_specs type.
COMPATIBLE = {
    "str": {"text", "textarea", "password", "multiplechoice"},
    "path": {"text", "textarea"},
    "int": {"integer"},
    "bool": {"multiplechoice"},
    "raw": {"text", "multiplechoice", "integer"},
}


def _survey(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AWX / "surveys" / f"{name}.json").read_text())
    return data


def _choices(question: dict[str, Any]) -> list[str]:
    choices = question.get("choices", [])
    return choices.split("\n") if isinstance(choices, str) else [str(c) for c in choices]


def _same_default(spec: dict[str, Any], question: dict[str, Any]) -> bool:
    """The survey's default gives the role the value of the spec's default."""
    spec_default, answer = spec["default"], question.get("default", "")
    if spec.get("type") == "bool":
        return str(answer).lower() == str(spec_default).lower()
    if spec.get("type") == "int":
        return isinstance(answer, int) and answer == spec_default
    return str(answer) == str(spec_default)


@pytest.mark.parametrize("name", TEMPLATES)
def test_survey_matches_argument_specs(name: str) -> None:
    survey = _survey(name)
    assert survey["name"] and survey["description"]
    options = argument_specs()[ENTRY_POINT[name]]["options"]
    asked = set()
    for q in survey["spec"]:
        var = q["variable"]
        assert var not in asked, f"{var} asked twice"
        asked.add(var)
        assert q["question_name"] and q["question_description"], var
        assert q["type"] in SURVEY_TYPES, var
        assert var in options, f"{var} is not an option of the role"
        spec = options[var]
        assert q["type"] in COMPATIBLE[spec.get("type", "str")], var
        assert bool(q["required"]) == bool(spec.get("required", False)), var
        if not spec.get("required"):
            assert _same_default(spec, q), var
        if q["type"] in {"multiplechoice", "multiselect"}:
            choices = _choices(q)
            assert str(q["default"]) in choices, var
            if spec.get("type") == "bool":
                assert set(choices) == {"true", "false"}, var
        if q["type"] == "integer":
            assert q["min"] <= q["default"] <= q["max"], var
    required = {k for k, v in options.items() if v.get("required") and "default" not in v}
    assert required <= asked
    # Never ask for connection or privilege variables (DESIGN.md section 5).
    assert all(v.startswith("floy_") for v in asked)


def test_batch_size_choices() -> None:
    for name in ("deploy", "rollback"):
        (question,) = [q for q in _survey(name)["spec"] if q["variable"] == "floy_batch_size"]
        assert _choices(question) == ["1", "2", "5", "10%", "25%", "50%", "100%"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_job_template_runs_an_existing_playbook_with_its_survey(name: str) -> None:
    template = json.loads((AWX / "job_templates" / f"{name}.json").read_text())
    assert template["playbook"] == f"playbooks/{name}.yml"
    assert (REPO / template["playbook"]).is_file()
    assert template["survey_enabled"] is True and template["job_type"] == "run"
    assert not template["ask_variables_on_launch"]  # only surveyed variables come in


def test_requirements_point_at_the_in_repo_collection() -> None:
    import yaml

    data = yaml.safe_load((REPO / "collections" / "requirements.yml").read_text())
    (entry,) = data["collections"]
    assert entry["type"] == "dir"
    assert (REPO / entry["name"] / "galaxy.yml").is_file()
    assert Path(entry["name"]).parts[0] in {".", "collections"}
