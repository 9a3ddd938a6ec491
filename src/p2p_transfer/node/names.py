"""What a ``--to`` name means: the strongest protocol that answers to it, never a silent
downgrade.

No I/O here: ``Presence`` looks the name up (mDNS, the pairings, LocalSend's multicast)
and hands what it found to ``route_for_name``. The rules, in order:

- A name that a device of ours answers to (announced on the LAN, or paired) goes over
  our protocol, whose handshake proves the device's key. A paired device that is not
  announced is dialed where it was last reached.
- A LocalSend device that calls itself by such a name is never sent to: while the
  device of ours is announced that is an ambiguity listing both; while it is not, a
  refusal that says why. (A device of ours announces itself to LocalSend too: that
  announcement, at one of its addresses, is not counted.)
- Only a name no device of ours has reaches a LocalSend device, and the route says so
  (``warning``): LocalSend proves nobody's key and hashes nothing end to end.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from p2p_transfer.discovery import AmbiguousDeviceError, Device, DeviceNotFoundError, DiscoveryError
from p2p_transfer.discovery.records import NAME_ID_PREFIX
from p2p_transfer.discovery.table import looks_like_id_prefix
from p2p_transfer.events import Found, RouteEvent, Via
from p2p_transfer.net import ticket_addresses, ticket_endpoint_id
from p2p_transfer.node.routes import remembered_ticket
from p2p_transfer.trust import Pairing

if TYPE_CHECKING:
    from p2p_transfer.localsend import LocalSendDevice, Target

#: Where to look when a device is not seen: said with every "not found" of a paired device.
DOCTOR_HINT = "`p2p-transfer doctor` says why devices don't see each other"
#: LocalSend's fingerprint characters shown (as the offer prompt shows them).
FINGERPRINT_SHOWN = 8


class LookalikeError(AmbiguousDeviceError):
    """A LocalSend device calls itself by the name of a paired device that is not announced
    here: nothing is sent to it (LocalSend proves no name)."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a ``--to`` leads: a ticket for our protocol, or a LocalSend device."""

    target: str | Target
    found: Found
    peer_name: str = ""
    #: The endpoint ID, or the fingerprint a LocalSend device claims ("" if not known).
    peer_id: str = ""
    addresses: tuple[str, ...] = ()

    @property
    def via(self) -> Via:
        return "p2p-transfer" if isinstance(self.target, str) else "localsend"

    @property
    def warning(self) -> str:
        """What the route gives up, for the user to hear before anything moves."""
        if self.via == "p2p-transfer":
            return ""
        return (f"{self.peer_name} is a LocalSend device: files go unverified by the "
                "receiver's key")

    def event(self, session: str, to: str) -> RouteEvent:
        return RouteEvent(session, to, self.via, self.peer_name, self.peer_id, self.found,
                          list(self.addresses), self.warning)


def ticket_route(ticket: str, found: Found, peer_name: str = "") -> Route:
    """A route to the device a ticket names (a damaged ticket raises DamagedTicket)."""
    return Route(ticket, found, peer_name, ticket_endpoint_id(ticket),
                 tuple(ticket_addresses(ticket)))


def localsend_route(target: Target, found: Found) -> Route:
    address = f"[{target.host}]:{target.port}" if ":" in target.host else (
        f"{target.host}:{target.port}"
    )
    return Route(target, found, target.name, target.fingerprint or "", (address,))


def paired_named(name: str, pairings: Iterable[Pairing]) -> list[Pairing]:
    """Pairings ``name`` means: by name (any case), or by a prefix of the endpoint ID."""
    folded, prefix = name.casefold(), name.lower()
    by_id = looks_like_id_prefix(name)
    return [p for p in pairings
            if p.name.casefold() == folded or (by_id and p.endpoint_id.startswith(prefix))]


