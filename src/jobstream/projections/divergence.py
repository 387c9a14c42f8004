"""Read models ahead of the log: found when the projector starts, answered by a rebuild.

DuckDB is on disk at every commit; the embedded nats-server's store only at its ``sync``
interval (docs/operations.md, "Durability"). After a power loss the read models can hold
events that the log lost: their checkpoint lies past the stream's last sequence, or,
once writers went on, the log gives that sequence to another event. Either way the
read models describe a history that did not happen; only a rebuild from the log (and
KV records written afresh) makes them agree with it again.
"""

from __future__ import annotations

from typing import NamedTuple


class Recorded(NamedTuple):
    """The last event the read models hold, as the log stored it."""

    seq: int
    subject: str
    payload: str  # the payload as text ('' for one that is not UTF-8)


def disagreement(
    checkpoint: int, log_end: int, recorded: Recorded | None, in_log: Recorded | None
) -> str | None:
    """Why read models at ``checkpoint`` whose last event is ``recorded`` do not describe
    a log ending at ``log_end`` that holds ``in_log`` at that event's sequence; None if
    they may (the log may be longer: the projector has not applied it yet)."""
    if checkpoint > log_end:
        return f"the read models reach sequence {checkpoint}, the log ends at {log_end}"
    if recorded is None:
        return None
    if in_log is None:
        return f"event {recorded.seq} of the read models is no longer in the log"
    if in_log != recorded:
        return f"the log holds another event at sequence {recorded.seq} than the read models"
    return None
