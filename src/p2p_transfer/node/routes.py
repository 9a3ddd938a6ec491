"""Where paired devices were last reached: noted after each send, dialed when a device
is not announced on the LAN (multicast blocked, another network).

A send notes the direct address its connection took and the ticket it dialed, once the
receiver is verified (by code or pairing, so trusted); ``remembered_ticket`` turns
that back into something to dial. An address is a hint for dialing, never a reason to
trust: the QUIC handshake still proves the device's key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from p2p_transfer.discovery import DiscoveryError, ticket_for
from p2p_transfer.discovery.records import valid_addresses
from p2p_transfer.events import ConnectionEvent, Event, EventBus, SessionEvent, VerifiedEvent
from p2p_transfer.net import NetError, parse_ticket, ticket_via
from p2p_transfer.trust import Pairing, PairingStore


def remembered_ticket(pairing: Pairing) -> str | None:
    """A ticket for a trusted device where it was last reached (None: never reached).

    The ticket that reached it (it may name a relay) with the remembered addresses
    added (all are tried at once); without one, the addresses alone."""
    addresses = list(valid_addresses(pairing.addresses))
    if pairing.ticket:
        try:
            if str(parse_ticket(pairing.ticket).id()) == pairing.endpoint_id:
                ticket = pairing.ticket
                for address in addresses:
                    ticket = ticket_via(ticket, address)
                return ticket
        except NetError:
            pass  # a damaged ticket: the addresses may still do
    if not addresses:
        return None
    try:
        return ticket_for(pairing.endpoint_id, addresses)
    except DiscoveryError:
        return None


@dataclass(slots=True)
class _Dialed:
    """A sending session's ticket, and the direct address its connection took."""

    ticket: str
    address: str = ""


class RouteMemory:
    """Notes in the pairing store where each send reached its (trusted) receiver."""

    def __init__(self, events: EventBus, pairings: PairingStore) -> None:
        self._events = events
        self._pairings = pairings

    def watch(self, session: str, ticket: str) -> Callable[[], None]:
        """Follow ``session`` (which dials ``ticket``; "" keeps the one stored) until the
        returned function is called."""
        dialed = _Dialed(ticket)

        def on_event(event: Event) -> None:
            if not isinstance(event, SessionEvent) or event.session != session:
                return
            if isinstance(event, ConnectionEvent) and event.path == "direct":
                found = valid_addresses([event.remote_addr or ""])
                dialed.address = found[0] if found else dialed.address
            elif isinstance(event, VerifiedEvent):
                addresses = [dialed.address] if dialed.address else []
                self._pairings.remember_route(event.peer_id, addresses, dialed.ticket)

        return self._events.subscribe(on_event)
