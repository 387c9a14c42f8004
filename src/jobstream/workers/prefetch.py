"""How many dispatches of one class a worker holds beyond what it can run at once.

A slot should never wait for the claim of its next job: with short jobs the next ones are
fetched and claimed while the current ones run. The extra is sized so the held jobs are
about ``WINDOW_S`` of work at the class's recent pace, so long jobs are never hoarded (a
class whose jobs run for seconds holds none extra, and other workers take them).

A pace is a guess about the next jobs, and it can be wrong (issue 23: a worker that had
just run quick jobs claimed all 40 long ones dispatched next; a worker joining later ran
none). So extra is fetched only while the pace is current (a job of the class ended
within ``RECENT_S``, or within a few of the pace's gaps between two ends), and a job
claimed ahead that finds no room while no job of its class ends for ``PATIENCE_S`` is
handed back (:meth:`ClassPace.stuck`) to be dispatched again, perhaps to another worker.
"""

from __future__ import annotations

from dataclasses import dataclass

WINDOW_S = 0.5
MAX_EXTRA = 256
WEIGHT = 0.2  # of the newest sample in the moving average
RECENT_S = 0.1  # a pace is current while a job ended this recently ...
GAPS = 4  # ... or within this many of the pace's gaps between two ends
PATIENCE_S = 2 * WINDOW_S  # no end for this long: the jobs claimed ahead go back


@dataclass
class ClassPace:
    """Per hardware class: the jobs held (fetched, not finished) and their recent run time.

    Times (``now``) are ``time.monotonic()`` readings, passed in.
    """

    slots: int  # how many of the class fit in the empty worker
    held: int = 0
    waiting: int = 0  # held jobs without room yet
    mean_run_s: float | None = None
    last_end: float = float("-inf")

    def observe(self, run_s: float, now: float) -> None:
        """Fold one job's slot time (spawn to reap), ended at ``now``, into the pace."""
        if self.mean_run_s is None:
            self.mean_run_s = run_s
        else:
            self.mean_run_s += WEIGHT * (run_s - self.mean_run_s)
        self.last_end = now

    def extra(self) -> int:
        """Jobs to hold beyond the slots by the pace: 0 until it is known."""
        if self.mean_run_s is None:
            return 0
        return min(MAX_EXTRA, int(self.slots * WINDOW_S / max(self.mean_run_s, 1e-4)))

    def current(self, now: float) -> bool:
        """Whether jobs still end at the pace: the last one ended within ``RECENT_S`` or
        ``GAPS`` of the pace's gaps between two ends."""
        if self.mean_run_s is None:
            return False
        return now - self.last_end <= max(RECENT_S, GAPS * self.mean_run_s / self.slots)

    def stuck(self, now: float) -> bool:
        """No job of the class ended for ``PATIENCE_S``: the jobs claimed ahead go back."""
        return now - self.last_end > PATIENCE_S

    def demand(self, fit_now: int, now: float) -> int:
        """How many more dispatches to fetch now.

        Without extra (or a pace no longer current), only what fits right now (a held
        job must not wait for room that another class holds); with extra, up to slots +
        extra held in all, refilled once half the extra is used: a fetch is a round trip
        to the server and a pull request for it to serve, too much to pay per job.
        """
        extra = self.extra() if self.current(now) else 0
        if extra == 0:
            return max(0, min(fit_now - self.waiting, self.slots - self.held))
        want = self.slots + extra - self.held
        return want if want >= max(1, extra // 2) else 0
