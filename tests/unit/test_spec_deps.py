"""Dependency inference: explicit, regex, files, user data, ${files...}; a DAG property."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from jobstream.model import WorkflowDef
from jobstream.spec import parse_spec


def load(text: str) -> WorkflowDef:
    return parse_spec(text, "spec.yaml", "yaml")


def deps(wf: WorkflowDef) -> dict[str, list[str]]:
    return {j.name: [wf.jobs[i].name for i in j.depends_on] for j in wf.jobs}


def test_file_variables_are_replaced_and_merged_with_explicit_lists() -> None:
    wf = load(
        """
name: w
jobs:
  - name: make
    command: gen -o ${files.output.b} -o ${files.output.a} -o ${files.output.b}
    output_files: [a]
  - name: use
    command: use ${files.input.a}
    invocation_script: setup ${files.input.b}
files:
  - {name: a, path: /x/a.csv}
  - {name: b, path: /x/b.csv}
"""
    )
    make, use = wf.jobs
    assert make.command == "gen -o /x/b.csv -o /x/a.csv -o /x/b.csv"
    assert make.output_files == ("a", "b")
    assert use.command == "use /x/a.csv"
    assert use.invocation_script == "setup /x/b.csv"
    assert use.input_files == ("a", "b")
    assert use.depends_on == (0,)


def test_input_file_regexes_select_files_and_their_producers() -> None:
    wf = load(
        """
name: w
jobs:
  - name: part_{i}
    command: work {i}
    output_files: ["out_{i}"]
    parameters: {i: "1:3"}
  - name: merge
    command: merge
    input_file_regexes: ["^out_[12]$"]
files:
  - name: out_{i}
    path: /o/{i}
    parameters: {i: "1:3"}
"""
    )
    merge = wf.jobs[-1]
    assert merge.input_files == ("out_1", "out_2")
    assert deps(wf)["merge"] == ["part_1", "part_2"]


def test_depends_on_regexes_search_like_torc_and_skip_the_job_itself() -> None:
    wf = load(
        """
name: w
jobs:
  - {name: train_a, command: x}
  - {name: pre_train_b, command: x}
  - {name: other, command: x}
  - name: train_summary
    command: x
    depends_on_regexes: ["train_"]
"""
    )
    assert deps(wf)["train_summary"] == ["train_a", "pre_train_b"]


def test_user_data_links_producers_and_consumers() -> None:
    wf = load(
        """
name: w
jobs:
  - name: produce
    command: x
    output_user_data: [cfg]
  - name: consume
    command: 'read ${user_data.input.cfg}'
user_data:
  - {name: cfg, data: {a: 1, b: [x]}, is_ephemeral: true}
"""
    )
    _, consume = wf.jobs
    assert consume.command == 'read {"a":1,"b":["x"]}'
    assert consume.input_user_data == ("cfg",)
    assert consume.depends_on == (0,)
    assert wf.user_data[0].is_ephemeral


def test_reading_your_own_output_is_not_a_self_edge() -> None:
    wf = load(
        """
name: w
jobs:
  - name: update
    command: x
    input_files: [db]
    output_files: [db]
files:
  - {name: db, path: /db}
"""
    )
    assert wf.jobs[0].depends_on == ()


def test_dependencies_are_sorted_and_deduplicated() -> None:
    wf = load(
        """
name: w
jobs:
  - {name: c, command: x, output_files: [f]}
  - {name: b, command: x}
  - name: a
    command: x
    depends_on: [b, c, b]
    depends_on_regexes: ["^[bc]$"]
    input_files: [f]
files:
  - {name: f, path: /f}
"""
    )
    assert wf.jobs[2].depends_on == (0, 1)
    assert wf.edges() == 2


RETRY_DEFAULTS = {"retry_delay": 0, "retry_backoff": 2.0, "retry_delay_max": "PT1H"}


def test_defaults_and_extras() -> None:
    wf = load(
        """
name: w
jobs:
  - name: a
    command: x
    failure_handler: retry
    scheduler: s
    stdio: {mode: combined}
    cancel_on_blocking_job_failure: false
    priority: 5
failure_handlers:
  - name: retry
    rules: [{exit_codes: [137]}]
slurm_schedulers:
  - {name: s, account: acct}
use_pending_failed: true
"""
    )
    job = wf.jobs[0]
    assert job.resources.hardware_class() == "c1.m1024.g0.n1.t3600"
    assert job.resource_requirements is None
    assert (job.failure_handler, job.priority, job.cancel_on_blocking_job_failure) == (
        "retry",
        5,
        False,
    )
    assert wf.extras["failure_handlers"] == [
        {
            "name": "retry",
            "rules": [
                {
                    "exit_codes": [137],
                    "match_all_exit_codes": False,
                    "max_retries": 3,
                    **RETRY_DEFAULTS,
                }
            ],
        }
    ]
    assert wf.extras["job_settings"] == {
        "a": {"stdio": {"mode": "combined", "delete_on_success": False}, "scheduler": "s"}
    }
    assert wf.extras["use_pending_failed"] is True
    json.dumps(wf.extras)


@st.composite
def dag_specs(draw: st.DrawFn) -> tuple[str, dict[str, set[str]]]:
    """A random DAG in random declaration order, wired by names, regexes and files."""
    count = draw(st.integers(min_value=1, max_value=12))
    parents = {
        child: draw(st.sets(st.integers(0, child - 1), max_size=3)) if child else set()
        for child in range(count)
    }
    order = draw(st.permutations(range(count)))
    jobs, files = [], []
    for node in order:
        job: dict[str, object] = {"name": f"n{node}", "command": f"run ${{files.output.f{node}}}"}
        how = draw(st.sampled_from(["names", "files", "regexes"]))
        wanted = sorted(parents[node])
        if how == "names":
            job["depends_on"] = [f"n{p}" for p in wanted]
        elif how == "files":
            job["input_files"] = [f"f{p}" for p in wanted]
        elif wanted:
            job["depends_on_regexes"] = [f"^n{p}$" for p in wanted]
        jobs.append(job)
        files.append({"name": f"f{node}", "path": f"/d/{node}"})
    spec = {"name": "dag", "jobs": jobs, "files": files}
    expected = {f"n{c}": {f"n{p}" for p in ps} for c, ps in parents.items()}
    return json.dumps(spec), expected


@settings(max_examples=60, deadline=None)
@given(dag_specs())
def test_random_dags_expand_with_exactly_their_edges(case: tuple[str, dict[str, set[str]]]) -> None:
    text, expected = case
    wf = parse_spec(text, "dag.json", "json")
    assert {j.name: {wf.jobs[i].name for i in j.depends_on} for j in wf.jobs} == expected
    done: set[int] = set()
    remaining = {j.index: set(j.depends_on) for j in wf.jobs}
    while remaining:
        ready = [i for i, d in remaining.items() if d <= done]
        assert ready, "the dependency graph has a cycle"
        for i in ready:
            done.add(i)
            del remaining[i]
