"""Clean-up that a cancellation must not cut short."""

from __future__ import annotations

import asyncio

import pytest

from p2p_transfer.tasks import run_to_the_end
from waiting import stays


async def _cancel_while_it_runs(work_done: asyncio.Event, release: asyncio.Event,
                                fail: bool = False) -> asyncio.Task[str]:
    async def work() -> str:
        await release.wait()
        work_done.set()
        if fail:
            raise OSError("disk on fire")
        return "done"

    started = asyncio.Event()

    async def caller() -> str:
        started.set()
        return await run_to_the_end(work())

    task = asyncio.create_task(caller())
    await started.wait()
    task.cancel()
    await stays(lambda: not task.done(), seconds=0.1, what="the cancelled caller still waiting")
    return task


async def test_a_cancelled_caller_waits_for_the_work_then_is_cancelled() -> None:
    work_done, release = asyncio.Event(), asyncio.Event()
    task = await _cancel_while_it_runs(work_done, release)
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert work_done.is_set()


async def test_the_work_s_own_failure_comes_before_the_cancellation() -> None:
    work_done, release = asyncio.Event(), asyncio.Event()
    task = await _cancel_while_it_runs(work_done, release, fail=True)
    release.set()
    with pytest.raises(OSError, match="disk on fire"):
        await task


async def test_undisturbed_work_gives_its_result() -> None:
    async def work() -> int:
        return 7

    assert await run_to_the_end(work()) == 7
