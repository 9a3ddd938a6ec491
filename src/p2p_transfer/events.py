"""The one typed event stream that feeds every front end (terminal, JSON lines, web UI).

Each event is a frozen ``msgspec.Struct`` with a ``name``; ``to_dict`` gives the JSON
object the CLI prints with ``--json`` and the web UI receives, ``to_json`` its text.
Structs, not dataclasses: a process made its 45 event classes in ~35 ms as dataclasses
(before its first byte), and an event per file took ~3.4 µs to make where it takes ~0.5.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from json.encoder import encode_basestring
from typing import Any, ClassVar, Literal

import msgspec

Direction = Literal["send", "receive"]
#: Which protocol carried a session: ours, LocalSend's (a LocalSend device), or the
#: classic magic-wormhole file transfer (a plain ``wormhole`` client).
Via = Literal["p2p-transfer", "localsend", "magic-wormhole"]
#: Who ended a session early: this side ("local") or the other ("peer").
Actor = Literal["local", "peer"]
#: How a send's ``--to`` was found: a ticket, an address (``HOST:PORT``,
#: ``localsend:HOST``), announced on the LAN (mDNS), a paired device that is not
#: announced (tried where it was last reached), a LocalSend device's announcement,
#: or a device the front end picked from its list.
Found = Literal["ticket", "address", "lan", "pairing", "localsend", "device"]


def verified_via(via: Via) -> bool:
    """Whether files that came this way were checked end to end: BLAKE3 against the
    sender's offer, over a connection bound to the peer's key. LocalSend hashes nothing
    end to end and proves no key, so never."""
    return via == "p2p-transfer"


class SessionState(StrEnum):
    """Where a session stands. States only move forward, in this order (``reconnecting``
    and ``transferring`` may alternate); the last four are final. The app serves them to
    its page (``GET /api/meta``, docs/API.md)."""

    #: Waiting for the receiver to be reachable before dialing (``send --wait``).
    QUEUED = "queued"
    CONNECTING = "connecting"
    VERIFYING = "verifying"
    #: Waiting for the receiving user's answer to the offer.
    WAITING = "waiting"
    TRANSFERRING = "transferring"
    #: The path under a transfer broke; the sender is continuing the same session.
    RECONNECTING = "reconnecting"
    DONE = "done"
    FAILED = "failed"
    DECLINED = "declined"
    CANCELLED = "cancelled"

    @property
    def final(self) -> bool:
        """True for done, failed, declined and cancelled."""
        return _STATE_RANK[self] >= _STATE_RANK[SessionState.DONE]

    def precedes(self, other: SessionState) -> bool:
        """True when ``other`` comes later in a session's life than this state; only a
        transfer goes to ``reconnecting``, and back to ``transferring`` (not a step back)."""
        if other is SessionState.RECONNECTING:
            return self is SessionState.TRANSFERRING
        if self is SessionState.RECONNECTING and other is SessionState.TRANSFERRING:
            return True
        return _STATE_RANK[self] < _STATE_RANK[other]


#: Ranks in declaration order; reconnecting shares transferring's, the finals share one.
_STATE_RANK = {
    state: min(rank - (rank > 4), 5) for rank, state in enumerate(SessionState)
}


class Event(msgspec.Struct, frozen=True):
    """Base of all events; ``name`` is the ``event`` field of its JSON form."""

    name: ClassVar[str] = "event"
    #: Field names renamed in JSON (Python keywords).
    _json_names: ClassVar[dict[str, str]] = {}
    #: Properties written in JSON after the fields: what is derived from them.
    _json_derived: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        """The event as a JSON-ready dict with an ``event`` field first."""
        out: dict[str, Any] = {"event": self.name}
        for field_name, json_name in _json_fields(type(self)):
            out[json_name] = _json_ready(getattr(self, field_name))
        return out

    def to_json(self) -> str:
        """``json.dumps(self.to_dict(), ensure_ascii=False)``, the same text byte for byte,
        without building the dict: the CLI and the web UI render an event per file sent."""
        return _json_writer(type(self))(self)


@functools.cache
def _json_fields(kind: type[Event]) -> tuple[tuple[str, str], ...]:
    """Each field of an event class with its JSON name, worked out once per class:
    a transfer of many small files emits an event per file."""
    names = (*kind.__struct_fields__, *kind._json_derived)
    return tuple((name, kind._json_names.get(name, name)) for name in names)


@functools.cache
def _json_prefixes(kind: type[Event]) -> tuple[str, tuple[tuple[str, str], ...]]:
    """A class's JSON text up to its first field, and each field with the text that
    goes before its value (``, "name": ``), as ``json.dumps`` spaces them."""
    head = '{"event": ' + encode_basestring(kind.name)
    prefixes = tuple(
        (field_name, ", " + encode_basestring(json_name) + ": ")
        for field_name, json_name in _json_fields(kind)
    )
    return head, prefixes


@functools.cache
def _json_writer(kind: type[Event]) -> Callable[[Event], str]:
    """The function that writes the JSON text of ``kind``'s events, made once per class
    (as dataclasses make ``__init__``): the text between values is constant in it, and
    each value is read by name and escaped without a loop; a ``str`` (most values) goes
    straight to the escaper, anything else by its exact type (``_JSON_BY_TYPE``)."""
    head, prefixes = _json_prefixes(kind)
    values = "".join(
        f"{prefix!r}, (_str(v) if (v := event.{field_name}).__class__ is str "
        "else _by_type(v.__class__, _other)(v)), "
        for field_name, prefix in prefixes
    )
    source = (
        "def write(event, _str=_str, _by_type=_by_type, _other=_other):\n"
        f"    return ''.join(({head!r}, {values}'}}'))\n"
    )
    scope = {"_str": encode_basestring, "_by_type": _JSON_BY_TYPE.get, "_other": _json_other}
    exec(source, scope)  # the text is made here, from field names and constants
    return scope["write"]  # type: ignore[no-any-return]


def _json_ready(value: Any) -> Any:
    """A field's value as ``to_dict`` gives it: lists (and tuples) item by item."""
    return [_plain(v) for v in value] if isinstance(value, list | tuple) else _plain(value)


