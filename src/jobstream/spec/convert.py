"""Validate parsed data against the file-format structs and explain failures.

msgspec does the checking (unknown keys, types, required keys, enum values); this
module turns its one-line message and ``$.jobs[0].x`` path into a SpecError that
names the line, the dotted key, what is wrong and what would be valid — including a
difflib suggestion for a misspelt key.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from typing import Any, Literal, get_args, get_origin

import msgspec

from jobstream.spec.locate import KeyPath, Locator
from jobstream.spec.raw import RawWorkflow

_MESSAGE = re.compile(r"(?P<what>.*?)(?: - at `\$(?P<where>.*)`)?\Z", re.S)
_PATH_PART = re.compile(r"\.([^.\[]+)|\[(\d+)\]|\[\.\.\.\]")
_UNKNOWN = re.compile(r"Object contains unknown field `(.*)`\Z")
_MISSING = re.compile(r"Object missing required field `(.*)`\Z")
_EXPECTED = re.compile(r"Expected `(.*)`, got `(.*)`\Z")
_ENUM = re.compile(r"Invalid enum value (.*)\Z")

_TYPE_WORDS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean (true/false)",
    "null": "null",
    "array": "a list",
    "object": "a mapping",
}


def to_raw_workflow(data: Any, loc: Locator) -> RawWorkflow:
    """Convert parsed data to :class:`RawWorkflow` or raise a located SpecError."""
    if not isinstance(data, dict):
        got = _TYPE_WORDS.get(_json_kind(data), type(data).__name__)
        loc.fail((), f"a workflow spec must be a mapping at the top level, got {got}")
    _check_characters(data, loc)
    try:
        return msgspec.convert(data, RawWorkflow)
    except msgspec.ValidationError as exc:
        raise _explain(str(exc), loc) from None


def _check_characters(data: dict[str, Any], loc: Locator) -> None:
    """Join the UTF-16 surrogate pairs a JSON5 escape leaves apart (``\\ud83d\\ude00``),
    in place, and refuse a lone surrogate: it is not a character and could be neither
    stored nor shown. Iterative: a parser's nesting limit, not Python's, bounds depth."""
    pending: list[tuple[KeyPath, Any]] = [((), data)]
    while pending:
        key, value = pending.pop()
        if isinstance(value, dict):
            for name in [n for n in value if isinstance(n, str) and not _is_text(n)]:
                value[_joined(name, (*key, name), loc)] = value.pop(name)
            for name, item in value.items():
                if isinstance(item, str) and not _is_text(item):
                    value[name] = _joined(item, (*key, name), loc)
                pending.append(((*key, name), item))
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, str) and not _is_text(item):
                    value[index] = _joined(item, (*key, index), loc)
                pending.append(((*key, index), item))


def _is_text(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def _joined(value: str, key: KeyPath, loc: Locator) -> str:
    try:
        return value.encode("utf-16", "surrogatepass").decode("utf-16")
    except UnicodeDecodeError:
        lone = next(c for c in value if "\ud800" <= c <= "\udfff")
        loc.fail(key, f"{lone!r} is not a character (a lone UTF-16 surrogate)")


def _explain(text: str, loc: Locator) -> Exception:
    match = _MESSAGE.match(text)
    what = match.group("what") if match else text
    where = (match.group("where") if match else None) or ""
    key = _parse_path(where)
    if unknown := _UNKNOWN.match(what):
        name = unknown.group(1)
        return loc.error((*key, name), _unknown_key_message(name, _fields_at(key)))
    if missing := _MISSING.match(what):
        name = missing.group(1)
        return loc.error(key, f"missing required key '{name}'")
    if expected := _EXPECTED.match(what):
        options = [w.strip() for w in expected.group(1).split("|")]
        options = [w for w in options if w != "null"] or options
        want = " or ".join(_TYPE_WORDS.get(w, w) for w in options)
        got = _TYPE_WORDS.get(expected.group(2), expected.group(2))
        return loc.error(key, f"wrong type: expected {want}, got {got}")
    if enum := _ENUM.match(what):
        valid = ", ".join(repr(v) for v in _literal_values(key))
        return loc.error(key, f"invalid value {enum.group(1)}; valid values: {valid}")
    return loc.error(key, what)


def _parse_path(where: str) -> KeyPath:
    key: list[str | int] = []
    for part in _PATH_PART.finditer(where):
        if part.group(1) is not None:
            key.append(part.group(1))
        elif part.group(2) is not None:
            key.append(int(part.group(2)))
        else:
            break
    return tuple(key)


def _unknown_key_message(name: str, valid: list[str]) -> str:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    if close:
        return f"unknown key '{name}'; did you mean {' or '.join(repr(c) for c in close)}?"
    return f"unknown key '{name}'; valid keys: {', '.join(valid)}"


def _type_at(key: KeyPath) -> Any:
    """The declared type at ``key`` inside RawWorkflow (None when it cannot be followed)."""
    current: Any = RawWorkflow
    for part in key:
        current = _unwrap(current, int if isinstance(part, int) else str)
        if current is None:
            return None
        if isinstance(part, int):
            args = get_args(current)
            current = args[0] if get_origin(current) is list and args else None
        elif isinstance(current, type) and issubclass(current, msgspec.Struct):
            hints = typing.get_type_hints(current)
            current = hints.get(part)
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return None
    return current


def _unwrap(tp: Any, step: type) -> Any:
    """Pick the member of an optional/union type that a path step can go into."""
    if get_origin(tp) in (typing.Union, types.UnionType):
        for member in get_args(tp):
            if step is int and get_origin(member) is list:
                return member
            if step is str and (
                get_origin(member) is dict
                or (isinstance(member, type) and issubclass(member, msgspec.Struct))
            ):
                return member
        return None
    return tp


def _fields_at(key: KeyPath) -> list[str]:
    tp = _unwrap(_type_at(key), str)
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return [f.name for f in msgspec.structs.fields(tp)]
    return []


def _literal_values(key: KeyPath) -> list[Any]:
    tp = _type_at(key)
    members = get_args(tp) if get_origin(tp) in (typing.Union, types.UnionType) else (tp,)
    for member in members:
        if get_origin(member) is Literal:
            return list(get_args(member))
    return []


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "str"
    if isinstance(value, list):
        return "array"
    return "object" if isinstance(value, dict) else type(value).__name__
