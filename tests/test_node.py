"""The Node: what it does around sessions (its sessions themselves: test_transfer.py)."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from conftest import CODE, Peers, make_tree
from p2p_transfer.events import (
    DoneEvent,
    ErrorEvent,
    Event,
    ProgressEvent,
    SessionEvent,
    SessionState,
    StateEvent,
)
from p2p_transfer.limits import MiB
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import (
    Cancelled,
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
)
from waiting import stays, wait_until


class RecordingDiscovery:
    """Stands in for the LAN announcement: notes when it is withdrawn."""

    def __init__(self, receiver_events: list[Event]) -> None:
        self._events = receiver_events
        self.withdrawn = False
        self.withdrawn_before_done: bool | None = None

    async def close(self) -> None:
        self.withdrawn = True
        self.withdrawn_before_done = not any(isinstance(e, DoneEvent) for e in self._events)


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


async def _serve_one_send(tmp_path: Path, once: bool) -> RecordingDiscovery:
    sender = await Node.start(NodeConfig(tmp_path / "tx-home", "tx", "127.0.0.1"))
    receiver = await Node.start(NodeConfig(tmp_path / "rx-home", "rx", "127.0.0.1"))
    events: list[Event] = []
    receiver.events.subscribe(events.append)
    discovery = RecordingDiscovery(events)
    receiver.discovery = discovery  # type: ignore[assignment]
    payload = tmp_path / "payload.bin"
    payload.write_bytes(bytes(3 * 1024 * 1024))
    options = ReceiveOptions(target=tmp_path / "inbox", auto_accept=True, fixed_code=CODE)
    serving = asyncio.create_task(receiver.serve(options, _accept, once=once))
    try:
        result = await sender.send(receiver.transport.ticket, [payload], SendOptions(code=CODE))
        assert result.ok
        if once:
            assert (await asyncio.wait_for(serving, 10)) is not None
        else:
            await stays(lambda: not serving.done(), seconds=0.2, what="the receiver serving on")
            assert not serving.done()
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
        await sender.close()
        await receiver.close()
    return discovery


async def test_a_once_receiver_leaves_the_lan_as_soon_as_it_takes_an_offer(
    tmp_path: Path,
) -> None:
    # Nobody else can use it from then on, and the goodbyes cost the user no wait at the end.
    discovery = await _serve_one_send(tmp_path, once=True)
    assert discovery.withdrawn and discovery.withdrawn_before_done


async def test_a_receiver_that_keeps_serving_stays_on_the_lan_until_closed(
    tmp_path: Path,
) -> None:
    discovery = await _serve_one_send(tmp_path, once=False)
    assert discovery.withdrawn and discovery.withdrawn_before_done is False  # at close only


# --- sessions: one ID per session on every event, cancelled by ID ----------------------


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
    for side, states in expected.items():
        await _states_become(peers.events[side], states)


async def _states_become(events: list[Event], states: list[str]) -> None:
    """Until ``events`` hold these states, in this order, and no others."""
    await wait_until(
        lambda: [e.state for e in events if isinstance(e, StateEvent)] == states, 5,
        what=lambda: f"the states {states}; got {events}",
    )


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
