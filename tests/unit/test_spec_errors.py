"""Every kind of spec error names the file, the 1-based line and the dotted key."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.errors import SpecError
from jobstream.spec import load_spec, parse_spec

PATH = "flows/my_spec.yaml"

JOB = "name: w\njobs:\n  - name: a\n    command: run\n"
"""A valid prefix: the first job is on line 3."""

RR = "resource_requirements:\n  - name: r\n    num_cpus: 1\n"

CASES = [
    ("yaml syntax", "name: w\njobs: [\n  {name: a,\n", 4, "", "YAML syntax error"),
    (
        "unknown key",
        JOB + "    depnds_on: [b]\n",
        5,
        "jobs[0].depnds_on",
        "unknown key 'depnds_on'; did you mean 'depends_on'",
    ),
    ("unknown top key", JOB + "colour: red\n", 5, "colour", "unknown key 'colour'; valid keys:"),
    (
        "wrong type",
        JOB + "    priority: high\n",
        5,
        "jobs[0].priority",
        "wrong type: expected an integer, got a string",
    ),
    (
        "missing name",
        "name: w\njobs:\n  - command: x\n",
        3,
        "jobs[0]",
        "missing required key 'name'",
    ),
    (
        "missing command",
        JOB + "  - name: b\n",
        5,
        "jobs[1]",
        "missing required key 'command'",
    ),
    ("missing jobs", "name: w\n", 1, "", "missing required key 'jobs'"),
    (
        "unknown job",
        JOB + "  - name: b\n    command: x\n    depends_on:\n      - a\n      - nope\n",
        9,
        "jobs[1].depends_on[1]",
        "unknown job 'nope'",
    ),
    (
        "unknown file",
        JOB + "    input_files: [raw]\nfiles:\n  - {name: raw_data, path: /r}\n",
        5,
        "jobs[0].input_files[0]",
        "unknown file 'raw'",
    ),
    (
        "unknown file variable",
        "name: w\njobs:\n  - name: a\n    command: cat ${files.input.raw}\n",
        4,
        "jobs[0].command",
        "${files.input.raw}: unknown file 'raw'",
    ),
    (
        "unknown user data",
        JOB + "    output_user_data: [cfg]\n",
        5,
        "jobs[0].output_user_data[0]",
        "unknown user_data 'cfg'",
    ),
    (
        "unknown resource requirements",
        JOB + "    resource_requirements: large\n" + RR + "    memory: 1g\n",
        5,
        "jobs[0].resource_requirements",
        "unknown resource_requirements 'large'; defined: r",
    ),
    (
        "unknown failure handler",
        JOB + "    failure_handler: retry\n",
        5,
        "jobs[0].failure_handler",
        "unknown failure_handler 'retry'",
    ),
    (
        "unknown scheduler",
        JOB + "    scheduler: gpu\n",
        5,
        "jobs[0].scheduler",
        "unknown slurm scheduler 'gpu'",
    ),
    (
        "duplicate job",
        JOB + "  - name: a\n    command: again\n",
        5,
        "jobs[1].name",
        "duplicate job name 'a' after parameter expansion (first defined by jobs[0])",
    ),
    (
        "duplicate after expansion",
        "name: w\njobs:\n  - name: t_{i}\n    command: x\n    parameters: {i: [1, 2], j: [3, 4]}\n",
        3,
        "jobs[0].name",
        "duplicate job name 't_1'",
    ),
    (
        "duplicate file",
        JOB + "files:\n  - {name: f, path: /a}\n  - {name: f, path: /b}\n",
        7,
        "files[1].name",
        "duplicate file name 'f'",
    ),
    (
        "duplicate resource requirements",
        JOB + RR + "    memory: 1g\n  - {name: r, num_cpus: 2, memory: 1g}\n",
        9,
        "resource_requirements[1].name",
        "duplicate resource_requirements name 'r'",
    ),
    (
        "cycle",
        "name: w\njobs:\n  - name: a\n    command: x\n    depends_on: [c]\n"
        "  - name: b\n    command: x\n    depends_on: [a]\n"
        "  - name: c\n    command: x\n    depends_on: [b]\n",
        3,
        "jobs[0]",
        "dependency cycle: a -> c -> b -> a",
    ),
    (
        "self dependency",
        JOB + "    depends_on: [a]\n",
        5,
        "jobs[0].depends_on[0]",
        "job 'a' depends on itself",
    ),
    (
        "bad memory",
        JOB + RR + "    memory: 2 gallons\n",
        8,
        "resource_requirements[0].memory",
        "invalid memory '2 gallons'",
    ),
    (
        "bad runtime",
        JOB + RR + "    memory: 1g\n    runtime: 2h\n",
        9,
        "resource_requirements[0].runtime",
        "invalid runtime '2h'",
    ),
    (
        "bad range",
        JOB.replace("name: a", "name: a{i}") + "    parameters:\n      i: '1:x'\n",
        6,
        "jobs[0].parameters.i",
        "invalid range '1:x'",
    ),
    (
        "empty range",
        JOB.replace("name: a", "name: a{i}") + "    parameters:\n      i: '5:1'\n",
        6,
        "jobs[0].parameters.i",
        "parameter expands to no values",
    ),
    (
        "zip mismatch",
        JOB.replace("name: a", "name: a{i}{j}")
        + "    parameter_mode: zip\n    parameters: {i: [1, 2], j: [1]}\n",
        5,
        "jobs[0].parameter_mode",
        "'i' has 2, 'j' has 1",
    ),
    (
        "bad parameter mode",
        JOB + "    parameter_mode: grid\n",
        5,
        "jobs[0].parameter_mode",
        "invalid value 'grid'; valid values: 'product', 'zip'",
    ),
    (
        "regex does not compile",
        JOB + "  - name: b\n    command: x\n    depends_on_regexes: ['a(']\n",
        7,
        "jobs[1].depends_on_regexes[0]",
        "invalid regex 'a('",
    ),
    (
        "regex matches nothing",
        JOB + "    input_file_regexes: ['^zzz']\nfiles:\n  - {name: f, path: /f}\n",
        5,
        "jobs[0].input_file_regexes[0]",
        "regex '^zzz' matches no file name",
    ),
    (
        "unknown parameter in name",
        JOB.replace("name: a", "name: a_{ii}") + "    parameters: {i: [1]}\n",
        3,
        "jobs[0].name",
        "'{ii}' is not a parameter of this job; its parameters are: i",
    ),
    (
        "format spec does not fit",
        JOB.replace("command: run", "command: run {i:d}")
        + "    parameters: {i: [0.5]}\n".replace("{i: [0.5]}", "{i: [0.5]}"),
        4,
        "jobs[0].command",
        "format spec ':d' cannot format parameter 'i' = 0.5",
    ),
    (
        "unknown use_parameters",
        "name: w\nparameters: {lr: [1]}\njobs:\n  - name: a\n    command: x\n"
        "    use_parameters: [lr, bs]\n",
        6,
        "jobs[0].use_parameters[1]",
        "'bs' is not a workflow-level parameter (defined: lr)",
    ),
    (
        "undefined template with variables",
        "name: w\nvariables: {root: /x}\njobs:\n  - name: a\n    command: '{rot}/run'\n",
        5,
        "jobs[0].command",
        "undefined template name '{rot}'",
    ),
    (
        "variable collides with parameter",
        "name: w\nvariables: {i: x}\njobs:\n  - name: a{i}\n    command: x\n"
        "    parameters: {i: [1]}\n",
        2,
        "variables.i",
        "variables collide with parameter names: i",
    ),
    (
        "negative priority",
        JOB + "    priority: -1\n",
        5,
        "jobs[0].priority",
        "priority must be 0 or more",
    ),
    (
        "bad env name",
        JOB + "    env: {'A-B': x}\n",
        5,
        "jobs[0].env.A-B",
        "invalid environment variable name 'A-B'",
    ),
    (
        "action with unknown scheduler",
        JOB + "actions:\n  - trigger_type: on_workflow_start\n    action_type: schedule_nodes\n"
        "    scheduler: big\n    scheduler_type: slurm\n",
        8,
        "actions[0].scheduler",
        "unknown slurm scheduler 'big'",
    ),
    (
        "action matches no job",
        JOB + "actions:\n  - trigger_type: on_jobs_ready\n    action_type: run_commands\n"
        "    commands: [x]\n    job_name_regexes: ['^nope']\n",
        6,
        "actions[0]",
        "the action matches no job",
    ),
    ("duplicate key", "name: w\njobs: []\nname: v\n", 3, "name", "duplicate key"),
    ("not a mapping", "- a\n- b\n", 1, "", "must be a mapping at the top level"),
]


@pytest.mark.parametrize(
    ("text", "line", "key", "message"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_error_names_file_line_and_key(text: str, line: int, key: str, message: str) -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(text, PATH, "yaml")
    error = caught.value
    assert (error.path, error.line, error.key) == (PATH, line, key)
    assert message in error.message
    prefix = f"{PATH}:{line}: {key}: " if key else f"{PATH}:{line}: "
    assert str(error).startswith(prefix)


def test_json_syntax_error_has_the_parser_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(
            '{\n  "name": "w",\n  "jobs": [\n    {"name": "a",,}\n  ]\n}\n', "s.json", "json"
        )
    assert (caught.value.path, caught.value.line) == ("s.json", 4)
    assert "JSON syntax error" in str(caught.value)


def test_json5_syntax_error_has_the_parser_line() -> None:
    with pytest.raises(SpecError) as caught:
        parse_spec(
            "{\n  name: 'w',\n  jobs: [\n    {name: 'a' command: 'x'},\n  ],\n}\n",
            "s.json5",
            "json5",
        )
    assert (caught.value.path, caught.value.line) == ("s.json5", 4)
    assert "JSON5 syntax error" in str(caught.value)


def test_json_errors_point_at_the_key_line() -> None:
    text = '{\n  "name": "w",\n  "jobs": [\n    {\n      "name": "a",\n      "command": "x",\n      "depends_on": ["a", "b"]\n    }\n  ]\n}\n'
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "s.json", "json")
    assert (caught.value.line, caught.value.key) == (7, "jobs[0].depends_on[0]")


def test_json5_unknown_key_line() -> None:
    text = "// comment\n{\n  name: 'w',\n  jobs: [\n    {name: 'a', command: 'x',\n     colour: 'red'},\n  ],\n}\n"
    with pytest.raises(SpecError) as caught:
        parse_spec(text, "s.json5", "json5")
    assert (caught.value.line, caught.value.key) == (6, "jobs[0].colour")


def test_load_spec_rejects_unknown_suffix_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="suffix"):
        load_spec(tmp_path / "spec.toml")
    with pytest.raises(SpecError, match="cannot read"):
        load_spec(tmp_path / "absent.yaml")
    with pytest.raises(SpecError, match="unknown spec format"):
        parse_spec("name: w\njobs: []\n", "x", "toml")
