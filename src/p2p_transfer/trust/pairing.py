"""Paired devices: endpoint IDs that verified by code, trusted until they expire.

A pairing is keyed on the peer's authenticated endpoint ID, never on a name or
anything else a peer says about itself. It also remembers where the device was
last reached (its addresses and the ticket used), so a send finds it again when
it is not announced on the LAN; that is a hint for dialing, never a reason to trust.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from p2p_transfer.limits import (
    DEFAULT_PAIRING_LIFETIME,
    PAIRING_MAX_ADDRESS_CHARS,
    PAIRING_MAX_ADDRESSES,
    PAIRING_MAX_TICKET_CHARS,
)
from p2p_transfer.trust.files import write_private_atomically

PAIRINGS_FILE_NAME = "pairings.json"
_FORMAT_VERSION = 1

log = logging.getLogger(__name__)
#: Damaged pairings files already reported in this process (a receiver reads the file
#: on every connection: once is enough).
_reported_damaged: set[Path] = set()


@dataclass(frozen=True, slots=True)
class Pairing:
    """One trusted peer."""

    endpoint_id: str
    name: str
    paired_at: float
    expires_at: float
    #: Where it was last reached (``IP:port``, newest first; at most PAIRING_MAX_ADDRESSES).
    addresses: tuple[str, ...] = ()
    #: The ticket that last reached it ("" when it was dialed by address or name).
    ticket: str = ""
    #: When it was last reached (0: not since it paired).
    reached_at: float = 0.0


class PairingStore:
    """The pairings file: read on each query, rewritten atomically on each change."""

    def __init__(self, config_dir: Path, lifetime: float = DEFAULT_PAIRING_LIFETIME) -> None:
        self.path = config_dir / PAIRINGS_FILE_NAME
        self.lifetime = lifetime

    def _load(self) -> dict[str, Pairing]:
        try:
            raw = json.loads(self.path.read_text())
            entries = raw.get("pairings", []) if isinstance(raw, dict) else []
            pairings = [_checked(Pairing(**entry)) for entry in entries]
            return {p.endpoint_id: p for p in pairings}
        except FileNotFoundError:
            return {}
        except (ValueError, TypeError) as exc:
            # A damaged file must not grant trust; start over without it, and say so.
            if self.path not in _reported_damaged:
                _reported_damaged.add(self.path)
                log.warning("%s is damaged and ignored (%s): paired devices are asked for a "
                            "code again, and the next pairing replaces the file", self.path, exc)
            return {}

    def _save(self, pairings: dict[str, Pairing]) -> None:
        data = {"version": _FORMAT_VERSION, "pairings": [asdict(p) for p in pairings.values()]}
        write_private_atomically(self.path, json.dumps(data, indent=2).encode())

    def list(self, now: float | None = None) -> list[Pairing]:
        """Pairings that have not expired."""
        now = time.time() if now is None else now
        return sorted(
            (p for p in self._load().values() if p.expires_at > now), key=lambda p: p.paired_at
        )

    def is_trusted(self, endpoint_id: str, now: float | None = None) -> bool:
        """True if this endpoint ID paired and the pairing has not expired."""
        now = time.time() if now is None else now
        pairing = self._load().get(endpoint_id)
        return pairing is not None and pairing.expires_at > now

    def add(self, endpoint_id: str, name: str, now: float | None = None) -> Pairing:
        """Trust ``endpoint_id`` for the configured lifetime."""
        now = time.time() if now is None else now
        stored = self._load()
        pairings = {k: v for k, v in stored.items() if v.expires_at > now}
        pairing = Pairing(endpoint_id, name, now, now + self.lifetime)
        if (before := stored.get(endpoint_id)) is not None:  # where it was reached stays
            pairing = replace(pairing, addresses=before.addresses, ticket=before.ticket,
                              reached_at=before.reached_at)
        pairings[endpoint_id] = pairing
        self._save(pairings)
        return pairing

    def remember_route(
        self, endpoint_id: str, addresses: list[str], ticket: str = "",
        now: float | None = None,
    ) -> bool:
        """Note that a trusted device was just reached at ``addresses`` (with ``ticket``,
        if one was dialed); False (nothing noted) when it is not trusted."""
        now = time.time() if now is None else now
        pairings = self._load()
        pairing = pairings.get(endpoint_id)
        if pairing is None or pairing.expires_at <= now:
            return False
        fitting = [a for a in addresses if len(a) <= PAIRING_MAX_ADDRESS_CHARS]
        merged = tuple(dict.fromkeys([*fitting, *pairing.addresses]))
        if len(ticket) > PAIRING_MAX_TICKET_CHARS:
            ticket = ""
        pairings[endpoint_id] = replace(
            pairing, addresses=merged[:PAIRING_MAX_ADDRESSES], ticket=ticket or pairing.ticket,
            reached_at=now,
        )
        self._save(pairings)
        return True

    def remove(self, endpoint_id_or_prefix: str) -> list[Pairing]:
        """Forget pairings whose ID starts with the given text; returns what was removed."""
        pairings = self._load()
        removed = [p for k, p in pairings.items() if k.startswith(endpoint_id_or_prefix.lower())]
        if removed:
            self._save({k: p for k, p in pairings.items() if p not in removed})
        return removed

    def clear(self) -> int:
        """Forget every pairing; returns how many there were."""
        count = len(self._load())
        self._save({})
        return count


def _checked(pairing: Pairing) -> Pairing:
    """Refuse (TypeError) a pairing whose fields have the wrong types or sizes."""
    times = (pairing.paired_at, pairing.expires_at, pairing.reached_at)
    addresses = pairing.addresses
    if not (
        isinstance(pairing.endpoint_id, str)
        and isinstance(pairing.name, str)
        and all(isinstance(t, int | float) and not isinstance(t, bool) for t in times)
        and isinstance(addresses, list | tuple)
        and len(addresses) <= PAIRING_MAX_ADDRESSES
        and all(isinstance(a, str) and len(a) <= PAIRING_MAX_ADDRESS_CHARS for a in addresses)
        and isinstance(pairing.ticket, str)
        and len(pairing.ticket) <= PAIRING_MAX_TICKET_CHARS
    ):
        raise TypeError("malformed pairing")
    return replace(pairing, addresses=tuple(addresses))
