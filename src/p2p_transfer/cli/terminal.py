"""The event stream for people at a terminal: progress bars, the ticket's QR code.

Kept apart from the JSON renderer so scripts (``--json``) never load rich. The lines
themselves are in ``terminal_lines`` (one class per job), what they share in
``terminal_screen``, their wording in ``terminal_text``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

from rich.console import Console

from p2p_transfer.cli.terminal_lines import (
    OfferLines,
    ReachLines,
    ResultLines,
    TextLines,
    TransferLines,
)
from p2p_transfer.cli.terminal_screen import Screen
from p2p_transfer.events import Event


class HumanRenderer:
    """Progress bars, the ticket's QR code, codes and outcomes, for a terminal.

    With ``several`` (a send to several receivers) each session's lines begin with its
    receiver's name, and the summary event lists how each one went.
    """

    def __init__(
        self,
        console: Console | None = None,
        show_qr: bool = True,
        several: bool = False,
        asks_unverified: bool = False,
    ) -> None:
        self.console = console or Console(stderr=False, highlight=False)
        self._screen = Screen(self.console, several)
        self._texts = TextLines(self._screen)
        self._transfer = TransferLines(self._screen)
        parts = (
            ReachLines(self._screen, show_qr, asks_unverified),
            OfferLines(self._screen),
            self._texts,
            self._transfer,
            ResultLines(self._screen),
        )
        #: Each event's handler, by the event's name (``on_progress`` handles "progress").
        self._handlers: dict[str, Callable[[Event], None]] = {
            name.removeprefix("on_"): getattr(part, name)
            for part in parts for name in dir(part) if name.startswith("on_")
        }

    def __call__(self, event: Event) -> None:
        handler = self._handlers.get(event.name)
        if handler is not None:
            handler(event)

    @property
    def cancel_shown(self) -> bool:
        """A cancel was already told (Ctrl-C need not say it again)."""
        return self._transfer.cancel_shown

    @property
    def copy_texts(self) -> bool:
        """``receive --copy``: a text received also goes to the clipboard."""
        return self._texts.copy_texts

    @copy_texts.setter
    def copy_texts(self, copy: bool) -> None:
        self._texts.copy_texts = copy

    @property
    def drawing(self) -> bool:
        """A live display (bars, the wait for an answer) redraws itself now: nothing may be
        asked on the terminal meanwhile."""
        return self._screen.drawing

    def close(self) -> None:
        """Stop the live displays (what they show last stays on screen)."""
        self._screen.close()

    @contextlib.contextmanager
    def asking(self, key: str) -> Iterator[None]:
        """While a question of the command's own (a code, a PIN) is on screen: the live
        displays stop, and other sessions' lines wait until it is answered."""
        with self._screen.asking(key):
            yield
