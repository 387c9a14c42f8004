"""How many dispatches of one class a worker holds beyond what it can run at once.

A slot should never wait for the claim of its next job: with short jobs the next ones are
fetched and claimed while the current ones run. The extra is sized so the held jobs are
about ``window_s`` of work at the class's recent pace, so long jobs are never hoarded (a
class whose jobs run for seconds holds none extra, and other workers take them).
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 0.5
MAX_EXTRA = 256
WEIGHT = 0.2  # of the newest sample in the moving average


@dataclass
class ClassPace:
    """Per hardware class: the jobs held (fetched, not finished) and their recent run time."""

    slots: int  # how many of the class fit in the empty worker
    held: int = 0
    waiting: int = 0  # held jobs without room yet
    mean_run_s: float | None = None

    def observe(self, run_s: float) -> None:
        """Fold one job's slot time (spawn to reap) into the moving average."""
        if self.mean_run_s is None:
            self.mean_run_s = run_s
        else:
            self.mean_run_s += WEIGHT * (run_s - self.mean_run_s)

    def extra(self) -> int:
        """Jobs to hold beyond the slots; 0 until the pace is known."""
        if self.mean_run_s is None:
            return 0
        return min(MAX_EXTRA, int(self.slots * WINDOW_S / max(self.mean_run_s, 1e-4)))

    def demand(self, fit_now: int) -> int:
        """How many more dispatches to fetch now.

        Without extra, only what fits right now (a held job must not wait for room that
        another class holds); with extra, up to slots + extra held in all, refilled once
        half the extra is used: a fetch is a round trip to the server and a pull request
        for it to serve, too much to pay per job.
        """
        extra = self.extra()
        if extra == 0:
            return max(0, min(fit_now - self.waiting, self.slots - self.held))
        want = self.slots + extra - self.held
        return want if want >= max(1, extra // 2) else 0
