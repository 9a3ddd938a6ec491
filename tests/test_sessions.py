"""The session registry: one ID per session on every event, one final state however the
work ends, cancel by ID (alone, and through two real nodes)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from conftest import CODE, Peers, make_tree
from p2p_transfer.errors import P2PTransferError
from p2p_transfer.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    EventBus,
    ProgressEvent,
    SessionEvent,
    SessionState,
    StateEvent,
)
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import MiB
from p2p_transfer.node.sessions import SessionRegistry, SessionWork
from p2p_transfer.transfer import Cancelled, Declined, SendOptions, TransferResult


class Recorded:
    """A registry and the events it emitted."""

    def __init__(self) -> None:
        self.bus = EventBus()
        self.events: list[Event] = []
        self.bus.subscribe(self.events.append)
        self.registry = SessionRegistry(self.bus)

    def states(self, session: str) -> list[tuple[str, str, str]]:
        return [(e.state, e.message, e.by) for e in self.events
                if isinstance(e, StateEvent) and e.session == session]


def ending_with(outcome: TransferResult | BaseException) -> SessionWork:
    """A session's work that moves to transferring, then ends in ``outcome``."""

    async def work(lifecycle: Lifecycle) -> TransferResult:
        lifecycle.advance(SessionState.TRANSFERRING)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return work


async def test_a_result_is_the_final_state_and_the_session_leaves_the_registry() -> None:
    recorded = Recorded()
    done = TransferResult(SessionState.DONE, files=2, message="2 files")
    session = recorded.registry.start("send", ending_with(done))
    assert session.id in recorded.registry
    assert await session.outcome() == done
    assert recorded.states(session.id) == [("transferring", "", ""), ("done", "2 files", "")]
    assert session.id not in recorded.registry
    assert not recorded.registry.cancel(session.id)  # over: nothing left to cancel


@pytest.mark.parametrize(
    ("raised", "state", "message", "by"),
    [
        (Declined("no space"), SessionState.DECLINED, "no space", ""),
        (Cancelled("laptop cancelled", "peer"), SessionState.CANCELLED, "laptop cancelled",
         "peer"),
        (P2PTransferError("the peer vanished"), SessionState.FAILED, "the peer vanished", ""),
    ],
)
async def test_a_typed_failure_becomes_a_result_and_one_final_state(
    raised: P2PTransferError, state: SessionState, message: str, by: str
) -> None:
    recorded = Recorded()
    session = recorded.registry.start("receive", ending_with(raised))
    result = await session.outcome()
    assert (result.state, result.message, result.by, result.error) == (state, message, by, raised)
    assert recorded.states(session.id)[-1] == (state.value, message, by)
    errors = [e for e in recorded.events if isinstance(e, ErrorEvent)]
    if state is SessionState.FAILED:  # only a failure is an error for the user
        assert [(e.message, e.session) for e in errors] == [(message, session.id)]
    else:
        assert not errors


class Blocked:
    """Work that runs until cancelled; ``running`` is set once it does."""

    def __init__(self, reason: str = "") -> None:
        self.running = asyncio.Event()
        self._reason = reason

    async def __call__(self, lifecycle: Lifecycle) -> TransferResult:
        lifecycle.advance(SessionState.TRANSFERRING)
        lifecycle.cancel_reason = self._reason
        self.running.set()
        await asyncio.Future()
        raise AssertionError("not cancelled")


async def test_cancel_by_id_ends_the_session_cancelled_by_us_and_its_outcome_says_so() -> None:
    recorded = Recorded()
    work = Blocked()
    session = recorded.registry.start("send", work)
    await work.running.wait()
    assert not recorded.registry.cancel("no-such-session")
    assert recorded.registry.cancel(session.id)
    result = await session.outcome()  # a result, not a CancelledError for the caller
    assert (result.state, result.message, result.by) == (SessionState.CANCELLED, "cancelled",
                                                          "local")
    assert isinstance(result.error, Cancelled)
    assert recorded.states(session.id)[-1] == ("cancelled", "cancelled", "local")
    assert session.id not in recorded.registry


async def test_a_cancel_by_the_node_itself_says_why() -> None:
    recorded = Recorded()
    work = Blocked(reason="too many connections; idle connection dropped")
    session = recorded.registry.start("receive", work)
    await work.running.wait()
    recorded.registry.cancel(session.id)
    result = await session.outcome()
    assert result.message == "too many connections; idle connection dropped"
    assert recorded.states(session.id)[-1] == ("cancelled", result.message, "local")


