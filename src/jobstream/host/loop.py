"""Run a jobstream process's async main from sync code, with the interpreter set for it.

Every ``jobstream`` command is one such process. The settings below are process-wide,
so the process's owner applies them (here, or a test session), never a library class:

- Switch interval: spawning a job (worker) and running a DuckDB statement (projector,
  replays) happen in threads that take the GIL back many times; at Python's default
  5 ms interval each of those hand-backs waits out the busy event loop.
- Garbage collector: reading events allocates millions of short-lived objects, and at
  the default threshold the young generation is collected far too often to be worth it.

docs/benchmarks.md ("Design choices, measured") gives what each setting saved.
"""

from __future__ import annotations

import gc
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio

T = TypeVar("T")
SWITCH_INTERVAL_S = 0.0002
GC_YOUNG_THRESHOLD = 20_000


def tune_for_throughput() -> None:
    """Apply both settings (never undoing a stronger one already made)."""
    sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
    young, *older = gc.get_threshold()
    if 0 < young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)


def _without_tls_eof_warning(record: logging.LogRecord) -> bool:
    """nats-py's protocol answers a closed TLS connection the way plain ones want, which
    asyncio (and uvloop) warn about at every close; it is harmless."""
    return "eof_received() has no effect when using ssl" not in record.getMessage()


def run_async(func: Callable[..., Awaitable[T]], *args: Any, debug: bool = False) -> T:
    """Run ``func(*args)`` on asyncio (uvloop's where installed: jobs are spawned in
    threads, never through the loop) in a tuned interpreter, logging warnings (with
    ``debug``, everything)."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    logging.getLogger("asyncio").addFilter(_without_tls_eof_warning)
    tune_for_throughput()
    try:
        import uvloop  # noqa: F401
    except ImportError:
        options: dict[str, Any] = {}
    else:
        options = {"use_uvloop": True}
    return anyio.run(func, *args, backend="asyncio", backend_options=options)
