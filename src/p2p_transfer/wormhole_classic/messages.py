"""The classic magic-wormhole file-transfer messages, checked (no I/O).

A plain ``wormhole`` client sends JSON objects through the mailbox: ``transit``
(connection hints), ``offer`` (a text, a file or a zipped folder), ``answer`` and
``error``; after the data, the receiver's ack travels as one transit record. What
a peer sends becomes a typed value here, or a ``ProtocolError`` whose message can
be shown and sent back.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from p2p_transfer.limits import (
    MAX_OFFER_BYTES,
    MAX_TEXT_BYTES,
    WORMHOLE_MAX_HINTS,
    WORMHOLE_MAX_HOST_CHARS,
    WORMHOLE_MAX_MESSAGE_SIZE,
    WORMHOLE_ZIP_MAX_ENTRIES,
)
from p2p_transfer.protocol import ProtocolError, sanitize_component
from p2p_transfer.units import format_size

#: The wormhole CLI's application ID: codes are shared with its clients.
APP_ID = "lothar.com/wormhole/text-or-file-xfer"
#: What the transit key is derived for. Always this application ID, whatever the
#: wormhole's own (the CLI's bug 339, kept for compatibility).
TRANSIT_KEY_PURPOSE = APP_ID + "/transit-key"
#: The only folder format there is: a zip (its entries say stored or deflated).
FOLDER_MODE = "zipfile/deflated"


@dataclass(frozen=True, slots=True)
class TextOffer:
    """A text message: shown once accepted, never stored."""

    text: str


@dataclass(frozen=True, slots=True)
class FileOffer:
    """One file of ``size`` bytes; ``name`` is already one safe path component."""

    name: str
    size: int


@dataclass(frozen=True, slots=True)
class FolderOffer:
    """A folder as a zip of ``zip_size`` bytes, holding ``files`` files of ``size``
    bytes together; ``name`` is one safe path component."""

    name: str
    zip_size: int
    files: int
    size: int


Offer = TextOffer | FileOffer | FolderOffer


@dataclass(frozen=True, slots=True)
class TcpHint:
    """A host and port to try (``priority``: higher first, for relays)."""

    host: str
    port: int
    priority: float = 0.0

    def describe(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class TransitHints:
    """Where a peer can be reached: directly, or through transit relays."""

    direct: tuple[TcpHint, ...] = ()
    relays: tuple[TcpHint, ...] = ()

    def __add__(self, other: TransitHints) -> TransitHints:
        return TransitHints(
            _unique(self.direct + other.direct), _unique(self.relays + other.relays)
        )


def decode_message(data: bytes) -> dict[str, Any]:
    """A mailbox message as a JSON object, within WORMHOLE_MAX_MESSAGE_SIZE."""
    if len(data) > WORMHOLE_MAX_MESSAGE_SIZE:
        raise ProtocolError(
            f"the other side sent a message of {format_size(len(data))}; "
            f"at most {format_size(WORMHOLE_MAX_MESSAGE_SIZE)} is accepted"
        )
    try:
        body = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError("the other side sent a message that is not JSON") from None
    if not isinstance(body, dict):
        raise ProtocolError("the other side sent a message that is not a JSON object")
    return body


def encode_message(body: dict[str, Any]) -> bytes:
    """A message or an ack record as the wormhole CLI writes them."""
    return json.dumps(body).encode("utf-8")


def read_offer(body: object) -> Offer:
    """The ``offer`` of a message: a text, a file or a zipped folder."""
    if not isinstance(body, dict):
        raise ProtocolError("the offer is not a JSON object")
    if "message" in body:
        text = body["message"]
        if not isinstance(text, str):
            raise ProtocolError("the offered text is not a string")
        size = len(text.encode("utf-8", errors="surrogatepass"))
        if size > MAX_TEXT_BYTES:
            raise ProtocolError(
                f"the text is {format_size(size)}; at most {format_size(MAX_TEXT_BYTES)} "
                "is taken as a text: send it as a file"
            )
        return TextOffer(text)
    if "file" in body:
        file = _object(body["file"], "file")
        return FileOffer(_name(file.get("filename"), "file"), _size(file.get("filesize"), "file"))
    if "directory" in body:
        folder = _object(body["directory"], "folder")
        mode = folder.get("mode")
        if not isinstance(mode, str) or not mode.startswith("zipfile"):
            raise ProtocolError(f"unknown folder format {mode!r}; only zip is understood")
        files = _size(folder.get("numfiles"), "folder's file count")
        if files > WORMHOLE_ZIP_MAX_ENTRIES:
            raise ProtocolError(
                f"the folder holds {files} files; at most {WORMHOLE_ZIP_MAX_ENTRIES} are taken"
            )
        return FolderOffer(
            _name(folder.get("dirname"), "folder"),
            _size(folder.get("zipsize"), "folder's zip"),
            files,
            _size(folder.get("numbytes"), "folder"),
        )
    raise ProtocolError("the offer is neither a text, a file nor a folder")


def read_hints(body: object) -> TransitHints:
    """The hints of a ``transit`` message; kinds we cannot use (Tor) are left out."""
    if not isinstance(body, dict):
        raise ProtocolError("the transit message is not a JSON object")
    raw = body.get("hints-v1", [])
    if not isinstance(raw, list) or len(raw) > WORMHOLE_MAX_HINTS:
        raise ProtocolError(f"the transit message must list at most {WORMHOLE_MAX_HINTS} hints")
    direct: list[TcpHint] = []
    relays: list[TcpHint] = []
    for hint in raw:
        if not isinstance(hint, dict):
            raise ProtocolError("a transit hint is not a JSON object")
        if hint.get("type") == "direct-tcp-v1":
            direct.append(_tcp_hint(hint))
        elif hint.get("type") == "relay-v1":
            inner = hint.get("hints", [])
            if not isinstance(inner, list) or len(inner) > WORMHOLE_MAX_HINTS:
                raise ProtocolError("a relay hint lists too many addresses")
            relays += [_tcp_hint(h) for h in inner if isinstance(h, dict)
                       and h.get("type") == "direct-tcp-v1"]
    if len(direct) + len(relays) > WORMHOLE_MAX_HINTS:
        raise ProtocolError(f"the transit message must list at most {WORMHOLE_MAX_HINTS} hints")
    return TransitHints(_unique(tuple(direct)), _unique(tuple(relays)))


def encode_hints(direct: list[TcpHint], relays: list[TcpHint]) -> dict[str, Any]:
    """Our ``transit`` message: the abilities and hints the wormhole CLI sends."""
    hints: list[dict[str, Any]] = [_tcp_dict(hint) for hint in direct]
    if relays:
        hints.append({"type": "relay-v1", "hints": [_tcp_dict(hint) for hint in relays]})
    return {"transit": {
        "abilities-v1": [{"type": "direct-tcp-v1"}, {"type": "relay-v1"}],
        "hints-v1": hints,
    }}


def offer_message(offer: Offer) -> dict[str, Any]:
    """The ``offer`` message of what we send."""
    if isinstance(offer, TextOffer):
        return {"offer": {"message": offer.text}}
    if isinstance(offer, FileOffer):
        return {"offer": {"file": {"filename": offer.name, "filesize": offer.size}}}
    return {"offer": {"directory": {
        "mode": FOLDER_MODE, "dirname": offer.name, "zipsize": offer.zip_size,
        "numbytes": offer.size, "numfiles": offer.files,
    }}}


def read_answer(body: object, text: bool) -> None:
    """Check an ``answer`` says yes to what we offered (a file or folder, or a text)."""
    key = "message_ack" if text else "file_ack"
    if not isinstance(body, dict) or body.get(key) != "ok":
        raise ProtocolError("the receiver's answer is not a yes to this offer")


def read_error(value: object) -> str:
    """A peer's ``error`` as one printable line."""
    text = value if isinstance(value, str) else json.dumps(value)
    line = " ".join(text.split())
    return line[:200] or "no reason given"


