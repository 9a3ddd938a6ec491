"""The tests' waiting helpers: a wait says what it waits for and fails when it never comes."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from waiting import stays, wait_until, wait_until_blocking


async def test_wait_until_returns_the_value_once_the_condition_holds() -> None:
    seen: list[str] = []
    asyncio.get_running_loop().call_later(0.05, seen.append, "it")
    started = time.monotonic()
    assert await wait_until(lambda: list(seen), 5, what="the event") == ["it"]
    assert time.monotonic() - started < 4


async def test_wait_until_takes_an_async_condition() -> None:
    calls = 0

    async def third_time() -> int:
        nonlocal calls
        calls += 1
        return calls if calls >= 3 else 0

    assert await wait_until(third_time, 5, every=0.001, what="the third call") == 3


async def test_wait_until_says_what_never_came_and_how_it_stood() -> None:
    state = {"files": 2}
    started = time.monotonic()
    with pytest.raises(AssertionError) as failed:
        await wait_until(
            lambda: state["files"] == 3, 0.1, what=lambda: f"3 files; {state['files']} so far"
        )
    assert str(failed.value) == "timed out after 0.1 s waiting for 3 files; 2 so far"
    assert time.monotonic() - started >= 0.1  # the whole timeout, not less


def test_wait_until_blocking_waits_for_another_thread() -> None:
    done = threading.Event()
    threading.Timer(0.05, done.set).start()
    assert wait_until_blocking(done.is_set, 5, what="the thread") is True


def test_wait_until_blocking_says_what_never_came() -> None:
    with pytest.raises(AssertionError, match=r"^timed out after 0\.1 s waiting for the moon$"):
        wait_until_blocking(lambda: False, 0.1, what="the moon")


async def test_stays_lasts_the_whole_period_when_nothing_changes() -> None:
    started = time.monotonic()
    await stays(lambda: True, seconds=0.2, what="quiet")
    assert time.monotonic() - started >= 0.2


async def test_stays_fails_as_soon_as_the_condition_breaks() -> None:
    quiet = [True]
    asyncio.get_running_loop().call_later(0.05, quiet.clear)
    started = time.monotonic()
    with pytest.raises(AssertionError, match=r"^the line quiet stopped holding after .* of 5 s$"):
        await stays(lambda: quiet, seconds=5, what="the line quiet")
    assert time.monotonic() - started < 4
