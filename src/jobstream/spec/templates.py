"""``{name}`` / ``{name:fmt}`` templates, compiled once and rendered per combination.

Only the names a caller passes are placeholders: ``${files.input.f1}``, ``${HOME}``,
``{}``, bash brace expansion and any ``{other}`` stay untouched, which is why this does
not use ``str.format`` on the whole string. A ``{`` right after ``$`` never starts a
placeholder (shell syntax), as in torc's workflow-variable handling.

Values print the way torc prints them, so one spec gives the same job names in torc and
jobstream: integers in decimal, strings as is, floats in the shortest round-trip form
without exponent and without a trailing ``.0`` (``1.0`` → ``1``, ``1e-05`` → ``0.00001``).
A format spec is a Python format spec (a superset of torc's ``03d`` and ``.4f``); a spec
that cannot format the value (``{name:03d}`` on a string) raises :class:`TemplateError`.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import Decimal

Value = int | float | str
"""One parameter value after parsing."""

Part = str | tuple[int, str | None]
"""A literal piece of a template, or (index into the combination, format spec)."""

_PLACEHOLDER = re.compile(r"(?<!\$)\{([A-Za-z_][A-Za-z0-9_]*)(?::([^{}]*))?\}")
_TOKEN = re.compile(r"(?<!\$)\{([^{}]*)\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class TemplateError(ValueError):
    """A format spec does not apply to a parameter's value."""

    def __init__(self, name: str, value: Value, spec: str) -> None:
        self.name = name
        self.spec = spec
        kind = type(value).__name__
        super().__init__(
            f"format spec ':{spec}' cannot format parameter '{name}' = {value!r} ({kind})"
        )


def display(value: Value) -> str:
    """The plain text of a parameter value (torc's ``Display``)."""
    if type(value) is int or type(value) is str:
        return str(value)
    if isinstance(value, float):
        return _float_text(value)
    return str(value)


def _float_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"
    text = format(Decimal(repr(value)), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


class TorcFloat(float):
    """A float parameter value whose plain ``format`` is torc's text (``1.0`` → ``1``)."""

    __slots__ = ()

    def __format__(self, spec: str) -> str:
        return _float_text(self) if not spec else float.__format__(self, spec)


def as_value(value: Value) -> Value:
    """Wrap floats so that fast ``str.format`` rendering prints them the torc way."""
    return TorcFloat(value) if type(value) is float else value


def format_value(name: str, value: Value, spec: str | None) -> str:
    """``value`` rendered with an optional Python format spec."""
    if spec is None or spec == "":
        return display(value)
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        raise TemplateError(name, value, spec) from None


class Template:
    """A string split into literal parts and placeholders of known parameter names."""

    __slots__ = ("fmt", "names", "parts")

    def __init__(self, parts: tuple[Part, ...], names: Sequence[str]) -> None:
        self.parts = parts
        self.names = tuple(names)
        pieces: list[str] = []
        for part in parts:
            if isinstance(part, str):
                pieces.append(part.replace("{", "{{").replace("}", "}}"))
            else:
                index, spec = part
                pieces.append(f"{{{index}:{spec}}}" if spec else f"{{{index}}}")
        self.fmt = "".join(pieces)

    def uses(self, name: str, spec: str) -> bool:
        """True when a placeholder formats parameter ``name`` with ``spec``."""
        return any(
            not isinstance(part, str) and self.names[part[0]] == name and part[1] == spec
            for part in self.parts
        )

    def render(self, combo: Sequence[Value]) -> str:
        """The text for one combination (values aligned with ``names``).

        ``str.format`` does the work (fast, in C) when the values are plain ints, strings
        and :class:`TorcFloat`; anything it rejects goes through :meth:`render_checked`
        for a precise error.
        """
        try:
            return self.fmt.format(*combo)
        except (ValueError, TypeError, IndexError, KeyError):
            return self.render_checked(combo)

    def render_checked(self, combo: Sequence[Value]) -> str:
        """Part-by-part rendering that raises TemplateError naming the parameter."""
        names = self.names
        out: list[str] = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            else:
                index, spec = part
                value = combo[index]
                if spec is None and type(value) is int:
                    out.append(str(value))
                else:
                    out.append(format_value(names[index], value, spec))
        return "".join(out)


def compile_template(text: str, names: Sequence[str]) -> str | Template:
    """``text`` itself when it has no placeholder of ``names``, else a Template."""
    if "{" not in text or not names:
        return text
    index = {name: i for i, name in enumerate(names)}
    parts: list[Part] = []
    last = 0
    for match in _PLACEHOLDER.finditer(text):
        position = index.get(match.group(1))
        if position is None:
            continue
        if match.start() > last:
            parts.append(text[last : match.start()])
        parts.append((position, match.group(2)))
        last = match.end()
    if not parts:
        return text
    if last < len(text):
        parts.append(text[last:])
    return Template(tuple(parts), names)


def render(template: str | Template, combo: Sequence[Value]) -> str:
    """Render a compiled template (a plain string renders as itself)."""
    return template if type(template) is str else template.render(combo)  # type: ignore[union-attr]


def substitute(text: str, values: dict[str, Value]) -> str:
    """One-off substitution of ``values`` into ``text``."""
    names = list(values)
    return render(compile_template(text, names), [as_value(values[n]) for n in names])


def template_tokens(text: str) -> list[str]:
    """Identifier names of every ``{name}``/``{name:fmt}`` token not preceded by ``$``."""
    if "{" not in text:
        return []
    found: list[str] = []
    for match in _TOKEN.finditer(text):
        name = match.group(1).split(":", 1)[0]
        if _IDENTIFIER.match(name):
            found.append(name)
    return found
