"""The node's sending part (node/sending.py, node/routes.py): the route said before anything
is sent, a LocalSend device found by name sent to only once the user says so, a paired
device that is not announced dialed where it was last reached (with its own short
deadline and an error that says why; with ``--wait``, dialed there until it is back),
and where each send reached a trusted device noted for the next one."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from conftest import CODE, Peers
from p2p_transfer.discovery import DeviceNotFoundError
from p2p_transfer.events import DialingEvent, Event, RouteEvent, SessionState, StateEvent
from p2p_transfer.lifecycle import Lifecycle
from p2p_transfer.limits import CONNECT_TIMEOUT, REMEMBERED_ROUTE_TIMEOUT
from p2p_transfer.localsend import LocalSendDevice, Target
from p2p_transfer.net import Unreachable, parse_ticket
from p2p_transfer.net.keys import generate_secret_key
from p2p_transfer.node import Node, NodeConfig
from p2p_transfer.transfer import (
    Decision,
    IncomingOffer,
    ReceiveOptions,
    SendOptions,
    TransferError,
    TransferResult,
)
from p2p_transfer.trust.files import ensure_private_dir
from p2p_transfer.trust.identity import endpoint_id_of, load_or_create_secret_key
from waiting import stays, wait_until


class _NotOnTheLan:
    """Stands in for the LAN and LocalSend lookups: nobody announced, ``heard`` on LocalSend."""

    def __init__(self, heard: list[LocalSendDevice]) -> None:
        self.heard = heard

    async def resolve(self, to: str) -> str:
        raise DeviceNotFoundError(f"no device named {to!r} on the local network")

    async def scan_localsend(self, seconds: float) -> list[LocalSendDevice]:
        return self.heard


def _quiet(node: Node, monkeypatch: pytest.MonkeyPatch, heard: list[LocalSendDevice]) -> None:
    lookups = _NotOnTheLan(heard)
    monkeypatch.setattr(node.presence, "resolve", lookups.resolve)
    monkeypatch.setattr(node.presence, "scan_localsend", lookups.scan_localsend)


class _LocalSendSends:
    """Stands in for the LocalSend bridge's send: notes who would have been sent to."""

    def __init__(self) -> None:
        self.to: list[Target] = []

    async def send(self, lifecycle: Lifecycle, target: Target, *args: object) -> TransferResult:
        self.to.append(target)
        return TransferResult(SessionState.DONE, 1, 0, 5, 5)


async def test_a_localsend_device_found_by_name_is_sent_to_only_once_the_user_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = Node.without_endpoint(NodeConfig(tmp_path / "home", "us"))
    phone = LocalSendDevice("phone", "CD" * 32, "10.0.0.8", 53317, "https", "Pixel", "mobile", 0)
    _quiet(node, monkeypatch, [phone])
    sends = _LocalSendSends()
    monkeypatch.setattr(node.localsend_bridge, "send", sends.send)
    events: list[Event] = []
    node.events.subscribe(events.append)
    note = tmp_path / "note.txt"
    note.write_text("hello")
    asked: list[RouteEvent] = []

    async def refuse(route: RouteEvent) -> bool:
        asked.append(route)
        return False

    result = await node.send("phone", [note], SendOptions(), confirm=refuse)
    assert result.state is SessionState.FAILED and isinstance(result.error, TransferError)
    assert str(result.error).startswith("nothing sent: phone takes files only over LocalSend")
    assert sends.to == []  # nothing went to the device
    (route,) = asked
    assert route.warning == "phone is a LocalSend device: files go unverified by the receiver's key"
    assert [e for e in events if isinstance(e, RouteEvent)] == [route]  # said before asking

    async def accept(route: RouteEvent) -> bool:
        return True

    assert (await node.send("phone", [note], SendOptions(), confirm=accept)).ok
    assert (await node.send("phone", [note], SendOptions())).ok  # --json, the app: no question
    assert sends.to == [phone.target()] * 2
    # An address the user typed is no downgrade to ask about (the route still says it).
    assert (await node.send("localsend:10.0.0.9", [note], SendOptions(), confirm=refuse)).ok


