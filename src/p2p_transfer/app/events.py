"""Events the desktop app adds to the node's stream for its UI.

A snapshot of each transfer whenever it changes, and the questions the UI must
answer. They travel on the app's bus beside the node's own events.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

from p2p_transfer.events import Direction, Event, FileProgress, SessionState, Via
from p2p_transfer.limits import LOCALSEND_PORT

#: The colour of a state's pill on the page ("" plain).
Tone = Literal["", "accent", "ok", "bad", "warn"]


@dataclass(frozen=True, slots=True)
class StateInfo:
    """One session state as the page shows it. The page learns every state from the
    server (``GET /api/meta``) and keeps no list of its own, so the two cannot drift."""

    name: SessionState
    #: The label of its pill (the page words a send ``queued`` in the outbox, ``waiting``
    #: and a cancel by whom itself, from the transfer's direction and peer).
    label: str
    final: bool
    tone: Tone


#: Each state's label and tone: a state added to SessionState without one fails at import.
_STATE_LOOKS: dict[SessionState, tuple[str, Tone]] = {
    SessionState.QUEUED: ("Queued", ""),
    SessionState.CONNECTING: ("Connecting…", ""),
    SessionState.VERIFYING: ("Verifying…", ""),
    SessionState.WAITING: ("Waiting", ""),
    SessionState.TRANSFERRING: ("Transferring", "accent"),
    SessionState.RECONNECTING: ("Reconnecting…", "warn"),
    SessionState.DONE: ("Done", "ok"),
    SessionState.FAILED: ("Failed", "bad"),
    SessionState.DECLINED: ("Declined", "warn"),
    SessionState.CANCELLED: ("Cancelled", "warn"),
}
#: Every session state, in the order a session moves through them.
STATES: tuple[StateInfo, ...] = tuple(
    StateInfo(state, label, state.final, tone)
    for state in SessionState
    for label, tone in [_STATE_LOOKS[state]]
)


def page_meta() -> dict[str, Any]:
    """``GET /api/meta``: what the page takes from the server's types before it draws."""
    return {"states": [asdict(state) for state in STATES]}


@dataclass(frozen=True, slots=True)
class TransferSnapshot:
    """Everything the UI shows about one transfer (not an event: the ``transfer`` event's body)."""

    #: The session ID (the ``session`` of the node's events for this transfer).
    id: str
    direction: Direction
    #: queued, connecting, verifying, waiting (for an answer), transferring
    #: (reconnecting and back), done, failed, declined or cancelled; forward only.
    state: SessionState
    peer_name: str
    peer_id: str
    #: How the peer was verified: "code", "pairing", or "" (not yet).
    verified: str
    files_total: int
    files_done: int
    files_failed: int
    bytes_total: int
    bytes_done: int
    rate: float
    eta: float | None
    active: list[FileProgress]
    message: str
    #: Who ended a cancelled transfer: "local" (this app's user) or "peer"; else "".
    cancelled_by: str
    #: Receive: the folder files go to; send: the folder the first path is in.
    folder: str
    #: Top-level names being sent (send) or a sample of offered files (receive).
    names: list[str]
    #: "direct", "relay" or "unknown" once connected (sender side), else "".
    path: str
    rtt_ms: float | None
    started_at: float
    finished_at: float | None
    #: A failed or cancelled send that Retry sends again (resuming what arrived).
    can_retry: bool = False
    #: The transfer this one retries, and the one that retried this one ("": none).
    retry_of: str = ""
    retried_as: str = ""
    #: A text message, not files: ``names`` holds its first line, ``bytes_total`` its size.
    text: bool = False
    #: ``p2p-transfer`` (files verified end to end) or ``localsend`` (not verified).
    via: Via = "p2p-transfer"
    #: A send by code: the code the other device types ("" until it is allocated, and
    #: for any other transfer).
    code: str = ""


class TransferUpdateEvent(Event):
    """A transfer changed; ``transfer`` is its whole current state."""

    name: ClassVar[str] = "transfer"
    transfer: TransferSnapshot


