"""Load torc-compatible workflow specs (YAML, JSON, JSON5) into an expanded ``WorkflowDef``.

``load_spec("spec.yaml")`` reads a file and picks the format from its suffix;
``parse_spec(text, path, fmt)`` does the same for text already in memory. Both return
a fully expanded, checked workflow or raise :class:`jobstream.errors.SpecError` naming
the file, the line and the key; nothing partial is ever returned.

Superset of torc, on purpose: the three formats accept the same keys; ``env`` values may
be numbers; memory and runtime accept decimals; ``${files...}`` merges with explicit
``input_files``/``output_files`` instead of replacing them; key names of older torc
releases (``blocked_by``, ``resource_requirements_name``, ...) are accepted; a relative
``@file``/``parameters_file`` is also looked up in the current directory (as torc does)
and above the spec's folder. See the module docstrings of ``legacy``, ``params``,
``templates``, ``expand``, ``refs`` and ``deps`` for the expansion rules.

May import: the core only.
"""

from __future__ import annotations

from pathlib import Path

from jobstream.errors import SpecError
from jobstream.model import WorkflowDef
from jobstream.spec.build import build_workflow
from jobstream.spec.source import FORMATS

__all__ = ["DEFAULT_MAX_JOBS", "FORMATS", "SUFFIXES", "load_spec", "parse_spec"]

SUFFIXES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".json5": "json5"}
"""File suffix → spec format."""


DEFAULT_MAX_JOBS = 10_000_000  # the max_jobs setting's default


def parse_spec(text: str, path: str, fmt: str, *, max_jobs: int = DEFAULT_MAX_JOBS) -> WorkflowDef:
    """Expand spec ``text`` written in ``fmt`` ("yaml", "json" or "json5").

    ``path`` names the source in errors; relative ``@file`` parameter values and
    ``parameters_file`` tables are read from its folder. More than ``max_jobs`` jobs
    (counted before anything is expanded) is an error.
    """
    if fmt not in FORMATS:
        raise SpecError(path, None, "", f"unknown spec format {fmt!r}; valid: {', '.join(FORMATS)}")
    return build_workflow(text, path, fmt, max_jobs)


def load_spec(path: str | Path, *, max_jobs: int = DEFAULT_MAX_JOBS) -> WorkflowDef:
    """Read and expand the spec file at ``path``; the suffix picks the format."""
    name = str(path)
    fmt = SUFFIXES.get(Path(path).suffix.lower())
    if fmt is None:
        valid = ", ".join(SUFFIXES)
        raise SpecError(name, None, "", f"cannot tell the spec format from the suffix; use {valid}")
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise SpecError(name, None, "", f"cannot read the spec: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SpecError(name, None, "", f"the spec is not UTF-8 text: {exc.reason}") from None
    return parse_spec(text, name, fmt, max_jobs=max_jobs)
