"""Rendering the event stream for scripts: one JSON object per line."""

from __future__ import annotations

import json
import re
import sys
from typing import TextIO

from p2p_transfer.events import Event


class JsonRenderer:
    """One JSON object per stdout line, each with an ``event`` field."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stdout
        #: Ctrl-C says "cancelled" on stderr: scripts read the ``state`` event.
        self.cancel_shown = False

    def __call__(self, event: Event) -> None:
        self._stream.write(json.dumps(event.to_dict(), ensure_ascii=False) + "\n")
        self._stream.flush()

    def close(self) -> None:
        """Nothing to tear down."""


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