def read_ack(record: bytes) -> str | None:
    """The receiver's ack record: the SHA-256 (hex) it computed, or None if it gave none.
    Anything but ``"ack": "ok"`` is its refusal."""
    try:
        body = decode_message(record)
    except ProtocolError:
        raise ProtocolError("the receiver's acknowledgement is not a JSON object") from None
    if body.get("ack") != "ok":
        reason = body.get("error", body.get("ack"))
        raise ProtocolError(f"the receiver did not confirm the data: {read_error(reason)}")
    digest = body.get("sha256")
    return digest if isinstance(digest, str) else None


def _object(value: object, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"the {what} offer is not a JSON object")
    return value


def _name(value: object, what: str) -> str:
    if not isinstance(value, str):
        raise ProtocolError(f"the offered {what} has no name")
    # The last component only, as the wormhole CLI keeps it: never a path.
    name = sanitize_component(value.replace("\\", "/").rsplit("/", 1)[-1])
    if not name:
        raise ProtocolError(f"the offered {what}'s name {value[:80]!r} is not usable")
    return name


def _size(value: object, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_OFFER_BYTES:
        raise ProtocolError(f"the {what}'s size is not a number of bytes")
    return value


def _tcp_hint(hint: dict[str, Any]) -> TcpHint:
    host, port, priority = hint.get("hostname"), hint.get("port"), hint.get("priority", 0.0)
    if not isinstance(host, str) or not 0 < len(host) <= WORMHOLE_MAX_HOST_CHARS:
        raise ProtocolError("a transit hint has no usable host")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ProtocolError("a transit hint has no usable port")
    if not isinstance(priority, int | float) or not math.isfinite(priority):
        priority = 0.0
    return TcpHint(host, port, float(priority))


def _tcp_dict(hint: TcpHint) -> dict[str, Any]:
    return {"type": "direct-tcp-v1", "priority": hint.priority, "hostname": hint.host,
            "port": hint.port}


def _unique(hints: tuple[TcpHint, ...]) -> tuple[TcpHint, ...]:
    """Each host and port once (the first priority given wins)."""
    seen: dict[tuple[str, int], TcpHint] = {}
    for hint in hints:
        seen.setdefault((hint.host, hint.port), hint)
    return tuple(seen.values())
