"""Where the app's sends go.

A target is what the user gave: a ticket (pasted, maybe with the line breaks of a
wrapped terminal), ``HOST:PORT``, ``localsend:HOST``, a device name, or a device
picked in the Devices list: on the LAN now, a LocalSend device, or a trusted device
that is not announced (multicast blocked, another network, or off). A trusted device
that is not on the LAN is ``away``: its send waits in the outbox until ``reach`` finds
it, announced on the LAN or answering where it was last reached (the node notes where
each send reached a trusted device: ``node.routes``). Only a device last reached
through a relay alone is dialed at once, as the outbox cannot tell whether it is on
without calling it.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from p2p_transfer.app.node_control import NodeControl
from p2p_transfer.app.outbox import NotTrusted
from p2p_transfer.discovery import DiscoveryError, device_ticket, looks_like_ticket
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import APP_OUTBOX_TRY_TIMEOUT, MAX_DEVICE_NAME_CHARS
from p2p_transfer.localsend.messages import Target
from p2p_transfer.net import (
    NetError,
    fetch_ticket,
    parse_ticket,
    ticket_addresses,
    ticket_via,
)
from p2p_transfer.node.routes import remembered_ticket
from p2p_transfer.trust import Pairing


class UnresolvedTarget(LocalFault):
    """What the user chose to send to resolves to no destination (a damaged ticket, a
    device gone); ``missing`` when the device is nowhere to be found."""

    def __init__(self, message: str, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing


@dataclass(frozen=True, slots=True)
class Destination:
    """One resolved target: what the node dials, and who the user thinks it is."""

    #: A ticket, ``HOST:PORT`` or a name (the node resolves those), or a LocalSend device.
    dial: str | Target
    peer_name: str
    #: The endpoint ID (or LocalSend fingerprint) when known before dialing, else "".
    peer_id: str
    #: The ticket dialed, when it is one ("" for names, addresses and LocalSend).
    ticket: str = ""
    #: A trusted device that is not on the LAN: the send waits in the outbox until the
    #: device can be reached (``dial`` is "": the try that finds it gives the ticket).
    away: bool = False


def pasted(text: str) -> str:
    """The target box's text: a ticket copied from a wrapped terminal loses the
    whitespace inside it (no device name is that long), anything else is only stripped."""
    joined = "".join(text.split())
    if len(joined) > MAX_DEVICE_NAME_CHARS and looks_like_ticket(joined):
        return joined
    return text.strip()


class Targets:
    """Resolves the app's send targets."""

    def __init__(self, nodes: NodeControl) -> None:
        self._nodes = nodes

    def _pairings(self) -> list[Pairing]:
        node = self._nodes.node
        return node.pairings.list() if node is not None else []

    def resolve(self, to: str | None, device: str | None) -> Destination:
        """``to`` (typed or pasted) or ``device`` (an ID from the Devices list) as a
        destination; a ticket is checked now, so a damaged one fails at once."""
        text = pasted(to or "")
        if text:
            if not looks_like_ticket(text):
                return Destination(text, text, "")
            try:
                peer_id = str(parse_ticket(text).id())
            except NetError as exc:
                raise UnresolvedTarget(str(exc)) from None
            return Destination(text, self.known_name(peer_id), peer_id, text)
        if device:
            return self._device(device)
        raise UnresolvedTarget("choose a device, or give a ticket, HOST:PORT or device name")

    def _device(self, device: str) -> Destination:
        localsend = next(
            (d for d in self._nodes.localsend_devices() if d.fingerprint == device), None
        )
        if localsend is not None:
            return Destination(localsend.target(), localsend.name, localsend.fingerprint)
        found = self._nodes.device(device)
        if found is not None:
            try:
                ticket = device_ticket(found)
            except DiscoveryError as exc:
                raise UnresolvedTarget(str(exc)) from None
            return Destination(ticket, found.name, found.endpoint_id, ticket)
        pairing = next((p for p in self._pairings() if p.endpoint_id == device.lower()), None)
        ticket = remembered_ticket(pairing) if pairing is not None else None
        if pairing is not None and ticket is not None and not pairing.addresses and (
            parse_ticket(ticket).relay_url() is not None
        ):  # reached through a relay alone: only a call tells whether it is on
            return Destination(ticket, pairing.name, pairing.endpoint_id, ticket)
        if pairing is not None and (ticket is not None or self._nodes.announces):
            return Destination("", pairing.name, pairing.endpoint_id, away=True)
        raise UnresolvedTarget(
            "that device is not on the LAN right now and was never reached before; "
            "ask for its ticket instead", missing=True,
        )

    async def reach(self, peer_id: str) -> str | None:
        """A ticket for the trusted device ``peer_id`` where it answers now: announced on
        the LAN, or answering with its own ticket at an address it was last reached at
        (each asked at once); None while it is away (or this node restarts). NotTrusted
        when it is no longer trusted: a send to it would ask for a code nobody types."""
        if self._nodes.node is None:
            return None
        pairing = next((p for p in self._pairings() if p.endpoint_id == peer_id), None)
        if pairing is None:
            raise NotTrusted(
                "Nothing was sent: this device is no longer trusted (it was forgotten, or "
                "its pairing expired); send to it again to pair it anew."
            )
        found = self._nodes.device(peer_id)
        if found is not None:
            with contextlib.suppress(DiscoveryError):
                return device_ticket(found)
        remembered = remembered_ticket(pairing)
        if remembered is None:
            return None
        return await _answering(peer_id, ticket_addresses(remembered))

    def known_name(self, peer_id: str) -> str:
        """The name a trusted or LAN device goes by, else the start of its ID."""
        for pairing in self._pairings():
            if pairing.endpoint_id == peer_id:
                return pairing.name
        device = self._nodes.device(peer_id)
        return device.name if device is not None else peer_id[:10]


async def _answering(peer_id: str, addresses: list[str]) -> str | None:
    """Ask every address at once for the ticket of whoever listens there (the TCP answer
    a receiver gives on its QUIC port's number): the first that is ``peer_id``'s wins,
    as a ticket dialing that address first. No QUIC connection is made, so a device that
    is tried often sees nothing of it; its key is proven when the send dials."""

    async def ask(address: str) -> str | None:
        host, _, port = address.rpartition(":")
        try:
            ticket = await fetch_ticket(host.strip("[]"), int(port), APP_OUTBOX_TRY_TIMEOUT)
            if str(parse_ticket(ticket).id()) == peer_id:
                return ticket_via(ticket, address)
        except (NetError, ValueError):
            pass
        return None

    asks = [asyncio.ensure_future(ask(a)) for a in addresses]
    try:
        for answer in asyncio.as_completed(asks):
            if (ticket := await answer) is not None:
                return ticket
    finally:
        for pending in asks:
            pending.cancel()
        await asyncio.gather(*asks, return_exceptions=True)
    return None
