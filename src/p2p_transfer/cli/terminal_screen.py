"""What the terminal's parts share: the console, each session's state, the lines held
while a question is asked, and the live displays (progress bars, the wait for an answer)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from p2p_transfer.cli.terminal_text import shown
from p2p_transfer.units import format_rate


class RateColumn(ProgressColumn):
    """Speed in IEC units (``12.5 MiB/s``), like every other size this program shows."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        # Nothing until there is a speed to say (a tiny file is done before there is one).
        return Text("" if speed is None else format_rate(speed), style="progress.data.speed")


def transfer_bars(console: Console) -> Progress:
    """Progress bars for bytes moving: name, bar, done/total, speed, time left."""
    return Progress(
        TextColumn("{task.description}", table_column=None),
        BarColumn(),
        DownloadColumn(binary_units=True),
        RateColumn(),
        TimeRemainingColumn(),
        console=console,
    )


@dataclass(slots=True)
class SessionView:
    """What the terminal remembers of one session while it runs."""

    direction: str = ""
    peer_name: str = ""
    connected: bool = False
    #: A send that waits for its receiver (``send --wait``).
    queued: bool = False
    #: Prints "trying to reach …" if the connection takes a while.
    reach_notice: asyncio.TimerHandle | None = None
    overall: TaskID | None = None
    files: dict[str, TaskID] = field(default_factory=dict)
    #: Bytes the receiver holds of this transfer (the last progress said), for a cancel.
    bytes_done: int = 0
    #: Its code is on screen: a code event for it is a retry.
    code_shown: bool = False
    #: Its line in the "waiting for … to accept" display, while it waits.
    waiting: TaskID | None = None


class Screen:
    """The console and what the renderer's parts know of it: one place decides whether a
    line prints now or waits for a question, and which live display draws."""

    def __init__(self, console: Console, several: bool) -> None:
        self.console = console
        #: A send to several receivers: each session's lines begin with its receiver's name.
        self.several = several
        self._bars: Progress | None = None
        #: "waiting for NAME to accept…" with the time elapsed, while receivers decide.
        self._waiting: Progress | None = None
        #: Questions that may be on screen (an offer's, a code's): no live display may
        #: draw over them.
        self._questions_open: set[str] = set()
        #: Questions of the command's own (a code, a PIN) being asked, and the lines that
        #: came meanwhile: they wait, so none lands on the question's line.
        self._asking = 0
        self._held: list[tuple[tuple[object, ...], dict[str, Any]]] = []
        self.sessions: dict[str, SessionView] = {}

    @property
    def drawing(self) -> bool:
        """A live display (bars, the wait for an answer) redraws itself now: nothing may be
        asked on the terminal meanwhile."""
        return any(
            live is not None and live.live.is_started for live in (self._bars, self._waiting)
        )

    def close(self) -> None:
        """Stop the live displays (what they show last stays on screen)."""
        if self._waiting is not None:
            self._waiting.stop()
            self._waiting = None
        if self._bars is not None:
            self._bars.stop()
            self._bars = None
        for session in self.sessions.values():
            if session.reach_notice is not None:
                session.reach_notice.cancel()

    def session(self, session_id: str) -> SessionView:
        """What is remembered of a session, begun on its first event."""
        return self.sessions.setdefault(session_id, SessionView())

    def print(self, *args: object, **options: Any) -> None:
        """A line now, above the bars if they draw; held while the command asks something."""
        if self._asking:
            self._held.append((args, options))
            return
        target = self._bars.console if self._bars is not None else self.console
        target.print(*args, **options)

    def say(self, session_id: str | None, line: str) -> None:
        """A line about one session: with several receivers, it names whom it is about."""
        session = self.sessions.get(session_id) if session_id is not None else None
        if self.several and session is not None and session.peer_name:
            line = f"{shown(session.peer_name)}: {line}"
        self.print(line)

    def named(self, session: SessionView, peer_name: str) -> None:
        """Remember the peer's name once an event says it (an empty one changes nothing)."""
        if peer_name:
            session.peer_name = peer_name

    @contextlib.contextmanager
    def asking(self, key: str) -> Iterator[None]:
        """While a question of the command's own (a code, a PIN) is on screen: the live
        displays stop, and other sessions' lines wait until it is answered."""
        self.pause(key)
        self._asking += 1
        try:
            yield
        finally:
            self._asking -= 1
            if not self._asking:
                held, self._held = self._held, []
                for args, options in held:
                    self.print(*args, **options)
            self.resume(key)

    def pause(self, key: str) -> None:
        """A question comes: live displays stop redrawing (their last state stays above it;
        the waiting display, which the answer replaces, goes)."""
        if not self._questions_open:
            for live in (self._bars, self._waiting):
                if live is not None:
                    live.stop()
        self._questions_open.add(key)

    def resume(self, key: str) -> None:
        """The question was answered: live displays draw again once no other one is open."""
        if key not in self._questions_open:
            return
        self._questions_open.discard(key)
        if not self._questions_open:
            for live in (self._bars, self._waiting):
                if live is not None:
                    live.start()

    def start_waiting(self, session: SessionView, description: str) -> None:
        """Show "waiting for NAME to accept…" with the time elapsed; with several receivers
        (whose bars may already move: one live display at a time) as a plain line."""
        if self.several:
            self.print(description)
            return
        if self._waiting is None:
            self._waiting = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.console,
                transient=True,  # the answer replaces it
            )
            if not self._questions_open:
                self._waiting.start()
        session.waiting = self._waiting.add_task(description, total=None)

    def stop_waiting(self, session: SessionView | None) -> None:
        """A session's wait is over (None: every session's)."""
        if self._waiting is None:
            return
        for each in self.sessions.values() if session is None else [session]:
            if each.waiting is not None:
                self._waiting.remove_task(each.waiting)
                each.waiting = None
        if not self._waiting.tasks:
            self._waiting.stop()
            self._waiting = None

    def live_bars(self) -> Progress:
        """The progress bars, started unless a question is on screen."""
        if self._bars is None:
            self._bars = transfer_bars(self.console)
            if not self._questions_open:
                self._bars.start()
        return self._bars

    def end_bars(self, session: SessionView) -> None:
        """A session ended: its file bars go, its overall bar stays as it ended; the
        display stops when no other session has bars, so nothing draws over what follows."""
        bars = self._bars
        if bars is None:
            return
        for task in session.files.values():
            bars.remove_task(task)
        session.files.clear()
        session.overall = None
        if not any(other.overall is not None for other in self.sessions.values()):
            bars.stop()
            self._bars = None
