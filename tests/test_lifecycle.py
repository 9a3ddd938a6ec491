"""A session's state: it only moves forward, ends once, and every move is an event."""

from __future__ import annotations

from p2p_transfer.events import Event, SessionState, StateEvent
from p2p_transfer.lifecycle import Lifecycle, new_session_id


def test_states_move_forward_only_and_end_once() -> None:
    seen: list[Event] = []
    lifecycle = Lifecycle("s1", "send", seen.append)
    assert lifecycle.advance(SessionState.CONNECTING)
    assert lifecycle.advance(SessionState.VERIFYING)
    assert lifecycle.advance(SessionState.WAITING)
    # The second "connection" event of a transfer once took a card back to verifying.
    assert not lifecycle.advance(SessionState.VERIFYING)
    assert not lifecycle.advance(SessionState.WAITING)
    assert lifecycle.advance(SessionState.TRANSFERRING)
    assert lifecycle.advance(SessionState.CANCELLED, "cancelled", "peer")
    assert not lifecycle.advance(SessionState.DONE)
    assert not lifecycle.advance(SessionState.FAILED, "too late")
    assert lifecycle.final and lifecycle.by == "peer"
    assert [e.state for e in seen if isinstance(e, StateEvent)] == [
        "connecting", "verifying", "waiting", "transferring", "cancelled",
    ]
    assert all(isinstance(e, StateEvent) and e.session == "s1" for e in seen)


def test_a_session_may_end_from_any_state() -> None:
    for start in list(SessionState)[:4]:
        lifecycle = Lifecycle("s", "receive", lambda event: None)
        lifecycle.advance(start)
        assert lifecycle.advance(SessionState.FAILED, "broke")
        assert lifecycle.state is SessionState.FAILED and lifecycle.message == "broke"


def test_final_states_are_the_last_four_and_order_is_shared() -> None:
    assert [s for s in SessionState if s.final] == ["done", "failed", "declined", "cancelled"]
    assert SessionState.WAITING.precedes(SessionState.TRANSFERRING)
    assert not SessionState.DONE.precedes(SessionState.CANCELLED)


def test_queued_comes_first_and_reconnecting_alternates_with_transferring() -> None:
    seen: list[Event] = []
    lifecycle = Lifecycle("s1", "send", seen.append)
    assert lifecycle.advance(SessionState.QUEUED)
    assert lifecycle.advance(SessionState.CONNECTING)
    assert not lifecycle.advance(SessionState.QUEUED)
    assert not lifecycle.advance(SessionState.RECONNECTING)  # nothing to reconnect yet
    assert lifecycle.advance(SessionState.TRANSFERRING)
    assert lifecycle.advance(SessionState.RECONNECTING)
    assert lifecycle.advance(SessionState.TRANSFERRING)
    assert lifecycle.advance(SessionState.RECONNECTING)
    assert not lifecycle.advance(SessionState.RECONNECTING)  # one event per drop
    assert not lifecycle.advance(SessionState.WAITING)
    assert lifecycle.advance(SessionState.DONE)
    assert not lifecycle.advance(SessionState.RECONNECTING)
    assert [e.state for e in seen if isinstance(e, StateEvent)] == [
        "queued", "connecting", "transferring", "reconnecting", "transferring",
        "reconnecting", "done",
    ]


def test_session_ids_are_fresh() -> None:
    ids = {new_session_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(len(i) == 12 for i in ids)


def test_the_state_event_in_json() -> None:
    event = StateEvent("s1", "receive", SessionState.CANCELLED, "tx cancelled", "peer", "tx")
    assert event.to_dict() == {
        "event": "state", "session": "s1", "direction": "receive", "state": "cancelled",
        "message": "tx cancelled", "by": "peer", "peer_name": "tx",
    }
