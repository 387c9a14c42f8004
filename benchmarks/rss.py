"""Peak resident memory of a set of long-lived processes, sampled while a benchmark runs.

Job processes (``true``) live for a millisecond and are not part of any orchestrator, so
the sampler sums the RSS of the process tree it watches, skipping short-lived leaves by
name (the workload's command).
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import psutil

SAMPLE_S = 0.2


class PeakRss:
    """Context manager: the peak of the summed RSS of ``roots`` and their descendants."""

    def __init__(self, roots: Iterable[int], skip_names: Iterable[str] = ("true", "bash", "sh")):
        self.roots = list(roots)
        self.skip = set(skip_names)
        self.peak_bytes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def peak_mib(self) -> float:
        return self.peak_bytes / 2**20

    def _tree(self) -> list[psutil.Process]:
        """Every process once, though a root may also descend from another root."""
        procs: dict[int, psutil.Process] = {}
        for pid in self.roots:
            try:
                root = psutil.Process(pid)
                procs.update((p.pid, p) for p in [root, *root.children(recursive=True)])
            except psutil.Error:
                continue
        return list(procs.values())

    def _sample(self) -> None:
        while True:
            total = 0
            for proc in self._tree():
                try:
                    if proc.name() not in self.skip:
                        total += proc.memory_info().rss
                except psutil.Error:
                    continue
            self.peak_bytes = max(self.peak_bytes, total)
            if self._stop.wait(SAMPLE_S):
                return
