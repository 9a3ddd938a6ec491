"""Why a code did not bring the two sides together, as types (one plain line each)."""

from __future__ import annotations

from p2p_transfer.transfer import TransferError


class RendezvousError(TransferError):
    """A send or receive by code failed before any connection between the devices."""


class MailboxUnreachable(RendezvousError):
    """The code server did not answer in time."""

    def __init__(self, server: str) -> None:
        super().__init__(
            f"can't reach the code server {server} — offline? On a LAN, the code works "
            "through local discovery; or use --to"
        )
        self.server = server


class WrongShortCode(RendezvousError):
    """The code's key exchange failed: someone typed a wrong code. It is used up."""


class CodeNotWaiting(RendezvousError):
    """Nobody waits with this code: used up already, mistyped, or its sender stopped."""


class PeerWentAway(RendezvousError):
    """The other side left (cancelled, or lost its connection) before the transfer began."""


class BadRendezvousMessage(RendezvousError):
    """The other side sent something ours never send, under the code's key."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"the other side sent a bad message: {reason}; not going on")


class CodeServerError(RendezvousError):
    """The code server refused something (the code is taken by two devices already...)."""
