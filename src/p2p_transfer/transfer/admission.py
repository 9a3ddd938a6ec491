"""How much a receiver holds for its peers: connections (in total and per address:
an IPv4 address or an IPv6 /64, as ``address_group`` counts) and manifest entries
(in total and per peer).

A full table first evicts the oldest idle connection: one that has not yet
said hello, or one that was answered (refused, declined, done) and is only
waiting for its peer to hang up. A flood of idle connections, or of peers that
were told no and linger, then cannot lock out an honest peer, whose hello
arrives within milliseconds.
"""

from __future__ import annotations

from collections import Counter
from typing import Protocol

from p2p_transfer.limits import (
    MANIFEST_ENTRIES_HELD,
    MANIFEST_ENTRIES_HELD_PER_PEER,
    MANIFEST_SMALL_OFFER_ENTRIES,
    MANIFEST_SMALL_OFFERS_RESERVE,
    MAX_CONNECTIONS,
    MAX_CONNECTIONS_PER_IP,
)
from p2p_transfer.trust import address_group


class Admittee(Protocol):
    """What the table needs of a connection's session."""

    @property
    def idle(self) -> bool:
        """True while the connection may be dropped to make room for another."""
        ...

    def evict(self, reason: str) -> None: ...


class ConnectionTable:
    """Admits connections up to the caps, evicting idle ones to make room."""

    def __init__(
        self, max_total: int = MAX_CONNECTIONS, max_per_ip: int = MAX_CONNECTIONS_PER_IP
    ) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self._holders: dict[Admittee, str] = {}  # insertion order = age

    def __len__(self) -> int:
        return len(self._holders)

    def admit(self, holder: Admittee, ip: str | None) -> bool:
        """Add ``holder``; False when the caps are reached and nothing idle can go.

        Counted by ``address_group``: one host's IPv6 /64 is one address, as for the
        verification limits, or a host would get a share per address in its /64."""
        key = address_group(ip)
        same_ip = [h for h, i in self._holders.items() if i == key]
        if len(same_ip) >= self.max_per_ip and not self._evict_idle(same_ip):
            return False
        if len(self._holders) >= self.max_total and not self._evict_idle(list(self._holders)):
            return False
        self._holders[holder] = key
        return True

    def release(self, holder: Admittee) -> None:
        """Forget a finished connection."""
        self._holders.pop(holder, None)

    def _evict_idle(self, candidates: list[Admittee]) -> bool:
        for holder in candidates:
            if holder.idle:
                self._holders.pop(holder, None)
                holder.evict("too many connections; idle connection dropped")
                return True
        return False


class CountedSlots:
    """At most ``limit`` of something at once (offers waiting for the user's answer)."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._taken = 0

    def try_acquire(self) -> bool:
        """Take a place, or False when all are taken."""
        if self._taken >= self._limit:
            return False
        self._taken += 1
        return True

    def release(self) -> None:
        """Give a place back."""
        self._taken = max(0, self._taken - 1)


class ManifestBudget:
    """Manifest entries held in memory by every offer together, and by one peer's.

    An offer reserves the entries it declares before a page of them is read, and gives
    them back when its session ends, so a few paired peers offering the largest
    manifests at once cannot make the receiver hold more than the budget. Small offers
    (at most ``small`` entries: a few files, a text) draw on a reserve of their own
    beside it, with no peer's share applied: while the budget is taken, a one-file
    offer still gets in. Offers of every door (our protocol, LocalSend) share one.
    """

    def __init__(
        self,
        total: int = MANIFEST_ENTRIES_HELD,
        per_peer: int = MANIFEST_ENTRIES_HELD_PER_PEER,
        *,
        small: int = MANIFEST_SMALL_OFFER_ENTRIES,
        reserve: int = MANIFEST_SMALL_OFFERS_RESERVE,
    ) -> None:
        self.total = total
        self.per_peer = per_peer
        self.small = small
        self.reserve_size = reserve
        self._held: Counter[str] = Counter()  # large offers' entries, by peer
        self._small_held = 0

    @property
    def held(self) -> int:
        """Entries reserved now, by all peers."""
        return self._held.total() + self._small_held

    def reserve(self, peer: str, entries: int) -> str:
        """Reserve ``entries`` for ``peer``; '' when done, else why not (for the sender)."""
        if entries <= self.small:
            if self._small_held + entries > self.reserve_size:
                return "the receiver is taking too many offers; try again when they are done"
            self._small_held += entries
            return ""
        if self._held[peer] + entries > self.per_peer:
            return (
                "this device's other offers to the receiver are too large to take another "
                "now; send again when they are done"
            )
        if self._held.total() + entries > self.total:
            return "the receiver is taking too many large offers; try again when they are done"
        self._held[peer] += entries
        return ""

    def release(self, peer: str, entries: int) -> None:
        """Give back what ``reserve`` took for ``peer`` (``entries``: as reserved)."""
        if entries <= self.small:
            self._small_held = max(0, self._small_held - entries)
            return
        self._held[peer] -= entries
        if self._held[peer] <= 0:
            del self._held[peer]
