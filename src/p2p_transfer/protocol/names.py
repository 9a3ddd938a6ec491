"""Text a peer chose, made honest on screen: nothing invisible that changes what is shown.

Unicode format characters (category Cf) draw nothing, yet change what surrounds
them: U+202E (right-to-left override) makes ``\u202egnp.exe`` look like a ``.png``,
and a zero-width space makes ``.\u200b.`` look like ``..``. Every name that comes
from a peer (received file names, upload names, device names from Hello, Welcome
and mDNS) loses them. The two joiners (U+200C, U+200D) stay only between two
non-ASCII letters, marks or symbols, where they shape Persian and Indic words and
emoji sequences; next to ASCII or punctuation they could only hide something.
"""

from __future__ import annotations

import re
import unicodedata

from p2p_transfer.limits import MAX_DEVICE_NAME_CHARS

#: Zero-width non-joiner and joiner: part of how some scripts and emoji are written.
_JOINERS = frozenset("\u200c\u200d")
#: C0 and C1 control characters, and the line and paragraph separators.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _joins_visibly(text: str, index: int) -> bool:
    """Whether the joiner at ``index`` sits between two non-ASCII letters, marks or symbols."""
    if not 0 < index < len(text) - 1:
        return False
    return all(
        not neighbour.isascii() and unicodedata.category(neighbour)[0] in "LMS"
        for neighbour in (text[index - 1], text[index + 1])
    )


def without_format_characters(text: str) -> str:
    """``text`` without Unicode format characters (bidi controls, zero-width ones...)."""
    if text.isascii():
        return text
    return "".join(
        char
        for index, char in enumerate(text)
        if unicodedata.category(char) != "Cf"
        or (char in _JOINERS and _joins_visibly(text, index))
    )


def normalized(text: str) -> str:
    """``text`` in NFC, without format characters (normalized again after they go: one
    between a letter and its accent kept them apart)."""
    cleaned = without_format_characters(unicodedata.normalize("NFC", text))
    return unicodedata.normalize("NFC", cleaned)


def clean_device_name(raw: str) -> str:
    """A peer's claimed device name made safe to show: NFC, no control or format
    characters, trimmed and bounded ('' when nothing is left)."""
    name = normalized(raw)
    return _CONTROL_CHARS.sub("", name).strip()[:MAX_DEVICE_NAME_CHARS].strip()
