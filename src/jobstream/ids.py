"""Short, sortable, subject-safe identifiers for workflows and workers."""

from __future__ import annotations

import os
import secrets
import socket
import time

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lower case


def _base32(value: int, width: int) -> str:
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 32)
        chars.append(_ALPHABET[digit])
    return "".join(reversed(chars))


def new_workflow_id(now: float | None = None) -> str:
    """A ULID-like id: 9 chars of milliseconds (sorts by time) + 6 random chars."""
    millis = int((time.time() if now is None else now) * 1000)
    return _base32(millis, 9) + _base32(secrets.randbits(30), 6)


def new_worker_id() -> str:
    """Host, pid and randomness: readable in logs, unique across restarts."""
    host = "".join(c if c.isalnum() else "-" for c in socket.gethostname())[:24] or "host"
    return f"{host}-{os.getpid()}-{_base32(secrets.randbits(20), 4)}"
