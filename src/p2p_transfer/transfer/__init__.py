"""Sender and receiver sessions over the ``net`` layer: bounded, hashed, resumable."""

from p2p_transfer.transfer.receiver import (
    Decider,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    ReceiverServices,
    ReceiveSession,
)
from p2p_transfer.transfer.sender import CodePrompt, SendOptions, SendSession
from p2p_transfer.transfer.session import PeerError, TransferError, TransferResult

__all__ = [
    "CodePrompt",
    "Decider",
    "Decision",
    "IncomingOffer",
    "PeerError",
    "ReceiveOptions",
    "ReceiveSession",
    "ReceiverServices",
    "SendOptions",
    "SendSession",
    "TransferError",
    "TransferResult",
]
