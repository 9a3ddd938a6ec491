"""The optional PIN a LocalSend sender must type: wrong tries counted per address."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from enum import Enum

from p2p_transfer.limits import LOCALSEND_MAX_WRONG_PINS, LOCALSEND_PIN_LOCKOUT

#: Addresses whose wrong tries are remembered at once (the oldest are forgotten first).
_MAX_TRACKED = 1024


class PinCheck(Enum):
    """What a ``prepare-upload`` gets for the PIN it carries."""

    OK = "ok"
    WRONG = "wrong"  # 401: missing or wrong
    LOCKED = "locked"  # 429: too many wrong tries lately


class PinGate:
    """Checks ``?pin=`` in constant time; LOCALSEND_MAX_WRONG_PINS wrong tries from one
    address within LOCALSEND_PIN_LOCKOUT seconds lock it out until they age out."""

    def __init__(self, pin: str | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.pin = pin or None
        self._clock = clock
        self._wrong: dict[str, list[float]] = {}

    def check(self, ip: str, given: str | None) -> PinCheck:
        if self.pin is None:
            return PinCheck.OK
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
        return PinCheck.WRONG
