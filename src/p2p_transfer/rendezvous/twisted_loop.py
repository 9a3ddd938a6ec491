"""Twisted on our asyncio loop, for the magic-wormhole library (the reference client).

One reactor per event loop, built on that loop (``AsyncioSelectorReactor``) and
marked running without taking the loop over: the library's sockets and timers
are asyncio's, nothing runs in a second loop. It is not installed as Twisted's
global reactor, so each test's new loop gets its own. Its thread pool (name
resolution) is stopped by ``stop_reactor``, or the process would not exit.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, TypeVar

T = TypeVar("T")

_reactors: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
    weakref.WeakKeyDictionary()
)


def reactor_for_loop() -> Any:
    """The Twisted reactor running on the current asyncio loop (made on first use)."""
    loop = asyncio.get_running_loop()
    reactor = _reactors.get(loop)
    if reactor is None:
        from twisted.internet.asyncioreactor import AsyncioSelectorReactor

        reactor = AsyncioSelectorReactor(loop)
        # "Running" for Twisted (startup triggers fire, its thread pool may start); the
        # loop itself is already running ours.
        reactor.startRunning(installSignalHandlers=False)
        _reactors[loop] = reactor
    return reactor


def stop_reactor() -> None:
    """Stop the current loop's reactor's threads (if it has one): call before the loop ends."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    reactor = _reactors.pop(loop, None)
    if reactor is not None and reactor.threadpool is not None:
        reactor.threadpool.stop()


async def wait(deferred: Any, timeout: float | None = None) -> Any:
    """The result of a Twisted Deferred, awaited on asyncio (its failure raised as the
    exception it holds); TimeoutError after ``timeout`` s (the Deferred is cancelled)."""
    future = deferred.asFuture(asyncio.get_running_loop())
    if timeout is None:
        return await future
    return await asyncio.wait_for(future, timeout)
