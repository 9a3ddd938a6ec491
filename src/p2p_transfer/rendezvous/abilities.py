"""What the two sides of a code say to each other under its key: abilities and tickets.

The mailbox's version message carries ``app_versions``; ours holds
``{"p2p-transfer": {"v": 1}}``, which the wormhole CLI ignores. When both sides
have it, each then sends ``{"p2p-transfer": {"ticket": ..., "name": ...}}``: its
iroh endpoint ticket and device name. Pure: parsing and checks, no I/O.
"""

from __future__ import annotations

import json
from typing import Literal

import msgspec

from p2p_transfer.limits import MAX_RENDEZVOUS_MESSAGE
from p2p_transfer.rendezvous.errors import BadRendezvousMessage

#: The wormhole CLI's application ID: codes are shared with its clients.
APP_ID = "lothar.com/wormhole/text-or-file-xfer"
#: Our key in ``app_versions`` and in the ticket message.
ABILITY = "p2p-transfer"
#: The version of the ticket exchange this program speaks.
EXCHANGE_VERSION = 1
#: What we advertise in the version message.
OUR_ABILITIES: dict[str, object] = {ABILITY: {"v": EXCHANGE_VERSION}}

PeerKind = Literal["p2p-transfer", "magic-wormhole"]


class _Ability(msgspec.Struct, forbid_unknown_fields=False):
    v: int


class _Ticket(msgspec.Struct, forbid_unknown_fields=True):
    ticket: str
    name: str = ""


class _TicketEnvelope(msgspec.Struct, forbid_unknown_fields=True, rename={"body": ABILITY}):
    body: _Ticket


def peer_kind(app_versions: object) -> PeerKind:
    """What the other side runs, from its ``app_versions``: ours (with the ticket exchange
    of our version) or a magic-wormhole client. A message too big or not the shape ours
    have is refused (BadRendezvousMessage), not guessed at."""
    try:
        size = len(json.dumps(app_versions).encode())
    except (TypeError, ValueError):
        raise BadRendezvousMessage("its version message is not JSON") from None
    if size > MAX_RENDEZVOUS_MESSAGE:
        raise BadRendezvousMessage(
            f"its version message is {size:,} bytes (at most {MAX_RENDEZVOUS_MESSAGE:,})"
        )
    if not isinstance(app_versions, dict):
        raise BadRendezvousMessage("its version message is not an object")
    if ABILITY not in app_versions:
        return "magic-wormhole"
    try:
        ability = msgspec.convert(app_versions[ABILITY], _Ability)
    except msgspec.ValidationError as exc:
        raise BadRendezvousMessage(f"its abilities are malformed ({exc})") from None
    if ability.v != EXCHANGE_VERSION:
        raise BadRendezvousMessage(
            f"it speaks version {ability.v} of the code exchange, this program "
            f"{EXCHANGE_VERSION}; update the older one"
        )
    return "p2p-transfer"


def encode_ticket(ticket: str, name: str) -> bytes:
    """Our ticket message (sent under the code's key)."""
    return msgspec.json.encode(_TicketEnvelope(_Ticket(ticket, name)))


def decode_ticket(data: bytes) -> tuple[str, str]:
    """The other side's ticket and device name; BadRendezvousMessage when too big or
    malformed (the ticket itself is checked when it is parsed)."""
    if len(data) > MAX_RENDEZVOUS_MESSAGE:
        raise BadRendezvousMessage(
            f"its ticket message is {len(data):,} bytes (at most {MAX_RENDEZVOUS_MESSAGE:,})"
        )
    try:
        envelope = msgspec.json.decode(data, type=_TicketEnvelope)
    except msgspec.DecodeError as exc:
        raise BadRendezvousMessage(f"its ticket message is malformed ({exc})") from None
    return envelope.body.ticket, envelope.body.name
