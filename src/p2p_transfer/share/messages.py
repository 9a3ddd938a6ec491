"""The upload WebSocket's JSON messages (kept as in the Rust app, plus an optional ``code``).

Client → server: ``file_info``. Server → client: ``accepted``, ``rejected``,
``progress``, ``complete``, ``error``. Decoding is strict (msgspec): a bad
message becomes one clear sentence for the browser, never a traceback.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from p2p_transfer.protocol.errors import ProtocolError

#: Why an upload was rejected, for the page to pick its wording.
RejectCode = Literal["declined", "timeout", "too_large", "no_space", "busy", "bad_name", "error"]


class FileInfo(msgspec.Struct, tag="file_info", tag_field="type", forbid_unknown_fields=False):
    """The browser announces one file it wants to upload."""

    file_name: str
    file_size: Annotated[int, msgspec.Meta(ge=0)]


class Accepted(msgspec.Struct, tag="accepted", tag_field="type"):
    """The host accepted: send the bytes now."""

    request_id: str


class Rejected(msgspec.Struct, tag="rejected", tag_field="type"):
    """The upload will not happen; the socket stays open for the next file."""

    reason: str
    code: RejectCode = "declined"


class Progress(msgspec.Struct, tag="progress", tag_field="type"):
    """Bytes of the current file written so far (at most 10 per second)."""

    received_bytes: int


class Complete(msgspec.Struct, tag="complete", tag_field="type"):
    """The declared size arrived and the file is finalized under its name."""


class Error(msgspec.Struct, tag="error", tag_field="type"):
    """The current upload failed; the server closes the socket after this."""

    message: str


ServerMessage = Accepted | Rejected | Progress | Complete | Error

_decoder = msgspec.json.Decoder(FileInfo)
_encoder = msgspec.json.Encoder()


def decode_client_message(text: str) -> FileInfo:
    """Parse a text frame from the browser, or raise ProtocolError with a clear reason."""
    try:
        return _decoder.decode(text)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid file_info message: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError("expected a JSON file_info message") from None


def encode(message: ServerMessage) -> str:
    """The JSON text of a server message."""
    return _encoder.encode(message).decode()
