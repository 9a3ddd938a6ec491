"""Whether blocking disk work may run on the event loop: only while it was just seen
to be quick.

A thread hop costs a receiver more than a fast disk's write of a batch, but a slow
disk must never hold the loop (other sessions, the app) for long. So each run of a
job is timed, and the next run goes on the loop only when the last one's pace says
it will fit a small budget; the first run, and the one after a slow run, go to a
worker thread, where they are timed too.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class Pace:
    """The last run's seconds per unit of work (a file of a batch of small files, a
    pump's batch of up to PUMP_BUFFER_SIZE)."""

    def __init__(self, budget: float) -> None:
        #: Seconds a run may take on the loop.
        self.budget = budget
        self._seconds_per_unit: float | None = None  # None: no run yet

    def fits(self, units: int) -> bool:
        """True when a run of ``units`` would take at most ``budget`` at the last pace."""
        pace = self._seconds_per_unit
        return pace is not None and pace * units <= self.budget

    def timed(self, job: Callable[[], T], units: int) -> T:
        """Run ``job`` (``units`` of work) here, in whatever thread this is, and keep its pace."""
        started = time.perf_counter()
        try:
            return job()
        finally:
            self._seconds_per_unit = (time.perf_counter() - started) / max(units, 1)
