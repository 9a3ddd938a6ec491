"""Small files stored in batches behind the stream: every one done, memory bounded,
on the loop only while the disk keeps up."""

from __future__ import annotations

import asyncio
import threading

import pytest

from p2p_transfer.transfer.store_behind import StoreBehind
from waiting import hold_for_blocking, stays, wait_until

BACKLOG = 10


class Disk:
    """Stores items; can be held up or slowed down to show what waits for it."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.open.set()
        #: Seconds each item takes to store.
        self.delay = 0.0
        #: The thread that stored each item.
        self.thread_of: dict[int, threading.Thread] = {}
        #: Items the worker thread has started to store (held up while ``open`` is clear).
        self.started: list[int] = []
        self.done: list[tuple[int, int]] = []
        self.batches = 0

    def store(self, item: int) -> int:
        self.started.append(item)
        self.open.wait()
        hold_for_blocking(self.delay)  # a slow disk's pace
        self.thread_of[item] = threading.current_thread()
        if item < 0:
            raise OSError("disk on fire")
        return item * 10

    def finished(self, item: int, outcome: int) -> None:
        assert threading.current_thread() is threading.main_thread()  # on the loop
        self.done.append((item, outcome))

    def behind(self, inline_budget: float = 0.0) -> StoreBehind[int, int]:
        return StoreBehind(
            lambda batch: [self.store(item) for item in batch], self.finished, lambda item: 1,
            BACKLOG, inline_budget,
        )

    def on_the_loop(self, item: int) -> bool:
        return self.thread_of[item] is threading.main_thread()


async def test_every_item_is_stored_and_done_in_order() -> None:
    disk = Disk()
    store = disk.behind()
    for item in range(25):
        await store.put(item)
    await store.drain()
    assert disk.done == [(item, item * 10) for item in range(25)]
    assert not any(disk.on_the_loop(item) for item in range(25))  # no budget: all in threads


async def test_once_a_batch_was_quick_the_next_is_stored_on_the_loop() -> None:
    disk = Disk()
    store = disk.behind(inline_budget=0.2)
    await store.put(0)
    await store.drain()
    for item in range(1, 6):
        await store.put(item)
    await store.drain()
    assert not disk.on_the_loop(0)  # the disk's pace unknown yet: a thread
    assert all(disk.on_the_loop(item) for item in range(1, 6))  # one batch, on the loop
    assert disk.done == [(item, item * 10) for item in range(6)]


async def test_after_a_slow_batch_the_next_goes_to_a_thread() -> None:
    disk = Disk()
    store = disk.behind(inline_budget=0.2)
    for item, delay in enumerate((0.0, 0.3, 0.0, 0.0)):
        disk.delay = delay
        await store.put(item)
        await store.drain()
    # 0: pace unknown; 1: quick pace, on the loop, but slow; 2: after it; 3: quick again
    assert [disk.on_the_loop(item) for item in range(4)] == [False, True, False, True]


async def test_items_queued_while_the_disk_works_go_in_one_batch() -> None:
    disk = Disk()
    calls = 0
    store = disk.behind()
    store_all = store._store_all

    def counting(batch: list[int]) -> list[int]:
        nonlocal calls
        calls += 1
        return store_all(batch)

    store._store_all = counting  # type: ignore[method-assign]
    disk.open.clear()
    await store.put(0)
    await wait_until(lambda: disk.started == [0], what="the first batch in its thread, held up")
    for item in range(1, 6):
        await store.put(item)
    disk.open.set()
    await store.drain()
    assert calls == 2  # [0] and [1..5], not one trip per item
    assert [item for item, _ in disk.done] == list(range(6))


async def test_a_slow_disk_holds_the_stream_at_the_backlog() -> None:
    disk = Disk()
    store = disk.behind()
    disk.open.clear()
    await store.put(0)
    await wait_until(lambda: disk.started == [0], what="item 0 taken into the held-up batch")
    for item in range(1, BACKLOG):
        await store.put(item)  # room for these...
    blocked = asyncio.create_task(store.put(BACKLOG))  # ...not for this one
    await stays(lambda: not blocked.done(), seconds=0.1, what="the put beyond the backlog held")
    assert not blocked.done()
    disk.open.set()
    await asyncio.wait_for(blocked, 5)
    await store.drain()
    assert len(disk.done) == BACKLOG + 1


async def test_a_failure_reaches_the_stream() -> None:
    disk = Disk()
    store = disk.behind()
    await store.put(-1)
    with pytest.raises(OSError, match="disk on fire"):
        await store.drain()
    with pytest.raises(OSError, match="disk on fire"):
        await store.put(1)
