"""Sender and receiver sessions over the ``net`` layer: bounded, hashed, resumable."""

from p2p_transfer.transfer.code_check import CodePrompt, CodeRequest
from p2p_transfer.transfer.continuations import ContinuationStore
from p2p_transfer.transfer.offers import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    decide_offer,
)
from p2p_transfer.transfer.receiver import ReceiverServices, ReceiveSession
from p2p_transfer.transfer.sender import SendOptions, SendSession
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
    "ContinuationStore",
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
