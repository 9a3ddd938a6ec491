"""The one place tests pause: they wait for a condition, never for a length of time.

A test that sleeps "long enough" for something to happen fails on a loaded machine
and wastes time on an idle one, so a test polls the state it waits for instead
(``wait_until``), with a deadline and a message that says what never came. The only
other pauses are ones a scenario needs for themselves: a period that must pass with
something staying true (``stays``), a simulated peer's own pace (``hold_for``), and
one turn of the event loop (``next_turn``). ``test_waiting.py`` keeps every other
``sleep`` out of the tests.

``wait_until`` and ``hold_for`` also come as ``_blocking`` forms, for synchronous tests
(browsers, processes, threads); those must not be used on the event loop.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")

#: How long a wait lasts unless a test says otherwise, in seconds.
DEFAULT_TIMEOUT = 10.0
#: Time between two looks at the awaited state, in seconds.
POLL_INTERVAL = 0.02

#: What is awaited, for the failure message: a text, or a function making one at the
#: moment of failure (to show the state it was stuck in).
What = str | Callable[[], str]


def _describe(what: What) -> str:
    return what() if callable(what) else what


def _timed_out(what: What, timeout: float) -> AssertionError:
    return AssertionError(f"timed out after {timeout:g} s waiting for {_describe(what)}")


async def wait_until(
    condition: Callable[[], T | Awaitable[T]],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    what: What,
    every: float = POLL_INTERVAL,
) -> T:
    """Poll ``condition`` (plain or async) until it is truthy and return its value;
    it is looked at once more at the deadline before the wait fails."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        expired = loop.time() >= deadline
        value = condition()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value  # type: ignore[return-value]
        if expired:
            raise _timed_out(what, timeout)
        await asyncio.sleep(every)


def wait_until_blocking(
    condition: Callable[[], T],
    timeout: float = DEFAULT_TIMEOUT,
    *,
    what: What,
    every: float = POLL_INTERVAL,
) -> T:
    """``wait_until`` for synchronous tests: blocks the thread between looks."""
    deadline = time.monotonic() + timeout
    while True:
        expired = time.monotonic() >= deadline
        if value := condition():
            return value
        if expired:
            raise _timed_out(what, timeout)
        time.sleep(every)


async def stays(
    condition: Callable[[], object], *, seconds: float, what: What,
    every: float = POLL_INTERVAL,
) -> None:
    """Assert that ``condition`` holds for the whole of ``seconds`` (and at its end):
    how a test shows that something does *not* happen within a period."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        ended = loop.time() - started >= seconds
        if not condition():
            elapsed = loop.time() - started
            raise AssertionError(
                f"{_describe(what)} stopped holding after {elapsed:.2f} s of {seconds:g} s"
            )
        if ended:
            return
        await asyncio.sleep(min(every, max(0.0, started + seconds - loop.time())))


async def hold_for(seconds: float) -> None:
    """A deliberate pause in a scenario, such as a simulated peer's or user's pace or a
    quiet moment between events; not a wait for a condition (``wait_until``, ``stays``)."""
    await asyncio.sleep(seconds)


def hold_for_blocking(seconds: float) -> None:
    """``hold_for`` for synchronous code, such as a simulated peer in a thread."""
    time.sleep(seconds)


async def next_turn() -> None:
    """Let every other ready task of the event loop run once: a scheduling step, taking
    no time, for tests of what happens within or across turns of the loop."""
    await asyncio.sleep(0)
