"""Verification codes: generated from ``secrets``, read as people type them, and who
may wait for one.

A code is checked by a SPAKE2 exchange (trust/pake.py), never compared in the clear.
"""

from __future__ import annotations

import secrets
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from p2p_transfer.limits import (
    CODE_DIGITS,
    MAX_PENDING_VERIFICATIONS,
    MAX_PENDING_VERIFICATIONS_PER_ADDRESS,
)

#: What people put between the digit groups of a code they type, or around it.
_SEPARATORS = frozenset(" -.\u00a0\u2010\u2011\u2012\u2013\u2014\u2212\u3000\u3002")


def generate_code() -> str:
    """A fresh code of CODE_DIGITS decimal digits."""
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def is_valid_code_format(code: str) -> bool:
    """True for exactly CODE_DIGITS ASCII digits (a code as it goes into the exchange)."""
    return len(code) == CODE_DIGITS and code.isascii() and code.isdigit()


def normalize_code(typed: str) -> str | None:
    """The code in ``typed`` as CODE_DIGITS ASCII digits, or None if it holds none.

    People type what they read: ``026 767``, ``026-767``, ``026.767``, with blanks
    around it, or with full-width (or other scripts') digits from their keyboard.
    """
    digits = []
    for char in unicodedata.normalize("NFKC", typed):
        if char in _SEPARATORS or char.isspace():
            continue
        value = unicodedata.decimal(char, None)
        if value is None:
            return None
        digits.append(str(value))
    code = "".join(digits)
    return code if is_valid_code_format(code) else None


def format_code(code: str) -> str:
    """A code as people read it: ``026 767`` (JSON and the wire keep the bare digits)."""
    half = len(code) // 2
    return f"{code[:half]} {code[half:]}"


#: What a code looks like, for the messages that ask for one again: ``6 digits, like 026 767``.
CODE_FORM = f"{CODE_DIGITS} digits, like {format_code('0267671357'[:CODE_DIGITS])}"


class Waiter(Protocol):
    """A verification waiting for its code, as the slots see it."""

    @property
    def checking(self) -> bool:
        """A typed code is being checked: no other key's newcomer may drop it then
        (it is not idle)."""
        ...


W = TypeVar("W", bound=Waiter)


@dataclass(frozen=True, slots=True)
class _Held(Generic[W]):
    waiter: W
    key: str
    address: str


class VerificationSlots(Generic[W]):
    """Who may wait for a code at once: one verification per key, ``per_address`` per
    address, ``limit`` in all.

    A newcomer replaces its own key's waiting verification; on a full address, that
    address's oldest idle one; when all are taken, the oldest idle one of the address
    holding the most, if that is at least two more than the newcomer's address holds.
    So a few addresses cannot keep every place, and one that holds its fair share
    cannot be pushed out by others reconnecting.
    """

    def __init__(
        self,
        limit: int = MAX_PENDING_VERIFICATIONS,
        per_address: int = MAX_PENDING_VERIFICATIONS_PER_ADDRESS,
    ) -> None:
        self.limit = limit
        self.per_address = per_address
        self._held: list[_Held[W]] = []  # oldest first

    def __len__(self) -> int:
        return len(self._held)

    def take(self, waiter: W, key: str, address: str) -> list[W] | None:
        """Room for ``waiter``: the verifications it displaces (the caller ends them), or
        None when no room can be made (nothing changes then)."""
        displaced = [h for h in self._held if h.key == key]
        rest = [h for h in self._held if h.key != key]
        neighbours = [h for h in rest if h.address == address]
        if len(neighbours) >= self.per_address:
            victim = _oldest_idle(neighbours)
            if victim is None:
                return None
            displaced.append(victim)
            rest.remove(victim)
        if len(rest) >= self.limit:
            victim = self._fair_victim(rest, address)
            if victim is None:
                return None
            displaced.append(victim)
            rest.remove(victim)
        self._held = [*rest, _Held(waiter, key, address)]
        return [h.waiter for h in displaced]

    def release(self, waiter: W) -> None:
        """Give a place back (again is harmless)."""
        self._held = [h for h in self._held if h.waiter is not waiter]

    @staticmethod
    def _fair_victim(held: list[_Held[W]], address: str) -> _Held[W] | None:
        counts = Counter(h.address for h in held)
        enough = counts[address] + 2
        crowded = sorted(
            (a for a, n in counts.items() if n >= enough), key=lambda a: -counts[a]
        )
        for crowded_address in crowded:
            victim = _oldest_idle([h for h in held if h.address == crowded_address])
            if victim is not None:
                return victim
        return None


def _oldest_idle(held: list[_Held[W]]) -> _Held[W] | None:
    return next((h for h in held if not h.waiter.checking), None)
