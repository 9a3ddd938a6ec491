"""Length-prefixed framing of control messages, free of I/O.

A frame is a 4-byte big-endian body length followed by a msgpack body. The
length is checked before any of the body is read or buffered.
"""

from __future__ import annotations

import struct

import msgspec

from p2p_transfer.limits import FRAME_HEADER_SIZE, MAX_MESSAGE_SIZE
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.messages import AnyMessage, Message

_LENGTH = struct.Struct(">I")
_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[AnyMessage] = msgspec.msgpack.Decoder(AnyMessage)


def encode(message: Message) -> bytes:
    """Frame one message: length prefix plus body."""
    body = _encoder.encode(message)
    if len(body) > MAX_MESSAGE_SIZE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {MAX_MESSAGE_SIZE} limit")
    return _LENGTH.pack(len(body)) + body


def body_length(header: bytes | bytearray | memoryview) -> int:
    """Parse a length prefix, refusing empty and oversized bodies before they are read."""
    if len(header) != FRAME_HEADER_SIZE:
        raise ProtocolError("truncated frame header")
    (length,) = _LENGTH.unpack(header)
    if length == 0:
        raise ProtocolError("empty message")
    if length > MAX_MESSAGE_SIZE:
        raise ProtocolError(
            f"message length {length} exceeds the {MAX_MESSAGE_SIZE}-byte limit"
        )
    return length


def decode_body(body: bytes | bytearray | memoryview) -> AnyMessage:
    """Decode one message body into its typed Struct."""
    try:
        return _decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid message: {exc}") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        # msgspec lets a string that is not valid UTF-8 through as UnicodeDecodeError.
        raise ProtocolError(f"malformed message: {exc}") from None


class FrameDecoder:
    """Turns a byte stream into messages; feed bytes in, take messages out."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._expected: int | None = None

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes."""
        self._buffer += data

    def next_message(self) -> AnyMessage | None:
        """Return the next complete message, or None if more bytes are needed."""
        if self._expected is None:
            if len(self._buffer) < FRAME_HEADER_SIZE:
                return None
            self._expected = body_length(self._buffer[:FRAME_HEADER_SIZE])
            del self._buffer[:FRAME_HEADER_SIZE]
        if len(self._buffer) < self._expected:
            return None
        body = bytes(self._buffer[: self._expected])
        del self._buffer[: self._expected]
        self._expected = None
        return decode_body(body)

    @property
    def buffered(self) -> int:
        """Bytes received but not yet returned as a message."""
        return len(self._buffer)

    def messages(self) -> list[AnyMessage]:
        """Drain every complete message."""
        out: list[AnyMessage] = []
        while (message := self.next_message()) is not None:
            out.append(message)
        return out
