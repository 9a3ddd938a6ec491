"""The conversation table alone: which control message each side may send when.

No sockets, no event loop: the rules are data (``protocol/conversation.py``), and both
sessions check every control message against them, so a peer's message out of turn
ends in the one-line ProtocolError asserted here.
"""

from __future__ import annotations

import socket
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from p2p_transfer.protocol import (
    Accept,
    Cancel,
    Continue,
    DataHeader,
    Decline,
    Error,
    FileResult,
    Hello,
    ManifestPage,
    Message,
    Offer,
    ProtocolError,
    ResumePage,
    Retry,
    Summary,
    TextOffer,
    TextPage,
    Verified,
    Verify,
    Welcome,
)
from p2p_transfer.protocol.conversation import (
    TRANSITIONS,
    CodeWelcome,
    Conversation,
    DataStream,
    Event,
    Phase,
    SentOutOfTurn,
    Side,
    event_of,
)

S, R = Side.SENDER, Side.RECEIVER
Move = tuple[Side, Message | Event]

HELLO: Move = (S, Hello(1, "desk", paired=True))
HELLO_RETRIES: Move = (S, Hello(1, "desk", retries=True))
WELCOME_PAIRED: Move = (R, Welcome(1, "laptop", code_required=False))
WELCOME_CODE: Move = (R, Welcome(1, "laptop", True, b"pake", 1, 5))
VERIFY: Move = (S, Verify(b"pake", b"proof"))
VERIFIED: Move = (R, Verified(b"proof"))
RETRY: Move = (R, Retry(b"pake", 2, 5))
OFFER: Move = (S, Offer("t", 2, 2, 10, 1))
PAGE: Move = (S, ManifestPage([]))
TEXT_OFFER: Move = (S, TextOffer("t", 5, 1, "hello"))
TEXT_PAGE: Move = (S, TextPage("hello"))
ACCEPT: Move = (R, Accept(1))
RESUME: Move = (R, ResumePage([]))
DECLINE: Move = (R, Decline("no"))
DATA: Move = (S, DataStream)
RESULT: Move = (R, FileResult(0, True))
SUMMARY: Move = (R, Summary(2, 0, 10))
CONTINUE: Move = (S, Continue(1, "desk", "a1b2c3", b"secret"))

#: Every sequence the sessions use, start to end.
LEGAL: dict[str, list[Move]] = {
    "paired files": [
        HELLO, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, RESUME, DATA, DATA, RESULT, RESULT, SUMMARY,
    ],
    "code, then files": [
        HELLO, WELCOME_CODE, VERIFY, VERIFIED, OFFER, PAGE, ACCEPT, DATA, RESULT, SUMMARY,
    ],
    "wrong code, retried": [
        HELLO_RETRIES, WELCOME_CODE, VERIFY, RETRY, VERIFY, RETRY, VERIFY, VERIFIED, OFFER,
        PAGE, ACCEPT, DATA, RESULT, SUMMARY,
    ],
    "wrong code, refused": [
        HELLO, WELCOME_CODE, VERIFY, (R, Error("wrong verification code", "wrong_code")),
    ],
    "locked out before any code": [HELLO, (R, Error("too many wrong codes", "locked_out"))],
    "declined": [HELLO, WELCOME_PAIRED, OFFER, PAGE, PAGE, DECLINE],
    "empty offer": [HELLO, WELCOME_PAIRED, OFFER, ACCEPT, SUMMARY],
    "folders only, resume pages": [HELLO, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, RESUME, SUMMARY],
    "results before data (resumed whole files)": [
        HELLO, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, RESULT, DATA, RESULT, SUMMARY,
    ],
    "text": [HELLO, WELCOME_PAIRED, TEXT_OFFER, ACCEPT, TEXT_PAGE, TEXT_PAGE, SUMMARY],
    "text declined": [HELLO, WELCOME_CODE, VERIFY, VERIFIED, TEXT_OFFER, DECLINE],
    "sender cancels during transfer": [
        HELLO, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, DATA, (S, Cancel("bye")),
    ],
    "receiver fails during transfer": [
        HELLO, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, DATA, RESULT, (R, Error("disk full")),
    ],
    "protocol error at the first message": [(R, Error("protocol error: expected Hello"))],
    "continued after a broken path": [
        CONTINUE, WELCOME_PAIRED, OFFER, PAGE, ACCEPT, RESUME, RESULT, DATA, RESULT, SUMMARY,
    ],
    "continuation refused": [CONTINUE, (R, Error("this transfer cannot be continued"))],
}


