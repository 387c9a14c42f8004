"""Memory strings to MiB (rounded up) and ISO 8601 durations to seconds."""

from __future__ import annotations

import pytest

from jobstream.spec.units import duration_seconds, memory_mib


@pytest.mark.parametrize(
    ("text", "mib"),
    [
        ("512m", 512),
        ("2g", 2048),
        ("2G", 2048),
        ("1.5g", 1536),
        ("100k", 1),
        ("1t", 1024 * 1024),
        ("2GiB", 2048),
        ("1048576", 1),
        ("1048577", 2),
        (1048576 * 3, 3),
        ("0", 0),
        (" 4g ", 4096),
    ],
)
def test_memory(text: str | int, mib: int) -> None:
    assert memory_mib(text) == mib


@pytest.mark.parametrize("text", ["", "g", "2x", "-1g", "1.2.3g", "2 gallons", True])
def test_bad_memory(text: str) -> None:
    with pytest.raises(ValueError, match="invalid memory"):
        memory_mib(text)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT30M", 1800),
        ("PT2H", 7200),
        ("P1DT2H", 93600),
        ("PT1.5H", 5400),
        ("PT1M30S", 90),
        ("PT0.5S", 1),
        ("P1W", 604800),
        ("P1Y", 31_557_600),
        ("P1M", 2_629_800),
        ("pt10m", 600),
        (3600, 3600),
    ],
)
def test_runtime(text: str | int, seconds: int) -> None:
    assert duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "P", "PT", "P1DT", "30m", "1:00:00", "PT-5M", "PTxH"])
def test_bad_runtime(text: str) -> None:
    with pytest.raises(ValueError, match="invalid runtime"):
        duration_seconds(text)
