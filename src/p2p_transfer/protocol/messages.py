"""Typed wire messages; every control message is one of these Structs.

Messages are tagged by a ``type`` field so a decoder can refuse anything it does
not know; strict decoding turns a wrong field type into a ProtocolError.
"""

from __future__ import annotations

from typing import Literal

import msgspec

PROTOCOL_VERSION = 1


class Message(
    msgspec.Struct, tag_field="type", forbid_unknown_fields=False, frozen=True, omit_defaults=True
):
    """Base of all control messages."""


# --- Handshake ---------------------------------------------------------------


class Hello(Message, tag="hello"):
    """First message of the sender: who it is, which protocol it speaks, and whether
    it holds a pairing with this receiver (a code is skipped only if both sides do)."""

    version: int
    name: str
    paired: bool = False
    #: The sender can ask its user again after a wrong code, so the receiver may answer
    #: one with Retry instead of ending the connection. (Added within version 1: a
    #: receiver that does not know the field ignores it, and one that does never sends
    #: Retry to a sender that does not set it.)
    retries: bool = False


class Continue(Message, tag="continue"):
    """The sender's first message instead of Hello when a path under an accepted file
    transfer broke: it continues the receiver's session ``session`` with the ``secret``
    that receiver gave in its Accept (over the same endpoint ID, which TLS proves). The
    receiver answers with a Welcome that asks for no code, or refuses with an Error."""

    version: int
    name: str
    session: str
    secret: bytes


class Welcome(Message, tag="welcome"):
    """Receiver's answer to Hello; when a code is needed, its SPAKE2 message, and which
    of the sender's allowed attempts this check is (0 and 0 from older receivers)."""

    version: int
    name: str
    code_required: bool
    pake: bytes = b""
    attempt: int = 0
    max_attempts: int = 0


class Verify(Message, tag="verify"):
    """The sender's SPAKE2 message for the typed code, and its proof of the shared key.

    The code itself never travels (see trust/pake.py).
    """

    pake: bytes
    proof: bytes


class Verified(Message, tag="verified"):
    """The code matched; the receiver's proof that it holds the same code."""

    proof: bytes = b""


class Retry(Message, tag="retry"):
    """The code was wrong; the same code stays on the receiver's screen and the sender
    may type it again, as ``attempt`` of ``max_attempts``. Each guess is a new SPAKE2
    exchange: ``pake`` is the receiver's fresh message for it. Sent only to a sender
    whose Hello said ``retries``."""

    pake: bytes
    attempt: int
    max_attempts: int


# --- Offer -------------------------------------------------------------------


class Entry(msgspec.Struct, frozen=True, array_like=True):
    """One manifest entry; its index is its position in the offer."""

    path: str
    kind: Literal["file", "dir"]
    size: int
    mode: int
    mtime: float


class Offer(Message, tag="offer"):
    """Start of an offer; the entries follow in ``pages`` ManifestPage messages."""

    transfer_id: str
    entries: int
    files: int
    total_bytes: int
    pages: int


class ManifestPage(Message, tag="manifest"):
    """A slice of the manifest, small enough to fit one control message."""

    entries: list[Entry]


class TextOffer(Message, tag="text_offer"):
    """An offer of a text message instead of files: ``bytes`` of UTF-8 that follow in
    ``pages`` TextPage messages once the receiver accepts; until then only ``preview``
    (its first line, clipped) is with the receiver, for its user's question."""

    transfer_id: str
    bytes: int
    pages: int
    preview: str


class TextPage(Message, tag="text"):
    """A slice of an accepted text message, cut between characters."""

    text: str


class Resume(msgspec.Struct, frozen=True, array_like=True):
    """A file the receiver already holds ``offset`` bytes of, with their BLAKE3."""

    index: int
    offset: int
    blake3: str


class Accept(Message, tag="accept"):
    """The receiving user accepted; resume points follow in ``pages`` ResumePage messages.

    With ``tcp_port`` set the receiver also offers the LAN fast path: a TLS
    listener whose certificate has SHA-256 ``tcp_fingerprint``, admitting the
    one connection that presents ``tcp_token``.

    With ``session`` and ``continuation`` set the receiver lets the sender continue this
    transfer over a new connection (``Continue``) when the path breaks.
    """

    pages: int
    tcp_port: int = 0
    tcp_fingerprint: str = ""
    tcp_token: bytes = b""
    session: str = ""
    continuation: bytes = b""


class ResumePage(Message, tag="resume"):
    """A slice of the resume points."""

    items: list[Resume]


class Decline(Message, tag="decline"):
    """The offer was declined; ``reason`` is shown to the sending user."""

    reason: str


# --- Data streams --------------------------------------------------------------


class DataHeader(Message, tag="data"):
    """Precedes ``length`` raw bytes of file ``index`` starting at ``offset``."""

    index: int
    offset: int
    length: int


class DataTrailer(Message, tag="end"):
    """Follows a file's bytes: the BLAKE3 of the whole file, as the sender read it."""

    index: int
    blake3: str


# --- Results -------------------------------------------------------------------


class FileResult(Message, tag="file_result"):
    """Receiver's verdict on one file: where it was saved when that is not the offered
    path (``report (1).txt``), and whether an identical file was already there."""

    index: int
    ok: bool
    blake3: str = ""
    error: str = ""
    saved_as: str = ""
    identical: bool = False


class Summary(Message, tag="summary"):
    """Receiver's last word on a transfer."""

    files_ok: int
    files_failed: int
    bytes_received: int


class Cancel(Message, tag="cancel"):
    """Either side stops the transfer."""

    reason: str


#: Why a peer was turned away, when it matters to what the sending user does next.
ErrorKind = Literal["", "wrong_code", "locked_out", "busy"]


class Error(Message, tag="error"):
    """A fatal error; the connection closes after it. ``kind`` lets the other side act on
    it without matching the message's words."""

    message: str
    kind: ErrorKind = ""
    #: With ``wrong_code``: guesses this endpoint has left before a lock-out.
    attempts_left: int = 0
    #: With ``locked_out`` or ``busy``: seconds until trying again makes sense.
    retry_after: float = 0.0


AnyMessage = (
    Hello
    | Continue
    | Welcome
    | Verify
    | Verified
    | Retry
    | Offer
    | ManifestPage
    | TextOffer
    | TextPage
    | Accept
    | ResumePage
    | Decline
    | DataHeader
    | DataTrailer
    | FileResult
    | Summary
    | Cancel
    | Error
)
