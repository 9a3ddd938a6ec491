"""A discovered device as a ticket, so every connect path keeps taking tickets.

Building an ``EndpointAddr`` from the endpoint ID and direct addresses is pure
(no endpoint, no event loop); the ticket it yields is the same kind
``receive`` prints, and the QUIC handshake still proves the ID.
"""

from __future__ import annotations

import re

from p2p_transfer.discovery.records import Device, DiscoveryError, is_endpoint_id, valid_addresses
from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS
from p2p_transfer.net.errors import NetError
from p2p_transfer.net.keys import ticket_for as address_ticket


def ticket_for(endpoint_id: str, addresses: tuple[str, ...] | list[str]) -> str:
    """An ``endpoint…`` ticket for this ID at these direct addresses (no relay)."""
    if not is_endpoint_id(endpoint_id):
        raise DiscoveryError(f"not an endpoint ID: {endpoint_id!r}")
    dialable = list(valid_addresses(addresses))
    if not dialable:
        raise DiscoveryError(f"device {endpoint_id[:12]}… announced no usable address")
    try:
        return address_ticket(endpoint_id, dialable)
    except NetError as exc:
        raise DiscoveryError(f"cannot build a ticket for {endpoint_id[:12]}…: {exc}") from None


def device_ticket(device: Device) -> str:
    """The ticket that dials a discovered device."""
    return ticket_for(device.endpoint_id, device.addresses)


#: Tickets are ``endpoint`` and then base32; a mangled one (cut short, a stray
#: digit) should still be reported as a bad ticket, not looked up as a name.
_TICKET = re.compile(r"endpoint[a-z0-9]{16,}", re.IGNORECASE)


def looks_like_ticket(text: str) -> bool:
    """True when ``send --to`` was given a ticket (maybe a damaged one), not a device name.

    Names such as ``endpoint-laptop`` or ``Endpoint 2`` stay names: a ticket
    has no separators. Whitespace inside counts only in text too long for a
    name: a ticket copied from a wrapped terminal has line breaks.
    """
    pieces = text.split()
    joined = "".join(pieces)
    if len(pieces) > 1 and len(joined) <= MAX_DEVICE_NAME_CHARS:
        return False
    return _TICKET.fullmatch(joined) is not None
