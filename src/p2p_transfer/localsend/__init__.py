"""LocalSend (protocol v2.1): every LocalSend device is a peer, both ways.

Layers: ``messages`` and ``offer`` are sans-I/O (the wire format, what an offer
means here); ``identity`` is our certificate; ``receiver`` decides and writes
(our prompt, our file writer); ``server`` is its HTTPS face on aiohttp;
``address`` reads ``localsend:HOST[:PORT]``; ``client`` and ``sender`` send;
``discovery`` announces and finds devices.
``service.LocalSendService`` puts the receiving half together for the Node.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Where each public name lives; modules load on first use (aiohttp only when serving).
_HOMES = {
    "Certificate": "identity",
    "CertificateError": "identity",
    "load_or_create_certificate": "identity",
    "DeviceInfo": "messages",
    "DeviceTable": "discovery",
    "LocalSendDevice": "discovery",
    "MulticastDiscovery": "discovery",
    "LocalSendClient": "client",
    "LocalSendError": "address",
    "Target": "messages",
    "LocalSendReceiver": "receiver",
    "ReceiverSetup": "receiver",
    "LocalSendSender": "sender",
    "PinPrompt": "sender",
    "PinRequest": "sender",
    "LocalSendServer": "server",
    "LocalSendService": "service",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{home}"), name)


__all__ = sorted(_HOMES)
