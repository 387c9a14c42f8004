"""Parameter values and the combinations a parameterized job, file or user data expands to.

Value syntax follows torc's ``parameter_expansion.rs``: native lists, ``"0:5"``
(inclusive integer range), ``"1:10:2"`` (step), ``"0.0:1.0:0.25"`` (float range),
list strings ``"[1, 2]"`` / ``"['a','b']"``, ``"{0:5}"`` (braces tolerated), ``"@file"``
(one value per line) and plain scalars; list items and scalars become int, float or
string in that order of preference. Torc's ``parameters_file`` tables (CSV, JSON array
of objects, JSON lines) give one combination per row.

Decisions where torc is silent or loose, kept deliberately:

* ``product`` iterates the parameters in declaration order, the first one slowest
  (torc iterates a hash map, so its order is arbitrary).
* A float range is computed as ``start + i*step`` rounded to the decimals written in the
  range, not by repeated addition, so ``"0.0:1.0:0.1"`` yields ``0.3`` and not
  ``0.30000000000000004``.
* ``use_parameters`` and local ``parameters`` combine (torc drops ``use_parameters``
  when local ones exist): shared ones first in ``use_parameters`` order, a local
  parameter of the same name replaces the shared value. An unknown name in
  ``use_parameters`` is an error (torc ignores it).
* A parameter with no values (``[]``, an empty range) is an error instead of silently
  removing the job.
* A relative ``@file`` or ``parameters_file`` path is looked up in the spec file's
  folder first; when nothing is there, in the current directory (where torc looks: its
  examples name ``examples/parameter_tables/sweep.csv`` from the repository root) and
  then in the folders above the spec's (so the same spec also loads from elsewhere).
"""

from __future__ import annotations

import ast
import csv
import itertools
import json
import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

from jobstream.spec.locate import KeyPath, Locator
from jobstream.spec.templates import Value, as_value

_INT = re.compile(r"[+-]?\d+\Z")
_FLOAT = re.compile(
    r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|inf|infinity|nan)\Z", re.IGNORECASE
)
_DECIMALS = re.compile(r"\.(\d+)\Z")


class Parameterized(Protocol):
    """The parameter fields jobs, files and user data share."""

    @property
    def parameters(self) -> dict[str, Any] | None: ...
    @property
    def parameter_mode(self) -> str | None: ...
    @property
    def use_parameters(self) -> list[str] | None: ...
    @property
    def parameters_file(self) -> str | None: ...
    @property
    def use_parameters_file(self) -> bool | None: ...


class ParamSpace:
    """The named parameters of one item and how their values combine."""

    __slots__ = ("mode", "names", "rows", "values")

    def __init__(
        self,
        names: Sequence[str],
        values: Sequence[Sequence[Value]] = (),
        mode: str = "product",
        rows: Sequence[tuple[Value, ...]] = (),
    ) -> None:
        self.names = tuple(names)
        self.values = tuple(
            v if isinstance(v, range | FloatRange) else [as_value(x) for x in v] for v in values
        )
        self.mode = mode
        self.rows = [tuple(as_value(x) for x in row) for row in rows]

    def size(self) -> int:
        """How many combinations there are, counted without making any."""
        if self.mode == "table":
            return len(self.rows)
        if self.mode == "zip":
            return min((len(v) for v in self.values), default=0)
        return math.prod(len(v) for v in self.values)

    def combos(self) -> Iterable[tuple[Value, ...]]:
        """Every combination, values aligned with :attr:`names`."""
        if self.mode == "table":
            return self.rows
        if self.mode == "zip":
            return zip(*self.values, strict=True)
        return itertools.product(*self.values)


class FloatRange(Sequence[Value]):
    """``start + i*step`` for ``i < length``, rounded to ``places`` decimals (None: not
    rounded), made one value at a time: a range of 10^12 values costs nothing until
    someone expands it (and the job count is checked before that)."""

    __slots__ = ("length", "places", "start", "step")

    def __init__(self, start: float, step: float, length: int, places: int | None) -> None:
        self.start, self.step, self.length, self.places = start, step, length, places

    def __len__(self) -> int:
        return self.length

    def _at(self, i: int) -> Value:
        value = self.start + i * self.step
        return as_value(value if self.places is None else round(value, self.places))

    def __getitem__(self, index: Any) -> Any:
        if isinstance(index, slice):
            return [self._at(i) for i in range(*index.indices(self.length))]
        if not -self.length <= index < self.length:
            raise IndexError(index)
        return self._at(index % self.length)


