"""What every command gets from the global options, and how commands run."""

from __future__ import annotations

import asyncio
import signal
import sys
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click

T = TypeVar("T")

#: Exit status of a run stopped by Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130
#: Exit status of a failed run.
EXIT_FAILURE = 1


@dataclass(frozen=True, slots=True)
class CliContext:
    """Global options, shared by every command through ``ctx.obj``."""

    config_dir: Path
    device_name: str


def run_async(
    coroutine: Coroutine[Any, Any, int], cancel_shown: Callable[[], bool] = lambda: False
) -> int:
    """Run a command's coroutine; Ctrl-C or SIGTERM cancel it cleanly (its finally blocks run).

    Exit status 130 and one "cancelled" line, unless ``cancel_shown`` says the renderer
    already told it (with what was cancelled).
    """

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
        return await coroutine

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not cancel_shown():
            click.echo("cancelled", err=True)
        return EXIT_INTERRUPTED


async def ask_in_thread(question: Callable[[], T]) -> T:
    """Ask the user without blocking the event loop (a daemon thread: Ctrl-C never waits on it)."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def worker() -> None:
        try:
            answer = question()
        except BaseException as exc:  # EOF, abort: hand it to the waiting coroutine
            loop.call_soon_threadsafe(_set_exception, future, exc)
        else:
            loop.call_soon_threadsafe(_set_result, future, answer)

    threading.Thread(target=worker, daemon=True).start()
    return await future


def _set_result(future: asyncio.Future[T], value: T) -> None:
    if not future.done():
        future.set_result(value)


def _set_exception(future: asyncio.Future[Any], exc: BaseException) -> None:
    if not future.done():
        future.set_exception(exc if isinstance(exc, Exception) else click.Abort())


def stdin_is_interactive() -> bool:
    """True when a person can answer prompts."""
    return sys.stdin is not None and sys.stdin.isatty()