def _plain(value: Any) -> Any:
    """A nested dataclass (a file's progress) as a dict; anything else as it is."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, str | int | float) or value is None:
        return value
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value


def _json_float(value: float) -> str:
    """A float as ``json.dumps`` writes it: its repr, or NaN/Infinity/-Infinity."""
    if math.isfinite(value):
        return float.__repr__(value)
    if value != value:
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _json_other(value: Any) -> str:
    """Any value without a fast path (a StrEnum, a list, a nested dataclass), as before."""
    if isinstance(value, StrEnum):
        return encode_basestring(str(value))
    return json.dumps(_json_ready(value), ensure_ascii=False)


#: The JSON text of a value by its exact type (so not bool for int, nor StrEnum for str).
_JSON_BY_TYPE: dict[type, Callable[[Any], str]] = {
    str: encode_basestring,
    int: int.__repr__,
    bool: lambda value: "true" if value else "false",
    type(None): lambda value: "null",
    float: _json_float,
}


class SessionEvent(Event):
    """An event of one session (a send, a receive, a share upload): ``session`` is the ID
    the Node gave it when it started, the same on every event it emits."""

    session: str


class StateEvent(SessionEvent):
    """A session moved on (never back); a final state says why, and ``by`` who ended it."""

    name: ClassVar[str] = "state"
    direction: Direction
    state: SessionState
    message: str = ""
    #: For a cancelled session: this side ("local") or the peer ("peer"); else "".
    by: Actor | Literal[""] = ""
    #: The peer's name, once known ("" before).
    peer_name: str = ""


class TicketEvent(Event):
    """This node is reachable with ``ticket``."""

    name: ClassVar[str] = "ticket"
    ticket: str
    endpoint_id: str
    device_name: str
    addresses: list[str] = msgspec.field(default_factory=list)
    #: Announced on the LAN: senders there can also use ``--to NAME``.
    announced: bool = False
    _json_names: ClassVar[dict[str, str]] = {"device_name": "name"}


class RelayEvent(Event):
    """Whether the chosen relay is reachable; if not, only direct addresses work."""

    name: ClassVar[str] = "relay"
    relay: str
    connected: bool
    url: str | None
    message: str


class LookupEvent(SessionEvent):
    """Sender: looking up ``to`` before anything is sent: a name (LAN devices, pairings,
    LocalSend devices: seconds on a network that drops multicast), or a ``HOST:PORT`` asked
    for its ticket."""

    name: ClassVar[str] = "lookup"
    to: str
    what: Literal["name", "address"] = "name"


class RouteEvent(SessionEvent):
    """Sender: where ``to`` leads, before anything is sent to it. ``warning`` says what the
    route gives up (a LocalSend device: files go unverified by the receiver's key)."""

    name: ClassVar[str] = "route"
    to: str
    via: Via
    peer_name: str
    #: The endpoint ID (p2p-transfer), or the certificate fingerprint a LocalSend device
    #: claims ("" when not known yet: ``localsend:HOST`` before it answers).
    peer_id: str
    found: Found
    addresses: list[str] = msgspec.field(default_factory=list)
    warning: str = ""


class InviteEvent(SessionEvent):
    """Sender: the code to type on the other device (``receive CODE``); ``via`` says where
    it waits: the code server (``mailbox``, at ``server``) or only this LAN (``lan``)."""

    name: ClassVar[str] = "invite"
    code: str
    via: Literal["mailbox", "lan"]
    server: str = ""


class RendezvousEvent(Event):
    """Both sides of a code met and agreed a key: which way (the code server or the LAN)
    and what the other side runs (ours, or a magic-wormhole client). ``session`` is the
    sender's session ("" on the receiving side, whose session starts with the connection)."""

    name: ClassVar[str] = "rendezvous"
    via: Literal["mailbox", "lan"]
    peer: Literal["p2p-transfer", "magic-wormhole"]
    session: str = ""


class CodeWaitEvent(Event):
    """Receiver (``receive CODE --wait``): nobody uses the code yet; it waits for the code's
    sender for up to ``wait`` s, on the code server (``mailbox``) and on this LAN, or only
    on this LAN (``lan``: the server is out of reach)."""

    name: ClassVar[str] = "code_wait"
    code: str
    wait: float
    via: Literal["mailbox", "lan"]


class DialingEvent(SessionEvent):
    """Sender: trying to reach a receiver (the first packets are on their way)."""

    name: ClassVar[str] = "dialing"
    peer_id: str
    #: Its name when known (a LAN device, a paired one), else "".
    peer_name: str
    addresses: list[str] = msgspec.field(default_factory=list)


class QueuedEvent(SessionEvent):
    """Sender (``send --wait``): ``to`` cannot be reached yet; the send starts by itself
    once it can, if within ``wait`` s."""

    name: ClassVar[str] = "queued"
    #: What the send waits for, as the user named it (a device name, an address, a ticket).
    to: str
    wait: float


class ReconnectingEvent(SessionEvent):
    """Sender: the path under a transfer broke (``reason``); it tries to reach the same
    receiver again, ``waited`` s so far, for up to ``retry_for`` s in all."""

    name: ClassVar[str] = "reconnecting"
    peer_name: str
    waited: float
    retry_for: float
    reason: str


class ReconnectedEvent(SessionEvent):
    """Sender: the same receiver is reached again after ``seconds``; the transfer goes on
    in the same session, from the last byte the receiver verified."""

    name: ClassVar[str] = "reconnected"
    peer_name: str
    #: "direct" or "relay", and the address now in use (when known).
    path: str
    remote_addr: str | None
    seconds: float


class ConnectionEvent(SessionEvent):
    """A peer connection is up; ``path`` is direct or relayed."""

    name: ClassVar[str] = "connection"
    peer_id: str
    path: Literal["direct", "relay", "unknown"]
    rtt_ms: float | None
    remote_addr: str | None = None
    #: Which channel carries file data: TCP on a direct LAN path, else QUIC (once known).
    data_path: Literal["tcp", "quic"] | None = None


class CodeEvent(SessionEvent):
    """Receiver: show this verification code to the sending user. Emitted again, with
    the same code and the next ``attempt``, when the sender typed a wrong one and may
    try again (of ``max_attempts`` before a lock-out; 0 when not counted)."""

    name: ClassVar[str] = "code"
    code: str
    peer_id: str
    peer_name: str
    attempt: int = 1
    max_attempts: int = 0


class VerifiedEvent(SessionEvent):
    """The peer is verified: by code just now, or by an earlier pairing."""

    name: ClassVar[str] = "verified"
    peer_id: str
    peer_name: str
    #: ``short-code``: the one-use code of a send by code (its PAKE vouched for the peer).
    by: Literal["code", "pairing", "short-code"]


class OfferEvent(SessionEvent):
    """Receiver: a peer offers ``files`` files of ``bytes`` bytes in total."""

    name: ClassVar[str] = "offer"
    files: int
    bytes: int
    sender: str
    sender_id: str
    folders: int = 0
    sample: list[str] = msgspec.field(default_factory=list)
    via: Via = "p2p-transfer"
    #: The sender's device model, as a LocalSend sender states it ("" otherwise).
    device_model: str = ""
    #: A text message: the offer is to show text, not to store files (``bytes`` is its
    #: size in UTF-8, ``preview`` its first line).
    text: bool = False
    preview: str = ""
    #: Offered files already in the target with the same name and size (skipped if
    #: identical), and files of which a partial ``.part`` is there (resumed).
    already_there: int = 0
    partly_there: int = 0
    _json_names: ClassVar[dict[str, str]] = {"sender": "from"}


class OfferSentEvent(SessionEvent):
    """Sender: the offer is with the receiver, whose user now decides."""

    name: ClassVar[str] = "offer_sent"
    peer_name: str
    files: int
    bytes: int
    folders: int = 0
    #: A text message (of ``bytes`` bytes), not files.
    text: bool = False


class ResumeEvent(SessionEvent):
    """The offer was accepted and the receiver already holds ``bytes`` of ``files`` of its
    files, ``whole_files`` of them (``whole_bytes``) complete: skipped if identical. Said
    before data moves; the sender checks each against its file and sends it all where
    they differ."""

    name: ClassVar[str] = "resume"
    direction: Direction
    files: int
    bytes: int
    whole_files: int = 0
    whole_bytes: int = 0


class DecisionEvent(SessionEvent):
    """The offer was accepted or declined (and why)."""

    name: ClassVar[str] = "decision"
    accepted: bool
    reason: str = ""


@dataclass(frozen=True, slots=True)
class FileProgress:
    """Progress of one file in flight."""

    path: str
    bytes_done: int
    size: int


class ProgressEvent(SessionEvent):
    """Throttled progress of a whole transfer, with the files in flight."""

    name: ClassVar[str] = "progress"
    direction: Direction
    bytes_done: int
    bytes_total: int
    files_done: int
    files_total: int
    rate: float
    eta: float | None
    active: list[FileProgress] = msgspec.field(default_factory=list)


class FileDoneEvent(SessionEvent):
    """One file arrived and its BLAKE3 matched (or, on the sender, was confirmed)."""

    name: ClassVar[str] = "file_done"
    direction: Direction
    path: str
    size: int
    blake3: str
    resumed_from: int = 0
    via: Via = "p2p-transfer"
    #: Where the receiver saved it, relative to its folder, when that is not ``path``
    #: (a different file had the name, or the disk refused it); "" otherwise.
    saved_as: str = ""
    _json_derived: ClassVar[tuple[str, ...]] = ("verified",)

    @property
    def verified(self) -> bool:
        """Checked end to end (BLAKE3, over a connection bound to the peer's key): true
        over p2p-transfer, false over LocalSend. Derived from ``via``: never set wrong."""
        return verified_via(self.via)


class FileFailedEvent(SessionEvent):
    """One file did not arrive verified; it is kept only as a ``.part``."""

    name: ClassVar[str] = "file_failed"
    direction: Direction
    path: str
    message: str


class DoneEvent(SessionEvent):
    """A transfer ended; ``ok`` only when every file arrived verified."""

    name: ClassVar[str] = "done"
    direction: Direction
    ok: bool
    files: int
    files_failed: int
    bytes_total: int
    bytes_transferred: int
    seconds: float
    target: str | None = None
    via: Via = "p2p-transfer"
    #: Files the receiver already held, identical: confirmed by hash, not sent again.
    files_identical: int = 0
    #: A text message (of ``bytes_total`` bytes) was delivered, not files.
    text: bool = False
    _json_derived: ClassVar[tuple[str, ...]] = ("verified",)

    @property
    def verified(self) -> bool:
        """What this transfer reports as arrived was checked end to end (see FileDoneEvent);
        ``ok`` says whether all of it arrived."""
        return verified_via(self.via)


class TextEvent(SessionEvent):
    """A text message arrived (a note, a link, a password): shown, never stored as a file."""

    name: ClassVar[str] = "text"
    sender: str
    text: str
    via: Via = "p2p-transfer"
    _json_names: ClassVar[dict[str, str]] = {"sender": "from"}


@dataclass(frozen=True, slots=True)
class ReceiverOutcome:
    """How a send ended for one of its receivers."""

    #: The receiver as the user named it (``--to``).
    to: str
    session: str
    #: Its name once known ("" when it was never reached).
    peer_name: str
    state: SessionState
    #: What it got (all of it when ``state`` is done): files and bytes, or a text.
    files: int
    bytes: int
    text: bool = False
    #: Why not, when it did not end done.
    message: str = ""
    #: The protocol its send took (its route).
    via: Via = "p2p-transfer"
    #: What it got was checked end to end: true over p2p-transfer, false over LocalSend.
    verified: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "verified", verified_via(self.via))