class OfferPromptEvent(Event):
    """Receiver: ask the user to accept or decline an offer (answer with the prompt ID)."""

    name: ClassVar[str] = "offer_prompt"
    prompt_id: str
    #: The receiving session (its transfer's ``id`` on the board once it is there).
    session: str
    sender: str
    sender_id: str
    files: int
    folders: int
    bytes: int
    sample: list[str]
    #: How the sender was verified: "code" (just now) or "pairing" (a trusted device).
    verified: str
    #: Wall-clock time (``time.time()``) after which the offer is declined unanswered.
    deadline: float
    #: "localsend" for a LocalSend device (never verified: the dialog says so).
    via: Via = "p2p-transfer"
    device_model: str = ""
    #: A text message (ours or LocalSend's): accepting shows it; ``preview`` is its
    #: first line, ``bytes`` its size.
    text: bool = False
    preview: str = ""
    _json_names: ClassVar[dict[str, str]] = {"sender": "from"}


class CodePromptEvent(Event):
    """Sender: ask the user for the 6-digit code the receiver shows. Sent again with the
    same ``prompt_id`` when a typed code was wrong and may be typed again (``retry``)."""

    name: ClassVar[str] = "code_prompt"
    prompt_id: str
    #: The app's ID of the sending transfer (``TransferSnapshot.id``).
    transfer: str
    peer_name: str
    deadline: float
    #: Which attempt this is, of ``max_attempts`` before a lock-out (0 and 0: not said).
    attempt: int = 0
    max_attempts: int = 0
    #: The code typed before, on this connection, was wrong.
    retry: bool = False


class PinPromptEvent(Event):
    """Sender: a LocalSend device asks for its PIN (``retry``: the last one was wrong)."""

    name: ClassVar[str] = "pin_prompt"
    prompt_id: str
    #: The app's ID of the sending transfer.
    transfer: str
    peer_name: str
    retry: bool
    deadline: float


class CodeShownEvent(Event):
    """Receiver: show this code large until the sender has typed it (or gave up). Sent
    again with the same ``prompt_id`` and the next ``attempt`` after a wrong code."""

    name: ClassVar[str] = "code_shown"
    prompt_id: str
    code: str
    peer_name: str
    peer_id: str
    deadline: float
    attempt: int = 1
    max_attempts: int = 0


class UploadPromptEvent(Event):
    """Share: ask the user to accept or decline one browser upload."""

    name: ClassVar[str] = "upload_prompt"
    prompt_id: str
    request_id: str
    file_name: str
    file_size: int
    client: str
    deadline: float
    #: Which browser it says it is ("Chrome on Android"), "" when it names none we know.
    browser: str = ""


class PromptClosedEvent(Event):
    """A prompt is gone: answered, timed out, withdrawn by the peer, or dismissed."""

    name: ClassVar[str] = "prompt_closed"
    prompt_id: str
    outcome: str


class SettingsEvent(Event):
    """The app's settings changed (every open UI tab shows the new values)."""

    name: ClassVar[str] = "settings"
    device_name: str
    download_dir: str
    auto_accept_trusted: bool
    pairing_lifetime_hours: float
    parallel_files: int
    relay: str
    localsend: bool = True
    localsend_port: int = LOCALSEND_PORT
    localsend_pin: str = ""
    mailbox: str = ""


class CodeReceiveEvent(Event):
    """Receive with a code: how meeting the code's sender goes, before its offer (which
    then comes as any other). ``step``: ``looking`` (for the sender), ``met`` (the offer
    follows) or ``failed`` (``message`` says why and what to do)."""

    name: ClassVar[str] = "code_receive"
    code: str
    step: Literal["looking", "met", "failed"]
    message: str = ""


class ShareStateEvent(Event):
    """The app's share server started, stopped, or changed what it offers."""

    name: ClassVar[str] = "share_state"
    running: bool
    url: str | None
    upload_dir: str
    files: list[str]
    #: Why the link reaches only this machine, or why the share stopped ("" if not).
    notice: str = ""


class NodeStateEvent(Event):
    """The app's node is (re)starting, running or stopped (a name or relay change restarts it)."""

    name: ClassVar[str] = "node_state"
    state: Literal["starting", "running", "stopped"]
    device_name: str
    endpoint_id: str
    message: str = ""
