"""Memory sizes and ISO 8601 durations, normalized to the units ``Resources`` stores.

Torc writes memory as ``"512m"``/``"2g"`` (binary units, a bare number is bytes) and
runtime as an ISO 8601 duration (``"PT30M"``, ``"P1DT2H"``; a year is 365.25 days and
a month 30.44 days, as in torc). jobstream stores whole MiB and whole seconds, rounding
*up* so a job never gets less than it asked for. Superset of torc: decimals
(``"1.5g"``, ``"PT1.5H"``), an optional ``b``/``ib`` suffix (``"2GiB"``), a plain integer
memory (bytes) and a plain integer runtime (seconds).
"""

from __future__ import annotations

import math
import re
from fractions import Fraction

MIB = 1024 * 1024
_MEMORY_UNITS = {"": 1, "k": 1024, "m": MIB, "g": 1024 * MIB, "t": 1024 * 1024 * MIB}
_MEMORY = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(?:([kmgt])(?:i?b)?|b)?\s*\Z", re.I)

_NUMBER = r"(\d+(?:[.,]\d+)?)"
_DURATION = re.compile(
    rf"P(?:{_NUMBER}Y)?(?:{_NUMBER}M)?(?:{_NUMBER}W)?(?:{_NUMBER}D)?"
    rf"(?:T(?:{_NUMBER}H)?(?:{_NUMBER}M)?(?:{_NUMBER}S)?)?\Z"
)
_DURATION_SECONDS = (31_557_600, 2_629_800, 604_800, 86_400, 3_600, 60, 1)

MEMORY_HELP = "use a number with an optional unit k, m, g or t (binary), e.g. '512m', '2g'"
RUNTIME_HELP = "use an ISO 8601 duration such as 'PT30M', 'PT2H' or 'P1DT2H'"


def memory_mib(value: str | int) -> int:
    """MiB needed for ``value`` (``"2g"`` → 2048, ``"100k"`` → 1); ValueError if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"invalid memory {value!r}: {MEMORY_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid memory {value}: it cannot be negative")
        return math.ceil(Fraction(value, MIB))
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(f"invalid memory {value!r}: {MEMORY_HELP}")
    number, unit = match.group(1), (match.group(2) or "").lower()
    return math.ceil(Fraction(number) * _MEMORY_UNITS[unit] / MIB)


_CLOCK = re.compile(r"(?:(\d+)-)?(?:(\d+):)?(\d+):(\d{2})\Z")


def walltime_seconds(value: str, what: str = "walltime") -> float:
    """Seconds from '3600', 'PT1H', or Slurm's clock: '1-00:00:00', '01:00:00', '9:58'
    (minutes:seconds); ValueError naming ``what`` if malformed."""
    text = value.strip()
    if clock := _CLOCK.match(text):
        days, hours, minutes, seconds = (int(g or 0) for g in clock.groups())
        return float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    try:
        return float(duration_seconds(text, what))
    except ValueError:
        raise ValueError(
            f"invalid {what} {value!r}: use HH:MM:SS (or D-HH:MM:SS, MM:SS), seconds, "
            "or an ISO 8601 duration such as 'PT2H'"
        ) from None


_DAYS_HOURS = re.compile(r"(\d+)-(\d+)(?::(\d+))?\Z")


def slurm_time_seconds(value: str) -> float:
    """Seconds of a Slurm ``--time``: as :func:`walltime_seconds`, except that a bare
    number is minutes and ``D-H`` / ``D-H:M`` are days and hours (Slurm's forms)."""
    text = value.strip()
    if text.isdigit():
        return float(int(text) * 60)
    if found := _DAYS_HOURS.match(text):
        days, hours, minutes = (int(g or 0) for g in found.groups())
        return float(((days * 24 + hours) * 60 + minutes) * 60)
    return walltime_seconds(text)


def gres_gpus(gres: str | None) -> int:
    """GPUs per node that a Slurm ``--gres`` asks for: ``gpu``, ``gpu:2``, ``gpu:a100:2``
    (other resources ignored); ValueError if unreadable."""
    total = 0
    for entry in (gres or "").split(","):
        parts = entry.strip().split(":")
        if parts[0] != "gpu":
            continue
        count = parts[-1] if len(parts) == 3 or (len(parts) == 2 and parts[1].isdigit()) else "1"
        if len(parts) > 3 or not count.isdigit():
            raise ValueError(f"cannot read GPUs from gres {gres!r} (e.g. gpu:2, gpu:a100:2)")
        total += int(count)
    return total


def slurm_mem_mib(mem: str | None) -> int | None:
    """MiB per node that a Slurm ``--mem`` asks for: a bare number is megabytes, as in
    Slurm; None when unset or 0 (all of the node's); ValueError if unreadable."""
    if mem is None:
        return None
    text = mem.strip()
    try:
        mib = int(text) if text.isdigit() else memory_mib(text)
    except ValueError as exc:
        raise ValueError(f"mem: {exc}") from None
    return mib or None


def duration_seconds(value: str | int, what: str = "runtime") -> int:
    """Seconds in ``value`` (``"PT30M"`` → 1800), rounded up; ValueError naming ``what``
    if malformed."""
    if isinstance(value, bool):
        raise ValueError(f"invalid {what} {value!r}: {RUNTIME_HELP}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid {what} {value}: it cannot be negative")
        return value
    text = value.strip().upper()
    match = _DURATION.match(text)
    if match is None or text in ("P", "PT") or text.endswith("T"):
        raise ValueError(f"invalid {what} {value!r}: {RUNTIME_HELP}")
    total = Fraction(0)
    for part, seconds in zip(match.groups(), _DURATION_SECONDS, strict=True):
        if part is not None:
            total += Fraction(part.replace(",", ".")) * seconds
    return math.ceil(total)


def readable_mib(mib: int) -> str:
    """``2048`` → ``2 GiB``: the largest unit that leaves at least one."""
    value, units = float(mib), ("MiB", "GiB", "TiB", "PiB", "EiB")
    for unit in units:
        if value < 1024 or unit == units[-1]:
            return f"{_number(value)} {unit}"
        value /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def readable_seconds(seconds: int) -> str:
    """``5400`` → ``1.5 hours``; years past a year."""
    for unit, size in (("years", 31_557_600), ("days", 86_400), ("hours", 3_600), ("minutes", 60)):
        if seconds >= size:
            return f"{_number(seconds / size)} {unit}"
    return f"{seconds} seconds"


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
