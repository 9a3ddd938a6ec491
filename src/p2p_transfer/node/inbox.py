"""The inbox: where receive sessions come in, by whichever door.

Our own senders knock on the endpoint: the accept loop admits each connection
into the connection table (capped in total and per address; a full table evicts
its oldest idle connection, see transfer/admission.py) and runs it as a receive
session. Sessions that came in by another door (LocalSend) join through
``launch``. ``serve(once=True)`` returns with the first session, from any door,
that got as far as an offer.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Protocol

from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.net import IncomingConnection, NetError
from p2p_transfer.node.config import endpoint
from p2p_transfer.node.sessions import SessionRegistry, SessionWork
from p2p_transfer.transfer import (
    Decider,
    ReceiveOptions,
    ReceiverServices,
    ReceiveSession,
    TransferResult,
)
from p2p_transfer.transfer.admission import ConnectionTable


class Doorway(Protocol):
    """Where connections knock (the node's endpoint)."""

    async def next_incoming(self) -> IncomingConnection | None: ...


@dataclass(slots=True, eq=False)
class ConnectionSlot:
    """A place in the connection table, held from the first packet to the end."""

    session: ReceiveSession | None = None
    task: asyncio.Task[None] | None = None

    @property
    def idle(self) -> bool:
        """Droppable: still in the handshake, no hello yet, or only waiting to close."""
        session = self.session
        return session is None or not session.said_hello or session.closing

    def evict(self, reason: str) -> None:
        if self.session is not None:
            self.session.evict(reason)
        elif self.task is not None:
            self.task.cancel()


class Inbox:
    """Accepts connections into the table and runs each as a receive session."""

    def __init__(
        self,
        sessions: SessionRegistry,
        doorway: Doorway | None,
        services: ReceiverServices | None,
        table: ConnectionTable | None = None,
    ) -> None:
        self._sessions = sessions
        self._doorway = doorway
        self._services = services
        self.connections = table if table is not None else ConnectionTable()
        #: Connection tasks, including those that never became a session.
        self._tasks: set[asyncio.Task[None]] = set()
        #: Sessions that got as far as an offer end here while ``serve(once=True)`` runs.
        self._finished: asyncio.Queue[TransferResult] | None = None

    async def serve(
        self, options: ReceiveOptions, decide: Decider, once: bool = False
    ) -> TransferResult | None:
        """Accept senders until cancelled; with ``once``, return after the first offer's
        session (a connection's or one ``launch``ed)."""
        doorway = endpoint(self._doorway)
        # The first offer's result, for ``once`` only: a result holds its session's error,
        # whose traceback holds what the session held (its manifest, say).
        finished: asyncio.Queue[TransferResult] = asyncio.Queue(maxsize=1)
        self._finished = finished if once else None
        acceptor = asyncio.create_task(self._accept(doorway, options, decide, self._finished))
        try:
            if once:
                waiter = asyncio.create_task(finished.get())
                done, _ = await asyncio.wait(
                    {acceptor, waiter}, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter in done:
                    return waiter.result()
                waiter.cancel()
                return None
            await acceptor
            return None
        finally:
            self._finished = None
            acceptor.cancel()
            await self.close()

    def launch(self, work: SessionWork) -> asyncio.Task[TransferResult | None]:
        """Run a receive session that came in by another door (LocalSend) as one of ours."""
        task = self._sessions.start("receive", work).task
        assert task is not None
        finished = self._finished
        if finished is not None:
            def report(done: asyncio.Task[TransferResult | None]) -> None:
                if not done.cancelled() and done.exception() is None and (
                    result := done.result()
                ) is not None:
                    with contextlib.suppress(asyncio.QueueFull):
                        finished.put_nowait(result)

            task.add_done_callback(report)
        return task

    async def close(self) -> None:
        """Drop every connection, whether or not it became a session."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(
        self,
        doorway: Doorway,
        options: ReceiveOptions,
        decide: Decider,
        finished: asyncio.Queue[TransferResult] | None,
    ) -> None:
        while (incoming := await doorway.next_incoming()) is not None:
            slot = ConnectionSlot()
            if not self.connections.admit(slot, incoming.remote_ip):
                await incoming.refuse()
                continue
            task = asyncio.create_task(self._receive(slot, incoming, options, decide, finished))
            slot.task = task
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _receive(
        self,
        slot: ConnectionSlot,
        incoming: IncomingConnection,
        options: ReceiveOptions,
        decide: Decider,
        finished: asyncio.Queue[TransferResult] | None,
    ) -> None:
        """One connection: the handshake, then its receive session to the end."""
        try:
            try:
                connection = await incoming.establish()
            except NetError:
                return
            services = endpoint(self._services)

            def receive(lifecycle: Lifecycle) -> Awaitable[TransferResult | None]:
                slot.session = ReceiveSession(
                    lifecycle, connection, services, options, decide, incoming.remote_ip
                )
                return slot.session.run()

            task = self._sessions.start("receive", receive).task
            assert task is not None
            # The session's own task ends it when this connection task is cancelled.
            try:
                result = await asyncio.shield(task)
            except asyncio.CancelledError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                raise
            offered = slot.session is not None and slot.session.offered
            if finished is not None and offered and result is not None:
                with contextlib.suppress(asyncio.QueueFull):
                    finished.put_nowait(result)
        finally:
            self.connections.release(slot)
