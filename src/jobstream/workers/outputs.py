"""Where a job's stdout and stderr go: reusable scratch files, kept only when non-empty.

Most short jobs print nothing, and creating two files per job was the largest single cost
of running one (inode allocation is kernel time per job, whatever the job does). A
worker therefore writes each job's output into scratch files it reuses (truncated at the
next spawn); a non-empty file is moved to ``<log_dir>/<wf>/<job>.<attempt>.<stream>``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class Scratch:
    """One pair of scratch files, held by one running job."""

    stdout: Path
    stderr: Path


class OutputFiles:
    """The scratch files of one worker and the folders kept output goes to."""

    def __init__(self, log_dir: Path, worker_id: str) -> None:
        self.log_dir = log_dir
        self.scratch = log_dir / ".scratch" / worker_id
        self.free: list[Scratch] = []  # made once each: building paths per job is not free
        self.made = 0
        self.folders: set[str] = set()

    def take(self) -> Scratch:
        """A free pair (created at its first spawn, truncated at every later one)."""
        if self.free:
            return self.free.pop()
        index, self.made = self.made, self.made + 1
        self.scratch.mkdir(parents=True, exist_ok=True)
        return Scratch(self.scratch / f"{index}.stdout", self.scratch / f"{index}.stderr")

    def give_back(self, scratch: Scratch) -> None:
        self.free.append(scratch)

    def keep(self, scratch: Scratch, wf: str, job: int, attempt: int) -> dict[str, Path]:
        """Move the non-empty files to their final names (blocking: run it in a thread)."""
        kept: dict[str, Path] = {}
        for stream, path in zip(STREAMS, (scratch.stdout, scratch.stderr), strict=True):
            if _size(path):
                final = self.path(wf, job, attempt, stream)
                if wf not in self.folders:
                    final.parent.mkdir(parents=True, exist_ok=True)
                    self.folders.add(wf)
                os.replace(path, final)
                kept[stream] = final
        return kept

    def path(self, wf: str, job: int, attempt: int, stream: str) -> Path:
        """The final name of one attempt's output stream."""
        return self.log_dir / wf / f"{job}.{attempt}.{stream}"

    def close(self) -> None:
        """Remove the scratch files (a stopping worker's, or after a crash, by hand)."""
        with contextlib.suppress(OSError):
            shutil.rmtree(self.scratch)


def written(*paths: Path) -> bool:
    """Whether a job wrote anything to these files (a stat each)."""
    return any(_size(path) for path in paths)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
