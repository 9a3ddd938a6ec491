"""The real CLI in a pseudo-terminal: the lines a person reads, and their keys (Ctrl-C)."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pexpect

#: The terminal size the tests read lines at.
COLUMNS, ROWS = 100, 30
#: Seconds to wait for a line to appear.
LINE_TIMEOUT = 30.0
_ANSI = re.compile(
    r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b[()][0-9A-B]|\x1b[=>]|\r"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"  # OSC: links (8), the clipboard (52)
)


def plain(text: str) -> str:
    """Terminal output without colour codes, cursor moves and carriage returns."""
    return _ANSI.sub("", text)


class Terminal:
    """``p2p-transfer ARGS`` in a pty of COLUMNS × ROWS, with its own config dir; ``inside``
    runs it through a wrapper (``ip netns exec NS``: another host of a lab)."""

    def __init__(self, home: Path, *args: str, inside: Sequence[str] = ()) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "TERM": "xterm-256color",
               "COLUMNS": str(COLUMNS), "LINES": str(ROWS)}
        command = [*inside, sys.executable, "-m", "p2p_transfer", "--config-dir", str(home),
                   *args]
        self.child = pexpect.spawn(
            command[0], command[1:],
            env=env, dimensions=(ROWS, COLUMNS), encoding="utf-8", timeout=LINE_TIMEOUT,
        )
        self.seen = ""

    def expect_line(self, pattern: str, timeout: float = LINE_TIMEOUT) -> re.Match[str]:
        """Wait for ``pattern`` (a regex) in what the terminal shows, ANSI codes removed."""
        compiled = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            if (match := compiled.search(plain(self.seen))) is not None:
                return match
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"{pattern!r} not shown; the terminal showed:\n{self.text}")
            try:
                self.seen += self.child.read_nonblocking(65536, timeout=min(remaining, 0.2))
            except pexpect.TIMEOUT:
                continue
            except pexpect.EOF:
                if (match := compiled.search(plain(self.seen))) is not None:
                    return match
                raise AssertionError(
                    f"{pattern!r} not shown before the program ended:\n{self.text}"
                ) from None

    @property
    def text(self) -> str:
        """Everything shown so far, plain."""
        return plain(self.seen)

    def after(self, pattern: str) -> str:
        """What was shown after the first match of ``pattern`` (a regex)."""
        match = re.search(pattern, self.text)
        assert match is not None, f"{pattern!r} not shown:\n{self.text}"
        return self.text[match.end():]

    def assert_clean(self) -> None:
        """Nothing a person should never see: a traceback, an interpreter abort."""
        for sign in ("Traceback", "Fatal Python error", "Aborted", "Exception ignored"):
            assert sign not in self.text, self.text

    def ctrl_c(self) -> None:
        """What pressing Ctrl-C does: SIGINT to the foreground program."""
        self.child.sendintr()

    def wait(self, timeout: float = LINE_TIMEOUT) -> int:
        """The exit status, once the program ended (the rest of its output is kept)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.seen += self.child.read_nonblocking(65536, timeout=0.2)
            except pexpect.TIMEOUT:
                if time.monotonic() > deadline:
                    raise AssertionError(f"still running after {timeout} s:\n{self.text}") from None
            except pexpect.EOF:
                break
        self.child.close()
        if self.child.signalstatus is not None:
            return 128 + self.child.signalstatus
        return int(self.child.exitstatus or 0)

    def stop(self) -> None:
        if self.child.isalive():
            self.child.terminate(force=True)


def receiving_terminal(home: Path, inbox: Path, *extra: str) -> tuple[Terminal, str]:
    """``receive`` for a person on loopback as "laptop" (not announced); returns it and the
    ticket it prints. ``extra``: ``--code``, ``--yes``, ``--once``, as a test needs."""
    terminal = Terminal(home, "--name", "laptop", "receive", "--dir", str(inbox),
                        "--bind", "127.0.0.1", "--no-announce", *extra)
    ticket = terminal.expect_line(r"send --to (endpoint[a-z0-9]+) FILE").group(1)
    return terminal, ticket
