"""Sizes as people read and type them: IEC units (KiB, MiB, GiB), one formatter, one parser;
and lengths of time as messages say them (``2 min``).

Every front end (terminal, share page, the receiver's messages to a sender)
says sizes the same way, so ``3.0 MiB`` here is ``3.0 MiB`` there.
"""

from __future__ import annotations

import re

from p2p_transfer.errors import LocalFault

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")
#: What a typed unit multiplies by: K, KB, KiB (any case) all mean 1024.
_FACTORS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
_TYPED_SIZE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?", re.IGNORECASE)


class SizeError(LocalFault, ValueError):
    """A typed size that is not one; the message says what a size looks like."""


def format_size(count: float) -> str:
    """``1536`` → ``1.5 KiB``, ``457179136`` → ``436 MiB``: one decimal below 100."""
    value = float(count)
    unit = _UNITS[0]
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
        value /= 1024
    if unit == "B":
        return f"{int(count)} B"
    return f"{value:.1f} {unit}" if abs(value) < 100 else f"{value:.0f} {unit}"


def format_rate(bytes_per_second: float) -> str:
    """``1.5 MiB/s``."""
    return f"{format_size(bytes_per_second)}/s"


def format_duration(seconds: float) -> str:
    """``45`` → ``45 s``, ``90`` → ``1 min 30 s``, ``3900`` → ``1 h 5 min``: the two
    largest units, whole."""
    total = max(0, round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(hours, "h"), (minutes, "min"), (secs, "s")]
    while len(parts) > 1 and parts[0][0] == 0:
        parts.pop(0)
    shown = [f"{count} {unit}" for count, unit in parts[:2] if count] or [f"{secs} s"]
    return " ".join(shown)


def parse_size(text: str) -> int:
    """``1048576``, ``500M``, ``2G``, ``1.5GiB`` → bytes. K, M, G and T are powers of 1024,
    with or without ``B``/``iB`` after them; a plain number is bytes."""
    match = _TYPED_SIZE.fullmatch(text.strip())
    if match is None or (not match[2] and "." in match[1]):  # no fractions of a byte
        raise SizeError(f"{text.strip()!r} is not a size (e.g. 1048576, 500M, 2G, 1.5GiB)")
    return int(float(match[1]) * _FACTORS[match[2].upper()])
