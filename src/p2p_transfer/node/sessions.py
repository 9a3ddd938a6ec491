"""The session registry: every session a node runs, by ID, from start to final state.

Each session (a send, a receive from any door) gets its ID here (or keeps the one a
send waiting in the app's outbox was given, so its card stays one card); its work runs in
one task, and however that work ends (a result, a typed exception, a cancel)
becomes its final state and events in one place: ``_conclude``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import Direction, ErrorEvent, EventBus, SessionState
from p2p_transfer.lifecycle import Lifecycle, new_session_id
from p2p_transfer.transfer import Cancelled, Declined, TransferResult

#: A session's work, given its lifecycle: a result, or a typed exception.
SessionWork = Callable[[Lifecycle], Awaitable[TransferResult | None]]


@dataclass(slots=True)
class RunningSession:
    """A session the node runs: its ID, where it stands, and its task."""

    lifecycle: Lifecycle
    task: asyncio.Task[TransferResult | None] | None = None
    #: How it ended, once it has (also when it was cancelled).
    result: TransferResult | None = None

    @property
    def id(self) -> str:
        return self.lifecycle.session

    async def outcome(self) -> TransferResult:
        """Wait for the end; a session cancelled through ``Node.cancel`` ends in a result,
        a caller that is itself cancelled (Ctrl-C) is cancelled as usual."""
        assert self.task is not None
        try:
            result = await self.task
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self.result is None or (current is not None and current.cancelling()):
                raise
            return self.result
        assert result is not None
        return result


class SessionRegistry:
    """The running sessions of one node: started, concluded and cancelled by ID."""

    def __init__(self, events: EventBus) -> None:
        self._events = events
        self._sessions: dict[str, RunningSession] = {}

    def __contains__(self, session_id: object) -> bool:
        return session_id in self._sessions

    def start(
        self, direction: Direction, work: SessionWork, session_id: str | None = None
    ) -> RunningSession:
        """Give a new session its ID (``session_id``, when the caller made it earlier) and
        run ``work`` as its task; it leaves the registry when the task ends."""
        session_id = session_id or new_session_id()
        if session_id in self._sessions:
            raise ValueError(f"session {session_id} is running already")
        session = RunningSession(Lifecycle(session_id, direction, self._events.emit))
        running = work(session.lifecycle)
        self._sessions[session.id] = session
        task = asyncio.create_task(self._conclude(session, running), name=f"session {session.id}")
        session.task = task
        task.add_done_callback(lambda _: self._sessions.pop(session.id, None))
        return session

    async def _conclude(
        self, session: RunningSession, work: Awaitable[TransferResult | None]
    ) -> TransferResult | None:
        """Run a session's work and turn how it ended into its final state: the one place
        where outcomes (typed exceptions and results) become states and events."""
        lifecycle = session.lifecycle
        try:
            result = await work
        except asyncio.CancelledError:
            message = lifecycle.cancel_reason or "cancelled"
            session.result = TransferResult(
                SessionState.CANCELLED, message=message, by="local",
                error=Cancelled(message, "local"),
            )
            lifecycle.advance(SessionState.CANCELLED, message, "local")
            raise
        except Declined as exc:
            result = TransferResult(SessionState.DECLINED, message=exc.reason, error=exc)
        except Cancelled as exc:
            result = TransferResult(
                SessionState.CANCELLED, message=str(exc), by=exc.by, error=exc
            )
        except P2PTransferError as exc:
            result = TransferResult(SessionState.FAILED, message=str(exc), error=exc)
        session.result = result
        if result is not None:
            if result.state is SessionState.FAILED:
                detail = result.error.detail if result.error is not None else ""
                self._events.emit(ErrorEvent(result.message, session.id, detail))
            lifecycle.advance(result.state, result.message, result.by)
        return result

    def cancel(self, session_id: str) -> bool:
        """Cancel a running session (either direction); False if there is none by that ID."""
        session = self._sessions.get(session_id)
        if session is None or session.task is None or session.task.done():
            return False
        session.task.cancel()
        return True

    async def close(self) -> None:
        """Cancel every running session and wait until each has reached its end."""
        tasks = [s.task for s in self._sessions.values() if s.task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
