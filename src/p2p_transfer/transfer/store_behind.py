"""Storing small files in batches while the stream reads on.

A 4 KiB file costs less disk time than the thread hop that stores it. So the
receiver queues small files and stores whatever is queued in one step: in a worker
thread while the disk is slow or not yet known, so the network is read meanwhile;
on the event loop itself once batches are seen to take only a few milliseconds,
where the hop would cost more than the overlap gains.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

from p2p_transfer.limits import INLINE_DISK_BUDGET
from p2p_transfer.pace import Pace

Item = TypeVar("Item")
Outcome = TypeVar("Outcome")


class StoreBehind(Generic[Item, Outcome]):
    """Runs ``store`` on queued items a batch at a time (``store`` takes the batch and
    gives an outcome for each item, in order), then ``done`` on the loop.

    Each batch is timed. One that the last batch's pace says will take at most
    ``inline_budget`` seconds is stored on the loop: with 10,000 files of 4 KiB on
    2 cores, a hop per batch made the receive 8–19 % slower (bench, alternately).
    Any other batch (the first, or after a slow one) goes to a worker thread, so a
    slow disk never holds the loop for more than one batch.

    At most ``backlog`` bytes (by ``size_of``) wait in the queue: ``put`` waits
    for the worker beyond that, so a slow disk slows the stream instead of
    filling memory. A failure of ``store`` is raised by the next ``put`` or by
    ``drain``.
    """

    def __init__(
        self,
        store: Callable[[list[Item]], list[Outcome]],
        done: Callable[[Item, Outcome], None],
        size_of: Callable[[Item], int],
        backlog: int,
        inline_budget: float = INLINE_DISK_BUDGET,
    ) -> None:
        self._store = store
        self._pace = Pace(inline_budget)  # seconds per file of the last batch
        self._done = done
        self._size_of = size_of
        self._backlog = backlog
        self._queued: list[Item] = []
        self._queued_bytes = 0
        self._worker: asyncio.Task[None] | None = None
        self._taken = asyncio.Event()  # set each time the worker empties the queue

    async def put(self, item: Item) -> None:
        """Queue ``item``; waits while the queue holds ``backlog`` bytes or more."""
        self._raise_failure()
        self._queued.append(item)
        self._queued_bytes += self._size_of(item)
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._work())
        while self._queued_bytes >= self._backlog:
            self._taken.clear()
            await self._taken.wait()
            self._raise_failure()

    async def drain(self) -> None:
        """Wait until every queued item is stored and done."""
        if self._worker is not None:
            await self._worker

    def cancel(self) -> None:
        """Stop taking batches (one already in its thread still runs to its end)."""
        if self._worker is not None:
            self._worker.cancel()

    async def _work(self) -> None:
        try:
            while self._queued:
                batch, self._queued, self._queued_bytes = self._queued, [], 0
                self._taken.set()
                if self._pace.fits(len(batch)):
                    outcomes = self._store_all(batch)
                else:
                    outcomes = await asyncio.to_thread(self._store_all, batch)
                for item, outcome in zip(batch, outcomes, strict=True):
                    self._done(item, outcome)
        finally:
            self._taken.set()  # a put waiting for room learns of a failure too

    def _store_all(self, batch: list[Item]) -> list[Outcome]:
        return self._pace.timed(lambda: self._store(batch), len(batch))

    def _raise_failure(self) -> None:
        worker = self._worker
        if worker is None or not worker.done() or worker.cancelled():
            return
        if (failure := worker.exception()) is not None:
            raise failure
