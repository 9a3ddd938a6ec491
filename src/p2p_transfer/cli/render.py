"""Rendering the event stream for scripts (one JSON object per line), and where the
program's warnings go."""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import io
import re
import select
import sys
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

from p2p_transfer.events import Event, LogEvent
from p2p_transfer.limits import JSON_FLUSH_INTERVAL

if TYPE_CHECKING:
    from rich.console import Console


class JsonRenderer:
    """One JSON object per stdout line, each with an ``event`` field.

    A line after a quiet moment goes out at once; in a burst the lines are held and
    written at most every JSON_FLUSH_INTERVAL, in one write: also where the stream
    itself writes at once (``PYTHONUNBUFFERED``), a transfer's line per file costs no
    system call each, nor a wake-up of the script reading them. Outside the loop every
    line goes out at once.
    """

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        self._lines: list[str] = []
        self._lock = threading.Lock()  # a log may come from another thread
        #: The loop whose turn will write out the lines held (None: no write is due).
        self._due_on: asyncio.AbstractEventLoop | None = None
        self._flushed_at = float("-inf")
        #: Ctrl-C says "cancelled" on stderr: scripts read the ``state`` event.
        self.cancel_shown = False
        # Lines of a loop's last turn, if no one closes the renderer: out at the exit.
        atexit.register(self._write_out_at_exit)

    def __call__(self, event: Event) -> None:
        line = event.to_json()
        with self._lock:
            self._lines.append(line)
            due_on = self._due_on
        if due_on is not None and due_on.is_running():
            return  # that loop's write takes this line too
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # outside the loop (a log from a thread, a command's end)
            self._write_out()
            return
        wait = self._flushed_at + JSON_FLUSH_INTERVAL - loop.time()
        if wait <= 0:  # a quiet moment: out at once, in order with what else is printed
            self._flush(loop)
            return
        self._due_on = loop
        loop.call_later(wait, self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._flushed_at = loop.time()
        self._write_out()

    def _write_out(self) -> None:
        """Write the lines held in one go, and flush the stream."""
        with self._lock:
            lines, self._lines, self._due_on = self._lines, [], None
            if lines:
                lines.append("")
                _write_all(self._stream, "\n".join(lines))
            self._stream.flush()

    def close(self) -> None:
        """Write out what is still held."""
        self._write_out()

    def _write_out_at_exit(self) -> None:
        if self._lines:
            with contextlib.suppress(ValueError, OSError):  # the stream is gone already
                self._write_out()


def _write_all(stream: TextIO, text: str) -> None:
    """``stream.write(text)``, every byte of it. Where stdout writes at once
    (``PYTHONUNBUFFERED``) its text layer hands the text to the raw file and drops what
    a partial write left (a pipe that is full when a signal comes: a burst of lines is
    more than the pipe takes at once), so the bytes go to that file until all are out."""
    raw = getattr(stream, "buffer", None)
    if not isinstance(raw, io.RawIOBase):
        stream.write(text)
        return
    stream.flush()
    view = memoryview(text.encode(stream.encoding, stream.errors or "strict"))
    while view:
        written = raw.write(view)
        if written is None:  # a non-blocking file that is full: wait until it takes more
            select.select([], [raw], [])
            continue
        view = view[written:]


_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """Peer-supplied text made safe to print: control characters (terminal escapes,
    line breaks) become ``?``."""
    return _CONTROL.sub("?", text)


def attempt_count(attempt: int, max_attempts: int) -> str:
    """``attempt 2 of 5`` once a code was wrong before (known both ways), else ""."""
    return f"attempt {attempt} of {max_attempts}" if attempt > 1 and max_attempts else ""


def counted(count: int, noun: str) -> str:
    """``1 file``, ``3 files``."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


class LogRoute:
    """Where the ``log`` events of the program's warnings go, for the whole run.

    ``main`` forwards the warnings once, for every command, to the route; a command
    points it (``to``) at the renderer of its output (its JSON lines, its screen).
    Until one does, and for commands that render no events, a dim line on stderr.
    """

    def __init__(self) -> None:
        self._emit: Callable[[Event], None] = print_log

    def to(self, emit: Callable[[Event], None]) -> None:
        """Send the warnings to ``emit`` from now on."""
        self._emit = emit

    def __call__(self, event: Event) -> None:
        self._emit(event)


def print_log(event: Event) -> None:
    """A ``log`` event as a dim line on stderr (beside a command's own output)."""
    if isinstance(event, LogEvent):
        from rich.markup import escape  # loaded only when a warning comes

        line = f"{printable(event.source)}: {printable(event.message)}"
        _stderr_console().print(f"[dim]{escape(line)}[/]", soft_wrap=True)


@functools.cache
def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)