class SendSummaryEvent(Event):
    """A send to several receivers is over: how it went for each, in the order given;
    ``ok`` only when every receiver got everything."""

    name: ClassVar[str] = "summary"
    ok: bool
    receivers: list[ReceiverOutcome]


class ErrorEvent(Event):
    """Something failed; ``message`` is one clear line for the user (what happened and,
    where there is something to do, what to do next)."""

    name: ClassVar[str] = "error"
    message: str
    #: The session that failed; None for a failure of the program itself.
    session: str | None = None
    #: The cause in a library's own words, for scripts and bug reports ("" if none);
    #: the terminal shows only ``message``.
    detail: str = ""


class LogEvent(Event):
    """A warning from a part of the program (discovery, share, app) for the user to see."""

    name: ClassVar[str] = "log"
    level: Literal["warning", "error"]
    #: Which part said it: "discovery", "share", "app", ...
    source: str
    message: str


EventHandler = Callable[[Event], None]


class EventBus:
    """Fans events out to every subscriber; subscribers must not block."""

    def __init__(self) -> None:
        self._handlers: list[EventHandler] = []

    def subscribe(self, handler: EventHandler) -> Callable[[], None]:
        """Add a handler; returns a function that removes it."""
        self._handlers.append(handler)

        def unsubscribe() -> None:
            if handler in self._handlers:
                self._handlers.remove(handler)

        return unsubscribe

    def emit(self, event: Event) -> None:
        """Deliver ``event`` to every handler."""
        for handler in list(self._handlers):
            handler(event)


