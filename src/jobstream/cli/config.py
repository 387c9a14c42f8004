"""``jobstream config show``: the merged settings and where each value came from."""

from __future__ import annotations

import typer
from rich.table import Table

from jobstream.cli.common import Json, guarded, out, print_json
from jobstream.config import find_config_file, sources

config_app = typer.Typer(help="Inspect configuration.", no_args_is_help=True)


@config_app.command("show")
@guarded
def show(json_output: Json = False) -> None:
    """Print every setting, its value and its source (default, file, environment)."""
    values = sources()
    if json_output:
        print_json({k: {"value": v, "source": s} for k, (v, s) in values.items()})
        return
    out.print(f"config file: {find_config_file() or '(none)'}")
    table = Table()
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for key, (value, source) in values.items():
        table.add_row(key, str(value), source)
    out.print(table)
