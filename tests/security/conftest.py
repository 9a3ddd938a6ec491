"""Fixtures for the adversarial suite: hostile clients against a real receiving Node."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from conftest import CODE, Peers
from p2p_transfer.events import ErrorEvent, Event
from p2p_transfer.protocol import Welcome
from p2p_transfer.transfer import Decider, Decision, IncomingOffer, ReceiveOptions
from security.hostile import Conversation, HostileClient
from waiting import wait_until as wait_until  # its old home: tests may import it from here

HostileFactory = Callable[..., Awaitable[HostileClient]]


@pytest.fixture
async def hostile(tmp_path: Path) -> AsyncIterator[HostileFactory]:
    """Makes hostile clients (``await hostile("name", bind="127.0.0.2", trusted_by=peers)``).

    ``trusted_by`` pairs the new identity at that receiver, as if it had
    entered the code before: the tests of later protocol stages need a peer
    that got past verification.
    """
    clients: list[HostileClient] = []

    async def make(
        name: str = "hostile", bind: str = "127.0.0.1", trusted_by: Peers | None = None
    ) -> HostileClient:
        client = await HostileClient.start(tmp_path / f"hostile-{name}-{len(clients)}", bind)
        clients.append(client)
        if trusted_by is not None:
            trusted_by.receiver.pairings.add(client.endpoint_id, name)
        return client

    try:
        yield make
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


async def trusted_conversation(
    peers: Peers, hostile: HostileFactory, name: str = "hostile"
) -> Conversation:
    """A hostile peer the receiver paired with before, connected and past its Hello
    (no code asked): where the tests of later protocol stages start."""
    client = await hostile(name, trusted_by=peers)
    conversation = await client.connect(peers.ticket)
    welcome = await conversation.hello()
    assert isinstance(welcome, Welcome) and not welcome.code_required
    return conversation


async def accept_all(offer: IncomingOffer) -> Decision:
    return Decision(True)


async def reserve(peers: Peers, decide: Decider = accept_all, **options: object) -> None:
    """Serve again with other receive options (auto-accept and the fixed code by default)."""
    assert peers.serve_task is not None
    peers.serve_task.cancel()
    await asyncio.gather(peers.serve_task, return_exceptions=True)
    settings: dict[str, object] = {"auto_accept": True, "fixed_code": CODE, **options}
    peers.serve_task = asyncio.create_task(
        peers.receiver.serve(ReceiveOptions(target=peers.target, **settings), decide)  # type: ignore[arg-type]
    )


def errors_of(peers: Peers) -> list[str]:
    """The receiver's error events so far."""
    return [e.message for e in peers.receiver_events(ErrorEvent) if isinstance(e, ErrorEvent)]


def events_named(peers: Peers, kind: type[Event]) -> list[Event]:
    return peers.receiver_events(kind)
