"""What every command gets from the global options, and how commands run."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import termios
import weakref
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from p2p_transfer.cli.render import LogRoute

#: Exit status of a run stopped by Ctrl-C, as shells report SIGINT.
EXIT_INTERRUPTED = 130
#: Exit status of a failed run.
EXIT_FAILURE = 1


@dataclass(frozen=True, slots=True)
class CliContext:
    """Global options, shared by every command through ``ctx.obj``."""

    config_dir: Path
    device_name: str
    #: Where the program's warnings go: a command points it at its renderer.
    logs: LogRoute = field(default_factory=LogRoute)


def run_async(
    coroutine: Coroutine[Any, Any, int],
    cancel_shown: Callable[[], bool] = lambda: False,
    said: str = "cancelled",
) -> int:
    """Run a command's coroutine; Ctrl-C or SIGTERM cancel it cleanly (its finally blocks run).

    Exit status 130 and one line, ``said`` ("stopped" for a receiver that was only
    waiting), unless ``cancel_shown`` says the renderer already told it (with what was
    cancelled).
    """

    async def main() -> int:
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()

        def stop() -> None:
            if loop in _stopping:
                raise KeyboardInterrupt  # a second Ctrl-C: do not wait for the cleanup
            _stopping.add(loop)  # no question is asked any more (see ``ask``)
            task.cancel()

        loop.add_signal_handler(signal.SIGINT, stop)
        loop.add_signal_handler(signal.SIGTERM, stop)
        return await coroutine

    try:
        return asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        if not cancel_shown():
            click.echo(said, err=True)
        return EXIT_INTERRUPTED


async def ask(question: str, hidden: bool = False) -> str | None:
    """One line the user types after ``question`` (None at the end of input); with
    ``hidden`` the terminal does not show what is typed (a PIN).

    Read on the event loop as the terminal delivers it, never in a thread: a thread
    blocked reading stdin holds its lock, and Ctrl-C then kills the interpreter at
    exit ("Fatal Python error: _enter_buffered_busy") instead of ending it cleanly.
    One question at a time: two sessions asking at once wait for each other.
    """
    loop = asyncio.get_running_loop()
    lock = _question_locks.setdefault(loop, asyncio.Lock())
    async with lock:
        if loop in _stopping:  # Ctrl-C ended an earlier question: the sessions are ending
            raise asyncio.CancelledError
        click.echo(question, err=True, nl=False)
        with _echo_off(sys.stdin.fileno()) if hidden else contextlib.nullcontext():
            try:
                answer = await read_line()
            except asyncio.CancelledError:
                click.echo(err=True)  # what comes next starts on a line of its own
                raise
        if hidden:
            click.echo(err=True)  # the Enter the terminal did not show
        return answer


@contextlib.contextmanager
def _echo_off(fd: int) -> Iterator[None]:
    """The terminal stops echoing typed characters until the block ends."""
    if not os.isatty(fd):
        yield
        return
    saved = termios.tcgetattr(fd)
    quiet = termios.tcgetattr(fd)
    quiet[3] &= ~termios.ECHO
    termios.tcsetattr(fd, termios.TCSANOW, quiet)
    try:
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSANOW, saved)


async def ask_yes_no(question: str) -> bool:
    """``question [y/N]``: True only for yes (Enter, or the end of input, is no)."""
    while True:
        answer = await ask(f"{question} [y/N]: ")
        word = (answer or "").strip().lower()
        if word in ("y", "yes"):
            return True
        if word in ("", "n", "no"):
            return False
        click.echo("Please answer y or n.", err=True)


#: Bytes typed after a line that was asked for: the start of the next answer.
_typed_ahead = bytearray()
_question_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
    weakref.WeakKeyDictionary()
)
#: Loops whose command was told to stop (Ctrl-C, SIGTERM).
_stopping: weakref.WeakSet[asyncio.AbstractEventLoop] = weakref.WeakSet()


async def read_line() -> str | None:
    """The next line on stdin (None at its end), read on the event loop: see ``ask``."""
    if sys.stdin is None:
        return None
    fd = sys.stdin.fileno()
    while b"\n" not in _typed_ahead:
        await _readable(fd)
        chunk = os.read(fd, 4096)
        if not chunk:  # end of input (Ctrl-D)
            if not _typed_ahead:
                return None
            break
        _typed_ahead.extend(chunk)
    line, _, rest = bytes(_typed_ahead).partition(b"\n")
    _typed_ahead[:] = rest
    return line.decode(errors="replace")


def discard_typed_ahead() -> None:
    """Forget what was typed while no question was open (a stray ``y`` answers nothing)."""
    _typed_ahead.clear()
    if stdin_is_interactive():
        import termios  # POSIX terminals only, like reading stdin on the event loop

        termios.tcflush(sys.stdin.fileno(), termios.TCIFLUSH)


async def _readable(fd: int) -> None:
    """Until ``fd`` has something to read (or says it ended)."""
    loop = asyncio.get_running_loop()
    readable: asyncio.Future[None] = loop.create_future()
    try:
        loop.add_reader(fd, _wake, readable)
    except PermissionError:
        return  # a regular file (or /dev/null): always readable, never blocks
    try:
        await readable
    finally:
        loop.remove_reader(fd)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def stdin_is_interactive() -> bool:
    """True when a person can answer prompts."""
    return sys.stdin is not None and sys.stdin.isatty()
