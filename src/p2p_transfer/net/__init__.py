"""The iroh adapter: endpoint, connections and framed streams.

The only package that touches iroh: above it, a peer is a ``PeerConnection``
whose streams are ``MessageReader``/``MessageWriter`` and whose failures are
``NetError``. The binding fix lives here (``binding``) and is applied when a
Transport binds.
"""

from p2p_transfer.net.connection import (
    CloseCode,
    ConnectionDeadline,
    PathInfo,
    PeerClose,
    PeerConnection,
)
from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.net.identify import IdentityResponder, fetch_ticket, parse_host_port
from p2p_transfer.net.streams import MessageReader, MessageWriter, StreamEnded
from p2p_transfer.net.transport import (
    ALPN,
    RELAY_DEFAULT,
    RELAY_OFF,
    DamagedTicket,
    IncomingConnection,
    Transport,
    Unreachable,
    bind_host,
    default_relays,
    normalize_ticket,
    parse_ticket,
    relay_mode,
    ticket_addresses,
    ticket_endpoint_id,
    ticket_via,
)

__all__ = [
    "ALPN",
    "RELAY_DEFAULT",
    "RELAY_OFF",
    "CloseCode",
    "ConnectionDeadline",
    "DamagedTicket",
    "IdentityResponder",
    "IncomingConnection",
    "MessageReader",
    "MessageWriter",
    "NetError",
    "PathInfo",
    "PeerClose",
    "PeerConnection",
    "StreamEnded",
    "Transport",
    "Unreachable",
    "bind_host",
    "default_relays",
    "describe_iroh_error",
    "fetch_ticket",
    "normalize_ticket",
    "parse_host_port",
    "parse_ticket",
    "relay_mode",
    "ticket_addresses",
    "ticket_endpoint_id",
    "ticket_via",
]
