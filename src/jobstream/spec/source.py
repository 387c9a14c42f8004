"""Read a spec text (YAML, JSON or JSON5) into plain data plus the line of every key.

Parsers give values but not positions, and every later error must name a line, so this
module gives a :data:`LineMap` too: YAML's from PyYAML's composed node tree (which
carries marks), made while parsing; JSON's and JSON5's from a small token scanner that
follows the document's nesting, run only when an error needs a line (scanning every
spec would cost more than parsing it). Duplicate mapping keys, which
all three parsers silently collapse, are reported here because only this layer can
still see them.
"""

from __future__ import annotations

import bisect
import functools
import json
import re
from collections.abc import Iterable
from typing import Any

import json5
import yaml

from jobstream.errors import SpecError
from jobstream.spec.locate import KeyPath, LineMap, LineSource, Locator

FORMATS = ("yaml", "json", "json5")

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _SpecLoader(_BaseLoader):  # type: ignore[misc]
    """SafeLoader that keeps dates as strings so every value stays JSON-able."""

    yaml_implicit_resolvers = {
        first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
    }


def read_source(text: str, path: str, fmt: str) -> tuple[Any, LineSource]:
    """Parse ``text`` as ``fmt`` (SpecError, with the parser's line, on bad syntax or a
    duplicate key); the second value gives the lines of its keys when called."""
    try:
        if fmt == "yaml":
            data, lines = _read_yaml(text, path)
            return data, lambda: lines
        if fmt in ("json", "json5"):
            data = _read_json(text, path, fmt)
            return data, functools.partial(_json_lines, text, path)
    except RecursionError:
        raise SpecError(path, None, "", "nested too deeply to be a workflow spec") from None
    raise SpecError(path, None, "", f"unknown spec format {fmt!r}; valid: {', '.join(FORMATS)}")


def _read_yaml(text: str, path: str) -> tuple[Any, LineMap]:
    loader = _SpecLoader(text)
    try:
        node = loader.get_single_node()
        lines: LineMap = {}
        if node is not None:
            lines[()] = node.start_mark.line + 1
            _walk_yaml(node, (), lines, path)
        data = loader.construct_document(node) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise SpecError(path, line, "", f"YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow
        line = text.count("\n", 0, exc.position) + 1
        raise SpecError(path, line, "", f"YAML error: {exc.reason} ({exc.character!r})") from None
    except yaml.YAMLError as exc:
        raise SpecError(path, None, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    return data, lines


def _walk_yaml(node: yaml.Node, key: KeyPath, lines: LineMap, path: str) -> None:
    """Record the line of every mapping key and sequence item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.value == "<<":
                continue
            name = str(key_node.value)
            line = key_node.start_mark.line + 1
            lines[(*key, name)] = line
            if name in seen:
                raise Locator(path, lines).error((*key, name), "duplicate key") from None
            seen.add(name)
            _walk_yaml(value_node, (*key, name), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines[(*key, index)] = item.start_mark.line + 1
            _walk_yaml(item, (*key, index), lines, path)


_JSON5_ERROR = re.compile(r"<string>:(\d+)\s*(.*)", re.S)


class _DuplicateKey(Exception):
    """Raised by the parsers' hook; the scanner then says where."""


def _unique_keys(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    items = pairs if isinstance(pairs, list) else list(pairs)  # both parsers give lists
    found = dict(items)
    if len(found) < len(items):
        raise _DuplicateKey
    return found


def _read_json(text: str, path: str, fmt: str) -> Any:
    try:
        if fmt == "json":
            return json.loads(text, object_pairs_hook=_unique_keys)
        return json5.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey:
        _json_lines(text, path)  # raises the SpecError naming the key and its line
        raise SpecError(path, None, "", "duplicate key") from None
    except json.JSONDecodeError as exc:
        raise SpecError(path, exc.lineno, "", f"JSON syntax error: {exc.msg}") from None
    except ValueError as exc:
        match = _JSON5_ERROR.match(str(exc))
        if match is None:
            raise SpecError(path, None, "", f"JSON5 syntax error: {exc}") from None
        line, message = int(match.group(1)), match.group(2)
        raise SpecError(path, line, "", f"JSON5 syntax error: {message}") from None


_TOKEN = re.compile(
    r"""
      (?P<skip>(?:\s+|//[^\n]*|/\*.*?\*/)+)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<punct>[{}\[\]:,])
    | (?P<atom>[^\s{}\[\]:,"'/]+)
    """,
    re.S | re.X,
)


class _Frame:
    """One open object or array while scanning."""

    __slots__ = ("index", "is_object", "key", "keys", "path")

    def __init__(self, path: KeyPath, is_object: bool) -> None:
        self.path = path
        self.is_object = is_object
        self.index = 0
        self.key: str | None = None
        self.keys: set[str] = set()


def _json_lines(text: str, path: str) -> LineMap:
    """Lines of keys and items in an already-valid JSON/JSON5 text (best effort)."""
    return _JsonScan(text, path).lines()


class _JsonScan:
    """One pass over the tokens of a JSON/JSON5 text, noting where keys and items are."""

    def __init__(self, text: str, path: str) -> None:
        self.text = text
        self.path = path
        self.newlines = [m.start() for m in re.finditer("\n", text)]
        self.found: LineMap = {}
        self.stack: list[_Frame] = []
        self.expect_key = False

    def lines(self) -> LineMap:
        pos = 0
        while pos < len(self.text):
            match = _TOKEN.match(self.text, pos)
            if match is None:
                break
            pos, kind, token = match.end(), match.lastgroup, match.group()
            if kind == "skip":
                continue
            if not self.found:
                self.found[()] = self.line_at(match.start())
            if self.expect_key and kind in ("string", "atom"):
                self.key(_key_text(token) if kind == "string" else token, match.start())
            elif kind == "punct":
                if not self.punct(token, match.start()):
                    break
            else:
                self.item(match.start())
        return self.found

    def line_at(self, pos: int) -> int:
        return bisect.bisect_right(self.newlines, pos) + 1

    def value_path(self) -> KeyPath | None:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if top.is_object:
            return (*top.path, top.key) if top.key is not None else None
        return (*top.path, top.index)

    def key(self, name: str, start: int) -> None:
        top = self.stack[-1]
        key = (*top.path, name)
        self.found[key] = self.line_at(start)
        if name in top.keys:
            raise Locator(self.path, self.found).error(key, "duplicate key")
        top.keys.add(name)
        top.key = name
        self.expect_key = False

    def punct(self, token: str, start: int) -> bool:
        """Open or close a container, or move to its next item; False where the text
        stops making sense (the scan ends there)."""
        if token in "{[":
            where = self.value_path()
            if where is None:
                return False
            self.item(start)
            self.stack.append(_Frame(where, token == "{"))
            self.expect_key = token == "{"
            return True
        if token in "}]":
            if not self.stack:
                return False
            self.stack.pop()
            self.expect_key = False
        elif token == ",":
            if not self.stack:
                return False
            top = self.stack[-1]
            top.index += 1
            top.key = None
            self.expect_key = top.is_object
        return True

    def item(self, start: int) -> None:
        """A value starts here: an array's item gets its line."""
        where = self.value_path()
        if where is not None and self.stack and not self.stack[-1].is_object:
            self.found[where] = self.line_at(start)


def _key_text(token: str) -> str:
    """The key a quoted JSON/JSON5 string token stands for."""
    if "\\" not in token:
        return token[1:-1]
    try:
        value = json5.loads(token)
    except ValueError:
        return token[1:-1]
    return value if isinstance(value, str) else token[1:-1]
