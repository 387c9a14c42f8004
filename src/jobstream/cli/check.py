"""``jobstream check SPEC``: validate and expand a spec without touching any server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from jobstream.cli.common import Json, guarded, out, print_json, settings_from
from jobstream.ops.check import spec_summary
from jobstream.spec import load_spec


@guarded
def check(
    spec: Annotated[Path, typer.Argument(help="workflow spec (.yaml, .yml, .json, .json5)")],
    json_output: Json = False,
) -> None:
    """Validate a workflow spec and print what it expands to."""
    summary = spec_summary(load_spec(spec, max_jobs=settings_from().max_jobs))
    if json_output:
        print_json(summary)
        return
    out.print(f"[bold]{summary['name']}[/]: {spec} is valid")
    table = Table(show_header=False, box=None)
    for key in ("jobs", "files", "user_data", "edges", "roots"):
        table.add_row(key.replace("_", " "), str(summary[key]))
    out.print(table)
    classes = summary["classes"]
    assert isinstance(classes, dict)
    out.print("hardware classes:")
    for name, count in sorted(classes.items()):
        out.print(f"  {name}: {count} job{'s' if count != 1 else ''}")
