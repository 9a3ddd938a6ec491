"""Which control message each side may send in each phase of a conversation, as data.

The sessions keep their linear coroutines; this table referees them (in the manner of
h11's ``_state.py``): every control message a side sends or reads passes a
``Conversation`` first, so a message out of turn is refused here, in one place, with
one line. Rules about a message's content (versions, page counts, a Retry only to a
sender that allows retries, proofs) stay with the code that reads the content.
"""

from __future__ import annotations

from enum import Enum
from typing import Final

from p2p_transfer.errors import LocalFault
from p2p_transfer.protocol.errors import ProtocolError
from p2p_transfer.protocol.messages import (
    Accept,
    Cancel,
    Continue,
    Decline,
    Error,
    FileResult,
    Hello,
    ManifestPage,
    Message,
    Offer,
    ResumePage,
    Retry,
    Summary,
    TextOffer,
    TextPage,
    Verified,
    Verify,
    Welcome,
)


class Side(Enum):
    """Who plays: the sender connects and offers, the receiver answers."""

    SENDER = "sender"
    RECEIVER = "receiver"

    @property
    def peer(self) -> Side:
        return Side.RECEIVER if self is Side.SENDER else Side.SENDER


class Phase(Enum):
    """Where the conversation stands; each names whose move it is."""

    HELLO = "hello"  # the sender's Hello (or its Continue of a broken transfer)
    CONTINUING = "continuing"  # the receiver's code-free Welcome to a Continue (or refusal)
    WELCOME = "welcome"  # the receiver's Welcome (or its refusal)
    CODE = "code"  # the sender's guess at the code shown (Verify)
    VERDICT = "verdict"  # the receiver's verdict on that guess
    OFFER = "offer"  # the sender's offer: of files, or of a text
    FILES_OFFERED = "files offered"  # the manifest's pages, then the receiver's answer
    TEXT_OFFERED = "text offered"  # the receiver's answer to a text
    RESUME = "resume"  # files accepted: the receiver's resume pages; data may flow
    TRANSFER = "transfer"  # data flows: the receiver's results, then its summary
    TEXT = "text"  # text accepted: its pages, then the receiver's summary
    ENDED = "ended"  # nothing more: the connection closes


class DataStream:
    """Not a message: the sender opening a data stream, which is legal only while the
    files of an accepted offer move."""


class CodeWelcome:
    """Not a type on the wire: a Welcome that asks for a code (``code_required``), after
    which the sender must prove it before it may offer anything."""


#: What can happen: a message's type, or one of the two markers above.
Event = type[Message] | type[DataStream] | type[CodeWelcome]

#: Each side's own moves in each phase, and the phase each leads to.
_MOVES: Final[dict[Side, dict[Phase, dict[Event, Phase]]]] = {
    Side.SENDER: {
        Phase.HELLO: {Hello: Phase.WELCOME, Continue: Phase.CONTINUING},
        Phase.CODE: {Verify: Phase.VERDICT},
        Phase.OFFER: {Offer: Phase.FILES_OFFERED, TextOffer: Phase.TEXT_OFFERED},
        Phase.FILES_OFFERED: {ManifestPage: Phase.FILES_OFFERED},
        Phase.RESUME: {DataStream: Phase.RESUME},
        Phase.TRANSFER: {DataStream: Phase.TRANSFER},
        Phase.TEXT: {TextPage: Phase.TEXT},
    },
    Side.RECEIVER: {
        Phase.WELCOME: {Welcome: Phase.OFFER, CodeWelcome: Phase.CODE},
        # A continued session was verified when it began: it asks for no code.
        Phase.CONTINUING: {Welcome: Phase.OFFER},
        Phase.VERDICT: {Verified: Phase.OFFER, Retry: Phase.CODE},
        Phase.FILES_OFFERED: {Accept: Phase.RESUME, Decline: Phase.ENDED},
        Phase.TEXT_OFFERED: {Accept: Phase.TEXT, Decline: Phase.ENDED},
        Phase.RESUME: {
            ResumePage: Phase.RESUME, FileResult: Phase.TRANSFER, Summary: Phase.ENDED
        },
        Phase.TRANSFER: {FileResult: Phase.TRANSFER, Summary: Phase.ENDED},
        Phase.TEXT: {Summary: Phase.ENDED},
    },
}
#: Either side may stop the conversation in any phase but the end, with Error or Cancel.
_STOPS: Final[dict[Event, Phase]] = {Error: Phase.ENDED, Cancel: Phase.ENDED}

