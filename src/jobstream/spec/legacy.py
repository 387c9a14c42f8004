"""Key names older torc releases used, renamed to today's before the spec is checked.

Torc's example specs were written over several releases: the first Rust spec named job
references ``blocked_by_job_names``, ``input_file_names``, ``resource_requirements_name``
and so on, a later one ``blocked_by`` / ``blocked_by_regexes``, and today's is
``depends_on`` / ``depends_on_regexes`` (see ``src/client/workflow_spec.rs`` in those
releases). An old name means exactly what its current name means, so it is renamed on
the parsed data (and in the line map, so errors still point at the line written). Using
an old and a current name for the same field in one entry is an error.
"""

from __future__ import annotations

from typing import Any

from jobstream.spec.locate import KeyPath, Locator

JOB_KEYS: dict[str, str] = {
    "blocked_by": "depends_on",
    "blocked_by_job_names": "depends_on",
    "blocked_by_regexes": "depends_on_regexes",
    "blocked_by_job_name_regexes": "depends_on_regexes",
    "resource_requirements_name": "resource_requirements",
    "scheduler_name": "scheduler",
    "input_file_names": "input_files",
    "input_file_name_regexes": "input_file_regexes",
    "output_file_names": "output_files",
    "output_file_name_regexes": "output_file_regexes",
    "input_user_data_names": "input_user_data",
    "input_user_data_name_regexes": "input_user_data_regexes",
    "output_data_names": "output_user_data",
    "output_user_data_name_regexes": "output_user_data_regexes",
}
"""Old job key → current job key."""

ACTION_KEYS: dict[str, str] = {"scheduler_name": "scheduler"}
"""Old action key → current action key."""


def rename_legacy_keys(data: dict[str, Any], loc: Locator) -> None:
    """Rename old job and action keys in place; the locator's lines get the new key
    paths too."""
    moved: dict[KeyPath, KeyPath] = {}
    for section, renames in (("jobs", JOB_KEYS), ("actions", ACTION_KEYS)):
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for index, item in enumerate(items):
            if isinstance(item, dict) and not renames.keys().isdisjoint(item):
                _rename(item, (section, index), renames, moved, loc)
    if moved:
        lines = loc.lines
        for path in [p for p in lines if p[:3] in moved]:
            lines[(*moved[path[:3]], *path[3:])] = lines[path]


def _rename(
    item: dict[str, Any],
    key: KeyPath,
    renames: dict[str, str],
    moved: dict[KeyPath, KeyPath],
    loc: Locator,
) -> None:
    for old in [name for name in item if name in renames]:
        new = renames[old]
        if new in item:
            loc.fail((*key, old), f"'{old}' is the old name of '{new}'; set one of them, not both")
        item[new] = item.pop(old)
        moved[(*key, old)] = (*key, new)
