"""Disk work goes on the event loop only while it was just seen to be quick."""

from __future__ import annotations

import pytest

from p2p_transfer.pace import Pace
from waiting import hold_for_blocking


def test_with_no_run_seen_nothing_fits() -> None:
    assert not Pace(budget=10.0).fits(1)


def test_after_a_quick_run_a_run_as_large_fits_and_one_far_larger_does_not() -> None:
    pace = Pace(budget=0.5)
    assert pace.timed(lambda: "written", units=1_000) == "written"
    assert pace.fits(1_000)
    assert not pace.fits(10**12)  # the same pace over many more units: beyond the budget


def test_after_a_slow_run_the_next_does_not_fit_and_a_quick_one_restores_it() -> None:
    pace = Pace(budget=0.1)
    pace.timed(lambda: None, units=1)
    assert pace.fits(1)
    pace.timed(lambda: hold_for_blocking(0.2), units=1)  # the disk slowed down
    assert not pace.fits(1)
    pace.timed(lambda: None, units=1)
    assert pace.fits(1)


def test_a_run_that_fails_still_sets_the_pace() -> None:
    pace = Pace(budget=0.1)
    pace.timed(lambda: None, units=1)

    def slow_failure() -> None:
        hold_for_blocking(0.2)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        pace.timed(slow_failure, units=1)
    assert not pace.fits(1)
