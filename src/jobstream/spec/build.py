"""The loader pipeline: text → checked raw spec → expanded drafts → ``WorkflowDef``.

Order matters and follows torc: key names of older torc releases are renamed and
workflow variables substituted first, then files and user data are expanded (their names
and paths are needed by jobs), then jobs; then ``${files...}`` references and regex
lists are resolved, dependencies inferred and the stored sections checked. Every check
raises before anything is built, so a caller gets either a complete ``WorkflowDef`` or a
SpecError — never a partial result.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from jobstream.model import FileDef, JobDef, Resources, RetryRule, UserDataDef, WorkflowDef
from jobstream.spec.convert import to_raw_workflow
from jobstream.spec.deps import job_dependencies
from jobstream.spec.expand import (
    FileDraft,
    JobDraft,
    UserDataDraft,
    env_text,
    expand_file,
    expand_job,
    expand_user_data,
)
from jobstream.spec.extras import check_sections, collect_extras
from jobstream.spec.legacy import rename_legacy_keys
from jobstream.spec.locate import KeyPath, Locator, format_key
from jobstream.spec.params import ParamSpace, SharedParameters, item_space, shared_parameters
from jobstream.spec.raw import EnvValue, RawFailureRule, RawWorkflow
from jobstream.spec.refs import resolve_io, unknown_name_message
from jobstream.spec.source import read_source
from jobstream.spec.templates import Value, substitute
from jobstream.spec.units import duration_seconds, memory_mib, readable_mib, readable_seconds
from jobstream.spec.variables import apply_variables


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic GC while building: expansion creates millions of acyclic objects
    and the collector's repeated passes over them would double the time of a big sweep."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_workflow(text: str, path: str, fmt: str, max_jobs: int) -> WorkflowDef:
    """Parse, check and expand one spec text (``path`` is used for messages and ``@files``);
    a spec that would expand to more than ``max_jobs`` jobs (or files, or user data) is
    refused before anything is expanded."""
    with _gc_paused():
        return _build(text, path, fmt, max_jobs)


def _build(text: str, path: str, fmt: str, max_jobs: int) -> WorkflowDef:
    base_dir = Path(path).parent
    data, lines = read_source(text, path, fmt)
    loc = Locator(path, lines, text)
    if isinstance(data, dict):
        rename_legacy_keys(data, loc)
        data = apply_variables(data, loc, base_dir)
    raw = to_raw_workflow(data, loc)
    shared = shared_parameters(raw.parameters, raw.parameters_file, loc, base_dir)
    resources = _resources(raw, loc)
    rules = _retry_rules(raw, loc)

    files: list[FileDraft] = []
    spaces = [
        item_space(entry, ("files", index), shared, loc, base_dir)
        for index, entry in enumerate(raw.files or ())
    ]
    _check_count(spaces, "files", max_jobs, loc)
    for index, (entry, space) in enumerate(zip(raw.files or (), spaces, strict=True)):
        files.extend(expand_file(index, entry, space, loc))
    file_paths = {d.name: d.path for d in files}
    _check_unique(files, len(file_paths), "files", "file", loc)

    user_data: list[UserDataDraft] = []
    spaces = [
        item_space(ud, ("user_data", index), shared, loc, base_dir)
        for index, ud in enumerate(raw.user_data or ())
    ]
    _check_count(spaces, "user_data", max_jobs, loc)
    for index, (ud, space) in enumerate(zip(raw.user_data or (), spaces, strict=True)):
        user_data.extend(expand_user_data(index, ud, space, loc))
    data_values = {d.name: d.data for d in user_data}
    _check_unique(user_data, len(data_values), "user_data", "user_data", loc)
    datasets = _datasets(raw, loc)

    base_env = _workflow_env(raw.env, shared, loc)
    jobs: list[JobDraft] = []
    spaces = []
    for index, job in enumerate(raw.jobs):
        _check_job_entry(raw, index, loc)
        spaces.append(item_space(job, ("jobs", index), shared, loc, base_dir))
    _check_count(spaces, "jobs", max_jobs, loc)
    for index, (job, space) in enumerate(zip(raw.jobs, spaces, strict=True)):
        jobs.extend(expand_job(index, job, space, base_env, loc))
    index_of = {job.name: i for i, job in enumerate(jobs)}
    _check_unique(jobs, len(index_of), "jobs", "job", loc)
    _check_job_refs(raw, jobs, resources, loc)

    resolve_io(jobs, file_paths, data_values, datasets, loc)
    depends_on = job_dependencies(jobs, index_of, loc)
    check_sections(raw, list(index_of), loc)
    _check_identifiers(raw, files, loc)
    extras = collect_extras(raw, jobs, files, data)

    return WorkflowDef(
        name=raw.name,
        description=raw.description or "",
        user=raw.user or "",
        jobs=_job_defs(raw, jobs, depends_on, resources, rules),
        files=tuple(FileDef(name=d.name, path=d.path) for d in files),
        user_data=tuple(
            UserDataDef(name=d.name, data=d.data, is_ephemeral=d.is_ephemeral) for d in user_data
        ),
        resource_requirements=resources,
        extras=extras,
    )


# What one job may ask for: beyond these, a number is a typo (a unit missed, a digit
# too many), not a machine.
COUNT_BOUNDS = {"num_cpus": (1, 100_000), "num_gpus": (0, 1_024), "num_nodes": (1, 100_000)}
MAX_MEMORY_MIB = 64 * 1024 * 1024  # 64 TiB
MAX_RUNTIME_S = 366 * 86_400  # a year
MAX_RETRIES = 10_000
MAX_BACKOFF = 100


def _check_count(spaces: list[ParamSpace | None], section: str, limit: int, loc: Locator) -> None:
    """Refuse, before expanding any, a section that would expand past ``limit`` entries."""
    total = 0
    for index, space in enumerate(spaces):
        size = 1 if space is None else space.size()
        total += size
        if total > limit:
            alone = f"this entry alone to {size:,}" if size > 1 else "this entry among them"
            loc.fail(
                (section, index),
                f"{section} would expand to more than {limit:,} ({alone}); split the "
                "campaign, or raise the max_jobs setting if the machines can hold it",
            )


def _resources(raw: RawWorkflow, loc: Locator) -> dict[str, Resources]:
    table: dict[str, Resources] = {}
    for index, entry in enumerate(raw.resource_requirements or ()):
        key: KeyPath = ("resource_requirements", index)
        if entry.name in table:
            loc.fail((*key, "name"), f"duplicate resource_requirements name '{entry.name}'")
        for field, (low, high) in COUNT_BOUNDS.items():
            value = getattr(entry, field)
            if not low <= value <= high:
                loc.fail((*key, field), f"{field} is {value:,}; it must be {low} to {high:,}")
        try:
            memory = memory_mib(entry.memory)
        except ValueError as exc:
            loc.fail((*key, "memory"), str(exc))
        if not 0 < memory <= MAX_MEMORY_MIB:
            loc.fail(
                (*key, "memory"),
                f"memory {entry.memory!r} is {readable_mib(memory)}; it must be more than 0 "
                f"and at most {readable_mib(MAX_MEMORY_MIB)} (one node's)",
            )
        try:
            runtime = duration_seconds(entry.runtime)
        except ValueError as exc:
            loc.fail((*key, "runtime"), str(exc))
        if not 0 < runtime <= MAX_RUNTIME_S:
            loc.fail(
                (*key, "runtime"),
                f"runtime {entry.runtime!r} is {readable_seconds(runtime)}; it must be longer "
                f"than zero and at most {readable_seconds(MAX_RUNTIME_S)}",
            )
        table[entry.name] = Resources(
            num_cpus=entry.num_cpus,
            memory_mib=memory,
            num_gpus=entry.num_gpus,
            num_nodes=entry.num_nodes,
            runtime_s=runtime,
        )
    return table


def _datasets(raw: RawWorkflow, loc: Locator) -> dict[str, str]:
    """Dataset name → path; names are unique."""
    table: dict[str, str] = {}
    for index, entry in enumerate(raw.datasets or ()):
        if entry.name in table:
            loc.fail(("datasets", index, "name"), f"duplicate datasets name '{entry.name}'")
        table[entry.name] = entry.path
    return table


def _check_unique(drafts: list[Any], distinct: int, section: str, kind: str, loc: Locator) -> None:
    """Fail on the first repeated name; ``distinct`` is the size of the name map built."""
    if distinct == len(drafts):
        return
    owner: dict[str, int] = {}
    for draft in drafts:
        if draft.name in owner:
            first = owner[draft.name]
            hint = (
                "; put every parameter of the entry into its name template"
                if first == draft.template
                else f" (first defined by {format_key((section, first))})"
            )
            loc.fail(
                (section, draft.template, "name"),
                f"duplicate {kind} name '{draft.name}' after parameter expansion{hint}",
            )
        owner[draft.name] = draft.template


def _workflow_env(
    env: dict[str, EnvValue] | None, shared: SharedParameters, loc: Locator
) -> dict[str, str]:
    """Workflow-level env, with single-valued workflow parameters substituted (as torc)."""
    if not env:
        return {}
    _check_env_names(env, ("env",), loc)
    single: dict[str, Value] = {n: v[0] for n, v in shared.values.items() if len(v) == 1}
    return {name: substitute(env_text(value), single) for name, value in env.items()}


def _check_env_names(env: dict[str, EnvValue], key: KeyPath, loc: Locator) -> None:
    for name in env:
        if not (name.isidentifier() and name.isascii()):
            loc.fail((*key, name), f"invalid environment variable name '{name}'")


def _check_job_entry(raw: RawWorkflow, index: int, loc: Locator) -> None:
    job = raw.jobs[index]
    if job.priority is not None and job.priority < 0:
        loc.fail(("jobs", index, "priority"), f"priority must be 0 or more, got {job.priority}")
    if job.label is not None and (not job.label or job.label != job.label.strip()):
        loc.fail(
            ("jobs", index, "label"),
            f"a label must be non-empty, without leading or trailing spaces, got {job.label!r}",
        )
    if job.env:
        _check_env_names(job.env, ("jobs", index, "env"), loc)


def _check_job_refs(
    raw: RawWorkflow, jobs: list[JobDraft], resources: dict[str, Resources], loc: Locator
) -> None:
    handlers = {h.name for h in raw.failure_handlers or ()}
    schedulers = {s.name for s in raw.slurm_schedulers or () if s.name is not None}
    checks = (
        ("resource_requirements", resources, "resource_requirements"),
        ("failure_handler", handlers, "failure_handler"),
        ("scheduler", schedulers, "slurm scheduler"),
    )
    last: dict[str, str | None] = {}
    for job in jobs:
        for field, known, kind in checks:
            value = getattr(job, field)
            if value is None or value == last.get(field):
                continue
            if value not in known:
                key = ("jobs", job.template, field)
                loc.fail(key, unknown_name_message(kind, value, sorted(known)))
            last[field] = value


def _check_identifiers(raw: RawWorkflow, files: list[FileDraft], loc: Locator) -> None:
    if raw.enable_ro_crate:
        return
    for draft in files:
        if draft.identifier is not None:
            loc.fail(
                ("files", draft.template, "identifier"),
                "a file identifier needs 'enable_ro_crate: true' at the workflow level",
            )


def _retry_rules(raw: RawWorkflow, loc: Locator) -> dict[str, tuple[RetryRule, ...]]:
    """Each failure handler's rules, their numbers within bounds."""
    return {
        handler.name: tuple(
            _retry_rule(rule, ("failure_handlers", h, "rules", r), loc)
            for r, rule in enumerate(handler.rules)
        )
        for h, handler in enumerate(raw.failure_handlers or ())
    }


