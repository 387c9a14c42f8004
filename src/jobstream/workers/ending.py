"""What an attempt leaves when its process ends: its output, kept and stored, and the
Finish command that records how it ended."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from jobstream.decide import Finish
from jobstream.model import WorkItem
from jobstream.streams.subjects import log_object
from jobstream.workers.context import WorkerContext
from jobstream.workers.outputs import Scratch
from jobstream.workers.process import Outcome, Output, read_output

NO_OUTPUT = Output(b"", b"", "")
LOG_PATIENCE_S = 60.0
LOG_RETRY_S = 1.0
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Ending:
    """How an attempt's process ended and what it left."""

    outcome: Outcome
    timed_out: bool
    rule: int | None  # the failure-handler rule that gives the job another attempt
    recovered: int | None  # the return code of that rule's recovery script
    kept: dict[str, Path]  # the output files that were not empty
    stderr_tail: str

    def finish(self, ctx: WorkerContext, attempt: int, item: WorkItem) -> Finish:
        """The command that records it (the item says its rules and earlier retries)."""
        outcome, rule = self.outcome, self.rule
        retry, delay_s = 0, 0.0
        if rule is not None:
            retry = item.retries.get(rule, 0) + 1
            delay_s = item.spec.retry_rules[rule].delay_before(retry)
        return Finish(
            at=time.time(),
            actor=ctx.worker_id,
            worker=ctx.worker_id,
            attempt=attempt,
            return_code=outcome.return_code,
            exec_time_s=outcome.exec_time_s,
            timed_out=self.timed_out,
            retry_rule=rule,
            retry=retry,
            retry_delay_s=delay_s,
            recovery_return_code=self.recovered,
            peak_memory_mib=outcome.peak_memory_mib,
            cpu_time_s=outcome.cpu_time_s,
            stdout=str(self.kept.get("stdout", "")),
            stderr=str(self.kept.get("stderr", "")),
            stderr_tail=self.stderr_tail,
        )


async def keep_output(
    ctx: WorkerContext, scratch: Scratch, item: WorkItem, attempt: int
) -> tuple[dict[str, Path], Output]:
    """Move what the job wrote to its attempt's files and copy it into the LOGS object
    store (call it only when it wrote something)."""
    kept = await anyio.to_thread.run_sync(ctx.outputs.keep, scratch, item.wf, item.job, attempt)
    output = await anyio.to_thread.run_sync(read_output, kept.get("stdout"), kept.get("stderr"))
    for name, data in (("stdout", output.stdout), ("stderr", output.stderr)):
        if data:
            await _store_log(ctx, log_object(item.wf, item.job, attempt, name), data)
    return kept, output


async def _store_log(ctx: WorkerContext, name: str, data: bytes) -> None:
    """Copy one output into LOGS, tried again through a server outage (a cluster electing
    a leader) for up to LOG_PATIENCE_S; then given up with a warning: the job's ending
    must be recorded either way, and the output stays in its file on this node."""
    deadline = time.monotonic() + LOG_PATIENCE_S
    while True:
        try:
            await ctx.logs.put(name, data)
            return
        except Exception as exc:
            if time.monotonic() > deadline:
                log.warning("output %s not stored in LOGS (%s); kept on this node only", name, exc)
                return
            log.warning("output %s not stored yet (%s); trying again", name, exc)
            await anyio.sleep(LOG_RETRY_S)
