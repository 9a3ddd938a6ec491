"""Verification codes: generated from ``secrets``, and how many may wait at once.

A code is checked by a SPAKE2 exchange (trust/pake.py), never compared in the clear.
"""

from __future__ import annotations

import secrets

from p2p_transfer.limits import CODE_DIGITS, MAX_PENDING_VERIFICATIONS


def generate_code() -> str:
    """A fresh code of CODE_DIGITS decimal digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_valid_code_format(code: str) -> bool:
    """True for exactly CODE_DIGITS ASCII digits."""
    return len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


class VerificationSlots:
    """At most MAX_PENDING_VERIFICATIONS peers may wait for a code at once."""

    def __init__(self, limit: int = MAX_PENDING_VERIFICATIONS) -> None:
        self._limit = limit
        self._pending = 0

    def try_acquire(self) -> bool:
        """Take a slot, or False when all are busy."""
        if self._pending >= self._limit:
            return False
        self._pending += 1
        return True

    def release(self) -> None:
        """Give a slot back."""
        self._pending = max(0, self._pending - 1)
