"""Text messages on the wire, free of I/O: the preview, the pages, and their reassembly.

A text offer says how many bytes follow and shows only its first line; the text
itself travels after the receiving user accepts, in pages that each fit a control
message (docs/PROTOCOL.md, "Text messages").
"""

from __future__ import annotations

from p2p_transfer.limits import MAX_TEXT_BYTES, TEXT_PAGE_BYTES, TEXT_PREVIEW_CHARS
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.messages import TextOffer
from p2p_transfer.protocol.names import without_format_characters

#: Marks a preview that is not the whole text.
_MORE = "…"


def text_preview(text: str) -> str:
    """The first line with something on it, at most TEXT_PREVIEW_CHARS characters,
    ending in "…" when the text goes on; without characters that would reorder or hide
    what the question around it says (bidi controls, zero-width ones)."""
    whole = without_format_characters(text).strip()
    line = next((line.strip() for line in whole.splitlines() if line.strip()), "")
    if len(line) > TEXT_PREVIEW_CHARS or (line != whole and not line.endswith(_MORE)):
        line = line[: TEXT_PREVIEW_CHARS - 1].rstrip() + _MORE
    return line


def paginate_text(text: str) -> list[str]:
    """``text`` in pages of at most TEXT_PAGE_BYTES of UTF-8, cut between characters."""
    data = text.encode()
    pages = []
    start = 0
    while start < len(data):
        end = min(start + TEXT_PAGE_BYTES, len(data))
        while end < len(data) and data[end] & 0xC0 == 0x80:  # inside a character
            end -= 1
        pages.append(data[start:end].decode())
        start = end
    return pages


def check_text_offer(offer: TextOffer) -> None:
    """Refuse a text offer whose declared size or page count is impossible or too large."""
    if not 1 <= offer.bytes <= MAX_TEXT_BYTES:
        raise ProtocolError(f"a text of {offer.bytes} bytes (1 to {MAX_TEXT_BYTES} allowed)")
    if not 1 <= offer.pages <= offer.bytes:
        raise ProtocolError(f"a text of {offer.bytes} bytes in {offer.pages} pages")


class TextAssembler:
    """Puts an accepted text back together, page by page, against what its offer said."""

    def __init__(self, offer: TextOffer) -> None:
        check_text_offer(offer)
        self._offer = offer
        self._pages: list[str] = []
        self._bytes = 0

    @property
    def complete(self) -> bool:
        return len(self._pages) == self._offer.pages

    def add(self, page: str) -> None:
        """One more page; ProtocolError once the pages go beyond the offer or are empty."""
        if self.complete:
            raise ProtocolError("more text pages than offered")
        size = len(page.encode())
        if size == 0:
            raise ProtocolError("an empty text page")
        self._bytes += size
        if self._bytes > self._offer.bytes:
            raise ProtocolError(f"more than the {self._offer.bytes} bytes of text offered")
        self._pages.append(page)
        if self.complete and self._bytes != self._offer.bytes:
            raise ProtocolError(
                f"{self._bytes} bytes of text, not the {self._offer.bytes} offered"
            )

    @property
    def text(self) -> str:
        assert self.complete
        return "".join(self._pages)
