"""The inbox alone: connections in the table from the first packet to the end (evicted
while idle, refused when no one can go), and ``serve(once=True)`` ending with the first
session from any door. Knocks are stand-ins; real peers: tests/security/test_admission.py."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from p2p_transfer.events import EventBus, SessionState
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.net import NetError, PeerConnection
from p2p_transfer.node.inbox import ConnectionSlot, Inbox
from p2p_transfer.node.sessions import SessionRegistry
from p2p_transfer.transfer import (
    Decision,
    IncomingOffer,
    ReceiveOptions,
    TransferResult,
)
from p2p_transfer.transfer.admission import ConnectionTable


class Knock:
    """A connection attempt that stays in its handshake until told how it ends."""

    def __init__(self, ip: str = "10.0.0.1") -> None:
        self.remote_ip = ip
        self.refused = False
        self.started = asyncio.Event()
        self.dropped = asyncio.Event()
        self.ended = asyncio.Event()
        self.handshake: asyncio.Future[PeerConnection] = asyncio.Future()

    async def establish(self) -> PeerConnection:
        self.started.set()
        try:
            return await self.handshake
        except asyncio.CancelledError:
            self.dropped.set()
            raise
        finally:
            self.ended.set()

    async def refuse(self) -> None:
        self.refused = True


class Doorway:
    """Knocks arrive in the order they are let in; None closes the door."""

    def __init__(self) -> None:
        self._knocks: asyncio.Queue[Knock | None] = asyncio.Queue()
        self.waiting = asyncio.Event()

    def let_in(self, knock: Knock | None) -> None:
        self._knocks.put_nowait(knock)

    async def took_next(self) -> None:
        """Wait until the accept loop asks for the next knock (done with the last one)."""
        await asyncio.wait_for(self.waiting.wait(), 5)
        self.waiting.clear()

    async def next_incoming(self) -> Knock | None:
        self.waiting.set()
        return await self._knocks.get()


@dataclass
class Stand:
    inbox: Inbox
    doorway: Doorway
    serving: asyncio.Task[TransferResult | None]


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


@pytest.fixture
async def stand(tmp_path: Path) -> AsyncIterator[Stand]:
    """An inbox serving (not ``once``) behind a table of two places, one per address."""
    doorway = Doorway()
    # No knock gets past its handshake here, so no session needs the receiving services.
    inbox = Inbox(SessionRegistry(EventBus()), doorway, None,  # type: ignore[arg-type]
                  ConnectionTable(max_total=2, max_per_ip=1))
    serving = asyncio.create_task(inbox.serve(ReceiveOptions(target=tmp_path), _accept))
    try:
        yield Stand(inbox, doorway, serving)
    finally:
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)


async def _knock(stand: Stand, ip: str) -> Knock:
    """A knock that got into the table and is now in its handshake."""
    knock = Knock(ip)
    stand.doorway.let_in(knock)
    await asyncio.wait_for(knock.started.wait(), 5)
    return knock


async def test_a_full_table_drops_the_oldest_connection_still_in_its_handshake(
    stand: Stand,
) -> None:
    first = await _knock(stand, "10.0.0.1")
    second = await _knock(stand, "10.0.0.2")
    third = await _knock(stand, "10.0.0.3")  # no room: the oldest idle one goes
    await asyncio.wait_for(first.dropped.wait(), 5)
    assert not second.dropped.is_set() and not third.dropped.is_set()
    assert len(stand.inbox.connections) == 2 and not third.refused
    same_address = await _knock(stand, "10.0.0.3")  # one per address: the other one goes
    await asyncio.wait_for(third.dropped.wait(), 5)
    assert not second.dropped.is_set() and not same_address.refused


async def test_a_connection_whose_handshake_fails_gives_its_place_back(stand: Stand) -> None:
    knock = await _knock(stand, "10.0.0.1")
    assert len(stand.inbox.connections) == 1
    knock.handshake.set_exception(NetError("handshake timed out"))
    await asyncio.wait_for(knock.ended.wait(), 5)
    assert len(stand.inbox.connections) == 0 and not knock.dropped.is_set()


class _Evictable:
    """A session as its slot sees it: past its hello (busy) or not."""

    def __init__(self, said_hello: bool, closing: bool = False) -> None:
        self.said_hello = said_hello
        self.closing = closing
        self.evicted = ""

    def evict(self, reason: str) -> None:
        self.evicted = reason


async def test_a_table_of_busy_connections_refuses_the_next_without_a_handshake(
    stand: Stand,
) -> None:
    for ip in ("10.0.0.1", "10.0.0.2"):
        assert stand.inbox.connections.admit(ConnectionSlot(_Evictable(said_hello=True)), ip)  # type: ignore[arg-type]
    await stand.doorway.took_next()
    knock = Knock("10.0.0.3")
    stand.doorway.let_in(knock)
    await stand.doorway.took_next()  # done with this knock...
    assert knock.refused and not knock.started.is_set()  # ...by refusing it, no handshake


async def test_ending_serve_drops_every_connection(stand: Stand) -> None:
    knocks = [await _knock(stand, ip) for ip in ("10.0.0.1", "10.0.0.2")]
    stand.serving.cancel()
    await asyncio.gather(stand.serving, return_exceptions=True)
    assert all(k.dropped.is_set() for k in knocks)
    assert len(stand.inbox.connections) == 0


def test_a_slot_is_idle_before_the_hello_and_once_only_closing() -> None:
    assert ConnectionSlot().idle  # still in the handshake
    assert ConnectionSlot(_Evictable(said_hello=False)).idle  # type: ignore[arg-type]
    assert not ConnectionSlot(_Evictable(said_hello=True)).idle  # type: ignore[arg-type]
    assert ConnectionSlot(_Evictable(said_hello=True, closing=True)).idle  # type: ignore[arg-type]


def test_evicting_a_slot_with_a_session_lets_the_session_say_why() -> None:
    session = _Evictable(said_hello=False)
    ConnectionSlot(session).evict("too many connections")  # type: ignore[arg-type]
    assert session.evicted == "too many connections"


# --- serve(once=True) and sessions from other doors --------------------------------------


class Launched:
    """A session's work from another door: starts, waits for ``gate``, ends in ``result``."""

    def __init__(self, result: TransferResult | None) -> None:
        self.result = result
        self.started = asyncio.Event()
        self.gate = asyncio.Event()

    async def __call__(self, lifecycle: Lifecycle) -> TransferResult | None:
        self.started.set()
        await self.gate.wait()
        return self.result


async def test_once_returns_with_the_first_session_launched_by_another_door(
    tmp_path: Path,
) -> None:
    # A ``receive --once`` that a LocalSend device sent to ends with that session.
    doorway = Doorway()
    inbox = Inbox(SessionRegistry(EventBus()), doorway, None)  # type: ignore[arg-type]
    serving = asyncio.create_task(
        inbox.serve(ReceiveOptions(target=tmp_path), _accept, once=True)
    )
    await doorway.took_next()
    cancelled, nothing = Launched(TransferResult(SessionState.DONE, files=9)), Launched(None)
    done = TransferResult(SessionState.DONE, files=1)
    first = Launched(done)
    tasks = [inbox.launch(work) for work in (cancelled, nothing, first)]
    await asyncio.wait_for(cancelled.started.wait(), 5)
    tasks[0].cancel()  # a cancelled session is no result...
    with contextlib.suppress(asyncio.CancelledError):
        await tasks[0]
    nothing.gate.set()  # ...nor one that ended before an offer
    assert await tasks[1] is None
    first.gate.set()
    assert await asyncio.wait_for(serving, 5) == done
    assert await tasks[2] == done