def route_for_name(
    name: str,
    lan: str | DiscoveryError,
    paired: Sequence[Pairing],
    heard: Sequence[LocalSendDevice],
) -> Route:
    """The route for ``name``, from the LAN's answer (a ticket, or why not), the pairings
    it names and the LocalSend devices heard under it; raises the errors the module
    docstring lists."""
    from p2p_transfer.localsend.discovery import others

    ours: list[tuple[str, Iterable[str]]] = [(p.name, p.addresses) for p in paired]
    if isinstance(lan, str):
        lan_id, lan_addresses = ticket_endpoint_id(lan), ticket_addresses(lan)
        strangers = others(heard, [*ours, (name, lan_addresses)])
        absent = [p for p in paired if p.endpoint_id != lan_id]
        if strangers or absent:
            announced = [Device(name, lan_id, tuple(lan_addresses), None, "")]
            raise _ambiguous(name, announced, absent, strangers)
        return Route(lan, "lan", name, lan_id, tuple(lan_addresses))
    if isinstance(lan, AmbiguousDeviceError):
        announced = list(lan.candidates)
        strangers = others(heard, [*ours, *((d.name, d.addresses) for d in announced)])
        seen = {d.endpoint_id for d in announced}
        raise _ambiguous(name, announced, [p for p in paired if p.endpoint_id not in seen],
                         strangers)
    if paired:
        return _paired_route(name, lan, paired, others(heard, ours))
    if not heard:
        raise lan
    if len(heard) > 1:
        raise _ambiguous(name, [], [], heard)
    return localsend_route(heard[0].target(), "localsend")


def _paired_route(
    name: str, lan: DiscoveryError, paired: Sequence[Pairing],
    strangers: Sequence[LocalSendDevice],
) -> Route:
    """A paired device that is not announced: where it was last reached, unless its name
    is taken by a LocalSend device meanwhile (then nothing is sent)."""
    if len(paired) > 1:
        raise _ambiguous(name, [], paired, strangers)
    pairing = paired[0]
    not_seen = _not_seen(pairing, lan)
    if strangers:
        where = ", ".join(d.address for d in strangers)
        raise LookalikeError(
            f"{not_seen}, and a LocalSend device at {where} calls itself {name!r}: "
            f"nothing sent — LocalSend cannot prove it is {pairing.name}. If "
            f"{pairing.name} is on, send with its ticket (`p2p-transfer receive` prints "
            f"it); {DOCTOR_HINT}:\n" + _lines([], paired, strangers),
            [],
        )
    ticket = remembered_ticket(pairing)
    if ticket is None:
        raise DeviceNotFoundError(
            f"{not_seen} and was never reached at an address to try again; if it is on, "
            f"send with its ticket (`p2p-transfer receive` prints it); {DOCTOR_HINT}"
        )
    return ticket_route(ticket, "pairing", pairing.name)


def _not_seen(pairing: Pairing, lan: DiscoveryError) -> str:
    """``bob (paired, ID …) is not announced on this network`` and the LAN's own cause
    when it is not simply "not found"."""
    cause = "" if isinstance(lan, DeviceNotFoundError) else f" ({lan})"
    return (f"{pairing.name} (paired, ID {pairing.endpoint_id[:NAME_ID_PREFIX]}) is not "
            f"announced on this network{cause}")


def _ambiguous(
    name: str,
    announced: Sequence[Device],
    paired: Sequence[Pairing],
    heard: Sequence[LocalSendDevice],
) -> AmbiguousDeviceError:
    """Every device ``name`` may mean, each with its protocol and ID; the way out named is
    an ID prefix or a ticket, and LocalSend's address only when no device of ours is
    among them."""
    ours = len(announced) + len(paired)
    counted = [
        f"{'a' if count == 1 else count} {what} device{'' if count == 1 else 's'}"
        for count, what in ((len(heard), "LocalSend"), (ours, "p2p-transfer")) if count
    ]
    if ours:
        first = (announced[0].endpoint_id if announced else paired[0].endpoint_id)
        how = ("send to the one you mean with its ID prefix "
               f"(--to {first[:NAME_ID_PREFIX]}) or its ticket")
    else:
        how = f"send to the one you mean with --to localsend:{heard[0].address}"
    return AmbiguousDeviceError(
        f"{name!r} names {' and '.join(counted)}; {how}:\n"
        + _lines(announced, paired, heard),
        list(announced),
    )


def _lines(
    announced: Sequence[Device], paired: Sequence[Pairing], heard: Sequence[LocalSendDevice]
) -> str:
    """One line a device: protocol, name, where, and the ID it is known by."""
    lines = [
        f"  p2p-transfer: {d.name} at {', '.join(d.addresses) or 'no address'}, "
        f"ID {d.endpoint_id[:NAME_ID_PREFIX]}"
        for d in announced
    ]
    lines += [
        f"  p2p-transfer: {p.name} (paired; not announced now), "
        f"ID {p.endpoint_id[:NAME_ID_PREFIX]}"
        for p in paired
    ]
    lines += [
        f"  LocalSend: {d.name} at {d.address}, fingerprint "
        f"{d.fingerprint[:FINGERPRINT_SHOWN].upper()} (claimed; LocalSend proves no one)"
        for d in heard
    ]
    return "\n".join(lines)
