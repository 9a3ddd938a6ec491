"""The seam to magic-wormhole's own file transfer, for a peer that is not ours.

When the other side of a code is a magic-wormhole client (its version message
lacks our ability), the transfer runs wormhole's classic protocol (offer, answer,
transit) instead of ours. That protocol lives in its own module; until it is
wired here, these say plainly that it is not there yet.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from p2p_transfer.events import EventBus
from p2p_transfer.rendezvous.errors import RendezvousError
from p2p_transfer.transfer import Decider, ReceiveOptions, SendOptions, TransferResult

#: Said when the other side runs magic-wormhole and the classic transfer is missing.
NOT_YET = "the other side runs magic-wormhole; this version can't talk to it yet"


class ClassicUnsupported(RendezvousError):
    """The other side is a plain magic-wormhole client, which this build cannot serve."""


async def receive_classic(
    wormhole: Any, session: str, options: ReceiveOptions, decide: Decider, events: EventBus
) -> TransferResult:
    """Receive from a magic-wormhole sender over its own protocol (not wired yet)."""
    raise ClassicUnsupported(NOT_YET)


async def send_classic(
    wormhole: Any, session: str, paths: list[Path], options: SendOptions, events: EventBus
) -> TransferResult:
    """Send to a magic-wormhole receiver over its own protocol (not wired yet)."""
    raise ClassicUnsupported(NOT_YET)
