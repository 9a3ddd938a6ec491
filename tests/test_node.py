"""The Node: how it wires its parts (the parts alone: test_sessions.py, test_inbox.py,
test_presence.py; its sessions themselves: test_transfer.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from conftest import CODE
from p2p_transfer.events import DoneEvent, Event
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import Decision, IncomingOffer, ReceiveOptions, SendOptions
from waiting import stays


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
    receiver.presence.discovery = discovery  # type: ignore[assignment]
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