async def test_a_caller_cancelled_while_waiting_is_cancelled_itself() -> None:
    # Ctrl-C on ``send``: the caller's own cancel is not turned into a result.
    recorded = Recorded()
    work = Blocked()
    session = recorded.registry.start("send", work)
    await work.running.wait()
    waiting_started = asyncio.Event()

    async def wait() -> TransferResult:
        waiting_started.set()
        return await session.outcome()

    waiting = asyncio.create_task(wait())
    await waiting_started.wait()  # the waiter now waits on the session's task
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    assert session.result is not None and session.result.state is SessionState.CANCELLED


async def test_close_cancels_every_running_session_and_waits_for_their_ends() -> None:
    recorded = Recorded()
    works = [Blocked() for _ in range(3)]
    sessions = [recorded.registry.start(d, w) for d, w in zip(("send", "receive", "send"), works,
                                                            strict=True)]
    for work in works:
        await work.running.wait()
    await recorded.registry.close()
    for session in sessions:
        assert session.result is not None and session.result.state is SessionState.CANCELLED
        assert recorded.states(session.id)[-1] == ("cancelled", "cancelled", "local")
        assert session.id not in recorded.registry
    assert len({s.id for s in sessions}) == 3


# --- through two real nodes -------------------------------------------------------------


async def _until(bus: EventBus, holds: Callable[[], bool], timeout: float = 5) -> None:
    """Wait until ``holds()``, checking again on each new event of ``bus``."""
    changed = asyncio.Event()
    unsubscribe = bus.subscribe(lambda _: changed.set())
    try:
        async with asyncio.timeout(timeout):
            while not holds():
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()


async def test_every_event_of_a_session_carries_its_id(peers: Peers, tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "src")
    result = await peers.send(tree)
    assert result.ok
    await peers.wait_for_receiver(DoneEvent)
    await peers.wait_for_receiver(StateEvent)
    for side in ("sender", "receiver"):
        sessions = {e.session for e in peers.events[side] if isinstance(e, SessionEvent)}
        assert len(sessions) == 1, (side, sessions)
        kinds = {e.name for e in peers.events[side] if isinstance(e, SessionEvent)}
        assert {"state", "verified", "decision", "progress", "file_done", "done"} <= kinds
    sent = {e.session for e in peers.events["sender"] if isinstance(e, SessionEvent)}
    received = {e.session for e in peers.events["receiver"] if isinstance(e, SessionEvent)}
    assert sent != received  # each node names its own sessions


async def test_states_of_a_send_move_forward_and_end_once(peers: Peers, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a")
    assert (await peers.send(source)).ok
    await peers.wait_for_receiver(DoneEvent)
    expected = {
        "sender": ["connecting", "verifying", "waiting", "transferring", "done"],
        "receiver": ["verifying", "waiting", "transferring", "done"],
    }
    buses = {"sender": peers.sender.events, "receiver": peers.receiver.events}
    for side, states in expected.items():
        def seen(side: str = side) -> list[str]:
            return [e.state for e in peers.events[side] if isinstance(e, StateEvent)]

        await _until(buses[side], lambda seen=seen: seen()[-1:] == ["done"])
        assert seen() == states, peers.events[side]


async def test_cancel_by_session_id_ends_both_sides_cancelled_saying_who(
    peers: Peers, tmp_path: Path
) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(os.urandom(64 * MiB))
    sending = asyncio.create_task(
        peers.sender.send(peers.ticket, [source], SendOptions(code=CODE, transport="quic"))
    )
    progress = await peers.wait_for_receiver(ProgressEvent, timeout=30)
    assert peers.receiver.cancel(progress.session)
    assert not peers.receiver.cancel("no-such-session")
    result = await sending
    assert result.state is SessionState.CANCELLED and result.by == "peer"
    assert isinstance(result.error, Cancelled) and result.message == "rx cancelled"
    ended = await peers.wait_for_receiver(StateEvent)
    assert isinstance(ended, StateEvent)
    assert (ended.state, ended.by, ended.session) == ("cancelled", "local", progress.session)
    assert not peers.receiver_events(ErrorEvent)
    assert not (peers.target / "big.bin").exists()
