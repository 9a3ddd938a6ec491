"""What each send on the board was asked to do (for Retry), and the staged copies it holds.

Files dropped into the page are the app's own copies, in a staging batch. A send
holds its batch while it runs and, when it failed or was cancelled, for as long as
its card can be retried (until the card leaves the board or is retried: the retry
takes the batch over). Several sends (one per device) may hold one batch; it is
deleted when the last lets go.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SendRequest:
    """A send as the user asked for it; Retry asks for the same again."""

    #: What was typed or pasted (a ticket, HOST:PORT, a name), or None.
    to: str | None
    #: A device picked in the list (endpoint ID or LocalSend fingerprint), or None.
    device: str | None
    #: Paths picked in the file browser.
    paths: tuple[str, ...]
    #: The staging batch of dropped files, if any.
    batch: str | None = None
    #: A text message to send instead of files.
    text: str | None = None
    #: Sent by a code (no device): Retry asks for a new code.
    by_code: bool = False


class SendBook:
    """Requests by session ID, while their cards are on the board."""

    def __init__(self) -> None:
        self._requests: dict[str, SendRequest] = {}

    def add(self, session: str, request: SendRequest) -> None:
        self._requests[session] = request

    def get(self, session: str) -> SendRequest | None:
        return self._requests.get(session)

    def drop(self, session: str) -> str | None:
        """Forget a send; returns its staging batch when no other send holds it (the
        caller deletes it), else None."""
        request = self._requests.pop(session, None)
        if request is None or request.batch is None or self.holds(request.batch):
            return None
        return request.batch

    def holds(self, batch: str) -> bool:
        """True while a send on the board holds this staging batch."""
        return any(r.batch == batch for r in self._requests.values())
