"""The optional PIN a LocalSend sender must type: wrong tries counted per address and in all.

One address gets LOCALSEND_MAX_WRONG_PINS tries a minute; all addresses together get
LOCALSEND_MAX_WRONG_PINS_IN_ALL within LOCALSEND_WRONG_PINS_WINDOW, like first
contact's global allowance: a LAN of many addresses (a /24, IPv6) would otherwise
guess a 4-digit PIN within minutes. When that allowance is used up the PIN door
closes: no PIN, right or wrong, is compared again until the user lifts the lock by
starting receiving again (``on_closed`` tells them).
"""

from __future__ import annotations

import hmac
import time
from collections import deque
from collections.abc import Callable
from enum import Enum

from p2p_transfer.limits import (
    LOCALSEND_MAX_WRONG_PINS,
    LOCALSEND_MAX_WRONG_PINS_IN_ALL,
    LOCALSEND_PIN_LOCKOUT,
    LOCALSEND_WRONG_PINS_WINDOW,
)

#: Addresses whose wrong tries are remembered at once (the oldest are forgotten first).
_MAX_TRACKED = 1024


class PinCheck(Enum):
    """What a ``prepare-upload`` gets for the PIN it carries."""

    OK = "ok"
    WRONG = "wrong"  # 401: missing or wrong
    LOCKED = "locked"  # 429: too many wrong tries from this address lately
    CLOSED = "closed"  # 429: too many wrong tries in all; until the user lifts the lock


class PinGate:
    """Checks ``?pin=`` in constant time; LOCALSEND_MAX_WRONG_PINS wrong tries from one
    address within LOCALSEND_PIN_LOCKOUT seconds lock it out until they age out, and
    LOCALSEND_MAX_WRONG_PINS_IN_ALL from all addresses within LOCALSEND_WRONG_PINS_WINDOW
    close the gate for good (for this gate's life)."""

    def __init__(
        self,
        pin: str | None,
        clock: Callable[[], float] = time.monotonic,
        on_closed: Callable[[int], None] | None = None,
    ) -> None:
        """``on_closed(addresses)``: called once, when the gate closes, with how many
        addresses the wrong PINs came from."""
        self.pin = pin or None
        self._clock = clock
        self._on_closed = on_closed
        self._wrong: dict[str, list[float]] = {}
        self._all_wrong: deque[tuple[float, str]] = deque()
        self.closed = False

    def check(self, ip: str, given: str | None) -> PinCheck:
        if self.pin is None:
            return PinCheck.OK
        if self.closed:
            return PinCheck.CLOSED
        now = self._clock()
        recent = [t for t in self._wrong.get(ip, []) if now - t < LOCALSEND_PIN_LOCKOUT]
        if len(recent) >= LOCALSEND_MAX_WRONG_PINS:
            self._wrong[ip] = recent
            return PinCheck.LOCKED
        if given is not None and hmac.compare_digest(given.encode(), self.pin.encode()):
            self._wrong.pop(ip, None)
            return PinCheck.OK
        if given:  # asking without a PIN is how a sender learns one is needed: no penalty
            recent.append(now)
            self._wrong.pop(ip, None)
            self._wrong[ip] = recent
            while len(self._wrong) > _MAX_TRACKED:
                del self._wrong[next(iter(self._wrong))]
            self._count_in_all(now, ip)
        return PinCheck.WRONG

    def _count_in_all(self, now: float, ip: str) -> None:
        """One more wrong PIN from anywhere; the last one the allowance has closes the gate."""
        while self._all_wrong and now - self._all_wrong[0][0] >= LOCALSEND_WRONG_PINS_WINDOW:
            self._all_wrong.popleft()
        self._all_wrong.append((now, ip))
        if len(self._all_wrong) >= LOCALSEND_MAX_WRONG_PINS_IN_ALL:
            self.closed = True
            if self._on_closed is not None:
                self._on_closed(len({address for _, address in self._all_wrong}))
