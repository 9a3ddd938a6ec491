"""How much of LocalSend's JSON bodies the server holds at once, in total and per address.

A ``prepare-upload`` body may be 4 MiB (LOCALSEND_MAX_JSON_BODY), and reading,
decoding and planning one costs several times that; a hundred at once from a few
addresses must not each get that memory. A body takes its declared size (the
largest, when it has none) from this budget before it is read and gives it back
once its offer is planned; one that does not fit is refused (503) unread. Small
bodies (a ``register``, an offer of some hundred files) are read without it: the
connection cap bounds them.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator

from p2p_transfer.limits import (
    LOCALSEND_BODIES_HELD,
    LOCALSEND_BODIES_HELD_PER_IP,
    LOCALSEND_MAX_JSON_BODY,
    LOCALSEND_SMALL_BODY,
)


class BodyBudget:
    """Bytes of request bodies being read or planned, by address and in all."""

    def __init__(
        self,
        total: int = LOCALSEND_BODIES_HELD,
        per_ip: int = LOCALSEND_BODIES_HELD_PER_IP,
        small: int = LOCALSEND_SMALL_BODY,
    ) -> None:
        self.total = total
        self.per_ip = per_ip
        self.small = small
        self._held: Counter[str] = Counter()

    @property
    def held(self) -> int:
        """Bytes taken now."""
        return self._held.total()

    def cost(self, length: int | None) -> int:
        """What a body of ``length`` bytes (None: not declared) takes from the budget."""
        if length is None:
            return LOCALSEND_MAX_JSON_BODY
        return 0 if length <= self.small else length

    @contextlib.contextmanager
    def held_for(self, ip: str, length: int | None) -> Iterator[bool]:
        """Take the cost of a body of ``length`` for ``ip`` while the block runs; yields
        False (and takes nothing) when it does not fit now."""
        cost = self.cost(length)
        if not cost:
            yield True
            return
        if self._held[ip] + cost > self.per_ip or self.held + cost > self.total:
            yield False
            return
        self._held[ip] += cost
        try:
            yield True
        finally:
            self._held[ip] -= cost
            if self._held[ip] <= 0:
                del self._held[ip]
