"""YAML, JSON and JSON5 spellings of one workflow give the same WorkflowDef."""

from __future__ import annotations

import json
from pathlib import Path

import json5
import pytest
import yaml

from jobstream.errors import SpecError
from jobstream.spec import load_spec, parse_spec
from jobstream.spec.source import read_source

SPECS = Path(__file__).resolve().parent / "specs"
TORC = SPECS / "torc"


@pytest.mark.parametrize("path", sorted(TORC.glob("*.yaml")), ids=lambda p: p.stem)
def test_json_and_json5_renderings_match_yaml(path: Path) -> None:
    expected = load_spec(path)
    data = yaml.safe_load(path.read_text())
    as_json = parse_spec(json.dumps(data, indent=2), "spec.json", "json")
    as_json5 = parse_spec(json5.dumps(data, indent=2, trailing_commas=True), "spec.json5", "json5")
    assert as_json == expected
    assert as_json5 == expected


def test_handwritten_json5_matches_the_yaml_example() -> None:
    assert load_spec(SPECS / "diamond_workflow.json5") == load_spec(TORC / "diamond_workflow.yaml")


def test_json_fixture_is_picked_by_suffix() -> None:
    wf = load_spec(SPECS / "hyperparameter_sweep.json")
    assert wf == load_spec(TORC / "hyperparameter_sweep.yaml")


def test_yaml_lines_are_recorded_for_keys_and_items() -> None:
    _, lines_of = read_source(
        "name: w\njobs:\n  - name: a\n    depends_on:\n      - b\n", "s", "yaml"
    )
    lines = lines_of()
    assert lines[("jobs", 0)] == 3
    assert lines[("jobs", 0, "depends_on")] == 4
    assert lines[("jobs", 0, "depends_on", 0)] == 5


def test_json5_lines_survive_comments_and_multiline_strings() -> None:
    text = "{\n  /* a\n  b */ name: 'w',\n  jobs: [{\n    name: 'x\\\ny',\n    command: 'c'}],\n}"
    data, lines_of = read_source(text, "s", "json5")
    lines = lines_of()
    assert data["jobs"][0]["name"] == "xy"
    assert lines[("name",)] == 3
    assert lines[("jobs", 0, "name")] == 5
    assert lines[("jobs", 0, "command")] == 7


def test_yaml_dates_stay_strings() -> None:
    wf = parse_spec("name: w\nmetadata: {created: 2024-01-31}\njobs: []\n", "s.yaml", "yaml")
    assert wf.extras["metadata"] == {"created": "2024-01-31"}


@pytest.mark.parametrize("fmt", ["json", "json5"])
def test_json_duplicate_keys_name_their_line(fmt: str) -> None:
    text = '{\n  "name": "w",\n  "jobs": [\n    {"name": "a",\n     "command": "x",\n     "name": "b"}\n  ]\n}\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(text, f"s.{fmt}", fmt)
    error = caught.value
    assert (error.path, error.line, error.key) == (f"s.{fmt}", 6, "jobs[0].name")
    assert "duplicate key" in error.message
