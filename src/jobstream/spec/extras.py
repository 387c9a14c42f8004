"""The torc sections jobstream keeps but does not act on: checks and plain-data copies.

They go to ``WorkflowDef.extras`` as plain JSON-able values (defaults filled in, unset
fields dropped), so nothing a user wrote is lost. References inside them are still
checked the way torc checks them at creation time, so a spec that torc would reject
is rejected here too: failure handler and slurm scheduler names unique, actions naming
existing jobs / schedulers, ``slurm_defaults`` not setting parameters torc manages.
Per-job and per-file settings without a ``JobDef``/``FileDef`` field (``scheduler``,
``stdio``, ``supports_termination``, ``label``, ``input_datasets``, ``output_datasets``;
``identifier``, ``st_mtime``) are kept by name under ``extras["job_settings"]`` and
``extras["file_settings"]``. ``resource_monitor`` keeps the keys torc ignores as written.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import msgspec

from jobstream.spec.expand import JobDraft
from jobstream.spec.locate import Locator
from jobstream.spec.raw import EXTRA_KEYS, RawJob, RawWorkflow
from jobstream.spec.refs import unknown_name_message
from jobstream.spec.units import gres_gpus, slurm_mem_mib, slurm_time_seconds

SLURM_MANAGED = ("partition", "nodes", "walltime", "time", "mem", "gres", "name", "job-name")
ACTION_TYPES = ("run_commands", "schedule_nodes")
AUTOALLOC_TRIGGER = "on_jobs_ready"  # schedule_nodes actions with it turn autoalloc on
SBATCH_FIELDS = ("account", "partition", "qos", "gres", "mem", "tmp", "walltime", "extra")
_OPTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Scheduler fields autoalloc reads, and how (each takes None as unset, but walltime).
_READ_BY_AUTOALLOC: dict[str, Callable[[Any], object]] = {
    "walltime": slurm_time_seconds, "gres": gres_gpus, "mem": slurm_mem_mib,
}  # fmt: skip


def sbatch_problem(key: str, value: object) -> str | None:
    """Why ``value`` cannot go into a ``#SBATCH`` line as option ``key``, or None. A
    line break would start a line of the script's own (a command run as whoever submits
    it), and a space would add options; only ``extra`` is options as written."""
    if not _OPTION_NAME.fullmatch(key):
        return f"{key!r} is not an sbatch option name"
    text = str(value)
    if _CONTROL.search(text):
        return f"{key}: {text[:40]!r} has a line break or control character"
    if key != "extra" and (not text or any(c.isspace() for c in text)):
        return f"{key}: {text[:40]!r} must be one word (put more options in 'extra')"
    return None


def plain(value: Any) -> Any:
    """JSON-able builtins of a raw struct, without the fields left unset (None)."""
    return _drop_none(msgspec.to_builtins(value))


def _drop_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_none(v) for v in value]
    return value


def check_sections(raw: RawWorkflow, job_names: list[str], loc: Locator) -> None:
    """Torc's creation-time checks of failure handlers, schedulers, defaults and actions."""
    _unique([h.name for h in raw.failure_handlers or ()], "failure_handlers", "handler", loc)
    schedulers = [s.name for s in raw.slurm_schedulers or ()]
    _unique(schedulers, "slurm_schedulers", "scheduler", loc)
    _check_sbatch_options(raw, loc)
    for name in raw.slurm_defaults or {}:
        if name.lower() in SLURM_MANAGED:
            loc.fail(
                ("slurm_defaults", name),
                f"'{name}' is managed by the scheduler settings and cannot be a default; "
                f"torc manages: {', '.join(SLURM_MANAGED)}",
            )
    for position, action in enumerate(raw.actions or ()):
        key = ("actions", position)
        if action.action_type not in ACTION_TYPES:
            loc.fail(
                (*key, "action_type"),
                f"unknown action_type '{action.action_type}'; valid: {', '.join(ACTION_TYPES)}",
            )
        if action.action_type == "run_commands" and action.commands is None:
            loc.fail(key, "a run_commands action needs 'commands'")
        if action.action_type == "schedule_nodes":
            if action.scheduler_type is None or action.scheduler is None:
                loc.fail(key, "a schedule_nodes action needs 'scheduler' and 'scheduler_type'")
            if action.scheduler_type == "slurm" and action.scheduler not in schedulers:
                loc.fail(
                    (*key, "scheduler"),
                    unknown_name_message("slurm scheduler", action.scheduler, _named(schedulers)),
                )
        _check_action_jobs(action.jobs, action.job_name_regexes, job_names, key, loc)


def actions_enable(extras: dict[str, Any]) -> dict[str, int]:
    """The schedulers that the spec's ``schedule_nodes`` actions triggered
    ``on_jobs_ready`` name, in order (none: autoalloc is off), each with the open
    allocations its actions allow (their ``num_allocations``, 1 by default)."""
    caps: dict[str, int] = {}
    for action in extras.get("actions") or []:
        if (
            action.get("trigger_type") == AUTOALLOC_TRIGGER
            and action.get("action_type") == "schedule_nodes"
            and action.get("scheduler_type") == "slurm"
            and action.get("scheduler")
        ):
            name = str(action["scheduler"])
            caps[name] = caps.get(name, 0) + int(action.get("num_allocations") or 1)
    return caps


