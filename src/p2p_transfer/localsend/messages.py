"""LocalSend v2.1's JSON messages, sans I/O: what devices announce, offer and answer.

The wire format is the public LocalSend protocol (v2.1). Decoding is strict about
types and bounds (msgspec) and lenient about extra fields, as the spec expects
of implementations; anything a peer gets wrong becomes a ``ProtocolError`` whose
message is safe to show and to answer with. The structs hold no references that
could form a cycle, so the garbage collector does not track them (``gc=False``):
an offer of 20,000 files would otherwise make its full collections ~100 ms long.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Literal

import msgspec

from p2p_transfer.limits import LOCALSEND_MAX_FILES, LOCALSEND_PORT, MAX_OFFER_BYTES
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.names import clean_device_name

#: The protocol version we speak (``major.minor``), as announced.
PROTOCOL_VERSION = "2.1"
#: The multicast group devices announce themselves to (UDP, ``LOCALSEND_PORT``).
MULTICAST_GROUP = "224.0.0.167"
#: Every HTTP route lives under this prefix.
API_PREFIX = "/api/localsend/v2"
#: The device types the spec names; anything else is shown as "desktop", as the spec says.
DEVICE_TYPES = ("mobile", "desktop", "web", "headless", "server")
#: The MIME type of a text message (its text travels in ``preview``).
TEXT_TYPE = "text/plain"

Scheme = Literal["http", "https"]
_Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a LocalSend device listens, and the certificate it must present."""

    host: str
    port: int
    name: str
    scheme: Scheme = "https"
    #: Uppercase hex SHA-256 of its certificate; None until learned.
    fingerprint: str | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{API_PREFIX}"


class DeviceInfo(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """A device describing itself: in announcements, ``register`` and ``prepare-upload``.

    ``fingerprint`` is the SHA-256 of the device's certificate in HTTPS mode (a
    claim until a TLS handshake with that certificate proves it); ``announce`` is
    only in multicast messages.
    """

    alias: str
    version: str = "2.0"
    device_model: str | None = None
    device_type: str | None = None
    fingerprint: str = ""
    port: _Port = LOCALSEND_PORT
    protocol: Scheme = "https"
    download: bool = False
    announce: bool | None = None

    @property
    def name(self) -> str:
        """The alias as we show it: cleaned like every device name (no control or format
        characters: U+202E would turn what follows around), bounded, never empty."""
        return clean_device_name(self.alias) or "LocalSend device"

    @property
    def model(self) -> str:
        """The device model as we show it, cleaned like the alias ('' when not given)."""
        return clean_device_name(self.device_model or "")

    @property
    def kind(self) -> str:
        """The device type, ``desktop`` when missing or unknown (as the spec says)."""
        return self.device_type if self.device_type in DEVICE_TYPES else "desktop"


class FileMetadata(msgspec.Struct, kw_only=True, gc=False):
    """Times a sender may give a file (ISO 8601), v2.1."""

    modified: str | None = None
    accessed: str | None = None


class FileInfo(msgspec.Struct, rename="camel", omit_defaults=True, kw_only=True, gc=False):
    """One file of an offer. A ``text/plain`` file with a ``preview`` is a text message."""

    id: str
    file_name: str
    size: Annotated[int, msgspec.Meta(ge=0)]
    file_type: str = "application/octet-stream"
    sha256: str | None = None
    preview: str | None = None
    metadata: FileMetadata | None = None


class PrepareUpload(msgspec.Struct, kw_only=True, gc=False):
    """``POST /prepare-upload``: who sends, and the files it offers, by file ID."""

    info: DeviceInfo
    files: dict[str, FileInfo]


class OfferHead(msgspec.Struct, kw_only=True, gc=False):
    """A ``prepare-upload`` as first read: who sends, and each file still as its JSON,
    decoded one by one (``decode_file``) as the offer is planned, a few at a time."""

    info: DeviceInfo
    files: dict[str, msgspec.Raw]


class PrepareUploadReply(msgspec.Struct, rename="camel", kw_only=True):
    """The receiver's acceptance: a session ID and one token per accepted file."""

    session_id: str
    files: dict[str, str]


_device_decoder = msgspec.json.Decoder(DeviceInfo)
_head_decoder = msgspec.json.Decoder(OfferHead)
_file_decoder = msgspec.json.Decoder(FileInfo)
_reply_decoder = msgspec.json.Decoder(PrepareUploadReply)
_encoder = msgspec.json.Encoder()


def encode(message: DeviceInfo | PrepareUpload | PrepareUploadReply) -> bytes:
    """A message as the JSON body the spec shows."""
    return _encoder.encode(message)


def _decoded(decoder: msgspec.json.Decoder, data: bytes, what: str) -> object:
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        raise ProtocolError(f"invalid {what}: {exc}") from None
    except msgspec.DecodeError:
        raise ProtocolError(f"invalid {what}: not JSON") from None


def decode_device_info(data: bytes) -> DeviceInfo:
    """An announcement or ``register`` body; raises ProtocolError."""
    info = _decoded(_device_decoder, data, "device info")
    assert isinstance(info, DeviceInfo)
    return info


def decode_offer_head(data: bytes) -> OfferHead:
    """A ``prepare-upload`` body's sender and its files' JSON, at most LOCALSEND_MAX_FILES
    of them; raises ProtocolError."""
    head = _decoded(_head_decoder, data, "prepare-upload request")
    assert isinstance(head, OfferHead)
    if len(head.files) > LOCALSEND_MAX_FILES:
        raise ProtocolError(f"more than {LOCALSEND_MAX_FILES} files in one request")
    return head


def decode_file(key: str, raw: msgspec.Raw | FileInfo) -> FileInfo:
    """One file of an offer, by its key in ``files`` (which must be its id); raises
    ProtocolError. A file decoded already is only checked."""
    file = raw if isinstance(raw, FileInfo) else _decoded(
        _file_decoder, raw, f"prepare-upload request: file {key[:64]!r}"
    )
    assert isinstance(file, FileInfo)
    if not key or file.id != key:
        raise ProtocolError("each file's id must be its key in files")
    return file


def decode_prepare_upload(data: bytes) -> PrepareUpload:
    """A ``prepare-upload`` body, bounded (file count, total size); raises ProtocolError."""
    head = decode_offer_head(data)
    files = {key: decode_file(key, raw) for key, raw in head.files.items()}
    if sum(f.size for f in files.values()) > MAX_OFFER_BYTES:
        raise ProtocolError("the files' total size is too large")
    return PrepareUpload(info=head.info, files=files)


def decode_prepare_reply(data: bytes) -> PrepareUploadReply:
    """A receiver's answer to ``prepare-upload``; raises ProtocolError."""
    reply = _decoded(_reply_decoder, data, "prepare-upload reply")
    assert isinstance(reply, PrepareUploadReply)
    return reply


def text_message(files: dict[str, FileInfo]) -> str | None:
    """The text of a text message (one ``text/plain`` entry with a preview), else None."""
    if len(files) != 1:
        return None
    (only,) = files.values()
    kind = only.file_type.split(";", 1)[0].strip().lower()
    return only.preview if kind == TEXT_TYPE and only.preview is not None else None


def short_fingerprint(fingerprint: str) -> str:
    """The first 8 characters, as people compare them: ``177F057E``."""
    return fingerprint[:8].upper()
