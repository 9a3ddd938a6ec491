"""The seam to magic-wormhole's own file transfer, for a peer that is not ours.

When the other side of a code is a magic-wormhole client (its version message
lacks our ability), the transfer runs wormhole's classic protocol (offer, answer,
transit: wormhole_classic) instead of ours. This only builds its setup from the
session's options and the chosen transit relay; the protocol lives there.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from p2p_transfer.events import EventBus
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.rendezvous.errors import RendezvousError
from p2p_transfer.transfer import Decider, ReceiveOptions, SendOptions, TransferResult

if TYPE_CHECKING:
    from p2p_transfer.rendezvous.mailbox import CodeChannel

# wormhole_classic loads only for a magic-wormhole peer's transfer.

#: Environment variable naming another transit relay (a self-hosted one).
TRANSIT_RELAY_ENV = "P2P_TRANSFER_TRANSIT_RELAY"


def transit_relay(choice: str | None) -> str:
    """``--transit-relay``, else $P2P_TRANSFER_TRANSIT_RELAY, else magic-wormhole's public
    relay; checked now, so that a typo is said before any code is made."""
    from p2p_transfer.wormhole_classic import DEFAULT_TRANSIT_RELAY, parse_relay

    relay = choice or os.environ.get(TRANSIT_RELAY_ENV) or DEFAULT_TRANSIT_RELAY
    try:
        parse_relay(relay)
    except ValueError:
        raise RendezvousError(
            f"--transit-relay takes HOST:PORT (or tcp:HOST:PORT), not {relay!r}"
        ) from None
    return relay


async def receive_classic(
    channel: CodeChannel, lifecycle: Lifecycle, options: ReceiveOptions, decide: Decider,
    relay: str, events: EventBus,
) -> TransferResult:
    """Receive from a magic-wormhole sender over its own protocol; the caller closes
    the channel."""
    from p2p_transfer.wormhole_classic import ClassicReceive
    from p2p_transfer.wormhole_classic import receive_classic as receive

    setup = ClassicReceive(options, decide, relay)
    return await receive(channel, setup, lifecycle, events)


async def send_classic(
    channel: CodeChannel, lifecycle: Lifecycle, paths: list[Path], options: SendOptions,
    relay: str, events: EventBus,
) -> TransferResult:
    """Send to a magic-wormhole receiver over its own protocol; the caller closes the
    channel."""
    from p2p_transfer.wormhole_classic import ClassicSend
    from p2p_transfer.wormhole_classic import send_classic as send

    setup = ClassicSend(list(paths), options.text, options.follow_symlinks, relay)
    return await send(channel, setup, lifecycle, events)
