"""The iroh adapter: endpoint, connections and framed streams.

The binding fix lives here (``binding``) and is applied when a Transport binds.
"""

from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.net.identify import IdentityResponder, fetch_ticket, parse_host_port
from p2p_transfer.net.streams import MessageReader, MessageWriter, StreamEnded
from p2p_transfer.net.transport import (
    ALPN,
    RELAY_DEFAULT,
    RELAY_OFF,
    CloseCode,
    IncomingConnection,
    PathInfo,
    PeerClose,
    Transport,
    await_peer_close,
    parse_ticket,
    path_info,
    peer_close,
    relay_mode,
    ticket_via,
)

__all__ = [
    "ALPN",
    "RELAY_DEFAULT",
    "RELAY_OFF",
    "CloseCode",
    "IdentityResponder",
    "IncomingConnection",
    "MessageReader",
    "MessageWriter",
    "NetError",
    "PathInfo",
    "PeerClose",
    "StreamEnded",
    "Transport",
    "await_peer_close",
    "describe_iroh_error",
    "fetch_ticket",
    "parse_host_port",
    "parse_ticket",
    "path_info",
    "peer_close",
    "relay_mode",
    "ticket_via",
]
