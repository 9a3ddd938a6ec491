"""Sender and receiver sessions over the ``net`` layer: bounded, hashed, resumable."""

from p2p_transfer.transfer.receiver import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    ReceiverServices,
    ReceiveSession,
    decide_offer,
)
from p2p_transfer.transfer.sender import CodePrompt, CodeRequest, SendOptions, SendSession
from p2p_transfer.transfer.session import (
    Cancelled,
    Declined,
    LockedOut,
    PeerError,
    TransferError,
    TransferResult,
    WrongCode,
)

__all__ = [
    "Cancelled",
    "CodePrompt",
    "CodeRequest",
    "Decider",
    "Decision",
    "Declined",
    "IncomingOffer",
    "LockedOut",
    "PeerError",
    "ReceiveOptions",
    "ReceiveSession",
    "ReceiverServices",
    "SendOptions",
    "SendSession",
    "TransferError",
    "TransferResult",
    "WrongCode",
    "decide_offer",
]
