"""Resolve what each expanded job reads and writes: file and user data names.

Torc lets a job name its files three ways: exact names (``input_files``), regexes over
file names (``input_file_regexes``, Rust ``Regex::is_match``, i.e. a search anywhere in
the name — kept here as ``re.search``) and ``${files.input.NAME}`` /
``${files.output.NAME}`` in its command or invocation script, which is replaced by the
file's path. User data works the same way; ``${user_data.input.NAME}`` is replaced by the
compact JSON of its ``data``. Jobstream merges the three sources (torc replaces the
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

_VARIABLE = re.compile(r"\$\{(files|user_data)\.(input|output)\.([^}]+)\}")
_SUGGEST_LIMIT = 20_000


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
    jobs: list[JobDraft], files: dict[str, str], user_data: dict[str, Any], loc: Locator
) -> None:
    """Fill every draft's file / user data lists with checked names; substitute ``${...}``."""
    file_names = list(files)
    data_names = list(user_data)
    file_regex = RegexMatcher(file_names, "file", loc)
    data_regex = RegexMatcher(data_names, "user_data", loc)
    for job in jobs:
        if not _has_io(job):
            continue
        key: KeyPath = ("jobs", job.template)
        found: dict[tuple[str, str], list[str]] = {}
        if "${" in job.command:
            job.command = _substitute(job.command, files, user_data, found, (*key, "command"), loc)
        script = job.invocation_script
        if script is not None and "${" in script:
            job.invocation_script = _substitute(
                script, files, user_data, found, (*key, "invocation_script"), loc
            )
        for direction in ("input", "output"):
            file_field = f"{direction}_files"
            data_field = f"{direction}_user_data"
            explicit_files: tuple[str, ...] = getattr(job, file_field)
            explicit_data: tuple[str, ...] = getattr(job, data_field)
            _check_names(explicit_files, files, "file", (*key, file_field), loc)
            _check_names(explicit_data, user_data, "user_data", (*key, data_field), loc)
            file_patterns: tuple[str, ...] = getattr(job, f"{direction}_file_regexes")
            data_patterns: tuple[str, ...] = getattr(job, f"{data_field}_regexes")
            from_file_regex = [
                file_names[i]
                for k, p in enumerate(file_patterns)
                for i in file_regex.match(p, (*key, f"{direction}_file_regexes", k))
            ]
            from_data_regex = [
                data_names[i]
                for k, p in enumerate(data_patterns)
                for i in data_regex.match(p, (*key, f"{data_field}_regexes", k))
            ]
            setattr(
                job,
                file_field,
                _merge(explicit_files, from_file_regex, found.get(("files", direction), ())),
            )
            setattr(
                job,
                data_field,
                _merge(explicit_data, from_data_regex, found.get(("user_data", direction), ())),
            )


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
    )


def _check_names(
    names: tuple[str, ...], known: dict[str, Any], kind: str, key: KeyPath, loc: Locator
) -> None:
    for position, name in enumerate(names):
        if name not in known:
            loc.fail((*key, position), unknown_name_message(kind, name, list(known)))


def _substitute(
    text: str,
    files: dict[str, str],
    user_data: dict[str, Any],
    found: dict[tuple[str, str], list[str]],
    key: KeyPath,
    loc: Locator,
) -> str:
    def replace(match: re.Match[str]) -> str:
        namespace, direction, name = match.group(1), match.group(2), match.group(3)
        table: dict[str, Any] = files if namespace == "files" else user_data
        if name not in table:
            kind = "file" if namespace == "files" else "user_data"
            loc.fail(key, f"{match.group(0)}: {unknown_name_message(kind, name, list(table))}")
        found.setdefault((namespace, direction), []).append(name)
        if namespace == "files":
            return str(table[name])
        return json.dumps(table[name], separators=(",", ":"), ensure_ascii=False)

    return _VARIABLE.sub(replace, text)
