"""The classic magic-wormhole file transfer, for peers that are plain ``wormhole`` clients.

Given a wormhole already connected by its code (key agreed, versions exchanged),
``receive_classic`` takes a text, a file or a zipped folder from ``wormhole send``,
and ``send_classic`` gives one to ``wormhole receive``, over magic-wormhole's transit
(direct TCP or its transit relay). Named so as not to shadow the ``wormhole`` library.
"""

from p2p_transfer.wormhole_classic.messages import APP_ID
from p2p_transfer.wormhole_classic.receive import VIA, ClassicReceive, receive_classic
from p2p_transfer.wormhole_classic.send import ClassicSend, send_classic
from p2p_transfer.wormhole_classic.transit import (
    DEFAULT_TRANSIT_RELAY,
    TransitUnreachable,
    parse_relay,
)

__all__ = [
    "APP_ID",
    "DEFAULT_TRANSIT_RELAY",
    "VIA",
    "ClassicReceive",
    "ClassicSend",
    "TransitUnreachable",
    "parse_relay",
    "receive_classic",
    "send_classic",
]