# --- Share (browser uploads and downloads) ----------------------------------


class ShareUrlEvent(Event):
    """The share server is up: browsers open ``url`` (which contains ``token``)."""

    name: ClassVar[str] = "share_url"
    url: str
    token: str
    public: bool = False


class ShareUploadRequestEvent(SessionEvent):
    """A browser asks to upload one file; the host is being asked."""

    name: ClassVar[str] = "share_upload_request"
    request_id: str
    file_name: str
    file_size: int
    client: str
    #: Which browser it says it is ("Chrome on Android"), "" when it names none we know.
    browser: str = ""


class ShareUploadAcceptedEvent(SessionEvent):
    """The upload was accepted (by the host, or by ``--yes``) and may send bytes."""

    name: ClassVar[str] = "share_upload_accepted"
    request_id: str
    file_name: str
    file_size: int


class ShareUploadRejectedEvent(SessionEvent):
    """The upload was refused before any byte was written; ``code`` says why."""

    name: ClassVar[str] = "share_upload_rejected"
    request_id: str
    file_name: str
    reason: str
    code: str


class ShareUploadProgressEvent(SessionEvent):
    """Throttled progress of one upload."""

    name: ClassVar[str] = "share_upload_progress"
    request_id: str
    file_name: str
    received_bytes: int
    file_size: int
    rate: float


