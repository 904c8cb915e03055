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
TEMPLATES = ("deploy", "rollback", "probe", "promote")
ENTRY_POINT = {"deploy": "main", "rollback": "main", "probe": "probe", "promote": "promote"}
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


# Optional for the role (a rollback may leave it out) but required by deploy.yml's first play.
REQUIRED_BY_PLAYBOOK = {"deploy": ("floy_version",)}


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
        required = spec.get("required", False) or var in REQUIRED_BY_PLAYBOOK.get(name, ())
        assert bool(q["required"]) == bool(required), var
        if not required:
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


#: Batch sizes as they may be typed into the survey (or passed with -e), valid or not.
BATCH_SIZES: list[object] = [
    "1", "2", "5", "7", "13", "250", "1000000", "05", "0000100%", "1%", "10%", "33%", "100%",
    2, 40,
    "0", "0%", "101%", "1000001", "00000001", "abc", "2.5", "-1", " 2", "2 ", "%", "25 %",
    "1e3", "5%%", "\uff11", "", 0, -1, True, 2.5,
]


def _playbook_accepts(answers: list[object], tmp_path: Path) -> dict[int, bool]:
    """Which answers pass playbooks/deploy.yml's own check of floy_batch_size (its first
    play's tasks, as they are written, run once per answer over a host each)."""
    import subprocess

    import yaml

    from tests.ecosystem._paths import VENV_BIN, tool_env

    plays = yaml.safe_load((REPO / "playbooks" / "deploy.yml").read_text())
    (check,) = [play for play in plays if play["name"] == "Check the batching inputs"]
    assert check["hosts"] == "localhost"  # once per run, on the controller
    playbook = tmp_path / "check.yml"
    playbook.write_text(yaml.safe_dump([{**check, "hosts": "all"}]))
    hosts = {f"answer{n}": {"floy_batch_size": answer, "ansible_connection": "local",
                            "floy_version": "1.0.0"}
             for n, answer in enumerate(answers)}
    inventory = tmp_path / "hosts.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    proc = subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), str(playbook), "-f", "10"],
        env=tool_env(ANSIBLE_CALLBACK_RESULT_FORMAT="json"), capture_output=True, text=True,
        timeout=300, check=False)
    recap = {}
    for line in proc.stdout.splitlines():
        name, _, counts = line.partition(" : ")
        if name.strip() in hosts and "failed=" in counts:
            recap[int(name.strip()[len("answer"):])] = "failed=0" in counts
    assert len(recap) == len(answers), proc.stdout + proc.stderr
    for n, ok in recap.items():  # each refusal says what a batch size is
        line = next((x for x in proc.stdout.splitlines()
                     if x.startswith(f"fatal: [answer{n}]: FAILED! => ")), "")
        assert ok or ('"msg": "floy_batch_size must be a number of instances from 1 to 1000000 '
                      '(5) or a percentage from 1% to 100% (25%), got ') in line, proc.stdout
    return recap


def test_the_batch_size_question_takes_any_count_or_percentage(tmp_path: Path) -> None:
    """A free-text question (AWX cannot check a pattern): every batch size floy accepts is
    an answer AWX takes and the playbook runs with; every other one the playbook refuses
    before the first batch, by floy's own rule (orchestrator.domain.validation)."""
    from orchestrator.domain.validation import validate_batch_size
    from orchestrator.errors import ValidationError

    for name in ("deploy", "rollback"):
        (question,) = [q for q in _survey(name)["spec"] if q["variable"] == "floy_batch_size"]
        assert question["type"] == "text", name
        assert (question["default"], question["min"], question["max"]) == ("1", 1, 8), name
        assert question["required"] is False, name
    by_playbook = _playbook_accepts(BATCH_SIZES, tmp_path)
    for n, answer in enumerate(BATCH_SIZES):
        try:
            validate_batch_size("batch_size", answer)
            by_floy = True
        except ValidationError:
            by_floy = False
        assert by_playbook[n] == by_floy, (answer, by_playbook[n], by_floy)
        if by_floy and isinstance(answer, str):  # AWX's own rule for a text answer: length
            assert question["min"] <= len(answer) <= question["max"], answer
    assert sum(by_playbook.values()) == 15, by_playbook


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