@pytest.fixture(autouse=True)
def _no_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    """The rules are checked without a network: opening a socket fails these tests."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the conversation table must not touch the network")

    monkeypatch.setattr(socket, "socket", refuse)


def _play(moves: list[Move]) -> tuple[Conversation, Conversation]:
    """Each side's view: it sends its own moves and receives the peer's."""
    views = {S: Conversation(S), R: Conversation(R)}
    for side, move in moves:
        views[side].send(move)
        views[side.peer].receive(move)
        assert views[S].phase is views[R].phase
    return views[S], views[R]


def _at(moves: list[Move]) -> Conversation:
    """The receiving side's view after ``moves`` (a peer's next move is then checked)."""
    return _play(moves)[1]


def _refused(moves: list[Move], move: Move) -> str:
    """The one line a side reading ``move`` after ``moves`` answers with."""
    side, message = move
    view = _play(moves)[0 if side is R else 1]
    before = view.phase
    with pytest.raises(ProtocolError) as refusal:
        view.receive(message)
    assert view.phase is before  # a refused message moves nothing
    text = str(refusal.value)
    assert "\n" not in text
    return text


@pytest.mark.parametrize("moves", LEGAL.values(), ids=LEGAL.keys())
def test_every_sequence_the_sessions_use_is_accepted_by_both_sides(moves: list[Move]) -> None:
    sender, receiver = _play(moves)
    assert sender.ended and receiver.ended


def test_an_offer_before_verification_is_refused() -> None:
    assert _refused([HELLO, WELCOME_CODE], OFFER) == "expected Verify, got Offer"
    assert _refused([HELLO, WELCOME_CODE], TEXT_OFFER) == "expected Verify, got TextOffer"


def test_an_offer_before_hello_or_welcome_is_refused() -> None:
    assert _refused([], OFFER) == "expected Hello, got Offer"
    assert _refused([HELLO], OFFER) == "unexpected Offer: it is the receiver's turn"


def test_a_second_offer_is_refused() -> None:
    offered = [HELLO, WELCOME_PAIRED, OFFER]
    assert _refused(offered, OFFER) == "expected ManifestPage, got Offer"
    assert _refused([*offered, PAGE, ACCEPT], OFFER) == "unexpected Offer during transfer"
    texted = [HELLO, WELCOME_PAIRED, TEXT_OFFER, ACCEPT]
    assert _refused(texted, TEXT_OFFER) == "expected TextPage, got TextOffer"


@pytest.mark.parametrize(
    "moves",
    [
        [],
        [HELLO],
        [HELLO, WELCOME_CODE],
        [HELLO, WELCOME_CODE, VERIFY],
        [HELLO, WELCOME_PAIRED],
        [HELLO, WELCOME_PAIRED, OFFER, PAGE],
        [HELLO, WELCOME_PAIRED, TEXT_OFFER],
    ],
    ids=["before-hello", "before-welcome", "before-code", "code-checked", "before-offer",
         "user-deciding", "text-deciding"],
)
def test_data_before_acceptance_is_refused(moves: list[Move]) -> None:
    assert _refused(moves, DATA) == "data stream before the offer was accepted"


def test_data_with_a_text_or_after_the_end_is_refused() -> None:
    text = [HELLO, WELCOME_PAIRED, TEXT_OFFER, ACCEPT]
    assert _refused(text, DATA) == "data stream with a text message"
    done = [HELLO, WELCOME_PAIRED, OFFER, ACCEPT, SUMMARY]
    assert _refused(done, DATA) == "data stream after the conversation ended"


def test_a_text_page_where_files_were_offered_is_refused() -> None:
    files = [HELLO, WELCOME_PAIRED, OFFER, PAGE]
    assert _refused(files, TEXT_PAGE) == "expected ManifestPage, got TextPage"
    assert _refused([*files, ACCEPT], TEXT_PAGE) == "unexpected TextPage during transfer"


def test_file_answers_to_a_text_offer_are_refused() -> None:
    text = [HELLO, WELCOME_PAIRED, TEXT_OFFER, ACCEPT]
    assert _refused(text, RESUME) == "expected Summary, got ResumePage"
    assert _refused(text, RESULT) == "expected Summary, got FileResult"
    assert _refused([HELLO, WELCOME_PAIRED, TEXT_OFFER], PAGE) == (
        "unexpected ManifestPage: it is the receiver's turn"
    )


def test_answers_out_of_turn_are_refused() -> None:
    assert _refused([HELLO], (R, Verified(b""))) == "expected Welcome, got Verified"
    assert _refused([HELLO, WELCOME_PAIRED], ACCEPT) == (
        "unexpected Accept: it is the sender's turn"
    )
    assert _refused([HELLO, WELCOME_CODE, VERIFY], ACCEPT) == "expected Verified, got Accept"
    assert _refused([HELLO, WELCOME_PAIRED, OFFER], SUMMARY) == (
        "expected accept or decline, got Summary"
    )
    accepted = [HELLO, WELCOME_PAIRED, OFFER, ACCEPT, RESULT]
    assert _refused(accepted, RESUME) == "unexpected ResumePage during transfer"
    assert _refused(accepted, ACCEPT) == "unexpected Accept during transfer"


def test_file_data_frames_are_never_control_messages() -> None:
    assert _refused([], (S, DataHeader(0, 0, 1))) == "expected Hello, got DataHeader"
    during = [HELLO, WELCOME_PAIRED, OFFER, ACCEPT]
    assert _refused(during, (S, DataHeader(0, 0, 1))) == "unexpected DataHeader during transfer"


@pytest.mark.parametrize("moves", LEGAL.values(), ids=LEGAL.keys())
@pytest.mark.parametrize(
    "late", [HELLO, OFFER, (S, Cancel("late")), (R, Error("late")), SUMMARY, RESULT],
    ids=["hello", "offer", "cancel", "error", "summary", "result"],
)
def test_a_message_after_the_end_is_refused(moves: list[Move], late: Move) -> None:
    name = type(late[1]).__name__
    assert _refused(moves, late) == f"unexpected {name} after the conversation ended"


def test_error_and_cancel_end_the_conversation_from_any_phase() -> None:
    for phase in Phase:
        if phase is Phase.ENDED:
            continue
        for side in Side:
            assert TRANSITIONS[side][phase][Error] is Phase.ENDED
            assert TRANSITIONS[side][phase][Cancel] is Phase.ENDED


def test_an_own_message_out_of_turn_is_a_local_bug_not_the_peers_error() -> None:
    sender = Conversation(S)
    with pytest.raises(SentOutOfTurn, match="sender sent out of turn: expected Hello, got Offer"):
        sender.send(OFFER[1])
    assert not issubclass(SentOutOfTurn, ProtocolError)
    receiver = _play([HELLO, WELCOME_PAIRED, OFFER, ACCEPT, SUMMARY])[1]
    assert not receiver.may_send(Error("too late"))
    assert Conversation(R).may_send(Error("refused before hello"))


def test_a_continuation_asks_for_no_code_and_comes_only_first() -> None:
    # A continued session was verified when it began: a code there is out of turn, and
    # no Verify may slip in to turn a continuation into a fresh verification.
    assert _refused([CONTINUE], WELCOME_CODE) == (
        "expected Welcome without a code to a continuation, got Welcome"
    )
    assert _refused([CONTINUE], VERIFY) == "unexpected Verify: it is the receiver's turn"
    assert _refused([CONTINUE, WELCOME_PAIRED], VERIFY) == "expected Offer, got Verify"
    assert _refused([HELLO, WELCOME_PAIRED], CONTINUE) == "expected Offer, got Continue"
    assert _refused([CONTINUE], CONTINUE) == "unexpected Continue: it is the receiver's turn"


def test_a_code_welcome_is_its_own_event() -> None:
    assert event_of(Welcome(1, "x", True)) is CodeWelcome
    assert event_of(Welcome(1, "x", False)) is Welcome
    assert event_of(Welcome) is Welcome
    assert event_of(FileResult) is FileResult


def _legal_moves(side: Side, phase: Phase) -> list[Event]:
    return list(TRANSITIONS[side].get(phase, {}))


@given(st.data())
def test_any_walk_through_the_table_keeps_both_sides_in_step(data: st.DataObject) -> None:
    """Random legal walks: each side accepts the other's moves, and both agree on the phase;
    any other move at any point is refused, and moves nothing."""
    views = {S: Conversation(S), R: Conversation(R)}
    for _ in range(40):
        phase = views[S].phase
        if phase is Phase.ENDED:
            break
        side = data.draw(st.sampled_from(list(Side)))
        legal = _legal_moves(side, phase)
        illegal = [
            event for event in (*_all_events(), DataStream) if event not in legal
        ]
        wrong = data.draw(st.sampled_from(illegal))
        with pytest.raises(ProtocolError):
            views[side.peer].receive(wrong)
        with pytest.raises(SentOutOfTurn):
            views[side].send(wrong)
        assert views[S].phase is views[R].phase is phase
        move = data.draw(st.sampled_from(legal))
        views[side].send(move)
        views[side.peer].receive(move)
        assert views[S].phase is views[R].phase


def _all_events() -> list[Event]:
    return [
        Hello, Welcome, CodeWelcome, Verify, Verified, Retry, Offer, ManifestPage, TextOffer,
        TextPage, Accept, ResumePage, Decline, DataHeader, FileResult, Summary, Cancel, Error,
    ]


def test_the_table_needs_no_event_loop_or_network() -> None:
    """The protocol layer is sans-IO: importing the table loads neither asyncio nor iroh."""
    probe = (
        "import sys, p2p_transfer.protocol.conversation; "
        "print(sorted(m for m in ('asyncio', 'iroh', 'socket') if m in sys.modules))"
    )
    run = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    )
    assert run.stdout.strip() == "[]"