#: The whole table: ``TRANSITIONS[side][phase][event]`` is the phase that ``side``'s
#: ``event`` in ``phase`` leads to; an event missing there is out of turn.
TRANSITIONS: Final[dict[Side, dict[Phase, dict[Event, Phase]]]] = {
    side: {
        phase: {**moves.get(phase, {}), **_STOPS} for phase in Phase if phase is not Phase.ENDED
    }
    for side, moves in _MOVES.items()
}

#: How a refusal reads, by the side that moved out of turn and the phase; ``{}`` is
#: what it sent. The words are those the sessions used before the table existed.
_REFUSALS: Final[dict[Side, dict[Phase, str]]] = {
    Side.SENDER: {
        Phase.HELLO: "expected Hello, got {}",
        Phase.CODE: "expected Verify, got {}",
        Phase.OFFER: "expected Offer, got {}",
        Phase.FILES_OFFERED: "expected ManifestPage, got {}",
        Phase.RESUME: "unexpected {} during transfer",
        Phase.TRANSFER: "unexpected {} during transfer",
        Phase.TEXT: "expected TextPage, got {}",
    },
    Side.RECEIVER: {
        Phase.WELCOME: "expected Welcome, got {}",
        Phase.CONTINUING: "expected Welcome without a code to a continuation, got {}",
        Phase.VERDICT: "expected Verified, got {}",
        Phase.FILES_OFFERED: "expected accept or decline, got {}",
        Phase.TEXT_OFFERED: "expected accept or decline, got {}",
        Phase.RESUME: "unexpected {} during transfer",
        Phase.TRANSFER: "unexpected {} during transfer",
        Phase.TEXT: "expected Summary, got {}",
    },
}
#: A data stream the receiver must not take, by phase (any phase not listed: too early).
_DATA_STREAM_REFUSALS: Final[dict[Phase, str]] = {
    Phase.TEXT: "data stream with a text message",
    Phase.ENDED: "data stream after the conversation ended",
}


def event_of(move: Message | Event) -> Event:
    """The table's key for a message (or a message type, or a marker)."""
    if isinstance(move, Welcome):
        return CodeWelcome if move.code_required else Welcome
    return move if isinstance(move, type) else type(move)


def next_phase(side: Side, phase: Phase, move: Message | Event) -> Phase:
    """Where ``side``'s ``move`` in ``phase`` leads; a ProtocolError (one line, naming what
    was due) when it is out of turn."""
    event = event_of(move)
    following = TRANSITIONS[side].get(phase, {}).get(event)
    if following is not None:
        return following
    if event is DataStream:
        raise ProtocolError(
            _DATA_STREAM_REFUSALS.get(phase, "data stream before the offer was accepted")
        )
    name = "Welcome" if event is CodeWelcome else event.__name__
    if phase is Phase.ENDED:
        raise ProtocolError(f"unexpected {name} after the conversation ended")
    wording = _REFUSALS[side].get(phase, f"unexpected {{}}: it is the {side.peer.value}'s turn")
    raise ProtocolError(wording.format(name))


class SentOutOfTurn(LocalFault):
    """This side tried to send a message out of turn: a bug here, never the peer's doing
    (so it is not a ProtocolError, which blames the peer and is sent back to it)."""


class Conversation:
    """One side's view of one conversation: the phase, moved on by every message it sends
    and reads, each checked against ``TRANSITIONS``."""

    def __init__(self, side: Side) -> None:
        self.side = side
        self._peer = side.peer  # looked up once: a message per file passes ``receive``
        self.phase = Phase.HELLO

    @property
    def ended(self) -> bool:
        return self.phase is Phase.ENDED

    def send(self, move: Message | Event) -> None:
        """Record a message this side is about to send; SentOutOfTurn when it may not."""
        try:
            self.phase = next_phase(self.side, self.phase, move)
        except ProtocolError as exc:
            raise SentOutOfTurn(f"{self.side.value} sent out of turn: {exc}") from None

    def may_send(self, move: Message | Event) -> bool:
        """Whether this side may send ``move`` now (an Error after the end may not)."""
        return event_of(move) in TRANSITIONS[self.side].get(self.phase, {})

    def receive(self, move: Message | Event) -> None:
        """Record a message (or data stream) the peer sent; the ProtocolError the peer broke
        when it was out of turn (the phase then stays as it was)."""
        self.phase = next_phase(self._peer, self.phase, move)