class ShareUploadCompleteEvent(SessionEvent):
    """One upload is finalized under ``path`` (relative to the upload folder)."""

    name: ClassVar[str] = "share_upload_complete"
    request_id: str
    file_name: str
    path: str
    size: int
    blake3: str
    seconds: float


class ShareUploadFailedEvent(SessionEvent):
    """An accepted upload did not finish; its partial data was removed."""

    name: ClassVar[str] = "share_upload_failed"
    request_id: str
    file_name: str
    message: str
    received_bytes: int = 0


class ShareDownloadStartedEvent(Event):
    """A browser started downloading a shared item (a file, or a folder as zip)."""

    name: ClassVar[str] = "share_download_started"
    download_id: str
    item: str
    kind: Literal["file", "zip"]
    bytes: int
    client: str
    offset: int = 0


class ShareDownloadDoneEvent(Event):
    """A download ended; ``ok`` is false when the browser went away midway."""

    name: ClassVar[str] = "share_download_done"
    download_id: str
    item: str
    ok: bool
    seconds: float
    message: str = ""


# --- LocalSend ------------------------------------------------------------------


class LocalSendReadyEvent(Event):
    """LocalSend devices can send here: our HTTPS server listens on ``port``."""

    name: ClassVar[str] = "localsend"
    alias: str
    port: int
    #: SHA-256 of our LocalSend certificate (what LocalSend devices know us by).
    fingerprint: str
    announced: bool


