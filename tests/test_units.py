"""Sizes in IEC units: what every front end prints, and what every size option accepts;
lengths of time as messages say them."""

from __future__ import annotations

import pytest

from p2p_transfer.limits import GiB, KiB, MiB
from p2p_transfer.units import SizeError, format_duration, format_rate, format_size, parse_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (512, "512 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (3 * MiB, "3.0 MiB"),
        (436 * MiB + 12345, "436 MiB"),
        (3 * GiB, "3.0 GiB"),
    ],
)
def test_sizes_are_shown_in_iec_units(size: int, shown: str) -> None:
    assert format_size(size) == shown


def test_rates_are_iec_too() -> None:
    assert format_rate(12.5 * MiB) == "12.5 MiB/s"


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("1048576", 1048576),
        ("500M", 500 * MiB),
        ("500MB", 500 * MiB),
        ("500 MiB", 500 * MiB),
        ("2G", 2 * GiB),
        ("2g", 2 * GiB),
        ("1.5GiB", int(1.5 * GiB)),
        ("1.5K", 1536),
        (" 4 kib ", 4 * KiB),
    ],
)
def test_a_size_is_typed_in_bytes_or_with_a_unit(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["abc", "-5", "5X", "", "1.5", "M", "2 GB extra"])
def test_what_is_not_a_size_says_what_one_looks_like(text: str) -> None:
    with pytest.raises(SizeError, match=r"500M"):
        parse_size(text)


@pytest.mark.parametrize(
    ("seconds", "said"),
    [(0, "0 s"), (3, "3 s"), (59.6, "1 min"), (90, "1 min 30 s"), (600, "10 min"),
     (3600, "1 h"), (3900, "1 h 5 min"), (3661, "1 h 1 min")],
)
def test_durations_are_said_in_their_two_largest_units(seconds: float, said: str) -> None:
    assert format_duration(seconds) == said