def _unused_udp_port() -> int:
    """A loopback UDP port nothing listens on (bound and released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _paired_off_the_lan(node: Node, monkeypatch: pytest.MonkeyPatch, bob: str) -> str:
    """``bob`` paired, not announced, last reached at a loopback port nobody listens on
    (returned), and no LocalSend device around."""
    address = f"127.0.0.1:{_unused_udp_port()}"
    node.pairings.add(bob, "bob")
    node.pairings.remember_route(bob, [address])
    _quiet(node, monkeypatch, [])
    return address


async def test_a_paired_device_not_there_where_it_was_last_reached_fails_in_seconds_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await Node.start(NodeConfig(tmp_path / "home", "us", "127.0.0.1"))
    try:
        bob = endpoint_id_of(generate_secret_key())
        address = _paired_off_the_lan(node, monkeypatch, bob)
        note = tmp_path / "note.txt"
        note.write_text("hello")
        loop = asyncio.get_running_loop()
        started = loop.time()
        result = await node.send("bob", [note], SendOptions())
        took = loop.time() - started
    finally:
        await node.close()
    assert result.state is SessionState.FAILED and isinstance(result.error, Unreachable)
    assert str(result.error) == (
        f"cannot reach bob: it is not announced on this network, and nothing answered where "
        f"it was last reached ({address}) within {REMEMBERED_ROUTE_TIMEOUT:g} s. It may be "
        "off, or restarted with another port (then its ticket changed); if it is on, the "
        "network or a firewall may drop mDNS (UDP 5353): `p2p-transfer doctor` says why "
        "devices don't see each other. Meanwhile, send with its ticket (`p2p-transfer "
        "receive` prints it)"
    )
    # Its own deadline, not the connect deadline of a ticket.
    assert REMEMBERED_ROUTE_TIMEOUT <= took < CONNECT_TIMEOUT


async def test_where_a_send_reached_a_trusted_device_is_noted_and_used_when_it_is_not_seen(
    peers: Peers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("hello")
    assert (await peers.send(note)).ok  # by ticket, with the code: now paired
    (pairing,) = peers.sender.pairings.list()
    assert pairing.endpoint_id == peers.receiver.endpoint_id
    assert pairing.ticket == peers.ticket
    assert pairing.addresses and pairing.addresses[0] in peers.receiver.transport.addresses
    assert pairing.reached_at > 0

    # Not announced (mDNS blocked, say): its name still reaches it, over our protocol.
    _quiet(peers.sender, monkeypatch, [])
    events: list[Event] = []
    peers.sender.events.subscribe(events.append)
    again = tmp_path / "again.txt"
    again.write_text("hello again")
    result = await peers.sender.send("rx", [again], SendOptions(code=CODE))
    assert result.ok, result
    (route,) = [e for e in events if isinstance(e, RouteEvent)]
    assert (route.via, route.found, route.peer_id) == (
        "p2p-transfer", "pairing", peers.receiver.endpoint_id
    )
    assert (peers.target / "again.txt").read_text() == "hello again"
    # The ticket that reached it stays the one stored (a remembered route adds nothing new).
    (pairing,) = peers.sender.pairings.list()
    assert pairing.ticket == peers.ticket
    assert str(parse_ticket(pairing.ticket).id()) == peers.receiver.endpoint_id


async def _accept(offer: IncomingOffer) -> Decision:
    return Decision(True)


def _states(events: list[Event]) -> list[str]:
    return [e.state.value for e in events if isinstance(e, StateEvent)]


async def test_send_wait_dials_a_trusted_device_where_it_was_last_reached_until_it_is_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``send --to bob --wait``: bob is paired, not announced, and off. The send stays
    queued, dialing bob's last address (past the deadline a send without --wait has),
    and goes through once bob starts there."""
    rx_home = ensure_private_dir(tmp_path / "rx-home")
    bob = endpoint_id_of(load_or_create_secret_key(rx_home))
    node = await Node.start(NodeConfig(tmp_path / "home", "us", "127.0.0.1"))
    receiver: Node | None = None
    try:
        address = _paired_off_the_lan(node, monkeypatch, bob)
        events: list[Event] = []
        node.events.subscribe(events.append)
        note = tmp_path / "note.txt"
        note.write_text("hello")
        sending = asyncio.create_task(node.send("bob", [note], SendOptions(code=CODE, wait=60)))
        await wait_until(lambda: [e for e in events if isinstance(e, DialingEvent)],
                         what="the dial where bob was last reached")
        await stays(lambda: not sending.done() and _states(events) == ["queued"],
                    seconds=REMEMBERED_ROUTE_TIMEOUT + 1, what="the send queued for bob")
        receiver = await Node.start(NodeConfig(rx_home, "bob", address))
        serving = asyncio.create_task(receiver.serve(
            ReceiveOptions(target=tmp_path / "inbox", auto_accept=True, fixed_code=CODE),
            _accept,
        ))
        result = await asyncio.wait_for(sending, 60)
        serving.cancel()
        await asyncio.gather(serving, return_exceptions=True)
    finally:
        await node.close()
        if receiver is not None:
            await receiver.close()
    assert result.ok, result
    assert (tmp_path / "inbox" / "note.txt").read_text() == "hello"
    assert _states(events)[:3] == ["queued", "connecting", "verifying"]
    (route,) = [e for e in events if isinstance(e, RouteEvent)]
    assert (route.found, route.addresses) == ("pairing", [address])


async def test_send_wait_for_a_trusted_device_that_never_comes_back_says_how_long_it_waited(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = await Node.start(NodeConfig(tmp_path / "home", "us", "127.0.0.1"))
    try:
        bob = endpoint_id_of(generate_secret_key())
        address = _paired_off_the_lan(node, monkeypatch, bob)
        note = tmp_path / "note.txt"
        note.write_text("hello")
        result = await node.send("bob", [note], SendOptions(wait=REMEMBERED_ROUTE_TIMEOUT + 2))
    finally:
        await node.close()
    assert result.state is SessionState.FAILED and isinstance(result.error, Unreachable)
    assert (
        f"nothing answered where it was last reached ({address}) within the "
        f"{REMEMBERED_ROUTE_TIMEOUT + 2:g} s the send waited. It may be off"
    ) in str(result.error)