# --- Discovery (LAN devices by name) ----------------------------------------


class DeviceEvent(Event):
    """A device on the LAN was found, or its name or addresses changed: one of ours (by its
    endpoint ID) or a LocalSend device (by its certificate fingerprint, ``endpoint_id`` "")."""

    name: ClassVar[str] = "device"
    device_name: str
    endpoint_id: str
    addresses: list[str] = msgspec.field(default_factory=list)
    protocol: Via = "p2p-transfer"
    #: A LocalSend device's certificate fingerprint, model and type, as it announces
    #: them ("" for ours).
    fingerprint: str = ""
    device_model: str = ""
    device_type: str = ""
    _json_names: ClassVar[dict[str, str]] = {"device_name": "name"}


class DeviceLostEvent(Event):
    """A device left the LAN table: it said goodbye, or its records expired."""

    name: ClassVar[str] = "device_lost"
    device_name: str
    endpoint_id: str
    reason: Literal["goodbye", "expired"]
    _json_names: ClassVar[dict[str, str]] = {"device_name": "name"}


class CheckEvent(Event):
    """One finding of ``p2p-transfer doctor``: what was checked, how it went, what to do."""

    name: ClassVar[str] = "check"
    check: str
    status: Literal["ok", "warn", "fail"]
    #: What was found, in one line.
    detail: str
    #: What to do about it, in one line ("" when nothing needs doing).
    advice: str = ""
    _json_names: ClassVar[dict[str, str]] = {"check": "name"}


class DiscoveryErrorEvent(Event):
    """LAN discovery could not start or announce; transfers by ticket still work."""

    name: ClassVar[str] = "discovery_error"
    message: str
