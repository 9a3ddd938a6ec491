"""Short codes as people type them: ``7-guitarist-revenge``, ``7 Guitarist Revenge``.

A code is a nameplate number and words of the PGP word list, as magic-wormhole
makes them (so its clients and ours share codes). Pure functions: no I/O.
"""

from __future__ import annotations

import functools
import re
import secrets
from importlib import resources

#: What separates a code's parts when typed: dashes, spaces, underscores, dots.
_SEPARATORS = re.compile(r"[\s_.\-]+")
_CODE = re.compile(r"[0-9]+(?:-[a-z]+)+")


def normalize_code(text: str) -> str | None:
    """The code in its canonical form (lower case, single dashes), or None when the text
    cannot be one: a number, then at least one word."""
    parts = [part for part in _SEPARATORS.split(text.strip().lower()) if part]
    code = "-".join(parts)
    if not _CODE.fullmatch(code):
        return None
    nameplate = parts[0].lstrip("0") or "0"
    return "-".join([nameplate, *parts[1:]])


def looks_like_code(text: str) -> bool:
    """True when ``text`` reads as a short code rather than a ticket or a device."""
    return normalize_code(text) is not None


def nameplate(code: str) -> str:
    """The number in front of a code: the mailbox's channel, and what LAN discovery shows."""
    return code.split("-", 1)[0]


def unknown_words(code: str) -> list[str]:
    """The words of a (normalized) code that are not in the word list: most likely typos."""
    known = _words()
    return [word for word in code.split("-")[1:] if word not in known]


def complete(prefix: str) -> list[str]:
    """Completions of a partly typed code (a shell's tab): the word list's words that
    continue its last word, at the position it holds."""
    parts = _SEPARATORS.split(prefix.lower())
    if len(parts) < 2 or not parts[0].isdigit():
        return []
    head, last = "-".join(parts[:-1]), parts[-1]
    # The first word (and third...) comes from the list's "odd" words, as wormhole's do.
    first_kind = (len(parts) - 2) % 2 == 0
    words = _odd_words() if first_kind else _even_words()
    return [f"{head}-{word}" for word in sorted(words) if word.startswith(last)]


@functools.cache
def _word_pairs() -> tuple[tuple[str, str], ...]:
    """The PGP word list, a byte's (even, odd) words in byte order: the list magic-
    wormhole's codes use. Read from the package, not taken from the library (whose
    import loads Twisted)."""
    text = resources.files(__package__).joinpath("pgp_words.txt").read_text("ascii")
    rows = [line.split() for line in text.splitlines() if line and not line.startswith("#")]
    return tuple((even, odd) for _, even, odd in rows)


@functools.cache
def _even_words() -> frozenset[str]:
    return frozenset(even for even, _ in _word_pairs())


@functools.cache
def _odd_words() -> frozenset[str]:
    return frozenset(odd for _, odd in _word_pairs())


def choose_words(count: int) -> str:
    """``count`` random words for a new code, odd and even words in turn (as magic-
    wormhole's: a dropped word shows)."""
    pairs = _word_pairs()
    return "-".join(
        pairs[secrets.randbelow(len(pairs))][1 if index % 2 == 0 else 0]
        for index in range(count)
    )


def known_words() -> list[str]:
    """Every word a code of the list may hold (for suggestions)."""
    return sorted(_words())


def _words() -> frozenset[str]:
    return _even_words() | _odd_words()
