"""Key paths and the locator that turns them into ``SpecError``\\ s with file and line.

Every check in the spec loader knows *where* in the document it is looking as a key
path such as ``("jobs", 2, "depends_on", 0)``. The locator maps that path to the line the
parser recorded for it (or for its nearest recorded ancestor) so each error names the
file, the 1-based line and the dotted key ``jobs[2].depends_on[0]``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NoReturn

from jobstream.errors import SpecError

KeyPath = tuple[str | int, ...]
"""A path from the document root: mapping keys are ``str``, sequence positions ``int``."""

LineMap = dict[KeyPath, int]
"""1-based line of every mapping key and sequence item the parser saw."""

LineSource = Callable[[], LineMap]
"""Makes the LineMap of a document (once, when a line is first needed)."""

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


def format_key(path: KeyPath) -> str:
    """``("jobs", 2, "depends_on", 0)`` → ``jobs[2].depends_on[0]``."""
    out: list[str] = []
    for part in path:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}" if out else part)
        else:
            out.append(f"[{part!r}]")
    return "".join(out)


class Locator:
    """Raises SpecErrors for one document; knows its file name, lines and source text."""

    def __init__(self, path: str, lines: LineMap | LineSource, text: str = "") -> None:
        self.path = path
        self._lines = lines
        self.text = text

    @property
    def lines(self) -> LineMap:
        if callable(self._lines):
            self._lines = self._lines()
        return self._lines

    def line_of(self, key: KeyPath) -> int | None:
        """The recorded line of ``key`` or of its closest ancestor that has one."""
        for end in range(len(key), -1, -1):
            line = self.lines.get(key[:end])
            if line is not None:
                return line
        return self._search_text(key)

    def _search_text(self, key: KeyPath) -> int | None:
        """Fallback when the parser recorded nothing: the first line mentioning a key."""
        names = [part for part in key if isinstance(part, str)]
        if not names or not self.text:
            return None
        needle = names[-1]
        for number, text in enumerate(self.text.splitlines(), start=1):
            if needle in text:
                return number
        return None

    def error(self, key: KeyPath, message: str) -> SpecError:
        """A SpecError at ``key`` (not raised, so callers can add context)."""
        return SpecError(self.path, self.line_of(key), format_key(key), message)

    def fail(self, key: KeyPath, message: str) -> NoReturn:
        """Raise a SpecError at ``key``."""
        raise self.error(key, message)
