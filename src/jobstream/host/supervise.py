"""Keep a service running through transient failures (a NATS server restart, a timeout).

The scheduler rebuilds its state from the log and the projector resumes from its
checkpoint, so restarting them after an unexpected error is always safe. User errors
(``JobstreamError``: a busy DuckDB file, a bad setting) are not retried.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

import anyio
from anyio.abc import TaskStatus

from jobstream.errors import JobstreamError

log = logging.getLogger(__name__)
FIRST_DELAY_S = 0.5
MAX_DELAY_S = 10.0


class Service(Protocol):
    def run(self, *, task_status: TaskStatus[None] = ...) -> Coroutine[Any, Any, None]: ...


async def supervised(
    name: str,
    make: Callable[[], Service],
    *,
    task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
) -> None:
    """Run ``make().run`` and start a fresh one whenever it fails unexpectedly."""
    delay, ready = FIRST_DELAY_S, False
    while True:
        try:
            async with anyio.create_task_group() as tg:
                await tg.start(make().run)
                if not ready:
                    ready = True
                    task_status.started()
                delay = FIRST_DELAY_S
        except JobstreamError:
            raise
        except Exception as exc:  # restart on anything else: the log is the state
            log.error("%s failed (%s); restarting in %.1f s", name, _one_line(exc), delay)
            await anyio.sleep(delay)
            delay = min(delay * 2, MAX_DELAY_S)
        else:
            return


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        return _one_line(exc.exceptions[0])
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"
