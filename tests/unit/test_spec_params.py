"""Parameter values, product/zip expansion, templates and workflow variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobstream.model import WorkflowDef
from jobstream.spec import parse_spec
from jobstream.spec.params import parse_values
from jobstream.spec.templates import compile_template, display, render


def load(text: str, path: str = "spec.yaml") -> WorkflowDef:
    return parse_spec(text, path, "yaml")


def names(text: str) -> list[str]:
    return [job.name for job in load(text).jobs]


def one_job(parameters: str, name: str = "j_{i}", extra: str = "") -> list[str]:
    return names(
        f"name: w\njobs:\n  - name: '{name}'\n    command: run\n{extra}"
        f"    parameters:\n{parameters}"
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0:5", [0, 1, 2, 3, 4, 5]),
        ("1:10:2", [1, 3, 5, 7, 9]),
        ("10:0:-5", [10, 5, 0]),
        ("{1:3}", [1, 2, 3]),
        ("0.0:1.0:0.25", [0.0, 0.25, 0.5, 0.75, 1.0]),
        ("0.0:1.0:0.1", [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]),
        ("[1, 2, 3]", [1, 2, 3]),
        ("['a','b']", ["a", "b"]),
        ('["x", "y"]', ["x", "y"]),
        ("[adam, sgd]", ["adam", "sgd"]),
        ("[0.5, 1]", [0.5, 1]),
        ("7", [7]),
        ("0.5", [0.5]),
        ("plain", ["plain"]),
        ([1, "b", 2.5, True], [1, "b", 2.5, "true"]),
        (3, [3]),
    ],
)
def test_parameter_values(raw: object, expected: list[object]) -> None:
    assert list(parse_values(raw, Path("."))) == expected


@pytest.mark.parametrize("raw", ["1:2:3:4", "a:b", "1:5:0", "0.0:1.0:0", None, {"a": 1}, [[1]]])
def test_bad_parameter_values(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_values(raw, Path("."))


def test_file_backed_values_are_read_beside_the_spec(tmp_path: Path) -> None:
    (tmp_path / "values.txt").write_text("# header\n3\n\nbeta\n0.5\n")
    assert list(parse_values("@values.txt", tmp_path)) == [3, "beta", 0.5]
    spec = tmp_path / "spec.yaml"
    wf = parse_spec(
        "name: w\njobs:\n  - name: j_{v}\n    command: x\n    parameters:\n      v: '@values.txt'\n",
        str(spec),
        "yaml",
    )
    assert [j.name for j in wf.jobs] == ["j_3", "j_beta", "j_0.5"]


def test_product_is_in_declaration_order_first_parameter_slowest() -> None:
    got = one_job("      a: [1, 2]\n      b: [x, y, z]\n", name="j_{a}_{b}")
    assert got == ["j_1_x", "j_1_y", "j_1_z", "j_2_x", "j_2_y", "j_2_z"]


def test_zip_pairs_values() -> None:
    got = one_job(
        "      a: [1, 2, 3]\n      b: [x, y, z]\n", "j_{a}_{b}", "    parameter_mode: zip\n"
    )
    assert got == ["j_1_x", "j_2_y", "j_3_z"]


def test_format_specs() -> None:
    assert one_job("      i: '8:10'\n", name="j_{i:03d}") == ["j_008", "j_009", "j_010"]
    assert one_job("      lr: [0.001, 0.1]\n", name="lr{lr:.4f}") == ["lr0.0010", "lr0.1000"]
    assert one_job("      s: [ab]\n", name="x{s:>4}") == ["x  ab"]


def test_float_values_print_like_torc() -> None:
    assert one_job("      x: '0.0:1.0:0.5'\n", name="x{x}") == ["x0", "x0.5", "x1"]
    assert [display(v) for v in (1.0, 1e-05, 0.1 + 0.2, 2.5e20, -0.0)] == [
        "1",
        "0.00001",
        "0.30000000000000004",
        "250000000000000000000",
        "-0",
    ]


def test_only_parameters_of_the_item_are_substituted() -> None:
    text = (
        "name: w\njobs:\n  - name: j_{i}\n"
        '    command: "echo {i} ${HOME} ${i} {} {other} {a,b} {i:02d} ${files.input.f}"\n'
        "    parameters:\n      i: [1]\nfiles:\n  - name: f\n    path: /in\n"
    )
    wf = load(text)
    assert wf.jobs[0].command == "echo 1 ${HOME} ${i} {} {other} {a,b} 01 /in"


def test_every_string_field_is_a_template() -> None:
    text = """
name: w
jobs:
  - name: make_{i}
    command: make {i}
    output_files: ["out_{i}"]
    parameters: {i: [1, 2]}
  - name: use_{i}
    command: use {i}
    invocation_script: setup {i}
    env: {RUN: "r{i}", FIXED: 1}
    depends_on: ["make_{i}"]
    input_files: ["out_{i}"]
    resource_requirements: rr_{i}
    parameters: {i: [1, 2]}