class SharedParameters:
    """Workflow-level ``parameters`` (parsed) and ``parameters_file`` table."""

    def __init__(self, values: dict[str, Sequence[Value]], table: ParamSpace | None) -> None:
        self.values = values
        self.table = table


def scalar(text: str) -> Value:
    """``"5"`` → 5, ``"0.5"`` → 0.5, anything else stays a string (torc's order)."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def parse_values(raw: Any, base_dir: Path) -> Sequence[Value]:
    """All values one parameter takes; ValueError with a user-facing message if invalid."""
    if isinstance(raw, list):
        return [_list_item(item) for item in raw]
    if isinstance(raw, bool):
        return ["true" if raw else "false"]
    if isinstance(raw, int | float):
        return [raw]
    if not isinstance(raw, str):
        raise ValueError(f"a parameter value must be a list, a string or a number, got {raw!r}")
    text = raw.strip()
    if text.startswith("@"):
        return _file_values(text[1:].strip(), base_dir)
    if text.startswith("{") and text.endswith("}") and "," not in text:
        text = text[1:-1].strip()
    if text.startswith("[") and text.endswith("]"):
        return _parse_list(text)
    if ":" in text:
        return _parse_range(text)
    return [scalar(text)]


def _list_item(item: Any) -> Value:
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float | str):
        return item
    raise ValueError(f"list items must be strings or numbers, got {item!r}")


def _parse_list(text: str) -> list[Value]:
    for loader in (json.loads, ast.literal_eval):
        try:
            items = loader(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError, TypeError):
            continue
        if isinstance(items, list):
            return [_list_item(item) for item in items]
    inner = text[1:-1].strip()
    if not inner:
        return []
    return [scalar(item.strip().strip("'").strip('"')) for item in inner.split(",")]


def _parse_range(text: str) -> Sequence[Value]:
    parts = [p.strip() for p in text.split(":")]
    usage = "expected 'start:end' or 'start:end:step', e.g. '1:10', '0:100:5', '0.0:1.0:0.25'"
    if len(parts) not in (2, 3):
        raise ValueError(f"invalid range {text!r}: {usage}")
    if all(_INT.match(p) for p in parts):
        start, end = int(parts[0]), int(parts[1])
        step = int(parts[2]) if len(parts) == 3 else 1
        if step == 0:
            raise ValueError(f"invalid range {text!r}: the step cannot be zero")
        return range(start, end + 1, step) if step > 0 else range(start, end - 1, step)
    if all(_FLOAT.match(p) for p in parts):
        start_f, end_f = float(parts[0]), float(parts[1])
        step_f = float(parts[2]) if len(parts) == 3 else 1.0
        if step_f == 0 or not all(math.isfinite(v) for v in (start_f, end_f, step_f)):
            raise ValueError(f"invalid range {text!r}: the step must be a non-zero finite number")
        count = max(0, math.floor((end_f - start_f) / step_f + 1e-9) + 1)
        decimals = [_DECIMALS.search(p) for p in parts]
        places = max((len(m.group(1)) for m in decimals if m), default=0)
        exponent = any("e" in p.lower() for p in parts)
        return FloatRange(start_f, step_f, count, None if exponent else places)
    raise ValueError(f"invalid range {text!r}: {usage}")


def resolve_path(name: str, base_dir: Path) -> Path:
    """Where a relative ``@file``/``parameters_file`` is: the spec's folder, the current
    directory or a folder above the spec's, the first that has it (else the spec's)."""
    path = base_dir / name
    if path.exists() or Path(name).is_absolute():
        return path
    for folder in (Path(), *base_dir.resolve().parents):
        if (folder / name).exists():
            return folder / name
    return path


def _file_values(name: str, base_dir: Path) -> list[Value]:
    if not name:
        raise ValueError("'@' must be followed by a file name (one value per line)")
    path = resolve_path(name, base_dir)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read parameter file '{path}': {exc.strerror}") from None
    lines = (line.strip() for line in text.splitlines())
    return [scalar(line) for line in lines if line and not line.startswith("#")]


def load_table(name: str, base_dir: Path) -> ParamSpace:
    """A ``parameters_file`` (CSV with a header, JSON array of objects, or JSON lines)."""
    path = resolve_path(name, base_dir)
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"cannot read parameters_file '{path}': {exc.strerror}") from None
    records: list[dict[str, Any]]
    if path.suffix.lower() == ".csv":
        records = [
            {k: scalar(v.strip()) for k, v in row.items() if k is not None}
            for row in csv.DictReader(text.splitlines())
        ]
    else:
        try:
            loaded = (
                [json.loads(line) for line in text.splitlines() if line.strip()]
                if path.suffix.lower() == ".jsonl"
                else json.loads(text)
            )
        except json.JSONDecodeError as exc:
            raise ValueError(f"parameters_file '{path}' is not valid JSON: {exc.msg}") from None
        if not isinstance(loaded, list) or not all(isinstance(r, dict) for r in loaded):
            raise ValueError(f"parameters_file '{path}' must hold a list of objects")
        records = [{k: _list_item(v) for k, v in r.items()} for r in loaded]
    if not records:
        raise ValueError(f"parameters_file '{path}' has no rows")
    names = list(dict.fromkeys(k for record in records for k in record))
    rows: list[tuple[Value, ...]] = []
    for number, record in enumerate(records, start=1):
        missing = [n for n in names if n not in record]
        if missing:
            raise ValueError(f"parameters_file '{path}' row {number} lacks {', '.join(missing)}")
        rows.append(tuple(record[n] for n in names))
    return ParamSpace(names, mode="table", rows=rows)


def shared_parameters(
    params: dict[str, Any] | None, table: str | None, loc: Locator, base_dir: Path
) -> SharedParameters:
    """Parse the workflow-level parameters once; errors point at their keys."""
    values: dict[str, Sequence[Value]] = {}
    for name, raw in (params or {}).items():
        values[name] = _checked(raw, ("parameters", name), loc, base_dir)
    space = None
    if table is not None:
        try:
            space = load_table(table, base_dir)
        except ValueError as exc:
            loc.fail(("parameters_file",), str(exc))
    return SharedParameters(values, space)


def _checked(raw: Any, key: KeyPath, loc: Locator, base_dir: Path) -> Sequence[Value]:
    try:
        values = parse_values(raw, base_dir)
    except ValueError as exc:
        loc.fail(key, str(exc))
    if len(values) == 0:
        loc.fail(key, f"parameter expands to no values: {raw!r}")
    return values


def item_space(
    item: Parameterized, key: KeyPath, shared: SharedParameters, loc: Locator, base_dir: Path
) -> ParamSpace | None:
    """The parameter space of one job/file/user data, or None when it is not parameterized."""
    if item.parameters_file is not None or item.use_parameters_file:
        return _table_space(item, key, shared, loc, base_dir)
    if item.parameters is None and item.use_parameters is None:
        return None
    merged: dict[str, Sequence[Value]] = {}
    for position, name in enumerate(item.use_parameters or ()):
        if name not in shared.values:
            known = ", ".join(shared.values) or "none"
            loc.fail(
                (*key, "use_parameters", position),
                f"'{name}' is not a workflow-level parameter (defined: {known})",
            )
        merged[name] = shared.values[name]
    for name, raw in (item.parameters or {}).items():
        merged[name] = _checked(raw, (*key, "parameters", name), loc, base_dir)
    if not merged:
        return None
    mode = item.parameter_mode or "product"
    if mode == "zip":
        lengths = {name: len(values) for name, values in merged.items()}
        if len(set(lengths.values())) > 1:
            detail = ", ".join(f"'{n}' has {count}" for n, count in lengths.items())
            loc.fail(
                (*key, "parameter_mode"),
                f"zip needs every parameter to have the same number of values: {detail}",
            )
    return ParamSpace(list(merged), list(merged.values()), mode)


def _table_space(
    item: Parameterized, key: KeyPath, shared: SharedParameters, loc: Locator, base_dir: Path
) -> ParamSpace:
    """The rows of the item's own parameters_file, or of the workflow's."""
    if item.parameters is not None or item.use_parameters is not None or item.parameter_mode:
        loc.fail(
            (*key, "parameters_file"),
            "a parameters_file table cannot be combined with parameters, "
            "parameter_mode or use_parameters",
        )
    if item.parameters_file is not None:
        if item.use_parameters_file:
            loc.fail((*key, "use_parameters_file"), "set parameters_file or this, not both")
        try:
            return load_table(item.parameters_file, base_dir)
        except ValueError as exc:
            loc.fail((*key, "parameters_file"), str(exc))
    if shared.table is None:
        loc.fail((*key, "use_parameters_file"), "needs a workflow-level parameters_file")
    return shared.table
