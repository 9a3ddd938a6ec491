"""What both sides of a transfer share: outcomes, errors and control-message helpers.

Outcomes are types: a declined offer is ``Declined``, a wrong code ``WrongCode``,
a peer's cancel ``Cancelled``; callers branch on the class, never on the words.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, NoReturn

from p2p_transfer.errors import P2PTransferError, PeerFault
from p2p_transfer.events import Actor, SessionState
from p2p_transfer.protocol import Cancel, Error, Message, ProtocolError

#: Which channel may carry file data: TCP + TLS when the path is direct (``auto``),
#: only QUIC, or only TCP.
DataTransport = Literal["auto", "quic", "tcp"]


class TransferError(P2PTransferError):
    """The transfer failed; the message is one line for the user."""


class PeerError(TransferError, PeerFault):
    """The peer reported an error."""


class Declined(TransferError, PeerFault):
    """The receiver (its user, or its limits) declined the offer."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"declined: {reason}" if reason else "declined")
        self.reason = reason


class WrongCode(PeerError):
    """The receiver did not accept the typed code."""

    def __init__(self, message: str, attempts_left: int) -> None:
        super().__init__(message)
        self.attempts_left = attempts_left


class LockedOut(PeerError):
    """The receiver refuses this device for a while (too many wrong codes, or busy)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Cancelled(TransferError):
    """The transfer was cancelled: ``by`` the peer, or by this side ("local")."""

    def __init__(self, message: str, by: Actor) -> None:
        super().__init__(message)
        self.by = by


@dataclass(frozen=True, slots=True)
class TransferResult:
    """How a transfer ended, from one side's point of view."""

    state: SessionState
    files: int = 0
    files_failed: int = 0
    bytes_total: int = 0
    bytes_transferred: int = 0
    seconds: float = 0.0
    message: str = ""
    #: Who cancelled, for a cancelled transfer.
    by: Actor | Literal[""] = ""
    #: Why it did not end done, as a type (``Declined``, ``WrongCode``, ``Cancelled``...).
    error: P2PTransferError | None = None

    @property
    def ok(self) -> bool:
        """True only when every file arrived verified."""
        return self.state is SessionState.DONE


def reject_during_transfer(message: Message) -> NoReturn:
    """While data flows a peer may only stop the transfer; anything else breaks the protocol."""
    raise_if_peer_stopped(message)
    raise ProtocolError(f"unexpected {type(message).__name__} during transfer")


def raise_if_peer_stopped(message: Message) -> None:
    """A peer's Error or Cancel ends the transfer with its own words."""
    if isinstance(message, Error):
        if message.kind == "wrong_code":
            raise WrongCode(message.message, message.attempts_left)
        if message.kind in ("locked_out", "busy"):
            raise LockedOut(message.message, message.retry_after)
        raise PeerError(message.message)
    if isinstance(message, Cancel):
        raise Cancelled(message.reason or "cancelled by peer", "peer")
