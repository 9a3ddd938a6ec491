"""The control stream of a session, refereed by the conversation table.

Every control message a session sends or reads passes ``protocol.conversation`` first:
a peer's message out of turn is the ProtocolError it broke, and this side can send
nothing out of turn either. Writes are serialized; a receiver's file results go out in
batches, one network write for many.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TypeVar

from p2p_transfer.net import MessageReader, MessageWriter, NetError, StreamEnded
from p2p_transfer.protocol import Error, FileResult, Message, ProtocolError, encode
from p2p_transfer.protocol.conversation import Conversation
from p2p_transfer.transfer.session import raise_if_peer_stopped

M = TypeVar("M", bound=Message)

#: How long a file's result may wait to share a network write with others (seconds).
RESULT_FLUSH_DELAY = 0.02


class ControlStream:
    """One side's end of the conversation's bidirectional stream."""

    def __init__(
        self, reader: MessageReader, writer: MessageWriter, conversation: Conversation
    ) -> None:
        self._reader = reader
        self._writer = writer
        #: This side's view of the conversation (the receiver's data streams check it too).
        self.conversation = conversation
        self._lock = asyncio.Lock()
        self._results = bytearray()
        self._result_flush: asyncio.Task[None] | None = None

    async def read(self) -> Message | None:
        """The peer's next message (None when its stream ended), checked against the table."""
        message = await self._reader.read_message()
        if message is not None:
            self.conversation.receive(message)
        return message

    async def expect(self, *kinds: type[M]) -> M:
        """The next message, which must be one of ``kinds``; a peer's Error or Cancel raises
        its typed outcome (PeerError, WrongCode, LockedOut, Cancelled)."""
        message = await self.read()
        if message is None:
            raise StreamEnded("peer closed the conversation")
        raise_if_peer_stopped(message)
        if not isinstance(message, kinds):
            expected = " or ".join(kind.__name__ for kind in kinds)
            raise ProtocolError(f"expected {expected}, got {type(message).__name__}")
        return message

    async def send(self, *messages: Message) -> None:
        """Send ``messages`` in order, with no other write between them."""
        async with self._lock:
            for message in messages:
                self.conversation.send(message)
                await self._writer.send(message)

    async def send_encoded(self, kind: type[Message], data: bytes) -> None:
        """Send one message of ``kind`` that was encoded ahead (a sender's manifest pages)."""
        async with self._lock:
            self.conversation.send(kind)
            await self._writer.write(data)

    async def send_error(self, error: Error) -> None:
        """Tell the peer why this side stops, if the conversation still allows it (best
        effort: the connection closes next in any case)."""
        if self.conversation.may_send(error):
            with contextlib.suppress(NetError):
                await self.send(error)

    def queue_result(self, result: FileResult) -> None:
        """Results go out in batches: one network write per RESULT_FLUSH_DELAY, not per file."""
        self._results += encode(result)
        if self._result_flush is None or self._result_flush.done():
            self._result_flush = asyncio.create_task(self.flush_results(RESULT_FLUSH_DELAY))

    async def flush_results(self, delay: float = 0.0) -> None:
        """Write the queued results (after ``delay``, so more can join the batch); once the
        conversation is over (the peer cancelled, or a late file settled after the
        Summary) they are dropped, not sent out of turn."""
        if delay:
            await asyncio.sleep(delay)
        async with self._lock:
            batch, self._results = self._results, bytearray()
            if batch and self.conversation.may_send(FileResult):
                self.conversation.send(FileResult)  # a batch holds nothing else
                await self._writer.write(batch)
