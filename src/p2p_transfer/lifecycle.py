"""A session's state as data: it only moves forward, and every move is an event.

The sessions (send, receive, share upload) say where they are; this keeps them
honest (a late event can never take a finished transfer back to "verifying")
and tells every front end through one ``state`` event.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Literal

from p2p_transfer.events import Actor, Direction, Event, SessionState, StateEvent
from p2p_transfer.limits import SESSION_ID_BYTES


def new_session_id() -> str:
    """A fresh session ID."""
    return secrets.token_hex(SESSION_ID_BYTES)


class Lifecycle:
    """The state of one session, moved forward by ``advance`` and nothing else."""

    def __init__(self, session: str, direction: Direction, emit: Callable[[Event], None]) -> None:
        self.session = session
        self.direction = direction
        self._emit = emit
        self.state: SessionState | None = None
        self.message = ""
        self.by: Actor | Literal[""] = ""
        #: Named in every state event once known (a receiver learns it from the hello).
        self.peer_name = ""
        #: Why the node itself cancelled the session ('' for the user's cancel).
        self.cancel_reason = ""

    @property
    def final(self) -> bool:
        """True once the session ended (done, failed, declined or cancelled)."""
        return self.state is not None and self.state.final

    def advance(
        self, state: SessionState, message: str = "", by: Actor | Literal[""] = ""
    ) -> bool:
        """Move to ``state`` if it lies ahead; False (and nothing emitted) otherwise."""
        current = self.state
        if current is not None and (current.final or not current.precedes(state)):
            return False
        self.state, self.message, self.by = state, message, by
        self._emit(StateEvent(self.session, self.direction, state, message, by, self.peer_name))
        return True
