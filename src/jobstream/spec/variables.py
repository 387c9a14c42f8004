"""Torc's workflow-level ``variables``: constants substituted into every string first.

Rules copied from torc (``apply_workflow_variables``): names are identifiers, values are
plain strings without ``{name}`` tokens, a variable must not share a name with any
parameter, and once variables are declared every ``{name}`` token in the spec must name
a variable or a parameter (typos are errors). Parameter keys, ``use_parameters`` entries
and the ``variables`` map itself are never rewritten; ``${...}`` is shell syntax and is
left alone. Runs on the parsed data before validation, so key paths still match lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jobstream.spec.locate import KeyPath, Locator
from jobstream.spec.params import load_table
from jobstream.spec.templates import TemplateError, Value, substitute, template_tokens

_SECTIONS = ("jobs", "files", "user_data")


def apply_variables(data: dict[str, Any], loc: Locator, base_dir: Path) -> dict[str, Any]:
    """``data`` with variables substituted (unchanged when there are none)."""
    raw = data.get("variables")
    if not raw:
        return data
    if not isinstance(raw, dict):
        loc.fail(("variables",), "variables must be a mapping of names to strings")
    variables: dict[str, Value] = {}
    for name, value in raw.items():
        key: KeyPath = ("variables", str(name))
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii():
            loc.fail(key, "a variable name must be an identifier ([A-Za-z_][A-Za-z0-9_]*)")
        if not isinstance(value, str):
            loc.fail(key, f"a variable value must be a string, got {value!r}")
        if template_tokens(value):
            loc.fail(key, "a variable value must be a plain string without {name} references")
        variables[name] = value
    parameters = _parameter_names(data, base_dir)
    clashes = sorted(set(variables) & parameters)
    if clashes:
        loc.fail(
            ("variables", clashes[0]),
            f"variables collide with parameter names: {', '.join(clashes)}; rename one of them",
        )
    valid = set(variables) | parameters
    return {
        name: value if name == "variables" else _walk(value, (name,), variables, valid, loc)
        for name, value in data.items()
    }


def _parameter_names(data: dict[str, Any], base_dir: Path) -> set[str]:
    names: set[str] = set()
    params = data.get("parameters")
    if isinstance(params, dict):
        names.update(str(k) for k in params)
    for table in _tables(data, base_dir):
        names.update(table)
    for section in _SECTIONS:
        items = data.get(section)
        if not isinstance(items, list):
            continue
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("parameters"), dict):
                names.update(str(k) for k in item["parameters"])
    return names


def _tables(data: dict[str, Any], base_dir: Path) -> list[tuple[str, ...]]:
    """Column names of every readable parameters_file (unreadable ones fail later)."""
    paths = [data.get("parameters_file")]
    for section in _SECTIONS:
        items = data.get(section)
        if isinstance(items, list):
            paths.extend(i.get("parameters_file") for i in items if isinstance(i, dict))
    columns: list[tuple[str, ...]] = []
    for path in paths:
        if isinstance(path, str):
            try:
                columns.append(load_table(path, base_dir).names)
            except ValueError:
                continue
    return columns


def _walk(
    value: Any, key: KeyPath, variables: dict[str, Value], valid: set[str], loc: Locator
) -> Any:
    if isinstance(value, str):
        for token in template_tokens(value):
            if token not in valid:
                loc.fail(
                    key,
                    f"undefined template name '{{{token}}}': not a variable or a parameter",
                )
        try:
            return substitute(value, variables)
        except TemplateError as exc:
            loc.fail(key, str(exc).replace("parameter", "variable", 1))
    if isinstance(value, list):
        return [_walk(v, (*key, i), variables, valid, loc) for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for name, child in value.items():
            child_key = (*key, str(name))
            if name == "use_parameters":
                out[name] = child
            else:
                out[name] = _walk(child, child_key, variables, valid, loc)
        return out
    return value
