"""Who is acting: the name recorded as the actor of a person's events."""

from __future__ import annotations

import getpass


def current_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def user_actor(user: str | None = None) -> str:
    """The actor of events a person causes (submit, cancel, restart)."""
    return f"user:{user or current_user()}"
