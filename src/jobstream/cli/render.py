"""Human output shared by run, submit --wait and status: progress bar and summaries."""

from __future__ import annotations

import sys
import time
from types import TracebackType

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from jobstream.cli.common import err, out
from jobstream.projections.records import WorkflowStatus, all_counts

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

    def note(self, line: str) -> None:
        """A line above the bar (recent failures while watching)."""
        (self.progress.console if self.live else err).print(line)

    def update(self, record: WorkflowStatus) -> None:
        done = record.done()
        counts = counts_text(all_counts(record.counts))
        self.progress.update(self.task, total=record.job_count, completed=done, counts=counts)
        now = time.monotonic()
        if not self.live and (now - self.last_line > 5 or record.finished):
            self.last_line = now
            err.print(f"{self.title}: {done}/{record.job_count} done  {counts}")


def print_summary(summary: WorkflowStatus) -> None:
    """Counts per state, then every job that did not complete with where its logs are."""
    title = f"workflow {summary.name} ({summary.wf})"
    table = Table(title=title, title_justify="left")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for state, n in all_counts(summary.counts).items():
        if n:
            table.add_row(f"[{STATE_COLORS.get(state, 'white')}]{state}[/]", str(n))
    out.print(table)
    problems = summary.problems
    if not problems:
        return
    table = Table(title="jobs that did not complete", title_justify="left")
    for column in ("job", "state", "rc", "why", "logs"):
        table.add_column(column)
    for p in problems[:50]:
        rc = "" if p.return_code is None else str(p.return_code)
        why = p.reason or (p.stderr_tail.splitlines() or [""])[-1][:200]
        table.add_row(p.name, p.state, rc, why, p.stderr)
    out.print(table)
    missing = summary.job_count - summary.counts.get("completed", 0) - len(problems)
    if missing > 0:
        out.print(
            f'... and {missing} more: jobstream sql "select * from jobs '
            f"where wf = '{summary.wf}' and state <> 'completed'\""
        )
