"""The iroh adapter: endpoint, connections and framed streams.

The binding fix lives here (``binding``) and is applied when a Transport binds.
"""

from p2p_transfer.net.errors import NetError, describe_iroh_error
from p2p_transfer.net.streams import MessageReader, MessageWriter, StreamEnded
from p2p_transfer.net.transport import (
    ALPN,
    RELAY_DEFAULT,
    RELAY_OFF,
    CloseCode,
    IncomingConnection,
    PathInfo,
    Transport,
    parse_ticket,
    path_info,
    relay_mode,
)

__all__ = [
    "ALPN",
    "RELAY_DEFAULT",
    "RELAY_OFF",
    "CloseCode",
    "IncomingConnection",
    "MessageReader",
    "MessageWriter",
    "NetError",
    "PathInfo",
    "StreamEnded",
    "Transport",
    "describe_iroh_error",
    "parse_ticket",
    "path_info",
    "relay_mode",
]
