"""Durations, memory sizes and times as a job request (and a site's configuration) writes them."""

import pytest

from tiercel.jobspec.values import parse_duration, parse_memory


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("10m", 600), ("1h30m", 5400),
                                               ("2d", 172800), ("01:30:00", 5400), ("05:00", 300), (2.5, 2.5)])
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(("text", "mb"), [(512, 512), ("512M", 512), ("4G", 4096), ("1t", 1024 * 1024)])
def test_memory_sizes(text: str | int, mb: int) -> None:
    assert parse_memory(text) == mb
