"""Framed messages and raw bytes over a byte stream: an iroh stream or a TLS socket.

One task owns each reader: a pending iroh ``read`` that is cancelled after Rust
completed it loses data, so deadlines are enforced by closing the connection,
never by abandoning a read.
"""

from __future__ import annotations

from typing import Protocol

from iroh import iroh_ffi

from p2p_transfer.limits import FRAME_HEADER_SIZE, IO_BUFFER_SIZE
from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.protocol import AnyMessage, Message, ProtocolError, body_length, decode_body
from p2p_transfer.protocol import encode as encode_message


class StreamEnded(NetError):
    """The peer finished the stream where more data was expected."""


class ByteSource(Protocol):
    """Where a reader's bytes come from; ``read`` returns b"" at the end, raises NetError."""

    async def read(self, limit: int) -> bytes: ...


class ByteSink(Protocol):
    """Where a writer's bytes go; every method raises NetError on failure."""

    async def write_all(self, data: bytes | bytearray | memoryview) -> None: ...

    async def finish(self) -> None: ...

    async def reset(self, code: int) -> None: ...


class _IrohSource:
    """An iroh RecvStream as a ByteSource."""

    def __init__(self, stream: iroh_ffi.RecvStream) -> None:
        self._stream = stream

    async def read(self, limit: int) -> bytes:
        try:
            return await self._stream.read(limit)
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None


class _IrohSink:
    """An iroh SendStream as a ByteSink."""

    def __init__(self, stream: iroh_ffi.SendStream) -> None:
        self._stream = stream

    async def write_all(self, data: bytes | bytearray | memoryview) -> None:
        try:
            await self._stream.write_all(data)
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    async def finish(self) -> None:
        try:
            await self._stream.finish()
        except iroh_ffi.IrohError as exc:
            raise NetError(describe_iroh_error(exc)) from None

    async def reset(self, code: int) -> None:
        try:
            await self._stream.reset(code)
        except iroh_ffi.IrohError:
            pass


class MessageReader:
    """Buffered reads from a stream: whole messages or raw byte runs."""

    def __init__(
        self, stream: iroh_ffi.RecvStream | ByteSource, read_size: int = IO_BUFFER_SIZE
    ) -> None:
        self._stream: ByteSource = (
            _IrohSource(stream) if isinstance(stream, iroh_ffi.RecvStream) else stream
        )
        self._read_size = read_size
        # Unread bytes are self._buffer[self._position:]; the buffer is replaced only
        # when used up, so taking small pieces never copies what remains.
        self._buffer = b""
        self._position = 0
        self._eof = False

    @property
    def _available(self) -> int:
        return len(self._buffer) - self._position

    async def _fill(self) -> bool:
        """Read more bytes into the buffer; False at the end of the stream."""
        if self._eof:
            return False
        chunk = await self._stream.read(self._read_size)
        if not chunk:
            self._eof = True
            return False
        if self._available:
            self._buffer = self._buffer[self._position :] + chunk
        else:
            self._buffer = chunk
        self._position = 0
        return True

    def _take(self, size: int) -> bytes:
        start = self._position
        self._position += size
        if start == 0 and size == len(self._buffer):
            data, self._buffer, self._position = self._buffer, b"", 0  # no copy
            return data
        return self._buffer[start : start + size]

    async def read_exact(self, size: int) -> bytes:
        """Exactly ``size`` bytes, or StreamEnded."""
        while self._available < size:
            if not await self._fill():
                raise StreamEnded("stream ended early")
        return self._take(size)

    async def read_some(self, limit: int) -> bytes:
        """Between 1 and ``limit`` bytes (no copy when a whole buffer fits), or StreamEnded."""
        if not self._available and not await self._fill():
            raise StreamEnded("stream ended early")
        return self._take(min(limit, self._available))

    async def read_message(self) -> AnyMessage | None:
        """The next framed message; None if the stream ended cleanly between messages."""
        if not self._available and not await self._fill():
            return None
        header = await self.read_exact(FRAME_HEADER_SIZE)
        length = body_length(header)
        return decode_body(await self.read_exact(length))

    async def expect(self, kind: type[Message]) -> AnyMessage:
        """The next message, which must be of ``kind`` (or a peer Error/Cancel)."""
        message = await self.read_message()
        if message is None:
            raise StreamEnded("peer ended the conversation")
        if not isinstance(message, kind):
            raise ProtocolError(
                f"expected {kind.__name__}, got {type(message).__name__}"
            )
        return message


class MessageWriter:
    """Writes framed messages and raw bytes to a stream."""

    def __init__(self, stream: iroh_ffi.SendStream | ByteSink) -> None:
        self._stream: ByteSink = (
            _IrohSink(stream) if isinstance(stream, iroh_ffi.SendStream) else stream
        )

    async def send(self, message: Message) -> None:
        """Write one framed message."""
        await self._stream.write_all(encode_message(message))

    async def write(self, data: bytes | bytearray | memoryview) -> None:
        """Write raw bytes."""
        await self._stream.write_all(data)

    async def finish(self) -> None:
        """Signal the end of this stream."""
        await self._stream.finish()

    async def reset(self, code: int) -> None:
        """Abandon the stream; the peer's reader fails."""
        await self._stream.reset(code)
