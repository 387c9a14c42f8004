"""The spec loader given any text or structure: a workflow, or one SpecError line.

Any other exception (a KeyError, a TypeError from a value of the wrong type, a
RecursionError) would reach the user as a traceback, and a spec that took the loader
down is not a clear error naming where it is wrong.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from jobstream.errors import SpecError
from jobstream.spec import parse_spec

from .strategies import JSON_VALUES, mutated

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FORMATS = ("yaml", "json", "json5")
MAX_JOBS = 1_000  # a mutated sweep may count far more; refused fast, as specified


def loads_or_refuses(text: str, fmt: str) -> None:
    try:
        parse_spec(text, f"fuzz.{fmt}", fmt, max_jobs=MAX_JOBS)
    except SpecError as exc:
        message = str(exc)
        assert message and "\n" not in message, message
        assert message.startswith("fuzz."), message


@pytest.mark.parametrize("fmt", FORMATS)
@given(text=st.text(max_size=400))
def test_any_text(fmt: str, text: str) -> None:
    loads_or_refuses(text, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@given(document=JSON_VALUES)
def test_any_json_value(fmt: str, document: Any) -> None:
    loads_or_refuses(json.dumps(document), fmt)


def example_documents() -> list[dict[str, Any]]:
    return [yaml.safe_load(path.read_text()) for path in sorted(EXAMPLES.glob("*.yaml"))]


JOB_KEYS = (
    "name", "command", "depends_on", "resource_requirements", "failure_handler", "parameters",
    "parameter_mode", "input_files", "output_files", "env", "priority", "invocation_script",
)  # fmt: skip
TOP_KEYS = (
    "name", "jobs", "files", "user_data", "parameters", "resource_requirements",
    "failure_handlers", "env", "slurm_schedulers", "actions", "variables",
)  # fmt: skip


@st.composite
def near_valid_specs(draw: st.DrawFn) -> dict[str, Any]:
    """An example spec with a few of its values (top level, a job, a rule) changed."""
    spec = draw(st.sampled_from(example_documents()))
    spec = draw(mutated(spec, TOP_KEYS)) if draw(st.booleans()) else dict(spec)
    jobs = spec.get("jobs")
    if isinstance(jobs, list) and jobs and isinstance(jobs[0], dict):
        index = draw(st.integers(min_value=0, max_value=len(jobs) - 1))
        if isinstance(jobs[index], dict):
            spec["jobs"] = [*jobs[:index], draw(mutated(jobs[index], JOB_KEYS)), *jobs[index + 1 :]]
    handlers = spec.get("failure_handlers")
    if isinstance(handlers, list) and handlers and isinstance(handlers[0], dict):
        rules = handlers[0].get("rules")
        if isinstance(rules, list) and rules and isinstance(rules[0], dict):
            rule = draw(mutated(rules[0], ("retry_delay", "retry_backoff", "max_retries")))
            spec["failure_handlers"] = [{**handlers[0], "rules": [rule, *rules[1:]]}]
    return spec


@pytest.mark.parametrize("fmt", ("yaml", "json"))
@given(spec=near_valid_specs())
def test_near_valid_specs(fmt: str, spec: dict[str, Any]) -> None:
    text = yaml.safe_dump(spec) if fmt == "yaml" else json.dumps(spec)
    loads_or_refuses(text, fmt)
