"""The protocol's one error type: everything a peer can get wrong ends here."""

from __future__ import annotations

from p2p_transfer.errors import PeerFault


class ProtocolError(PeerFault):
    """A peer broke the wire protocol; the message is safe to show and to send back."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
