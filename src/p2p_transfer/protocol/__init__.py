"""The wire protocol, free of I/O: messages, framing, manifest and path rules.

See docs/PROTOCOL.md for the conversation these pieces make up.
"""

from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.framing import FrameDecoder, body_length, decode_body, encode
from p2p_transfer.protocol.manifest import (
    ManifestAssembler,
    ManifestSummary,
    check_offer,
    paginate,
)
from p2p_transfer.protocol.messages import (
    PROTOCOL_VERSION,
    Accept,
    AnyMessage,
    Cancel,
    DataHeader,
    DataTrailer,
    Decline,
    Entry,
    Error,
    ErrorKind,
    FileResult,
    Hello,
    ManifestPage,
    Message,
    Offer,
    Resume,
    ResumePage,
    Summary,
    Verified,
    Verify,
    Welcome,
)
from p2p_transfer.protocol.names import clean_device_name, without_format_characters
from p2p_transfer.protocol.paths import (
    PART_SUFFIX,
    PLACEHOLDER_NAME,
    numbered_name,
    portable_name,
    sanitize_component,
    sanitize_path,
    upload_name,
)

__all__ = [
    "PART_SUFFIX",
    "PLACEHOLDER_NAME",
    "PROTOCOL_VERSION",
    "Accept",
    "AnyMessage",
    "Cancel",
    "DataHeader",
    "DataTrailer",
    "Decline",
    "Entry",
    "Error",
    "ErrorKind",
    "FileResult",
    "FrameDecoder",
    "Hello",
    "ManifestAssembler",
    "ManifestPage",
    "ManifestSummary",
    "Message",
    "Offer",
    "ProtocolError",
    "Resume",
    "ResumePage",
    "Summary",
    "Verified",
    "Verify",
    "Welcome",
    "body_length",
    "check_offer",
    "clean_device_name",
    "decode_body",
    "encode",
    "numbered_name",
    "paginate",
    "portable_name",
    "sanitize_component",
    "sanitize_path",
    "upload_name",
    "without_format_characters",
]
