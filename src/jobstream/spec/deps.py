"""Job → job dependencies: explicit, by regex, and inferred from files and user data.

A job depends on (torc's rules): every job named in ``depends_on``; every *other* job
whose name ``depends_on_regexes`` finds (``re.search``, like Rust's ``is_match``; a
regex that finds nothing is an error, as in torc); every job that writes a file it reads;
every job that writes user data it reads; every job that writes into a dataset it reads
(a dataset is final once all of its writers are done). Inference goes through dicts keyed by name,
so it is linear in the number of edges. A job naming itself in ``depends_on`` is an
error; a job that reads what it writes (or matches its own regex) gets no self-edge.
Cycles are errors naming the jobs on one cycle.
"""

from __future__ import annotations

from jobstream.spec.expand import JobDraft
from jobstream.spec.locate import Locator
from jobstream.spec.refs import RegexMatcher, unknown_name_message


def _producers(jobs: list[JobDraft], field: str) -> dict[str, list[int]]:
    out: dict[str, list[int]] = {}
    for index, job in enumerate(jobs):
        for name in getattr(job, field):
            out.setdefault(name, []).append(index)
    return out


def job_dependencies(
    jobs: list[JobDraft], index_of: dict[str, int], loc: Locator
) -> list[tuple[int, ...]]:
    """Sorted, de-duplicated dependency indexes of every job (acyclic, no self-edges)."""
    writes_file = _producers(jobs, "output_files")
    writes_data = _producers(jobs, "output_user_data")
    writes_dataset = _producers(jobs, "output_datasets")
    names = [job.name for job in jobs]
    regex = RegexMatcher(names, "job", loc)
    result: list[tuple[int, ...]] = []
    for me, job in enumerate(jobs):
        if not (
            job.depends_on
            or job.depends_on_regexes
            or job.input_files
            or job.input_user_data
            or job.input_datasets
        ):
            result.append(())
            continue
        deps: set[int] = set()
        for position, name in enumerate(job.depends_on):
            other = index_of.get(name)
            key = ("jobs", job.template, "depends_on", position)
            if other is None:
                loc.fail(key, unknown_name_message("job", name, names))
            if other == me:
                loc.fail(key, f"job '{job.name}' depends on itself")
            deps.add(other)
        for position, pattern in enumerate(job.depends_on_regexes):
            key = ("jobs", job.template, "depends_on_regexes", position)
            deps.update(regex.match(pattern, key))
        for name in job.input_files:
            deps.update(writes_file.get(name, ()))
        for name in job.input_user_data:
            deps.update(writes_data.get(name, ()))
        for name in job.input_datasets:
            deps.update(writes_dataset.get(name, ()))
        deps.discard(me)
        result.append(tuple(sorted(deps)))
    _check_acyclic(jobs, result, loc)
    return result


def _check_acyclic(jobs: list[JobDraft], deps: list[tuple[int, ...]], loc: Locator) -> None:
    """Kahn's algorithm over the jobs that have edges; name one cycle if any is left."""
    involved = {i for i, d in enumerate(deps) if d}
    if not involved:
        return
    children: dict[int, list[int]] = {}
    waiting: dict[int, int] = {}
    for child in involved:
        waiting[child] = len(deps[child])
        for parent in deps[child]:
            children.setdefault(parent, []).append(child)
    ready = [p for p in children if not deps[p]]
    while ready:
        node = ready.pop()
        for child in children.get(node, ()):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    stuck = {node for node, count in waiting.items() if count > 0}
    if not stuck:
        return
    cycle = _one_cycle(stuck, deps)
    names = " -> ".join(jobs[i].name for i in [*cycle, cycle[0]])
    loc.fail(
        ("jobs", jobs[cycle[0]].template),
        f"dependency cycle: {names} (a -> b means a depends on b)",
    )


def _one_cycle(stuck: set[int], deps: list[tuple[int, ...]]) -> list[int]:
    """Follow unresolved dependencies from a stuck job until a job repeats."""
    node = min(stuck)
    seen: dict[int, int] = {}
    path: list[int] = []
    while node not in seen:
        seen[node] = len(path)
        path.append(node)
        node = next(d for d in deps[node] if d in stuck)
    return path[seen[node] :]
