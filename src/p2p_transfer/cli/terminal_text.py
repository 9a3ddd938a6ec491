"""The wording the terminal shares between its parts: peer text made safe, the "via"
notes for results that did not come our way, received texts and their clipboard copy."""

from __future__ import annotations

import base64
import os
import re

from rich.console import Console
from rich.markup import escape
from rich.style import Style
from rich.text import Text

from p2p_transfer.cli.render import printable

#: How many ``HOST:PORT`` alternatives the receiver prints.
ADDRESSES_SHOWN = 3
#: Longest file name in a progress line before it is shortened from the left.
LABEL_CHARS = 40


def shown(text: str) -> str:
    """Peer-supplied text made safe for a terminal: no control characters, no markup."""
    return escape(printable(text))


#: Control characters but the line break and the tab: what a text shown may not hold.
CONTROL_BUT_LINES = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def shown_lines(text: str) -> str:
    """A message of several lines (an ambiguity listing every device): each line made safe
    as ``shown`` makes it, the lines after the first indented under it, so no line of it
    can pass for a line of its own."""
    first, *rest = text.split("\n")
    return "\n".join([shown(first), *(f"  {shown(line)}" for line in rest)])


#: What the summary says of files that came over LocalSend: nothing was hashed end to end.
UNVERIFIED = "not verified end to end"
#: What the classic magic-wormhole transfer checks: no per-file BLAKE3, one SHA-256 ack.
WORMHOLE_CHECKED = "SHA-256 of the whole transfer, acknowledged by the receiver"
#: Protocols other than ours, by ``via``: their name and what they checked end to end.
OTHER_WAYS: dict[str, tuple[str, str]] = {
    "localsend": ("LocalSend", UNVERIFIED),
    "magic-wormhole": ("magic-wormhole", WORMHOLE_CHECKED),
}


#: A text over magic-wormhole has no SHA-256: it goes in a message under the code's key.
WORMHOLE_TEXT_CHECKED = "sent under the code's key, acknowledged by the receiver"


def via_note(via: str, text: bool = False) -> str:
    """`` via LocalSend — not verified end to end`` (or magic-wormhole's check) beside a
    result that did not come our way: never "verified" where BLAKE3 did not check it."""
    name, checked = OTHER_WAYS.get(via, OTHER_WAYS["localsend"])
    if text and via == "magic-wormhole":
        checked = WORMHOLE_TEXT_CHECKED
    return f" via {name} — [yellow]{checked}[/]"


#: A web address in a text, up to the first blank (or control character, which a text
#: shown never holds: they are replaced before).
_URL = re.compile(r"\bhttps?://[^\s\x00-\x1f\x7f-\x9f]+")
#: Punctuation that ends a sentence after an address rather than belonging to it.
_URL_TAIL = ".,;:!?)]}'\""
#: Terminals known not to understand OSC 8 links or OSC 52 (they would print them).
_PLAIN_TERMINALS = {"dumb", "linux", "vt100", "vt220"}


def terminal_sequences_allowed(console: Console) -> bool:
    """True for a terminal that may take links (OSC 8) and clipboard writes (OSC 52):
    a real terminal that is not one known to show such sequences as text."""
    return console.is_terminal and os.environ.get("TERM", "") not in _PLAIN_TERMINALS


def text_body(text: str, links: bool) -> Text:
    """A received text as it goes on screen: control characters (escape sequences) replaced
    so the text cannot drive the terminal, no markup, lines and tabs kept; with ``links``
    its web addresses are terminal hyperlinks (OSC 8) to exactly what is shown."""
    safe = CONTROL_BUT_LINES.sub("?", text)
    body = Text(safe)
    if links:
        for match in _URL.finditer(safe):
            url = match[0].rstrip(_URL_TAIL)
            body.stylize(Style(link=url), match.start(), match.start() + len(url))
    return body


def clipboard_sequence(text: str) -> str:
    """OSC 52: asks the terminal to put ``text`` on the system clipboard (base64 carries it,
    so nothing in the text can end the sequence early)."""
    return f"\x1b]52;c;{base64.b64encode(text.encode()).decode()}\x07"


def declined_line(reason: str) -> str:
    """``declined: not enough disk space…``; a reason that says "declined" already is said
    once (``declined by the receiver``)."""
    if reason.startswith("declined"):
        return f"[yellow]{shown(reason)}[/]"
    return f"[yellow]declined:[/] {shown(reason)}" if reason else "[yellow]declined[/]"