def _check_sbatch_options(raw: RawWorkflow, loc: Locator) -> None:
    for position, scheduler in enumerate(raw.slurm_schedulers or ()):
        for field in SBATCH_FIELDS:
            value = getattr(scheduler, field)
            problem = None if value is None else sbatch_problem(field, value)
            if problem is None and field in _READ_BY_AUTOALLOC:
                try:
                    _READ_BY_AUTOALLOC[field](value)
                except ValueError as exc:
                    problem = str(exc)
            if problem:
                loc.fail(("slurm_schedulers", position, field), problem)
    for name, value in (raw.slurm_defaults or {}).items():
        problem = sbatch_problem(name, value)
        if problem:
            loc.fail(("slurm_defaults", name), problem)


def _named(names: list[str | None]) -> list[str]:
    return [n for n in names if n is not None]


def _unique(names: list[str | None], section: str, kind: str, loc: Locator) -> None:
    seen: set[str] = set()
    for position, name in enumerate(names):
        if name is None:
            continue
        if name in seen:
            loc.fail((section, position, "name"), f"duplicate {kind} name '{name}'")
        seen.add(name)


def _check_action_jobs(
    jobs: list[str] | None,
    regexes: list[str] | None,
    job_names: list[str],
    key: tuple[str, int],
    loc: Locator,
) -> None:
    if jobs is None and regexes is None:
        return
    known = set(job_names)
    for position, name in enumerate(jobs or ()):
        if name not in known:
            loc.fail((*key, "jobs", position), unknown_name_message("job", name, job_names))
    matched = bool(jobs)
    for position, pattern in enumerate(regexes or ()):
        try:
            search = re.compile(pattern).search
        except re.error as exc:
            loc.fail((*key, "job_name_regexes", position), f"invalid regex {pattern!r}: {exc}")
        matched = matched or any(search(name) for name in job_names)
    if not matched:
        loc.fail(key, "the action matches no job")


def collect_extras(
    raw: RawWorkflow, jobs: list[JobDraft], files: list[Any], data: dict[str, Any]
) -> dict[str, Any]:
    """``WorkflowDef.extras``: stored sections plus per-job and per-file settings.

    ``data`` is the parsed spec the raw structs came from (for keys they ignore).
    """
    extras: dict[str, Any] = {}
    for name in EXTRA_KEYS:
        value = getattr(raw, name)
        if value is not None:
            extras[name] = plain(value)
    monitor = data.get("resource_monitor")
    if "resource_monitor" in extras and isinstance(monitor, dict):
        known = extras["resource_monitor"]
        extras["resource_monitor"] = {
            **{k: v for k, v in monitor.items() if k not in known},
            **known,
        }
    settings = _job_settings(raw.jobs, jobs)
    if settings:
        extras["job_settings"] = settings
    file_settings: dict[str, Any] = {}
    for draft in files:
        entry = raw.files[draft.template] if raw.files else None
        values = {"identifier": draft.identifier}
        if entry is not None and entry.st_mtime is not None:
            values["st_mtime"] = entry.st_mtime
        values = {k: v for k, v in values.items() if v is not None}
        if values:
            file_settings[draft.name] = values
    if file_settings:
        extras["file_settings"] = file_settings
    return extras


def _job_settings(templates: list[RawJob], jobs: list[JobDraft]) -> dict[str, Any]:
    per_template: dict[int, dict[str, Any]] = {}
    for index, raw in enumerate(templates):
        values: dict[str, Any] = {}
        if raw.stdio is not None:
            values["stdio"] = plain(raw.stdio)
        if raw.supports_termination is not None:
            values["supports_termination"] = raw.supports_termination
        if values or _per_job(raw):
            per_template[index] = values
    out: dict[str, Any] = {}
    for job in jobs:
        shared = per_template.get(job.template)
        row = {} if shared is None else {**shared, **_own_settings(job)}
        if row:
            out[job.name] = row
    return out


def _own_settings(job: JobDraft) -> dict[str, Any]:
    """The torc settings an expanded job may have of its own."""
    row: dict[str, Any] = {}
    for field in ("scheduler", "label"):
        if getattr(job, field) is not None:
            row[field] = getattr(job, field)
    for field in ("input_datasets", "output_datasets"):
        if getattr(job, field):
            row[field] = list(getattr(job, field))
    return row


def _per_job(raw: RawJob) -> bool:
    """True when a job entry may have settings that differ per expanded job."""
    texts = (raw.command, raw.invocation_script or "")
    return bool(
        raw.scheduler is not None
        or raw.label is not None
        or raw.input_datasets
        or raw.output_datasets
        or any("${datasets." in text for text in texts)
    )
