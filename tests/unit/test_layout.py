"""The layout's rules, checked on the source: imports point down toward the core (as each
package's ``__init__`` says), only the adapter touches nats-py's private attributes, and
only ``streams/subjects.py`` spells a subject."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import jobstream

SOURCE = Path(jobstream.__file__).parent
CORE = {"model", "events", "decide", "codec", "ids", "errors", "config"}
SERVICES = {"core", "streams"}
# What each layer may import (besides itself).
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "spec": {"core"},
    "streams": {"core"},
    "archive": SERVICES,
    "slurm": SERVICES | {"spec"},
    "scheduler": SERVICES,
    "workers": SERVICES,
    "projections": SERVICES | {"archive"},
    "views": SERVICES | {"archive", "projections"},
    "ops": SERVICES | {"spec", "archive", "projections", "views"},
    "gateway": SERVICES | {"archive", "projections", "views", "ops"},
    "host": SERVICES
    | {"spec", "archive", "scheduler", "workers", "projections", "views", "ops", "gateway"}
    | {"slurm"},
    "cli": SERVICES
    | {"spec", "archive", "scheduler", "workers", "projections", "views", "ops", "gateway"}
    | {"host", "slurm"},
    "client": SERVICES
    | {"spec", "archive", "scheduler", "workers", "projections", "views", "ops", "gateway"}
    | {"host", "slurm"},
    "package": {"client"},  # jobstream/__init__.py exports the Client
    "__main__": {"cli"},
}
ADAPTER = SOURCE / "streams" / "nats_adapter.py"
SUBJECTS = SOURCE / "streams" / "subjects.py"
SUBJECT_LITERAL = re.compile(
    r"^(ev|work|ctl)\.|\$JS|\$KV|\$O\.|_INBOX|^jobstream\.(sql|rebuild|archive|api)"
)


def modules() -> Iterator[tuple[Path, str, ast.Module]]:
    for path in sorted(SOURCE.rglob("*.py")):
        parts = path.relative_to(SOURCE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield path, name, ast.parse(path.read_text())


def layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "package"
    return "core" if parts[1] in CORE else parts[1]


def imported(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("jobstream"):
            assert node.module is not None
            if node.module == "jobstream":
                yield from ((node.lineno, f"jobstream.{a.name}") for a in node.names)
            else:
                yield node.lineno, node.module
        elif isinstance(node, ast.Import):
            yield from ((node.lineno, a.name) for a in node.names if a.name.startswith("jobstream"))


def test_imports_point_down() -> None:
    wrong = [
        f"{path.relative_to(SOURCE)}:{line} ({layer(name)}) imports {target} ({layer(target)})"
        for path, name, tree in modules()
        for line, target in imported(tree)
        if layer(target) != layer(name) and layer(target) not in ALLOWED[layer(name)]
    ]
    assert wrong == []


def test_every_package_says_what_it_is_for_and_may_import() -> None:
    for init in SOURCE.rglob("__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text())) or ""
        assert len(doc) > 100, f"{init} has no paragraph saying what the package is for"
        if init.parent != SOURCE and init.parent.parent == SOURCE:
            assert "May import:" in doc, f"{init} does not say what it may import"


def test_only_the_adapter_touches_private_attributes_of_other_objects() -> None:
    found = [
        f"{path.relative_to(SOURCE)}:{node.lineno}: {ast.unparse(node)}"
        for path, _, tree in modules()
        if path != ADAPTER
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute)
        and node.attr.startswith("_")
        and not node.attr.startswith("__")
        and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))
    ]
    assert found == []


def docstrings(tree: ast.Module) -> set[int]:
    """ids of the docstring constants (prose may name subjects)."""
    found = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        first = body[0] if isinstance(body, list) and body else None
        if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
            found.add(id(first.value))
    return found


def test_subjects_are_spelled_only_in_subjects_py() -> None:
    found = []
    for path, _, tree in modules():
        if path == SUBJECTS:
            continue
        prose = docstrings(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and id(node) not in prose:
                text = node.value.decode("latin-1") if isinstance(node.value, bytes) else node.value
                if isinstance(text, str) and SUBJECT_LITERAL.search(text):
                    found.append(f"{path.relative_to(SOURCE)}:{node.lineno}: {text[:60]!r}")
    assert found == []
