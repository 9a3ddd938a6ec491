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


def human_size(count: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(count) < 1024 or unit == "TiB":
            return f"{count:.0f} {unit}" if unit == "B" else f"{count:.1f} {unit}"
        count /= 1024
    return f"{count:.1f} TiB"
