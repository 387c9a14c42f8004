"""Specs that would not fit any machine are refused at once, with readable numbers: job
counts are checked before anything is expanded (before: a 10^12 sweep ran until the OOM
killer came), and resources beyond any machine are typos, not requests."""

from __future__ import annotations

import time

import pytest

from jobstream.errors import SpecError
from jobstream.spec import parse_spec

PATH = "sweep.yaml"


def spec(parameters: str, mode: str = "") -> str:
    return (
        "name: w\njobs:\n  - name: j_{a}_{b}_{c}\n    command: run {a} {b} {c}\n"
        f"    parameters:\n{parameters}{mode}"
    )


CUBE = spec("      a: '1:10000'\n      b: '1:10000'\n      c: '1:10000'\n")
ZIP = spec(
    "      a: '1:1000000000000'\n      b: '1:1000000000000'\n      c: '1:1000000000000'\n",
    "    parameter_mode: zip\n",
)
FLOATS = spec("      a: '0.0:1000000000000.0:1.0'\n      b: '1:1'\n      c: '1:1'\n")


@pytest.mark.parametrize("text", [CUBE, ZIP, FLOATS], ids=["product 10^12", "zip", "floats"])
def test_a_sweep_past_max_jobs_is_refused_before_it_is_expanded(text: str) -> None:
    began = time.monotonic()
    with pytest.raises(SpecError) as error:
        parse_spec(text, PATH, "yaml")
    assert time.monotonic() - began < 1.0
    assert error.value.key == "jobs[0]" and error.value.line == 3
    assert "more than 10,000,000" in str(error.value) and "max_jobs" in str(error.value)


def test_max_jobs_is_a_setting() -> None:
    small = spec("      a: '1:3'\n      b: '1:2'\n      c: '1:1'\n")
    assert len(parse_spec(small, PATH, "yaml", max_jobs=6).jobs) == 6
    with pytest.raises(SpecError, match="more than 5"):
        parse_spec(small, PATH, "yaml", max_jobs=5)


def test_a_float_range_is_made_one_value_at_a_time() -> None:
    text = spec("      a: '0.0:1.0:0.25'\n      b: '1:1'\n      c: '1:1'\n")
    names = [job.name for job in parse_spec(text, PATH, "yaml").jobs]
    assert names == ["j_0_1_1", "j_0.25_1_1", "j_0.5_1_1", "j_0.75_1_1", "j_1_1_1"]


SANE = {"num_cpus": "1", "num_gpus": "0", "num_nodes": "1", "memory": "1g", "runtime": "PT1H"}


def resources(field: str) -> str:
    """A spec whose one resource requirement is sane but for ``field`` (on line 8)."""
    key, _, value = field.partition(": ")
    entry = "".join(f"    {k}: {value if k == key else v}\n" for k, v in SANE.items())
    return (
        "name: w\njobs:\n  - name: a\n    command: run\n    resource_requirements: r\n"
        f"resource_requirements:\n  - name: r\n{entry}"
    )


@pytest.mark.parametrize(
    ("field", "key", "message"),
    [
        (
            "num_cpus: 1000000000000",
            "num_cpus",
            "num_cpus is 1,000,000,000,000; it must be 1 to 100,000",
        ),
        ("num_gpus: 5000", "num_gpus", "num_gpus is 5,000; it must be 0 to 1,024"),
        ("memory: 0", "memory", "memory 0 is 0 MiB; it must be more than 0"),
        ("memory: 1000000t", "memory", "is 977 PiB; it must be more than 0 and at most 64 TiB"),
        ("runtime: P274000Y", "runtime", "runtime 'P274000Y' is 274,000 years; it must be"),
    ],
)
def test_resources_beyond_any_machine_are_refused_readably(
    field: str, key: str, message: str
) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(resources(field), PATH, "yaml")
    assert error.value.key == f"resource_requirements[0].{key}"
    assert error.value.line == 8 + list(SANE).index(key)
    assert message in str(error.value)


def failure_rule(extra: str) -> str:
    """A spec with one failure-handler rule; ``extra`` is its last line (line 10)."""
    return (
        "name: w\njobs:\n  - name: a\n    command: run\n    failure_handler: h\n"
        "failure_handlers:\n  - name: h\n    rules:\n      - exit_codes: [10]\n"
        f"        {extra}\n"
    )


def test_a_rule_keeps_its_retry_delays() -> None:
    text = failure_rule(
        "retry_delay: PT30S\n        retry_backoff: 3\n        retry_delay_max: 600"
    )
    (rule,) = parse_spec(text, PATH, "yaml").jobs[0].retry_rules
    assert (rule.delay_s, rule.backoff, rule.delay_max_s) == (30, 3, 600)
    assert [rule.delay_before(n) for n in (1, 2, 3, 4)] == [30, 90, 270, 600]


@pytest.mark.parametrize(
    ("extra", "key", "message"),
    [
        ("retry_delay: 30s", "retry_delay", "invalid retry_delay '30s': use an ISO 8601"),
        ("retry_delay: -5", "retry_delay", "invalid retry_delay -5: it cannot be negative"),
        ("retry_delay_max: P2Y", "retry_delay_max", "retry_delay_max is 2 years; it must be"),
        ("retry_backoff: 0.5", "retry_backoff", "retry_backoff is 0.5; it must be 1"),
        ("max_retries: -1", "max_retries", "max_retries is -1; it must be 0 to 10,000"),
    ],
)
def test_retry_numbers_out_of_bounds_are_refused(extra: str, key: str, message: str) -> None:
    with pytest.raises(SpecError) as error:
        parse_spec(failure_rule(extra), PATH, "yaml")
    assert error.value.key == f"failure_handlers[0].rules[0].{key}"
    assert error.value.line == 10
    assert message in str(error.value)
