"""The targets of issue 6, judged on one run's measures: printed after the table.

Targets are judged only at the issue's sizes (10,000 jobs for ``noop``/``dag``, 1,000,000
for ``submit`` and ``replay``): at ``--quick`` sizes start-up dominates every rate and
ratio, so those lines say ``n/a``. A target whose measure is missing is not listed.
"""

from __future__ import annotations

from benchmarks.results import Measure

SUITE_JOBS = 10_000
NOOP_RATE = 1_000.0  # jobs/s
HYPERQUEUE_FACTOR = 2.0
SPAWN_SHARE = 0.5  # the stretch target
DAG_SHARE = 0.8  # of noop
SUBMIT_JOBS, SUBMIT_S = 1_000_000, 60.0
SCHEDULER_MIB = 1024.0
REPLAY_EVENTS, REPLAY_RATE = 1_000_000, 100_000.0


def verdicts(results: list[Measure], ceiling: float | None) -> list[str]:
    """One line per target: ``met``, ``NOT met`` or ``n/a`` (a size below the issue's)."""
    found = {(m.benchmark, m.system): m for m in results}
    lines: list[str] = []

    def judge(target: str, ok: bool | None, value: str) -> None:
        verdict = "n/a" if ok is None else "met" if ok else "NOT met"
        lines.append(f"{verdict:<8} {target}: {value}")

    def at_size(m: Measure, size: int) -> bool | None:
        return True if m.count >= size else None

    noop, dag = found.get(("noop", "jobstream")), found.get(("dag", "jobstream"))
    if noop is not None:
        full = at_size(noop, SUITE_JOBS)
        judge("noop >= 1,000 jobs/s", full and noop.rate >= NOOP_RATE, f"{noop.rate:,.0f} jobs/s")
        hq = found.get(("noop", "hyperqueue"))
        if hq is not None:
            ratio = noop.rate / hq.rate
            judge("noop >= 2x HyperQueue", full and ratio >= HYPERQUEUE_FACTOR, f"{ratio:.2f}x")
        for peer in ("dask", "parsl"):
            other = found.get(("noop", peer))
            if other is not None:
                ahead = full and noop.rate > other.rate
                judge(f"noop ahead of {peer}", ahead, f"{other.rate:,.0f} jobs/s")
        if ceiling:
            share = noop.rate / ceiling
            reached = full and share >= SPAWN_SHARE
            judge("stretch: noop >= 50% of the spawn ceiling", reached, f"{share:.0%}")
    if noop is not None and dag is not None:
        share = dag.rate / noop.rate
        judge("dag >= 80% of noop", at_size(dag, SUITE_JOBS) and share >= DAG_SHARE, f"{share:.0%}")
    submit = found.get(("submit", "jobstream"))
    if submit is not None:
        full = at_size(submit, SUBMIT_JOBS)
        value = f"{submit.seconds:.1f} s for {submit.count:,} jobs"
        judge("submit 1,000,000 jobs durable in < 60 s", full and submit.seconds < SUBMIT_S, value)
    scheduler = found.get(("submit", "jobstream scheduler"))
    if scheduler is not None and scheduler.peak_rss_mib is not None:
        full = at_size(scheduler, SUBMIT_JOBS)
        fits = full and scheduler.peak_rss_mib < SCHEDULER_MIB
        judge("scheduler memory < 1 GiB for them", fits, f"{scheduler.peak_rss_mib:,.0f} MiB")
    replay = found.get(("replay", "jobstream"))
    if replay is not None:
        full = at_size(replay, REPLAY_EVENTS)
        judge("replay >= 100,000 events/s", full and replay.rate >= REPLAY_RATE,
              f"{replay.rate:,.0f} events/s")  # fmt: skip
    return lines
