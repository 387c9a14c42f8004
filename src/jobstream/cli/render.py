"""Human output shared by run, submit --wait and status: progress bar and summaries."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobstream.cli.common import err, out
from jobstream.progress import WorkflowStatus

STATE_COLORS = {
    "completed": "green",
    "failed": "red",
    "timed_out": "magenta",
    "canceled": "yellow",
    "running": "cyan",
    "blocked": "dim",
}


def counts_text(counts: dict[str, int]) -> str:
    return "  ".join(
        f"[{STATE_COLORS.get(state, 'white')}]{state} {n}[/]" for state, n in counts.items() if n
    )


class ProgressView:
    """A live bar on a terminal; a line every few seconds otherwise (CI logs)."""

    def __init__(self, title: str) -> None:
        self.live = sys.stderr.isatty()
        self.title = title
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[counts]}"),
            console=err,
            transient=False,
        )
        self.task = self.progress.add_task(title, total=None, counts="")
        self.last_line = 0.0

    def __enter__(self) -> ProgressView:
        if self.live:
            self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.live:
            self.progress.stop()

    def update(self, status: WorkflowStatus) -> None:
        done = status.done_count()
        counts = counts_text(status.counts())
        self.progress.update(self.task, total=status.job_count, completed=done, counts=counts)
        now = time.monotonic()
        if not self.live and (now - self.last_line > 5 or status.finished):
            self.last_line = now
            err.print(f"{self.title}: {done}/{status.job_count} done  {counts}")


def last_line(path: str) -> str:
    """The last non-empty line of a log file, when it is on this machine."""
    try:
        with open(path, "rb") as log:
            log.seek(0, 2)
            log.seek(max(0, log.tell() - 4096))
            lines = log.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1][:200] if lines else ""


def print_summary(status: WorkflowStatus) -> None:
    """Counts per state, then every job that did not complete with where its logs are."""
    table = Table(title=f"workflow {status.name} ({status.wf})", title_justify="left")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state, n in status.counts().items():
        if n:
            table.add_row(f"[{STATE_COLORS.get(state, 'white')}]{state}[/]", str(n))
    out.print(table)
    problems = status.problems()
    if not problems:
        return
    table = Table(title="jobs that did not complete", title_justify="left")
    for column in ("job", "state", "rc", "why", "logs"):
        table.add_column(column)
    for p in problems[:50]:
        rc = "" if p.return_code is None else str(p.return_code)
        why = p.reason or last_line(p.stderr)
        table.add_row(p.name, p.state, rc, why, p.stderr)
    out.print(table)
    if len(problems) > 50:
        out.print(f"... and {len(problems) - 50} more (jobstream status {status.wf} --json)")
