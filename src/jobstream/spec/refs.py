"""Resolve what each expanded job reads and writes: file, user data and dataset names.

Torc lets a job name its files three ways: exact names (``input_files``), regexes over
file names (``input_file_regexes``, Rust ``Regex::is_match``, i.e. a search anywhere in
the name — kept here as ``re.search``) and ``${files.input.NAME}`` /
``${files.output.NAME}`` in its command or invocation script, which is replaced by the
file's path. User data works the same way; ``${user_data.input.NAME}`` is replaced by the
compact JSON of its ``data``; datasets (torc's directory outputs with many writers) have
exact names and ``${datasets.input.NAME}`` (replaced by the dataset's path) but no
regexes. Jobstream merges the three sources (torc replaces the
explicit list with the command's) in that order without duplicates, and, unlike torc,
rejects an unknown name in ``${...}`` instead of leaving the token in the command.
A regex that matches nothing is an error, as in torc.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Sequence
from typing import Any

from jobstream.spec.expand import JobDraft
from jobstream.spec.locate import KeyPath, Locator

_VARIABLE = re.compile(r"\$\{(files|user_data|datasets)\.(input|output)\.([^}]+)\}")
_SUGGEST_LIMIT = 20_000
_KINDS = {"files": "file", "user_data": "user_data", "datasets": "dataset"}


def unknown_name_message(kind: str, name: str, known: Sequence[str]) -> str:
    """``unknown job 'x'`` plus a close match when one exists."""
    message = f"unknown {kind} '{name}'"
    if len(known) <= _SUGGEST_LIMIT:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        if close:
            return f"{message}; did you mean '{close[0]}'?"
    if not known:
        return f"{message}; the spec defines no {kind} entries"
    if len(known) <= 10:
        return f"{message}; defined: {', '.join(known)}"
    return message


class RegexMatcher:
    """Names matched by a pattern, cached per pattern (parameterized jobs repeat them)."""

    def __init__(self, names: Sequence[str], kind: str, loc: Locator) -> None:
        self.names = names
        self.kind = kind
        self.loc = loc
        self.cache: dict[str, list[int]] = {}

    def match(self, pattern: str, key: KeyPath) -> list[int]:
        """Positions of the names ``pattern`` finds; SpecError if invalid or matching none."""
        found = self.cache.get(pattern)
        if found is None:
            try:
                regex = re.compile(pattern)
            except re.error as exc:
                self.loc.fail(key, f"invalid regex {pattern!r}: {exc}")
            search = regex.search
            found = [i for i, name in enumerate(self.names) if search(name)]
            self.cache[pattern] = found
        if not found:
            self.loc.fail(key, f"regex {pattern!r} matches no {self.kind} name")
        return found


def _merge(*groups: Sequence[str]) -> tuple[str, ...]:
    if sum(1 for g in groups if g) <= 1:
        for group in groups:
            if group:
                return tuple(dict.fromkeys(group))
        return ()
    return tuple(dict.fromkeys(name for group in groups for name in group))


def resolve_io(
    jobs: list[JobDraft],
    files: dict[str, str],
    user_data: dict[str, Any],
    datasets: dict[str, str],
    loc: Locator,
) -> None:
    """Fill every draft's file / user data / dataset lists with checked names; substitute
    ``${...}``."""
    tables: dict[str, dict[str, Any]] = {
        "files": files,
        "user_data": user_data,
        "datasets": datasets,
    }
    matchers = {
        "files": RegexMatcher(list(files), "file", loc),
        "user_data": RegexMatcher(list(user_data), "user_data", loc),
    }
    for job in jobs:
        if not _has_io(job):
            continue
        key: KeyPath = ("jobs", job.template)
        found: dict[tuple[str, str], list[str]] = {}
        if "${" in job.command:
            job.command = _substitute(job.command, tables, found, (*key, "command"), loc)
        script = job.invocation_script
        if script is not None and "${" in script:
            job.invocation_script = _substitute(
                script, tables, found, (*key, "invocation_script"), loc
            )
        for namespace, direction, field, regex_field in _FIELDS:
            explicit: tuple[str, ...] = getattr(job, field)
            patterns: tuple[str, ...] = getattr(job, regex_field) if regex_field else ()
            from_text = found.get((namespace, direction), ())
            if explicit or patterns or from_text:
                _check_names(explicit, tables[namespace], _KINDS[namespace], (*key, field), loc)
                from_regex = _regex_names(
                    matchers, namespace, patterns, (*key, regex_field or field)
                )
                setattr(job, field, _merge(explicit, from_regex, from_text))


_FIELDS: tuple[tuple[str, str, str, str | None], ...] = tuple(
    (namespace, direction, f"{direction}_{suffix}", f"{direction}_{regexes}" if regexes else None)
    for direction in ("input", "output")
    for namespace, suffix, regexes in (
        ("files", "files", "file_regexes"),
        ("user_data", "user_data", "user_data_regexes"),
        ("datasets", "datasets", ""),
    )
)
"""(namespace, direction, field of exact names, field of regexes or None) of every list."""


def _regex_names(
    matchers: dict[str, RegexMatcher], namespace: str, patterns: tuple[str, ...], key: KeyPath
) -> list[str]:
    """Names the ``patterns`` (at ``key``) match, in pattern order."""
    if not patterns:
        return []
    regex = matchers[namespace]
    return [
        regex.names[i]
        for position, pattern in enumerate(patterns)
        for i in regex.match(pattern, (*key, position))
    ]


def _has_io(job: JobDraft) -> bool:
    """Cheap test that lets the common no-files job skip all of the work below."""
    script = job.invocation_script
    return bool(
        "${" in job.command
        or (script is not None and "${" in script)
        or job.input_files
        or job.output_files
        or job.input_file_regexes
        or job.output_file_regexes
        or job.input_user_data
        or job.output_user_data
        or job.input_user_data_regexes
        or job.output_user_data_regexes
        or job.input_datasets
        or job.output_datasets
    )


def _check_names(
    names: tuple[str, ...], known: dict[str, Any], kind: str, key: KeyPath, loc: Locator
) -> None:
    for position, name in enumerate(names):
        if name not in known:
            loc.fail((*key, position), unknown_name_message(kind, name, list(known)))


def _substitute(
    text: str,
    tables: dict[str, dict[str, Any]],
    found: dict[tuple[str, str], list[str]],
    key: KeyPath,
    loc: Locator,
) -> str:
    def replace(match: re.Match[str]) -> str:
        namespace, direction, name = match.group(1), match.group(2), match.group(3)
        table = tables[namespace]
        if name not in table:
            kind = _KINDS[namespace]
            loc.fail(key, f"{match.group(0)}: {unknown_name_message(kind, name, list(table))}")
        found.setdefault((namespace, direction), []).append(name)
        if namespace == "user_data":
            return json.dumps(table[name], separators=(",", ":"), ensure_ascii=False)
        return str(table[name])

    return _VARIABLE.sub(replace, text)
