"""Errors a user can cause and fix. The CLI prints them as one line and exits non-zero."""

from __future__ import annotations


class JobstreamError(Exception):
    """Base of every error caused by input or environment rather than by a bug."""

    exit_code = 2


class SpecError(JobstreamError):
    """A workflow spec is invalid; names the file, the line (1-based, when known) and the key."""

    def __init__(self, path: str, line: int | None, key: str, message: str) -> None:
        self.path = path
        self.line = line
        self.key = key
        self.message = " ".join(message.split())  # one line, whatever a parser said
        where = f"{path}:{line}" if line is not None else path
        text = f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"
        super().__init__(text)


class ConfigError(JobstreamError):
    """Settings (file, environment or flags) are invalid."""


class ServerError(JobstreamError):
    """The NATS server cannot be started or reached."""

    exit_code = 3


class IllegalTransition(JobstreamError):
    """A command is not allowed in the job's current state (a pure-core decision)."""

    exit_code = 4


def first_user_error(group: BaseExceptionGroup[BaseException]) -> JobstreamError | None:
    """The first JobstreamError in a (nested) exception group, if any: a task group's
    failure that a user caused is reported as that error."""
    for exc in group.exceptions:
        if isinstance(exc, JobstreamError):
            return exc
        if isinstance(exc, BaseExceptionGroup) and (found := first_user_error(exc)):
            return found
    return None