files:
  - name: out_{i}
    path: /data/{i}.txt
    parameters: {i: [1, 2]}
resource_requirements:
  - {name: rr_1, num_cpus: 1, memory: 1g}
  - {name: rr_2, num_cpus: 2, memory: 2g}
"""
    wf = load(text)
    use2 = {j.name: j for j in wf.jobs}["use_2"]
    assert use2.command == "use 2"
    assert use2.invocation_script == "setup 2"
    assert use2.env == {"RUN": "r2", "FIXED": "1"}
    assert use2.resource_requirements == "rr_2"
    assert use2.resources.num_cpus == 2
    assert [wf.jobs[i].name for i in use2.depends_on] == ["make_2"]
    assert [f.path for f in wf.files] == ["/data/1.txt", "/data/2.txt"]


def test_workflow_parameters_with_use_parameters() -> None:
    text = """
name: w
parameters:
  lr: [0.1, 0.2]
  bs: "16:32:16"
env:
  BS: "{bs}"
jobs:
  - name: t_{lr}_{bs}
    command: train
    use_parameters: [lr, bs]
  - name: s_{lr}
    command: special
    use_parameters: [lr]
    parameters:
      lr: [0.5]
  - name: plain
    command: "no {lr} here"
"""
    wf = load(text)
    assert [j.name for j in wf.jobs] == [
        "t_0.1_16",
        "t_0.1_32",
        "t_0.2_16",
        "t_0.2_32",
        "s_0.5",
        "plain",
    ]
    assert wf.jobs[-1].command == "no {lr} here"
    assert wf.jobs[0].env == {"BS": "{bs}"}


def test_workflow_env_gets_single_valued_parameters_and_job_env_wins() -> None:
    text = """
name: w
parameters: {root: /scratch}
env: {DATA: "{root}/data", LEVEL: info}
jobs:
  - name: a
    command: x
    env: {LEVEL: debug}
"""
    assert load(text).jobs[0].env == {"DATA": "/scratch/data", "LEVEL": "debug"}
    floats = "name: w\nparameters: {x: 1.0, y: '2.50'}\nenv: {X: '{x}', Y: '{y:.1f}'}\njobs: []\n"
    wf = load(floats.replace("jobs: []", "jobs: [{name: a, command: b}]"))
    assert wf.jobs[0].env == {"X": "1", "Y": "2.5"}


def test_user_data_is_parameterized_inside_data() -> None:
    text = """
name: w
jobs:
  - name: a
    command: x
    input_user_data: [cfg_b]
user_data:
  - name: cfg_{e}
    data: {experiment: "{e}", rate: 0.1, tags: ["{e}", 2]}
    parameters: {e: [a, b]}
"""
    wf = load(text)
    assert [(u.name, u.data) for u in wf.user_data] == [
        ("cfg_a", {"experiment": "a", "rate": 0.1, "tags": ["a", 2]}),
        ("cfg_b", {"experiment": "b", "rate": 0.1, "tags": ["b", 2]}),
    ]
    assert wf.jobs[0].input_user_data == ("cfg_b",)


def test_parameters_file_tables(tmp_path: Path) -> None:
    (tmp_path / "grid.csv").write_text("a,b\n1,x\n2,y\n")
    (tmp_path / "grid.json").write_text('[{"a": 5, "b": "z"}]')
    spec = tmp_path / "spec.yaml"
    text = """
name: w
parameters_file: grid.json
jobs:
  - name: c_{a}_{b}
    command: x
    parameters_file: grid.csv
  - name: j_{a}_{b}
    command: x
    use_parameters_file: true
"""
    wf = parse_spec(text, str(spec), "yaml")
    assert [j.name for j in wf.jobs] == ["c_1_x", "c_2_y", "j_5_z"]


def test_workflow_variables_are_substituted_everywhere() -> None:
    text = """
name: w
description: "in {root}"
variables: {root: /scratch/p, acct: abc}
jobs:
  - name: t_{i}
    command: "run --in {root}/x --shard {i} ${HOME}"
    parameters: {i: "1:2"}
slurm_schedulers:
  - {name: s, account: "{acct}"}
"""
    wf = load(text)
    assert wf.description == "in /scratch/p"
    assert wf.jobs[1].command == "run --in /scratch/p/x --shard 2 ${HOME}"
    assert wf.extras["slurm_schedulers"][0]["account"] == "abc"


def test_compiled_templates_render_and_keep_unknown_braces() -> None:
    template = compile_template("{a}-{b:02d}-{c}-{{a}}", ["a", "b"])
    assert render(template, ["x", 3]) == "x-03-{c}-{x}"
    assert compile_template("no placeholders {z}", ["a"]) == "no placeholders {z}"