def _retry_rule(rule: RawFailureRule, key: KeyPath, loc: Locator) -> RetryRule:
    if not 0 <= rule.max_retries <= MAX_RETRIES:
        loc.fail(
            (*key, "max_retries"),
            f"max_retries is {rule.max_retries:,}; it must be 0 to {MAX_RETRIES:,}",
        )
    if not 1 <= rule.retry_backoff <= MAX_BACKOFF:
        loc.fail(
            (*key, "retry_backoff"),
            f"retry_backoff is {rule.retry_backoff}; it must be 1 (a constant delay) "
            f"to {MAX_BACKOFF}",
        )
    delays = {}
    for field in ("retry_delay", "retry_delay_max"):
        try:
            delays[field] = duration_seconds(getattr(rule, field), field)
        except ValueError as exc:
            loc.fail((*key, field), str(exc))
        if delays[field] > MAX_RUNTIME_S:
            loc.fail(
                (*key, field),
                f"{field} is {readable_seconds(delays[field])}; "
                f"it must be at most {readable_seconds(MAX_RUNTIME_S)}",
            )
    return RetryRule(
        exit_codes=tuple(rule.exit_codes),
        match_all_exit_codes=rule.match_all_exit_codes,
        recovery_script=rule.recovery_script,
        max_retries=rule.max_retries,
        delay_s=delays["retry_delay"],
        backoff=rule.retry_backoff,
        delay_max_s=delays["retry_delay_max"],
    )


def _job_defs(
    raw: RawWorkflow,
    jobs: list[JobDraft],
    depends_on: list[tuple[int, ...]],
    resources: dict[str, Resources],
    rules: dict[str, tuple[RetryRule, ...]],
) -> tuple[JobDef, ...]:
    default = Resources()
    cancel = [j.cancel_on_blocking_job_failure is not False for j in raw.jobs]
    priority = [j.priority or 0 for j in raw.jobs]
    out: list[JobDef] = []
    for index, job in enumerate(jobs):
        rr = job.resource_requirements
        out.append(
            JobDef(
                index=index,
                name=job.name,
                command=job.command,
                resources=resources[rr] if rr is not None else default,
                resource_requirements=rr,
                invocation_script=job.invocation_script,
                env=dict(job.env),
                priority=priority[job.template],
                depends_on=depends_on[index],
                input_files=job.input_files,
                output_files=job.output_files,
                input_user_data=job.input_user_data,
                output_user_data=job.output_user_data,
                failure_handler=job.failure_handler,
                retry_rules=rules.get(job.failure_handler or "", ()),
                cancel_on_blocking_job_failure=cancel[job.template],
            )
        )
    return tuple(out)
