"""What both sides of a transfer share: results, errors and control-message helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NoReturn

from p2p_transfer.errors import P2PTransferError
from p2p_transfer.net import MessageReader, StreamEnded
from p2p_transfer.protocol import AnyMessage, Cancel, Error, Message, ProtocolError

#: Which channel may carry file data: TCP + TLS when the path is direct (``auto``),
#: only QUIC, or only TCP.
DataTransport = Literal["auto", "quic", "tcp"]


class TransferError(P2PTransferError):
    """The transfer failed; the message is one line for the user."""


class PeerError(TransferError):
    """The peer reported an error or cancelled."""


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer ended, from one side's point of view."""

    ok: bool
    files: int
    files_failed: int
    bytes_total: int
    bytes_transferred: int
    seconds: float
    message: str = ""


async def expect(reader: MessageReader, kind: type[Message]) -> AnyMessage:
    """The next control message, which must be ``kind``; a peer Error becomes PeerError."""
    message = await reader.read_message()
    if message is None:
        raise StreamEnded("peer closed the conversation")
    _raise_if_peer_stopped(message)
    if not isinstance(message, kind):
        raise ProtocolError(f"expected {kind.__name__}, got {type(message).__name__}")
    return message


def reject_during_transfer(message: Message) -> NoReturn:
    """While data flows a peer may only stop the transfer; anything else breaks the protocol."""
    _raise_if_peer_stopped(message)
    raise ProtocolError(f"unexpected {type(message).__name__} during transfer")


def _raise_if_peer_stopped(message: Message) -> None:
    """A peer's Error or Cancel ends the transfer with its own words."""
    if isinstance(message, Error):
        raise PeerError(message.message)
    if isinstance(message, Cancel):
        raise PeerError(message.reason or "cancelled by peer")
