"""Where a receiver's file data comes in: QUIC data streams or the LAN fast path's TCP
channel, and the watchdog on both.

iroh grants a peer 100 streams of each kind with the handshake, so every stream the
peer opens is taken the moment it arrives and judged at once (by the conversation
table, then by the limits here): one it had no business opening ends the connection
before data piles up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Coroutine
from typing import Any, Literal

from p2p_transfer.events import ConnectionEvent, EventBus
from p2p_transfer.limits import (
    CLOSE_GRACE,
    DATA_STALL_TIMEOUT,
    MAX_PARALLEL_FILES,
    PART_RELEASE_WAIT,
)
from p2p_transfer.net import CloseCode, MessageReader, NetError, PeerClose, PeerConnection
from p2p_transfer.net.tcp import DataListener, TcpEndpointInfo
from p2p_transfer.protocol import ProtocolError
from p2p_transfer.protocol.conversation import Conversation, DataStream
from p2p_transfer.transfer.intake import FileIntake, Tally
from p2p_transfer.transfer.progress import ProgressTracker
from p2p_transfer.transfer.session import Cancelled, DataTransport, PeerError, TransferError


class DataPaths:
    """The streams a sender opens, policed for the whole session, and the data paths of an
    accepted offer: admitted, watched until every file is settled, then closed."""

    def __init__(
        self,
        session: str,
        connection: PeerConnection,
        events: EventBus,
        transport: DataTransport,
        data_host: str,
    ) -> None:
        self._session = session
        self._connection = connection
        self._events = events
        self._transport = transport
        #: Address the LAN fast path's TCP listener binds (the QUIC socket's host).
        self._data_host = data_host
        #: The stream rule the peer broke, once it broke one (the connection is closed).
        self.violation: str | None = None
        self._guards: list[asyncio.Future[None]] = []
        #: Where data streams go while an accepted transfer runs; None before and after.
        self._intake: FileIntake | None = None
        self._handlers: _StreamHandlers | None = None
        #: The LAN fast path's listener while it may still admit the sender.
        self._listener: DataListener | None = None
        self._data_path: Literal["tcp", "quic"] | None = None

    # --- for the whole session -----------------------------------------------------------

    def police_data_streams(self, conversation: Conversation) -> None:
        """No data streams until an offer is accepted, and one control stream. The limits
        only stop new grants, so each data stream is also judged as it arrives."""
        self._connection.limit_streams(data=0, control=1)
        self._guard(self._take_data_streams(conversation))

    def police_control_streams(self) -> None:
        """The control stream is taken: a second one ends the connection."""
        self._guard(self._refuse_more_control_streams())

    def stop_policing(self) -> None:
        for guard in self._guards:
            guard.cancel()

    def _guard(self, watcher: Awaitable[None]) -> None:
        """Run a stream watcher for the life of the session."""
        self._guards.append(asyncio.ensure_future(watcher))

    def _break_stream_rule(self, rule: str) -> None:
        """The peer opened a stream it must not: end the connection (and drop what it sent)."""
        if self.violation is None:
            self.violation = rule
            self._connection.close(CloseCode.PROTOCOL_ERROR, f"protocol error: {rule}")

    async def _take_data_streams(self, conversation: Conversation) -> None:
        """Take each data stream as it arrives: into the transfer, or as a violation."""
        while (stream := await self._connection.accept_data()) is not None:
            try:
                conversation.receive(DataStream)
            except ProtocolError as exc:
                self._break_stream_rule(str(exc))
                return
            if self._intake is None:  # every file settled; the summary is on its way
                self._break_stream_rule("data stream after the transfer ended")
                return
            self._take(stream)

    async def _refuse_more_control_streams(self) -> None:
        try:
            await self._connection.accept_control()
        except NetError:
            return  # the connection ended
        self._break_stream_rule("only one control stream is allowed")

    # --- an accepted offer ---------------------------------------------------------------

    async def admit(self, intake: FileIntake) -> TcpEndpointInfo | None:
        """Take data streams into ``intake`` from now (before Accept goes out: the sender
        may start at once), and open the LAN fast path's listener when allowed; its
        address for the Accept, or None."""
        self._handlers = _StreamHandlers(intake.tally)
        self._intake = intake
        self._connection.limit_streams(data=MAX_PARALLEL_FILES, control=1)
        self._listener = await self._open_listener()
        return self._listener.info if self._listener is not None else None

    def start(self) -> None:
        """Accept is out: take the sender's TCP connection, if the fast path is offered."""
        listener, handlers, intake = self._listener, self._handlers, self._intake
        if listener is not None and handlers is not None and intake is not None:
            handlers.start(self._receive_over_tcp(listener, intake))

    async def until_settled(self, tracker: ProgressTracker, control: Awaitable[None]) -> None:
        """Wait until every file is settled; raise a stream's, the control stream's
        (``control``) or a stall's failure first if one comes."""
        assert self._intake is not None
        tally = self._intake.tally
        watchers = [
            asyncio.ensure_future(control),
            asyncio.create_task(tally.settled.wait()),
            asyncio.create_task(self._watch_for_stall(tracker)),
        ]
        try:
            done, _ = await asyncio.wait(
                {*watchers, tally.failure}, return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                task.result()  # raises a stream, control or stall failure
        finally:
            for task in watchers:
                task.cancel()

    async def close(self) -> None:
        """The transfer is over: no more data, no part left open behind the session's back."""
        intake, self._intake = self._intake, None
        if self._listener is not None:
            self._listener.stop()
            self._listener = None
        if self._handlers is not None:
            await self._handlers.stop()
        if intake is not None:
            intake.tally.close()

    def _take(self, stream: MessageReader) -> None:
        """A QUIC data stream of the accepted offer, within the limits."""
        assert self._intake is not None and self._handlers is not None
        if len(self._handlers) >= MAX_PARALLEL_FILES:
            self._break_stream_rule(f"more than {MAX_PARALLEL_FILES} data streams at once")
            return
        if self._transport == "tcp":
            self._break_stream_rule(
                "file data over QUIC, but this receiver takes it only over TCP (--transport tcp)"
            )
            return
        self._report_data_path("quic")
        if self._listener is not None:
            # The sender chose QUIC: no TCP port stays open for the rest of the transfer.
            self._listener.stop()
        self._handlers.start(self._intake.receive_stream(stream))

    async def _open_listener(self) -> DataListener | None:
        """A TLS listener for the LAN fast path, when allowed and the QUIC path is direct."""
        if self._transport == "quic" or self._connection.path().kind != "direct":
            return None
        try:
            return await DataListener.open(self._data_host)
        except OSError:
            return None  # no TCP here: the sender uses QUIC

    async def _receive_over_tcp(self, listener: DataListener, intake: FileIntake) -> None:
        """Take files from the one TCP connection that presents this session's token.

        A sender that stops (Ctrl-C, an error) closes QUIC with its reason and drops
        the TCP connection; the TCP end can arrive first. The broken channel then
        waits a moment for that reason, so the user reads "cancelled by peer", not
        a protocol error.
        """
        channel = await listener.accepted()
        self._report_data_path("tcp")
        try:
            await intake.receive_stream(MessageReader(channel))
        except NetError:  # StreamEnded included: cut inside a message or a file
            if close := await self._connection.await_peer_close(CLOSE_GRACE):
                raise sender_closed(close) from None
            raise
        finally:
            channel.abort()

    def _report_data_path(self, data_path: Literal["tcp", "quic"]) -> None:
        """Say once which channel carries this transfer's data."""
        if self._data_path is not None:
            return
        self._data_path = data_path
        path = self._connection.path()
        self._events.emit(
            ConnectionEvent(
                self._session, self._connection.peer_id, path.kind, path.rtt_ms,
                path.remote_addr, data_path,
            )
        )

    async def _watch_for_stall(self, tracker: ProgressTracker) -> None:
        """End a transfer whose data stopped moving (a vanished or stalling sender)."""
        while True:
            await asyncio.sleep(DATA_STALL_TIMEOUT / 4)
            if tracker.idle_seconds >= DATA_STALL_TIMEOUT:
                reason = f"no data for {DATA_STALL_TIMEOUT:.0f} s"
                self._connection.close(CloseCode.TIMEOUT, reason)
                raise NetError(reason)


class _StreamHandlers:
    """The tasks taking data streams in: counted, their first failure kept (``Tally``),
    and stopped together."""

    def __init__(self, tally: Tally) -> None:
        self._tally = tally
        self._tasks: set[asyncio.Task[None]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def start(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(self._tally.fail)

    async def stop(self) -> None:
        """Cancel them and wait (a bounded while) until each has let go of its file."""
        tasks = set(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=PART_RELEASE_WAIT)


def sender_closed(close: PeerClose) -> TransferError:
    """The outcome of a connection the sender closed: cancelled, or failed in its words."""
    if close.cancelled:
        return Cancelled(close.reason or "the sender cancelled", "peer")
    return PeerError(close.reason or "the sender closed the connection")
