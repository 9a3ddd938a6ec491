"""Where the app's sends go.

A target is what the user gave: a ticket (pasted, maybe with the line breaks of a
wrapped terminal), ``HOST:PORT``, ``localsend:HOST``, a device name, or a device
picked in the Devices list: on the LAN now, a LocalSend device, or a trusted device
that is not announced (multicast blocked, another network) but was reached before
(the node notes where each send reached a trusted device: ``node.routes``).
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p_transfer.app.node_control import NodeControl
from p2p_transfer.discovery import DiscoveryError, device_ticket, looks_like_ticket
from p2p_transfer.errors import LocalFault
from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS
from p2p_transfer.localsend.messages import Target
from p2p_transfer.net import NetError, parse_ticket
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
        if pairing is not None and (ticket := remembered_ticket(pairing)) is not None:
            return Destination(ticket, pairing.name, pairing.endpoint_id, ticket)
        raise UnresolvedTarget(
            "that device is not on the LAN right now and was never reached before; "
            "ask for its ticket instead", missing=True,
        )

    def known_name(self, peer_id: str) -> str:
        """The name a trusted or LAN device goes by, else the start of its ID."""
        for pairing in self._pairings():
            if pairing.endpoint_id == peer_id:
                return pairing.name
        device = self._nodes.device(peer_id)
        return device.name if device is not None else peer_id[:10]
